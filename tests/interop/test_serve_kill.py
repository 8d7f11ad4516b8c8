"""``kill -9`` of a real ``voicebot serve`` in the middle of a baresip call, on SQLite and on PostgreSQL: the turns
written so far are in the database, and the restarted server closes the call as interrupted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from database import Database, empty_database  # noqa: F401 (fixture)

from interop.peers import Baresip, VoicebotServer, espeak_wav, shared_index_dir
from voicebot.db.engine import make_engine
from voicebot.db.store import SqlCallRecordStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _server(workdir: Path, models_dir: Path, database: Database) -> VoicebotServer:
    """A server on ``database``: SQLite in ``workdir/voicebot.db`` (ServeProcess's own), or the PostgreSQL URL."""
    settings = {"database_url": database.url} if database.kind == "postgresql" else {}
    return VoicebotServer(
        workdir,
        models_dir=models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag, hier ist das Rathaus.",
        **settings,
    )


def _wait_for(
    server: VoicebotServer, started: float, predicate: Any, timeout_s: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in server.transcripts():
            if float(record["started_at"]) >= started - 1 and predicate(record):
                return record
        time.sleep(0.1)
    raise AssertionError(f"no such record within {timeout_s} s; server log:\n{server.log_tail()}")


def test_kill_9_mid_call_keeps_its_turns_and_the_restart_closes_it_as_interrupted(
    empty_database: Database,  # noqa: F811
    tmp_path: Path,
    embedded_models_dir: Path,
) -> None:
    workdir = tmp_path / "serve"
    workdir.mkdir()
    server = _server(workdir, embedded_models_dir, empty_database)
    caller = Baresip(tmp_path, "caller", espeak_wav("Hallo.", tmp_path / "caller.wav", tail_s=60), ["PCMU"])
    server.start()  # upgrades the empty database's schema on start
    started = time.time()
    try:
        caller.start(dial=server.sip_uri, run_s=90)
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        server.wait_for_greeting_played(started)
        caller.command("sndcode", "5")
        before = _wait_for(
            server, started, lambda r: any(t["kind"] == "dtmf" and t["text"] == "5" for t in r["turns"])
        )
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # mid-call: no shutdown code runs
        assert server.process.wait(timeout=10) == -signal.SIGKILL
    finally:
        caller.stop()
        server.stop()
    assert before["ended_reason"] is None

    url = empty_database.url if empty_database.kind == "postgresql" else f"sqlite:///{server.database_file}"
    reader = SqlCallRecordStore(make_engine(url), fallback_dir=workdir / "calls")
    try:
        killed = reader.get(before["call_id"])
        assert killed is not None and killed["ended_reason"] is None  # nobody closed it yet
        kinds = [(t["role"], t["kind"]) for t in killed["turns"]]
        assert kinds[:1] == [("bot", "greeting")] and ("caller", "dtmf") in kinds, killed["turns"]
        assert killed["turns"][0]["played"]

        restarted = _server(workdir, embedded_models_dir, empty_database)
        restarted.start()  # closes the calls of the killed process before it takes calls
        try:
            closed = reader.get(before["call_id"])
        finally:
            assert restarted.stop() == 0, restarted.log_tail()
    finally:
        reader.close()
    assert closed is not None and closed["ended_reason"] == "interrupted"
    assert closed["turns"] == killed["turns"]  # every turn written before the kill is still there
    assert closed["events"][-1]["kind"] == "interrupted"
    call_times = [max(t["start_s"], t["end_s"] or 0) for t in closed["turns"]] + [
        e["t"] for e in killed["events"]
    ]
    assert closed["ended_at"] == pytest.approx(closed["started_at"] + max(call_times))  # at its last turn
    assert not (workdir / "calls").exists()  # the database took every write, no JSON fallback
