"""The data layer: SQLAlchemy 2 tables (:mod:`.models`), the engine from the settings (:mod:`.engine`), Alembic
migrations shipped as package data (:mod:`.migrate`), the call record store (:mod:`.store`) and a small typed
repository for queue entries, callbacks and staff accounts (:mod:`.repository`).

SQLite (WAL) under ``var/`` is the embedded default; PostgreSQL (``database_url``) in production
(docs/decisions/0501-sqlalchemy-alembic-data-layer.md).
"""
