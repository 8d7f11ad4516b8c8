"""Text folding: the one place that decides how caller words, page text and model output are compared.

Callers say and ASR writes "Führung", "Fuehrung" or "Fuhrung"; pages write "Führung". Each consumer needs a
slightly different fold, and each variant below is kept exactly as its consumer has always used it (the tests
pin them on tricky inputs), so that one module, not four private copies, says what "the same word" means:

* :func:`fold_text`: whole texts for the guard's patterns and for retrieval confidence: lower case,
  umlauts/ß *and* their ae/oe/ue spellings to plain vowels, every accent removed, ’ and ` to ', whitespace
  collapsed.
* :func:`fold_word`: one word for BM25 (:mod:`knowledge.normalize`): the same umlaut and ae/oe/ue folding, but
  only the accents German pages use (é è à ç), no whitespace handling, and an ae/oe/ue only after a letter
  or at the start counts as an umlaut.
* :func:`fold_umlauts`: fact checking of generated sentences (:mod:`knowledge.verify`): lower case, umlauts/ß
  and dashes only; "ae" spellings and accents stay, because the verifier compares the model's words with the
  page's own spelling.
* :func:`utterance_words`: short call-script phrases ("Wie bitte?", "Auf Wiederhören"): lower case, umlauts
  *kept* (the fuzzy match tolerates ASR spellings), apostrophes dropped, punctuation to spaces.
"""

from __future__ import annotations

import re
import unicodedata

_UMLAUTS = {"ä": "a", "ö": "o", "ü": "u", "ß": "ss"}

_TEXT_TABLE = str.maketrans({**_UMLAUTS, "’": "'", "`": "'"})
# "ue" for "ü" (typed without umlauts), but not in "Feuer", "Steuer", "Frauen", "Quelle".
_TEXT_DIGRAPH = re.compile(r"(?<![aeiouq])(ae|oe|ue)")

_WORD_TABLE = str.maketrans({**_UMLAUTS, "é": "e", "è": "e", "à": "a", "ç": "c"})
_WORD_DIGRAPH = re.compile(r"(?<=[a-z])(ae|oe|ue)|^(ae|oe|ue)")
# "ue" after a vowel or "q" ("eue"/"aue", "Quelle") is not an umlaut ("Steuer", "neue", "Bauer").
_WORD_DIGRAPH_KEEP_AFTER = frozenset("aeiouq")

_FACT_TABLE = str.maketrans({**_UMLAUTS, "–": "-", "—": "-", "\u00a0": " "})


def fold_text(text: str) -> str:
    """Lower-case, umlauts/ß and their ae/oe/ue spellings folded, accents removed, whitespace collapsed."""
    lowered = text.lower().translate(_TEXT_TABLE)
    decomposed = unicodedata.normalize("NFKD", lowered)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    undigraphed = _TEXT_DIGRAPH.sub(lambda m: m.group(0)[0], stripped)
    return re.sub(r"\s+", " ", undigraphed).strip()


def fold_word(word: str) -> str:
    """Lowercase and fold umlauts/ß and their ae/oe/ue spellings to plain vowels ("Führung" → "fuhrung")."""
    word = word.lower().translate(_WORD_TABLE)

    def _replace(match: re.Match[str]) -> str:
        start = match.start()
        if start > 0 and word[start - 1] in _WORD_DIGRAPH_KEEP_AFTER:
            return match.group(0)
        return match.group(0)[0]

    return _WORD_DIGRAPH.sub(_replace, word)


def fold_umlauts(text: str) -> str:
    """Lower-case with umlauts/ß folded and dashes made plain ("Mo–Fr" → "mo-fr"); nothing else changes."""
    return text.lower().translate(_FACT_TABLE)


def utterance_words(text: str) -> str:
    """Lowercase, umlauts kept, punctuation and apostrophes dropped, spaces collapsed."""
    text = unicodedata.normalize("NFC", text.lower()).replace("’", "'").replace("'", "")
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text)).strip()
