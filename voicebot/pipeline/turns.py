"""From turn detection to one question: collect the transcripts of a caller turn into a ``CallerQuestionFrame``.

pipecat's ``UserTurnProcessor`` (Silero VAD + smart-turn v3) decides when the caller's turn ends; Whisper
transcribes each VAD segment on its own. A turn may hold several segments (the caller paused mid-sentence), so the
texts are joined here, with the timing marks the latency account needs.
"""

from __future__ import annotations

import time

from pipecat.frames.frames import (
    Frame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.frames import AsrResult, CallerQuestionFrame
from voicebot.pipeline.transcript import CallTranscript


class CallerTurnAssembler(FrameProcessor):
    """Joins the transcripts between user-turn start and stop and emits them as one question."""

    def __init__(self, *, transcript: CallTranscript, default_language: str = "de") -> None:
        super().__init__()
        self._transcript = transcript
        self._default_language = default_language
        self._parts: list[tuple[str, AsrResult | None]] = []
        self._turn_open = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        downstream = direction == FrameDirection.DOWNSTREAM
        if downstream and isinstance(frame, TranscriptionFrame):
            self._parts.append((frame.text, frame.result if isinstance(frame.result, AsrResult) else None))
            if not self._turn_open:
                # A transcript that arrives after its turn was closed (slow ASR on a busy machine, the caller
                # went on speaking after a pause) is a question of its own.
                await self._emit_question()
            return  # the question frame replaces the raw transcripts
        if downstream and isinstance(frame, UserStartedSpeakingFrame):
            self._turn_open = True
        elif downstream and isinstance(frame, UserStoppedSpeakingFrame):
            self._turn_open = False
            await self.push_frame(frame, direction)
            await self._emit_question()
            return
        await self.push_frame(frame, direction)

    async def _emit_question(self) -> None:
        if not self._parts:
            return
        parts, self._parts = self._parts, []
        results = [result for _text, result in parts if result is not None]
        usable = [result for result in results if not result.failed]
        timed = [result for result in results if result.speech_end_time]
        question = CallerQuestionFrame(
            text=" ".join(text for text, result in parts if result is None or not result.failed),
            language=usable[-1].language if usable else self._default_language,
            asr=results,
            speech_start_time=timed[0].speech_start_time if timed else 0.0,
            speech_end_time=timed[-1].speech_end_time if timed else 0.0,
            turn_end_time=time.time(),
        )
        self._transcript.add_caller_question(question)
        await self.push_frame(question)
