"""Where call records (the transcript dicts of :class:`~voicebot.pipeline.transcript.CallTranscript`) are kept.

Every record is keyed by a call id the server mints (:func:`new_call_id`, ``call_<UTC time>_<random>``, sortable
by time); what a peer sent (the SIP Call-ID) is only a field of the record, so no caller chooses a file name or a
database key, nor overwrites another caller's record by re-using a Call-ID.

The process-wide store is :class:`voicebot.db.store.SqlCallRecordStore` (SQLite by default, PostgreSQL with
``database_url``): every turn and event is written when it happens, by a writer thread off the call's hot path.
``JsonFileStore`` writes ``<calls_dir>/<call_id>.json`` (temp file, then rename): the records of simulated calls
(``voicebot call`` and tests, kept apart from the citizens' calls), the database store's fallback while the
database cannot be written, and the files ``voicebot db import-json`` reads.

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


def checked_call_id(value: object) -> str:
    """``value`` if it is a server call id (:func:`is_call_id`), else ValueError."""
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
    """The process-wide store: the database (``database_url``, else the SQLite file ``paths.database_file``), with
    JSON files in ``paths.calls_dir`` as its fallback while the database cannot be written. Connects lazily:
    building it touches no database. The schema must be current (``voicebot serve`` upgrades it on start)."""
    from voicebot.db.engine import engine_from_settings
    from voicebot.db.store import SqlCallRecordStore

    return SqlCallRecordStore(engine_from_settings(settings), fallback_dir=settings.paths.calls_dir)


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
        path = self.calls_dir / f"{checked_call_id(call_id)}.json"
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
