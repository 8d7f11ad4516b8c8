"""Full-text search over what callers and the bot said (issue 11, transcript review; decision 0930).

SQLite: an FTS5 table with external content over ``turns.text`` (``tokenize = unicode61 remove_diacritics 2``:
"Führerschein" is found by "fuhrerschein"), kept current by triggers on ``turns``, and filled once from the
turns already stored. PostgreSQL: a GIN index on ``to_tsvector('german', text)`` (the German snowball stemmer
also folds umlauts and ß). :mod:`voicebot.db.search` queries them by these names.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQLITE_CREATE = (
    """CREATE VIRTUAL TABLE turns_fts USING fts5(
        text, content='turns', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts(rowid, text) VALUES (new.rowid, new.text);
    END""",
    """CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END""",
    # The bot's answer is updated many times (timings, end) with its text unchanged: only a new text re-indexes.
    """CREATE TRIGGER turns_fts_update AFTER UPDATE OF text ON turns WHEN old.text IS NOT new.text BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO turns_fts(rowid, text) VALUES (new.rowid, new.text);
    END""",
    "INSERT INTO turns_fts(turns_fts) VALUES ('rebuild')",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS turns_fts_update",
    "DROP TRIGGER IF EXISTS turns_fts_delete",
    "DROP TRIGGER IF EXISTS turns_fts_insert",
    "DROP TABLE IF EXISTS turns_fts",
)
POSTGRES_CREATE = (
    "CREATE INDEX ix_turns_text_german ON turns USING gin (to_tsvector('german'::regconfig, text))",
)
POSTGRES_DROP = ("DROP INDEX IF EXISTS ix_turns_text_german",)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_CREATE if sqlite else POSTGRES_CREATE:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DROP if sqlite else POSTGRES_DROP:
        op.execute(statement)
