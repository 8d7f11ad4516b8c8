"""Hand-off routing by topic with real SIP peers: a baresip caller asks a Standesamt question, then presses 0; the
bot REFERs it to the Standesamt group's URI, where a sipp UAS (the group's staff phone) answers the call."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from readiness import wait_until_bound

from interop.peers import Baresip, VoicebotServer, free_port, spoken_turns_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# whisper-base hears few espeak-ng German words; "Standesamt" spoken slowly comes through as "Standelamt", which
# the engine answers from a Standesamt page. Two turns, as a caller would rephrase; one answered is enough.
QUESTIONS = ["Standesamt.", "Termin beim Standesamt."]


def _answered_with_sources(server: VoicebotServer, started: float, timeout_s: float) -> dict[str, Any]:
    """The live record of the call placed after ``started``, once a bot answer cites a page."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in server.transcripts():
            if float(str(record.get("started_at", 0))) < started - 1:
                continue
            turns = record.get("turns") or []
            if any(t["role"] == "bot" and t.get("sources") for t in turns):
                return record
        time.sleep(0.2)
    seen = [
        (t["role"], t["kind"], t["text"], t.get("sources"))
        for r in server.transcripts()[-1:]
        for t in r["turns"]
    ]
    raise AssertionError(f"no answer citing a page within {timeout_s} s: {seen}\n{server.log_tail(1500)}")


def test_a_standesamt_question_is_handed_to_the_standesamt_group(
    voicebot_server: VoicebotServer, tmp_path: Path, standesamt_port: int
) -> None:
    audio, _ends = spoken_turns_wav(
        QUESTIONS, tmp_path / "questions.wav", lead_s=3.0, gap_s=8.0, tail_s=45.0, words_per_minute=120
    )
    staff_dir = tmp_path / "staff"
    staff_dir.mkdir()
    staff = subprocess.Popen(
        [
            *("sipp", "-sn", "uas", "-rtp_echo", "-m", "1", "-i", "127.0.0.1", "-p", str(standesamt_port)),
            *("-mp", str(free_port()), "-timeout", "60s", "-timeout_error", "-nostdin", "-trace_err"),
        ],
        cwd=staff_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    caller = Baresip(tmp_path, "caller", audio, ["PCMU"])
    started = time.time()
    try:
        wait_until_bound(standesamt_port, "udp")
        caller.start(dial=voicebot_server.sip_uri, run_s=90)
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        _answered_with_sources(voicebot_server, started, timeout_s=40)
        caller.command("sndcode", "0")
        record = voicebot_server.closed_transcript_since(started, timeout_s=40)
        assert record["ended_reason"] == "transferred", (record["events"], caller.log_text()[-2500:])
        # baresip followed the REFER to the Standesamt phone; its hang-up ends the sipp UAS (INVITE … BYE).
        assert caller.wait_for_log("Call established", 5)
        # On a busy machine baresip may be ending already (its ctrl socket no longer answers).
        with contextlib.suppress(OSError):
            caller.command("hangup")
        staff_output, _ = staff.communicate(timeout=30)
        assert staff.returncode == 0, (
            f"the Standesamt phone did not complete INVITE…BYE:\n{staff_output[-2000:]}"
        )
    finally:
        caller.stop()
        if staff.poll() is None:
            staff.kill()
            staff.wait(timeout=5)

    target = f"sip:standesamt@127.0.0.1:{standesamt_port}"
    requested = [e for e in record["events"] if e["kind"] == "handoff_requested"]
    assert [(e["reason"], e["group"], e["department"]) for e in requested] == [
        ("handoff_key", "standesamt", "Standesamt")
    ], record["events"]
    started_events = [e for e in record["events"] if e["kind"] == "transfer_started"]
    assert [(e["target"], e["reason"]) for e in started_events] == [(target, "handoff_key")], record["events"]
    assert voicebot_server.wait_idle(), "bot leg not released after the transfer"
