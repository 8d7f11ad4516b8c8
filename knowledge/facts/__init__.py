"""Fact-level answers: what the caller asks for, and which sentence or list item of the page says it.

The curated "Telefonantwort" of a page answers the general question ("Wie beantrage ich einen Reisepass?"), not
"Wie lange dauert das?" or "Was kostet der für Kinder?". Here:

* :func:`classify` types the question (:class:`FactType`: cost, duration, deadline, opening hours or date, place,
  phone or e-mail, documents, eligibility, who is responsible, how to apply, general), notes whether it is a
  yes/no question, and keeps the words that say *what exactly* is asked (:mod:`.questions`);
* :func:`fact_units` cuts a page into *fact units* (each list item with its section heading, each sentence of the
  body, each sentence of the curated answer) and notes which kinds of fact each unit can state (:mod:`.candidates`);
* :func:`select_facts` picks the unit(s) of the asked kind that fit the question best: the question's words
  weighted by how rare they are on the page (BM25-like, inside the page), numbers the caller said, what the
  question is after (validity or processing time, consequences ...), and the multilingual-e5 cosine between the
  question (the retriever's query vector) and each unit (embedded at ingest, keyed by :func:`unit_key`); a yes/no
  question also gets whether the page says yes or no (:mod:`.selection`, weights and word matching in
  :mod:`.scoring`, yes/no in :mod:`.yesno`).

When no unit of the asked kind exists the selection is empty: the engine then says that this detail is not known
and offers the hand-off, instead of speaking another fact. :func:`fact_sentences` renders a selection in written
form (:mod:`.phrasing`); :mod:`knowledge.spoken` makes it speakable. Pure functions over chunks and vectors.

This package re-exports the names callers use, so ``from knowledge import facts`` and ``facts.X`` keep working.
"""

from knowledge.facts.candidates import (
    ANSWERING_UNITS,
    FactUnit,
    Topic,
    fact_units,
    page_units,
    topic_of,
    unit_key,
)
from knowledge.facts.phrasing import fact_sentences
from knowledge.facts.questions import CURATED_TYPES, FactType, Question, classify, is_yes_no, question_type
from knowledge.facts.selection import (
    FactSelection,
    entity_words,
    select_facts,
    selection_names,
)

__all__ = [
    "ANSWERING_UNITS",
    "CURATED_TYPES",
    "FactSelection",
    "FactType",
    "FactUnit",
    "Question",
    "Topic",
    "classify",
    "entity_words",
    "fact_sentences",
    "fact_units",
    "is_yes_no",
    "page_units",
    "question_type",
    "select_facts",
    "selection_names",
    "topic_of",
    "unit_key",
]
