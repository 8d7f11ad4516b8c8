"""HTML pages from a website export: title/h1, the main content's text and its headings.

Page chrome (navigation, header, footer, scripts) is dropped. Optional ``<meta name="kb:...">`` tags carry the
same fields as Markdown front matter (``kb:id``, ``kb:department``, ``kb:authority``, ``kb:spoken_answer`` ...);
without them the id is derived from the file name and the canonical link is the source URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from knowledge.chunking import LoadError, ParsedDocument, Section, slugify
from knowledge.loaders.markdown import meta_from_mapping

_BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "dt", "dd", "td", "th", "pre", "blockquote")
_CHROME = "script, style, noscript, nav, header, footer, aside, form, template, svg"


def _has_block_ancestor(node: LexborNode, root: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.mem_id != root.mem_id:
        if parent.tag in _BLOCKS:
            return True
        parent = parent.parent
    return False


def load(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    raw = path.read_bytes()
    if not raw.strip():
        raise LoadError("empty file")
    tree = LexborHTMLParser(raw.decode("utf-8", errors="replace"))
    data: dict[str, Any] = {}
    for node in tree.css("meta[name]"):
        name = (node.attributes.get("name") or "").lower()
        if name.startswith("kb:"):
            data[name[3:]] = node.attributes.get("content") or ""
    if "synonyms" not in data:
        keywords = tree.css_first('meta[name="keywords"]')
        if keywords is not None:
            data["synonyms"] = keywords.attributes.get("content") or ""
    if "source_url" not in data:
        canonical = tree.css_first('link[rel="canonical"]') or tree.css_first('meta[property="og:url"]')
        if canonical is not None:
            data["source_url"] = canonical.attributes.get("href") or canonical.attributes.get("content") or ""

    for node in tree.css(_CHROME):
        node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.css_first('[role="main"]') or tree.body
    if root is None:
        raise LoadError("no <body> in HTML")
    h1 = root.css_first("h1")
    title_node = tree.css_first("title")
    title = (h1.text(separator=" ", strip=True) if h1 else "") or (
        title_node.text(strip=True) if title_node else ""
    )
    data.setdefault("title", title)
    meta = meta_from_mapping(data, path, default_id=slugify(path.stem))

    sections = [Section("", "", 0)]
    lines: list[str] = []
    for node in root.css(",".join(_BLOCKS)):
        if _has_block_ancestor(node, root):
            continue
        text = " ".join(node.text(separator=" ", strip=True).split())
        if not text:
            continue
        if node.tag in ("h2", "h3", "h4", "h5", "h6"):
            sections[-1].text = "\n".join(lines)
            lines = []
            sections.append(Section(text, "", int(node.tag[1])))
        elif node.tag == "h1":
            continue
        else:
            lines.append(f"- {text}" if node.tag == "li" else text)
    sections[-1].text = "\n".join(lines)
    sections = [s for s in sections if s.text or s.level > 0]
    if not any(s.text for s in sections):
        raise LoadError("no text content in HTML page")
    return [ParsedDocument(meta, sections)], []
