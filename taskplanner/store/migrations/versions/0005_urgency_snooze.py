"""urgency order indexes, snoozed tasks, attendees' response comments

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskplanner.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_attendees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("comment", sa.Text(), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("snoozed_until", taskplanner.store.types.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_assignee_status_due_at_id"),
            ["assignee", "status", "due_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_status_due_at_id"), ["status", "due_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_stage_id_status"), ["stage_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_stage_id_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_status_due_at_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_assignee_status_due_at_id"))
        batch_op.drop_column("snoozed_until")
    with op.batch_alter_table("calendar_attendees", schema=None) as batch_op:
        batch_op.drop_column("comment")
