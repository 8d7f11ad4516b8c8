"""``voicebot privacy export|delete|audit`` (GDPR Art. 15/17 by caller number, the audit log) and ``voicebot
retention run`` (what is past its period goes; the server also runs it daily). Each writes an audit entry naming
the operating-system user."""

from __future__ import annotations

import getpass
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from voicebot.settings import Settings

USAGE_ERROR = 2
privacy_app = typer.Typer(
    help="Data protection: a caller's data by number (export, delete), the audit log.", no_args_is_help=True
)
retention_app = typer.Typer(help="Delete what is past its retention period.", no_args_is_help=True)

NumberOption = Annotated[str, typer.Option("--number", help="The caller's number, e.g. +491712345678")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a container without passwd entry
        return "cli"


def _engine() -> tuple[Engine, Settings]:
    """The configured database, its schema brought up to date first."""
    from voicebot.db.engine import database_url, make_engine
    from voicebot.db.migrate import DatabaseUnavailable, upgrade_configured

    settings = settings_or_exit()
    try:
        upgrade_configured(settings)
    except DatabaseUnavailable as error:
        raise fail(str(error)) from None
    return make_engine(database_url(settings)), settings


def _number(text: str) -> str:
    from voicebot.privacy.data import NumberError, normalise_number

    try:
        return normalise_number(text)
    except NumberError as error:
        raise fail(str(error), USAGE_ERROR) from None


@privacy_app.command("export")
def export(
    number: NumberOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here instead of stdout")
    ] = None,
) -> None:
    """Everything stored for a caller number as JSON (GDPR Art. 15): calls, call-backs, queue entries."""
    from voicebot.privacy import data

    normalised = _number(number)
    engine, _settings = _engine()
    try:
        document = data.export(engine, normalised, now=time.time())
        counts = {name: len(document[name]) for name in ("calls", "callbacks", "queue_entries")}
        data.audit(engine, _actor(), "export", data.masked(normalised), counts)
    finally:
        engine.dispose()
    text = json.dumps(document, ensure_ascii=False, indent=1)
    if output is None:
        typer.echo(text)
    else:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            raise fail(f"cannot write {output}: {error.strerror}") from None
        typer.echo(f"{counts['calls']} Anruf(e) nach {output} exportiert", err=True)


@privacy_app.command("delete")
def delete(
    number: NumberOption,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking")] = False,
) -> None:
    """Delete every call, call-back and queue entry of a caller number (GDPR Art. 17), open call-backs too."""
    from voicebot.privacy import data

    normalised = _number(number)
    engine, settings = _engine()
    try:
        found = data.erase(
            engine,
            normalised,
            settings.paths.calls_dir,
            dry_run=True,
            recordings_dir=settings.paths.recordings_dir,
        )
        if found.total == 0:
            typer.echo(f"Nichts gespeichert zu {data.masked(normalised)}.")
            return
        summary = _counts(found.counts())
        if not yes and not typer.confirm(f"Löschen: {summary}?"):
            raise fail("nichts gelöscht")
        deleted = data.erase(
            engine, normalised, settings.paths.calls_dir, recordings_dir=settings.paths.recordings_dir
        )
        data.audit(engine, _actor(), "delete", data.masked(normalised), deleted.counts())
    finally:
        engine.dispose()
    typer.echo(f"Gelöscht: {_counts(deleted.counts())}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items() if count) or "nichts"


@privacy_app.command("audit")
def audit(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many entries, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The audit log: who opened which transcript, who exported or deleted what, retention runs."""
    from voicebot.privacy import data

    engine, _settings = _engine()
    try:
        entries = data.audit_entries(engine, limit=limit)
    finally:
        engine.dispose()
    for entry in entries:
        if as_json:
            fields = {name: getattr(entry, name) for name in ("at", "actor", "action", "subject", "details")}
            typer.echo(json.dumps(fields, ensure_ascii=False))
        else:
            when = datetime.fromtimestamp(entry.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{when}Z\t{entry.actor}\t{entry.action}\t{entry.subject}\t{_counts(entry.details)}")
    if not entries and not as_json:
        typer.echo("keine Einträge")


@retention_app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; delete nothing")] = False,
) -> None:
    """Delete call records, finished call-backs, audit entries and JSON fallback files past their periods
    (privacy.transcript_days, callback_days, audit_days); prints the counts."""
    from voicebot.privacy import data

    engine, settings = _engine()
    try:
        deleted = data.retention(
            engine,
            settings.privacy,
            settings.paths.calls_dir,
            now=time.time(),
            dry_run=dry_run,
            recordings_dir=settings.paths.recordings_dir,
        )
    finally:
        engine.dispose()
    typer.echo(f"{'Würde löschen' if dry_run else 'Gelöscht'}: {_counts(deleted.counts())}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot privacy ...`` and ``voicebot retention ...``."""
    app.add_typer(privacy_app, name="privacy")
    app.add_typer(retention_app, name="retention")
