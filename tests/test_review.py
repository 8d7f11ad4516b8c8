"""The supervisor's call list on both databases (decisions 0930, 0931): German full-text search (umlauts and ß
folded, prefixes; stemming on PostgreSQL), the search index following inserts, changed text and deletes, the
filters (outcome, hand-off reason, topic, low confidence, channel, date range) and keyset pagination that
visits every call exactly once, newest first, ties included."""

from __future__ import annotations

from typing import Any

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from sqlalchemy import delete, insert, update

from voicebot.db import migrate, rows, search
from voicebot.db.engine import writing
from voicebot.db.models import Callback, QueueEntry
from voicebot.staff import review

THRESHOLDS = review.Thresholds(min_asr_confidence=0.35, min_answer_confidence=0.5)
T0 = 1_796_000_000.0  # 2026-11-29


def call_id(n: int) -> str:
    return f"call_20261201T1208{n:02d}123Z_{n:012x}"


def record(
    n: int,
    started_at: float,
    question: str,
    answer: str = "Das erledigt das Bürgerbüro.",
    *,
    channel: str = "sip",
    asr: float = 0.9,
    confidence: float = 0.8,
    sources: tuple[str, ...] = ("buergerbuero",),
    handoff: str = "",
    language: str = "de",
) -> dict[str, Any]:
    events = [{"t": 2.0, "kind": "barge_in"}]
    if handoff:
        events.append({"t": 3.0, "kind": "handoff_requested", "reason": handoff, "group": "Bürgerbüro"})
    return {
        "call_id": call_id(n),
        "channel": channel,
        "started_at": started_at,
        "ended_at": started_at + 30,
        "ended_reason": "hangup",
        "turns": [
            {"role": "bot", "kind": "greeting", "text": "Guten Tag, hier ist das Rathaus.", "start_s": 0.0},
            {"role": "caller", "kind": "question", "text": question, "start_s": 1.0, "asr_confidence": asr,
             "language": language},
            {"role": "bot", "kind": "answer", "text": answer, "start_s": 2.5, "action": "answer",
             "confidence": confidence, "sources": list(sources)},
        ],
        "events": events,
    }  # fmt: skip


def store(db: Database, *records: dict[str, Any]) -> Any:
    engine = db.engine()
    with writing(engine) as connection:
        for item in records:
            rows.write_whole(connection, item, item["started_at"] + 30)
    return engine


def ids(page: review.CallPage) -> list[str]:
    return [row.call_id for row in page.rows]


def test_flagged_and_language_filters(database: Database) -> None:  # noqa: F811
    calls = [
        record(1, T0, "Wo ist das Bürgerbüro?"),
        record(2, T0 + 60, "Where is the registry office?", language="en"),
        record(3, T0 + 120, "Nerede nüfus müdürlüğü?", language="tr"),
    ]
    engine = store(database, *calls)
    try:

        def matching(**chosen: Any) -> list[str]:
            return ids(review.list_calls(engine, review.CallFilter(**chosen), THRESHOLDS))

        assert matching(language="en") == [call_id(2)]
        assert matching(language="de") == [call_id(1)]
        assert matching(language="uk") == []
        assert matching(flagged=True) == []
        assert review.set_flag(engine, call_id(3), by="berta", flagged=True, now=T0)
        assert review.set_flag(engine, call_id(1), by="berta", flagged=True, now=T0)
        assert review.set_flag(engine, call_id(1), by="carl", flagged=True, now=T0 + 5)  # stays berta's
        assert not review.set_flag(engine, call_id(99), by="berta", flagged=True, now=T0)  # no such call
        assert matching(flagged=True) == [call_id(3), call_id(1)]
        assert matching(flagged=True, language="tr") == [call_id(3)]
        overview = review.call_overview(engine, call_id(1))
        assert overview is not None and overview.flagged
        assert [row.flagged for row in review.list_calls(engine, review.CallFilter(), THRESHOLDS).rows] == [
            True,
            False,
            True,
        ]
        assert review.set_flag(engine, call_id(3), by="carl", flagged=False, now=T0 + 9)
        assert matching(flagged=True) == [call_id(1)]
        with writing(engine) as connection:  # the record's writer rewrites the call: the mark stays
            rows.write_whole(connection, calls[0], T0 + 99)
        assert matching(flagged=True) == [call_id(1)]
        with writing(engine) as connection:  # deleting the call (erasure, retention) takes its mark along
            connection.execute(delete(rows.CALLS).where(rows.CALLS.c.call_id == call_id(1)))
        assert matching(flagged=True) == []
    finally:
        engine.dispose()


def test_search_words_and_expressions() -> None:
    assert search.words("Führer-Schein, STRAßE!") == ["führer", "schein", "straße"]
    assert search.fts5_query(["straße", "pass"]) == '("straße"* OR "strasse"*) AND ("pass"* OR "paß"*)'
    assert search.tsquery(["führerschein", "kosten"]) == "führerschein:* & kosten:*"
    with pytest.raises(search.SearchQueryError, match="höchstens 8 Suchwörter"):
        search.words("a b c d e f g h i")
    with pytest.raises(search.SearchQueryError, match="zu lang"):
        search.words("x" * 201)
    # SQLite's snippets: the FTS5 match done again for one turn (folded, word starts, ß/ss), a window of words.
    said = "Äh, ich brauche einen neuen Führerschein für die Goethestraße, bitte."
    assert search.highlight(said, ["fuhrer", "goethestrasse"]) == (
        "Äh, ich brauche einen neuen \x02Führerschein\x03 für die \x02Goethestraße\x03, bitte."
    )
    assert search.highlight(said, ["fuhrerschein", "reisepass"]) is None  # every word must occur
    assert search.highlight(said, ["schein"]) is None  # inside a compound: no word start
    long = " ".join(f"Wort{n}" for n in range(40)) + " Standesamt " + " ".join(f"Satz{n}" for n in range(40))
    window = search.highlight(long, ["standesamt"])
    assert window is not None and window.startswith("…Wort36 ") and window.endswith(" Satz8…")
    assert "\x02Standesamt\x03" in window and len(window.split()) == search.SNIPPET_WORDS
    # Escaped, and the marks balanced even when a text held a stray mark character.
    assert search.marked_html("<b> \x02Führerschein\x03 & \x02mehr") == (
        "&lt;b&gt; <mark>Führerschein</mark> &amp; <mark>mehr</mark>"
    )


def test_german_search_on_both_databases(database: Database) -> None:  # noqa: F811
    engine = store(
        database,
        record(1, T0, "Ich brauche einen neuen Führerschein."),
        record(2, T0 + 60, "Wo ist die Kfz-Zulassungsstelle?", "Sie ist in der Goethestraße 5."),
        record(3, T0 + 120, "Wann hat das Bürgerbüro geöffnet?"),
        record(4, T0 + 180, "Ich möchte meinen Personalausweis verlängern."),
    )
    try:

        def found(text: str) -> list[str]:
            return ids(review.list_calls(engine, review.CallFilter(search=text), THRESHOLDS))

        assert found("Führerschein") == [call_id(1)]
        assert found("fuhrerschein") == [call_id(1)]  # umlaut folded on both
        assert found("FÜHRERSCHEIN neuen") == [call_id(1)]  # every word, any case
        assert found("Goethestrasse") == [call_id(2)]  # ß and ss alike
        assert found("Ausweis") == []  # a word inside a compound is not a word start
        assert found("Personal") == [call_id(4)]  # a word start is
        assert found("Führerschein Personalausweis") == []  # all words in one turn
        assert found("Bürgerbüro") == [call_id(4), call_id(3), call_id(1)]  # the bot's words too
        # Stemming: PostgreSQL's German configuration finds the plural; SQLite's FTS5 (no stemmer) does not.
        assert found("Führerscheine") == ([call_id(1)] if database.kind == "postgresql" else [])
        assert found("geöffnet bürgerbüro") == [call_id(3)]

        page = review.list_calls(engine, review.CallFilter(search="Goethestraße"), THRESHOLDS)
        assert page.rows[0].snippet_role == "bot"
        assert "<mark>Goethestraße</mark>" in search.marked_html(page.rows[0].snippet)

        # The index follows the turns: a changed text, a deleted call.
        with writing(engine) as connection:
            connection.execute(
                update(rows.TURNS)
                .where(rows.TURNS.c.call_id == call_id(1), rows.TURNS.c.idx == 1)
                .values(text="Ich brauche einen Reisepass.")
            )
            connection.execute(delete(rows.CALLS).where(rows.CALLS.c.call_id == call_id(4)))
        assert found("Führerschein") == [] and found("Reisepass") == [call_id(1)]
        assert found("Personal") == []
    finally:
        engine.dispose()


def test_the_index_covers_turns_stored_before_the_upgrade(empty_database: Database) -> None:  # noqa: F811
    engine = empty_database.engine()
    try:
        migrate.upgrade(engine, "0003")
        with writing(engine) as connection:
            rows.write_whole(connection, record(1, T0, "Brauche ich einen Termin im Standesamt?"), T0)
        migrate.upgrade(engine)
        page = review.list_calls(engine, review.CallFilter(search="standesamt"), THRESHOLDS)
        assert ids(page) == [call_id(1)]
    finally:
        engine.dispose()


def test_filters_and_keyset_pages(database: Database) -> None:  # noqa: F811
    calls = [
        record(1, T0, "Ich will einen Menschen sprechen.", handoff="caller_asked"),
        record(2, T0 + 3600, "Mmh äh Müllabfuhr?", asr=0.2, sources=("abfall",)),
        record(3, T0 + 3600, "Wann kommt der Sperrmüll?", confidence=0.3, sources=("abfall",)),  # tie with 2
        record(4, T0 + 86400, "Rufen Sie mich zurück.", handoff="caller_asked", channel="webrtc"),
        record(5, T0 + 86400 + 60, "Ich warte auf jemanden.", handoff="low_confidence"),
        record(6, T0 + 2 * 86400, "Was kostet ein Anwohnerparkausweis?", channel="webrtc"),
        record(7, T0 + 2 * 86400 + 1, "Ist das Standesamt offen?", channel="simulation", sources=()),
    ]
    engine = store(database, *calls)
    with writing(engine) as connection:
        connection.execute(insert(Callback), [dict(
            call_id=call_id(4), group_name="Bürgerbüro", phone_number="+4930123", created_at=T0, due_at=T0,
        )])  # fmt: skip
        connection.execute(insert(QueueEntry), [dict(
            call_id=call_id(5), group_name="Bürgerbüro", reason="low_confidence", status="abandoned",
            enqueued_at=T0, summary={},
        )])  # fmt: skip
    try:

        def all_pages(chosen: review.CallFilter, limit: int = 2) -> list[str]:
            seen: list[str] = []
            cursor = None
            for _ in range(10):
                page = review.list_calls(engine, chosen, THRESHOLDS, after=cursor, limit=limit)
                assert len(page.rows) <= limit
                seen += ids(page)
                cursor = page.next_cursor
                if cursor is None:
                    return seen
            raise AssertionError("more pages than calls")

        newest_first = [call_id(n) for n in (7, 6, 5, 4, 3, 2, 1)]  # the tie (2, 3): call id descending
        assert all_pages(review.CallFilter()) == newest_first
        assert all_pages(review.CallFilter(), limit=1) == newest_first
        assert all_pages(review.CallFilter(), limit=7) == newest_first  # exactly one full page: no next link

        def matching(**chosen: Any) -> list[str]:
            return all_pages(review.CallFilter(**chosen))

        assert matching(outcome="rueckruf") == [call_id(4)]
        assert matching(outcome="aufgelegt") == [call_id(5)]
        assert matching(outcome="weitergeleitet") == [call_id(1)]
        assert matching(outcome="beantwortet") == [call_id(n) for n in (7, 6, 3, 2)]
        assert matching(reason="caller_asked") == [call_id(4), call_id(1)]
        assert matching(low_confidence=True) == [call_id(3), call_id(2)]  # ASR 0.2; answer 0.3
        assert matching(channel="webrtc") == [call_id(6), call_id(4)]
        assert matching(topic_sources=("abfall", "abfall#2")) == [call_id(3), call_id(2)]
        assert matching(topic_sources=()) == []
        assert matching(start=T0 + 3600, end=T0 + 86400) == [call_id(3), call_id(2)]  # end exclusive
        assert matching(channel="webrtc", outcome="rueckruf", search="zurück") == [call_id(4)]

        page = review.list_calls(engine, review.CallFilter(reason="caller_asked"), THRESHOLDS)
        first = {row.call_id: row for row in page.rows}[call_id(1)]
        assert (first.outcome, first.reason, first.turns) == ("weitergeleitet", "caller_asked", 3)
        assert first.first_question == "Ich will einen Menschen sprechen." and first.sources == [
            "buergerbuero"
        ]
        assert (first.lowest_asr, first.lowest_answer) == (0.9, 0.8)
        overview = review.call_overview(engine, call_id(5))
        assert overview is not None and (overview.outcome, overview.reason) == ("aufgelegt", "low_confidence")
        assert review.call_overview(engine, call_id(99)) is None

        with pytest.raises(review.CursorError):
            review.Cursor.parse("nan~" + call_id(1))
        with pytest.raises(review.CursorError):
            review.Cursor.parse("1.0~../../etc/passwd")
        assert review.Cursor.parse(review.Cursor(T0 + 0.125, call_id(3)).token()) == review.Cursor(
            T0 + 0.125, call_id(3)
        )
    finally:
        engine.dispose()


def test_bench_review_fills_and_measures_both_databases() -> None:
    """`voicebot bench review` end to end on a small fill (numbers printed, never judged here)."""
    import json

    from database import POSTGRES_URL, require_postgres
    from typer.testing import CliRunner

    from voicebot.cli import app

    require_postgres()
    runner = CliRunner()
    result = runner.invoke(
        app, ["bench", "review", "--calls", "300", "--runs", "1", "--rounds", "1", "--json",
              "--database-url", POSTGRES_URL],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert [item["database"] for item in figures] == ["sqlite", "postgresql"]
    for item in figures:
        assert item["calls"] == 300 and 300 * 3 <= item["turns"] <= 300 * 9
        assert set(item["queries_ms"]) >= {"list: first page", "search: umlaut folded (fuhrerschein)"}
        assert all(value["p95"] >= value["p50"] > 0 for value in item["queries_ms"].values())
    refused = runner.invoke(app, ["bench", "review", "--calls", "0"])
    assert refused.exit_code == 1 and "--calls, --runs and --rounds must be at least 1" in refused.output
    refused = runner.invoke(app, ["bench", "review", "--database-url", "mysql://x"])
    assert refused.exit_code == 1 and "must be a postgresql:// URL" in refused.output
