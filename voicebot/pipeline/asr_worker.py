"""One ASR worker per process: every call's utterances are decoded by one thread, in batches.

Why: CTranslate2 runs one job at a time on a Whisper model loaded with one replica (``num_workers=1``), so when
several callers stop speaking together their transcriptions used to queue behind each other, each paying the full
decoder loop (one token step per utterance per step). The worker takes every utterance waiting when it becomes
free and decodes them as one batch (:func:`~voicebot.pipeline.whisper_decode.transcribe_batch`): one encoder run
and one decoder loop for all of them. A lone utterance starts at once (no waiting for company), so a quiet line
loses nothing. See docs/decisions/0990-calls-per-core.md for the measurements.

The results are those of decoding each utterance alone; only ``asr_ms`` differs (the batch's time, which is what
each caller waited for besides the queue).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel
from loguru import logger

from voicebot.pipeline.frames import AsrResult
from voicebot.pipeline.whisper_decode import transcribe_batch
from voicebot.settings import AsrSettings


@dataclass
class _Job:
    audio: np.ndarray
    language: str | None
    future: Future[AsrResult]


class AsrWorker:
    """Decodes submitted 16 kHz utterances on one thread; waiting ones go together, up to ``max_batch``."""

    def __init__(self, model: WhisperModel, settings: AsrSettings, *, max_batch: int = 16) -> None:
        self._model = model
        self._settings = settings
        self._max_batch = max(1, max_batch)
        self._jobs: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self.batch_sizes: list[int] = []  # one entry per batch decoded (for benchmarks and tests)
        self._thread = threading.Thread(target=self._run, name="asr-worker", daemon=True)
        self._thread.start()

    def submit(self, audio: np.ndarray, language: str | None) -> Future[AsrResult]:
        """Queue one utterance (float32 mono, 16 kHz); ``language`` None = detect among ``asr.languages``."""
        future: Future[AsrResult] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the ASR worker is closed")
            self._jobs.append(_Job(audio, language, future))
            self._wake.notify()
        return future

    async def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        """:meth:`submit` for the event loop; cancelling the caller's task drops a job not yet started."""
        return await asyncio.wrap_future(self.submit(audio, language))

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish the queued jobs, then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout_s)

    def _next_batch(self) -> list[_Job] | None:
        with self._wake:
            while not self._jobs and not self._closed:
                self._wake.wait()
            if not self._jobs:
                return None
            batch: list[_Job] = []
            while self._jobs and len(batch) < self._max_batch:
                job = self._jobs.popleft()
                if job.future.set_running_or_notify_cancel():  # False: the call went away meanwhile
                    batch.append(job)
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            by_language: dict[str | None, list[_Job]] = {}
            for job in batch:
                by_language.setdefault(job.language, []).append(job)
            for language, jobs in by_language.items():
                self._decode(jobs, language)

    def _decode(self, jobs: list[_Job], language: str | None) -> None:
        try:
            results = transcribe_batch(self._model, [job.audio for job in jobs], self._settings, language)
        except Exception as error:  # each caller's STT turns it into its "ASR failed" path
            logger.exception(f"ASR batch of {len(jobs)} failed")
            for job in jobs:
                job.future.set_exception(error)
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
