"""Verify a generated sentence before it is spoken: citations exist, and every fact-bearing token is sourced.

A language model may say "Der Ausweis kostet 73 Euro [personalausweis-beantragen]" although the page says 37.
So a sentence is only released when

* its citations ("[page-id]", or "[2]" for the second passage) name passages that were actually retrieved,
* the answer cites something at all, and
* every number, amount, time, date, weekday and month in the sentence appears in a cited passage.

Numbers are compared in a canonical form so that "37,00 Euro" = "37 Euro", "8:00" = "8 Uhr" = "8.00 Uhr",
"siebenunddreißig" = "37" and "Mo–Fr" covers "Montag" and "Freitag". Pure functions, no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from knowledge.normalize import parse_number_word
from knowledge.textfold import fold_umlauts

ABSTAIN_TOKEN = "KEINE_ANTWORT"
MAX_SENTENCE_CHARS = 280  # a phone sentence; longer output is a model rambling or copying a page
# The prompt's own scaffolding echoed back by a base model ("Passagen: [1] ID: ...").
_PROMPT_ECHO = re.compile(r"\b(Passagen|Passage|Frage|Anrufer|Assistent|ID)\s*:", re.IGNORECASE)

_CITATION = re.compile(r"\[([^\[\]]{1,120})\]")


# ---- citations
def extract_citations(sentence: str) -> list[str]:
    """The ids inside square brackets, in order ("[a, b]" and "[Quelle: a]" allowed)."""
    ids: list[str] = []
    for group in _CITATION.findall(sentence):
        group = re.sub(r"^\s*(quelle|quellen|source|id)\s*:\s*", "", group, flags=re.IGNORECASE)
        ids.extend(part.strip() for part in re.split(r"[,;]", group) if part.strip())
    return ids


def strip_citations(sentence: str) -> str:
    """The sentence as it should be spoken: markers removed, spacing before punctuation tidied."""
    text = _CITATION.sub("", sentence)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = text.replace("**", "").replace("__", "")
    return re.sub(r"\s{2,}", " ", text).strip()


def resolve_citations(cited: Iterable[str], passage_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(known passage ids, unknown citations). "[2]" is the second passage; a page id names all its chunks."""
    known: list[str] = []
    unknown: list[str] = []
    for raw in cited:
        key = raw.strip().strip("`'\"").strip()
        if key.isdigit() and 1 <= int(key) <= len(passage_ids):
            matches = [passage_ids[int(key) - 1]]
        elif key in passage_ids:
            matches = [key]
        else:
            matches = [pid for pid in passage_ids if pid.split("#", 1)[0] == key]
        if matches:
            known.extend(m for m in matches if m not in known)
        else:
            unknown.append(raw)
    return known, unknown


# ---- numbers and other checkable facts
_LETTER_WORD = re.compile(r"\b[a-z]+\b")


def _number_words_to_digits(folded: str) -> str:
    """Spoken numbers as digits ("siebenunddreissig" → "37"), parsed like the retriever parses them."""

    def replace(match: re.Match[str]) -> str:
        number = parse_number_word(match.group(0))
        return match.group(0) if number is None else str(number)

    return _LETTER_WORD.sub(replace, folded)


_WEEKDAYS = {
    "montag": "montag",
    "dienstag": "dienstag",
    "mittwoch": "mittwoch",
    "donnerstag": "donnerstag",
    "freitag": "freitag",
    "samstag": "samstag",
    "sonnabend": "samstag",
    "sonntag": "sonntag",
}
_WEEKDAY_ABBREVIATIONS = {
    "mo": "montag",
    "di": "dienstag",
    "mi": "mittwoch",
    "do": "donnerstag",
    "fr": "freitag",
    "sa": "samstag",
    "so": "sonntag",
}
_MONTH_NAMES = "januar februar marz april mai juni juli august september oktober november dezember"
_MONTHS = _MONTH_NAMES.split()
_MONTH_ABBREVIATIONS = {m[:3]: m for m in _MONTHS}
_TIME = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*uhr\b|\b(\d{1,2}):(\d{2})\b")
_TIME_RANGE = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(?:-|bis)\s*(\d{1,2})(?:[:.](\d{2}))?\s*uhr\b")
_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{2,4})?")
_AMOUNT = re.compile(r"\b\d{1,3}(?:\.\d{3})+(?:,\d+)?\b|\b\d+(?:,\d+)?\b")


def _canonical_amount(raw: str) -> str:
    number = raw.replace(".", "").replace(",", ".")
    value = float(number)
    return str(int(value)) if value == int(value) else f"{value:g}"


# A German phone number as written ("0123 45678-62", "0800 4 5555 00") or as spoken, digit by digit
# ("0 1 2 3, 4 5 6 7 8, 6 2", see knowledge.spoken): both are the same fact "p:0123456786 2" without spaces.
PHONE_NUMBER = re.compile(
    r"(?<![\d,.])0\d{2,5}(?:[ /]\d{1,8})+(?:-\d{1,5})?(?!\d)|(?<![\d,.])0\d{2,5}-\d{1,5}\b"
)
_SPOKEN_PHONE_NUMBER = re.compile(r"(?<![\d,.])\b0(?:,? \d\b){4,}")


def _phone_tokens(folded: str, lenient: bool) -> tuple[str, set[str]]:
    """("p:<digits>" tokens of the phone numbers in ``folded``, the text without them (kept when lenient))."""
    tokens: set[str] = set()

    def take(match: re.Match[str]) -> str:
        tokens.add("p:" + re.sub(r"\D", "", match.group(0)))
        return match.group(0) if lenient else " "

    rest = _SPOKEN_PHONE_NUMBER.sub(take, PHONE_NUMBER.sub(take, folded))
    return rest, tokens


def fact_tokens(text: str, *, lenient: bool = False) -> set[str]:
    """Canonical checkable tokens of a text: "n:37", "t:8:30", "d:1.3", "w:montag", "m:marz", "p:0123456780".

    ``lenient`` (for passages) also adds every component of times and dates as a plain number, and expands
    weekday abbreviations and ranges, so that sources are read generously and answers strictly.
    """
    folded, tokens = _phone_tokens(_number_words_to_digits(fold_umlauts(text)), lenient)
    for match in _TIME_RANGE.finditer(folded):
        tokens.add(f"t:{int(match.group(1))}:{match.group(2) or '00'}")
        tokens.add(f"t:{int(match.group(3))}:{match.group(4) or '00'}")
    for match in _TIME.finditer(folded):
        hour, minute = (
            (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        )
        tokens.add(f"t:{int(hour)}:{minute or '00'}")
    without_times = _TIME.sub(" ", _TIME_RANGE.sub(" ", folded))
    for match in _DATE.finditer(without_times):
        day, month, year = match.groups()
        if 1 <= int(month) <= 12 and 1 <= int(day) <= 31:
            tokens.add(f"d:{int(day)}.{int(month)}")
            if year:
                tokens.add(f"n:{int(year) if len(year) == 4 else 2000 + int(year)}")
    without_dates = _DATE.sub(" ", without_times) if not lenient else without_times
    for match in _AMOUNT.finditer(without_dates):
        tokens.add(f"n:{_canonical_amount(match.group(0))}")
    if lenient:
        for token in list(tokens):
            if token.startswith("t:"):
                hour, minute = token[2:].split(":")
                tokens.update({f"n:{hour}", f"n:{int(minute)}"})
            elif token.startswith("d:"):
                day, month = token[2:].split(".")
                tokens.update({f"n:{day}", f"n:{month}"})
        for match in re.finditer(r"\b\d+\b", folded):
            tokens.add(f"n:{int(match.group(0))}")
    words = re.findall(r"[a-z]+", folded)
    for word in words:
        stem = word[:-1] if word.endswith("s") and word[:-1] in _WEEKDAYS else word
        if stem in _WEEKDAYS:
            tokens.add(f"w:{_WEEKDAYS[stem]}")
        elif word in _MONTHS:
            tokens.add(f"m:{word}")
        elif lenient and word in _WEEKDAY_ABBREVIATIONS:
            tokens.add(f"w:{_WEEKDAY_ABBREVIATIONS[word]}")
        elif lenient and word in _MONTH_ABBREVIATIONS:
            tokens.add(f"m:{_MONTH_ABBREVIATIONS[word]}")
    if lenient:
        tokens |= _weekday_ranges(folded)
    return tokens | _closed_days(folded, tokens, lenient)


_CLOSED = re.compile(r"geschlossen|nicht geoffnet|nicht offen|keine offnungszeit|keine sprechzeit|ruhetag")


def _closed_days(folded: str, tokens: set[str], lenient: bool) -> set[str]:
    """ "c:samstag" for a weekday said to be closed ("samstags geschlossen").

    In a source (``lenient``) also every day its opening hours leave out: a page whose hours are "montags bis
    freitags" supports "samstags ist geschlossen" (issue 14: the asked day is answered, not skipped).
    """
    closed = {
        f"c:{_WEEKDAYS[w[:-1] if w.endswith('s') and w[:-1] in _WEEKDAYS else w]}"
        for clause in re.split(r"[,;.]", folded)
        if _CLOSED.search(clause)
        for w in re.findall(r"[a-z]+", clause)
        if w in _WEEKDAYS or (w.endswith("s") and w[:-1] in _WEEKDAYS)
    }
    if lenient:
        open_days = {t[2:] for t in tokens if t.startswith("w:")}
        if open_days and _CLOCK_NEAR_DAY.search(folded):
            closed |= {f"c:{day}" for day in _DAY_ORDER if day not in open_days}
    return closed


_CLOCK_NEAR_DAY = re.compile(
    r"(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|mo|di|mi|do|fr|sa|so)\w*\W{1,4}[^.\n]{0,30}"
    r"\b\d{1,2}(?:[:.]\d{2})?\s*(?:-|bis)\s*\d{1,2}(?:[:.]\d{2})?\s*uhr"
)


_DAY_ORDER = ["montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag"]


def _weekday_ranges(folded: str) -> set[str]:
    """ "Mo–Fr" / "Montag bis Freitag" / "montags bis freitags" in a source covers every day between."""
    names = "|".join([*_WEEKDAYS, *_WEEKDAY_ABBREVIATIONS])
    tokens: set[str] = set()
    for match in re.finditer(rf"\b({names})s?\.?\s*(?:-|bis)\s*({names})s?\b", folded):
        first = _WEEKDAYS.get(match.group(1)) or _WEEKDAY_ABBREVIATIONS[match.group(1)]
        last = _WEEKDAYS.get(match.group(2)) or _WEEKDAY_ABBREVIATIONS[match.group(2)]
        start, end = _DAY_ORDER.index(first), _DAY_ORDER.index(last)
        if start <= end:
            tokens.update(f"w:{day}" for day in _DAY_ORDER[start : end + 1])
    return tokens


def unsupported_facts(sentence: str, sources: Iterable[str]) -> list[str]:
    """The checkable tokens of ``sentence`` that none of ``sources`` contains (empty = supported)."""
    available: set[str] = set()
    for source in sources:
        available |= fact_tokens(source, lenient=True)
    return sorted(uncovered(fact_tokens(strip_citations(sentence)), available))


def uncovered(said: set[str], available: set[str] | frozenset[str]) -> set[str]:
    """The tokens of an answer its sources do not state. A weekday said to be closed ("c:samstag") needs the
    source to close it or to leave it out of its opening hours (else it is missing, even on a day the source
    opens), and then its plain "w:samstag" is covered."""
    missing = said - available
    closed = {t[2:] for t in said if t.startswith("c:") and t in available}
    return {t for t in missing if not (t.startswith("w:") and t[2:] in closed)}


# ---- sentences and answers
def echoes_prompt(text: str) -> bool:
    """Does generated text repeat the prompt's layout ("Passagen:", "ID:")? Checked before a sentence ends."""
    return bool(_PROMPT_ECHO.search(text))


def form_problem(sentence: str) -> str | None:
    """ "prompt_echo" or "too_long" when the sentence is not something to say on the phone, else None."""
    if _PROMPT_ECHO.search(sentence) or "\n\n" in sentence.strip():
        return "prompt_echo"
    if len(strip_citations(sentence)) > MAX_SENTENCE_CHARS:
        return "too_long"
    return None


@dataclass(frozen=True)
class SentenceCheck:
    ok: bool
    # "verified", "no_citation", "unknown_citation", "unsupported_fact", "prompt_echo" or "too_long"
    reason: str
    spoken: str  # the text to speak (citations stripped)
    cited: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


def check_sentence(
    sentence: str, passages: Mapping[str, str], inherited_citations: Sequence[str] = ()
) -> SentenceCheck:
    """Verify one sentence against the retrieved ``passages`` (id → text).

    A sentence without its own citation is checked against ``inherited_citations`` (those of the answer's
    other sentences); with none at all it fails.
    """
    spoken = strip_citations(sentence)
    malformed = form_problem(sentence)
    if malformed:
        return SentenceCheck(False, malformed, spoken)
    passage_ids = list(passages)
    known, unknown = resolve_citations(extract_citations(sentence), passage_ids)
    if unknown:
        return SentenceCheck(False, "unknown_citation", spoken, tuple(known), tuple(unknown))
    cited = known or [pid for pid in inherited_citations if pid in passages]
    if not cited:
        return SentenceCheck(False, "no_citation", spoken)
    missing = unsupported_facts(sentence, (passages[pid] for pid in cited))
    if missing:
        return SentenceCheck(False, "unsupported_fact", spoken, tuple(cited), tuple(missing))
    return SentenceCheck(True, "verified", spoken, tuple(known))


@dataclass
class AnswerCheck:
    ok: bool
    reason: str
    sentences: list[str] = field(default_factory=list)  # spoken form
    cited: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def is_abstention(text: str) -> bool:
    return ABSTAIN_TOKEN.lower() in text.lower().replace(" ", "_")


def verify_answer(sentences: Sequence[str], passages: Mapping[str, str]) -> AnswerCheck:
    """Verify a whole answer: at least one citation, and every sentence verified (citations shared)."""
    if any(is_abstention(s) for s in sentences):
        return AnswerCheck(False, "abstained")
    all_cited: list[str] = []
    for sentence in sentences:
        known, _ = resolve_citations(extract_citations(sentence), list(passages))
        all_cited.extend(k for k in known if k not in all_cited)
    result = AnswerCheck(True, "verified", cited=all_cited)
    for sentence in sentences:
        check = check_sentence(sentence, passages, all_cited)
        if not check.ok:
            return AnswerCheck(False, check.reason, details=list(check.details), cited=all_cited)
        if check.spoken:
            result.sentences.append(check.spoken)
    if not result.sentences:
        return AnswerCheck(False, "empty")
    return result


def contains_fact(text: str, fact: str) -> bool:
    """Does ``text`` state ``fact``? Literal match after folding, else same numbers and same key words."""
    folded_text = " ".join(fold_umlauts(text).split())
    folded_fact = " ".join(fold_umlauts(fact).split())
    if folded_fact in folded_text:
        return True
    fact_numbers = fact_tokens(fact)
    if fact_numbers and not fact_numbers <= fact_tokens(text, lenient=True):
        return False
    words = [w for w in re.findall(r"[a-z]{4,}", _number_words_to_digits(folded_fact)) if w != "uhr"]
    text_words = set(re.findall(r"[a-z]+", _number_words_to_digits(folded_text)))
    return all(any(t.startswith(w[:5]) for t in text_words) for w in words) and bool(fact_numbers or words)


# ---- does the answer fit the question? (a cost question needs an amount or "kostenlos", ...)
_SPAN_WORDS = r"(?:\d+|ein|eine|einen|einem|einer|zwei|drei|vier|funf|sechs|sieben|acht|neun|zehn|zwolf|wenige\w*|einige\w*|paar)"
_FITTING_VALUE: dict[str, re.Pattern[str]] = {
    "cost": re.compile(
        r"\d[\d.,]*\s*(?:euro|cent|€)|kostenlos|kostenfrei|gebuhrenfrei|beitragsfrei|gratis|umsonst"
        r"|\bnichts\b|keine (?:gebuhr|kosten)|\bfrei\b|befreit"
    ),
    "duration": re.compile(
        rf"\b{_SPAN_WORDS}\s+(?:werk)?(?:tag|woche|monat|jahr|stunde|minute)\w*|\bsofort\b|gleich mit|am selben tag"
    ),
    "deadline": re.compile(
        rf"\b{_SPAN_WORDS}\s+(?:werk)?(?:tag|woche|monat|jahr|stunde)\w*|\b\d{{1,2}}(?:[:.]\d{{2}})?\s*uhr\b|\b\d{{1,2}}\.\s*\w+"
        r"|\bsofort\b|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|januar|februar|marz|april|\bmai\b"
        r"|juni|juli|august|september|oktober|november|dezember|keine frist|jederzeit"
    ),
    "hours": re.compile(
        r"\b\d{1,2}(?:[:.]\d{2})?\s*uhr\b|\b\d{1,2}:\d{2}\b|montag|dienstag|mittwoch|donnerstag|freitag|samstag"
        r"|sonntag|wochenende|feiertag|taglich|rund um die uhr|geschlossen|\b\d{1,2}\.\s*\w+|jede woche|alle \d+ wochen"
        r"|januar|februar|marz|april|\bmai\b|juni|juli|august|september|oktober|november|dezember|termin"
    ),
    "contact": re.compile(
        r"\b0\d{2,5}(?:[ /-]?\d)+|(?:\b\d\b,? ){5,}|@|\bat\b .* \bpunkt\b|www\.|\.example|\b11[02]\b"
    ),
    "place": re.compile(
        r"\w+(?:strasse|weg|platz|allee|gasse|ring|damm)\b|\bzimmer\b|etage|geschoss|\bstock\b|rathaus|kreishaus"
        r"|\w*(?:amt|stelle|buro|behorde|zentrum|hof|haus|kasse|gericht)\b|online|www\.|\.example"
    ),
}


CHECKED_TYPES = frozenset(_FITTING_VALUE)


def fits_question_type(text: str, fact_type: str) -> bool:
    """Does the answer state a value of the asked kind (a cost question an amount or "kostenlos", a duration
    question a duration, an hours question a time or day, a phone question a number ...)? Kinds without a
    checkable value (documents, conditions, how-to, general) always fit."""
    pattern = _FITTING_VALUE.get(fact_type)
    if pattern is None:
        return True
    return bool(pattern.search(_number_words_to_digits(fold_umlauts(strip_citations(text)))))
