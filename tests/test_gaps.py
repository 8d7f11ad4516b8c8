"""The knowledge-gap report (voicebot/staff/gaps.py, decision 0950): which caller questions count as gaps, German
questions grouped by meaning with the real e5 model (two wordings of one matter together, an unrelated one apart),
ranked by calls, with the closest pages of the sample index; the report from records written through the real
record store on SQLite and PostgreSQL; the CLI's text, JSON and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from database import Database, database, empty_database  # noqa: F401 (fixtures)

from voicebot.db import migrate
from voicebot.db.store import SqlCallRecordStore
from voicebot.records import new_call_id
from voicebot.staff import gaps
from voicebot.staff.figures import BERLIN

REPO_ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 12, 1)
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN).timestamp()
ID_CARD = [
    "Ich brauche einen Termin für einen neuen Personalausweis.",
    "Wie bekomme ich einen neuen Perso, meiner ist abgelaufen?",
    "Mein Personalausweis läuft ab, was muss ich tun?",
]
LAND_TAX = [
    "Wann wird der Grundsteuer-Messbescheid verschickt?",
    "Ich habe eine Frage zum Grundsteuermessbescheid.",
]
BIN = "Wann wird die Biotonne abgeholt?"


def bot(
    action: str, confidence: float = 0.9, reason: str = "", sources: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"role": "bot", "kind": "answer", "text": "…", "action": action, "confidence": confidence,
            "reason": reason, "sources": list(sources)}  # fmt: skip


def caller(text: str) -> dict[str, Any]:
    return {"role": "caller", "kind": "question", "text": text, "asr_confidence": 0.9}


def test_which_answers_make_a_question_a_gap() -> None:
    kind = lambda data: gaps.gap_kind(data, 0.5)  # noqa: E731
    assert kind(bot("answer", 0.9)) is None
    assert kind(bot("answer", 0.49)) == "unsicher"
    assert kind(bot("redirect", 0.3)) == "unsicher"
    assert kind(bot("answer", 0.8, "fact_unknown:fee")) == "unbekannt"
    assert kind(bot("clarify", 0.2, "out_of_scope")) == "unbekannt"
    assert kind(bot("clarify", 0.4, "low_confidence")) == "rueckfrage"
    assert kind(bot("clarify", 0.4, "low_asr")) is None  # misheard: no gap in the pages
    assert kind(bot("handoff", 0.3, "low_confidence_again")) == "uebergabe"
    assert kind(bot("handoff", 1.0, "handoff_accepted")) is None  # the caller wanted a person
    assert kind(bot("emergency", 1.0)) is None
    turns = [
        ("bot", "Guten Tag.", {"kind": "greeting"}),
        ("caller", "  Was kostet   ein Reisepass? ", {}),
        ("bot", "Einen Moment.", {}),  # no action: not the answer yet
        ("bot", "…", {"action": "clarify", "reason": "low_confidence"}),
        ("caller", "Danke", {}),
        ("caller", "Tschüss", {}),
        ("bot", "…", {"action": "answer", "confidence": 0.9}),
    ]
    (found,) = gaps.questions_of_call("c", NINE, turns, 0.5)
    assert (found.text, found.kind) == ("Was kostet ein Reisepass?", "rueckfrage")


def test_cluster_is_greedy_and_deterministic() -> None:
    import numpy as np

    a, b = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    near_a = np.array([0.96, 0.28], dtype=np.float32)  # cos 0.96 with a
    assert gaps.cluster(np.stack([a, b, near_a, b]), 0.9) == [[0, 2], [1, 3]]
    assert gaps.cluster(np.stack([a, near_a]), 0.97) == [[0], [1]]
    assert gaps.cluster(np.zeros((0, 2), dtype=np.float32)) == []


def test_questions_are_grouped_by_meaning_with_e5() -> None:
    from knowledge.index import KnowledgeIndex

    index = KnowledgeIndex.open(REPO_ROOT / "var" / "index")
    # Newest first: the colloquial "Perso" wording (cosine 0.876 with the first alone) joins the group's centroid.
    asked = [ID_CARD[0], LAND_TAX[0], BIN, ID_CARD[2], LAND_TAX[1], ID_CARD[1], ID_CARD[1]]
    questions = [
        gaps.Question(f"call-{n if n < 6 else 5}", NINE - n * 60, text, "rueckfrage")
        for n, text in enumerate(asked)
    ]
    result = gaps.compute(questions, start=DAY, end=DAY, index=index)
    assert [sorted(g.examples) for g in result.groups] == [sorted(ID_CARD), sorted(LAND_TAX), [BIN]]
    id_card, land_tax, waste = result.groups
    assert (id_card.calls, id_card.questions) == (3, 4)  # the same call asking twice counts once
    assert (land_tax.calls, waste.calls) == (2, 1)
    assert "grundsteuer" in [p.doc_id for p in land_tax.pages]
    assert any(p.doc_id.startswith("personalausweis") for p in id_card.pages)
    assert all(len(g.pages) == gaps.MAX_PAGES for g in result.groups)
    assert gaps.compute(questions, start=DAY, end=DAY, index=index).to_json() == result.to_json()


def _store_call(
    store: SqlCallRecordStore, started_at: float, turns: list[dict[str, Any]], **extra: Any
) -> str:
    call_id = new_call_id(started_at)
    record = {"call_id": call_id, "channel": "sip", "started_at": started_at, "ended_at": started_at + 60,
              "ended_reason": "goodbye", "turns": turns, "events": [], **extra}  # fmt: skip
    store.save(record)
    return call_id


def _write_calls(store: SqlCallRecordStore) -> None:
    _store_call(store, NINE, [caller(LAND_TAX[0]), bot("answer", 0.3, sources=("grundsteuer",))])
    _store_call(store, NINE + 60, [caller(LAND_TAX[1]), bot("handoff", 0.2, "low_confidence_again")])
    _store_call(store, NINE + 120, [caller(ID_CARD[0]), bot("answer", 0.9, "fact_unknown:fee")])
    _store_call(
        store, NINE + 180, [caller("Wann hat das Bürgerbüro geöffnet?"), bot("answer", 0.95)]
    )  # answered
    _store_call(
        store, NINE + 240, [caller("Ich möchte einen Menschen."), bot("handoff", 1.0, "handoff_accepted")]
    )
    _store_call(store, NINE + 300, [caller(LAND_TAX[0]), bot("clarify", 0.2)], channel="simulation")  # a test
    _store_call(store, NINE - 86400, [caller(LAND_TAX[0]), bot("clarify", 0.2)])  # the day before
    assert store.flush()


def test_gap_report_from_stored_calls_on_both_databases(database: Database, tmp_path: Path) -> None:  # noqa: F811
    store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    try:
        _write_calls(store)
    finally:
        store.close()
    engine = database.engine()
    questions, truncated = gaps.load(engine, DAY, DAY, 0.5)
    assert not truncated
    assert [(q.text, q.kind) for q in questions] == [
        (ID_CARD[0], "unbekannt"),
        (LAND_TAX[1], "uebergabe"),
        (LAND_TAX[0], "unsicher"),
    ]  # newest first; answered, caller-asked, simulated and other days left out
    result = gaps.report(engine, DAY, DAY, min_answer_confidence=0.5)
    assert [(g.calls, sorted(g.examples), g.kinds) for g in result.groups] == [
        (2, sorted(LAND_TAX), {"uebergabe": 1, "unsicher": 1}),
        (1, [ID_CARD[0]], {"unbekannt": 1}),
    ]
    text = gaps.render(result)
    assert "Wissenslücken 01.12.2026 bis 01.12.2026: 3 Fragen ohne gute Antwort in 2 Themen" in text
    assert "1. 2 Anrufe, 2 Fragen (Übergabe an Mitarbeitende 1, Antwort unsicher 1)" in text
    assert f"   „{LAND_TAX[1]}“" in text
    wider = gaps.report(engine, date(2026, 11, 30), DAY, min_answer_confidence=0.5)
    assert wider.groups[0].calls == 3 and wider.considered == 4 and not wider.truncated


def test_a_question_with_an_applied_correction_is_no_longer_a_gap(database: Database, tmp_path: Path) -> None:  # noqa: F811
    from sqlalchemy import update

    from voicebot.db.engine import writing
    from voicebot.db.models import Correction
    from voicebot.staff import corrections

    store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    try:
        fixed = _store_call(store, NINE, [caller(LAND_TAX[0]), bot("answer", 0.3, sources=("grundsteuer",))])
        _store_call(store, NINE + 60, [caller(LAND_TAX[1]), bot("handoff", 0.2, "low_confidence_again")])
        answered = _store_call(store, NINE + 120, [caller(BIN), bot("answer", 0.95)])
        assert store.flush()
    finally:
        store.close()
    engine = database.engine()

    def asked() -> list[str]:
        return [q.text for q in gaps.load(engine, DAY, DAY, 0.5)[0]]

    assert asked() == [LAND_TAX[1], LAND_TAX[0]]  # a good answer is no gap ...
    wrong = corrections.create_draft(
        engine, call_id=answered, turn_index=1, kind="wrong", page_id="biotonne", question=BIN,
        text="Die Biotonne wird dienstags abgeholt.", author="lea", now=NINE,
    )  # fmt: skip
    assert [(q.text, q.kind) for q in gaps.load(engine, DAY, DAY, 0.5)[0]] == [
        (BIN, "korrektur"),  # ... until a supervisor says it was wrong
        (LAND_TAX[1], "uebergabe"),
        (LAND_TAX[0], "unsicher"),
    ]
    with writing(engine) as connection:
        connection.execute(update(Correction).where(Correction.id == wrong).values(status="rejected"))
    assert asked() == [LAND_TAX[1], LAND_TAX[0]]
    made = corrections.create_draft(
        engine, call_id=fixed, turn_index=1, kind="wrong", page_id="grundsteuer", question=LAND_TAX[0],
        text="Den Grundsteuer-Messbescheid schickt das Finanzamt.", author="lea", now=NINE,
    )  # fmt: skip
    assert [q.kind for q in gaps.load(engine, DAY, DAY, 0.5)[0]] == ["uebergabe", "korrektur"]  # a draft

    def set_status(status: str) -> None:
        with writing(engine) as connection:
            connection.execute(update(Correction).where(Correction.id == made).values(status=status))

    set_status("approved")
    assert asked() == [LAND_TAX[1]]
    set_status("reverted")
    assert asked() == [LAND_TAX[1], LAND_TAX[0]]


def test_only_the_newest_questions_are_read(database: Database, tmp_path: Path, monkeypatch: Any) -> None:  # noqa: F811
    store = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    try:
        _write_calls(store)
    finally:
        store.close()
    monkeypatch.setattr(gaps, "MAX_QUESTIONS", 2)
    questions, truncated = gaps.load(database.engine(), DAY, DAY, 0.5)
    assert truncated and [q.text for q in questions] == [ID_CARD[0], LAND_TAX[1]]
    result = gaps.report(database.engine(), DAY, DAY, min_answer_confidence=0.5)
    assert (
        result.truncated
        and result.considered == 2
        and "(nur die neuesten 2 Fragen ausgewertet)" in gaps.render(result)
    )


def test_cli_prints_json_and_refuses_bad_dates(tmp_path: Path) -> None:
    """The command reads what the report reads (tested on both databases above); here on SQLite."""
    sqlite = Database("sqlite", f"sqlite:///{tmp_path / 'voicebot.db'}")
    engine = sqlite.engine()
    migrate.upgrade(engine)
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
    try:
        _write_calls(store)
    finally:
        store.close()
        engine.dispose()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    environment["VOICEBOT_PATHS__DATABASE_FILE"] = str(tmp_path / "voicebot.db")
    environment["VOICEBOT_PATHS__INDEX_DIR"] = str(REPO_ROOT / "var" / "index")

    def voicebot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicebot.cli", "report", "gaps", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            cwd=REPO_ROOT,
        )

    as_json = voicebot("--json", "--from", "2026-12-01", "--to", "01.12.2026")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["questions"] == 3 and data["similarity"] == gaps.SIMILARITY
    first = data["groups"][0]
    assert first["calls"] == 2 and first["kinds"] == {"uebergabe": 1, "unsicher": 1}
    assert first["closest_pages"][0] == {"id": "grundsteuer", "title": "Grundsteuer",
                                         "similarity": first["closest_pages"][0]["similarity"]}  # fmt: skip
    bad = voicebot("--from", "gestern")
    assert bad.returncode == 2 and "--from 'gestern' is not a date" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
