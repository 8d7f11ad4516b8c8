"""A call record (the dict of :class:`~voicebot.pipeline.transcript.CallTranscript`) to rows and back.

The record keeps its shape: :func:`read_records` gives back what was saved, key for key, so ``voicebot calls``,
the benchmarks and the tests read the database as they read the JSON files before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from voicebot.db.models import Call, CallEvent, CallTurn

Record = dict[str, Any]

CALLS: Table = Call.__table__  # type: ignore[assignment]
TURNS: Table = CallTurn.__table__  # type: ignore[assignment]
EVENTS: Table = CallEvent.__table__  # type: ignore[assignment]

_CHANNEL_IDS = ("sip_call_id", "session_id")
_CALL_FIELDS = {
    "call_id",
    "channel",
    *_CHANNEL_IDS,
    "started_at",
    "ended_at",
    "ended_reason",
    "process",
    "turns",
    "events",
}
# Records written before they named their channel: the channel's own call id told it (SIP: the peer's Call-ID).
_CHANNEL_PREFIXES = {"web-": "webrtc", "sim-": "simulation"}


def channel_of(record: Record) -> str:
    """The record's ``channel``; for an old record without one, what its call id says (``web-``/``sim-``/SIP)."""
    if record.get("channel"):
        return str(record["channel"])
    call_id = str(record.get("legacy_call_id") or record["call_id"])
    return next((name for prefix, name in _CHANNEL_PREFIXES.items() if call_id.startswith(prefix)), "sip")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def call_row(record: Record, updated_at: float) -> dict[str, Any]:
    channel = channel_of(record)
    process = record.get("process")
    return {
        "call_id": str(record["call_id"]),
        "channel": channel[:16],
        "simulated": channel == "simulation",
        **{name: _text_or_none(record.get(name)) for name in _CHANNEL_IDS},
        "started_at": _number(record.get("started_at")) or updated_at,
        "updated_at": updated_at,
        "ended_at": _number(record.get("ended_at")),
        "ended_reason": _text_or_none(record.get("ended_reason")),
        "process": process if isinstance(process, dict) else None,
        "extra": {key: value for key, value in record.items() if key not in _CALL_FIELDS},
    }


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def turn_row(call_id: str, idx: int, turn: dict[str, Any]) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "idx": idx,
        "role": str(turn.get("role", ""))[:16],
        "kind": str(turn.get("kind", ""))[:32],
        "text": str(turn.get("text", "")),
        "start_s": _number(turn.get("start_s")),
        "end_s": _number(turn.get("end_s")),
        "data": turn,
    }


def event_row(call_id: str, idx: int, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "idx": idx,
        "t": _number(event.get("t")),
        "kind": str(event.get("kind", ""))[:64],
        "data": event,
    }


def items(record: Record, key: str) -> list[dict[str, Any]]:
    """The record's turns or events that are dicts (a hand-edited or torn file may hold anything)."""
    values = record.get(key)
    return [item for item in values if isinstance(item, dict)] if isinstance(values, list) else []


def upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, or update the row with the same primary key (SQLite and PostgreSQL alike)."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    keys = [column.name for column in table.primary_key.columns]
    changes = {
        column.name: statement.excluded[column.name] for column in table.columns if column.name not in keys
    }
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes), list(rows))


def write_whole(connection: Connection, record: Record, updated_at: float) -> None:
    """The whole record: call row, every turn and event (rows beyond the record's are removed)."""
    call_id = str(record["call_id"])
    turns, events = items(record, "turns"), items(record, "events")
    upsert(connection, CALLS, [call_row(record, updated_at)])
    upsert(connection, TURNS, [turn_row(call_id, n, turn) for n, turn in enumerate(turns)])
    upsert(connection, EVENTS, [event_row(call_id, n, event) for n, event in enumerate(events)])
    connection.execute(delete(TURNS).where(TURNS.c.call_id == call_id, TURNS.c.idx >= len(turns)))
    connection.execute(delete(EVENTS).where(EVENTS.c.call_id == call_id, EVENTS.c.idx >= len(events)))


def write_changes(
    connection: Connection,
    record: Record,
    updated_at: float,
    written_turns: list[dict[str, Any]],
    written_events: list[dict[str, Any]],
) -> None:
    """Only what changed since ``written_turns``/``written_events`` (what this process wrote last for the call):
    new turns and events are inserted, a changed turn (the bot's text growing, its end) is updated."""
    call_id = str(record["call_id"])
    turns, events = items(record, "turns"), items(record, "events")
    upsert(connection, CALLS, [call_row(record, updated_at)])
    changed_turns = [
        turn_row(call_id, n, turn)
        for n, turn in enumerate(turns)
        if n >= len(written_turns) or written_turns[n] != turn
    ]
    changed_events = [
        event_row(call_id, n, event)
        for n, event in enumerate(events)
        if n >= len(written_events) or written_events[n] != event
    ]
    upsert(connection, TURNS, changed_turns)
    upsert(connection, EVENTS, changed_events)
    if len(turns) < len(written_turns):
        connection.execute(delete(TURNS).where(TURNS.c.call_id == call_id, TURNS.c.idx >= len(turns)))
    if len(events) < len(written_events):
        connection.execute(delete(EVENTS).where(EVENTS.c.call_id == call_id, EVENTS.c.idx >= len(events)))


def record_from(call: Any, turns: Iterable[Any], events: Iterable[Any]) -> Record:
    """The record dict of a ``calls`` row with its ``turns`` and ``events`` rows (each in index order)."""
    record: Record = {"call_id": call.call_id, "channel": call.channel}
    for name in _CHANNEL_IDS:
        if getattr(call, name) is not None:
            record[name] = getattr(call, name)
    record.update(started_at=call.started_at, ended_at=call.ended_at, ended_reason=call.ended_reason)
    if call.process is not None:
        record["process"] = call.process
    record["turns"] = [row.data for row in turns]
    record["events"] = [row.data for row in events]
    record.update(call.extra or {})
    return record


def read_records(connection: Connection, call_rows: Sequence[Any]) -> list[Record]:
    """The records of ``call_rows`` (in their order), their turns and events read in two queries."""
    ids = [row.call_id for row in call_rows]
    if not ids:
        return []
    turns: dict[str, list[Any]] = {call_id: [] for call_id in ids}
    events: dict[str, list[Any]] = {call_id: [] for call_id in ids}
    for row in connection.execute(
        select(TURNS.c.call_id, TURNS.c.data)
        .where(TURNS.c.call_id.in_(ids))
        .order_by(TURNS.c.call_id, TURNS.c.idx)
    ):
        turns[row.call_id].append(row)
    for row in connection.execute(
        select(EVENTS.c.call_id, EVENTS.c.data)
        .where(EVENTS.c.call_id.in_(ids))
        .order_by(EVENTS.c.call_id, EVENTS.c.idx)
    ):
        events[row.call_id].append(row)
    return [record_from(row, turns[row.call_id], events[row.call_id]) for row in call_rows]
