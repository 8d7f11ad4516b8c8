"""Knowledge layers (knowledge.layers): the town's pages amend imported base pages by page id.

Real files (tests/data/xzufi/ as the base layer, tests/data/xzufi-town/ as the town's), real index and e5.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge import layers
from knowledge.config import AnswerConfig, KnowledgeConfig
from knowledge.extractive import ExtractiveAnswerEngine
from knowledge.index import KnowledgeIndex
from knowledge.types import AnswerRequest
from voicebot.cli import app

DATA = Path(__file__).resolve().parents[1] / "data"
BASE, TOWN = DATA / "xzufi", DATA / "xzufi-town"
runner = CliRunner()


@pytest.fixture(scope="module")
def layered_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("layered-index")
    KnowledgeIndex.open(index_dir).ingest([BASE, TOWN])
    return index_dir


def test_town_sections_replace_the_base_sections_of_the_same_heading(layered_index: Path) -> None:
    index = KnowledgeIndex.open(layered_index)
    stored = {c.id: c for c in index.chunks}
    assert "Die Gebühr beträgt 37 Euro" in stored["xzufi-l100001"].text  # stored as the files say
    resolved, report = layers.resolve(index.chunks)
    assert len(resolved) == len(index.chunks)  # rows stay aligned with the stored embeddings
    page = [c for c in resolved if c.doc_id == "xzufi-l100001"]
    text = "\n".join(c.text for c in page)
    assert "37 Euro" not in text and "40 Euro" in text and "Bewohnerparkzonen gibt es" in text
    assert "Erforderliche Unterlagen" in text  # not overridden: kept from the base
    town = next(c for c in page if c.id == "xzufi-l100001#musterstadt-bewohnerparken")
    assert (town.title, town.layer) == ("Bewohnerparkausweis beantragen", "town")
    assert page[0].contact.startswith("Telefon 0999 1234-150")
    assert "musterstadt-bewohnerparken" not in {c.doc_id for c in resolved}
    assert report.overrides == {"xzufi-l100001": ["musterstadt-bewohnerparken"]}
    assert [(c.page, c.heading) for c in report.conflicts] == [("xzufi-l100001", "Kosten")]
    assert report.problems == []


async def test_the_town_layer_wins_in_answers(layered_index: Path) -> None:
    config = KnowledgeConfig(town="Musterstadt", index_dir=layered_index, kb_sources=())
    engine = ExtractiveAnswerEngine(config, KnowledgeIndex.open(layered_index).retriever())
    answer = await engine.answer(AnswerRequest("Was kostet der Bewohnerparkausweis?"))
    assert "40 Euro" in answer.text and "37" not in answer.text
    assert answer.sources == ["xzufi-l100001#musterstadt-bewohnerparken"]


def test_removing_the_override_restores_the_base(tmp_path: Path) -> None:
    town = tmp_path / "town"
    town.mkdir()
    page = town / "bewohnerparken.md"
    page.write_text((TOWN / "bewohnerparken.md").read_text(encoding="utf-8"), encoding="utf-8")
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([BASE, town])
    page.unlink()
    KnowledgeIndex.open(index_dir).ingest([BASE, town], prune=True)
    resolved, report = layers.resolve(KnowledgeIndex.open(index_dir).chunks)
    assert report.overrides == {}
    assert "37 Euro" in next(c for c in resolved if c.id == "xzufi-l100001").text


def test_override_problems_are_listed(tmp_path: Path) -> None:
    town = tmp_path / "town"
    town.mkdir()
    (town / "fehlt.md").write_text(
        "---\nid: ergaenzung\ntitle: Ergänzung\noverrides: gibt-es-nicht\n---\n\n## Kosten\n\n5 Euro.\n",
        encoding="utf-8",
    )
    (town / "basis.md").write_text(
        "---\nid: geteilt\ntitle: Geteilte Seite\nlayer: base\noverrides: xzufi-l100002\n---\n\nText.\n",
        encoding="utf-8",
    )
    (town / "falsch.md").write_text("---\nid: x\ntitle: X\nlayer: kreis\n---\n\nText.\n", encoding="utf-8")
    index_dir = tmp_path / "index"
    report = KnowledgeIndex.open(index_dir).ingest([BASE, town])
    assert "invalid layer 'kreis'" in dict(report.skipped)[str((town / "falsch.md").resolve())]
    _, layered = layers.resolve(KnowledgeIndex.open(index_dir).chunks)
    assert dict(layered.problems) == {
        "ergaenzung": "overrides 'gibt-es-nicht', which is not in the index",
        "geteilt": "overrides 'xzufi-l100002' of layer 'base' from the same or a lower layer",
    }


def test_stats_shows_layers_overrides_and_conflicts(layered_index: Path) -> None:
    result = runner.invoke(app, ["kb", "stats", "--pages", "--index-dir", str(layered_index)])
    assert result.exit_code == 0, result.output
    assert "base (5), town (1)" in result.output
    assert "überschreibt: musterstadt-bewohnerparken (town, " in result.output
    assert "Konflikt: xzufi-l100001 „Kosten“ in base (" in result.output and "town gilt" in result.output
    assert "Seite: xzufi-k200001 [base]" in result.output
    assert "Seite: musterstadt-bewohnerparken [town]" in result.output


def test_review_spoken_lists_generated_answers_until_a_town_page_approves_them(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([BASE])
    drafts = tmp_path / "town"
    args = ["kb", "review-spoken", "--index-dir", str(index_dir)]
    result = runner.invoke(app, [*args, "--write", str(drafts)])
    assert result.exit_code == 0, result.output
    assert "xzufi-l100002\tMeldebescheinigung ausstellen\tEine Meldebescheinigung bestätigt" in result.output
    draft = drafts / "xzufi-l100002-telefon.md"
    assert 'overrides: "xzufi-l100002"' in draft.read_text(encoding="utf-8")
    for other in drafts.iterdir():
        if other != draft:
            other.unlink()
    approved = "Eine Meldebescheinigung bekommen Sie sofort im Bürgeramt."
    text = draft.read_text(encoding="utf-8").splitlines()
    text = [f'spoken_answer: "{approved}"' if line.startswith("spoken_answer:") else line for line in text]
    draft.write_text("\n".join(text) + "\n", encoding="utf-8")
    KnowledgeIndex.open(index_dir).ingest([BASE, drafts])
    result = runner.invoke(app, args)
    assert "xzufi-l100002" not in result.output and "xzufi-l100001\t" in result.output
    resolved = {c.id: c for c in layers.resolve(KnowledgeIndex.open(index_dir).chunks)[0]}
    # an approved answer is the editor's: LLM mode speaks it instead of writing a summary (knowledge.llm)
    assert not resolved["xzufi-l100002"].spoken_generated and resolved["xzufi-l100001"].spoken_generated
    config = KnowledgeConfig(
        town="Musterstadt", index_dir=index_dir, kb_sources=(), answer=AnswerConfig(offer_more=False)
    )
    engine = ExtractiveAnswerEngine(config, KnowledgeIndex.open(index_dir).retriever())
    answer = asyncio.run(engine.answer(AnswerRequest("Was ist eine Meldebescheinigung?")))
    assert answer.text == approved and answer.sources[0].split("#")[0] == "xzufi-l100002"


def test_a_correction_amends_a_town_page_and_a_town_page_cannot_amend_a_correction() -> None:
    """The correction layer (decision 0940) is above the town's: it may amend a town page; the reverse is refused."""
    from knowledge.types import Chunk

    def page(doc_id: str, layer: str, overrides: str = "", text: str = "", spoken: str = "") -> Chunk:
        return Chunk(
            id=doc_id, doc_id=doc_id, title=doc_id, text=text, spoken_answer=spoken, layer=layer,
            overrides=overrides,
        )  # fmt: skip

    town = page("hallenbad", "", text="## Preise\n\nEintritt 4 Euro.", spoken="Der Eintritt kostet 4 Euro.")
    fix = page(
        "korrektur-1", layers.CORRECTION, "hallenbad", "## Preise\n\nEintritt 5 Euro.", "Eintritt: 5 Euro."
    )
    stray = page("stadt-seite", "town", "korrektur-1", "## Preise\n\nEintritt 6 Euro.")
    resolved, report = layers.resolve([town, fix, stray])
    assert report.overrides == {"hallenbad": ["korrektur-1"]}
    assert report.problems == [("stadt-seite", "overrides 'korrektur-1' of layer 'correction' from the same or a lower layer")]  # fmt: skip
    assert resolved[0].spoken_answer == "Eintritt: 5 Euro." and "4 Euro" not in resolved[0].text
    assert (resolved[1].id, resolved[1].doc_id, resolved[1].layer) == (
        "hallenbad#korrektur-1",
        "hallenbad",
        "correction",
    )
