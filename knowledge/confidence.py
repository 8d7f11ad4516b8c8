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

import re
from collections.abc import Sequence
from dataclasses import dataclass

from knowledge import guard
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
        ranked = sorted(
            (r, i) for i, r in enumerate(key_rank) if r > 0
        )  # chunk order by that retriever's rank
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


def content_words(text: str) -> list[str]:
    """The words that carry the request, folded (used for coverage and follow-up detection)."""
    words = re.findall(r"[a-z0-9]+", guard.fold(text))
    return [w for w in words if w not in _STOPWORDS and w not in _town_words and len(w) > 2]


_town_words: set[str] = set()


def set_town(name: str) -> None:
    """The town's own name says nothing about the topic ("Hundesteuer in Musterstadt")."""
    _town_words.update(guard.fold(name).split())


# Words that ask for a fee or a duration: on almost every page, so they say nothing about the topic.
_ASKING_WORDS = frozenset(("koste", "teuer", "preis", "gebuh", "dauer", "lange", "offen", "geoff"))


def _coverage(question: str, chunk: Chunk) -> float:
    """Share of the caller's topic words found on the page (same 5-letter stem, or inside a compound).

    Generic words ("kostet", "dauert") count only when the question has nothing else: "was kostet ein
    iPhone" must not match every page with a fee on it.
    """
    words = content_words(question)
    topical = [w for w in words if w[:5] not in _ASKING_WORDS]
    words = topical or words
    if not words:
        return 0.0
    page = guard.fold(" ".join((chunk.title, " ".join(chunk.synonyms), chunk.spoken_answer, chunk.text)))
    stems = {word[:5] for word in re.findall(r"[a-z0-9]+", page)}
    found = sum(1 for w in words if w[:5] in stems or (len(w) >= 5 and w in page))
    return found / len(words)


def judge(question: str, pages: Sequence[PageCandidate]) -> tuple[list[PageCandidate], float, bool]:
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
            top_coverage, second_coverage = _coverage(question, top.chunk), _coverage(question, second.chunk)
            if second_coverage > top_coverage:
                ordered[0], ordered[1] = second, top
            elif second_coverage == top_coverage and len(content_words(question)) <= 2:
                close_call = True
    best = ordered[0]
    cosine = 0.5 if best.cosine is None else (best.cosine - COSINE_FLOOR) / COSINE_SPAN
    coverage = _coverage(question, best.chunk)
    confidence = (
        WEIGHTS["ranks"] * _rank_support(best)
        + WEIGHTS["cosine"] * min(1.0, max(0.0, cosine))
        + WEIGHTS["coverage"] * coverage
    )
    if coverage == 0.0:  # the page mentions none of the caller's topic words ("Taxi", "iPhone")
        confidence = min(confidence, NO_OVERLAP_CAP)
    return ordered, round(min(1.0, confidence), 3), close_call


# Short questions that lean on the previous one: "und was kostet das?", "wo ist das?", "und für Kinder?".
_FOLLOW_UP = re.compile(r"^(und|aber|also|auch|und wenn)\b|\b(das|dafur|dazu|dort|da|davon|damit|es)\b")
# Words that ask *about* a topic without naming one ("was kostet das?", "wie lange dauert es?").
_GENERIC_STEMS = (
    "koste teuer preis gebuh dauer lange offen geoff zeite unter mitbr termi onlin beant bekom kinde "
    "erwac rentn stude ander weite"
)
_GENERIC_WORDS = frozenset(_GENERIC_STEMS.split())


def names_no_topic(question: str) -> bool:
    """True when every content word of the question is generic (a fee, a duration, a document ...)."""
    return all(word[:5] in _GENERIC_WORDS for word in content_words(question))


def is_follow_up(question: str) -> bool:
    folded = guard.fold(question)
    return len(folded.split()) <= 7 and bool(_FOLLOW_UP.search(folded)) and len(content_words(question)) <= 3
