"""Database tables: the canonical mirror, set-up, inbox, sync state, health, tasks.

Every schema change here needs an Alembic migration in ``store/migrations``; a test checks
that the migrated schema equals this metadata on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from taskplanner.store.types import UTCDateTime

# Stable constraint names so migrations and metadata compare equal on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {str: String(), datetime: UTCDateTime()}

    def __init__(self, **kwargs: Any) -> None:
        # Column defaults apply when the object is built, not only at INSERT, so code can
        # read e.g. ``attempts`` of a row it has just created.
        defaults, names = _construction(type(self))
        for key, value in defaults:
            if key not in kwargs:
                setattr(self, key, value)
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no attribute {key!r}")
            setattr(self, key, value)

    def __repr__(self) -> str:
        keys = ", ".join(f"{c.key}={getattr(self, c.key)!r}" for c in self.__table__.primary_key)
        return f"{type(self).__name__}({keys})"


_CONSTRUCTION: dict[type, tuple[list[tuple[str, Any]], frozenset[str]]] = {}


def _construction(cls: type[Base]) -> tuple[list[tuple[str, Any]], frozenset[str]]:
    """A model's scalar column defaults and the attribute names it accepts (computed once)."""
    known = _CONSTRUCTION.get(cls)
    if known is None:
        defaults = [
            (column.key, column.default.arg)
            for column in cls.__table__.columns
            if column.default is not None and column.default.is_scalar
        ]
        names = frozenset(name for name in dir(cls) if not name.startswith("__"))
        known = _CONSTRUCTION[cls] = (defaults, names)
    return known


# --- canonical mirror ---------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(index=True)
    name: Mapped[str]
    role: Mapped[str | None]
    deactivated: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    status: Mapped[str] = mapped_column(index=True)
    published: Mapped[bool | None]
    coordinator_email: Mapped[str | None]
    recruiter_email: Mapped[str | None]
    url: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_seen_at: Mapped[datetime]
    content_hash: Mapped[str]


class Stage(Base):
    __tablename__ = "stages"
    id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(index=True)
    name: Mapped[str]
    position: Mapped[int] = mapped_column(default=0)


class InterviewKind(Base):
    __tablename__ = "interview_kinds"
    id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(index=True)
    stage_id: Mapped[str] = mapped_column(index=True)
    name: Mapped[str]


class Candidate(Base):
    __tablename__ = "candidates"
    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str | None] = mapped_column(index=True)
    coordinator_email: Mapped[str | None]
    url: Mapped[str | None]
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (Index(None, "status", "stage_id", "stage_entered_at"),)
    id: Mapped[str] = mapped_column(primary_key=True)
    candidate_id: Mapped[str] = mapped_column(index=True)
    job_id: Mapped[str] = mapped_column(index=True)
    stage_id: Mapped[str | None]
    status: Mapped[str]
    stage_entered_at: Mapped[datetime | None]
    url: Mapped[str | None]
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]


class Schedule(Base):
    __tablename__ = "schedules"
    __table_args__ = (Index(None, "status", "ends_at"),)
    id: Mapped[str] = mapped_column(primary_key=True)
    application_id: Mapped[str] = mapped_column(index=True)
    stage_id: Mapped[str | None]
    interview_kind_id: Mapped[str | None]
    status: Mapped[str]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    external_event_id: Mapped[str | None] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]


class ScheduleInterviewer(Base):
    __tablename__ = "schedule_interviewers"
    schedule_id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(primary_key=True)
    response: Mapped[str]
    name: Mapped[str | None]


class Scorecard(Base):
    __tablename__ = "scorecards"
    __table_args__ = (Index(None, "schedule_id", "interviewer_email"),)
    id: Mapped[str] = mapped_column(primary_key=True)
    application_id: Mapped[str] = mapped_column(index=True)
    schedule_id: Mapped[str | None]
    interviewer_email: Mapped[str]
    submitted: Mapped[bool]
    submitted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]


class CalendarEvent(Base):
    __tablename__ = "calendar_events"
    __table_args__ = (Index(None, "out_of_office", "ends_at"),)
    connector: Mapped[str] = mapped_column(primary_key=True)
    calendar_id: Mapped[str] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(primary_key=True)
    ical_uid: Mapped[str | None] = mapped_column(index=True)
    status: Mapped[str]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    organizer_email: Mapped[str | None]
    title: Mapped[str | None]
    schedule_tag: Mapped[str | None]
    schedule_id: Mapped[str | None] = mapped_column(index=True)  # the ATS interview it is linked to
    updated_at: Mapped[datetime]
    content_hash: Mapped[str]
    # An out-of-office event on this calendar's owner (hand-overs; see the section below).
    out_of_office: Mapped[bool] = mapped_column(default=False)


class CalendarAttendee(Base):
    __tablename__ = "calendar_attendees"
    connector: Mapped[str] = mapped_column(primary_key=True)
    calendar_id: Mapped[str] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(primary_key=True)
    response: Mapped[str]
    is_resource: Mapped[bool] = mapped_column(default=False)
    is_organizer: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str | None]


# --- set-up done in taskplanner ------------------------------------------------------


class StageSetup(Base):
    """A coordinator's set-up of a stage; None means "follow the organisation default"."""

    __tablename__ = "stage_setup"
    stage_id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(index=True)
    scheduling_enabled: Mapped[bool | None]
    inactivity_alerts: Mapped[bool | None]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None]
    owner_email: Mapped[str | None]  # the stage owner set on the page (see JobSetup)


class InterviewTemplate(Base):
    __tablename__ = "interview_templates"
    interview_kind_id: Mapped[str] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(index=True)
    stage_id: Mapped[str]
    template: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None]


# --- inbox, sync state, health --------------------------------------------------------


class InboxDelivery(Base):
    """A raw delivery, stored before the sender is answered and processed afterwards."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index(None, "connector", "delivery_id", unique=True),
        Index(None, "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str]
    delivery_id: Mapped[str]
    event_type: Mapped[str | None]
    headers: Mapped[str] = mapped_column(Text)  # JSON object of the headers we keep
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    # pending | done | ignored (unknown event / malformed, kept for a person) | dead
    status: Mapped[str] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]


class SyncCursor(Base):
    __tablename__ = "sync_cursors"
    connector: Mapped[str] = mapped_column(primary_key=True)
    partition: Mapped[str] = mapped_column(primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SyncSource(Base):
    """One pollable connector; a replica holds its lease while polling it."""

    __tablename__ = "sync_sources"
    connector: Mapped[str] = mapped_column(primary_key=True)
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    # When the source's first sync ended with the go-live pass (None: not yet).
    went_live_at: Mapped[datetime | None]


class IntegrationHealth(Base):
    __tablename__ = "integration_health"
    connector: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(default="ok")  # ok | failing | broken
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    changed_at: Mapped[datetime]


# --- tasks -----------------------------------------------------------------------------


class Task(Base):
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
        Index(None, "candidate_id", "status"),
        Index(None, "job_id", "status"),
        Index(None, "schedule_id", "status"),
        Index(None, "handed_over_from", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(index=True)
    category: Mapped[str]
    title: Mapped[str]
    recommended_action: Mapped[str]
    action_url: Mapped[str | None]
    detail: Mapped[str | None] = mapped_column(Text)
    assignee: Mapped[str]
    assigned_via: Mapped[str]  # a role name from the category table, or "manual"
    status: Mapped[str] = mapped_column(default="open")
    resolution: Mapped[str | None]
    completed_by: Mapped[str | None]  # the person, for a manual completion
    completion_reason: Mapped[str | None]  # what happened, for an automatic one
    # Provider time of the observation that completed it (our time for a person's act).
    resolved_observation_at: Mapped[datetime | None]
    job_id: Mapped[str | None]
    stage_id: Mapped[str | None]
    interview_kind_id: Mapped[str | None]
    application_id: Mapped[str | None]
    candidate_id: Mapped[str | None]
    schedule_id: Mapped[str | None]
    event_id: Mapped[str | None]
    attendee: Mapped[str | None]
    integration: Mapped[str | None]
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Whose task this is while a stand-in holds it (a hand-over); it goes back when it ends.
    handed_over_from: Mapped[str | None]


class TaskHistory(Base):
    __tablename__ = "task_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(index=True)
    at: Mapped[datetime]
    action: Mapped[str]  # opened | assigned | reassigned | due_changed | completed
    detail: Mapped[str] = mapped_column(Text)  # why, in words a coordinator reads
    actor: Mapped[str]  # a person's email, or the event/sweep that caused it


# --- page sign-in (oidc branch) --------------------------------------------------------


class WebSession(Base):
    """A signed-in person on the page. The cookie holds a secret; this row, keyed by the
    secret's SHA-256, is what makes it valid, so sign-out (deleting it) really ends it."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(primary_key=True)  # sha256 hex of the cookie's secret
    email: Mapped[str]
    via: Mapped[str]  # oidc | token (self-asserted) | local (self-asserted, this machine)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OidcSignIn(Base):
    """A sign-in begun at the identity provider and not yet finished; used once."""

    __tablename__ = "oidc_sign_ins"
    state_hash: Mapped[str] = mapped_column(primary_key=True)  # sha256 hex of ``state``
    nonce: Mapped[str]
    code_verifier: Mapped[str]
    redirect_uri: Mapped[str] = mapped_column(Text)
    next_url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class WebSecret(Base):
    """Keys the web server generates once and every replica shares (the session key)."""

    __tablename__ = "web_secrets"
    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]

# --- owners and hand-overs (first day with a real organisation) ---------------------------


class JobSetup(Base):
    """A job's coordinator set on the set-up page (None: the configuration's, else the ATS's).

    The stage owners set on the page are ``StageSetup.owner_email``.
    """

    __tablename__ = "job_setup"
    job_id: Mapped[str] = mapped_column(primary_key=True)
    coordinator_email: Mapped[str | None]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None]


class Handover(Base):
    """A hand-over recorded with ``taskplanner reassign --from A --to B [--until DATE]``.

    Those in ``[[people]]`` live in the configuration and out-of-office spans in
    ``calendar_events``; all three are combined by ``taskplanner.handover``.
    """

    __tablename__ = "handovers"
    person: Mapped[str] = mapped_column(primary_key=True)
    stand_in: Mapped[str]
    until: Mapped[datetime | None]  # None: for good
    created_at: Mapped[datetime]
    created_by: Mapped[str]
