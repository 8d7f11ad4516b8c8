"""Caller audio conditioning: any rate and channel count in, 16 kHz mono without DC offset out.

Why our own step instead of pipecat's stream resampler: its default soxr "VHQ" stream holds 8 kHz input back and
releases it only every ~5th 20 ms packet (measured: up to 110 ms lag for 8→16 kHz, and still 113/115/61 ms for
HQ/MQ/LQ); the "QQ" setting returns every packet at once (0 ms lag) at a quality that is more than enough for
VAD, turn detection and Whisper, which all work on 16 kHz band-limited speech anyway.
See docs/decisions/0402-low-latency-resampling.md.
"""

from __future__ import annotations

import numpy as np
import soxr
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

PIPELINE_SAMPLE_RATE = 16000  # the one rate inside every call pipeline (and what the SIP glue resamples to)
INPUT_RESAMPLER_QUALITY = "QQ"


def to_mono_int16(audio: bytes, num_channels: int) -> np.ndarray:
    samples = np.frombuffer(audio[: len(audio) - len(audio) % (2 * max(1, num_channels))], dtype=np.int16)
    if num_channels > 1:
        samples = samples.reshape(-1, num_channels).mean(axis=1).astype(np.int16)
    return samples


class LowLatencyResampler:
    """A soxr stream that returns output for every input packet (no bursts); recreated if the rate changes."""

    def __init__(self, out_rate: int, quality: str = INPUT_RESAMPLER_QUALITY) -> None:
        self._out_rate = out_rate
        self._quality = quality
        self._in_rate = 0
        self._stream: soxr.ResampleStream | None = None

    def resample(self, samples: np.ndarray, in_rate: int) -> np.ndarray:
        if in_rate == self._out_rate:
            return samples
        if self._stream is None or in_rate != self._in_rate:
            self._in_rate = in_rate
            self._stream = soxr.ResampleStream(
                in_rate, self._out_rate, 1, dtype="int16", quality=self._quality
            )
        return self._stream.resample_chunk(samples)


class DcBlocker:
    """Removes a constant or slowly drifting offset (cheap handsets, bad ADCs) that would fool the VAD's level."""

    def __init__(self, smoothing: float = 0.05) -> None:
        self._offset = 0.0
        self._smoothing = smoothing
        self._primed = False

    def process(self, samples: np.ndarray) -> np.ndarray:
        if samples.size == 0:
            return samples
        block_mean = float(samples.mean())
        if not self._primed:
            self._offset, self._primed = block_mean, True
        else:
            self._offset += self._smoothing * (block_mean - self._offset)
        if abs(self._offset) < 1.0:
            return samples
        return np.clip(samples.astype(np.float32) - self._offset, -32768, 32767).astype(np.int16)


class InputAudioNormalizer(FrameProcessor):
    """First processor after the input transport: every caller frame leaves at 16 kHz mono, DC removed."""

    def __init__(self, *, sample_rate: int = PIPELINE_SAMPLE_RATE, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._sample_rate = sample_rate
        self._resampler = LowLatencyResampler(sample_rate)
        self._dc = DcBlocker()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            samples = to_mono_int16(frame.audio, frame.num_channels)
            samples = self._resampler.resample(self._dc.process(samples), frame.sample_rate)
            if samples.size:
                await self.push_frame(
                    InputAudioRawFrame(
                        audio=samples.tobytes(), sample_rate=self._sample_rate, num_channels=1
                    ),
                    direction,
                )
            return
        await self.push_frame(frame, direction)


class CallerAudioEnd(FrameProcessor):
    """Caller audio stops here, right after the user-turn processor: VAD, ASR and smart-turn have used it, and the
    rest of the call script only needs what they made of it (transcripts, turn and speaking frames).

    Why: every 20 ms audio frame used to travel through ~17 more processors (a queue hop and an observer event
    each) to the end of the pipeline; on a 2-core machine with a dozen calls that was most of the event loop's
    time (decision 0990)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            return
        await self.push_frame(frame, direction)
