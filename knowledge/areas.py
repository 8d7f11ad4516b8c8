"""Which pages the town's hotline answers itself: imported services of other areas are redirected.

An XZuFi import holds the services of a whole Land or district, each valid for some areas (Gebiet-IDs). The
hotline answers for its own area (``AnswerConfig.area_ids``) and, for a service of another area, names the
responsible office and how to reach it. The decision is made when the retriever is built, not at ingest, so that
changing the setting needs no re-ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from knowledge.types import Chunk


def redirect_text(chunk: Chunk) -> str:
    """ "Für „Fahrzeug zulassen“ ist Landkreis Musterkreis – Zulassungsstelle zuständig. Telefon 0999 5555-0."."""
    who = chunk.authority or "eine andere Stelle"
    text = f"Für „{chunk.title}“ ist {who} zuständig."
    phone = next((p for p in chunk.contact.split(";") if p.strip().startswith("Telefon")), "")
    if phone:
        text += f" Sie erreichen die Stelle unter {phone.strip()}."
    return text


def for_town(chunks: Iterable[Chunk], area_ids: Sequence[str]) -> list[Chunk]:
    """The chunks with pages of other areas marked not responsible (their lead speaks the redirect)."""
    chunks = list(chunks)
    if not area_ids:
        return chunks
    own = set(area_ids)
    result: list[Chunk] = []
    for chunk in chunks:
        if chunk.areas and chunk.responsible and not own.intersection(chunk.areas):
            spoken = redirect_text(chunk) if chunk.id == chunk.doc_id else ""
            chunk = replace(chunk, responsible=False, spoken_answer=spoken)
        result.append(chunk)
    return result
