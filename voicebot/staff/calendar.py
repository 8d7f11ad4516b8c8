"""The office calendar: when staff can be reached, and when a call-back is due (decision 0810). Pure: no I/O, no
clock of its own; every function takes the moment it is asked about.

- Opening hours per weekday, written as the town writes them: ``"mo-fr 08:00-16:00; do 08:00-18:00"`` (entries
  separated by ``;``, a later entry replaces the hours of its days, several spans a day for a lunch break:
  ``"mo 08:00-12:00 13:00-16:00"``). See :func:`parse_hours`.
- Public holidays: the nine nationwide ones (Easter-based moving feasts included, :func:`easter_sunday`), the
  state's (``state_holidays``, names of :data:`STATE_HOLIDAYS`; NRW by default) and extra closed dates
  (``"2026-12-24"`` once, ``"12-24"`` every year).
- Time zone Europe/Berlin (``zoneinfo``): the office's wall clock, summer time included.

A call-back is due at the closing time of the next working day after the day it was asked for (the 115 promise:
"an answer within 24 hours, at the latest on the next working day"; decision 0810).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

WEEKDAYS = ("mo", "di", "mi", "do", "fr", "sa", "so")
WEEKDAY_NAMES = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MONTH_NAMES = (
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
)
# How far ahead the calendar looks for an opening (a calendar that never opens answers None, not a hang).
SEARCH_DAYS = 400

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")


class CalendarError(ValueError):
    """A setting the calendar cannot read (the message says which part and how to write it)."""


def easter_sunday(year: int) -> date:
    """Easter Sunday of ``year`` (Gregorian calendar; the anonymous algorithm of Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _buss_und_bettag(year: int) -> date:
    """The Wednesday before 23 November (Saxony)."""
    day = date(year, 11, 22)
    return day - timedelta(days=(day.weekday() - 2) % 7)


def nationwide_holidays(year: int) -> dict[date, str]:
    easter = easter_sunday(year)
    return {
        date(year, 1, 1): "Neujahr",
        easter - timedelta(days=2): "Karfreitag",
        easter + timedelta(days=1): "Ostermontag",
        date(year, 5, 1): "Tag der Arbeit",
        easter + timedelta(days=39): "Christi Himmelfahrt",
        easter + timedelta(days=50): "Pfingstmontag",
        date(year, 10, 3): "Tag der Deutschen Einheit",
        date(year, 12, 25): "1. Weihnachtstag",
        date(year, 12, 26): "2. Weihnachtstag",
    }


# The holidays only some states keep, by the name a setting uses (state_holidays), with the day in a year.
STATE_HOLIDAYS = {
    "heilige_drei_koenige": lambda year: date(year, 1, 6),  # BW, BY, ST
    "frauentag": lambda year: date(year, 3, 8),  # BE, MV
    "ostersonntag": lambda year: easter_sunday(year),  # BB
    "pfingstsonntag": lambda year: easter_sunday(year) + timedelta(days=49),  # BB
    "fronleichnam": lambda year: easter_sunday(year) + timedelta(days=60),  # BW, BY, HE, NW, RP, SL
    "augsburger_friedensfest": lambda year: date(year, 8, 8),  # Augsburg
    "mariae_himmelfahrt": lambda year: date(year, 8, 15),  # SL, parts of BY
    "weltkindertag": lambda year: date(year, 9, 20),  # TH
    "reformationstag": lambda year: date(year, 10, 31),  # BB, HB, HH, MV, NI, SN, ST, SH, TH
    "allerheiligen": lambda year: date(year, 11, 1),  # BW, BY, NW, RP, SL
    "buss_und_bettag": _buss_und_bettag,  # SN
}
STATE_HOLIDAY_NAMES = {
    "heilige_drei_koenige": "Heilige Drei Könige",
    "frauentag": "Internationaler Frauentag",
    "ostersonntag": "Ostersonntag",
    "pfingstsonntag": "Pfingstsonntag",
    "fronleichnam": "Fronleichnam",
    "augsburger_friedensfest": "Augsburger Friedensfest",
    "mariae_himmelfahrt": "Mariä Himmelfahrt",
    "weltkindertag": "Weltkindertag",
    "reformationstag": "Reformationstag",
    "allerheiligen": "Allerheiligen",
    "buss_und_bettag": "Buß- und Bettag",
}

Span = tuple[time, time]


def parse_hours(spec: str) -> dict[int, tuple[Span, ...]]:
    """``"mo-fr 08:00-16:00; do 08:00-18:00"`` → weekday (0 = Monday) → opening spans. A day no entry names is
    closed; a later entry replaces earlier hours of its days. CalendarError says what to fix."""
    hours: dict[int, tuple[Span, ...]] = {}
    for raw in spec.split(";"):
        entry = raw.strip().lower()
        if not entry:
            continue
        parts = entry.replace(",", " ").split()
        days, spans = _days(parts[0], entry), [_span(part, entry) for part in parts[1:]]
        if not spans:
            raise CalendarError(f"opening hours {entry!r}: no times (write e.g. 'mo-fr 08:00-16:00')")
        spans.sort()
        for earlier, later in pairwise(spans):
            if later[0] < earlier[1]:
                raise CalendarError(f"opening hours {entry!r}: the times overlap")
        for day in days:
            hours[day] = tuple(spans)
    return hours


def _days(text: str, entry: str) -> list[int]:
    first, _, last = text.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise CalendarError(
            f"opening hours {entry!r}: {text!r} is not a day or range of days ({', '.join(WEEKDAYS)}; e.g. mo-fr)"
        )
    start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    if end < start:
        raise CalendarError(f"opening hours {entry!r}: the days {text!r} run backwards")
    return list(range(start, end + 1))


def _span(text: str, entry: str) -> Span:
    match = _SPAN.match(text)
    if match is None:
        raise CalendarError(f"opening hours {entry!r}: {text!r} is not a time span like 08:00-16:00")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise CalendarError(f"opening hours {entry!r}: {text!r} is not a time of day")
    opens = time(h1, m1)
    closes = time.max if h2 == 24 else time(h2, m2)
    if closes <= opens:
        raise CalendarError(f"opening hours {entry!r}: {text!r} closes before it opens")
    return opens, closes


def parse_closed_dates(values: Iterable[str]) -> tuple[set[date], set[tuple[int, int]]]:
    """``"2026-12-24"`` (that day) and ``"12-24"`` (that day every year)."""
    once: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for value in values:
        match = _DATE.match(value.strip())
        try:
            if match is None:
                raise ValueError
            year, month, day = match.groups()
            if year:
                once.add(date(int(year), int(month), int(day)))
            else:
                date(2024, int(month), int(day))  # a leap year: 02-29 is a date
                yearly.add((int(month), int(day)))
        except ValueError:
            raise CalendarError(
                f"closed date {value!r}: write YYYY-MM-DD (once) or MM-DD (every year)"
            ) from None
    return once, yearly


@dataclass(frozen=True)
class OfficeCalendar:
    """Opening hours and holidays of one office (a staff group), in its time zone."""

    hours: dict[int, tuple[Span, ...]]
    state_holidays: tuple[str, ...] = ()
    closed_once: frozenset[date] = frozenset()
    closed_yearly: frozenset[tuple[int, int]] = frozenset()
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Berlin"))

    @classmethod
    def from_spec(
        cls,
        hours: str,
        *,
        state_holidays: Iterable[str] = (),
        closed_dates: Iterable[str] = (),
        timezone: str = "Europe/Berlin",
    ) -> OfficeCalendar:
        """From the settings' words; CalendarError names the part that is wrong."""
        unknown = [name for name in state_holidays if name not in STATE_HOLIDAYS]
        if unknown:
            raise CalendarError(
                f"state holiday {unknown[0]!r} unknown; one of {', '.join(sorted(STATE_HOLIDAYS))}"
            )
        once, yearly = parse_closed_dates(closed_dates)
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            raise CalendarError(f"time zone {timezone!r} unknown (e.g. Europe/Berlin)") from None
        return cls(parse_hours(hours), tuple(state_holidays), frozenset(once), frozenset(yearly), zone)

    # --- days ----------------------------------------------------------------------------------------------

    def holiday(self, day: date) -> str | None:
        """The name of the holiday or closing day ``day`` is, else None."""
        name = nationwide_holidays(day.year).get(day)
        if name:
            return name
        for key in self.state_holidays:
            if STATE_HOLIDAYS[key](day.year) == day:
                return STATE_HOLIDAY_NAMES[key]
        if day in self.closed_once or (day.month, day.day) in self.closed_yearly:
            return "geschlossen"
        return None

    def spans(self, day: date) -> tuple[Span, ...]:
        """The opening spans of ``day`` (none on a holiday)."""
        if self.holiday(day) is not None:
            return ()
        return self.hours.get(day.weekday(), ())

    def is_working_day(self, day: date) -> bool:
        return bool(self.spans(day))

    # --- moments -------------------------------------------------------------------------------------------

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("the calendar needs an aware datetime (with tzinfo)")
        return at.astimezone(self.zone)

    def _at(self, day: date, moment: time) -> datetime:
        if moment == time.max:  # "24:00": the end of the day
            return datetime.combine(day + timedelta(days=1), time(), self.zone)
        return datetime.combine(day, moment, self.zone)

    def is_open(self, at: datetime) -> bool:
        now = self.local(at)
        return any(
            self._at(now.date(), a) <= now < self._at(now.date(), b) for a, b in self.spans(now.date())
        )

    def next_opening(self, after: datetime) -> datetime | None:
        """The first moment at or after ``after`` the office opens (``after`` itself while it is open); None
        when it does not open within :data:`SEARCH_DAYS`."""
        now = self.local(after)
        for offset in range(SEARCH_DAYS):
            day = now.date() + timedelta(days=offset)
            for opens, closes in self.spans(day):
                if self._at(day, closes) > now:
                    return max(now, self._at(day, opens))
        return None

    def next_working_day(self, after: date) -> date | None:
        """The first working day after ``after`` (not ``after`` itself)."""
        for offset in range(1, SEARCH_DAYS):
            day = after + timedelta(days=offset)
            if self.is_working_day(day):
                return day
        return None

    def callback_due(self, requested: datetime) -> datetime | None:
        """When a call-back asked for at ``requested`` is due: the closing time of the next working day after the
        day of the request (decision 0810). None when the office never opens."""
        day = self.next_working_day(self.local(requested).date())
        if day is None:
            return None
        return self._at(day, self.spans(day)[-1][1])


# --- in words ------------------------------------------------------------------------------------------------


def clock_words(moment: datetime) -> str:
    """``8 Uhr``, ``8 Uhr 30`` (digits: the voice reads them as numbers)."""
    return f"{moment.hour} Uhr" if moment.minute == 0 else f"{moment.hour} Uhr {moment.minute}"


def day_words(day: date, today: date) -> str:
    """``heute``, ``morgen``, ``übermorgen``, a weekday within the coming week (``Montag``), else ``Montag, den
    4. Januar``."""
    delta = (day - today).days
    if delta == 0:
        return "heute"
    if delta == 1:
        return "morgen"
    if delta == 2:
        return "übermorgen"
    if 0 < delta < 7:
        return WEEKDAY_NAMES[day.weekday()]
    return f"{WEEKDAY_NAMES[day.weekday()]}, den {day.day}. {MONTH_NAMES[day.month - 1]}"


def when_words(moment: datetime, now: datetime) -> str:
    """``morgen um 8 Uhr``, ``Montag um 8 Uhr 30`` (``moment`` and ``now`` in the office's zone)."""
    return f"{day_words(moment.date(), now.date())} um {clock_words(moment)}"


def due_words(moment: datetime, now: datetime) -> str:
    """``morgen, 16 Uhr``: how the confirmation names the due time (``bis morgen, 16 Uhr``)."""
    return f"{day_words(moment.date(), now.date())}, {clock_words(moment)}"
