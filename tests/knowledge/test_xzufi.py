"""XZuFi 2.2 import (knowledge.loaders.xzufi), areas (knowledge.areas) and freshness (knowledge.freshness).

Runs on the project's own XZuFi files in tests/data/xzufi/ with the real e5 model and the real CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge import areas, freshness
from knowledge.chunking import LoadError, ParsedDocument, chunk_document
from knowledge.config import AnswerConfig, KnowledgeConfig
from knowledge.extractive import ExtractiveAnswerEngine
from knowledge.index import KnowledgeIndex
from knowledge.loaders import discover, load_file
from knowledge.loaders.xzufi import html_to_text
from knowledge.types import Action, AnswerRequest, Turn
from voicebot.cli import app
from voicebot.settings import get_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "xzufi"
TOWN = "099990001001"  # Musterstadt in the test files; 099990000000 is the Landkreis
runner = CliRunner()


def _docs(name: str) -> dict[str, ParsedDocument]:
    return {d.meta.doc_id: d for d in load_file(DATA / name).documents}


def test_services_become_pages_with_structured_facts() -> None:
    result = load_file(DATA / "musterstadt-buergeramt.xml")
    assert result.warnings == []
    pages = {d.meta.doc_id: d for d in result.documents}
    assert set(pages) == {"xzufi-l100001", "xzufi-l100001-en", "xzufi-l100002", "xzufi-l100003"}
    park = pages["xzufi-l100001"]
    meta = park.meta
    assert meta.title == "Bewohnerparkausweis beantragen"
    assert meta.catalog_key == "leika:99018005012000"
    assert meta.synonyms == ("Anwohnerparkausweis", "Parkausweis für Anwohner")
    assert meta.areas == (TOWN,)
    assert (meta.valid_from, meta.valid_until) == ("2026-01-01", "2099-06-30")
    assert meta.authority == "Bürgeramt Musterstadt"
    assert "Telefon 0999 1234-100" in meta.contact and "Öffnungszeiten: Montag bis Freitag" in meta.contact
    assert meta.spoken_answer.startswith("Mit einem Bewohnerparkausweis parken Sie")
    sections = {s.heading: s.text for s in park.sections}
    assert sections["Kosten"] == "Die Gebühr beträgt 37 Euro für ein Jahr."
    assert sections["Bearbeitungsdauer"] == "Die Bearbeitung dauert in der Regel 5 Arbeitstage."
    assert sections["Erforderliche Unterlagen"].splitlines() == [
        "- Personalausweis oder Reisepass",
        "- Fahrzeugschein (Zulassungsbescheinigung Teil I)",
    ]
    assert "musterstadt.example/online/bewohnerparken" in sections["Online-Dienst"]
    # Costs as a range and costs without an amount
    costs = {s.heading: s.text for s in pages["xzufi-l100002"].sections}["Kosten"]
    assert costs == "Die Gebühr beträgt 5 bis 10 Euro, je nach Art der Bescheinigung."
    wedding = {s.heading: s.text for s in pages["xzufi-l100003"].sections}
    assert wedding["Kosten"].startswith("Die Gebühren richten sich nach der Landesgebührenordnung")
    assert "Euro" not in wedding["Kosten"]
    # modulFrist: the structured deadline first, then the Fristen text module
    assert wedding["Fristen"].splitlines() == [
        "Die Frist beträgt 6 Monate, in dieser Zeit nach der Anmeldung muss die Trauung stattfinden.",
        "Die Anmeldung ist frühestens sechs Monate vor der Trauung möglich.",
    ]
    english = pages["xzufi-l100001-en"].meta
    assert (english.language, english.title) == ("en", "Apply for a resident parking permit")


def test_text_module_html_becomes_plain_spoken_text() -> None:
    markup = (
        "<h3>Ablauf</h3><p>Erst <strong>Termin</strong>,<br/>dann <em>kommen</em>.</p>"
        '<ul><li>Ausweis</li><li>Foto</li></ul><p>Siehe <a href="https://x.example/">Seite</a>.</p>'
        "<script>alert(1)</script>"
    )
    assert html_to_text(markup).splitlines() == [
        "Ablauf",
        "Erst Termin,",
        "dann kommen.",
        "- Ausweis",
        "- Foto",
        "Siehe Seite.",
    ]
    assert "<" not in html_to_text(markup) and "https" not in html_to_text(markup)
    park = _docs("musterstadt-buergeramt.xml")["xzufi-l100001"]
    text = "\n".join(chunk.text for chunk in chunk_document(park))
    assert "<" not in text and "&lt;" not in text and "Seite zum Parken." in text


def test_malformed_file_names_element_and_line() -> None:
    with pytest.raises(LoadError, match=r"malformed XML in element <inhalt> at line 10, column \d+"):
        load_file(DATA / "kaputt.xml")
    # A service without a title is reported with its line; the file's other services are kept.
    result = load_file(DATA / "kreis-zulassungsstelle.xml")
    assert [d.meta.doc_id for d in result.documents] == ["xzufi-k200001"]
    assert result.warnings == [
        (
            f"{DATA / 'kreis-zulassungsstelle.xml'}:31",
            "element <leistung> K200002: no Leistungsbezeichnung (text module 02): skipped",
        )
    ]


def test_entities_and_foreign_xml_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>\n'
        '<x xmlns="http://xoev.de/schemata/xzufi/2_2_0">&b;</x>',
        encoding="utf-8",
    )
    with pytest.raises(LoadError, match="DOCTYPE or entity declarations are not accepted"):
        load_file(bomb)
    sitemap = tmp_path / "sitemap.xml"
    sitemap.write_text('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>', encoding="utf-8")
    with pytest.raises(LoadError, match=r"not an XZuFi 2\.2 file"):
        load_file(sitemap)
    assert DATA / "kaputt.xml" in discover([DATA])


def test_other_areas_redirect_to_their_office() -> None:
    pages = [*load_file(DATA / "kreis-zulassungsstelle.xml").documents]
    chunks = [c for d in pages for c in chunk_document(d)]
    assert all(c.responsible for c in areas.for_town(chunks, []))  # no area set: everything answered
    mine = areas.for_town(chunks, ["099990000000"])
    assert all(c.responsible for c in mine)
    other = areas.for_town(chunks, [TOWN])
    lead = next(c for c in other if c.id == "xzufi-k200001")
    assert not lead.responsible
    assert lead.spoken_answer == (
        "Für „Fahrzeug zulassen“ ist Landkreis Musterkreis – Zulassungsstelle zuständig. "
        "Sie erreichen die Stelle unter Telefon 0999 5555-0."
    )


@pytest.fixture(scope="module")
def xzufi_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("xzufi-index")
    result = runner.invoke(app, ["kb", "ingest", str(DATA), "--index-dir", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "kaputt.xml: malformed XML in element <inhalt> at line 10" in result.output
    assert "Dokumente" in result.output
    return index_dir


def _engine(index_dir: Path, area_ids: list[str], today: dt.date) -> ExtractiveAnswerEngine:
    config = KnowledgeConfig(
        town="Musterstadt", index_dir=index_dir, answer=AnswerConfig(area_ids=area_ids), kb_sources=()
    )
    engine = ExtractiveAnswerEngine(config, KnowledgeIndex.open(index_dir).retriever(None, area_ids))
    engine.today = lambda: today
    return engine


def test_ask_answers_a_cost_question_with_the_amount_and_cites_it(
    xzufi_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("VOICEBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("VOICEBOT_PATHS__INDEX_DIR", str(xzufi_index))
    monkeypatch.setenv("VOICEBOT_PATHS__KB_SOURCES", json.dumps([str(DATA)]))
    monkeypatch.setenv("VOICEBOT_ANSWER__AREA_IDS", json.dumps([TOWN]))
    get_settings.cache_clear()  # settings read by an earlier test in this process would hide these
    request.addfinalizer(get_settings.cache_clear)  # and these must not leak into later tests
    result = runner.invoke(app, ["ask", "Was kostet der Anwohnerparkausweis?", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{") :])
    assert "37 Euro" in payload["answer"] and payload["action"] == "answer"
    assert [s["id"] if isinstance(s, dict) else s for s in payload["sources"]] == ["xzufi-l100001"]
    result = runner.invoke(app, ["ask", "Ich will mein Auto zulassen", "--json"])
    payload = json.loads(result.output[result.output.index("{") :])
    assert payload["action"] == "redirect" and "Telefon 0 9 9 9" in payload["answer"]
    # a fact of another area's service comes with the office that is responsible for it
    result = runner.invoke(app, ["ask", "Was kostet die Autozulassung?", "--json"])
    payload = json.loads(result.output[result.output.index("{") :])
    assert payload["action"] == "redirect" and "30,70 Euro" in payload["answer"]
    assert "Landkreis Musterkreis" in payload["answer"] and "zuständig" in payload["answer"]


async def test_expired_page_is_not_spoken(xzufi_index: Path) -> None:
    question = AnswerRequest("Was kostet der Bewohnerparkausweis?")
    valid = await _engine(xzufi_index, [TOWN], dt.date(2099, 6, 30)).answer(question)
    assert "37 Euro" in valid.text and valid.reason == "fact_answer"
    expired = await _engine(xzufi_index, [TOWN], dt.date(2099, 7, 1)).answer(question)
    assert "37" not in expired.text and expired.reason == "expired"
    assert expired.text == (
        "Zu „Bewohnerparkausweis beantragen“ kann ich Ihnen gerade keine aktuelle Auskunft geben. "
        "Soll ich Sie mit einer Mitarbeiterin oder einem Mitarbeiter verbinden?"
    )
    history = (Turn("caller", question.question), Turn("bot", expired.text))
    accepted = await _engine(xzufi_index, [TOWN], dt.date(2099, 7, 1)).answer(AnswerRequest("ja", history))
    assert accepted.action == Action.HANDOFF  # the offered hand-off is taken by "ja"
    early = await _engine(xzufi_index, [TOWN], dt.date(2025, 12, 31)).answer(question)
    assert early.reason == "expired"  # gueltigkeit/beginn 2026-01-01: not valid yet
    other = await _engine(xzufi_index, [TOWN], dt.date(2099, 7, 1)).answer(
        AnswerRequest("Was kostet eine Meldebescheinigung?")
    )
    assert "5 bis 10 Euro" in other.text  # no validity dates: always spoken


async def test_a_documents_question_about_an_imported_service_names_what_to_bring(xzufi_index: Path) -> None:
    """The Kurztext says what the paper is for ("Sie brauchen sie für den Arbeitgeber"): no document to bring. The
    procedure step "Ausweis mitbringen" is, and is said once."""
    engine = _engine(xzufi_index, [TOWN], dt.date(2026, 12, 1))
    answer = await engine.answer(AnswerRequest("Was muss ich zur Meldebescheinigung mitbringen?"))
    assert (answer.sources, answer.reason) == (["xzufi-l100002"], "fact_answer"), answer.text
    assert answer.text.startswith("Bitte bringen Sie mit: Ausweis."), answer.text
    assert "Arbeitgeber" not in answer.text


def test_freshness_rules() -> None:
    page = load_file(DATA / "musterstadt-buergeramt.xml").documents[0].meta
    assert freshness.is_current(page, dt.date(2099, 6, 30))
    assert not freshness.is_current(page, dt.date(2099, 7, 1))
    assert [e.doc_id for e in freshness.expiring([page], dt.date(2099, 5, 31))] == ["xzufi-l100001"]
    assert freshness.expiring([page], dt.date(2099, 5, 30)) == []
    assert freshness.expiring([page], dt.date(2099, 7, 2))[0].days_left == -2


def test_stats_lists_pages_expiring_within_30_days(xzufi_index: Path) -> None:
    result = runner.invoke(app, ["kb", "stats", "--index-dir", str(xzufi_index), "--today", "2099-06-10"])
    assert result.exit_code == 0, result.output
    assert "gültig bis 2099-06-30: xzufi-l100001 (Bewohnerparkausweis beantragen)" in result.output
    result = runner.invoke(app, ["kb", "stats", "--index-dir", str(xzufi_index), "--today", "2099-05-01"])
    assert "xzufi-l100001" not in result.output
    result = runner.invoke(app, ["kb", "stats", "--index-dir", str(xzufi_index), "--today", "morgen"])
    assert result.exit_code == 1 and "--today must be a date" in result.output


def test_broken_update_keeps_the_last_good_version(tmp_path: Path) -> None:
    source = tmp_path / "kb"
    source.mkdir()
    target = source / "leistungen.xml"
    shutil.copy(DATA / "musterstadt-buergeramt.xml", target)
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([source])
    target.write_text((DATA / "kaputt.xml").read_text(encoding="utf-8"), encoding="utf-8")
    report = KnowledgeIndex.open(index_dir).ingest([source])
    assert report.kept_stale == [str(target.resolve())]
    assert "malformed XML in element <inhalt> at line 10" in dict(report.skipped)[str(target.resolve())]
    index = KnowledgeIndex.open(index_dir)
    assert "xzufi-l100001" in index.document_ids and index.files[str(target.resolve())].error


def test_llm_passages_leave_out_expired_pages(xzufi_index: Path) -> None:
    from knowledge.llm import passages_for

    engine = _engine(xzufi_index, [TOWN], dt.date(2099, 7, 1))
    retrieval = engine.retrieve_sync(AnswerRequest("Bewohnerparkausweis Kosten"))
    assert retrieval.top is not None and retrieval.top.doc_id == "xzufi-l100001"
    assert "xzufi-l100001" in passages_for(retrieval, 3)
    kept = passages_for(retrieval, 3, dt.date(2099, 7, 1))
    everything = passages_for(retrieval, 3)
    # the German and the English version share the validity dates: both are left out
    assert kept == {k: v for k, v in everything.items() if not k.startswith("xzufi-l100001")} and kept
