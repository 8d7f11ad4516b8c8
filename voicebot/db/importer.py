"""``voicebot db import-json``: call records kept as JSON files (``var/calls/*.json``, the store's fallback
files) into the database.

Idempotent: a call already in the database is left as it is. A file that is not a call record is reported by
name and skipped. A record from before server call ids (keyed by the peer's SIP Call-ID) gets a server-form id
derived from its file name and start time — the same on every run — and keeps the old one as
``legacy_call_id``, escaped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from voicebot.db import rows
from voicebot.records import Record, is_call_id, printable


@dataclass
class ImportReport:
    imported: int = 0
    already_there: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)


def _legacy_id(path: Path, record: Record, modified: float) -> str:
    started = record.get("started_at")
    moment = datetime.fromtimestamp(started if isinstance(started, int | float) else modified, UTC)
    digest = hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
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


def import_json_dir(engine: Engine, directory: Path) -> ImportReport:
    """Import every ``*.json`` file directly in ``directory`` (sorted by name), one transaction per record."""
    report = ImportReport()
    for path in sorted(directory.glob("*.json")):
        record, problem = _read(path)
        if record is None:
            report.bad.append((path.name, problem))
            continue
        modified = path.stat().st_mtime
        if not is_call_id(record["call_id"]):
            legacy = printable(str(record["call_id"]))
            record = {**record, "call_id": _legacy_id(path, record, modified), "legacy_call_id": legacy}
        record.setdefault("turns", [])
        record.setdefault("events", [])
        with engine.begin() as connection:
            exists = connection.execute(
                select(rows.CALLS.c.call_id).where(rows.CALLS.c.call_id == record["call_id"])
            ).first()
            if exists is not None:
                report.already_there += 1
                continue
            rows.write_whole(connection, record, modified)
        report.imported += 1
    return report
