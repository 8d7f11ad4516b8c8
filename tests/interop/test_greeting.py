"""The default greeting on a real SIP call (issue 14 item 2): baresip callers who talk during the greeting.

The greeting is built from the town's settings (town, privacy_url, the hand-off key). Its first sentence, the AI
disclosure, is always heard in full; a caller who speaks after it stops the rest and is answered, and a caller who
speaks during it is answered after it. Never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop.peers import (
    Baresip,
    VoicebotServer,
    read_wav,
    shared_index_dir,
    speech_seconds,
    spoken_turns_wav,
)
from voicebot.pipeline.call_script import compose_greeting, split_disclosure

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

GREETING = compose_greeting("Musterstadt", "musterstadt.example/datenschutz", "0")
DISCLOSURE, REST = split_disclosure(GREETING)
QUESTION = "Wie beantrage ich Wohngeld?"
TAIL_S = 16.0  # ASR + answer on a busy 2-core machine; baresip hangs up when its audio file ends


@pytest.fixture(scope="module")
def greeting_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path
) -> Iterator[VoicebotServer]:
    """The default greeting (no call.greeting set) and the default hand-off key."""
    server = VoicebotServer(
        tmp_path_factory.mktemp("voicebot-greeting"),
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        sip__rtp_inactivity_timeout_s="10",
    )
    server.start()
    yield server
    assert server.stop() == 0, f"voicebot serve did not shut down cleanly:\n{server.log_tail()}"


def _call(server: VoicebotServer, tmp_path: Path, lead_s: float) -> tuple[dict[str, Any], Baresip]:
    """baresip calls and asks ``QUESTION`` ``lead_s`` after the call is established; the closed record."""
    audio, ends = spoken_turns_wav([QUESTION], tmp_path / "caller.wav", lead_s=lead_s, gap_s=0, tail_s=TAIL_S)
    caller = Baresip(tmp_path, "caller", audio, ["PCMU"])
    started = time.time()
    caller.start(dial=server.sip_uri, run_s=60)
    try:
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        assert caller.wait_for_log("terminated", ends[-1] + TAIL_S + 15), caller.log_text()[-3000:]
    finally:
        caller.stop()
    record = server.closed_transcript_since(started)
    for turn in record["turns"]:
        print({k: turn.get(k) for k in ("start_s", "end_s", "role", "kind", "text", "played", "interrupted")})
    print(
        {
            t["kind"]: t.get("timings_ms")
            for t in record["turns"]
            if t["role"] == "bot" and t.get("timings_ms")
        }
    )
    return record, caller


def _answered_question(record: dict[str, Any]) -> dict[str, Any]:
    """The caller's first question, once it is clear that it was answered."""
    turns = record["turns"]
    questions = [i for i, t in enumerate(turns) if t["role"] == "caller" and t["kind"] == "question"]
    assert questions, f"the caller's words were dropped: {turns}"
    answers = [
        t
        for t in turns[questions[0] + 1 :]
        if t["role"] == "bot" and t["kind"] not in ("greeting", "silence_prompt", "goodbye")
    ]
    assert answers and answers[0]["text"], f"the caller's question got no answer: {turns}"
    return dict(turns[questions[0]])


def test_the_default_greeting_names_the_town_the_privacy_notice_and_the_key_for_a_person(
    greeting_server: VoicebotServer, tmp_path: Path
) -> None:
    """A caller who stays silent hears all of it, in two turns: disclosure, then the rest."""
    record, caller = _call(greeting_server, tmp_path, lead_s=TAIL_S)  # the question comes long after
    greetings = [t for t in record["turns"] if t["kind"] == "greeting"]
    assert [t["text"] for t in greetings] == [DISCLOSURE, REST]
    assert all(t["played"] and not t["interrupted"] for t in greetings), greetings
    assert "KI-Assistent von Musterstadt" in DISCLOSURE
    assert "Null" in REST and "musterstadt.example" in REST
    heard, rate = read_wav(caller.heard())
    print(f"greeting heard by the caller: {speech_seconds(heard[: int(10 * rate)], rate):.1f} s of speech")
    assert speech_seconds(heard[: int(10 * rate)], rate) > 3.0


def test_speech_after_the_disclosure_stops_the_greeting_and_is_answered(
    greeting_server: VoicebotServer, tmp_path: Path
) -> None:
    record, _ = _call(greeting_server, tmp_path, lead_s=4.0)  # the disclosure lasts ≈ 2.7 s
    disclosure, rest = [t for t in record["turns"] if t["kind"] == "greeting"]
    assert disclosure["played"] and not disclosure["interrupted"], disclosure
    assert rest["interrupted"] and not rest["played"], rest
    assert any(e["kind"] == "barge_in" for e in record["events"]), record["events"]
    assert _answered_question(record)["start_s"] > disclosure["end_s"]


def test_speech_during_the_disclosure_is_answered_after_it(
    greeting_server: VoicebotServer, tmp_path: Path
) -> None:
    record, _ = _call(greeting_server, tmp_path, lead_s=0.6)
    disclosure = next(t for t in record["turns"] if t["kind"] == "greeting")
    assert disclosure["played"] and not disclosure["interrupted"], disclosure
    assert (
        _answered_question(record)["start_s"] < disclosure["end_s"]
    )  # the caller spoke during the disclosure
