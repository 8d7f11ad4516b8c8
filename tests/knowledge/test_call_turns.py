"""A call's turns around the answers, on the Musterstadt sample KB with the real retriever: off-topic questions
(issue 14 item 3), the asked day (item 4), greetings, thanks and "short first, more on request" (issue 9 item 8).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from knowledge import phrases, scope
from knowledge.confidence import TownLexicon
from knowledge.config import KnowledgeConfig
from knowledge.engine import build_answer_engine
from knowledge.extractive import ExtractiveAnswerEngine, Retriever
from knowledge.index import load_retriever
from knowledge.types import Action, Answer, AnswerRequest, Turn


@pytest.fixture(scope="module")
def retriever(sample_index_dir: Path) -> Retriever:
    return load_retriever(KnowledgeConfig(town="Musterstadt", index_dir=sample_index_dir))


@pytest.fixture(scope="module")
def engine(sample_index_dir: Path, retriever: Retriever) -> ExtractiveAnswerEngine:
    config = KnowledgeConfig(town="Musterstadt", index_dir=sample_index_dir)
    built = build_answer_engine(config, retriever, mode="extractive")
    assert isinstance(built, ExtractiveAnswerEngine)
    return built


async def _ask(engine: ExtractiveAnswerEngine, question: str, history: tuple[Turn, ...] = ()) -> Answer:
    return await engine.answer(AnswerRequest(question, history=history))


# ---- off topic: understood, but nothing the town does
@pytest.mark.parametrize(
    "question",
    [
        "Wer wird Deutscher Meister im Fußball?",
        "Wie wird das Wetter morgen?",
        "Haben Sie ein Rezept für einen Käsekuchen?",
        "Was ist die Hauptstadt von Frankreich?",
    ],
)
async def test_an_off_topic_question_hears_what_the_hotline_is_for(
    engine: ExtractiveAnswerEngine, question: str
) -> None:
    answer = await _ask(engine, question)
    assert (answer.action, answer.reason) == (Action.CLARIFY, "out_of_scope"), answer.text
    assert answer.text.startswith("Dazu kann ich leider nichts sagen.")
    assert (
        "Stadt Musterstadt" in answer.text
        and "zum Beispiel zu Reisepass, Müllabfuhr oder Kita" in answer.text
    )
    assert "Null" in answer.text  # the way to a person
    assert not phrases.asks_to_repeat(answer.text)


@pytest.mark.parametrize(
    ("question", "off_topic"),
    [
        ("wer gewinnt die bundesliga", True),
        ("wie backe ich einen marmorkuchen", True),
        ("Mackrott, Anwohnerparken", False),  # a misheard service question: the town's words
        ("sperrmüll formular tonne", False),
        ("ja", False),
    ],
)
def test_off_topic_is_told_from_misheard_by_the_towns_vocabulary(
    retriever: Retriever, question: str, off_topic: bool
) -> None:
    normalizer = retriever.normalizer
    assert scope.is_out_of_scope(question, normalizer, TownLexicon.of("Musterstadt")) is off_topic


async def test_an_unclear_transcript_is_still_asked_to_repeat(engine: ExtractiveAnswerEngine) -> None:
    answer = await engine.answer(AnswerRequest("wie wird das wetter morgen", asr_confidence=0.1))
    assert answer.reason == "low_asr" and phrases.asks_to_repeat(answer.text)


# ---- the asked day
async def test_the_asked_saturday_is_answered(engine: ExtractiveAnswerEngine) -> None:
    answer = await _ask(engine, "Wann hat das Bürgerbüro am Samstag geöffnet?")
    assert answer.sources[0].startswith("buergerbuero-kontakt")
    assert answer.text.startswith("Samstags ist geschlossen."), answer.text
    assert "montags bis freitags von 8 bis 12 Uhr" in answer.text


@pytest.mark.parametrize(
    ("question", "expected", "absent"),
    [
        ("wann hat das hallenbad am sonntag auf", "sonntags von 8 bis 18 Uhr", "Sonntags ist geschlossen"),
        ("wann hat der wertstoffhof samstags offen", "samstags von 8 bis 13 Uhr", "Samstags ist geschlossen"),
        (
            "wann hat das bürgerbüro am donnerstag auf",
            "donnerstags zusätzlich von 14 bis 18 Uhr",
            "geschlossen",
        ),
        ("hat das bürgerbüro an feiertagen offen", "Feiertagen", "Uhr"),
    ],
)
async def test_other_days_and_holidays_as_the_page_says(
    engine: ExtractiveAnswerEngine, question: str, expected: str, absent: str
) -> None:
    answer = await _ask(engine, question)
    assert expected in answer.text and absent not in answer.text.split("Möchten")[0], answer.text


async def test_heute_and_morgen_are_resolved_with_the_date(engine: ExtractiveAnswerEngine) -> None:
    original = engine.today
    try:
        engine.today = lambda: date(2026, 12, 5)  # a Saturday
        today = await _ask(engine, "wann hat das bürgerbüro heute auf")
        assert today.text.startswith("Samstags ist geschlossen."), today.text
        engine.today = lambda: date(2026, 12, 3)  # a Thursday: tomorrow is Friday
        tomorrow = await _ask(engine, "hat das bürgerbüro morgen offen")
        assert tomorrow.text.startswith("Ja"), tomorrow.text
        engine.today = lambda: date(2026, 12, 23)  # tomorrow is Christmas Eve
        eve = await _ask(engine, "hat das bürgerbüro morgen geöffnet")
        assert eve.text.startswith("Nein") and "24." in eve.text, eve.text
    finally:
        engine.today = original


# ---- greetings, thanks, short first and more on request
async def test_a_greeting_is_greeted_back(engine: ExtractiveAnswerEngine) -> None:
    for said in ("Guten Tag.", "Hallo", "Moin"):
        answer = await _ask(engine, said)
        assert (answer.text, answer.reason) == ("Guten Tag! Wie kann ich Ihnen helfen?", "greeting")
    thanks = await _ask(engine, "Danke")
    assert (thanks.text, thanks.reason) == (phrases.THANKS_REPLY, "thanks")


async def test_a_short_answer_offers_more_and_ja_continues_with_it(engine: ExtractiveAnswerEngine) -> None:
    question = "Was kostet ein Reisepass?"
    first = await _ask(engine, question)
    assert "70 Euro" in first.text
    assert first.text.endswith("Möchten Sie wissen, welche Unterlagen Sie mitbringen müssen?"), first.text
    assert len(first.text.split(". ")) <= 3  # the fact in one or two sentences, then the offer
    history = (Turn("caller", question), Turn("bot", first.text))
    for yes in ("ja", "gerne", "ja bitte"):
        more = await _ask(engine, yes, history)
        assert more.action == Action.ANSWER and more.sources[0].startswith("reisepass-beantragen"), more
        assert "Passfoto" in more.text, more.text
    no = await _ask(engine, "nein danke", history)
    assert (no.text, no.reason) == ("Gut. Kann ich sonst noch helfen?", "more_declined")


async def test_ja_without_an_offer_is_no_continuation(engine: ExtractiveAnswerEngine) -> None:
    answer = await _ask(engine, "ja")
    assert answer.reason == "no_content"


async def test_a_new_question_after_an_offer_is_answered_as_such(engine: ExtractiveAnswerEngine) -> None:
    question = "Was kostet ein Reisepass?"
    first = await _ask(engine, question)
    history = (Turn("caller", question), Turn("bot", first.text))
    other = await _ask(engine, "Wann hat das Bürgerbüro geöffnet?", history)
    assert other.sources[0].startswith("buergerbuero-kontakt") and "8 bis 12 Uhr" in other.text


async def test_the_next_offer_skips_what_the_call_already_said(engine: ExtractiveAnswerEngine) -> None:
    question = "Was kostet ein Reisepass?"
    first = await _ask(engine, question)  # the fee and "nach etwa 4 Wochen fertig"
    history = (Turn("caller", question), Turn("bot", first.text))
    documents = await _ask(engine, "ja", history)
    assert "Passfoto" in documents.text
    assert not documents.text.endswith((phrases.offer_more("cost"), phrases.offer_more("duration")))
    assert documents.text.endswith(phrases.offer_more("hours")), documents.text
