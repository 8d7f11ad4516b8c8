"""From a parsed document (metadata + heading sections) to retrievable :class:`~knowledge.types.Chunk` objects.

Every loader (Markdown, HTML, PDF, FAQ) produces the same :class:`ParsedDocument`, so chunking rules live in one
place: short documents stay one chunk (one page = one answer), long ones are cut at headings so that a passage
handed to the answer engine is about one thing. The lead chunk's id is the document id (the citation id); later
sections are ``<id>#<n>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from knowledge.types import Chunk

SINGLE_CHUNK_CHARS = 1500  # a whole page this short is one chunk
MAX_CHUNK_CHARS = 2000  # longer sections are cut at paragraphs
MIN_LEAD_CHARS = 200  # a shorter intro is merged with the first section

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_SLUG_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


class LoadError(Exception):
    """A source file that cannot be indexed; the message says why in one line."""


def slugify(text: str, max_len: int = 60) -> str:
    """Kebab-case id from free text ("Führerschein Umtausch" → "fuehrerschein-umtausch")."""
    slug = _SLUG_RE.sub("-", text.lower().translate(_SLUG_FOLD)).strip("-")
    return slug[:max_len].rstrip("-")


@dataclass
class Section:
    """A heading and the text under it; level 0 is the text before the first heading."""

    heading: str
    text: str
    level: int = 2


@dataclass
class ParsedDocument:
    """A document as its loader understood it, before chunking."""

    meta: Chunk  # id/doc_id/title/metadata filled in, text empty: the template of every chunk
    sections: list[Section] = field(default_factory=list)

    @property
    def body_length(self) -> int:
        return sum(len(s.heading) + len(s.text) for s in self.sections)


def _render(sections: list[Section]) -> str:
    parts: list[str] = []
    for section in sections:
        if section.heading and section.level > 0:
            parts.append(section.heading)
        if section.text:
            parts.append(section.text)
    return "\n\n".join(p.strip() for p in parts if p.strip())


def _split_long(text: str) -> list[str]:
    """Cut text longer than MAX_CHUNK_CHARS at paragraph (then line) boundaries."""
    if len(text) <= MAX_CHUNK_CHARS:
        return [text]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n|\n", text):
        para = para.strip()
        if not para:
            continue
        if current and len(current) + len(para) + 2 > MAX_CHUNK_CHARS:
            pieces.append(current)
            current = ""
        while len(para) > MAX_CHUNK_CHARS:  # one enormous paragraph: cut at a space
            cut = para.rfind(" ", 0, MAX_CHUNK_CHARS)
            cut = cut if cut > MAX_CHUNK_CHARS // 2 else MAX_CHUNK_CHARS
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        current = f"{current}\n\n{para}" if current else para
    if current:
        pieces.append(current)
    return pieces


def chunk_document(doc: ParsedDocument) -> list[Chunk]:
    """Split a document into chunks: lead chunk ``<id>``, then ``<id>#1``, ``<id>#2`` ... per section."""
    meta = doc.meta
    sections = [s for s in doc.sections if s.text.strip()]  # a heading without text says nothing
    if doc.body_length <= SINGLE_CHUNK_CHARS or len(sections) <= 1:
        pieces = _split_long(_render(sections))
        groups: list[tuple[str, str]] = [("", pieces[0] if pieces else "")]
        groups += [("", piece) for piece in pieces[1:]]
    else:
        intro = [s for s in sections if s.level == 0]
        rest = [s for s in sections if s.level > 0]
        top_level = min(s.level for s in rest)
        # Group sub-sections (### under ##) with their parent section.
        grouped: list[list[Section]] = []
        for section in rest:
            if section.level == top_level or not grouped:
                grouped.append([section])
            else:
                grouped[-1].append(section)
        lead_text = _render(intro)
        lead_heading = ""
        if len(lead_text) < MIN_LEAD_CHARS and grouped:
            first = grouped.pop(0)
            lead_heading = first[0].heading
            lead_text = _render([*intro, *first])
        groups = []
        lead_pieces = _split_long(lead_text)
        groups.append((lead_heading, lead_pieces[0]))
        groups += [(lead_heading, piece) for piece in lead_pieces[1:]]
        for group in grouped:
            heading = group[0].heading
            for piece in _split_long(_render(group)):
                groups.append((heading, piece))
    chunks: list[Chunk] = []
    for n, (heading, text) in enumerate(groups):
        chunk_id = meta.doc_id if n == 0 else f"{meta.doc_id}#{n}"
        chunks.append(
            replace(
                meta,
                id=chunk_id,
                text=text,
                section=heading,
                spoken_answer=meta.spoken_answer if n == 0 else "",
            )
        )
    return chunks


def bm25_text(chunk: Chunk) -> str:
    """What keyword search sees: the title twice (it names the service), synonyms, spoken answer and text."""
    parts = [chunk.title, chunk.title, chunk.section]
    if chunk.id == chunk.doc_id:
        parts += [" ".join(chunk.synonyms), chunk.spoken_answer]
    parts.append(chunk.text)
    return "\n".join(p for p in parts if p)


def passage_text(chunk: Chunk) -> str:
    """What the embedding model sees (the ``passage:`` side of e5)."""
    head = chunk.title if not chunk.section else f"{chunk.title} – {chunk.section}"
    parts = [head]
    if chunk.id == chunk.doc_id:
        if chunk.synonyms:
            parts.append("Auch: " + ", ".join(chunk.synonyms) + ".")
        if chunk.spoken_answer:
            parts.append(chunk.spoken_answer)
    parts.append(chunk.text)
    return "\n".join(p for p in parts if p)[:2000]
