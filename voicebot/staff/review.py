"""The supervisor's call list (issue 11, transcript review; decision 0931): calls newest first, filtered and
searched in the database, one page at a time by keyset (``started_at``, ``call_id``) — never OFFSET, so the
hundredth page costs what the first does.

Outcome of a call, derived from what is stored (the same SQL expression shows and filters it):

- ``rueckruf``: a call-back request exists for the call;
- ``aufgelegt``: the caller hung up while waiting for staff (a queue entry ``abandoned``);
- ``weitergeleitet``: the bot handed off (event ``handoff_requested``): to the queue, the PBX or a transfer;
- ``beantwortet``: none of these: the bot finished the call itself.

Low confidence: a caller turn whose ASR confidence is below ``handoff.min_asr_confidence`` or a bot turn whose
answer confidence is below ``handoff.min_answer_confidence``. Topic: the department of a page an answer cited
(the caller's chunk ids are looked up in the knowledge index by the caller of :func:`list_calls`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Engine,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
)

from voicebot.db import rows, search
from voicebot.db.engine import writing
from voicebot.db.models import Callback, CallFlag, QueueEntry, QueueStatus
from voicebot.records import checked_call_id

OUTCOMES = {
    "beantwortet": "Vom Bot beantwortet",
    "weitergeleitet": "Weitergeleitet",
    "rueckruf": "Rückruf",
    "aufgelegt": "Aufgelegt (beim Warten)",
}
CHANNELS = {"sip": "Telefon (SIP)", "webrtc": "Browser", "simulation": "Simulation"}
PAGE_SIZE = 25
MAX_TOPIC_SOURCES = 5000  # chunk ids one topic stands for (a department's pages)
HANDOFF = "handoff_requested"
DENSE_HITS = 5000  # SQLite: from this many matching turns on, a search walks the calls (search_condition)

CALLS, TURNS, EVENTS = rows.CALLS, rows.TURNS, rows.EVENTS


class CursorError(ValueError):
    """A page link that was not made here (one German line)."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after this call in (started_at desc, call_id desc) order."""

    started_at: float
    call_id: str

    def token(self) -> str:
        return f"{self.started_at!r}~{self.call_id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        stamp, _, call_id = token.partition("~")
        try:
            started_at = float(stamp)
            if not math.isfinite(started_at):
                raise ValueError(stamp)
            return cls(started_at, checked_call_id(call_id))
        except ValueError:
            raise CursorError("Der Link zur nächsten Seite ist ungültig: bitte von vorn blättern.") from None


@dataclass(frozen=True)
class CallFilter:
    start: float | None = None  # started at or after (epoch seconds)
    end: float | None = None  # started before
    outcome: str = ""  # a key of OUTCOMES
    reason: str = ""  # a hand-off reason (voicebot.handoff_policy)
    topic_sources: tuple[str, ...] | None = None  # the chunk ids of the chosen topic (None: any topic)
    low_confidence: bool = False
    channel: str = ""
    search: str = ""  # words callers or the bot said
    flagged: bool = False  # only calls a supervisor marked (:func:`set_flag`)
    language: str = ""  # only calls with a caller turn recognised in this language ("de", "en", ...)


@dataclass(frozen=True)
class Thresholds:
    min_asr_confidence: float
    min_answer_confidence: float


@dataclass
class CallRow:
    call_id: str
    started_at: float
    ended_at: float | None
    channel: str
    outcome: str
    reason: str
    turns: int = 0
    first_question: str = ""
    lowest_asr: float | None = None
    lowest_answer: float | None = None
    sources: list[str] = field(default_factory=list)
    snippet: str = ""  # search hit with search.MARK_START/MARK_END around the match
    snippet_role: str = ""
    flagged: bool = False


@dataclass
class CallPage:
    rows: list[CallRow]
    next_cursor: Cursor | None


def _is_handoff(events: Any) -> ColumnElement[bool]:
    """``events.kind = 'handoff_requested'`` written so that no planner searches the kind index for it (every
    hand-off of every call, once per listed call): the search goes by the primary key (call_id, idx)."""
    return func.coalesce(events.c.kind, "") == HANDOFF


def outcome_expression() -> ColumnElement[str]:
    call_id = CALLS.c.call_id
    callback = exists().where(Callback.call_id == call_id)
    abandoned = exists().where(
        QueueEntry.call_id == call_id, QueueEntry.status == QueueStatus.ABANDONED.value
    )
    handed_off = exists().where(EVENTS.c.call_id == call_id, _is_handoff(EVENTS))
    return case(
        (callback, "rueckruf"), (abandoned, "aufgelegt"), (handed_off, "weitergeleitet"), else_="beantwortet"
    )


def reason_expression() -> Any:
    return (
        select(EVENTS.c.data["reason"].as_string())
        .where(EVENTS.c.call_id == CALLS.c.call_id, _is_handoff(EVENTS))
        .order_by(EVENTS.c.idx)
        .limit(1)
        .scalar_subquery()
    )


def low_confidence_condition(thresholds: Thresholds) -> ColumnElement[bool]:
    turns = TURNS.alias("low")
    return exists().where(
        turns.c.call_id == CALLS.c.call_id,
        or_(
            and_(turns.c.role == "caller", turns.c.data["asr_confidence"].as_float() < thresholds.min_asr_confidence),
            and_(turns.c.role == "bot", turns.c.data["confidence"].as_float() < thresholds.min_answer_confidence),
        ),
    )  # fmt: skip


def flagged_condition() -> ColumnElement[bool]:
    return exists().where(CallFlag.call_id == CALLS.c.call_id)


def language_condition(language: str) -> ColumnElement[bool]:
    """Calls with a caller turn whose language (as the speech recognition detected it, or the call's language
    where detection is off) is ``language``."""
    turns = TURNS.alias("spoken")
    return exists().where(
        turns.c.call_id == CALLS.c.call_id,
        turns.c.role == "caller",
        turns.c.data["language"].as_string() == language,
    )


def set_flag(engine: Engine, call_id: str, *, by: str, flagged: bool, now: float) -> bool:
    """Mark (``flagged``) or unmark a call; False when the call does not exist. Marking twice keeps the first
    mark (who and when)."""
    with writing(engine) as connection:
        if connection.execute(select(CALLS.c.call_id).where(CALLS.c.call_id == call_id)).first() is None:
            return False
        marked = connection.execute(select(CallFlag.call_id).where(CallFlag.call_id == call_id)).first()
        if flagged and marked is None:
            connection.execute(insert(CallFlag).values(call_id=call_id, flagged_by=by[:64], flagged_at=now))
        elif not flagged and marked is not None:
            connection.execute(delete(CallFlag).where(CallFlag.call_id == call_id))
    return True


def topic_condition(dialect: str, sources: Sequence[str]) -> ColumnElement[bool]:
    if not sources:
        return false()
    turns = TURNS.alias("cited")
    if dialect == "postgresql":
        cited = turns.c.data["sources"].op("?|")(literal(list(sources), ARRAY(Text)))
        return exists().where(turns.c.call_id == CALLS.c.call_id, cited)
    each = func.json_each(turns.c.data, "$.sources").table_valued("value")
    return (
        exists()
        .select_from(turns.join(each, true()))
        .where(turns.c.call_id == CALLS.c.call_id, each.c.value.in_(list(sources)))
    )


def search_condition(dialect: str, words: list[str], dense: bool = False) -> ColumnElement[bool]:
    """Calls with a turn that matches ``words``. SQLite, ``dense`` (a word many turns have): the calls are walked
    newest first and each one's turns looked up in the hits (the page fills after a few calls); else the hits'
    calls are collected and sorted (few hits: cheap)."""
    if dialect == "postgresql":
        hits = select(TURNS.c.call_id).where(
            text("to_tsvector('german'::regconfig, turns.text) @@ to_tsquery('german'::regconfig, :tsquery)")
        )
        return CALLS.c.call_id.in_(hits.params(tsquery=search.tsquery(words)))
    if dense:
        said = TURNS.alias("said")
        turn_hits = text(f"SELECT rowid FROM {search.FTS_TABLE} WHERE {search.FTS_TABLE} MATCH :fts")
        return exists().where(
            said.c.call_id == CALLS.c.call_id,
            literal_column("said.rowid").in_(
                turn_hits.bindparams(fts=search.fts5_query(words)).columns(rowid=Integer)
            ),
        )
    hits_sql = text(
        f"SELECT t.call_id FROM {search.FTS_TABLE} JOIN turns AS t ON t.rowid = {search.FTS_TABLE}.rowid "
        f"WHERE {search.FTS_TABLE} MATCH :fts"
    ).bindparams(fts=search.fts5_query(words))
    return CALLS.c.call_id.in_(hits_sql.columns(call_id=Text))


def dense_search(connection: Any, words: list[str]) -> bool:
    """SQLite: whether at least :data:`DENSE_HITS` turns match (counted no further)."""
    if connection.dialect.name != "sqlite":
        return False
    count = text(
        f"SELECT count(*) FROM (SELECT rowid FROM {search.FTS_TABLE} WHERE {search.FTS_TABLE} MATCH :fts "
        "LIMIT :most)"
    ).bindparams(fts=search.fts5_query(words), most=DENSE_HITS)
    return int(connection.execute(count).scalar_one()) >= DENSE_HITS


def list_calls(
    engine: Engine,
    chosen: CallFilter,
    thresholds: Thresholds,
    *,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> CallPage:
    """One page of calls, newest first. Raises :class:`voicebot.db.search.SearchQueryError` for a search text
    that cannot be searched."""
    words = search.words(chosen.search) if chosen.search.strip() else []
    dialect = engine.dialect.name
    # The page's calls first (keys only: a database sorts the matches before the limit, so nothing per row
    # that costs is computed there), then what the page shows for just those calls.
    query = select(CALLS.c.call_id, CALLS.c.started_at)
    if chosen.start is not None:
        query = query.where(CALLS.c.started_at >= chosen.start)
    if chosen.end is not None:
        query = query.where(CALLS.c.started_at < chosen.end)
    if chosen.channel:
        query = query.where(CALLS.c.channel == chosen.channel)
    if chosen.outcome:
        query = query.where(outcome_expression() == chosen.outcome)
    if chosen.reason:
        query = query.where(
            exists().where(
                EVENTS.c.call_id == CALLS.c.call_id,
                _is_handoff(EVENTS),
                EVENTS.c.data["reason"].as_string() == chosen.reason,
            )
        )
    if chosen.topic_sources is not None:
        query = query.where(topic_condition(dialect, chosen.topic_sources[:MAX_TOPIC_SOURCES]))
    if chosen.low_confidence:
        query = query.where(low_confidence_condition(thresholds))
    if chosen.flagged:
        query = query.where(flagged_condition())
    if chosen.language:
        query = query.where(language_condition(chosen.language))
    if words:
        with engine.connect() as connection:
            dense = dense_search(connection, words)
        query = query.where(search_condition(dialect, words, dense))
    if after is not None:
        query = query.where(  # the first condition alone is an index range; the second settles ties
            CALLS.c.started_at <= after.started_at,
            or_(CALLS.c.started_at < after.started_at, CALLS.c.call_id < after.call_id),
        )
    query = query.order_by(CALLS.c.started_at.desc(), CALLS.c.call_id.desc()).limit(limit + 1)
    with engine.connect() as connection:
        found = connection.execute(query).all()
        more = len(found) > limit
        shown = {
            row.call_id: row for row in connection.execute(_rows_query([r.call_id for r in found[:limit]]))
        }
        page = [_call_row(shown[row.call_id]) for row in found[:limit] if row.call_id in shown]
        postgres = dialect == "postgresql"
        _add_turn_details(connection, page, [] if postgres else words)
        if words and postgres:
            _add_snippets(connection, page, words)
    last = page[-1] if page else None
    return CallPage(page, Cursor(last.started_at, last.call_id) if more and last is not None else None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _lowest(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else min(current, value)


def _add_turn_details(connection: Any, page: list[CallRow], words: list[str]) -> None:
    """Each row's first question, turn count, lowest confidences and cited sources (one query for the page);
    with ``words`` (SQLite) also the snippet of its first turn that matches them (:func:`search.highlight`)."""
    by_id = {row.call_id: row for row in page}
    if not by_id:
        return
    query = (
        select(TURNS.c.call_id, TURNS.c.role, TURNS.c.kind, TURNS.c.text, TURNS.c.data)
        .where(TURNS.c.call_id.in_(list(by_id)))
        .order_by(TURNS.c.call_id, TURNS.c.idx)
    )
    for turn in connection.execute(query):
        row = by_id[turn.call_id]
        row.turns += 1
        if words and not row.snippet:
            row.snippet = search.highlight(turn.text, words) or ""
            row.snippet_role = turn.role if row.snippet else ""
        data = turn.data if isinstance(turn.data, dict) else {}
        if turn.role == "caller":
            if turn.kind == "question" and not row.first_question and turn.text.strip():
                row.first_question = " ".join(turn.text.split())
            row.lowest_asr = _lowest(row.lowest_asr, _number(data.get("asr_confidence")))
        else:
            row.lowest_answer = _lowest(row.lowest_answer, _number(data.get("confidence")))
            cited = data.get("sources")
            for source in cited if isinstance(cited, list) else []:
                if isinstance(source, str) and source not in row.sources:
                    row.sources.append(source)


def _add_snippets(connection: Any, page: list[CallRow], words: list[str]) -> None:
    """PostgreSQL: the first matching turn of each row, its words around the match marked (``ts_headline``
    marks what the stemmer matched)."""
    by_id = {row.call_id: row for row in page}
    if not by_id:
        return
    ids: Any = bindparam("ids", list(by_id), expanding=True)
    options = (
        f"StartSel={search.MARK_START}, StopSel={search.MARK_END}, "
        f"MaxWords={search.SNIPPET_WORDS}, MinWords={search.SNIPPET_WORDS // 2}"
    )
    query = text(
        "SELECT call_id, idx, role, ts_headline('german'::regconfig, text, "
        "to_tsquery('german'::regconfig, :tsquery), :options) AS snippet FROM turns "
        "WHERE call_id IN :ids AND to_tsvector('german'::regconfig, text) @@ "
        "to_tsquery('german'::regconfig, :tsquery) ORDER BY call_id, idx"
    ).bindparams(ids, tsquery=search.tsquery(words), options=options)
    for hit in connection.execute(query):
        row = by_id[hit.call_id]
        if not row.snippet:
            row.snippet, row.snippet_role = str(hit.snippet), str(hit.role)


def _rows_query(call_ids: list[str]) -> Any:
    return select(
        CALLS.c.call_id, CALLS.c.started_at, CALLS.c.ended_at, CALLS.c.channel,
        outcome_expression().label("outcome"), reason_expression().label("reason"),
        flagged_condition().label("flagged"),
    ).where(CALLS.c.call_id.in_(call_ids))  # fmt: skip


def call_overview(engine: Engine, call_id: str) -> CallRow | None:
    """One call's row (outcome and hand-off reason as the list shows them), or None."""
    with engine.connect() as connection:
        row = connection.execute(_rows_query([call_id])).first()
    return None if row is None else _call_row(row)


def _call_row(row: Any) -> CallRow:
    return CallRow(
        call_id=row.call_id,
        started_at=float(row.started_at),
        ended_at=None if row.ended_at is None else float(row.ended_at),
        channel=row.channel,
        outcome=row.outcome,
        reason=row.reason or "",
        flagged=bool(row.flagged),
    )
