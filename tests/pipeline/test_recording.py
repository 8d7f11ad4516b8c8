"""Recording only after consent (issue 11, decision 0970): the question after the greeting, keypad 1 or "Ja" as
the caller's next turn, anything else answered as a question; the WAVs only with consent."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from voicebot.pipeline.call_script import GreetingSpeaker
from voicebot.pipeline.frames import CallerQuestionFrame
from voicebot.pipeline.recording import AudioTap, CallRecording, RecordingConsent
from voicebot.pipeline.transcript import CallTranscript
from voicebot.privacy.recordings import recording_files
from voicebot.settings import CallSettings, PrivacySettings

QUESTION = PrivacySettings().recording_question
CALLER_PCM = b"\x10\x00\xf0\xff" * 160  # 20 ms at 16 kHz
BOT_PCM = b"\x20\x00\xe0\xff" * 80  # 20 ms at 8 kHz


def one_call(tmp_path: Path, turn: Frame) -> tuple[CallTranscript, Pipeline, list[Frame]]:
    transcript = CallTranscript(channel="simulation", channel_call_id="consent")
    recording = CallRecording(tmp_path, transcript, max_s=60.0)
    pipeline = Pipeline(
        [
            AudioTap(recording, "anrufer"),
            GreetingSpeaker(
                transcript=transcript, call=CallSettings(), greeting="Guten Tag.", recording_question=QUESTION
            ),
            RecordingConsent(transcript=transcript, recording=recording),
            AudioTap(recording, "bot"),
        ]
    )
    frames: list[Frame] = [
        turn,
        SleepFrame(sleep=0.1),  # caller audio is a system frame: it would overtake the turn
        InputAudioRawFrame(audio=CALLER_PCM, sample_rate=16000, num_channels=1),
        OutputAudioRawFrame(audio=BOT_PCM, sample_rate=8000, num_channels=1),
        CallerQuestionFrame(text="Wo ist das Fundbüro?", language="de"),
    ]
    return transcript, pipeline, frames


@pytest.mark.parametrize(
    ("turn", "via"),
    [
        (InputDTMFFrame(button=KeypadEntry("1")), "dtmf"),
        (CallerQuestionFrame(text="Ja", language="de"), "speech"),
        (CallerQuestionFrame(text="einverstanden", language="de"), "speech"),
    ],
    ids=["key-1", "ja", "einverstanden"],
)
async def test_consent_by_key_or_yes_records_both_sides(tmp_path: Path, turn: Frame, via: str) -> None:
    transcript, pipeline, frames = one_call(tmp_path, turn)
    down, _up = await run_test(pipeline, frames_to_send=frames)
    spoken = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert spoken[:2] == ["Guten Tag.", QUESTION]
    # the yes is not answered as a question; the next question is
    questions = [f.text for f in down if isinstance(f, CallerQuestionFrame)]
    assert questions == ["Wo ist das Fundbüro?"]
    kinds = [e["kind"] for e in transcript.events]
    assert kinds == ["recording_consent", "recording_started", "recording_stopped"]
    assert (transcript.events[0]["granted"], transcript.events[0]["via"]) == (True, via)
    assert transcript.events[2]["seconds"] > 0
    files = recording_files(tmp_path, transcript.call_id)
    assert [f.name for f in files] == [f"{transcript.call_id}-anrufer.wav", f"{transcript.call_id}-bot.wav"]
    for path, rate in zip(files, (16000, 8000), strict=True):
        with wave.open(str(path)) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, rate)
            assert wav.getnframes() > 0


@pytest.mark.parametrize(
    "turn",
    [
        CallerQuestionFrame(text="Nein, wo ist das Bürgerbüro?", language="de"),
        InputDTMFFrame(button=KeypadEntry("2")),
    ],
    ids=["question", "key-2"],
)
async def test_anything_else_is_no_consent_and_nothing_is_written(tmp_path: Path, turn: Frame) -> None:
    transcript, pipeline, frames = one_call(tmp_path, turn)
    down, _up = await run_test(pipeline, frames_to_send=frames)
    questions = [f.text for f in down if isinstance(f, CallerQuestionFrame)]
    if isinstance(turn, CallerQuestionFrame):
        assert questions == ["Nein, wo ist das Bürgerbüro?", "Wo ist das Fundbüro?"]  # answered as a question
    else:
        assert questions == ["Wo ist das Fundbüro?"]
    assert [(e["kind"], e["granted"]) for e in transcript.events] == [("recording_consent", False)]
    assert list(tmp_path.iterdir()) == []


def test_recording_stops_at_its_limit(tmp_path: Path) -> None:
    transcript = CallTranscript(channel="simulation")
    now = [0.0]
    recording = CallRecording(tmp_path, transcript, max_s=0.05, clock=lambda: now[0])
    recording.write("anrufer", CALLER_PCM, 16000, 1)  # before consent: dropped
    assert list(tmp_path.iterdir()) == []
    recording.start()
    for _ in range(10):
        now[0] += 0.02
        recording.write("anrufer", CALLER_PCM, 16000, 1)
    with wave.open(str(recording_files(tmp_path, transcript.call_id)[0])) as wav:
        assert wav.getnframes() == 800  # 0.05 s at 16 kHz
    assert transcript.events[-1] == {
        **transcript.events[-1],
        "kind": "recording_stopped",
        "seconds": 0.05,
        "reason": "limit",
    }
