"""Schema migrations, run in-process: the Alembic scripts ship inside the package (``migrations/``), the
configuration is built here, so nothing but the settings is needed at run time (no alembic.ini)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from voicebot.db.engine import writing
from voicebot.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_UPGRADE_LOCK_KEY = 0x766F6963_65626F74  # "voicebot": the advisory lock that serialises schema upgrades


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default) in one transaction per step. Raises
    sqlalchemy's OperationalError when the database cannot be reached."""
    config = _config()
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            # Several servers sharing one database may start at once: one upgrades, the others wait for it and
            # then find the schema current (the lock ends with the transaction). SQLite serialises writers itself.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: an empty database (no schema yet)
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def status(engine: Engine) -> SchemaStatus:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return SchemaStatus(current=current, head=head_revision())


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used; the message is one line naming what to fix."""


def unusable(error: Exception, where: str) -> DatabaseUnavailable:
    """The one-line error for a database that cannot be reached or used."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = lines[0] if lines else type(error).__name__
    return DatabaseUnavailable(
        f"cannot use the database {where}: {reason}; check database_url (VOICEBOT_DATABASE_URL) and that its "
        "server runs, or paths.database_file for SQLite"
    )


def upgrade_configured(settings: Settings) -> tuple[SchemaStatus, str]:
    """Upgrade the database the settings name to the newest schema (``voicebot serve`` start,
    ``voicebot db upgrade``): the status before, and the database's description (no password). Raises
    :class:`DatabaseUnavailable`."""
    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.db.engine import DatabaseConfigError, database_url, describe, make_engine

    url = database_url(settings)
    where = describe(url)
    try:
        engine = make_engine(url)
    except DatabaseConfigError as error:
        raise DatabaseUnavailable(str(error)) from None
    try:
        before = status(engine)
        if not before.up_to_date:
            upgrade(engine)
    except SQLAlchemyError as error:
        raise unusable(error, where) from None
    finally:
        engine.dispose()
    return before, where
