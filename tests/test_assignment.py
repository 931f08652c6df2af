"""Who gets a task (SPEC §3), and how open tasks follow when owners change.

The pure rules of taskplanner.domain.assignment with plain values first, then the same
rules through the real pipeline: overrides from the configuration, fallbacks, owner
changes in the ATS, hand reassignment and the bulk hand-over.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from taskplanner.clock import FrozenClock
from taskplanner.domain import assignment as asg
from taskplanner.domain import snapshots as sn
from taskplanner.domain.categories import Role
from taskplanner.pipeline import Pipeline
from taskplanner.store.database import transaction
from tests.factories import (
    ADA,
    CARL,
    CORA,
    HANK,
    PIA,
    RITA,
    SAM,
    application,
    candidate,
    interview_event,
    job,
    job_override,
    rules,
    schedule,
    stage_owner_rules,
    user,
)
from tests.taskflow import (
    Entry,
    assign_by_hand,
    complete_by_hand,
    hand_over,
    history,
    open_tasks,
    tasks,
)

COLE = "cole@acme.example"  # the coordinator who takes job j1 over
OLGA = "olga@acme.example"  # named as j1's coordinator in the configuration


# --- the pure rules ----------------------------------------------------------------------


def test_job_coordinator_is_the_ats_coordinator() -> None:
    assert asg.job_coordinator(rules(), "j1", CORA, SAM) == CORA


def test_job_coordinator_falls_back_to_the_recruiter() -> None:
    assert asg.job_coordinator(rules(), "j1", None, SAM) == SAM


def test_hiring_manager_cannot_be_job_coordinator() -> None:
    assert asg.job_coordinator(rules(), "j1", HANK, SAM) == SAM
    assert asg.job_coordinator(rules(), "j1", HANK, None) is None


def test_interviewer_cannot_be_job_coordinator() -> None:
    org = rules(people_roles={"ivy@acme.example": "interviewer"})
    assert asg.job_coordinator(org, "j1", "ivy@acme.example", None) is None


def test_people_the_configuration_does_not_name_may_coordinate() -> None:
    assert asg.job_coordinator(rules(), "j1", "Newbie@Acme.example", None) == "newbie@acme.example"


def test_configured_job_coordinator_wins_over_the_ats() -> None:
    org = rules(jobs={"j1": job_override(coordinator="Olga@Acme.example")})
    assert asg.job_coordinator(org, "j1", CORA, SAM) == OLGA
    assert asg.job_coordinator(org, "j2", CORA, SAM) == CORA  # only for its own job


@pytest.mark.parametrize("role", ["coordinator", "recruiter", "admin"])
def test_recruiters_coordinators_and_admins_may_coordinate(role: str) -> None:
    assert rules(people_roles={"x@acme.example": role}).may_coordinate("X@acme.example")


def test_stage_owner_is_the_configured_owner_of_that_stage_name() -> None:
    org = stage_owner_rules()
    assert asg.stage_owner(org, "j1", "phone  SCREEN", CORA) == PIA  # case and spaces fold
    assert asg.stage_owner(org, "j1", "Onsite", CORA) == CORA
    assert asg.stage_owner(org, "j2", "Phone Screen", SAM) == SAM
    assert asg.stage_owner(org, "j1", None, CORA) == CORA


OWNERS = asg.Ownership(
    account_owner=ADA, job_coordinator=CORA, stage_owner=PIA, candidate_coordinator=CARL
)


@pytest.mark.parametrize(
    ("role", "ownership", "expected"),
    [
        (Role.CANDIDATE_COORDINATOR, OWNERS, CARL),
        (Role.CANDIDATE_COORDINATOR, asg.Ownership(ADA, CORA, PIA, None), PIA),
        (Role.CANDIDATE_COORDINATOR, asg.Ownership(ADA, CORA, None, None), CORA),
        (Role.CANDIDATE_COORDINATOR, asg.Ownership(ADA), ADA),
        (Role.STAGE_OWNER, OWNERS, PIA),
        (Role.STAGE_OWNER, asg.Ownership(ADA, CORA, None, CARL), CORA),
        (Role.STAGE_OWNER, asg.Ownership(ADA, None, None, CARL), ADA),
        (Role.JOB_COORDINATOR, OWNERS, CORA),
        (Role.JOB_COORDINATOR, asg.Ownership(ADA, None, PIA, CARL), ADA),
        (Role.ACCOUNT_OWNER, OWNERS, ADA),
    ],
)
def test_resolve_walks_the_chain_of_the_role_down_to_the_account_owner(
    role: Role, ownership: asg.Ownership, expected: str
) -> None:
    assert asg.resolve(role, ownership) == expected


def test_resolve_lowercases() -> None:
    assert asg.resolve(Role.ACCOUNT_OWNER, asg.Ownership("Ada@Acme.Example")) == ADA


def test_stage_inactivity_per_job_override_then_organisation_stages() -> None:
    org = rules(jobs={"j1": job_override(inactivity_after={"phone screen": timedelta(days=3)})})
    assert org.stage_inactivity("j1", "Phone Screen") == timedelta(days=3)
    assert org.stage_inactivity("j2", "Phone Screen") is None  # alerts off
    assert org.stage_inactivity("j1", "application review") == timedelta(days=15)


def test_stage_enabled_by_default_folds_names() -> None:
    assert rules().stage_enabled_by_default(" phone   screen ")
    assert not rules().stage_enabled_by_default("Offer")


# --- through the pipeline ------------------------------------------------------------------


@pytest.fixture
def pipeline(db: Engine, clock: FrozenClock) -> Pipeline:
    return Pipeline(db, rules(), clock)


def assignees(db: Engine, category: str | None = None) -> dict[str, str]:
    return {t.key.split(":", 1)[1]: t.assignee for t in open_tasks(db, category)}


def ready(db: Engine) -> dict[str | None, str]:
    return {t.application_id: t.assignee for t in open_tasks(db, "ready_to_schedule")}


def two_candidates() -> list[sn.Snapshot]:
    """a1 has no coordinator of their own; a2's is Carl."""
    return [
        job(),
        candidate("c1"),
        candidate("c2", name="Ana Lima", email="ana@example.com", coordinator=CARL),
        application("a1", candidate_id="c1"),
        application("a2", candidate_id="c2"),
    ]


def test_replacing_the_job_coordinator_moves_their_open_tasks(pipeline: Pipeline) -> None:
    pipeline.ingest_now(two_candidates())
    assert ready(pipeline.db) == {"a1": CORA, "a2": CARL}
    assert open_tasks(pipeline.db, "new_job")[0].assignee == CORA

    result = pipeline.ingest_now([job(coordinator=COLE, updated=10)])

    assert result.reassigned == 2
    assert ready(pipeline.db) == {"a1": COLE, "a2": CARL}  # Carl's stays with Carl
    new_job = open_tasks(pipeline.db, "new_job")[0]
    assert new_job.assignee == COLE
    assert history(pipeline.db, new_job.id)[-1] == Entry(
        "reassigned", "taskplanner", f"{CORA} → {COLE} (owner changed)"
    )


def test_task_reassigned_by_hand_does_not_move_when_the_owner_changes(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(two_candidates())
    a1 = next(t for t in open_tasks(pipeline.db, "ready_to_schedule") if t.application_id == "a1")
    assign_by_hand(pipeline, a1.id, to="Sam@Acme.example", by=CORA)

    pipeline.ingest_now([job(coordinator=COLE, updated=10)])

    assert ready(pipeline.db) == {"a1": SAM, "a2": CARL}
    assert open_tasks(pipeline.db, "new_job")[0].assignee == COLE
    assert history(pipeline.db, a1.id)[-1] == Entry("reassigned", CORA, f"{CORA} → {SAM} (by hand)")


def test_completed_tasks_keep_their_assignee_when_the_owner_changes(pipeline: Pipeline) -> None:
    pipeline.ingest_now(two_candidates())
    new_job = open_tasks(pipeline.db, "new_job")[0]
    complete_by_hand(pipeline, new_job.id, by=CORA)

    pipeline.ingest_now([job(coordinator=COLE, updated=10)])

    assert tasks(pipeline.db, "new_job")[0].assignee == CORA


def test_candidate_coordinator_set_in_the_ats_takes_the_candidates_tasks(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(two_candidates())

    pipeline.ingest_now([candidate("c1", coordinator=CARL, updated=10)])
    assert ready(pipeline.db) == {"a1": CARL, "a2": CARL}

    pipeline.ingest_now([candidate("c2", name="Ana Lima", email="ana@example.com", updated=10)])
    assert ready(pipeline.db) == {"a1": CARL, "a2": CORA}  # back to the stage owner (JC)


def test_hand_over_moves_everything_of_a_person(pipeline: Pipeline) -> None:
    pipeline.ingest_now(two_candidates())
    pipeline.ingest_now([job("j9", name="Designer", stages=None)])
    done = open_tasks(pipeline.db, "new_job")[1]
    complete_by_hand(pipeline, done.id, by=CORA)
    assert sorted(assignees(pipeline.db).values()) == [CARL, CORA, CORA]

    moved = hand_over(pipeline, from_="Cora@Acme.example", to=COLE, by="Ada@Acme.example")

    assert moved == 2
    assert sorted(assignees(pipeline.db).values()) == [CARL, COLE, COLE]
    assert tasks(pipeline.db, "new_job")[1].assignee == CORA  # completed: history stays true
    a1 = open_tasks(pipeline.db, "ready_to_schedule")[0]
    assert history(pipeline.db, a1.id)[-1] == Entry(
        "reassigned", ADA, f"{CORA} → {COLE} (hand-over)"
    )


def test_handed_over_tasks_stay_when_the_ats_changes_the_coordinator(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(two_candidates())
    hand_over(pipeline, from_=CORA, to=COLE, by=ADA)

    pipeline.ingest_now([job(coordinator=SAM, updated=10)])

    assert ready(pipeline.db) == {"a1": COLE, "a2": CARL}


def test_configured_job_coordinator_wins_over_the_ats_coordinator(
    db: Engine, clock: FrozenClock
) -> None:
    pipeline = Pipeline(db, rules(jobs={"j1": job_override(coordinator=OLGA)}), clock)

    pipeline.ingest_now(two_candidates())

    assert open_tasks(db, "new_job")[0].assignee == OLGA
    assert ready(db) == {"a1": OLGA, "a2": CARL}


def test_configured_stage_owners_win_over_the_job_coordinator(
    db: Engine, clock: FrozenClock
) -> None:
    pipeline = Pipeline(db, stage_owner_rules(), clock)
    pipeline.ingest_now([*two_candidates(), application("a3", candidate_id="c1", stage="s-review")])
    clock.advance(timedelta(days=20))
    pipeline.sweep_now()

    assert ready(db) == {"a1": PIA, "a2": CARL}  # a1: the owner of its current stage
    assert [t.assignee for t in open_tasks(db, "inactive_candidate")] == [RITA]
    assert open_tasks(db, "new_job")[0].assignee == CORA


def test_changed_configuration_moves_open_tasks_on_refresh(db: Engine, clock: FrozenClock) -> None:
    Pipeline(db, rules(), clock).ingest_now(two_candidates())
    assert ready(db) == {"a1": CORA, "a2": CARL}

    # The daemon restarts with Phone Screen owned by Pia and j1 coordinated by Olga.
    owners = job_override(coordinator=OLGA, stage_owners={"Phone Screen": PIA})
    restarted = Pipeline(db, rules(jobs={"j1": owners}), clock)
    with transaction(db) as session:
        moved = restarted.tasks.refresh_assignments(session, everything=True)

    assert moved == 2
    assert ready(db) == {"a1": PIA, "a2": CARL}
    assert open_tasks(db, "new_job")[0].assignee == OLGA


def test_hiring_manager_named_coordinator_in_the_ats_falls_back_to_the_recruiter(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(coordinator=HANK), candidate(), application()])

    assert open_tasks(pipeline.db, "new_job")[0].assignee == SAM
    assert ready(pipeline.db) == {"a1": SAM}


def test_account_owner_is_the_last_fallback_so_no_task_is_unassigned(
    pipeline: Pipeline, clock: FrozenClock
) -> None:
    # Nobody in the job's hiring team may coordinate it.
    pipeline.ingest_now(
        [
            job(coordinator=HANK, recruiter=None, published=False),
            candidate(),
            application("a1"),
            application("a2", stage="s-review", entered=0),
        ]
    )
    clock.advance(timedelta(days=20))
    pipeline.sweep_now()

    found = open_tasks(pipeline.db)
    assert sorted(t.category for t in found) == [
        "inactive_candidate",
        "job_not_live",
        "new_job",
        "ready_to_schedule",
    ]
    assert {t.assignee for t in found} == {ADA}


def test_tasks_opened_before_their_job_arrived_go_to_its_coordinator_when_it_does(
    pipeline: Pipeline,
) -> None:
    # Jobs, applications and calendars come from different poll partitions and sources.
    pipeline.ingest_now([candidate(), application(), schedule()])
    pipeline.ingest_now([interview_event(updated=10, room_response=sn.Response.DECLINED)])
    assert [t.assignee for t in open_tasks(pipeline.db, "room_declined")] == [ADA]

    pipeline.ingest_now([job()])

    assert [t.assignee for t in open_tasks(pipeline.db, "room_declined")] == [CORA]
    assert ready(pipeline.db) == {}  # already scheduled in its stage


def test_candidate_arriving_after_their_application_brings_their_coordinator(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), application()])
    assert ready(pipeline.db) == {"a1": CORA}

    pipeline.ingest_now([candidate(coordinator=CARL)])

    assert ready(pipeline.db) == {"a1": CARL}


def test_rejected_candidates_tasks_are_not_reassigned(pipeline: Pipeline) -> None:
    pipeline.ingest_now(two_candidates())
    pipeline.ingest_now(
        [application("a1", candidate_id="c1", status=sn.ApplicationStatus.REJECTED, updated=5)]
    )

    result = pipeline.ingest_now([job(coordinator=COLE, updated=10)])

    assert result.reassigned == 1  # new_job only
    assert [
        t.assignee for t in tasks(pipeline.db, "ready_to_schedule") if t.application_id == "a1"
    ] == [CORA]


def test_coordinator_who_leaves_hands_their_open_tasks_to_the_next_in_line(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([user(CORA), *two_candidates()])
    a1 = next(t for t in open_tasks(pipeline.db, "ready_to_schedule") if t.application_id == "a1")

    result = pipeline.ingest_now([user(CORA, deactivated=True, updated=10)])

    # Cora was j1's coordinator: its recruiter is next in line until someone names one.
    assert result.reassigned == 2
    assert ready(pipeline.db) == {"a1": SAM, "a2": CARL}
    assert open_tasks(pipeline.db, "new_job")[0].assignee == SAM
    assert history(pipeline.db, a1.id)[-1] == Entry(
        "reassigned", "taskplanner", f"{CORA} → {SAM} (owner changed)"
    )


def test_tasks_opened_after_the_coordinator_left_skip_them(pipeline: Pipeline) -> None:
    pipeline.ingest_now([user(CORA, deactivated=True), job(), candidate(), application()])

    assert ready(pipeline.db) == {"a1": SAM}
    assert open_tasks(pipeline.db, "new_job")[0].assignee == SAM
