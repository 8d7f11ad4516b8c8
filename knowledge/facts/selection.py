"""Choosing the fact: which unit(s) of the page state the asked fact, scored by the question's words, numbers
and purpose and the e5 cosine (see :mod:`knowledge.facts` for the whole picture).

Why a module of its own: this is where the weights of :mod:`knowledge.facts.scoring` meet the question
(:mod:`knowledge.facts.questions`) and the page's units (:mod:`knowledge.facts.candidates`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from knowledge import normalize, spoken
from knowledge.facts.candidates import (
    _COUNTED,
    _HEADING_TYPES,
    _LIMIT,
    _MIXED,
    _STRONG_EVIDENCE,
    _VALUES,
    _WORD,
    ANSWERING_UNITS,
    FactUnit,
    Topic,
    _topic,
    page_units,
    topic_of,
)
from knowledge.facts.questions import _EXPLICIT, _STOP, FactType, Question, _within, classify
from knowledge.facts.scoring import (
    BOUND_WEIGHT,
    CONDITION_BONUS,
    COSINE_WEIGHT,
    CURATED_BONUS,
    DAY_BONUS,
    GENERAL_CURATED_BONUS,
    HEADING_BONUS,
    INTENT_BONUS,
    LEXICAL_WEIGHT,
    MIXED_PENALTY,
    NUMBER_WEIGHT,
    OTHER_KIND_PENALTY,
    PLAIN_BONUS,
    PRECISION_WEIGHT,
    SITUATION_MATCH,
    SPECIFIC_ITEM,
    STRONG_BONUS,
    STRONG_BONUSES,
    WITHIN_WEIGHT,
    _cosines,
    _lexical_scores,
    _matches,
    _token_unit,
)
from knowledge.facts.yesno import (
    _DAY_WORD,
    _asked_days,
    _days_of,
    _fee_polarity,
    _polarity,
    _statement_polarity,
)
from knowledge.textfold import fold_text, fold_word
from knowledge.types import Chunk

# What a question is after, beyond its type: (question pattern, pattern of the units that say it).
_ANY_TYPE: frozenset[FactType] = frozenset(FactType)
_Intent = tuple[re.Pattern[str], re.Pattern[str], frozenset[FactType]]


def _intent(question: str, unit: str, types: frozenset[FactType] = _ANY_TYPE) -> _Intent:
    return re.compile(question), re.compile(unit), types


_INTENTS: tuple[_Intent, ...] = (
    _intent(r"gultig|\bgilt\b|\bgelten\b", r"gultig|\bgilt\b|\bgelten\b"),
    _intent(
        r"dauert?|fertig|wie schnell|\bkommt\b|\bda ist\b|bearbeitung",
        r"dauert|\bdauer\b|fertig|herstellung|bearbeitung|\bkommt\b|schickt|sofort|\bda\b",
    ),
    _intent(r"aufheb|\bhebt\b|aufbewahr|\blager", r"aufbewahr"),
    _intent(
        r"was (passiert|ist|geschieht)\b.{0,12}\bwenn\b|zu spat|nicht rechtzeitig|verpass|vergess",
        r"verpass|nicht rechtzeitig|\bohne\b|\bfolgt\b|festgesetzt|verwarnungsgeld|bussgeld|hochstbeitrag",
    ),
    _intent(r"erreichbar|telefonisch", r"erreichbar|telefonisch"),
    _intent(r"e ?-?mail|\bmail", r"@"),
    _intent(r"telefon|nummer|anrufen|\bruf", r"\b0\d{2,5}[ /]\d|116 116"),
    _intent(r"\bonline\b|internet", r"\bonline\b|www\.|\.example\b|internet"),
    _intent(  # how often a bin is emptied, asked as "wann" or "wie oft"
        r"abgeholt|abholung|geleert|leerung|\bkommt\b.{0,30}(tonne|mull|abfuhr)|wie oft",
        r"alle \d+ wochen|jede woche|rhythmus|abfuhrtag",
        frozenset((FactType.HOURS,)),
    ),
    _intent(  # how much or how many: a counted amount ("5 Kubikmeter", "2 Sperrmüllabholungen")
        r"\bwie viele?\b|\bwie gross\b|\banzahl\b",
        rf"{_COUNTED}|{_LIMIT}|\b\d+ [a-z]{{5,}}",
        frozenset((FactType.ELIGIBILITY,)),
    ),
    _intent(  # a missed collection is reported, not awaited
        r"nicht (abgeholt|geleert|mitgenommen)",
        r"nicht (abgeholt|geleert|mitgenommen)",
    ),
    _intent(r"\bsommer\b", r"\bmarz bis oktober\b|\bsommer|\bjuni bis"),
    _intent(r"\bwinter\b", r"\bnovember bis\b|\bwinter"),
)


def _intents(question: Question, fact_type: FactType) -> list[re.Pattern[str]]:
    """The unit patterns of what the question is after."""
    folded = fold_text(question.text)
    return [unit for asks, unit, types in _INTENTS if fact_type in types and asks.search(folded)]


@dataclass(frozen=True)
class FactSelection:
    """What :func:`select_facts` chose: the units to say (empty: the page does not state the asked fact)."""

    question: Question
    type: FactType  # the type that was answered (the question's, or inherited from the turn before)
    units: tuple[FactUnit, ...]
    score: float = 0.0
    # yes/no questions: True = the page says yes, False = no, None = it does not say plainly
    polarity: bool | None = None
    # yes/no questions about the page as a whole ("muss ich mich ummelden?"): the curated answer fits better
    general: bool = False

    @property
    def found(self) -> bool:
        return bool(self.units)


def _without_days(question: Question) -> Question:
    """ "am Wochenende" asks about days, not about the word "Wochen"."""
    focus = tuple(w for w in question.focus if not _DAY_WORD.match(w))
    return Question(
        question.text,
        question.type,
        question.yes_no,
        focus,
        question.numbers,
        question.expansions,
        question.bounds,
    )


def _label_precision(question: Question, unit: FactUnit) -> float:
    """Share of an item's label words that the question names (the plainest matching item wins a tie)."""
    label = spoken.split_item(unit.text)[0]
    words = [w for w in _WORD.findall(fold_text(label)) if len(w) > 2 and w not in _STOP]
    if not words:
        return 0.0
    probe = _token_unit
    named = sum(1 for w in words if any(_matches(f, probe(w)) >= 0.7 for f in question.focus))
    return named / len(words)


def _is_specific(question: Question, units: Sequence[FactUnit], topic: Topic) -> bool:
    """Does the question name something beyond the page itself that one of the units has (in the caller's word
    or in what it stands for: "Kampfhund" → "gefährlicher Hund")?"""
    if any(_matches(w, u) >= 0.7 for w in question.focus if not topic.names(w) for u in units):
        return True
    # what a word means here ("Kampfhund" → "gefährlicher Hund") or the rest of a compound after the page's
    # name ("Grundsteuer|wert") counts; the colloquial lexicon's broad terms ("gefunden" → "Fundsache") do not
    for word in question.expansions:
        if (word in _EXPLICIT or word in question.parts) and any(_matches(word, u) >= 0.7 for u in units):
            return True
    return False


def _names_something(
    question: Question, units: Sequence[FactUnit], topic: Topic, fact_type: FactType
) -> bool:
    """Does the question say more than the page's name: a word, a number or a purpose one of the units has?"""
    intents = _intents(question, fact_type)
    return (
        bool(question.numbers & frozenset(n for u in units for n in u.numbers))
        or _within(
            question.numbers - frozenset(n for _, n in question.bounds),
            frozenset(b for u in units for b in u.bounds),
        )
        or _is_specific(question, units, topic)
        or any(p.search(u.folded) for p in intents for u in units)
        or bool(_asked_days(question))
    )


def _split_compounds(question: Question, topic: Topic) -> Question:
    """Focus compounds that start with the page's name also ask for the rest ("Büchereiausweis": "ausweis"),
    weighed like an expansion: the caller said the whole word."""
    rests = [topic.split(w) for w in question.focus]
    extra = tuple(
        r for r, w in zip(rests, question.focus, strict=True) if r != w and r not in question.expansions
    )
    if not extra:
        return question
    return Question(
        question.text,
        question.type,
        question.yes_no,
        question.focus,
        question.numbers,
        question.expansions + extra,
        question.bounds,
        extra,
    )


def _score_units(
    question: Question,
    fact_type: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> list[float]:
    days = _asked_days(question) if fact_type == FactType.HOURS else set()
    if days:
        question = _without_days(question)
    lexical = _lexical_scores(question, units, topic)
    cosines = _cosines(units, query_vector, vectors)
    intents = _intents(question, fact_type)
    named = bool(question.numbers) or _is_specific(question, units, topic)
    if not named:
        lexical = [0.0] * len(units)  # only words naming the page: they do not tell its sentences apart
    specific = named or any(p.search(u.folded) for p in intents for u in units)
    ages = question.numbers - frozenset(number for _, number in question.bounds)
    heading_pattern = _HEADING_TYPES.get(fact_type)
    scores = []
    for unit, lex, cos in zip(units, lexical, cosines, strict=True):
        score = LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos
        if question.numbers & unit.numbers:
            score += NUMBER_WEIGHT
        if question.bounds & unit.bounds:
            score += BOUND_WEIGHT  # "unter 24" is not "ab 24"
        elif _within(ages, unit.bounds):
            score += WITHIN_WEIGHT  # "mein Sohn ist sechzehn" falls under "unter 24 Jahren"
        if any(_VALUES[kind].search(unit.folded) for kind in _MIXED.get(fact_type, ())):
            score -= MIXED_PENALTY
        if fact_type in unit.strong:
            score += STRONG_BONUSES.get(fact_type, STRONG_BONUS)
        if fact_type not in unit.types:
            score -= OTHER_KIND_PENALTY
        if heading_pattern is not None and heading_pattern.search(unit.folded_heading):
            score += HEADING_BONUS
        if unit.kind == "curated":
            general = not specific and fact_type in unit.strong
            score += GENERAL_CURATED_BONUS if general else CURATED_BONUS
        if any(pattern.search(unit.folded) for pattern in intents):
            score += INTENT_BONUS
        if days and _days_of(unit.folded) & days:
            score += DAY_BONUS
        if named and unit.kind == "item":
            score += PRECISION_WEIGHT * _label_precision(question, unit)
        scores.append(score)
    return scores


def select_facts(
    question: Question | str,
    pages: Sequence[Sequence[Chunk]] | Sequence[Chunk],
    query_vector: np.ndarray | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    fact_type: FactType | None = None,
) -> FactSelection:
    """The unit(s) of the first page that state the asked fact (see the module docstring).

    ``pages``: the chunks of the page to answer from (a list of chunk lists is accepted; its first page is
    used). ``query_vector``/``vectors``: the retriever's e5 vector of the question and the units' vectors by
    :func:`unit_key` (without them only words and numbers count). ``fact_type`` overrides the question's type
    (a follow-up "und für Kinder?" keeps asking for the fee).
    """
    if isinstance(question, str):
        question = classify(question)
    first = pages[0] if pages else None
    chunks: list[Chunk] = list(first) if first is not None and not isinstance(first, Chunk) else list(pages)  # type: ignore[arg-type]
    asked = fact_type or question.type
    if not chunks:
        return FactSelection(question, asked, ())
    units = page_units(chunks)
    topic = topic_of(chunks[0])
    question = _split_compounds(question, topic)
    if question.yes_no and asked in (
        FactType.GENERAL,
        FactType.HOWTO,
        FactType.ELIGIBILITY,
        FactType.DOCUMENTS,
    ):
        return _select_yes_no(question, asked, units, topic, query_vector, vectors)
    if asked == FactType.HOWTO and re.search(r"\bwenn\b", fold_text(question.text)):
        return _select_situation(question, asked, units, topic, query_vector, vectors)
    if asked == FactType.HOWTO:
        return FactSelection(question, asked, (), general=True)
    wanted = ANSWERING_UNITS.get(asked)
    if wanted is None:
        return FactSelection(question, asked, ())
    candidates = [u for u in units if u.types & set(wanted)]
    if asked == FactType.CONTACT:  # an e-mail address is no answer to "which number", nor the other way round
        folded_question = fold_text(question.text)
        for asks, has in _CONTACT_KINDS:
            if asks.search(folded_question):
                candidates = [u for u in candidates if has.search(u.folded)]
    if not candidates:
        return FactSelection(question, asked, ())
    scores = _score_units(question, asked, candidates, topic, query_vector, vectors)
    if not _names_something(question, candidates, topic, asked):
        # Nothing specific asked ("was kostet die Kita?"): the curated answer's sentence of that kind.
        kinds = "strong" if asked in _STRONG_EVIDENCE else "types"
        curated = [i for i, u in enumerate(candidates) if u.kind == "curated" and asked in getattr(u, kinds)]
        for rank, i in enumerate(curated):  # the curated answer's first sentence of that kind leads
            scores[i] += GENERAL_CURATED_BONUS * 10 + (0.3 if rank == 0 else 0.0)
    if question.yes_no and asked == FactType.COST:  # "ist das kostenlos?": a unit that says free or a fee
        scores = [
            s + (PLAIN_BONUS if _fee_polarity(u.folded) is not None else 0.0)
            for s, u in zip(scores, candidates, strict=True)
        ]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    best = candidates[best_index]
    chosen = _whole_list(question, asked, best, units, topic) or (best,)
    polarity = _polarity(question, asked, chosen) if question.yes_no else None
    return FactSelection(question, asked, chosen, round(scores[best_index], 3), polarity)


def _whole_list(
    question: Question, asked: FactType, best: FactUnit, units: Sequence[FactUnit], topic: Topic
) -> tuple[FactUnit, ...] | None:
    """All items of the best unit's list when the question asks for the list (documents, opening hours)."""
    if best.kind != "item" or asked not in (FactType.DOCUMENTS, FactType.HOURS):
        return None
    siblings = tuple(u for u in units if u.group == best.group and u.chunk_id == best.chunk_id)
    if len(siblings) < 2 or not all(asked in u.types for u in siblings):
        return None
    if asked == FactType.HOURS and _asked_days(question):
        return None  # "montags": the item about that day
    # words that only repeat the page's name ("Personalausweis|verlängerung") do not pick one item
    rests = tuple(topic.split(w) for w in question.focus if not topic.names(w))
    rest_question = Question(question.text, question.type, question.yes_no, rests, question.numbers)
    lexical = sorted(_lexical_scores(rest_question, siblings, topic), reverse=True)
    if lexical[0] >= SPECIFIC_ITEM and lexical[0] - lexical[1] >= 0.3:
        return None  # "für das erweiterte Führungszeugnis": that item
    return siblings


_CONTACT_KINDS = (
    (re.compile(r"e ?-?mail|\bmail"), re.compile(r"@")),
    (re.compile(r"telefon|nummer|anrufen|\bruf"), re.compile(r"\b0\d{2,5}[ /]\d|\b116 116\b|\b11[02]\b")),
)
# Words that name an office or a place of its own ("Steueramt", "Wohngeldstelle", "Jugendamt").
_ENTITY = re.compile(r"\w{3,}(amt|amts|stelle|buro|behorde|kasse|gericht|zentrale|verwaltung|beratung|hof)$")


def entity_words(question: Question, chunk: Chunk) -> list[str]:
    """The offices the question names that are not the page's own subject (its title or synonyms)."""
    names = _topic(" ".join((chunk.title, *chunk.synonyms)))
    return [w for w in question.focus if _ENTITY.match(w) and not names.names(w)]


def selection_names(selection: FactSelection, words: Sequence[str], chunk: Chunk) -> bool:
    """Does the selected text name one of ``words`` (the asked office), so that its value is that office's? The
    page's title and curated answer count too: they say whose page it is."""
    page = fold_text(f"{chunk.title} {chunk.spoken_answer}")
    return any(w in u.folded or w in page for w in words for u in selection.units)


_CONDITION = re.compile(rf"{_LIMIT}|{_COUNTED}")


def _expands_to_topic(word: str, topic: Topic) -> bool:
    """ "Perso" names the page "Personalausweis beantragen" through the colloquial lexicon."""
    return any(topic.names(fold_word(t)) for t in normalize.colloquial_terms(word) if " " not in t)


def _select_situation(
    question: Question,
    asked: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> FactSelection:
    """ "Was kann ich machen, wenn mein Vermieter nicht unterschreibt?": the sentence about that situation, when
    the page has one; otherwise the curated answer (``general``) says how it is done."""
    specific = [w for w in question.focus if not topic.names(w) and not _expands_to_topic(w, topic)]
    candidates = [u for u in units if u.kind != "curated" and any(_matches(w, u) >= 0.7 for w in specific)]
    if not candidates:
        return FactSelection(question, asked, (), general=True)
    lexical = _lexical_scores(question, candidates, topic)
    cosines = _cosines(candidates, query_vector, vectors)
    scores = [LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos for lex, cos in zip(lexical, cosines, strict=True)]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    if lexical[best_index] < SITUATION_MATCH:
        return FactSelection(question, asked, (), general=True)
    return FactSelection(question, asked, (candidates[best_index],), round(scores[best_index], 3))


def _select_yes_no(
    question: Question,
    asked: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> FactSelection:
    """A yes/no question about something other than a fee or a time: the unit about its focus, and its answer.

    When only words naming the page itself are found ("muss ich mich ummelden?"), the selection is marked
    ``general``: the page's curated answer answers it better than any single sentence.
    """
    specific = [
        w
        for w in question.focus
        if not topic.names(w) and not _expands_to_topic(w, topic) and not _DAY_WORD.match(w)
    ]
    if not specific:
        # Only the page's own name: a plain "no" the page states about it ("Kinderreisepässe gibt es seit 2024
        # nicht mehr") is the answer; anything else is the curated answer's job.
        for unit in units:
            if _statement_polarity(question, unit, strict=True) is False:
                return FactSelection(question, asked, (unit,), 0.0, False)
        return FactSelection(question, asked, (), general=True)
    candidates = [u for u in units if any(_matches(w, u) >= 0.7 for w in specific)]
    if not candidates:
        # Nothing but the page's own name, or a situation the page does not mention ("ich wandere nach Kanada
        # aus, muss ich mich abmelden?"): the curated answer says what the page says about it.
        return FactSelection(question, asked, (), general=True)
    lexical = _lexical_scores(question, candidates, topic)
    cosines = _cosines(candidates, query_vector, vectors)
    scores = [
        LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos + (CONDITION_BONUS if _CONDITION.search(u.folded) else 0.0)
        for lex, cos, u in zip(lexical, cosines, candidates, strict=True)
    ]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    best = candidates[best_index]
    polarity = _statement_polarity(question, best)
    return FactSelection(question, asked, (best,), round(scores[best_index], 3), polarity)
