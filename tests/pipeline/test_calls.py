"""Whole simulated calls through the real pipeline: Whisper base, Silero VAD, smart-turn v3, espeak-ng, real engine.

Caller audio is German espeak-ng speech (a worst case for Whisper, so assertions on recognised words are
tolerant: one key word of several) and, for the non-German check, a real recorded English Asterisk prompt.
All calls but one run at 3× real time; ``test_phone_call_in_real_time`` runs at real time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from heard import heard_as

from knowledge.types import Action, AnswerRequest, AsrSignals, Turn
from voicebot.benchmarks.caller_audio import ComposedCall, compose_call, silence
from voicebot.metrics import METRICS
from voicebot.pipeline.resources import CallResources
from voicebot.settings import Settings
from voicebot.simulate import SimulationResult, read_wav, simulate_call, speech_segments, write_wav

pytestmark = pytest.mark.slow
SPEED = 3.0


def _metric(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def _calls_ended(channel: str) -> dict[str, float]:
    """voicebot_calls_ended_total of ``channel``, by outcome."""
    (family,) = [m for m in METRICS.registry.collect() if m.name == "voicebot_calls_ended"]
    return {
        s.labels["outcome"]: s.value
        for s in family.samples
        if s.name.endswith("_total") and s.labels["channel"] == channel
    }


def turns(result: SimulationResult, role: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        t for t in result.transcript["turns"] if t["role"] == role and (kind is None or t["kind"] == kind)
    ]


def contains_any(text: str, words: tuple[str, ...]) -> bool:
    """One of the keywords (folded, as the retriever folds them) was heard, up to one wrong letter in four."""
    return any(heard_as(word, text) for word in words)


async def run_call(
    settings: Settings,
    resources: CallResources,
    parts: list[str | float],
    rate: int = 16000,
    speed: float = SPEED,
) -> tuple[SimulationResult, ComposedCall]:
    composed = compose_call(parts, rate)
    result = await simulate_call(settings, resources, composed.audio, rate, speed=speed)
    return result, composed


async def test_multi_turn_call_answers_each_question_and_keeps_the_transcript(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings()
    turns_measured = _metric("voicebot_stage_seconds_count", stage="voice_to_voice")
    utterances_decoded = _metric("voicebot_asr_real_time_factor_count")
    calls_ended = _calls_ended("simulation")
    result, composed = await run_call(
        settings,
        call_resources,
        [
            2.5,
            "Ich habe eine Frage zum Personalausweis.",
            9.0,
            "Wo ist das Fundbüro?",
            9.0,
        ],
    )
    questions = turns(result, "caller", "question")
    answers = turns(result, "bot", "answer")
    assert len(questions) == 2, questions
    assert contains_any(questions[0]["text"], ("frage", "ausweis"))
    assert contains_any(questions[1]["text"], ("fundburo",))
    assert len(answers) == 2
    for question in questions:
        assert question["asr"] and question["asr"][0]["avg_logprob"] < 0
        assert 0 <= question["asr_confidence"] <= 1
    for question, answer in zip(questions, answers, strict=True):
        assert answer["action"] in {"answer", "clarify", "handoff", "redirect"}
        assert answer["played"] != answer["interrupted"]  # a long answer may be cut by the next question
        stages = set(question["timings_ms"]) | set(answer["timings_ms"])
        assert {"asr", "endpointing", "answer_first_sentence", "tts_first_chunk", "voice_to_voice"} <= stages
    assert answers[-1]["played"]
    assert answers[1]["sources"], answers[1]  # the Fundbüro page
    # The bot spoke after each question (greeting, answer 1, answer 2), at the moments it answered.
    bot = result.bot_segments
    for _text, _start, end in composed.utterances:
        assert any(start >= end for start, _ in bot)
    on_disk = json.loads((settings.paths.calls_dir / f"{result.call_id}.json").read_text())
    assert [t["text"] for t in on_disk["turns"] if t["role"] == "caller"] == [q["text"] for q in questions]
    # The AI disclosure (the greeting's first sentence) was heard in full, and the record says so.
    (disclosure,) = [e for e in on_disk["events"] if e["kind"] == "ai_disclosure"]
    assert disclosure["played"] is True and disclosure["turn"] == 0 and disclosure["seconds"] > 0, disclosure
    # What /metrics shows (decision 0900): each answered turn's latency, the call's end by its reason.
    assert _metric("voicebot_stage_seconds_count", stage="voice_to_voice") == turns_measured + 2
    assert _metric("voicebot_asr_real_time_factor_count") >= utterances_decoded + 2
    outcome = result.transcript["ended_reason"]
    assert _calls_ended("simulation") == {**calls_ended, outcome: calls_ended.get(outcome, 0.0) + 1}


async def test_barge_in_stops_the_bot_and_marks_its_turn_interrupted(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings(greeting_interruptible=True)
    settings.call.greeting = (  # ≈ 10 s, its first sentence ≈ 3.5 s: the caller talks over that (all interruptible)
        "Guten Tag, hier spricht der KI-Assistent der Stadt Musterstadt. "
        "Ihr Anruf wird kurz gespeichert, Datenschutzhinweise auf musterstadt.example. Wie kann ich helfen?"
    )
    result, composed = await run_call(
        settings, call_resources, [3.0, "Ich habe eine Frage zum Personalausweis.", 9.0]
    )
    greeting = turns(result, "bot", "greeting")[0]
    assert greeting["interrupted"] and not greeting["played"]
    assert any(event["kind"] == "barge_in" for event in result.transcript["events"])
    # Here the disclosure itself was interruptible and interrupted: the record says it was not heard in full.
    (disclosure,) = [e for e in result.transcript["events"] if e["kind"] == "ai_disclosure"]
    assert disclosure["played"] is False and disclosure["seconds"] > 0, disclosure
    _text, caller_start, caller_end = composed.utterances[0]
    # Bot audio stops once the caller is heard (VAD start window 0.2 s) and stays off while they speak.
    rate = result.reply_rate
    while_caller_speaks = result.reply[int((caller_start + 0.8) * rate) : int(caller_end * rate)]
    assert np.abs(while_caller_speaks.astype(np.int32)).max() < 300
    assert turns(result, "caller", "question"), "the barge-in utterance is still answered"
    # At the output, the bot stops within the 20 ms chunk being played when the interruption arrives.
    cut = next(t for t in result.interruptions_s if caller_start < t < caller_end)
    after_cut = result.reply[int((cut + 0.025) * rate) : int((cut + 0.5) * rate)]
    assert np.abs(after_cut.astype(np.int32)).max() < 300


async def test_silence_asks_once_then_ends_the_call(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings(silence_timeout_s=2.5)
    result, _ = await run_call(settings, call_resources, [14.0])
    kinds = [t["kind"] for t in turns(result, "bot")]
    assert kinds == ["greeting", "silence_prompt", "goodbye"]
    assert turns(result, "bot", "silence_prompt")[0]["text"] == "Sind Sie noch da?"
    assert result.transcript["ended_reason"] == "silence"
    assert [e["reason"] for e in result.events if e["type"] == "CallEndingFrame"] == ["silence"]


async def test_the_call_ends_politely_at_its_maximum_length(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings(max_call_s=6.0)
    result, _ = await run_call(settings, call_resources, [9.0, "Wo ist das Fundbüro?", 5.0])
    assert [t["kind"] for t in turns(result, "bot")] == [
        "greeting",
        "max_duration",
    ]  # the late question unanswered
    closing = turns(result, "bot", "max_duration")[0]
    assert closing["text"] == Settings().call.max_call_message and closing["played"]
    assert closing["start_s"] >= 6.0  # call time, not wall time (the simulation runs 3x faster)
    assert result.transcript["ended_reason"] == "max_duration"
    assert [e["reason"] for e in result.events if e["type"] == "CallEndingFrame"] == ["max_duration"]


async def test_repeat_request_and_goodbye(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings()
    result, _ = await run_call(
        settings,
        call_resources,
        [
            2.5,
            "Wo ist das Fundbüro?",
            9.0,
            "Das habe ich nicht verstanden, wie bitte?",
            9.0,
            "Auf Wiederhören.",
            5.0,
        ],
    )
    bot = turns(result, "bot")
    answer = next(t for t in bot if t["kind"] == "answer")
    repeat = next(t for t in bot if t["kind"] == "repeat")
    assert repeat["text"] == answer["text"]
    heard = [t["text"] for t in turns(result, "caller")]
    assert bot[-1]["kind"] == "goodbye" and bot[-1]["text"] == settings.call.goodbye, heard
    assert result.transcript["ended_reason"] == "goodbye"


async def decisions_replayed(
    result: SimulationResult, resources: CallResources
) -> list[tuple[str, str, str]]:
    """(heard question, action the call took, action the engine takes on that text and history) per answer.

    What Whisper hears varies with timing on a loaded machine (issue 7); what the pipeline must do with what it
    heard does not. Replaying the recognised text through the same engine separates the two.
    """
    history: list[Turn] = []
    replayed: list[tuple[str, str, str]] = []
    question: dict[str, Any] | None = None
    for turn in result.transcript["turns"]:
        if turn["role"] == "caller" and turn["kind"] == "question":
            question = turn
            history.append(Turn(role="caller", text=turn["text"]))
        elif turn["role"] == "bot" and turn["kind"] in ("answer", "clarify") and question is not None:
            request = AnswerRequest(
                question["text"],
                history=history[-6:],
                language=question["language"],
                asr_confidence=question["asr_confidence"],
                asr=AsrSignals(
                    min(result["avg_logprob"] for result in question["asr"]),
                    max(result["no_speech_prob"] for result in question["asr"]),
                )
                if question["asr"]
                else None,
            )
            expected = await resources.answer_engine.answer(request)
            replayed.append((question["text"], turn["action"], expected.action.value))
            history.append(Turn(role="bot", text=turn["text"]))
            question = None
    return replayed


async def test_out_of_scope_questions_are_clarified_then_handed_off(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    # The policy itself, on the words as typed: an out-of-scope question is clarified once, then handed off.
    pizza = "Ich möchte eine Pizza bestellen."
    first = await call_resources.answer_engine.answer(AnswerRequest(pizza))
    assert first.action == Action.CLARIFY, first
    asked_back = [Turn("caller", pizza), Turn("bot", first.text), Turn("caller", pizza)]
    second = await call_resources.answer_engine.answer(AnswerRequest(pizza, history=asked_back))
    assert second.action == Action.HANDOFF, second

    # The call: every decision is the engine's decision on what Whisper heard, in the conversation so far.
    settings = call_settings()
    result, _ = await run_call(settings, call_resources, [2.5, pizza, 9.0, pizza, 9.0])
    replayed = await decisions_replayed(result, call_resources)
    assert replayed, f"no question was answered: {result.transcript['turns']}"
    for heard, taken, expected in replayed:
        assert taken == expected, f"heard {heard!r}: the call took {taken}, the engine says {expected}"
    handoffs = [e for e in result.events if e["type"] == "HandoffRequestFrame"]
    if any(taken == "handoff" for _, taken, _ in replayed):
        assert handoffs and handoffs[0]["summary"].startswith("Frage: ")
        recorded = [e["reason"] for e in result.transcript["events"] if e["kind"] == "handoff_requested"]
        assert recorded[:1] == [handoffs[0]["reason"]] == ["low_confidence"], recorded
    else:
        assert not handoffs, handoffs


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_phone_band_and_wideband_input(
    rate: int, call_resources: CallResources, call_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    composed = compose_call([2.5, "Wo ist das Fundbüro?", 8.0], rate)
    stereo = np.stack([composed.audio, composed.audio], axis=1)
    wav = tmp_path / "caller.wav"
    import soundfile

    soundfile.write(str(wav), stereo, rate, subtype="PCM_16")
    audio, read_rate = read_wav(wav)
    assert read_rate == rate and audio.ndim == 1
    dtmf = [(1.0, "1"), (1.5, "#")] if rate == 8000 else []
    result = await simulate_call(call_settings(), call_resources, audio, read_rate, speed=SPEED, dtmf=dtmf)
    if dtmf:  # keypad digits reach the end of the pipeline (the hand-off uses them) and the transcript
        assert [t["text"] for t in turns(result, "caller", "dtmf")] == ["1", "#"]
        assert {"TimelineOutputTransport", "PlayoutTracker"} <= result.dtmf_seen_by
    question = turns(result, "caller", "question")[0]
    # The caller's whole utterance (≈ 1.5 s of speech) reached the recogniser at the pipeline's rate, whatever the
    # line's rate; which words whisper-base makes of espeak-ng at 8 kHz varies with VAD timing (issue 7), so the
    # words are checked on wideband audio, and on the phone band the decision is checked against what was heard.
    assert sum(result["audio_s"] for result in question["asr"]) > 1.0, question["asr"]
    if rate > 8000:
        assert contains_any(question["text"], ("fundburo",)), question["text"]
    replayed = await decisions_replayed(result, call_resources)
    assert replayed and all(taken == expected for _, taken, expected in replayed), replayed
    assert result.reply_rate == rate
    write_wav(tmp_path / "reply.wav", result.reply, result.reply_rate)
    assert read_wav(tmp_path / "reply.wav")[1] == rate


async def test_odd_audio_is_handled(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings()
    speech = compose_call([2.0, "Wo ist das Fundbüro?", 7.0], 16000).audio
    clipped = np.clip(speech.astype(np.int32) * 6, -32768, 32767).astype(np.int16)  # very loud
    offset = np.clip(speech.astype(np.int32) + 9000, -32768, 32767).astype(np.int16)
    odd_rate = compose_call([2.0, "Wo ist das Fundbüro?", 7.0], 11025).audio
    for audio, rate, expect_question in [
        (np.zeros(0, dtype=np.int16), 16000, False),
        (clipped, 16000, True),
        (offset, 16000, True),
        (odd_rate, 11025, True),
    ]:
        result = await simulate_call(settings, call_resources, audio, rate, speed=SPEED)
        assert turns(result, "bot", "greeting")[0]["played"]
        if expect_question:
            assert turns(result, "caller", "question"), rate
            assert turns(result, "bot", "answer")


async def test_english_caller_is_detected_on_a_real_phone_recording(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings()
    settings.asr.detect_language = True
    settings.asr.languages = ["de", "en"]
    prompt, rate = read_wav(Path("/usr/share/asterisk/sounds/en/agent-alreadyon.wav"))
    audio = np.concatenate([silence(2.5, rate), prompt, silence(8.0, rate)])
    result = await simulate_call(settings, call_resources, audio, rate, speed=SPEED)
    question = turns(result, "caller", "question")[0]
    assert question["language"] == "en"
    assert contains_any(question["text"], ("agent", "logged", "number"))
    assert turns(result, "bot", "answer")[0]["language"] == "en"


async def test_answer_timeout_gives_an_apology_and_the_call_goes_on(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    settings = call_settings(answer_first_sentence_timeout_s=0.0, answer_timeout_s=0.0)
    result, _ = await run_call(settings, call_resources, [2.5, "Wo ist das Fundbüro?", 8.0])
    apology = turns(result, "bot", "apology")
    assert apology and apology[0]["text"].startswith(settings.call.apology)
    assert apology[0]["played"]
    assert any(e["kind"] == "answer_error" for e in result.transcript["events"])


async def test_phone_call_in_real_time(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    """8 kHz, the full greeting (≤ 10 s), one question, in real time."""
    settings = call_settings()
    settings.call.greeting = Settings().call.greeting
    result, _ = await run_call(
        settings, call_resources, [10.5, "Wo ist das Fundbüro?", 6.0], rate=8000, speed=1.0
    )
    greeting = turns(result, "bot", "greeting")[0]
    assert greeting["played"]
    bot = speech_segments(result.reply, result.reply_rate)
    greeting_audio = [(start, end) for start, end in bot if start < 10.5]  # before the caller speaks
    assert greeting_audio[0][0] < 1.0
    assert greeting_audio[-1][1] - greeting_audio[0][0] <= 10.0  # the notice is spoken within 10 s
    assert turns(result, "caller", "question") and turns(result, "bot", "answer")
    assert result.reply_rate == 8000


async def test_two_simultaneous_calls_share_the_models(
    call_resources: CallResources, call_settings: Callable[..., Settings]
) -> None:
    """What the server does: many pipelines over one set of models, each with its own state and transcript."""
    import asyncio

    settings = call_settings()
    first = compose_call([2.5, "Wo ist das Fundbüro?", 8.0], 8000)
    second = compose_call([3.5, "Ich möchte eine Pizza bestellen.", 7.0], 16000)
    results = await asyncio.gather(
        simulate_call(settings, call_resources, first.audio, 8000, speed=SPEED),
        simulate_call(settings, call_resources, second.audio, 16000, speed=SPEED),
    )
    assert results[0].call_id != results[1].call_id
    for result in results:
        assert turns(result, "caller", "question")
        assert turns(result, "bot", "answer") and turns(result, "bot", "greeting")[0]["played"]
        assert (settings.paths.calls_dir / f"{result.call_id}.json").is_file()
    assert call_resources.voices.loaded()["de"] == "espeak:de"  # one voice object serves every call


async def test_recording_starts_with_key_1_and_keeps_both_sides(
    call_resources: CallResources, call_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """privacy.recording on, the whole pipeline: the question follows the greeting, keypad 1 is consent, both
    sides' audio lands in the call's two WAVs (named by its call id), and the call's end closes them."""
    import wave

    from voicebot.privacy.recordings import recording_files

    settings = call_settings()
    settings.privacy.recording = True
    settings.paths.recordings_dir = tmp_path / "aufnahmen"
    composed = compose_call([11.0, "Wo ist das Fundbüro?", 8.0], 8000)
    result = await simulate_call(
        settings, call_resources, composed.audio, 8000, speed=SPEED, dtmf=[(10.0, "1")]
    )
    bot = [t["kind"] for t in turns(result, "bot")]
    assert bot[:3] == ["greeting", "recording_question", "recording_consent"], bot
    events = {e["kind"]: e for e in result.transcript["events"]}
    assert (events["recording_consent"]["granted"], events["recording_consent"]["via"]) == (True, "dtmf")
    assert (
        events["recording_stopped"]["reason"] == "call_ended" and events["recording_stopped"]["seconds"] > 5
    )
    files = recording_files(settings.paths.recordings_dir, result.transcript["call_id"])
    assert [path.name.rpartition("-")[2] for path in files] == ["anrufer.wav", "bot.wav"]
    for path in files:
        with wave.open(str(path)) as wav:
            assert wav.getnframes() > wav.getframerate()  # more than a second of each side
