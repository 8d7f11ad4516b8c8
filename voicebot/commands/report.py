"""``voicebot report queue|gaps``: the staff queue's service figures per group and day (voicebot/staff/figures.py)
and the knowledge gaps (voicebot/staff/gaps.py), as German text or, with ``--json``, for machines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from voicebot.settings import Settings

report_app = typer.Typer(
    help="Reports: service figures of the staff queue, knowledge gaps.", no_args_is_help=True
)

DEFAULT_DAYS = 7  # without --from/--to: the last seven days up to today
MAX_DAYS = 366
USAGE_ERROR = 2  # a bad argument (like click's usage errors)


def parse_day(text: str, option: str) -> date:
    """A day as 2026-12-01 or 01.12.2026; exit 2 with one line otherwise."""
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise fail(f"{option} {text!r} is not a date; write it as YYYY-MM-DD (e.g. 2026-12-01)", USAGE_ERROR)


def period(start_text: str | None, end_text: str | None, today: date) -> tuple[date, date]:
    end = parse_day(end_text, "--to") if end_text is not None else today
    start = (
        parse_day(start_text, "--from") if start_text is not None else end - timedelta(days=DEFAULT_DAYS - 1)
    )
    if start > end:
        raise fail(f"--from {start.isoformat()} is after --to {end.isoformat()}", USAGE_ERROR)
    if (end - start).days >= MAX_DAYS:
        raise fail(f"the period is longer than {MAX_DAYS} days; choose a shorter --from/--to", USAGE_ERROR)
    return start, end


@contextmanager
def _report_database() -> Iterator[tuple[Settings, Engine]]:
    """The settings and an engine on the configured database (schema upgraded first); a database error ends the
    command with one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.db.engine import database_url, make_engine
    from voicebot.db.migrate import DatabaseUnavailable, upgrade_configured

    settings = settings_or_exit()
    try:
        upgrade_configured(settings)
    except DatabaseUnavailable as error:
        raise fail(str(error)) from None
    engine = make_engine(database_url(settings))
    try:
        yield settings, engine
    except SQLAlchemyError as error:
        raise fail(f"database: {str(error).splitlines()[0]}") from None
    finally:
        engine.dispose()


@report_app.command("queue")
def queue(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default: six days before --to).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD; default: today).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only this staff group.")] = None,
) -> None:
    """Per staff group and day (Europe/Berlin): calls offered to staff, answered within 30 s, waiting times,
    abandoned, call-backs; and per day the calls the bot finished without a hand-off."""
    from voicebot.staff import figures

    now = time.time()
    first, last = period(start, end, figures.day_of(now))
    with _report_database() as (_settings, engine):
        result = figures.report(engine, first, last, now=now, group=group)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        typer.echo(figures.render(result))


@report_app.command("gaps")
def gaps(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the text.")] = False,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default: six days before --to).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD; default: today).")] = None,
) -> None:
    """The callers' questions the bot could not answer well (not known, asked back, handed off, unsure), grouped
    by meaning, most calls first, with example wordings and the pages that came closest."""
    from voicebot.staff import figures
    from voicebot.staff import gaps as gap_report

    now = time.time()
    first, last = period(start, end, figures.day_of(now))
    with _report_database() as (settings, engine):
        result = gap_report.report(
            engine,
            first,
            last,
            min_answer_confidence=settings.handoff.min_answer_confidence,
            index=gap_report.open_index(settings.paths.index_dir),
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        typer.echo(gap_report.render(result))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot report ...``."""
    app.add_typer(report_app, name="report")
