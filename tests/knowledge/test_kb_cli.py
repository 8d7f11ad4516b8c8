"""``voicebot kb ingest|stats|search`` end to end through the real CLI app (real files, real e5)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from kb_fixtures import make_pdf, write_fixture_kb
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


VOICEBOT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "voicebot"


def _voicebot(cwd: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """The installed command, run in ``cwd`` with only ``variables`` of the VOICEBOT_* kind."""
    # A wide terminal: the tables must not shorten the long temporary paths the tests look for.
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
        | {"COLUMNS": "250"}
        | variables
    )
    return subprocess.run(
        [str(VOICEBOT), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_ask_from_any_folder_uses_the_index_next_to_the_configuration_file(tmp_path: Path) -> None:
    """Relative paths are taken from the configuration file's folder, not from where the command runs: asking
    from another folder answers from the same index and builds none there."""
    home = tmp_path / "hotline"
    write_fixture_kb(home / "kb")
    config = home / "voicebot.toml"
    config.write_text('[paths]\nindex_dir = "index"\nkb_sources = ["kb"]\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    question = "Was kostet ein Personalausweis?"

    at_home = _voicebot(home, "ask", question, "--json", VOICEBOT_CONFIG=str(config))
    assert at_home.returncode == 0, at_home.stderr
    assert (home / "index" / "manifest.json").is_file()
    from_elsewhere = _voicebot(elsewhere, "ask", question, "--json", VOICEBOT_CONFIG=str(config))
    assert from_elsewhere.returncode == 0, from_elsewhere.stderr
    assert json.loads(from_elsewhere.stdout)["sources"] == json.loads(at_home.stdout)["sources"]
    assert json.loads(at_home.stdout)["sources"][0]["id"] == "personalausweis-beantragen"
    assert list(elsewhere.iterdir()) == []  # no index (nor var/) built where the command ran

    # Without a configuration file, VOICEBOT_HOME is the root: the same index, again from elsewhere.
    stats = _voicebot(elsewhere, "kb", "stats", VOICEBOT_HOME=str(home), VOICEBOT_PATHS__INDEX_DIR="index")
    assert stats.returncode == 0, stats.stderr
    assert str(home / "index") in stats.stdout.replace("\n", "")
    assert list(elsewhere.iterdir()) == []


def test_ask_in_a_language_without_answers_says_so(fixture_kb: Path, tmp_path: Path) -> None:
    """The fixture KB is German only: ``--language fr`` gets the German answer and one line saying so."""
    result = _voicebot(
        tmp_path,
        "ask",
        "Was kostet ein Personalausweis?",
        "--language",
        "fr",
        VOICEBOT_PATHS__INDEX_DIR=str(tmp_path / "index"),
        VOICEBOT_PATHS__KB_SOURCES=json.dumps([str(fixture_kb)]),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "note: no answer in language 'fr' in the knowledge base; answered in 'de'"
    ]
    assert "37 Euro" in result.stdout
    same_language = _voicebot(
        tmp_path,
        "ask",
        "Was kostet ein Personalausweis?",
        VOICEBOT_PATHS__INDEX_DIR=str(tmp_path / "index"),
        VOICEBOT_PATHS__KB_SOURCES=json.dumps([str(fixture_kb)]),
    )
    assert same_language.returncode == 0 and same_language.stderr == ""


def test_a_broken_pdf_prints_only_our_line(tmp_path: Path) -> None:
    """pypdf's own complaints ("EOF marker not found", ...) stay out of the output: one reason per file."""
    pdf = make_pdf([["1. Allgemeines", "Der Antrag kostet zehn Euro und dauert eine Woche."]])
    for name, content in (
        ("abgeschnitten.pdf", pdf[: len(pdf) * 2 // 3]),
        ("ohne-xref.pdf", pdf.replace(b"xref", b"xxxx")),
    ):
        (tmp_path / name).write_bytes(content)
        result = _voicebot(tmp_path, "kb", "ingest", name, "--index-dir", str(tmp_path / "index"))
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "error: nothing could be indexed: no readable knowledge file in the given paths"
        ], name
        assert f"übersprungen: {name}: unreadable PDF: " in result.stdout


def test_ingest_without_paths_keeps_the_approved_corrections(
    fixture_kb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`voicebot kb ingest` with the configured sources also indexes paths.corrections_dir (decision 0940): a
    rebuilt index keeps the corrections the console applied."""
    corrections = tmp_path / "korrekturen"
    corrections.mkdir()
    (corrections / "korrektur-1.md").write_text(
        "---\nid: korrektur-1\ntitle: 'Korrektur vom 01.12.2026: Personalausweis'\nlayer: correction\n"
        "overrides: personalausweis-beantragen\n---\n## Korrektur vom 01.12.2026\n\nAuch samstags im Bürgerbüro.\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("VOICEBOT_PATHS__KB_SOURCES", json.dumps([str(fixture_kb)]))
    monkeypatch.setenv("VOICEBOT_PATHS__CORRECTIONS_DIR", str(corrections))
    index_dir = tmp_path / "index"
    result = runner.invoke(app, ["kb", "ingest", "--index-dir", str(index_dir)])
    assert result.exit_code == 0, result.output
    index = KnowledgeIndex.open(index_dir)
    assert str(corrections / "korrektur-1.md") in index.files
    assert {c.doc_id for c in index.chunks if c.layer == "correction"} == {"korrektur-1"}
