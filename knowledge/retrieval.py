"""Hybrid retrieval: BM25 over German-normalised tokens + multilingual-e5 cosine, fused by reciprocal rank.

BM25 catches exact service words, fees and numbers ("Hundesteuer", "37 Euro"); e5 catches paraphrases
("mein Hund muss angemeldet werden"). Each ranks *documents* (a document scores as its best chunk), the ranks are
fused (RRF), and the best chunk of each document is returned, so top-3 means three different pages.

:class:`SearchResult` exposes ranks, cosines, BM25 scores and margins. How sure the bot is that the first page
answers the question is decided in one place, :func:`knowledge.confidence.judge`, for the answer engines and
``voicebot kb search`` alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import bm25s
import numpy as np

from knowledge import embeddings
from knowledge.chunking import bm25_text
from knowledge.config import RetrievalConfig
from knowledge.normalize import Normalizer
from knowledge.types import Chunk, Hit

# Compound parts and colloquial expansions count half: "Hund ist gestorben" is about the dog, not a Sterbefall.
SECONDARY_WEIGHT = 0.5


@dataclass(frozen=True)
class SearchResult:
    """Hits plus the evidence behind them, for the answer engine's decision to answer, clarify or hand off."""

    query: str
    hits: list[Hit]
    cosines: list[float]  # per hit: best chunk cosine of its document
    bm25_scores: list[float]  # per hit: best chunk BM25 score of its document (0 = no keyword matched)
    top_cosine: float  # best cosine over all documents
    cosine_margin: float  # best minus second-best document cosine
    query_tokens: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)  # "bm25", "embed", "total"
    # The query's e5 vector, so that fact selection inside the found pages needs no second embedding.
    query_vector: np.ndarray | None = field(default=None, repr=False, compare=False)


def _ranks(scores: np.ndarray, limit: int, positive_only: bool) -> dict[int, int]:
    """1-based ranks of the ``limit`` best entries (ties broken by position)."""
    if scores.size == 0:
        return {}
    limit = min(limit, scores.size)
    top = np.argpartition(-scores, limit - 1)[:limit]
    top = top[np.argsort(-scores[top], kind="stable")]
    if positive_only:
        top = top[scores[top] > 0]
    return {int(i): rank for rank, i in enumerate(top, start=1)}


class HybridRetriever:
    """Searches a fixed set of chunks; build a new one after re-ingesting (cheap: BM25 builds in milliseconds).

    Several threads may search at once (the calls of one process share one retriever): the chunks, BM25 index and
    embeddings are only read after construction, the normaliser's caches are plain dict updates under the GIL,
    and the e5 query needs no lock (:mod:`knowledge.embeddings`).
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        chunk_embeddings: np.ndarray,
        config: RetrievalConfig | None = None,
        fact_vectors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.config = config or RetrievalConfig()
        # e5 vectors of the pages' fact units by knowledge.facts.unit_key (computed at ingest), for fact answers
        self.fact_vectors: Mapping[str, np.ndarray] = fact_vectors or {}
        self.chunks = list(chunks)
        self.embeddings = np.ascontiguousarray(chunk_embeddings, dtype=np.float32)
        if self.embeddings.shape[0] != len(self.chunks):
            raise ValueError("one embedding row per chunk is required")
        texts = [bm25_text(c) for c in self.chunks]
        self.normalizer = Normalizer(Normalizer.vocabulary_of(texts))
        index_normalizer = Normalizer(expand_synonyms=False)
        index_normalizer.splitter = self.normalizer.splitter
        corpus = [index_normalizer.tokens(t) for t in texts]
        self._bm25 = bm25s.BM25()
        if self.chunks:
            self._bm25.index(corpus, show_progress=False)
        doc_ids = sorted({c.doc_id for c in self.chunks})
        self._doc_ids = doc_ids
        doc_number = {d: i for i, d in enumerate(doc_ids)}
        self._chunk_doc = np.array([doc_number[c.doc_id] for c in self.chunks], dtype=np.int64)
        self._by_id = {c.id: c for c in self.chunks}

    def __len__(self) -> int:
        return len(self.chunks)

    def get(self, chunk_id: str) -> Chunk | None:
        return self._by_id.get(chunk_id)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The ``k`` (default ``config.top_k``) best documents' best chunks, best first."""
        return self.search_detailed(query, k).hits

    def search_detailed(self, query: str, k: int | None = None) -> SearchResult:
        started = time.perf_counter()
        k = k or self.config.top_k
        primary, secondary = self.normalizer.weighted_tokens(query)
        tokens = primary + secondary
        if not self.chunks or not query.strip():
            return SearchResult(query, [], [], [], 0.0, 0.0, tuple(tokens))
        bm25_chunk = np.zeros(len(self.chunks), dtype=np.float32)
        if primary:
            bm25_chunk += np.asarray(self._bm25.get_scores(primary), dtype=np.float32)
        if secondary:
            bm25_chunk += SECONDARY_WEIGHT * np.asarray(self._bm25.get_scores(secondary), dtype=np.float32)
        bm25_done = time.perf_counter()
        query_vector = embeddings.embed_query(
            self.normalizer.embedding_query(query), self.config.query_threads
        )
        embed_done = time.perf_counter()
        # einsum, not BLAS: OpenBLAS threads spin-wait on a busy 2-core machine (≈ 5 ms vs 0.6 ms at 2,000 rows).
        cosine_chunk = np.einsum("ij,j->i", self.embeddings, query_vector)

        n_docs = len(self._doc_ids)
        bm25_doc = np.zeros(n_docs, dtype=np.float32)
        np.maximum.at(bm25_doc, self._chunk_doc, bm25_chunk)
        cosine_doc = np.full(n_docs, -1.0, dtype=np.float32)
        np.maximum.at(cosine_doc, self._chunk_doc, cosine_chunk)

        candidates = max(self.config.candidates, k)
        bm25_ranks = _ranks(bm25_doc, candidates, positive_only=True)
        cosine_ranks = _ranks(cosine_doc, candidates, positive_only=False)
        rrf_k = self.config.rrf_k
        fused: dict[int, float] = {}
        for doc, rank in bm25_ranks.items():
            fused[doc] = fused.get(doc, 0.0) + self.config.bm25_weight / (rrf_k + rank)
        for doc, rank in cosine_ranks.items():
            fused[doc] = fused.get(doc, 0.0) + self.config.embedding_weight / (rrf_k + rank)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], -cosine_doc[item[0]]))[:k]

        # Best chunk of each chosen document: cosine, nudged by BM25 (normalised to the query's best match).
        bm25_max = float(bm25_chunk.max()) or 1.0
        chunk_score = cosine_chunk + 0.05 * bm25_chunk / bm25_max
        hits: list[Hit] = []
        for doc, score in ranked:
            rows = np.flatnonzero(self._chunk_doc == doc)
            best = int(rows[np.argmax(chunk_score[rows])])
            hits.append(
                Hit(
                    chunk=self.chunks[best],
                    score=float(score),
                    bm25_rank=bm25_ranks.get(doc, 0),
                    embedding_rank=cosine_ranks.get(doc, 0),
                )
            )
        sorted_cos = np.sort(cosine_doc)[::-1]
        top_cosine = float(sorted_cos[0])
        margin = float(sorted_cos[0] - sorted_cos[1]) if n_docs > 1 else top_cosine
        cosines = [float(cosine_doc[doc]) for doc, _ in ranked]
        bm25_scores = [float(bm25_doc[doc]) for doc, _ in ranked]
        result = SearchResult(
            query=query,
            hits=hits,
            cosines=cosines,
            bm25_scores=bm25_scores,
            top_cosine=top_cosine,
            cosine_margin=margin,
            query_tokens=tuple(tokens),
            query_vector=query_vector,
        )
        finished = time.perf_counter()
        result.timings_ms.update(
            bm25=(bm25_done - started) * 1000,
            embed=(embed_done - bm25_done) * 1000,
            total=(finished - started) * 1000,
        )
        return result
