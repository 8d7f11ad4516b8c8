"""Fact selection without a model: question types, fact units of a page, and the unit that answers."""

from __future__ import annotations

import pytest

from knowledge import facts
from knowledge.facts import FactType, classify, fact_sentences, fact_units, question_type, select_facts
from knowledge.types import Chunk

PASS_PAGE = Chunk(
    id="reisepass-beantragen",
    doc_id="reisepass-beantragen",
    title="Reisepass beantragen",
    spoken_answer="Den Reisepass beantragen Sie persönlich mit Termin im Bürgerbüro. Er kostet 70 Euro.",
    text=(
        "Unterlagen\n\n"
        "- bisheriger Reisepass oder Personalausweis\n"
        "- ein aktuelles biometrisches Passfoto\n"
        "- bei Minderjährigen: Zustimmung beider Sorgeberechtigten\n\n"
        "Kosten\n\n"
        "- ab 24 Jahren: 70 Euro (Gültigkeit 10 Jahre)\n"
        "- unter 24 Jahren: 37,50 Euro (Gültigkeit 6 Jahre)\n"
        "- Express-Zuschlag: 32 Euro\n\n"
        "Ablauf\n\n"
        "Termin online unter www.musterstadt.example/termin oder über die Zentrale 0123 45678-0. Die normale "
        "Herstellung dauert etwa 4 Wochen, das Express-Verfahren wenige Werktage.\n\n"
        "Hinweise\n\n"
        "Bürgerbüro im Rathaus, Erdgeschoss: montags bis freitags 8 bis 12 Uhr, donnerstags zusätzlich 14 bis "
        "18 Uhr. Beglaubigungen gibt es auch ohne Termin."
    ),
)
GRAVE_PAGE = Chunk(
    id="friedhof",
    doc_id="friedhof",
    title="Friedhof und Grabstellen",
    text=(
        "Grabarten und Gebühren\n\n"
        "- Reihengrab (Erdbestattung), 25 Jahre: 1.450 Euro\n"
        "- Urnenreihengrab, 25 Jahre: 950 Euro\n\n"
        "Hinweise\n\n"
        "Die Friedhöfe sind von März bis Oktober von 7 bis 20 Uhr, von November bis Februar von 8 bis 17 Uhr "
        "geöffnet."
    ),
)
BATH_PAGE = Chunk(
    id="hallenbad",
    doc_id="hallenbad",
    title="Hallenbad",
    text=(
        "Öffnungszeiten\n\n"
        "- dienstags bis freitags: 7 bis 21 Uhr\n"
        "- samstags und sonntags: 8 bis 18 Uhr\n"
        "- montags geschlossen\n"
        "Ein Freibad gibt es in Musterstadt nicht."
    ),
)


@pytest.mark.parametrize(
    ("question", "fact_type"),
    [
        ("was kostet n neuer perso", FactType.COST),
        ("wie viel muss ich für die hundesteuer zahlen", FactType.COST),
        ("wie lange dauert ein reisepass", FactType.DURATION),
        ("wie lange ist der personal ausweis gültig", FactType.DURATION),
        ("bis wann muss ich mich ummelden", FactType.DEADLINE),
        ("wie lange vorher muss ich das halteverbot beantragen", FactType.DEADLINE),
        ("wann hat das bürgerbüro offen", FactType.HOURS),
        ("bis wann ist der friedhof im winter offen", FactType.HOURS),
        ("wie oft wird die gelbe tonne geleert", FactType.HOURS),
        ("wo ist die stadtbücherei", FactType.PLACE),
        ("telefonnummer vom tiefbauamt", FactType.CONTACT),
        ("wie ist die email vom bürgerbüro", FactType.CONTACT),
        ("welche unterlagen brauch ich fürs anwohnerparken", FactType.DOCUMENTS),
        ("was muss ich mitbringen", FactType.DOCUMENTS),
        ("ab welchem alter muss ich den welpen anmelden", FactType.ELIGIBILITY),
        ("wer ist für die kfz steuer zuständig", FactType.RESPONSIBLE),
        ("wo beantrage ich wohngeld", FactType.RESPONSIBLE),
        ("wie beantrage ich einen reisepass", FactType.HOWTO),
        ("ich hab n knöllchen bekommen wie bezahl ich das", FactType.HOWTO),
        ("was passiert wenn ich mich zu spät anmelde", FactType.COST),
        ("ich brauche einen neuen reisepass", FactType.GENERAL),
    ],
)
def test_question_types(question: str, fact_type: FactType) -> None:
    assert question_type(question) == fact_type


@pytest.mark.parametrize(
    ("question", "yes_no"),
    [
        ("Brauche ich einen Termin?", True),
        ("ist das kostenlos", True),
        ("gibts noch kinderreisepässe", True),
        ("ich bin ärztin muss ich da ein gewerbe anmelden", True),
        ("was muss ich mitbringen", False),
        ("ich kann meinen termin morgen nicht wahrnehmen wie sag ich ab", False),
        ("wann hat das bürgerbüro auf", False),
    ],
)
def test_yes_no_questions(question: str, yes_no: bool) -> None:
    assert classify(question).yes_no is yes_no


def test_numbers_as_callers_say_them() -> None:
    question = classify("was kostet die kita wenn wir über hunderttausend verdienen")
    assert 100000 in question.numbers and ("uber", 100000) in question.bounds
    assert 10 in classify("was kostet ne zehnerkarte").numbers
    assert 24 in classify("unter vierundzwanzig").numbers


def test_a_page_is_cut_into_items_sentences_and_curated_sentences() -> None:
    units = fact_units(PASS_PAGE)
    kinds = [(u.kind, u.heading, u.text) for u in units]
    assert ("curated", "", "Er kostet 70 Euro.") in kinds
    assert ("item", "Kosten", "unter 24 Jahren: 37,50 Euro (Gültigkeit 6 Jahre)") in kinds
    assert (
        "sentence",
        "Ablauf",
        "Termin online unter www.musterstadt.example/termin oder über die Zentrale 0123 45678-0.",
    ) in kinds
    documents = [u for u in units if u.heading == "Unterlagen"]
    assert len(documents) == 3 and len({u.group for u in documents}) == 1
    fee = next(u for u in units if u.text.startswith("unter 24"))
    assert FactType.COST in fee.strong and FactType.DURATION in fee.types
    age_only = next(u for u in units if u.text.startswith("bei Minderjährigen"))
    assert FactType.DURATION not in age_only.types
    assert all(
        u.key == facts.unit_key(u.embed_text) and "Reisepass beantragen" in u.embed_text for u in units
    )


@pytest.mark.parametrize(
    ("question", "page", "expected"),
    [
        ("was kostet ein urnengrab", GRAVE_PAGE, "Ein Urnenreihengrab kostet 950 Euro für 25 Jahre."),
        ("wann haben die friedhöfe im sommer geöffnet", GRAVE_PAGE, "7 bis 20 Uhr"),
        ("was kostet der pass wenn man unter vierundzwanzig ist", PASS_PAGE, "37,50 Euro"),
        ("was kostet der pass für meine tochter die ist neunzehn", PASS_PAGE, "37,50 Euro"),
        ("wie lange gilt der reisepass ab vierundzwanzig", PASS_PAGE, "Gültigkeit 10 Jahre"),
        ("wie lange dauert ein reisepass", PASS_PAGE, "dauert etwa 4 Wochen"),
        ("was kostet ein reisepass", PASS_PAGE, "Er kostet 70 Euro."),
        ("wann hat das hallenbad am wochenende auf", BATH_PAGE, "samstags und sonntags von 8 bis 18 Uhr"),
    ],
)
def test_the_unit_that_states_the_asked_fact_is_chosen(question: str, page: Chunk, expected: str) -> None:
    selection = select_facts(question, [page])
    assert selection.found
    assert expected in " ".join(fact_sentences(selection))


def test_a_documents_question_gets_the_whole_list() -> None:
    sentences = fact_sentences(select_facts("was brauch ich für den reisepass", [PASS_PAGE]))
    assert sentences[0].startswith("Bitte bringen Sie mit: bisheriger Reisepass oder Personalausweis, ")
    assert "Zustimmung beider Sorgeberechtigten" in " ".join(sentences)


@pytest.mark.parametrize(
    ("question", "page", "polarity"),
    [
        ("brauche ich für eine beglaubigung einen termin", PASS_PAGE, False),
        ("hat das hallenbad montags auf", BATH_PAGE, False),
        ("hat das hallenbad samstags auf", BATH_PAGE, True),
        ("gibt es ein freibad", BATH_PAGE, False),
        ("muss ich nicht vorher einen termin machen", PASS_PAGE, None),  # a negated question: no plain yes/no
    ],
)
def test_yes_no_answers_say_ja_or_nein_only_when_the_page_says_so(
    question: str, page: Chunk, polarity: bool | None
) -> None:
    selection = select_facts(question, [page])
    assert selection.polarity is polarity
    if polarity is not None:
        assert fact_sentences(selection)[0].startswith("Ja" if polarity else "Nein")


def test_no_unit_of_the_asked_kind_means_not_known() -> None:
    """A cost question on a page without any fee must not be answered with the opening hours."""
    selection = select_facts("was kostet das hallenbad", [BATH_PAGE])
    assert not selection.found and fact_sentences(selection) == []
    assert not select_facts("telefonnummer vom hallenbad", [BATH_PAGE]).found


def test_a_follow_up_keeps_the_asked_type() -> None:
    selection = select_facts("und für kinder unter vierundzwanzig", [PASS_PAGE], fact_type=FactType.COST)
    assert selection.type == FactType.COST and "37,50 Euro" in " ".join(fact_sentences(selection))
