"""Kamailio (the shipped deploy/kamailio/kamailio.cfg) in front of two `voicebot serve` processes sharing one
PostgreSQL (decision 0910): sipp places 20 short calls through Kamailio (ACK and BYE follow its Record-Route); they
are spread over both voicebots; one voicebot gets SIGTERM mid-run: its running calls finish, the next INVITE it gets
is answered 503 and Kamailio fails over to the other one, no sipp call fails, and the drained voicebot exits 0.

The balancer that carries the calls probes only every minute, so that the failover on a 503 to INVITE is what keeps
the calls going (deterministically); a second instance of the same config probing every second shows the OPTIONS
probe taking the stopped voicebot out of the rotation by itself.

The voicebots log JSON (log_format=json): which server answered which call is read from their ``answered`` lines
and their call ids, which must match the calls in the shared database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from database import fresh_postgres_schema
from kamailio import Kamailio

from interop.peers import VoicebotServer, free_port, shared_index_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SCENARIO = Path(__file__).parent / "scenarios" / "uac_short_call_via_proxy.xml"
SIPP_PCAPS = Path("/usr/share/sip-tester")
CALLS = 20
CONCURRENCY = 4


def _answered(server: VoicebotServer) -> list[dict[str, Any]]:
    """The JSON log entries of the calls this server answered (one per call)."""
    entries = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if ": answered " in entry["message"]:
                entries.append(entry)
    return entries


def _states(proxy: Kamailio) -> list[str]:
    """The dispatcher state flags of each voicebot, in the order of ``proxy.voicebots``."""
    found = dict(re.findall(r"URI: (\S+?);transport=udp\s+FLAGS: (\w+)", proxy.rpc("dispatcher.list")))
    return [found.get(uri, "missing") for uri in proxy.voicebots]


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_kamailio_spreads_calls_over_two_voicebots_and_fails_over_when_one_drains(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    with fresh_postgres_schema() as database_url:
        servers = [
            VoicebotServer(
                tmp_path / name,
                models_dir=embedded_models_dir,
                index_dir=shared_index_dir(),
                database_url=database_url,
                log_format="json",
                call__greeting="Guten Tag.",
                queue__instance_name=name,
                sip__drain_timeout_s="30",  # long enough for every running call to end by itself
                # Ring briefly: a 180 sent right before the 200 may overtake it through Kamailio's parallel workers
                # (UDP); a phone ignores such a late 180, sipp would abort the call or wait for a second 200.
                sip__ring_s="0.3",
            )
            for name in ("bot-a", "bot-b")
        ]
        for server in servers:
            server.calls_dir.parent.mkdir(parents=True, exist_ok=True)
        voicebots = [f"sip:127.0.0.1:{s.sip_port}" for s in servers]
        proxy = Kamailio(tmp_path / "kamailio", voicebots, ping_interval_s=60)
        prober = Kamailio(tmp_path / "kamailio-prober", voicebots, ping_interval_s=1)
        sipp_dir = tmp_path / "sipp"
        sipp_dir.mkdir()
        (sipp_dir / "pcap").symlink_to(SIPP_PCAPS)
        first, second = servers
        sipp: subprocess.Popen[str] | None = None
        try:
            first.start()  # one after the other: the first one creates the schema
            second.start()
            proxy.start()
            prober.start()
            # Both voicebots are in the rotation ("AP": active, probing), for the prober after answering its OPTIONS.
            assert proxy.rpc("dispatcher.list").count("FLAGS: AP") == 2
            _wait_for(lambda: _states(prober) == ["AP", "AP"], 10, "both voicebots answer the probe")

            started = time.time()
            sipp = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIO), "-m", str(CALLS), "-l", str(CONCURRENCY), "-r", "2",
                 "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-s", "hotline",
                 f"127.0.0.1:{proxy.port}", "-timeout", "90s", "-timeout_error", "-nostdin",
                 "-trace_err", "-error_file", str(sipp_dir / "errors.log"),
                 "-trace_msg", "-message_file", str(sipp_dir / "messages.log")],
                cwd=sipp_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            # Mid-run: once the first voicebot has answered two calls (round robin: the second has too), it stops.
            _wait_for(lambda: len(_answered(first)) >= 2, 40, f"two calls on bot-a\n{first.log_tail()}")
            assert first.process is not None
            os.kill(first.process.pid, signal.SIGTERM)
            answered_before = {id(s): len(_answered(s)) for s in servers}

            output, _ = sipp.communicate(timeout=100)
            errors = (
                (sipp_dir / "errors.log").read_text(errors="replace")
                if (sipp_dir / "errors.log").exists()
                else ""
            )
            assert sipp.returncode == 0, f"sipp rc={sipp.returncode}\n{output[-3000:]}\n{errors[-3000:]}"
            assert first.process.wait(timeout=40) == 0, first.log_tail()
            # The voicebot that said 503 is out of the rotation ("IP": inactive, probing) of the balancer that
            # tried it, and of the prober, which sent it no INVITE: its probe met a 503 or, after the exit, nothing.
            assert _states(proxy) == ["IP", "AP"]
            assert "did not take the call (503)" in proxy.log_text()
            _wait_for(lambda: _states(prober) == ["IP", "AP"], 10, "the probe took bot-a out")
            assert second.wait_idle(20)
        finally:
            if sipp is not None and sipp.poll() is None:
                sipp.kill()
                sipp.wait(timeout=5)
            proxy.stop()
            prober.stop()
            codes = [server.stop() for server in servers]
        assert codes == [0, 0], [s.log_tail() for s in servers]

        on_first, on_second = _answered(first), _answered(second)
        assert len(on_first) + len(on_second) == CALLS, proxy.log_text()[-3000:]
        assert answered_before[id(first)] >= 2 and answered_before[id(second)] >= 1  # spread over both
        assert len(on_second) > answered_before[id(second)]  # new calls went to the other voicebot
        assert (
            len(on_first) < CALLS - answered_before[id(second)]
        )  # ... and not all of them to the drained one
        # Every line names its call; the caller's number came through Kamailio unchanged.
        assert all(
            entry.get("call_id") and "sip:+49215300" in entry["message"] for entry in on_first + on_second
        )
        records = [t for t in first.transcripts() if float(str(t["started_at"])) >= started - 1]
        assert sorted(str(r["sip_call_id"]) for r in records) == sorted(
            e["call_id"] for e in on_first + on_second
        )
        assert {r["ended_reason"] for r in records} == {"caller:bye_remote"}  # none was cut off by the drain
