"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import taskplanner.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("candidate_id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("stage_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("stage_entered_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applications_candidate_id"), ["candidate_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applications_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_applications_status_stage_id_stage_entered_at"),
            ["status", "stage_id", "stage_entered_at"],
            unique=False,
        )

    op.create_table(
        "calendar_attendees",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("calendar_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("is_resource", sa.Boolean(), nullable=False),
        sa.Column("is_organizer", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint(
            "connector", "calendar_id", "event_id", "email", name=op.f("pk_calendar_attendees")
        ),
    )
    op.create_table(
        "calendar_events",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("calendar_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("ical_uid", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("starts_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("ends_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("organizer_email", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("schedule_tag", sa.String(), nullable=True),
        sa.Column("schedule_id", sa.String(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint(
            "connector", "calendar_id", "event_id", name=op.f("pk_calendar_events")
        ),
    )
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_events_ical_uid"), ["ical_uid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_calendar_events_schedule_id"), ["schedule_id"], unique=False
        )

    op.create_table(
        "candidates",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("coordinator_email", sa.String(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_candidates_email"), ["email"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("delivery_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_connector_delivery_id"), ["connector", "delivery_id"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_inbox_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    op.create_table(
        "integration_health",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_failure_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("changed_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connector", name=op.f("pk_integration_health")),
    )
    op.create_table(
        "interview_kinds",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("stage_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interview_kinds")),
    )
    with op.batch_alter_table("interview_kinds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interview_kinds_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_interview_kinds_stage_id"), ["stage_id"], unique=False)

    op.create_table(
        "interview_templates",
        sa.Column("interview_kind_id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("stage_id", sa.String(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("interview_kind_id", name=op.f("pk_interview_templates")),
    )
    with op.batch_alter_table("interview_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interview_templates_job_id"), ["job_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=True),
        sa.Column("coordinator_email", sa.String(), nullable=True),
        sa.Column("recruiter_email", sa.String(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("created_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "schedule_interviewers",
        sa.Column("schedule_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", "email", name=op.f("pk_schedule_interviewers")),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("application_id", sa.String(), nullable=False),
        sa.Column("stage_id", sa.String(), nullable=True),
        sa.Column("interview_kind_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("starts_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("ends_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("external_event_id", sa.String(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedules_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_schedules_external_event_id"), ["external_event_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_schedules_status_ends_at"), ["status", "ends_at"], unique=False
        )

    op.create_table(
        "scorecards",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("application_id", sa.String(), nullable=False),
        sa.Column("schedule_id", sa.String(), nullable=True),
        sa.Column("interviewer_email", sa.String(), nullable=False),
        sa.Column("submitted", sa.Boolean(), nullable=False),
        sa.Column("submitted_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scorecards")),
    )
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scorecards_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_scorecards_schedule_id_interviewer_email"),
            ["schedule_id", "interviewer_email"],
            unique=False,
        )

    op.create_table(
        "stage_setup",
        sa.Column("stage_id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("scheduling_enabled", sa.Boolean(), nullable=True),
        sa.Column("inactivity_alerts", sa.Boolean(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("stage_id", name=op.f("pk_stage_setup")),
    )
    with op.batch_alter_table("stage_setup", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stage_setup_job_id"), ["job_id"], unique=False)

    op.create_table(
        "stages",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
    )
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stages_job_id"), ["job_id"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("partition", sa.String(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connector", "partition", name=op.f("pk_sync_cursors")),
    )
    op.create_table(
        "sync_sources",
        sa.Column("connector", sa.String(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("next_due_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_started_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("connector", name=op.f("pk_sync_sources")),
    )
    op.create_table(
        "task_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_history")),
    )
    with op.batch_alter_table("task_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_history_task_id"), ["task_id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("recommended_action", sa.String(), nullable=False),
        sa.Column("action_url", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("assignee", sa.String(), nullable=False),
        sa.Column("assigned_via", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("resolution", sa.String(), nullable=True),
        sa.Column("completed_by", sa.String(), nullable=True),
        sa.Column("completion_reason", sa.String(), nullable=True),
        sa.Column("resolved_observation_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("job_id", sa.String(), nullable=True),
        sa.Column("stage_id", sa.String(), nullable=True),
        sa.Column("interview_kind_id", sa.String(), nullable=True),
        sa.Column("application_id", sa.String(), nullable=True),
        sa.Column("candidate_id", sa.String(), nullable=True),
        sa.Column("schedule_id", sa.String(), nullable=True),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("attendee", sa.String(), nullable=True),
        sa.Column("integration", sa.String(), nullable=True),
        sa.Column("created_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("due_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("completed_at", taskplanner.store.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tasks_application_id_status"), ["application_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_assignee_status_id"), ["assignee", "status", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_candidate_id_status"), ["candidate_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_job_id_status"), ["job_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tasks_key"), ["key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tasks_schedule_id_status"), ["schedule_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_status_category"), ["status", "category"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tasks_status_id"), ["status", "id"], unique=False)
        batch_op.create_index(
            "uq_tasks_open_key",
            ["key"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "users",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=True),
        sa.Column("deactivated", sa.Boolean(), nullable=False),
        sa.Column("updated_at", taskplanner.store.types.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_email"), ["email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email"))

    op.drop_table("users")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_tasks_open_key",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index(batch_op.f("ix_tasks_status_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_status_category"))
        batch_op.drop_index(batch_op.f("ix_tasks_schedule_id_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_key"))
        batch_op.drop_index(batch_op.f("ix_tasks_job_id_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_candidate_id_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_assignee_status_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_application_id_status"))

    op.drop_table("tasks")
    with op.batch_alter_table("task_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_history_task_id"))

    op.drop_table("task_history")
    op.drop_table("sync_sources")
    op.drop_table("sync_cursors")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stages_job_id"))

    op.drop_table("stages")
    with op.batch_alter_table("stage_setup", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stage_setup_job_id"))

    op.drop_table("stage_setup")
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scorecards_schedule_id_interviewer_email"))
        batch_op.drop_index(batch_op.f("ix_scorecards_application_id"))

    op.drop_table("scorecards")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedules_status_ends_at"))
        batch_op.drop_index(batch_op.f("ix_schedules_external_event_id"))
        batch_op.drop_index(batch_op.f("ix_schedules_application_id"))

    op.drop_table("schedules")
    op.drop_table("schedule_interviewers")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))

    op.drop_table("jobs")
    with op.batch_alter_table("interview_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interview_templates_job_id"))

    op.drop_table("interview_templates")
    with op.batch_alter_table("interview_kinds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interview_kinds_stage_id"))
        batch_op.drop_index(batch_op.f("ix_interview_kinds_job_id"))

    op.drop_table("interview_kinds")
    op.drop_table("integration_health")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_inbox_connector_delivery_id"))

    op.drop_table("inbox")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_candidates_email"))

    op.drop_table("candidates")
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_events_schedule_id"))
        batch_op.drop_index(batch_op.f("ix_calendar_events_ical_uid"))

    op.drop_table("calendar_events")
    op.drop_table("calendar_attendees")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_status_stage_id_stage_entered_at"))
        batch_op.drop_index(batch_op.f("ix_applications_job_id"))
        batch_op.drop_index(batch_op.f("ix_applications_candidate_id"))

    op.drop_table("applications")
