"""The call script's parts for greeting and hand-off (issue 14 items 1 and 2), each processor on its own.

Whole calls with real SIP peers are in tests/interop/test_transfer.py and test_greeting.py; here the edges that a
phone call cannot reach cheaply: timers that must stay quiet, the spoken "yes", the greeting's length.
"""

from __future__ import annotations

import numpy as np
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from voicebot.pipeline.call_script import (
    CallTimeLimit,
    GreetingSpeaker,
    SilenceWatchdog,
    compose_greeting,
    split_disclosure,
)
from voicebot.pipeline.espeak import EspeakVoice, espeak_engine, synthesize_blocks
from voicebot.pipeline.frames import CallerQuestionFrame, TransferStatusFrame
from voicebot.pipeline.transcript import CallTranscript
from voicebot.pipeline.transfer_hold import RINGBACK_RATE, TransferHold, ringback_cadence
from voicebot.settings import CallSettings, Settings, TtsSettings
from voicebot.telephony.transfer import caller_number, failure_reason


def _transcript() -> CallTranscript:
    return CallTranscript(channel="simulation", channel_call_id="script")


def _spoken(frames: list[Frame]) -> list[str]:
    return [f.text for f in frames if isinstance(f, TTSSpeakFrame)]


def _seconds(text: str) -> float:
    words_per_minute = TtsSettings().espeak_words_per_minute
    pcm = b"".join(synthesize_blocks(text, EspeakVoice("de", words_per_minute)))
    return len(pcm) / 2 / espeak_engine().sample_rate


def test_the_default_greeting_comes_from_the_town_settings_and_is_short() -> None:
    settings = Settings()
    assert (
        settings.call.greeting is None and settings.privacy_url == "https://musterstadt.example/datenschutz"
    )
    greeting = compose_greeting(settings.town, settings.privacy_url, settings.sip.handoff_dtmf)
    disclosure, rest = split_disclosure(greeting)
    assert disclosure == "Hier ist der KI-Assistent von Musterstadt."
    assert rest == "Für einen Menschen die Null, Datenschutz: musterstadt.example. Ihre Frage bitte."
    whole, first = _seconds(greeting), _seconds(disclosure)
    print(f"greeting: {whole:.2f} s of espeak-ng at 160 wpm, the disclosure {first:.2f} s of it")
    assert first < 3.0 and whole < 8.0  # was 10.0 s, all of it not interruptible
    # Another town sets it once: its name and notice, and no key sentence where no hand-off key is listened to.
    other = compose_greeting("Bad Beispiel", "https://www.bad-beispiel.de/datenschutz", "")
    assert (
        other
        == "Hier ist der KI-Assistent von Bad Beispiel. Datenschutz: www.bad-beispiel.de. Ihre Frage bitte."
    )
    assert "Neun" in compose_greeting("Musterstadt", "", "9") and "Datenschutz" not in compose_greeting(
        "X", "", ""
    )
    assert split_disclosure("Guten Tag.") == ("Guten Tag.", "")
    assert split_disclosure("Version 2.5 ist da. Bitte warten.") == ("Version 2.5 ist da.", "Bitte warten.")


async def test_the_greeting_is_two_turns_and_only_the_disclosure_is_protected() -> None:
    transcript = _transcript()
    greeting = compose_greeting("Musterstadt", "musterstadt.example", "0")
    speaker = GreetingSpeaker(transcript=transcript, call=CallSettings(), greeting=greeting)
    down, _ = await run_test(speaker, frames_to_send=[])
    speech = [f for f in down if isinstance(f, TTSSpeakFrame)]
    assert [(f.text, f.interruptible) for f in speech] == [
        (t, i) for t, i in zip(split_disclosure(greeting), (False, True), strict=True)
    ]
    assert [t.kind for t in transcript.turns] == ["greeting", "greeting"]


async def test_no_silence_prompt_while_a_transfer_runs_and_again_after_it_failed() -> None:
    transcript = _transcript()
    watchdog = SilenceWatchdog(transcript=transcript, call=CallSettings(), timeout_s=0.3)
    failed = TransferStatusFrame(phase="failed")
    frames: list[Frame] = [
        BotStoppedSpeakingFrame(),  # the hand-off sentence ended: the timer is armed
        TransferStatusFrame(phase="started"),
        SleepFrame(sleep=1.0),  # > 3 silence timeouts
        failed,
        SleepFrame(sleep=0.5),
    ]
    down, _ = await run_test(watchdog, frames_to_send=frames)
    assert _spoken(down) == ["Sind Sie noch da?"]
    prompt = next(f for f in down if isinstance(f, TTSSpeakFrame))
    assert down.index(failed) < down.index(prompt)


async def test_key_presses_are_no_silence() -> None:
    """A caller typing a call-back number is not asked "Sind Sie noch da?" between keys: each key re-arms the
    watchdog; after the last key it prompts as usual."""
    transcript = _transcript()
    watchdog = SilenceWatchdog(transcript=transcript, call=CallSettings(), timeout_s=0.6)
    keys: list[Frame] = [InputDTMFFrame(button=KeypadEntry(digit)) for digit in "0211"]
    frames: list[Frame] = [BotStoppedSpeakingFrame()]
    for key in keys:
        frames += [SleepFrame(sleep=0.35), key]
    frames.append(SleepFrame(sleep=1.0))
    down, _ = await run_test(watchdog, frames_to_send=frames)
    assert _spoken(down) == ["Sind Sie noch da?"]  # 1.4 s of keys with no prompt, then one after the last
    prompt = next(f for f in down if isinstance(f, TTSSpeakFrame))
    assert down.index(keys[-1]) < down.index(prompt)


async def test_the_call_time_limit_waits_for_a_transfer_in_progress() -> None:
    transcript = _transcript()
    call = CallSettings(transfer_grace_s=5.0)
    limit = CallTimeLimit(transcript=transcript, call=call, limit_s=0.2)
    frames: list[Frame] = [
        TransferStatusFrame(phase="started"),
        SleepFrame(sleep=0.8),
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.3),
    ]
    down, _ = await run_test(limit, frames_to_send=frames)
    assert _spoken(down) == [call.max_call_message]
    events = [e["kind"] for e in transcript.events]
    assert events == ["max_duration_waits_for_transfer"]
    turn = next(t for t in transcript.turns if t.kind == "max_duration")
    assert turn.start_s >= 0.8  # said after the transfer ended, not at 0.2 s


def test_ringback_is_the_german_425_hz_tone_one_second_on_four_off() -> None:
    pcm = np.frombuffer(ringback_cadence(), dtype="<i2").astype(np.float64)
    assert len(pcm) == 5 * RINGBACK_RATE
    on, off = pcm[:RINGBACK_RATE], pcm[RINGBACK_RATE:]
    assert np.all(off == 0)
    spectrum = np.abs(np.fft.rfft(on))
    assert abs(np.argmax(spectrum) * RINGBACK_RATE / len(on) - 425) < 2
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean((on / 32768) ** 2)))
    assert -20 < rms_dbfs < -12, rms_dbfs


async def test_transfer_hold_plays_ringback_and_holds_questions_until_the_transfer_ends() -> None:
    transcript = _transcript()
    hold = TransferHold(transcript=transcript)
    question = CallerQuestionFrame(text="Hallo?", language="de")
    frames: list[Frame] = [
        TransferStatusFrame(phase="started"),
        SleepFrame(sleep=1.2),
        question,
        SleepFrame(sleep=0.2),  # a system frame overtakes queued data frames: let the question arrive first
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.5),
    ]
    down, _ = await run_test(hold, frames_to_send=frames)
    audio = [f for f in down if isinstance(f, OutputAudioRawFrame)]
    seconds = sum(len(f.audio) for f in audio) / 2 / RINGBACK_RATE
    assert 1.4 <= seconds <= 2.2, seconds  # paced to real time (at most 0.4 s ahead), stopped at the end
    assert {f.sample_rate for f in audio} == {RINGBACK_RATE}
    assert question not in down
    assert [e["kind"] for e in transcript.events] == ["question_during_transfer", "ringback"]


def test_the_caller_number_is_data_from_the_from_header() -> None:
    assert caller_number('"Max" <sip:+4930123456@pbx.example;user=phone>;tag=1') == "+4930123456"
    assert caller_number("sip:sipp@127.0.0.1:5061") == "sipp"
    assert caller_number("tel:+49-30-1234") == "+49-30-1234"
    assert caller_number("sip:../../etc/passwd@x") == "....etcpasswd"  # no path separators survive
    assert len(caller_number("sip:" + "9" * 500 + "@x")) == 64
    assert [failure_reason(c) for c in (408, 486, 603, 500)] == [
        "not answered",
        "busy",
        "declined",
        "failed (500)",
    ]
