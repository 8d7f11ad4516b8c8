"""The databases the data-layer tests run against: a SQLite file in the test's folder, and the real PostgreSQL on
127.0.0.1:5432 (database "test", or ``VOICEBOT_TEST_DATABASE_URL``) with a fresh schema per test, dropped
afterwards, so runs never see each other's rows."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from voicebot.db import migrate
from voicebot.db.engine import make_engine

POSTGRES_URL = os.environ.get("VOICEBOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Database:
    kind: str  # "sqlite" | "postgresql"
    url: str  # what database_url would say (a PostgreSQL one names its schema), for a subprocess too

    def engine(self) -> Engine:
        return make_engine(self.url)


def require_postgres() -> None:
    """PostgreSQL must be up (scripts/test starts it); else the test fails saying so."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except psycopg.Error as error:
        pytest.fail(
            f"PostgreSQL not reachable at {POSTGRES_URL} ({error}); start it (scripts/test does: "
            "pg_ctlcluster/service postgresql start) or set VOICEBOT_TEST_DATABASE_URL"
        )


@contextlib.contextmanager
def fresh_postgres_schema(password: str | None = None) -> Iterator[str]:
    """A database URL whose connections use a new, empty schema (dropped afterwards). ``password`` is put into
    the URL (the local server trusts loopback connections, so any password works): what an operator's
    ``database_url`` looks like."""
    require_postgres()
    schema = f"voicebot_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    url = POSTGRES_URL
    if password is not None:
        parsed = make_url(url)
        url = parsed.set(password=password).render_as_string(hide_password=False)
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema))
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database without any schema, on each backend."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'voicebot.db'}")
        return
    with fresh_postgres_schema() as url:
        yield Database("postgresql", url)


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A database with the newest schema, on each backend."""
    engine = empty_database.engine()
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return empty_database
