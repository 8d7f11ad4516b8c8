"""Sentence splitting for speech: whole sentences are the unit the bot verifies and hands to text-to-speech.

German abbreviations ("z. B.", "Nr.", "ca."), ordinals ("am 1. Januar") and times ("8.30 Uhr") end in a
dot without ending the sentence; a boundary is a terminal mark followed by white space and a capital letter
(or the end of the text). :class:`SentenceSplitter` does the same on a token stream, releasing a sentence as
soon as the first letter of the next one shows that it is complete.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    [
        "z",
        "b",
        "bzw",
        "ca",
        "nr",
        "str",
        "tel",
        "usw",
        "u",
        "a",
        "o",
        "ä",
        "evtl",
        "ggf",
        "inkl",
        "max",
        "min",
        "mo",
        "di",
        "mi",
        "do",
        "fr",
        "sa",
        "so",
        "dr",
        "frau",
        "hr",
        "fr",
        "vgl",
        "etc",
        "abs",
        "art",
        "bspw",
        "zzgl",
        "jan",
        "feb",
        "mär",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "okt",
        "nov",
        "dez",
        "st",
        "sog",
        "d",
        "h",
    ]
)
# A citation written after the full stop ("... 37 Euro. [page-id] Bringen Sie ...") belongs to the sentence before.
_BOUNDARY = re.compile(r"([.!?…]+[\"“”»)]*(?:\s*\[[^\[\]]{1,120}\])*)(\s+)(?=[A-ZÄÖÜ0-9„\"»(])")


# Words that start a sentence, not follow an ordinal ("Badstraße 10. Es hat ..." vs. "am 10. Mai").
_SENTENCE_STARTER_TEXT = (
    "es er sie die der das den dem ein eine einen einem einer im in am an auf bei für mit nach von vor zum zur "
    "wenn falls bitte dort hier dann danach außerdem auch wir ich man ihr ihre ihren"
)
_SENTENCE_STARTERS = frozenset(_SENTENCE_STARTER_TEXT.split())
# A number that ends a phone number ("45678-10.", spoken "4 5 6 7 8, 1 0.") is no ordinal.
_PHONE_TAIL = re.compile(r"\d[ ,/-]+\d{1,2}\.$")


def _ends_with_non_terminal_dot(text_before: str, text_after: str = "") -> bool:
    """True when the dot at the end of ``text_before`` belongs to an abbreviation or an ordinal number."""
    if not text_before.endswith("."):
        return False
    words = re.findall(r"[\wäöüÄÖÜß]+", text_before[-12:])
    if not words:
        return False
    last = words[-1]
    if last.isdigit() and len(last) <= 2:
        if _PHONE_TAIL.search(text_before):
            return False
        following = re.findall(r"[\wäöüÄÖÜß]+", text_after[:40])
        # "am 1. Januar", "bis 15. März" are ordinals; "Badstraße 10. Es hat", "45678-10. Bringen Sie" end.
        return not (following and (following[0].lower() in _SENTENCE_STARTERS or following[1:2] == ["Sie"]))
    # "Kirchstr. 5": a street name abbreviated like "Str."
    return last.lower() in _ABBREVIATIONS or len(last) == 1 or last.lower().endswith("str")


def _boundaries(text: str) -> list[int]:
    cuts: list[int] = []
    for match in _BOUNDARY.finditer(text):
        end_of_mark = match.end(1)
        if _ends_with_non_terminal_dot(text[:end_of_mark], text[match.end() :]):
            continue
        cuts.append(end_of_mark)
    return cuts


def split_sentences(text: str) -> list[str]:
    """All sentences of a finished text, stripped, empty ones dropped."""
    pieces: list[str] = []
    start = 0
    for cut in _boundaries(text):
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


class SentenceSplitter:
    """Incremental splitter: feed streamed text, get back the sentences that are certainly complete."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        cuts = _boundaries(self._buffer)
        if not cuts:
            return []
        last = cuts[-1]
        done, self._buffer = self._buffer[:last], self._buffer[last:]
        return split_sentences(done)

    def flush(self) -> list[str]:
        """The rest at the end of the stream."""
        rest, self._buffer = self._buffer, ""
        return split_sentences(rest)
