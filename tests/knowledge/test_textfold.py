"""The four folds of knowledge.textfold, pinned to what guard, normaliser, verifier and call script always did.

The expected values were produced by the four private functions these replace (guard.fold, normalize.fold,
verify.fold, call_script.normalise_utterance); the inputs are the cases where the variants differ.
"""

from __future__ import annotations

import pytest

from knowledge.textfold import fold_text, fold_umlauts, fold_word, utterance_words

# input → (fold_text, fold_word, fold_umlauts, utterance_words)
CASES = {
    "Führung Fuehrung Fuhrung": (
        "fuhrung fuhrung fuhrung",
        "fuhrung fuhrung fuhrung",
        "fuhrung fuehrung fuhrung",
        "führung fuehrung fuhrung",
    ),
    "  Straße\tÄrger  ": ("strasse arger", "  strasse\targer  ", "  strasse\targer  ", "straße ärger"),
    "Café à la carte ç": ("cafe a la carte c", "cafe a la carte c", "café à la carte ç", "café à la carte ç"),
    "Steuer Feuer Quelle neue Bauer": ("steuer feuer quelle neue bauer",) * 4,
    "uebel Uebel x uebel": (
        "ubel ubel x ubel",
        "ubel uebel x uebel",
        "uebel uebel x uebel",
        "uebel uebel x uebel",
    ),
    "9ue 1ae": ("9u 1a", "9ue 1ae", "9ue 1ae", "9ue 1ae"),
    "Tschüss! Auf Wiederhören’s": (
        "tschuss! auf wiederhoren's",
        "tschuss! auf wiederhoren’s",
        "tschuss! auf wiederhoren’s",
        "tschüss auf wiederhörens",
    ),
    "Das war's": ("das war's", "das war's", "das war's", "das wars"),
    "“Zitat” – ok — ja\u00a0nein": (
        "“zitat” – ok — ja nein",
        "“zitat” – ok — ja\u00a0nein",
        "“zitat” - ok - ja nein",
        "zitat ok ja nein",
    ),
    "ÆØ œ ﬁ Ⅳ ²": ("æø œ fi iv 2", "æø œ ﬁ ⅳ ²", "æø œ ﬁ ⅳ ²", "æø œ ﬁ ⅳ ²"),
    "Mo–Fr 8:00": ("mo–fr 8:00", "mo–fr 8:00", "mo-fr 8:00", "mo fr 8 00"),
}


@pytest.mark.parametrize("text", list(CASES))
def test_each_fold_keeps_its_consumers_behaviour(text: str) -> None:
    folded = (fold_text(text), fold_word(text), fold_umlauts(text), utterance_words(text))
    assert folded == CASES[text]


def test_the_consumers_use_the_shared_folds() -> None:
    from knowledge import guard, normalize, verify
    from voicebot.pipeline import call_script

    for module in (guard, normalize, verify):
        assert not hasattr(module, "fold"), f"{module.__name__} has its own fold again"
    assert not hasattr(call_script, "normalise_utterance")
    assert call_script.matches_phrase("Tschüss!", ["tschüss"])
    assert normalize.normalize_word("Führungszeugnis") == fold_word("Führungszeugnis")
