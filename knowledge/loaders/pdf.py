"""PDF documents (forms, statutes, flyers): text per page, sections at detected numbered headings.

Scanned PDFs without a text layer are reported, not indexed (no OCR on the embedded default).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from knowledge.chunking import LoadError, ParsedDocument, Section, slugify
from knowledge.loaders.markdown import meta_from_mapping

# "1. Allgemeines", "2.3 Gebühren", "§ 4 Steuersatz" — short lines that number a section.
_HEADING_RE = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2})*\.?|§\s*\d+[a-z]?)\s+[A-ZÄÖÜ][^.:;]{2,70}$")


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs what it repairs or gives up on ("EOF marker not found") to stderr; a broken file is reported
    once, as our LoadError, so its lines are held back while a PDF is read."""
    pypdf_logger = logging.getLogger("pypdf")
    level = pypdf_logger.level
    pypdf_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_logger.setLevel(level)


def load(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    with _quiet_pypdf():
        return _load(path)


def _load(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        info_title = ""
        if reader.metadata is not None and reader.metadata.title:
            info_title = str(reader.metadata.title).strip()
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LoadError(f"unreadable PDF: {exc}") from exc
    if not any(p.strip() for p in pages):
        raise LoadError("PDF has no text layer (scanned image?)")

    lines_per_page = [[line.strip() for line in page.splitlines() if line.strip()] for page in pages]
    first_line = next((lines[0] for lines in lines_per_page if lines), "")
    title = info_title or first_line[:120]
    meta = meta_from_mapping({"title": title}, path, default_id=slugify(path.stem))

    headed = any(_HEADING_RE.match(line) for lines in lines_per_page for line in lines)
    sections: list[Section] = [Section("", "", 0)]
    if headed:
        body: list[str] = []
        for lines in lines_per_page:
            for line in lines:
                if _HEADING_RE.match(line):
                    sections[-1].text = "\n".join(body)
                    body = []
                    sections.append(Section(line, "", 2))
                elif line != title or sections[-1].level or body:
                    body.append(line)
        sections[-1].text = "\n".join(body)
    else:
        for number, lines in enumerate(lines_per_page, start=1):
            if lines:
                sections.append(Section(f"Seite {number}", "\n".join(lines), 2))
    sections = [s for s in sections if s.text.strip()]
    return [ParsedDocument(meta, sections)], []
