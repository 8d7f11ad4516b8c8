"""Calls, their turns and events (the call records that were one JSON file / jsonb row per call).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("sip_call_id", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("ended_reason", sa.String(64), nullable=True),
        sa.Column("process", Json, nullable=True),
        sa.Column("extra", Json, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_calls"),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_updated_at", "calls", ["updated_at"])
    op.create_index("ix_calls_ended_reason", "calls", ["ended_reason"])
    op.create_table(
        "turns",
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=True),
        sa.Column("end_s", sa.Double(), nullable=True),
        sa.Column("data", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.call_id"], name="fk_turns_call_id_calls", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "idx", name="pk_turns"),
    )
    op.create_table(
        "events",
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("t", sa.Double(), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.call_id"], name="fk_events_call_id_calls", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "idx", name="pk_events"),
    )
    op.create_index("ix_events_kind", "events", ["kind"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("turns")
    op.drop_index("ix_calls_ended_reason", "calls")
    op.drop_index("ix_calls_updated_at", "calls")
    op.drop_index("ix_calls_started_at", "calls")
    op.drop_table("calls")
