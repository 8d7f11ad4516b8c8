"""German normalisation: the spellings callers, Whisper and pages use for the same thing meet in one token."""

from __future__ import annotations

import pytest

from knowledge.normalize import Normalizer, colloquial_terms, parse_number_word, stem, words
from knowledge.textfold import fold_word


def test_umlaut_spellings_fold_to_one_form() -> None:
    assert (
        fold_word("Führungszeugnis")
        == fold_word("Fuehrungszeugnis")
        == fold_word("Fuhrungszeugnis")
        == "fuhrungszeugnis"
    )
    assert fold_word("Straße") == "strasse"
    # "ue" after a vowel is not an umlaut: Steuer stays Steuer.
    assert fold_word("Steuer") == "steuer"
    normalizer = Normalizer()
    assert normalizer.tokens("Führungszeugnis") == normalizer.tokens("Fuehrungszeugnis")


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("null", 0),
        ("eins", 1),
        ("zwoelf", 12),
        ("neunzehn", 19),
        ("siebenunddreißig", 37),
        ("hundert", 100),
        ("hundertundeins", 101),
        ("zweihundertfünfzig", 250),
        ("zweitausendfünfundzwanzig", 2025),
        ("neuntausendneunhundertneunundneunzig", 9999),
    ],
)
def test_spoken_numbers_become_digits(word: str, value: int) -> None:
    assert parse_number_word(fold_word(word)) == value
    assert words(f"das kostet {word} Euro") == ["das", "kostet", str(value), "euro"]


@pytest.mark.parametrize(
    "word", ["ein", "eine", "einsam", "hundertfoo", "undzwanzig", "zehntausend", "ausweis"]
)
def test_words_that_are_not_numbers_stay_words(word: str) -> None:
    assert parse_number_word(fold_word(word)) is None


def test_compounds_are_split_against_the_index_vocabulary() -> None:
    normalizer = Normalizer(Normalizer.vocabulary_of(["Personalausweis", "Verlängerung des Ausweises"]))
    tokens = normalizer.tokens("Personalausweisverlängerung")
    assert stem("personalausweis") in tokens
    assert stem("verlangerung") in tokens
    assert stem("ausweis") in tokens


def test_asr_split_compound_is_rejoined_on_the_query_side() -> None:
    normalizer = Normalizer(Normalizer.vocabulary_of(["Personalausweis beantragen"]))
    assert stem("personalausweis") in normalizer.tokens("mein Personal Ausweis ist weg")
    assert normalizer.embedding_query("mein Personal Ausweis") == "mein Personal Ausweis (personalausweis)"


def test_colloquial_words_expand_only_on_the_query_side() -> None:
    query_side = Normalizer()
    index_side = Normalizer(expand_synonyms=False)
    assert stem("personalausweis") in query_side.tokens("Ich brauche einen neuen Perso")
    assert stem("personalausweis") not in index_side.tokens("Ich brauche einen neuen Perso")
    assert stem("verwarnungsgeld") in query_side.tokens("Ich hab ein Knöllchen bekommen")
    assert "personalausweis" in query_side.embedding_query("neuer Perso").lower()
    assert query_side.embedding_query("Wann ist das Bürgerbüro auf?") == "Wann ist das Bürgerbüro auf?"


def test_stop_words_are_dropped_and_inflections_meet() -> None:
    normalizer = Normalizer()
    assert normalizer.tokens("ich habe eine Frage zu der") == [stem("frage")]
    assert stem("anmeldung") == stem("anmelden")
    assert stem(fold_word("Einbürgerung")) == stem(fold_word("einbürgern"))
    assert stem("37") == "37"


def test_split_works_after_the_parts_were_seen_alone() -> None:
    normalizer = Normalizer(["perso", "ausweis"])
    normalizer.tokens("Ausweis")  # the splitter has now seen "ausweis" as a whole word
    assert normalizer.splitter.split("persoausweis") == ["perso", "ausweis"]


def test_one_typo_in_a_long_unknown_word_finds_the_index_word() -> None:
    normalizer = Normalizer(
        Normalizer.vocabulary_of(["Sperrmüll abholen", "Hundesteuer zahlen", "Hausnummer"])
    )
    assert normalizer.near_words(fold_word("Sperrmühl")) == ["sperrmull"]
    assert stem("hundesteuer") in normalizer.tokens("Hundesteur")
    assert normalizer.near_words("hausnumer") == ["hausnummer"]
    assert normalizer.near_words("zahlen") == []  # short words are not guessed
    assert normalizer.near_words("hundekuchen") == []  # nothing close enough
    assert Normalizer(["sperrmull"], expand_synonyms=False).tokens("sperrmuhl") == ["sperrmuhl"]  # index side


def test_split_words_and_separable_verbs_are_rejoined_into_index_words() -> None:
    normalizer = Normalizer(
        Normalizer.vocabulary_of(["Wohnsitz ummelden", "Gewerbe abmelden", "Hundesteuer"])
    )
    assert stem("ummelden") in normalizer.tokens("kostet das um melden was")  # "um" is a stop word on its own
    assert stem("hundesteuer") in normalizer.tokens("wie viel hunde steuer")
    assert stem("abmelden") in normalizer.tokens("wie melde ich das gewerbe ab")  # particle at the clause end
    index_side = Normalizer(expand_synonyms=False)
    assert stem("ummelden") not in index_side.tokens("kostet das um melden")
    assert not [t for t in normalizer.tokens("ich melde das gewerbe ab") if t.startswith("abgewerb")]


def test_an_unknown_compound_takes_the_meaning_of_its_last_part() -> None:
    normalizer = Normalizer(Normalizer.vocabulary_of(["Fahrzeug zulassen", "Umzugswagen parken"]))
    assert stem("fahrzeug") in normalizer.tokens("wo melde ich meinen gebrauchtwagen an")
    assert "fahrzeug" in normalizer.embedding_query("gebrauchtwagen anmelden")
    assert stem("fahrzeug") not in normalizer.tokens("umzugswagen")  # a known word keeps its own meaning
    assert colloquial_terms("gebrauchtwagen") == colloquial_terms("wagen")
    assert colloquial_terms("wagen", known={"wagen"}) == colloquial_terms("wagen")  # own entry always counts
    assert colloquial_terms("umzugswagen", known={"umzugswagen"}) == ()
