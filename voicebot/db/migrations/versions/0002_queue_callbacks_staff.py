"""Staff accounts with roles, queue entries and call-back requests (issue 10), keyed by the call id.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("availability", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.CheckConstraint("role IN ('staff', 'supervisor', 'admin')", name="ck_staff_users_role"),
        sa.CheckConstraint(
            "availability IN ('available', 'busy', 'away')", name="ck_staff_users_availability"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_staff_users"),
        sa.UniqueConstraint("username", name="uq_staff_users_username"),
    )
    op.create_table(
        "queue_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enqueued_at", sa.Double(), nullable=False),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("summary", Json, nullable=False),
        sa.Column("process", Json, nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'answered', 'abandoned', 'callback')",
            name="ck_queue_entries_status",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.call_id"], name="fk_queue_entries_call_id_calls", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name="fk_queue_entries_staff_user_id_staff_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_queue_entries"),
    )
    for column in ("call_id", "group_name", "status", "enqueued_at"):
        op.create_index(f"ix_queue_entries_{column}", "queue_entries", [column])
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("phone_number", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.Double(), nullable=True),
        sa.Column("done_at", sa.Double(), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'claimed', 'done', 'failed')", name="ck_callbacks_status"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.call_id"], name="fk_callbacks_call_id_calls", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by"],
            ["staff_users.id"],
            name="fk_callbacks_claimed_by_staff_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_callbacks"),
    )
    for column in ("call_id", "group_name", "status", "due_at"):
        op.create_index(f"ix_callbacks_{column}", "callbacks", [column])


def downgrade() -> None:
    op.drop_table("callbacks")
    op.drop_table("queue_entries")
    op.drop_table("staff_users")
