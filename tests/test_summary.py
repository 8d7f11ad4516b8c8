"""The bot's summary for staff (voicebot/staff/summary.py), from records made by the real call transcript: what the
caller asked, what the bot answered with which pages, what is open and why, the caller's number; the same summary
from the record read back from SQLite and PostgreSQL; and the check an LLM-written text must pass."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)

from knowledge.types import Action, Answer
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.frames import CallerQuestionFrame
from voicebot.pipeline.transcript import CallTranscript
from voicebot.records import CallRecordStore
from voicebot.staff.summary import REASON_TEXTS, CallSummary, SourceRef, grounded, summarize

PAGES = {
    "personalausweis": SourceRef(
        "personalausweis", "Personalausweis beantragen", "https://musterstadt.example/pa"
    ),
    "personalausweis#2": SourceRef(
        "personalausweis#2", "Personalausweis beantragen", "https://musterstadt.example/pa"
    ),
    "buergerbuero": SourceRef(
        "buergerbuero", "Bürgerbüro – Öffnungszeiten", "https://musterstadt.example/bb"
    ),
}
PASSPORT_QUESTION = "Was kostet ein Personalausweis?"
PASSPORT_ANSWER = "Ein Personalausweis kostet 37 Euro, für Personen unter 24 Jahren 22,80 Euro."
OPEN_QUESTION = "Kann ich den Ausweis auch für meine Mutter abholen, die im Pflegeheim lebt?"


PAGE = """---
id: personalausweis
title: Personalausweis beantragen
department: Bürgerbüro
spoken_answer: "Ein Personalausweis kostet 37 Euro."
source_url: https://musterstadt.example/buergerbuero/personalausweis
---
# Personalausweis beantragen
Den Personalausweis beantragen Sie im Bürgerbüro. Er kostet 37 Euro, unter 24 Jahren 22,80 Euro.
"""
PAGE_LINK = (
    '<a href="https://musterstadt.example/buergerbuero/personalausweis">Personalausweis beantragen</a>'
)


def page_index(directory: Path) -> Path:
    """A real search index of the one page the calls below cite (the console shows its title and link)."""
    from knowledge.index import KnowledgeIndex

    (directory / "kb").mkdir(parents=True)
    (directory / "kb" / "personalausweis.md").write_text(PAGE, encoding="utf-8")
    report = KnowledgeIndex.open(directory / "index").ingest([directory / "kb"])
    assert report.chunks == 1, report
    return directory / "index"


def call_clock() -> Callable[[], float]:
    """Call time that moves on 2 s whenever it is read: turns and events get the order of a real call (the
    transcript's simulation clock; written within one millisecond they would all have the same time)."""
    return itertools.count(0.0, 2.0).__next__


def _ask(transcript: CallTranscript, text: str) -> None:
    transcript.add_caller_question(CallerQuestionFrame(text=text, language="de"))


def _answer(transcript: CallTranscript, text: str, action: Action, sources: list[str], reason: str) -> None:
    turn = transcript.add_bot_turn("answer", "")
    transcript.append_bot_text(turn, text)
    transcript.finish_answer(turn, Answer(text, action, 0.9, sources=sources, reason=reason), {})


def handed_off_call(store: CallRecordStore | None = None) -> CallTranscript:
    """A call as the pipeline records it: greeting, an answered question citing two sections of one page, a
    question the engine could not answer, the hand-off to the Bürgerbüro group."""
    transcript = CallTranscript(
        channel="sip", channel_call_id="summary@pbx", store=store, call_clock=call_clock()
    )
    transcript.add_bot_turn("greeting", "Guten Tag, hier ist das Bürgertelefon der Stadt Musterstadt.")
    _ask(transcript, PASSPORT_QUESTION)
    _answer(transcript, PASSPORT_ANSWER, Action.ANSWER, ["personalausweis", "personalausweis#2"], "verified")
    _ask(transcript, OPEN_QUESTION)
    _answer(transcript, "Das kann ich leider nicht sicher beantworten.", Action.HANDOFF, [], "low_confidence")
    transcript.add_event(
        "handoff_requested", reason="engine_handoff", group="Bürgerbüro", department="Bürgerbüro"
    )
    transcript.add_bot_turn("handoff", "Ich verbinde Sie mit einer Mitarbeiterin oder einem Mitarbeiter.")
    return transcript


def test_the_summary_says_what_was_asked_answered_and_left_open() -> None:
    record = handed_off_call().to_dict()
    summary = summarize(record, sources=PAGES.get, caller_number="+4930123456")

    assert summary.questions == (PASSPORT_QUESTION, OPEN_QUESTION)
    assert summary.request == (
        f"Die anrufende Person fragte zuerst: „{PASSPORT_QUESTION}“ Zuletzt: „{OPEN_QUESTION}“"
    )
    (answered,) = summary.answered  # the hand-off turn is not an answer
    assert answered.question == PASSPORT_QUESTION and answered.answer == PASSPORT_ANSWER
    assert answered.sources == (PAGES["personalausweis"],)  # two sections of one page: cited once
    assert summary.open_question == OPEN_QUESTION
    assert summary.reason == "engine_handoff"
    assert summary.reason_text == "Der Bot konnte die Frage nicht beantworten."
    assert (summary.group, summary.department, summary.caller_number) == (
        "Bürgerbüro",
        "Bürgerbüro",
        "+4930123456",
    )
    assert summary.written_by == "turns" and summary.to_dict()["answered"][0]["sources"][0]["url"].endswith(
        "/pa"
    )


def test_a_request_for_a_person_leaves_the_question_before_it_open() -> None:
    transcript = CallTranscript(channel="sip", channel_call_id="person@pbx", call_clock=call_clock())
    _ask(transcript, "Wann hat das Bürgerbüro geöffnet?")
    _answer(transcript, "Das Bürgerbüro hat montags bis freitags von 8 bis 16 Uhr geöffnet.", Action.ANSWER,
            ["buergerbuero", "unbekannt#3"], "verified")  # fmt: skip
    _ask(transcript, "Ich möchte bitte mit einem Menschen sprechen.")
    transcript.add_event("handoff_requested", reason="caller_asked", group="", department="")
    _ask(transcript, "Ja, unter dieser Nummer bitte.")  # the call-back dialogue after the hand-off
    transcript.add_event("callback_requested", number="0301234567", via="caller_id")
    summary = summarize(transcript.to_dict(), sources=PAGES.get)

    assert summary.open_question == "Wann hat das Bürgerbüro geöffnet?"  # not the request for a person itself
    assert summary.questions == (
        "Wann hat das Bürgerbüro geöffnet?",
        "Ich möchte bitte mit einem Menschen sprechen.",
    )
    assert summary.request == (
        "Die anrufende Person fragte zuerst: „Wann hat das Bürgerbüro geöffnet?“ "
        "Zuletzt: „Ich möchte bitte mit einem Menschen sprechen.“"
    )
    assert summary.reason_text == REASON_TEXTS["caller_asked"]
    assert [ref.title for ref in summary.answered[0].sources] == [
        "Bürgerbüro – Öffnungszeiten",
        "unbekannt#3",
    ]
    assert summary.caller_number == "0301234567"  # no queue number: the call-back request's


def test_a_hand_off_key_without_a_question_and_a_call_without_hand_off() -> None:
    keyed = CallTranscript(channel="sip", channel_call_id="key@pbx")
    keyed.add_caller_dtmf("0")
    keyed.add_event("handoff_requested", reason="handoff_key", group="Bürgerbüro", department="")
    summary = summarize(keyed.to_dict())
    assert summary.request == "Die anrufende Person hat keine Frage gestellt."
    assert summary.open_question == "" and summary.answered == ()
    assert summary.reason_text == REASON_TEXTS["handoff_key"]

    plain = CallTranscript(channel="webrtc")
    _ask(plain, PASSPORT_QUESTION)
    summary = summarize(plain.to_dict())
    assert summary.request == f"Die anrufende Person fragte: „{PASSPORT_QUESTION}“"
    assert summary.reason == "" and summary.reason_text == "Keine Übergabe verzeichnet."
    assert summary.open_question == PASSPORT_QUESTION  # asked, never answered

    many = CallTranscript(channel="sip", channel_call_id="many@pbx", call_clock=call_clock())
    for text in (
        "Personalausweis",
        "Wo ist das Bürgerbüro",
        "Wann ist geöffnet",
        "Und samstags " + "lang " * 60,
    ):
        _ask(many, text)
    many.add_event("handoff_requested", reason="repeat_requests", group="", department="")
    summary = summarize(many.to_dict())
    last = summary.open_question
    assert last.startswith("Und samstags lang") and summary.reason_text == REASON_TEXTS["repeat_requests"]
    assert summary.request == (
        "Die anrufende Person fragte zuerst: „Personalausweis“ (2 weitere Fragen dazwischen). "
        f"Zuletzt: „{last[:159].rstrip()}…“"  # a long question is cut, and its ellipsis ends the sentence
    )


def test_a_written_request_is_used_only_when_the_turns_back_it() -> None:
    record = handed_off_call().to_dict()

    def honest(_record: object, draft: CallSummary) -> str:
        return "Frage nach den Kosten (37 Euro) und ob eine Angehörige den Ausweis abholen darf."

    def invented(_record: object, draft: CallSummary) -> str:
        return "Die Person möchte den Ausweis am 15.12. für 45 Euro abholen."

    used = summarize(record, writer=honest)
    assert used.written_by == "llm" and used.request.startswith("Frage nach den Kosten")
    refused = summarize(record, writer=invented)
    assert refused.written_by == "turns" and refused.request.startswith("Die anrufende Person fragte")
    assert refused.problems == (
        "Zahl 15.12 kommt im Gespräch nicht vor",
        "Zahl 45 kommt im Gespräch nicht vor",
    )
    assert grounded("", record) == ["leer"]
    assert grounded("x" * 401, record) == ["länger als 400 Zeichen"]


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def test_the_summary_of_the_stored_record_is_the_same(store: SqlCallRecordStore) -> None:
    transcript = handed_off_call(store)
    assert store.flush()
    stored = store.get(transcript.call_id)
    assert stored is not None
    assert summarize(stored, sources=PAGES.get) == summarize(transcript.to_dict(), sources=PAGES.get)
