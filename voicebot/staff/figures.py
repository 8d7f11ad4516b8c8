"""Service figures of the staff queue per group and day (issue 10, "Service figures"), measured against the 115
service promise: 75 % of calls answered by a person within 30 s, an answer within 24 h otherwise (call-back), and
as many questions as possible answered at first contact.

:func:`compute` is pure (rows in, figures out, the time zone and "now" given); :func:`load` reads the rows of a
period from the database; :func:`report` does both. Definitions (docs/service-figures.md, decision 0831):

- A day is a calendar day in Europe/Berlin. A queue entry counts on the day it was enqueued, a call-back on the
  day it was requested, a call on the day it started.
- **Offered** (``offered``): queue entries of the group (the bot's own queue and PBX hand-offs alike).
- **Answered** (``answered``): entries staff took (``answered_at`` set; for a PBX hand-off: the PBX took the call).
  **Within 30 s** (``answered_30s``): answered with ``answered_at − enqueued_at ≤ 30 s`` (exactly 30 s counts);
  its share is of all offered entries, the 115 measure.
- **Waiting time** of an entry: until staff answered (``answered_at − enqueued_at``), or until the wait ended
  without staff (``ended_at − enqueued_at``: the caller hung up, or took a call-back); entries still waiting count
  not at all. Average and 95th percentile (nearest rank: the smallest time that at least 95 % of the waits do not
  exceed) over those waits.
- **Abandoned** (``abandoned``): entries that ended without staff and without a call-back (status ``abandoned``:
  the caller hung up while waiting, the server holding them stopped, or a PBX transfer failed).
- **Call-backs**: requested that day (``callbacks_requested``), of those done (``callbacks_done``), and overdue
  (``callbacks_overdue``: still open or claimed and due before now).
- **Containment** (per day, over all groups): calls of citizens (SIP and browser; simulations are not calls) that
  the bot finished without a hand-off, i.e. with neither a queue entry nor a ``handoff_requested`` event, out of
  all calls that day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, exists, or_, select

from voicebot.db.models import Call, Callback, CallbackStatus, CallEvent, QueueEntry, QueueStatus

BERLIN = ZoneInfo("Europe/Berlin")
ANSWER_TARGET_S = 30.0  # 115: answered by a person within 30 s ...
ANSWER_TARGET_SHARE = 0.75  # ... for 75 % of the calls
HANDOFF_EVENT = "handoff_requested"


@dataclass(frozen=True)
class QueueRow:
    group: str
    status: str
    enqueued_at: float
    answered_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class CallbackRow:
    group: str
    status: str
    created_at: float
    due_at: float


@dataclass(frozen=True)
class CallRow:
    started_at: float
    handed_off: bool


@dataclass(frozen=True)
class GroupDay:
    """One group's figures on one day."""

    day: date
    group: str
    offered: int = 0
    answered: int = 0
    answered_30s: int = 0
    share_30s: float | None = None  # answered_30s / offered; None when nothing was offered
    average_wait_s: float | None = None
    p95_wait_s: float | None = None
    abandoned: int = 0
    callbacks_requested: int = 0
    callbacks_done: int = 0
    callbacks_overdue: int = 0


@dataclass(frozen=True)
class Day:
    """What the bot finished by itself on one day."""

    day: date
    calls: int
    handed_off: int
    contained: int
    containment: float | None  # contained / calls; None without calls


@dataclass(frozen=True)
class Report:
    start: date
    end: date
    generated_at: float
    days: list[Day] = field(default_factory=list)
    groups: list[GroupDay] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: dates as ISO strings, seconds rounded to 0.1 s, shares to 0.001."""

        def plain(row: Any) -> dict[str, Any]:
            data = asdict(row)
            data["day"] = row.day.isoformat()
            for key, value in data.items():
                if isinstance(value, float):
                    data[key] = round(value, 3 if key in ("share_30s", "containment") else 1)
            return data

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": str(BERLIN),
            "generated_at": datetime.fromtimestamp(self.generated_at, BERLIN).isoformat(timespec="seconds"),
            "answer_target_s": ANSWER_TARGET_S,
            "answer_target_share": ANSWER_TARGET_SHARE,
            "days": [plain(day) for day in self.days],
            "groups": [plain(group) for group in self.groups],
        }


def day_of(timestamp: float) -> date:
    """The Europe/Berlin calendar day of a time in seconds since the epoch."""
    return datetime.fromtimestamp(timestamp, BERLIN).date()


def period_bounds(start: date, end: date) -> tuple[float, float]:
    """Seconds since the epoch of ``start`` 00:00 and of the day after ``end`` 00:00 in Europe/Berlin (half-open)."""
    first = datetime.combine(start, time(0), BERLIN)
    after = datetime.combine(end + timedelta(days=1), time(0), BERLIN)
    return first.timestamp(), after.timestamp()


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value that at least ``share`` of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def waiting_time(row: QueueRow) -> float | None:
    """Until staff answered, or until the wait ended without staff; None while still waiting."""
    if row.answered_at is not None:
        return max(0.0, row.answered_at - row.enqueued_at)
    if row.ended_at is not None:
        return max(0.0, row.ended_at - row.enqueued_at)
    return None


def compute(
    queue: Iterable[QueueRow],
    callbacks: Iterable[CallbackRow],
    calls: Iterable[CallRow],
    *,
    start: date,
    end: date,
    now: float,
    group: str | None = None,
) -> Report:
    """The figures of the days ``start`` … ``end`` (Europe/Berlin); rows outside them are left out. ``group``
    keeps only that group's rows (containment stays over all calls: a call the bot finished has no group)."""
    in_period = lambda day: start <= day <= end  # noqa: E731
    entries: dict[tuple[date, str], list[QueueRow]] = defaultdict(list)
    for row in queue:
        if in_period(day_of(row.enqueued_at)) and (group is None or row.group == group):
            entries[(day_of(row.enqueued_at), row.group)].append(row)
    requests: dict[tuple[date, str], list[CallbackRow]] = defaultdict(list)
    for callback in callbacks:
        if in_period(day_of(callback.created_at)) and (group is None or callback.group == group):
            requests[(day_of(callback.created_at), callback.group)].append(callback)

    groups = []
    for key in sorted(set(entries) | set(requests)):
        day, name = key
        rows, asked = entries.get(key, []), requests.get(key, [])
        answered = [r for r in rows if r.answered_at is not None]
        within = [
            r
            for r in answered
            if r.answered_at is not None and r.answered_at - r.enqueued_at <= ANSWER_TARGET_S
        ]
        waits = [w for w in (waiting_time(r) for r in rows) if w is not None]
        groups.append(
            GroupDay(
                day=day,
                group=name,
                offered=len(rows),
                answered=len(answered),
                answered_30s=len(within),
                share_30s=len(within) / len(rows) if rows else None,
                average_wait_s=sum(waits) / len(waits) if waits else None,
                p95_wait_s=percentile(waits, 0.95),
                abandoned=sum(1 for r in rows if r.status == QueueStatus.ABANDONED.value),
                callbacks_requested=len(asked),
                callbacks_done=sum(1 for c in asked if c.status == CallbackStatus.DONE.value),
                callbacks_overdue=sum(
                    1
                    for c in asked
                    if c.status in (CallbackStatus.OPEN.value, CallbackStatus.CLAIMED.value)
                    and c.due_at < now
                ),
            )
        )

    per_day: dict[date, list[CallRow]] = defaultdict(list)
    for call in calls:
        if in_period(day_of(call.started_at)):
            per_day[day_of(call.started_at)].append(call)
    days = []
    for day in sorted(per_day):
        count = len(per_day[day])
        handed_off = sum(1 for c in per_day[day] if c.handed_off)
        contained = count - handed_off
        days.append(Day(day, count, handed_off, contained, contained / count if count else None))
    return Report(start=start, end=end, generated_at=now, days=days, groups=groups)


def load(
    engine: Engine, start: date, end: date, group: str | None = None
) -> tuple[list[QueueRow], list[CallbackRow], list[CallRow]]:
    """The rows of the period from the database (one read-only transaction)."""
    first, after = period_bounds(start, end)
    entries = select(
        QueueEntry.group_name,
        QueueEntry.status,
        QueueEntry.enqueued_at,
        QueueEntry.answered_at,
        QueueEntry.ended_at,
    ).where(QueueEntry.enqueued_at >= first, QueueEntry.enqueued_at < after)
    requested = select(Callback.group_name, Callback.status, Callback.created_at, Callback.due_at).where(
        Callback.created_at >= first, Callback.created_at < after
    )
    if group is not None:
        entries = entries.where(QueueEntry.group_name == group)
        requested = requested.where(Callback.group_name == group)
    handed_off = or_(
        exists().where(QueueEntry.call_id == Call.call_id),
        exists().where(and_(CallEvent.call_id == Call.call_id, CallEvent.kind == HANDOFF_EVENT)),
    ).label("handed_off")
    calls = select(Call.started_at, handed_off).where(
        Call.started_at >= first,
        Call.started_at < after,
        Call.simulated.is_(False),
        Call.channel.in_(["sip", "webrtc"]),
    )
    with engine.connect() as connection:
        queue_rows = [QueueRow(*row) for row in connection.execute(entries)]
        callback_rows = [CallbackRow(*row) for row in connection.execute(requested)]
        call_rows = [CallRow(float(started), bool(off)) for started, off in connection.execute(calls)]
    return queue_rows, callback_rows, call_rows


def report(engine: Engine, start: date, end: date, *, now: float, group: str | None = None) -> Report:
    queue, callbacks, calls = load(engine, start, end, group)
    return compute(queue, callbacks, calls, start=start, end=end, now=now, group=group)


# --- the table `voicebot report queue` prints ------------------------------------------------------------------

GROUP_COLUMNS = [
    ("Tag", "day"),
    ("Gruppe", "group"),
    ("Angeboten", "offered"),
    ("Angenommen", "answered"),
    ("≤ 30 s", "answered_30s"),
    ("Quote ≤ 30 s", "share_30s"),
    ("Ø Wartezeit", "average_wait_s"),
    ("95 % Wartezeit", "p95_wait_s"),
    ("Aufgelegt", "abandoned"),
    ("Rückrufe", "callbacks_requested"),
    ("erledigt", "callbacks_done"),
    ("überfällig", "callbacks_overdue"),
]
DAY_COLUMNS = [
    ("Tag", "day"),
    ("Anrufe", "calls"),
    ("Übergeben", "handed_off"),
    ("Vom Bot erledigt", "contained"),
    ("Quote Bot", "containment"),
]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if key in ("share_30s", "containment"):
        return f"{value * 100:.0f} %".replace(".", ",")
    if key.endswith("_s"):
        return f"{math.floor(value + 0.5)} s"  # whole seconds, half up (30.5 s is over the target: 31 s)
    if key == "group":
        return str(value) or "(ohne Gruppe)"
    return str(value)


def _table(columns: list[tuple[str, str]], rows: Sequence[Any]) -> list[str]:
    cells = [[_cell(key, getattr(row, key)) for _, key in columns] for row in rows]
    widths = [max(len(title), *(len(line[i]) for line in cells)) for i, (title, _) in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if i < 2 else value.rjust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return [line([title for title, _ in columns]), line(["-" * width for width in widths])] + [
        line(c) for c in cells
    ]


def render(report: Report) -> str:
    """The report as two German tables (queue per group and day; the bot's own share per day)."""
    start, end = report.start.strftime("%d.%m.%Y"), report.end.strftime("%d.%m.%Y")
    lines = [f"Servicekennzahlen {start} bis {end} (Europe/Berlin; Ziel 115: 75 % in 30 s angenommen)", ""]
    lines.append("Warteschlange je Gruppe und Tag")
    lines += _table(GROUP_COLUMNS, report.groups) if report.groups else ["(keine Übergaben an Mitarbeitende)"]
    lines += ["", "Anrufe je Tag"]
    lines += _table(DAY_COLUMNS, report.days) if report.days else ["(keine Anrufe)"]
    return "\n".join(lines)
