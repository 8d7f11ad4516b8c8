"""How sure is retrieval that its first page answers the question? Page ranks, cosine and word coverage.

Judged on pages (not chunks) as the hybrid retriever returns them:

* rank support: 1.0 when BM25 and the embeddings both put the page first, lower the further apart they are
  (e5 cosines are too bunched to threshold on their own, so they only add a little);
* coverage: the share of the caller's topic words found on the page (title, synonyms, curated answer, text);
  it catches out-of-scope questions that both retrievers still map onto *some* page, and it breaks ties when
  the two retrievers each put a different page first;
* a close call: such a tie on a one- or two-word question → the caller is asked "Meinen Sie A oder B?".

The weights were calibrated on ``knowledge/eval/questions.yaml`` (docs/decisions/0250-answer-engine.md).
Also here: which short questions lean on the previous turn ("und was kostet das?").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from knowledge import normalize
from knowledge.textfold import fold_text, fold_word
from knowledge.types import Chunk, Hit


@dataclass(frozen=True)
class PageCandidate:
    """One knowledge page among the hits, with page-level ranks (1-based, 0 = that retriever missed it)."""

    doc_id: str
    best: Hit  # the page's highest fused hit
    rank: int
    bm25_rank: int
    embedding_rank: int
    cosine: float | None = None  # the page's best embedding cosine, when the retriever reports it

    @property
    def chunk(self) -> Chunk:
        return self.best.chunk


def rank_pages(hits: Sequence[Hit], cosines: Sequence[float] = ()) -> list[PageCandidate]:
    """Collapse chunk hits to pages and give each page its rank in fused, BM25 and embedding order."""

    def page_ranks(key_rank: list[int]) -> dict[str, int]:
        # Chunk order by that retriever's rank.
        ranked = sorted((r, i) for i, r in enumerate(key_rank) if r > 0)
        ranks: dict[str, int] = {}
        for _, index in ranked:
            doc_id = hits[index].chunk.doc_id
            if doc_id not in ranks:
                ranks[doc_id] = len(ranks) + 1
        return ranks

    bm25 = page_ranks([h.bm25_rank for h in hits])
    embedding = page_ranks([h.embedding_rank for h in hits])
    cosine_of = {id(hit): cosine for hit, cosine in zip(hits, cosines, strict=False)}
    best: dict[str, Hit] = {}
    for hit in sorted(hits, key=lambda h: -h.score):
        best.setdefault(hit.chunk.doc_id, hit)
    return [
        PageCandidate(
            doc_id, hit, rank, bm25.get(doc_id, 0), embedding.get(doc_id, 0), cosine_of.get(id(hit))
        )
        for rank, (doc_id, hit) in enumerate(best.items(), start=1)
    ]


def _rank_support(page: PageCandidate) -> float:
    """1.0 when both retrievers put the page first; lower the further apart they are (0 = not retrieved)."""
    low, high = sorted(r or 99 for r in (page.bm25_rank, page.embedding_rank))
    if high == 1:
        return 1.0
    if low == 1 and high <= 2:
        return 0.8
    if low == 1 and high <= 5:
        return 0.6
    if high <= 3:
        return 0.55
    if low <= 2 and high <= 6:
        return 0.4
    return 0.15 if low == 1 else 0.05


# e5 cosines of German text sit in ≈ 0.76–0.93; below 0.80 is unrelated, above 0.88 a clear match.
COSINE_FLOOR = 0.80
COSINE_SPAN = 0.08
WEIGHTS = {"ranks": 0.55, "cosine": 0.2, "coverage": 0.25}
NO_OVERLAP_CAP = 0.45


_STOPWORD_TEXT = (
    "der die das den dem des ein eine einen einem einer eines und oder aber ich mich mir mein meine "
    "meinen meinem meiner du sie ihr ihre wir uns es er man was wie wo wann wer welche welcher "
    "welches warum wieso weshalb ist sind bin bist war hat habe haben hatte kann konnen muss mussen "
    "soll sollen will wollen mochte mochten brauche brauchen bekomme bekommt gibt geht gehen machen "
    "mache macht tun tut da dort hier auch noch schon mal bitte danke denn doch nicht kein keine zu "
    "zum zur im in an am auf aus bei mit fur von vom nach uber unter vor bis ob wenn dass als so "
    "sehr ganz gerne gern eigentlich jetzt heute morgen hallo guten tag ja nein ok okay also halt na "
    "ne eben einfach wieder frage fragen wissen weiss sagen sage dazu dafur davon denen dies diese "
    "dieser dieses jemand etwas was's wat nen n the a to of is my i stadt gemeinde stadtverwaltung "
    "beste besten gut gute guten schnell schnelle irgendwie eigentlich ding sachen rufen anrufen kaufen"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class TownLexicon:
    """The town's own words, which say nothing about the topic ("Hundesteuer in Musterstadt").

    Each answer engine owns one (built from its configured town) and hands it to the functions below; hashable,
    so the caches of those functions keep towns apart.
    """

    words: frozenset[str] = frozenset()

    @classmethod
    def of(cls, town: str) -> TownLexicon:
        return cls(frozenset(fold_text(town).split()))


def content_words(text: str, town: TownLexicon) -> list[str]:
    """The words that carry the request, folded (used for coverage and follow-up detection)."""
    words = re.findall(r"[a-z0-9]+", fold_text(text))
    return [w for w in words if w not in _STOPWORDS and w not in town.words and len(w) > 2]


# Words that ask for a fee or a duration: on almost every page, so they say nothing about the topic.
_ASKING_WORDS = frozenset(
    (
        "koste",
        "teuer",
        "preis",
        "gebuh",
        "dauer",
        "lange",
        "offen",
        "geoff",
        "viel",
        "zahl",
        "zahlt",
        "zahle",
        "bezah",
    )
)


@lru_cache(maxsize=1024)
def _page_words(chunk: Chunk) -> tuple[str, frozenset[str]]:
    """A page's folded text and its 5-letter stems (cached: the same pages are judged again and again)."""
    page = fold_text(" ".join((chunk.title, " ".join(chunk.synonyms), chunk.spoken_answer, chunk.text)))
    return page, frozenset(word[:5] for word in re.findall(r"[a-z0-9]+", page))


def _coverage(question: str, chunk: Chunk, town: TownLexicon) -> float:
    """Share of the caller's topic words found on the page (same 5-letter stem, or inside a compound).

    Generic words ("kostet", "dauert") count only when the question has nothing else: "was kostet ein
    iPhone" must not match every page with a fee on it.
    """
    words = content_words(question, town)
    topical = [w for w in words if w[:5] not in _ASKING_WORDS]
    words = topical or words
    if not words:
        return 0.0
    page, stems = _page_words(chunk)

    def on_page(word: str) -> bool:
        return word[:5] in stems or (len(word) >= 5 and word in page)

    # A colloquial word counts when the page uses the official term ("Gebrauchtwagen" → "Fahrzeug").
    found = sum(
        1 for w in words if on_page(w) or any(on_page(fold_word(t)) for t in normalize.colloquial_terms(w))
    )
    return found / len(words)


# --- Curated names: the page's title and synonyms said in full -------------------------------------------------

# How many of the fused ranking's first pages a curated name may lift to the top.
NAME_WINDOW = 6
# A page the caller named in full counts like one that both retrievers put near the top (0.6), or like one
# put first by one of them and second by the other when one of them did put it first (0.8).
NAME_RANK_SUPPORT = (0.6, 0.8)
NAME_COVERAGE_SLACK = 0.25


def _word_forms(word: str, caller: bool = True) -> frozenset[str]:
    """A folded word's stem; for a caller's word also the stems of the official terms it stands for ("offen"
    → "offnungszeit"), so that "habt ihr offen" meets the synonym "Öffnungszeiten". Names are not expanded:
    the lexicon also lists related terms ("heiraten" → "Standesamt") that are no name of the page."""
    folded = fold_word(word)
    forms = {normalize.stem(folded)}
    if caller:
        forms.update(normalize.stem(term) for term in normalize.COLLOQUIAL_SYNONYMS.get(folded, ()))
    return frozenset(forms)


# Separable verb particles: "melde ich das Gewerbe ab" says "abmelden".
_PARTICLES = ("ab", "an", "um", "aus")


@dataclass(frozen=True)
class _Said:
    """A word the caller said (or two or more adjacent ones joined), with its forms and word positions."""

    word: str
    forms: frozenset[str]
    positions: frozenset[int]


@lru_cache(maxsize=256)
def _said_words(question: str, town: TownLexicon) -> tuple[_Said, ...]:
    """The caller's topic words, plus what ASR and German grammar split apart: adjacent topic words joined
    ("hunde steuer" → "hundesteuer", "um melden" → "ummelden"), spelled letters joined ("o g s" → "ogs") and
    separable particles put back ("melde ich das Gewerbe ab" → "abmelde")."""
    raw = re.findall(r"[a-z0-9]+", fold_text(question))
    topical = set(content_words(question, town))
    topical.update(w for w in raw if len(w) == 2 and w.isalpha() and w not in _STOPWORDS)  # "ID", "aG"
    said = [_Said(w, _word_forms(w), frozenset({i})) for i, w in enumerate(raw) if w in topical]
    for i, (first, second) in enumerate(itertools.pairwise(raw)):
        if (first in topical or first in _PARTICLES) and second in topical and (first + second).isalpha():
            said.append(_Said(first + second, _word_forms(first + second), frozenset({i, i + 1})))
    start = 0
    while start < len(raw):  # a run of single letters is a spelled acronym
        end = start
        while end < len(raw) and len(raw[end]) == 1 and raw[end].isalpha():
            end += 1
        if end - start >= 2:
            letters = "".join(raw[start:end])
            said.append(_Said(letters, frozenset({letters}), frozenset(range(start, end))))
        start = max(end, start + 1)
    for p, particle in enumerate(raw):
        if particle in _PARTICLES:
            for i, verb in enumerate(raw[:p]):
                if verb in topical and verb.isalpha():
                    said.append(_Said(particle + verb, _word_forms(particle + verb), frozenset({i, p})))
    return tuple(said)


def _name_words(name: str, town: TownLexicon) -> list[str]:
    """A curated name's topic words; particles and spelled letters stay attached to the next word
    ("Ab melden" → "abmelden", "O G S" → "ogs"), so that a split name does not shrink to a generic word."""
    joined: list[str] = []
    carry = ""
    for word in re.findall(r"[a-z0-9]+", fold_text(name)):
        if word in _PARTICLES or (len(word) == 1 and word.isalpha()):
            carry += word
            continue
        joined.append(carry + word)
        carry = ""
    if carry:
        joined.append(carry)
    # Two-letter words stay ("Steuer ID" is no "Steuer"); numbers are dropped ("ALG 2", "Hartz 4").
    return [
        w for w in joined if w not in _STOPWORDS and w not in town.words and len(w) >= 2 and not w.isdigit()
    ]


@lru_cache(maxsize=4096)
def _curated_names(
    title: str, synonyms: tuple[str, ...], town: TownLexicon
) -> tuple[tuple[frozenset[str], ...], ...]:
    """Each curated name of a page as the forms of its topic words (names without topic words are dropped)."""
    names = []
    for name in (title, *synonyms):
        words = _name_words(name, town)
        if words:
            names.append(tuple(_word_forms(w, caller=False) for w in words))
    return tuple(names)


def _said_by(forms: frozenset[str], said: Sequence[_Said]) -> list[_Said]:
    """The caller's words that say this name word (same stem, or it inside a compound)."""
    return [
        item
        for item in said
        if forms & item.forms or any(len(form) >= 4 and form in item.word for form in forms)
    ]


@dataclass(frozen=True)
class NameEvidence:
    """How the caller's words meet a page's curated names (title and synonyms)."""

    strength: float  # of the fullest name said in full: its caller words, 1 each, generic ones 0.5; else 0
    said_in_full: frozenset[int]  # caller word positions of that name
    # caller word positions of names said only in part whose unsaid words are the page's title topic
    # ("ummelden" of "Gewerbe ummelden" on the page "Gewerbe anmelden")
    said_in_part: frozenset[int]


def name_evidence(question: str, chunk: Chunk, town: TownLexicon) -> NameEvidence:
    """Which curated names of the page the caller said, in full or in part.

    Synonyms are what callers really say, so a name said in full ("Perso verloren", "Hunde Steuer",
    "Schwerbehindertenausweis") is strong evidence; a name said in part ("Gewerbe ummelden" when the caller
    only said "ummelden") is none. Each caller word the name accounts for counts 1, a generic one ("Termin",
    "Kind", "offen") 0.5, so longer and more specific names beat shorter ones ("Perso verloren" > "Perso").
    """
    said = _said_words(question, town)
    raw = re.findall(r"[a-z0-9]+", fold_text(question))
    best, best_positions = 0.0, frozenset[int]()
    in_part: set[int] = set()
    title_forms = {
        form for forms in _curated_names(chunk.title, (), town)[:1] for word in forms for form in word
    }
    for name in _curated_names(chunk.title, chunk.synonyms, town):
        covered: set[int] = set()
        complete = True
        qualifier_in_title = True  # every unsaid word of the name is the page's own topic ("Gewerbe")
        same_words: set[int] = set()  # said as the very word, not just inside a compound ("Tonne")
        inside: dict[int, int] = {}  # caller word position → letters of name words found inside it
        for forms in name:
            matches = _said_by(forms, said)
            if matches:
                same = [item for item in matches if forms & item.forms]
                # The very word ("hundesteuer" from "hunde steuer") counts all its words; a name word found
                # only inside a longer one ("anmelden" in "kitaanmelden") counts just that one.
                if same:
                    covered.update(max(same, key=lambda item: len(item.positions)).positions)
                else:
                    item = min(matches, key=lambda item: len(item.positions))
                    covered.update(item.positions)
                    if len(item.positions) == 1:
                        position = next(iter(item.positions))
                        inside[position] = inside.get(position, 0) + max(len(f) for f in forms)
                same_words.update(i for item in same for i in item.positions)
            else:
                complete = False
                qualifier_in_title = qualifier_in_title and bool(forms & title_forms)
        if not complete:
            if qualifier_in_title:  # "Gewerbe ummelden" on "Gewerbe anmelden"; not "Pass für Baby"
                in_part.update(same_words)
            continue
        # Half for a generic word, and for a longer compound the name covers only in part: the caller's
        # "Behindertenausweis" is no "Ausweis verlängern", but "Personalausweis" is "Personal Ausweis".
        partly = {i for i, letters in inside.items() if letters < 0.8 * len(raw[i])}
        strength = sum(0.5 if _is_generic(raw[i]) or i in partly else 1.0 for i in covered)
        if strength > best:
            best, best_positions = strength, frozenset(covered)
    return NameEvidence(best, best_positions, frozenset(in_part))


def name_match(question: str, chunk: Chunk, town: TownLexicon) -> float:
    """The strength of the fullest curated name of the page that the caller said in full (0: none)."""
    return name_evidence(question, chunk, town).strength


def _prefer_named(question: str, ordered: list[PageCandidate], town: TownLexicon) -> bool:
    """Move a page the caller named more fully than the first page to the front; True when it moved one.

    Only pages in the first ``NAME_WINDOW`` of the fused ranking compete (the fullest name wins, ties go to
    the higher cosine), so a name cannot pull in a page that neither retriever found relevant. A first page
    that was named too only gives way to a name fuller by at least one word. The named page must cover as
    many of the caller's words as the first page (``NAME_COVERAGE_SLACK`` fewer when the retrievers disagree
    about the first page). When both retrievers put the first page first, a name only wins with more of the
    caller's words on its page, or where the first page has the same word in a qualified name the caller did
    not say in full: "Ummeldung" means the page named "Ummelden", not the one named "Gewerbe ummelden".
    """
    window = ordered[:NAME_WINDOW]
    evidence = [name_evidence(question, page.chunk, town) for page in window]
    top, top_evidence = window[0], evidence[0]
    needed = top_evidence.strength + (1.0 if top_evidence.strength else 0.0)
    best = max(e.strength for e in evidence)
    if best == 0.0 or best < needed:
        return False
    agreed = top.bm25_rank == 1 and top.embedding_rank == 1
    top_coverage = _coverage(question, top.chunk, town)
    floor = top_coverage - (0.0 if agreed else NAME_COVERAGE_SLACK) - 1e-9

    def may_win(page: PageCandidate, evidence: NameEvidence) -> bool:
        coverage = _coverage(question, page.chunk, town)
        if not agreed:
            return coverage >= floor
        return coverage > top_coverage or (
            coverage >= floor and bool(evidence.said_in_full & top_evidence.said_in_part)
        )

    contenders = [
        page for page, e in zip(window, evidence, strict=True) if e.strength == best and may_win(page, e)
    ]
    if not contenders:
        return False
    chosen = max(contenders, key=lambda page: page.cosine if page.cosine is not None else 0.0)
    ordered.remove(chosen)
    ordered.insert(0, chosen)
    return True


# Questions about opening hours ("habt ihr offen", "wann hat das Bürgerbüro auf", "Sprechzeiten").
_OPENING_HOURS = re.compile(
    r"offnungszeit|sprechzeit|\b(offen|geoffnet|aufhaben|aufgemacht|geschlossen|besetzt|erreichbar)\b"
    r"|\b(habt|hat|haben|ist|sind|seid)\b.{0,40}\bauf\b\W*$"
)
_CLOCK_TIME = re.compile(r"\b\d{1,2}([:.]\d{2})? uhr\b|\b\d{1,2}:\d{2}\b|o'clock|\bopen\b")


# Opening hours in a page body: times of day in a sentence that says what they are ("... geöffnet").
_BODY_HOURS = re.compile(
    r"(geoffnet|offnungszeit|\boffen\b|erreichbar|sprechzeit|besetzt)[^.]{0,120}\b\d{1,2}([:.]\d{2})? uhr\b"
    r"|\b\d{1,2}([:.]\d{2})? uhr\b[^.]{0,120}(geoffnet|offnungszeit|\boffen\b|erreichbar|besetzt)"
    r"|(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag)s?\b[^.]{0,40}\b\d{1,2} bis \d{1,2} uhr\b"
)


def answers_opening_hours(chunk: Chunk) -> bool:
    """Whether the page states opening hours (else it cannot answer "wann habt ihr auf"): times in the curated
    answer, or times the body calls opening hours (the fact answer speaks those)."""
    return bool(
        _CLOCK_TIME.search(fold_text(chunk.spoken_answer or chunk.text))
        or _BODY_HOURS.search(fold_text(chunk.text))
    )


def judge(
    question: str, pages: Sequence[PageCandidate], town: TownLexicon
) -> tuple[list[PageCandidate], float, bool]:
    """Order the candidate pages and rate the first: (pages, confidence 0..1, is it a close call).

    When the two retrievers disagree (each puts a different page first), the page that covers more of
    the caller's words wins; if they tie on a question of one or two content words, it is a close call
    and the caller is asked which one they mean.
    """
    if not pages:
        return [], 0.0, False
    ordered = list(pages)
    close_call = False
    if len(ordered) > 1:
        top, second = ordered[0], ordered[1]
        disagree = not (top.bm25_rank == 1 and top.embedding_rank == 1) and 1 in (
            second.bm25_rank,
            second.embedding_rank,
        )
        if disagree:
            top_coverage = _coverage(question, top.chunk, town)
            second_coverage = _coverage(question, second.chunk, town)
            if second_coverage > top_coverage:
                ordered[0], ordered[1] = second, top
            elif second_coverage == top_coverage and len(content_words(question, town)) <= 2:
                close_call = True
    if _prefer_named(question, ordered, town):
        close_call = False
    elif close_call:  # a close call that a curated name decides is none ("Schwerbehindertenausweis")
        named_first, named_second = (name_match(question, page.chunk, town) for page in ordered[:2])
        if named_first != named_second:
            close_call = False
            if named_second > named_first:
                ordered[0], ordered[1] = ordered[1], ordered[0]
    best = ordered[0]
    rank_support = _rank_support(best)
    if name_match(question, best.chunk, town):
        first_somewhere = 1 in (best.bm25_rank, best.embedding_rank)
        rank_support = max(rank_support, NAME_RANK_SUPPORT[first_somewhere])
    cosine = 0.5 if best.cosine is None else (best.cosine - COSINE_FLOOR) / COSINE_SPAN
    coverage = _coverage(question, best.chunk, town)
    confidence = (
        WEIGHTS["ranks"] * rank_support
        + WEIGHTS["cosine"] * min(1.0, max(0.0, cosine))
        + WEIGHTS["coverage"] * coverage
    )
    if coverage == 0.0:  # the page mentions none of the caller's topic words ("Taxi", "iPhone")
        confidence = min(confidence, NO_OVERLAP_CAP)
    if _OPENING_HOURS.search(fold_text(question)) and not answers_opening_hours(best.chunk):
        confidence = min(confidence, NO_OVERLAP_CAP)  # asked when it is open; the page names no times
    return ordered, round(min(1.0, confidence), 3), close_call


# Short questions that lean on the previous one: "und was kostet das?", "wo ist das?", "und für Kinder?".
_FOLLOW_UP = re.compile(r"^(und|aber|also|auch|und wenn)\b|\b(das|dafur|dazu|dort|da|davon|damit|es)\b")
# Words that ask *about* a topic without naming one ("was kostet das?", "wie lange dauert es?").
_GENERIC_STEMS = (
    "koste teuer preis gebuh dauer lange offen geoff zeite unter mitbr termi onlin beant bekom kinde "
    "erwac rentn stude ander weite telef numme adres mailadr email zusta neue neuen neuer neues dann eintr "
    "monta diens mittw donne freit samst sonnt woche"
)
_GENERIC_WORDS = frozenset(_GENERIC_STEMS.split())


def _is_generic(word: str) -> bool:
    """A word that asks about a topic without naming one ("kostet", "Termin", "Kind", "offen")."""
    return word[:5] in _GENERIC_WORDS or (len(word) == 4 and any(g.startswith(word) for g in _GENERIC_WORDS))


def names_no_topic(question: str, town: TownLexicon) -> bool:
    """True when every content word of the question is generic (a fee, a duration, a document ...)."""
    return all(word[:5] in _GENERIC_WORDS for word in content_words(question, town))


def is_follow_up(question: str, town: TownLexicon) -> bool:
    folded = fold_text(question)
    return (
        len(folded.split()) <= 7
        and bool(_FOLLOW_UP.search(folded))
        and len(content_words(question, town)) <= 3
    )
