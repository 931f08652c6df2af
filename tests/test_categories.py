"""The twelve task categories, driven through the real normalizer, engine and sweep.

For each category: it opens once (replays and duplicate deliveries open nothing new), goes
to the person SPEC §3 names, closes with ``action_taken`` on its completing event and as
``obsolete`` on its obsoleting event, can be completed by hand, and its history says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from taskplanner import health
from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.domain.categories import CATEGORY_BY_NAME, CATEGORY_NAMES
from taskplanner.engine import TaskAlreadyCompleted
from taskplanner.pipeline import Pipeline
from taskplanner.store.database import transaction
from tests.factories import (
    ADA,
    CANDIDATE_EMAIL,
    CARL,
    CORA,
    IRIS,
    IVAN,
    PIA,
    RITA,
    ROOM,
    ROOM_2,
    STAGES,
    application,
    at,
    candidate,
    interview_event,
    job,
    schedule,
    scheduled_world,
    scorecard,
    stage,
    stage_owner_rules,
)
from tests.taskflow import (
    Entry,
    complete_by_hand,
    history,
    integration_fails,
    integration_syncs,
    integrations_configured,
    only_task,
    open_tasks,
    set_up_stage,
    tasks,
)

DECLINED, ACCEPTED = sn.Response.DECLINED, sn.Response.ACCEPTED


@pytest.fixture
def pipeline(db: Engine, clock: FrozenClock) -> Pipeline:
    return Pipeline(db, stage_owner_rules(), clock)


# --- steps: what happens in the ATS, the calendar, taskplanner's set-up, or time -------

Step = Callable[[Pipeline, FrozenClock], object]


@dataclass(frozen=True)
class Deliver:
    """One delivery of snapshots (a webhook or a poll page)."""

    snapshots: tuple[sn.Snapshot, ...]

    def __call__(self, pipeline: Pipeline, clock: FrozenClock) -> object:
        return pipeline.ingest_now(list(self.snapshots))


def deliver(*snapshots: sn.Snapshot) -> Deliver:
    return Deliver(snapshots)


def sweep_after(delta: timedelta) -> Step:
    def step(pipeline: Pipeline, clock: FrozenClock) -> object:
        clock.advance(delta)
        return pipeline.sweep_now()

    return step


def enable_stage(stage_id: str) -> Step:
    return lambda pipeline, clock: set_up_stage(pipeline, stage_id, scheduling_enabled=True)


def set_template(stage_id: str, kind_id: str) -> Step:
    templates = {kind_id: "Ask about a system you designed and what you would change."}
    return lambda pipeline, clock: set_up_stage(pipeline, stage_id, interview_templates=templates)


def nothing(pipeline: Pipeline, clock: FrozenClock) -> object:
    return None


# --- the table ----------------------------------------------------------------------------

TAKE_HOME = stage("s-take", "Take-home", 4)
ONSITE_WITH_DESIGN = stage(
    "s-onsite", "Onsite", 2, ("k-onsite", "Onsite loop"), ("k-design", "System design")
)
PAST_INTERVIEW = at(60)  # an hour after T0, the day before the clock's start
REJECTED, CLOSED = sn.ApplicationStatus.REJECTED, sn.JobStatus.CLOSED


@dataclass(frozen=True)
class Scenario:
    category: str
    assignee: str
    before: Step  # the world just before the situation
    opens: Step  # the transition; replaying it must open nothing new
    opened_by: str  # the history actor of "opened"
    completes: Step
    completed_by: str
    obsoletes: Step | None  # None: the category has no obsoleting event (SPEC §2)
    obsoleted_by: str | None = None
    due_at: datetime | None = None
    due_after_opening: timedelta | None = None  # due this long after it opened

    def __str__(self) -> str:
        return self.category


SCENARIOS = (
    Scenario(
        "ready_to_schedule",
        # The owner set in taskplanner for the candidate's stage (Phone Screen) beats the
        # coordinator the ATS gives the candidate (SPEC §3).
        assignee=PIA,
        before=deliver(job(), candidate(coordinator=CARL)),
        opens=deliver(application(stage="s-phone", updated=10)),
        opened_by="event:application_entered_stage",
        completes=deliver(schedule(updated=20)),
        completed_by="event:schedule_created",
        obsoletes=deliver(application(stage="s-offer", updated=20)),
        obsoleted_by="event:application_left_stage",
        due_after_opening=timedelta(days=2),  # [rules] schedule_within's default
    ),
    Scenario(
        "schedule_cancelled",
        assignee=PIA,
        before=deliver(job(), candidate(coordinator=CARL), application(), schedule()),
        opens=deliver(schedule(status=sn.ScheduleStatus.CANCELLED, updated=10)),
        opened_by="event:schedule_cancelled",
        completes=deliver(schedule("i2", event_id="ev2", updated=20)),
        completed_by="event:schedule_created",
        obsoletes=deliver(application(stage="s-onsite", updated=20)),
        obsoleted_by="event:application_left_stage",
    ),
    Scenario(
        "interviewer_declined",
        assignee=PIA,
        before=deliver(*scheduled_world(candidate_coordinator=CARL)),
        opens=deliver(interview_event(updated=10, interviewer_response=DECLINED)),
        opened_by="event:attendee_responded",
        completes=deliver(interview_event(updated=20, interviewer=IRIS)),  # swapped
        completed_by="event:attendee_removed",
        obsoletes=deliver(schedule(status=sn.ScheduleStatus.CANCELLED, updated=20)),
        obsoleted_by="event:schedule_cancelled",
        due_at=schedule().starts_at,
    ),
    Scenario(
        "room_declined",
        assignee=PIA,
        before=deliver(*scheduled_world(candidate_coordinator=CARL)),
        opens=deliver(interview_event(updated=10, room_response=DECLINED)),
        opened_by="event:attendee_responded",
        completes=deliver(interview_event(updated=20, room=ROOM_2)),  # swapped
        completed_by="event:attendee_removed",
        obsoletes=deliver(interview_event(updated=20, status=sn.EventStatus.CANCELLED)),
        obsoleted_by="event:schedule_cancelled",
        due_at=schedule().starts_at,
    ),
    Scenario(
        "candidate_declined",
        assignee=PIA,
        before=deliver(*scheduled_world(candidate_coordinator=CARL)),
        opens=deliver(interview_event(updated=10, candidate_response=DECLINED)),
        opened_by="event:attendee_responded",
        completes=deliver(interview_event(updated=20, candidate_response=ACCEPTED)),
        completed_by="event:attendee_responded",
        obsoletes=deliver(application(status=REJECTED, updated=20)),
        obsoleted_by="event:application_closed",
        due_at=schedule().starts_at,
    ),
    Scenario(
        "new_job",
        assignee=CORA,  # the job coordinator
        before=nothing,
        opens=deliver(job()),
        opened_by="event:job_created",
        completes=enable_stage("s-review"),
        completed_by="event:stage_scheduling_enabled",
        obsoletes=deliver(job(status=CLOSED, updated=20)),
        obsoleted_by="event:job_closed",
    ),
    Scenario(
        "new_stage",
        assignee=CORA,
        before=deliver(job()),
        opens=deliver(job(updated=10, stages=(*STAGES, TAKE_HOME))),
        opened_by="event:stage_created",
        completes=enable_stage("s-take"),
        completed_by="event:stage_scheduling_enabled",
        obsoletes=deliver(job(updated=20)),  # the stage is gone again
        obsoleted_by="event:stage_removed",
    ),
    Scenario(
        "new_interview",
        assignee=CORA,
        before=deliver(job()),
        opens=deliver(job(updated=10, stages=(*STAGES[:2], ONSITE_WITH_DESIGN, STAGES[3]))),
        opened_by="event:interview_created",
        completes=set_template("s-onsite", "k-design"),
        completed_by="event:interview_template_set",
        obsoletes=deliver(job(updated=20)),  # the interview is gone again
        obsoleted_by="event:interview_removed",
    ),
    Scenario(
        "broken_integration",
        assignee=ADA,  # the account owner
        before=nothing,
        opens=lambda pipeline, clock: integration_fails(pipeline),
        opened_by="event:integration_failed",
        completes=lambda pipeline, clock: integration_syncs(pipeline),
        completed_by="event:integration_recovered",
        obsoletes=lambda pipeline, clock: integrations_configured(pipeline, ["google"]),
        obsoleted_by="event:integration_removed",
    ),
    Scenario(
        "pending_evaluation",
        assignee=PIA,  # the owner of the interview's stage (Phone Screen)
        before=deliver(*scheduled_world(candidate_coordinator=CARL, starts=PAST_INTERVIEW)),
        opens=sweep_after(timedelta(hours=3)),  # the interview ended 25 h before
        opened_by="sweep",
        completes=deliver(scorecard(updated=20)),
        completed_by="event:scorecard_submitted",
        obsoletes=deliver(application(status=REJECTED, updated=20)),
        obsoleted_by="event:application_closed",
        due_at=PAST_INTERVIEW + timedelta(hours=1) + timedelta(hours=24),
    ),
    Scenario(
        "inactive_candidate",
        assignee=RITA,  # the owner of Application Review
        before=deliver(job(), candidate(coordinator=CARL), application(stage="s-review")),
        opens=sweep_after(timedelta(days=15)),
        opened_by="sweep",
        completes=deliver(application(stage="s-phone", updated=20)),
        completed_by="event:application_left_stage",
        obsoletes=None,
        due_at=at(1) + timedelta(days=15),
    ),
    Scenario(
        "job_not_live",
        assignee=CORA,
        before=deliver(job(published=False)),
        opens=sweep_after(timedelta(hours=1)),  # 25 h after the job was created
        opened_by="sweep",
        completes=deliver(job(published=True, updated=20)),
        completed_by="event:job_published",
        obsoletes=deliver(job(published=False, status=CLOSED, updated=20)),
        obsoleted_by="event:job_closed",
        due_at=at(0) + timedelta(hours=24),
    ),
)

WITH_OBSOLETE = [s for s in SCENARIOS if s.obsoletes is not None]
DELIVERED = [s for s in SCENARIOS if isinstance(s.opens, Deliver)]


def open_the_task(scenario: Scenario, pipeline: Pipeline, clock: FrozenClock) -> None:
    scenario.before(pipeline, clock)
    assert tasks(pipeline.db, scenario.category) == [], "opened before its transition"
    scenario.opens(pipeline, clock)


def test_every_category_has_a_scenario() -> None:
    assert sorted(s.category for s in SCENARIOS) == sorted(CATEGORY_NAMES)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_transition_opens_one_task_for_the_right_person(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    open_the_task(scenario, pipeline, clock)

    task = only_task(pipeline.db, scenario.category)
    assert task.status == "open"
    assert task.assignee == scenario.assignee
    assert task.recommended_action == CATEGORY_BY_NAME[scenario.category].recommended_action
    assert task.created_at == clock()
    if scenario.due_after_opening is not None:
        assert task.due_at == task.created_at + scenario.due_after_opening
    else:
        assert task.due_at == scenario.due_at
    assert task.resolution is None and task.completed_at is None
    assert history(pipeline.db, task.id) == [
        Entry("opened", scenario.opened_by, f"opened for {scenario.assignee}")
    ]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_replaying_the_transition_opens_nothing_new(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    open_the_task(scenario, pipeline, clock)
    first = only_task(pipeline.db, scenario.category)

    scenario.opens(pipeline, clock)
    scenario.opens(pipeline, clock)

    again = only_task(pipeline.db, scenario.category)
    assert (again.id, again.status) == (first.id, "open")
    assert [e.action for e in history(pipeline.db, first.id)] == ["opened"]


@pytest.mark.parametrize("scenario", DELIVERED, ids=str)
def test_duplicate_snapshot_in_one_delivery_opens_one_task(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    scenario.before(pipeline, clock)
    assert isinstance(scenario.opens, Deliver)
    twice = scenario.opens.snapshots * 2
    pipeline.ingest_now(list(twice))

    assert len(open_tasks(pipeline.db, scenario.category)) == 1


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_completing_event_closes_the_task_with_action_taken(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    open_the_task(scenario, pipeline, clock)
    clock.advance(timedelta(minutes=5))

    scenario.completes(pipeline, clock)

    task = only_task(pipeline.db, scenario.category)
    assert (task.status, task.resolution) == ("completed", "action_taken")
    assert task.completed_by is None
    assert task.completed_at == clock()
    assert task.completion_reason
    *_, last = history(pipeline.db, task.id)
    assert last == Entry(
        "completed", scenario.completed_by, f"action_taken: {task.completion_reason}"
    )


@pytest.mark.parametrize("scenario", WITH_OBSOLETE, ids=str)
def test_obsoleting_event_closes_the_task_as_obsolete(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    open_the_task(scenario, pipeline, clock)
    assert scenario.obsoletes is not None

    scenario.obsoletes(pipeline, clock)

    task = only_task(pipeline.db, scenario.category)
    assert (task.status, task.resolution, task.completed_by) == ("completed", "obsolete", None)
    assert [e.action for e in history(pipeline.db, task.id)] == ["opened", "completed"]
    *_, last = history(pipeline.db, task.id)
    assert last == Entry("completed", scenario.obsoleted_by, f"obsolete: {task.completion_reason}")


def test_inactive_candidate_has_no_obsoleting_event() -> None:
    # A decision on the candidate is what the task asked for (SPEC §2: "—").
    assert CATEGORY_BY_NAME["inactive_candidate"].obsolete_on == ()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_task_completed_by_hand_records_who_and_is_not_reopened(
    scenario: Scenario, pipeline: Pipeline, clock: FrozenClock
) -> None:
    open_the_task(scenario, pipeline, clock)
    task = only_task(pipeline.db, scenario.category)

    complete_by_hand(pipeline, task.id, by="Sam@Acme.example")  # covering for the assignee
    scenario.opens(pipeline, clock)  # the same transition again (replay, next sweep)

    done = only_task(pipeline.db, scenario.category)
    assert (done.status, done.resolution) == ("completed", "manual")
    assert done.completed_by == "sam@acme.example"
    assert done.assignee == scenario.assignee  # covering does not take the task over
    assert history(pipeline.db, task.id)[1:] == [
        Entry("completed", "sam@acme.example", "manual: completed by sam@acme.example")
    ]
    with pytest.raises(TaskAlreadyCompleted):
        complete_by_hand(pipeline, task.id, by=CORA)


# --- ready_to_schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [sn.ApplicationStatus.REJECTED, sn.ApplicationStatus.HIRED, sn.ApplicationStatus.WITHDRAWN],
)
def test_closing_the_application_obsoletes_ready_to_schedule(
    pipeline: Pipeline, status: sn.ApplicationStatus
) -> None:
    pipeline.ingest_now([job(), candidate(), application()])
    pipeline.ingest_now([application(status=status, updated=5)])

    task = only_task(pipeline.db, "ready_to_schedule")
    assert (task.resolution, task.completion_reason) == (
        "obsolete",
        f"the application was {status}",
    )


def test_deleting_the_application_obsoletes_its_tasks(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    deletion = sn.Deletion(sn.EntityKind.APPLICATION, "a1", at(20))
    pipeline.ingest_now([deletion])

    assert open_tasks(pipeline.db, "interviewer_declined") == []
    assert only_task(pipeline.db, "interviewer_declined").resolution == "obsolete"


def test_entering_a_stage_not_enabled_for_scheduling_opens_nothing(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-review")])

    assert open_tasks(pipeline.db, "ready_to_schedule") == []


def test_stage_enabled_in_job_setup_opens_ready_to_schedule_on_entry(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-review")])
    set_up_stage(pipeline, "s-offer", scheduling_enabled=True)

    pipeline.ingest_now([application(stage="s-offer", updated=5)])

    assert [t.stage_id for t in open_tasks(pipeline.db, "ready_to_schedule")] == ["s-offer"]


def test_enabling_a_stage_makes_candidates_already_there_ready_to_schedule(
    pipeline: Pipeline,
) -> None:
    # Three candidates sit in Offer (not enabled by default); one is already scheduled there.
    pipeline.ingest_now(
        [
            job(),
            candidate(),
            application("a1", stage="s-offer"),
            application("a2", stage="s-offer"),
            application("a3", stage="s-offer"),
            application("a4", stage="s-review"),
            schedule("i3", app_id="a3", stage="s-offer", kind=None),
        ]
    )
    assert open_tasks(pipeline.db, "ready_to_schedule") == []

    set_up_stage(pipeline, "s-offer", scheduling_enabled=True)

    ready = open_tasks(pipeline.db, "ready_to_schedule")
    assert sorted((t.application_id, t.stage_id) for t in ready) == [
        ("a1", "s-offer"),
        ("a2", "s-offer"),
    ]
    # Saving the set-up again changes nothing: they are ready already.
    set_up_stage(pipeline, "s-offer", scheduling_enabled=True)
    assert len(open_tasks(pipeline.db, "ready_to_schedule")) == 2


def test_stage_disabled_in_job_setup_overrides_the_organisation_default(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), candidate()])
    set_up_stage(pipeline, "s-phone", scheduling_enabled=False)

    pipeline.ingest_now([application(stage="s-phone")])

    assert open_tasks(pipeline.db, "ready_to_schedule") == []


def test_entering_the_stage_again_opens_a_fresh_ready_to_schedule(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-phone", updated=1)])
    pipeline.ingest_now([application(stage="s-review", updated=5)])
    pipeline.ingest_now([application(stage="s-phone", updated=10)])

    found = tasks(pipeline.db, "ready_to_schedule")
    assert [(t.stage_id, t.status, t.resolution) for t in found] == [
        ("s-phone", "completed", "obsolete"),
        ("s-phone", "open", None),
    ]


def test_later_report_of_the_same_stage_entry_opens_nothing(pipeline: Pipeline) -> None:
    # A poll that says the same entry with other details is not a second entry.
    pipeline.ingest_now([job(), candidate(), application(stage="s-phone", updated=1)])
    with_url = replace(application(stage="s-phone", updated=9), url="https://ats.example/a1")
    pipeline.ingest_now([with_url])

    assert len(tasks(pipeline.db, "ready_to_schedule")) == 1


# --- schedule_cancelled ------------------------------------------------------------------


def test_deleted_ats_interview_opens_schedule_cancelled(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule()])

    pipeline.ingest_now([sn.Deletion(sn.EntityKind.SCHEDULE, "i1", at(10))])

    assert only_task(pipeline.db, "schedule_cancelled").schedule_id == "i1"


def test_every_calendar_event_cancelled_opens_schedule_cancelled(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())

    pipeline.ingest_now([interview_event(updated=10, status=sn.EventStatus.CANCELLED)])

    task = only_task(pipeline.db, "schedule_cancelled")
    assert (task.status, task.schedule_id, task.application_id) == ("open", "i1", "a1")


def test_deleted_calendar_event_opens_schedule_cancelled(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())

    gone = sn.Deletion(sn.EntityKind.CALENDAR_EVENT, f"{IVAN}/ev1", at(10), connector="google")
    pipeline.ingest_now([gone])

    assert only_task(pipeline.db, "schedule_cancelled").status == "open"


def test_cancelling_the_interview_of_a_rejected_candidate_opens_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule()])
    pipeline.ingest_now([application(status=REJECTED, updated=5)])

    pipeline.ingest_now([schedule(status=sn.ScheduleStatus.CANCELLED, updated=10)])

    assert tasks(pipeline.db, "schedule_cancelled") == []


def test_rejecting_the_candidate_obsoletes_schedule_cancelled(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule()])
    pipeline.ingest_now([schedule(status=sn.ScheduleStatus.CANCELLED, updated=10)])

    pipeline.ingest_now([application(status=REJECTED, updated=20)])

    assert only_task(pipeline.db, "schedule_cancelled").resolution == "obsolete"


# --- the three declines -------------------------------------------------------------------


def test_interviewer_accepting_again_completes_interviewer_declined_task(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])

    pipeline.ingest_now([interview_event(updated=20, interviewer_response=ACCEPTED)])

    task = only_task(pipeline.db, "interviewer_declined")
    assert (task.resolution, task.attendee) == ("action_taken", IVAN)
    assert task.completion_reason == "the interviewer accepted"


def test_interview_moved_to_a_time_the_interviewer_accepts_completes_the_decline(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])

    later = schedule().starts_at + timedelta(days=1)  # type: ignore[operator]
    pipeline.ingest_now([interview_event(updated=20, starts=later)])  # accepted at the new time

    assert only_task(pipeline.db, "interviewer_declined").resolution == "action_taken"


def test_ats_and_calendar_reporting_the_same_decline_open_one_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    declined = (sn.InterviewerSnapshot(IVAN, DECLINED, "Ivan"),)

    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    pipeline.ingest_now([schedule(updated=11, interviewers=declined)])

    task = only_task(pipeline.db, "interviewer_declined")
    assert task.event_id == f"google:{IVAN}/ev1"


def test_same_decline_from_a_second_source_after_a_hand_completion_opens_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    complete_by_hand(pipeline, only_task(pipeline.db, "interviewer_declined").id, by=CORA)

    # The ATS's own record of that decline (minute 11) arrives after Cora dealt with it.
    declined = (sn.InterviewerSnapshot(IVAN, DECLINED, "Ivan"),)
    pipeline.ingest_now([schedule(updated=11, interviewers=declined)])

    assert [(t.status, t.resolution) for t in tasks(pipeline.db, "interviewer_declined")] == [
        ("completed", "manual")
    ]


def test_declining_again_after_accepting_opens_a_new_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    pipeline.ingest_now([interview_event(updated=20, interviewer_response=ACCEPTED)])

    pipeline.ingest_now([interview_event(updated=30, interviewer_response=DECLINED)])

    assert [(t.status, t.resolution) for t in tasks(pipeline.db, "interviewer_declined")] == [
        ("completed", "action_taken"),
        ("open", None),
    ]


def test_interviewer_removed_from_the_ats_interview_completes_the_decline(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule()])
    declined = (sn.InterviewerSnapshot(IVAN, DECLINED, "Ivan"),)
    pipeline.ingest_now([schedule(updated=10, interviewers=declined)])
    assert only_task(pipeline.db, "interviewer_declined").title.startswith("Ivan (interviewer)")

    swapped = (sn.InterviewerSnapshot(IRIS, ACCEPTED, "Iris"),)
    pipeline.ingest_now([schedule(updated=20, interviewers=swapped)])

    task = only_task(pipeline.db, "interviewer_declined")
    assert (task.resolution, task.completion_reason) == (
        "action_taken",
        "the interviewer was replaced",
    )


def test_decline_of_an_interview_that_already_happened_opens_nothing(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world(starts=PAST_INTERVIEW))

    pipeline.ingest_now(
        [
            interview_event(
                updated=10,
                starts=PAST_INTERVIEW,
                interviewer_response=DECLINED,
                room_response=DECLINED,
                candidate_response=DECLINED,
            )
        ]
    )

    for category in ("interviewer_declined", "room_declined", "candidate_declined"):
        assert tasks(pipeline.db, category) == []


def test_room_swap_completes_room_declined_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, room_response=DECLINED)])
    assert only_task(pipeline.db, "room_declined").attendee == ROOM

    pipeline.ingest_now([interview_event(updated=20, room=ROOM_2)])

    task = only_task(pipeline.db, "room_declined")
    assert (task.resolution, task.completion_reason) == ("action_taken", "the room was replaced")
    assert open_tasks(pipeline.db, "interviewer_declined") == []


def test_room_accepting_completes_room_declined_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, room_response=DECLINED)])

    pipeline.ingest_now([interview_event(updated=20, room_response=ACCEPTED)])

    assert only_task(pipeline.db, "room_declined").resolution == "action_taken"


def test_room_declining_at_creation_opens_room_declined(pipeline: Pipeline) -> None:
    # Rooms decline the moment the event is created when they are already booked.
    pipeline.ingest_now([job(), candidate(), application(), schedule()])

    pipeline.ingest_now([interview_event(updated=3, room_response=DECLINED)])

    assert only_task(pipeline.db, "room_declined").status == "open"


def test_declined_event_arriving_before_its_ats_interview_opens_on_link(
    pipeline: Pipeline,
) -> None:
    # The calendar connector can be faster than the ATS poll.
    pipeline.ingest_now([job(), candidate(), application()])
    pipeline.ingest_now([interview_event(updated=3, room_response=DECLINED)])
    assert tasks(pipeline.db, "room_declined") == []

    pipeline.ingest_now([schedule(updated=4)])

    assert only_task(pipeline.db, "room_declined").status == "open"


def test_cancelling_the_schedule_completes_candidate_declined(pipeline: Pipeline) -> None:
    # The recommended action may be to cancel: that is the action taken.
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, candidate_response=DECLINED)])

    pipeline.ingest_now([schedule(status=sn.ScheduleStatus.CANCELLED, updated=20)])

    assert only_task(pipeline.db, "candidate_declined").resolution == "action_taken"


def test_candidate_accepting_after_a_move_completes_candidate_declined(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, candidate_response=DECLINED)])
    later = schedule().starts_at + timedelta(days=2)  # type: ignore[operator]

    pipeline.ingest_now([schedule(updated=15, starts=later)])
    pipeline.ingest_now([interview_event(updated=20, starts=later)])

    assert only_task(pipeline.db, "candidate_declined").resolution == "action_taken"


def test_candidate_removed_from_the_event_does_not_complete_candidate_declined(
    pipeline: Pipeline,
) -> None:
    # Taking the candidate off the invite is not a follow-up with them.
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=10, candidate_response=DECLINED)])
    event = interview_event(updated=20)
    without_candidate = tuple(a for a in event.attendees if a.email != CANDIDATE_EMAIL)
    pipeline.ingest_now([replace(event, attendees=without_candidate)])

    assert only_task(pipeline.db, "candidate_declined").status == "open"


# --- job set-up categories ----------------------------------------------------------------


def test_stages_and_interviews_of_a_new_job_open_only_new_job(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job()])

    assert [t.category for t in open_tasks(pipeline.db)] == ["new_job"]


def test_new_stage_enabled_by_organisation_default_opens_no_new_stage(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job()])
    final = stage("s-final", "Onsite", 5)  # a second stage named like a scheduling stage

    pipeline.ingest_now([job(updated=10, stages=(*STAGES, final))])

    assert tasks(pipeline.db, "new_stage") == []


def test_closing_the_job_obsoletes_every_set_up_task(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    pipeline.ingest_now([job(published=False)])
    stages = (*STAGES[:2], ONSITE_WITH_DESIGN, STAGES[3], TAKE_HOME)
    pipeline.ingest_now([job(updated=10, published=False, stages=stages)])
    clock.advance(timedelta(hours=1))
    pipeline.sweep_now()
    categories = ["job_not_live", "new_interview", "new_job", "new_stage"]
    assert sorted(t.category for t in open_tasks(pipeline.db)) == categories

    pipeline.ingest_now([job(updated=20, status=CLOSED, published=False, stages=stages)])

    assert open_tasks(pipeline.db) == []
    assert {t.resolution for t in tasks(pipeline.db)} == {"obsolete"}


def test_deleting_the_job_obsoletes_new_job(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job()])

    pipeline.ingest_now([sn.Deletion(sn.EntityKind.JOB, "j1", at(10))])

    assert only_task(pipeline.db, "new_job").resolution == "obsolete"


def test_removing_the_stage_obsoletes_its_new_interview_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job()])
    pipeline.ingest_now([job(updated=10, stages=(*STAGES[:2], ONSITE_WITH_DESIGN, STAGES[3]))])

    pipeline.ingest_now([job(updated=20, stages=(*STAGES[:2], STAGES[3]))])

    task = only_task(pipeline.db, "new_interview")
    assert (task.resolution, task.completion_reason) == ("obsolete", "the stage was removed")


def test_blank_template_does_not_complete_new_interview(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job()])
    pipeline.ingest_now([job(updated=10, stages=(*STAGES[:2], ONSITE_WITH_DESIGN, STAGES[3]))])

    set_up_stage(pipeline, "s-onsite", interview_templates={"k-design": "  "})

    assert only_task(pipeline.db, "new_interview").status == "open"


def test_enabling_a_stage_completes_new_job_and_that_stages_new_stage_only(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job()])
    other = stage("s-ref", "Reference check", 5)
    pipeline.ingest_now([job(updated=10, stages=(*STAGES, TAKE_HOME, other))])

    set_up_stage(pipeline, "s-take", scheduling_enabled=True)

    assert only_task(pipeline.db, "new_job").resolution == "action_taken"
    assert [t.stage_id for t in open_tasks(pipeline.db, "new_stage")] == ["s-ref"]


# --- broken_integration -------------------------------------------------------------------


def test_failures_below_the_threshold_open_no_broken_integration(pipeline: Pipeline) -> None:
    for _ in range(2):
        integration_fails(pipeline, error="503 Service Unavailable", fatal=False, threshold=3)
    assert tasks(pipeline.db, "broken_integration") == []

    integration_fails(pipeline, error="503 Service Unavailable", fatal=False, threshold=3)

    task = only_task(pipeline.db, "broken_integration")
    assert (task.integration, task.assignee, task.detail) == (
        "greenhouse",
        ADA,
        "503 Service Unavailable",
    )


def test_the_same_failure_event_handled_twice_opens_one_task(pipeline: Pipeline) -> None:
    with transaction(pipeline.db) as session:
        events = health.record_failure(
            session, "greenhouse", "401", pipeline.clock(), fatal=True, threshold=3
        )
        pipeline.handle(session, events)
        pipeline.handle(session, events)

    assert len(tasks(pipeline.db, "broken_integration")) == 1


def test_integration_breaking_again_after_recovery_opens_a_new_task(pipeline: Pipeline) -> None:
    integration_fails(pipeline)
    integration_syncs(pipeline)

    integration_fails(pipeline)

    found = tasks(pipeline.db, "broken_integration")
    assert [(t.status, t.resolution) for t in found] == [
        ("completed", "action_taken"),
        ("open", None),
    ]


def test_a_configured_integration_keeps_its_broken_integration_task(pipeline: Pipeline) -> None:
    integration_fails(pipeline)

    integrations_configured(pipeline, ["greenhouse", "google"])

    assert only_task(pipeline.db, "broken_integration").status == "open"
