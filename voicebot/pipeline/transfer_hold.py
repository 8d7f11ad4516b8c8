"""The call while it is being handed to staff.

The telephony layer tells the pipeline where a transfer stands with a
:class:`~voicebot.pipeline.frames.TransferStatusFrame` (``PipelineCall.transfer_status``):

- :class:`TransferHold`: from ``started`` until ``failed``/``completed`` the caller hears German ringback (425 Hz,
  1 s on / 4 s off) instead of silence, and questions are noted but not answered (staff is about to take over;
  an answer would talk over the ringing).
- ``failed``: :class:`~voicebot.pipeline.callback.CallbackTaker` (next in the pipeline) says that nobody is
  available and offers a call-back.

``SilenceWatchdog`` and ``CallTimeLimit`` read the same frames: no silence prompt, goodbye or time-limit cut while
a transfer is in progress.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from pipecat.frames.frames import Frame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.frames import CallerQuestionFrame, TransferStatusFrame
from voicebot.pipeline.transcript import CallTranscript

RINGBACK_RATE = 8000
RINGBACK_HZ = 425.0  # German ringback tone (FTZ 1 TR 110 / ITU-T E.180 for Germany)
RINGBACK_ON_S = 1.0
RINGBACK_OFF_S = 4.0
RINGBACK_LEVEL = 0.25  # ≈ -15 dBFS RMS: clearly audible, far from clipping after G.711
CHUNK_S = 0.2  # audio handed on per step; at most LEAD_S ahead of real time, so a stop is heard at once
LEAD_S = 0.4


def ringback_cadence(rate: int = RINGBACK_RATE) -> bytes:
    """One cadence period (1 s tone, 4 s silence) as 16-bit mono PCM at ``rate``, with 10 ms ramps (no clicks)."""
    on = int(RINGBACK_ON_S * rate)
    t = np.arange(on) / rate
    tone = np.sin(2 * math.pi * RINGBACK_HZ * t) * RINGBACK_LEVEL
    ramp = int(0.01 * rate)
    envelope = np.ones(on)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    period = np.concatenate([tone * envelope, np.zeros(int(RINGBACK_OFF_S * rate))])
    return (period * 32767).astype("<i2").tobytes()


class TransferHold(FrameProcessor):
    """Ringback while a transfer is in progress; questions asked meanwhile are noted, not answered."""

    def __init__(self, *, transcript: CallTranscript) -> None:
        super().__init__()
        self._transcript = transcript
        self._task: asyncio.Task[None] | None = None
        self._ringback_s = 0.0
        self.active = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame):
            await self.push_frame(frame, direction)
            if frame.phase == "started" and not self.active:
                self.active = True
                self._task = self.create_task(self._ringback(), name="ringback")
            elif frame.phase != "started" and self.active:
                self.active = False
                await self._stop()
                # How much ringback went out to the caller while staff was tried (the record's proof of it).
                self._transcript.add_event("ringback", seconds=round(self._ringback_s, 1))
            return
        if self.active and isinstance(frame, CallerQuestionFrame):
            self._transcript.add_event("question_during_transfer")
            return
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._stop()
        await super().cleanup()

    async def _stop(self) -> None:
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            await self.cancel_task(self._task)
        self._task = None

    async def _ringback(self) -> None:
        """Hand on ringback in small chunks, paced to real time (the output transport plays what it gets)."""
        period = ringback_cadence()
        chunk = int(CHUNK_S * RINGBACK_RATE) * 2
        started = time.monotonic()
        sent_s = 0.0
        self._ringback_s = 0.0
        offset = 0
        while True:
            ahead = sent_s - (time.monotonic() - started)
            if ahead > LEAD_S:
                await asyncio.sleep(ahead - LEAD_S)
                continue
            audio = period[offset : offset + chunk]
            offset = (offset + chunk) % len(period)
            await self.push_frame(OutputAudioRawFrame(audio=audio, sample_rate=RINGBACK_RATE, num_channels=1))
            sent_s += CHUNK_S
            self._ringback_s = sent_s
