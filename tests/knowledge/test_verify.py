"""Sentence verification before speaking: citations and every number/time/day must come from a cited passage."""

from __future__ import annotations

import pytest

from knowledge import verify
from knowledge.sentences import SentenceSplitter, split_sentences
from knowledge.verify import (
    check_sentence,
    contains_fact,
    extract_citations,
    strip_citations,
    verify_answer,
)

PASSAGES = {
    "personalausweis-beantragen": (
        "Personalausweis beantragen. Die Gebühr beträgt 37,00 Euro, unter 24 Jahren 22,80 Euro. "
        "Bürgerbüro: Mo–Fr 8:00–12:00 Uhr, Do 14–18 Uhr. Bearbeitungszeit drei bis vier Wochen."
    ),
    "reisepass-beantragen#2": "Reisepass: Gebühren. Der Reisepass kostet 70 Euro.",
}


@pytest.mark.parametrize(
    "sentence",
    [
        "Der Ausweis kostet 37 Euro [personalausweis-beantragen].",
        "Der Ausweis kostet 37,00 € [personalausweis-beantragen].",
        "Der Ausweis kostet siebenunddreißig Euro [personalausweis-beantragen].",
        "Unter 24 Jahren zahlen Sie 22,80 Euro [personalausweis-beantragen].",
        "Das Bürgerbüro öffnet montags um 8 Uhr [personalausweis-beantragen].",
        "Mittwochs ist von 8.00 bis 12.00 Uhr geöffnet [1].",
        "Donnerstags bis 18:00 Uhr [personalausweis-beantragen].",
        "Es dauert 3 bis 4 Wochen [Quelle: personalausweis-beantragen].",
        "Der Pass kostet 70 Euro [reisepass-beantragen].",  # a page id names its retrieved chunks,
    ],
)
def test_sourced_sentences_are_verified(sentence: str) -> None:
    check = check_sentence(sentence, PASSAGES)
    assert check.ok, check
    assert "[" not in check.spoken


@pytest.mark.parametrize(
    ("sentence", "reason", "detail"),
    [
        ("Der Ausweis kostet 73 Euro [personalausweis-beantragen].", "unsupported_fact", "n:73"),
        ("Der Ausweis kostet 70 Euro [personalausweis-beantragen].", "unsupported_fact", "n:70"),
        ("Samstags ist geöffnet [personalausweis-beantragen].", "unsupported_fact", "w:samstag"),
        ("Das Bürgerbüro öffnet um 7:30 Uhr [personalausweis-beantragen].", "unsupported_fact", "t:7:30"),
        ("Es dauert zwanzig Wochen [personalausweis-beantragen].", "unsupported_fact", "n:20"),
        ("Der Ausweis kostet 37 Euro [kfz-zulassung].", "unknown_citation", "kfz-zulassung"),
        ("Der Ausweis kostet 37 Euro [7].", "unknown_citation", "7"),
    ],
)
def test_unsourced_facts_and_unknown_citations_fail(sentence: str, reason: str, detail: str) -> None:
    check = check_sentence(sentence, PASSAGES)
    assert not check.ok
    assert check.reason == reason
    assert detail in check.details


def test_a_sentence_without_citation_fails_unless_the_answer_cites() -> None:
    assert check_sentence("Der Ausweis kostet 37 Euro.", PASSAGES).reason == "no_citation"
    inherited = check_sentence("Der Ausweis kostet 37 Euro.", PASSAGES, ["personalausweis-beantragen"])
    assert inherited.ok


def test_whole_answer_shares_citations_and_strips_markers() -> None:
    result = verify_answer(
        [
            "Der Ausweis kostet 37 Euro.",
            "Er ist in drei bis vier Wochen fertig [personalausweis-beantragen].",
        ],
        PASSAGES,
    )
    assert result.ok
    assert result.sentences == ["Der Ausweis kostet 37 Euro.", "Er ist in drei bis vier Wochen fertig."]
    assert result.cited == ["personalausweis-beantragen"]
    assert verify_answer(["Das weiß ich nicht."], PASSAGES).reason == "no_citation"
    assert verify_answer(["KEINE_ANTWORT"], PASSAGES).reason == "abstained"


def test_echoed_prompt_and_rambling_are_rejected() -> None:
    echo = "Passagen: [1] ID: personalausweis-beantragen Gebühr 37,00 Euro."
    assert check_sentence(echo, PASSAGES).reason == "prompt_echo"
    ramble = "Der Ausweis kostet 37 Euro und " + "man kann ihn beantragen und " * 12 + "[1]."
    assert check_sentence(ramble, PASSAGES).reason == "too_long"


def test_citation_parsing() -> None:
    assert extract_citations("A [x, y]. B [Quelle: z]") == ["x", "y", "z"]
    assert strip_citations("Kostet 37 Euro [x] .") == "Kostet 37 Euro."


def test_fact_matching_normalises_amounts_and_words() -> None:
    assert contains_fact("Der Ausweis kostet 37,00 Euro.", "37 Euro")
    assert not contains_fact("Der Ausweis kostet 73 Euro.", "37 Euro")
    assert contains_fact("Geöffnet ab 8:00 Uhr", "8 Uhr")
    assert contains_fact("Bringen Sie ein biometrisches Passfoto mit", "biometrisches Passfoto")
    assert not contains_fact("Bringen Sie Ihren Ausweis mit", "biometrisches Passfoto")


def test_sentence_splitting_keeps_abbreviations_ordinals_and_times() -> None:
    text = "Bringen Sie z. B. ein Foto mit. Termine gibt es ab dem 1. März um 8.30 Uhr! Noch Fragen?"
    assert split_sentences(text) == [
        "Bringen Sie z. B. ein Foto mit.",
        "Termine gibt es ab dem 1. März um 8.30 Uhr!",
        "Noch Fragen?",
    ]
    cited_after = "Er kostet 37 Euro. [a] Bringen Sie ein Foto mit. [a, b]"
    assert split_sentences(cited_after) == ["Er kostet 37 Euro. [a]", "Bringen Sie ein Foto mit. [a, b]"]
    splitter = SentenceSplitter()
    released = [
        s
        for token in ["Der Ausweis ", "kostet 37 Euro.", " Bringen", " Sie ein Foto mit."]
        for s in splitter.feed(token)
    ]
    assert released == ["Der Ausweis kostet 37 Euro."]
    assert splitter.flush() == ["Bringen Sie ein Foto mit."]


@pytest.mark.parametrize(
    ("text", "fact_type", "fits"),
    [
        ("Er kostet 37 Euro.", "cost", True),
        ("Das ist kostenlos.", "cost", True),
        ("Die Beglaubigung ist gebührenfrei.", "cost", True),
        ("Sie beantragen ihn im Bürgerbüro.", "cost", False),
        ("Es dauert etwa 4 Wochen.", "duration", True),
        ("Die Herstellung dauert drei bis vier Wochen.", "duration", True),
        ("Sie bekommen ihn sofort.", "duration", True),
        ("Er kostet 37 Euro.", "duration", False),
        ("Montags bis freitags von 8 bis 12 Uhr.", "hours", True),
        ("Samstags ist geschlossen.", "hours", True),
        ("Es ist im Rathaus.", "hours", False),
        ("Sie erreichen es unter 0 1 2 3, 4 5 6 7 8, 1 0.", "contact", True),
        ("Schreiben Sie an buergerbuero@musterstadt.example.", "contact", True),
        ("Rufen Sie das Bürgerbüro an.", "contact", False),
        ("Spätestens 2 Wochen vorher.", "deadline", True),
        ("Bis zum 15. Mai.", "deadline", True),
        ("Das Bürgerbüro ist im Rathaus, Marktplatz 1.", "place", True),
        ("Bringen Sie Ihr Passfoto mit.", "documents", True),  # no checkable value: always fits
    ],
)
def test_an_answer_must_state_a_value_of_the_asked_kind(text: str, fact_type: str, fits: bool) -> None:
    assert verify.fits_question_type(text, fact_type) is fits
