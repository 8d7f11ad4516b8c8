"""The call-back dialogue (voicebot/pipeline/callback.py, decisions 0810–0812): numbers in words, valid numbers,
and the dialogue in the pipeline driven with frames (caller turns as ``CallerQuestionFrame``, keys as
``InputDTMFFrame``), storing into the real database on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import Frame, InputDTMFFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from knowledge.types import Action, Answer
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.call_script import HandoffDesk, HandoffGate, HandoffKeyListener, HandoffSignaler
from voicebot.pipeline.callback import (
    CallbackDesk,
    CallbackDialogue,
    CallbackTaker,
    RepositoryCallbackStore,
    Step,
    digits_in_words,
    normalise_number,
    spoken_number,
    valid_number,
)
from voicebot.pipeline.frames import (
    BotAnswerFrame,
    CallerQuestionFrame,
    HandoffRequestFrame,
    TransferStatusFrame,
)
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import CallbackSettings, OfficeHoursSettings, Settings, StaffGroup

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_EVENING = datetime(2026, 12, 1, 19, 30, tzinfo=BERLIN)  # closed; due: Wednesday 16:00
TUESDAY_MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)  # open


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("null eins sieben sechs", "0176"),
        ("Null zwei eins eins, zwölf vierunddreißig, sechsundfünfzig.", "0211123456"),
        ("Meine Nummer ist null zwo zwei eins eins fünf sieben.", "0221157"),
        ("Ich habe eine neue Nummer: null acht neun.", "089"),  # "eine" is no digit
        ("plus vier neun zwei eins eins", "+49211"),
        ("+49 211 12345", "+4921112345"),
        ("0211 / 98 76 5", "021198765"),
        ("null, einundzwanzig, elf, neunzehn, achtzig", "021111980"),
        ("Fünf, vier, drei.", "543"),
        ("Ja, bitte.", None),
        ("", None),
    ],
)
def test_number_words_become_digits(said: str, digits: str | None) -> None:
    assert spoken_number(said) == digits


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("0211123456", True),
        ("01761234567", True),
        ("+4921112345", True),
        ("0043123456", True),  # international from Germany
        ("02111", True),  # 5 digits: the shortest
        ("0211", False),
        ("0211123456789012", False),  # 16 digits
        ("211123456", False),  # no area code
        ("0001234", False),  # no country code after 00
        ("+0211", False),
        ("sipp", False),
        ("", False),
    ],
)
def test_valid_numbers(number: str, valid: bool) -> None:
    assert valid_number(number) is valid


def test_numbers_are_read_back_digit_by_digit() -> None:
    assert digits_in_words("02111234") == "null zwei eins, eins eins zwei, drei vier"
    assert digits_in_words("+4930") == "plus vier neun drei, null"
    assert normalise_number("+49-30-1234") == "+49301234" and normalise_number("0211 / 12") == "021112"


def _settings(*, group_hours: OfficeHoursSettings | None = None) -> Settings:
    settings = Settings()
    settings.office_hours = OfficeHoursSettings()  # the default hours, whatever the environment says
    settings.handoff.groups = [
        StaffGroup(name="Bürgerbüro", staff_uri="sip:bb@127.0.0.1", office_hours=group_hours)
    ]
    settings.handoff.default_group = "Bürgerbüro"
    return settings


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def _desk(settings: Settings, store: SqlCallRecordStore, at: datetime, caller: str = "") -> CallbackDesk:
    transcript = CallTranscript(channel="sip", channel_call_id="cb@pbx", store=store)
    transcript.caller_number = caller
    repository = Repository(store.engine)
    return CallbackDesk(settings, transcript, RepositoryCallbackStore(repository, store), clock=lambda: at)


def _keys(digits: str) -> list[Frame]:
    return [InputDTMFFrame(button=KeypadEntry(digit)) for digit in digits]


def _said(text: str) -> list[Frame]:
    """A caller turn, and time for it: keys are system frames and would overtake a turn still queued."""
    return [CallerQuestionFrame(text=text, language="de"), SleepFrame(sleep=0.1)]


def _spoken(frames: list[Frame]) -> list[str]:
    return [f.text for f in frames if isinstance(f, TTSSpeakFrame)]


def _kinds(transcript: CallTranscript) -> list[str]:
    return [t.kind for t in transcript.turns if t.role == "bot"]


async def test_after_a_failed_transfer_a_keyed_number_is_read_back_corrected_and_stored(
    store: SqlCallRecordStore,
) -> None:
    """No caller number (a browser call, or an anonymous one): name and topic by voice, the number by keypad; the
    first entry is wrong ("nein" after the read-back), the second confirmed with key 1."""
    settings = _settings()
    desk = _desk(settings, store, TUESDAY_EVENING)
    frames: list[Frame] = [
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),  # a system frame overtakes queued ones: the offer is made first
        *_keys("1"),
        *_said("Mein Name ist Erika Mustermann."),
        *_said("Es geht um meinen Reisepass."),
        *_keys("0211999#"),
        *_said("Nein."),
        *_keys("02111*"),  # * starts over
        *_keys("01761234567#1"),
        SleepFrame(sleep=0.5),  # storing runs in a thread
    ]
    down, _ = await run_test(CallbackTaker(desk=desk), frames_to_send=frames)

    transcript = desk.transcript
    assert _kinds(transcript) == [
        "transfer_failed",
        "callback_name",
        "callback_topic",
        "callback_number",
        "callback_read_back",
        "callback_number",
        "callback_number",  # after *
        "callback_read_back",
        "callback_confirmed",
    ]
    spoken = _spoken(down)
    assert "null zwei eins, eins neun neun, neun" in spoken[4]
    assert "null eins sieben, sechs eins zwei, drei vier fünf, sechs sieben" in spoken[7]
    assert spoken[-1] == (
        "Vielen Dank, Ihr Rückrufwunsch ist notiert. Wir rufen Sie bis morgen, 16 Uhr, zurück. "
        "Haben Sie noch eine Frage?"
    )
    assert not any(isinstance(f, CallerQuestionFrame) for f in down)  # no answer for the engine meanwhile
    assert len([f for f in down if isinstance(f, InputDTMFFrame)]) == 28  # keys pass on (recorded upstream)

    (callback,) = Repository(store.engine).open_callbacks()
    assert (callback.call_id, callback.group_name, callback.phone_number, callback.number_via) == (
        transcript.call_id,
        "Bürgerbüro",
        "01761234567",
        "keypad",
    )
    assert (callback.caller_name, callback.topic) == ("Erika Mustermann", "Es geht um meinen Reisepass")
    assert callback.due_at == datetime(2026, 12, 2, 16, tzinfo=BERLIN).timestamp()
    requested = [e for e in transcript.events if e["kind"] == "callback_requested"]
    assert [(e["callback_id"], e["number_via"], e["number"]) for e in requested] == [
        (callback.id, "keypad", "01761234567")
    ]
    assert store.flush()
    record = store.get(transcript.call_id)
    assert record is not None and [t["kind"] for t in record["turns"]][-1] == "callback_confirmed"


async def test_the_callers_own_number_by_voice_and_a_topic_from_the_hand_off(
    store: SqlCallRecordStore,
) -> None:
    """In office hours the caller asks for staff; the transfer fails. The call brought a valid number: offered and
    taken by voice. "Weiß nicht." as topic: the words that asked for staff are the topic."""
    settings = _settings()
    desk = _desk(settings, store, TUESDAY_MORNING, caller="+49-211-12345")
    handoff = HandoffDesk(settings, desk.transcript, callbacks=desk)
    asks = "Ich möchte einen Mitarbeiter sprechen wegen meinem Pass."
    frames: list[Frame] = [
        *_said(asks),
        SleepFrame(sleep=0.2),
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
        *_said("Ja, gerne."),
        *_keys("#"),  # no name
        *_said("Weiß nicht."),
        *_said("Ja, genau."),
        SleepFrame(sleep=0.5),
    ]
    pipeline = Pipeline([CallbackTaker(desk=desk, handoff=handoff), HandoffGate(desk=handoff)])
    down, _ = await run_test(pipeline, frames_to_send=frames)
    assert [f.group for f in down if isinstance(f, HandoffRequestFrame)] == ["Bürgerbüro"]
    spoken = _spoken(down)
    assert spoken[0] == settings.call.handoff_message and spoken[1] == settings.call.transfer_failed_message
    assert spoken[4].startswith("Soll ich Sie unter der Nummer plus vier neun zwei, eins eins eins, zwei drei vier, "
                                "fünf zurückrufen, von der Sie anrufen?")  # fmt: skip
    (callback,) = Repository(store.engine).open_callbacks()
    assert (callback.phone_number, callback.number_via, callback.caller_name) == (
        "+4921112345",
        "caller_id",
        "",
    )
    assert (callback.group_name, callback.topic) == ("Bürgerbüro", asks)
    assert callback.due_at == datetime(2026, 12, 2, 16, tzinfo=BERLIN).timestamp()


async def test_a_spoken_number_and_a_question_instead_of_yes(store: SqlCallRecordStore) -> None:
    """Declining the own number, the caller says the digits; a question in place of "ja" to the offer goes on to
    the engine and leaves the dialogue."""
    desk = _desk(_settings(), store, TUESDAY_EVENING, caller="0211555666")
    frames: list[Frame] = [
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
        *_keys("1"),
        *_said("Max Müller"),
        *_said("Ummeldung"),
        *_keys("2"),  # not the number I am calling from
        *_said("null eins fünf eins, zwei drei vier fünf sechs sieben"),
        *_keys("1"),
        SleepFrame(sleep=0.5),
    ]
    down, _ = await run_test(CallbackTaker(desk=desk), frames_to_send=frames)
    (callback,) = Repository(store.engine).open_callbacks()
    assert (callback.phone_number, callback.number_via, callback.topic) == (
        "0151234567",
        "speech",
        "Ummeldung",
    )
    assert "null eins fünf, eins zwei drei, vier fünf sechs, sieben" in _spoken(down)[-2]

    desk = _desk(_settings(), store, TUESDAY_EVENING)
    question = CallerQuestionFrame(text="Wann hat das Bürgerbüro geöffnet?", language="de")
    down, _ = await run_test(
        CallbackTaker(desk=desk),
        frames_to_send=[
            TransferStatusFrame(phase="failed"),
            SleepFrame(sleep=0.1),
            question,
            SleepFrame(sleep=0.1),
            *_keys("1"),
        ],
    )
    assert question in down and not desk.dialogue.active
    assert _kinds(desk.transcript) == ["transfer_failed"]  # key 1 later is no answer to an offer any more


async def test_three_bad_numbers_and_the_bot_gives_up(store: SqlCallRecordStore) -> None:
    desk = _desk(_settings(), store, TUESDAY_EVENING)
    frames: list[Frame] = [
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
        *_said("Ja"),
        *_said("Anna"),
        *_said("Müll"),
        *_keys("123#"),  # too short
        *_said("eins zwei drei vier fünf sechs"),  # no area code
        *_keys("0211123456#"),
        *_said("Nein"),  # the third try is not confirmed either
        SleepFrame(sleep=0.2),
    ]
    down, _ = await run_test(CallbackTaker(desk=desk), frames_to_send=frames)
    assert _spoken(down)[-1] == desk.settings.callback.give_up
    assert _kinds(desk.transcript)[-3:] == ["callback_number", "callback_read_back", "callback_given_up"]
    assert Repository(store.engine).open_callbacks() == []
    (given_up,) = [e for e in desk.transcript.events if e["kind"] == "callback_given_up"]
    assert given_up["attempts"] == 3


async def test_outside_office_hours_nobody_is_rung_and_the_hand_off_key_is_a_digit_then(
    store: SqlCallRecordStore,
) -> None:
    """Key 0 asks for staff on Tuesday evening: the bot says when the office opens and offers a call-back instead of
    a HandoffRequestFrame; the 0 of the number typed afterwards is a digit, not another hand-off."""
    settings = _settings()
    callbacks = _desk(settings, store, TUESDAY_EVENING)
    handoff = HandoffDesk(settings, callbacks.transcript, handoff_keys="0", callbacks=callbacks)
    pipeline = Pipeline([HandoffKeyListener(desk=handoff), CallbackTaker(desk=callbacks, handoff=handoff)])
    frames: list[Frame] = [
        *_keys("0"),
        SleepFrame(sleep=0.1),
        *_keys("1##0211123456#1"),
        SleepFrame(sleep=0.5),
    ]
    down, _ = await run_test(pipeline, frames_to_send=frames)

    assert not any(isinstance(f, HandoffRequestFrame) for f in down)
    spoken = _spoken(down)
    assert spoken[0] == (
        "Das Bürgerbüro ist ab morgen um 8 Uhr wieder erreichbar. "
        "Soll ich einen Rückruf für Sie notieren? Sagen Sie Ja oder drücken Sie die 1."
    )
    events = [e["kind"] for e in callbacks.transcript.events]
    assert events[:3] == ["handoff_requested", "office_closed", "callback_offered"], events
    (callback,) = Repository(store.engine).open_callbacks()
    assert (callback.phone_number, callback.number_via, callback.topic) == ("0211123456", "keypad", "")

    # In office hours the same key hands off as before.
    open_desk = _desk(settings, store, TUESDAY_MORNING)
    handoff = HandoffDesk(settings, open_desk.transcript, handoff_keys="0", callbacks=open_desk)
    down, _ = await run_test(
        Pipeline([HandoffKeyListener(desk=handoff), CallbackTaker(desk=open_desk, handoff=handoff)]),
        frames_to_send=_keys("0"),
    )
    assert [f.group for f in down if isinstance(f, HandoffRequestFrame)] == ["Bürgerbüro"]


async def test_a_group_with_its_own_hours_and_a_second_hand_off_after_the_call_back(
    store: SqlCallRecordStore,
) -> None:
    """The group's own calendar (open only Monday mornings) decides; the caller's words that asked for staff are
    the topic when they name none; once the call-back is noted, a second request for staff only hears when the
    office opens."""
    settings = _settings(group_hours=OfficeHoursSettings(office="Das Standesamt", hours="mo 08:00-12:00"))
    callbacks = _desk(settings, store, TUESDAY_MORNING)
    handoff = HandoffDesk(settings, callbacks.transcript, callbacks=callbacks)
    asks = "Ich möchte einen Mitarbeiter sprechen."
    frames: list[Frame] = [
        *_said(asks),
        *_keys("1##0211123456#1"),
        SleepFrame(sleep=0.5),
        *_said(asks),
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
    ]
    pipeline = Pipeline([CallbackTaker(desk=callbacks, handoff=handoff), HandoffGate(desk=handoff)])
    down, _ = await run_test(pipeline, frames_to_send=frames)
    spoken = _spoken(down)
    closed = "Das Standesamt ist ab Montag um 8 Uhr wieder erreichbar."
    assert spoken[0].startswith(closed) and "Rückruf" in spoken[0]
    (callback,) = Repository(store.engine).open_callbacks()
    assert callback.topic == asks
    assert callback.due_at == datetime(2026, 12, 7, 12, tzinfo=BERLIN).timestamp()  # Monday's closing time
    assert "bis Montag, 12 Uhr, zurück" in spoken[-3]
    assert spoken[-2] == closed and not callbacks.dialogue.active
    assert spoken[-1] == settings.callback.failed_after_callback  # a transfer failing later: no second offer
    assert not any(isinstance(f, HandoffRequestFrame) for f in down)


async def test_a_browser_call_outside_hours_leaves_a_spoken_number(store: SqlCallRecordStore) -> None:
    """The /call page has no caller number and no transfer: the engine's hand-off outside office hours offers the
    call-back; a "Ja" to the name question (as to "Sind Sie noch da?") asks again; the number is said in words."""
    settings = _settings()
    transcript = CallTranscript(channel="webrtc", channel_call_id="browser-1", store=store)
    callbacks = CallbackDesk(
        settings,
        transcript,
        RepositoryCallbackStore(Repository(store.engine), store),
        clock=lambda: TUESDAY_EVENING,
    )
    handoff = HandoffDesk(settings, transcript, transfers=False, callbacks=callbacks)
    answer = Answer(text="Das kläre ich mit einer Kollegin.", action=Action.HANDOFF, confidence=0.9)
    frames: list[Frame] = [
        BotAnswerFrame(question="Mein Wohngeldantrag ist verschwunden.", answer=answer),
        SleepFrame(sleep=0.1),
        *_said("Ja."),
        *_said("Ja."),
        *_said("Lena Schmidt"),
        *_said("Nichts."),
        *_said("null drei null, eins zwei drei vier fünf sechs"),
        *_said("Ja, das stimmt."),
        SleepFrame(sleep=0.5),
    ]
    pipeline = Pipeline([CallbackTaker(desk=callbacks, handoff=handoff), HandoffSignaler(desk=handoff)])
    down, _ = await run_test(pipeline, frames_to_send=frames)
    assert not any(isinstance(f, HandoffRequestFrame) for f in down)
    assert [t.kind for t in transcript.turns if t.role == "bot"] == [
        "office_closed",
        "callback_name",
        "callback_name",  # "Ja." is no name
        "callback_topic",
        "callback_number",  # no caller number: asked at once
        "callback_read_back",
        "callback_confirmed",
    ]
    (callback,) = Repository(store.engine).open_callbacks()
    assert (callback.phone_number, callback.number_via, callback.caller_name) == (
        "030123456",
        "speech",
        "Lena Schmidt",
    )
    assert callback.topic == "Mein Wohngeldantrag ist verschwunden."  # "Nichts." says nothing: the question


async def test_goodbye_or_cancel_leaves_the_dialogue(store: SqlCallRecordStore) -> None:
    desk = _desk(_settings(), store, TUESDAY_EVENING)
    goodbye = CallerQuestionFrame(text="Tschüss.", language="de")
    frames: list[Frame] = [
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
        *_said("Ja"),
        *_said("Paul"),
        *_said("Sperrmüll"),
        goodbye,
        SleepFrame(sleep=0.1),
    ]
    down, _ = await run_test(CallbackTaker(desk=desk), frames_to_send=frames)
    assert goodbye in down and not desk.dialogue.active  # the goodbye step (next) ends the call
    assert desk.transcript.events[-1] | {"t": 0} == {"t": 0, "kind": "callback_abandoned", "step": "number"}

    desk = _desk(_settings(), store, TUESDAY_EVENING)
    frames = [
        TransferStatusFrame(phase="failed"),
        SleepFrame(sleep=0.1),
        *_keys("1"),
        *_said("Abbrechen, bitte."),
    ]
    down, _ = await run_test(CallbackTaker(desk=desk), frames_to_send=frames)
    assert _spoken(down)[-1] == desk.settings.callback.declined and not desk.dialogue.active
    assert Repository(store.engine).open_callbacks() == []


def test_an_unclear_yes_and_no_is_a_no() -> None:
    dialogue = CallbackDialogue(CallbackSettings(), offer_phrases=["ja"])
    dialogue.offer(group="Bürgerbüro", caller_number="0211123456", default_topic="Pass")
    for key in "1##":
        dialogue.on_key(key)
    assert dialogue.step is Step.OWN_NUMBER
    reply = dialogue.on_text("Nein, stimmt.")
    assert reply is not None and reply.request is None and dialogue.step is Step.NUMBER
    reply = dialogue.on_text("Ja.")  # to "Sind Sie noch da?": asked again, no attempt used
    assert reply is not None and [kind for kind, _ in reply.said] == ["callback_number"]
    dialogue.on_text("null zwei null eins, neun acht sieben")
    assert dialogue.step is Step.CONFIRM
    reply = dialogue.on_text("Ja, nein, falsch.")
    assert reply is not None and reply.request is None and dialogue.step is Step.NUMBER
    reply = dialogue.on_text("null zwei null eins, neun acht sieben sechs")
    reply = dialogue.on_text("Ja, richtig.")
    assert reply is not None and reply.request is not None
    assert (reply.request.phone_number, reply.request.number_via) == ("02019876", "speech")
