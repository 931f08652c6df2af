"""Database tables: the canonical mirror, set-up, inbox, sync state, health, tasks.

Every schema change here needs an Alembic migration in ``store/migrations``; a test checks
that the migrated schema equals this metadata on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, MetaData, Text, text
from sqlmodel import Field, SQLModel

from taskplanner.store.types import UTCDateTime

# Stable constraint names so migrations and metadata compare equal on both backends.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: MetaData = SQLModel.metadata


# --- canonical mirror ---------------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: str = Field(primary_key=True)
    email: str = Field(index=True)
    name: str
    role: str | None = None
    deactivated: bool = False
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    id: str = Field(primary_key=True)
    name: str
    status: str = Field(index=True)
    published: bool | None = None
    coordinator_email: str | None = None
    recruiter_email: str | None = None
    url: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    name: str
    position: int = 0


class InterviewKind(SQLModel, table=True):
    __tablename__ = "interview_kinds"
    id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    stage_id: str = Field(index=True)
    name: str


class Candidate(SQLModel, table=True):
    __tablename__ = "candidates"
    id: str = Field(primary_key=True)
    name: str
    email: str | None = Field(default=None, index=True)
    coordinator_email: str | None = None
    url: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class Application(SQLModel, table=True):
    __tablename__ = "applications"
    __table_args__ = (Index(None, "status", "stage_id", "stage_entered_at"),)
    id: str = Field(primary_key=True)
    candidate_id: str = Field(index=True)
    job_id: str = Field(index=True)
    stage_id: str | None = None
    status: str
    stage_entered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    url: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class Schedule(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (Index(None, "status", "ends_at"),)
    id: str = Field(primary_key=True)
    application_id: str = Field(index=True)
    stage_id: str | None = None
    interview_kind_id: str | None = None
    status: str
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    external_event_id: str | None = Field(default=None, index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class ScheduleInterviewer(SQLModel, table=True):
    __tablename__ = "schedule_interviewers"
    schedule_id: str = Field(primary_key=True)
    email: str = Field(primary_key=True)
    response: str
    name: str | None = None


class Scorecard(SQLModel, table=True):
    __tablename__ = "scorecards"
    __table_args__ = (Index(None, "schedule_id", "interviewer_email"),)
    id: str = Field(primary_key=True)
    application_id: str = Field(index=True)
    schedule_id: str | None = None
    interviewer_email: str
    submitted: bool
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class CalendarEvent(SQLModel, table=True):
    __tablename__ = "calendar_events"
    connector: str = Field(primary_key=True)
    calendar_id: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    ical_uid: str | None = Field(default=None, index=True)
    status: str
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    organizer_email: str | None = None
    title: str | None = None
    schedule_tag: str | None = None
    schedule_id: str | None = Field(default=None, index=True)  # the ATS interview it is linked to
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class CalendarAttendee(SQLModel, table=True):
    __tablename__ = "calendar_attendees"
    connector: str = Field(primary_key=True)
    calendar_id: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    email: str = Field(primary_key=True)
    response: str
    is_resource: bool = False
    is_organizer: bool = False
    name: str | None = None


# --- set-up done in taskplanner ------------------------------------------------------


class StageSetup(SQLModel, table=True):
    """A coordinator's set-up of a stage; None means "follow the organisation default"."""

    __tablename__ = "stage_setup"
    stage_id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    scheduling_enabled: bool | None = None
    inactivity_alerts: bool | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str | None = None


class InterviewTemplate(SQLModel, table=True):
    __tablename__ = "interview_templates"
    interview_kind_id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    stage_id: str
    template: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str | None = None


# --- inbox, sync state, health --------------------------------------------------------


class InboxDelivery(SQLModel, table=True):
    """A raw delivery, stored before the sender is answered and processed afterwards."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index(None, "connector", "delivery_id", unique=True),
        Index(None, "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connector: str
    delivery_id: str
    event_type: str | None = None
    headers: str = Field(sa_type=Text)  # JSON object of the headers we keep
    body: bytes = Field(sa_type=LargeBinary)
    received_at: datetime = Field(sa_type=UTCDateTime)
    # pending | done | ignored (unknown event / malformed, kept for a person) | dead
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SyncCursor(SQLModel, table=True):
    __tablename__ = "sync_cursors"
    connector: str = Field(primary_key=True)
    partition: str = Field(primary_key=True)
    cursor: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SyncSource(SQLModel, table=True):
    """One pollable connector; a replica holds its lease while polling it."""

    __tablename__ = "sync_sources"
    connector: str = Field(primary_key=True)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IntegrationHealth(SQLModel, table=True):
    __tablename__ = "integration_health"
    connector: str = Field(primary_key=True)
    state: str = "ok"  # ok | failing | broken
    consecutive_failures: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    last_failure_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    changed_at: datetime = Field(sa_type=UTCDateTime)


# --- tasks -----------------------------------------------------------------------------


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        # The same situation never yields two open tasks (SPEC §2).
        Index(
            "uq_tasks_open_key",
            "key",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index(None, "assignee", "status", "id"),
        Index(None, "status", "id"),
        Index(None, "status", "category"),
        Index(None, "application_id", "status"),
        Index(None, "job_id", "status"),
        Index(None, "schedule_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True)
    category: str
    title: str
    recommended_action: str
    action_url: str | None = None
    detail: str | None = Field(default=None, sa_type=Text)
    assignee: str
    assigned_via: str  # a role name from the category table, or "manual"
    status: str = "open"
    resolution: str | None = None
    completed_by: str | None = None  # the person, for a manual completion
    completion_reason: str | None = None  # what happened, for an automatic one
    job_id: str | None = None
    stage_id: str | None = None
    interview_kind_id: str | None = None
    application_id: str | None = None
    candidate_id: str | None = None
    schedule_id: str | None = None
    event_id: str | None = None
    attendee: str | None = None
    integration: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class TaskHistory(SQLModel, table=True):
    __tablename__ = "task_history"
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    action: str  # opened | assigned | reassigned | completed
    detail: str = Field(sa_type=Text)  # why, in words a coordinator reads
    actor: str  # a person's email, or the event/sweep that caused it
