"""The persistent incremental index: only changed files are re-embedded, nothing indexed is lost to a broken file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kb_fixtures import FIXTURE_PAGES, make_pdf, write_fixture_kb

from knowledge.config import KnowledgeConfig
from knowledge.facts import fact_units
from knowledge.index import KnowledgeIndex, load_retriever


def test_ingest_persists_chunks_and_embeddings(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    calls: list[tuple[str, int, int]] = []
    report = KnowledgeIndex.open(index_dir).ingest([fixture_kb], progress=lambda *a: calls.append(a))
    assert (report.documents, report.chunks, report.added, report.embedded) == (5, 5, 5, 5)
    assert report.skipped == []
    assert ("read", 5, 5) in calls and ("embed", 5, 5) in calls

    reopened = KnowledgeIndex.open(index_dir)
    assert len(reopened) == 5
    chunk = reopened.get("hundesteuer")
    assert chunk is not None and chunk.department == "Steueramt"
    assert reopened.get("does-not-exist") is None
    assert reopened.embeddings.shape == (5, 384)
    norms = np.linalg.norm(reopened.embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)  # real, normalised e5 vectors
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in index_dir.iterdir() if not p.name.startswith(".")) == sorted(
        ["manifest.json", manifest["chunks"], manifest["embeddings"], manifest["fact_vectors"]]
    )
    # every fact unit (list item, sentence) of every page has its e5 vector, for fact answers
    keys = {unit.key for chunk in reopened.chunks for unit in fact_units(chunk)}
    assert keys and keys == set(reopened.fact_vectors)
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-3 for v in reopened.fact_vectors.values())
    assert ("facts", len(keys), len(keys)) in calls


def test_reingest_only_embeds_what_changed(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    before = KnowledgeIndex.open(index_dir)

    again = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    assert (again.unchanged, again.added, again.updated, again.embedded) == (5, 0, 0, 0)

    page = fixture_kb / "hund.md"
    page.write_text(page.read_text(encoding="utf-8").replace("96 Euro", "108 Euro"), encoding="utf-8")
    changed = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    assert (changed.unchanged, changed.updated, changed.embedded) == (4, 1, 1)
    after = KnowledgeIndex.open(index_dir)
    hund = after.get("hundesteuer")
    assert hund is not None and "108 Euro" in hund.spoken_answer
    for chunk_id in ("personalausweis-beantragen", "sperrmuell"):  # untouched rows keep their vectors
        old_row = [c.id for c in before.chunks].index(chunk_id)
        new_row = [c.id for c in after.chunks].index(chunk_id)
        assert np.array_equal(before.embeddings[old_row], after.embeddings[new_row])
    # only the changed sentence is embedded again as a fact unit; the others keep their vectors
    new_keys = set(after.fact_vectors) - set(before.fact_vectors)
    changed_units = {u.key: u.text for u in fact_units(hund)}
    assert new_keys and all("108 Euro" in changed_units[key] for key in new_keys)
    kept = set(before.fact_vectors) & set(after.fact_vectors)
    assert all(np.array_equal(before.fact_vectors[k], after.fact_vectors[k]) for k in kept)


def test_broken_file_keeps_its_previous_chunks(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    page = fixture_kb / "hund.md"
    page.write_text("---\nid: hundesteuer\ntitle: [kaputt\n---\nText\n", encoding="utf-8")
    (fixture_kb / "neu.md").write_text("kein front matter", encoding="utf-8")

    report = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    reasons = dict(report.skipped)
    assert "invalid YAML front matter" in reasons[str(page.resolve())]
    assert "no YAML front matter" in reasons[str((fixture_kb / "neu.md").resolve())]
    assert report.kept_stale == [str(page.resolve())]
    reopened = KnowledgeIndex.open(index_dir)
    hund = reopened.get("hundesteuer")
    assert hund is not None and "96 Euro" in hund.spoken_answer
    assert reopened.files[str(page.resolve())].error

    page.write_text(FIXTURE_PAGES["hund.md"], encoding="utf-8")  # repaired: indexed normally again
    repaired = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    assert repaired.updated == 1 and repaired.kept_stale == []
    assert not KnowledgeIndex.open(index_dir).files[str(page.resolve())].error


def test_deleted_files_are_removed_only_with_prune(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    (fixture_kb / "kfz.md").unlink()
    kept = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    assert kept.removed == 0 and kept.documents == 5
    pruned = KnowledgeIndex.open(index_dir).ingest([fixture_kb], prune=True)
    assert pruned.removed == 1 and pruned.documents == 4 and pruned.embedded == 0
    assert KnowledgeIndex.open(index_dir).get("kfz-zulassung") is None


def test_duplicate_ids_and_missing_paths_are_reported(fixture_kb: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "copy.md").write_text(FIXTURE_PAGES["hund.md"], encoding="utf-8")
    report = KnowledgeIndex.open(tmp_path / "index").ingest([fixture_kb, other, tmp_path / "gibt-es-nicht"])
    reasons = dict(report.skipped)
    assert "duplicate id 'hundesteuer'" in reasons[str((other / "copy.md").resolve())]
    assert reasons[str(tmp_path / "gibt-es-nicht")] == "no such file or directory"
    assert report.documents == 5


def test_load_retriever_ingests_sources_into_an_empty_index(tmp_path: Path) -> None:
    kb = write_fixture_kb(tmp_path / "kb")
    config = KnowledgeConfig(town="Musterstadt", index_dir=tmp_path / "index", kb_sources=[kb])
    retriever = load_retriever(config)
    assert len(retriever) == 5
    assert (tmp_path / "index" / "manifest.json").is_file()
    assert retriever.search("Hundesteuer")[0].chunk.doc_id == "hundesteuer"

    page = kb / "hund.md"  # a changed source page is picked up by the next load
    page.write_text(page.read_text(encoding="utf-8").replace("96 Euro", "120 Euro"), encoding="utf-8")
    refreshed = load_retriever(config).search("Hundesteuer")[0].chunk
    assert "120 Euro" in refreshed.spoken_answer
    page.write_text(page.read_text(encoding="utf-8").replace("120 Euro", "150 Euro"), encoding="utf-8")
    as_is = load_retriever(config, refresh=False).search("Hundesteuer")[0].chunk
    assert "120 Euro" in as_is.spoken_answer


def test_mixed_sources_are_indexed_together(fixture_kb: Path, tmp_path: Path) -> None:
    (fixture_kb / "markt.html").write_text(
        "<html><head><title>Wochenmarkt</title></head><body><main><h1>Wochenmarkt</h1>"
        "<p>Dienstags und samstags von 7 bis 13 Uhr auf dem Marktplatz.</p></main></body></html>",
        encoding="utf-8",
    )
    (fixture_kb / "merkblatt.pdf").write_bytes(
        make_pdf([["Merkblatt Osterfeuer", "Osterfeuer muessen zwei Wochen vorher angezeigt werden."]])
    )
    (fixture_kb / "faq.csv").write_text(
        "question,answer\nGibt es freies WLAN?,Ja, auf dem Marktplatz und im Rathaus.\n", encoding="utf-8"
    )
    (fixture_kb / "faq.yaml").write_text(
        "- question: Wo bekomme ich Sandsäcke?\n  answer: Beim Bauhof.\n  id: sandsaecke\n", encoding="utf-8"
    )
    report = KnowledgeIndex.open(tmp_path / "index").ingest([fixture_kb])
    assert report.skipped == [] and report.documents == 9
    retriever = KnowledgeIndex.open(tmp_path / "index").retriever()
    assert retriever.search("Wann ist Markt?")[0].chunk.doc_id == "markt"
    assert retriever.search("Osterfeuer anmelden")[0].chunk.doc_id == "merkblatt"
    assert retriever.search("kostenloses WLAN im Rathaus")[0].chunk.doc_id == "faq-gibt-es-freies-wlan"
    assert retriever.search("Hochwasser Sandsack")[0].chunk.spoken_answer == "Beim Bauhof."


def test_renamed_file_takes_over_its_pages_without_re_embedding(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    (fixture_kb / "hund.md").rename(fixture_kb / "hundesteuer.md")
    report = KnowledgeIndex.open(index_dir).ingest([fixture_kb])
    assert report.skipped == [] and report.added == 1 and report.embedded == 0
    reopened = KnowledgeIndex.open(index_dir)
    assert len(reopened.document_ids) == 5
    hund = reopened.get("hundesteuer")
    assert hund is not None and hund.source_path.endswith("hundesteuer.md")
    assert str((fixture_kb / "hund.md").resolve()) not in reopened.files
