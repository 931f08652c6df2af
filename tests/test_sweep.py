"""The periodic sweep: time-based categories found in SQL, with an injected clock.

It opens exactly the inactive applications, the overdue evaluations and the jobs not live
in time; ``due_at`` is the moment the condition began; what a person completed stays
completed; declines on interviews that have passed retire. One case has 100,000 active
applications in the store.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from taskplanner.clock import FrozenClock, span_text
from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import OrgRules
from taskplanner.pipeline import Pipeline
from tests.factories import (
    IRIS,
    IVAN,
    application,
    at,
    candidate,
    interview_event,
    job,
    job_override,
    job_stages,
    rules,
    schedule,
    scheduled_world,
    scorecard,
    sweep_population,
)
from tests.taskflow import (
    Entry,
    complete_by_hand,
    history,
    insert_population,
    open_tasks,
    set_up_stage,
    tasks,
)

DECLINED, ACCEPTED = sn.Response.DECLINED, sn.Response.ACCEPTED
DAY = timedelta(days=1)
J2_RULES = rules(jobs={"j2": job_override(inactivity_after={"Phone Screen": 3 * DAY})})


def make_pipeline(db: Engine, clock: FrozenClock, org: OrgRules | None = None) -> Pipeline:
    return Pipeline(db, org or rules(), clock)


@pytest.fixture
def pipeline(db: Engine, clock: FrozenClock) -> Pipeline:
    return make_pipeline(db, clock, J2_RULES)


def applicant(
    app_id: str, *, job_id: str = "j1", stage: str, entered: float, **kw: object
) -> list[sn.Snapshot]:
    """A candidate and their application, ``entered`` minutes after T0."""
    return [
        candidate(f"c-{app_id}", name=f"Candidate {app_id}", email=f"{app_id}@example.com"),
        application(
            app_id,
            job_id=job_id,
            candidate_id=f"c-{app_id}",
            stage=stage,
            entered=entered,
            updated=entered,
            **kw,  # type: ignore[arg-type]
        ),
    ]


def inactive(db: Engine) -> set[tuple[str | None, str | None]]:
    return {(t.application_id, t.stage_id) for t in open_tasks(db, "inactive_candidate")}


# --- inactive_candidate ------------------------------------------------------------------


def test_sweep_opens_inactive_candidates_only_in_stages_with_alerts_on(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(), job("j2", stages=job_stages("j2"))])
    set_up_stage(pipeline, "s-offer", inactivity_alerts=True)  # on, default threshold
    set_up_stage(pipeline, "j2-s-review", job_id="j2", inactivity_alerts=False)
    days = 24 * 60
    pipeline.ingest_now(
        [
            *applicant("review-old", stage="s-review", entered=0),
            *applicant("review-new", stage="s-review", entered=2 * days),
            *applicant("phone-old", stage="s-phone", entered=0),  # alerts off
            *applicant("offer-old", stage="s-offer", entered=0),  # alerts on in set-up
            *applicant("j2-phone", job_id="j2", stage="j2-s-phone", entered=12 * days),
            *applicant("j2-review", job_id="j2", stage="j2-s-review", entered=0),  # off
            *applicant(
                "rejected", stage="s-review", entered=0, status=sn.ApplicationStatus.REJECTED
            ),
        ]
    )
    clock.advance(15 * DAY)  # T0 + 16 days

    result = pipeline.sweep_now()

    assert inactive(pipeline.db) == {
        ("review-old", "s-review"),
        ("offer-old", "s-offer"),
        ("j2-phone", "j2-s-phone"),  # 4 days in Phone Screen; j2 alerts after 3
    }
    assert result.opened["inactive_candidate"] == 3


def test_inactive_candidate_is_due_when_the_threshold_passed(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(), *applicant("a1", stage="s-review", entered=0)])
    clock.now = at(0) + 15 * DAY  # exactly the threshold: not yet

    pipeline.sweep_now()
    assert inactive(pipeline.db) == set()

    clock.advance(timedelta(minutes=1))
    pipeline.sweep_now()

    task = open_tasks(pipeline.db, "inactive_candidate")[0]
    assert task.due_at == at(0) + 15 * DAY
    assert task.created_at == clock()
    assert (
        task.title == "Candidate a1 is waiting in Application Review (Software Engineer)"
    )
    assert task.action_url is not None and task.action_url.startswith("https://ats.example/")
    assert history(pipeline.db, task.id) == [
        Entry("opened", "sweep", "opened for cora@acme.example")
    ]


def test_inactive_candidate_completed_by_hand_is_not_reopened_by_the_next_sweep(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(), *applicant("a1", stage="s-review", entered=0)])
    clock.advance(20 * DAY)
    pipeline.sweep_now()
    task = open_tasks(pipeline.db, "inactive_candidate")[0]

    complete_by_hand(pipeline, task.id, by="cora@acme.example")
    clock.advance(DAY)
    result = pipeline.sweep_now()

    assert result.opened == {}
    assert [t.status for t in tasks(pipeline.db, "inactive_candidate")] == ["completed"]


def test_entering_the_stage_again_starts_a_new_inactivity_period(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(), *applicant("a1", stage="s-review", entered=0)])
    clock.advance(20 * DAY)
    pipeline.sweep_now()
    back = clock() + timedelta(hours=1)
    minutes_after_t0 = (back - at(0)) / timedelta(minutes=1)
    pipeline.ingest_now(
        [application(candidate_id="c-a1", stage="s-offer", updated=minutes_after_t0 - 1)]
    )
    pipeline.ingest_now(
        [
            application(
                candidate_id="c-a1",
                stage="s-review",
                updated=minutes_after_t0,
                entered=minutes_after_t0,
            )
        ]
    )
    assert open_tasks(pipeline.db, "inactive_candidate") == []  # the move completed it

    clock.now = back + 15 * DAY + timedelta(minutes=1)
    pipeline.sweep_now()

    found = tasks(pipeline.db, "inactive_candidate")
    assert [(t.status, t.resolution) for t in found] == [
        ("completed", "action_taken"),
        ("open", None),
    ]
    assert found[1].due_at == back + 15 * DAY


# --- pending_evaluation ------------------------------------------------------------------

TOM, UNA, VIC, WES = (f"{n}@acme.example" for n in ("tom", "una", "vic", "wes"))
PANEL = (
    sn.InterviewerSnapshot(IVAN, ACCEPTED, "Ivan"),  # no scorecard: overdue
    sn.InterviewerSnapshot(IRIS, DECLINED, "Iris"),  # declined in the ATS
    sn.InterviewerSnapshot(TOM, ACCEPTED, "Tom"),  # declined on the calendar
    sn.InterviewerSnapshot(UNA, ACCEPTED, "Una"),  # submitted for this interview
    sn.InterviewerSnapshot(VIC, ACCEPTED, "Vic"),  # submitted for the application
    sn.InterviewerSnapshot(WES, ACCEPTED, "Wes"),  # only a draft: overdue
)
INTERVIEW_ENDS = at(120)


def overdue(db: Engine) -> set[tuple[str | None, str | None]]:
    return {(t.schedule_id, t.attendee) for t in open_tasks(db, "pending_evaluation")}


@pytest.fixture
def panel_interviewed(pipeline: Pipeline) -> Pipeline:
    """Interview i1 (Phone Screen, T0+1h to T0+2h) with a panel of six, three with
    nothing to submit; a cancelled, a future and a rejected candidate's interview."""
    past = at(60)
    calendar = interview_event(starts=past, updated=3)
    tom_declined = (*calendar.attendees, sn.AttendeeSnapshot(TOM, DECLINED))
    pipeline.ingest_now(
        [
            job(),
            candidate(),
            application(),
            schedule(starts=past, interviewers=PANEL),
            replace(calendar, attendees=tom_declined),
            scorecard("sc-una", interviewer=UNA, submitted=True),
            scorecard("sc-vic", interviewer=VIC, schedule_id=None, submitted=True),
            scorecard("sc-wes", interviewer=WES, submitted=False),
            schedule("i2", starts=past, event_id=None, status=sn.ScheduleStatus.CANCELLED),
            schedule("i3", starts=at(60 * 24 * 3), event_id=None),
            *applicant("a2", stage="s-phone", entered=0, status=sn.ApplicationStatus.REJECTED),
            schedule("i4", app_id="a2", starts=past, event_id=None),
        ]
    )
    return pipeline


def test_sweep_opens_pending_evaluations_past_evaluation_due_after(
    panel_interviewed: Pipeline, clock: FrozenClock
) -> None:
    pipeline = panel_interviewed
    clock.now = INTERVIEW_ENDS + timedelta(hours=24)  # exactly due: not overdue yet
    pipeline.sweep_now()
    assert overdue(pipeline.db) == set()

    clock.advance(timedelta(minutes=1))
    result = pipeline.sweep_now()

    assert overdue(pipeline.db) == {("i1", IVAN), ("i1", WES)}
    assert result.opened["pending_evaluation"] == 2
    for task in open_tasks(pipeline.db, "pending_evaluation"):
        assert task.due_at == INTERVIEW_ENDS + timedelta(hours=24)
        assert task.stage_id == "s-phone"
        assert task.action_url is not None  # the candidate in the ATS, to chase the scorecard


def test_evaluation_submitted_before_the_sweep_opens_nothing(
    panel_interviewed: Pipeline, clock: FrozenClock
) -> None:
    pipeline = panel_interviewed
    pipeline.ingest_now(
        [
            scorecard("sc-ivan", interviewer=IVAN, submitted=True, updated=30),
            scorecard("sc-wes", interviewer=WES, submitted=True, updated=30),
        ]
    )
    clock.now = INTERVIEW_ENDS + timedelta(days=3)

    assert pipeline.sweep_now().opened == {}


def test_scorecard_submitted_after_the_sweep_completes_only_that_interviewers_task(
    panel_interviewed: Pipeline, clock: FrozenClock
) -> None:
    pipeline = panel_interviewed
    clock.now = INTERVIEW_ENDS + timedelta(days=2)
    pipeline.sweep_now()

    pipeline.ingest_now([scorecard("sc-wes", interviewer=WES, submitted=True, updated=30)])
    clock.advance(DAY)
    pipeline.sweep_now()

    assert overdue(pipeline.db) == {("i1", IVAN)}
    wes = [t for t in tasks(pipeline.db, "pending_evaluation") if t.attendee == WES]
    assert [(t.status, t.resolution) for t in wes] == [("completed", "action_taken")]


# --- job_not_live ------------------------------------------------------------------------


def test_sweep_opens_job_not_live_for_jobs_unpublished_past_job_live_within(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now(
        [
            job("old-draft", published=False, stages=None, created=0),
            job("published", published=True, stages=None, created=0),
            job("closed", status=sn.JobStatus.CLOSED, published=False, stages=None, created=0),
            job("unknown", published=None, stages=None, created=0),  # webhooks do not say
            job("young", published=False, stages=None, created=60 * 23),
        ]
    )
    clock.now = at(0) + timedelta(hours=24, minutes=1)

    result = pipeline.sweep_now()

    found = open_tasks(pipeline.db, "job_not_live")
    assert [t.job_id for t in found] == ["old-draft"]
    assert found[0].due_at == at(0) + timedelta(hours=24)
    assert found[0].assignee == "cora@acme.example"
    assert result.opened["job_not_live"] == 1

    clock.now = at(60 * 23) + timedelta(hours=24, minutes=1)
    pipeline.sweep_now()
    assert sorted(t.job_id or "" for t in open_tasks(pipeline.db, "job_not_live")) == [
        "old-draft",
        "young",
    ]


def test_job_published_then_unpublished_is_not_reopened(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(published=False)])
    clock.advance(timedelta(hours=2))
    pipeline.sweep_now()
    pipeline.ingest_now([job(published=True, updated=30)])
    pipeline.ingest_now([job(published=False, updated=40)])

    clock.advance(DAY)
    assert pipeline.sweep_now().opened == {}


# --- the sweep as a whole ------------------------------------------------------------------


def test_second_sweep_at_the_same_time_opens_nothing(
    panel_interviewed: Pipeline, clock: FrozenClock
) -> None:
    pipeline = panel_interviewed
    pipeline.ingest_now([job("draft", published=False, stages=None)])
    clock.now = at(0) + 20 * DAY
    first = pipeline.sweep_now()
    assert sum(first.opened.values()) > 0
    before = [(t.id, t.status) for t in tasks(pipeline.db)]

    second = pipeline.sweep_now()

    assert (second.opened, second.closed) == ({}, {})
    assert [(t.id, t.status) for t in tasks(pipeline.db)] == before


def test_passed_interview_makes_interviewer_and_room_declines_obsolete(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now(
        [
            interview_event(
                updated=10,
                interviewer_response=DECLINED,
                room_response=DECLINED,
                candidate_response=DECLINED,
            )
        ]
    )
    starts = schedule().starts_at
    assert starts is not None
    clock.now = starts - timedelta(minutes=1)
    assert pipeline.sweep_now().closed == {}

    clock.now = starts + timedelta(minutes=1)
    result = pipeline.sweep_now()

    assert result.closed == {"interviewer_declined": 1, "room_declined": 1}
    for category in ("interviewer_declined", "room_declined"):
        (task,) = tasks(pipeline.db, category)
        assert (task.status, task.resolution) == ("completed", "obsolete")
        assert history(pipeline.db, task.id)[-1] == Entry(
            "completed", "sweep", "obsolete: the interview has passed"
        )
    # The candidate's decline still needs a follow-up (SPEC §2: obsolete only when closed).
    assert [t.status for t in tasks(pipeline.db, "candidate_declined")] == ["open"]


def test_moved_interview_keeps_its_decline_open_until_the_new_time(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    first = schedule().starts_at
    assert first is not None
    later = first + 2 * DAY
    # Moved in the ATS and on the calendar; the interviewer has not answered again.
    pipeline.ingest_now(
        [
            schedule(updated=20, starts=later),
            interview_event(updated=21, starts=later, interviewer_response=DECLINED),
        ]
    )

    clock.now = first + timedelta(hours=2)
    pipeline.sweep_now()

    (task,) = open_tasks(pipeline.db, "interviewer_declined")
    assert task.due_at == later

    clock.now = later + timedelta(minutes=1)
    pipeline.sweep_now()
    assert open_tasks(pipeline.db, "interviewer_declined") == []


# --- at scale --------------------------------------------------------------------------------


def test_sweep_over_100000_active_applications_opens_exactly_the_inactive_ones(
    db: Engine, clock: FrozenClock
) -> None:
    population = sweep_population(100_000, now=clock())
    insert_population(db, population)
    pipeline = make_pipeline(db, clock, population.rules)

    result = pipeline.sweep_now()  # its duration is bench/sweep.py's business

    assert inactive(db) == population.expected_inactive
    assert result.opened == {"inactive_candidate": len(population.expected_inactive)}
    assert len(population.expected_inactive) > 100
    assert pipeline.sweep_now().opened == {}


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=40), "under a minute"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=59), "59 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=47), "47 hours"),
        (timedelta(days=2), "2 days"),
        (timedelta(days=1, hours=23, minutes=59), "47 hours"),
    ],
)
def test_spans_of_time_read_as_people_say_them(span: timedelta, text: str) -> None:
    assert span_text(span) == text
