"""The asked day: relative days resolved with the date, holidays, and "closed that day" (issue 14 item 4)."""

from __future__ import annotations

from datetime import date

import pytest

from knowledge import days, verify

BUERGERBUERO_HOURS = ["montags bis freitags: 8 bis 12 Uhr", "donnerstags zusätzlich: 14 bis 18 Uhr"]


@pytest.mark.parametrize(
    ("year", "easter"), [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5))]
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert days._easter(year) == easter


@pytest.mark.parametrize(
    ("day", "word"),
    [
        (date(2026, 12, 1), "dienstag"),
        (date(2026, 12, 5), "samstag"),
        (date(2026, 12, 24), "heiligabend"),
        (date(2026, 12, 25), "feiertag"),
        (date(2026, 12, 31), "silvester"),
        (date(2026, 4, 3), "feiertag"),  # Good Friday
        (date(2026, 5, 14), "feiertag"),  # Ascension Day
        (date(2026, 10, 3), "feiertag"),
    ],
)
def test_a_date_is_named_as_the_pages_name_it(day: date, word: str) -> None:
    assert days.day_word(day) == word


@pytest.mark.parametrize(
    ("question", "today", "resolved"),
    [
        ("Hat das Bürgerbüro heute auf?", date(2026, 12, 5), "hat das burgerburo am samstag auf?"),
        ("wann habt ihr morgen offen", date(2026, 12, 4), "wann habt ihr am samstag offen"),
        ("wann habt ihr übermorgen offen", date(2026, 12, 22), "wann habt ihr am heiligabend offen"),
        ("ist morgen geöffnet", date(2026, 12, 24), "ist am feiertag geoffnet"),
        ("Guten Morgen, wann habt ihr offen?", date(2026, 12, 5), "Guten Morgen, wann habt ihr offen?"),
    ],
)
def test_heute_and_morgen_become_the_day_they_mean(question: str, today: date, resolved: str) -> None:
    assert days.resolve(question, today) == resolved


@pytest.mark.parametrize(
    ("question", "notice"),
    [
        ("Wann hat das Bürgerbüro am Samstag geöffnet?", "Samstags ist geschlossen."),
        ("wann habt ihr sonntags auf", "Sonntags ist geschlossen."),
        ("wann habt ihr am wochenende auf", "Am Wochenende ist geschlossen."),
        ("wann habt ihr am Donnerstag auf", None),
        ("wann habt ihr auf", None),
    ],
)
def test_a_day_the_hours_leave_out_is_said_to_be_closed(question: str, notice: str | None) -> None:
    assert days.closed_notice(question, BUERGERBUERO_HOURS) == notice


def test_the_verifier_accepts_a_closed_day_only_when_the_page_leaves_it_out() -> None:
    page = "Öffnungszeiten\n- montags bis freitags: 8 bis 12 Uhr\n- donnerstags zusätzlich: 14 bis 18 Uhr"
    assert verify.unsupported_facts("Samstags ist geschlossen.", [page]) == []
    assert verify.unsupported_facts("Samstags ist von 8 bis 12 Uhr geöffnet.", [page]) == ["w:samstag"]
    assert verify.unsupported_facts("Mittwochs ist geschlossen.", [page]) == ["c:mittwoch"]
    weekend = "- montags bis freitags: 8 bis 12 Uhr\n- samstags: 9 bis 13 Uhr"
    assert verify.unsupported_facts("Samstags ist geschlossen.", [weekend]) == ["c:samstag"]
    assert verify.unsupported_facts("Sonntags ist geschlossen.", [weekend]) == []


@pytest.mark.parametrize(
    ("question", "visits"),
    [
        ("kann ich am montag zum wertstoffhof", True),
        ("geht das samstags", True),
        ("ich brauch den ausweis bis freitag geht das schneller", False),
        ("kann ich das bis spätestens freitag abgeben", False),
        ("brauche ich einen termin", False),
    ],
)
def test_a_visit_on_a_day_is_no_deadline(question: str, visits: bool) -> None:
    assert days.visits_on_a_day(question) is visits
