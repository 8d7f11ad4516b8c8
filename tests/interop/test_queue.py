"""The bot's own queue with real SIP peers (issue 10, way 2), in one run of a real ``voicebot serve`` on SQLite:

two baresip callers press the hand-off key and wait in the queue group "buergerbuero"; each hears its position and
the estimated wait (the second "an zweiter Stelle") with hold audio in between — its recorded audio is not silent
when the announcements were played; staff accepts the first caller (``accept``, as the console does), the server
rings the member's phone (a third baresip that answers by itself) and bridges: RTP flows both ways (the bridge's
packet counts); the second caller's next announcement says "an erster Stelle". Then the server is killed with
``kill -9`` while the second caller waits; the restarted server (same ``queue.instance_name``) has left the call's
record and turns in place and the queue entry ``abandoned``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from readiness import wait_until_bound

from interop.peers import (
    Baresip,
    VoicebotServer,
    espeak_wav,
    free_port,
    read_wav,
    shared_index_dir,
    speech_seconds,
)
from voicebot.db.engine import make_engine
from voicebot.db.models import Availability, QueueStatus
from voicebot.db.repository import Repository
from voicebot.staff.queue_notify import accept

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GROUP = "buergerbuero"
SCENARIOS = Path(__file__).parent / "scenarios"
ANNOUNCE_S = 8.0  # longer than an announcement (≈ 6 s of espeak): hold audio is heard in between


def _server(workdir: Path, models_dir: Path) -> VoicebotServer:
    return VoicebotServer(
        workdir,
        models_dir=models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag.",
        sip__transfer_timeout_s="10",
        sip__rtp_inactivity_timeout_s="30",
        handoff__groups=json.dumps([{"name": GROUP, "staff_uri": "sip:unused@127.0.0.1:9", "mode": "queue"}]),
        handoff__default_group=GROUP,
        queue__announce_interval_s=str(ANNOUNCE_S),
        queue__poll_interval_s="0.3",
        queue__handling_time_s="60",
        queue__max_wait_s="120",
        queue__instance_name="rathaus-queue-test",
    )


def _silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.zeros(int(seconds * 8000), dtype=np.int16).tobytes())
    return path


def _events(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["kind"] == kind]


def _announcements(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in record["turns"] if t["kind"] == "queue_position" and t["played"]]


def _queue_caller(server: VoicebotServer, caller: Baresip, others: set[str]) -> tuple[dict[str, Any], float]:
    """Dial, wait for the greeting, press the hand-off key 0; the record once the caller is queued, and when
    the call was established (the start of the caller's recording)."""
    caller.start(dial=server.sip_uri, run_s=120)
    assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
    established = time.time()
    greeted = server.wait_for_record(
        lambda r: (
            r["call_id"] not in others and any(t["kind"] == "greeting" and t["played"] for t in r["turns"])
        ),
        f"{caller.name}: greeting played",
    )
    caller.command("sndcode", "0")
    queued = server.wait_for_record(
        lambda r: r["call_id"] == greeted["call_id"] and bool(_events(r, "queued")),
        f"{caller.name} queued",
    )
    return queued, established


def _metric(server: VoicebotServer, sample: str) -> float:
    """One sample of the server's /metrics (the test runs on loopback, which http.metrics_networks admits)."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=5).text
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    raise AssertionError(f"{sample} not in /metrics:\n{text[-2000:]}")


def _loud_share(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    window = samples[int(max(0.0, start) * rate) : int(end * rate)]
    return speech_seconds(window, rate) / max(1e-3, end - start)


def test_callers_wait_hear_their_place_and_the_first_is_put_through_to_staff(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    workdir = tmp_path / "serve"
    workdir.mkdir()
    server = _server(workdir, embedded_models_dir)
    staff_voice = espeak_wav("Bürgerbüro, guten Tag.", tmp_path / "staff.wav", tail_s=30)
    staff = Baresip(tmp_path, "anna", staff_voice, ["PCMU"], answer_automatically=True)
    first = Baresip(tmp_path, "first", _silence(tmp_path / "first.wav", 100), ["PCMU"])
    second = Baresip(tmp_path, "second", _silence(tmp_path / "second.wav", 100), ["PCMA"])
    restarted: VoicebotServer | None = None
    server.start()
    repository = Repository(make_engine(f"sqlite:///{server.database_file}"))
    try:
        staff.start(run_s=120)
        anna = repository.add_staff_user("anna", "no sign-in in this test")
        repository.set_phone(anna.id, staff.uri, [GROUP])
        repository.set_availability(anna.id, Availability.AVAILABLE)
        staff_user = repository.staff_user("anna")  # with the phone and groups just set
        assert staff_user is not None
        anna = staff_user

        one, _ = _queue_caller(server, first, set())
        two, second_established = _queue_caller(server, second, {one["call_id"]})
        assert [e["position"] for e in _events(one, "queued")] == [1]
        assert [e["position"] for e in _events(two, "queued")] == [2]
        assert _metric(server, "voicebot_queue_waiting") == 2.0  # the queue length on /metrics
        two = server.wait_for_record(
            lambda r: r["call_id"] == two["call_id"] and bool(_announcements(r)),
            "second caller: first announcement played",
        )
        assert _announcements(two)[0]["text"].startswith(
            "Sie sind an zweiter Stelle. Die Wartezeit beträgt etwa zwei Minuten."
        )

        # Staff accepts the first caller; the server holding it rings anna's phone and bridges.
        (entry,) = repository.queue_entries_of(one["call_id"])
        accepted = time.time()
        assert accept(repository, entry.id, anna) is None
        assert staff.wait_for_log("Call established", 15), staff.log_text()[-3000:]
        server.wait_for_record(
            lambda r: r["call_id"] == one["call_id"] and bool(_events(r, "queue_connected")),
            "connected",
        )
        assert _metric(server, "voicebot_queue_waiting") == 1.0
        assert _metric(server, 'voicebot_queue_wait_seconds_count{outcome="connected"}') == 1.0
        time.sleep(2.0)  # audio flows both ways through the bridge
        first.stop()  # baresip hangs up (BYE) as it quits
        one = server.wait_for_record(
            lambda r: r["call_id"] == one["call_id"] and bool(_events(r, "transfer_ended")),
            "bridge ended",
        )
        (offered,) = _events(one, "queue_offered")
        assert (offered["offered_to"], offered["target"]) == (anna.id, staff.uri)
        (ended,) = _events(one, "transfer_ended")
        for leg in ("caller_packets_in", "caller_packets_out", "staff_packets_in", "staff_packets_out"):
            assert ended[leg] > 50, ended  # > 1 s of 20 ms packets each way
        done = repository.queue_entry(entry.id)
        assert done is not None and (done.status, done.staff_user_id) == (QueueStatus.ANSWERED.value, anna.id)

        # The second caller moved up: its next announcement, after the accept, says so.
        moved_after = accepted - float(two["started_at"])
        two = server.wait_for_record(
            lambda r: (
                r["call_id"] == two["call_id"] and any(t["start_s"] > moved_after for t in _announcements(r))
            ),
            "second caller: announcement after the accept",
            timeout_s=ANNOUNCE_S + 15,
        )
        later = [t for t in _announcements(two) if t["start_s"] > moved_after]
        assert later[0]["text"] == "Sie sind an erster Stelle. Die Wartezeit beträgt etwa eine Minute.", later
        positions = [e["position"] for e in _events(two, "queue_announcement")]
        assert positions[0] == 2 and positions[-1] == 1, positions

        # Bert accepts the second caller, but his phone is busy (sipp: 180, then 486): the caller keeps waiting,
        # first in line, and hears so again; no call-back offer (that is for a wait that ends).
        bert_port = free_port()
        bert = repository.add_staff_user("bert", "no sign-in in this test")
        repository.set_phone(bert.id, f"sip:bert@127.0.0.1:{bert_port}", [GROUP])
        busy = subprocess.Popen(
            [
                *("sipp", "-sf", str(SCENARIOS / "uas_reject.xml"), "-m", "1", "-i", "127.0.0.1"),
                *(
                    "-p",
                    str(bert_port),
                    "-mp",
                    str(free_port()),
                    "-timeout",
                    "30s",
                    "-timeout_error",
                    "-nostdin",
                ),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_bound(bert_port, "udp")
            (waiting,) = repository.queue_entries_of(two["call_id"])
            heard_before = len(_announcements(two))
            bert_user = repository.staff_user("bert")
            assert bert_user is not None
            assert accept(repository, waiting.id, bert_user) is None
            assert busy.wait(timeout=20) == 0  # it got the INVITE, rejected it and took the ACK
        finally:
            if busy.poll() is None:
                busy.kill()
                busy.wait(timeout=5)
        two = server.wait_for_record(
            lambda r: r["call_id"] == two["call_id"] and len(_announcements(r)) > heard_before,
            "second caller: announcement after the busy phone",
            timeout_s=20,
        )
        kinds = [e["kind"] for e in two["events"]]
        steps = ["queue_offered", "transfer_started", "transfer_failed", "queue_back_to_waiting"]
        assert [kinds.index(k) for k in steps] == sorted(kinds.index(k) for k in steps), kinds
        assert len(kinds) - 1 - kinds[::-1].index("queue_announcement") > kinds.index("queue_back_to_waiting")
        assert _events(two, "transfer_failed")[0]["code"] == 486
        assert _announcements(two)[-1]["text"].startswith("Sie sind an erster Stelle.")
        assert "transfer_failed" not in [t["kind"] for t in two["turns"]]  # no call-back offer
        back = repository.queue_entry(waiting.id)
        assert back is not None and (back.status, back.offered_to) == (QueueStatus.WAITING.value, None)

        # kill -9 while the second caller waits.
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        assert server.process.wait(timeout=10) == -signal.SIGKILL
        second.stop()  # baresip ends the call and completes its recording
        heard, rate = read_wav(second.heard())
        offset = float(two["started_at"]) - second_established  # call time → recording time
        for turn in _announcements(two):
            share = _loud_share(heard, rate, turn["end_s"] + offset - 2.0, turn["end_s"] + offset - 0.2)
            print(f"announcement {turn['text'][:26]!r}: {share:.0%} of 20 ms windows above -40 dBFS")
            assert share > 0.6, (turn, share)
        # Hold audio between the first two announcements (the chime, not silence).
        before, after = _announcements(two)[:2]
        share = _loud_share(heard, rate, before["end_s"] + offset + 0.5, after["start_s"] + offset)
        print(f"hold audio between the announcements: {share:.0%} of 20 ms windows above -40 dBFS")
        assert share > 0.3, share

        restarted = _server(workdir, embedded_models_dir)
        restarted.start()  # abandons what the killed run held before it takes calls
        (waiting,) = repository.queue_entries_of(two["call_id"])
        assert waiting.status == QueueStatus.ABANDONED.value and waiting.ended_at is not None
        kept = next(r for r in restarted.transcripts() if r["call_id"] == two["call_id"])
        assert kept["ended_reason"] == "interrupted"
        assert [t["kind"] for t in kept["turns"][: len(two["turns"])]] == [t["kind"] for t in two["turns"]]
        assert len(_announcements(kept)) >= 2
    finally:
        for peer in (first, second, staff):
            peer.stop()
        repository.engine.dispose()
        if server.process is not None and server.process.poll() is None:
            server.stop()
        if restarted is not None:
            assert restarted.stop() == 0, restarted.log_tail()
