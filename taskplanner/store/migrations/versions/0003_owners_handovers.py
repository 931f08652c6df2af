"""owners set on the page, hand-overs, out-of-office events, go-live

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskplanner.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_setup",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("coordinator_email", sa.String(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_setup")),
    )
    op.create_table(
        "handovers",
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("stand_in", sa.String(), nullable=False),
        sa.Column("until", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("person", name=op.f("pk_handovers")),
    )
    with op.batch_alter_table("stage_setup", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_email", sa.String(), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_over_from", sa.String(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_tasks_handed_over_from_status"),
            ["handed_over_from", "status"],
            unique=False,
        )
    with op.batch_alter_table("sync_sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("went_live_at", taskplanner.store.types.UTCDateTime(), nullable=True)
        )
    # Existing rows are ordinary events: the default fills them, then goes (the models have
    # none, so the schema compares equal).
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("out_of_office", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.alter_column("out_of_office", server_default=None)
        batch_op.create_index(
            batch_op.f("ix_calendar_events_out_of_office_ends_at"),
            ["out_of_office", "ends_at"],
            unique=False,
        )
    # A source that synced before this version went live long ago: its next sync must not
    # run the go-live pass (that would open a backlog nobody asked for on an upgrade).
    op.execute(
        "UPDATE sync_sources SET went_live_at = COALESCE(last_finished_at, last_started_at) "
        "WHERE connector IN (SELECT connector FROM sync_cursors)"
    )


def downgrade() -> None:
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_events_out_of_office_ends_at"))
        batch_op.drop_column("out_of_office")
    with op.batch_alter_table("sync_sources", schema=None) as batch_op:
        batch_op.drop_column("went_live_at")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_handed_over_from_status"))
        batch_op.drop_column("handed_over_from")
    with op.batch_alter_table("stage_setup", schema=None) as batch_op:
        batch_op.drop_column("owner_email")
    op.drop_table("handovers")
    op.drop_table("job_setup")
