"""``voicebot bench review``: how fast the supervisor's call list and its German full-text search answer on a
large database (decision 0933).

Fills a fresh database (a new SQLite file; on PostgreSQL a new schema, dropped afterwards) with synthetic but
realistic calls — a greeting, one to four German caller questions with the bot's answers, ASR and answer
confidences, cited pages, stage timings; some calls handed off (with a reason), some with a call-back or a caller
who hung up waiting — written with executemany through the real schema (migrations, search triggers/index),
then times :func:`voicebot.staff.review.list_calls` as the page calls it: the first page, a page deep in the
list (keyset), filtered pages and searches for a common and a rare word. Each query runs ``runs`` times per
round; the figures are the median over ``rounds`` rounds of each round's p50 and p95.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from voicebot.db import migrate, rows
from voicebot.db.engine import make_engine, writing
from voicebot.db.models import Callback, QueueEntry
from voicebot.staff import review

BATCH_CALLS = 2000
DAY_S = 86400.0
QUESTIONS = [
    "Wie beantrage ich einen neuen Personalausweis?",
    "Was kostet ein Reisepass für Erwachsene?",
    "Ich habe meinen Führerschein verloren, was muss ich tun?",
    "Wann hat das Bürgerbüro heute geöffnet?",
    "Wie melde ich meinen Wohnsitz um?",
    "Wo bekomme ich einen Anwohnerparkausweis?",
    "Wann wird bei uns in der Goethestraße der Sperrmüll abgeholt?",
    "Ich möchte ein Gewerbe anmelden. Welche Unterlagen brauche ich?",
    "Wie lange dauert die Ausstellung einer Geburtsurkunde?",
    "Kann ich die Hundesteuer online bezahlen?",
    "Wo kann ich mein Auto zulassen?",
    "Brauche ich einen Termin beim Standesamt für die Eheschließung?",
    "Äh, ich wollte fragen wegen dem Grundsteuerbescheid, der ist falsch.",
    "Wie bekomme ich ein Führungszeugnis?",
    "Meine Mülltonne wurde nicht geleert, wen rufe ich an?",
    "Gibt es einen Zuschuss für Lastenfahrräder?",
    "Ich möchte mit einem Menschen sprechen.",
    "Wo ist das Fundbüro und wann ist es offen?",
    "Was muss ich für die Kita-Anmeldung mitbringen?",
    "Wie beantrage ich Wohngeld?",
]
ANSWERS = [
    "Den Personalausweis beantragen Sie persönlich im Bürgerbüro; bringen Sie ein biometrisches Passfoto mit.",
    "Ein Reisepass kostet für Personen ab 24 Jahren 70 Euro.",
    "Einen verlorenen Führerschein melden Sie der Fahrerlaubnisbehörde; dort beantragen Sie ein Ersatzdokument.",
    "Das Bürgerbüro hat montags bis freitags von 8 bis 12 Uhr geöffnet, donnerstags auch bis 18 Uhr.",
    "Die Ummeldung erledigen Sie innerhalb von zwei Wochen nach dem Umzug im Bürgerbüro.",
    "Den Anwohnerparkausweis beantragen Sie beim Ordnungsamt, online oder vor Ort.",
    "Sperrmüll holt der Abfallwirtschaftsbetrieb nach Anmeldung ab; den Termin bekommen Sie schriftlich.",
    "Für die Gewerbeanmeldung brauchen Sie Ihren Ausweis und gegebenenfalls eine Erlaubnis.",
    "Eine Geburtsurkunde stellt das Standesamt meist innerhalb von drei Werktagen aus.",
    "Die Hundesteuer können Sie per Überweisung oder Lastschrift bezahlen.",
]
DEPARTMENTS = ["buergerbuero", "ordnungsamt", "standesamt", "abfall", "steueramt", "jugendamt", "sozialamt"]
REASONS = ["caller_asked", "low_confidence", "engine_handoff", "handoff_key", "frustration", "redirect"]


def synthetic_calls(
    count: int, seed: int = 11, now: float | None = None
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Batches of rows for the tables (calls, turns, events, queue_entries, callbacks), newest call last."""
    rng = random.Random(seed)
    end = now if now is not None else time.time()
    start = end - 90 * DAY_S
    step = (end - start) / max(1, count)
    batch: dict[str, list[dict[str, Any]]] = {
        name: [] for name in ("calls", "turns", "events", "queue", "callbacks")
    }
    for n in range(count):
        started = start + n * step + rng.random() * step
        call_id = f"call_{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}{n % 1000:03d}Z_{n:012x}"
        turns: list[dict[str, Any]] = [
            {"role": "bot", "kind": "greeting", "text": "Guten Tag, hier ist das Bürgertelefon. Wie kann ich helfen?",
             "start_s": 0.0, "end_s": 3.2, "played": True},
        ]  # fmt: skip
        t = 3.5
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            asr = round(rng.betavariate(8, 2), 3)
            confidence = round(rng.betavariate(6, 2), 3)
            question = rng.choice(QUESTIONS)
            turns.append({"role": "caller", "kind": "question", "text": question, "start_s": round(t, 3),
                          "end_s": round(t + 2.5, 3), "asr_confidence": asr,
                          "timings_ms": {"asr": round(rng.uniform(80, 300), 1), "endpointing": 300.0}})  # fmt: skip
            t += 3.0
            turns.append({"role": "bot", "kind": "answer", "text": rng.choice(ANSWERS), "start_s": round(t, 3),
                          "end_s": round(t + 6, 3), "action": "answer", "confidence": confidence,
                          "sources": [f"{rng.choice(DEPARTMENTS)}-{rng.randrange(40)}"],
                          "timings_ms": {"retrieval": round(rng.uniform(20, 90), 1),
                                         "answer_first_sentence": round(rng.uniform(50, 400), 1),
                                         "voice_to_voice": round(rng.uniform(700, 1600), 1)}})  # fmt: skip
            t += 7.0
        events: list[dict[str, Any]] = []
        draw = rng.random()
        if draw < 0.3:
            reason = rng.choice(REASONS)
            events.append(
                {"t": round(t, 3), "kind": "handoff_requested", "reason": reason, "group": "Bürgerbüro"}
            )
            if draw < 0.05:
                batch["callbacks"].append(dict(call_id=call_id, group_name="Bürgerbüro", caller_name="",
                                               topic=turns[1]["text"][:80], phone_number="+4930000000",
                                               status="open", created_at=started + t, due_at=started + t + DAY_S))  # fmt: skip
            elif draw < 0.1:
                batch["queue"].append(dict(call_id=call_id, group_name="Bürgerbüro", reason=reason,
                                           status="abandoned", enqueued_at=started + t, ended_at=started + t + 40,
                                           summary={}))  # fmt: skip
        batch["calls"].append(
            rows.call_row(
                {
                    "call_id": call_id,
                    "channel": "sip" if rng.random() < 0.9 else "webrtc",
                    "started_at": started,
                    "ended_at": started + t + 2,
                    "ended_reason": "hangup",
                },
                started + t + 2,
            )
        )
        batch["turns"] += [rows.turn_row(call_id, i, turn) for i, turn in enumerate(turns)]
        batch["events"] += [rows.event_row(call_id, i, event) for i, event in enumerate(events)]
        if len(batch["calls"]) >= BATCH_CALLS:
            yield batch
            batch = {name: [] for name in batch}
    if batch["calls"]:
        yield batch


def fill(engine: Engine, count: int, seed: int = 11) -> float:
    """Write ``count`` synthetic calls; the seconds it took."""
    began = time.perf_counter()
    tables: dict[str, Any] = {"calls": rows.CALLS, "turns": rows.TURNS, "events": rows.EVENTS,
              "queue": QueueEntry.__table__, "callbacks": Callback.__table__}  # fmt: skip
    for batch in synthetic_calls(count, seed):
        with writing(engine) as connection:
            for name, table in tables.items():
                if batch[name]:
                    connection.execute(insert(table), batch[name])  # executemany
    if engine.dialect.name == "sqlite":  # as a serving process's checkpoints leave it: the WAL folded in
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - began


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def measure(engine: Engine, *, runs: int = 20, rounds: int = 3) -> dict[str, dict[str, float]]:
    """p50/p95 (ms) per query: the median over ``rounds`` of each round's figures."""
    thresholds = review.Thresholds(0.35, 0.5)
    first = review.list_calls(engine, review.CallFilter(), thresholds, limit=2000)
    deep = review.Cursor(first.rows[-1].started_at, first.rows[-1].call_id) if first.rows else None
    queries: dict[str, Callable[[], object]] = {
        "list: first page": lambda: review.list_calls(engine, review.CallFilter(), thresholds),
        "list: page after 2,000 calls": lambda: review.list_calls(engine, review.CallFilter(), thresholds, after=deep),
        "list: hand-off reason": lambda: review.list_calls(engine, review.CallFilter(reason="frustration"), thresholds),
        "list: low confidence": lambda: review.list_calls(engine, review.CallFilter(low_confidence=True), thresholds),
        "list: call-back": lambda: review.list_calls(engine, review.CallFilter(outcome="rueckruf"), thresholds),
        "search: common word (Bürgerbüro)": lambda: review.list_calls(engine, review.CallFilter(search="Bürgerbüro"), thresholds),
        "search: rare words (grundsteuerbescheid falsch)": lambda: review.list_calls(
            engine, review.CallFilter(search="grundsteuerbescheid falsch"), thresholds),
        "search: umlaut folded (fuhrerschein)": lambda: review.list_calls(engine, review.CallFilter(search="fuhrerschein"), thresholds),
    }  # fmt: skip
    figures: dict[str, dict[str, list[float]]] = {name: {"p50": [], "p95": []} for name in queries}
    for _ in range(rounds):
        for name, query in queries.items():
            query()  # warm
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                query()
                times.append((time.perf_counter() - began) * 1000)
            figures[name]["p50"].append(_percentile(times, 0.5))
            figures[name]["p95"].append(_percentile(times, 0.95))
    return {
        name: {key: round(statistics.median(values), 1) for key, values in found.items()}
        for name, found in figures.items()
    }


@contextlib.contextmanager
def fresh_database(database_url: str | None) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a new, empty database: a SQLite file in a temporary folder, or a new schema in the given
    PostgreSQL database; removed afterwards."""
    if database_url is None:
        folder = Path(tempfile.mkdtemp(prefix="voicebot-bench-review-"))
        try:
            yield "sqlite", f"sqlite:///{folder / 'voicebot.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"voicebot_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    separator = "&" if "?" in database_url else "?"
    try:
        yield "postgresql", f"{database_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema))
            )


def run_review_bench(
    calls: int, *, database_url: str | None = None, runs: int = 20, rounds: int = 3
) -> list[dict[str, Any]]:
    """Fill and measure SQLite, and PostgreSQL when ``database_url`` is given."""
    results = []
    for url in [None, *([database_url] if database_url else [])]:
        with fresh_database(url) as (kind, fresh_url):
            engine = make_engine(fresh_url)
            try:
                migrate.upgrade(engine)
                fill_s = fill(engine, calls)
                with engine.connect() as connection:
                    turns = connection.execute(_count()).scalar_one()
                if kind == "postgresql":
                    with writing(engine) as connection:
                        connection.exec_driver_sql("ANALYZE")
                results.append(
                    {"database": kind, "calls": calls, "turns": int(turns), "fill_s": round(fill_s, 1),
                     "runs": runs, "rounds": rounds, "queries_ms": measure(engine, runs=runs, rounds=rounds)}
                )  # fmt: skip
            finally:
                engine.dispose()
    return results


def _count() -> Any:
    from sqlalchemy import func, select

    return select(func.count()).select_from(rows.TURNS)
