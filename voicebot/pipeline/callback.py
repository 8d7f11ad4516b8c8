"""Call-backs that lose nothing (issue 10, decisions 0810–0812): the dialogue that takes a call-back request and
the processor that runs it in the call.

The bot offers a call-back after a hand-off nobody took (``TransferStatusFrame`` ``failed``: busy, declined, not
answered, nobody available in the queue, waited too long) and, outside office hours, instead of ringing staff at
all (:meth:`CallbackDesk.office_closed`, asked by the hand-off desk; the caller hears when the office opens again).
Taken ("ja" or key ``call.callback_key``), it asks

1. the caller's name (one short answer; ``#`` or "nein" leaves it out),
2. the topic (one short answer; nothing useful → the question that led to the hand-off),
3. the number: the caller's own when the call brought a valid one ("Soll ich Sie unter der Nummer … zurückrufen,
   von der Sie anrufen?"); else, or on "nein", digits by keypad (ending with ``#``, ``*`` starts over) or by voice
   ("null zwei eins eins …", :func:`spoken_number`), read back digit by digit and confirmed ("ja"/1, "nein"/2);
   an invalid number (:func:`valid_number`) or a "nein" asks again, at most ``callback.max_number_attempts`` times,

then stores the request (:class:`CallbackStore`: the ``callbacks`` table, linked to the call's record by its call
id, ``number_via`` ``caller_id``/``keypad``/``speech``, due at the closing time of the next working day,
:meth:`~voicebot.staff.calendar.OfficeCalendar.callback_due`), records the event ``callback_requested`` and tells
the caller when to expect the call ("Wir rufen Sie bis morgen, 16 Uhr, zurück.").

:class:`CallbackDialogue` is the dialogue as a pure state machine (text or key in, what to say and do out);
:class:`CallbackDesk` adds the call's settings, calendar, clock and storage; :class:`CallbackTaker` is the
pipeline processor (in place of the former ``CallbackOffer``) that feeds it the caller's turns and keys.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from loguru import logger
from pipecat.frames.frames import Frame, InputDTMFFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from knowledge.normalize import parse_number_word
from knowledge.textfold import fold_word, utterance_words
from voicebot.pipeline.call_script import HandoffDesk, matches_phrase
from voicebot.pipeline.frames import CallerQuestionFrame, TransferStatusFrame
from voicebot.pipeline.speech import say
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import CallbackSettings, CallSettings, OfficeHoursSettings, Settings
from voicebot.staff.calendar import due_words, when_words

MAX_NAME_CHARS = 80
MAX_TOPIC_CHARS = 200
MAX_KEYED_DIGITS = 20  # then the entry counts as finished (and is invalid: at most 15 digits)

# --- numbers -------------------------------------------------------------------------------------------------

_DIGIT_NAMES = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")


def spoken_number(text: str) -> str | None:
    """The digits of a phone number said in words or written by the recogniser as digits: "null eins sieben
    sechs, zwölf vierunddreißig" → ``"0176 1234"`` without the space; "plus vier neun …" → ``"+49…"``. Other
    words ("Meine Nummer ist …") are skipped. None when the text holds no digit at all."""
    text = text.lower().replace("+", " plus ")
    words = [fold_word(word) for word in re.findall(r"[a-zäöüß]+|\d+", text)]
    digits: list[str] = []
    for word in words:
        if word.isdigit():
            digits.append(word)
        elif word == "plus" and not digits:
            digits.append("+")
        else:
            value = parse_number_word(
                word
            )  # the search's own reading of number words ("zwölf", "einundzwanzig")
            if value is not None:
                digits.append(str(value))
    number = "".join(digits)
    return number if any(char.isdigit() for char in number) else None


def normalise_number(text: str) -> str:
    """A number as written (``"0211 / 12 34-5"``, ``"+49 (211) 12345"``) → its digits, a leading ``+`` kept."""
    stripped = text.strip()
    digits = "".join(char for char in stripped if char.isdigit())
    return f"+{digits}" if stripped.startswith("+") else digits


def valid_number(number: str) -> bool:
    """A number staff can call back (German formats): ``0…`` (area code or mobile prefix, ``00`` international)
    or ``+…`` (``+49…``), 5 to 15 digits in all; nothing else."""
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit() or not 5 <= len(digits) <= 15:
        return False
    if number.startswith("+"):
        return digits[0] != "0"
    return (digits[0] == "0" and digits[1] != "0") or (digits.startswith("00") and digits[2] != "0")


def digits_in_words(number: str) -> str:
    """Digit by digit, in groups of three: ``"02111234"`` → ``"null zwei eins, eins eins zwei, drei vier"``."""
    words = ["plus"] if number.startswith("+") else []
    digits = [_DIGIT_NAMES[int(char)] for char in number if char.isdigit()]
    groups = [" ".join(digits[start : start + 3]) for start in range(0, len(digits), 3)]
    return " ".join([*words, ", ".join(groups)])


# --- the dialogue --------------------------------------------------------------------------------------------


class Step(enum.StrEnum):
    IDLE = "idle"  # no call-back in question: everything passes
    OFFERED = "offered"  # "Soll ich einen Rückruf für Sie notieren?"
    NAME = "name"
    TOPIC = "topic"
    OWN_NUMBER = "own_number"  # "… unter der Nummer …, von der Sie anrufen?"
    NUMBER = "number"  # digits by keypad or voice
    CONFIRM = "confirm"  # the number read back: right?


@dataclass(frozen=True)
class CallbackRequest:
    """What the caller asked for, ready to store."""

    group: str
    phone_number: str
    number_via: str  # caller_id | keypad | speech
    caller_name: str
    topic: str


@dataclass
class Reply:
    """What the dialogue does with one caller turn or key: ``said`` (bot turn kind, text) in order, ``events`` for
    the record, ``request`` to store (then the confirmation is said), ``consumed``: the input was the dialogue's
    (else it goes on to the answer step as a question)."""

    said: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    request: CallbackRequest | None = None
    consumed: bool = True


class CallbackDialogue:
    """The call-back dialogue as a state machine; one per call. Pure: the caller's words and keys in,
    :class:`Reply` out."""

    def __init__(
        self,
        texts: CallbackSettings,
        *,
        callback_key: str = "1",
        offer_phrases: list[str],
        goodbye_phrases: Sequence[str] = (),
    ) -> None:
        self.texts = texts
        self.callback_key = callback_key
        self.offer_phrases = offer_phrases
        self.goodbye_phrases = list(goodbye_phrases)
        self.step = Step.IDLE
        self.stored = False  # a request of this call was stored: no second offer
        self.group = ""
        self.caller_number = ""
        self.default_topic = ""
        self._name = ""
        self._topic = ""
        self._keyed = ""
        self._number = ""
        self._via = ""
        self._attempts = 0

    @property
    def active(self) -> bool:
        """The dialogue owns the caller's keys and words (the hand-off key is a digit of a number here)."""
        return self.step is not Step.IDLE

    def offer(self, *, group: str, caller_number: str, default_topic: str) -> None:
        """The offer has just been said (by whoever said it): the next "ja" or key takes it."""
        self.step = Step.OFFERED
        self.group = group
        self.caller_number = normalise_number(caller_number) if caller_number else ""
        self.default_topic = default_topic.strip()[:MAX_TOPIC_CHARS]
        self._name = self._topic = self._keyed = self._number = self._via = ""
        self._attempts = 0

    def stored_now(self) -> None:
        self.step = Step.IDLE
        self.stored = True

    # --- input -------------------------------------------------------------------------------------------

    def on_key(self, key: str) -> Reply | None:
        """A keypad digit (``0``-``9``, ``*``, ``#``); None when the dialogue has nothing to do with it."""
        step = self.step
        if step is Step.OFFERED:
            return self._accept("dtmf") if key == self.callback_key else None
        if step is Step.NAME:
            return self._after_name("") if key == "#" else None
        if step is Step.TOPIC:
            return self._after_topic("") if key == "#" else None
        if step is Step.OWN_NUMBER:
            if key in "12":
                return self._own_number(key == "1")
            if key.isdigit():  # typing a number at once: the caller wants another one
                self.step, self._keyed = Step.NUMBER, key
                return Reply()
            return None
        if step is Step.NUMBER:
            return self._key_in_number(key)
        if step is Step.CONFIRM:
            if key in "12":
                return self._confirm(key == "1")
            if key.isdigit():  # a new number typed instead of an answer
                self.step, self._keyed = Step.NUMBER, key
                return Reply()
        return None

    def on_text(self, text: str) -> Reply | None:
        """A caller turn; None when the dialogue is idle."""
        step = self.step
        if step is Step.IDLE:
            return None
        if step is Step.OFFERED:
            if matches_phrase(text, self.offer_phrases, max_extra_words=2) or self._yes(text):
                return self._accept("speech")
            self.step = Step.IDLE
            if self._no(text):
                return Reply(
                    said=[("callback_declined", self.texts.declined)], events=[("callback_declined", {})]
                )
            return Reply(consumed=False)  # not an answer to the offer: a question for the bot
        if matches_phrase(text, self.goodbye_phrases):  # the caller leaves: the goodbye step ends the call
            self.step = Step.IDLE
            return Reply(events=[("callback_abandoned", {"step": str(step)})], consumed=False)
        if matches_phrase(text, self.texts.cancel_phrases, max_extra_words=2):
            self.step = Step.IDLE
            return Reply(
                said=[("callback_declined", self.texts.declined)],
                events=[("callback_abandoned", {"step": str(step)})],
            )
        if step is Step.NAME:
            if self._yes(text):  # "Ja" to "Sind Sie noch da?" or to "Gern.": no name, ask again
                return Reply(said=[("callback_name", self.texts.ask_name)])
            return self._after_name("" if self._no(text) else clean_name(text))
        if step is Step.TOPIC:
            if self._yes(text):
                return Reply(said=[("callback_topic", self.texts.ask_topic)])
            return self._after_topic(clean_topic(text))
        if step is Step.OWN_NUMBER:
            if self._yes(text) or self._no(text):  # "nein" wins over a "stimmt" in the same turn
                return self._own_number(not self._no(text))
            return self._spoken_number(text) or self._ask_own_number()
        if step is Step.NUMBER:
            if self._yes(text):  # "Ja" to "Sind Sie noch da?": not a wrong number
                return Reply(said=[("callback_number", self.texts.ask_number)])
            return self._spoken_number(text) or self._invalid()
        if step is Step.CONFIRM:
            if self._yes(text) or self._no(text):
                return self._confirm(not self._no(text))
            return self._spoken_number(text) or self._read_back()
        return None

    # --- steps ---------------------------------------------------------------------------------------------

    def _yes(self, text: str) -> bool:
        return text.strip() == "1" or matches_phrase(text, self.texts.yes_phrases, max_extra_words=2)

    def _no(self, text: str) -> bool:
        words = utterance_words(text).split()
        if len(words) == 1 and words[0] in _HEARD_NO:
            return True
        return text.strip() == "2" or matches_phrase(text, self.texts.no_phrases, max_extra_words=3)

    def _accept(self, via: str) -> Reply:
        self.step = Step.NAME
        return Reply(
            said=[("callback_name", self.texts.ask_name)], events=[("callback_accepted", {"via": via})]
        )

    def _after_name(self, name: str) -> Reply:
        self._name = name
        self.step = Step.TOPIC
        return Reply(said=[("callback_topic", self.texts.ask_topic)])

    def _after_topic(self, topic: str) -> Reply:
        self._topic = topic or self.default_topic
        if valid_number(self.caller_number):
            return self._ask_own_number()
        return self._ask_number()

    def _ask_own_number(self) -> Reply:
        self.step = Step.OWN_NUMBER
        text = self.texts.offer_own_number.format(digits=digits_in_words(self.caller_number))
        return Reply(said=[("callback_own_number", text)])

    def _own_number(self, yes: bool) -> Reply:
        if yes:
            return self._store(self.caller_number, "caller_id")
        return self._ask_number()

    def _ask_number(self) -> Reply:
        self.step, self._keyed = Step.NUMBER, ""
        return Reply(said=[("callback_number", self.texts.ask_number)])

    def _key_in_number(self, key: str) -> Reply | None:
        if key == "*":
            self._keyed = ""
            return Reply(said=[("callback_number", self.texts.ask_number)])
        if key != "#":
            self._keyed += key
            if len(self._keyed) < MAX_KEYED_DIGITS:
                return Reply()
        keyed, self._keyed = self._keyed, ""
        if not keyed:
            return None  # a lone # (the end of the topic, pressed twice): nothing typed yet
        return self._candidate(keyed, "keypad") or self._invalid()

    def _spoken_number(self, text: str) -> Reply | None:
        number = spoken_number(text)
        return None if number is None else (self._candidate(number, "speech") or self._invalid())

    def _candidate(self, number: str, via: str) -> Reply | None:
        if not valid_number(number):
            return None
        self._number, self._via = number, via
        return self._read_back()

    def _read_back(self) -> Reply:
        self.step = Step.CONFIRM
        text = self.texts.read_back.format(digits=digits_in_words(self._number))
        return Reply(said=[("callback_read_back", text)])

    def _invalid(self) -> Reply:
        return self._retry([("callback_invalid_number", self.texts.invalid_number)], "invalid")

    def _confirm(self, yes: bool) -> Reply:
        if yes:
            return self._store(self._number, self._via)
        return self._retry([], "not_confirmed")

    def _retry(self, said: list[tuple[str, str]], why: str) -> Reply:
        self._attempts += 1
        if self._attempts >= self.texts.max_number_attempts:
            self.step = Step.IDLE
            return Reply(
                said=[*said, ("callback_given_up", self.texts.give_up)],
                events=[("callback_given_up", {"attempts": self._attempts, "why": why})],
            )
        reply = self._ask_number()
        reply.said[:0] = said
        return reply

    def _store(self, number: str, via: str) -> Reply:
        self.step = Step.IDLE
        request = CallbackRequest(self.group, number, via, self._name, self._topic)
        return Reply(request=request)


# A lone "nein" on 8 kHz audio often comes out of Whisper as "Ein." or "Hain." (knowledge/confirm.py).
_HEARD_NO = frozenset(("ein", "hain", "nain", "nee", "no"))
_NAME_LEAD = re.compile(
    r"^\s*(?:(?:also|ja|äh|ähm)[,.]?\s+)*(?:mein\s+name\s+ist|ich\s+heiße|ich\s+heisse|ich\s+bin|hier\s+ist|hier\s+spricht)\s+",
    re.IGNORECASE,
)
_NOTHING_USEFUL = frozenset(
    ("", "nein", "nichts", "weiss nicht", "weiß nicht", "keine ahnung", "egal", "das gleiche", "wie gesagt")
)


def clean_name(text: str) -> str:
    """A name from the caller's answer: "Mein Name ist Erika Mustermann." → ``Erika Mustermann`` (bounded)."""
    name = _NAME_LEAD.sub("", text).strip().strip(".,!?;:").strip()
    return name[:MAX_NAME_CHARS]


def clean_topic(text: str) -> str:
    """The topic as said, or "" when it says nothing ("weiß nicht", "nein"): then the hand-off's question."""
    topic = text.strip().strip(".,!?;:").strip()
    if utterance_words(topic) in {utterance_words(words) for words in _NOTHING_USEFUL}:
        return ""
    return topic[:MAX_TOPIC_CHARS]


# --- storage ---------------------------------------------------------------------------------------------------


class CallbackStore(Protocol):
    """Where a request goes (the ``callbacks`` table); blocking, so the desk calls it off the event loop."""

    def add(self, call_id: str, request: CallbackRequest, due_at: float) -> int:
        """Store the request for the call ``call_id`` (its record must be written first); its id."""


class RepositoryCallbackStore:
    """The production :class:`CallbackStore`: :meth:`Repository.add_callback` after the call's record is written
    (the row refers to the call by its id)."""

    def __init__(self, repository: Any, records: Any) -> None:
        self._repository = repository
        self._records = records

    def add(self, call_id: str, request: CallbackRequest, due_at: float) -> int:
        if self._records is not None:
            self._records.flush(10.0)
        callback = self._repository.add_callback(
            call_id,
            request.group,
            request.phone_number,
            due_at,
            caller_name=request.caller_name,
            topic=request.topic,
            number_via=request.number_via,
        )
        return int(callback.id)


# --- in the call -------------------------------------------------------------------------------------------------


def office_hours_for(settings: Settings, group: str) -> OfficeHoursSettings:
    """The staff group's own office hours, else the ``office_hours`` section."""
    for staff_group in settings.handoff.groups:
        if staff_group.name == group and staff_group.office_hours is not None:
            return staff_group.office_hours
    return settings.office_hours


class CallbackDesk:
    """One call's call-back dialogue with what acting on it needs: the settings, the calendar, a clock, the store
    and the transcript. The hand-off desk asks :meth:`office_closed`; :class:`CallbackTaker` feeds the rest."""

    def __init__(
        self,
        settings: Settings,
        transcript: CallTranscript,
        store: CallbackStore | None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.transcript = transcript
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        call: CallSettings = settings.call
        self.dialogue = CallbackDialogue(
            settings.callback,
            callback_key=call.callback_key,
            offer_phrases=call.callback_phrases,
            goodbye_phrases=call.goodbye_phrases,
        )

    def _group(self, group: str) -> str:
        return group or self.settings.handoff.default_group

    def _caller_number(self, number: str = "") -> str:
        return number or self.transcript.caller_number

    async def office_closed(self, processor: FrameProcessor, group: str, question: str) -> bool:
        """Outside the group's office hours: say when it opens again, offer a call-back and return True (nobody
        is rung). False while it is open."""
        hours = office_hours_for(self.settings, self._group(group))
        calendar, now = hours.calendar(), self.clock()
        if hours.always_open or calendar.is_open(now):
            return False
        opens = calendar.next_opening(now)
        texts = self.settings.callback
        if opens is None:
            closed = texts.closed_no_opening_message.format(office=hours.office)
        else:
            closed = texts.closed_message.format(
                office=hours.office, when=when_words(opens, calendar.local(now))
            )
        self.transcript.add_event(
            "office_closed", group=self._group(group), opens_at=opens.timestamp() if opens else None
        )
        if self.dialogue.stored:  # the call-back of this call is already noted
            await say(processor, self.transcript, "office_closed", closed)
            return True
        await say(processor, self.transcript, "office_closed", f"{closed} {texts.offer}")
        self._offer(group, "office_closed", question)
        return True

    async def transfer_failed(
        self, processor: FrameProcessor, caller_number: str, group: str, question: str
    ) -> None:
        if self.dialogue.stored:  # the call-back of this call is already noted: no second offer
            await say(
                processor, self.transcript, "transfer_failed", self.settings.callback.failed_after_callback
            )
            return
        await say(processor, self.transcript, "transfer_failed", self.settings.call.transfer_failed_message)
        self._offer(group, "transfer_failed", question, caller_number)

    def _offer(self, group: str, reason: str, question: str, caller_number: str = "") -> None:
        number = self._caller_number(caller_number)
        self.dialogue.offer(group=self._group(group), caller_number=number, default_topic=question)
        self.transcript.add_event("callback_offered", reason=reason, group=self._group(group))

    async def act(self, processor: FrameProcessor, reply: Reply) -> None:
        for kind, data in reply.events:
            self.transcript.add_event(kind, **data)
        for kind, text in reply.said:
            await say(processor, self.transcript, kind, text)
        if reply.request is not None:
            await self._store(processor, reply.request)

    async def _store(self, processor: FrameProcessor, request: CallbackRequest) -> None:
        hours = office_hours_for(self.settings, request.group)
        calendar, now = hours.calendar(), self.clock()
        due = calendar.callback_due(now)
        due_at = due.timestamp() if due is not None else now.timestamp() + 24 * 3600
        callback_id: int | None = None
        if self.store is not None:
            try:
                callback_id = await asyncio.to_thread(
                    self.store.add, self.transcript.call_id, request, due_at
                )
            except Exception:  # the caller is told it is noted: the event below keeps it in the record
                logger.exception(f"{self.transcript.call_id}: call-back could not be stored in the database")
        self.dialogue.stored_now()
        self.transcript.add_event(
            "callback_requested",
            callback_id=callback_id,
            group=request.group,
            number=request.phone_number,
            number_via=request.number_via,
            name=request.caller_name,
            topic=request.topic,
            due_at=due_at,
        )
        due_text = due_words(calendar.local(due), calendar.local(now)) if due is not None else "morgen"
        await say(
            processor,
            self.transcript,
            "callback_confirmed",
            self.settings.callback.confirmed.format(due=due_text),
        )


class CallbackTaker(FrameProcessor):
    """The dialogue in the pipeline (after ``TransferHold``): a failed transfer is told with the offer; while the
    dialogue is open the caller's turns and keys are its own (keys also pass on; a turn that is no answer to the
    offer goes on as a question)."""

    def __init__(self, *, desk: CallbackDesk, handoff: HandoffDesk | None = None) -> None:
        super().__init__()
        self._desk = desk
        self._handoff = handoff  # the hand-off desk: the group and question of the latest hand-off

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TransferStatusFrame):
            await self.push_frame(frame, direction)
            if frame.phase == "failed":
                handoff = self._handoff
                group, question = (handoff.last_group, handoff.last_question) if handoff else ("", "")
                await self._desk.transfer_failed(self, frame.caller_number, group, question)
            return
        dialogue = self._desk.dialogue
        if direction == FrameDirection.DOWNSTREAM and dialogue.active:
            if isinstance(frame, InputDTMFFrame):
                await self.push_frame(frame, direction)
                reply = dialogue.on_key(str(frame.button.value))
                if reply is not None:
                    await self._desk.act(self, reply)
                return
            if isinstance(frame, CallerQuestionFrame):
                reply = dialogue.on_text(frame.text)
                if reply is not None and reply.consumed:
                    await self._desk.act(self, reply)
                    return
                if reply is not None:
                    await self._desk.act(self, reply)
        await self.push_frame(frame, direction)
