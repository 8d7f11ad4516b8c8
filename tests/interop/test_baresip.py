"""baresip (a real SIP softphone) calls `voicebot serve` over loopback: every codec, spoken answers, REFER hand-off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from heard import heard_as

from interop.peers import Baresip, VoicebotServer, espeak_wav, read_wav, speech_seconds, spoken_turns_wav
from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# whisper-base hears few espeak-ng German words reliably; single municipal keywords it mostly does. The caller
# tries two of them in two turns (as a real caller would rephrase) and one must come through.
QUESTIONS = ["Wohngeld.", "Anwohnerparken."]
QUESTION_KEYS = ("wohngeld", "anwohnerparken")
LEAD_S = 3.0  # the short greeting is over by then
GAP_S = 8.0  # the bot answers (or asks back) in between
TAIL_S = 12.0  # ASR + answer on a busy 2-core machine; baresip hangs up when its audio file ends


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "opus"])
def test_caller_hears_a_spoken_answer_and_the_question_is_transcribed(
    voicebot_server: VoicebotServer, tmp_path: Path, codec: str
) -> None:
    audio, question_ends = spoken_turns_wav(
        QUESTIONS, tmp_path / "questions.wav", lead_s=LEAD_S, gap_s=GAP_S, tail_s=TAIL_S
    )
    caller = Baresip(tmp_path, "caller", audio, [codec])
    started = time.time()
    caller.start(dial=voicebot_server.sip_uri, run_s=90)
    try:
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        # baresip hangs up (BYE) when the audio file ends
        assert caller.wait_for_log("terminated", question_ends[-1] + TAIL_S + 15), caller.log_text()[-3000:]
    finally:
        caller.stop()

    transcript = voicebot_server.closed_transcript_since(started)
    heard, heard_rate = read_wav(caller.heard())
    after_question = heard[int((question_ends[0] + 0.3) * heard_rate) :]
    assert speech_seconds(after_question, heard_rate) > 0.5, "no bot speech after the question"
    assert speech_seconds(heard, heard_rate) > 1.5, "greeting not heard"

    turns = transcript["turns"]
    assert isinstance(turns, list)
    questions = [t["text"] for t in turns if t["role"] == "caller" and t["kind"] == "question"]
    assert any(heard_as(key, text) for text in questions for key in QUESTION_KEYS), (
        f"question not transcribed: {turns}"
    )
    answers = [t for t in turns if t["role"] == "bot" and t["kind"] not in ("greeting", "silence_prompt")]
    assert answers and answers[0]["text"], f"no bot answer in {turns}"
    assert transcript["ended_reason"], transcript
    assert voicebot_server.wait_idle(), "call not released after BYE"


def test_caller_follows_refer_to_the_staff_phone(
    voicebot_server: VoicebotServer, tmp_path: Path, staff_port: int
) -> None:
    """Key 0 asks for a human: the bot says so, REFERs baresip to staff, and leaves the call once staff answers."""
    silence = espeak_wav("Hallo.", tmp_path / "caller.wav", lead_s=0.5, tail_s=40)
    staff_audio = espeak_wav("Bürgerbüro, Sie sprechen mit Frau Schmidt.", tmp_path / "staff.wav", tail_s=30)
    staff = Baresip(tmp_path, "staff", staff_audio, ["PCMU"], answer_automatically=True, sip_port=staff_port)
    caller = Baresip(tmp_path, "caller", silence, ["PCMU"])
    started = time.time()
    staff.start(run_s=60)
    try:
        caller.start(dial=voicebot_server.sip_uri, run_s=60)
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        voicebot_server.wait_for_greeting_played(started)
        caller.command("sndcode", "0")
        assert staff.wait_for_log("Call established", 40), (
            f"staff never got the transferred call\ncaller:\n{caller.log_text()[-3000:]}\n"
            f"server:\n{voicebot_server.log_tail()}"
        )
        transcript = voicebot_server.closed_transcript_since(started)
    finally:
        caller.stop()
        staff.stop()

    events = [e["kind"] for e in transcript["events"]]
    assert "transfer_started" in events and "transfer_referred" in events, transcript["events"]
    assert transcript["ended_reason"] == "transferred"
    turns = transcript["turns"]
    assert isinstance(turns, list)
    assert any(t["role"] == "caller" and t["kind"] == "dtmf" and t["text"] == "0" for t in turns), turns
    assert any(t["role"] == "bot" and t["kind"] == "handoff" for t in turns), turns
    assert voicebot_server.wait_idle(), "bot leg not released after the transfer"
    # The PBX (here: baresip following the REFER) took the caller: the hand-off's queue entry is answered.
    engine = make_engine(f"sqlite:///{voicebot_server.database_file}")
    try:
        (entry,) = Repository(engine).queue_entries_of(transcript["call_id"])
    finally:
        engine.dispose()
    assert (entry.mode, entry.status, entry.reason) == ("pbx", "answered", "handoff_key")


def test_bot_ends_a_silent_call_with_bye(voicebot_server: VoicebotServer, tmp_path: Path) -> None:
    """The caller says nothing: the bot asks once whether anyone is there, then says goodbye and hangs up (BYE)."""
    silence = espeak_wav("Hallo?", tmp_path / "silence.wav", lead_s=3.0, tail_s=45)
    caller = Baresip(tmp_path, "caller", silence, ["PCMA"])
    started = time.time()
    caller.start(dial=voicebot_server.sip_uri, run_s=70)
    try:
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        assert caller.wait_for_log("terminated", 40), caller.log_text()[-3000:]
        # Our audio file lasts 48 s: a call that ended before that was ended by the bot.
        assert time.time() - started < 45
    finally:
        caller.stop()
    transcript = voicebot_server.closed_transcript_since(started)
    turns = transcript["turns"]
    assert isinstance(turns, list)
    assert [t["kind"] for t in turns if t["role"] == "bot"][-2:] == ["silence_prompt", "goodbye"], turns
    assert not str(transcript["ended_reason"]).startswith("caller:"), transcript["ended_reason"]
    assert voicebot_server.wait_idle()
