"""Confirm before answering when the bot may have misheard (knowledge.confirm), alone and in the extractive engine.

The engine tests run on the shipped sample KB with the real hybrid retriever; the recogniser's figures are given
as :class:`AsrSignals` (the spoken path with real Whisper is in tests/pipeline/test_misheard.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import confirm, phrases
from knowledge.confidence import TownLexicon
from knowledge.config import KnowledgeConfig
from knowledge.extractive import ExtractiveAnswerEngine
from knowledge.index import load_retriever
from knowledge.types import Action, AnswerRequest, AsrSignals, Chunk, Turn

CLEAR = AsrSignals(min_avg_logprob=-0.2, max_no_speech_prob=0.01)
UNSURE = AsrSignals(min_avg_logprob=-0.9, max_no_speech_prob=0.05)
DOUBTFUL = AsrSignals(min_avg_logprob=-0.55, max_no_speech_prob=0.05)
LOST = AsrSignals(min_avg_logprob=-2.0, max_no_speech_prob=0.3)
TOWN = TownLexicon.of("Musterstadt")

PASS_PAGE = Chunk(
    id="reisepass",
    doc_id="reisepass",
    title="Reisepass beantragen",
    text="Den Reisepass beantragen Sie im Bürgerbüro. Er kostet 70 Euro.",
    synonyms=("Pass",),
)
PARK_PAGE = Chunk(
    id="parken",
    doc_id="parken",
    title="Bewohnerparkausweis (Anwohnerparken)",
    text="Den Bewohnerparkausweis gibt es beim Ordnungsamt.",
)


def signals(logprob: float = -0.2, no_speech: float = 0.0, unknown: float = 0.0, explained: float = 1.0):
    return confirm.Signals(logprob, no_speech, unknown, explained)


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        (None, confirm.Verdict.ANSWER),  # typed: never confirmed
        (signals(), confirm.Verdict.ANSWER),
        (signals(logprob=confirm.CONFIRM_LOGPROB - 0.1), confirm.Verdict.CONFIRM),
        (signals(no_speech=confirm.MAX_NO_SPEECH + 0.1), confirm.Verdict.CONFIRM),
        (signals(unknown=0.5), confirm.Verdict.ANSWER),  # a sure recogniser: words alone are no reason
        (signals(explained=0.25), confirm.Verdict.ANSWER),
        (signals(logprob=confirm.DOUBT_LOGPROB - 0.1), confirm.Verdict.ANSWER),
        (signals(logprob=confirm.DOUBT_LOGPROB - 0.1, unknown=0.5), confirm.Verdict.CONFIRM),
        (signals(logprob=confirm.DOUBT_LOGPROB - 0.1, explained=0.25), confirm.Verdict.CONFIRM),
        (signals(logprob=confirm.REPEAT_LOGPROB - 0.1), confirm.Verdict.REPEAT),
        (signals(logprob=confirm.REPEAT_LOGPROB - 0.1, explained=1.0), confirm.Verdict.REPEAT),
    ],
)
def test_decide(case: confirm.Signals | None, verdict: confirm.Verdict) -> None:
    assert confirm.decide(case) == verdict


def test_words_the_knowledge_base_never_saw_count_as_unknown() -> None:
    vocabulary = confirm.Vocabulary([PASS_PAGE, PARK_PAGE])
    assert confirm.unknown_share("was kostet der reisepass", vocabulary, TOWN) == 0.0
    assert confirm.unknown_share("mackrott anwohnerparken", vocabulary, TOWN) == 0.5
    assert confirm.unknown_share("ja", vocabulary, TOWN) == 0.0  # no content words at all
    # Compounds of known words and spoken numbers are known.
    assert confirm.unknown_share("reisepassgebühr siebzig", confirm.Vocabulary([PASS_PAGE]), TOWN) < 0.5


def test_explained_share_is_what_the_chosen_page_contains() -> None:
    heard = "mackrott anwohnerparken"
    assert confirm.explained_share(heard, [PARK_PAGE], TOWN) == 0.5
    assert confirm.explained_share(heard, [PASS_PAGE], TOWN) == 0.0
    assert confirm.explained_share("was kostet der pass", [PASS_PAGE], TOWN) == 1.0


def test_confirmation_question_is_recognised_in_the_history() -> None:
    asked = confirm.confirmation_question(PARK_PAGE.title)
    assert asked == "Geht es um das Thema „Bewohnerparkausweis“?"
    assert confirm.confirmed_topic(asked) == "Bewohnerparkausweis"
    assert confirm.matches_topic(PARK_PAGE.title, "Bewohnerparkausweis")
    history = [Turn("caller", "mackrott anwohnerparken"), Turn("bot", asked)]
    assert confirm.pending(history) == confirm.Pending("mackrott anwohnerparken", (), "Bewohnerparkausweis")
    # Only the *last* bot turn counts; other yes/no questions of the bot are not ours.
    offer = "Möchten Sie wissen, welche Unterlagen Sie mitbringen müssen?"
    assert confirm.pending([*history, Turn("caller", "ja"), Turn("bot", offer)]) is None
    assert confirm.pending([Turn("bot", phrases.HANDOFF_OFFER)]) is None
    assert confirm.pending([Turn("bot", asked)]) is None  # no question to confirm


@pytest.mark.parametrize(
    ("said", "meaning"),
    [
        ("ja", True),
        ("Ja, genau.", True),
        ("1", True),
        ("nein", False),
        ("Nein!", False),
        ("2", False),
        ("nee", False),
        ("Ein.", False),  # how whisper-base hears a lone "Nein." at 8 kHz
        ("Hain,", False),
    ],
)
def test_replies(said: str, meaning: bool) -> None:
    assert confirm.reply(said) is meaning


@pytest.mark.parametrize("said", ["3", "was kostet ein reisepass für kinder", "ein reisepass", ""])
def test_anything_else_is_a_new_question(said: str) -> None:
    assert confirm.reply(said) is None


# ---- in the extractive engine, on the sample knowledge base


@pytest.fixture(scope="module")
def engine(sample_index_dir: Path) -> ExtractiveAnswerEngine:
    config = KnowledgeConfig(town="Musterstadt", index_dir=sample_index_dir)
    return ExtractiveAnswerEngine(config, load_retriever(config))


QUESTION = "was kostet ein reisepass"


async def test_clear_spoken_and_typed_questions_are_answered(engine: ExtractiveAnswerEngine) -> None:
    for request in (
        AnswerRequest(QUESTION, asr_confidence=0.8, asr=CLEAR),
        AnswerRequest(QUESTION),
        AnswerRequest(QUESTION, asr_confidence=None, asr=None),
    ):
        answer = await engine.answer(request)
        assert (answer.action, answer.sources[0].split("#")[0]) == (Action.ANSWER, "reisepass-beantragen")
        assert "Geht es um" not in answer.text


async def test_unsure_question_is_confirmed_then_yes_answers_the_original(
    engine: ExtractiveAnswerEngine,
) -> None:
    asked = await engine.answer(AnswerRequest(QUESTION, asr_confidence=0.4, asr=UNSURE))
    assert (asked.action, asked.reason) == (Action.CLARIFY, "confirm")
    assert asked.text == "Geht es um das Thema „Reisepass beantragen“?"
    history = (Turn("caller", QUESTION), Turn("bot", asked.text))
    typed = await engine.answer(AnswerRequest(QUESTION))
    for yes in ("ja", "Ja genau.", "1"):
        answer = await engine.answer(AnswerRequest(yes, history=history, asr=CLEAR))
        assert answer.reason.startswith("confirmed_"), answer
        assert (answer.action, answer.sources, answer.text) == (Action.ANSWER, typed.sources, typed.text)
        # The voice pipeline's history already ends with the reply: the same.
        again = await engine.answer(AnswerRequest(yes, history=(*history, Turn("caller", yes))))
        assert again.text == answer.text


async def test_no_asks_what_it_is_about(engine: ExtractiveAnswerEngine) -> None:
    history = (Turn("caller", QUESTION), Turn("bot", confirm.confirmation_question("Reisepass beantragen")))
    for no in ("nein", "2"):
        answer = await engine.answer(AnswerRequest(no, history=history))
        assert (answer.action, answer.text, answer.reason) == (
            Action.CLARIFY,
            "Worum geht es denn?",
            "confirm_declined",
        )
    # The caller says what it is about: an ordinary question again.
    after = (*history, Turn("caller", "nein"), Turn("bot", "Worum geht es denn?"))
    answer = await engine.answer(AnswerRequest("ich will meinen hund anmelden", history=after))
    assert answer.action == Action.ANSWER and answer.sources[0].startswith("hundesteuer-anmelden")


async def test_a_new_question_after_the_confirmation_is_answered_as_such(
    engine: ExtractiveAnswerEngine,
) -> None:
    history = (Turn("caller", QUESTION), Turn("bot", confirm.confirmation_question("Reisepass beantragen")))
    answer = await engine.answer(AnswerRequest("wo melde ich meinen hund an", history=history))
    assert answer.sources[0].startswith("hundesteuer-anmelden")


async def test_yes_to_another_yes_no_question_is_not_taken_for_a_confirmation(
    engine: ExtractiveAnswerEngine,
) -> None:
    history = (Turn("caller", QUESTION), Turn("bot", "Möchten Sie wissen, was ein Reisepass kostet?"))
    answer = await engine.answer(AnswerRequest("ja", history=history))
    assert not answer.reason.startswith("confirm")


async def test_lost_recogniser_asks_to_repeat_then_hands_off(engine: ExtractiveAnswerEngine) -> None:
    first = await engine.answer(AnswerRequest(QUESTION, asr_confidence=0.1, asr=LOST))
    assert (first.action, first.reason, first.text) == (
        Action.CLARIFY,
        "misheard_repeat",
        phrases.CLARIFY_ACOUSTIC,
    )
    history = (Turn("caller", QUESTION), Turn("bot", first.text))
    second = await engine.answer(AnswerRequest(QUESTION, history=history, asr_confidence=0.1, asr=LOST))
    assert second.action == Action.HANDOFF


async def test_words_no_page_knows_are_confirmed_when_the_recogniser_was_not_quite_sure(
    engine: ExtractiveAnswerEngine,
) -> None:
    answer = await engine.answer(AnswerRequest("Mackrott, Anwohnerparken,", asr_confidence=0.5, asr=DOUBTFUL))
    # The example: a passport question heard as "Mackrott, Anwohnerparken," is not answered.
    assert (answer.action, answer.reason) == (Action.CLARIFY, "confirm"), answer
    assert answer.text == "Geht es um das Thema „Bewohnerparkausweis“?"
    typed = await engine.answer(AnswerRequest("Mackrott, Anwohnerparken,"))
    assert typed.action == Action.ANSWER  # the same words typed: answered (nothing was misheard)
