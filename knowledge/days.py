"""The day the caller asks about: "am Samstag", "heute", "morgen", a public holiday.

"Wann hat das Bürgerbüro am Samstag geöffnet?" must be answered for Saturday: the Monday-to-Friday hours alone
pretend to be the whole answer (issue 14). So the question's relative days are resolved with the current date
("heute" on a Tuesday → "Dienstag"; on 25 December → "Feiertag"), and an opening-hours answer whose hours leave
the asked day out starts by saying that it is closed that day ("Samstags ist geschlossen."). The verifier
accepts that sentence only when the page's hours really leave the day out or close it
(:func:`knowledge.verify.uncovered`). Pure functions; the date is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from knowledge.textfold import fold_text

WEEKDAYS = ("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag")
_RELATIVE = {"heute": 0, "morgen": 1, "ubermorgen": 2}
# "morgen" as a day, not "guten Morgen" or "morgens"
_RELATIVE_WORD = re.compile(r"(?<!guten )(?<!gute )\b(heute|ubermorgen|morgen)\b(?! fruh)")


def _easter(year: int) -> date:
    """Easter Sunday (Gregorian calendar, the Meeus/Jones/Butcher computation)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def public_holiday(day: date) -> bool:
    """A nationwide German public holiday (state holidays differ; pages name theirs as "Feiertage")."""
    fixed = {(1, 1), (5, 1), (10, 3), (12, 25), (12, 26)}
    if (day.month, day.day) in fixed:
        return True
    easter = _easter(day.year)
    return day in {easter + timedelta(days=offset) for offset in (-2, 1, 39, 50)}


def day_word(day: date) -> str:
    """How the knowledge pages name this day: "heiligabend", "silvester", "feiertag" or the weekday."""
    if (day.month, day.day) == (12, 24):
        return "heiligabend"
    if (day.month, day.day) == (12, 31):
        return "silvester"
    if public_holiday(day):
        return "feiertag"
    return WEEKDAYS[day.weekday()]


def resolve(question: str, today: date) -> str:
    """The question (folded) with "heute", "morgen" or "übermorgen" replaced by the day they mean ("am dienstag")."""
    folded = fold_text(question)
    match = _RELATIVE_WORD.search(folded)
    if match is None:
        return question
    day = day_word(today + timedelta(days=_RELATIVE[match.group(1)]))
    return _RELATIVE_WORD.sub(f"am {day}", folded, count=1)


_MONTH_TEXT = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
_MONTHS = _MONTH_TEXT.split()


def today_line(question: str, today: date) -> str:
    """ "Heute ist Samstag, der 5. Dezember 2026." for a question that says "heute"/"morgen" (else ""): the
    language model needs the date to answer it."""
    if _RELATIVE_WORD.search(fold_text(question)) is None:
        return ""
    weekday = WEEKDAYS[today.weekday()].capitalize()
    return f"Heute ist {weekday}, der {today.day}. {_MONTHS[today.month - 1]} {today.year}."


def asked_weekdays(question: str) -> list[str]:
    """The weekdays a question names ("am Samstag", "samstags", "am Wochenende"), in week order."""
    folded = fold_text(question)
    days = {day for day in WEEKDAYS if re.search(rf"\b{day}s?\b", folded)}
    if re.search(r"\bsonnabends?\b", folded):
        days.add("samstag")
    if "wochenende" in folded:
        days |= {"samstag", "sonntag"}
    return [day for day in WEEKDAYS if day in days]


def visits_on_a_day(question: str) -> bool:
    """Does the question ask about going somewhere on a day ("am Montag", "samstags"), not a deadline ("bis
    Freitag")?"""
    names = "|".join(WEEKDAYS)
    folded = fold_text(question)
    if re.search(rf"\bbis (?:zum |spatestens )?(?:{names})", folded):
        return False
    return bool(re.search(rf"\b(?:am|an|jeden) (?:{names})\b|\b(?:{names})s\b", folded))


def without_weekdays(question: str) -> str:
    """The question without its weekday words ("ist das Rathaus samstags offen" → "ist das Rathaus offen")."""
    names = "|".join((*WEEKDAYS, "sonnabend", "wochenende"))
    stripped = re.sub(rf"\b(?:am |an |zum )?(?:{names})s?\b", " ", fold_text(question))
    return " ".join(stripped.split())


def open_days(texts: Iterable[str]) -> set[str]:
    """The weekdays that opening-hours texts name as open ("montags bis freitags: 8 bis 12 Uhr")."""
    names = "|".join(WEEKDAYS)
    days: set[str] = set()
    for text in texts:
        for clause in re.split(r"[;.]", fold_text(text)):
            if "geschlossen" in clause:
                continue
            for match in re.finditer(rf"\b({names})s?\s*(?:-|–|bis)\s*({names})s?\b", clause):
                start, end = WEEKDAYS.index(match.group(1)), WEEKDAYS.index(match.group(2))
                days.update(WEEKDAYS[start : end + 1])
            days.update(m.group(1) for m in re.finditer(rf"\b({names})s?\b", clause))
    return days


def closed_notice(question: str, unit_texts: Sequence[str]) -> str | None:
    """ "Samstags ist geschlossen." when the question asks for days the chosen hours leave out (the hours name
    other days, so the page says when it is open and the asked day is not among them); else None."""
    asked = asked_weekdays(question)
    if not asked:
        return None
    opened = open_days(unit_texts)
    if not opened:
        return None
    closed = [day for day in asked if day not in opened]
    if not closed:
        return None
    if closed == ["samstag", "sonntag"]:
        return "Am Wochenende ist geschlossen."
    names = " und ".join(f"{day}s" for day in closed)
    return f"{names[0].upper()}{names[1:]} ist geschlossen."
