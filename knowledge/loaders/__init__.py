"""Source-file loaders: each turns one file into :class:`~knowledge.chunking.ParsedDocument` objects.

Dispatch is by file suffix. A loader raises :class:`~knowledge.chunking.LoadError` with a one-line reason for a
file it cannot use; per-row problems of FAQ tables are returned as warnings while the good rows are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.chunking import LoadError, ParsedDocument
from knowledge.loaders import faq, html, markdown, pdf, xzufi


@dataclass
class LoadResult:
    documents: list[ParsedDocument]
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (where, reason) for skipped parts


_Loader = Callable[[Path], tuple[list[ParsedDocument], list[tuple[str, str]]]]

LOADERS: dict[str, _Loader] = {
    ".md": markdown.load,
    ".markdown": markdown.load,
    ".html": html.load,
    ".htm": html.load,
    ".pdf": pdf.load,
    ".csv": faq.load_csv,
    ".yaml": faq.load_yaml,
    ".yml": faq.load_yaml,
    ".xml": xzufi.load,  # XZuFi 2.2 service descriptions; other XML is reported as such
}

# Files that commonly sit next to knowledge pages but are not knowledge.
IGNORED_NAMES = frozenset({"readme.md", "license.md", "changelog.md"})


def is_source(path: Path) -> bool:
    return path.suffix.lower() in LOADERS and path.name.lower() not in IGNORED_NAMES


def discover(paths: Iterable[Path]) -> list[Path]:
    """All loadable files under the given files/directories (recursively), sorted, hidden ones skipped."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for candidate in path.rglob("*"):
                rel = candidate.relative_to(path)
                if (
                    candidate.is_file()
                    and is_source(candidate)
                    and not any(p.startswith(".") for p in rel.parts)
                ):
                    found.add(candidate.resolve())
        elif path.is_file():
            found.add(path.resolve())  # named explicitly: try it even if the suffix is unusual
    return sorted(found)


def load_file(path: Path) -> LoadResult:
    """Parse one file; raises LoadError (one-line reason) if nothing usable is in it."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(
            f"unsupported file type {path.suffix or '(none)'!r} (use .md, .html, .pdf, .csv, .yaml, .xml for XZuFi 2.2)"
        )
    try:
        documents, warnings = loader(path)
    except LoadError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"cannot read file: {exc}") from exc
    if not documents:
        raise LoadError("no usable content")
    return LoadResult(documents, warnings)


__all__ = ["LOADERS", "LoadError", "LoadResult", "discover", "is_source", "load_file"]
