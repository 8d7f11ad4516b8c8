"""Out of scope or misheard? Decides what an unsure answer says: what the hotline is for, or "bitte wiederholen".

When retrieval is not confident there are two different situations. The caller said clear German about
something the town does not handle ("Wer wird Deutscher Meister?", "Wie wird das Wetter morgen?", a cake recipe):
asking them to rephrase is useless, they should hear what the hotline is for, with examples and the way to a
person. Or the words were misheard or garbled ("Mackrott, Anwohnerparken"): then a question back is right.

The difference is read from what the town's knowledge knows: the index vocabulary (every word of every page,
its compound parts, one-typo neighbours, the colloquial lexicon). Words of a misheard question about a service
are mostly known to it (ASR turns speech into the service words it expects); the topic words of an off-topic
question are not. A short list of everyday off-topic subjects (weather, sport, cooking ...) decides alone, but
only for words the town's pages do not use themselves (a town with a "Fußballplatz" page keeps that topic).
Pure functions over the caller's words and the index vocabulary; microseconds.
"""

from __future__ import annotations

import re
from typing import Protocol

from knowledge import normalize
from knowledge.confidence import TownLexicon, content_words
from knowledge.textfold import fold_text, fold_word

# Everyday subjects a town hotline never answers (folded stems, matched as word starts).
_OFF_TOPIC_STEMS_TEXT = """
    wetter regen regnet schnee schneit schnei sonnig gewitter temperatur
    fussball bundesliga meister meisterschaft weltmeister europameister tore spiel spielt spiele gewonnen
    mannschaft verein bayern schalke dortmund tabelle formel tennis olympi
    rezept kuchen backen backe backt kochen koche kocht zutaten torte pizza nudel suppe tomat sosse sauce
    hauptstadt frankreich italien spanien amerika usa kontinent planet mond sonne
    lotto lottozahlen aktie aktien bitcoin boerse borse kurs
    film filme serie serien netflix kino fernsehen tatort musik lied song konzert
    witz witze horoskop sternzeichen
    auto kaufen handy iphone smartphone computer laptop
    urlaub flug fluge flugzeug hotel reise
    rechnen mathe wurzel
    papst kanzler kanzlerin prasident konig konigin schauspieler sanger promi
    """
_OFF_TOPIC_STEMS = tuple(_OFF_TOPIC_STEMS_TEXT.split())
# The subjects that never belong to a question for a town (weather, sport results, recipes, lottery ...): these
# are enough even when a page matches the rest of the question confidently. Travel, countries, clubs or cars are
# not here: "Ausweis für den Flug", "nach Spanien ziehen" and "als Verein ein Osterfeuer" are the town's business.
_HARD_OFF_TOPIC_STEMS_TEXT = """
    wetter regen regnet schnee schneit schnei gewitter temperatur sonnig
    fussball bundesliga meisterschaft weltmeister europameister mannschaft formel tennis olympi
    rezept kuchen backen backe backt kochen koche kocht zutaten torte pizza nudel suppe tomat sosse sauce
    hauptstadt kontinent planet lotto lottozahlen aktie aktien bitcoin borse boerse netflix tatort
    witz witze horoskop sternzeichen papst kanzler kanzlerin prasident
    """
_HARD_OFF_TOPIC_STEMS = tuple(_HARD_OFF_TOPIC_STEMS_TEXT.split())
# Compounds of an off-topic subject ("Marmorkuchen", "Tomatensoße", "Lottozahlen").
_OFF_TOPIC_ENDINGS = ("kuchen", "torte", "sosse", "sauce", "suppe", "rezept", "wetter")
# Arithmetic ("wie viel ist zwölf mal dreizehn"): numbers only, no topic word at all.
_ARITHMETIC = re.compile(r"\b\d+ (?:mal|plus|minus|durch|geteilt durch|hoch) \d+\b")
# Words that ask without naming a topic ("wer", "wird", "morgen", "heute"): never evidence either way.
_NEUTRAL_TEXT = """
    wer wird wirst werden wurde morgen heute gestern ubermorgen jetzt gerade bald immer nie eigentlich
    kannst konnen koennen sagen erzahlen erklaren wissen weisst bitte mal gibt gibts geben welche welcher
    welches wieviel wieviele viele viel mehr meisten beste bester besten gut gute guter neue neuen neu
    ihr euch sie uns mir mich dir dich """
_NEUTRAL = frozenset(fold_word(w) for w in _NEUTRAL_TEXT.split())


class Vocabulary(Protocol):
    """What this module needs from the retriever's :class:`knowledge.normalize.Normalizer`."""

    def knows(self, word: str, typos: bool = True) -> bool: ...


def _colloquial(word: str) -> bool:
    """A caller's word for an official term ("Perso", "Knöllchen"): known by the lexicon, not the pages."""
    return bool(normalize.colloquial_terms(word))


def topic_words(question: str, town: TownLexicon) -> list[str]:
    """The caller's words that could name a topic (no stop words, no question words, no town name)."""
    words = [normalize.normalize_word(w) for w in content_words(question, town)]
    return [w for w in words if w not in normalize.STOP_WORDS and w not in _NEUTRAL and not w.isdigit()]


def off_topic_words(words: list[str], vocabulary: Vocabulary, hard: bool = False) -> list[str]:
    """The words of an everyday off-topic subject that the town's pages do not use themselves (``hard``: only
    subjects that never belong to a town's business)."""
    stems = _HARD_OFF_TOPIC_STEMS if hard else _OFF_TOPIC_STEMS
    return [
        w
        for w in words
        if (w.startswith(stems) or w.endswith(_OFF_TOPIC_ENDINGS))
        and not vocabulary.knows(w, typos=False)  # "schneien" is no typo of "schneiden"
    ]


def _known_share(words: list[str], vocabulary: Vocabulary) -> float:
    return sum(1 for w in words if vocabulary.knows(w) or _colloquial(w)) / len(words)


def names_off_topic_subject(question: str, vocabulary: Vocabulary | None, town: TownLexicon) -> bool:
    """A subject that never belongs to a town's business and that the pages never mention, with at most half
    the words the town's own ("regnet es am Wochenende", "wie alt ist der Papst"): not answered even when some
    page happens to match the rest confidently."""
    if vocabulary is None:
        return False
    words = topic_words(question, town)
    if not words or not off_topic_words(words, vocabulary, hard=True):
        return False
    return _known_share(words, vocabulary) <= 0.5


# Of the topic words, at most this share may be known to the knowledge base for the question to be off topic.
MAX_KNOWN_SHARE = 0.34


def is_out_of_scope(question: str, vocabulary: Vocabulary | None, town: TownLexicon) -> bool:
    """Clear words about something the town's knowledge does not cover (call only when retrieval is unsure).

    True when an everyday off-topic subject is named, or when at most a third of the caller's topic words
    (and at least one word of 4+ letters) are known to the index; False when there is nothing to judge (no
    topic words, no vocabulary) or when most words are the town's own (then the caller was probably misheard).
    """
    if vocabulary is None:
        return False
    if _ARITHMETIC.search(" ".join(normalize.words(question))):
        return True
    words = topic_words(question, town)
    if not words or not re.search(r"[a-z]{4,}", fold_text(question)):
        return False
    if off_topic_words(words, vocabulary):
        return True
    return _known_share(words, vocabulary) <= MAX_KNOWN_SHARE and any(len(w) >= 4 for w in words)
