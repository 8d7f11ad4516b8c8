"""faster-whisper speech recognition tuned for phone audio, on pipecat's segmented ``WhisperSTTService``.

Why a subclass: pipecat's service loads its own model per instance (we share one per process, see
``resources.py``) and passes only language/hotwords/prompt to ``transcribe``. Phone audio needs temperature 0 and
anti-repetition settings (the temperature fallback loops on 8 kHz µ-law), the hand-off decision needs per-turn
confidence (average log-probability, no-speech probability), and callers may speak another language.
The confidence travels as :class:`AsrResult` in ``TranscriptionFrame.result``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from voicebot.pipeline.asr_worker import AsrWorker
from voicebot.pipeline.frames import AsrResult
from voicebot.pipeline.whisper_decode import transcribe_pcm
from voicebot.settings import AsrSettings

ASR_FAILED_TEXT = "[asr-failed]"


class PhoneWhisperSTTService(WhisperSTTService):
    """One transcript per VAD segment from a shared faster-whisper model, with confidence attached."""

    def __init__(
        self, *, model: WhisperModel, asr: AsrSettings, worker: AsrWorker | None = None, **kwargs: Any
    ) -> None:
        self._shared_model = model
        self._asr = asr
        self._worker = worker  # the process's batching ASR worker; None: decode in a thread of its own
        super().__init__(
            settings=WhisperSTTService.Settings(
                model=asr.model,
                language=None if asr.detect_language else Language(asr.language),
                initial_prompt=asr.initial_prompt,
                no_speech_prob=0.6,
            ),
            # Our transcripts are final, so this only bounds the wait when one never comes.
            ttfs_p99_latency=kwargs.pop("ttfs_p99_latency", 2.0),
            **kwargs,
        )
        self.last_result: AsrResult | None = None
        self._segment_start = 0.0
        self._segment_times: deque[tuple[float, float]] = deque()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        # One segment is queued per VAD stop, in order: remember when each was spoken, for the latency account.
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._segment_start = frame.timestamp - frame.start_secs
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._segment_times.append((self._segment_start, frame.timestamp - frame.stop_secs))
        await super().process_frame(frame, direction)

    def _load(self) -> None:
        """Use the process-wide model instead of loading one per call."""
        self._model = self._shared_model

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        spoken_from, spoken_to = self._segment_times.popleft() if self._segment_times else (0.0, 0.0)
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
        if samples.size == 0:
            return
        language = None if self._asr.detect_language else self._asr.language
        await self.start_processing_metrics()
        try:
            if self._worker is not None:
                result = await self._worker.transcribe(samples, language)
            else:
                result = await asyncio.to_thread(
                    transcribe_pcm, self._shared_model, samples, self._asr, language
                )
        except Exception as error:  # the model may fail on odd input; the call must go on
            logger.exception("ASR failed")
            yield ErrorFrame(error=f"ASR failed: {error}")
            # A marked placeholder still ends the turn, so the call script can apologise.
            failed = AsrResult(
                text="",
                language=self._asr.language,
                avg_logprob=-10.0,
                no_speech_prob=1.0,
                audio_s=samples.size / 16000,
                asr_ms=0.0,
                failed=True,
                speech_start_time=spoken_from,
                speech_end_time=spoken_to,
            )
            yield TranscriptionFrame(ASR_FAILED_TEXT, self._user_id, time_now_iso8601(), None, result=failed)
            return
        finally:
            await self.stop_processing_metrics()
        result.speech_start_time, result.speech_end_time = spoken_from, spoken_to
        self.last_result = result
        logger.debug(
            f"ASR [{result.language}] {result.text!r} logprob={result.avg_logprob:.2f} "
            f"no_speech={result.no_speech_prob:.2f} {result.asr_ms:.0f} ms"
        )
        if result.text:
            yield TranscriptionFrame(
                result.text,
                self._user_id,
                time_now_iso8601(),
                _pipecat_language(result.language),
                result=result,
            )


def _pipecat_language(code: str) -> Language | None:
    try:
        return Language(code)
    except ValueError:
        return None
