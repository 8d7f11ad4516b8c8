"""Yes or no: whether the chosen units say that what the caller asked is so (a fee or free, open on the asked
day, a plain statement or its negation), and which days a question or a text names.

Why a module of its own: a "Ja"/"Nein" in front of a fact must only be said when the page says it plainly; these
rules are separate from choosing the unit (:mod:`knowledge.facts.selection`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from knowledge.facts.candidates import _AMOUNT, _FREE, _WORD, FactUnit
from knowledge.facts.questions import _NEGATED_QUESTION, FactType, Question, _words
from knowledge.facts.scoring import _matches, _token_unit
from knowledge.textfold import fold_text

_NEGATIONS = frozenset(
    _words("nicht kein keine keinen keiner keines keinem ohne verboten ausgenommen nie niemals weder")
)
_FREE_ENDINGS = ("frei", "freie", "freien", "los", "lose", "losen")
_ASKS_FREE = re.compile(r"kostenlos|umsonst|gratis|\bfrei\b|gebuhrenfrei|befreit")
_UNIT_FREE = re.compile(_FREE)
_UNIT_AMOUNT = re.compile(_AMOUNT)
_DAY_WORDS = {
    "montag": {"montag"},
    "dienstag": {"dienstag"},
    "mittwoch": {"mittwoch"},
    "donnerstag": {"donnerstag"},
    "freitag": {"freitag"},
    "samstag": {"samstag"},
    "sonntag": {"sonntag"},
    "wochenende": {"samstag", "sonntag"},
}
_DAY_ORDER = ["montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag"]
_DAY_WORD = re.compile(
    r"(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|wochenend|nachmittag|vormittag|abends|morgens)"
)
_HOLIDAYS = {"heiligabend": "24. dezember", "heilig abend": "24. dezember", "silvester": "31. dezember"}


def _asked_days(question: Question) -> set[str]:
    folded = fold_text(question.text)
    days: set[str] = set()
    for word, meant in _DAY_WORDS.items():
        if re.search(rf"\b{word}s?\b", folded):
            days |= meant
    return days


def _days_of(folded: str) -> set[str]:
    days: set[str] = set()
    names = "|".join(_DAY_ORDER)
    for match in re.finditer(rf"\b({names})s?\s+bis\s+({names})s?\b", folded):
        start, end = _DAY_ORDER.index(match.group(1)), _DAY_ORDER.index(match.group(2))
        days.update(_DAY_ORDER[start : end + 1])
    days.update(m.group(1) for m in re.finditer(rf"\b({names})s?\b", folded))
    if "wochenende" in folded:
        days |= {"samstag", "sonntag"}
    return days


def _hours_polarity(question: Question, units: Sequence[FactUnit]) -> bool | None:
    """Open on the asked day (or holiday)? From the opening-hours units chosen."""
    folded_question = fold_text(question.text)
    for holiday, date in _HOLIDAYS.items():
        if holiday in folded_question:
            day_number, month = date.split(". ")
            for unit in units:
                if month in unit.folded and re.search(rf"\b{day_number}\.", unit.folded):
                    return "geschlossen" not in unit.folded
            return None
    asked = _asked_days(question)
    if not asked:
        return None
    afternoon = bool(re.search(r"\bnachmittag|\babends?\b", folded_question))
    covering = [
        clause for unit in units for clause in re.split(r"[,;]", unit.folded) if _days_of(clause) & asked
    ]
    if covering:
        open_clauses = [clause for clause in covering if "geschlossen" not in clause]
        if not open_clauses:
            return False
        if afternoon:
            hours = [int(h) for c in open_clauses for h in re.findall(r"\b(\d{1,2})(?:[:.]\d\d)?\s*uhr", c)]
            return any(h >= 14 for h in hours)
        return True
    if any(_days_of(u.folded) for u in units):
        return False  # the hours name other days only
    return None


def _fee_polarity(folded: str) -> bool | None:
    """True when the text says free, False when it states a fee, None when both or neither."""
    free, paid = bool(_UNIT_FREE.search(folded)), bool(_UNIT_AMOUNT.search(folded))
    return None if free == paid else free


def _polarity(question: Question, asked: FactType, units: Sequence[FactUnit]) -> bool | None:
    """Whether the chosen units answer the yes/no question with yes (True) or no (False), if plainly."""
    if _NEGATED_QUESTION.search(fold_text(question.text)):
        return None  # "muss ich nicht ...": a plain "Ja"/"Nein" would be ambiguous
    if asked == FactType.COST:
        free = _fee_polarity(" ".join(u.folded for u in units))
        if free is None:
            return None
        asks_free = bool(_ASKS_FREE.search(fold_text(question.text)))
        return free == asks_free
    if asked == FactType.HOURS:
        return _hours_polarity(question, units)
    return _statement_polarity(question, units[0])


def _statement_polarity(question: Question, unit: FactUnit, strict: bool = False) -> bool | None:
    """Does the unit say the focus of the question is so (True), is not so (False), or not plainly (None)?
    ``strict``: only the caller's word itself counts (no shared compound tails)."""
    if _NEGATED_QUESTION.search(fold_text(question.text)):
        return None
    tokens = _WORD.findall(unit.folded)
    hits = [
        i
        for i, token in enumerate(tokens)
        for word in question.focus
        if (word[: max(4, len(word) - 3)] in token and abs(len(token) - len(word)) <= 3)
        or (
            not strict
            and (_matches(word, _token_unit(token)) >= 1.0 or (len(word) >= 8 and word[-6:] in token))
        )
    ]
    if not hits:
        return None
    if "nur" in tokens:
        # "Brauche ich einen Termin?" – "Termine nur nach Vereinbarung": yes. "Darf ich ...?" – "nur mit
        # Genehmigung": no plain yes or no. "melden sich nur beim Finanzamt an": unclear.
        near = any("nur" in tokens[i + 1 : i + 3] for i in hits)
        negated = any(t in _NEGATIONS for i in hits for t in tokens[max(0, i - 4) : i + 7])
        requirement = bool(re.search(r"\b(brauch\w*|muss|mussen|benotig\w*)\b", fold_text(question.text)))
        return False if negated else (True if near and requirement else None)
    for i in hits:
        window = tokens[max(0, i - 4) : i + 7]
        if any(t in _NEGATIONS for t in window) or (tokens[i].endswith(_FREE_ENDINGS) and len(tokens[i]) > 8):
            return False
    return True
