"""The office calendar (voicebot/staff/calendar.py, decision 0810): opening hours, German public holidays, the next
opening and when a call-back is due. Pure functions over fixed moments: no clock, no I/O."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.settings import OfficeHoursSettings, Settings, StaffGroup
from voicebot.staff.calendar import (
    CalendarError,
    OfficeCalendar,
    due_words,
    easter_sunday,
    nationwide_holidays,
    parse_hours,
    when_words,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture
def nrw() -> OfficeCalendar:
    """The embedded default: mo-fr 8-16, Thursday until 18, NRW holidays, 24 and 31 December closed."""
    return OfficeHoursSettings().calendar()


def test_easter_and_the_nationwide_holidays_of_2026_and_2027() -> None:
    assert [easter_sunday(year) for year in (2024, 2025, 2026, 2027, 2038)] == [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
        date(2038, 4, 25),
    ]
    assert sorted(nationwide_holidays(2026)) == [
        date(2026, 1, 1),
        date(2026, 4, 3),  # Karfreitag
        date(2026, 4, 6),  # Ostermontag
        date(2026, 5, 1),
        date(2026, 5, 14),  # Christi Himmelfahrt
        date(2026, 5, 25),  # Pfingstmontag
        date(2026, 10, 3),
        date(2026, 12, 25),
        date(2026, 12, 26),
    ]
    assert nationwide_holidays(2027)[date(2027, 3, 26)] == "Karfreitag"
    assert nationwide_holidays(2027)[date(2027, 5, 6)] == "Christi Himmelfahrt"
    assert nationwide_holidays(2027)[date(2027, 5, 17)] == "Pfingstmontag"


def test_state_holidays_and_closed_dates(nrw: OfficeCalendar) -> None:
    assert nrw.holiday(date(2026, 6, 4)) == "Fronleichnam"
    assert nrw.holiday(date(2027, 5, 27)) == "Fronleichnam"
    assert nrw.holiday(date(2026, 11, 1)) == "Allerheiligen"
    assert nrw.holiday(date(2026, 12, 24)) == "geschlossen"  # "12-24": every year
    assert nrw.holiday(date(2026, 10, 31)) is None  # Reformationstag is not an NRW holiday
    assert not nrw.is_open(_at(2026, 6, 4, 10))  # Fronleichnam, a Thursday
    saxony = OfficeCalendar.from_spec(
        "mo-fr 08:00-16:00", state_holidays=["buss_und_bettag", "reformationstag"]
    )
    assert saxony.holiday(date(2026, 11, 18)) == "Buß- und Bettag"
    assert saxony.holiday(date(2027, 11, 17)) == "Buß- und Bettag"
    assert saxony.holiday(date(2026, 6, 4)) is None
    once = OfficeCalendar.from_spec("mo-fr 08:00-16:00", closed_dates=["2026-12-28"])
    assert once.holiday(date(2026, 12, 28)) and once.holiday(date(2027, 12, 28)) is None


def test_opening_hours_with_the_long_thursday(nrw: OfficeCalendar) -> None:
    assert nrw.is_open(_at(2026, 12, 1, 8, 0))  # Tuesday, opening minute
    assert not nrw.is_open(_at(2026, 12, 1, 7, 59))
    assert not nrw.is_open(_at(2026, 12, 1, 16, 0))  # closing time is closed
    assert nrw.is_open(_at(2026, 12, 3, 17, 30))  # Thursday until 18:00
    assert not nrw.is_open(_at(2026, 12, 4, 17, 30))  # Friday not
    assert not nrw.is_open(_at(2026, 12, 5, 10))  # Saturday
    # The same moment given in UTC: 15:30 UTC is 16:30 in Berlin (winter time), Thursday: open.
    assert nrw.is_open(datetime(2026, 12, 3, 15, 30, tzinfo=ZoneInfo("UTC")))
    breaks = parse_hours("mo 08:00-12:00 13:00-16:00; di-mi 9:00-12:00")
    assert [(a.hour, b.hour) for a, b in breaks[0]] == [(8, 12), (13, 16)]
    assert set(breaks) == {0, 1, 2}


def test_after_closing_the_next_opening_is_the_next_working_day(nrw: OfficeCalendar) -> None:
    tuesday_evening = _at(2026, 12, 1, 16, 5)
    assert nrw.next_opening(tuesday_evening) == _at(2026, 12, 2, 8)
    assert when_words(_at(2026, 12, 2, 8), tuesday_evening) == "morgen um 8 Uhr"
    assert nrw.next_opening(_at(2026, 12, 1, 6, 30)) == _at(2026, 12, 1, 8)
    assert nrw.next_opening(_at(2026, 12, 1, 9, 30)) == _at(2026, 12, 1, 9, 30)  # open now
    friday_evening = _at(2026, 12, 4, 17)
    assert nrw.next_opening(friday_evening) == _at(2026, 12, 7, 8)
    assert when_words(_at(2026, 12, 7, 8), friday_evening) == "Montag um 8 Uhr"
    # A call-back asked for on Tuesday evening is due on Wednesday at closing time; on the long Thursday later.
    assert nrw.callback_due(tuesday_evening) == _at(2026, 12, 2, 16)
    assert due_words(_at(2026, 12, 2, 16), tuesday_evening) == "morgen, 16 Uhr"
    assert nrw.callback_due(_at(2026, 12, 2, 10)) == _at(2026, 12, 3, 18)  # asked while open: next day
    assert nrw.callback_due(friday_evening) == _at(2026, 12, 7, 16)


def test_across_a_holiday_weekend(nrw: OfficeCalendar) -> None:
    # Easter 2026: Gründonnerstag 2 April after 18:00 → Karfreitag, weekend, Ostermontag closed → Tuesday 7 April.
    maundy_thursday = _at(2026, 4, 2, 18, 30)
    assert nrw.next_opening(maundy_thursday) == _at(2026, 4, 7, 8)
    assert nrw.callback_due(maundy_thursday) == _at(2026, 4, 7, 16)
    assert when_words(_at(2026, 4, 7, 8), maundy_thursday) == "Dienstag um 8 Uhr"
    # Christmas 2026: Wednesday 23 December evening → 24 (closed), 25/26 holidays, weekend → Monday 28.
    assert nrw.callback_due(_at(2026, 12, 23, 17)) == _at(2026, 12, 28, 16)
    # New year: 31 December closed, 1 January holiday → Monday 4 January 2027, more than a week away in words.
    before = _at(2026, 12, 24, 9)
    assert nrw.next_opening(before) == _at(2026, 12, 28, 8)
    assert when_words(_at(2027, 1, 4, 8), _at(2026, 12, 27, 9)) == "Montag, den 4. Januar um 8 Uhr"


def test_summer_time_is_the_office_clock() -> None:
    calendar = OfficeCalendar.from_spec("mo-so 08:00-16:00")
    # 29 March 2026: clocks go forward at 02:00. 06:30 UTC is 08:30 CEST: open.
    assert calendar.is_open(datetime(2026, 3, 29, 6, 30, tzinfo=ZoneInfo("UTC")))
    assert calendar.next_opening(_at(2026, 3, 29, 1)) == _at(2026, 3, 29, 8)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ("mo-fr 8-16", "not a time span"),
        ("montag 08:00-16:00", "not a day"),
        ("fr-mo 08:00-16:00", "backwards"),
        ("mo 16:00-08:00", "closes before it opens"),
        ("mo 08:00-12:00 11:00-16:00", "overlap"),
        ("mo", "no times"),
        ("mo 25:00-26:00", "not a time of day"),
    ],
)
def test_bad_hours_say_what_to_fix(hours: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_hours(hours)


def test_settings_check_the_calendar_and_a_group_may_have_its_own() -> None:
    with pytest.raises(ValueError, match="state holiday 'bayern' unknown"):
        OfficeHoursSettings(state_holidays=["bayern"])
    with pytest.raises(ValueError, match=r"closed date '24\.12\.'"):
        OfficeHoursSettings(closed_dates=["24.12."])
    with pytest.raises(ValueError, match="time zone"):
        OfficeHoursSettings(timezone="Mars/Olympus")
    from voicebot.pipeline.callback import office_hours_for

    registry = OfficeHoursSettings(office="Das Standesamt", hours="mo-fr 08:00-12:00")
    settings = Settings()
    settings.handoff.groups = [
        StaffGroup(name="Standesamt", staff_uri="sip:std@pbx", office_hours=registry),
        StaffGroup(name="Bürgerbüro", staff_uri="sip:bb@pbx"),
    ]
    assert office_hours_for(settings, "Standesamt").office == "Das Standesamt"
    assert office_hours_for(settings, "Bürgerbüro") is settings.office_hours
    assert not registry.calendar().is_open(_at(2026, 12, 1, 13))
    assert settings.office_hours.calendar().is_open(_at(2026, 12, 1, 13))
