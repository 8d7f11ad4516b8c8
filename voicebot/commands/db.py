"""``voicebot db upgrade|status|import-json``: the database schema and the import of JSON call records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy import Engine

db_app = typer.Typer(
    help="The database: schema upgrades, status, import of JSON call records.", no_args_is_help=True
)


def _engine() -> tuple[Engine, str]:
    from voicebot.db.engine import DatabaseConfigError, database_url, describe, make_engine

    settings = settings_or_exit()
    url = database_url(settings)
    try:
        return make_engine(url), describe(url)
    except DatabaseConfigError as error:
        raise fail(str(error)) from None


def _schema(engine: Engine, where: str) -> Any:
    """The schema's status; a SQLite file that does not exist yet is an empty database (and is not created)."""
    from voicebot.db import migrate

    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and not Path(database).exists():
        return migrate.SchemaStatus(current=None, head=migrate.head_revision())
    return _run(lambda: migrate.status(engine), where)


def _run(action: Any, where: str) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.db.migrate import unusable

    try:
        return action()
    except SQLAlchemyError as error:
        raise fail(str(unusable(error, where))) from None


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the database schema to the newest revision (creates the database file for SQLite)."""
    from voicebot.db.migrate import DatabaseUnavailable, upgrade_configured

    try:
        before, where = upgrade_configured(settings_or_exit())
    except DatabaseUnavailable as error:
        raise fail(str(error)) from None
    if before.up_to_date:
        typer.echo(f"{where}: schema already at revision {before.head}")
    else:
        typer.echo(f"{where}: schema upgraded from {before.current or 'empty'} to revision {before.head}")


@db_app.command("status")
def status() -> None:
    """Which database is used, its schema revision and how many call records it holds."""
    from sqlalchemy import func, select

    from voicebot.db import rows

    engine, where = _engine()
    state = _schema(engine, where)
    typer.echo(f"database: {where}")
    typer.echo(f"schema: {state.current or 'empty'} (newest: {state.head})")
    if state.current is None:
        engine.dispose()
        raise fail(
            "the database has no schema yet: run voicebot db upgrade (voicebot serve does it on start)"
        )

    def count() -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(rows.CALLS)).scalar_one())

    typer.echo(f"calls: {_run(count, where)}")
    engine.dispose()
    if not state.up_to_date:
        raise fail("the schema is older than this version: run voicebot db upgrade")


@db_app.command("import-json")
def import_json(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Folder of <call_id>.json records (default: paths.calls_dir)."),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table", help="Instead of files: the jsonb table of earlier versions in the same database."
        ),
    ] = None,
) -> None:
    """Import JSON call records into the database (idempotent; what is no record is named and skipped)."""
    from voicebot.db.importer import import_json_dir, import_jsonb_table

    folder = directory or settings_or_exit().paths.calls_dir
    if table is None and not folder.is_dir():
        raise fail(f"{folder} is not a folder; give the folder that holds the <call_id>.json records")
    engine, where = _engine()
    if not _schema(engine, where).up_to_date:
        engine.dispose()
        raise fail(f"the schema of {where} is not current: run voicebot db upgrade first")
    try:
        if table is None:
            report = _run(lambda: import_json_dir(engine, folder), where)
        else:
            report = _run(lambda: import_jsonb_table(engine, table), where)
    except ValueError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    for name, why in report.bad:
        typer.echo(f"skipped {name}: {why}", err=True)
    source = f"table {table}" if table else str(folder)
    typer.echo(
        f"{source}: {report.imported} imported, {report.already_there} already in the database, "
        f"{len(report.bad)} skipped"
    )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot db ...``."""
    app.add_typer(db_app, name="db")
    bench_app.command("review")(bench_review)


def bench_review(
    calls: Annotated[
        int, typer.Option("--calls", help="Synthetic calls written before measuring.")
    ] = 100_000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Also measure PostgreSQL: a new schema in this database (dropped afterwards).",
        ),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs of each query per round.")] = 20,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds; the figures are their median.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Call list and full-text search p50/p95 of the supervisor's review on a fresh, filled database."""
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.benchmarks.review import run_review_bench

    if calls < 1 or runs < 1 or rounds < 1:
        raise fail("--calls, --runs and --rounds must be at least 1")
    if database_url is not None and not database_url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise fail("--database-url must be a postgresql:// URL (SQLite is always measured)")
    try:
        results = run_review_bench(calls, database_url=database_url, runs=runs, rounds=rounds)
    except (SQLAlchemyError, OSError) as error:
        raise fail(f"cannot use the database: {str(error).strip().splitlines()[0]}") from None
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=1))
        return
    for result in results:
        typer.echo(
            f"{result['database']}: {result['calls']} calls, {result['turns']} turns written in "
            f"{result['fill_s']} s; median of {result['rounds']} rounds × {result['runs']} runs (ms)"
        )
        for name, figures in result["queries_ms"].items():
            typer.echo(f"  {name:<50} p50 {figures['p50']:>8}   p95 {figures['p95']:>8}")
