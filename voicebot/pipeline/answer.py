"""The answer step: question in, spoken sentences out, streamed as the answer engine produces them.

The first sentence goes to TTS as soon as the engine yields it, so the caller hears it while the rest is still
being produced. A barge-in (``InterruptionFrame``) cancels the answer in flight. An engine error or timeout
becomes a short apology (and, after ``call.max_consecutive_errors`` in a row, a hand-off), so the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from loguru import logger
from pipecat.frames.frames import Frame, InterruptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from knowledge.types import (
    Action,
    Answer,
    AnswerEngine,
    AnswerEvent,
    AnswerRequest,
    FinalEvent,
    SentenceEvent,
)
from voicebot.pipeline.frames import BotAnswerFrame, CallerQuestionFrame, SpeechLanguageFrame
from voicebot.pipeline.speech import end_turn, speak_frame
from voicebot.pipeline.transcript import CallTranscript, TranscriptTurn
from voicebot.settings import CallSettings


class AnswerProcessor(FrameProcessor):
    """Calls the answer engine for each question and streams its sentences to TTS."""

    def __init__(self, *, engine: AnswerEngine, transcript: CallTranscript, call: CallSettings) -> None:
        super().__init__()
        self._engine = engine
        self._transcript = transcript
        self._call = call
        self._questions: asyncio.Queue[CallerQuestionFrame] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._consecutive_errors = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallerQuestionFrame):
            # Questions are answered one after the other; only a barge-in cancels.
            await self._questions.put(frame)
            if self._task is None or self._task.done():
                self._task = self.create_task(self._answer_queued(), name="answer")
            return
        if isinstance(frame, InterruptionFrame):
            await self._cancel_answers()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._cancel_answers()
        await super().cleanup()

    async def _cancel_answers(self) -> None:
        while not self._questions.empty():
            self._questions.get_nowait()
        if self._task is not None and not self._task.done():
            await self.cancel_task(self._task)
        self._task = None

    async def _answer_queued(self) -> None:
        while not self._questions.empty():
            await self._answer(self._questions.get_nowait())

    async def _answer(self, question: CallerQuestionFrame) -> None:
        started = time.perf_counter()
        turn: TranscriptTurn | None = None
        first_sentence_ms: float | None = None
        answer: Answer | None = None
        failed = any(result.failed for result in question.asr) and not question.text.strip()
        if not failed:
            request = AnswerRequest(
                question=question.text,
                history=self._transcript.history(),
                language=question.language,
                asr_confidence=question.confidence,
                asr=question.asr_signals,
            )
            try:
                async for event in self._events_with_deadlines(request):
                    if isinstance(event, SentenceEvent) and event.text.strip():
                        if turn is None:
                            first_sentence_ms = (time.perf_counter() - started) * 1000
                        turn = await self._say_sentence(turn, event.text, question.language)
                    elif isinstance(event, FinalEvent):
                        answer = event.answer
            except asyncio.CancelledError:
                raise
            except Exception as error:  # engine failure or timeout: apologise, keep the call
                logger.warning(f"answer engine failed: {error!r}")
                self._transcript.add_event("answer_error", error=repr(error))
                answer = None
        if answer is None:
            answer, turn = await self._apologise(question, turn)
        else:
            self._consecutive_errors = 0
            if turn is None and answer.text.strip():  # engine gave no sentences: speak the final text
                first_sentence_ms = (time.perf_counter() - started) * 1000
                turn = await self._say_sentence(None, answer.text, answer.language)
        if turn is None:
            return
        self._transcript.finish_answer(turn, answer, _stage_timings(answer, first_sentence_ms))
        await self.push_frame(
            BotAnswerFrame(question=question.text, answer=answer, first_sentence_ms=first_sentence_ms)
        )
        await end_turn(self, self._transcript, turn)

    async def _say_sentence(self, turn: TranscriptTurn | None, text: str, language: str) -> TranscriptTurn:
        """Speak one sentence of the answer; the first one opens the bot's answer turn in the transcript."""
        if turn is None:
            turn = self._transcript.add_bot_turn("answer", "", language)
            await self.push_frame(SpeechLanguageFrame(language=language))
        await self.push_frame(speak_frame(text))
        self._transcript.append_bot_text(turn, text)
        return turn

    async def _events_with_deadlines(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """The engine's events, with a deadline for the first sentence and one for the whole answer."""
        stream = self._engine.stream(request).__aiter__()
        loop = asyncio.get_running_loop()
        overall_deadline = loop.time() + self._call.answer_timeout_s
        first_deadline = loop.time() + self._call.answer_first_sentence_timeout_s
        got_sentence = False
        try:
            while True:
                deadline = overall_deadline if got_sentence else min(first_deadline, overall_deadline)
                try:
                    event = await asyncio.wait_for(anext(stream), timeout=max(0.01, deadline - loop.time()))
                except StopAsyncIteration:
                    return
                got_sentence = got_sentence or isinstance(event, SentenceEvent)
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # closing must not hide the first error
                    await aclose()

    async def _apologise(
        self, question: CallerQuestionFrame, turn: TranscriptTurn | None
    ) -> tuple[Answer, TranscriptTurn]:
        self._consecutive_errors += 1
        hand_off = self._consecutive_errors >= self._call.max_consecutive_errors
        text = self._call.apology + (f" {self._call.handoff_message}" if hand_off else "")
        answer = Answer(
            text=text,
            action=Action.HANDOFF if hand_off else Action.CLARIFY,
            confidence=0.0,
            language=question.language,
            reason="error",
        )
        if turn is None:
            turn = self._transcript.add_bot_turn("apology", "", question.language)
            await self.push_frame(SpeechLanguageFrame(language=question.language))
        await self.push_frame(speak_frame(text))
        self._transcript.append_bot_text(turn, text)
        return answer, turn


def _stage_timings(answer: Answer, first_sentence_ms: float | None) -> dict[str, float]:
    """Engine timings as reported, plus our split of the first sentence into retrieval and answering."""
    timings = {f"engine_{key}": value for key, value in answer.timings_ms.items()}
    retrieval = next((v for k, v in answer.timings_ms.items() if "retriev" in k), None)
    if first_sentence_ms is not None:
        timings["retrieval"] = min(retrieval or 0.0, first_sentence_ms)
        timings["answer_first_sentence"] = first_sentence_ms - timings["retrieval"]
    return timings
