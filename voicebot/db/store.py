"""``SqlCallRecordStore``: call records in the database, each turn and event written when it happens.

A record is saved after every transcript change, on the call's hot path, so ``save`` never talks to the
database: it parks the newest version of the record (one slot per call id, so the queue is bounded by the number
of live calls and a burst of changes costs one write), and one writer thread per process writes it. The writer
remembers what it wrote last for each live call and writes only the difference — new turns and events inserted,
a turn that changed (the bot's answer growing sentence by sentence, its end) updated by ``(call_id, idx)`` — in
one transaction. A ``kill -9`` therefore loses at most the change in flight.

When the database cannot be reached (or has no schema), the writer logs it once, writes that record as JSON into
the fallback directory (and keeps doing so for that call, so the file is complete), retries the database after
a pause, and logs once more when it is back; ``voicebot db import-json`` brings such files in later.
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from voicebot.db import rows
from voicebot.db.engine import describe, writing
from voicebot.db.models import QueueEntry, QueueStatus
from voicebot.records import INTERRUPTED, JsonFileStore, Record, checked_call_id, interrupted_version


class SqlCallRecordStore:
    """The :class:`~voicebot.records.CallRecordStore` over SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, fallback_dir: Path, retry_after_s: float = 10.0) -> None:
        self.engine = engine
        self.fallback = JsonFileStore(fallback_dir)
        self._retry_after_s = retry_after_s
        self._down_until = 0.0  # monotonic time before which the database is not tried again
        self._down_logged = False
        self._fallen_back: set[str] = set()  # live calls whose record also lives in the fallback directory
        # What the writer wrote last per live call: (turns, events); dropped once the call has ended.
        self._written: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        # The newest unsaved version per call id, with the time it was saved.
        self._pending: dict[str, tuple[Record, float]] = {}
        self._changed = threading.Condition()
        self._writing = False
        self._in_flight: Record | None = None  # the version the writer is writing now
        self._closed = False
        self._writer: threading.Thread | None = None  # started by the first save (a reader needs none)
        atexit.register(self.close)

    # --- the hot path -------------------------------------------------------------------------------------

    def save(self, record: Record) -> None:
        """Park the record for the writer thread (never blocks on the database)."""
        call_id = checked_call_id(record["call_id"])
        with self._changed:
            if self._closed:  # a late change after shutdown: keep it as a file rather than lose it
                self.fallback.save(record)
                return
            self._pending[call_id] = (record, time.time())
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="call-records", daemon=True)
                self._writer.start()
            self._changed.notify_all()

    # --- reading ---------------------------------------------------------------------------------------------

    def get(self, call_id: str) -> Record | None:
        with self._changed:
            pending = self._pending.get(call_id)
            if pending is None and self._in_flight is not None and self._in_flight["call_id"] == call_id:
                return self._in_flight  # being written: the database may not have it yet
        if pending is not None:
            return pending[0]
        try:
            with self.engine.connect() as connection:
                call = connection.execute(select(rows.CALLS).where(rows.CALLS.c.call_id == call_id)).first()
                found = rows.read_records(connection, [call]) if call is not None else []
        except SQLAlchemyError:
            return self.fallback.get(call_id)
        return found[0] if found else self.fallback.get(call_id)

    def recent(self, limit: int = 20) -> list[Record]:
        """Newest first, as written so far (call :meth:`flush` first to include what is still queued)."""
        query = (
            select(rows.CALLS)
            .order_by(rows.CALLS.c.updated_at.desc(), rows.CALLS.c.call_id)
            .limit(max(0, limit))
        )
        try:
            with self.engine.connect() as connection:
                return rows.read_records(connection, connection.execute(query).all())
        except SQLAlchemyError:
            return self.fallback.recent(limit)

    def unsaved(self) -> int:
        """How many records have changes not yet written (parked or being written)."""
        with self._changed:
            return len(self._pending) + (1 if self._writing else 0)

    # --- lifecycle -----------------------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or self._writer is None or not self._writer.is_alive():
                    return False
                self._changed.wait(left)
        return True

    def close_unfinished(self) -> int:
        """Rows and fallback files alike; a database that cannot be reached is left for the next start. A closed
        call's queue entries still waiting for staff are marked abandoned."""
        now, closed = time.time(), self.fallback.close_unfinished()
        unfinished = select(rows.CALLS).where(rows.CALLS.c.ended_reason.is_(None))
        try:
            with self.engine.connect() as connection:
                call_rows = connection.execute(unfinished).all()
                read = rows.read_records(connection, call_rows)
                records = [
                    (record, float(row.updated_at)) for row, record in zip(call_rows, read, strict=True)
                ]
        except SQLAlchemyError as error:
            self._mark_down(error)
            return closed
        with self._changed:
            busy = set(self._pending) | set(self._written)
        for record, updated_at in records:
            if record["call_id"] in busy:
                continue  # being written by this process right now
            closed_record = interrupted_version(record, updated_at, now)
            if closed_record is not None and self._close_row(closed_record):
                closed += 1
        return closed

    def _close_row(self, record: Record) -> bool:
        call_id = str(record["call_id"])
        events = rows.items(record, "events")
        try:
            with writing(self.engine) as connection:
                result = connection.execute(
                    update(rows.CALLS)
                    .where(rows.CALLS.c.call_id == call_id, rows.CALLS.c.ended_reason.is_(None))
                    .values(ended_reason=INTERRUPTED, ended_at=record["ended_at"])
                )
                if result.rowcount != 1:
                    return False  # closed meanwhile by someone else
                rows.upsert(connection, rows.EVENTS, [rows.event_row(call_id, len(events) - 1, events[-1])])
                # A caller who was waiting for staff when the process died is gone: the wait ended, unanswered.
                connection.execute(
                    update(QueueEntry)
                    .where(
                        QueueEntry.call_id == call_id,
                        QueueEntry.status.in_([QueueStatus.WAITING.value, QueueStatus.OFFERED.value]),
                    )
                    .values(status=QueueStatus.ABANDONED.value, ended_at=record["ended_at"])
                )
        except SQLAlchemyError as error:
            self._mark_down(error)
            return False
        return True

    def close(self) -> None:
        """Write what is queued (up to ten seconds), stop the writer and release the connections. Idempotent."""
        atexit.unregister(self.close)
        if self._closed:
            return
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=5.0)
        self.engine.dispose()

    # --- the writer thread ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if not self._pending:
                    return
                call_id = next(iter(self._pending))
                record, saved_at = self._pending.pop(call_id)
                self._writing = True
                self._in_flight = record
            try:
                self._write(record, saved_at)
            except Exception:  # a bug here must not kill the writer and silently stop all persistence
                logger.exception(f"call record {call_id}: could not be saved")
                self._written.pop(call_id, None)
            finally:
                with self._changed:
                    self._writing = False
                    self._in_flight = None
                    self._changed.notify_all()

    def _write(self, record: Record, saved_at: float) -> None:
        call_id = str(record["call_id"])
        written = self._written.pop(call_id, None)
        stored = False
        if time.monotonic() >= self._down_until:
            try:
                with writing(self.engine) as connection:
                    if written is None:
                        rows.write_whole(connection, record, saved_at)
                    else:
                        rows.write_changes(connection, record, saved_at, *written)
                stored = True
            except SQLAlchemyError as error:
                self._mark_down(error)
        if stored:
            if self._down_logged:
                logger.info(
                    f"call records: the database is reachable again ({describe(str(self.engine.url))})"
                )
                self._down_logged = False
            if not record.get("ended_reason"):  # a late change after the end rewrites the whole record
                self._written[call_id] = (
                    [dict(turn) for turn in rows.items(record, "turns")],
                    [dict(event) for event in rows.items(record, "events")],
                )
        if not stored or call_id in self._fallen_back:
            self._fallen_back.add(call_id)
            self.fallback.save(record)
            if record.get("ended_reason"):
                self._fallen_back.discard(
                    call_id
                )  # its file is complete; the set stays bounded by live calls

    def _mark_down(self, error: Exception) -> None:
        self._down_until = time.monotonic() + self._retry_after_s
        if not self._down_logged:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            logger.error(
                f"call records: database {describe(str(self.engine.url))} unusable ({reason}); writing JSON "
                f"files to {self.fallback.calls_dir} until it is back (a missing table: voicebot db upgrade)"
            )
            self._down_logged = True
