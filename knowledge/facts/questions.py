"""What the caller asks: the question's type (:class:`FactType`), whether it is a yes/no question, the words
that say *what exactly* is asked, and the numbers the caller said.

Why a module of its own: typing the question is independent of any page; the fact units of a page
(:mod:`knowledge.facts.candidates`) and the selection (:mod:`knowledge.facts.selection`) build on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from knowledge import guard, normalize
from knowledge.confidence import TownLexicon, content_words
from knowledge.textfold import fold_text, fold_word


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
