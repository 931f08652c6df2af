"""The twelve task categories as one table: when each opens, who gets it, what closes it.

This module is the code form of the table in SPEC §2. A detector reads one domain event
and says which tasks to open or close; the engine does the storing. Adding a category is
one ``Category`` entry plus its detector.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from taskplanner.domain import events as ev
from taskplanner.domain.events import AttendeeRole, DomainEvent


class Role(enum.StrEnum):
    """How a category's assignee is found (SPEC §3)."""

    CANDIDATE_COORDINATOR = "candidate_coordinator"
    JOB_COORDINATOR = "job_coordinator"
    STAGE_OWNER = "stage_owner"
    ACCOUNT_OWNER = "account_owner"


class GoLive(enum.StrEnum):
    """What a category does on a source's first (baseline) sync (SPEC §3, Go-live).

    The baseline describes what existed before taskplanner was connected. A task that
    describes a *state* (a candidate waiting, a declined future interview) opens from it too,
    so the backlog is there on day one; one that describes a *moment* (a job appeared, an
    interview was cancelled) does not: nobody saw that moment, and it is long past.
    """

    STATE = "state"
    # A state the baseline can only tell once every record is in (an application arrives
    # before its interviews): the go-live pass at the end of the first sync finds it.
    STATE_AT_END = "state_at_end"
    MOMENT = "moment"


class Resolution(enum.StrEnum):
    ACTION_TAKEN = "action_taken"
    OBSOLETE = "obsolete"
    MANUAL = "manual"


@dataclass(frozen=True)
class TaskRefs:
    """What a task is about; these become the task's reference columns."""

    job_id: str | None = None
    stage_id: str | None = None
    interview_kind_id: str | None = None
    application_id: str | None = None
    candidate_id: str | None = None
    schedule_id: str | None = None
    event_id: str | None = None
    attendee: str | None = None
    integration: str | None = None


@dataclass(frozen=True)
class OpenTask:
    category: str
    key: str  # the situation; at most one open task per key
    title: str
    refs: TaskRefs
    action_url: str | None = None
    due_at: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True)
class CloseTasks:
    """Close every open task of ``category`` whose references equal ``match``."""

    category: str
    match: Mapping[str, str]
    resolution: Resolution
    reason: str


Intent = OpenTask | CloseTasks
Detector = Callable[[DomainEvent], list[Intent]]


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    assignee: Role
    recommended_action: str
    opens_on: tuple[str, ...]
    completes_on: tuple[str, ...]
    obsolete_on: tuple[str, ...]
    detector: Detector
    go_live: GoLive
    time_based: bool = False
    events: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = frozenset(self.opens_on + self.completes_on + self.obsolete_on)
        object.__setattr__(self, "events", names)


def _app_refs(app: ev.ApplicationContext, **extra: str | None) -> TaskRefs:
    return TaskRefs(
        job_id=app.job_id,
        stage_id=app.stage_id,
        application_id=app.application_id,
        candidate_id=app.candidate_id,
        **extra,
    )


def _stage_label(app: ev.ApplicationContext) -> str:
    return app.stage_name or "their stage"


# --- detectors -----------------------------------------------------------------------


def detect_ready_to_schedule(e: DomainEvent) -> list[Intent]:
    cat = "ready_to_schedule"
    match e:
        case ev.ApplicationEnteredStage(app=app) if e.scheduling_enabled and app.stage_id:
            # Keyed by application and stage, not by the entry time: a delivery that does not
            # say when the stage was entered (an unrejection arriving before the stage change)
            # can only estimate it, and an estimate in the key would make the open task depend
            # on delivery order. One open task per application and stage is the invariant; a
            # later visit to the stage is a new task under the same key once this one closed.
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{app.application_id}:{app.stage_id}",
                    title=f"Schedule {app.candidate_name} for {_stage_label(app)} ({app.job_name})",
                    refs=_app_refs(app),
                    action_url=app.url,
                )
            ]
        case ev.ScheduleCreated(app=app) if app.stage_id:
            match = {"application_id": app.application_id, "stage_id": app.stage_id}
            return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, "an interview was scheduled")]
        case ev.ApplicationLeftStage():
            match = {"application_id": e.application_id, "stage_id": e.stage_id}
            return [CloseTasks(cat, match, Resolution.OBSOLETE, "the candidate left the stage")]
        case ev.ApplicationClosed():
            return [_closed_application(cat, e)]
    return []


def _closed_application(cat: str, e: ev.ApplicationClosed) -> CloseTasks:
    return CloseTasks(
        cat,
        {"application_id": e.application_id},
        Resolution.OBSOLETE,
        f"the application was {e.status}",
    )


def detect_schedule_cancelled(e: DomainEvent) -> list[Intent]:
    cat = "schedule_cancelled"
    match e:
        case ev.ScheduleCancelled(app=app) if e.application_active:
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{e.schedule_id}",
                    title=(
                        f"{_stage_label(app)} with {app.candidate_name} was cancelled "
                        f"({app.job_name})"
                    ),
                    refs=_app_refs(app, schedule_id=e.schedule_id),
                    action_url=app.url,
                )
            ]
        case ev.ScheduleCreated(app=app) if app.stage_id:
            match = {"application_id": app.application_id, "stage_id": app.stage_id}
            return [
                CloseTasks(cat, match, Resolution.ACTION_TAKEN, "a new interview was scheduled")
            ]
        case ev.ApplicationLeftStage():
            match = {"application_id": e.application_id, "stage_id": e.stage_id}
            return [CloseTasks(cat, match, Resolution.OBSOLETE, "the candidate left the stage")]
        case ev.ApplicationClosed():
            return [_closed_application(cat, e)]
    return []


def _declined_detector(cat: str, role: AttendeeRole, who: str) -> Detector:
    """interviewer_declined, room_declined and candidate_declined share one shape."""

    def detect(e: DomainEvent) -> list[Intent]:
        match e:
            case ev.AttendeeResponded(app=app) if e.role is role:
                match = {"schedule_id": e.schedule_id, "attendee": e.email}
                if e.response == "declined" and e.is_future:
                    name = e.attendee_name or e.email
                    title = (
                        f"{name} ({who}) declined {_stage_label(app)} with "
                        f"{app.candidate_name} ({app.job_name})"
                    )
                    if role is AttendeeRole.CANDIDATE:  # not "X (candidate) declined … with X"
                        stage = _stage_label(app)
                        title = f"{app.candidate_name} declined {stage} ({app.job_name})"
                    return [
                        OpenTask(
                            cat,
                            key=f"{cat}:{e.schedule_id}:{e.email}",
                            title=title,
                            refs=_app_refs(
                                app,
                                schedule_id=e.schedule_id,
                                event_id=e.event_id,
                                attendee=e.email,
                            ),
                            action_url=app.url,
                            due_at=e.starts_at,
                            detail=e.comment,  # shown on the page and in the email
                        )
                    ]
                if e.response == "accepted":
                    return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, f"the {who} accepted")]
            case ev.AttendeeRemoved() if e.role is role and role is not AttendeeRole.CANDIDATE:
                match = {"schedule_id": e.schedule_id, "attendee": e.email}
                return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, f"the {who} was replaced")]
            case ev.ScheduleCancelled():
                resolution = (
                    Resolution.ACTION_TAKEN
                    if role is AttendeeRole.CANDIDATE
                    else Resolution.OBSOLETE
                )
                match = {"schedule_id": e.schedule_id}
                return [CloseTasks(cat, match, resolution, "the interview was cancelled")]
            case ev.ApplicationClosed():
                return [_closed_application(cat, e)]
        return []

    return detect


def detect_new_job(e: DomainEvent) -> list[Intent]:
    cat = "new_job"
    match e:
        case ev.JobCreated():
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{e.job_id}",
                    title=f"Set up {e.job_name} for scheduling",
                    refs=TaskRefs(job_id=e.job_id),
                    action_url=f"/jobs/{e.job_id}/setup",
                )
            ]
        case ev.StageSchedulingEnabled():
            reason = "a stage was enabled for scheduling"
            return [CloseTasks(cat, {"job_id": e.job_id}, Resolution.ACTION_TAKEN, reason)]
        case ev.JobClosed():
            return [
                CloseTasks(cat, {"job_id": e.job_id}, Resolution.OBSOLETE, "the job was closed")
            ]
    return []


def detect_new_stage(e: DomainEvent) -> list[Intent]:
    cat = "new_stage"
    match e:
        case ev.StageCreated() if not e.scheduling_enabled:
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{e.stage_id}",
                    title=f"New stage {e.stage_name} on {e.job_name}: set it up for scheduling?",
                    refs=TaskRefs(job_id=e.job_id, stage_id=e.stage_id),
                    action_url=f"/jobs/{e.job_id}/setup",
                )
            ]
        case ev.StageSchedulingEnabled():
            reason = "the stage was enabled for scheduling"
            return [CloseTasks(cat, {"stage_id": e.stage_id}, Resolution.ACTION_TAKEN, reason)]
        case ev.StageRemoved():
            reason = "the stage was removed"
            return [CloseTasks(cat, {"stage_id": e.stage_id}, Resolution.OBSOLETE, reason)]
        case ev.JobClosed():
            return [
                CloseTasks(cat, {"job_id": e.job_id}, Resolution.OBSOLETE, "the job was closed")
            ]
    return []


def detect_new_interview(e: DomainEvent) -> list[Intent]:
    cat = "new_interview"
    match e:
        case ev.InterviewKindCreated():
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{e.interview_kind_id}",
                    title=(
                        f"New interview {e.interview_name} in {e.stage_name} ({e.job_name}): "
                        "add a template?"
                    ),
                    refs=TaskRefs(
                        job_id=e.job_id, stage_id=e.stage_id, interview_kind_id=e.interview_kind_id
                    ),
                    action_url=f"/jobs/{e.job_id}/setup",
                )
            ]
        case ev.InterviewTemplateSet():
            match = {"interview_kind_id": e.interview_kind_id}
            return [
                CloseTasks(cat, match, Resolution.ACTION_TAKEN, "an interview template was set")
            ]
        case ev.InterviewKindRemoved():
            match = {"interview_kind_id": e.interview_kind_id}
            return [CloseTasks(cat, match, Resolution.OBSOLETE, "the interview was removed")]
        case ev.StageRemoved():
            reason = "the stage was removed"
            return [CloseTasks(cat, {"stage_id": e.stage_id}, Resolution.OBSOLETE, reason)]
        case ev.JobClosed():
            return [
                CloseTasks(cat, {"job_id": e.job_id}, Resolution.OBSOLETE, "the job was closed")
            ]
    return []


def detect_broken_integration(e: DomainEvent) -> list[Intent]:
    cat = "broken_integration"
    match e:
        case ev.IntegrationFailed():
            return [
                OpenTask(
                    cat,
                    key=f"{cat}:{e.integration}",
                    title=f"The {e.integration} integration cannot sync",
                    refs=TaskRefs(integration=e.integration),
                    detail=e.error,
                )
            ]
        case ev.IntegrationRecovered():
            match = {"integration": e.integration}
            return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, "the integration synced again")]
        case ev.IntegrationRemoved():
            match = {"integration": e.integration}
            reason = "the integration was removed from the configuration"
            return [CloseTasks(cat, match, Resolution.OBSOLETE, reason)]
    return []


def detect_pending_evaluation(e: DomainEvent) -> list[Intent]:
    # Opened by the sweep (taskplanner.sweep); events only close it.
    cat = "pending_evaluation"
    match e:
        case ev.ScorecardSubmitted():
            match: dict[str, str] = {
                "application_id": e.application_id,
                "attendee": e.interviewer_email,
            }
            if e.schedule_id:
                match["schedule_id"] = e.schedule_id
            return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, "the scorecard was submitted")]
        case ev.ApplicationClosed():
            return [_closed_application(cat, e)]
    return []


def detect_inactive_candidate(e: DomainEvent) -> list[Intent]:
    # Opened by the sweep; a move or a decision is the action it asked for.
    cat = "inactive_candidate"
    match e:
        case ev.ApplicationLeftStage():
            match = {"application_id": e.application_id, "stage_id": e.stage_id}
            return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, "the candidate was moved")]
        case ev.ApplicationClosed():
            match = {"application_id": e.application_id}
            reason = f"the application was {e.status}"
            return [CloseTasks(cat, match, Resolution.ACTION_TAKEN, reason)]
    return []


def detect_job_not_live(e: DomainEvent) -> list[Intent]:
    # Opened by the sweep.
    cat = "job_not_live"
    match e:
        case ev.JobPublished():
            reason = "the job was published"
            return [CloseTasks(cat, {"job_id": e.job_id}, Resolution.ACTION_TAKEN, reason)]
        case ev.JobClosed():
            return [
                CloseTasks(cat, {"job_id": e.job_id}, Resolution.OBSOLETE, "the job was closed")
            ]
    return []


# Declines are due when their interview starts: moving the interview moves the due date
# (the engine follows ``event_moved``), and the sweep retires the two that an interview
# that has started makes pointless.
DUE_AT_INTERVIEW_START = frozenset({"interviewer_declined", "room_declined", "candidate_declined"})

_LEFT = ev.ApplicationLeftStage.name
_CLOSED = ev.ApplicationClosed.name

CATEGORIES: tuple[Category, ...] = (
    Category(
        "ready_to_schedule",
        "Ready to schedule",
        Role.CANDIDATE_COORDINATOR,
        "Schedule the candidate.",
        opens_on=(ev.ApplicationEnteredStage.name,),
        completes_on=(ev.ScheduleCreated.name,),
        obsolete_on=(_LEFT, _CLOSED),
        detector=detect_ready_to_schedule,
        go_live=GoLive.STATE_AT_END,
    ),
    Category(
        "schedule_cancelled",
        "Schedule cancelled",
        Role.CANDIDATE_COORDINATOR,
        "If the candidate needs to be re-scheduled, re-schedule them.",
        opens_on=(ev.ScheduleCancelled.name,),
        completes_on=(ev.ScheduleCreated.name,),
        obsolete_on=(_LEFT, _CLOSED),
        detector=detect_schedule_cancelled,
        go_live=GoLive.MOMENT,
    ),
    Category(
        "interviewer_declined",
        "Interviewer declined",
        Role.CANDIDATE_COORDINATOR,
        "Swap the interviewer or move the interview to a time that fits their calendar.",
        opens_on=(ev.AttendeeResponded.name,),
        completes_on=(ev.AttendeeResponded.name, ev.AttendeeRemoved.name),
        obsolete_on=(ev.ScheduleCancelled.name, _CLOSED, "sweep:event_passed"),
        detector=_declined_detector(
            "interviewer_declined", AttendeeRole.INTERVIEWER, "interviewer"
        ),
        go_live=GoLive.STATE,
    ),
    Category(
        "room_declined",
        "Room declined",
        Role.CANDIDATE_COORDINATOR,
        "Switch to a room that is free for the whole schedule, or ask the conflicting "
        "event's owner to move.",
        opens_on=(ev.AttendeeResponded.name,),
        completes_on=(ev.AttendeeResponded.name, ev.AttendeeRemoved.name),
        obsolete_on=(ev.ScheduleCancelled.name, _CLOSED, "sweep:event_passed"),
        detector=_declined_detector("room_declined", AttendeeRole.ROOM, "room"),
        go_live=GoLive.STATE,
    ),
    Category(
        "candidate_declined",
        "Candidate declined",
        Role.CANDIDATE_COORDINATOR,
        "Follow up with the candidate to learn why; you may need to cancel the schedule.",
        opens_on=(ev.AttendeeResponded.name,),
        completes_on=(ev.AttendeeResponded.name, ev.ScheduleCancelled.name),
        obsolete_on=(_CLOSED,),
        detector=_declined_detector("candidate_declined", AttendeeRole.CANDIDATE, "candidate"),
        go_live=GoLive.STATE,
    ),
    Category(
        "new_job",
        "New job",
        Role.JOB_COORDINATOR,
        "Set up the job for scheduling.",
        opens_on=(ev.JobCreated.name,),
        completes_on=(ev.StageSchedulingEnabled.name,),
        obsolete_on=(ev.JobClosed.name,),
        detector=detect_new_job,
        go_live=GoLive.MOMENT,
    ),
    Category(
        "new_stage",
        "New stage",
        Role.JOB_COORDINATOR,
        "If you want to schedule in this stage, enable it; otherwise complete the task.",
        opens_on=(ev.StageCreated.name,),
        completes_on=(ev.StageSchedulingEnabled.name,),
        obsolete_on=(ev.StageRemoved.name, ev.JobClosed.name),
        detector=detect_new_stage,
        go_live=GoLive.MOMENT,
    ),
    Category(
        "new_interview",
        "New interview",
        Role.JOB_COORDINATOR,
        "If you want an interview template for it, set one; otherwise complete the task.",
        opens_on=(ev.InterviewKindCreated.name,),
        completes_on=(ev.InterviewTemplateSet.name,),
        obsolete_on=(ev.InterviewKindRemoved.name, ev.StageRemoved.name, ev.JobClosed.name),
        detector=detect_new_interview,
        go_live=GoLive.MOMENT,
    ),
    Category(
        "broken_integration",
        "Broken integration",
        Role.ACCOUNT_OWNER,
        "Fix the integration's credentials or access; the task closes when it syncs again.",
        opens_on=(ev.IntegrationFailed.name,),
        completes_on=(ev.IntegrationRecovered.name,),
        obsolete_on=(ev.IntegrationRemoved.name,),
        detector=detect_broken_integration,
        go_live=GoLive.STATE,
    ),
    Category(
        "pending_evaluation",
        "Pending evaluation",
        Role.STAGE_OWNER,
        "Remind the interviewer to submit their scorecard.",
        opens_on=("sweep:evaluation_overdue",),
        completes_on=(ev.ScorecardSubmitted.name,),
        obsolete_on=(_CLOSED,),
        detector=detect_pending_evaluation,
        go_live=GoLive.STATE,
        time_based=True,
    ),
    Category(
        "inactive_candidate",
        "Inactive candidate",
        Role.STAGE_OWNER,
        "Move the candidate forward or make a decision.",
        opens_on=("sweep:stage_inactivity",),
        completes_on=(_LEFT, _CLOSED),
        obsolete_on=(),
        detector=detect_inactive_candidate,
        go_live=GoLive.STATE,
        time_based=True,
    ),
    Category(
        "job_not_live",
        "Job not live",
        Role.JOB_COORDINATOR,
        "Publish the job.",
        opens_on=("sweep:job_unpublished",),
        completes_on=(ev.JobPublished.name,),
        obsolete_on=(ev.JobClosed.name,),
        detector=detect_job_not_live,
        go_live=GoLive.STATE,
        time_based=True,
    ),
)

CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)


def intents_for(event: DomainEvent) -> list[Intent]:
    """Every category's answer to one event, in table order."""
    intents: list[Intent] = []
    for category in CATEGORIES:
        if event.name in category.events:
            intents.extend(category.detector(event))
    return intents
