"""How well a fact unit fits a question's words: the scoring weights, word matching (stems, compounds,
headings), the in-page rarity weighting of the focus words, and the e5 cosine below the page's best unit.

Why a module of its own: both the selection of a fact (:mod:`knowledge.facts.selection`) and the yes/no reading
(:mod:`knowledge.facts.yesno`) match words the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from knowledge import normalize
from knowledge.facts.candidates import FactUnit, Topic
from knowledge.facts.questions import FactType, Question

# Scoring weights (tuned on knowledge/eval/facts.yaml only; see docs/decisions/0252-fact-level-answers.md).
LEXICAL_WEIGHT = 1.0
NUMBER_WEIGHT = 0.6
BOUND_WEIGHT = 0.5
WITHIN_WEIGHT = 0.3
MIXED_PENALTY = 0.3  # a unit that also states values of another kind ("kostet 32 Euro mehr und ist ... da")
COSINE_WEIGHT = 5.0  # per unit of cosine below the page's best unit (e5 cosines are bunched)
COSINE_FLOOR = -0.1
STRONG_BONUS = 0.35
# "wo ist ...": an address is the answer, a phone number beside it is not
STRONG_BONUSES = {FactType.PLACE: 0.7, FactType.CONTACT: 0.5}
HEADING_BONUS = 0.25
INTENT_BONUS = 0.7
DAY_BONUS = 0.6  # an opening-hours unit about the day the caller asked for
# "Erwachsene: 4 Euro" before "10er-Karte Erwachsene: 35 Euro" for "Eintritt für Erwachsene"
PRECISION_WEIGHT = 0.3
CURATED_BONUS = 0.05
PLAIN_BONUS = 0.3  # a yes/no fee question: a unit that plainly says free or a fee
SITUATION_MATCH = 0.5  # a how-to question's situation must be on the sentence, else the curated answer
CONDITION_BONUS = 0.2  # a yes/no answer that states its limit ("Carports bis 30 Quadratmeter")
GENERAL_CURATED_BONUS = 0.5  # nothing specific asked ("was kostet ein Reisepass?"): the curated sentence
OTHER_KIND_PENALTY = 0.3
TOPIC_WEIGHT = 0.3  # a focus word that names the page (its title or synonyms) says little about which unit
# A list whose best item matches the question no better than this is answered whole ("Welche Unterlagen?").
SPECIFIC_ITEM = 0.5


def _matches(word: str, unit: FactUnit) -> float:
    """How well a unit contains a focus word (0..1), best first: the word itself (inside a word of the unit, the
    same stem, a short word starting a word: "bar" ~ "Barzahlung"), a long shared beginning ("Blindenhund" ~
    "Blindenführhunde"), the unit's word as the head of the caller's compound ("Hausgeburt" ~ "Geburt"), a shared
    first part or tail of long compounds ("Geburtsurkunde" ~ "Personenstandsurkunden"), a word of the heading."""
    return max(
        _word_match(word, unit.folded, unit.words, unit.stems),
        0.3 * max((_word_match(word, w, (w,), frozenset((w[:5],))) for w in unit.heading_words), default=0.0),
    )


@lru_cache(maxsize=4096)
def _caller_stem(word: str) -> str:
    """The stem of a caller's word, feminine endings off ("Ärztin" ~ "Ärzte")."""
    return normalize.stem(re.sub(r"(?<=\w{4})(innen|in)$", "", word))


def _word_match(
    word: str, folded: str, words: frozenset[str] | tuple[str, ...], stems: frozenset[str]
) -> float:
    if len(word) >= 4 and word in folded:
        return 1.0
    if len(word) < 10 and word[:5] in stems:
        return 1.0
    stem = _caller_stem(word)
    if 4 <= len(stem) < 5 and any(w.startswith(stem) for w in words):
        return 1.0
    if 3 <= len(word) <= 4 and any(w.startswith(word) for w in words):
        return 1.0
    if len(word) >= 10 and any(len(w) >= 10 and w[:7] == word[:7] for w in words):
        return 0.8
    if any(
        len(w) >= 5 and len(word) >= len(w) + 3 and (word.endswith(w) or word.startswith(w)) for w in words
    ):
        return 0.7  # "Hausgeburt" ~ "Geburt", "Papiertonne" ~ "Papier"
    if word[:5] in stems:
        return 0.5
    if len(word) >= 8 and any(len(w) >= 8 and (w.endswith(word[-6:]) or word[-6:] in w) for w in words):
        return 0.5
    return 0.0


EXPANSION_WEIGHT = 0.5


def _lexical_scores(question: Question, units: Sequence[FactUnit], topic: Topic) -> list[float]:
    """Per unit: the question's focus words it contains, each weighted by its rarity on the page (0..1).

    A focus word that names the page counts only :data:`TOPIC_WEIGHT`, a word the caller's word stands for
    (:attr:`Question.expansions`) :data:`EXPANSION_WEIGHT`; words found nowhere on the page do not count at all.
    """
    words = [*question.focus, *question.expansions]
    if not words or not units:
        return [0.0] * len(units)
    matches = [[_matches(w, u) for w in words] for u in units]
    total = len(units)
    weights: list[float] = []
    norm = 0.0
    for column, word in enumerate(words):
        frequency = sum(1 for row in matches if row[column] >= 0.7)
        partial = any(row[column] > 0 for row in matches)
        idf = math.log(1 + total / frequency) if frequency else (math.log(1 + total) if partial else 0.0)
        weight = TOPIC_WEIGHT if topic.names(word) else 1.0
        if column >= len(question.focus):
            weight *= EXPANSION_WEIGHT
        else:
            norm += idf
        weights.append(idf * weight)
    if not norm:
        norm = max(weights) or 1.0
    return [min(1.0, sum(m * w for m, w in zip(row, weights, strict=True)) / norm) for row in matches]


def _cosines(
    units: Sequence[FactUnit], query_vector: np.ndarray | None, vectors: Mapping[str, np.ndarray] | None
) -> list[float]:
    """Per unit: cosine to the question minus the page's best (0 for the best); zeros without vectors."""
    if query_vector is None or not vectors or not units:
        return [0.0] * len(units)
    rows = [vectors.get(u.key) for u in units]
    if any(row is None for row in rows):
        return [0.0] * len(units)
    values = np.stack(rows) @ query_vector  # type: ignore[arg-type]
    best = float(values.max())
    return [max(COSINE_FLOOR, float(v) - best) for v in values]


@lru_cache(maxsize=4096)
def _token_unit(token: str) -> FactUnit:
    """A one-word pseudo unit, to reuse :func:`_matches` on a single token."""
    return FactUnit(
        doc_id="",
        chunk_id="",
        title="",
        text=token,
        heading="",
        kind="sentence",
        group=-1,
        position=0,
        types=frozenset(),
        strong=frozenset(),
        folded=token,
        stems=frozenset((token[:5],)),
        words=frozenset((token,)),
    )
