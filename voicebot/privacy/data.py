"""Retention, the caller's right of access and erasure (GDPR Art. 15/17) and the audit log, over the database
(decisions 0921, 0922). Times are passed in (``now``): the caller's clock, a test's injected one.

Counts only ever reach a log line or the audit log; what was said never does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, delete, exists, func, insert, select, update

from voicebot.db import rows
from voicebot.db.engine import writing
from voicebot.db.models import AuditEntry, Callback, CallbackStatus, Correction, QueueEntry
from voicebot.privacy.recordings import delete_old_recordings, delete_recordings_of
from voicebot.records import JsonFileStore, is_call_id
from voicebot.settings import PrivacySettings

DAY_S = 86400.0
AUDIT: Any = AuditEntry.__table__
CALLBACKS: Any = Callback.__table__
QUEUE: Any = QueueEntry.__table__
CORRECTIONS: Any = Correction.__table__
MIN_DIGITS = 6
MAX_NUMBER_CHARS = 40


class NumberError(ValueError):
    """A number that cannot name a caller; the message says what to enter."""


def normalise_number(text: str) -> str:
    """Digits only, the German country code as a leading 0 (``+49 171 2345678`` → ``01712345678``), other
    countries as ``00…``. NumberError when it has fewer than six digits or other characters than a number has."""
    value = text.strip()
    if len(value) > MAX_NUMBER_CHARS or not re.fullmatch(r"\+?[\d /()\-.]+", value):
        raise NumberError("Rufnummer bitte nur mit Ziffern angeben, z. B. +491712345678 oder 01712345678")
    digits = re.sub(r"\D", "", value)
    if value.startswith("+"):
        digits = "00" + digits
    if digits.startswith("0049"):
        digits = "0" + digits[4:]
    if len(digits) < MIN_DIGITS:
        raise NumberError("Rufnummer zu kurz: bitte die ganze Nummer mit Vorwahl angeben")
    return digits


def masked(number: str) -> str:
    """What the audit log keeps of a number: enough to tell requests apart, not to ring anyone."""
    return f"{number[:4]}…{number[-2:]}"


# --- right of access and erasure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What is stored for one caller number."""

    call_ids: list[str]
    callback_ids: list[int]
    queue_entry_ids: list[int]


def _same_number(stored: str, number: str) -> bool:
    try:
        return normalise_number(stored) == number
    except NumberError:
        return False


def find(connection: Connection, number: str) -> Found:
    """Everything that names the (normalised) ``number``: call-backs by their number, queue entries by the
    caller's number, and the calls they belong to."""
    tail = f"%{number[-4:]}%"
    callbacks = [
        row
        for row in connection.execute(
            select(CALLBACKS.c.id, CALLBACKS.c.call_id, CALLBACKS.c.phone_number).where(
                CALLBACKS.c.phone_number.like(tail)
            )
        )
        if _same_number(row.phone_number, number)
    ]
    entries = [
        row
        for row in connection.execute(
            select(QUEUE.c.id, QUEUE.c.call_id, QUEUE.c.caller_number).where(QUEUE.c.caller_number.like(tail))
        )
        if _same_number(row.caller_number, number)
    ]
    call_ids = sorted({row.call_id for row in callbacks} | {row.call_id for row in entries})
    return Found(call_ids, sorted(row.id for row in callbacks), sorted(row.id for row in entries))


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def export(engine: Engine, number: str, *, now: float) -> dict[str, Any]:
    """The JSON document of GDPR Art. 15 for ``number``: its calls (the stored, redacted record), call-backs and
    queue entries."""
    with engine.connect() as connection:
        found = find(connection, number)
        calls = connection.execute(
            select(rows.CALLS)
            .where(rows.CALLS.c.call_id.in_(found.call_ids))
            .order_by(rows.CALLS.c.started_at)
        ).all()
        records = rows.read_records(connection, calls)
        callbacks = connection.execute(
            select(CALLBACKS).where(CALLBACKS.c.id.in_(found.callback_ids)).order_by(CALLBACKS.c.id)
        ).all()
        entries = connection.execute(
            select(QUEUE).where(QUEUE.c.id.in_(found.queue_entry_ids)).order_by(QUEUE.c.id)
        ).all()
    return {
        "number": number,
        "exported_at": now,
        "calls": records,
        "callbacks": [_plain(row) for row in callbacks],
        "queue_entries": [_plain(row) for row in entries],
    }


@dataclass(frozen=True)
class Deleted:
    calls: int = 0
    turns: int = 0
    events: int = 0
    queue_entries: int = 0
    callbacks: int = 0
    json_files: int = 0
    audit_entries: int = 0
    recordings: int = 0  # calls whose audio recording was deleted (privacy.recording, decision 0970)

    def counts(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.counts().values())


def _count(connection: Connection, table: Any, condition: Any) -> int:
    return int(connection.execute(select(func.count()).select_from(table).where(condition)).scalar_one())


def _delete_calls(connection: Connection, calls: Any, *, dry_run: bool) -> dict[str, int]:
    """Turns, events, queue entries, call-backs and the calls themselves of the call ids ``calls`` selects (a
    subquery, so that no list of ids grows with the table)."""
    counted = {
        "turns": _count(connection, rows.TURNS, rows.TURNS.c.call_id.in_(calls)),
        "events": _count(connection, rows.EVENTS, rows.EVENTS.c.call_id.in_(calls)),
        "queue_entries": _count(connection, QUEUE, QUEUE.c.call_id.in_(calls)),
        "callbacks": _count(connection, CALLBACKS, CALLBACKS.c.call_id.in_(calls)),
        "calls": _count(connection, rows.CALLS, rows.CALLS.c.call_id.in_(calls)),
    }
    if not dry_run:
        # A correction made from such a call stays (it is the knowledge base's history), the caller's words go
        # (first: ``calls`` selects from the calls deleted below).
        connection.execute(update(CORRECTIONS).where(CORRECTIONS.c.call_id.in_(calls)).values(question=""))
        for table in (rows.TURNS, rows.EVENTS, QUEUE, CALLBACKS):
            connection.execute(delete(table).where(table.c.call_id.in_(calls)))
        connection.execute(delete(rows.CALLS).where(rows.CALLS.c.call_id.in_(calls)))
    return counted


def erase(
    engine: Engine,
    number: str,
    calls_dir: Path,
    *,
    dry_run: bool = False,
    recordings_dir: Path | None = None,
) -> Deleted:
    """GDPR Art. 17 for ``number``: its calls with their turns, events, queue entries and call-backs (open ones
    too: the caller asked), the calls' JSON fallback files and their recordings (in ``recordings_dir``).
    ``dry_run`` counts only."""
    with writing(engine) as connection:
        found = find(connection, number)
        ids = select(rows.CALLS.c.call_id).where(rows.CALLS.c.call_id.in_(found.call_ids))
        counted = _delete_calls(connection, ids, dry_run=dry_run)
    files = JsonFileStore(calls_dir)
    removed = 0
    for call_id in found.call_ids:
        if not is_call_id(call_id):
            continue
        path = files.path_for(call_id)
        if path.is_file():
            removed += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    recordings = (
        0 if recordings_dir is None else delete_recordings_of(recordings_dir, found.call_ids, dry_run=dry_run)
    )
    return Deleted(**counted, json_files=removed, recordings=recordings)


# --- retention -----------------------------------------------------------------------------------------------


def retention(
    engine: Engine,
    privacy: PrivacySettings,
    calls_dir: Path,
    *,
    now: float,
    dry_run: bool = False,
    recordings_dir: Path | None = None,
) -> Deleted:
    """Delete what is past its period: call records (last change before ``now`` − ``transcript_days``) with their
    turns, events and queue entries, unless a call-back still kept belongs to the call; finished call-backs
    (finished before ``now`` − ``callback_days``; open and claimed ones never); audit entries older than
    ``audit_days``; JSON fallback files last written before the transcript period; recordings in ``recordings_dir``
    last written more than ``recording_days`` ago. ``dry_run`` counts only."""
    transcripts_before = now - privacy.transcript_days * DAY_S
    callbacks_before = now - privacy.callback_days * DAY_S
    finished = [CallbackStatus.DONE.value, CallbackStatus.FAILED.value]
    old_callback = CALLBACKS.c.status.in_(finished) & (
        func.coalesce(CALLBACKS.c.done_at, CALLBACKS.c.created_at) < callbacks_before
    )
    kept_callback = exists().where(CALLBACKS.c.call_id == rows.CALLS.c.call_id, ~old_callback)
    old_calls = select(rows.CALLS.c.call_id).where(
        rows.CALLS.c.updated_at < transcripts_before, ~kept_callback
    )
    with writing(engine) as connection:
        # The call ids first: deleting the old call-backs must not turn a kept call into an old one mid-way.
        call_ids = [row.call_id for row in connection.execute(old_calls)]
        counted = {"callbacks": _count(connection, CALLBACKS, old_callback)}
        if not dry_run:
            connection.execute(delete(CALLBACKS).where(old_callback))
        by_call = {"turns": 0, "events": 0, "queue_entries": 0, "calls": 0}
        for start in range(0, len(call_ids), 500):  # bounded statements on a large table
            chunk = call_ids[start : start + 500]
            part = _delete_calls(
                connection,
                select(rows.CALLS.c.call_id).where(rows.CALLS.c.call_id.in_(chunk)),
                dry_run=dry_run,
            )
            for name in by_call:  # its call-backs are all old ones, counted above
                by_call[name] += part[name]
        audit_old = AUDIT.c.at < now - privacy.audit_days * DAY_S
        audit_entries = _count(connection, AUDIT, audit_old)
        if not dry_run:
            connection.execute(delete(AUDIT).where(audit_old))
    json_files = _old_files(calls_dir, transcripts_before, dry_run=dry_run)
    recordings = (
        0
        if recordings_dir is None
        else delete_old_recordings(recordings_dir, privacy.recording_days, now=now, dry_run=dry_run)
    )
    deleted = Deleted(
        **by_call, **counted, json_files=json_files, audit_entries=audit_entries, recordings=recordings
    )
    logger.info(
        f"retention{' (dry run)' if dry_run else ''}: "
        + ", ".join(f"{name} {count}" for name, count in deleted.counts().items())
    )
    if not dry_run:
        audit(engine, "retention", "retention", "", deleted.counts(), now=now)
    return deleted


def _old_files(calls_dir: Path, before: float, *, dry_run: bool) -> int:
    count = 0
    if not calls_dir.is_dir():
        return 0
    for path in calls_dir.glob("*.json"):
        try:
            if path.stat().st_mtime >= before:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
        count += 1
    return count


# --- audit log ---------------------------------------------------------------------------------------------------


def audit(
    engine: Engine,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    *,
    now: float | None = None,
) -> None:
    with writing(engine) as connection:
        connection.execute(
            insert(AUDIT).values(
                at=time.time() if now is None else now,
                actor=actor[:96],
                action=action[:32],
                subject=subject[:128],
                details=details or {},
            )
        )


def audit_entries(engine: Engine, *, limit: int = 200, action: str | None = None) -> Sequence[Any]:
    """The newest entries first."""
    query = select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(max(1, limit))
    if action:
        query = query.where(AUDIT.c.action == action)
    with engine.connect() as connection:
        return connection.execute(query).all()
