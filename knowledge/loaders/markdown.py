"""Markdown pages with YAML front matter: the native format of the knowledge base (see COMMON page format)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from knowledge.chunking import LoadError, ParsedDocument, Section
from knowledge.types import Chunk

_FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(\*\*|__|\*|`)")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _as_bool(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in {"false", "nein", "no", "0", "off"}


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    if isinstance(value, list | tuple):
        return tuple(_as_text(v) for v in value if _as_text(v))
    return (_as_text(value),)


def check_id(value: Any) -> str:
    """The document id, or LoadError: ids are citation keys and must be stable, non-empty, without '#'/spaces."""
    doc_id = _as_text(value)
    if not doc_id:
        raise LoadError("missing 'id'")
    if not _ID_RE.match(doc_id):
        raise LoadError(
            f"invalid id {doc_id!r} (use letters, digits and '-', e.g. personalausweis-beantragen)"
        )
    return doc_id


def meta_from_mapping(data: dict[str, Any], source_path: Path, default_id: str | None = None) -> Chunk:
    """Build the chunk template from front-matter-like metadata; raises LoadError on missing id/title."""
    doc_id = check_id(data.get("id", default_id))
    title = _as_text(data.get("title"))
    if not title:
        raise LoadError("missing 'title'")
    layer = _as_text(data.get("layer")).lower()
    if layer not in ("", "base", "town", "correction"):
        raise LoadError(
            f"invalid layer {layer!r} (use 'base' for shared pages, 'town' for the town's own, "
            "'correction' for an approved correction)"
        )
    overrides = check_id(data["overrides"]) if data.get("overrides") else ""
    return Chunk(
        id=doc_id,
        doc_id=doc_id,
        title=title,
        text="",
        spoken_answer=_as_text(data.get("spoken_answer")),
        department=_as_text(data.get("department") or data.get("office")),
        authority=_as_text(data.get("authority")),
        responsible=_as_bool(data.get("responsible")),
        source_url=_as_text(data.get("source_url")),
        source_path=str(source_path),
        valid_until=_as_text(data.get("valid_until")),
        language=_as_text(data.get("language")) or "de",
        synonyms=_as_list(data.get("synonyms")),
        contact=_as_text(data.get("contact")),
        layer=layer,
        overrides=overrides,
    )


def clean_inline(text: str) -> str:
    """Drop Markdown markup that should not be spoken or indexed (links keep their text)."""
    return _EMPHASIS_RE.sub("", _LINK_RE.sub(r"\1", text))


def parse_body(body: str, title: str) -> list[Section]:
    """Split a Markdown body into heading sections; the first H1 equal to the title is dropped."""
    sections: list[Section] = [Section("", "", 0)]
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        sections[-1].text = clean_inline("\n".join(lines)).strip()
        lines.clear()

    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING_RE.match(line)
        if match:
            level, heading = len(match.group(1)), clean_inline(match.group(2))
            if level == 1 and len(sections) == 1 and not "".join(lines).strip():
                continue  # the page title
            flush()
            sections.append(Section(heading, "", level))
        else:
            lines.append(line.rstrip())
    flush()
    return [s for s in sections if s.text or s.level > 0]


def load(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        raise LoadError("no YAML front matter (the page must start with '---', id, title, ... '---')")
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise LoadError(f"invalid YAML front matter{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise LoadError("front matter is not a mapping of fields (id: ..., title: ...)")
    meta = meta_from_mapping(data, path)
    sections = parse_body(text[match.end() :], meta.title)
    if not sections and not meta.spoken_answer:
        raise LoadError("page has no text and no spoken_answer")
    return [ParsedDocument(meta, sections)], []
