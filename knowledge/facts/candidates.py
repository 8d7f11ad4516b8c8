"""The candidates for a fact answer: each list item, body sentence and curated sentence of a page as a
:class:`FactUnit`, with the kinds of fact it can state, and the words that name the page (:class:`Topic`).

Why a module of its own: cutting a page into units is done once per chunk (cached, and at ingest for the unit
vectors, keyed by :func:`unit_key`), independent of any question.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from knowledge import spoken
from knowledge.facts.questions import FactType, _bounds, _numbers, _rx
from knowledge.sentences import split_sentences
from knowledge.textfold import fold_text
from knowledge.types import Chunk

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
    # "Dafür brauchen Sie …" names what to bring; "Sie brauchen sie für …" says what the paper itself is for.
    FactType.DOCUMENTS: _rx(
        r"mitbringen|mitzubringen|bringen sie|vorlegen|(?<!sie )brauchen sie|benotigen sie"
    ),
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


def is_heading(block: str, has_next: bool) -> bool:
    """A rendered section heading: one short line without final punctuation, followed by more text (the page
    loaders render headings so; knowledge.layers splits pages into sections by the same rule)."""
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
        if is_heading(block, number + 1 < len(raw_blocks)):
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
