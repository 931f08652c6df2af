"""alert outbox (Slack and email messages for openings that cannot wait); when an application
was first seen (new applicants in the job coordinator's email)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskplanner.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("sent_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("sent_to", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_outbox")),
    )
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_outbox_task_id_channel"), ["task_id", "channel"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_alert_outbox_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
    # Applications already stored were there before: None, not "new".
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("first_seen_at", taskplanner.store.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("first_seen_at")
    op.drop_table("alert_outbox")
