"""Spoken form: what a page writes for the eye, rewritten for the ear, without changing a single fact."""

from __future__ import annotations

import pytest

from knowledge import verify
from knowledge.sentences import split_sentences
from knowledge.spoken import (
    MAX_WORDS,
    for_speech,
    hours_sentences,
    item_sentence,
    list_sentences,
    spoken_phone_number,
    word_count,
)

REWRITES = [
    # weekdays and times
    ("Geöffnet Mo–Fr 8:00–12:00 Uhr.", "Geöffnet montags bis freitags 8 bis 12 Uhr."),
    ("Sprechzeit Do 14–18 Uhr.", "Sprechzeit donnerstags 14 bis 18 Uhr."),
    ("Mo.-Do. 8-16 Uhr erreichbar.", "montags bis donnerstags 8 bis 16 Uhr erreichbar."),
    ("Montag–Freitag geöffnet.", "Montag bis Freitag geöffnet."),
    ("Die Bearbeitung dauert 3–4 Wochen.", "Die Bearbeitung dauert 3 bis 4 Wochen."),
    # abbreviations
    ("Z. B. Gartenhäuser.", "Zum Beispiel Gartenhäuser."),
    ("Möbel, Matratzen usw.", "Möbel, Matratzen und so weiter."),
    ("Das dauert ca. 4 Wochen bzw. 6 Wochen.", "Das dauert circa 4 Wochen beziehungsweise 6 Wochen."),
    (
        "Bringen Sie ggf. eine Vollmacht mit, d. h. schriftlich.",
        "Bringen Sie gegebenenfalls eine Vollmacht mit, das heißt schriftlich.",
    ),
    ("Kirchstr. 5, Tel. 0123 45678-90.", "Kirchstraße 5, Telefon 0 1 2 3, 4 5 6 7 8, 9 0."),
    # symbols
    ("Die Gebühr beträgt 37 €.", "Die Gebühr beträgt 37 Euro."),
    ("Die Gebühr beträgt € 22,80.", "Die Gebühr beträgt 22,80 Euro."),
    ("Hebesatz 550 %.", "Hebesatz 550 Prozent."),
    (
        "Carports bis 30 m² und Gartenhäuser bis 75 m³.",
        "Carports bis 30 Quadratmeter und Gartenhäuser bis 75 Kubikmeter.",
    ),
    # brackets are not heard
    ("Ab 24 Jahren: 70 Euro (Gültigkeit 10 Jahre).", "Ab 24 Jahren: 70 Euro, Gültigkeit 10 Jahre."),
    (
        "Das Express-Verfahren dauert wenige Werktage (meist 3 bis 4).",
        "Das Express-Verfahren dauert wenige Werktage, meist 3 bis 4.",
    ),
    # phone numbers digit by digit, web addresses without "www."
    ("Rufen Sie 0800 4 5555 00 an.", "Rufen Sie 0 8 0 0, 4, 5 5 5 5, 0 0 an."),
    ("Online unter www.musterstadt.example/termin.", "Online unter musterstadt.example/termin."),
    # a semicolon ends a sentence for the ear
    ("Das Porto ist frei; senden Sie ihn früh ab.", "Das Porto ist frei. Senden Sie ihn früh ab."),
]


@pytest.mark.parametrize(("written", "spoken"), REWRITES)
def test_written_form_becomes_spoken_form(written: str, spoken: str) -> None:
    assert for_speech(written) == spoken


@pytest.mark.parametrize(("written", "_spoken"), REWRITES)
def test_the_spoken_form_states_the_same_facts(written: str, _spoken: str) -> None:
    """The verifier finds every number, time and weekday of the spoken form in the written page."""
    assert verify.unsupported_facts(for_speech(written), [written]) == []


def test_a_changed_phone_digit_is_still_caught() -> None:
    page = "Elternbeitragsstelle, Telefon 0123 45678-62."
    assert verify.unsupported_facts("Telefon 0 1 2 3, 4 5 6 7 8, 6 2.", [page]) == []
    assert verify.unsupported_facts("Telefon 0 1 2 3, 4 5 6 7 8, 6 3.", [page]) == ["p:01234567863"]


def test_phone_numbers_are_grouped_digit_by_digit() -> None:
    assert spoken_phone_number("0123 45678-62") == "0 1 2 3, 4 5 6 7 8, 6 2"
    assert spoken_phone_number("0351 44834-550") == "0 3 5 1, 4 4 8 3 4, 5 5 0"


def test_long_sentences_are_split_for_the_ear() -> None:
    long = (
        "Anmeldung online unter www.musterstadt.example/kita oder bei der Tagesmutter, Termine nach Vereinbarung, "
        "Beratung im Rathaus in der dritten Etage bei der Elternberatung, Telefon 0123 45678-60, montags bis "
        "freitags von 8 bis 12 Uhr und donnerstags zusätzlich von 14 bis 18 Uhr."
    )
    sentences = split_sentences(for_speech(long))
    assert len(sentences) >= 2
    assert all(word_count(s) <= MAX_WORDS for s in sentences)
    assert verify.unsupported_facts(" ".join(sentences), [long]) == []


def test_a_phone_number_counts_as_one_word() -> None:
    assert word_count("Telefon 0 1 2 3, 4 5 6 7 8, 6 2.") == 2


@pytest.mark.parametrize(
    ("item", "heading", "asked", "sentence"),
    [
        (
            "Urnenreihengrab, 25 Jahre: 950 Euro",
            "Grabarten und Gebühren",
            "cost",
            "Ein Urnenreihengrab kostet 950 Euro für 25 Jahre.",
        ),
        (
            "Reihengrab (Erdbestattung), 25 Jahre: 1.450 Euro",
            "Gebühren",
            "cost",
            "Ein Reihengrab, Erdbestattung, kostet 1.450 Euro für 25 Jahre.",
        ),
        ("Erwachsene: 4 Euro", "Eintritt", "cost", "Erwachsene zahlen 4 Euro."),
        ("Kinder unter 6 Jahren: frei", "Eintritt", "cost", "Für Kinder unter 6 Jahren ist es frei."),
        (
            "10er-Karte Erwachsene: 35 Euro",
            "Eintritt",
            "cost",
            "Eine 10er-Karte für Erwachsene kostet 35 Euro.",
        ),
        ("erster Hund: 120 Euro im Jahr", "Kosten", "cost", "Der erste Hund kostet 120 Euro im Jahr."),
        (
            "jeder weitere Hund: 150 Euro im Jahr",
            "Kosten",
            "cost",
            "Jeder weitere Hund kostet 150 Euro im Jahr.",
        ),
        ("Express-Zuschlag: 32 Euro", "Kosten", "cost", "Der Express-Zuschlag beträgt 32 Euro."),
        (
            "Restmülltonne 60 Liter: 150 Euro",
            "Gebühren im Jahr",
            "cost",
            "Eine Restmülltonne 60 Liter kostet 150 Euro im Jahr.",
        ),
        ("Verlustanzeige: kostenlos", "Kosten", "cost", "Eine Verlustanzeige ist kostenlos."),
        (
            "ab 24 Jahren: 70 Euro (Gültigkeit 10 Jahre)",
            "Kosten",
            "cost",
            "Ab 24 Jahren kostet es 70 Euro (Gültigkeit 10 Jahre).",
        ),
        (
            "Jahreseinkommen bis 30.000 Euro: beitragsfrei",
            "Beitragsfreiheit",
            "cost",
            "Bei Jahreseinkommen bis 30.000 Euro ist es beitragsfrei.",
        ),
        (
            "für das erweiterte Führungszeugnis: die Aufforderung des Vereins",
            "Unterlagen",
            "documents",
            "Für das erweiterte Führungszeugnis brauchen Sie die Aufforderung des Vereins.",
        ),
        (
            "Studierende: das Studierendenwerk der Hochschule",
            "Zuständigkeit",
            "responsible",
            "Zuständig für Studierende: das Studierendenwerk der Hochschule.",
        ),
        (
            "Baumgrab im Waldfriedhof: nach Absprache",
            "Grabarten",
            "cost",
            "Baumgrab im Waldfriedhof: nach Absprache.",
        ),
    ],
)
def test_list_items_become_sentences(item: str, heading: str, asked: str, sentence: str) -> None:
    assert item_sentence(item, heading, asked) == sentence
    assert verify.unsupported_facts(for_speech(sentence), [item]) == []


def test_lists_become_sentences_of_at_most_max_words() -> None:
    documents = [
        "bisheriger Reisepass oder Personalausweis",
        "ein aktuelles biometrisches Passfoto",
        "bei Minderjährigen: Zustimmung beider Sorgeberechtigten",
        "bei Namensänderung: Heirats- oder Geburtsurkunde",
        "bei Verlust: die Verlustanzeige der Polizei",
    ]
    sentences = list_sentences(documents, "Bitte bringen Sie mit")
    assert sentences[0].startswith("Bitte bringen Sie mit: bisheriger Reisepass oder Personalausweis, ")
    assert all(word_count(s) <= MAX_WORDS for s in sentences)
    assert "bei Minderjährigen, Zustimmung" in " ".join(sentences)


def test_opening_hours_are_one_sentence_and_closed_days_another() -> None:
    items = [
        "dienstags bis freitags: 7 bis 21 Uhr",
        "samstags und sonntags: 8 bis 18 Uhr",
        "montags geschlossen",
    ]
    assert hours_sentences(items, "Geöffnet ist") == [
        "Geöffnet ist dienstags bis freitags von 7 bis 21 Uhr und samstags und sonntags von 8 bis 18 Uhr.",
        "Montags ist geschlossen.",
    ]


def test_sentence_boundaries_after_house_and_phone_numbers() -> None:
    text = (
        "Das Bad ist in der Badstraße 10. Es hat am 10. Mai zu. Telefon 0123 45678-10. Bringen Sie Geld mit."
    )
    assert split_sentences(text) == [
        "Das Bad ist in der Badstraße 10.",
        "Es hat am 10. Mai zu.",
        "Telefon 0123 45678-10.",
        "Bringen Sie Geld mit.",
    ]
