"""``voicebot db import-json``: call records kept as JSON files (``var/calls/*.json``, the store's fallback
files) or, with ``--table``, as the jsonb rows of earlier versions (``call_records``), into the database.

Idempotent: a call already in the database is left as it is. A file that is not a call record is reported by
name and skipped. A record from before server call ids (keyed by the peer's SIP Call-ID) gets a server-form id
derived from its file name (or row key) and start time — the same on every run — and keeps the old one as
``legacy_call_id``, escaped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, inspect, select, text

from voicebot.db import rows
from voicebot.db.engine import writing
from voicebot.records import Record, is_call_id, printable


@dataclass
class ImportReport:
    imported: int = 0
    already_there: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)


def _legacy_id(name: str, record: Record, modified: float) -> str:
    started = record.get("started_at")
    moment = datetime.fromtimestamp(started if isinstance(started, int | float) else modified, UTC)
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"call_{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z_{digest}"


def _read(path: Path) -> tuple[Record | None, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as error:
        return None, f"not JSON ({error})"
    except OSError as error:
        return None, f"cannot be read ({error.strerror})"
    if not isinstance(data, dict) or "call_id" not in data:
        return None, "not a call record (no call_id)"
    if not isinstance(data.get("turns", []), list) or not isinstance(data.get("events", []), list):
        return None, "not a call record (turns/events are not lists)"
    return data, ""


def _import(engine: Engine, report: ImportReport, record: Record, updated_at: float, name: str) -> None:
    """One record, in its own transaction; a call already in the database is left as it is."""
    if not is_call_id(record["call_id"]):
        legacy = printable(str(record["call_id"]))
        record = {**record, "call_id": _legacy_id(name, record, updated_at), "legacy_call_id": legacy}
    record.setdefault("turns", [])
    record.setdefault("events", [])
    with writing(engine) as connection:
        exists = connection.execute(
            select(rows.CALLS.c.call_id).where(rows.CALLS.c.call_id == record["call_id"])
        ).first()
        if exists is not None:
            report.already_there += 1
            return
        rows.write_whole(connection, record, updated_at)
    report.imported += 1


def import_json_dir(engine: Engine, directory: Path) -> ImportReport:
    """Import every ``*.json`` file directly in ``directory`` (sorted by name), one transaction per record."""
    report = ImportReport()
    for path in sorted(directory.glob("*.json")):
        record, problem = _read(path)
        if record is None:
            report.bad.append((path.name, problem))
            continue
        _import(engine, report, record, path.stat().st_mtime, path.name)
    return report


_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def import_jsonb_table(engine: Engine, table: str = "call_records") -> ImportReport:
    """Import the rows of the jsonb table of earlier versions (PostgreSQL: ``call_records``, one whole record
    per row) from the same database. ValueError for a table name that is not a plain identifier or not there."""
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"{table!r} is not a table name (lower-case letters, digits, underscores)")
    if table not in inspect(engine).get_table_names():
        raise ValueError(f"the database has no table {table!r} to import")
    report = ImportReport()
    query = text(f'SELECT call_id, record, updated_at FROM "{table}" ORDER BY call_id')  # name checked above
    with engine.connect() as connection:
        found = connection.execute(query).all()
    for call_id, record, updated_at in found:
        if not isinstance(record, dict) or "call_id" not in record:
            report.bad.append((str(call_id), "not a call record (no call_id)"))
            continue
        when = updated_at.timestamp() if hasattr(updated_at, "timestamp") else time.time()
        _import(engine, report, record, when, str(call_id))
    return report
