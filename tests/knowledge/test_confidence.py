"""Retrieval confidence: curated names said in full, opening-hours questions, close calls (real Chunk objects)."""

from __future__ import annotations

from knowledge.confidence import (
    NO_OVERLAP_CAP,
    PageCandidate,
    TownLexicon,
    content_words,
    judge,
    name_evidence,
    name_match,
)
from knowledge.types import Chunk, Hit

TOWN = TownLexicon.of("Musterstadt")


def page(doc_id: str, title: str, synonyms: tuple[str, ...] = (), answer: str = "", text: str = "") -> Chunk:
    return Chunk(doc_id, doc_id, title, text or answer, answer, synonyms=synonyms)


WOHNSITZ = page(
    "wohnsitz-anmelden",
    "Wohnsitz anmelden oder ummelden",
    ("Ummelden", "Umzug melden", "Um melden"),
    "Melden Sie sich innerhalb von 2 Wochen an. Die Anmeldung ist kostenlos.",
)
GEWERBE = page(
    "gewerbe-anmelden",
    "Gewerbe anmelden",
    ("Gewerbeanmeldung", "Gewerbe ummelden", "Firma anmelden"),
    "Die Gewerbeanmeldung oder Ummeldung kostet 26 Euro.",
)
HUND_AN = page(
    "hund-an", "Hund anmelden (Hundesteuer)", ("Hundesteuer", "Hunde Steuer"), "Hundesteuer 120 Euro."
)
HUND_AB = page(
    "hund-ab", "Hund abmelden (Hundesteuer)", ("Hundesteuer abmelden", "Hund abmelden"), "Kostenlos."
)
OGS = page(
    "ogs", "Offene Ganztagsschule (OGS)", ("O G S", "Nachmittagsbetreuung"), "Anmeldung an der Schule."
)
SCHWERBEHINDERT = page(
    "schwerbehindertenausweis", "Schwerbehindertenausweis", ("Behindertenausweis",), "Das Versorgungsamt."
)
PERSO = page("perso", "Personalausweis beantragen", ("Ausweis verlängern", "Personal Ausweis"), "37 Euro.")
KONTAKT = page(
    "kontakt",
    "Bürgerbüro – Öffnungszeiten und Kontakt",
    ("Öffnungszeiten", "nachmittags geöffnet"),
    "Geöffnet montags bis freitags von 8 bis 12 Uhr.",
)
KALENDER = page(
    "kalender",
    "Abfuhrkalender",
    ("Tonne nicht geleert",),
    "Wann Restmüll und Papiertonne kommen, steht im Abfuhrkalender.",
)
TONNEN = page(
    "tonnen", "Mülltonnen bestellen", ("Papiertonne", "Tonne kaputt"), "Eine Papiertonne bestellen."
)


def candidate(chunk: Chunk, rank: int, bm25: int, embedding: int, cosine: float = 0.86) -> PageCandidate:
    return PageCandidate(chunk.doc_id, Hit(chunk, 1.0 / rank, bm25, embedding), rank, bm25, embedding, cosine)


def test_a_name_counts_only_when_all_its_words_were_said() -> None:
    assert name_match("was kostet so ne ummeldung", WOHNSITZ, TOWN) == 1.0  # "Ummelden"
    assert (
        name_match("was kostet so ne ummeldung", GEWERBE, TOWN) == 0.0
    )  # "Gewerbe ummelden": Gewerbe not said
    assert name_evidence("was kostet so ne ummeldung", GEWERBE, TOWN).said_in_part  # ... but its ummelden was


def test_split_words_spelled_letters_and_separable_verbs_are_put_back() -> None:
    assert (
        name_match("wie viel hunde steuer zahlt man", HUND_AN, TOWN) == 2.0
    )  # "Hundesteuer" from "hunde steuer"
    assert name_match("kostet das um melden was", WOHNSITZ, TOWN) == 2.0  # "Ummelden" from "um melden"
    assert name_match("wie melde ich mein kind für die o g s an", OGS, TOWN) == 3.0  # "OGS" spelled
    assert name_match("melde ich den hund online ab", HUND_AB, TOWN) > name_match(
        "melde ich den hund online ab", HUND_AN, TOWN
    )


def test_a_longer_compound_than_the_name_counts_half() -> None:
    # "Ausweis verlängern" is inside "Behindertenausweis verlängern" only in part; "Personal Ausweis" covers
    # all of "Personalausweis".
    assert name_match("behindertenausweis verlängern", PERSO, TOWN) == 1.5
    assert name_match("personalausweis", PERSO, TOWN) == 1.0
    assert name_match("behindertenausweis verlängern", SCHWERBEHINDERT, TOWN) == 1.0
    pages = [candidate(SCHWERBEHINDERT, 1, 1, 1), candidate(PERSO, 2, 2, 2)]
    assert judge("behindertenausweis verlängern", pages, TOWN)[0][0].doc_id == "schwerbehindertenausweis"


def test_the_page_the_caller_named_beats_one_named_with_a_qualifier() -> None:
    # Both retrievers put "Gewerbe anmelden" first (it says "kostet"), but the caller named "Ummeldung".
    pages = [candidate(GEWERBE, 1, 1, 1), candidate(WOHNSITZ, 2, 2, 2)]
    ordered, confidence, close_call = judge("was kostet so ne ummeldung", pages, TOWN)
    assert ordered[0].doc_id == "wohnsitz-anmelden" and not close_call
    assert confidence >= 0.5


def test_a_name_does_not_override_agreeing_retrievers_on_a_different_word() -> None:
    # "Papiertonne" names the bins page, but "wann kommt" asks for the calendar both retrievers chose.
    pages = [candidate(KALENDER, 1, 1, 1), candidate(TONNEN, 2, 2, 2)]
    ordered, _, _ = judge("wann kommt die papiertonne", pages, TOWN)
    assert ordered[0].doc_id == "kalender"


def test_a_disputed_first_page_gives_way_to_a_named_one() -> None:
    pages = [candidate(HUND_AB, 1, 1, 2), candidate(HUND_AN, 2, 2, 1)]
    ordered, confidence, _ = judge("wie viel hunde steuer zahlt man für einen hund", pages, TOWN)
    assert ordered[0].doc_id == "hund-an" and confidence >= 0.5


def test_opening_hours_need_a_page_that_states_times() -> None:
    named = [candidate(OGS, 1, 2, 1), candidate(KONTAKT, 2, 1, 5)]
    ordered, confidence, _ = judge("habt ihr donnerstags nachmittags offen", named, TOWN)
    assert ordered[0].doc_id == "kontakt" and confidence >= 0.5
    no_times = [candidate(KALENDER, 1, 1, 1, cosine=0.9)]
    assert judge("wann hat der kalender offen", no_times, TOWN)[1] <= NO_OVERLAP_CAP
    assert judge("wo steht der kalender", no_times, TOWN)[1] > NO_OVERLAP_CAP


def test_a_close_call_that_a_name_decides_is_answered() -> None:
    parking = page(
        "parkausweis-schwerbehinderte",
        "Parkausweis für Menschen mit Schwerbehinderung",
        ("Schwerbehinderten Parkausweis",),
        "Den Schwerbehindertenausweis selbst stellt der Kreis aus.",
    )
    pages = [candidate(parking, 1, 1, 2), candidate(SCHWERBEHINDERT, 2, 2, 1)]
    ordered, _, close_call = judge("schwerbehindertenausweis beantragen", pages, TOWN)
    assert ordered[0].doc_id == "schwerbehindertenausweis" and not close_call


def test_the_town_lexicon_belongs_to_the_engine_that_built_it() -> None:
    """Two engines for two towns in one process: neither drops the other's town name from the topic words."""
    musterstadt, beispielheim = TownLexicon.of("Musterstadt"), TownLexicon.of("Bad Beispielheim")
    question = "Hundesteuer in Musterstadt oder Beispielheim"
    assert content_words(question, musterstadt) == ["hundesteuer", "beispielheim"]
    assert content_words(question, beispielheim) == ["hundesteuer", "musterstadt"]
    assert content_words(question, TownLexicon()) == ["hundesteuer", "musterstadt", "beispielheim"]
    # Curated names drop the town's words too, and their cache keeps the two towns apart.
    named = page("musterstadt-info", "Musterstadt Info")
    assert name_match("musterstadt info", named, beispielheim) > name_match(
        "musterstadt info", named, musterstadt
    )
