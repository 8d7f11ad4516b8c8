"""The queue at work (issue 10): where the bot rings a member of staff (``phone_uri``) and which groups they take,
an offer of a waiting caller to one member of staff, the reference a PBX hand-off carries (``Call-Info`` /
``User-to-User``), the caller's number, staff's wrap-up; how a call-back's number was given.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as table:
        table.add_column(sa.Column("phone_uri", sa.String(256), nullable=False, server_default=""))
        table.add_column(sa.Column("groups", Json, nullable=True))
    with op.batch_alter_table("queue_entries") as table:
        table.add_column(sa.Column("mode", sa.String(8), nullable=False, server_default="queue"))
        table.add_column(sa.Column("reference", sa.String(32), nullable=True))
        table.add_column(sa.Column("caller_number", sa.String(64), nullable=False, server_default=""))
        table.add_column(sa.Column("offered_to", sa.Integer(), nullable=True))
        table.add_column(sa.Column("offered_at", sa.Double(), nullable=True))
        table.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        table.add_column(sa.Column("wrap_up_note", sa.Text(), nullable=False, server_default=""))
        table.create_foreign_key(
            "fk_queue_entries_offered_to_staff_users",
            "staff_users",
            ["offered_to"],
            ["id"],
            ondelete="SET NULL",
        )
        table.create_check_constraint("ck_queue_entries_mode", "mode IN ('queue', 'pbx')")
        table.create_check_constraint(
            "ck_queue_entries_outcome", "outcome IS NULL OR outcome IN ('solved', 'callback', 'forwarded')"
        )
        table.create_index("ix_queue_entries_reference", ["reference"], unique=True)
    with op.batch_alter_table("callbacks") as table:
        table.add_column(sa.Column("number_via", sa.String(16), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as table:
        table.drop_column("number_via")
    with op.batch_alter_table("queue_entries") as table:
        table.drop_index("ix_queue_entries_reference")
        table.drop_constraint("ck_queue_entries_outcome", type_="check")
        table.drop_constraint("ck_queue_entries_mode", type_="check")
        table.drop_constraint("fk_queue_entries_offered_to_staff_users", type_="foreignkey")
        for column in (
            "wrap_up_note",
            "outcome",
            "offered_at",
            "offered_to",
            "caller_number",
            "reference",
            "mode",
        ):
            table.drop_column(column)
    with op.batch_alter_table("staff_users") as table:
        table.drop_column("groups")
        table.drop_column("phone_uri")
