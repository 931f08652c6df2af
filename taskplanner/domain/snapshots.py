"""Canonical, provider-independent snapshots of what the ATS and calendars hold.

Connectors map provider payloads to these; the normalizer compares them with the mirror.
A snapshot is the whole known state of one entity at the provider's ``updated_at``.
Fields typed ``X | None`` with the comment "None = unknown" mean the payload did not carry
them and the mirror keeps what it had.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class ApplicationStatus(enum.StrEnum):
    ACTIVE = "active"
    REJECTED = "rejected"
    HIRED = "hired"
    WITHDRAWN = "withdrawn"

    @property
    def is_closed(self) -> bool:
        return self is not ApplicationStatus.ACTIVE


class JobStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class ScheduleStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    COMPLETE = "complete"


class Response(enum.StrEnum):
    """An attendee's answer to an invitation (Google responseStatus, Graph status.response)."""

    NEEDS_ACTION = "needs_action"
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"


class EventStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class UserSnapshot:
    id: str
    email: str
    name: str
    updated_at: datetime
    role: str | None = None  # coordinator | recruiter | admin | hiring_manager | interviewer
    deactivated: bool = False


@dataclass(frozen=True)
class InterviewKindSnapshot:
    id: str
    name: str


@dataclass(frozen=True)
class StageSnapshot:
    id: str
    name: str
    position: int = 0
    interview_kinds: tuple[InterviewKindSnapshot, ...] | None = None  # None = unknown


@dataclass(frozen=True)
class JobSnapshot:
    id: str
    name: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    published: bool | None = None  # None = unknown (job webhooks do not say)
    # Owners: None = unknown (job webhooks name users by id only), "" = known to be nobody.
    coordinator_email: str | None = None  # hiring team coordinator
    recruiter_email: str | None = None  # recruiter, else the job's creator
    stages: tuple[StageSnapshot, ...] | None = None  # None = unknown
    url: str | None = None


@dataclass(frozen=True)
class CandidateSnapshot:
    id: str
    name: str
    updated_at: datetime
    email: str | None = None
    coordinator_email: str | None = None  # the coordinator the ATS assigns to the candidate
    url: str | None = None


@dataclass(frozen=True)
class ApplicationSnapshot:
    id: str
    candidate_id: str
    job_id: str
    stage_id: str | None
    status: ApplicationStatus
    updated_at: datetime
    stage_entered_at: datetime | None = None
    candidate: CandidateSnapshot | None = None  # carried along by webhooks that embed it
    url: str | None = None
    # The stage's name when the source names it (webhooks do): a stage no poll has brought
    # yet is then recognised by name (rules.scheduling_stages) at once.
    stage_name: str | None = None
    # The job as a webhook embeds it (no stages): used only while the job is unknown.
    job: JobSnapshot | None = None


@dataclass(frozen=True)
class InterviewerSnapshot:
    email: str
    response: Response = Response.NEEDS_ACTION
    name: str | None = None


@dataclass(frozen=True)
class ScheduleSnapshot:
    """One interview scheduled in the ATS (Greenhouse scheduled interview, Lever interview)."""

    id: str
    application_id: str
    status: ScheduleStatus
    updated_at: datetime
    stage_id: str | None = None
    interview_kind_id: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    external_event_id: str | None = None  # the calendar event id the ATS recorded
    interviewers: tuple[InterviewerSnapshot, ...] | None = None  # None = unknown


@dataclass(frozen=True)
class ScorecardSnapshot:
    id: str
    application_id: str
    interviewer_email: str
    submitted: bool
    updated_at: datetime
    schedule_id: str | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class AttendeeSnapshot:
    email: str
    response: Response = Response.NEEDS_ACTION
    is_resource: bool = False  # a room
    is_organizer: bool = False
    name: str | None = None
    # Their response comment, when the provider keeps one (Google Calendar: attendees[].comment,
    # https://developers.google.com/calendar/api/v3/reference/events; Graph has none).
    comment: str | None = None


@dataclass(frozen=True)
class CalendarEventSnapshot:
    """One event as one calendar (user or room) sees it."""

    connector: str
    calendar_id: str
    event_id: str
    status: EventStatus
    updated_at: datetime
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    ical_uid: str | None = None
    organizer_email: str | None = None
    attendees: tuple[AttendeeSnapshot, ...] = ()
    schedule_tag: str | None = None  # our schedule id written in private extended properties
    title: str | None = None
    # The calendar's owner is out of office for the event's span (Google eventType
    # "outOfOffice", Graph showAs "oof"): with rules.follow_out_of_office their tasks go to
    # a stand-in meanwhile.
    out_of_office: bool = False


class EntityKind(enum.StrEnum):
    USER = "user"
    JOB = "job"
    STAGE = "stage"
    INTERVIEW_KIND = "interview_kind"
    CANDIDATE = "candidate"
    APPLICATION = "application"
    SCHEDULE = "schedule"
    SCORECARD = "scorecard"
    CALENDAR_EVENT = "calendar_event"


@dataclass(frozen=True)
class Deletion:
    """The provider says the entity is gone (delete webhook, @removed item, full-sync diff).

    ``id`` for a calendar event is ``"<calendar_id>/<event_id>"`` and ``connector`` names it.
    """

    kind: EntityKind
    id: str
    at: datetime
    connector: str | None = None


Snapshot = (
    UserSnapshot
    | JobSnapshot
    | CandidateSnapshot
    | ApplicationSnapshot
    | ScheduleSnapshot
    | ScorecardSnapshot
    | CalendarEventSnapshot
    | Deletion
)


@dataclass
class SnapshotBatch:
    """What one delivery or poll page yields, processed in one transaction."""

    snapshots: list[Snapshot] = field(default_factory=list)
