"""Database tables as SQLModel models: the canonical mirror, set-up, inbox, sync state, health,
tasks; and the column groups the JSON API shows, so its bodies derive from the tables.

Every schema change here needs an Alembic migration in ``store/migrations``; a test checks
that the migrated schema equals this metadata on SQLite and PostgreSQL. Hot paths may still
use SQLAlchemy Core statements on these tables (``insert(Task)``, ``Task.__table__``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Index, MetaData, String, Table, Text, text
from sqlalchemy.orm import registry
from sqlalchemy.orm.attributes import set_attribute
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

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


class Base(SQLModel, registry=registry(metadata=metadata)):
    """Our tables' base: their own metadata (not SQLModel's global one), and rows that are
    plain SQLAlchemy rows once built.

    A row is built like a SQLAlchemy row, not validated like a pydantic model: column defaults
    apply when it is built, not only at INSERT (code reads e.g. ``attempts`` of a row it has just
    created), and a name the table does not have is refused (SQLModel would drop it silently).
    Setting a column goes straight to SQLAlchemy's instrumentation; SQLModel's generic path
    would also book-keep the value for pydantic, several times the cost on the hot paths
    (bench/ingest.py), for validation rows never get.
    """

    __table__: ClassVar[Table]

    def __init__(self, **data: Any) -> None:
        defaults, columns = _construction(type(self))
        for key in data:
            if key not in columns:
                raise TypeError(f"{type(self).__name__} has no attribute {key!r}")
        for key, value in defaults:
            if key not in data:
                set_attribute(self, key, value)
        for key, value in data.items():
            set_attribute(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _construction(type(self))[1]:
            set_attribute(self, name, value)
        else:
            super().__setattr__(name, value)

    def __repr__(self) -> str:
        keys = ", ".join(f"{c.key}={getattr(self, c.key)!r}" for c in self.__table__.primary_key)
        return f"{type(self).__name__}({keys})"


_CONSTRUCTION: dict[type, tuple[list[tuple[str, Any]], frozenset[str]]] = {}


def _construction(cls: type[Base]) -> tuple[list[tuple[str, Any]], frozenset[str]]:
    """A table model's scalar column defaults and its column names (computed once)."""
    known = _CONSTRUCTION.get(cls)
    if known is None:
        columns = cls.__table__.columns
        defaults = [
            (column.key, column.default.arg)
            for column in columns
            if isinstance(column.default, ScalarElementColumnDefault)
        ]
        known = _CONSTRUCTION[cls] = (defaults, frozenset(column.key for column in columns))
    return known


# --- canonical mirror ---------------------------------------------------------------


class User(Base, table=True):
    __tablename__ = "users"
    id: str = Field(primary_key=True)
    email: str = Field(index=True)
    name: str
    role: str | None = None
    deactivated: bool = False
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class JobFields(SQLModel):
    """The columns of a job the API shows (``JobOut``)."""

    id: str = Field(primary_key=True)
    name: str
    status: str = Field(index=True)
    url: str | None = None


class Job(JobFields, Base, table=True):
    __tablename__ = "jobs"
    published: bool | None = None
    coordinator_email: str | None = None
    recruiter_email: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class StageFields(SQLModel):
    """The columns of a stage the API shows (``StageOut``)."""

    id: str = Field(primary_key=True)
    name: str
    position: int = 0


class Stage(StageFields, Base, table=True):
    __tablename__ = "stages"
    job_id: str = Field(index=True)


class InterviewKindFields(SQLModel):
    """The columns of an interview kind the API shows (``InterviewKindOut``)."""

    id: str = Field(primary_key=True)
    name: str


class InterviewKind(InterviewKindFields, Base, table=True):
    __tablename__ = "interview_kinds"
    job_id: str = Field(index=True)
    stage_id: str = Field(index=True)


class Candidate(Base, table=True):
    __tablename__ = "candidates"
    id: str = Field(primary_key=True)
    name: str
    email: str | None = Field(default=None, index=True)
    coordinator_email: str | None = None
    url: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
    content_hash: str


class Application(Base, table=True):
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
    # When taskplanner first saw it, for "new applicants" in the job coordinator's email;
    # None for what a source's first sync found (there before taskplanner, not new).
    first_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Schedule(Base, table=True):
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


class ScheduleInterviewer(Base, table=True):
    __tablename__ = "schedule_interviewers"
    schedule_id: str = Field(primary_key=True)
    email: str = Field(primary_key=True)
    response: str
    name: str | None = None


class Scorecard(Base, table=True):
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


class CalendarEvent(Base, table=True):
    __tablename__ = "calendar_events"
    __table_args__ = (Index(None, "out_of_office", "ends_at"),)
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
    # An out-of-office event on this calendar's owner (hand-overs; see the section below).
    out_of_office: bool = False


class CalendarAttendee(Base, table=True):
    __tablename__ = "calendar_attendees"
    connector: str = Field(primary_key=True)
    calendar_id: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    email: str = Field(primary_key=True)
    response: str
    is_resource: bool = False
    is_organizer: bool = False
    name: str | None = None
    comment: str | None = Field(default=None, sa_type=Text)  # their response comment


# --- set-up done in taskplanner ------------------------------------------------------


class StageSetupChoices(SQLModel):
    """What a coordinator sets on a stage (``StageSetupIn``); None: the organisation default."""

    scheduling_enabled: bool | None = None
    inactivity_alerts: bool | None = None


class StageSetup(StageSetupChoices, Base, table=True):
    """A coordinator's set-up of a stage; None means "follow the organisation default"."""

    __tablename__ = "stage_setup"
    stage_id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str | None = None
    owner_email: str | None = None  # the stage owner set on the page (see JobSetup)


class InterviewTemplate(Base, table=True):
    __tablename__ = "interview_templates"
    interview_kind_id: str = Field(primary_key=True)
    job_id: str = Field(index=True)
    stage_id: str
    template: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str | None = None


# --- inbox, sync state, health --------------------------------------------------------


class InboxDelivery(Base, table=True):
    """A raw delivery, stored before the sender is answered and processed afterwards."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index(None, "connector", "delivery_id", unique=True),
        Index(None, "status", "next_attempt_at"),
    )
    id: int = Field(default=None, primary_key=True)
    connector: str
    delivery_id: str
    event_type: str | None = None
    headers: str = Field(sa_type=Text)  # JSON object of the headers we keep
    body: bytes
    received_at: datetime = Field(sa_type=UTCDateTime)
    # pending | done | ignored (unknown event / malformed, kept for a person) | dead
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SyncCursor(Base, table=True):
    __tablename__ = "sync_cursors"
    connector: str = Field(primary_key=True)
    partition: str = Field(primary_key=True)
    cursor: str = Field(sa_type=Text)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SyncSource(Base, table=True):
    """One pollable connector; a replica holds its lease while polling it."""

    __tablename__ = "sync_sources"
    connector: str = Field(primary_key=True)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the source's first sync ended with the go-live pass (None: not yet).
    went_live_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IntegrationHealth(Base, table=True):
    __tablename__ = "integration_health"
    connector: str = Field(primary_key=True)
    state: str = "ok"  # ok | failing | broken
    consecutive_failures: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    last_failure_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    changed_at: datetime = Field(sa_type=UTCDateTime)


# --- tasks -----------------------------------------------------------------------------


class TaskFields(SQLModel):
    """The columns of a task the API shows (``TaskOut``), in the order it shows them."""

    id: int = Field(default=None, primary_key=True)
    category: str
    title: str
    recommended_action: str
    action_url: str | None = Field(
        default=None,
        description="The ATS candidate/job, or this server's set-up page (relative; absolute "
        "under server.public_url when that is set)",
    )
    detail: str | None = Field(default=None, sa_type=Text)
    assignee: str
    status: str = "open"
    resolution: str | None = None
    completed_by: str | None = Field(
        default=None, description="The person, for a manual completion"
    )
    completion_reason: str | None = Field(
        default=None, description="What happened, for any completion"
    )
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
    snoozed_until: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="Left out of the open list until then (it stays open)",
    )
    # Whose task this is while a stand-in holds it (a hand-over); it goes back when it ends.
    handed_over_from: str | None = None


class Task(TaskFields, Base, table=True):
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
        # Urgency order (due soonest first, then newest): the due part and the part without
        # a due time are each one index range, for one person or for everyone.
        Index(None, "assignee", "status", "due_at", "id"),
        Index(None, "status", "due_at", "id"),
        Index(None, "stage_id", "status"),
    )
    key: str = Field(index=True)
    assigned_via: str  # a role name from the category table, or "manual"
    # Provider time of the observation that completed it (our time for a person's act).
    resolved_observation_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class TaskHistoryFields(SQLModel):
    """The columns of a history entry the API shows (``HistoryOut``)."""

    at: datetime = Field(sa_type=UTCDateTime)
    action: str  # opened | assigned | reassigned | due_changed | snoozed | unsnoozed | completed
    detail: str = Field(sa_type=Text)  # why, in words a coordinator reads
    actor: str  # a person's email, or the event/sweep that caused it


class TaskHistory(TaskHistoryFields, Base, table=True):
    __tablename__ = "task_history"
    id: int = Field(default=None, primary_key=True)
    task_id: int = Field(index=True)



class AlertOutbox(Base, table=True):
    """A message that a task's opening cannot wait for tomorrow's email (Slack, email).

    Written in the transaction that opens the task, one per task and channel (the unique
    index), so a retried or replayed opening never queues a second one; the sender claims
    a row with a lease before sending and records how it went.
    """

    __tablename__ = "alert_outbox"
    __table_args__ = (
        Index(None, "task_id", "channel", unique=True),
        Index(None, "status", "next_attempt_at"),
    )
    id: int = Field(default=None, primary_key=True)
    task_id: int
    channel: str  # slack | email
    # pending | sending (claimed) | posting (the send is under way) | sent | failed | unknown
    status: str = "pending"
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_to: str | None = None  # the Slack user or channel id, or the email address
    last_error: str | None = Field(default=None, sa_type=Text)


# --- page sign-in ------------------------------------------------------------------------


class WebSession(Base, table=True):
    """A signed-in person on the page. The cookie holds a secret; this row, keyed by the
    secret's SHA-256, is what makes it valid, so sign-out (deleting it) really ends it."""

    __tablename__ = "web_sessions"
    id: str = Field(primary_key=True)  # sha256 hex of the cookie's secret
    email: str
    via: str  # oidc | token (self-asserted) | local (self-asserted, this machine)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class OidcSignIn(Base, table=True):
    """A sign-in begun at the identity provider and not yet finished; used once."""

    __tablename__ = "oidc_sign_ins"
    state_hash: str = Field(primary_key=True)  # sha256 hex of ``state``
    nonce: str
    code_verifier: str
    redirect_uri: str = Field(sa_type=Text)
    next_url: str = Field(sa_type=Text)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class WebSecret(Base, table=True):
    """Keys the web server generates once and every replica shares (the session key)."""

    __tablename__ = "web_secrets"
    name: str = Field(primary_key=True)
    value: bytes
    created_at: datetime = Field(sa_type=UTCDateTime)


# --- owners and hand-overs --------------------------------------------------------------


class JobSetup(Base, table=True):
    """A job's coordinator set on the set-up page (None: the configuration's, else the ATS's).

    The stage owners set on the page are ``StageSetup.owner_email``.
    """

    __tablename__ = "job_setup"
    job_id: str = Field(primary_key=True)
    coordinator_email: str | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str | None = None


class Handover(Base, table=True):
    """A hand-over recorded with ``taskplanner reassign --from A --to B [--until DATE]``.

    Those in ``[[people]]`` live in the configuration and out-of-office spans in
    ``calendar_events``; all three are combined by ``taskplanner.handover``.
    """

    __tablename__ = "handovers"
    person: str = Field(primary_key=True)
    stand_in: str
    until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: for good
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str


# SQLModel types every ``str`` field as AutoString, a TypeDecorator over String that only
# differs on MySQL. Plain String is what the migrations create and costs less: every
# TypeDecorator column is adapted to the dialect once per process, on the first statement
# that uses it (visible in a short run such as bench/sweep.py).
for _table in metadata.tables.values():
    for _column in _table.columns:
        if isinstance(_column.type, AutoString):
            _column.type = String()
