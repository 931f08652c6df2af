"""Owners that follow what the admin set up (SPEC §3): the ownership order through the real
pipeline, one rung at a time; job coordinators and stage owners set on the set-up page and
through the API, with where they come from; open tasks that follow a change (and those placed
by hand that do not); and the roles' rules the page, the API and assignment apply.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import OrgRules
from taskplanner.pipeline import Pipeline
from taskplanner.runtime import Runtime
from taskplanner.status import collect_status, render_status
from taskplanner.web.app import create_app
from tests import factories as f
from tests.factories import (
    ADA,
    CARL,
    CORA,
    HANK,
    PIA,
    SAM,
    application,
    candidate,
    job,
    job_override,
    rules,
    stage,
    user,
)
from tests.taskflow import Entry, assign_by_hand, history, open_tasks, set_up_stage
from tests.webapp import TOKEN, make_runtime

OLGA = "olga@acme.example"  # a coordinator chosen in taskplanner
IVY = "ivy@acme.example"  # an interviewer


def ready_assignee(db: Engine) -> str:
    (task,) = open_tasks(db, "ready_to_schedule")
    return task.assignee


# --- the ownership order, rung by rung, through the pipeline ------------------------------


def world(*, candidate_coordinator: str | None, coordinator: str | None, recruiter: str | None):  # type: ignore[no-untyped-def]
    return [
        job(coordinator=coordinator, recruiter=recruiter),
        candidate(coordinator=candidate_coordinator),
        application(stage="s-phone"),
    ]


RUNGS = [
    pytest.param(
        rules(jobs={"j1": job_override(coordinator=OLGA, stage_owners={"Phone Screen": PIA})}),
        world(candidate_coordinator=CARL, coordinator=CORA, recruiter=SAM),
        PIA,
        id="1-stage-owner-set-in-taskplanner",
    ),
    pytest.param(
        rules(jobs={"j1": job_override(coordinator=OLGA)}),
        world(candidate_coordinator=CARL, coordinator=CORA, recruiter=SAM),
        CARL,
        id="2-candidate-coordinator-differs-from-the-jobs",
    ),
    pytest.param(
        rules(jobs={"j1": job_override(coordinator=OLGA)}),
        world(candidate_coordinator=CORA, coordinator=CORA, recruiter=SAM),
        OLGA,
        id="3-job-coordinator-set-beats-the-copy-the-ats-made",
    ),
    pytest.param(
        rules(),
        world(candidate_coordinator=CORA, coordinator=CORA, recruiter=SAM),
        CORA,
        id="4a-candidate-coordinator-copied-from-the-job",
    ),
    pytest.param(
        rules(),
        world(candidate_coordinator=None, coordinator=CORA, recruiter=SAM),
        CORA,
        id="4b-the-jobs-ats-coordinator",
    ),
    pytest.param(
        rules(),
        world(candidate_coordinator=None, coordinator=None, recruiter=SAM),
        SAM,
        id="4c-the-jobs-recruiter",
    ),
    pytest.param(
        rules(),
        world(candidate_coordinator=None, coordinator=None, recruiter=None),
        ADA,
        id="5-the-account-owner",
    ),
]


@pytest.mark.parametrize(("org", "snapshots", "expected"), RUNGS)
def test_coordinator_for_the_candidate_rung_by_rung(
    db: Engine, clock: FrozenClock, org: OrgRules, snapshots: list[sn.Snapshot], expected: str
) -> None:
    Pipeline(db, org, clock).ingest_now(snapshots)

    assert ready_assignee(db) == expected


def test_candidate_coordinator_chosen_in_the_ats_loses_only_to_the_stage_owner_set(
    db: Engine, clock: FrozenClock
) -> None:
    org = rules(jobs={"j1": job_override(coordinator=OLGA)})
    pipeline = Pipeline(db, org, clock)
    pipeline.ingest_now(world(candidate_coordinator=CARL, coordinator=CORA, recruiter=SAM))
    assert ready_assignee(db) == CARL

    set_up_stage(pipeline, "s-phone", owner=PIA)

    assert ready_assignee(db) == PIA


def test_an_ats_only_role_breach_falls_through_to_the_next_person(
    db: Engine, clock: FrozenClock
) -> None:
    # The ATS says Hank is a hiring manager: he may own a stage, never coordinate a job.
    pipeline = Pipeline(db, rules(people_roles={}), clock)
    hank = sn.UserSnapshot("u-hank", HANK, "Hank", f.at(0), role="hiring_manager")
    pipeline.ingest_now([hank, *world(candidate_coordinator=None, coordinator=HANK, recruiter=SAM)])

    assert ready_assignee(db) == SAM
    assert open_tasks(db, "new_job")[0].assignee == SAM


def test_status_lists_an_owner_whose_ats_role_breaks_the_rules(
    db_url: str, clock: FrozenClock
) -> None:
    runtime = make_runtime(db_url, clock)
    try:
        interviewer = sn.UserSnapshot("u-ivy", IVY, "Ivy", f.at(0), role="interviewer")
        runtime.pipeline.ingest_now([interviewer, job(coordinator=IVY), candidate(), application()])
        assert ready_assignee(runtime.db) == SAM  # passed over for the recruiter

        text = render_status(collect_status(runtime), clock())
    finally:
        runtime.close()

    assert "role breaches the ATS reports (passed over in assignment):" in text
    assert (
        f"{IVY} is an interviewer in the ATS but job coordinator of Software Engineer (j1)" in text
    )


# --- the set-up page's API ------------------------------------------------------------------

HANDS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(
        db_url,
        clock,
        tokens=[TOKEN],
        people=[
            {"email": OLGA, "role": "coordinator"},
            {"email": PIA, "role": "recruiter"},
            {"email": HANK, "role": "hiring_manager"},
        ],
        jobs=[{"ats_job_id": "j1", "stage_owners": {"Onsite": PIA}}],
    )
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), headers=HANDS) as client:
        yield client


def two_waiting(runtime: Runtime) -> None:
    """Job j1 (ATS coordinator Cora) with a1 waiting in Phone Screen and a2 in Onsite."""
    runtime.pipeline.ingest_now(
        [
            user(IVY),
            job(),
            candidate("c1"),
            candidate("c2", name="Ana Lima", email="ana@example.com"),
            application("a1", candidate_id="c1", stage="s-phone"),
            application("a2", candidate_id="c2", stage="s-onsite"),
        ]
    )


def assignees(runtime: Runtime) -> dict[str, str]:
    return {
        t.application_id or t.category: t.assignee
        for t in open_tasks(runtime.db)
        if t.category in ("ready_to_schedule", "new_job")
    }


def owners(client: TestClient) -> dict[str, tuple[str, str]]:
    body = client.get("/api/jobs/j1").json()
    out = {"job": (body["coordinator"]["email"], body["coordinator"]["source"])}
    for st in body["stages"]:
        out[st["name"]] = (st["owner"]["email"], st["owner"]["source"])
    return out


def test_job_shows_its_coordinator_and_stage_owners_with_where_they_come_from(
    client: TestClient, runtime: Runtime
) -> None:
    two_waiting(runtime)

    assert owners(client) == {
        "job": (CORA, "ats"),
        "Application Review": (CORA, "default"),
        "Phone Screen": (CORA, "default"),
        "Onsite": (PIA, "config"),
        "Offer": (CORA, "default"),
    }
    assert assignees(runtime) == {"a1": CORA, "a2": PIA, "new_job": CORA}


def test_setting_the_job_coordinator_moves_open_tasks_but_not_those_placed_by_hand(
    client: TestClient, runtime: Runtime
) -> None:
    two_waiting(runtime)
    runtime.pipeline.ingest_now([application("a3", candidate_id="c1", stage="s-phone", updated=2)])
    a3 = next(t for t in open_tasks(runtime.db) if t.application_id == "a3")
    assign_by_hand(runtime.pipeline, a3.id, to=SAM, by=CORA)

    response = client.put("/api/jobs/j1", json={"coordinator": "Olga@Acme.example", "by": ADA})

    assert response.status_code == 200, response.text
    assert response.json()["coordinator"] == {"email": OLGA, "source": "page"}
    assert assignees(runtime) == {"a1": OLGA, "a2": PIA, "a3": SAM, "new_job": OLGA}
    a1 = next(t for t in open_tasks(runtime.db) if t.application_id == "a1")
    assert history(runtime.db, a1.id)[-1] == Entry(
        "reassigned",
        "taskplanner",
        f"{CORA} → {OLGA} (job coordinator set on the set-up page by {ADA})",
    )

    back = client.put("/api/jobs/j1", json={"coordinator": None})

    assert back.json()["coordinator"] == {"email": CORA, "source": "ats"}
    assert assignees(runtime) == {"a1": CORA, "a2": PIA, "a3": SAM, "new_job": CORA}


def test_setting_a_stage_owner_moves_that_stages_open_tasks(
    client: TestClient, runtime: Runtime
) -> None:
    two_waiting(runtime)

    response = client.put("/api/jobs/j1/stages/s-phone", json={"owner": OLGA})

    assert response.status_code == 200, response.text
    assert response.json()["owner"] == {"email": OLGA, "source": "page"}
    assert assignees(runtime) == {"a1": OLGA, "a2": PIA, "new_job": CORA}
    # The page wins over the configuration; null goes back to it.
    client.put("/api/jobs/j1/stages/s-onsite", json={"owner": HANK})
    assert owners(client)["Onsite"] == (HANK, "page")
    assert assignees(runtime)["a2"] == HANK
    client.put("/api/jobs/j1/stages/s-onsite", json={"owner": None})
    assert owners(client)["Onsite"] == (PIA, "config")
    assert assignees(runtime)["a2"] == PIA
    # Leaving "owner" out changes nothing.
    client.put("/api/jobs/j1/stages/s-phone", json={"inactivity_alerts": True})
    assert owners(client)["Phone Screen"] == (OLGA, "page")


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        (
            "/api/jobs/j1",
            {"coordinator": HANK},
            f"{HANK} is a hiring manager in [[people]]; a job coordinator must be a "
            "coordinator, a recruiter or an admin",
        ),
        (
            "/api/jobs/j1/stages/s-phone",
            {"owner": IVY},
            f"{IVY} is an interviewer in the ATS; a stage owner must be a coordinator, a "
            "recruiter, an admin or a hiring manager",
        ),
        ("/api/jobs/j1", {"coordinator": "not an email"}, None),
        ("/api/jobs/j1/stages/s-phone", {"owner": "cora"}, None),
    ],
)
def test_an_owner_the_roles_rules_refuse_is_422_and_changes_nothing(
    client: TestClient, runtime: Runtime, path: str, body: dict[str, str], problem: str | None
) -> None:
    two_waiting(runtime)
    runtime.pipeline.ingest_now([sn.UserSnapshot("u-ivy", IVY, "Ivy", f.at(5), role="interviewer")])

    response = client.put(path, json=body)

    assert response.status_code == 422, response.text
    if problem is not None:
        assert response.json()["detail"] == problem
    assert owners(client)["job"] == (CORA, "ats")
    assert owners(client)["Phone Screen"] == (CORA, "default")
    assert assignees(runtime) == {"a1": CORA, "a2": PIA, "new_job": CORA}


def test_a_hiring_manager_may_own_a_stage(client: TestClient, runtime: Runtime) -> None:
    two_waiting(runtime)

    response = client.put("/api/jobs/j1/stages/s-phone", json={"owner": HANK})

    assert response.status_code == 200, response.text
    assert assignees(runtime)["a1"] == HANK


def test_unknown_job_is_404_when_setting_its_coordinator(client: TestClient) -> None:
    assert client.put("/api/jobs/nope", json={"coordinator": OLGA}).status_code == 404


def test_every_stage_has_an_owner_rejected_and_hired_included(
    client: TestClient, runtime: Runtime
) -> None:
    plan = (
        stage("h-review", "Application Review", 0),
        stage("h-onsite", "Onsite", 1),
        stage("h-hired", "Hired", 2),
        stage("h-rejected", "Rejected", 3),
    )
    runtime.pipeline.ingest_now([job("j1", stages=plan)])
    client.put("/api/jobs/j1/stages/h-hired", json={"owner": SAM})

    found = owners(client)

    assert found["Hired"] == (SAM, "page")
    assert found["Rejected"] == (CORA, "default")
    assert all(email for email, _ in found.values())


# --- the set-up page --------------------------------------------------------------------------


def page_client(runtime: Runtime) -> TestClient:
    """A signed-in browser session on the page (loopback sign-in with the token)."""
    client = TestClient(create_app(runtime))
    form = client.get("/signin")
    assert form.status_code == 200
    response = client.post(
        "/signin",
        data={"email": CORA, "token": TOKEN, "next": "/"},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def csrf(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_set_up_page_shows_owners_and_changing_them_moves_open_tasks(runtime: Runtime) -> None:
    two_waiting(runtime)
    runtime.pipeline.ingest_now([application("a3", candidate_id="c1", stage="s-phone", updated=2)])
    a3 = next(t for t in open_tasks(runtime.db) if t.application_id == "a3")
    assign_by_hand(runtime.pipeline, a3.id, to=CORA, by=CORA)  # Cora keeps this one herself
    with page_client(runtime) as browser:
        page = browser.get("/jobs/j1/setup")
        assert page.status_code == 200
        assert f'data-source="ats">{CORA}</strong> <span class="hint">(from the ATS)' in page.text
        assert f'data-source="config">{PIA}</strong>' in page.text

        saved = browser.post(
            "/jobs/j1/setup",
            data={
                "csrf_token": csrf(page.text),
                "coordinator": OLGA,
                "owner:s-onsite": "",
                "enabled:s-phone": "1",
                "enabled:s-onsite": "1",
            },
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        after = browser.get("/jobs/j1/setup").text

    assert f'data-source="page">{OLGA}</strong> <span class="hint">(set on this page)' in after
    # new_job is done (a stage was enabled); the task Cora placed by hand stays with her.
    assert assignees(runtime) == {"a1": OLGA, "a2": PIA, "a3": CORA}


def test_set_up_page_refuses_an_interviewer_as_stage_owner(runtime: Runtime) -> None:
    two_waiting(runtime)
    runtime.pipeline.ingest_now([sn.UserSnapshot("u-ivy", IVY, "Ivy", f.at(5), role="interviewer")])
    with page_client(runtime) as browser:
        page = browser.get("/jobs/j1/setup")
        refused = browser.post(
            "/jobs/j1/setup",
            data={"csrf_token": csrf(page.text), "coordinator": OLGA, "owner:s-phone": IVY},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )

    assert refused.status_code == 422
    assert f"{IVY} is an interviewer in the ATS; a stage owner must be" in refused.text
    assert assignees(runtime) == {"a1": CORA, "a2": PIA, "new_job": CORA}  # nothing stored


def test_assigning_a_task_to_an_invalid_address_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    two_waiting(runtime)
    task = open_tasks(runtime.db)[0]

    for bad in ("not an email", "cora", "cora@acme", ""):
        response = client.post(f"/api/tasks/{task.id}/assign", json={"assignee": bad})
        assert response.status_code == 422, bad

    assert open_tasks(runtime.db)[0].assignee == task.assignee


def test_the_daemon_warns_once_about_an_owner_whose_ats_role_breaks_the_rules(
    db_url: str, clock: FrozenClock
) -> None:
    from structlog.testing import capture_logs

    from taskplanner.daemon import Daemon

    runtime = make_runtime(db_url, clock)
    try:
        interviewer = sn.UserSnapshot("u-ivy", IVY, "Ivy", f.at(0), role="interviewer")
        runtime.pipeline.ingest_now([interviewer, job(coordinator=IVY)])
        daemon = Daemon(runtime)
        with capture_logs() as logs:
            daemon._sweep()  # what the scheduler runs every minute
            daemon._sweep()
    finally:
        runtime.close()

    warnings = [entry for entry in logs if entry["event"] == "role_breach_in_ats"]
    assert len(warnings) == 1
    assert (warnings[0]["email"], warnings[0]["post"]) == (IVY, "job coordinator")
    assert warnings[0]["log_level"] == "warning"
