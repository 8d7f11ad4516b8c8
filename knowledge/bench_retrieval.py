"""Retrieval latency on a synthetic 2,000-chunk index (a command prints it; tests never time anything).

The sample knowledge base is ingested for real, then replicated with varied text up to ``n_chunks``. Replica
embeddings are the originals plus small noise (re-normalised) instead of being embedded: search cost depends on
the matrix size, not on what the vectors mean, and this keeps the benchmark's set-up in seconds.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.config import SAMPLE_KB_DIR, RetrievalConfig
from knowledge.index import KnowledgeIndex, _FileEntry, _text_hash
from knowledge.retrieval import HybridRetriever

DEFAULT_QUERIES = (
    "Ich brauche einen neuen Perso, was kostet das?",
    "Wo kann ich meinen Reisepass verlängern?",
    "Ich bin umgezogen und muss mich ummelden",
    "Was kostet ein Führungszeugnis?",
    "Ich habe meinen Geldbeutel verloren",
    "Wann holt ihr den Sperrmüll ab?",
    "Wie viel Hundesteuer zahle ich für zwei Hunde?",
    "Ich will mein Auto anmelden",
    "Wann hat das Bürgerbüro geöffnet?",
    "Wie beantrage ich Wohngeld?",
    "Ich habe ein Knöllchen bekommen",
    "Wir wollen heiraten, was brauchen wir?",
    "Mein Vater ist gestorben, was muss ich tun?",
    "Ich möchte ein Gewerbe anmelden",
    "Brauche ich einen Parkausweis für meine Straße?",
    "Kitaplatz für mein Kind beantragen",
    "Personalausweisverlängerung siebenunddreißig Euro",
    "Wo zahle ich die Grundsteuer?",
    "Meldebescheinigung beantragen",
    "Wie ist die Telefonnummer vom Rathaus?",
)

_FILLER = [
    "Antrag",
    "Formular",
    "Unterlagen",
    "Termin",
    "Gebühr",
    "Nachweis",
    "Bescheid",
    "Frist",
    "Online",
    "Service",
    "Bürger",
    "Stadt",
    "Amt",
    "Auskunft",
    "Kosten",
    "Zahlung",
    "Öffnungszeiten",
    "Beratung",
    "Sprechzeit",
    "Vollmacht",
    "Urkunde",
    "Antragsteller",
    "Bearbeitung",
    "Wochen",
]


def _synthetic_index(base: KnowledgeIndex, index_dir: Path, n_chunks: int, seed: int) -> KnowledgeIndex:
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    chunks = list(base.chunks)
    vectors = [base.embeddings[i] for i in range(len(chunks))]
    replica = 0
    while len(chunks) < n_chunks:
        replica += 1
        for i, chunk in enumerate(base.chunks):
            if len(chunks) >= n_chunks:
                break
            sentences = chunk.text.split(". ")
            rng.shuffle(sentences)
            text = ". ".join(sentences) + " " + " ".join(rng.sample(_FILLER, 6))
            doc_id = f"{chunk.doc_id}-v{replica}"
            suffix = chunk.id[len(chunk.doc_id) :]
            chunks.append(replace(chunk, id=doc_id + suffix, doc_id=doc_id, text=text))
            vector = base.embeddings[i] + noise.normal(0, 0.02, base.embeddings.shape[1]).astype(np.float32)
            vectors.append(vector / np.linalg.norm(vector))
    index = KnowledgeIndex(index_dir)
    index.chunks = chunks
    index.embeddings = np.vstack(vectors).astype(np.float32)
    index._embed_hashes = [_text_hash(c.id + c.text) for c in chunks]
    index.files = {"synthetic": _FileEntry(sha256="synthetic", chunk_ids=[c.id for c in chunks])}
    index.save()
    return index


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_retrieval(
    n_chunks: int = 2000,
    queries: Sequence[str] = DEFAULT_QUERIES,
    repeats: int = 5,
    sources: Sequence[Path] = (SAMPLE_KB_DIR,),
    config: RetrievalConfig | None = None,
    base_index_dir: Path | None = None,
) -> dict[str, Any]:
    """Build an ``n_chunks`` index in a temp dir and time ``search()``: p50/p95 in ms over all queries×repeats.

    ``base_index_dir``: an existing index to replicate (skips embedding the sample KB again).
    """
    config = config or RetrievalConfig()
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        base = KnowledgeIndex.open(base_index_dir) if base_index_dir else KnowledgeIndex(Path(tmp) / "base")
        if not base.chunks:
            base = KnowledgeIndex.open(Path(tmp) / "base")
            base.ingest(sources)
        if not base.chunks:
            raise FileNotFoundError("no knowledge pages to build the benchmark index from")
        _synthetic_index(base, Path(tmp) / "index", n_chunks, seed=7)

        started = time.perf_counter()
        index = KnowledgeIndex.open(Path(tmp) / "index")
        opened = time.perf_counter()
        retriever = HybridRetriever(index.chunks, index.embeddings, config)
        built = time.perf_counter()

        for query in queries[:3]:  # warm-up: first query loads the model
            retriever.search(query)
        totals: list[float] = []
        embeds: list[float] = []
        keywords: list[float] = []
        for _ in range(repeats):
            for query in queries:
                result = retriever.search_detailed(query)
                totals.append(result.timings_ms["total"])
                embeds.append(result.timings_ms["embed"])
                keywords.append(result.timings_ms["bm25"])
        return {
            "n_chunks": len(index.chunks),
            "n": len(totals),
            "p50_ms": round(statistics.median(totals), 2),
            "p95_ms": round(_percentile(totals, 95), 2),
            "embed_p50_ms": round(statistics.median(embeds), 2),
            "bm25_p50_ms": round(statistics.median(keywords), 2),
            "open_ms": round((opened - started) * 1000, 1),
            "build_ms": round((built - opened) * 1000, 1),
        }
