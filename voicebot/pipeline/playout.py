"""After the output transport: what the caller actually heard.

Frames leave the output transport only after the audio queued before them was written, so this is where a bot
turn counts as played in full, where a barge-in marks the newest unfinished turn as interrupted, where the first
bot audio closes the latency account, and where hand-off / end-of-call requests are handed to the telephony
layer (``on_event``) — after the caller heard the words that go with them.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from pipecat.frames.frames import BotStartedSpeakingFrame, CancelFrame, EndFrame, Frame, InterruptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.frames import BotTurnEndFrame, CallEndingFrame, HandoffRequestFrame
from voicebot.pipeline.transcript import CallTranscript

if TYPE_CHECKING:
    from voicebot.calls import CallEvent, CallEventHandler


class PlayoutTracker(FrameProcessor):
    def __init__(self, *, transcript: CallTranscript, on_event: CallEventHandler | None = None) -> None:
        super().__init__()
        self._transcript = transcript
        self._on_event = on_event

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self._transcript.bot_audio_started(frame_time(frame))
            elif isinstance(frame, BotTurnEndFrame):
                self._transcript.bot_turn_played(frame.turn_index)
            elif isinstance(frame, InterruptionFrame):
                if self._transcript.mark_interrupted():
                    self._transcript.add_event("barge_in")
            elif isinstance(frame, HandoffRequestFrame | CallEndingFrame):
                await self._emit(frame)
            elif isinstance(frame, CancelFrame):
                self._transcript.end("hangup")  # keeps a reason set earlier (goodbye, silence)
            elif isinstance(frame, EndFrame):
                self._transcript.end("ended")
        await self.push_frame(frame, direction)

    async def _emit(self, frame: CallEvent) -> None:
        if self._on_event is None:
            return
        result = self._on_event(frame)
        if inspect.isawaitable(result):
            await result


def frame_time(_frame: Frame) -> float:
    import time

    return time.time()
