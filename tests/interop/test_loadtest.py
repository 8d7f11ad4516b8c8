"""`voicebot loadtest` against a real `voicebot serve` subprocess with real SIP calls over loopback (decision 0991):
the sweep with its table, JSON and PNG; and ``--through`` a server with one line offered two calls at once, where
the second gets 503 (counted as refused, not failed) while the first is answered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from interop.peers import VoicebotServer, shared_index_dir
from voicebot.benchmarks.loadtest import run_loadtest
from voicebot.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The default greeting (7.8 s of espeak) would make every call long.
GREETING = "Guten Tag, hier ist das Rathaus."


@pytest.fixture
def server_environment(monkeypatch: pytest.MonkeyPatch, embedded_models_dir: Path) -> None:
    """What the loadtest's own server inherits: the tests' models and index, a short greeting."""
    monkeypatch.setenv("VOICEBOT_PATHS__MODELS_DIR", str(embedded_models_dir))
    monkeypatch.setenv("VOICEBOT_PATHS__INDEX_DIR", str(shared_index_dir()))
    monkeypatch.setenv("VOICEBOT_CALL__GREETING", GREETING)


@pytest.mark.usefixtures("server_environment")
def test_loadtest_sweeps_levels_and_writes_json_and_a_png(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app

    plot = tmp_path / "loadtest.png"
    arguments = ["--calls", "2", "--concurrency", "2", "--warmup", "0", "--json", "--plot", str(plot)]
    result = CliRunner().invoke(app, ["loadtest", *arguments])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [level["concurrency"] for level in report["levels"]] == [1, 2]
    for level in report["levels"]:
        assert level["calls"] == 2
        assert level["answered"] == 2 and level["failed"] == 0 and level["refused_503"] == 0, level
        v2v = level["voice_to_voice_ms"]
        assert v2v["samples"] == 2 and 0 < v2v["p50"] <= v2v["p95"] <= v2v["p99"], v2v
        assert level["call_setup_ms"]["p50"] > 0
        assert level["gaps_ms_per_minute"] is not None and level["gaps_ms_per_minute"] >= 0
        assert level["answered_minutes"] > 0
        assert level["handoffs"] in (0, 1, 2)  # read from the call records (None: not read)
    assert report["knee"] in (None, 1, 2)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_through_a_full_server_a_call_gets_503_counted_as_refused_not_failed(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    """``--through HOST:PORT`` calls there (here a voicebot with one line, as a proxy would pass the calls on).
    Two callers at once: the second is turned away with 503 (counted as refused), calls again until the first has
    hung up, and is then answered; no call failed. Hand-offs are unknown (the records are that server's)."""
    server = VoicebotServer(
        tmp_path,
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting=GREETING,
        sip__max_calls="1",
    )
    server.start()
    try:
        through = ("127.0.0.1", server.sip_port)
        report = asyncio.run(
            run_loadtest(get_settings(), calls=2, concurrency=2, through=through, warmup=0, levels=[2])
        )
    finally:
        assert server.stop() == 0, server.log_tail()
    (level,) = report["levels"]
    assert report["target"] == f"127.0.0.1:{server.sip_port}" and report["server_max_calls"] is None
    assert level["refused_503"] >= 1 and level["failed"] == 0, level
    assert level["answered"] == 2 and level["voice_to_voice_ms"]["samples"] == 2, level
    assert report["refusals"] == {503: level["refused_503"]}
    assert report["knee"] is None  # a refused attempt: this level is beyond the knee
    assert level["handoffs"] is None
