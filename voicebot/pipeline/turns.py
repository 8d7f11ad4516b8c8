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
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
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
        self._results: list[AsrResult] = []
        self._texts: list[str] = []
        self._speech_start = 0.0
        self._speech_end = 0.0
        self._turn_open = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        downstream = direction == FrameDirection.DOWNSTREAM
        if downstream and isinstance(frame, VADUserStartedSpeakingFrame):
            if not self._speech_start:
                self._speech_start = frame.timestamp - frame.start_secs
        elif downstream and isinstance(frame, VADUserStoppedSpeakingFrame):
            self._speech_end = frame.timestamp - frame.stop_secs
        elif downstream and isinstance(frame, TranscriptionFrame):
            self._texts.append(frame.text)
            if isinstance(frame.result, AsrResult):
                self._results.append(frame.result)
            if not self._turn_open:
                # A transcript that arrives after its turn was closed (slow ASR on a busy machine, the caller
                # spoke again before the first transcript came back) is a question of its own.
                await self._emit_question()
            return  # the question frame replaces the raw transcripts
        elif downstream and isinstance(frame, UserStartedSpeakingFrame):
            self._turn_open = True
            if not self._texts:
                self._speech_start = 0.0
        elif downstream and isinstance(frame, UserStoppedSpeakingFrame):
            self._turn_open = False
            await self.push_frame(frame, direction)
            await self._emit_question()
            return
        await self.push_frame(frame, direction)

    async def _emit_question(self) -> None:
        if not self._texts:
            return
        usable = [result for result in self._results if not result.failed]
        language = usable[-1].language if usable else self._default_language
        question = CallerQuestionFrame(
            text=" ".join(text for text, result in self._zip_texts() if result is None or not result.failed),
            language=language,
            asr=list(self._results),
            speech_start_time=self._speech_start,
            speech_end_time=self._speech_end,
            turn_end_time=time.time(),
        )
        self._texts, self._results = [], []
        self._speech_start = self._speech_end = 0.0
        self._transcript.add_caller_question(question)
        await self.push_frame(question)

    def _zip_texts(self) -> list[tuple[str, AsrResult | None]]:
        results: list[AsrResult | None] = list(self._results)
        results += [None] * (len(self._texts) - len(results))
        return list(zip(self._texts, results, strict=False))
