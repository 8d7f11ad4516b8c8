"""Text for the ear: what a page writes for the eye, rewritten so that text-to-speech says it plainly.

Pages write "Mo–Fr 8:00–12:00 Uhr", "z. B.", "37 €", "(Gültigkeit 10 Jahre)" and "0123 45678-62"; read aloud
these become "Mo Strich Fr", a parenthesis nobody hears and a phone number spoken as "hundertdreiundzwanzig".
:func:`for_speech` rewrites an answer sentence by sentence (weekdays, times, abbreviations, symbols, brackets,
phone numbers in single digits, long sentences split), and :func:`item_sentence` turns a list item of a page
("Urnenreihengrab, 25 Jahre: 950 Euro" under the fees) into a sentence ("Ein Urnenreihengrab kostet 950 Euro
für 25 Jahre."). Numbers, amounts, times and dates are never changed, only how they are written around, so
that :mod:`knowledge.verify` still finds every spoken fact in the page. Pure functions, used by both answer modes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from knowledge.sentences import split_sentences
from knowledge.verify import PHONE_NUMBER


def _words(text: str) -> tuple[str, ...]:
    """The words of a space-separated list written as one string (lexicons stay readable)."""
    return tuple(text.split())


# A phone sentence: longer ones are split at a comma.
MAX_WORDS = 25

_DAYS = {"mo": "montags", "di": "dienstags", "mi": "mittwochs", "do": "donnerstags", "fr": "freitags"}
_DAYS |= {"sa": "samstags", "so": "sonntags"}
_DAY_ABBREVIATION = r"(Mo|Di|Mi|Do|Fr|Sa|So)\.?"
_DAY_RANGE = re.compile(rf"\b{_DAY_ABBREVIATION}\s*(?:–|-|bis)\s*{_DAY_ABBREVIATION}(?![\w])")
_DAY_BEFORE_TIME = re.compile(rf"\b{_DAY_ABBREVIATION}(?=:?\s+\d{{1,2}}(?:[:.]\d\d)?\s*(?:–|-|bis|Uhr))")
_FULL_DAY_RANGE = re.compile(
    r"\b(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag)s?\s*[–-]\s*(?=[MDFS])"
)
_CLOCK_RANGE = re.compile(r"\b(\d{1,2})(?:[:.](\d\d))?\s*(?:–|-)\s*(\d{1,2})(?:[:.](\d\d))?(\s*Uhr)?\b")
_FULL_HOUR = re.compile(r"\b(\d{1,2})[:.]00(\s*Uhr)\b")
_NUMBER_RANGE = re.compile(r"\b(\d{1,3})\s*–\s*(\d{1,3})\b")

# Abbreviations spoken out; the patterns include the dot, so a sentence that ends in one keeps a full stop.
_ABBREVIATIONS = (
    (r"\b[zZ]\.\s?[bB]\.", "zum Beispiel"),
    (r"\b[uU]\.\s?a\.", "unter anderem"),
    (r"\b[dD]\.\s?h\.", "das heißt"),
    (r"\b[iI]\.\s?d\.\s?R\.", "in der Regel"),
    (r"\b[bB]zw\.", "beziehungsweise"),
    (r"\b[cC]a\.", "circa"),
    (r"\b[uU]sw\.", "und so weiter"),
    (r"\b[eE]tc\.", "und so weiter"),
    (r"\b[gG]gf\.", "gegebenenfalls"),
    (r"\b[eE]vtl\.", "eventuell"),
    (r"\b[iI]nkl\.", "inklusive"),
    (r"\b[zZ]zgl\.", "zuzüglich"),
    (r"\b[bB]zgl\.", "bezüglich"),
    (r"\b[vV]gl\.", "vergleiche"),
    (r"\b[sS]og\.", "so genannte"),
    (r"\b[mM]ax\.", "höchstens"),
    (r"\b[mM]ind\.", "mindestens"),
    (r"\bNr\.", "Nummer"),
    (r"\bTel\.", "Telefon"),
    (r"\bStr\.", "Straße"),
    (r"(?<=[a-zäöüß])str\.", "straße"),  # "Kirchstr." → "Kirchstraße"
    (r"\bStd\.", "Stunden"),
    (r"\bMin\.", "Minuten"),
    (r"\bAbs\.", "Absatz"),
)
_ABBREVIATION_PATTERNS = [(re.compile(p), word) for p, word in _ABBREVIATIONS]
_SYMBOLS = (
    (re.compile(r"€\s*(\d+(?:[.,]\d+)*)"), r"\1 Euro"),
    (re.compile(r"(\d)\s*€"), r"\1 Euro"),
    (re.compile(r"€"), "Euro"),
    (re.compile(r"\bEUR\b"), "Euro"),
    (re.compile(r"(\d)\s*%"), r"\1 Prozent"),
    (re.compile(r"\s&\s"), " und "),
    (re.compile(r"§+\s*"), "Paragraf "),
    (re.compile(r"\bund/oder\b"), "und oder"),
    (re.compile(r"(\d)\s*(?:m²|qm)\b"), r"\1 Quadratmeter"),
    (re.compile(r"(\d)\s*m³"), r"\1 Kubikmeter"),
    (re.compile(r"(\d)\s*km\b"), r"\1 Kilometer"),
    (re.compile(r"(\d)\s*cm\b"), r"\1 Zentimeter"),
    (re.compile(r"(\d)\s*kg\b"), r"\1 Kilogramm"),
)
_SPOKEN_PHONE = re.compile(r"\b\d(?:,? \d\b){4,}")
_URL_PREFIX = re.compile(r"\bhttps?://|\bwww\.")
_MARKUP = re.compile(r"\*\*|__|`")


def spoken_phone_number(written: str) -> str:
    """ "0123 45678-62" → "0 1 2 3, 4 5 6 7 8, 6 2": every digit said on its own, the groups apart."""
    groups = [g for g in re.split(r"[ /-]+", written) if g]
    return ", ".join(" ".join(group) for group in groups)


def _day_range(match: re.Match[str]) -> str:
    return f"{_DAYS[match.group(1).lower()]} bis {_DAYS[match.group(2).lower()]}"


def _clock_range(match: re.Match[str]) -> str:
    first, first_minutes, last, last_minutes, uhr = match.groups()
    if not uhr and (first_minutes is None or last_minutes is None):
        return match.group(0)  # "45678-62" or "3-4": not a time of day
    start = first if first_minutes in (None, "00") else f"{first}:{first_minutes}"
    end = last if last_minutes in (None, "00") else f"{last}:{last_minutes}"
    return f"{start} bis {end}{uhr or ' Uhr'}"


def _without_brackets(text: str) -> str:
    """ "70 Euro (Gültigkeit 10 Jahre)." → "70 Euro, Gültigkeit 10 Jahre." (a bracket is not heard)."""
    text = re.sub(r"\s*\(([^()]*)\)", r", \1,", text)
    text = text.replace("(", ", ").replace(")", ",")
    text = re.sub(r",\s*([,.;:!?])", r"\1", text)
    text = re.sub(r",\s*$", "", text)
    return re.sub(r"(^|[.!?]\s+),\s*", r"\1", text)


def _spoken_out(word: str) -> Callable[[re.Match[str]], str]:
    """The replacement of an abbreviation: capitalised where the abbreviation was ("Z. B." → "Zum Beispiel")."""
    return lambda match: _capitalised(word) if match.group(0)[0].isupper() else word


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def word_count(sentence: str) -> int:
    """Words as heard; a phone number spoken digit by digit counts as one."""
    return len(_SPOKEN_PHONE.sub("0", sentence).split())


def _split_long(sentence: str, limit: int = MAX_WORDS) -> list[str]:
    """Cut a sentence of more than ``limit`` words at the comma nearest its middle (recursively)."""
    if word_count(sentence) <= limit:
        return [sentence]
    protected = _SPOKEN_PHONE.sub(lambda m: m.group(0).replace(",", "\x00"), sentence)
    commas = [m.start() for m in re.finditer(r", (?=\S)", protected)]
    if not commas:
        return [sentence]
    middle = len(protected) / 2
    cut = min(commas, key=lambda position: abs(position - middle))
    head, tail = protected[:cut].strip(), protected[cut + 1 :].strip()
    if word_count(head) < 3 or word_count(tail) < 3:
        return [sentence]
    head, tail = head.replace("\x00", ","), tail.replace("\x00", ",")
    if not head.endswith((".", "!", "?")):
        head += "."
    return _split_long(head, limit) + _split_long(_capitalised(tail), limit)


def speakable_sentence(sentence: str) -> list[str]:
    """One written sentence as one or more sentences for the ear (see the module docstring)."""
    text = _MARKUP.sub("", sentence)
    text = _URL_PREFIX.sub("", text)
    text = PHONE_NUMBER.sub(lambda m: spoken_phone_number(m.group(0)), text)
    text = _DAY_RANGE.sub(_day_range, text)
    text = _DAY_BEFORE_TIME.sub(lambda m: _DAYS[m.group(1).lower()], text)
    text = _FULL_DAY_RANGE.sub(lambda m: f"{m.group(1)} bis ", text)
    text = _CLOCK_RANGE.sub(_clock_range, text)
    text = _FULL_HOUR.sub(r"\1\2", text)
    text = _NUMBER_RANGE.sub(r"\1 bis \2", text)
    for pattern, word in _ABBREVIATION_PATTERNS:
        text = pattern.sub(_spoken_out(word), text)
    for symbol, replacement in _SYMBOLS:
        text = symbol.sub(replacement, text)
    text = _without_brackets(text)
    text = re.sub(r"\s+–\s+", ", ", text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    if not text.endswith((".", "!", "?", ":")):
        text += "."
    parts = [p.strip() for p in re.split(r";\s+", text) if p.strip()]
    sentences: list[str] = []
    for number, part in enumerate(parts):
        part = _capitalised(part) if number else part
        if not part.endswith((".", "!", "?")):
            part = part.rstrip(",:") + "."
        sentences.extend(_split_long(part))
    return sentences


def for_speech(text: str) -> str:
    """A whole answer for the ear: every sentence rewritten (see :func:`speakable_sentence`)."""
    return " ".join(s for sentence in split_sentences(text) for s in speakable_sentence(sentence))


# ---- list items as sentences -----------------------------------------------------------------------------------

# Grammatical gender by the last part of a compound ("Urnenreihengrab" → "Grab"): the article of "Ein ...".
_NEUTER = _words(
    "grab zeugnis kind formular foto dokument ticket bad amt geld recht register verfahren fahrzeug auto haus "
    "zimmer schloss feuer feuerwerk gerät holz buch medium konto papier schild kennzeichen gewerbe essen porto "
    "zertifikat attest abo abonnement angebot einkommen"
)
_MASCULINE = _words(
    "ausweis pass schein antrag beitrag zuschlag aufpreis hund platz termin brief bescheid vertrag nachweis "
    "auszug ausdruck eintrag tausch ersatz baum container sack kalender wagen müll austritt stempel code "
    "eintritt kurs parkplatz betrag zins satz tarif"
)
_FEMININE = _words(
    "karte kopie urkunde gebühr steuer tonne marke anzeige erlaubnis vollmacht miete abgabe unterschrift pin "
    "puk nummer frist stunde woche abholung mahnung strafe pauschale"
)
_FEMININE_SUFFIXES = ("ung", "heit", "keit", "schaft", "ion", "tät", "ei", "ik")
_NEUTER_SUFFIXES = ("chen", "lein", "ment", "um", "nis")
# Fee nouns take "Der/Die ... beträgt" ("Der Express-Zuschlag beträgt 32 Euro"), things take "Ein ... kostet".
_FEE_NOUNS = ("zuschlag", "gebühr", "beitrag", "aufpreis", "steuer", "miete", "pauschale", "abgabe")
_PEOPLE = _words(
    "erwachsene kinder jugendliche schüler schülerinnen studierende studenten rentner rentnerinnen senioren "
    "antragstellende geschwisterkinder familien eltern mitglieder personen gäste azubis auszubildende "
    "menschen frauen männer einwohner besucher"
)
_CONDITION_WORDS = _words(
    "ab unter über bis bei für mit ohne je pro von nach vor im in am an wenn falls zum zur innerhalb außerhalb "
    "während"
)
_FREE_VALUE = re.compile(r"^(kostenlos|gebührenfrei|beitragsfrei|frei|gratis|umsonst)\b", re.IGNORECASE)
_AMOUNT_VALUE = re.compile(r"^\d[\d.,]*\s*(Euro|€|Cent)\b")
_DURATION = re.compile(r"^\d+\s+(Jahre?|Monate?|Wochen?|Tage?|Stunden?)$")
_PER_TIME = re.compile(r"\b(im|pro|je) (Jahr|Monat|Woche|Tag|Quartal)\b|\bjährlich\b|\bmonatlich\b")
_THRESHOLD = re.compile(r"\b(bis|ab|über|unter|mehr als|weniger als)\s+\d")
_ORDINAL = re.compile(r"^(erst|zweit|dritt|viert|letzt)(er|e|es)\b", re.IGNORECASE)


def noun_gender(noun: str) -> str | None:
    """ "m", "f", "n" for a (compound) noun by its last part, or None when unsure."""
    word = noun.lower().split("-")[-1]
    for gender, parts in (("n", _NEUTER), ("m", _MASCULINE), ("f", _FEMININE)):
        if any(word.endswith(part) for part in parts):
            return gender
    if word.endswith(_FEMININE_SUFFIXES):
        return "f"
    if word.endswith(_NEUTER_SUFFIXES):
        return "n"
    return None


def split_item(item: str) -> tuple[str, str]:
    """ "Urnenreihengrab, 25 Jahre: 950 Euro" → ("Urnenreihengrab, 25 Jahre", "950 Euro"); ("", item) if no label."""
    depth = 0
    for position, char in enumerate(item):
        depth += char == "("
        depth -= char == ")"
        if char == ":" and depth == 0 and item[position + 1 : position + 2] == " ":
            label, value = item[:position].strip(), item[position + 1 :].strip()
            if 0 < len(label.split()) <= 8 and value:
                return label, value
            break
    return "", item.strip()


def _head_noun(label: str) -> str | None:
    """The first word of a label with a capital letter (its head noun: "beglaubigte Kopie" → "Kopie")."""
    for word in re.findall(r"[\wÄÖÜäöüß-]+", label):
        if any(char.isupper() for char in word):
            return word
    return None


def _label_with_people(label: str) -> str:
    """ "10er-Karte Erwachsene" → "10er-Karte für Erwachsene" (a price list's column for whom)."""
    words = label.split()
    if len(words) >= 2 and words[-1].lower() in _PEOPLE and words[-2].lower() not in _CONDITION_WORDS:
        return " ".join([*words[:-1], "für", words[-1]])
    return label


def _cost_sentence(label: str, value: str, heading: str) -> str | None:
    qualifier = ""
    if ", " in label and _DURATION.match(label.rsplit(", ", 1)[1]):
        label, qualifier = label.rsplit(", ", 1)
    label = re.sub(r"\s*\(([^()]*)\)", r", \1,", label).strip()  # "Reihengrab, Erdbestattung, kostet"
    if _PER_TIME.search(heading) and not _PER_TIME.search(value) and _AMOUNT_VALUE.match(value):
        value = f"{value} {_PER_TIME.search(heading).group(0)}"  # type: ignore[union-attr]
    tail = f" für {qualifier}" if qualifier else ""
    free = bool(_FREE_VALUE.match(value))
    if not free and not _AMOUNT_VALUE.match(value):
        return None
    first = label.split()[0].lower()
    if free and _THRESHOLD.search(label) and first not in _PEOPLE:
        return f"Bei {label}{tail} ist es {value}."  # "Jahreseinkommen bis 30.000 Euro: beitragsfrei"
    if first in _CONDITION_WORDS:
        verb = f"ist es {value}" if free else f"kostet es {value}"
        return f"{_capitalised(label)}{tail} {verb}."
    if first in _PEOPLE:
        return (
            f"Für {label}{tail} ist es {value}." if free else f"{_capitalised(label)} zahlen {value}{tail}."
        )
    label = _label_with_people(label)
    ordinal = _ORDINAL.match(label)
    if ordinal:
        article = {"er": "Der", "e": "Die", "es": "Das"}[ordinal.group(2).lower()]
        label = f"{article} {ordinal.group(1).lower()}e{label[ordinal.end() :]}"
        return f"{label}{tail} {'ist' if free else 'kostet'} {value}."
    if first in ("jeder", "jede", "jedes", "der", "die", "das", "ein", "eine"):
        return f"{_capitalised(label)}{tail} {'ist' if free else 'kostet'} {value}."
    head = _head_noun(label)
    gender = noun_gender(head) if head else None
    if head is None or gender is None:
        return None
    if not free and head.lower().endswith(_FEE_NOUNS):
        article = {"m": "Der", "f": "Die", "n": "Das"}[gender]
        return f"{article} {label}{tail} beträgt {value}."
    article = "Eine" if gender == "f" else "Ein"
    if free:
        return f"{article} {label}{tail} ist {value}."
    return f"{article} {label} kostet {value}{tail}."


def _documents_sentence(label: str, value: str) -> str | None:
    if label and label.split()[0].lower() in _CONDITION_WORDS:
        return f"{_capitalised(label)} brauchen Sie {value}."
    return None


def _responsible_sentence(label: str, value: str) -> str | None:
    if label and (label.split()[0].lower() in _PEOPLE or " und " in label):
        return f"Zuständig für {label}: {value}."
    return None


def _hours_phrase(label: str, value: str) -> str:
    """ "dienstags bis freitags: 7 bis 21 Uhr" → "dienstags bis freitags von 7 bis 21 Uhr"."""
    if label and re.match(r"\d", value) and " bis " in value:
        return f"{label} von {value}"
    return f"{label} {value}".strip() if label else value


def item_sentence(item: str, heading: str = "", asked: str = "") -> str:
    """A list item of a page as one spoken sentence, phrased for what was ``asked`` (a fact type's name).

    Falls back to "Label: value." when no natural sentence can be built safely (unknown noun gender, a value that
    is no amount). Never changes a number: the result is checked like any other answer sentence.
    """
    label, value = split_item(item.rstrip("."))
    sentence: str | None = None
    if label:
        if asked == "cost" or _AMOUNT_VALUE.match(value) or _FREE_VALUE.match(value):
            sentence = _cost_sentence(label, value, heading)
        elif asked == "documents":
            sentence = _documents_sentence(label, value)
        elif asked == "responsible":
            sentence = _responsible_sentence(label, value)
        elif asked == "hours":
            sentence = _capitalised(_hours_phrase(label, value)) + "."
    if sentence is None:
        sentence = f"{_capitalised(label)}: {value}." if label else f"{_capitalised(value)}."
    return sentence


def list_sentences(items: list[str], lead: str) -> list[str]:
    """Several list items as sentences of at most :data:`MAX_WORDS` words: "Bitte bringen Sie mit: A, B und C."."""
    phrases = [re.sub(r":\s+", ", ", item.rstrip(".;")) for item in items]
    sentences: list[str] = []
    current: list[str] = []
    for phrase in phrases:
        candidate = [*current, phrase]
        opening = lead if not sentences else "Außerdem"
        if current and word_count(f"{opening}: {_joined(candidate)}.") > MAX_WORDS:
            sentences.append(f"{opening}: {_joined(current)}.")
            current = [phrase]
        else:
            current = candidate
    if current:
        opening = lead if not sentences else "Außerdem"
        sentences.append(f"{opening}: {_joined(current)}.")
    return sentences


def _joined(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " und " + phrases[-1]


def hours_sentences(items: list[str], lead: str) -> list[str]:
    """An opening-hours list: "Geöffnet ist dienstags bis freitags von 7 bis 21 Uhr und ...; montags ist zu."."""
    open_phrases: list[str] = []
    closed: list[str] = []
    for item in items:
        label, value = split_item(item.rstrip("."))
        phrase = _hours_phrase(label, value)
        if re.search(r"\bgeschlossen\b", phrase):
            closed.append(re.sub(r"\s*:?\s*geschlossen\b", "", phrase).strip())
        else:
            open_phrases.append(phrase)
    sentences = [f"{lead} {_joined(open_phrases)}."] if open_phrases else []
    if closed:
        sentences.append(f"{_capitalised(_joined(closed))} ist geschlossen.")
    return sentences
