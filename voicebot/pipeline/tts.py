"""Text to speech: Piper in-process when a voice for the language is installed, otherwise espeak-ng.

Voices are loaded once per process (:class:`VoiceCatalog`, owned by ``resources.py``) and shared by every call;
:class:`CallTTSService` is the per-call pipecat ``TTSService`` that speaks with the voice of the call's current
language. Each sentence is synthesised in a worker thread and streamed out block by block, resampled to the
pipeline output rate with a per-sentence soxr stream that is flushed at the end of the sentence (pipecat's
shared stream resampler is never flushed, which would cut the tail of every sentence).

Why not pipecat's ``PiperTTSService`` directly: it loads (or downloads) the voice in every instance, i.e. per
call, and cannot switch voice when the caller's language changes. We use the same ``piper`` library.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from voicebot.pipeline.espeak import EspeakVoice, espeak_engine, synthesize_blocks
from voicebot.pipeline.frames import BotSentenceFrame, SpeechLanguageFrame
from voicebot.settings import TtsSettings


class Synthesizer(Protocol):
    """A loaded voice: text in, 16-bit mono PCM blocks out (blocking)."""

    name: str
    sample_rate: int

    def blocks(self, text: str) -> Iterator[bytes]: ...


@dataclass
class PiperSynthesizer:
    name: str
    voice: Any  # piper.PiperVoice
    sample_rate: int

    def blocks(self, text: str) -> Iterator[bytes]:
        for chunk in self.voice.synthesize(text):
            yield chunk.audio_int16_bytes


@dataclass
class EspeakSynthesizer:
    name: str
    voice: EspeakVoice
    sample_rate: int

    def blocks(self, text: str) -> Iterator[bytes]:
        yield from synthesize_blocks(text, self.voice)


class VoiceCatalog:
    """Process-wide voices by language, loaded on first use; Piper preferred, espeak-ng as the fallback."""

    def __init__(self, tts: TtsSettings, models_dir: Path, default_language: str = "de") -> None:
        self._tts = tts
        self._piper_dir = models_dir / "piper"
        self._default_language = default_language
        self._voices: dict[str, Synthesizer] = {}
        self._lock = threading.Lock()

    def voice_for(self, language: str) -> Synthesizer:
        with self._lock:
            if language not in self._voices:
                self._voices[language] = self._load(language)
            return self._voices[language]

    def fallback_for(self, language: str) -> Synthesizer:
        """espeak-ng for ``language``: what a failing Piper voice falls back to mid-call."""
        voice = self.voice_for(language)
        return voice if isinstance(voice, EspeakSynthesizer) else self._espeak(language)

    def loaded(self) -> dict[str, str]:
        return {language: voice.name for language, voice in self._voices.items()}

    def _load(self, language: str) -> Synthesizer:
        piper_name = self._tts.piper_voices.get(language)
        if piper_name:
            model = self._piper_dir / f"{piper_name}.onnx"
            if model.is_file() and model.with_suffix(".onnx.json").is_file():
                try:
                    from piper import PiperVoice

                    voice = PiperVoice.load(model)
                    logger.info(f"TTS voice for {language!r}: Piper {piper_name}")
                    return PiperSynthesizer(f"piper:{piper_name}", voice, voice.config.sample_rate)
                except Exception as error:  # a broken voice file must not take the call down
                    logger.warning(f"Piper voice {model} failed to load ({error}); using espeak-ng")
        return self._espeak(language)

    def _espeak(self, language: str) -> EspeakSynthesizer:
        espeak_name = self._tts.espeak_voices.get(language) or self._tts.espeak_voices.get(
            self._default_language, "de"
        )
        engine = espeak_engine()
        logger.info(f"TTS voice for {language!r}: espeak-ng {espeak_name} ({type(engine).__name__})")
        return EspeakSynthesizer(
            f"espeak:{espeak_name}",
            EspeakVoice(espeak_name, self._tts.espeak_words_per_minute),
            engine.sample_rate,
        )


FirstChunkCallback = Callable[[str, float], None]


class CallTTSService(TTSService):
    """Per-call TTS over the shared :class:`VoiceCatalog`; ``set_language`` picks the voice for what follows."""

    def __init__(
        self,
        *,
        voices: VoiceCatalog,
        language: str = "de",
        on_first_chunk: FirstChunkCallback | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=None, language=None),
            **kwargs,
        )
        self._voices = voices
        self._language = language
        self._on_first_chunk = on_first_chunk

    @property
    def language(self) -> str:
        return self._language

    def set_language(self, language: str) -> None:
        if language != self._language:
            logger.info(f"TTS switches to {language!r}: {self._voices.voice_for(language).name}")
        self._language = language

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, SpeechLanguageFrame):
            self.set_language(frame.language)  # in order with the sentences that follow it
            return
        await super().process_frame(frame, direction)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        yield BotSentenceFrame(text=text)  # in front of the audio: a caption appears as the sentence starts
        started = time.perf_counter()
        await self.start_tts_usage_metrics(text)
        voice = self._voices.voice_for(self._language)
        try:
            async for frame in self._synthesize(voice, text, context_id, started):
                yield frame
        except Exception as error:
            fallback = self._voices.fallback_for(self._language)
            logger.exception(f"TTS with {voice.name} failed; falling back to {fallback.name}")
            if fallback is voice:
                yield ErrorFrame(error=f"TTS failed: {error}")
                return
            try:  # the caller still hears the sentence, in the robot voice
                async for frame in self._synthesize(fallback, text, context_id, started):
                    yield frame
            except Exception as second_error:
                yield ErrorFrame(error=f"TTS failed: {second_error}")
        finally:
            await self.stop_ttfb_metrics()

    async def _synthesize(
        self, voice: Synthesizer, text: str, context_id: str, started: float
    ) -> AsyncGenerator[Frame, None]:
        """Stream ``voice``'s audio for ``text``, resampled to the output rate, tail flushed."""
        resampler = (
            soxr.ResampleStream(voice.sample_rate, self.sample_rate, 1, dtype="int16", quality="HQ")
            if voice.sample_rate != self.sample_rate
            else None
        )
        first = True
        async for block in _threaded(voice.blocks, text):
            pcm = np.frombuffer(block[: len(block) & ~1], dtype=np.int16)
            out = resampler.resample_chunk(pcm) if resampler else pcm
            if first:
                out = _trim_leading_silence(out, self.sample_rate)
            if out.size:
                if first:
                    first = False
                    await self.stop_ttfb_metrics()
                    if self._on_first_chunk:
                        self._on_first_chunk(text, (time.perf_counter() - started) * 1000)
                yield TTSAudioRawFrame(
                    out.astype(np.int16).tobytes(), self.sample_rate, 1, context_id=context_id
                )
        if resampler:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            if tail.size:
                yield TTSAudioRawFrame(
                    tail.astype(np.int16).tobytes(), self.sample_rate, 1, context_id=context_id
                )


def _trim_leading_silence(
    pcm: np.ndarray, sample_rate: int, level: int = 200, keep_s: float = 0.005
) -> np.ndarray:
    """Voices start sentences with up to ~15 ms of silence; the caller should not wait for it."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
    if loud.size == 0:
        return pcm[:0]
    return pcm[max(0, int(loud[0]) - int(keep_s * sample_rate)) :]


async def _threaded(produce: Callable[[str], Iterator[bytes]], text: str) -> AsyncGenerator[bytes, None]:
    """Run a blocking block generator in a thread and hand its blocks to the event loop as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    def work() -> None:
        try:
            for block in produce(text):
                loop.call_soon_threadsafe(queue.put_nowait, block)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as error:  # re-raised on the loop side
            loop.call_soon_threadsafe(queue.put_nowait, error)

    thread = threading.Thread(target=work, daemon=True, name="tts-synth")
    thread.start()
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
