"""One SQLAlchemy engine per process, from the settings: ``database_url`` (PostgreSQL via psycopg 3) when set,
else the embedded SQLite file ``paths.database_file``.

SQLite gets WAL (readers never block the writer thread, a ``kill -9`` loses at most the transaction in flight),
enforced foreign keys and a busy timeout (``voicebot db`` or a second process may touch the file while the server
writes) on every new connection, and real transactions: SQLAlchemy emits ``BEGIN`` (pysqlite's own handling would
commit before DDL), ``BEGIN IMMEDIATE`` for a transaction opened with :func:`writing`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from voicebot.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE_OPTION = "voicebot_writes"  # execution option: this connection's transaction writes


class DatabaseConfigError(ValueError):
    """The configured database cannot be used as given (a bad URL, a missing driver); the message says what to
    fix."""


def database_url(settings: Settings) -> str:
    """The URL the settings name: ``database_url`` if set, else ``sqlite:///<paths.database_file>``."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return f"sqlite:///{settings.paths.database_file}"


def describe(url: str) -> str:
    """The URL for a log line or an error: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database_url>"


def make_engine(url: str, *, connect_timeout_s: int = 3) -> Engine:
    """An engine for ``url`` (``postgresql://`` is driven by psycopg 3; its query parameters go to libpq, e.g.
    ``?options=-csearch_path%3Dvoicebot`` for a schema of its own). Nothing connects yet."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseConfigError(
            "database_url is not a database URL; write it as postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed.database)
    if backend != "postgresql":
        raise DatabaseConfigError(
            f"database_url names {backend!r}; only postgresql://... is supported (or leave it unset for SQLite)"
        )
    parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {"connect_timeout": connect_timeout_s, "application_name": "voicebot"}
    try:
        return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True, pool_size=5)
    except ModuleNotFoundError:
        raise DatabaseConfigError(
            "database_url is set but psycopg is not installed: pip install 'voicebot[postgres]'"
        ) from None


def _sqlite_engine(database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{database or ':memory:'}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        connection.isolation_level = (
            None  # SQLAlchemy emits BEGIN itself (below): DDL becomes transactional too
        )
        cursor = connection.cursor()
        # The busy timeout first: switching a new file to WAL takes a lock, and a second process doing the same
        # at that moment would otherwise fail at once with "database is locked" (seen with three servers starting).
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute(
            "PRAGMA synchronous=NORMAL"
        )  # durable across a process kill; WAL + NORMAL is the usual pair
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A writer takes the write lock at BEGIN, so it waits (busy_timeout) for another process's writer instead
        # of failing when its snapshot turns out stale at its first write; readers begin deferred.
        immediate = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """WAL is stored in the file, so only its first opener switches. That switch needs the file to itself and
    SQLite answers "database is locked" at once, without waiting out the busy timeout, when another process is
    opening the same new file at that moment (three servers starting together): retry for as long as the busy
    timeout would have waited."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() == "wal":
                return
            # It answers the mode now in force: the old one when the switch could not be made.
            (mode,) = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                return
            failure = f"journal mode stayed {mode}"
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            failure = str(error)
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch the database to WAL: {failure}")
        time.sleep(0.05)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes (committed at the end, rolled back on error); on SQLite it holds the write lock
    from its start."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(database_url(settings))
