"""Hybrid retrieval with the real e5 model: colloquial German questions find the right page."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.bench_retrieval import measure_retrieval
from knowledge.confidence import TownLexicon, judge, rank_pages
from knowledge.index import KnowledgeIndex
from knowledge.retrieval import HybridRetriever


@pytest.fixture
def retriever(fixture_kb: Path, tmp_path: Path) -> HybridRetriever:
    index = KnowledgeIndex.open(tmp_path / "index")
    index.ingest([fixture_kb])
    return index.retriever()


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("Ich brauch nen neuen Perso", "personalausweis-beantragen"),
        ("Personalausweisverlängerung", "personalausweis-beantragen"),
        ("was kostet das polizeiliche Fuhrungszeugnis", "fuehrungszeugnis"),
        ("Fuehrungszeugnis beantragen", "fuehrungszeugnis"),
        ("wir haben uns einen Welpen geholt", "hundesteuer"),
        ("wohin mit meinem alten Sofa und der Matratze", "sperrmuell"),
        ("Ich will mein Auto anmelden", "kfz-zulassung"),
    ],
)
def test_colloquial_questions_hit_the_right_page(
    retriever: HybridRetriever, question: str, page: str
) -> None:
    hits = retriever.search(question)
    assert hits[0].chunk.doc_id == page, [h.chunk.doc_id for h in hits]


def test_hits_are_distinct_pages_with_ranks(retriever: HybridRetriever) -> None:
    result = retriever.search_detailed("Was kostet der Perso?", k=4)
    assert len(result.hits) == 4
    assert len({h.chunk.doc_id for h in result.hits}) == 4
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    top = result.hits[0]
    assert top.bm25_rank == 1 and top.embedding_rank == 1
    assert len(result.cosines) == len(result.bm25_scores) == 4
    assert set(result.timings_ms) == {"bm25", "embed", "total"}


def test_confidence_is_higher_for_a_clear_question_than_for_gibberish(retriever: HybridRetriever) -> None:
    town = TownLexicon.of("Musterstadt")

    def confidence(question: str) -> float:
        result = retriever.search_detailed(question, 20)
        return judge(question, rank_pages(result.hits, result.cosines), town)[1]

    assert confidence("Hundesteuer für meinen Hund") >= 0.5 > confidence("blubb quark zippel")
    assert retriever.search_detailed("blubb quark zippel").hits[0].bm25_rank == 0  # no keyword matched at all


def test_empty_query_and_empty_index() -> None:
    import numpy as np

    empty = HybridRetriever([], np.zeros((0, 384), dtype=np.float32))
    assert empty.search("Perso") == []


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("was kostet n neuer perso", "personalausweis-beantragen"),
        ("hab n knöllchen gekriegt wo zahl ich das", "verwarnungsgeld-bezahlen"),
        ("wann wird der sperrmüll abgeholt", "sperrmuell"),
        ("ich bin umgezogen muss ich mich um melden", "wohnsitz-anmelden"),
        ("was kostet die hundemarke im jahr", "hundesteuer-anmelden"),
        ("ich brauch ein führungszeugnis für die arbeit", "fuehrungszeugnis"),
        ("ich will mein auto ummelden", "kfz-zulassung"),
        ("wir wollen heiraten", "eheschliessung-anmelden"),
    ],
)
def test_sample_kb_colloquial_questions_in_top_3(sample_index_dir: Path, question: str, page: str) -> None:
    retriever = KnowledgeIndex.open(sample_index_dir).retriever()
    ids = [hit.chunk.doc_id for hit in retriever.search(question, k=3)]
    assert page in ids, ids


def test_benchmark_reports_percentiles(sample_index_dir: Path) -> None:
    numbers = measure_retrieval(
        n_chunks=300, queries=("Perso verlängern", "Sperrmüll"), repeats=2, base_index_dir=sample_index_dir
    )
    assert numbers["n_chunks"] == 300 and numbers["n"] == 4
    assert 0 < numbers["p50_ms"] <= numbers["p95_ms"]
