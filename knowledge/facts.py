"""Fact-level answers: what the caller asks for, and which sentence or list item of the page says it.

The curated "Telefonantwort" of a page answers the general question ("Wie beantrage ich einen Reisepass?"), not
"Wie lange dauert das?" or "Was kostet der für Kinder?". Here:

* :func:`classify` types the question (:class:`FactType`: cost, duration, deadline, opening hours or date, place,
  phone or e-mail, documents, eligibility, who is responsible, how to apply, general), notes whether it is a
  yes/no question, and keeps the words that say *what exactly* is asked;
* :func:`fact_units` cuts a page into *fact units* (each list item with its section heading, each sentence of the
  body, each sentence of the curated answer) and notes which kinds of fact each unit can state;
* :func:`select_facts` picks the unit(s) of the asked kind that fit the question best: the question's words
  weighted by how rare they are on the page (BM25-like, inside the page), numbers the caller said, what the
  question is after (validity or processing time, consequences ...), and the multilingual-e5 cosine between the
  question (the retriever's query vector) and each unit (embedded at ingest, keyed by :func:`unit_key`); a yes/no
  question also gets whether the page says yes or no.

When no unit of the asked kind exists the selection is empty: the engine then says that this detail is not known
and offers the hand-off, instead of speaking another fact. :func:`fact_sentences` renders a selection in written
form; :mod:`knowledge.spoken` makes it speakable. Pure functions over chunks and vectors.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np

from knowledge import guard, normalize, spoken
from knowledge.confidence import TownLexicon, content_words
from knowledge.sentences import split_sentences
from knowledge.textfold import fold_text, fold_word
from knowledge.types import Chunk


def _words(text: str) -> tuple[str, ...]:
    """The words of a space-separated list written as one string (lexicons stay readable)."""
    return tuple(text.split())


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class FactType(StrEnum):
    """What a question asks for (the value of ``fact_type`` in the evaluation sets)."""

    COST = "cost"
    DURATION = "duration"
    DEADLINE = "deadline"
    HOURS = "hours"  # opening hours, times of day, dates, how often
    PLACE = "place"
    CONTACT = "contact"  # phone number, e-mail
    DOCUMENTS = "documents"
    ELIGIBILITY = "eligibility"  # conditions, who may, how many, from what age
    RESPONSIBLE = "responsible"
    HOWTO = "howto"
    GENERAL = "general"


# Types the curated spoken answer is written for.
CURATED_TYPES = frozenset((FactType.HOWTO, FactType.GENERAL))


# ---- the question --------------------------------------------------------------------------------------------

# Patterns over fold_text()-ed questions, checked in this order (the first that matches wins).
_OPENING = (
    r"\b(offen|geoffnet|auf haben|aufhaben|aufgemacht|zu haben|geschlossen|besetzt)\b|offnungszeit|sprechzeit"
)
_ASKS_OPEN = re.compile(rf"{_OPENING}|\b(hat|haben|habt|ist|sind)\b.{{0,50}}\bauf\W*$")
_QUESTION_TYPES: tuple[tuple[FactType, re.Pattern[str]], ...] = (
    (
        FactType.COST,
        _rx(
            r"\bwas (passiert|ist|geschieht)\b.{0,12}\bwenn\b.{0,60}\b(zu spat|nicht rechtzeitig|keine|nicht|ohne)\b"
        ),
    ),
    (FactType.HOWTO, _rx(r"\bwie (be)?zahl")),
    (FactType.RESPONSIBLE, _rx(r"\bzustandig", r"\bwelche[sr]? (amt|behorde|stelle)\b")),
    (
        FactType.DEADLINE,
        _rx(r"\bwie lange vorher\b", r"\bwie (fruh|spat|weit im voraus)\b", r"\bim voraus\b"),
    ),
    (
        FactType.HOURS,
        _rx(
            r"\bwie lange (hat|haben|habt|ist|sind)\b.{0,40}\b(offen|geoffnet|auf)\W*$",
            r"\bbis wann\b.{0,40}(" + _OPENING + r"|\bunterwegs\b)",
            r"\bwann\b.{0,40}\b(erreichbar|besetzt)\b",
        ),
    ),
    (
        FactType.DEADLINE,
        _rx(
            r"\bbis wann\b",
            r"\bfrist",
            r"\bspatestens\b",
            r"\bfruhestens\b",
            r"\brechtzeitig\b",
            r"\bwie (lange|viel zeit) (hab|habe|hat|haben|hatte)\b.{0,20}\bzeit\b",
            r"\bwann (muss|musst|mussen|sollte|soll|sollen)\b",
            r"\bfallig\b",
            r"\b(ab )?wann darf\b",
        ),
    ),
    (
        FactType.DURATION,
        _rx(
            r"\bwie lange\b",
            r"\bwie lang\b",
            r"\bdauert?\b",
            r"\bgultig",
            r"\bwie schnell\b",
            r"\bbearbeitungszeit",
            r"\bfur wie lange\b",
            r"\bwann ist .{0,30}\bfertig\b",
        ),
    ),
    (
        FactType.COST,
        _rx(
            r"\bkost",
            r"\bteuer",
            r"\bpreis",
            r"\bgebuhr",
            r"\bzahl(e|en|t|st)?\b",
            r"\bbezahl",
            r"\bblechen\b",
            r"\bumsonst\b",
            r"\bgratis\b",
            r"\bwie hoch\b",
            r"\beintritt\b",
            r"\bwas (kriegt|kriegen|bekommt|bekommen) (man|wir|die)\b.{0,30}\bals\b",
        ),
    ),
    (FactType.HOURS, _ASKS_OPEN),
    (
        FactType.CONTACT,
        _rx(
            r"telefonnummer|\btelefon\b",
            r"\bnummer\b",
            r"\banrufen\b",
            r"\bruf(e)? ich\b.{0,20}\ban\b",
            r"\be ?-?mail",
            r"\bmail ?adresse",
            r"\bdurchwahl",
            r"\bhotline\b",
            r"\berreiche ich\b",
            r"\bstorungsnummer",
        ),
    ),
    (
        FactType.DOCUMENTS,
        _rx(
            r"\bunterlagen\b",
            r"\bmitbringen\b",
            r"\bmitnehmen\b",
            r"\bdokumente\b",
            r"\bpapiere\b",
            r"\bnachweise?\b",
            r"\bvorlegen\b",
            r"\bwas (brauch|brauche|brauchen|benotige|benotigen|muss)\b(?!.{0,40}\b(tun|machen|angeben|sagen|nennen)\b)",
            r"\bwelche .{0,30}\bbrauch",
        ),
    ),
    (
        FactType.RESPONSIBLE,
        _rx(
            r"\bzustandig",
            r"\bwelche[sr]? (amt|behorde|stelle)\b",
            r"\ban wen\b",
            r"\bbei wem\b",
            r"\bwer (ist|macht|meldet|fullt|entscheidet|stellt|bearbeitet|rechnet|kummert|hat|bekommt den)\b",
            r"\bwo (beantrag|mach|meld|bekomm|krieg|hol|stell|geb|reich)",
            r"\bwo (muss|kann|soll|musst) (ich|man) .{0,30}\b(melden|beantragen|anmelden|abmelden|hin|machen)\b",
        ),
    ),
    (
        FactType.PLACE,
        _rx(
            r"\bwo\b",
            r"\bwohin\b",
            r"\badresse\b",
            r"\banschrift\b",
            r"\bwelche(m|r)? (strasse|zimmer|etage|stock)\b",
        ),
    ),
    (
        FactType.ELIGIBILITY,
        _rx(
            r"\bab wann\b(?!.{0,30}\b(offen|auf|geoffnet)\b)",
            r"\bab welche(m|n)\b",
            r"\bab wie viel",
            r"\bbis zu welche",
            r"\bwer (kann|darf|bekommt|kriegt)\b",
            r"\banspruch\b",
            r"\bvoraussetzung",
            r"\bberechtigt\b",
            r"\bwie viele\b",
            r"\bwie viel .{0,30}\b(darf|kann|passen)\b",
            r"\bwie (gross|alt|schwer|hoch) darf\b",
            r"\bwelches merkzeichen\b",
        ),
    ),
    (
        FactType.HOURS,
        _rx(
            r"\bwann\b",
            r"\bwie oft\b",
            r"\ban welche(m|n) tag",
            r"\bwelche(n)? (tage|monat|monaten|uhrzeit)\b",
            r"\bwie viel uhr\b",
            r"\bnachtruhe\b",
        ),
    ),
    (
        FactType.HOWTO,
        _rx(
            r"\bwie (beantrag|kann|melde|mach|bekomm|krieg|geht|funktioniert|lauft|bestell|sperr|zahl)",
            r"\bwas (muss|soll|kann) ich .{0,40}\b(tun|machen|angeben)\b",
            r"\bwas mach ich\b",
            r"\bangeben\b",
            r"\bablauf\b",
        ),
    ),
)

# A yes/no question asks with its verb ("Brauche ich ...", "Ist das kostenlos?", "Gibt's noch ...").
_YES_NO_VERBS = frozenset(
    _words(
        "brauch brauche brauchst braucht brauchen muss musst mussen kann kannst konnen darf darfst durfen "
        "ist sind bin gibt gibts gibt's hat haben habt hast kostet kosten bekomme bekommt bekommen krieg kriege "
        "kriegt kriegen nimmt nehmt nehmen geht gilt gelten werden wird soll sollte sollen reicht reichen "
        "passt passen zahlt zahle zahlen akzeptiert akzeptieren"
    )
)
_FILLERS = frozenset(
    _words("und also aha ah ahm ahem hm hmm hallo ja na gut okay ok sag sagen sie mal bitte frage")
)
_W_WORDS = frozenset(
    _words("was wie wo wann wer wen wem welche welcher welches welchen welchem warum wieso weshalb wohin")
)
_SUBJECTS = frozenset(_words("ich man wir es das ihr sie er du"))
_NEGATED_QUESTION = re.compile(r"\b(nicht|kein|keine|keinen|ohne)\b")


@dataclass(frozen=True)
class Question:
    """A caller's question as the fact selection sees it."""

    text: str
    type: FactType
    yes_no: bool
    focus: tuple[str, ...]  # folded words that say *what exactly* is asked (asking words removed)
    numbers: frozenset[int]  # numbers the caller said ("über hunderttausend" → 100000)
    # what the focus words mean in the pages' words ("Perso" → "personalausweis"), weighed half
    expansions: tuple[str, ...] = ()
    # numbers with their qualifier: ("unter", 24) for "unter vierundzwanzig"
    bounds: frozenset[tuple[str, int]] = frozenset()
    parts: tuple[str, ...] = ()  # the rest of compounds that start with the page's name (see Topic.split)


def question_type(text: str) -> FactType:
    """What the question asks for (see :class:`FactType`); GENERAL when nothing specific."""
    folded = fold_text(text)
    for fact_type, pattern in _QUESTION_TYPES:
        if pattern.search(folded):
            return fact_type
    return FactType.GENERAL


def is_yes_no(text: str) -> bool:
    """Does the question ask with its verb first ("Brauche ich ...", "ich bin Ärztin, muss ich ..."), so that
    "Ja"/"Nein" answers it? Not when a question word comes first ("was muss ich mitbringen")."""
    words = re.findall(r"[a-z']+", fold_text(text))
    while words and words[0] in _FILLERS:
        words.pop(0)
    if words and words[0] in _YES_NO_VERBS:
        return True
    for position, word in enumerate(words[:-1]):
        if word in _W_WORDS:
            return False
        inverted = word in _YES_NO_VERBS and words[position + 1] in _SUBJECTS
        if position and inverted and words[position - 1] not in _SUBJECTS:  # "muss ich", not "ich kann es"
            return True
    return False


# Words that ask rather than say what about (their 5-letter stems).
_ASKING_STEMS = frozenset(
    _words(
        "koste teuer preis gebuh zahle zahlt bezah blech dauer lange wann gulti schne telef numme mail adres "
        "anrufen mitbr brauc benot krieg bekom gibts musse konne durfe welch wievi viele passi "
        "offen geoff offnu zusta erreic wohin mache mach hole frage weiss sagen liebe eigent genau ungef "
        "ungefa ehrli uberh sowas irgen trotz frueh fruhe spate passt etwas bring komme gehen lasse funkt angeb"
    )
)
_STOP = normalize.STOP_WORDS | frozenset(
    _words(
        "nen ne n nem ner wat dat gibts gibt's fur fuer furs fuers mal eigentlich zum vom beim ins ans aufs "
        "alte alten altes neue neuen neuer neues normale normalen normales dann denn jetzt heut heute "
        "hatte hatten habe hab hast war waren wurde wurden werde "
        "so da dort hier trotzdem noch auch schon bitte ganz extra"
    )
)
# What a caller's word means on a page: "Heiligabend" is the 24th of December, "der zweite Hund" a further one.
_FOCUS_EXPANSIONS = {
    "heiligabend": ("dezember",),
    "silvester": ("dezember",),
    "neujahr": ("januar",),
    "zweite": ("weitere", "geschwister"),
    "zweiten": ("weitere", "geschwister"),
    "zweiter": ("weitere", "geschwister"),
    "dritte": ("weitere",),
    "dritten": ("weitere",),
    "kampfhund": ("gefahrlicher",),
    "welpe": ("hund",),
    "welpen": ("hund",),
    "baby": ("babys",),
    "zusatzliche": ("weitere",),
    "zusatzlichen": ("weitere",),
}
_CITY = re.compile(guard._CITIES)
_EXPLICIT = frozenset(word for words in _FOCUS_EXPANSIONS.values() for word in words)
_HOLIDAY_NUMBERS = {"heiligabend": 24, "silvester": 31, "neujahr": 1}
# A yes/no question with "zahlen" asks about a fee only with one of these ("kann ich bar zahlen?" does not).
_FEE_WORDS = re.compile(
    r"\bkost|gebuhr|kostenlos|umsonst|gratis|\bfrei\b|\bgeld\b|\bpreis|\bteuer|\bwas\b|\bmuss\b"
)


def _tausend(word: str) -> int | None:
    """ "funfzigtausend" → 50000, "hunderttausend" → 100000 (normalize parses only below 10,000)."""
    if "tausend" not in word:
        return None
    head, _, rest = word.partition("tausend")
    thousands = 1 if head in ("", "ein", "eins") else normalize.parse_number_word(head)
    below = normalize.parse_number_word(rest.removeprefix("und")) if rest else 0
    if thousands is None or below is None or not 0 < thousands < 1000:
        return None
    return thousands * 1000 + below


_COUNTED_NUMBER = re.compile(r"(zwei|drei|vier|funf|sechs|sieben|acht|neun|zehn|elf|zwolf|zwanzig|funfzig)er")


def _numbers(text: str) -> frozenset[int]:
    numbers: set[int] = set()
    for raw in re.findall(r"\d[\d.]*\d|\d", text):
        digits = raw.replace(".", "")
        if digits.isdigit():
            numbers.add(int(digits))
    for word in re.findall(r"[a-z]+", fold_text(text)):
        counted = _COUNTED_NUMBER.match(word)  # "Zehnerkarte" is the "10er-Karte"
        if counted:
            word = counted.group(1)
        value = normalize.parse_number_word(word)
        value = _tausend(word) if value is None else value
        if value is not None and value > 1:
            numbers.add(value)
    return frozenset(numbers)


_BOUND = re.compile(
    r"\b(ab|unter|uber|bis|hochstens|mindestens|mehr als|weniger als|bis zu)\s+(\d[\d.]*|[a-z]+)(?![\d.]*\s*uhr)"
)
_BOUND_NAMES = {
    "mehr als": "uber",
    "weniger als": "unter",
    "bis zu": "bis",
    "hochstens": "bis",
    "mindestens": "ab",
}


def _bounds(text: str) -> frozenset[tuple[str, int]]:
    """("unter", 24) for "unter vierundzwanzig", ("uber", 100000) for "mehr als 100.000"."""
    bounds: set[tuple[str, int]] = set()
    for match in _BOUND.finditer(fold_text(text)):
        for number in _numbers(match.group(2)):
            bounds.add((_BOUND_NAMES.get(match.group(1), match.group(1)), number))
    return frozenset(bounds)


def _within(numbers: frozenset[int], bounds: frozenset[tuple[str, int]]) -> bool:
    """Is one of the caller's numbers inside one of a unit's ranges ("16" inside "unter 24 Jahren")?"""
    tests = {"unter": int.__lt__, "ab": int.__ge__, "uber": int.__gt__, "bis": int.__le__}
    return any(tests[kind](number, limit) for number in numbers for kind, limit in bounds if kind in tests)


def _focus_words(text: str, town: TownLexicon) -> list[str]:
    return [
        w
        for w in content_words(text, town)
        if w not in _STOP
        and w[:5] not in _ASKING_STEMS
        and not w.isdigit()
        and w not in _YES_NO_VERBS
        and normalize.parse_number_word(w) is None  # numbers are matched as numbers
    ]


_NO_TOWN = TownLexicon()


def classify(text: str, town: TownLexicon = _NO_TOWN) -> Question:
    """Type, yes/no, focus words and numbers of a question (the town's own name is no focus word)."""
    fact_type, yes_no = question_type(text), is_yes_no(text)
    folded = fold_text(text)
    if yes_no and fact_type == FactType.COST and not _FEE_WORDS.search(folded):
        fact_type = FactType.GENERAL  # "kann ich das auch bar zahlen": how, not how much
    focus = _focus_words(text, town)
    numbers = set(_numbers(text))
    expansions: list[str] = []
    for position, word in enumerate(focus):
        if word.startswith("un") and len(word) > 8:  # "unverheiratete" → "nicht verheirat..."
            focus[position] = f"nicht {normalize.stem(word[2:])}"
        if _CITY.fullmatch(word):  # "nach Köln ziehen": another town in Germany
            expansions.extend(("deutschland", "andere stadt"))
        expansions.extend(_FOCUS_EXPANSIONS.get(word, ()))
        expansions.extend(fold_word(t) for t in normalize.colloquial_terms(word) if " " not in t)
        if word in _HOLIDAY_NUMBERS:
            numbers.add(_HOLIDAY_NUMBERS[word])
    expansions = [w for w in dict.fromkeys(expansions) if w not in focus]
    return Question(
        text,
        fact_type,
        yes_no,
        tuple(dict.fromkeys(focus)),
        frozenset(numbers),
        tuple(expansions),
        _bounds(text),
    )


# ---- fact units of a page ------------------------------------------------------------------------------------

_AMOUNT = r"\d[\d.,]*\s*(?:euro|cent)\b"
_FREE = r"\b(?:kostenlos\w*|gebuhrenfrei|beitragsfrei|kostenfrei|gratis|umsonst|befreit|frei)\b"
_SPAN = (
    r"\b(?:\d+|ein|eine|einen|einem|einer|zwei|drei|vier|wenige[n]?|einige[n]?)\s+"
    r"(?:werk)?(?:tag|woche|monat|jahr|stunde|minute)"
)
_AGE = re.compile(
    r"\b(?:ab|unter|uber|von|bis zu|mit|bis|alter von)\s+\d+\s+jahren?\b|\b\d+\s+bis\s+\d+\s+jahren\b"
)
_CLOCK = r"\b\d{1,2}(?:[:.]\d{2})?\s*uhr\b|\brund um die uhr\b"
_DAY = r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|sonnabend|wochenende|feiertag)\w*"
_MONTH_NAMES = "januar|februar|marz|april|mai|juni|juli|august|september|oktober|november|dezember"
_MONTH = rf"\b(?:{_MONTH_NAMES})\b"
_DATE = rf"\b\d{{1,2}}\.\s*(?:{_MONTH_NAMES})"
_STREET = r"\w+(?:strasse|weg|platz|allee|gasse|ring|damm)\s+\d+|\bam bahnhof\s+\d+"
_PHONE = r"\b0\d{2,5}[ /]\d|@|\b116 116\b|\b11[02]\b"
_LIMIT = r"\b(?:ab|unter|uber|bis zu|bis|hochstens|mindestens|mehr als|pro|je)\s+\d"
_COUNTED = r"\d+\s+(?:jahre|jahren|gaste|gasten|personen|kubikmeter|quadratmeter|zentimeter|meter|liter)\b"

_UNIT_EVIDENCE: dict[FactType, re.Pattern[str]] = {
    FactType.COST: _rx(
        _AMOUNT,
        _FREE,
        r"\bkostet|\bkosten\b|gebuhr|\bpreis|zuschlag|aufpreis|beitrag\b|hochstbeitrag|hebesatz|\bprozent\b",
        r"verwarnungsgeld|bussgeld|erfrischungsgeld|erstattet|nach absprache|\bje nach\b|\bzahlbar\b",
    ),
    FactType.DURATION: _rx(
        _SPAN, r"\bsofort\b|\bdauert|\bdauer\b|gultig|\bgilt\b|aufbewahrt|bewilligt|ruckwirkend|\bfertig\b"
    ),
    FactType.DEADLINE: _rx(
        rf"\b(?:bis|spatestens|fruhestens|innerhalb|vorher|vor dem|vor der|nach dem|nach der|ab|fallig|"
        rf"im voraus|frist|mindestens|rechtzeitig|am abfuhrtag|zum)\b.{{0,60}}(?:{_SPAN}|{_CLOCK}|{_DATE}|{_MONTH})",
        rf"(?:{_SPAN}|{_DATE}).{{0,30}}\b(?:vorher|vor|nach|im voraus)\b",
        r"\bsofort\b|vierteljahrlich|monatlich|jahrlich|vorabend|nachsten werktag|\bablauf\b|\bendet\b",
    ),
    FactType.HOURS: _rx(
        _CLOCK,
        _DAY,
        _DATE,
        _MONTH,
        r"jede woche|alle \d+ wochen|geoffnet|geschlossen|offnungszeit|nachts|taglich|morgens|abends",
    ),
    FactType.PLACE: _rx(
        _STREET,
        r"\bzimmer \d+|\d\.\s*etage|erdgeschoss|obergeschoss|\bstock\b|rathaus|kreishaus|tiefgarage",
        r"\bsteht (im|in|auf)\b|online unter|\.example\b|www\.|\bim \w+(amt|buro|hof)\b|\bam \w+hof\b",
        r"mangelmelder|an der kasse|\bbei der \w+(stelle|beratung)\b|\bim \w+-?brief\b",
    ),
    FactType.CONTACT: _rx(_PHONE, r"telefon|e-mail|servicenummer|notruf|\banrufen\b|\brufen sie\b"),
    FactType.DOCUMENTS: _rx(
        r"mitbringen|mitzubringen|bringen sie|vorlegen|nachweis|bescheinigung|urkunde|ausweis|reisepass|passfoto",
        r"\bfoto\b|vollmacht|formular|bescheid|zeugnis|kopie|original|fahrzeugschein|aufforderung|bestatigung",
        r"mietvertrag|\biban\b|bankverbindung|versicherungsnummer|identifikationsnummer|auszug|eintragung",
        r"erlaubnis|brauchen sie|steuermarke|hundesteuermarke|\bname und adresse\b",
    ),
    FactType.ELIGIBILITY: _rx(
        _LIMIT,
        _COUNTED,
        r"\bnur\b|\bwer\b|\bwenn\b|anspruch|voraussetzung|berechtigt|\bdarf\b|\bdurfen\b|\bmuss\b|\bmussen\b",
        r"befreit|ausgenommen|\bgilt\b|volljahrig|\bkein\w*\b|merkzeichen|pflicht|geburtstag|\bbis zu\b|wohnt",
        r"\b(pro|je) (person|haushalt|termin|antrag|kind)\b|\beinen ausweis\b|\benthalten\b|\binbegriffen\b",
    ),
    FactType.RESPONSIBLE: _rx(
        r"zustandig|sache de[rs]|bearbeitet|\bstellt\b|\bregelt\b|ubernimmt|vergibt|\bzeigt\b|\bmeldet\b",
        r"\bmelden die\b|\bfullt\b|entscheidet|\bhilft\b|wenden sie sich|\bzahlt\b|\brechnet\b|verwaltet",
        r"\bzieht\b|\bnimmt\b|\bamt\b|behorde|\w+stelle\b|gericht|\bkasse\b|verein|vermieter|arbeitgeber",
        r"eigentumer|einrichtung|polizei|\bkreis\b|finanzamt|jobcenter|\bzoll\b|unternehmen|familienkasse",
        r"studierendenwerk|standesamt|burgerburo|\bselbst\b|\w+amt\b|\bagentur\b",
        r"\bsie\b[^.]{0,40}\b(bei|beim)\b",
    ),
}
# The values that make a unit a strong answer of its kind (a fee, a time, a phone number ...).
_STRONG_EVIDENCE: dict[FactType, re.Pattern[str]] = {
    FactType.COST: _rx(_AMOUNT, _FREE),
    FactType.DURATION: _rx(_SPAN, r"\bsofort\b"),
    FactType.DEADLINE: _rx(_SPAN, _CLOCK, _DATE, r"\bsofort\b|vorabend|nachsten werktag"),
    FactType.HOURS: _rx(_CLOCK, _DATE, _MONTH, r"jede woche|alle \d+ wochen"),
    FactType.PLACE: _rx(_STREET, r"\bzimmer \d+|\d\.\s*etage|erdgeschoss"),
    FactType.CONTACT: _rx(_PHONE),
    FactType.DOCUMENTS: _rx(r"mitbringen|mitzubringen|bringen sie|vorlegen|brauchen sie|benotigen sie"),
    FactType.ELIGIBILITY: _rx(_LIMIT, _COUNTED),
}
# Section headings that say what their list is about.
_HEADING_TYPES: dict[FactType, re.Pattern[str]] = {
    FactType.COST: re.compile(r"kosten|gebuhr|preis|eintritt|beitrag|\bhohe\b|zahlung"),
    FactType.DOCUMENTS: re.compile(r"unterlagen|mitbringen|mitzubringen|nachweis|dokument"),
    FactType.HOURS: re.compile(r"offnungszeit|sprechzeit|erreichbar|rhythmus|termine\b"),
    FactType.ELIGIBILITY: re.compile(r"voraussetzung|\bwer\b|anspruch"),
    FactType.RESPONSIBLE: re.compile(r"zustandig"),
    FactType.CONTACT: re.compile(r"kontakt|erreichbar"),
    FactType.PLACE: re.compile(r"kontakt|adresse|trauorte"),
    FactType.DEADLINE: re.compile(r"fristen|falligkeit"),
}
# The kinds of unit that can answer a question of each type: the first is the asked kind itself, the others
# (times for "wann", durations for deadlines ...) answer too, with a small penalty (OTHER_KIND_PENALTY).
ANSWERING_UNITS: dict[FactType, tuple[FactType, ...]] = {
    FactType.COST: (FactType.COST,),
    FactType.DURATION: (FactType.DURATION, FactType.DEADLINE),
    FactType.DEADLINE: (FactType.DEADLINE, FactType.DURATION, FactType.HOURS),
    FactType.HOURS: (FactType.HOURS, FactType.DEADLINE),
    FactType.PLACE: (FactType.PLACE,),
    FactType.CONTACT: (FactType.CONTACT,),
    FactType.DOCUMENTS: (FactType.DOCUMENTS,),
    FactType.ELIGIBILITY: (FactType.ELIGIBILITY,),
    FactType.RESPONSIBLE: (FactType.RESPONSIBLE, FactType.PLACE),
}
# Values of other kinds that make a unit a worse answer: a fee in the answer to "how long".
_TIME_KINDS = frozenset((FactType.DURATION, FactType.DEADLINE, FactType.HOURS))
_MIXED: dict[FactType, frozenset[FactType]] = {
    **{kind: frozenset((FactType.COST, FactType.CONTACT, FactType.PLACE)) for kind in _TIME_KINDS},
    FactType.COST: frozenset((FactType.CONTACT, FactType.PLACE)),
    FactType.CONTACT: frozenset((FactType.COST,)),
    FactType.PLACE: frozenset((FactType.COST,)),
}
# The values of those kinds (a fee is an amount here: "Kostenloses Servicetelefon" states no fee).
_VALUES: dict[FactType, re.Pattern[str]] = {
    FactType.COST: re.compile(_AMOUNT),
    FactType.CONTACT: re.compile(_PHONE),
    FactType.PLACE: re.compile(_STREET),
}
# What a question is after, beyond its type: (question pattern, pattern of the units that say it).
_ANY_TYPE: frozenset[FactType] = frozenset(FactType)
_Intent = tuple[re.Pattern[str], re.Pattern[str], frozenset[FactType]]


def _intent(question: str, unit: str, types: frozenset[FactType] = _ANY_TYPE) -> _Intent:
    return re.compile(question), re.compile(unit), types


_INTENTS: tuple[_Intent, ...] = (
    _intent(r"gultig|\bgilt\b|\bgelten\b", r"gultig|\bgilt\b|\bgelten\b"),
    _intent(
        r"dauert?|fertig|wie schnell|\bkommt\b|\bda ist\b|bearbeitung",
        r"dauert|\bdauer\b|fertig|herstellung|bearbeitung|\bkommt\b|schickt|sofort|\bda\b",
    ),
    _intent(r"aufheb|\bhebt\b|aufbewahr|\blager", r"aufbewahr"),
    _intent(
        r"was (passiert|ist|geschieht)\b.{0,12}\bwenn\b|zu spat|nicht rechtzeitig|verpass|vergess",
        r"verpass|nicht rechtzeitig|\bohne\b|\bfolgt\b|festgesetzt|verwarnungsgeld|bussgeld|hochstbeitrag",
    ),
    _intent(r"erreichbar|telefonisch", r"erreichbar|telefonisch"),
    _intent(r"e ?-?mail|\bmail", r"@"),
    _intent(r"telefon|nummer|anrufen|\bruf", r"\b0\d{2,5}[ /]\d|116 116"),
    _intent(r"\bonline\b|internet", r"\bonline\b|www\.|\.example\b|internet"),
    _intent(  # how often a bin is emptied, asked as "wann" or "wie oft"
        r"abgeholt|abholung|geleert|leerung|\bkommt\b.{0,30}(tonne|mull|abfuhr)|wie oft",
        r"alle \d+ wochen|jede woche|rhythmus|abfuhrtag",
        frozenset((FactType.HOURS,)),
    ),
    _intent(  # how much or how many: a counted amount ("5 Kubikmeter", "2 Sperrmüllabholungen")
        r"\bwie viele?\b|\bwie gross\b|\banzahl\b",
        rf"{_COUNTED}|{_LIMIT}|\b\d+ [a-z]{{5,}}",
        frozenset((FactType.ELIGIBILITY,)),
    ),
    _intent(  # a missed collection is reported, not awaited
        r"nicht (abgeholt|geleert|mitgenommen)",
        r"nicht (abgeholt|geleert|mitgenommen)",
    ),
    _intent(r"\bsommer\b", r"\bmarz bis oktober\b|\bsommer|\bjuni bis"),
    _intent(r"\bwinter\b", r"\bnovember bis\b|\bwinter"),
)


def _intents(question: Question, fact_type: FactType) -> list[re.Pattern[str]]:
    """The unit patterns of what the question is after."""
    folded = fold_text(question.text)
    return [unit for asks, unit, types in _INTENTS if fact_type in types and asks.search(folded)]


def _fold_heading(heading: str) -> str:
    return fold_text(heading)


@dataclass(frozen=True)
class FactUnit:
    """One list item or sentence of a page, the smallest thing the bot may say as a fact."""

    doc_id: str
    chunk_id: str
    title: str  # of the page
    text: str  # as written on the page (lines joined)
    heading: str  # the section heading above it ("" for the curated answer)
    kind: str  # "item" (of a list), "sentence" (of the body) or "curated" (of the spoken answer)
    group: int  # list number inside the page for items, -1 otherwise
    position: int
    types: frozenset[FactType]
    strong: frozenset[FactType]  # kinds whose *value* the unit states
    folded: str = field(repr=False, compare=False, default="")
    folded_heading: str = field(repr=False, compare=False, default="")
    stems: frozenset[str] = field(repr=False, compare=False, default=frozenset())
    words: frozenset[str] = field(repr=False, compare=False, default=frozenset())
    heading_words: frozenset[str] = field(repr=False, compare=False, default=frozenset())
    numbers: frozenset[int] = field(repr=False, compare=False, default=frozenset())
    bounds: frozenset[tuple[str, int]] = field(repr=False, compare=False, default=frozenset())

    @property
    def embed_text(self) -> str:
        """What the embedding model sees for this unit (the ``passage:`` side of e5): with the page title, so
        that a short item ("5 Euro.") is compared with the question about its page like a long sentence."""
        return f"{self.title} – {self.heading}: {self.text}" if self.heading else f"{self.title}: {self.text}"

    @property
    def key(self) -> str:
        return unit_key(self.embed_text)


def unit_key(embed_text: str) -> str:
    """The id of a unit's embedding: the hash of the text it was embedded from."""
    return hashlib.sha1(embed_text.encode("utf-8")).hexdigest()


def _is_heading(block: str, has_next: bool) -> bool:
    line = block.strip()
    return (
        has_next
        and "\n" not in line
        and not line.startswith(("-", "*", "•"))
        and len(line) <= 70
        and len(line.split()) <= 8
        and not line.endswith((".", ",", ";", ":"))
    )


_ITEM_START = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")


def _blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(heading, kind, pieces) per paragraph: kind "list" (pieces = items) or "prose" (pieces = lines)."""
    raw_blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    out: list[tuple[str, str, list[str]]] = []
    heading = ""
    for number, block in enumerate(raw_blocks):
        if _is_heading(block, number + 1 < len(raw_blocks)):
            heading = block.strip()
            continue
        items: list[str] = []
        prose: list[str] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            if _ITEM_START.match(line):
                if prose:
                    out.append((heading, "prose", prose))
                    prose = []
                items.append(_ITEM_START.sub("", line).strip())
            elif items and (line.startswith((" ", "\t")) or line.strip()[:1].islower()):
                items[-1] = f"{items[-1]} {line.strip()}"
            else:
                if items:
                    out.append((heading, "list", items))
                    items = []
                prose.append(line.strip())
        if items:
            out.append((heading, "list", items))
        if prose:
            out.append((heading, "prose", prose))
    return out


def _labelled_parts(sentence: str) -> list[str]:
    """ "Gewerbeanmeldung: 26 Euro; Ummeldung: 20 Euro." → both label/value pairs on their own."""
    parts = [p.strip() for p in sentence.rstrip(".").split("; ")]
    if len(parts) > 1 and all(spoken.split_item(p)[0] for p in parts):
        return parts
    return [sentence]


def _unit(chunk: Chunk, text: str, heading: str, kind: str, group: int, position: int) -> FactUnit:
    folded = fold_text(text)
    folded_heading = _fold_heading(heading)
    without_ages = _AGE.sub(" ", folded)  # "ab 16 Jahren" is an age, not a duration
    types = {t for t, pattern in _UNIT_EVIDENCE.items() if pattern.search(folded)}
    if not _UNIT_EVIDENCE[FactType.DURATION].search(without_ages):
        types.discard(FactType.DURATION)
    types |= {t for t, pattern in _HEADING_TYPES.items() if kind == "item" and pattern.search(folded_heading)}
    strong = {t for t, pattern in _STRONG_EVIDENCE.items() if pattern.search(without_ages)}
    if kind == "item" and _HEADING_TYPES[FactType.DOCUMENTS].search(folded_heading):
        strong.add(FactType.DOCUMENTS)  # an item of the list of documents to bring
    words = frozenset(w.strip("-") for w in _WORD.findall(folded))
    return FactUnit(
        doc_id=chunk.doc_id,
        chunk_id=chunk.id,
        title=chunk.title,
        text=text,
        heading=heading,
        kind=kind,
        group=group,
        position=position,
        types=frozenset(types),
        strong=frozenset(strong),
        folded=folded,
        folded_heading=folded_heading,
        stems=frozenset(w[:5] for w in words),
        words=words,
        heading_words=frozenset(w.strip("-") for w in _WORD.findall(folded_heading)),
        numbers=_numbers(text),
        bounds=_bounds(text),
    )


_WORD = re.compile(r"[a-z0-9][a-z0-9-]*")


@lru_cache(maxsize=4096)
def fact_units(chunk: Chunk) -> tuple[FactUnit, ...]:
    """The fact units of one chunk: curated sentences (lead chunk), then list items and body sentences."""
    units: list[FactUnit] = []
    if chunk.spoken_answer.strip():
        for sentence in split_sentences(" ".join(chunk.spoken_answer.split())):
            units.append(_unit(chunk, sentence, "", "curated", -1, len(units)))
    group = 0
    for heading, kind, pieces in _blocks(chunk.text):
        heading = heading or chunk.section
        if kind == "list":
            group += 1
            for item in pieces:
                units.append(_unit(chunk, " ".join(item.split()), heading, "item", group, len(units)))
            continue
        for sentence in split_sentences(" ".join(" ".join(pieces).split())):
            for part in _labelled_parts(sentence):
                units.append(_unit(chunk, part, heading, "sentence", -1, len(units)))
    return tuple(units)


def page_units(chunks: Sequence[Chunk]) -> list[FactUnit]:
    """The fact units of a page (all its chunks)."""
    return [unit for chunk in chunks for unit in fact_units(chunk)]


@dataclass(frozen=True)
class Topic:
    """The words that name a page (its title and synonyms): they say which page, not which sentence of it."""

    stems: frozenset[str]
    text: str

    def names(self, word: str) -> bool:
        if " " in word:
            return False
        for name in self.text.split():
            # the name itself or a form of it ("Reisepässe"), not a longer compound ("Grundsteuerwert")
            if (name[:5] == word[:5] and len(word) <= len(name) + 3) or (len(word) >= 4 and word in name):
                return True
        if self.split(word) != word:
            return True  # "Personalausweisverlängerung": the page's name and what about it (see split)
        # "Wohnsitzbescheinigung" names "Meldebescheinigung": the same thing by another first part
        return len(word) >= 10 and any(len(t) >= 10 and word[-8:] == t[-8:] for t in self.text.split())

    def split(self, word: str) -> str:
        """The part of a compound after the page's own name ("buchereiausweis" → "ausweis"), else the word."""
        for name in self.text.split():
            for start in range(len(name) - 4):
                part = name[start:]
                if word.startswith(part) and len(word) - len(part) >= 5:
                    rest = word[len(part) :]
                    return rest[1:] if rest[0] == "s" and len(rest) > 5 else rest
        return word


@lru_cache(maxsize=1024)
def _topic(title: str) -> Topic:
    folded = " ".join(w.strip("-") for w in _WORD.findall(fold_text(title)))
    return Topic(frozenset(w[:5] for w in folded.split() if len(w) > 2), folded)


def topic_of(chunk: Chunk) -> Topic:
    """The words that name a chunk's page: its title (synonyms name it too, but also say what callers ask)."""
    return _topic(chunk.title)


# ---- selection -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactSelection:
    """What :func:`select_facts` chose: the units to say (empty: the page does not state the asked fact)."""

    question: Question
    type: FactType  # the type that was answered (the question's, or inherited from the turn before)
    units: tuple[FactUnit, ...]
    score: float = 0.0
    # yes/no questions: True = the page says yes, False = no, None = it does not say plainly
    polarity: bool | None = None
    # yes/no questions about the page as a whole ("muss ich mich ummelden?"): the curated answer fits better
    general: bool = False

    @property
    def found(self) -> bool:
        return bool(self.units)


# Scoring weights (tuned on knowledge/eval/facts.yaml only; see docs/decisions/0252-fact-level-answers.md).
LEXICAL_WEIGHT = 1.0
NUMBER_WEIGHT = 0.6
BOUND_WEIGHT = 0.5
WITHIN_WEIGHT = 0.3
MIXED_PENALTY = 0.3  # a unit that also states values of another kind ("kostet 32 Euro mehr und ist ... da")
COSINE_WEIGHT = 5.0  # per unit of cosine below the page's best unit (e5 cosines are bunched)
COSINE_FLOOR = -0.1
STRONG_BONUS = 0.35
# "wo ist ...": an address is the answer, a phone number beside it is not
STRONG_BONUSES = {FactType.PLACE: 0.7, FactType.CONTACT: 0.5}
HEADING_BONUS = 0.25
INTENT_BONUS = 0.7
DAY_BONUS = 0.6
PRECISION_WEIGHT = 0.3  # "Erwachsene: 4 Euro" before "10er-Karte Erwachsene: 35 Euro" for "Eintritt für Erwachsene"  # an opening-hours unit about the day the caller asked for
CURATED_BONUS = 0.05
PLAIN_BONUS = 0.3
SITUATION_MATCH = 0.5  # a how-to question's situation must be on the sentence, else the curated answer
CONDITION_BONUS = 0.2  # a yes/no answer that states its limit ("Carports bis 30 Quadratmeter")  # a yes/no fee question: a unit that plainly says free or a fee
GENERAL_CURATED_BONUS = 0.5  # nothing specific asked ("was kostet ein Reisepass?"): the curated sentence
OTHER_KIND_PENALTY = 0.3
TOPIC_WEIGHT = 0.3  # a focus word that names the page (its title or synonyms) says little about which unit
# A list whose best item matches the question no better than this is answered whole ("Welche Unterlagen?").
SPECIFIC_ITEM = 0.5


def _matches(word: str, unit: FactUnit) -> float:
    """How well a unit contains a focus word (0..1), best first: the word itself (inside a word of the unit, the
    same stem, a short word starting a word: "bar" ~ "Barzahlung"), a long shared beginning ("Blindenhund" ~
    "Blindenführhunde"), the unit's word as the head of the caller's compound ("Hausgeburt" ~ "Geburt"), a shared
    first part or tail of long compounds ("Geburtsurkunde" ~ "Personenstandsurkunden"), a word of the heading."""
    return max(
        _word_match(word, unit.folded, unit.words, unit.stems),
        0.3 * max((_word_match(word, w, (w,), frozenset((w[:5],))) for w in unit.heading_words), default=0.0),
    )


@lru_cache(maxsize=4096)
def _caller_stem(word: str) -> str:
    """The stem of a caller's word, feminine endings off ("Ärztin" ~ "Ärzte")."""
    return normalize.stem(re.sub(r"(?<=\w{4})(innen|in)$", "", word))


def _word_match(
    word: str, folded: str, words: frozenset[str] | tuple[str, ...], stems: frozenset[str]
) -> float:
    if len(word) >= 4 and word in folded:
        return 1.0
    if len(word) < 10 and word[:5] in stems:
        return 1.0
    stem = _caller_stem(word)
    if 4 <= len(stem) < 5 and any(w.startswith(stem) for w in words):
        return 1.0
    if 3 <= len(word) <= 4 and any(w.startswith(word) for w in words):
        return 1.0
    if len(word) >= 10 and any(len(w) >= 10 and w[:7] == word[:7] for w in words):
        return 0.8
    if any(
        len(w) >= 5 and len(word) >= len(w) + 3 and (word.endswith(w) or word.startswith(w)) for w in words
    ):
        return 0.7  # "Hausgeburt" ~ "Geburt", "Papiertonne" ~ "Papier"
    if word[:5] in stems:
        return 0.5
    if len(word) >= 8 and any(len(w) >= 8 and (w.endswith(word[-6:]) or word[-6:] in w) for w in words):
        return 0.5
    return 0.0


EXPANSION_WEIGHT = 0.5


def _lexical_scores(question: Question, units: Sequence[FactUnit], topic: Topic) -> list[float]:
    """Per unit: the question's focus words it contains, each weighted by its rarity on the page (0..1).

    A focus word that names the page counts only :data:`TOPIC_WEIGHT`, a word the caller's word stands for
    (:attr:`Question.expansions`) :data:`EXPANSION_WEIGHT`; words found nowhere on the page do not count at all.
    """
    words = [*question.focus, *question.expansions]
    if not words or not units:
        return [0.0] * len(units)
    matches = [[_matches(w, u) for w in words] for u in units]
    total = len(units)
    weights: list[float] = []
    norm = 0.0
    for column, word in enumerate(words):
        frequency = sum(1 for row in matches if row[column] >= 0.7)
        partial = any(row[column] > 0 for row in matches)
        idf = math.log(1 + total / frequency) if frequency else (math.log(1 + total) if partial else 0.0)
        weight = TOPIC_WEIGHT if topic.names(word) else 1.0
        if column >= len(question.focus):
            weight *= EXPANSION_WEIGHT
        else:
            norm += idf
        weights.append(idf * weight)
    if not norm:
        norm = max(weights) or 1.0
    return [min(1.0, sum(m * w for m, w in zip(row, weights, strict=True)) / norm) for row in matches]


def _cosines(
    units: Sequence[FactUnit], query_vector: np.ndarray | None, vectors: Mapping[str, np.ndarray] | None
) -> list[float]:
    """Per unit: cosine to the question minus the page's best (0 for the best); zeros without vectors."""
    if query_vector is None or not vectors or not units:
        return [0.0] * len(units)
    rows = [vectors.get(u.key) for u in units]
    if any(row is None for row in rows):
        return [0.0] * len(units)
    values = np.stack(rows) @ query_vector  # type: ignore[arg-type]
    best = float(values.max())
    return [max(COSINE_FLOOR, float(v) - best) for v in values]


def _without_days(question: Question) -> Question:
    """ "am Wochenende" asks about days, not about the word "Wochen"."""
    focus = tuple(w for w in question.focus if not _DAY_WORD.match(w))
    return Question(
        question.text,
        question.type,
        question.yes_no,
        focus,
        question.numbers,
        question.expansions,
        question.bounds,
    )


def _label_precision(question: Question, unit: FactUnit) -> float:
    """Share of an item's label words that the question names (the plainest matching item wins a tie)."""
    label = spoken.split_item(unit.text)[0]
    words = [w for w in _WORD.findall(fold_text(label)) if len(w) > 2 and w not in _STOP]
    if not words:
        return 0.0
    probe = _token_unit
    named = sum(1 for w in words if any(_matches(f, probe(w)) >= 0.7 for f in question.focus))
    return named / len(words)


def _is_specific(question: Question, units: Sequence[FactUnit], topic: Topic) -> bool:
    """Does the question name something beyond the page itself that one of the units has (in the caller's word
    or in what it stands for: "Kampfhund" → "gefährlicher Hund")?"""
    if any(_matches(w, u) >= 0.7 for w in question.focus if not topic.names(w) for u in units):
        return True
    # what a word means here ("Kampfhund" → "gefährlicher Hund") or the rest of a compound after the page's
    # name ("Grundsteuer|wert") counts; the colloquial lexicon's broad terms ("gefunden" → "Fundsache") do not
    for word in question.expansions:
        if (word in _EXPLICIT or word in question.parts) and any(_matches(word, u) >= 0.7 for u in units):
            return True
    return False


def _names_something(
    question: Question, units: Sequence[FactUnit], topic: Topic, fact_type: FactType
) -> bool:
    """Does the question say more than the page's name: a word, a number or a purpose one of the units has?"""
    intents = _intents(question, fact_type)
    return (
        bool(question.numbers & frozenset(n for u in units for n in u.numbers))
        or _within(
            question.numbers - frozenset(n for _, n in question.bounds),
            frozenset(b for u in units for b in u.bounds),
        )
        or _is_specific(question, units, topic)
        or any(p.search(u.folded) for p in intents for u in units)
        or bool(_asked_days(question))
    )


def _split_compounds(question: Question, topic: Topic) -> Question:
    """Focus compounds that start with the page's name also ask for the rest ("Büchereiausweis": "ausweis"),
    weighed like an expansion: the caller said the whole word."""
    rests = [topic.split(w) for w in question.focus]
    extra = tuple(
        r for r, w in zip(rests, question.focus, strict=True) if r != w and r not in question.expansions
    )
    if not extra:
        return question
    return Question(
        question.text,
        question.type,
        question.yes_no,
        question.focus,
        question.numbers,
        question.expansions + extra,
        question.bounds,
        extra,
    )


def _score_units(
    question: Question,
    fact_type: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> list[float]:
    days = _asked_days(question) if fact_type == FactType.HOURS else set()
    if days:
        question = _without_days(question)
    lexical = _lexical_scores(question, units, topic)
    cosines = _cosines(units, query_vector, vectors)
    intents = _intents(question, fact_type)
    named = bool(question.numbers) or _is_specific(question, units, topic)
    if not named:
        lexical = [0.0] * len(units)  # only words naming the page: they do not tell its sentences apart
    specific = named or any(p.search(u.folded) for p in intents for u in units)
    ages = question.numbers - frozenset(number for _, number in question.bounds)
    heading_pattern = _HEADING_TYPES.get(fact_type)
    scores = []
    for unit, lex, cos in zip(units, lexical, cosines, strict=True):
        score = LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos
        if question.numbers & unit.numbers:
            score += NUMBER_WEIGHT
        if question.bounds & unit.bounds:
            score += BOUND_WEIGHT  # "unter 24" is not "ab 24"
        elif _within(ages, unit.bounds):
            score += WITHIN_WEIGHT  # "mein Sohn ist sechzehn" falls under "unter 24 Jahren"
        if any(_VALUES[kind].search(unit.folded) for kind in _MIXED.get(fact_type, ())):
            score -= MIXED_PENALTY
        if fact_type in unit.strong:
            score += STRONG_BONUSES.get(fact_type, STRONG_BONUS)
        if fact_type not in unit.types:
            score -= OTHER_KIND_PENALTY
        if heading_pattern is not None and heading_pattern.search(unit.folded_heading):
            score += HEADING_BONUS
        if unit.kind == "curated":
            general = not specific and fact_type in unit.strong
            score += GENERAL_CURATED_BONUS if general else CURATED_BONUS
        if any(pattern.search(unit.folded) for pattern in intents):
            score += INTENT_BONUS
        if days and _days_of(unit.folded) & days:
            score += DAY_BONUS
        if named and unit.kind == "item":
            score += PRECISION_WEIGHT * _label_precision(question, unit)
        scores.append(score)
    return scores


def select_facts(
    question: Question | str,
    pages: Sequence[Sequence[Chunk]] | Sequence[Chunk],
    query_vector: np.ndarray | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    fact_type: FactType | None = None,
) -> FactSelection:
    """The unit(s) of the first page that state the asked fact (see the module docstring).

    ``pages``: the chunks of the page to answer from (a list of chunk lists is accepted; its first page is
    used). ``query_vector``/``vectors``: the retriever's e5 vector of the question and the units' vectors by
    :func:`unit_key` (without them only words and numbers count). ``fact_type`` overrides the question's type
    (a follow-up "und für Kinder?" keeps asking for the fee).
    """
    if isinstance(question, str):
        question = classify(question)
    first = pages[0] if pages else None
    chunks: list[Chunk] = list(first) if first is not None and not isinstance(first, Chunk) else list(pages)  # type: ignore[arg-type]
    asked = fact_type or question.type
    if not chunks:
        return FactSelection(question, asked, ())
    units = page_units(chunks)
    topic = topic_of(chunks[0])
    question = _split_compounds(question, topic)
    if question.yes_no and asked in (
        FactType.GENERAL,
        FactType.HOWTO,
        FactType.ELIGIBILITY,
        FactType.DOCUMENTS,
    ):
        return _select_yes_no(question, asked, units, topic, query_vector, vectors)
    if asked == FactType.HOWTO and re.search(r"\bwenn\b", fold_text(question.text)):
        return _select_situation(question, asked, units, topic, query_vector, vectors)
    if asked == FactType.HOWTO:
        return FactSelection(question, asked, (), general=True)
    wanted = ANSWERING_UNITS.get(asked)
    if wanted is None:
        return FactSelection(question, asked, ())
    candidates = [u for u in units if u.types & set(wanted)]
    if asked == FactType.CONTACT:  # an e-mail address is no answer to "which number", nor the other way round
        folded_question = fold_text(question.text)
        for asks, has in _CONTACT_KINDS:
            if asks.search(folded_question):
                candidates = [u for u in candidates if has.search(u.folded)]
    if not candidates:
        return FactSelection(question, asked, ())
    scores = _score_units(question, asked, candidates, topic, query_vector, vectors)
    if not _names_something(question, candidates, topic, asked):
        # Nothing specific asked ("was kostet die Kita?"): the curated answer's sentence of that kind.
        kinds = "strong" if asked in _STRONG_EVIDENCE else "types"
        curated = [i for i, u in enumerate(candidates) if u.kind == "curated" and asked in getattr(u, kinds)]
        for rank, i in enumerate(curated):  # the curated answer's first sentence of that kind leads
            scores[i] += GENERAL_CURATED_BONUS * 10 + (0.3 if rank == 0 else 0.0)
    if question.yes_no and asked == FactType.COST:  # "ist das kostenlos?": a unit that says free or a fee
        scores = [
            s + (PLAIN_BONUS if _fee_polarity(u.folded) is not None else 0.0)
            for s, u in zip(scores, candidates, strict=True)
        ]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    best = candidates[best_index]
    chosen = _whole_list(question, asked, best, units, topic) or (best,)
    polarity = _polarity(question, asked, chosen) if question.yes_no else None
    return FactSelection(question, asked, chosen, round(scores[best_index], 3), polarity)


def _whole_list(
    question: Question, asked: FactType, best: FactUnit, units: Sequence[FactUnit], topic: Topic
) -> tuple[FactUnit, ...] | None:
    """All items of the best unit's list when the question asks for the list (documents, opening hours)."""
    if best.kind != "item" or asked not in (FactType.DOCUMENTS, FactType.HOURS):
        return None
    siblings = tuple(u for u in units if u.group == best.group and u.chunk_id == best.chunk_id)
    if len(siblings) < 2 or not all(asked in u.types for u in siblings):
        return None
    if asked == FactType.HOURS and _asked_days(question):
        return None  # "montags": the item about that day
    # words that only repeat the page's name ("Personalausweis|verlängerung") do not pick one item
    rests = tuple(topic.split(w) for w in question.focus if not topic.names(w))
    rest_question = Question(question.text, question.type, question.yes_no, rests, question.numbers)
    lexical = sorted(_lexical_scores(rest_question, siblings, topic), reverse=True)
    if lexical[0] >= SPECIFIC_ITEM and lexical[0] - lexical[1] >= 0.3:
        return None  # "für das erweiterte Führungszeugnis": that item
    return siblings


_CONTACT_KINDS = (
    (re.compile(r"e ?-?mail|\bmail"), re.compile(r"@")),
    (re.compile(r"telefon|nummer|anrufen|\bruf"), re.compile(r"\b0\d{2,5}[ /]\d|\b116 116\b|\b11[02]\b")),
)
# Words that name an office or a place of its own ("Steueramt", "Wohngeldstelle", "Jugendamt").
_ENTITY = re.compile(r"\w{3,}(amt|amts|stelle|buro|behorde|kasse|gericht|zentrale|verwaltung|beratung|hof)$")


def entity_words(question: Question, chunk: Chunk) -> list[str]:
    """The offices the question names that are not the page's own subject (its title or synonyms)."""
    names = _topic(" ".join((chunk.title, *chunk.synonyms)))
    return [w for w in question.focus if _ENTITY.match(w) and not names.names(w)]


def selection_names(selection: FactSelection, words: Sequence[str], chunk: Chunk) -> bool:
    """Does the selected text name one of ``words`` (the asked office), so that its value is that office's? The
    page's title and curated answer count too: they say whose page it is."""
    page = fold_text(f"{chunk.title} {chunk.spoken_answer}")
    return any(w in u.folded or w in page for w in words for u in selection.units)


# ---- yes/no --------------------------------------------------------------------------------------------------

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


@lru_cache(maxsize=4096)
def _token_unit(token: str) -> FactUnit:
    """A one-word pseudo unit, to reuse :func:`_matches` on a single token."""
    return FactUnit(
        doc_id="",
        chunk_id="",
        title="",
        text=token,
        heading="",
        kind="sentence",
        group=-1,
        position=0,
        types=frozenset(),
        strong=frozenset(),
        folded=token,
        stems=frozenset((token[:5],)),
        words=frozenset((token,)),
    )


_CONDITION = re.compile(rf"{_LIMIT}|{_COUNTED}")


def _expands_to_topic(word: str, topic: Topic) -> bool:
    """ "Perso" names the page "Personalausweis beantragen" through the colloquial lexicon."""
    return any(topic.names(fold_word(t)) for t in normalize.colloquial_terms(word) if " " not in t)


def _select_situation(
    question: Question,
    asked: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> FactSelection:
    """ "Was kann ich machen, wenn mein Vermieter nicht unterschreibt?": the sentence about that situation, when
    the page has one; otherwise the curated answer (``general``) says how it is done."""
    specific = [w for w in question.focus if not topic.names(w) and not _expands_to_topic(w, topic)]
    candidates = [u for u in units if u.kind != "curated" and any(_matches(w, u) >= 0.7 for w in specific)]
    if not candidates:
        return FactSelection(question, asked, (), general=True)
    lexical = _lexical_scores(question, candidates, topic)
    cosines = _cosines(candidates, query_vector, vectors)
    scores = [LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos for lex, cos in zip(lexical, cosines, strict=True)]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    if lexical[best_index] < SITUATION_MATCH:
        return FactSelection(question, asked, (), general=True)
    return FactSelection(question, asked, (candidates[best_index],), round(scores[best_index], 3))


def _select_yes_no(
    question: Question,
    asked: FactType,
    units: Sequence[FactUnit],
    topic: Topic,
    query_vector: np.ndarray | None,
    vectors: Mapping[str, np.ndarray] | None,
) -> FactSelection:
    """A yes/no question about something other than a fee or a time: the unit about its focus, and its answer.

    When only words naming the page itself are found ("muss ich mich ummelden?"), the selection is marked
    ``general``: the page's curated answer answers it better than any single sentence.
    """
    specific = [
        w
        for w in question.focus
        if not topic.names(w) and not _expands_to_topic(w, topic) and not _DAY_WORD.match(w)
    ]
    if not specific:
        # Only the page's own name: a plain "no" the page states about it ("Kinderreisepässe gibt es seit 2024
        # nicht mehr") is the answer; anything else is the curated answer's job.
        for unit in units:
            if _statement_polarity(question, unit, strict=True) is False:
                return FactSelection(question, asked, (unit,), 0.0, False)
        return FactSelection(question, asked, (), general=True)
    candidates = [u for u in units if any(_matches(w, u) >= 0.7 for w in specific)]
    if not candidates:
        # Nothing but the page's own name, or a situation the page does not mention ("ich wandere nach Kanada
        # aus, muss ich mich abmelden?"): the curated answer says what the page says about it.
        return FactSelection(question, asked, (), general=True)
    lexical = _lexical_scores(question, candidates, topic)
    cosines = _cosines(candidates, query_vector, vectors)
    scores = [
        LEXICAL_WEIGHT * lex + COSINE_WEIGHT * cos + (CONDITION_BONUS if _CONDITION.search(u.folded) else 0.0)
        for lex, cos, u in zip(lexical, cosines, candidates, strict=True)
    ]
    best_index = max(range(len(candidates)), key=lambda i: scores[i])
    best = candidates[best_index]
    polarity = _statement_polarity(question, best)
    return FactSelection(question, asked, (best,), round(scores[best_index], 3), polarity)


# ---- rendering -----------------------------------------------------------------------------------------------

_LOWER_AFTER_YES = frozenset(
    _words("der die das den dem des ein eine einen einem einer er es im in am an bei fur mit ohne")
)


def _with_yes_no(first: str, polarity: bool | None) -> str:
    if polarity is None:
        return first
    word = "Ja" if polarity else "Nein"
    head, _, rest = first.partition(" ")
    if fold_text(head) in _LOWER_AFTER_YES and rest:
        return f"{word}, {head.lower()} {rest}"
    return f"{word}. {first}"


def _lead_of(heading: str) -> str:
    return "Geöffnet ist" if re.search(r"offnung|geoffnet", fold_text(heading)) else ""


def _item_sentences(selection: FactSelection) -> list[str]:
    units, asked = selection.units, selection.type
    items = [u.text for u in units]
    if asked == FactType.HOURS and _lead_of(units[0].heading):
        return spoken.hours_sentences(items, _lead_of(units[0].heading))
    if asked == FactType.DOCUMENTS:
        label = spoken.split_item(items[0])[0]
        if len(items) == 1 and label:
            return [spoken.item_sentence(items[0], units[0].heading, asked.value)]
        return spoken.list_sentences(items, "Bitte bringen Sie mit")
    if len(items) > 1:
        return spoken.list_sentences(items, units[0].heading or "Dazu")
    return [spoken.item_sentence(items[0], units[0].heading, asked.value)]


def fact_sentences(selection: FactSelection) -> list[str]:
    """The chosen units as sentences to speak, written form (numbers as on the page; see knowledge.spoken)."""
    if not selection.units:
        return []
    if all(u.kind == "item" for u in selection.units):
        sentences = _item_sentences(selection)
    else:
        sentences = [u.text for u in selection.units]
    if selection.question.yes_no and sentences:
        sentences[0] = _with_yes_no(sentences[0], selection.polarity)
    return sentences
