"""The supervisor's dashboard figures (issue 11, "Dashboard"; decision 0951): pure :func:`compute` from rows,
:func:`load` reads them; rendering is voicebot/web/staff_dashboard.py.

Definitions (days and hours in Europe/Berlin; calls of citizens only, as in :mod:`voicebot.staff.figures`):

- **Containment**: calls the bot finished without a hand-off (no queue entry, no ``handoff_requested`` event).
- **Hand-offs by reason**: a handed-off call's first ``handoff_requested`` reason (else its queue entry's).
- **Call-backs open / overdue**: now, over all days (open or claimed; overdue: due before now).
- **Service level (115)**: queue entries answered by a person within 30 s out of those offered, per day
  (:func:`voicebot.staff.figures.compute`).
- **Voice-to-voice latency**: the bot turns' ``timings_ms.voice_to_voice``, p50/p95 (nearest rank) per day.
- **Topics**: the department of the pages the bot's answers cited; a call counts once per department.
- **Answer confidence**: the bot turns with an action and a confidence, in ten bins of 0.1 (1.0 in the last).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, Engine, and_, select

from voicebot.db import rows
from voicebot.db.models import Callback, CallbackStatus, QueueEntry
from voicebot.staff import figures

CALLS, TURNS, EVENTS = rows.CALLS, rows.TURNS, rows.EVENTS
BINS = 10
UNKNOWN_REASON = "unbekannt"
NO_TOPIC = "(ohne Fachbereich)"
STREAM_ROWS = 2000  # rows fetched at a time while streaming calls and turns


@dataclass(frozen=True)
class CallRow:
    call_id: str
    started_at: float
    handoff_reason: str | None  # None: the bot finished the call


@dataclass(frozen=True)
class BotTurnRow:
    call_id: str
    started_at: float  # the call's
    confidence: float | None
    voice_to_voice_ms: float | None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayFigures:
    day: date
    calls: int
    handed_off: int
    contained: int
    containment: float | None
    offered: int  # to staff (queue entries)
    answered_30s: int
    service_level: float | None  # answered_30s / offered
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True)
class Dashboard:
    start: date
    end: date
    days: list[DayFigures]
    hours: list[int]  # calls per hour of day 0–23 over the period
    reasons: list[tuple[str, int]]  # most first
    topics: list[tuple[str, int]]  # most first
    confidence: list[int]  # BINS counts
    callbacks_open: int
    callbacks_overdue: int
    totals: dict[str, float | int | None] = field(default_factory=dict)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def compute(
    calls: Iterable[CallRow],
    turns: Iterable[BotTurnRow],
    queue: Iterable[figures.QueueRow],
    callbacks_now: Iterable[figures.CallbackRow],
    departments: Mapping[str, str],
    *,
    start: date,
    end: date,
    now: float,
) -> Dashboard:
    """The figures of the days ``start`` … ``end``; ``departments`` maps a cited chunk id to its department."""
    in_period = lambda stamp: start <= figures.day_of(stamp) <= end  # noqa: E731
    per_day: dict[date, list[CallRow]] = defaultdict(list)
    hours = [0] * 24
    reasons: Counter[str] = Counter()
    for call in calls:
        if not in_period(call.started_at):
            continue
        per_day[figures.day_of(call.started_at)].append(call)
        hours[datetime.fromtimestamp(call.started_at, figures.BERLIN).hour] += 1
        if call.handoff_reason is not None:
            reasons[call.handoff_reason or UNKNOWN_REASON] += 1

    latencies: dict[date, list[float]] = defaultdict(list)
    bins = [0] * BINS
    cited: dict[str, set[str]] = defaultdict(set)
    for turn in turns:
        if not in_period(turn.started_at):
            continue
        if turn.voice_to_voice_ms is not None and turn.voice_to_voice_ms >= 0:
            latencies[figures.day_of(turn.started_at)].append(turn.voice_to_voice_ms)
        if turn.confidence is not None and 0.0 <= turn.confidence <= 1.0:
            bins[min(BINS - 1, int(round(turn.confidence * BINS, 9)))] += 1  # 0.3 → [0.3, 0.4)
        for source in turn.sources:
            cited[departments.get(source) or NO_TOPIC].add(turn.call_id)

    queue_figures = figures.compute(queue, [], [], start=start, end=end, now=now)
    offered: Counter[date] = Counter()
    within: Counter[date] = Counter()
    for group in queue_figures.groups:
        offered[group.day] += group.offered
        within[group.day] += group.answered_30s

    days = []
    for day in sorted(set(per_day) | set(offered) | set(latencies)):
        day_calls = per_day.get(day, [])
        handed_off = sum(1 for c in day_calls if c.handoff_reason is not None)
        waits = latencies.get(day, [])
        days.append(
            DayFigures(
                day=day,
                calls=len(day_calls),
                handed_off=handed_off,
                contained=len(day_calls) - handed_off,
                containment=_share(len(day_calls) - handed_off, len(day_calls)),
                offered=offered[day],
                answered_30s=within[day],
                service_level=_share(within[day], offered[day]),
                latency_p50_ms=figures.percentile(waits, 0.5),
                latency_p95_ms=figures.percentile(waits, 0.95),
            )
        )
    open_states = (CallbackStatus.OPEN.value, CallbackStatus.CLAIMED.value)
    still_open = [c for c in callbacks_now if c.status in open_states]
    all_calls = sum(d.calls for d in days)
    all_contained = sum(d.contained for d in days)
    all_offered = sum(d.offered for d in days)
    all_latencies = [v for values in latencies.values() for v in values]
    totals: dict[str, float | int | None] = {
        "calls": all_calls,
        "contained": all_contained,
        "containment": _share(all_contained, all_calls),
        "offered": all_offered,
        "answered_30s": sum(d.answered_30s for d in days),
        "service_level": _share(sum(d.answered_30s for d in days), all_offered),
        "latency_p50_ms": figures.percentile(all_latencies, 0.5),
        "latency_p95_ms": figures.percentile(all_latencies, 0.95),
    }
    return Dashboard(
        start=start,
        end=end,
        days=days,
        hours=hours,
        reasons=sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
        topics=sorted(
            ((name, len(ids)) for name, ids in cited.items()),
            key=lambda item: (-item[1], item[0] == NO_TOPIC, item[0].casefold()),
        ),
        confidence=bins,
        callbacks_open=len(still_open),
        callbacks_overdue=sum(1 for c in still_open if c.due_at < now),
        totals=totals,
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def load(
    connection: Connection, start: date, end: date
) -> tuple[Iterator[CallRow], Iterator[BotTurnRow], list[figures.QueueRow], list[figures.CallbackRow]]:
    """The rows of the period; call-backs: every open or claimed one. Calls and bot turns are streamed (a year of
    a large town's turns is never held in memory): consume them, one after the other, while ``connection`` is
    open."""
    first, after = figures.period_bounds(start, end)
    citizen_calls = and_(
        CALLS.c.started_at >= first,
        CALLS.c.started_at < after,
        CALLS.c.simulated.is_(False),
        CALLS.c.channel.in_(["sip", "webrtc"]),
    )
    calls_query = select(CALLS.c.call_id, CALLS.c.started_at).where(citizen_calls)
    handoffs = (
        select(EVENTS.c.call_id, EVENTS.c.data["reason"].as_string())
        .join(CALLS, CALLS.c.call_id == EVENTS.c.call_id)
        .where(citizen_calls, EVENTS.c.kind == figures.HANDOFF_EVENT)
        .order_by(EVENTS.c.call_id, EVENTS.c.idx)
    )
    queued = (
        select(QueueEntry.call_id, QueueEntry.reason)
        .join(CALLS, CALLS.c.call_id == QueueEntry.call_id)
        .where(citizen_calls)
        .order_by(QueueEntry.id)
    )
    turns_query = (
        select(
            TURNS.c.call_id,
            CALLS.c.started_at,
            TURNS.c.data["confidence"].as_float(),
            TURNS.c.data[("timings_ms", "voice_to_voice")].as_float(),
            TURNS.c.data["sources"],
        )
        .join(CALLS, CALLS.c.call_id == TURNS.c.call_id)
        .where(citizen_calls, TURNS.c.role == "bot")
    )
    entries = select(
        QueueEntry.group_name,
        QueueEntry.status,
        QueueEntry.enqueued_at,
        QueueEntry.answered_at,
        QueueEntry.ended_at,
    ).where(QueueEntry.enqueued_at >= first, QueueEntry.enqueued_at < after)
    open_callbacks = select(Callback.group_name, Callback.status, Callback.created_at, Callback.due_at).where(
        Callback.status.in_([CallbackStatus.OPEN.value, CallbackStatus.CLAIMED.value])
    )
    reason_of: dict[str, str] = {}  # handed-off calls only
    for call_id, reason in connection.execute(handoffs):
        reason_of.setdefault(call_id, str(reason or ""))
    for call_id, reason in connection.execute(queued):
        reason_of.setdefault(call_id, str(reason or ""))
    queue = [figures.QueueRow(*row) for row in connection.execute(entries)]
    callbacks = [figures.CallbackRow(*row) for row in connection.execute(open_callbacks)]
    streamed = connection.execution_options(stream_results=True, yield_per=STREAM_ROWS)

    def calls() -> Iterator[CallRow]:
        for call_id, started in streamed.execute(calls_query):
            yield CallRow(call_id, float(started), reason_of.get(call_id))

    def turns() -> Iterator[BotTurnRow]:
        for call_id, started, confidence, latency, sources in streamed.execute(turns_query):
            cited = tuple(str(s) for s in sources) if isinstance(sources, list) else ()
            yield BotTurnRow(call_id, float(started), _number(confidence), _number(latency), cited)

    return calls(), turns(), queue, callbacks


def report(
    engine: Engine, start: date, end: date, *, now: float, departments: Mapping[str, str]
) -> Dashboard:
    with engine.connect() as connection:
        calls, turns, queue, callbacks = load(connection, start, end)
        return compute(calls, turns, queue, callbacks, departments, start=start, end=end, now=now)
