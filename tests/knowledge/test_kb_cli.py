"""``voicebot kb ingest|stats|search`` end to end through the real CLI app (real files, real e5)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from knowledge.config import KnowledgeConfig
from knowledge.extractive import ExtractiveAnswerEngine
from knowledge.index import KnowledgeIndex
from knowledge.types import AnswerRequest
from voicebot.cli import app

runner = CliRunner()


def test_ingest_stats_search(fixture_kb: Path, tmp_path: Path) -> None:
    index_dir = str(tmp_path / "index")
    (fixture_kb / "kaputt.md").write_text("---\nid: [x\n---\n", encoding="utf-8")
    result = runner.invoke(app, ["kb", "ingest", str(fixture_kb), "--index-dir", index_dir])
    assert result.exit_code == 0, result.output
    assert "Dokumente" in result.output and "5" in result.output
    assert "kaputt.md" in result.output and "invalid YAML" in result.output

    result = runner.invoke(app, ["kb", "stats", "--index-dir", index_dir])
    assert result.exit_code == 0, result.output
    assert "Verweise auf andere Behörden" in result.output

    result = runner.invoke(app, ["kb", "search", "neuer Perso", "--json", "--index-dir", index_dir])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["hits"][0]["id"] == "personalausweis-beantragen"
    assert payload["hits"][0]["bm25_rank"] == 1 and "personalauswei" in payload["tokens"]
    # The confidence shown is the one the answer engines decide with, not a second score of retrieval's own.
    config = KnowledgeConfig(town="Musterstadt", index_dir=Path(index_dir))
    engine = ExtractiveAnswerEngine(config, KnowledgeIndex.open(Path(index_dir)).retriever())
    judged = engine.retrieve_sync(AnswerRequest("neuer Perso"))
    assert (payload["confidence"], payload["confident_page"]) == (
        judged.confidence,
        "personalausweis-beantragen",
    )
    assert judged.top is not None and judged.top.doc_id == "personalausweis-beantragen"


def test_ingest_errors_are_one_clear_line(tmp_path: Path) -> None:
    index_dir = str(tmp_path / "index")
    result = runner.invoke(app, ["kb", "ingest", str(tmp_path / "fehlt"), "--index-dir", index_dir])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: path not found: {tmp_path / 'fehlt'}"]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.md").write_text("no front matter", encoding="utf-8")
    result = runner.invoke(app, ["kb", "ingest", str(broken), "--index-dir", index_dir])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: nothing could be indexed")

    result = runner.invoke(app, ["kb", "search", "Perso", "--index-dir", index_dir])
    assert result.exit_code == 1 and "is empty" in result.output
