"""Short first, more on request: offer the next useful part of the same page, and continue on "ja".

A phone answer gives the asked fact in one or two sentences. Reading a whole page to a caller is the opposite of
help, but the caller who asked what a passport costs will often need to know what to bring next. So an answer
ends with one offer ("Möchten Sie wissen, welche Unterlagen Sie mitbringen müssen?") for a part the page really
has and the answer did not already say. A plain "ja" / "gerne" / "ja bitte" to that offer is answered as the
offered question about the same topic (the earlier caller turn gives the topic, as for any follow-up); "nein"
gets "Kann ich sonst noch helfen?". The offer is recognised from the previous bot turn's text alone
(:class:`~knowledge.types.Turn` carries only text), through the fixed offer sentences in :mod:`knowledge.phrases`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge import facts, phrases
from knowledge.textfold import fold_text
from knowledge.types import Action, Answer, AnswerRequest, Chunk, Turn

F = facts.FactType
# What to offer after an answer of each asked type, best first (only parts the page states are offered).
_NEXT: dict[F, tuple[F, ...]] = {
    F.COST: (F.DOCUMENTS, F.DURATION, F.HOURS),
    F.DOCUMENTS: (F.COST, F.DURATION, F.HOURS),
    F.DURATION: (F.COST, F.DOCUMENTS),
    F.DEADLINE: (F.DOCUMENTS, F.COST),
    F.HOURS: (F.CONTACT, F.PLACE),
    F.PLACE: (F.HOURS, F.CONTACT),
    F.CONTACT: (F.HOURS, F.PLACE),
    F.ELIGIBILITY: (F.DOCUMENTS, F.COST),
    F.RESPONSIBLE: (F.HOURS, F.CONTACT),
}
_GENERAL_NEXT = (F.DOCUMENTS, F.COST, F.DURATION, F.HOURS)
OFFERED_REASONS = ("fact_answer", "fact_yes_no", "curated_answer")

_YES_WORDS_TEXT = "ja jawohl jo gerne gern bitte ja-bitte okay ok genau klar sehr gut gerne doch"
_YES_WORDS = frozenset(_YES_WORDS_TEXT.split())
_NO_WORDS_TEXT = "nein nee ne no danke nicht notig brauche ich lieber erstmal jetzt"
_NO_WORDS = frozenset(_NO_WORDS_TEXT.split())


def _stated(text: str) -> frozenset[F]:
    """The kinds of value a spoken text already states (a fee, a time ...)."""
    chunk = Chunk(id="spoken", doc_id="spoken", title="", text=text)
    return frozenset(kind for unit in facts.fact_units(chunk) for kind in unit.strong)


def offer_kind(asked: F, answer_text: str, chunks: Sequence[Chunk], said_before: str = "") -> F | None:
    """The part of the page to offer next: the first of the asked type's usual next questions that the page
    states (a list under its heading, or a value) and neither the answer nor the bot's earlier turns in this
    call (``said_before``) said yet; None when there is none."""
    answer_text = f"{said_before} {answer_text}"
    units = [unit for unit in facts.page_units(chunks) if unit.kind != "curated"]
    on_page = {kind for unit in units for kind in unit.strong}
    said = set(_stated(answer_text))
    answer_words = set(re.findall(r"[a-z]{6,}", fold_text(answer_text)))
    documents = [unit for unit in units if F.DOCUMENTS in unit.strong and unit.kind == "item"]
    if any(set(re.findall(r"[a-z]{6,}", unit.folded)) & answer_words for unit in documents):
        said.add(F.DOCUMENTS)  # "im Bürgerbüro mit Fahrzeugschein und Personalausweis": already named
    for kind in _NEXT.get(asked, _GENERAL_NEXT):
        if kind != asked and kind in on_page and kind not in said and kind.value in phrases.MORE_TYPES:
            return kind
    return None


def _reply(text: str) -> bool | None:
    """A plain "ja" (True) or "nein" (False) and nothing else; None for anything with content."""
    words = re.findall(r"[a-z]+", fold_text(text))
    if not words or len(words) > 5:
        return None
    if words[0] in ("nein", "nee", "ne", "no") and set(words) <= _NO_WORDS | _YES_WORDS:
        return False
    if set(words) <= _YES_WORDS and "nicht" not in words:
        return True
    if set(words) <= _NO_WORDS and "danke" in words and "nein" in words:
        return False
    return None


def _last_bot(history: Sequence[Turn]) -> Turn | None:
    return next((turn for turn in reversed(history) if turn.role == "bot"), None)


def offered(history: Sequence[Turn]) -> str | None:
    """The kind of part the last bot turn offered ("documents", ...), or None."""
    bot = _last_bot(history)
    return phrases.offered_more(bot.text) if bot is not None else None


def continue_offer(
    request: AnswerRequest, earlier: Sequence[Turn], mode: str
) -> AnswerRequest | Answer | None:
    """After an offer: "ja" → the offered question (a request to answer as usual), "nein" → "Kann ich sonst
    noch helfen?" (an answer); None when there was no offer or the caller said something else."""
    kind = offered(earlier)
    if kind is None:
        return None
    reply = _reply(request.question)
    if reply is None:
        return None
    if not reply:
        text, language = phrases.localize(phrases.ANYTHING_ELSE, request.language)
        return Answer(text, Action.CLARIFY, 1.0, [], mode, language, "more_declined", {"retrieval": 0.0})
    return AnswerRequest(phrases.MORE_QUESTIONS[kind], tuple(earlier), request.language, None)


def with_offer(answer: Answer, asked: F, chunks: Sequence[Chunk], earlier: Sequence[Turn] = ()) -> Answer:
    """The answer with the offer of the page's next useful part appended (unchanged when there is none)."""
    if answer.action != Action.ANSWER or answer.reason not in OFFERED_REASONS or answer.language != "de":
        return answer
    said_before = " ".join(turn.text for turn in earlier if turn.role == "bot")
    kind = offer_kind(asked, answer.text, chunks, said_before)
    if kind is None:
        return answer
    answer.text = f"{answer.text} {phrases.offer_more(kind.value)}"
    return answer
