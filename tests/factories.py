"""Builders for canonical snapshots, shared by every test (one place, not per test)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import JobOverrideRules, OrgRules
from taskplanner.store import models as m

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


def job_stages(job_id: str) -> tuple[sn.StageSnapshot, ...]:
    """STAGES for another job: stage and interview ids are global, so they get a prefix."""
    return tuple(
        replace(
            st,
            id=f"{job_id}-{st.id}",
            interview_kinds=tuple(
                replace(k, id=f"{job_id}-{k.id}") for k in st.interview_kinds or ()
            ),
        )
        for st in STAGES
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


def user(
    email: str, *, user_id: str | None = None, deactivated: bool = False, updated: float = 0
) -> sn.UserSnapshot:
    """An ATS user (id derived from the email unless given)."""
    return sn.UserSnapshot(
        id=user_id or f"u-{email.split('@')[0]}",
        email=email,
        name=email.split("@")[0].title(),
        updated_at=at(updated),
        deactivated=deactivated,
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


# --- people ------------------------------------------------------------------------------

ADA = "ada@acme.example"  # account owner (rules())
CORA = "cora@acme.example"  # the ATS hiring-team coordinator of job() (role coordinator)
SAM = "sam@acme.example"  # the recruiter of job() (role recruiter)
HANK = "hank@acme.example"  # a hiring manager: never a job coordinator
CARL = "carl@acme.example"  # a coordinator the ATS assigns to a candidate
PIA = "pia@acme.example"  # configured owner of the Phone Screen stage (stage_owner_rules())
RITA = "rita@acme.example"  # configured owner of the Application Review stage
IVAN = "ivan@acme.example"  # the interviewer of schedule()
IRIS = "iris@acme.example"  # a replacement interviewer
ROOM = "room-berlin-1@resource.calendar.google.com"
ROOM_2 = "room-berlin-2@resource.calendar.google.com"
CANDIDATE_EMAIL = "giuseppe@example.com"  # candidate()'s address, an attendee of the interview


def stage_owner_rules(**overrides: object) -> OrgRules:
    """rules() with job j1's Phone Screen owned by PIA and Application Review by RITA."""
    owners = job_override(stage_owners={"Phone Screen": PIA, "Application Review": RITA})
    return rules(jobs={"j1": owners}, **overrides)


def stage(stage_id: str, name: str, position: int, *kinds: tuple[str, str]) -> sn.StageSnapshot:
    """A stage with interview kinds given as (id, name) pairs."""
    return sn.StageSnapshot(
        stage_id, name, position, tuple(sn.InterviewKindSnapshot(k, n) for k, n in kinds)
    )


def interview_event(
    *,
    updated: float = 3,
    interviewer: str = IVAN,
    interviewer_response: sn.Response = sn.Response.ACCEPTED,
    room: str | None = ROOM,
    room_response: sn.Response = sn.Response.ACCEPTED,
    candidate_response: sn.Response = sn.Response.ACCEPTED,
    status: sn.EventStatus = sn.EventStatus.CONFIRMED,
    starts: datetime | None = None,
    event_id: str = "ev1",
) -> sn.CalendarEventSnapshot:
    """schedule()'s calendar event as the interviewer's calendar sees it: interviewer, room
    and candidate invited."""
    attendees = [
        attendee(interviewer, interviewer_response),
        attendee(CANDIDATE_EMAIL, candidate_response),
    ]
    if room is not None:
        attendees.append(attendee(room, room_response, room=True))
    return calendar_event(
        event_id,
        calendar=IVAN,
        updated=updated,
        status=status,
        starts=starts,
        attendees=tuple(attendees),
    )


def applied_world(
    *, candidate_coordinator: str | None = None, stage_id: str = "s-phone"
) -> list[sn.Snapshot]:
    """Job j1 with candidate c1's application a1 in ``stage_id``."""
    return [
        job(),
        candidate(coordinator=candidate_coordinator),
        application(stage=stage_id),
    ]


def scheduled_world(
    *, candidate_coordinator: str | None = None, starts: datetime | None = None
) -> list[sn.Snapshot]:
    """applied_world() plus interview i1 in Phone Screen and its calendar event, all accepted."""
    return [
        *applied_world(candidate_coordinator=candidate_coordinator),
        schedule(starts=starts),
        interview_event(starts=starts),
    ]


# --- a large organisation for the sweep, as mirror rows (never task rows) -------------


@dataclass
class SweepPopulation:
    """Mirror rows for bulk inserts, the rules they are swept with, and what must open.

    Ten jobs with STAGES each. Inactivity alerts are on for Application Review everywhere
    (rules().inactivity_stages, 15 days) except on job bj3, where the set-up turned them off;
    job bj1 alerts after 3 days in Phone Screen (a per-job override); job bj2 turned alerts
    on for Offer in its set-up (the default 15 days). One application in 47 has sat in its
    stage for about three weeks, another for about five days; the rest entered their stage
    less than three days ago. Another 2 % of applications are rejected and old, and never
    count.
    """

    rules: OrgRules
    tables: list[tuple[type[Any], list[dict[str, object]]]]
    expected_inactive: set[tuple[str, str]]  # (application id, stage id)
    active: int


def sweep_population(active: int, *, now: datetime) -> SweepPopulation:
    job_ids = [f"bj{n}" for n in range(10)]
    long_ago = now - timedelta(days=365)
    jobs = [
        {
            "id": job_id,
            "name": f"Job {job_id}",
            "status": sn.JobStatus.OPEN.value,
            "published": True,
            "coordinator_email": CORA,
            "recruiter_email": SAM,
            "created_at": long_ago,
            "updated_at": long_ago,
            "first_seen_at": long_ago,
            "content_hash": "bulk",
        }
        for job_id in job_ids
    ]
    stages = [
        {"id": f"{job_id}-{st.id}", "job_id": job_id, "name": st.name, "position": st.position}
        for job_id in job_ids
        for st in STAGES
    ]
    setups = [
        {"stage_id": "bj3-s-review", "job_id": "bj3", "inactivity_alerts": False},
        {"stage_id": "bj2-s-offer", "job_id": "bj2", "inactivity_alerts": True},
    ]
    for setup in setups:
        setup.update(scheduling_enabled=None, updated_at=long_ago, updated_by=CORA)
    alerts_on = {  # stage id -> days before an application there is inactive
        **{f"{j}-s-review": 15 for j in job_ids if j != "bj3"},
        "bj1-s-phone": 3,
        "bj2-s-offer": 15,
    }
    candidates: list[dict[str, object]] = []
    applications: list[dict[str, object]] = []
    expected: set[tuple[str, str]] = set()
    closed = active // 50
    for n in range(active + closed):
        app_id = f"ba{n}"
        job_id = job_ids[n % 10]
        stage_id = f"{job_id}-{STAGES[(n // 10) % 4].id}"
        block = (n // 7) % 47  # runs of 7 spread the old ones over every job and stage
        if block == 0:
            sat = timedelta(days=20, hours=n % 24)
        elif block == 1:
            sat = timedelta(days=5, hours=n % 24)  # inactive only where alerts come at 3 days
        else:
            sat = timedelta(hours=n % 71)
        status = sn.ApplicationStatus.REJECTED if n >= active else sn.ApplicationStatus.ACTIVE
        if status is sn.ApplicationStatus.REJECTED:
            sat = timedelta(days=30)
        entered = now - sat
        candidates.append(
            {
                "id": f"c-{app_id}",
                "name": f"Candidate {n}",
                "email": f"candidate{n}@example.com",
                "updated_at": entered,
                "content_hash": "bulk",
            }
        )
        applications.append(
            {
                "id": app_id,
                "candidate_id": f"c-{app_id}",
                "job_id": job_id,
                "stage_id": stage_id,
                "status": status.value,
                "stage_entered_at": entered,
                "updated_at": entered,
                "content_hash": "bulk",
            }
        )
        days = alerts_on.get(stage_id)
        if status.is_closed or days is None:
            continue
        if sat > timedelta(days=days):
            expected.add((app_id, stage_id))
    org = rules(jobs={"bj1": job_override(inactivity_after={"Phone Screen": timedelta(days=3)})})
    return SweepPopulation(
        rules=org,
        tables=[
            (m.Job, jobs),
            (m.Stage, stages),
            (m.StageSetup, setups),
            (m.Candidate, candidates),
            (m.Application, applications),
        ],
        expected_inactive=expected,
        active=active,
    )
