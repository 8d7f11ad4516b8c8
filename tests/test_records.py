"""Call records: JSON files, and the real PostgreSQL on 127.0.0.1:5432 (``VOICEBOT_TEST_DATABASE_URL``).

Each test gets its own table (dropped afterwards), so runs never see each other's rows.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from loguru import logger

from voicebot.pipeline.transcript import CallTranscript
from voicebot.records import JsonFileStore, PostgresStore, build_record_store
from voicebot.settings import PathSettings, Settings

DATABASE_URL = os.environ.get("VOICEBOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def table() -> Iterator[str]:
    """A fresh table name; the database must be up (scripts/test starts it), else the test fails saying so."""
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3):
            pass
    except psycopg.Error as error:
        pytest.fail(
            f"PostgreSQL not reachable at {DATABASE_URL} ({error}); start it (scripts/test does: "
            "pg_ctlcluster/service postgresql start) or set VOICEBOT_TEST_DATABASE_URL"
        )
    name = f"call_records_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        connection.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


@pytest.fixture
def store(table: str, tmp_path: Path) -> Iterator[PostgresStore]:
    postgres = PostgresStore(DATABASE_URL, fallback_dir=tmp_path / "fallback", table=table)
    yield postgres
    postgres.close()


def _rows(table: str) -> list[tuple[Any, ...]]:
    query = psycopg.sql.SQL(
        "SELECT call_id, started_at, ended_at, end_reason, channel, record FROM {} ORDER BY call_id"
    ).format(psycopg.sql.Identifier(table))
    with psycopg.connect(DATABASE_URL) as connection:
        return list(connection.execute(query).fetchall())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_transcript_is_upserted_into_one_row_as_it_grows(store: PostgresStore, table: str) -> None:
    transcript = CallTranscript("web-abc123", store=store)
    assert store.flush()
    assert [row[0] for row in _rows(table)] == ["web-abc123"]

    greeting = transcript.add_bot_turn("greeting", "Guten Tag, hier ist die Stadt Musterstadt.")
    transcript.bot_turn_played(transcript.index_of(greeting))
    transcript.add_caller_dtmf("0")
    assert store.flush()
    (row,) = _rows(table)
    _, started_at, ended_at, end_reason, channel, record = row
    assert record == transcript.to_dict()
    assert [turn["kind"] for turn in record["turns"]] == ["greeting", "dtmf"]
    assert ended_at is None and end_reason is None and channel == "webrtc"
    assert started_at.timestamp() == pytest.approx(transcript.started_at, abs=1e-3)

    transcript.end("goodbye")
    assert store.flush()
    (row,) = _rows(table)
    assert row[3] == "goodbye" and row[2] is not None and row[2] >= row[1]
    transcript.add_event("late_event")  # a change after the end keeps the first end time
    assert store.flush()
    (later,) = _rows(table)
    assert later[2] == row[2] and later[5]["events"][-1]["kind"] == "late_event"
    assert store.get("web-abc123") == transcript.to_dict()
    assert not (store.fallback.calls_dir / "web-abc123.json").exists()  # the database took it


def test_get_and_recent_read_back_newest_first(store: PostgresStore) -> None:
    transcripts = [CallTranscript(f"sim-{n}", store=store) for n in range(4)]
    for transcript in transcripts:
        transcript.add_bot_turn("greeting", f"Anruf {transcript.call_id}")
        assert store.flush()  # one at a time, so that their update times are ordered
    assert [record["call_id"] for record in store.recent(3)] == ["sim-3", "sim-2", "sim-1"]
    assert store.recent(3)[0]["turns"][0]["text"] == "Anruf sim-3"
    record = store.get("sim-0")
    assert record is not None and record["turns"][0]["text"] == "Anruf sim-0"
    assert store.get("no-such-call") is None


def test_concurrent_calls_save_from_many_threads(store: PostgresStore, table: str) -> None:
    calls_per_thread, changes_per_call = 3, 25
    transcripts: list[CallTranscript] = []
    lock = threading.Lock()

    def one_thread(thread: int) -> None:
        for call in range(calls_per_thread):
            transcript = CallTranscript(f"t{thread}-c{call}", store=store)
            with lock:
                transcripts.append(transcript)
            for change in range(changes_per_call):
                transcript.add_event("tick", n=change)
            transcript.end("hangup")

    threads = [threading.Thread(target=one_thread, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.flush()

    rows = _rows(table)
    assert len(rows) == len(transcripts) == 6 * calls_per_thread
    by_id = {row[0]: row for row in rows}
    for transcript in transcripts:
        row = by_id[transcript.call_id]
        assert row[5] == transcript.to_dict()  # the newest version won
        assert len(row[5]["events"]) == changes_per_call and row[3] == "hangup"
    assert not store.fallback.calls_dir.exists()


def test_database_down_keeps_the_call_going_with_a_json_fallback(tmp_path: Path) -> None:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="ERROR")
    down = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{_closed_port()}/test",
        fallback_dir=tmp_path,
        connect_timeout_s=2,
        retry_after_s=0.0,  # try the database on every write: still one log line for the whole outage
    )
    try:
        first, second = CallTranscript("sip-down-1", store=down), CallTranscript("sip-down-2", store=down)
        for transcript in (first, second):
            transcript.add_bot_turn("greeting", "Guten Tag.")
            assert down.flush()
            transcript.add_caller_dtmf("5")
            transcript.end("hangup")
        assert down.flush()
        for transcript in (first, second):
            on_disk = json.loads((tmp_path / f"{transcript.call_id}.json").read_text(encoding="utf-8"))
            assert on_disk == transcript.to_dict()
            assert down.get(transcript.call_id) == transcript.to_dict()
        assert {record["call_id"] for record in down.recent()} == {"sip-down-1", "sip-down-2"}
    finally:
        down.close()
        logger.remove(sink)
    outage_logs = [message for message in messages if "PostgreSQL unreachable" in message]
    assert len(outage_logs) == 1, messages


def test_a_failed_write_falls_back_and_the_next_one_reaches_the_database_again(
    table: str, tmp_path: Path
) -> None:
    store = PostgresStore(DATABASE_URL, fallback_dir=tmp_path, table=table, retry_after_s=0.0)
    try:
        transcript = CallTranscript("sip-flaky", store=store)
        assert store.flush()
        with psycopg.connect(DATABASE_URL, autocommit=True) as connection:  # the write after this one fails
            connection.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(table)))
        transcript.add_bot_turn("greeting", "Guten Tag.")
        assert store.flush()
        assert json.loads((tmp_path / "sip-flaky.json").read_text(encoding="utf-8")) == transcript.to_dict()
        transcript.end("hangup")  # reconnects, creates the table again, writes the whole record
        assert store.flush()
        assert [(row[0], row[3], row[5]) for row in _rows(table)] == [
            ("sip-flaky", "hangup", transcript.to_dict())
        ]
        assert json.loads((tmp_path / "sip-flaky.json").read_text(encoding="utf-8")) == transcript.to_dict()
    finally:
        store.close()


def test_json_file_store_keeps_one_file_per_call(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "calls")
    assert store.get("c1") is None and store.recent() == []
    transcript = CallTranscript("c1", store=store)
    assert transcript.path == tmp_path / "calls" / "c1.json"
    transcript.add_bot_turn("greeting", "Grüß Gott.")
    later = CallTranscript("c2", tmp_path / "calls")  # the old constructor: a directory
    later.end("silence")
    os.utime(tmp_path / "calls" / "c1.json", (1, 1))  # c1 is older
    assert store.get("c1") == transcript.to_dict()
    assert [record["call_id"] for record in store.recent()] == ["c2", "c1"]
    assert [record["call_id"] for record in store.recent(1)] == ["c2"]
    assert sorted(path.name for path in (tmp_path / "calls").iterdir()) == ["c1.json", "c2.json"]
    assert "Grüß Gott." in (tmp_path / "calls" / "c1.json").read_text(encoding="utf-8")


def test_settings_pick_the_store(tmp_path: Path) -> None:
    files = build_record_store(Settings(paths=PathSettings(calls_dir=tmp_path)))
    assert isinstance(files, JsonFileStore) and files.calls_dir == tmp_path
    postgres = build_record_store(Settings(paths=PathSettings(calls_dir=tmp_path), database_url=DATABASE_URL))
    try:
        assert isinstance(postgres, PostgresStore) and postgres.fallback.calls_dir == tmp_path
    finally:
        postgres.close()
