"""Where call records (the transcript dicts of :class:`~voicebot.pipeline.transcript.CallTranscript`) are kept.

Every record is keyed by a call id the server mints (:func:`new_call_id`, ``call_<UTC time>_<random>``, sortable
by time); what a peer sent (the SIP Call-ID) is only a field of the record, so no caller chooses a file name or a
database key, nor overwrites another caller's record by re-using a Call-ID.

``JsonFileStore`` writes ``<calls_dir>/<call_id>.json`` (temp file, then rename) — the embedded default.
``PostgresStore`` upserts the whole record into one ``call_records`` row per call (psycopg 3). A record is saved
after every transcript change, on the call's hot path, so the store never talks to the database there: ``save``
only parks the newest version of the record (one slot per call id, so the queue is bounded by the number of live
calls and a burst of changes costs one write), and one writer thread per process upserts it over one connection.
A slow or dead database therefore cannot stall any call's audio. When the database is unreachable the writer logs
it once, writes that record as JSON into the fallback directory (and keeps doing so for that call, so the file is
complete), retries the database after a pause, and logs once more when it is back.

A process killed mid-call (``kill -9``, power loss) leaves records without an end; at ``voicebot serve``
start-up (:func:`close_interrupted_calls`, only there: a ``voicebot call`` or a simulation sharing the store
must not judge the server's calls) the records whose writer is gone are closed as ``interrupted`` at the time of
their last turn (:meth:`CallRecordStore.close_unfinished`). Each record names its writer (:func:`writer_process`):
host, boot id, pid, the process's start time and a random token of the process. A record of another host is
closed once it has not been written for an hour; one of this host when the host has rebooted since, or when no
process with that pid and that start time runs any more (so a pid reused by another process does not keep it
open). A process that shares host name, boot id and pid namespace with the writer but cannot see it (two
containers with the same host name) would take it for gone: that is why only ``serve`` closes records.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from voicebot.settings import Settings

Record = dict[str, Any]

# call_20261201T120842123Z_9f86d081884c: UTC time to the millisecond, then 48 random bits.
_CALL_ID = re.compile(r"call_\d{8}T\d{9}Z_[0-9a-f]{12}")
INTERRUPTED = "interrupted"  # ended_reason of a call whose process died before the call ended
# An unfinished record of another host is only closed once it has not been written for this long (that host may
# still be running the call; a live call writes its record at every turn and event).
FOREIGN_RECORD_STALE_S = 3600.0


def new_call_id(now: float | None = None) -> str:
    """A fresh server-side call id: sortable by start time, unguessable, safe as a file name and database key."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"call_{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z_{secrets.token_hex(6)}"


def is_call_id(value: object) -> bool:
    """Whether ``value`` has the exact form of :func:`new_call_id` (nothing a peer could have chosen)."""
    return isinstance(value, str) and _CALL_ID.fullmatch(value) is not None


def _checked_call_id(value: object) -> str:
    if not is_call_id(value):
        raise ValueError(f"not a server call id: {str(value)[:80]!r}")
    return str(value)


def printable(value: str, limit: int = 256) -> str:
    """``value`` as printable ASCII (anything else backslash-escaped), at most ``limit`` characters of it: a
    peer's identifier kept as a plain field can then break neither a JSON file, a jsonb column nor a log line."""
    text = "".join(
        char if " " <= char <= "~" else char.encode("unicode_escape", "backslashreplace").decode("ascii")
        for char in value[:limit]
    )
    return text if len(value) <= limit else f"{text}...(+{len(value) - limit})"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22); None if there is
    no such process (or no /proc). A pid and its start time name one process for the whole uptime."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may contain spaces and parentheses
    try:
        return int(fields[19])  # field 22, counting from the state (field 3)
    except (IndexError, ValueError):
        return None


_HOST, _BOOT = socket.gethostname(), _boot_id()
_TOKEN = secrets.token_hex(8)  # this process among all that ever wrote records (a pid is reused)


def writer_process() -> dict[str, Any]:
    """Which process writes a record (stored in it), so that a restart can tell a dead call from a live one."""
    pid = os.getpid()
    return {"host": _HOST, "boot": _BOOT, "pid": pid, "start": process_start_time(pid), "token": _TOKEN}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a value we cannot check: assume alive
    return True


def _writer_is_gone(record: Record, updated_at: float, now: float) -> bool:
    """Whether the process that wrote this unfinished record can no longer finish it."""
    writer = record.get("process")
    if not isinstance(writer, dict):
        return (
            True  # written before records named their process, by a version of the server no longer running
        )
    if writer.get("host") != _HOST:
        return now - updated_at > FOREIGN_RECORD_STALE_S
    if writer.get("boot") != _BOOT:
        return True  # the host has rebooted since
    pid, token, start = writer.get("pid"), writer.get("token"), writer.get("start")
    if token == _TOKEN:
        return False  # this very process writes it
    if not isinstance(pid, int):
        return True
    if token is None or start is None:  # written before records named the start time: the pid alone tells
        return pid == os.getpid() or not _process_alive(pid)
    return process_start_time(pid) != start  # gone, or its pid now belongs to another process


def interrupted_version(record: Record, updated_at: float, now: float) -> Record | None:
    """The record closed as ``interrupted`` if its call can no longer end by itself, else None.

    Its end time is that of the last turn or event (call times are relative to ``started_at``), or the time it
    was last written when it has neither."""
    if record.get("ended_reason") or not _writer_is_gone(record, updated_at, now):
        return None
    call_times = [
        value
        for item in (*record.get("turns", ()), *record.get("events", ()))
        if isinstance(item, dict)
        for value in (item.get("start_s"), item.get("end_s"), item.get("t"))
        if isinstance(value, int | float)
    ]
    started_at = record.get("started_at")
    if call_times and isinstance(started_at, int | float):
        ended_at = float(started_at) + max(call_times)
        last_t = max(call_times)
    else:
        ended_at = updated_at
        last_t = round(updated_at - started_at, 3) if isinstance(started_at, int | float) else 0.0
    events = [*record.get("events", ()), {"t": last_t, "kind": INTERRUPTED, "found_at": round(now, 3)}]
    return {**record, "ended_reason": INTERRUPTED, "ended_at": ended_at, "events": events}


class CallRecordStore(Protocol):
    """What the transcript needs to persist itself and what a supervisor view needs to read records."""

    def save(self, record: Record) -> None:
        """Keep this (complete) version of the record, replacing any earlier one with the same call id."""

    def get(self, call_id: str) -> Record | None: ...

    def recent(self, limit: int = 20) -> list[Record]:
        """The ``limit`` most recently updated records, newest first."""

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every saved record is written; False if that took longer than ``timeout_s``."""

    def close_unfinished(self) -> int:
        """Close the records of calls whose process died as ``interrupted``; how many were closed."""

    def close(self) -> None: ...


def build_record_store(settings: Settings) -> CallRecordStore:
    """The process-wide store: PostgreSQL when ``database_url`` is set (JSON files in ``calls_dir`` as its
    fallback), else JSON files."""
    if settings.database_url:
        url = settings.database_url.get_secret_value()
        return PostgresStore(url, fallback_dir=settings.paths.calls_dir)
    return JsonFileStore(settings.paths.calls_dir)


def close_interrupted_calls(store: CallRecordStore) -> int:
    """Close the records of calls killed with an earlier process (``voicebot serve`` start-up only, see the
    module docstring); how many were closed."""
    closed = store.close_unfinished()
    if closed:
        logger.warning(
            f"call records: {closed} call(s) of a process that ended mid-call marked {INTERRUPTED}"
        )
    return closed


class JsonFileStore:
    """One pretty-printed JSON file per call; synchronous (a small local write, well under a millisecond)."""

    def __init__(self, calls_dir: Path) -> None:
        self.calls_dir = Path(calls_dir)

    def path_for(self, call_id: str) -> Path:
        """``<calls_dir>/<call_id>.json``; ValueError for anything but a server call id, or a path outside."""
        path = self.calls_dir / f"{_checked_call_id(call_id)}.json"
        if path.resolve().parent != self.calls_dir.resolve():
            raise ValueError(f"call record path outside {self.calls_dir}: {path}")
        return path

    def save(self, record: Record) -> None:
        self._write(self.path_for(record["call_id"]), record)

    def _write(self, path: Path, record: Record) -> None:
        self.calls_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".json.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, call_id: str) -> Record | None:
        """The record, or None if there is none (or ``call_id`` is not a server call id)."""
        if not is_call_id(call_id):
            return None
        return _read_record(self.path_for(call_id))

    def recent(self, limit: int = 20) -> list[Record]:
        records = (_read_record(path) for path, _ in self._files()[:limit])
        return [record for record in records if record is not None]

    def _files(self) -> list[tuple[Path, float]]:
        """Every record file with its modification time, newest first."""
        found = []
        for path in self.calls_dir.glob("*.json"):
            try:
                found.append((path, path.stat().st_mtime))
            except FileNotFoundError:
                continue
        return sorted(found, key=lambda item: item[1], reverse=True)

    def close_unfinished(self) -> int:
        """Also records from before server call ids (named by the SIP Call-ID) are closed, in place."""
        now, closed = time.time(), 0
        for path, modified in self._files():
            record = _read_record(path)
            closed_record = interrupted_version(record, modified, now) if record is not None else None
            if closed_record is not None:
                self._write(path, closed_record)
                closed += 1
        return closed

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self) -> None:
        pass


def _read_record(path: Path) -> Record | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # gone meanwhile, or not a record (a torn legacy write)
        return None
    return record if isinstance(record, dict) else None


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

# Records written before they named their channel: the channel's own call id told it (SIP: the peer's Call-ID).
_CHANNEL_PREFIXES = {"web-": "webrtc", "sim-": "simulation"}


def channel_of(record: Record) -> str:
    """The record's ``channel``; for an old record without one, what its call id says (``web-``/``sim-``/SIP)."""
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
        self._select_unfinished = sql.SQL(
            "SELECT record, extract(epoch FROM updated_at) FROM {table} WHERE end_reason IS NULL"
        ).format(table=sql.Identifier(table))
        self._close_unfinished = sql.SQL(
            "UPDATE {table} SET end_reason = %s, ended_at = %s, record = %s WHERE call_id = %s "
            "AND end_reason IS NULL"
        ).format(table=sql.Identifier(table))
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
        call_id = _checked_call_id(record["call_id"])
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

    def close_unfinished(self) -> int:
        """Rows and fallback files alike; a database that cannot be reached is left for the next start."""
        from psycopg.types.json import Jsonb

        now, closed = time.time(), self.fallback.close_unfinished()
        for record, updated_at in self._rows(self._select_unfinished, ()) or []:
            if str(record.get("call_id")) in self._pending_ids():
                continue  # being written by this process right now
            closed_record = interrupted_version(record, float(updated_at or now), now)
            if closed_record is None:
                continue
            params = (
                INTERRUPTED,
                _timestamp(closed_record["ended_at"]),
                Jsonb(closed_record),
                str(record.get("call_id")),
            )
            if self._execute(self._close_unfinished, params):
                closed += 1
        return closed

    def _pending_ids(self) -> set[str]:
        with self._changed:
            return set(self._pending)

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
        """The first column of each row (a record); None if the database cannot be reached."""
        rows = self._rows(statement, params, fetch=fetch)
        return None if rows is None else [row[0] for row in rows]

    def _rows(self, statement: Any, params: tuple[Any, ...], *, fetch: bool = True) -> list[Any] | None:
        """Run one statement; None (and the outage logged once) if the database cannot be reached."""
        import psycopg

        with self._db_lock:
            if time.monotonic() < self._down_until:
                return None
            try:
                connection = self._connect()
                cursor = connection.execute(statement, params)
                rows = list(cursor.fetchall()) if fetch else []
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
