"""The data layer on SQLite and on the real PostgreSQL (``tests/database.py``): per-turn writes, migrations from an
older schema, the JSON import, ``voicebot db`` and the repository of queue entries, call-backs and staff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database import Database, database, empty_database, fresh_postgres_schema  # noqa: F401 (fixtures)
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from voicebot.db import migrate, rows, search
from voicebot.db.models import Base, CallbackStatus, QueueStatus, Role
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.transcript import CallTranscript
from voicebot.records import JsonFileStore, is_call_id

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def _table(database: Database, table: Any) -> list[Any]:  # noqa: F811
    """All rows of ``table``, read over a connection of its own (another reader than the store)."""
    engine = database.engine()
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(table).order_by(*table.primary_key.columns)))
    finally:
        engine.dispose()


def test_each_turn_and_event_is_a_row_written_when_it_happens(
    store: SqlCallRecordStore,
    database: Database,  # noqa: F811
) -> None:
    transcript = CallTranscript(channel="sip", channel_call_id="abc@pbx", store=store)
    greeting = transcript.add_bot_turn("greeting", "Guten Tag.")
    assert store.flush()
    (turn,) = _table(database, rows.TURNS)  # before the call ends, before the turn is even played
    assert (turn.call_id, turn.idx, turn.role, turn.kind, turn.text) == (
        transcript.call_id,
        0,
        "bot",
        "greeting",
        "Guten Tag.",
    )
    assert turn.end_s is None and not turn.data["played"]

    transcript.append_bot_text(greeting, "Was kann ich für Sie tun?")  # the same turn grows: updated in place
    transcript.bot_turn_played(transcript.index_of(greeting))
    transcript.add_caller_dtmf("0")
    transcript.add_event("handoff_requested", reason="caller_asked")
    assert store.flush()
    turns = _table(database, rows.TURNS)
    assert [(t.idx, t.kind, t.text) for t in turns] == [
        (0, "greeting", "Guten Tag. Was kann ich für Sie tun?"),
        (1, "dtmf", "0"),
    ]
    assert turns[0].end_s is not None and turns[0].data["played"]
    (event,) = _table(database, rows.EVENTS)
    assert (event.idx, event.kind, event.data["reason"]) == (0, "handoff_requested", "caller_asked")
    (call,) = _table(database, rows.CALLS)
    assert call.ended_reason is None and call.sip_call_id == "abc@pbx" and call.process["pid"] == os.getpid()
    assert store.get(transcript.call_id) == transcript.to_dict()


def test_unknown_record_fields_survive_the_round_trip(store: SqlCallRecordStore) -> None:
    """Fields the transcript gains later (a turn field, a top-level key) need no migration."""
    transcript = CallTranscript(channel="webrtc", store=store)
    transcript.extra["handoff"] = {"group": "Bürgerbüro", "reason": "dtmf"}
    turn = transcript.add_bot_turn("answer", "Das Bürgerbüro hat montags geöffnet.")
    transcript.add_event("caption", text="Ä Ö Ü ß", words=[1, 2.5, None])
    transcript.end("goodbye")
    assert store.flush()
    record = store.get(transcript.call_id)
    assert record == transcript.to_dict() and record is not None
    assert record["handoff"]["group"] == "Bürgerbüro" and record["turns"][0]["text"] == turn.text


def test_schema_matches_the_models(database: Database) -> None:  # noqa: F811
    """The migrations create what models.py declares: tables, columns, types, indexes, constraints (Alembic's
    autogenerate comparison finds nothing to change)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = database.engine()
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": search.not_search_object}
            )
            assert compare_metadata(context, Base.metadata) == []
        inspector = inspect(engine)
        tables = set(inspector.get_table_names()) - {"alembic_version", *search.SEARCH_OBJECTS}
        assert tables == set(Base.metadata.tables)
        for name, table in Base.metadata.tables.items():
            assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}, name
        assert migrate.status(engine).current == migrate.head_revision() == "0007"
    finally:
        engine.dispose()


def test_a_database_of_the_first_revision_upgrades_without_loss(
    empty_database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A fixture database made by revision 0001 only (calls, turns, events), with calls in it, upgraded to head:
    every record is still there, and the new tables take rows that refer to those calls."""
    engine = empty_database.engine()
    try:
        migrate.upgrade(engine, "0001")
        assert migrate.status(engine).current == "0001"
        assert "queue_entries" not in inspect(engine).get_table_names()
        old = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
        transcripts = [CallTranscript(channel="sip", channel_call_id=f"c{n}", store=old) for n in range(3)]
        for n, transcript in enumerate(transcripts):
            transcript.add_bot_turn("greeting", "Guten Tag.")
            transcript.add_caller_dtmf(str(n))
            transcript.add_event("tick", n=n)
        transcripts[0].end("hangup")
        assert old.flush()
        before = {t.call_id: old.get(t.call_id) for t in transcripts}
        old.close()

        engine = empty_database.engine()
        migrate.upgrade(engine)
        assert migrate.status(engine).up_to_date
        after = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
        try:
            assert {t.call_id: after.get(t.call_id) for t in transcripts} == before
            assert before == {t.call_id: t.to_dict() for t in transcripts}
            assert not (tmp_path / "fallback").exists()
        finally:
            after.close()
        repository = Repository(empty_database.engine())
        entry = repository.enqueue(transcripts[1].call_id, "Bürgerbüro", "dtmf")
        assert [e.id for e in repository.waiting()] == [entry.id]
    finally:
        engine.dispose()


def _voicebot(args: list[str], database: Database, **env: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    """``voicebot ARGS`` in a subprocess with ``database`` configured as an operator would."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    if database.kind == "sqlite":
        environment["VOICEBOT_PATHS__DATABASE_FILE"] = database.url.removeprefix("sqlite:///")
    else:
        environment["VOICEBOT_DATABASE_URL"] = database.url
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=REPO_ROOT,
    )


def test_db_upgrade_and_status_commands(empty_database: Database) -> None:  # noqa: F811
    status = _voicebot(["db", "status"], empty_database)
    assert status.returncode == 1 and "schema: empty (newest: 0007)" in status.stdout
    assert status.stderr.strip().splitlines() == [
        "error: the database has no schema yet: run voicebot db upgrade (voicebot serve does it on start)"
    ]
    if empty_database.kind == "sqlite":
        assert not Path(empty_database.url.removeprefix("sqlite:///")).exists()  # status creates nothing
    upgrade = _voicebot(["db", "upgrade"], empty_database)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "schema upgraded from empty to revision 0007" in upgrade.stdout
    assert "secret" not in upgrade.stdout
    again = _voicebot(["db", "upgrade"], empty_database)
    assert again.returncode == 0 and "schema already at revision 0007" in again.stdout
    status = _voicebot(["db", "status"], empty_database)
    assert status.returncode == 0, status.stderr
    assert "schema: 0007 (newest: 0007)" in status.stdout and "calls: 0" in status.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:p@127.0.0.1/x", "only postgresql://... is supported"),
        ("not a url", "database_url is not a database URL"),
        ("postgresql://voicebot:hunter2@127.0.0.1:9/voicebot", "cannot use the database"),
    ],
)
def test_db_commands_fail_with_one_line_naming_the_fix(tmp_path: Path, url: str, says: str) -> None:
    sqlite = Database("sqlite", f"sqlite:///{tmp_path / 'unused.db'}")
    for command in (["db", "upgrade"], ["db", "status"]):
        result = _voicebot(command, sqlite, VOICEBOT_DATABASE_URL=url)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and says in lines[0]
        assert "hunter2" not in result.stderr + result.stdout  # the password is never printed
    assert not (tmp_path / "unused.db").exists()


def test_import_json_records_is_idempotent_and_names_bad_files(
    database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    calls_dir = tmp_path / "calls"
    files = JsonFileStore(calls_dir)
    transcripts = [CallTranscript(channel="sip", channel_call_id=f"json-{n}", store=files) for n in range(3)]
    for n, transcript in enumerate(transcripts):
        transcript.add_bot_turn("greeting", "Guten Tag.")
        transcript.add_caller_dtmf(str(n))
        transcript.add_event("tick", n=n)
        transcript.end("hangup")
    # A record from before server call ids: named by the peer's SIP Call-ID, no channel field.
    legacy = {
        "call_id": "old-call@pbx",
        "started_at": 1700000000.5,
        "ended_reason": "hangup",
        "turns": [{"role": "bot", "kind": "greeting", "text": "Hallo", "start_s": 0.0}],
        "events": [],
    }
    (calls_dir / "old-call@pbx.json").write_text(json.dumps(legacy), encoding="utf-8")
    (calls_dir / "torn.json").write_text('{"call_id": "call_', encoding="utf-8")
    (calls_dir / "list.json").write_text("[1, 2]", encoding="utf-8")
    (calls_dir / "notes.txt").write_text("not a record", encoding="utf-8")

    first = _voicebot(["db", "import-json", str(calls_dir)], database)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("4 imported, 0 already in the database, 2 skipped"), first.stdout
    assert sorted(first.stderr.strip().splitlines()) == [
        "skipped list.json: not a call record (no call_id)",
        "skipped torn.json: not JSON (Unterminated string starting at: line 1 column 13 (char 12))",
    ]
    second = _voicebot(["db", "import-json", str(calls_dir)], database)
    assert second.returncode == 0 and "0 imported, 4 already in the database, 2 skipped" in second.stdout

    store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "unused")
    try:
        for transcript in transcripts:
            assert store.get(transcript.call_id) == transcript.to_dict()
        (imported_legacy,) = [r for r in store.recent(10) if r.get("legacy_call_id") == "old-call@pbx"]
        assert is_call_id(imported_legacy["call_id"]) and imported_legacy["channel"] == "sip"
        assert imported_legacy["turns"] == legacy["turns"] and imported_legacy["ended_reason"] == "hangup"
    finally:
        store.close()
    engine = database.engine()
    try:
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(rows.CALLS)).scalar_one() == 4
            assert connection.execute(select(func.count()).select_from(rows.TURNS)).scalar_one() == 7
    finally:
        engine.dispose()


def test_import_json_needs_a_current_schema_and_a_folder(empty_database: Database, tmp_path: Path) -> None:  # noqa: F811
    missing = _voicebot(["db", "import-json", str(tmp_path / "nowhere")], empty_database)
    assert missing.returncode == 1 and "is not a folder" in missing.stderr
    no_schema = _voicebot(["db", "import-json", str(tmp_path)], empty_database)
    assert no_schema.returncode == 1 and "run voicebot db upgrade first" in no_schema.stderr


def test_repository_queue_callbacks_and_staff(store: SqlCallRecordStore, database: Database) -> None:  # noqa: F811
    transcript = CallTranscript(channel="sip", channel_call_id="q@pbx", store=store)
    other = CallTranscript(channel="sip", channel_call_id="r@pbx", store=store)
    assert store.flush()
    repository = Repository(database.engine())

    anna = repository.add_staff_user("anna", "$argon2id$v=19$...", Role.SUPERVISOR, "Anna A.")
    ben = repository.add_staff_user("ben", "$argon2id$v=19$...")
    with pytest.raises(IntegrityError):
        repository.add_staff_user("anna", "x")
    assert [u.username for u in repository.staff_users()] == ["anna", "ben"]
    found = repository.staff_user("anna")
    assert found is not None and found.role == "supervisor" and found.availability == "away"

    first = repository.enqueue(transcript.call_id, "Bürgerbüro", "caller_asked", summary={"request": "Pass"})
    second = repository.enqueue(other.call_id, "Bürgerbüro", "low_confidence")
    assert [e.call_id for e in repository.waiting("Bürgerbüro")] == [transcript.call_id, other.call_id]
    assert repository.waiting("Standesamt") == []
    assert repository.answer(first.id, anna.id)
    assert not repository.answer(first.id, ben.id)  # taken already: nobody takes a caller twice
    assert repository.end_wait(second.id, QueueStatus.ABANDONED)
    assert repository.waiting() == []
    (taken,) = repository.queue_entries_of(transcript.call_id)
    assert (
        taken.status == "answered" and taken.staff_user_id == anna.id and taken.summary == {"request": "Pass"}
    )
    with pytest.raises(IntegrityError):  # keyed by a call that exists (foreign keys on SQLite too)
        repository.enqueue("call_20260101T000000000Z_000000000000", "Bürgerbüro", "dtmf")

    callback = repository.add_callback(other.call_id, "Bürgerbüro", "+4930123456", due_at=2e9, topic="Pass")
    assert [c.id for c in repository.open_callbacks()] == [callback.id]
    assert repository.claim_callback(callback.id, ben.id)
    assert not repository.claim_callback(callback.id, anna.id)
    assert not repository.finish_callback(callback.id, anna.id, CallbackStatus.DONE, "erledigt")  # not hers
    assert repository.finish_callback(callback.id, ben.id, CallbackStatus.DONE, "Rückruf erledigt")
    assert repository.open_callbacks() == []
    with pytest.raises(ValueError, match="done or failed"):
        repository.finish_callback(callback.id, ben.id, CallbackStatus.OPEN, "")
    assert repository.set_availability(ben.id, "available")  # type: ignore[arg-type]


def test_import_of_the_jsonb_table_of_earlier_versions(tmp_path: Path) -> None:
    """Production kept one ``call_records`` row per call (whole record as jsonb): it moves into the new tables."""
    from sqlalchemy import text

    with fresh_postgres_schema() as url:
        database = Database("postgresql", url)
        transcript = CallTranscript(channel="sip", channel_call_id="pg@pbx")
        transcript.add_bot_turn("greeting", "Guten Tag.")
        transcript.add_caller_dtmf("3")
        transcript.end("hangup")
        engine = database.engine()
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE TABLE call_records (call_id text PRIMARY KEY, started_at timestamptz, "
                    "updated_at timestamptz, ended_at timestamptz, end_reason text, channel text, "
                    "record jsonb NOT NULL)"
                )
            )
            insert = text(
                "INSERT INTO call_records (call_id, updated_at, record) VALUES (:id, now(), :record)"
            )
            connection.execute(insert, {"id": transcript.call_id, "record": json.dumps(transcript.to_dict())})
            connection.execute(insert, {"id": "web-legacy", "record": json.dumps({"call_id": "web-legacy"})})
            connection.execute(insert, {"id": "junk", "record": "[1]"})
        migrate.upgrade(engine)
        engine.dispose()

        first = _voicebot(["db", "import-json", "--table", "call_records"], database)
        assert first.returncode == 0, first.stderr
        assert "table call_records: 2 imported, 0 already in the database, 1 skipped" in first.stdout
        assert first.stderr.strip() == "skipped junk: not a call record (no call_id)"
        again = _voicebot(["db", "import-json", "--table", "call_records"], database)
        assert "0 imported, 2 already in the database, 1 skipped" in again.stdout
        wrong = _voicebot(["db", "import-json", "--table", "x; DROP TABLE calls"], database)
        assert wrong.returncode == 1 and "is not a table name" in wrong.stderr

        store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "unused")
        try:
            assert store.get(transcript.call_id) == transcript.to_dict()
            (legacy,) = [r for r in store.recent(10) if r.get("legacy_call_id") == "web-legacy"]
            assert legacy["channel"] == "webrtc" and is_call_id(legacy["call_id"])
        finally:
            store.close()


# A server starting: imports done, it upgrades the schema at the agreed moment (all processes at once).
_UPGRADE_AT = """
import sys, time
from voicebot.db import migrate
from voicebot.db.engine import make_engine
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
migrate.upgrade(engine)
print(migrate.status(engine).current)
"""


def test_servers_starting_at_once_upgrade_the_schema_once(empty_database: Database) -> None:  # noqa: F811
    """Several processes sharing one database upgrade it at the same moment: each succeeds, the schema is made
    once (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE)."""
    at = time.time() + 8.0  # every process has imported by then, even on a busy 2-core machine
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_AT, empty_database.url, str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=120) for process in processes]
    assert time.time() > at
    assert [
        (process.returncode, out.strip()) for process, (out, _) in zip(processes, results, strict=True)
    ] == [(0, "0007")] * 3, [err[-2000:] for _, err in results]


def test_a_change_writes_only_the_turn_that_changed(store: SqlCallRecordStore) -> None:
    """The writer sends the difference: a new turn is one row, a growing answer updates its one row; the turns
    before are not written again (a long call does not rewrite itself at every change)."""
    from sqlalchemy import event

    written: list[tuple[str, int]] = []  # (table, idx) of every turn or event row sent to the database

    @event.listens_for(store.engine, "before_execute")
    def _spy(_conn: Any, clause: Any, multiparams: Any, params: Any, _options: Any) -> None:
        table = getattr(clause, "table", None)
        if getattr(clause, "is_insert", False) and table in (rows.TURNS, rows.EVENTS):
            batch = (
                multiparams[0] if multiparams and isinstance(multiparams[0], list) else [*multiparams, params]
            )
            written.extend((table.name, row["idx"]) for row in batch if row)

    transcript = CallTranscript(channel="sip", channel_call_id="diff@pbx", store=store)
    for n in range(5):
        transcript.add_caller_dtmf(str(n))
    assert store.flush()
    written.clear()
    answer = transcript.add_bot_turn("answer", "Erster Satz.")
    assert store.flush()
    assert written == [("turns", 5)]
    transcript.append_bot_text(answer, "Zweiter Satz.")
    transcript.add_event("caption", text="Zweiter Satz.")
    assert store.flush()
    assert written == [("turns", 5), ("turns", 5), ("events", 0)]
    assert store.get(transcript.call_id) == transcript.to_dict()


def test_serve_stops_with_one_line_when_its_database_cannot_be_used(tmp_path: Path) -> None:
    """``voicebot serve`` upgrades the schema before it loads any model: an unreachable database ends it at once."""
    from interop.peers import free_port

    sqlite = Database("sqlite", f"sqlite:///{tmp_path / 'unused.db'}")
    command = ["serve", "--sip-port", str(free_port()), "--http-port", str(free_port())]
    down = "postgresql://voicebot:hunter2@127.0.0.1:9/voicebot"
    result = _voicebot(command, sqlite, VOICEBOT_DATABASE_URL=down, VOICEBOT_PATHS__MODELS_DIR=str(tmp_path))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-3000:]
    assert "cannot use the database postgresql://voicebot:***@127.0.0.1:9/voicebot" in errors[0]
    assert "check database_url" in errors[0] and "hunter2" not in result.stderr + result.stdout
    assert "model" not in errors[0]  # it failed before the (missing) models were looked at


def test_a_locked_database_never_holds_up_the_call(database: Database, tmp_path: Path) -> None:  # noqa: F811
    """Another process holds the write lock (SQLite) or a row lock (PostgreSQL): the call's changes are parked,
    readable, counted as unsaved (``/healthz``), and written once the lock is gone."""
    from voicebot.db.engine import writing

    store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    blocker = database.engine()
    try:
        transcript = CallTranscript(channel="sip", channel_call_id="lock@pbx", store=store)
        assert store.flush() and store.unsaved() == 0
        with writing(blocker) as connection:
            if database.kind == "postgresql":
                connection.execute(select(rows.CALLS).with_for_update())  # the writer's UPDATE waits for it
            else:
                connection.exec_driver_sql(
                    "DELETE FROM turns WHERE 0"
                )  # holds the write lock (BEGIN IMMEDIATE)
            transcript.add_caller_dtmf("7")  # returns at once: the change is only parked
            assert not store.flush(timeout_s=1.0)  # the writer is stuck behind the lock...
            assert store.unsaved() == 1
            assert (
                store.get(transcript.call_id) == transcript.to_dict()
            )  # ...and the change is readable anyway
        assert store.flush()
        assert store.unsaved() == 0 and store.get(transcript.call_id) == transcript.to_dict()
        assert not (tmp_path / "fallback").exists()  # waited for the lock, did not fall back
    finally:
        store.close()
        blocker.dispose()
