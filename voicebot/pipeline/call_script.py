"""The call script: small processors, one job each, between turn detection and the answer step.

- :class:`GreetingSpeaker` says the greeting at call start: the AI disclosure in full, the rest (how to reach a
  person, where the data-protection notice is) interruptible.
- :class:`DtmfRecorder` notes keypad digits in the transcript and passes the frames on; while the bot waits for
  the answer to its confirmation question ("Geht es um das Thema …?"), 1 and 2 become "ja" and "nein".
- :class:`HandoffKeyListener` (phone calls) says the hand-off sentence when the caller presses a hand-off key
  (``sip.handoff_dtmf``), then asks for staff with a :class:`HandoffRequestFrame`; once per call.
- :class:`SilenceWatchdog` asks once whether the caller is still there, then ends the call politely (never while
  a transfer is in progress).
- :class:`CallTimeLimit` ends the call politely when it has lasted ``call.max_call_s``.
- :class:`GoodbyeDetector` ends the call when the caller says goodbye.
- :class:`RepeatResponder` repeats the last answer on "Wie bitte?".
- :class:`HandoffGate` (before the repeat step) asks the hand-off policy about each caller turn: words asking for a
  person, frustration words, "Wie bitte?" too often hand off before the engine answers.
- :class:`HandoffSignaler` (after the answer step) asks the policy about each answer (the engine's hand-off,
  emergency or redirect, unsure turns in a row, failures) and emits a :class:`HandoffRequestFrame` after it.

Every hand-off goes through one :class:`HandoffDesk` (:mod:`voicebot.handoff_policy` decides; the desk records the
``handoff_requested`` event with the reason and the staff group, says the hand-off sentence where the answer did not
already, and routes by the cited pages' department).
"""

from __future__ import annotations

import asyncio
import contextlib
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InputDTMFFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from knowledge import confirm
from knowledge.textfold import utterance_words
from knowledge.types import Action
from voicebot.handoff_policy import DepartmentLookup, HandoffDecision, HandoffPolicy, departments_of
from voicebot.metrics import METRICS
from voicebot.pipeline.frames import (
    BotAnswerFrame,
    CallEndingFrame,
    CallerQuestionFrame,
    HandoffRequestFrame,
    SpeechLanguageFrame,
    TransferStatusFrame,
)
from voicebot.pipeline.speech import end_turn, say, speak_frame
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import CallSettings, Settings

if TYPE_CHECKING:
    from voicebot.pipeline.callback import CallbackDesk

HANDOFF_ACTIONS = (Action.HANDOFF, Action.EMERGENCY, Action.REDIRECT)


def matches_phrase(text: str, phrases: list[str], *, max_extra_words: int = 3) -> bool:
    """True when ``text`` is essentially one of ``phrases``: a short utterance containing its words in order,
    each allowing the small misspellings of phone ASR ("Wiederhöhren")."""
    words = utterance_words(text).split()
    for phrase in phrases:
        wanted = utterance_words(phrase).split()
        if wanted and len(words) <= len(wanted) + max_extra_words and _contains_in_order(words, wanted):
            return True
    return False


def _contains_in_order(words: list[str], wanted: list[str]) -> bool:
    for start in range(len(words) - len(wanted) + 1):
        if all(_similar(words[start + i], word) for i, word in enumerate(wanted)):
            return True
    return False


def _similar(heard: str, word: str) -> bool:
    if heard == word:
        return True
    return len(word) >= 6 and SequenceMatcher(None, heard, word).ratio() >= 0.85


async def end_call(processor: FrameProcessor, transcript: CallTranscript, reason: str) -> None:
    """Queue the end of the call behind what is being said, so the last words are heard."""
    transcript.end(reason)
    await processor.push_frame(CallEndingFrame(reason=reason))
    await processor.push_frame(EndWorkerFrame(reason=reason))


class _ScriptStep(FrameProcessor):
    """A call-script processor: it reads the call's settings and writes to its transcript."""

    def __init__(self, *, transcript: CallTranscript, call: CallSettings) -> None:
        super().__init__()
        self._transcript = transcript
        self._call = call


DIGIT_WORDS = {
    "0": "Null",
    "1": "Eins",
    "2": "Zwei",
    "3": "Drei",
    "4": "Vier",
    "5": "Fünf",
    "6": "Sechs",
    "7": "Sieben",
    "8": "Acht",
    "9": "Neun",
    "*": "Stern",
    "#": "Raute",
}


def compose_greeting(town: str, privacy_url: str, handoff_keys: str) -> str:
    """The default greeting, short and built from the town's settings: the AI disclosure first (its own sentence,
    always heard: 2.35 s of espeak-ng at 160 words per minute), then how to reach a person (only where a hand-off
    key is listened to) and where the data-protection notice is (the host of ``privacy_url``), then the
    invitation; 7.8 s in all, and the caller may talk after the disclosure."""
    notes = []
    if handoff_keys:
        notes.append(f"Für einen Menschen die {DIGIT_WORDS.get(handoff_keys[0], handoff_keys[0])}")
    host = privacy_url.split("://", 1)[-1].split("/", 1)[0].strip()
    if host:
        notes.append(f"Datenschutz: {host}")
    parts = [f"Hier ist der KI-Assistent von {town}."]
    if notes:
        parts.append(", ".join(notes) + ".")
    parts.append("Ihre Frage bitte.")
    return " ".join(parts)


def split_disclosure(greeting: str) -> tuple[str, str]:
    """The greeting's first sentence (the disclosure) and the rest ("" when it is one sentence)."""
    text = " ".join(greeting.split())
    for index, char in enumerate(text):
        if char in ".!?" and (index + 1 == len(text) or text[index + 1] == " "):
            return text[: index + 1], text[index + 1 :].strip()
    return text, ""


class GreetingSpeaker(_ScriptStep):
    """Says the greeting at call start as two bot turns: the disclosure (not interruptible unless
    ``greeting_interruptible``: the caller must hear that a machine answers) and the rest (interruptible: a
    caller who starts talking is listened to, and answered, at once)."""

    def __init__(
        self, *, transcript: CallTranscript, call: CallSettings, greeting: str, recording_question: str = ""
    ) -> None:
        """``recording_question`` (privacy.recording on): asked right after the greeting (decision 0970)."""
        super().__init__(transcript=transcript, call=call)
        self._greeting = greeting
        self._recording_question = recording_question

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._greeting.strip():
            disclosure, rest = split_disclosure(self._greeting)
            interruptible = self._call.greeting_interruptible
            turn = self._transcript.add_bot_turn("greeting", disclosure, interruptible=interruptible)
            # Marked before its frames leave: the playout tracker marks this turn played when its audio has left
            # the output, and the record then says the disclosure was heard in full (or, when the caller hangs
            # up before, that it was not).
            self._transcript.mark_disclosure(turn)
            await self.push_frame(SpeechLanguageFrame(language="de"))
            await self.push_frame(speak_frame(disclosure, interruptible=interruptible))
            await end_turn(self, self._transcript, turn)
            if rest:
                await say(self, self._transcript, "greeting", rest, interruptible=True)
        if isinstance(frame, StartFrame) and self._recording_question.strip():
            await say(
                self, self._transcript, "recording_question", self._recording_question, interruptible=True
            )


class DtmfRecorder(FrameProcessor):
    def __init__(self, *, transcript: CallTranscript) -> None:
        super().__init__()
        self._transcript = transcript

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame) and direction == FrameDirection.DOWNSTREAM:
            digit = str(frame.button.value)
            waiting = confirm.pending(self._transcript.history()) is not None
            self._transcript.add_caller_dtmf(digit)
            await self.push_frame(frame, direction)
            if waiting and digit in (confirm.YES_DIGIT, confirm.NO_DIGIT):
                # The keypad answer to "Geht es um das Thema …?" reaches the answer step as a spoken one would.
                reply = "ja" if digit == confirm.YES_DIGIT else "nein"
                await self.push_frame(CallerQuestionFrame(text=reply, language="de"))
            return
        await self.push_frame(frame, direction)


class HandoffDesk:
    """The call's hand-off policy plus what acting on a decision needs: the transcript, the hand-off sentence and
    the department of the pages the answers cited (for routing to the topic's staff group).

    ``transfers``: someone acts on a hand-off (a phone call). Without (a browser call) the policy's own rules stay
    silent, so the bot never says it connects where nobody can be connected; the engine's hand-off, emergency and
    redirect answers say so themselves and are still recorded.

    ``callbacks`` (:class:`~voicebot.pipeline.callback.CallbackDesk`): outside the group's office hours nobody is
    rung; the caller hears when the office opens again and is offered a call-back instead (decision 0811).
    """

    def __init__(
        self,
        settings: Settings,
        transcript: CallTranscript,
        *,
        handoff_keys: str = "",
        department_of: DepartmentLookup | None = None,
        transfers: bool = True,
        callbacks: CallbackDesk | None = None,
    ) -> None:
        self.transfers = transfers
        self.callbacks = callbacks
        self.last_group = ""  # of the latest hand-off: the group a call-back after it goes to
        self.last_question = ""  # the caller's words that led to it: a call-back's topic when they name none
        self.policy = HandoffPolicy(
            settings.handoff,
            handoff_keys=handoff_keys,
            repeat_phrases=settings.call.repeat_phrases,
            max_consecutive_errors=settings.call.max_consecutive_errors,
            default_staff_uri=settings.sip.staff_uri,
        )
        self.message = settings.call.handoff_message
        self._transcript = transcript
        self._department_of = department_of
        self._departments: list[str] = []  # of the latest answer that cited pages

    def note_sources(self, sources: list[str]) -> None:
        found = departments_of(sources, self._department_of)
        if found:
            self._departments = found

    async def hand_off(
        self,
        processor: FrameProcessor,
        decision: HandoffDecision,
        *,
        summary: str,
        sources: list[str] | None = None,
        announce: bool = True,
        question: str = "",
    ) -> None:
        """Record the decision, say the hand-off sentence (``announce``), then ask the telephony layer. Outside
        office hours the call-back desk takes over instead (``question``: the caller's words, its default
        topic)."""
        route = self.policy.route(self._departments)
        self.last_group, self.last_question = route.group, question
        data = {
            "reason": decision.reason,
            "group": route.group,
            "department": next(iter(self._departments), ""),
        }
        if decision.detail:
            data["detail"] = decision.detail
        self._transcript.add_event("handoff_requested", **data)
        METRICS.handoff(decision.reason)
        if self.callbacks is not None and await self.callbacks.office_closed(
            processor, route.group, question
        ):
            return
        if announce:
            await say(processor, self._transcript, "handoff", self.message, interruptible=False)
        await processor.push_frame(
            HandoffRequestFrame(
                reason=decision.reason,
                summary=summary[:300],
                sources=list(sources or []),
                kind=decision.kind,
                group=route.group,
                staff_uri=route.staff_uri,
            )
        )


class HandoffKeyListener(FrameProcessor):
    """The keypad way to a human: a digit of the desk's hand-off keys says the hand-off sentence (not
    interruptible) and requests a hand-off behind it, so the telephony layer transfers the call after the caller
    heard the sentence. Only the first such key of a call counts; the digits always pass on."""

    def __init__(self, *, desk: HandoffDesk) -> None:
        super().__init__()
        self._desk = desk
        self._fired = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if self._fired or direction != FrameDirection.DOWNSTREAM or not isinstance(frame, InputDTMFFrame):
            return
        if self._desk.callbacks is not None and self._desk.callbacks.dialogue.active:
            return  # a digit of a call-back number, not a request for staff
        digit = str(frame.button.value)
        decision = self._desk.policy.on_dtmf(digit)
        if decision is None:
            return
        self._fired = True
        await self._desk.hand_off(self, decision, summary=f"Anrufer hat {digit} gedrückt")


class HandoffGate(FrameProcessor):
    """Asks the policy about each caller turn; a hand-off (a person asked for, frustration, "Wie bitte?" too often)
    replaces the answer: the caller hears the hand-off sentence and is passed on."""

    def __init__(self, *, desk: HandoffDesk) -> None:
        super().__init__()
        self._desk = desk

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallerQuestionFrame) and self._desk.transfers:
            decision = self._desk.policy.on_caller_turn(frame.text, frame.confidence)
            if decision is not None:
                await self._desk.hand_off(
                    self, decision, summary=f"Anrufer: {frame.text}", question=frame.text
                )
                return
        await self.push_frame(frame, direction)


class SilenceWatchdog(FrameProcessor):
    """Neither side has spoken for ``silence_timeout_s``: ask once, then say goodbye and end the call."""

    def __init__(
        self, *, transcript: CallTranscript, call: CallSettings, timeout_s: float | None = None
    ) -> None:
        super().__init__()
        self._transcript = transcript
        self._call = call
        self._timeout_s = timeout_s if timeout_s is not None else call.silence_timeout_s
        self._timer: asyncio.Task[None] | None = None
        self._prompted = False
        self._ended = False
        self._bot_speaking = False
        self._transfer = (
            False  # a transfer is in progress: the caller hears ringback, nobody asks or hangs up
        )

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame):
            self._transfer = frame.in_progress
            if self._transfer:
                await self._disarm()
            else:
                self._prompted = False
                await self._arm()
        elif isinstance(frame, UserStartedSpeakingFrame | BotStartedSpeakingFrame):
            if isinstance(frame, UserStartedSpeakingFrame):
                self._prompted = False
            self._bot_speaking = self._bot_speaking or isinstance(frame, BotStartedSpeakingFrame)
            await self._disarm()
        elif isinstance(frame, InputDTMFFrame):
            self._prompted = False  # a key press is the caller's answer too (a call-back number being typed)
            if not self._bot_speaking:
                await self._arm()
        elif isinstance(frame, UserStoppedSpeakingFrame | BotStoppedSpeakingFrame):
            if isinstance(frame, BotStoppedSpeakingFrame):
                self._bot_speaking = False
            await self._arm()

    async def cleanup(self) -> None:
        await self._disarm()
        await super().cleanup()

    async def _arm(self) -> None:
        await self._disarm()
        if not self._ended and not self._transfer and self._timeout_s > 0:
            self._timer = self.create_task(self._expire(), name="silence")

    async def _disarm(self) -> None:
        if self._timer is not None and not self._timer.done() and self._timer is not asyncio.current_task():
            await self.cancel_task(self._timer)
        self._timer = None

    async def _expire(self) -> None:
        await asyncio.sleep(self._timeout_s)
        if self._ended or self._transfer:
            return
        if not self._prompted:
            self._prompted = True
            await say(self, self._transcript, "silence_prompt", self._call.silence_prompt)
        else:
            self._ended = True
            await say(self, self._transcript, "goodbye", self._call.goodbye, interruptible=False)
            await end_call(self, self._transcript, "silence")


class CallTimeLimit(FrameProcessor):
    """``max_call_s`` after the call started: say ``max_call_message`` (not interruptible), then end the call.

    A line is a shared resource (``sip.max_calls``); this bounds how long one caller can hold it. Questions that
    arrive after the limit are not answered any more: the closing sentence is already on its way. A transfer in
    progress is not cut: the limit waits for its end, at most ``transfer_grace_s`` longer.
    """

    def __init__(
        self, *, transcript: CallTranscript, call: CallSettings, limit_s: float | None = None
    ) -> None:
        super().__init__()
        self._transcript = transcript
        self._call = call
        self._limit_s = limit_s if limit_s is not None else call.max_call_s
        self._timer: asyncio.Task[None] | None = None
        self._reached = False
        self._no_transfer = asyncio.Event()
        self._no_transfer.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._reached and isinstance(frame, CallerQuestionFrame):
            return
        await self.push_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame):
            if frame.in_progress:
                self._no_transfer.clear()
            else:
                self._no_transfer.set()
        if isinstance(frame, StartFrame) and self._limit_s > 0 and self._timer is None:
            self._timer = self.create_task(self._expire(), name="max_call")

    async def cleanup(self) -> None:
        if self._timer is not None and not self._timer.done() and self._timer is not asyncio.current_task():
            await self.cancel_task(self._timer)
        await super().cleanup()

    async def _expire(self) -> None:
        await asyncio.sleep(self._limit_s)
        if not self._no_transfer.is_set():
            self._transcript.add_event("max_duration_waits_for_transfer")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_transfer.wait(), self._call.transfer_grace_s)
        self._reached = True
        await say(self, self._transcript, "max_duration", self._call.max_call_message, interruptible=False)
        await end_call(self, self._transcript, "max_duration")


class GoodbyeDetector(_ScriptStep):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallerQuestionFrame) and matches_phrase(frame.text, self._call.goodbye_phrases):
            await say(self, self._transcript, "goodbye", self._call.goodbye, interruptible=False)
            await end_call(self, self._transcript, "goodbye")
            return
        await self.push_frame(frame, direction)


class RepeatResponder(_ScriptStep):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallerQuestionFrame) and matches_phrase(
            frame.text, self._call.repeat_phrases, max_extra_words=5
        ):
            last = self._transcript.last_answer_text()
            if last:
                await say(self, self._transcript, "repeat", last, language=frame.language)
                return
        await self.push_frame(frame, direction)


class HandoffSignaler(FrameProcessor):
    """Asks the policy about each answer the caller heard; a hand-off follows the spoken answer (with the hand-off
    sentence first where the answer itself did not hand off, e.g. after two unsure turns)."""

    def __init__(self, *, desk: HandoffDesk) -> None:
        super().__init__()
        self._desk = desk

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if not isinstance(frame, BotAnswerFrame):
            return
        self._desk.note_sources(list(frame.answer.sources))
        decision = self._desk.policy.on_answer(frame.answer)
        announce = frame.answer.action not in HANDOFF_ACTIONS  # the answer did not say it hands off
        if decision is None or (announce and not self._desk.transfers):
            return
        await self._desk.hand_off(
            self,
            decision,
            summary=f"Frage: {frame.question} | Antwort: {frame.answer.text}",
            sources=list(frame.answer.sources),
            announce=announce,
            question=frame.question,
        )
