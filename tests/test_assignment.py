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
    T0,
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

CONFIG, PAGE, ATS, DEFAULT = asg.Source.CONFIG, asg.Source.PAGE, asg.Source.ATS, asg.Source.DEFAULT
KNOWN = asg.People(config_roles=rules().people_roles)


def facts(**kw: object) -> asg.OwnerFacts:
    return asg.OwnerFacts(account_owner=ADA, **kw)  # type: ignore[arg-type]


def test_job_coordinator_is_the_ats_coordinator() -> None:
    found = asg.job_coordinator(facts(job_ats_coordinator=CORA, job_ats_recruiter=SAM), KNOWN)
    assert found == asg.Choice(CORA, ATS)


def test_job_coordinator_falls_back_to_the_recruiter() -> None:
    assert asg.job_coordinator(facts(job_ats_recruiter=SAM), KNOWN) == asg.Choice(SAM, ATS)


def test_hiring_manager_cannot_be_job_coordinator() -> None:
    found = asg.job_coordinator(facts(job_ats_coordinator=HANK, job_ats_recruiter=SAM), KNOWN)
    assert found == asg.Choice(SAM, ATS)
    assert asg.job_coordinator(facts(job_ats_coordinator=HANK), KNOWN) == asg.Choice(ADA, DEFAULT)


def test_interviewer_cannot_be_job_coordinator_whether_the_config_or_the_ats_says_so() -> None:
    ivy = "ivy@acme.example"
    by_config = asg.People(config_roles={ivy: "interviewer"})
    by_ats = asg.People(ats_roles={ivy: "interviewer"})
    for people in (by_config, by_ats):
        assert asg.job_coordinator(facts(job_ats_coordinator=ivy), people).email == ADA


def test_the_configurations_role_wins_over_the_ats_role() -> None:
    people = asg.People(config_roles={HANK: "recruiter"}, ats_roles={HANK: "hiring_manager"})
    assert asg.job_coordinator(facts(job_ats_coordinator=HANK), people) == asg.Choice(HANK, ATS)


def test_people_the_configuration_does_not_name_may_coordinate() -> None:
    found = asg.job_coordinator(facts(job_ats_coordinator="Newbie@Acme.example"), KNOWN)
    assert found.email == "newbie@acme.example"


def test_job_coordinator_set_in_taskplanner_wins_over_the_ats() -> None:
    named = facts(job_coordinator_set=asg.Choice(OLGA, PAGE), job_ats_coordinator=CORA)
    assert asg.job_coordinator(named, KNOWN) == asg.Choice(OLGA, PAGE)


@pytest.mark.parametrize("role", ["coordinator", "recruiter", "admin"])
def test_recruiters_coordinators_and_admins_may_coordinate(role: str) -> None:
    assert rules(people_roles={"x@acme.example": role}).may_coordinate("X@acme.example")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("hiring_manager", True), ("recruiter", True), ("admin", True), ("interviewer", False)],
)
def test_who_may_own_a_stage(role: str, allowed: bool) -> None:
    assert asg.may_hold(asg.Post.STAGE_OWNER, role) is allowed


def test_stage_owner_is_the_configured_owner_of_that_stage_name() -> None:
    org = stage_owner_rules()
    assert org.job("j1").stage_owner("phone  SCREEN") == PIA  # case and spaces fold
    assert org.job("j1").stage_owner("Onsite") is None
    assert org.job("j2").stage_owner("Phone Screen") is None


def test_a_stage_without_an_owner_set_is_owned_by_the_job_coordinator() -> None:
    named = facts(stage_owner_set=asg.Choice(PIA, CONFIG), job_ats_coordinator=CORA)
    assert asg.stage_owner(named, KNOWN) == asg.Choice(PIA, CONFIG)
    assert asg.stage_owner(facts(job_ats_coordinator=CORA), KNOWN) == asg.Choice(CORA, DEFAULT)


# The ownership order for the coordinator for the candidate, one rung at a time: each case
# removes what wins in the case before it.
EVERYONE = dict(
    stage_owner_set=asg.Choice(PIA, PAGE),
    candidate_ats_coordinator=CARL,
    job_coordinator_set=asg.Choice(OLGA, CONFIG),
    job_ats_coordinator=CORA,
    job_ats_recruiter=SAM,
)


@pytest.mark.parametrize(
    ("changes", "expected", "rung"),
    [
        ({}, PIA, "stage owner set in taskplanner"),
        ({"stage_owner_set": None}, CARL, "the candidate's coordinator in the ATS"),
        (
            {"stage_owner_set": None, "candidate_ats_coordinator": CORA},
            OLGA,
            "job coordinator set in taskplanner",
        ),
        (
            {
                "stage_owner_set": None,
                "candidate_ats_coordinator": CORA,
                "job_coordinator_set": None,
            },
            CORA,
            "the candidate's coordinator in the ATS",
        ),
        (
            {
                "stage_owner_set": None,
                "candidate_ats_coordinator": None,
                "job_coordinator_set": None,
            },
            CORA,
            "the job's coordinator in the ATS",
        ),
        (
            {
                "stage_owner_set": None,
                "candidate_ats_coordinator": None,
                "job_coordinator_set": None,
                "job_ats_coordinator": None,
            },
            SAM,
            "the job's recruiter",
        ),
        ({k: None for k in EVERYONE}, ADA, "the account owner"),
    ],
)
def test_coordinator_for_the_candidate_follows_the_ownership_order(
    changes: dict[str, object], expected: str, rung: str
) -> None:
    owner = asg.assign(Role.CANDIDATE_COORDINATOR, facts(**{**EVERYONE, **changes}), KNOWN)
    assert (owner.assignee, owner.rung.label) == (expected, rung)


def test_candidates_ats_coordinator_that_copies_the_jobs_loses_to_the_job_coordinator_set() -> (
    None
):
    # Greenhouse copies the job's coordinator onto each application: no choice was made.
    copied = facts(
        candidate_ats_coordinator=CORA,
        job_coordinator_set=asg.Choice(OLGA, CONFIG),
        job_ats_coordinator="Cora@Acme.example",
    )
    assert asg.assign(Role.CANDIDATE_COORDINATOR, copied, KNOWN).assignee == OLGA


def test_stage_owner_tasks_go_to_the_stage_owner_then_the_job_coordinator() -> None:
    owned = facts(**EVERYONE)
    assert asg.assign(Role.STAGE_OWNER, owned, KNOWN).assignee == PIA
    unowned = facts(**{**EVERYONE, "stage_owner_set": None})
    assert asg.assign(Role.STAGE_OWNER, unowned, KNOWN).assignee == OLGA  # never the candidate's
    assert asg.assign(Role.JOB_COORDINATOR, owned, KNOWN).assignee == OLGA
    assert asg.assign(Role.ACCOUNT_OWNER, owned, KNOWN).assignee == ADA


def test_a_rung_whose_role_breaks_the_rules_is_passed_over_and_reported() -> None:
    people = asg.People(ats_roles={PIA: "interviewer"})
    owner = asg.assign(Role.CANDIDATE_COORDINATOR, facts(**EVERYONE), people)
    assert owner.assignee == CARL
    (breach,) = owner.passed_over
    assert (breach.email, breach.post, breach.known_from) == (PIA, asg.Post.STAGE_OWNER, "ats")


def test_people_who_left_are_skipped() -> None:
    people = asg.People(gone=frozenset({PIA, CARL}))
    assert asg.assign(Role.CANDIDATE_COORDINATOR, facts(**EVERYONE), people).assignee == OLGA


def test_an_absent_persons_tasks_go_to_their_stand_in_and_chains_are_followed() -> None:
    away = {
        PIA: asg.Absence(PIA, RITA, "config"),
        RITA: asg.Absence(RITA, COLE, "reassign"),
    }
    owner = asg.assign(Role.CANDIDATE_COORDINATOR, facts(**EVERYONE), asg.People(away=away))
    assert (owner.assignee, owner.handed_over_from) == (COLE, PIA)
    assert owner.why() == f"hand-over from {PIA} for good"


def test_out_of_office_without_a_stand_in_goes_to_the_next_in_the_order() -> None:
    until = T0 + timedelta(days=3)
    away = {PIA: asg.Absence(PIA, None, "out_of_office", until=until)}
    owner = asg.assign(Role.CANDIDATE_COORDINATOR, facts(**EVERYONE), asg.People(away=away))
    assert (owner.assignee, owner.handed_over_from) == (CARL, PIA)
    assert owner.why() == f"{PIA} is out of office until 2026-03-04 09:00 UTC; next in line"


def test_the_account_owner_keeps_what_nobody_else_can_take_even_while_away() -> None:
    away = {ADA: asg.Absence(ADA, None, "out_of_office")}
    owner = asg.assign(Role.ACCOUNT_OWNER, facts(), asg.People(away=away))
    assert (owner.assignee, owner.handed_over_from) == (ADA, None)


def test_a_cycle_of_stand_ins_counts_as_nobody_standing_in() -> None:
    away = {PIA: asg.Absence(PIA, RITA, "reassign"), RITA: asg.Absence(RITA, PIA, "reassign")}
    owner = asg.assign(Role.STAGE_OWNER, facts(**EVERYONE), asg.People(away=away))
    assert (owner.assignee, owner.handed_over_from) == (OLGA, PIA)


def test_hand_over_cycles_are_found() -> None:
    assert asg.handover_cycle({CORA: SAM, SAM: CORA}, CORA) == [CORA, SAM, CORA]
    assert asg.handover_cycle({CORA: CORA}, CORA) == [CORA, CORA]
    assert asg.handover_cycle({CORA: SAM, SAM: PIA}, CORA) is None


def test_one_absence_per_person_the_cli_first_then_the_config_then_out_of_office() -> None:
    now = T0
    absences = [
        asg.Absence(CORA, None, "out_of_office", until=now + timedelta(hours=1)),
        asg.Absence(CORA, SAM, "config"),
        asg.Absence(CORA, PIA, "reassign", until=now - timedelta(hours=1)),  # over
        asg.Absence(RITA, SAM, "reassign", since=now + timedelta(hours=1)),  # not yet
    ]
    assert asg.in_force(absences, now) == {CORA: absences[1]}


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
        "reassigned", ADA, f"{CORA} → {COLE} (hand-over from {CORA} for good)"
    )


def test_handed_over_tasks_follow_when_the_ats_names_another_coordinator(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now(two_candidates())
    hand_over(pipeline, from_=CORA, to=COLE, by=ADA)

    pipeline.ingest_now([job(coordinator=SAM, updated=10)])

    # The task is no longer Cora's, so her hand-over no longer concerns it.
    assert ready(pipeline.db) == {"a1": SAM, "a2": CARL}


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

    # The owner set in taskplanner for the current stage beats the candidate's ATS coordinator.
    assert ready(db) == {"a1": PIA, "a2": PIA}
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

    assert moved == 3
    assert ready(db) == {"a1": PIA, "a2": PIA}
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
