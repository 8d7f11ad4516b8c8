"""Knowledge layers: a base layer (imported XZuFi, shared pages) and the town's own layer on top of it.

A town page names the base page it amends with ``overrides: <page id>``. Its sections replace the base page's
sections of the same heading (a conflict: the same fact from two layers, the town wins and it is listed), its other
sections are added, and its non-empty metadata (spoken answer, authority, contact, validity) replaces the base's.
A correction page (layer ``correction``) amends a base or a town page the same way.

The merge keeps one row per stored chunk and the rows' order, so the stored embeddings stay aligned: the town's
chunks are relabelled as chunks of the base page (``<base id>#<town id>``), and the base chunks lose the replaced
sections. Applied when the retriever is built and before fact units are embedded (knowledge.index), so the stored
chunks stay what the files say and removing an override restores the base page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from knowledge.facts.candidates import is_heading
from knowledge.types import Chunk

BASE = "base"
TOWN = "town"
# An approved correction from the supervisors' review (voicebot.staff.corrections, decision 0940): on top of both.
CORRECTION = "correction"
_RANK = {BASE: 0, TOWN: 1, CORRECTION: 2}


def layer_of(chunk: Chunk) -> str:
    """The chunk's layer; pages without one are the town's own (hand-written pages, FAQ tables)."""
    return chunk.layer or TOWN


@dataclass(frozen=True)
class Conflict:
    """The same section (fact) in two layers: the town's wins."""

    page: str
    heading: str
    base_source: str
    town_source: str


@dataclass
class LayerReport:
    overrides: dict[str, list[str]] = field(default_factory=dict)  # base page id → overriding town page ids
    conflicts: list[Conflict] = field(default_factory=list)
    # (page id, why its override was not applied)
    problems: list[tuple[str, str]] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)  # base pages whose spoken answer the town's layer sets


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, block) pairs of a chunk's rendered text; text before the first heading has heading ""."""
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    out: list[tuple[str, str]] = []
    heading = ""
    for number, block in enumerate(blocks):
        if is_heading(block, number + 1 < len(blocks)):
            heading = block.strip()
        out.append((heading, block))
    return out


def headings(chunks: Iterable[Chunk]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks:
        if chunk.section:
            found.add(chunk.section.casefold())
        found.update(h.casefold() for h, _ in sections(chunk.text) if h)
    return found


def _without(chunk: Chunk, replaced: set[str]) -> tuple[Chunk, list[str]]:
    """The chunk without the sections whose heading the town replaces; the headings it dropped."""
    if chunk.section and chunk.section.casefold() in replaced:
        return replace(chunk, text="", spoken_answer=chunk.spoken_answer), [chunk.section]
    kept: list[str] = []
    dropped: list[str] = []
    for heading, block in sections(chunk.text):
        if heading and heading.casefold() in replaced:
            if heading not in dropped:
                dropped.append(heading)
            continue
        kept.append(block)
    return (replace(chunk, text="\n\n".join(kept)) if dropped else chunk), dropped


def resolve(chunks: Iterable[Chunk]) -> tuple[list[Chunk], LayerReport]:
    """The chunks as the town sees them (same count and order), and what was overridden."""
    chunks = list(chunks)
    report = LayerReport()
    pages: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        pages.setdefault(chunk.doc_id, []).append(row)
    result = list(chunks)
    for doc_id, rows in pages.items():
        lead = chunks[rows[0]]
        target = lead.overrides
        if not target:
            continue
        if target not in pages or target == doc_id:
            report.problems.append((doc_id, f"overrides {target!r}, which is not in the index"))
            continue
        base_lead = chunks[pages[target][0]]
        if _RANK.get(layer_of(lead), 1) <= _RANK.get(layer_of(base_lead), 1):
            why = f"overrides {target!r} of layer {layer_of(base_lead)!r} from the same or a lower layer"
            report.problems.append((doc_id, why))
            continue
        report.overrides.setdefault(target, []).append(doc_id)
        replaced = headings(chunks[row] for row in rows)
        for row in pages[target]:
            trimmed, dropped = _without(result[row], replaced)
            result[row] = trimmed
            for heading in dropped:
                report.conflicts.append(Conflict(target, heading, base_lead.source_path, lead.source_path))
        amended = {
            name: getattr(lead, name)
            for name in ("spoken_answer", "authority", "department", "contact", "valid_until", "source_url")
            if getattr(lead, name)
        }
        spoken = amended.pop("spoken_answer", None)
        for row in pages[target]:  # every chunk carries the page's metadata (freshness reads the found chunk)
            result[row] = replace(result[row], **amended)
        if spoken:
            report.approved.add(target)
            for row in pages[target]:  # an editor's answer: no longer an importer's draft
                result[row] = replace(result[row], spoken_generated=False)
            result[pages[target][0]] = replace(result[pages[target][0]], spoken_answer=spoken)
        for row in rows:
            chunk = chunks[row]
            result[row] = replace(
                chunk,
                id=f"{target}#{chunk.id}",
                doc_id=target,
                title=base_lead.title,
                layer=layer_of(chunk),
                spoken_answer="",
                synonyms=(),
                responsible=base_lead.responsible,
                areas=base_lead.areas,
            )
    # A chunk left without text (a town page with only metadata, a base section the town replaced) would be found
    # by search and then say nothing: it says the page's resolved short answer instead.
    leads = {c.doc_id: c for c in result if c.id == c.doc_id}
    for row, chunk in enumerate(result):
        if chunk.doc_id in report.overrides and not chunk.text.strip() and chunk.doc_id in leads:
            lead = leads[chunk.doc_id]
            result[row] = replace(chunk, text=lead.spoken_answer or lead.title)
    return result, report


def generated(resolved: Iterable[Chunk], report: LayerReport) -> list[Chunk]:
    """Lead chunks of imported pages whose spoken answer the importer built (no town page sets one yet).

    Imported pages (a catalogue key, e.g. XZuFi's LeiKa) have no curated phone answer; the loader builds one
    from the Kurztext. An editor approves or rewrites it with a town page ``overrides: <id>`` + ``spoken_answer``.
    """
    return [
        c
        for c in resolved
        if c.id == c.doc_id and c.catalog_key and c.spoken_answer and c.doc_id not in report.approved
    ]
