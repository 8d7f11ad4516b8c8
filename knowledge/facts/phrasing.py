"""Phrasing a selection: list items as natural sentences (documents to bring, opening hours, a labelled value),
with a leading "Ja"/"Nein" for yes/no questions. Written form; :mod:`knowledge.spoken` makes it speakable.

Why a module of its own: what is said is chosen elsewhere (:mod:`knowledge.facts.selection`); this only words it.
"""

from __future__ import annotations

import re

from knowledge import spoken
from knowledge.facts.questions import FactType, _words
from knowledge.facts.selection import FactSelection
from knowledge.textfold import fold_text

_LOWER_AFTER_YES = frozenset(
    _words("der die das den dem des ein eine einen einem einer er es im in am an bei fur mit ohne")
)


_BRING = re.compile(r"\s+(?:mitbringen|mitzubringen)\.?$", re.IGNORECASE)


def _with_yes_no(first: str, polarity: bool | None) -> str:
    if polarity is None:
        return first
    word = "Ja" if polarity else "Nein"
    head, _, rest = first.partition(" ")
    if fold_text(head) in _LOWER_AFTER_YES and rest:
        return f"{word}, {head.lower()} {rest}"
    return f"{word}. {first}"


def _lead_of(heading: str) -> str:
    return "Geöffnet ist" if re.search(r"offnung|geoffnet", fold_text(heading)) else ""


def _item_sentences(selection: FactSelection) -> list[str]:
    units, asked = selection.units, selection.type
    items = [u.text for u in units]
    if asked == FactType.HOURS and _lead_of(units[0].heading):
        return spoken.hours_sentences(items, _lead_of(units[0].heading))
    if asked == FactType.DOCUMENTS:
        label = spoken.split_item(items[0])[0]
        if len(items) == 1 and label:
            return [spoken.item_sentence(items[0], units[0].heading, asked.value)]
        # "Ausweis mitbringen" (a step of a procedure list) after "Bitte bringen Sie mit:" says it twice
        return spoken.list_sentences(
            [_BRING.sub("", item) or item for item in items], "Bitte bringen Sie mit"
        )
    if len(items) > 1:
        return spoken.list_sentences(items, units[0].heading or "Dazu")
    return [spoken.item_sentence(items[0], units[0].heading, asked.value)]


def fact_sentences(selection: FactSelection) -> list[str]:
    """The chosen units as sentences to speak, written form (numbers as on the page; see knowledge.spoken)."""
    if not selection.units:
        return []
    if all(u.kind == "item" for u in selection.units):
        sentences = _item_sentences(selection)
    else:
        sentences = [u.text for u in selection.units]
    if selection.question.yes_no and sentences:
        sentences[0] = _with_yes_no(sentences[0], selection.polarity)
    return sentences
