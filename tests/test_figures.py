"""Service figures of the staff queue (voicebot/staff/figures.py, ``voicebot report queue``): the 30 s boundary, the
95th percentile, days in Europe/Berlin, overdue call-backs and containment, from rows written through the
repository and the record store with injected times, on SQLite and PostgreSQL; the CLI's table, JSON and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)

from voicebot.db import migrate
from voicebot.db.models import CallbackStatus, QueueStatus, Role
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.records import new_call_id
from voicebot.staff.figures import (
    BERLIN,
    CallbackRow,
    CallRow,
    QueueRow,
    compute,
    percentile,
    period_bounds,
    render,
    report,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 12, 1)
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN).timestamp()
NOW = NINE + 2 * 86400  # the report is made two days later
LATER = datetime(2100, 1, 1, tzinfo=BERLIN).timestamp()  # a due time that is never overdue


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([float(n) for n in range(1, 21)], 0.95) == 19.0  # 95 % of 20 waits: the 19th
    assert percentile([float(n) for n in range(1, 22)], 0.95) == 20.0  # ceil(19.95) = 20th of 21
    assert percentile([30.5, 5.0, 10.0, 30.0], 0.95) == 30.5


def test_days_are_berlin_days_across_midnight_and_summer_time() -> None:
    first, after = period_bounds(DAY, DAY)
    assert after - first == 86400
    assert datetime.fromtimestamp(first, BERLIN).hour == 0 and first % 86400 == 23 * 3600  # 23:00 UTC
    # The day summer time starts has 23 hours.
    first, after = period_bounds(date(2026, 3, 29), date(2026, 3, 29))
    assert after - first == 23 * 3600
    late = datetime(2026, 11, 30, 23, 59, 30, tzinfo=BERLIN).timestamp()  # 22:59:30 UTC: same UTC day as ...
    early = datetime(2026, 12, 1, 0, 0, 10, tzinfo=BERLIN).timestamp()  # ... 23:00:10 UTC
    rows = [
        QueueRow("Standesamt", "answered", late, late + 5),
        QueueRow("Standesamt", "answered", early, early + 50),
    ]
    result = compute(rows, [], [], start=date(2026, 11, 30), end=DAY, now=NOW)
    assert [(g.day, g.offered, g.answered_30s) for g in result.groups] == [
        (date(2026, 11, 30), 1, 1),
        (DAY, 1, 0),
    ]
    only_first = compute(rows, [], [], start=DAY, end=DAY, now=NOW)
    assert [(g.day, g.offered) for g in only_first.groups] == [(DAY, 1)]


def test_figures_of_one_group_and_day() -> None:
    queue = [
        QueueRow("Bürgerbüro", "answered", NINE, NINE + 30.0),  # exactly 30 s: within
        QueueRow("Bürgerbüro", "answered", NINE + 100, NINE + 130.5),  # 30.5 s: not within
        QueueRow("Bürgerbüro", "abandoned", NINE + 200, None, NINE + 210),  # hung up after 10 s
        QueueRow("Bürgerbüro", "answered", NINE + 300, NINE + 305),
        QueueRow("Bürgerbüro", "waiting", NINE + 400),  # still waiting: no waiting time yet
        QueueRow("Bürgerbüro", "callback", NINE + 500, None, NINE + 560),  # took a call-back: not abandoned
    ]
    callbacks = [
        CallbackRow("Bürgerbüro", "done", NINE, NINE + 3600),
        CallbackRow("Bürgerbüro", "open", NINE, NINE + 3600),  # due before NOW: overdue
        CallbackRow("Bürgerbüro", "claimed", NINE, NOW + 60),  # due later: not overdue
        CallbackRow("Bürgerbüro", "failed", NINE, NINE + 3600),  # nobody reached: finished, not overdue
    ]
    calls = [CallRow(NINE, True)] * 3 + [CallRow(NINE, False)]
    result = compute(queue, callbacks, calls, start=DAY, end=DAY, now=NOW)
    (group,) = result.groups
    assert (group.offered, group.answered, group.answered_30s, group.abandoned) == (6, 3, 2, 1)
    assert group.share_30s == pytest.approx(2 / 6)
    assert group.average_wait_s == pytest.approx((30 + 30.5 + 10 + 5 + 60) / 5)
    assert group.p95_wait_s == 60
    assert (group.callbacks_requested, group.callbacks_done, group.callbacks_overdue) == (4, 1, 1)
    (day,) = result.days
    assert (day.calls, day.handed_off, day.contained, day.containment) == (4, 3, 1, 0.25)
    assert compute(queue, callbacks, calls, start=DAY, end=DAY, now=NOW, group="Standesamt").groups == []


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def _call(
    store: SqlCallRecordStore, started_at: float, *, channel: str = "sip", handoff: bool = False
) -> str:
    """A finished call record as the pipeline writes it (started at ``started_at``)."""
    call_id = new_call_id(started_at)
    events = [{"t": 5.0, "kind": "handoff_requested", "reason": "caller_asked"}] if handoff else []
    store.save(
        {
            "call_id": call_id,
            "channel": channel,
            "started_at": started_at,
            "ended_at": started_at + 60,
            "ended_reason": "goodbye",
            "turns": [],
            "events": events,
        }
    )
    return call_id


def _write_day(store: SqlCallRecordStore, database: Database) -> None:  # noqa: F811
    """One day of a town's hotline, written through the record store and the repository at injected times."""
    clock = Clock(NINE)
    repository = Repository(database.engine(), clock=clock)
    anna = repository.add_staff_user("anna", "$argon2id$v=19$...", Role.STAFF)

    def entry(offset: float, *, answer_after: float | None = None, abandon_after: float | None = None) -> str:
        call_id = _call(store, NINE + offset - 20)
        assert store.flush()
        clock.now = NINE + offset
        queued = repository.enqueue(call_id, "Bürgerbüro", "caller_asked")
        if answer_after is not None:
            clock.now = NINE + offset + answer_after
            assert repository.answer(queued.id, anna.id)
        if abandon_after is not None:
            clock.now = NINE + offset + abandon_after
            assert repository.end_wait(queued.id, QueueStatus.ABANDONED)
        return call_id

    first = entry(0, answer_after=30.0)
    entry(100, answer_after=30.5)
    entry(200, abandon_after=10)
    # A PBX hand-off: the PBX took the call after 4 s.
    call_id = _call(store, NINE + 280)
    assert store.flush()
    clock.now = NINE + 300
    pbx = repository.enqueue_pbx(
        call_id, "Bürgerbüro", "engine_handoff", reference="r" * 24, caller_number="0301"
    )
    clock.now = NINE + 304
    assert repository.answered_by_pbx(pbx.id) and not repository.answered_by_pbx(pbx.id)
    # Across midnight: a Standesamt caller at 23:59:30 the day before, answered after 5 s.
    late = datetime(2026, 11, 30, 23, 59, 30, tzinfo=BERLIN).timestamp()
    call_id = _call(store, late - 30)
    assert store.flush()
    clock.now = late
    standesamt = repository.enqueue(call_id, "Standesamt", "handoff_key")
    clock.now = late + 5
    assert repository.answer(standesamt.id, anna.id)
    # Call-backs requested that day: one done, one overdue, one due after NOW.
    clock.now = NINE + 1000
    done = repository.add_callback(first, "Bürgerbüro", "0301234", due_at=NINE + 7200)
    repository.add_callback(first, "Bürgerbüro", "0301234", due_at=NINE + 7200)
    repository.add_callback(first, "Bürgerbüro", "0301234", due_at=LATER)
    assert repository.claim_callback(done.id, anna.id)
    assert repository.finish_callback(done.id, anna.id, CallbackStatus.DONE, "erledigt")
    # Calls the bot finished itself, a browser call handed off without a queue, and a simulation (not counted).
    _call(store, NINE + 2000)
    _call(store, NINE + 2100, channel="webrtc")
    _call(store, NINE + 2200, channel="webrtc", handoff=True)
    _call(store, NINE + 2300, channel="simulation")
    assert store.flush()


def test_report_from_the_database(store: SqlCallRecordStore, database: Database) -> None:  # noqa: F811
    _write_day(store, database)
    engine = database.engine()
    try:
        result = report(engine, date(2026, 11, 30), DAY, now=NOW)
        only = report(engine, DAY, DAY, now=NOW, group="Standesamt")
    finally:
        engine.dispose()
    groups = {(g.day, g.group): g for g in result.groups}
    assert set(groups) == {(date(2026, 11, 30), "Standesamt"), (DAY, "Bürgerbüro")}
    office = groups[(DAY, "Bürgerbüro")]
    assert (office.offered, office.answered, office.answered_30s, office.abandoned) == (4, 3, 2, 1)
    assert office.average_wait_s == pytest.approx((30 + 30.5 + 10 + 4) / 4)
    assert office.p95_wait_s == pytest.approx(30.5)
    assert (office.callbacks_requested, office.callbacks_done, office.callbacks_overdue) == (3, 1, 1)
    evening = groups[(date(2026, 11, 30), "Standesamt")]
    assert (evening.offered, evening.answered_30s, evening.p95_wait_s) == (1, 1, 5.0)
    days = {d.day: d for d in result.days}
    assert (days[DAY].calls, days[DAY].handed_off, days[DAY].contained) == (7, 5, 2)
    assert days[date(2026, 11, 30)].calls == 1  # the Standesamt call; the simulation is not a call
    assert only.groups == []  # Standesamt had nobody on 1 December


def _voicebot(args: list[str], database: Database) -> subprocess.CompletedProcess[str]:  # noqa: F811
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    if database.kind == "sqlite":
        environment["VOICEBOT_PATHS__DATABASE_FILE"] = database.url.removeprefix("sqlite:///")
    else:
        environment["VOICEBOT_DATABASE_URL"] = database.url
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=REPO_ROOT,
    )


def test_report_queue_command_prints_a_german_table_and_json(tmp_path: Path) -> None:
    """The command reads what the figures read (tested on both databases above); here on SQLite. Its "now" is the
    wall clock: the open call-back due on 1 December 2026 is overdue, the one due in 2100 is not."""
    sqlite = Database("sqlite", f"sqlite:///{tmp_path / 'voicebot.db'}")
    engine = sqlite.engine()
    migrate.upgrade(engine)
    engine.dispose()
    records = SqlCallRecordStore(sqlite.engine(), fallback_dir=tmp_path / "fallback")
    try:
        _write_day(records, sqlite)
    finally:
        records.close()
    table = _voicebot(["report", "queue", "--from", "2026-11-30", "--to", "2026-12-01"], sqlite)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Tag") and "Gruppe" in line)
    for title in ("Angeboten", "Quote ≤ 30 s", "Ø Wartezeit", "95 % Wartezeit", "Aufgelegt", "überfällig"):
        assert title in header
    office = next(line for line in lines if "Bürgerbüro" in line)
    assert (
        office.startswith("01.12.2026") and "50 %" in office and "19 s" in office and "31 s" in office
    )  # average 18.6 s, p95 30.5 s
    assert any(line.startswith("01.12.2026") and "29 %" in line for line in lines)  # bot finished 2 of 7

    result = _voicebot(["report", "queue", "--json", "--from", "01.12.2026", "--to", "2026-12-01"], sqlite)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert (data["from"], data["to"], data["timezone"]) == ("2026-12-01", "2026-12-01", "Europe/Berlin")
    (group,) = data["groups"]
    assert group == {
        "day": "2026-12-01",
        "group": "Bürgerbüro",
        "offered": 4,
        "answered": 3,
        "answered_30s": 2,
        "share_30s": 0.5,
        "average_wait_s": 18.6,
        "p95_wait_s": 30.5,
        "abandoned": 1,
        "callbacks_requested": 3,
        "callbacks_done": 1,
        "callbacks_overdue": 1,
    }
    assert data["days"] == [
        {"day": "2026-12-01", "calls": 7, "handed_off": 5, "contained": 2, "containment": 0.286}
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "2026-13-01"], "--from '2026-13-01' is not a date; write it as YYYY-MM-DD"),
        (["--to", "gestern"], "--to 'gestern' is not a date"),
        (["--from", "2026-12-02", "--to", "2026-12-01"], "--from 2026-12-02 is after --to 2026-12-01"),
        (["--from", "2024-01-01", "--to", "2026-12-01"], "longer than 366 days"),
    ],
)
def test_report_queue_refuses_bad_dates_with_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    result = _voicebot(["report", "queue", *args], Database("sqlite", f"sqlite:///{tmp_path / 'v.db'}"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and says in lines[0], result.stderr
    assert not (tmp_path / "v.db").exists()  # nothing was opened


def test_render_without_rows_says_so() -> None:
    text = render(compute([], [], [], start=DAY, end=DAY, now=NOW))
    assert "(keine Übergaben an Mitarbeitende)" in text and "(keine Anrufe)" in text
