"""Graceful drain of a real `voicebot serve` (decision 0900): SIGTERM during a baresip call → /readyz says
draining, a new INVITE and an OPTIONS probe get 503 + Retry-After, the running call goes on until
``sip.drain_timeout_s``, then hears the restart notice and gets a BYE, and the process exits 0.

Its own server (the shared one must keep serving); the ready path of /readyz and /metrics are checked on it first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from interop.peers import Baresip, VoicebotServer, shared_index_dir
from voicebot.settings import CallSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

DRAIN_S = 4  # long enough for the checks below to meet the first call still running


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _first_final(port: int, method: str, call_id: str) -> dict[str, str]:
    """Send one out-of-dialog request over UDP; the status line and headers of the first final answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        sock.settimeout(5.0)
        sock.sendto(
            (
                f"{method} sip:hotline@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{call_id};rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:hotline@127.0.0.1>\r\n"
                f"Contact: <sip:probe@127.0.0.1:{local}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", port),
        )
        for _ in range(5):  # a 100 Trying would come first; a draining server sends none
            head = sock.recvfrom(65535)[0].decode().split("\r\n\r\n")[0].split("\r\n")
            if not head[0].startswith("SIP/2.0 1"):
                fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
                return {"status": head[0], **fields}
    raise AssertionError(f"no final answer to {method}")


def _silence(path: Path, seconds: int) -> Path:
    cmd = ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "trim", "0", str(seconds)]
    subprocess.run(cmd, check=True, timeout=30)
    return path


def test_sigterm_drains_refuses_new_calls_ends_the_running_one_politely_and_exits_0(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    workdir = tmp_path / "serve"
    workdir.mkdir()
    server = VoicebotServer(
        workdir,
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag.",
        sip__drain_timeout_s=str(DRAIN_S),
        sip__retry_after_s="17",
    )
    caller = Baresip(tmp_path, "caller", _silence(tmp_path / "silence.wav", 60), ["PCMU"])
    server.start()
    try:
        status, body = _get(f"{server.http_url}/readyz")
        assert status == 200, body
        ready: dict[str, Any] = json.loads(body)
        assert ready == {"status": "ready", "checks": {"models": "ok", "database": "ok", "sip": "ok"}}

        started = time.time()
        caller.start(dial=server.sip_uri, run_s=60)
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        server.wait_for_greeting_played(started)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)
        signalled = time.monotonic()

        for _ in range(50):  # bounded: the drain starts at once
            status, body = _get(f"{server.http_url}/readyz")
            if status == 503:
                break
            time.sleep(0.1)
        assert status == 503 and json.loads(body)["status"] == "draining", body
        invite = _first_final(server.sip_port, "INVITE", "second-call")
        probe = _first_final(server.sip_port, "OPTIONS", "lb-probe")
        status, metrics = _get(f"{server.http_url}/metrics")
        assert (invite["status"], invite.get("Retry-After")) == ("SIP/2.0 503 Service Unavailable", "17")
        assert (probe["status"], probe.get("Retry-After")) == ("SIP/2.0 503 Service Unavailable", "17")
        assert status == 200 and "voicebot_draining 1.0" in metrics
        assert 'voicebot_calls_active{channel="sip"} 1.0' in metrics  # the first call still runs

        assert caller.wait_for_log("terminated", DRAIN_S + 30), caller.log_text()[-3000:]
        assert time.monotonic() - signalled >= DRAIN_S  # not before the drain time was over
        assert server.process.wait(timeout=30) == 0, server.log_tail()
    finally:
        caller.stop()
        exit_code = server.stop()
    assert exit_code == 0
    (record,) = [t for t in server.transcripts() if float(t["started_at"]) >= started - 1]
    assert record["ended_reason"] == "drain"
    notice = record["turns"][-1]
    assert (notice["role"], notice["kind"], notice["played"]) == ("bot", "drain", True)
    assert notice["text"] == CallSettings().drain_message
