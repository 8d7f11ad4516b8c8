"""The caller's side of the bot's own queue (issue 10, way 2): German wording of position and wait, the generated
hold audio and a configured hold file, and the ``WaitingRoom`` processor on its own. The queue with real SIP peers
is tests/interop/test_queue.py; the queue's database side tests/test_queue.py."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import BotStoppedSpeakingFrame, Frame, OutputAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from voicebot.pipeline.call_script import SilenceWatchdog
from voicebot.pipeline.frames import CallerQuestionFrame, TransferStatusFrame
from voicebot.pipeline.hold_audio import (
    HOLD_PEAK,
    HOLD_RATE,
    HoldAudioError,
    generate_hold_melody,
    load_hold_audio,
)
from voicebot.pipeline.playout import PlayoutTracker
from voicebot.pipeline.transcript import CallTranscript
from voicebot.pipeline.waiting_room import (
    WaitingRoom,
    announcement,
    cardinal,
    minutes_phrase,
    position_phrase,
)
from voicebot.settings import CallSettings


@pytest.mark.parametrize(
    ("position", "words"),
    [
        (1, "Sie sind an erster Stelle."),
        (2, "Sie sind an zweiter Stelle."),
        (3, "Sie sind an dritter Stelle."),
        (4, "Sie sind an vierter Stelle."),
        (7, "Sie sind an siebter Stelle."),
        (8, "Sie sind an achter Stelle."),
        (12, "Sie sind an zwölfter Stelle."),
        (16, "Sie sind an sechzehnter Stelle."),
        (20, "Sie sind an zwanzigster Stelle."),
        (21, "Sie sind an einundzwanzigster Stelle."),
        (37, "Sie sind an siebenunddreißigster Stelle."),
        (100, "Vor Ihnen warten noch viele Anrufende."),
    ],
)
def test_the_position_is_said_as_a_german_ordinal(position: int, words: str) -> None:
    assert position_phrase(position) == words


def test_the_wait_is_said_in_whole_minutes_as_words() -> None:
    assert minutes_phrase(0) == "Die Wartezeit beträgt etwa eine Minute."
    assert minutes_phrase(60) == "Die Wartezeit beträgt etwa eine Minute."
    assert minutes_phrase(61) == "Die Wartezeit beträgt etwa zwei Minuten."
    assert minutes_phrase(180) == "Die Wartezeit beträgt etwa drei Minuten."
    assert minutes_phrase(31 * 60) == "Die Wartezeit beträgt etwa einunddreißig Minuten."
    assert minutes_phrase(100 * 60) == "Die Wartezeit beträgt leider mehr als eine Stunde."
    assert [cardinal(n) for n in (1, 6, 11, 17, 30, 41, 99)] == [
        "eins",
        "sechs",
        "elf",
        "siebzehn",
        "dreißig",
        "einundvierzig",
        "neunundneunzig",
    ]
    assert announcement(2, 180) == "Sie sind an zweiter Stelle. Die Wartezeit beträgt etwa drei Minuten."
    assert announcement(1, 60, first=True).endswith("Bitte bleiben Sie in der Leitung.")


def _dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-12))


def test_the_generated_hold_audio_is_a_soft_melody_not_silence_and_not_ringback() -> None:
    pcm, rate = load_hold_audio(None)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    assert rate == HOLD_RATE and 5 < len(samples) / rate < 15
    peak = float(np.max(np.abs(samples)))
    assert HOLD_PEAK * 0.95 < peak <= HOLD_PEAK + 1e-3  # bounded: well below speech and clipping
    # Audible for most of the loop (20 ms windows above −45 dBFS), with a quieter rest before it repeats.
    windows = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = np.array([_dbfs(w) > -45 for w in windows])
    assert 0.6 < loud.mean() < 0.98, loud.mean()
    # Melodic: the strongest pitch of successive notes changes, and none is the 425 Hz ringback tone.
    note = int(0.55 * rate)
    pitches = {
        round(float(np.argmax(np.abs(np.fft.rfft(samples[i * note : (i + 1) * note]))) * rate / note))
        for i in range(6)
    }
    assert len(pitches) >= 4 and all(abs(p - 425) > 50 for p in pitches), pitches
    assert generate_hold_melody() == pcm  # the same bytes every time (cached)


def _wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def test_a_configured_hold_file_is_checked(tmp_path: Path) -> None:
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 6000).astype(np.int16)
    pcm, rate = load_hold_audio(_wav(tmp_path / "ok.wav", tone, 16000))
    assert rate == 16000 and len(pcm) == 2 * 16000
    problems: dict[str, tuple[np.ndarray, int, int, str]] = {
        "stereo.wav": (np.repeat(tone, 2), 16000, 2, "mono 16-bit PCM WAV at 8000 or 16000 Hz"),
        "44k.wav": (tone, 44100, 1, "44100 Hz"),
        "short.wav": (tone[:1000], 16000, 1, "between 0.5 s"),
        "silent.wav": (np.zeros(16000), 16000, 1, "is silent"),
    }
    for name, (samples, sample_rate, channels, message) in problems.items():
        with pytest.raises(HoldAudioError, match=message):
            load_hold_audio(_wav(tmp_path / name, samples, sample_rate, channels))
    with pytest.raises(HoldAudioError, match="no such file"):
        load_hold_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(HoldAudioError, match="not a readable WAV"):
        load_hold_audio(tmp_path / "text.wav")


def _hold_seconds(frames: Sequence[Frame]) -> float:
    audio = [f for f in frames if isinstance(f, OutputAudioRawFrame)]
    return sum(len(f.audio) / 2 / f.sample_rate for f in audio)


async def test_the_waiting_room_announces_plays_hold_audio_and_notes_questions() -> None:
    transcript = CallTranscript(channel="simulation", channel_call_id="queue")
    room = WaitingRoom(transcript=transcript, hold_audio=load_hold_audio(None))
    # The playout tracker marks an announcement played when its end marker passes (after the output, in a call):
    # only then does the hold audio resume.
    pipeline = Pipeline([room, PlayoutTracker(transcript=transcript)])
    question = CallerQuestionFrame(text="Wie lange noch?", language="de")
    frames: list[Frame] = [
        TransferStatusFrame(phase="queued", position=2, wait_s=360),
        SleepFrame(sleep=0.4),
        question,
        SleepFrame(sleep=0.2),
        TransferStatusFrame(phase="queued", position=1, wait_s=180),
        SleepFrame(sleep=0.5),
        TransferStatusFrame(phase="started"),  # staff is rung: ringback takes over
        SleepFrame(sleep=0.3),
    ]
    down, _ = await run_test(pipeline, frames_to_send=frames)
    spoken = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert spoken == [
        "Sie sind an zweiter Stelle. Die Wartezeit beträgt etwa sechs Minuten. Bitte bleiben Sie in der Leitung.",
        "Sie sind an erster Stelle. Die Wartezeit beträgt etwa drei Minuten.",
    ]
    assert all(not f.interruptible for f in down if isinstance(f, TTSSpeakFrame))
    assert question not in down  # noted, not answered
    events = [(e["kind"], e.get("position")) for e in transcript.events]
    assert events[:3] == [
        ("queue_announcement", 2),
        ("question_during_wait", None),
        ("queue_announcement", 1),
    ]
    assert events[-1] == ("hold_audio", None)
    assert [(t.kind, t.played) for t in transcript.turns] == [("queue_position", True)] * 2
    assert _hold_seconds(down) > 0.2  # hold audio between the announcements, at the hold rate
    assert {f.sample_rate for f in down if isinstance(f, OutputAudioRawFrame)} == {HOLD_RATE}
    # After "started" no more hold audio: the last audio frame comes before that frame.
    started = next(
        i for i, f in enumerate(down) if isinstance(f, TransferStatusFrame) and f.phase == "started"
    )
    assert not any(isinstance(f, OutputAudioRawFrame) for f in down[started + 1 :])


async def test_no_silence_prompt_while_the_caller_waits_in_the_queue() -> None:
    transcript = CallTranscript(channel="simulation", channel_call_id="queue")
    watchdog = SilenceWatchdog(transcript=transcript, call=CallSettings(), timeout_s=0.2)
    frames: list[Frame] = [
        BotStoppedSpeakingFrame(),
        TransferStatusFrame(phase="queued", position=1, wait_s=60),
        SleepFrame(sleep=0.8),  # four silence timeouts
    ]
    down, _ = await run_test(watchdog, frames_to_send=frames)
    assert not [f for f in down if isinstance(f, TTSSpeakFrame)]


def test_serve_refuses_a_bad_hold_file_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app
    from voicebot.settings import get_settings

    stereo = _wav(tmp_path / "musik.wav", np.full(32000, 3000), 16000, channels=2)
    monkeypatch.setenv("VOICEBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("VOICEBOT_QUEUE__HOLD_AUDIO_FILE", str(stereo))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve"])
    finally:
        get_settings.cache_clear()
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert f"queue.hold_audio_file {stereo}: must be mono 16-bit PCM WAV" in lines[0], lines[0]
