"""Domain events: the differences the normalizer finds between a snapshot and the mirror.

Events carry the names a task title needs (candidate, job, stage), so the category
detectors that read them stay pure functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


class AttendeeRole(enum.StrEnum):
    INTERVIEWER = "interviewer"
    ROOM = "room"
    CANDIDATE = "candidate"


@dataclass(frozen=True)
class ApplicationContext:
    """Who and what an application-related event is about."""

    application_id: str
    candidate_id: str
    candidate_name: str
    job_id: str
    job_name: str
    stage_id: str | None
    stage_name: str | None
    url: str | None = None


@dataclass(frozen=True)
class DomainEvent:
    name: ClassVar[str] = "event"
    at: datetime


@dataclass(frozen=True)
class ApplicationEnteredStage(DomainEvent):
    name: ClassVar[str] = "application_entered_stage"
    app: ApplicationContext
    entered_at: datetime
    scheduling_enabled: bool


@dataclass(frozen=True)
class ApplicationLeftStage(DomainEvent):
    name: ClassVar[str] = "application_left_stage"
    application_id: str
    stage_id: str


@dataclass(frozen=True)
class ApplicationClosed(DomainEvent):
    name: ClassVar[str] = "application_closed"
    application_id: str
    status: str  # rejected | hired | withdrawn | deleted


@dataclass(frozen=True)
class JobCreated(DomainEvent):
    name: ClassVar[str] = "job_created"
    job_id: str
    job_name: str
    url: str | None = None


@dataclass(frozen=True)
class JobClosed(DomainEvent):
    name: ClassVar[str] = "job_closed"
    job_id: str


@dataclass(frozen=True)
class JobPublished(DomainEvent):
    name: ClassVar[str] = "job_published"
    job_id: str


@dataclass(frozen=True)
class JobOwnerChanged(DomainEvent):
    """The job's coordinator changed in the ATS; open tasks follow (SPEC §3)."""

    name: ClassVar[str] = "job_owner_changed"
    job_id: str


@dataclass(frozen=True)
class PersonLeft(DomainEvent):
    """A user was deactivated in the ATS; their role-assigned tasks go to the next in line."""

    name: ClassVar[str] = "person_left"
    email: str


@dataclass(frozen=True)
class PersonAwayChanged(DomainEvent):
    """An out-of-office event on a person's calendar appeared, moved or went away: their
    tasks may go to their stand-in now, or come back (SPEC §3, hand-over)."""

    name: ClassVar[str] = "person_away_changed"
    email: str


@dataclass(frozen=True)
class CandidateCoordinatorChanged(DomainEvent):
    name: ClassVar[str] = "candidate_coordinator_changed"
    candidate_id: str


@dataclass(frozen=True)
class StageCreated(DomainEvent):
    name: ClassVar[str] = "stage_created"
    job_id: str
    job_name: str
    stage_id: str
    stage_name: str
    scheduling_enabled: bool


@dataclass(frozen=True)
class StageRemoved(DomainEvent):
    name: ClassVar[str] = "stage_removed"
    job_id: str
    stage_id: str


@dataclass(frozen=True)
class StageSchedulingEnabled(DomainEvent):
    """A coordinator enabled a stage for scheduling in taskplanner's job set-up."""

    name: ClassVar[str] = "stage_scheduling_enabled"
    job_id: str
    stage_id: str
    by: str | None = None


@dataclass(frozen=True)
class InterviewKindCreated(DomainEvent):
    name: ClassVar[str] = "interview_created"
    job_id: str
    job_name: str
    stage_id: str
    stage_name: str
    interview_kind_id: str
    interview_name: str


@dataclass(frozen=True)
class InterviewKindRemoved(DomainEvent):
    name: ClassVar[str] = "interview_removed"
    job_id: str
    interview_kind_id: str


@dataclass(frozen=True)
class InterviewTemplateSet(DomainEvent):
    name: ClassVar[str] = "interview_template_set"
    job_id: str
    interview_kind_id: str
    by: str | None = None


@dataclass(frozen=True)
class ScheduleCreated(DomainEvent):
    name: ClassVar[str] = "schedule_created"
    schedule_id: str
    app: ApplicationContext


@dataclass(frozen=True)
class ScheduleCancelled(DomainEvent):
    name: ClassVar[str] = "schedule_cancelled"
    schedule_id: str
    app: ApplicationContext
    application_active: bool


@dataclass(frozen=True)
class AttendeeResponded(DomainEvent):
    name: ClassVar[str] = "attendee_responded"
    schedule_id: str
    app: ApplicationContext
    role: AttendeeRole
    email: str
    response: str
    previous: str | None
    starts_at: datetime | None
    is_future: bool
    event_id: str | None = None  # "<connector>:<calendar>/<event>", None when the ATS said it
    attendee_name: str | None = None
    comment: str | None = None  # their response comment, when the calendar keeps one


@dataclass(frozen=True)
class AttendeeRemoved(DomainEvent):
    name: ClassVar[str] = "attendee_removed"
    schedule_id: str
    role: AttendeeRole
    email: str


@dataclass(frozen=True)
class EventMoved(DomainEvent):
    name: ClassVar[str] = "event_moved"
    schedule_id: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class ScorecardSubmitted(DomainEvent):
    name: ClassVar[str] = "scorecard_submitted"
    application_id: str
    schedule_id: str | None
    interviewer_email: str


@dataclass(frozen=True)
class IntegrationFailed(DomainEvent):
    name: ClassVar[str] = "integration_failed"
    integration: str
    error: str


@dataclass(frozen=True)
class IntegrationRecovered(DomainEvent):
    name: ClassVar[str] = "integration_recovered"
    integration: str


@dataclass(frozen=True)
class IntegrationRemoved(DomainEvent):
    name: ClassVar[str] = "integration_removed"
    integration: str
