"""German-aware text normalisation for keyword (BM25) search.

Callers say "Perso", Whisper writes "Fuehrungszeugnis" or "Fuhrungszeugnis", pages say "Führungszeugnis" and
"Personalausweisverlängerung". BM25 only matches identical tokens, so both the index and the query pass through
the same pipeline: lowercase → spoken numbers to digits → umlaut/ß folding → colloquial synonyms → compound
splitting → stop words → light stemming.

Umlauts are folded to the *plain vowel* ("ä", "ae" and "a" all become "a"), the only canonical form in which all
three spellings meet. The collisions this causes ("Bär"/"Bar") are harmless for ranking a few hundred pages.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Container, Iterable, Mapping
from functools import lru_cache

from knowledge.textfold import fold_word

_WORD_RE = re.compile(r"[a-z0-9äöüß]+")


# --- Spoken numbers --------------------------------------------------------------------------------------------

_UNITS = {
    "null": 0,
    "eins": 1,
    "ein": 1,
    "eine": 1,
    "zwei": 2,
    "zwo": 2,
    "drei": 3,
    "vier": 4,
    "funf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
}
_TEENS = {
    "zehn": 10,
    "elf": 11,
    "zwolf": 12,
    "dreizehn": 13,
    "vierzehn": 14,
    "funfzehn": 15,
    "sechzehn": 16,
    "siebzehn": 17,
    "achtzehn": 18,
    "neunzehn": 19,
}
_TENS = {
    "zwanzig": 20,
    "dreissig": 30,
    "dreisig": 30,
    "vierzig": 40,
    "funfzig": 50,
    "sechzig": 60,
    "siebzig": 70,
    "achtzig": 80,
    "neunzig": 90,
}
# Articles that merely look like numbers: never turn a lone "ein"/"eine" into 1.
_NOT_NUMBERS = {"ein", "eine", "einer", "einen", "einem", "eines"}


def _parse_below_100(word: str) -> int | None:
    if word in _UNITS:
        return _UNITS[word]
    if word in _TEENS:
        return _TEENS[word]
    if word in _TENS:
        return _TENS[word]
    if "und" in word:
        unit, _, tens = word.partition("und")
        if unit in _UNITS and tens in _TENS and _UNITS[unit] > 0:
            return _UNITS[unit] + _TENS[tens]
    return None


def _parse_below_1000(word: str) -> int | None:
    if not word:
        return 0
    if "hundert" in word:
        head, _, rest = word.partition("hundert")
        hundreds = 1 if head in ("", "ein", "eins") else _UNITS.get(head)
        if hundreds is None or hundreds == 0:
            return None
        rest = rest.removeprefix("und")
        below = _parse_below_100(rest) if rest else 0
        return None if below is None else hundreds * 100 + below
    return _parse_below_100(word)


def parse_number_word(word: str) -> int | None:
    """A German number word (already folded: "funf", "dreissig") in 0..9999 → int, else None.

    >>> parse_number_word("siebenunddreissig")
    37
    >>> parse_number_word("zweitausendfunfundzwanzig")
    2025
    """
    if not word or word in _NOT_NUMBERS or not word.isalpha():
        return None
    if "tausend" in word:
        head, _, rest = word.partition("tausend")
        thousands = 1 if head in ("", "ein", "eins") else _UNITS.get(head)
        if thousands is None or thousands == 0:
            return None
        rest = rest.removeprefix("und")
        below = _parse_below_1000(rest)
        return None if below is None else thousands * 1000 + below
    return _parse_below_1000(word)


# --- Stop words, synonyms, stemming ----------------------------------------------------------------------------

_STOP_WORD_TEXT = """
    aber alle allem allen aller alles als also am an andere anderen auch auf aus bei beim bin bis bitte bist
    da dabei dafur damit dann darf das dass dein deine dem den denn der des dessen deshalb die dies diese
    diesem diesen dieser dieses doch dort du durch ein eine einem einen einer eines er es etwa etwas euch
    euer fur gibt gern gerne hab habe haben hallo hat hatte hier hin ich ihm ihn ihnen ihr ihre im in ist ja
    jetzt kann kannst konnen konnte man mal mein meine meinem meinen meiner mich mir mit muss musst mussen
    nach nicht noch nun nur ob oder ohne sehr sein seine sich sie sind so soll sollte uber um und uns unser
    unsere von vom vor war waren was weil welche welcher welches wenn wer werde werden wie wieder will wir
    wird wo wohl wurde wurden zu zum zur guten tag morgen ah äh ähm hm halt eigentlich denn mal sagen sag
    brauch brauche mochte moechte wurde gerne okay ok ne nen nem ner
"""
STOP_WORDS = frozenset(fold_word(w) for w in _STOP_WORD_TEXT.split())

# Colloquial or abbreviated caller words → the terms the pages use. Pages add their own ``synonyms``.
COLLOQUIAL_LEXICON: Mapping[str, tuple[str, ...]] = {
    fold_word(k): vs
    for k, vs in {
        "perso": ("personalausweis",),
        "persi": ("personalausweis",),
        "ausweis": ("personalausweis",),
        "perse": ("personalausweis",),
        "pass": ("reisepass",),
        "kinderpass": ("kinderreisepass",),
        "knollchen": ("verwarnungsgeld", "Bußgeld", "Parkverstoß"),
        "strafzettel": ("verwarnungsgeld", "Bußgeld", "Parkverstoß"),
        "blitzer": ("Bußgeld", "geschwindigkeit"),
        "Sperrmüll": ("Sperrmüll", "abfall"),
        "mull": ("abfall",),
        "mulltonne": ("Abfalltonne", "abfall"),
        "tonne": ("Abfalltonne",),
        "hundemarke": ("hundesteuer", "steuermarke"),
        "wauwau": ("hund",),
        "welpe": ("Hund",),
        "welpen": ("Hund",),
        "koter": ("Hund",),
        "Führerschein": ("fahrerlaubnis", "Führerschein"),
        "lappen": ("Führerschein", "fahrerlaubnis"),
        "kfz": ("fahrzeug", "zulassung"),
        "auto": ("fahrzeug", "kfz"),
        "wagen": ("fahrzeug", "kfz"),
        "pkw": ("fahrzeug", "kfz"),
        "motorrad": ("fahrzeug", "kfz"),
        "roller": ("fahrzeug", "kfz"),
        "moped": ("fahrzeug", "kfz"),
        "anhanger": ("fahrzeug", "kfz"),
        "wohnmobil": ("fahrzeug", "kfz"),
        "entbunden": ("geburt",),
        "entbindung": ("geburt",),
        "ummelden": ("ummeldung", "wohnsitz"),
        "anmelden": ("anmeldung",),
        "abmelden": ("abmeldung",),
        "umzug": ("ummeldung", "wohnsitz"),
        "umgezogen": ("ummeldung", "wohnsitz"),
        "hartz": ("Bürgergeld", "jobcenter"),
        "stutze": ("Bürgergeld", "jobcenter"),
        "arbeitslos": ("arbeitsagentur", "jobcenter"),
        "kindergarten": ("kita", "Kindertagesstätte"),
        "krippe": ("kita", "Kindertagesstätte"),
        "kita": ("Kindertagesstätte",),
        "hochzeit": ("Eheschließung", "standesamt"),
        "heiraten": ("Eheschließung", "standesamt"),
        "trauung": ("Eheschließung", "standesamt"),
        "gestorben": ("sterbefall", "sterbeurkunde"),
        "tod": ("sterbefall",),
        "baby": ("geburt", "geburtsurkunde"),
        "gefunden": ("Fundbüro", "fundsache"),
        "parkausweis": ("anwohnerparken",),
        "parkplatz": ("parken",),
        "steuererklarung": ("finanzamt",),
        "miete": ("wohngeld",),
        "zuschuss": ("wohngeld",),
        "gewerbeschein": ("gewerbeanmeldung",),
        "laden": ("gewerbe",),
        "polizeiliches": ("Führungszeugnis",),
        "offnungszeit": ("Öffnungszeiten",),
        "aufhaben": ("Öffnungszeiten",),
        "offen": ("Öffnungszeiten",),
        "geoffnet": ("Öffnungszeiten",),
        "kostet": ("Gebühr", "kosten"),
        "teuer": ("Gebühr", "kosten"),
        "preis": ("Gebühr", "kosten"),
        "termin": ("terminvereinbarung", "termin"),
    }.items()
}
# The same, folded, for BM25.
COLLOQUIAL_SYNONYMS: Mapping[str, tuple[str, ...]] = {
    k: tuple(fold_word(v) for v in vs) for k, vs in COLLOQUIAL_LEXICON.items()
}
# Lexicon words that also stand for compounds ending in them ("Gebrauchtwagen", "Dienstauto" → a vehicle):
# the last part of a German compound names what it is.
_COMPOUND_HEADS = sorted((k for k in COLLOQUIAL_LEXICON if len(k) >= 4), key=len, reverse=True)


def colloquial_terms(word: str, known: Container[str] = ()) -> tuple[str, ...]:
    """The official terms a folded caller word stands for: its own lexicon entry, else, for a word not in
    ``known`` (the index vocabulary), that of its last part ("gebrauchtwagen" → "wagen")."""
    terms = COLLOQUIAL_LEXICON.get(word)
    if terms is not None:
        return terms
    if word in known:
        return ()
    for head in _COMPOUND_HEADS:
        if word.endswith(head) and len(word) - len(head) >= 3 and word.isalpha():
            return COLLOQUIAL_LEXICON[head]
    return ()


_SUFFIXES_NOUN = ("ungen", "ung")  # "Anmeldung"/"anmelden", "Einbürgerung"/"einbürgern" meet at the stem
_SUFFIXES_LONG = ("ern", "em", "er", "nd")
_SUFFIXES_SHORT = ("en", "es", "e", "s", "n")


def stem(word: str) -> str:
    """Light German stemming: strip common inflection suffixes (a trimmed CISTEM), never below 4 letters."""
    if word.isdigit() or len(word) <= 4:
        return word
    for suffix in _SUFFIXES_NOUN:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    for suffix in _SUFFIXES_LONG:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    for suffix in _SUFFIXES_SHORT:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    return word


# --- Compound splitting ----------------------------------------------------------------------------------------

MIN_PART = 3
# Separable verb particles: "melde ich mich um" is "ummelden", "melde ... ab" is "abmelden".
SEPARABLE_PARTICLES = frozenset(("ab", "an", "um", "aus"))
_LINKERS = ("", "s", "es", "n", "en", "e")

# Building blocks of municipal vocabulary that pages rarely spell out alone (folded).
_BASE_VOCABULARY_TEXT = """
    personal ausweis pass reise kinder antrag anmeldung abmeldung ummeldung meldung melde bescheinigung
    bescheid verlangerung verlust verloren gebuhr gebuhren steuer hund hunde grund gewerbe abfall mull sperr
    tonne bio papier rest wertstoff parken anwohner park wohn geld kita tages statte geburt ehe sterbe
    urkunde fuhrung zeugnis fund buro amt stadt kreis burger termin offnungs zeiten zeit kosten wasser
    strasse verkehr fahrzeug zulassung schein fahrer erlaubnis heirat trauung name namens anderung
    beglaubigung kopie brief wahl wahlschein karte bauen bau genehmigung feuer wehr polizei notruf schule
    unterkunft rente jugend sozial hilfe zuschuss beratung zentrale telefon nummer adresse platz sport halle
    friedhof grab bestattung baum fall recht auskunft register
"""
BASE_VOCABULARY = frozenset(fold_word(w) for w in _BASE_VOCABULARY_TEXT.split())


class CompoundSplitter:
    """Greedy longest-prefix splitter against a vocabulary of known (folded) words.

    "personalausweisverlangerung" → ["personalausweis", "verlangerung"] when both parts are known; German
    linking elements ("s", "es", "n", "en") between parts are tolerated.
    """

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        self.vocabulary = {w for w in BASE_VOCABULARY | set(vocabulary) if len(w) >= MIN_PART}
        self._cache: dict[str, list[str] | None] = {}

    def split(self, word: str) -> list[str]:
        """The parts of ``word`` (two or more), or ``[]`` when it is not a known compound."""
        if len(word) < 2 * MIN_PART + 1 or not word.isalpha():
            return []
        parts = self._split(word, top=True)
        return parts or []

    def _split(self, word: str, top: bool) -> list[str] | None:
        if not top and word in self.vocabulary:  # before the cache: a known word is a valid tail part as is
            return [word]
        if word in self._cache:
            return self._cache[word]
        result: list[str] | None = None
        for end in range(len(word) - MIN_PART, MIN_PART - 1, -1):
            head = word[:end]
            if head not in self.vocabulary:
                continue
            for linker in _LINKERS:
                if not word.startswith(linker, end):
                    continue
                rest = word[end + len(linker) :]
                if len(rest) < MIN_PART:
                    continue
                tail = self._split(rest, top=False)
                if tail:
                    result = [head, *tail]
                    break
            if result:
                break
        self._cache[word] = result
        return result


# --- Pipeline --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def normalize_word(raw: str) -> str:
    """One lowercase word → folded form, or its digits if it is a spoken number (cached: words repeat a lot)."""
    word = fold_word(raw)
    number = parse_number_word(word)
    return str(number) if number is not None else word


def words(text: str) -> list[str]:
    """Folded word tokens, with spoken numbers already turned into digits."""
    return [normalize_word(raw) for raw in _WORD_RE.findall(text.lower())]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` as soon as it must exceed ``limit``."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return min(previous[-1], limit + 1)


class Normalizer:
    """Turns text into BM25 tokens; holds the compound vocabulary collected from the indexed documents."""

    def __init__(self, vocabulary: Iterable[str] = (), expand_synonyms: bool = True) -> None:
        self.splitter = CompoundSplitter(vocabulary)
        self.expand_synonyms = expand_synonyms
        self._cache: dict[str, tuple[list[str], list[str]]] = {}
        self._stems = {stem(w) for w in self.splitter.vocabulary}
        self._by_initial: dict[str, list[str]] | None = None

    @staticmethod
    def vocabulary_of(texts: Iterable[str]) -> set[str]:
        """The folded words of the corpus, used as the compound splitter's dictionary."""
        vocab: set[str] = set()
        for text in texts:
            vocab.update(words(text))
        return {w for w in vocab if len(w) >= MIN_PART and w not in STOP_WORDS and not w.isdigit()}

    def tokens(self, text: str) -> list[str]:
        """BM25 tokens of ``text``: stems of its words plus synonym expansions and compound parts."""
        primary, secondary = self.weighted_tokens(text)
        return primary + secondary

    def weighted_tokens(self, text: str) -> tuple[list[str], list[str]]:
        """(primary, secondary) tokens: what was said (stems, typo fixes, rejoined compounds) and what it implies
        (compound parts, colloquial expansions), so that search can weigh the second kind less."""
        primary: list[str] = []
        secondary: list[str] = []
        cache = self._cache
        found = words(text)
        # Query side: rejoin compounds the ASR split ("Personal Ausweis", "um melden").
        if self.expand_synonyms:
            for joined in self._rejoined(found):
                found.append(joined)
        for word in found:
            expanded = cache.get(word)
            if expanded is None:
                if len(cache) > 200_000:  # a long-running service sees endless odd words; stay bounded
                    cache.clear()
                expanded = cache[word] = self._word_tokens(word)
            primary.extend(expanded[0])
            secondary.extend(expanded[1])
        return primary, secondary

    def _rejoined(self, found: list[str]) -> list[str]:
        """Index words the caller's words form when put back together: an ASR-split compound ("um melden",
        "Personal Ausweis") or a separable verb ("melde ich das Gewerbe ab" → "abmelde")."""
        joined: list[str] = []
        candidates = [a + b for a, b in itertools.pairwise(found)]
        for position, particle in enumerate(found):
            if particle in SEPARABLE_PARTICLES:
                candidates.extend(particle + verb for verb in found[:position] if len(verb) >= 4)
        for word in candidates:
            if word.isalpha() and stem(word) in self._stems and word not in joined and word not in found:
                joined.append(word)
        return joined

    def knows(self, word: str, typos: bool = True) -> bool:
        """Do the indexed pages use this folded word: itself, its stem, its compound parts or (``typos``) a
        one-typo neighbour (knowledge.scope tells an off-topic question from a misheard one by this)?"""
        if word in self.splitter.vocabulary or stem(word) in self._stems:
            return True
        return bool(self.splitter.split(word)) or (typos and bool(self.near_words(word)))

    def near_words(self, word: str) -> list[str]:
        """Index words one typo away (two for long words) from an unknown query word: "sperrmuhl" → sperrmull.

        Only for words of 7+ letters that the index does not know, with the same first letter: short words and
        first letters are what ASR gets right, and short words would match too much.
        """
        if (
            len(word) < 7
            or not word.isalpha()
            or stem(word) in self._stems
            or word in self.splitter.vocabulary
        ):
            return []
        if self._by_initial is None:  # built whole, then published: searches run in several threads
            by_initial: dict[str, list[str]] = {}
            for known in self.splitter.vocabulary:
                if len(known) >= 6:
                    by_initial.setdefault(known[0], []).append(known)
            self._by_initial = by_initial
        limit = 1 if len(word) < 10 else 2
        best: list[str] = []
        best_distance = limit + 1
        for known in self._by_initial.get(word[0], ()):
            if abs(len(known) - len(word)) >= best_distance:
                continue
            distance = edit_distance(word, known, limit)
            if distance > limit:
                continue
            if distance < best_distance:
                best, best_distance = [known], distance
            elif distance == best_distance:
                best.append(known)
        return sorted(best)[:2]

    def embedding_query(self, text: str) -> str:
        """The question for the embedding model, with official terms for colloquial words and rejoined
        compounds appended ("kostet das um melden" → "... (ummelden)"); e5 knows neither "Perso" nor split words.
        """
        extra: list[str] = []
        raw = _WORD_RE.findall(text.lower())
        for first, second in itertools.pairwise(raw):
            joined = first + second
            if joined.isalpha() and stem(normalize_word(joined)) in self._stems and joined not in extra:
                extra.append(joined)
        for word in words(text):
            for term in colloquial_terms(word, self.splitter.vocabulary):
                if term not in extra:
                    extra.append(term)
        return f"{text} ({', '.join(extra)})" if extra else text

    def _word_tokens(self, word: str) -> tuple[list[str], list[str]]:
        if word in STOP_WORDS:
            return [], []
        primary = [stem(word)]
        secondary = self._parts(word)
        if not secondary and self.expand_synonyms:
            for near in self.near_words(word):  # a typo: the index word counts as said
                primary.append(stem(near))
                secondary.extend(self._parts(near))
        if self.expand_synonyms:
            terms = colloquial_terms(word, self.splitter.vocabulary)
            for term in (fold_word(t) for t in terms):
                secondary.append(stem(term))
                secondary.extend(self._parts(term))
        return primary, secondary

    def _parts(self, word: str) -> list[str]:
        """Stems of a compound's parts and of their parts ("personalausweisverlangerung" → ..., ausweis)."""
        out: list[str] = []
        for part in self.splitter.split(word):
            out.append(stem(part))
            out.extend(stem(sub) for sub in self.splitter.split(part))
        return out
