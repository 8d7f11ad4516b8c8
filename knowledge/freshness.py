"""Validity dates of pages: an expired (or not yet valid) page is not spoken.

Imported service descriptions carry validity dates and pages may set ``valid_until``; a fee or a deadline past
that date may be wrong, so the bot says it cannot give a current answer and offers the hand-off instead. The day
is passed in (the engine's injectable ``today``) so tests can pin it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge.types import Chunk

EXPIRING_DAYS = 30  # `voicebot kb stats` lists pages that expire within this many days


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip()[:10]) if value.strip() else None
    except ValueError:
        return None  # an unreadable date restricts nothing (the loader keeps what the source says)


def is_current(chunk: Chunk, today: dt.date) -> bool:
    """False when ``valid_until`` lies before ``today`` or ``valid_from`` after it (both inclusive days)."""
    until, start = _date(chunk.valid_until), _date(chunk.valid_from)
    return (until is None or today <= until) and (start is None or today >= start)


@dataclass(frozen=True)
class Expiry:
    doc_id: str
    title: str
    valid_until: dt.date
    days_left: int  # negative: already expired


def expiring(chunks: Iterable[Chunk], today: dt.date, within_days: int = EXPIRING_DAYS) -> list[Expiry]:
    """Pages whose validity ends within ``within_days`` (or has ended), soonest first, one row per page."""
    found: dict[str, Expiry] = {}
    for chunk in chunks:
        until = _date(chunk.valid_until)
        if chunk.id != chunk.doc_id or until is None:
            continue
        left = (until - today).days
        if left <= within_days:
            found[chunk.doc_id] = Expiry(chunk.doc_id, chunk.title, until, left)
    return sorted(found.values(), key=lambda e: (e.valid_until, e.doc_id))
