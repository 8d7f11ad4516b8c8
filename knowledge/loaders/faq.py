"""FAQ tables (CSV) and lists (YAML): each question/answer pair becomes its own one-chunk document.

The answer is the spoken answer. Rows without a question or an answer are reported and skipped; the rest of the
file is kept. Ids come from an ``id`` column, else from the question text (stable while the question is).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from knowledge.chunking import LoadError, ParsedDocument, Section, slugify
from knowledge.loaders.markdown import meta_from_mapping

_ALIASES = {"frage": "question", "antwort": "answer", "url": "source_url", "quelle": "source_url"}


def _documents(
    rows: list[tuple[str, dict[str, Any]]], path: Path
) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    documents: list[ParsedDocument] = []
    warnings: list[tuple[str, str]] = []
    seen: set[str] = set()
    prefix = slugify(path.stem, 30)
    for where, row in rows:
        row = {
            _ALIASES.get(str(k).strip().lower(), str(k).strip().lower()): v
            for k, v in row.items()
            if k and v not in (None, "")
        }
        question = str(row.get("question") or "").strip()
        answer = str(row.get("answer") or "").strip()
        if not question or not answer:
            warnings.append((where, "FAQ entry needs both 'question' and 'answer'"))
            continue
        default_id = f"{prefix}-{slugify(question, 50)}"
        data = {**row, "title": question, "spoken_answer": answer}
        try:
            meta = meta_from_mapping(data, path, default_id=default_id)
        except LoadError as exc:
            warnings.append((where, str(exc)))
            continue
        if meta.doc_id in seen:
            warnings.append((where, f"duplicate id {meta.doc_id!r} in this file"))
            continue
        seen.add(meta.doc_id)
        documents.append(ParsedDocument(meta, [Section("", answer, 0)]))
    return documents, warnings


def load_csv(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise LoadError("empty file")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    fields = {_ALIASES.get(f.strip().lower(), f.strip().lower()) for f in reader.fieldnames or []}
    if not {"question", "answer"} <= fields:
        raise LoadError(
            "CSV needs the columns 'question' and 'answer' (optional: id, source_url, department)"
        )
    rows = [(f"{path}:{n + 2}", dict(row)) for n, row in enumerate(reader)]
    return _documents(rows, path)


def load_yaml(path: Path) -> tuple[list[ParsedDocument], list[tuple[str, str]]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LoadError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}") from exc
    if isinstance(data, dict):
        data = next(
            (data[k] for k in ("faq", "items", "questions", "entries") if isinstance(data.get(k), list)), None
        )
    if not isinstance(data, list):
        raise LoadError("FAQ YAML must be a list of {question, answer} entries (or under a 'faq:' key)")
    rows: list[tuple[str, dict[str, Any]]] = []
    for n, item in enumerate(data, start=1):
        if isinstance(item, dict):
            rows.append((f"{path}#{n}", item))
        else:
            rows.append((f"{path}#{n}", {}))
    return _documents(rows, path)
