"""Call records: the database store on SQLite and on the real PostgreSQL on 127.0.0.1:5432 (see
``tests/database.py``: a fresh schema per test), and the JSON files of simulated calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from loguru import logger
from pydantic import SecretStr
from sqlalchemy import select

from voicebot.db import rows
from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.transcript import CallTranscript
from voicebot.records import (
    JsonFileStore,
    Record,
    build_record_store,
    close_interrupted_calls,
    interrupted_version,
    is_call_id,
    new_call_id,
    process_start_time,
    writer_process,
)
from voicebot.settings import PathSettings, Settings, settings_root


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def _calls(database: Database) -> dict[str, Any]:  # noqa: F811
    """The ``calls`` rows by call id, read over a connection of its own."""
    engine = database.engine()
    try:
        with engine.connect() as connection:
            return {row.call_id: row for row in connection.execute(select(rows.CALLS))}
    finally:
        engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_transcript_is_written_as_it_grows(store: SqlCallRecordStore, database: Database) -> None:  # noqa: F811
    transcript = CallTranscript(channel="webrtc", channel_call_id="web-abc123", store=store)
    assert store.flush()
    assert list(_calls(database)) == [transcript.call_id]
    assert is_call_id(transcript.call_id) and transcript.to_dict()["session_id"] == "web-abc123"

    greeting = transcript.add_bot_turn("greeting", "Guten Tag, hier ist die Stadt Musterstadt.")
    transcript.bot_turn_played(transcript.index_of(greeting))
    transcript.add_caller_dtmf("0")
    assert store.flush()
    row = _calls(database)[transcript.call_id]
    assert row.ended_at is None and row.ended_reason is None and row.channel == "webrtc"
    assert row.session_id == "web-abc123" and not row.simulated
    assert row.started_at == transcript.started_at
    assert [turn["kind"] for turn in store.get(transcript.call_id)["turns"]] == ["greeting", "dtmf"]  # type: ignore[index]

    transcript.end("goodbye")
    assert store.flush()
    row = _calls(database)[transcript.call_id]
    assert row.ended_reason == "goodbye" and row.ended_at is not None and row.ended_at >= row.started_at
    transcript.add_event("late_event")  # a change after the end keeps the first end time
    assert store.flush()
    later = _calls(database)[transcript.call_id]
    assert later.ended_at == row.ended_at
    assert store.get(transcript.call_id) == transcript.to_dict()
    assert not store.fallback.calls_dir.exists()  # the database took it


def test_get_and_recent_read_back_newest_first(store: SqlCallRecordStore) -> None:
    transcripts = [CallTranscript(channel="simulation", store=store) for _ in range(4)]
    for n, transcript in enumerate(transcripts):
        transcript.add_bot_turn("greeting", f"Anruf {n}")
        assert store.flush()  # one at a time, so that their update times are ordered
        time.sleep(0.002)
    ids = [transcript.call_id for transcript in transcripts]
    assert [record["call_id"] for record in store.recent(3)] == [ids[3], ids[2], ids[1]]
    assert store.recent(3)[0]["turns"][0]["text"] == "Anruf 3"
    assert [record for record in store.recent(10)] == [t.to_dict() for t in reversed(transcripts)]
    record = store.get(ids[0])
    assert record is not None and record["turns"][0]["text"] == "Anruf 0"
    assert record["channel"] == "simulation"
    assert store.get(new_call_id()) is None and store.get("no-such-call") is None


def test_concurrent_calls_save_from_many_threads(store: SqlCallRecordStore, database: Database) -> None:  # noqa: F811
    calls_per_thread, changes_per_call = 3, 25
    transcripts: list[CallTranscript] = []
    lock = threading.Lock()

    def one_thread(thread: int) -> None:
        for call in range(calls_per_thread):
            transcript = CallTranscript(channel="sip", channel_call_id=f"t{thread}-c{call}", store=store)
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

    calls = _calls(database)
    assert len(calls) == len(transcripts) == 6 * calls_per_thread
    for transcript in transcripts:
        assert calls[transcript.call_id].ended_reason == "hangup"
        record = store.get(transcript.call_id)
        assert record == transcript.to_dict()  # the newest version won
        assert len(record["events"]) == changes_per_call  # type: ignore[index]
    assert not store.fallback.calls_dir.exists()


def test_database_down_keeps_the_call_going_with_a_json_fallback(tmp_path: Path) -> None:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="ERROR")
    down = SqlCallRecordStore(
        make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test", connect_timeout_s=2),
        fallback_dir=tmp_path,
        retry_after_s=0.0,  # try the database on every write: still one log line for the whole outage
    )
    try:
        first = CallTranscript(channel="sip", channel_call_id="down-1", store=down)
        second = CallTranscript(channel="sip", channel_call_id="down-2", store=down)
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
        assert {record["sip_call_id"] for record in down.recent()} == {"down-1", "down-2"}
    finally:
        down.close()
        logger.remove(sink)
    outage_logs = [message for message in messages if "unusable" in message]
    assert len(outage_logs) == 1, messages


def test_a_failed_write_falls_back_and_the_next_one_reaches_the_database_again(
    empty_database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    """No schema yet (a database nobody upgraded): the record goes to a JSON file; after the upgrade the next
    change writes the whole record to the database, and the file stays complete."""
    from voicebot.db import migrate

    engine = empty_database.engine()
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path, retry_after_s=0.0)
    try:
        transcript = CallTranscript(channel="sip", channel_call_id="flaky", store=store)
        path = tmp_path / f"{transcript.call_id}.json"
        transcript.add_bot_turn("greeting", "Guten Tag.")
        assert store.flush()
        assert json.loads(path.read_text(encoding="utf-8")) == transcript.to_dict()
        migrate.upgrade(engine)
        transcript.end("hangup")
        assert store.flush()
        calls = _calls(empty_database)
        assert list(calls) == [transcript.call_id] and calls[transcript.call_id].ended_reason == "hangup"
        assert store.get(transcript.call_id) == transcript.to_dict()
        assert json.loads(path.read_text(encoding="utf-8")) == transcript.to_dict()
    finally:
        store.close()


def test_json_file_store_keeps_one_file_per_call(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "calls")
    assert store.get(new_call_id()) is None and store.recent() == []
    transcript = CallTranscript(channel="sip", channel_call_id="c1", store=store)
    first = tmp_path / "calls" / f"{transcript.call_id}.json"
    assert transcript.path == first
    transcript.add_bot_turn("greeting", "Grüß Gott.")
    later = CallTranscript(tmp_path / "calls", channel="webrtc")  # a directory instead of a store
    later.end("silence")
    os.utime(first, (1, 1))  # the first call is older
    assert store.get(transcript.call_id) == transcript.to_dict()
    assert [record["call_id"] for record in store.recent()] == [later.call_id, transcript.call_id]
    assert [record["call_id"] for record in store.recent(1)] == [later.call_id]
    assert sorted(path.name for path in (tmp_path / "calls").iterdir()) == sorted(
        [first.name, f"{later.call_id}.json"]
    )
    assert "Grüß Gott." in first.read_text(encoding="utf-8")
    assert store.get(transcript.call_id)["sip_call_id"] == "c1"  # type: ignore[index]


def test_settings_pick_the_store(tmp_path: Path) -> None:
    assert Settings().paths.database_file == settings_root() / "var" / "voicebot.db"  # the embedded default
    embedded = build_record_store(
        Settings(paths=PathSettings(calls_dir=tmp_path / "calls", database_file=tmp_path / "v.db"))
    )
    try:
        assert isinstance(embedded, SqlCallRecordStore) and embedded.fallback.calls_dir == tmp_path / "calls"
        assert embedded.engine.url.database == str(tmp_path / "v.db")
        assert not (tmp_path / "v.db").exists()  # nothing connects before the first write
    finally:
        embedded.close()
    url = "postgresql://voicebot:secret@127.0.0.1:5432/voicebot"
    production = build_record_store(
        Settings(paths=PathSettings(calls_dir=tmp_path), database_url=SecretStr(url))
    )
    try:
        assert isinstance(production, SqlCallRecordStore)
        assert (
            production.engine.url.drivername == "postgresql+psycopg"
            and production.engine.url.database == "voicebot"
        )
    finally:
        production.close()


def test_peer_call_ids_never_choose_where_a_record_goes(tmp_path: Path) -> None:
    """A SIP Call-ID is the peer's text: it names no file and no key, and a re-used one overwrites nothing."""
    calls_dir = tmp_path / "records" / "calls"
    absolute = tmp_path / "absolute"
    peer_ids = [
        "../traversal-proof-relative",
        str(absolute),
        "../dir/created/x",
        "x" * 300,
        "reused@pbx.example",
        "reused@pbx.example",
        "nul\x00byte",
        "not-utf8-\udcff",
    ]
    store = JsonFileStore(calls_dir)
    transcripts = [CallTranscript(channel="sip", channel_call_id=peer, store=store) for peer in peer_ids]
    for n, transcript in enumerate(transcripts):
        transcript.add_caller_dtmf(str(n))
        transcript.end("hangup")

    files = sorted(calls_dir.iterdir())
    assert len(files) == len(peer_ids) and all(is_call_id(path.stem) for path in files)
    assert sorted(tmp_path.rglob("*")) == sorted(
        [tmp_path / "records", calls_dir, *files]
    )  # nothing elsewhere
    records = [store.get(transcript.call_id) for transcript in transcripts]
    assert all(record is not None for record in records)
    stored = [record["sip_call_id"] for record in records if record is not None]
    assert stored[:3] == peer_ids[:3] and stored[4] == stored[5] == "reused@pbx.example"
    assert (
        stored[3] == "x" * 256 + "...(+44)"
        and stored[6] == "nul\\x00byte"
        and stored[7] == "not-utf8-\\udcff"
    )
    # The second caller with the same Call-ID got a record of its own; the first one's is intact.
    assert [record["turns"][0]["text"] for record in records if record is not None] == [
        str(n) for n in range(len(peer_ids))
    ]


def test_stores_refuse_keys_the_server_did_not_mint(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "calls")
    for key in ("../outside", str(tmp_path / "abs"), "sub/dir", "call_2026", ""):
        with pytest.raises(ValueError, match="not a server call id"):
            store.save({"call_id": key, "turns": []})
        assert store.get(key) is None
    sql = SqlCallRecordStore(
        make_engine(f"sqlite:///{tmp_path / 'db' / 'v.db'}"), fallback_dir=tmp_path / "fallback"
    )
    try:
        with pytest.raises(ValueError, match="not a server call id"):
            sql.save({"call_id": "../x", "turns": []})
    finally:
        sql.close()
    assert [path.name for path in tmp_path.rglob("*")] == ["db"]  # the engine's folder, no file in it


# A call in another process: one record written through the store, then the process is killed (``kill``) or
# stays up, like a live call, until its stdin closes.
_CALL_IN_ANOTHER_PROCESS = """
import os, signal, sys
from pathlib import Path
from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.transcript import CallTranscript
from voicebot.records import JsonFileStore

kind, where, fate = sys.argv[1:4]
if kind == "json":
    store = JsonFileStore(Path(where))
else:
    store = SqlCallRecordStore(make_engine(where), fallback_dir=Path(sys.argv[4]))
transcript = CallTranscript(channel="sip", channel_call_id=f"{fate}@pbx", store=store)
greeting = transcript.add_bot_turn("greeting", "Guten Tag.")
transcript.bot_turn_played(transcript.index_of(greeting))
transcript.add_caller_dtmf("5")
assert store.flush()
print(transcript.call_id, flush=True)
if fate == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def _call_in_another_process(kind: str, where: str, fate: str, fallback: Path) -> tuple[Any, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(
        [sys.executable, "-c", _CALL_IN_ANOTHER_PROCESS, kind, where, fate, str(fallback)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    call_id = process.stdout.readline().strip()
    assert is_call_id(call_id), f"the call process wrote no record (exit {process.poll()})"
    if fate == "kill":
        assert process.wait(timeout=30) == -signal.SIGKILL
    return process, call_id


def _assert_closed_at_last_turn(record: Record | None) -> None:
    assert record is not None and record["ended_reason"] == "interrupted"
    last_turn_s = max(max(turn["start_s"], turn["end_s"] or 0) for turn in record["turns"])
    assert record["ended_at"] == pytest.approx(record["started_at"] + last_turn_s)
    assert record["events"][-1]["kind"] == "interrupted"


def test_calls_killed_with_their_process_are_closed_when_the_store_opens(tmp_path: Path) -> None:
    calls_dir = tmp_path / "calls"
    _, killed_id = _call_in_another_process("json", str(calls_dir), "kill", tmp_path)
    live, live_id = _call_in_another_process("json", str(calls_dir), "live", tmp_path)
    try:
        store = JsonFileStore(calls_dir)
        killed = store.get(killed_id)
        assert killed is not None and killed["ended_reason"] is None  # opening the store judges nothing
        assert close_interrupted_calls(store) == 1  # what serve does at start-up (only serve)
        _assert_closed_at_last_turn(store.get(killed_id))
        live_record = store.get(live_id)
        assert live_record is not None and live_record["ended_reason"] is None  # its process still runs it
        assert store.close_unfinished() == 0  # nothing more to close, nothing closed twice
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=30)
    assert store.close_unfinished() == 1  # its process is gone now
    _assert_closed_at_last_turn(store.get(live_id))


def test_calls_killed_with_their_process_are_closed_in_the_database(
    store: SqlCallRecordStore,
    database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    _, killed_id = _call_in_another_process("sql", database.url, "kill", tmp_path / "fallback")
    live, live_id = _call_in_another_process("sql", database.url, "live", tmp_path / "fallback")
    repository = Repository(store.engine)
    waiting = repository.enqueue(
        killed_id, "Bürgerbüro", "caller_asked"
    )  # the killed caller waited for staff
    answered = repository.enqueue(killed_id, "Bürgerbüro", "caller_asked")
    staff = repository.add_staff_user("anna", "hash")
    assert repository.answer(answered.id, staff.id)
    live_wait = repository.enqueue(live_id, "Bürgerbüro", "caller_asked")
    try:
        killed = store.get(killed_id)
        assert killed is not None and [t["kind"] for t in killed["turns"]] == ["greeting", "dtmf"]
        assert close_interrupted_calls(store) == 1
        _assert_closed_at_last_turn(store.get(killed_id))
        live_record = store.get(live_id)
        assert live_record is not None and live_record["ended_reason"] is None
        assert store.close_unfinished() == 0
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=30)
    assert [(e.id, e.status) for e in repository.queue_entries_of(killed_id)] == [
        (waiting.id, "abandoned"),  # the wait ended when its process died
        (answered.id, "answered"),
    ]
    assert [e.status for e in repository.queue_entries_of(live_id)] == ["waiting"]  # its process still runs
    assert repository.queue_entries_of(killed_id)[0].ended_at == pytest.approx(
        store.get(killed_id)["ended_at"]
    )  # type: ignore[index]
    assert store.close_unfinished() == 1
    assert [e.id for e in repository.waiting()] == []
    assert live_wait.id not in [e.id for e in repository.waiting()]
    calls = _calls(database)
    for call_id in (killed_id, live_id):
        record = store.get(call_id)
        _assert_closed_at_last_turn(record)
        assert record is not None and [t["kind"] for t in record["turns"]] == ["greeting", "dtmf"]
        assert calls[call_id].ended_reason == "interrupted"
        assert calls[call_id].ended_at == pytest.approx(record["ended_at"])


def _unfinished_record(writer: dict[str, Any]) -> Record:
    return {
        "call_id": new_call_id(),
        "started_at": 1000.0,
        "ended_reason": None,
        "turns": [],
        "process": writer,
    }


def test_a_record_of_this_very_process_is_never_taken_for_interrupted() -> None:
    """Review item 12: ``pid == os.getpid()`` counted as gone, so a store closing records in a process with live
    calls (or a container whose pid 1 wrote them) closed live calls."""
    now = time.time()
    assert interrupted_version(_unfinished_record(writer_process()), now, now) is None


def test_a_reused_pid_does_not_keep_a_dead_writers_record_open() -> None:
    """Review items 12 and 16: the pid of a live process that is not the writer (reused) kept the record open."""
    now, parent = time.time(), os.getppid()
    live_writer = {**writer_process(), "pid": parent, "start": process_start_time(parent), "token": "other"}
    assert interrupted_version(_unfinished_record(live_writer), now, now) is None  # the writer still runs
    reused = {**live_writer, "start": (process_start_time(parent) or 0) + 1}  # same pid, another process
    closed = interrupted_version(_unfinished_record(reused), now, now)
    assert closed is not None and closed["ended_reason"] == "interrupted"
