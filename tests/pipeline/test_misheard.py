"""Confirm before answering when the bot may have misheard: real Whisper on espeak-ng clips at 8 kHz µ-law, the
real answer engine over the pipeline tests' pages, and one whole simulated call answered by keypad.

The clips in ``data/`` were made once with ``voicebot.benchmarks.caller_audio.spoken(text, 8000, voice="de+m3",
words_per_minute=140)`` and ``mulaw_roundtrip``: espeak-ng adds random noise to its consonants, so a clip made
anew differs from run to run (whisper-base itself is deterministic on the same audio). What whisper-base made of
six takes of each: "Sperrmüll anmelden." → "Sperrmüll, Anwälten." (log-prob -0.25 to -0.42: answered);
"Auto anmelden." → "Auto, Anmehlsen." (-0.92 to -1.16: the topic is asked); "Ja." → "Ja."; "Nein." → "Ein.".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import InputDTMFFrame
from pipecat.tests.utils import run_test

from knowledge import confirm
from knowledge.types import Action, Answer, AnswerRequest, AsrSignals, Turn
from voicebot.benchmarks.asr import transcribe_8k
from voicebot.benchmarks.caller_audio import silence
from voicebot.pipeline.call_script import DtmfRecorder
from voicebot.pipeline.frames import AsrResult, CallerQuestionFrame
from voicebot.pipeline.resources import CallResources
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import AsrSettings, Settings
from voicebot.simulate import read_wav, simulate_call

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
CLEAR = DATA / "sperrmuell-anmelden-8k.wav"
UNSURE = DATA / "auto-anmelden-8k.wav"
YES = DATA / "ja-8k.wav"
NO = DATA / "nein-8k.wav"


def phone_clip(path: Path) -> np.ndarray:
    pcm, rate = read_wav(path)
    assert rate == 8000
    return pcm


def heard(resources: CallResources, asr: AsrSettings, clip: Path) -> AsrResult:
    return transcribe_8k(resources.whisper, asr, phone_clip(clip), "de")


def request(result: AsrResult, history: tuple[Turn, ...] = ()) -> AnswerRequest:
    """What the answer step builds from a caller turn (see CallerQuestionFrame.asr_signals)."""
    signals = AsrSignals(result.avg_logprob, result.no_speech_prob)
    return AnswerRequest(result.text, history, asr_confidence=result.confidence, asr=signals)


def doc(answer: Answer) -> str:
    return answer.sources[0].split("#")[0] if answer.sources else ""


@pytest.fixture(scope="module")
def asr() -> AsrSettings:
    return Settings().asr  # the shipped recogniser settings, prompt included


async def test_clear_request_is_answered_directly(call_resources: CallResources, asr: AsrSettings) -> None:
    result = heard(call_resources, asr, CLEAR)
    answer = await call_resources.answer_engine.answer(request(result))
    assert (answer.action, doc(answer), answer.reason) == (Action.ANSWER, "sperrmuell", "curated_answer"), (
        result.text,
        result.avg_logprob,
        answer,
    )


async def test_unsure_request_is_confirmed_and_a_spoken_yes_answers_it(
    call_resources: CallResources, asr: AsrSettings
) -> None:
    engine = call_resources.answer_engine
    question = heard(call_resources, asr, UNSURE)
    asked = await engine.answer(request(question))
    assert (asked.action, asked.reason) == (Action.CLARIFY, "confirm"), (question.text, question.avg_logprob)
    assert asked.text == confirm.confirmation_question(
        "Auto anmelden, ummelden oder abmelden (Kfz-Zulassung)"
    )
    history = (Turn("caller", question.text), Turn("bot", asked.text))
    yes = heard(call_resources, asr, YES)
    answer = await engine.answer(request(yes, (*history, Turn("caller", yes.text))))
    # The Kfz page names another authority: its answer is a redirect, as it would be without the detour.
    assert (answer.action, doc(answer)) == (Action.REDIRECT, "kfz-zulassung"), (yes.text, answer)
    assert answer.reason.startswith("confirmed_")
    # The answer is the one to the original question on that page, as if it had been typed.
    typed = await engine.answer(AnswerRequest("Auto anmelden"))
    assert doc(typed) == "kfz-zulassung" and answer.text == typed.text


async def test_a_spoken_no_asks_what_it_is_about(call_resources: CallResources, asr: AsrSettings) -> None:
    engine = call_resources.answer_engine
    question = heard(call_resources, asr, UNSURE)
    asked = await engine.answer(request(question))
    assert asked.reason == "confirm", question.text
    no = heard(call_resources, asr, NO)
    history = (Turn("caller", question.text), Turn("bot", asked.text), Turn("caller", no.text))
    answer = await engine.answer(request(no, history))
    assert (answer.text, answer.reason) == ("Worum geht es denn?", "confirm_declined"), no.text


async def test_keypad_digits_answer_a_pending_confirmation_only() -> None:
    transcript = CallTranscript(channel="simulation", channel_call_id="confirm-keys")
    recorder = DtmfRecorder(transcript=transcript)
    keys = [InputDTMFFrame(button=KeypadEntry("1"))]
    down, _up = await run_test(recorder, frames_to_send=keys)
    assert not [f for f in down if isinstance(f, CallerQuestionFrame)]  # nothing was asked: just a digit

    transcript.add_caller_question(CallerQuestionFrame(text="Auto, Anmehlstunde.", language="de"))
    turn = transcript.add_bot_turn("answer", "")
    transcript.append_bot_text(turn, confirm.confirmation_question("Auto anmelden"))
    for digit, reply in (("1", "ja"), ("2", "nein")):
        keys = [InputDTMFFrame(button=KeypadEntry(digit))]
        down, _up = await run_test(DtmfRecorder(transcript=transcript), frames_to_send=keys)
        questions = [f for f in down if isinstance(f, CallerQuestionFrame)]
        assert [(q.text, q.confidence) for q in questions] == [(reply, None)]
        assert [str(f.button.value) for f in down if isinstance(f, InputDTMFFrame)] == [digit]
    down, _up = await run_test(
        DtmfRecorder(transcript=transcript), frames_to_send=[InputDTMFFrame(button=KeypadEntry("3"))]
    )
    assert not [f for f in down if isinstance(f, CallerQuestionFrame)]


async def test_keypad_1_in_a_call_answers_the_confirmed_topic(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    audio = np.concatenate([silence(2.5, 8000), phone_clip(UNSURE), silence(12.0, 8000)])
    result = await simulate_call(call_settings(), call_resources, audio, 8000, speed=3.0, dtmf=[(11.0, "1")])
    turns = result.transcript["turns"]
    bot = [t for t in turns if t["role"] == "bot" and t["kind"] == "answer"]
    question = next(t for t in turns if t["kind"] == "question")
    assert bot and bot[0]["reason"] == "confirm", (question["text"], bot)
    assert bot[0]["text"].startswith(confirm.CONFIRM_PREFIX)
    assert [t["text"] for t in turns if t["kind"] == "dtmf"] == ["1"]
    assert len(bot) == 2, bot
    assert bot[1]["reason"].startswith("confirmed_") and bot[1]["sources"][0].startswith("kfz-zulassung")


def test_spoken_benchmark_sorts_turns_into_the_four_outcomes(
    call_resources: CallResources, asr: AsrSettings, tmp_path: Path
) -> None:
    """`voicebot bench asr --spoken`: the stored clips stand in for the synthesized ones (same cache names)."""
    from knowledge.extractive import ExtractiveAnswerEngine
    from voicebot.benchmarks.misheard import SpokenItem, clip_path, run_spoken

    engine = call_resources.answer_engine
    assert isinstance(engine, ExtractiveAnswerEngine)
    items = [
        SpokenItem("Sperrmüll anmelden.", ("sperrmuell",), "de+m3", 140),
        SpokenItem("Auto anmelden.", ("kfz-zulassung",), "de+m3", 140),
        SpokenItem("Sperrmüll anmelden.", ("fundbuero",), "de+m3", 140),  # a deliberately wrong expectation
        SpokenItem("Auto anmelden.", ("fundbuero",), "de+m3", 140),
    ]
    for item, stored in zip(items, (CLEAR, UNSURE, CLEAR, UNSURE), strict=True):
        clip_path(item, tmp_path).write_bytes(stored.read_bytes())
    report = run_spoken(call_resources.whisper, asr, engine, items, tmp_path, "test")
    outcomes = [(r.outcome, r.confirmation_right) for r in report.results]
    assert outcomes == [("right", None), ("confirmed", True), ("wrong", None), ("confirmed", False)], [
        (r.heard, r.reason) for r in report.results
    ]
    data = report.to_dict()
    assert data["shares"] == {"right": 0.25, "confirmed": 0.5, "repeat": 0.0, "wrong": 0.25}
    assert (data["confirmations"], data["confirmations_right"]) == (2, 1)
    assert data["wrong_without_check"] == 0.5  # the wrong answer, and the confirmation of the wrong topic
    assert 0 < data["wer"] < 1.5


def test_bench_asr_rejects_a_negative_number_of_spoken_questions() -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app

    result = CliRunner().invoke(app, ["bench", "asr", "--spoken", "-1"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: --limit must be at least 1 and --spoken at least 0"
    ], result.output
