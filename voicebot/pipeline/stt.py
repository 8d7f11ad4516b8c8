"""faster-whisper speech recognition tuned for phone audio, on pipecat's segmented ``WhisperSTTService``.

Why a subclass: pipecat's service loads its own model per instance (we share one per process, see
``resources.py``) and passes only language/hotwords/prompt to ``transcribe``. Phone audio needs temperature 0 and
anti-repetition settings (the temperature fallback loops on 8 kHz µ-law), the hand-off decision needs per-turn
confidence (average log-probability, no-speech probability), and callers may speak another language.
The confidence travels as :class:`AsrResult` in ``TranscriptionFrame.result``.
"""

from __future__ import annotations

import asyncio
import re
import time
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

from voicebot.pipeline.frames import AsrResult
from voicebot.settings import AsrSettings

# Whisper's well-known inventions on silence/noise (German subtitling credits and the like).
_HALLUCINATIONS = re.compile(
    r"^\W*(untertitel.*|.*zdf.*|vielen dank (für|fürs) zuschauen.*|thanks? for watching.*|\.+|…)\W*$",
    re.IGNORECASE,
)
_MIN_DETECTION_PROBABILITY = 0.3
ASR_FAILED_TEXT = "[asr-failed]"


def transcribe_pcm(
    model: WhisperModel, audio: np.ndarray, settings: AsrSettings, language: str | None = None
) -> AsrResult:
    """Transcribe 16 kHz float32 mono audio with the phone-audio options (blocking; used by the bench too)."""
    started = time.perf_counter()
    language_probability: float | None = None
    if language is None:
        language, language_probability = _pick_language(model, audio, settings)
    segments, _info = model.transcribe(
        audio,
        language=language,
        beam_size=settings.beam_size,
        temperature=settings.temperature,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        repetition_penalty=settings.repetition_penalty,
        initial_prompt=settings.initial_prompt if language == settings.language else None,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
    )
    texts: list[str] = []
    weighted_logprob = 0.0
    weight = 0.0
    no_speech = 0.0
    for segment in segments:
        duration = max(0.01, segment.end - segment.start)
        weighted_logprob += segment.avg_logprob * duration
        weight += duration
        no_speech = max(no_speech, segment.no_speech_prob)
        if not _HALLUCINATIONS.match(segment.text.strip()):
            texts.append(segment.text.strip())
    return AsrResult(
        text=" ".join(t for t in texts if t).strip(),
        language=language,
        avg_logprob=weighted_logprob / weight if weight else -10.0,
        no_speech_prob=no_speech,
        audio_s=len(audio) / 16000,
        asr_ms=(time.perf_counter() - started) * 1000,
        language_probability=language_probability,
    )


def _pick_language(model: WhisperModel, audio: np.ndarray, settings: AsrSettings) -> tuple[str, float]:
    """The most probable of the configured caller languages; the default language when unsure."""
    _best, _probability, all_probabilities = model.detect_language(audio)
    allowed = {code: p for code, p in all_probabilities if code in settings.languages}
    if not allowed:
        return settings.language, 0.0
    code, probability = max(allowed.items(), key=lambda item: item[1])
    if probability < _MIN_DETECTION_PROBABILITY:
        return settings.language, probability
    return code, probability


class PhoneWhisperSTTService(WhisperSTTService):
    """One transcript per VAD segment from a shared faster-whisper model, with confidence attached."""

    def __init__(self, *, model: WhisperModel, asr: AsrSettings, **kwargs: Any) -> None:
        self._shared_model = model
        self._asr = asr
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
            result = await asyncio.to_thread(transcribe_pcm, self._shared_model, samples, self._asr, language)
        except Exception as error:  # the model may fail on odd input; the call must go on
            logger.exception("ASR failed")
            yield ErrorFrame(error=f"ASR failed: {error}")
            # A marked placeholder still ends the turn, so the call script can apologise.
            failed = AsrResult(
                "",
                self._asr.language,
                -10.0,
                1.0,
                samples.size / 16000,
                0.0,
                None,
                True,
                spoken_from,
                spoken_to,
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
