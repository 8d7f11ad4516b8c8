"""The dashboard figures (voicebot/staff/dashboard.py, decision 0951): calls per day and hour, containment,
hand-offs by reason, call-backs open and overdue, the 115 service level, voice-to-voice p50/p95, topics and the
answer-confidence bins — pure from rows, and from records written through the real record store and repository
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from database import Database, database, empty_database  # noqa: F401 (fixtures)
from test_figures import Clock

from voicebot.db.models import Role
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.records import new_call_id
from voicebot.staff import dashboard
from voicebot.staff.figures import BERLIN, QueueRow

DAY = date(2026, 12, 1)
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN).timestamp()
NOW = NINE + 2 * 86400
LATER = datetime(2100, 1, 1, tzinfo=BERLIN).timestamp()
DEPARTMENTS = {"personalausweis-beantragen": "Bürgerbüro", "grundsteuer": "Steueramt"}


def test_compute_from_rows() -> None:
    calls = [
        dashboard.CallRow("a", NINE, None),
        dashboard.CallRow("b", NINE + 3600, "caller_asked"),
        dashboard.CallRow("c", NINE + 3700, "low_confidence"),
        dashboard.CallRow("d", NINE + 3800, ""),  # handed off, reason not stored
        dashboard.CallRow("e", NINE - 86400, None),  # the day before: not in the period
    ]
    turns = [
        dashboard.BotTurnRow("a", NINE, 0.95, 800.0, ("personalausweis-beantragen",)),
        dashboard.BotTurnRow("a", NINE, 1.0, 1200.0, ("personalausweis-beantragen",)),  # the call counts once
        dashboard.BotTurnRow("b", NINE + 3600, 0.42, 3000.0, ("grundsteuer", "unbekannt#1")),
        dashboard.BotTurnRow("c", NINE + 3700, None, None),
    ]
    queue = [QueueRow("Bürgerbüro", "answered", NINE + 3610, NINE + 3640), QueueRow("Bürgerbüro", "abandoned",
             NINE + 3710, None, NINE + 3800)]  # fmt: skip
    result = dashboard.compute(calls, turns, queue, [], DEPARTMENTS, start=DAY, end=DAY, now=NOW)
    (day,) = result.days
    assert (day.calls, day.handed_off, day.contained, day.containment) == (4, 3, 1, 0.25)
    assert (day.offered, day.answered_30s, day.service_level) == (2, 1, 0.5)
    assert (day.latency_p50_ms, day.latency_p95_ms) == (1200.0, 3000.0)
    assert result.hours[9] == 1 and result.hours[10] == 3 and sum(result.hours) == 4
    assert result.reasons == [("caller_asked", 1), ("low_confidence", 1), ("unbekannt", 1)]
    assert result.topics == [("Bürgerbüro", 1), ("Steueramt", 1), (dashboard.NO_TOPIC, 1)]
    assert result.confidence[4] == 1 and result.confidence[9] == 2 and sum(result.confidence) == 3


def _call(
    store: SqlCallRecordStore, started_at: float, turns: list[dict[str, Any]], handoff: str = ""
) -> str:
    call_id = new_call_id(started_at)
    events = [{"t": 5.0, "kind": "handoff_requested", "reason": handoff}] if handoff else []
    store.save({"call_id": call_id, "channel": "sip", "started_at": started_at, "ended_at": started_at + 60,
                "ended_reason": "goodbye", "turns": turns, "events": events})  # fmt: skip
    return call_id


def _answer(confidence: float, v2v_ms: float, source: str) -> dict[str, Any]:
    return {"role": "bot", "kind": "answer", "text": "…", "action": "answer", "confidence": confidence,
            "sources": [source], "timings_ms": {"voice_to_voice": v2v_ms, "asr": 100.0}}  # fmt: skip


def write_day(database: Database, tmp_path: Path) -> None:  # noqa: F811
    """1 December 2026: three calls the bot answered, two handed off (one answered by staff after 20 s, one
    waiting 45 s then answered); an open call-back overdue, one due in 2100; a simulation (not a call)."""
    engine = database.engine()
    clock = Clock(NINE)
    repository = Repository(engine, clock=clock)
    lea = repository.staff_user("lea") or repository.add_staff_user(
        "lea", "$argon2id$v=19$...", Role.SUPERVISOR
    )
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
    try:
        _call(store, NINE, [_answer(0.9, 900.0, "personalausweis-beantragen")])
        _call(store, NINE + 60, [_answer(0.85, 1100.0, "personalausweis-beantragen")])
        _call(store, NINE + 3600, [_answer(0.55, 1500.0, "grundsteuer")])
        first = _call(store, NINE + 3700, [_answer(0.3, 2500.0, "grundsteuer")], handoff="low_confidence")
        second = _call(store, NINE + 3800, [], handoff="caller_asked")
        simulated = new_call_id(NINE)
        store.save({"call_id": simulated, "channel": "simulation", "simulated": True, "started_at": NINE,
                    "ended_at": NINE + 5, "ended_reason": "goodbye", "turns": [_answer(0.1, 99.0, "grundsteuer")],
                    "events": []})  # fmt: skip
        assert store.flush()
    finally:
        store.close()
    for call_id, at, after in [(first, NINE + 3710, 20.0), (second, NINE + 3810, 45.0)]:
        clock.now = at
        entry = repository.enqueue(call_id, "Bürgerbüro", "caller_asked")
        clock.now = at + after
        assert repository.answer(entry.id, lea.id)
    clock.now = NINE + 3900
    repository.add_callback(first, "Bürgerbüro", "+49301234567", NINE + 7200)
    repository.add_callback(second, "Bürgerbüro", "+49301234568", LATER)


def test_dashboard_from_stored_records_on_both_databases(database: Database, tmp_path: Path) -> None:  # noqa: F811
    write_day(database, tmp_path)
    result = dashboard.report(database.engine(), DAY, DAY, now=NOW, departments=DEPARTMENTS)
    (day,) = result.days
    assert (day.calls, day.handed_off, day.contained) == (5, 2, 3)
    assert day.containment == 0.6
    assert (day.offered, day.answered_30s, day.service_level) == (2, 1, 0.5)
    assert (day.latency_p50_ms, day.latency_p95_ms) == (1100.0, 2500.0)
    assert result.hours[9] == 2 and result.hours[10] == 3
    assert result.reasons == [("caller_asked", 1), ("low_confidence", 1)]
    assert result.topics == [("Bürgerbüro", 2), ("Steueramt", 2)]
    assert result.confidence == [0, 0, 0, 1, 0, 1, 0, 0, 1, 1]  # 0.3, 0.55, 0.85, 0.9 (bins start included)
    assert (result.callbacks_open, result.callbacks_overdue) == (2, 1)
    assert result.totals["containment"] == 0.6 and result.totals["service_level"] == 0.5
    assert dashboard.report(database.engine(), date(2026, 11, 30), date(2026, 11, 30), now=NOW,
                            departments=DEPARTMENTS).days == []  # fmt: skip
