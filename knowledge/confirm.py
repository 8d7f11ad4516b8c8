"""May the bot have misheard? Answer, confirm the topic first ("Geht es um das Thema „Reisepass beantragen“?"),
or ask the caller to repeat.

Why: on phone audio Whisper sometimes turns a question into other words ("Mackrott, Anwohnerparken," for a
question about the passport fee), retrieval then finds *some* page and the bot answers a question nobody asked
with full confidence. A question back costs the caller two seconds; a wrong confident answer costs a second call.
The signals (all cheap, all already there): what the recogniser says about itself (lowest average token
log-probability of the turn's segments, highest no-speech probability), how many of the heard content words the
knowledge base does not know at all (no German word list is installed on the target systems, so the vocabulary
is the knowledge base's own words plus the normaliser's lexicon), and how little of the heard text the chosen
page explains. Typed questions are never confirmed.

The confirmation question has a fixed pattern, so the next turn can recognise it from the history (a
:class:`~knowledge.types.Turn` is text only): a "ja" (or keypad 1) answers the *original* question on the
confirmed page, a "nein" (or 2) asks "Worum geht es denn?", anything else is a new question.
All functions here are pure; :mod:`knowledge.extractive` hooks them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from knowledge import normalize, phrases
from knowledge.confidence import TownLexicon, content_words
from knowledge.textfold import fold_text, fold_word
from knowledge.types import AsrSignals, Chunk, Turn

# --- thresholds (see docs/decisions/0404-confirm-when-misheard.md for the figures they come from) -------------
REPEAT_LOGPROB = -1.4  # below: the recogniser itself is lost; confirming a topic from such text is guesswork
CONFIRM_LOGPROB = -0.7  # below: unsure enough to confirm the topic (real 8 kHz recordings: 40 of 40 above)
DOUBT_LOGPROB = -0.45  # below: the words of the transcript decide (unknown words, little explained)
MAX_NO_SPEECH = 0.5  # above: much of the turn may not have been speech
MAX_UNKNOWN_SHARE = 0.34  # above: too many heard words the knowledge base has never seen
MIN_EXPLAINED_SHARE = 0.5  # below: the chosen page explains too little of what was heard

CONFIRM_PREFIX = "Geht es um das Thema „"
CONFIRM_DECLINED = "Worum geht es denn?"
_CONFIRM_RE = re.compile(r"^Geht es um das Thema „([^“]+)“\?$")
YES_DIGIT = "1"
NO_DIGIT = "2"


class Verdict(StrEnum):
    ANSWER = "answer"
    CONFIRM = "confirm"
    REPEAT = "repeat"


@dataclass(frozen=True)
class Signals:
    """Everything the decision looks at, kept for the transcript and the benchmark."""

    min_avg_logprob: float
    max_no_speech_prob: float
    unknown_share: float  # heard content words the knowledge base does not know
    explained_share: float  # heard content words the chosen page contains


class Vocabulary:
    """The words the knowledge base knows (folded, with 5-letter stems and a compound splitter)."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        words: set[str] = set()
        for chunk in chunks:
            text = " ".join((chunk.title, " ".join(chunk.synonyms), chunk.spoken_answer, chunk.text))
            words.update(re.findall(r"[a-z0-9]+", fold_text(text)))
        words.update(fold_word(w) for w in normalize.COLLOQUIAL_LEXICON)
        words.update(normalize.BASE_VOCABULARY)
        self.words = frozenset(words)
        self.stems = frozenset(w[:5] for w in words if len(w) >= 4)
        self._splitter = normalize.CompoundSplitter(w for w in words if len(w) >= 4)

    def knows(self, word: str) -> bool:
        if word.isdigit() or word in self.words or word in normalize.STOP_WORDS:
            return True
        if normalize.parse_number_word(word) is not None:
            return True
        if len(word) >= 5 and word[:5] in self.stems:
            return True
        return bool(self._splitter.split(word))


def unknown_share(question: str, vocabulary: Vocabulary, town: TownLexicon) -> float:
    """Share of the heard content words that the knowledge base has never seen (0 when none were heard)."""
    words = content_words(question, town)
    if not words:
        return 0.0
    return sum(1 for word in words if not vocabulary.knows(word)) / len(words)


def explained_share(question: str, page: Sequence[Chunk], town: TownLexicon) -> float:
    """Share of the heard content words found on the chosen page (same 5-letter stem, or inside a compound)."""
    words = content_words(question, town)
    if not words:
        return 1.0
    text = fold_text(
        " ".join(" ".join((c.title, " ".join(c.synonyms), c.spoken_answer, c.text)) for c in page)
    )
    stems = frozenset(word[:5] for word in re.findall(r"[a-z0-9]+", text))

    def on_page(word: str) -> bool:
        return word[:5] in stems or (len(word) >= 5 and word in text)

    found = sum(
        1
        for word in words
        if on_page(word) or any(on_page(fold_word(t)) for t in normalize.colloquial_terms(word))
    )
    return found / len(words)


def signals_of(
    question: str, asr: AsrSignals, page: Sequence[Chunk], vocabulary: Vocabulary, town: TownLexicon
) -> Signals:
    return Signals(
        min_avg_logprob=asr.min_avg_logprob,
        max_no_speech_prob=asr.max_no_speech_prob,
        unknown_share=unknown_share(question, vocabulary, town),
        explained_share=explained_share(question, page, town),
    )


def decide(signals: Signals | None) -> Verdict:
    """Ask to repeat when the recogniser was lost; confirm the topic when it was unsure, or somewhat unsure and
    the heard words do not fit the page; else answer. ``None`` (a typed question) is always answered."""
    if signals is None:
        return Verdict.ANSWER
    if signals.min_avg_logprob < REPEAT_LOGPROB:
        return Verdict.REPEAT
    if signals.min_avg_logprob < CONFIRM_LOGPROB or signals.max_no_speech_prob > MAX_NO_SPEECH:
        return Verdict.CONFIRM
    # The words alone are no reason: without a German word list, plain words a page does not use ("gebe",
    # "Schlagloch") count as unknown, so they only tip the balance when the recogniser was not sure either.
    words_doubtful = (
        signals.unknown_share > MAX_UNKNOWN_SHARE or signals.explained_share < MIN_EXPLAINED_SHARE
    )
    if signals.min_avg_logprob < DOUBT_LOGPROB and words_doubtful:
        return Verdict.CONFIRM
    return Verdict.ANSWER


# --- the confirmation turn ----------------------------------------------------------------------------------


def topic(title: str) -> str:
    """A page title as it is said in a question: without the bracketed aside ("Bewohnerparkausweis")."""
    return re.sub(r"\s*\([^)]*\)", "", title).strip() or title.strip()


def confirmation_question(title: str) -> str:
    """ "Geht es um das Thema „Reisepass beantragen“?" ("das Thema": no article to guess for the title)."""
    return f"{CONFIRM_PREFIX}{topic(title)}“?"


def confirmed_topic(bot_text: str) -> str | None:
    """The topic a bot turn asked to confirm, or None when that turn was no confirmation question."""
    match = _CONFIRM_RE.match(bot_text.strip())
    return match.group(1) if match else None


@dataclass(frozen=True)
class Pending:
    """An open confirmation: the caller's original question, the turns before it, and the asked topic."""

    question: str
    history: tuple[Turn, ...]
    topic: str


def pending(history: Sequence[Turn]) -> Pending | None:
    """The confirmation the last bot turn asked, when it did (the caller turn before it is the question)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index].role != "bot":
            continue
        asked = confirmed_topic(history[index].text)
        if asked is None:
            return None
        for before in range(index - 1, -1, -1):
            if history[before].role == "caller":
                return Pending(history[before].text, tuple(history[:before]), asked)
        return None
    return None


# A lone "nein" on 8 kHz audio often comes out of Whisper as "Ein." or "Hain." (measured on espeak-ng clips); right
# after a yes/no question no caller answers with just that word, so it counts as "nein" there.
_HEARD_NO = frozenset(("ein", "hain", "nain", "nee", "nö"))


def reply(text: str) -> bool | None:
    """A reply to the confirmation question: "ja"/keypad 1 → True, "nein"/keypad 2 → False, else None."""
    stripped = text.strip()
    if stripped == YES_DIGIT:
        return True
    if stripped == NO_DIGIT:
        return False
    if re.sub(r"[^\wäöüß]", "", stripped.lower()) in _HEARD_NO:
        return False
    return phrases.yes_or_no(stripped)


def matches_topic(title: str, asked: str) -> bool:
    return topic(title) == asked
