"""Where call records (the transcript dicts of :class:`~voicebot.pipeline.transcript.CallTranscript`) are kept.

``JsonFileStore`` writes ``<calls_dir>/<call_id>.json`` (temp file, then rename) — the embedded default.
``PostgresStore`` upserts the whole record into one ``call_records`` row per call (psycopg 3). A record is saved
after every transcript change, on the call's hot path, so the store never talks to the database there: ``save``
only parks the newest version of the record (one slot per call id, so the queue is bounded by the number of live
calls and a burst of changes costs one write), and one writer thread per process upserts it over one connection.
A slow or dead database therefore cannot stall any call's audio. When the database is unreachable the writer logs
it once, writes that record as JSON into the fallback directory (and keeps doing so for that call, so the file is
complete), retries the database after a pause, and logs once more when it is back.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from voicebot.settings import Settings

Record = dict[str, Any]


class CallRecordStore(Protocol):
    """What the transcript needs to persist itself and what a supervisor view needs to read records."""

    def save(self, record: Record) -> None:
        """Keep this (complete) version of the record, replacing any earlier one with the same call id."""

    def get(self, call_id: str) -> Record | None: ...

    def recent(self, limit: int = 20) -> list[Record]:
        """The ``limit`` most recently updated records, newest first."""

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every saved record is written; False if that took longer than ``timeout_s``."""

    def close(self) -> None: ...


def build_record_store(settings: Settings) -> CallRecordStore:
    """PostgreSQL when ``database_url`` is set (JSON files in ``calls_dir`` as its fallback), else JSON files."""
    if settings.database_url:
        return PostgresStore(settings.database_url.get_secret_value(), fallback_dir=settings.paths.calls_dir)
    return JsonFileStore(settings.paths.calls_dir)


class JsonFileStore:
    """One pretty-printed JSON file per call; synchronous (a small local write, well under a millisecond)."""

    def __init__(self, calls_dir: Path) -> None:
        self.calls_dir = Path(calls_dir)

    def path_for(self, call_id: str) -> Path:
        return self.calls_dir / f"{call_id}.json"

    def save(self, record: Record) -> None:
        path = self.path_for(record["call_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".json.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, call_id: str) -> Record | None:
        try:
            record: Record = json.loads(self.path_for(call_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return record

    def recent(self, limit: int = 20) -> list[Record]:
        def mtime(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except FileNotFoundError:
                return 0.0

        paths = sorted(self.calls_dir.glob("*.json"), key=mtime, reverse=True)
        records = (self.get(path.stem) for path in paths[:limit])
        return [record for record in records if record is not None]

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self) -> None:
        pass


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    call_id text PRIMARY KEY,
    started_at timestamptz,
    updated_at timestamptz,
    ended_at timestamptz,
    end_reason text,
    channel text,
    record jsonb NOT NULL
)"""

_UPSERT = """
INSERT INTO {table} AS old (call_id, started_at, updated_at, ended_at, end_reason, channel, record)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (call_id) DO UPDATE SET
    started_at = excluded.started_at,
    updated_at = excluded.updated_at,
    ended_at = COALESCE(old.ended_at, excluded.ended_at),
    end_reason = excluded.end_reason,
    channel = excluded.channel,
    record = excluded.record"""

# Call ids are minted by the channel that took the call; SIP uses the INVITE's Call-ID as it came.
_CHANNEL_PREFIXES = {"web-": "webrtc", "sim-": "simulation"}


def channel_of(record: Record) -> str:
    """The record's ``channel`` if it names one, else what its call id says (``web-``/``sim-``/SIP)."""
    if record.get("channel"):
        return str(record["channel"])
    call_id = str(record["call_id"])
    return next((name for prefix, name in _CHANNEL_PREFIXES.items() if call_id.startswith(prefix)), "sip")


class PostgresStore:
    """Call records in PostgreSQL: one row per call, written by a background thread (see the module docstring)."""

    def __init__(
        self,
        database_url: str,
        *,
        fallback_dir: Path,
        table: str = "call_records",
        connect_timeout_s: float = 3.0,
        retry_after_s: float = 10.0,
    ) -> None:
        try:
            from psycopg import sql
        except ImportError as error:
            raise RuntimeError(
                "database_url is set but psycopg is not installed: pip install 'voicebot[postgres]'"
            ) from error

        self.database_url = database_url
        self.fallback = JsonFileStore(fallback_dir)
        self.table = table
        self._connect_timeout_s = connect_timeout_s
        self._retry_after_s = retry_after_s
        self._create_table = sql.SQL(_CREATE_TABLE).format(table=sql.Identifier(table))
        self._upsert = sql.SQL(_UPSERT).format(table=sql.Identifier(table))
        self._select = sql.SQL("SELECT record FROM {table} ").format(table=sql.Identifier(table))
        self._connection: Any = None  # psycopg.Connection, opened on first use
        self._db_lock = threading.Lock()  # one statement at a time on the one connection
        self._down_until = 0.0  # monotonic time before which the database is not tried again
        self._down_logged = False
        self._fallen_back: set[str] = set()  # call ids whose record also lives in the fallback directory
        self._pending: dict[
            str, tuple[Record, float]
        ] = {}  # newest unsaved version per call id, with its time
        self._ended_at: dict[str, float] = {}  # first time a record was saved with an end reason
        self._changed = threading.Condition()
        self._writing = False
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="call-records", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    # --- the hot path -------------------------------------------------------------------------------------

    def save(self, record: Record) -> None:
        """Park the record for the writer thread (never blocks on the database)."""
        call_id = str(record["call_id"])
        now = time.time()
        with self._changed:
            if self._closed:  # a late change after shutdown: keep it as a file rather than lose it
                self.fallback.save(record)
                return
            if record.get("ended_reason"):
                self._ended_at.setdefault(call_id, now)
            self._pending[call_id] = (record, now)
            self._changed.notify_all()

    # --- reading (supervisors) -----------------------------------------------------------------------------

    def get(self, call_id: str) -> Record | None:
        with self._changed:
            pending = self._pending.get(call_id)
        if pending is not None:
            return pending[0]
        rows = self._query(self._select + _sql("WHERE call_id = %s"), (call_id,))
        if rows is None:
            return self.fallback.get(call_id)
        return rows[0] if rows else self.fallback.get(call_id)

    def recent(self, limit: int = 20) -> list[Record]:
        """Newest first, as written so far (call :meth:`flush` first to include what is still queued)."""
        rows = self._query(self._select + _sql("ORDER BY updated_at DESC, call_id LIMIT %s"), (limit,))
        return self.fallback.recent(limit) if rows is None else rows

    # --- lifecycle -----------------------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or not self._writer.is_alive():
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        """Write what is queued (up to ten seconds), stop the writer and close the connection. Idempotent."""
        atexit.unregister(self.close)
        if self._closed:
            return
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._writer.join(timeout=5.0)
        with self._db_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

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
                ended_at = self._ended_at.get(call_id)
                self._writing = True
            try:
                self._write(record, saved_at, ended_at)
            except Exception:  # a bug here must not kill the writer and silently stop all persistence
                logger.exception(f"call record {call_id}: could not be saved")
            finally:
                with self._changed:
                    self._writing = False
                    if record.get("ended_reason") and call_id not in self._pending:
                        self._ended_at.pop(call_id, None)
                    self._changed.notify_all()

    def _write(self, record: Record, saved_at: float, ended_at: float | None) -> None:
        from psycopg.types.json import Jsonb

        call_id = str(record["call_id"])
        params = (
            call_id,
            _timestamp(record.get("started_at")),
            _timestamp(saved_at),
            _timestamp(ended_at),
            record.get("ended_reason"),
            channel_of(record),
            Jsonb(record),
        )
        written = self._execute(self._upsert, params)
        if not written or call_id in self._fallen_back:
            self._fallen_back.add(call_id)
            self.fallback.save(record)

    def _execute(self, statement: Any, params: tuple[Any, ...]) -> bool:
        return self._query(statement, params, fetch=False) is not None

    def _query(self, statement: Any, params: tuple[Any, ...], *, fetch: bool = True) -> list[Record] | None:
        """Run one statement; None (and the outage logged once) if the database cannot be reached."""
        import psycopg

        with self._db_lock:
            if time.monotonic() < self._down_until:
                return None
            try:
                connection = self._connect()
                cursor = connection.execute(statement, params)
                rows = [row[0] for row in cursor.fetchall()] if fetch else []
            except (psycopg.Error, OSError) as error:
                self._mark_down(error)
                return None
            if self._down_logged:
                logger.info(f"call records: PostgreSQL is reachable again; writing to table {self.table}")
                self._down_logged = False
            return rows

    def _connect(self) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            connection = psycopg.connect(
                self.database_url,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout_s)),
                application_name="voicebot-call-records",
            )
            connection.execute(self._create_table)
            self._connection = connection
        return self._connection

    def _mark_down(self, error: Exception) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._down_until = time.monotonic() + self._retry_after_s
        if not self._down_logged:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            logger.error(
                f"call records: PostgreSQL unreachable ({reason}); writing JSON files to "
                f"{self.fallback.calls_dir} until it is back"
            )
            self._down_logged = True


def _sql(text: str) -> Any:
    from psycopg import sql

    return sql.SQL(text)


def _timestamp(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None
