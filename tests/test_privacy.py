"""Retention, export and erasure by number, the audit log (voicebot/privacy/data.py) on SQLite and PostgreSQL,
with an injected clock; ``voicebot privacy`` and ``voicebot retention`` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from sqlalchemy import Engine, select

from voicebot.db import rows
from voicebot.db.engine import writing
from voicebot.db.models import CallbackStatus
from voicebot.db.repository import Repository
from voicebot.privacy import data
from voicebot.privacy.data import DAY_S, NumberError, normalise_number
from voicebot.privacy.recordings import recording_path
from voicebot.records import JsonFileStore, new_call_id
from voicebot.settings import PrivacySettings

NOW = 1_800_000_000.0  # the injected clock: 2027-01-15
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:  # noqa: F811
    made = database.engine()
    yield made
    made.dispose()


def _call(engine: Engine, days_ago: float, text: str = "Wann hat das Bürgerbüro offen?") -> str:
    """A finished call whose last change was ``days_ago`` days before NOW, with one turn and one event."""
    at = NOW - days_ago * DAY_S
    call_id = new_call_id(at)
    record = {
        "call_id": call_id,
        "channel": "sip",
        "started_at": at - 60,
        "ended_at": at,
        "ended_reason": "hangup",
        "turns": [{"role": "caller", "kind": "question", "text": text, "start_s": 1.0}],
        "events": [{"t": 2.0, "kind": "barge_in"}],
    }
    with writing(engine) as connection:
        rows.write_whole(connection, record, at)
    return call_id


def _ids(engine: Engine, table: Any, column: str = "call_id") -> set[Any]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(select(table.c[column]))}


def test_retention_deletes_exactly_what_is_past_its_period(engine: Engine, tmp_path: Path) -> None:
    at = {"clock": NOW}
    repository = Repository(engine, clock=lambda: at["clock"])
    old, fresh, edge_kept = _call(engine, 31), _call(engine, 29), _call(engine, 29.99)
    with_open_callback, with_recent_callback, with_old_callback = (
        _call(engine, 90),
        _call(engine, 40),
        _call(engine, 40),
    )
    # Queue entries go with their call.
    repository.enqueue(old, "buergerbuero", "asked", caller_number="01711111111")
    repository.enqueue(fresh, "buergerbuero", "asked", caller_number="01712222222")
    # An open call-back is never deleted (nor its call); a finished one goes 30 days after it was finished.
    at["clock"] = NOW - 90 * DAY_S
    open_callback = repository.add_callback(with_open_callback, "buergerbuero", "01713333333", NOW)
    staff = repository.add_staff_user("erika", "hash")
    at["clock"] = NOW - 40 * DAY_S
    recent = repository.add_callback(with_recent_callback, "buergerbuero", "01714444444", NOW)
    finished_old = repository.add_callback(with_old_callback, "buergerbuero", "01715555555", NOW)
    for callback, finished_days_ago in ((recent, 10), (finished_old, 31)):
        assert repository.claim_callback(callback.id, staff.id)
        at["clock"] = NOW - finished_days_ago * DAY_S
        assert repository.finish_callback(callback.id, staff.id, CallbackStatus.DONE, "erreicht")
    data.audit(engine, "console:erika", "view_transcript", old, now=NOW - 400 * DAY_S)
    data.audit(engine, "console:erika", "view_transcript", fresh, now=NOW - 300 * DAY_S)
    # JSON fallback files: the old one goes, the fresh one stays.
    files = JsonFileStore(tmp_path / "calls")
    for call_id, days_ago in ((old, 31), (fresh, 29)):
        files.save({"call_id": call_id, "turns": []})
        os.utime(files.path_for(call_id), (NOW - days_ago * DAY_S,) * 2)
    # Recordings: kept privacy.recording_days (7) after they were last written, whatever their call's record.
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for call_id, days_ago in ((old, 8), (fresh, 6.9)):
        for track in ("anrufer", "bot"):
            wav = recording_path(recordings, call_id, track)
            wav.write_bytes(b"RIFF" + bytes(100))
            os.utime(wav, (NOW - days_ago * DAY_S,) * 2)

    privacy = PrivacySettings()
    dry = data.retention(
        engine, privacy, tmp_path / "calls", now=NOW, dry_run=True, recordings_dir=recordings
    )
    expected = {
        "calls": 2,  # old, with_old_callback
        "turns": 2,
        "events": 2,
        "queue_entries": 1,
        "callbacks": 1,
        "json_files": 1,
        "audit_entries": 1,
        "recordings": 1,
    }
    assert dry.counts() == expected
    assert len(_ids(engine, rows.CALLS)) == 6 and files.path_for(old).is_file()  # a dry run changes nothing

    assert len(list(recordings.iterdir())) == 4
    deleted = data.retention(engine, privacy, tmp_path / "calls", now=NOW, recordings_dir=recordings)
    assert deleted.counts() == expected
    assert sorted(path.name for path in recordings.iterdir()) == [f"{fresh}-anrufer.wav", f"{fresh}-bot.wav"]
    assert _ids(engine, rows.CALLS) == {fresh, edge_kept, with_open_callback, with_recent_callback}
    assert _ids(engine, rows.TURNS) == _ids(engine, rows.EVENTS) == _ids(engine, rows.CALLS)
    assert _ids(engine, data.QUEUE) == {fresh}
    assert _ids(engine, data.CALLBACKS, "id") == {open_callback.id, recent.id}
    assert not files.path_for(old).exists() and files.path_for(fresh).is_file()
    (run,) = data.audit_entries(engine, action="retention")
    assert run.actor == "retention" and run.details == expected and run.at == NOW
    assert [entry.subject for entry in data.audit_entries(engine, action="view_transcript")] == [fresh]
    # A second run finds nothing more.
    assert data.retention(engine, privacy, tmp_path / "calls", now=NOW).total == 0


def test_export_and_erase_by_number(engine: Engine, tmp_path: Path) -> None:
    repository = Repository(engine, clock=lambda: NOW)
    queued, called_back, other = _call(engine, 1), _call(engine, 2), _call(engine, 3)
    repository.enqueue(queued, "buergerbuero", "asked", caller_number="+491712345678")
    repository.add_callback(called_back, "buergerbuero", "01712345678", NOW + DAY_S, topic="Wohngeld")
    repository.enqueue(other, "buergerbuero", "asked", caller_number="01719999999")
    files = JsonFileStore(tmp_path / "calls")
    files.save({"call_id": queued, "turns": []})
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for call_id in (queued, other):
        recording_path(recordings, call_id, "anrufer").write_bytes(b"RIFF" + bytes(100))

    number = normalise_number("+49 171 2345678")
    exported = data.export(engine, number, now=NOW)
    assert [record["call_id"] for record in exported["calls"]] == [called_back, queued]  # oldest first
    assert exported["calls"][0]["turns"][0]["text"] == "Wann hat das Bürgerbüro offen?"
    assert [c["topic"] for c in exported["callbacks"]] == ["Wohngeld"]
    assert [e["caller_number"] for e in exported["queue_entries"]] == ["+491712345678"]
    json.dumps(exported)  # a JSON document as it is

    counted = data.erase(engine, number, tmp_path / "calls", dry_run=True, recordings_dir=recordings)
    assert counted.counts() == {
        "calls": 2,
        "turns": 2,
        "events": 2,
        "queue_entries": 1,
        "callbacks": 1,
        "json_files": 1,
        "audit_entries": 0,
        "recordings": 1,
    }
    assert data.erase(engine, number, tmp_path / "calls", recordings_dir=recordings) == counted
    assert [path.name for path in recordings.iterdir()] == [f"{other}-anrufer.wav"]
    assert _ids(engine, rows.CALLS) == _ids(engine, rows.TURNS) == {other}
    assert not files.path_for(queued).exists()
    assert data.export(engine, number, now=NOW)["calls"] == []


@pytest.mark.parametrize(
    ("given", "normalised"),
    [("+49 171 2345678", "01712345678"), ("0049171/2345678", "01712345678"), ("+43 1 234567", "00431234567")],
)
def test_numbers_are_normalised(given: str, normalised: str) -> None:
    assert normalise_number(given) == normalised


@pytest.mark.parametrize("given", ["12345", "0171 abc", "", "+49" + "1" * 40])
def test_a_bad_number_is_refused(given: str) -> None:
    with pytest.raises(NumberError):
        normalise_number(given)


def _voicebot(args: list[str], database_file: Path, calls_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    environment.update(
        PYTHONPATH=str(REPO_ROOT),
        VOICEBOT_PATHS__DATABASE_FILE=str(database_file),
        VOICEBOT_PATHS__CALLS_DIR=str(calls_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=REPO_ROOT,
    )


def test_privacy_and_retention_commands(tmp_path: Path) -> None:
    from voicebot.db import migrate
    from voicebot.db.engine import make_engine

    database_file, calls_dir = tmp_path / "voicebot.db", tmp_path / "calls"
    engine = make_engine(f"sqlite:///{database_file}")
    try:
        migrate.upgrade(engine)
        call_id = _call(engine, 1)
        Repository(engine).enqueue(call_id, "buergerbuero", "asked", caller_number="01712345678")
    finally:
        engine.dispose()

    bad = _voicebot(["privacy", "export", "--number", "0171-abc"], database_file, calls_dir)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: Rufnummer bitte nur mit Ziffern angeben, z. B. +491712345678 oder 01712345678"
    ]
    exported = _voicebot(["privacy", "export", "--number", "+491712345678"], database_file, calls_dir)
    assert exported.returncode == 0, exported.stderr
    assert [record["call_id"] for record in json.loads(exported.stdout)["calls"]] == [call_id]
    deleted = _voicebot(["privacy", "delete", "--number", "01712345678", "--yes"], database_file, calls_dir)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "Gelöscht: calls 1, turns 1, events 1, queue_entries 1"
    retention = _voicebot(["retention", "run", "--dry-run"], database_file, calls_dir)
    assert retention.returncode == 0 and retention.stdout.strip() == "Würde löschen: nichts", retention.stderr
    logged = _voicebot(["privacy", "audit", "--json"], database_file, calls_dir)
    entries = [json.loads(line) for line in logged.stdout.splitlines()]
    assert [(e["action"], e["subject"], e["actor"].startswith("cli")) for e in entries] == [
        ("delete", "0171…78", True),
        ("export", "0171…78", True),
    ]
    assert entries[0]["details"]["calls"] == 1 and "01712345678" not in logged.stdout


def test_the_serve_job_runs_retention_on_start_and_again(tmp_path: Path) -> None:
    import asyncio

    from voicebot.db import migrate
    from voicebot.db.engine import make_engine
    from voicebot.privacy.job import run_retention_job
    from voicebot.settings import Settings

    engine = make_engine(f"sqlite:///{tmp_path / 'voicebot.db'}")
    try:
        migrate.upgrade(engine)
        old = _call(engine, 31)
        settings = Settings(
            privacy={"retention_interval_h": 0.00001}, paths={"calls_dir": tmp_path / "calls"}
        )
        asyncio.run(asyncio.wait_for(run_retention_job(engine, settings, clock=lambda: NOW, max_runs=2), 30))
        assert old not in _ids(engine, rows.CALLS)
        runs = data.audit_entries(engine, action="retention")
        assert [run.details["calls"] for run in runs] == [0, 1]  # newest first: the second run found nothing
    finally:
        engine.dispose()
