"""Builders for canonical snapshots, shared by every test (one place, not per test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import JobOverrideRules, OrgRules

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """A provider timestamp ``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def rules(**overrides: object) -> OrgRules:
    base: dict[str, object] = {
        "account_owner": "ada@acme.example",
        "scheduling_stages": frozenset({"Phone Screen", "Onsite"}),
        "inactivity_stages": frozenset({"Application Review"}),
        "evaluation_due_after": timedelta(hours=24),
        "job_live_within": timedelta(hours=24),
        "inactivity_after": timedelta(days=15),
        "people_roles": {
            "cora@acme.example": "coordinator",
            "sam@acme.example": "recruiter",
            "hank@acme.example": "hiring_manager",
        },
        "jobs": {},
    }
    base.update(overrides)
    return OrgRules(**base)  # type: ignore[arg-type]


def job_override(**kw: object) -> JobOverrideRules:
    return JobOverrideRules(**kw)  # type: ignore[arg-type]


STAGES = (
    sn.StageSnapshot("s-review", "Application Review", 0, ()),
    sn.StageSnapshot(
        "s-phone", "Phone Screen", 1, (sn.InterviewKindSnapshot("k-phone", "Phone call"),)
    ),
    sn.StageSnapshot(
        "s-onsite", "Onsite", 2, (sn.InterviewKindSnapshot("k-onsite", "Onsite loop"),)
    ),
    sn.StageSnapshot("s-offer", "Offer", 3, ()),
)


def job(
    job_id: str = "j1",
    *,
    name: str = "Software Engineer",
    updated: float = 0,
    status: sn.JobStatus = sn.JobStatus.OPEN,
    coordinator: str | None = "cora@acme.example",
    recruiter: str | None = "sam@acme.example",
    published: bool | None = True,
    stages: tuple[sn.StageSnapshot, ...] | None = STAGES,
    created: float = 0,
) -> sn.JobSnapshot:
    return sn.JobSnapshot(
        id=job_id,
        name=name,
        status=status,
        created_at=at(created),
        updated_at=at(updated),
        published=published,
        coordinator_email=coordinator,
        recruiter_email=recruiter,
        stages=stages,
        url=f"https://ats.example/jobs/{job_id}",
    )


def candidate(
    candidate_id: str = "c1",
    *,
    name: str = "Giuseppe Hurley",
    email: str = "giuseppe@example.com",
    coordinator: str | None = None,
    updated: float = 0,
) -> sn.CandidateSnapshot:
    return sn.CandidateSnapshot(
        id=candidate_id,
        name=name,
        email=email,
        coordinator_email=coordinator,
        updated_at=at(updated),
        url=f"https://ats.example/people/{candidate_id}",
    )


def application(
    app_id: str = "a1",
    *,
    stage: str | None = "s-phone",
    updated: float = 1,
    status: sn.ApplicationStatus = sn.ApplicationStatus.ACTIVE,
    job_id: str = "j1",
    candidate_id: str = "c1",
    entered: float | None = None,
    with_candidate: sn.CandidateSnapshot | None = None,
) -> sn.ApplicationSnapshot:
    return sn.ApplicationSnapshot(
        id=app_id,
        candidate_id=candidate_id,
        job_id=job_id,
        stage_id=stage,
        status=status,
        updated_at=at(updated),
        stage_entered_at=at(entered if entered is not None else updated),
        candidate=with_candidate,
    )


def schedule(
    schedule_id: str = "i1",
    *,
    app_id: str = "a1",
    stage: str | None = "s-phone",
    kind: str | None = "k-phone",
    updated: float = 2,
    status: sn.ScheduleStatus = sn.ScheduleStatus.SCHEDULED,
    starts: datetime | None = None,
    minutes: int = 60,
    event_id: str | None = "ev1",
    interviewers: tuple[sn.InterviewerSnapshot, ...] | None = (
        sn.InterviewerSnapshot("ivan@acme.example", sn.Response.ACCEPTED, "Ivan"),
    ),
) -> sn.ScheduleSnapshot:
    starts = starts or at(60 * 24 * 7)
    return sn.ScheduleSnapshot(
        id=schedule_id,
        application_id=app_id,
        status=status,
        updated_at=at(updated),
        stage_id=stage,
        interview_kind_id=kind,
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
        external_event_id=event_id,
        interviewers=interviewers,
    )


def attendee(
    email: str, response: sn.Response = sn.Response.ACCEPTED, *, room: bool = False
) -> sn.AttendeeSnapshot:
    return sn.AttendeeSnapshot(email=email, response=response, is_resource=room)


def calendar_event(
    event_id: str = "ev1",
    *,
    calendar: str = "ivan@acme.example",
    updated: float = 3,
    status: sn.EventStatus = sn.EventStatus.CONFIRMED,
    starts: datetime | None = None,
    minutes: int = 60,
    attendees: tuple[sn.AttendeeSnapshot, ...] = (),
    connector: str = "google",
    tag: str | None = None,
) -> sn.CalendarEventSnapshot:
    starts = starts or at(60 * 24 * 7)
    return sn.CalendarEventSnapshot(
        connector=connector,
        calendar_id=calendar,
        event_id=event_id,
        status=status,
        updated_at=at(updated),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
        ical_uid=f"{event_id}@google.com",
        organizer_email="cora@acme.example",
        attendees=attendees,
        schedule_tag=tag,
    )


def scorecard(
    scorecard_id: str = "sc1",
    *,
    app_id: str = "a1",
    schedule_id: str | None = "i1",
    interviewer: str = "ivan@acme.example",
    submitted: bool = True,
    updated: float = 5,
) -> sn.ScorecardSnapshot:
    return sn.ScorecardSnapshot(
        id=scorecard_id,
        application_id=app_id,
        interviewer_email=interviewer,
        submitted=submitted,
        updated_at=at(updated),
        schedule_id=schedule_id,
        submitted_at=at(updated) if submitted else None,
    )
