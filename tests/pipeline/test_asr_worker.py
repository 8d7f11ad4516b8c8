"""The batching ASR worker with real whisper-base on stored German phone clips: same text as decoding alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from voicebot.pipeline.asr_worker import AsrWorker
from voicebot.pipeline.audio import LowLatencyResampler
from voicebot.pipeline.frames import AsrResult
from voicebot.pipeline.whisper_decode import transcribe_batch, transcribe_pcm
from voicebot.settings import AsrSettings
from voicebot.simulate import read_wav

DATA = Path(__file__).parent / "data"
CLIPS = ("auto-anmelden-8k", "sperrmuell-anmelden-8k", "ja-8k", "nein-8k", "turnhalle-offen-16k")


@pytest.fixture(scope="module")
def whisper(embedded_models_dir: Path) -> WhisperModel:
    return WhisperModel(
        str(embedded_models_dir / "whisper-base"), device="cpu", compute_type="int8", cpu_threads=2
    )


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    audio = {}
    for name in CLIPS:
        pcm, rate = read_wav(DATA / f"{name}.wav")
        audio[name] = LowLatencyResampler(16000).resample(pcm, rate).astype(np.float32) / 32768
    # Longer than the 8 s minimum window: a batch of its own (windows of different length are not mixed).
    pause = np.zeros(8000, np.float32)
    parts = [
        audio["auto-anmelden-8k"],
        pause,
        audio["sperrmuell-anmelden-8k"],
        pause,
        audio["turnhalle-offen-16k"],
    ]
    audio["long"] = np.concatenate([*parts, pause, *parts])
    return audio


@pytest.fixture(scope="module")
def alone(whisper: WhisperModel, clips: dict[str, np.ndarray]) -> dict[str, AsrResult]:
    return {name: transcribe_pcm(whisper, audio, AsrSettings(), "de") for name, audio in clips.items()}


def assert_same(result: AsrResult, expected: AsrResult) -> None:
    assert result.text == expected.text
    assert result.language == expected.language
    assert result.avg_logprob == pytest.approx(expected.avg_logprob, abs=0.02)
    assert result.no_speech_prob == pytest.approx(expected.no_speech_prob, abs=0.02)
    assert result.audio_s == expected.audio_s


def test_the_clips_are_understood_alone(alone: dict[str, AsrResult]) -> None:
    assert "sperrmüll" in alone["sperrmuell-anmelden-8k"].text.lower()
    assert alone["ja-8k"].text.lower().startswith("ja")
    assert alone["long"].audio_s > 8


def test_a_batch_gives_each_utterance_the_text_it_gets_alone(
    whisper: WhisperModel, clips: dict[str, np.ndarray], alone: dict[str, AsrResult]
) -> None:
    names = [*clips, "ja-8k", "sperrmuell-anmelden-8k"]  # repeats too, as two callers may say the same
    batched = transcribe_batch(whisper, [clips[name] for name in names], AsrSettings(), "de")
    assert len(batched) == len(names)
    for name, result in zip(names, batched, strict=True):
        assert_same(result, alone[name])


def test_a_batch_with_language_detection_matches_detection_alone(
    whisper: WhisperModel, clips: dict[str, np.ndarray]
) -> None:
    settings = AsrSettings(detect_language=True, languages=["de", "en"])
    names = ["auto-anmelden-8k", "sperrmuell-anmelden-8k", "turnhalle-offen-16k"]
    batched = transcribe_batch(whisper, [clips[name] for name in names], settings, None)
    for name, result in zip(names, batched, strict=True):
        single = transcribe_pcm(whisper, clips[name], settings, None)
        assert_same(result, single)
        assert result.language_probability == pytest.approx(single.language_probability, abs=0.02)


def test_concurrent_submitters_get_their_own_text_and_share_batches(
    whisper: WhisperModel, clips: dict[str, np.ndarray], alone: dict[str, AsrResult]
) -> None:
    worker = AsrWorker(whisper, AsrSettings(), max_batch=16)
    names = [name for name in clips for _ in range(2)]
    results: dict[int, AsrResult] = {}
    start = threading.Barrier(len(names))

    def caller(index: int) -> None:
        start.wait(timeout=30)
        results[index] = worker.submit(clips[names[index]], "de").result(timeout=120)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    worker.close()
    assert sorted(results) == list(range(len(names)))
    for index, name in enumerate(names):
        assert_same(results[index], alone[name])
    assert sum(worker.batch_sizes) == len(names)
    assert max(worker.batch_sizes) > 1  # the callers that came while a batch ran were decoded together


async def test_calls_on_the_event_loop_are_batched_and_a_cancelled_one_is_dropped(
    whisper: WhisperModel, clips: dict[str, np.ndarray], alone: dict[str, AsrResult]
) -> None:
    worker = AsrWorker(whisper, AsrSettings(), max_batch=4)
    try:
        names = [
            "auto-anmelden-8k",
            "ja-8k",
            "nein-8k",
            "sperrmuell-anmelden-8k",
            "turnhalle-offen-16k",
            "ja-8k",
        ]
        first = worker.submit(clips["long"], "de")
        for _ in range(5000):  # the long one starts; the rest queue behind it
            if first.running():
                break
            await asyncio.sleep(0.001)
        gone = asyncio.create_task(worker.transcribe(clips["nein-8k"], "de"))
        tasks = [asyncio.create_task(worker.transcribe(clips[name], "de")) for name in names]
        await asyncio.sleep(0)
        gone.cancel()
        results = await asyncio.gather(*tasks)
        assert_same(first.result(timeout=60), alone["long"])
        for name, result in zip(names, results, strict=True):
            assert_same(result, alone[name])
        assert gone.cancelled()
        assert sum(worker.batch_sizes) == 1 + len(names)  # the cancelled one was never decoded
        assert max(worker.batch_sizes) == 4  # max_batch bounds a batch
    finally:
        worker.close()


def test_a_closed_worker_refuses_new_work(whisper: WhisperModel, clips: dict[str, np.ndarray]) -> None:
    worker = AsrWorker(whisper, AsrSettings())
    worker.close()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(clips["ja-8k"], "de")
