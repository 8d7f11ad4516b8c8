"""PII redaction for stored transcripts: pure functions, no I/O (decision 0920).

What a caller or the bot said is stored only after these replacements, each with a German placeholder:

========================  ======================  ===============================================================
category                  placeholder             found by
========================  ======================  ===============================================================
``email``                 ``[E-Mail-Adresse]``    ``name@host.tld``, and spoken ``name at host punkt de``
``iban``                  ``[IBAN]``              two letters, two digits, 11–30 letters/digits; ISO 13616 mod 97
``tax_id``                ``[Steuer-ID]``         11 digits, first not 0, ISO 7064 mod 11,10 check digit
``id_card``               ``[Ausweisnummer]``     9 characters of the ID-card alphabet plus its 7-3-1 check digit,
                                                  or the 9 characters right after the word "Ausweis…"
``birth_date``            ``[Geburtsdatum]``      a date right after "geboren (am)", "Geburtsdatum", "geb." or
                                                  before "geboren": only dates in that context
``phone``                 ``[Telefonnummer]``     7+ digits (6+ after ``0``/``+``) in groups; 4+ spoken number words
                                                  (digits, pairs like "zwölf") worth 6+ digits
========================  ======================  ===============================================================

Checksums keep a reference number, a price or an appointment date in the transcript: only what validates (or
stands in its context) goes. The call-back number (the ``callback_requested`` event's ``number``) and the caller's
number field (``caller_number``) are kept: they are stored on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicebot.settings import Settings

PLACEHOLDERS = {
    "email": "[E-Mail-Adresse]",
    "iban": "[IBAN]",
    "tax_id": "[Steuer-ID]",
    "id_card": "[Ausweisnummer]",
    "birth_date": "[Geburtsdatum]",
    "phone": "[Telefonnummer]",
}
CATEGORIES = tuple(PLACEHOLDERS)

# --- e-mail ----------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# As ASR writes a spoken address: "max punkt mustermann at beispiel punkt de" (also "ät", "klammeraffe").
_WORD = r"[^\W\d_][\w-]*"
_SPOKEN_EMAIL = re.compile(
    rf"\b{_WORD}(?:\s+(?:punkt|minus|unterstrich|bindestrich)\s+{_WORD})*\s+(?:at|ät|et|klammeraffe)\s+"
    rf"{_WORD}(?:\s+punkt\s+{_WORD})*\s+punkt\s+(?:de|com|org|net|eu|info)\b",
    re.IGNORECASE,
)

# --- IBAN --------------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)


def iban_valid(candidate: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, letters as 10–35, the number mod 97 is 1."""
    compact = re.sub(r"\s", "", candidate).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(char, 36)) for char in moved)
    return int(digits) % 97 == 1


# --- Steuer-ID ---------------------------------------------------------------------------------------------------

_TAX_ID = re.compile(r"(?<![\d+])\d{2}[ /]?\d{3}[ /]?\d{3}[ /]?\d{3}(?![\d])")


def tax_id_valid(candidate: str) -> bool:
    """The German tax identification number: 11 digits, the first not 0, the last the ISO 7064 MOD 11,10 check
    digit of the first ten."""
    digits = re.sub(r"\D", "", candidate)
    if len(digits) != 11 or digits[0] == "0":
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


# --- Personalausweis ---------------------------------------------------------------------------------------------

# The document number of the ID card since 2010: 9 characters of this alphabet (no vowels, no B D Q S), then the
# check digit of the machine-readable zone.
_ID_ALPHABET = "CFGHJKLMNPRTVWXYZ0123456789"
_ID_WITH_CHECK = re.compile(rf"\b[{_ID_ALPHABET}]{{9}}\d\b", re.IGNORECASE)
_ID_AFTER_WORD = re.compile(
    rf"(\b(?:Personalausweis|Ausweis|Reisepass|Pass)\w*(?:\s+(?:ist|lautet|hat|die|nummer|Nummer|:))*:?\s+)"
    rf"([{_ID_ALPHABET}]{{9}}\d?)\b",
    re.IGNORECASE,
)


def id_card_check_valid(candidate: str) -> bool:
    """The ICAO 9303 check digit (weights 7, 3, 1; letters A=10 … Z=35) of the first nine characters is the tenth."""
    value = candidate.upper()
    if len(value) != 10 or not value[9].isdigit():
        return False
    total = sum(int(char, 36) * (7, 3, 1)[n % 3] for n, char in enumerate(value[:9]))
    return total % 10 == int(value[9])


def _looks_like_id(candidate: str) -> bool:
    return any(char.isalpha() for char in candidate) and any(char.isdigit() for char in candidate)


# --- dates of birth ----------------------------------------------------------------------------------------------

_MONTHS = (
    r"(?:Januar|Jänner|Februar|März|Maerz|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember)"
)
_ORDINAL_WORD = r"(?:[a-zäöüß]+(?:ten|sten))"
_YEAR_WORDS = r"(?:neunzehnhundert[a-zäöüß]*|zweitausend[a-zäöüß]*)"
_DATE = (
    rf"(?:\d{{1,2}}\.\s?\d{{1,2}}\.\s?(?:\d{{4}}|\d{{2}})"  # 03.05.1980, 3.5.80
    rf"|\d{{1,2}}\.?\s+{_MONTHS}\s+\d{{4}}"  # 3. Mai 1980
    rf"|{_ORDINAL_WORD}\s+{_MONTHS}\s+(?:\d{{4}}|{_YEAR_WORDS})"  # dritten Mai neunzehnhundertachtzig
    rf"|{_ORDINAL_WORD}\s+{_ORDINAL_WORD}\s+(?:\d{{4}}|{_YEAR_WORDS})"  # dritten fünften neunzehnhundertachtzig
    rf"|\d{{4}}-\d{{2}}-\d{{2}})"
)
_BIRTH_BEFORE = re.compile(
    rf"(\b(?:geboren(?:\s+bin\s+ich)?(?:\s+am)?|geb\.(?:\s+am)?|Geburtsdatum(?:\s+(?:ist|lautet))?:?"
    rf"|Geburtstag(?:\s+(?:ist|war))?(?:\s+am)?)\s*(?:der\s+|den\s+|am\s+)?)({_DATE})",
    re.IGNORECASE,
)
_BIRTH_AFTER = re.compile(rf"(?<=\bam\s)({_DATE})(?=\s+geboren\b)", re.IGNORECASE)

# --- phone numbers -----------------------------------------------------------------------------------------------

# Digits in groups joined by space, slash, hyphen or brackets (a dot would make dates and amounts look alike).
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d /()\-]{4,}\d(?![\w])")
_DIGIT_WORDS = {
    "null": 1,
    "eins": 1,
    "ein": 1,
    "zwei": 1,
    "zwo": 1,
    "drei": 1,
    "vier": 1,
    "fünf": 1,
    "fuenf": 1,
    "sechs": 1,
    "sieben": 1,
    "acht": 1,
    "neun": 1,
}
# Two digits in one word, as callers say numbers in pairs: "zwölf", "vierunddreißig".
_UNITS = "ein|zwei|drei|vier|fünf|sechs|sieben|acht|neun"
_TENS = "zwanzig|dreißig|dreissig|vierzig|fünfzig|sechzig|siebzig|achtzig|neunzig"
_PAIR_WORD = (
    rf"(?:(?:{_UNITS})und(?:{_TENS})|zehn|elf|zwölf|dreizehn|vierzehn|fünfzehn|sechzehn|siebzehn|achtzehn"
    rf"|neunzehn|{_TENS})"
)
_PAIR = re.compile(rf"{_PAIR_WORD}", re.IGNORECASE)
_SPOKEN_TOKEN = rf"(?:{_PAIR_WORD}|{'|'.join(_DIGIT_WORDS)}|\d{{1,4}})"
_SPOKEN_PHONE = re.compile(
    rf"(?<![\w])(?:plus\s+)?{_SPOKEN_TOKEN}(?:[\s,/-]+{_SPOKEN_TOKEN}){{3,}}(?![\w])", re.IGNORECASE
)


def _phone_digits(candidate: str) -> int:
    return sum(char.isdigit() for char in candidate)


# A school year or a span of years ("2025/2026", "2024 - 2025", "2025/26") is no phone number.
# Nor is an ISO date ("2026-05-03").
_YEARS = re.compile(r"(?:19|20)\d\d\s?[-/]\s?(?:(?:19|20)\d\d|\d\d)|\d{4}-\d{2}-\d{2}")


def _is_phone(candidate: str) -> bool:
    digits = _phone_digits(candidate)
    if _YEARS.fullmatch(candidate):
        return False
    if candidate.count("(") != candidate.count(")"):
        return False
    starts = candidate.lstrip("(")
    return digits >= 7 or (digits >= 6 and starts[:1] in "+0")


def _spoken_is_phone(candidate: str) -> bool:
    tokens = re.findall(r"[^\W_]+", candidate.lower())
    words = [token for token in tokens if token in _DIGIT_WORDS or _PAIR.fullmatch(token)]
    digits = sum(2 if _PAIR.fullmatch(token) else 1 for token in words)
    digits += sum(len(token) for token in tokens if token.isdigit())
    return bool(words) and digits >= 6


@dataclass(frozen=True)
class Redactor:
    """Replaces the enabled categories' matches with their placeholders (all categories by default)."""

    categories: frozenset[str] = field(default_factory=lambda: frozenset(CATEGORIES))
    # False (privacy.store_transcripts): what the caller and the bot said is not stored at all; the turns keep
    # their kind, action, sources and timings (figures, dashboard), and call-backs keep what they need.
    keep_text: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(
                f"unknown redaction categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}"
            )

    def text(self, value: str) -> str:
        return _redact_text(value, self.categories) if value and self.categories else value

    def said(self, value: str) -> str:
        """Words somebody said, as the record keeps them: redacted, or nothing when transcripts are off."""
        return self.text(value) if self.keep_text else ""

    def value(self, value: Any, keep: Callable[[str], bool] = lambda _key: False) -> Any:
        """Every string in ``value`` (nested dicts and lists) redacted, except under dict keys ``keep`` names."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: (v if keep(str(k)) else self.value(v, keep)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item, keep) for item in value]
        return value


@lru_cache(maxsize=8192)  # a record is saved after every change: its earlier turns come back unchanged
def _redact_text(value: str, categories: frozenset[str]) -> str:
    text = value
    if "email" in categories:
        text = _EMAIL.sub(PLACEHOLDERS["email"], text)
        text = _SPOKEN_EMAIL.sub(PLACEHOLDERS["email"], text)
    if "iban" in categories:
        text = _IBAN.sub(lambda m: PLACEHOLDERS["iban"] if iban_valid(m.group()) else m.group(), text)
    if "tax_id" in categories:
        text = _TAX_ID.sub(lambda m: PLACEHOLDERS["tax_id"] if tax_id_valid(m.group()) else m.group(), text)
    if "id_card" in categories:
        text = _ID_AFTER_WORD.sub(
            lambda m: m.group(1) + PLACEHOLDERS["id_card"] if _looks_like_id(m.group(2)) else m.group(), text
        )
        text = _ID_WITH_CHECK.sub(
            lambda m: (
                PLACEHOLDERS["id_card"]
                if _looks_like_id(m.group()[:9]) and id_card_check_valid(m.group())
                else m.group()
            ),
            text,
        )
    if "birth_date" in categories:
        text = _BIRTH_BEFORE.sub(lambda m: m.group(1) + PLACEHOLDERS["birth_date"], text)
        text = _BIRTH_AFTER.sub(PLACEHOLDERS["birth_date"], text)
    if "phone" in categories:
        text = _PHONE.sub(lambda m: PLACEHOLDERS["phone"] if _is_phone(m.group()) else m.group(), text)
        text = _SPOKEN_PHONE.sub(
            lambda m: PLACEHOLDERS["phone"] if _spoken_is_phone(m.group()) else m.group(), text
        )
    return text


# --- call records --------------------------------------------------------------------------------------------

# Turn fields that are labels, never what somebody said.
_TURN_LABELS = frozenset({"role", "kind", "language", "action", "reason", "sources", "timings_ms"})
# Event fields stored on purpose or set by the town's configuration (a staff phone address), never by a caller.
_EVENT_LABELS = frozenset(
    {"kind", "caller_number", "target", "via", "number_via", "group", "reason", "by", "codec", "phase"}
)


def redact_record(record: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A copy of the call record with what was said in its turns and the free text of its events redacted; the
    call-back event's ``number`` stays (the call-back needs it)."""
    result = dict(record)
    if not redactor.categories and redactor.keep_text:
        return result
    if isinstance(record.get("turns"), list):
        result["turns"] = [
            _turn(turn, redactor) if isinstance(turn, Mapping) else turn for turn in record["turns"]
        ]
    if isinstance(record.get("events"), list):
        result["events"] = [_event(event, redactor) for event in record["events"]]
    return result


def _turn(turn: Mapping[str, Any], redactor: Redactor) -> Any:
    redacted = redactor.value(turn, _TURN_LABELS.__contains__)
    if not redactor.keep_text and isinstance(redacted, dict):
        redacted["text"] = ""
        if isinstance(redacted.get("asr"), list):  # each ASR segment's words too; its figures stay
            redacted["asr"] = [
                {**segment, "text": ""} if isinstance(segment, dict) else segment
                for segment in redacted["asr"]
            ]
    return redacted


def _event(event: Any, redactor: Redactor) -> Any:
    if not isinstance(event, Mapping):
        return event
    labels: Iterable[str] = _EVENT_LABELS
    if event.get("kind") == "callback_requested":
        labels = _EVENT_LABELS | {"number"}
    kept = frozenset(labels)
    return redactor.value(event, kept.__contains__)


def record_redactor(settings: Settings) -> Redactor:
    """The town's choice (``privacy.redact`` and ``privacy.store_transcripts`` of
    :class:`voicebot.settings.Settings`)."""
    return Redactor(frozenset(settings.privacy.redact), keep_text=settings.privacy.store_transcripts)
