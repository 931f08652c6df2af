"""The JSON API as a client sees it: bearer tokens, errors, filters, keyset pagination while
tasks keep arriving, hand completion and reassignment, coordinators and job set-up."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from taskplanner.clock import FrozenClock
from taskplanner.domain.categories import CATEGORY_NAMES
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from tests import factories as f
from tests.webapp import (
    SECOND_TOKEN,
    TOKEN,
    candidates_in_phone_screen,
    make_runtime,
    seed_two_coordinators,
    serve,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC_FIELDS = {
    "id", "category", "title", "recommended_action", "assignee", "status", "resolution",
    "completed_by", "job_id", "stage_id", "application_id", "candidate_id", "schedule_id",
    "event_id", "attendee", "integration", "created_at", "due_at", "completed_at",
}  # fmt: skip
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN, SECOND_TOKEN])
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), headers=AUTH) as client:
        yield client


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["tasks"]]


# --- authentication ---------------------------------------------------------------------------


@sqlite_only
def test_requests_without_a_token_or_with_a_wrong_one_get_401(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            response = anonymous.get("/api/tasks", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in response.text
        assert anonymous.post("/api/tasks/1/complete").status_code == 401
        second = {"Authorization": f"Bearer {SECOND_TOKEN}"}
        assert anonymous.get("/api/tasks", headers=second).status_code == 200


@sqlite_only
def test_a_client_guessing_tokens_is_refused_for_a_while(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as guesser:
        for n in range(20):
            wrong = {"Authorization": f"Bearer guess-{n}"}
            assert guesser.get("/api/tasks", headers=wrong).status_code == 401

        refused = guesser.get("/api/tasks", headers={"Authorization": "Bearer guess-20"})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 300
        # While refused, even the right token tells the guesser nothing.
        assert guesser.get("/api/tasks", headers=AUTH).status_code == 429


@sqlite_only
def test_real_server_checks_tokens_over_http(runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    with serve(create_app(runtime)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/tasks").status_code == 401
        assert http.get("/api/tasks", headers={"Authorization": "Bearer x"}).status_code == 401
        response = http.get("/api/tasks", params={"assignee": f.CORA}, headers=AUTH)
        assert response.status_code == 200
        assert {t["assignee"] for t in response.json()["tasks"]} == {f.CORA}


@sqlite_only
def test_without_tokens_only_loopback_clients_are_served(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(db_url, clock)  # no api_tokens_env
    seed_two_coordinators(runtime, per_person=1)
    app = create_app(runtime)
    try:
        with serve(app) as base:  # a real TCP client on 127.0.0.1
            response = httpx.get(f"{base}/api/tasks")
            assert response.status_code == 200
            assert response.json()["tasks"]
            completed = httpx.post(f"{base}/api/tasks/1/complete")
            assert completed.json()["completed_by"] == "local"
        with TestClient(app) as remote:  # its peer is not a loopback address
            response = remote.get("/api/tasks")
            assert response.status_code == 403
            assert "loopback" in response.json()["detail"]
            assert remote.get("/", follow_redirects=False).status_code == 303
            assert remote.get("/signin").status_code == 403
    finally:
        runtime.close()


# --- errors ------------------------------------------------------------------------------------


@sqlite_only
def test_unknown_task_is_404(client: TestClient) -> None:
    assert client.get("/api/tasks/999").status_code == 404
    assert client.post("/api/tasks/999/complete").status_code == 404
    response = client.post("/api/tasks/999/assign", json={"assignee": f.SAM})
    assert response.status_code == 404
    assert response.json() == {"detail": "no task 999"}


def test_completing_records_who_and_a_second_completion_is_409(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = ids(client.get("/api/tasks", params={"assignee": f.CORA}))[0]

    response = client.post(f"/api/tasks/{task_id}/complete", json={"by": "Sam@Acme.example"})
    assert response.status_code == 200
    done = response.json()
    assert (done["status"], done["resolution"], done["completed_by"]) == (
        "completed",
        "manual",
        f.SAM,
    )
    assert done["completed_at"] == "2026-03-02T09:00:00Z"

    again = client.post(f"/api/tasks/{task_id}/complete")
    assert again.status_code == 409
    assert again.json()["detail"] == f"task {task_id} is already completed"

    detail = client.get(f"/api/tasks/{task_id}").json()
    assert [h["action"] for h in detail["history"]] == ["opened", "completed"]
    assert detail["history"][-1]["actor"] == f.SAM


@sqlite_only
def test_completing_without_by_records_the_api(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = ids(client.get("/api/tasks"))[0]
    assert client.post(f"/api/tasks/{task_id}/complete").json()["completed_by"] == "api"


@sqlite_only
def test_bad_parameters_are_422(client: TestClient) -> None:
    assert client.get("/api/tasks", params={"category": "coffee_break"}).status_code == 422
    assert client.get("/api/tasks", params={"status": "closed"}).status_code == 422
    assert client.get("/api/tasks", params={"limit": 0}).status_code == 422
    assert client.get("/api/tasks", params={"cursor": "abc"}).status_code == 422
    assert client.post("/api/tasks/1/assign", json={"assignee": "not-an-email"}).status_code == 422


def test_empty_filters_mean_everything(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    response = client.get("/api/tasks?assignee=&status=open&category=")
    assert len(ids(response)) == 4
    assert len(ids(client.get("/api/tasks", params={"category": "new_job"}))) == 2


# --- listing -----------------------------------------------------------------------------------


def test_filters_by_assignee_status_and_category_newest_first(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=3)

    cora = client.get("/api/tasks", params={"assignee": f.CORA}).json()["tasks"]
    assert {t["assignee"] for t in cora} == {f.CORA}
    assert [t["category"] for t in cora].count("new_job") == 1
    assert [t["category"] for t in cora].count("ready_to_schedule") == 3
    assert [t["id"] for t in cora] == sorted((t["id"] for t in cora), reverse=True)
    assert set(cora[0]) >= SPEC_FIELDS

    ready = client.get(
        "/api/tasks", params={"assignee": f.SAM, "category": "ready_to_schedule"}
    ).json()["tasks"]
    assert len(ready) == 3
    assert all(t["title"].startswith("Schedule Analyst") for t in ready)

    client.post(f"/api/tasks/{ready[0]['id']}/complete", json={"by": f.SAM})
    assert len(ids(client.get("/api/tasks", params={"assignee": f.SAM}))) == 3
    completed = ids(client.get("/api/tasks", params={"assignee": f.SAM, "status": "completed"}))
    assert completed == [ready[0]["id"]]
    assert len(ids(client.get("/api/tasks", params={"assignee": f.SAM, "status": "all"}))) == 4
    assert len(ids(client.get("/api/tasks", params={"status": "all"}))) == 8


def test_pagination_returns_every_task_exactly_once_while_tasks_are_added(
    client: TestClient, runtime: Runtime
) -> None:
    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 20)])
    existing = set(ids(client.get("/api/tasks", params={"limit": 500})))
    assert len(existing) == 21

    seen: list[int] = []
    cursor: int | None = None
    added = 0
    while True:
        params: dict[str, int] = {"limit": 4}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/api/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        # Between page fetches more candidates arrive (and some are closed).
        runtime.pipeline.ingest_now(candidates_in_phone_screen(1000 + added, 2))
        added += 2
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)), "a task was returned twice"
    assert set(seen) == existing
    newest = client.get("/api/tasks", params={"limit": 500}).json()
    assert len(newest["tasks"]) == 21 + added
    assert newest["next_cursor"] is None


@sqlite_only
def test_task_detail_has_history_and_spec_names(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task = client.get("/api/tasks", params={"category": "new_job", "assignee": f.CORA}).json()
    task_id = task["tasks"][0]["id"]
    detail = client.get(f"/api/tasks/{task_id}").json()
    assert set(detail) >= SPEC_FIELDS
    assert detail["category"] == "new_job"
    assert detail["action_url"] == "/jobs/j1/setup"
    assert detail["history"] == [
        {
            "at": "2026-03-02T09:00:00Z",
            "action": "opened",
            "detail": f"opened for {f.CORA}",
            "actor": "event:job_created",
        }
    ]


def test_assign_moves_a_task_to_another_list(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = ids(client.get("/api/tasks", params={"assignee": f.CORA}))[0]
    response = client.post(
        f"/api/tasks/{task_id}/assign", json={"assignee": "Sam@acme.example", "by": f.CORA}
    )
    assert response.status_code == 200
    assert response.json()["assignee"] == f.SAM
    assert task_id in ids(client.get("/api/tasks", params={"assignee": f.SAM}))
    assert task_id not in ids(client.get("/api/tasks", params={"assignee": f.CORA}))
    client.post(f"/api/tasks/{task_id}/complete")
    late = client.post(f"/api/tasks/{task_id}/assign", json={"assignee": f.CORA})
    assert late.status_code == 409


@sqlite_only
def test_coordinators_come_with_open_counts(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=2)
    people = client.get("/api/coordinators").json()["coordinators"]
    by_email = {p["email"]: p for p in people}
    assert by_email[f.CORA] == {
        "email": f.CORA,
        "name": "Cora Coordinator",
        "role": "coordinator",
        "open_tasks": 3,
    }
    assert by_email[f.SAM]["open_tasks"] == 3
    assert by_email[f.ADA]["open_tasks"] == 0  # an admin is listed with nothing open


# --- job set-up --------------------------------------------------------------------------------


def test_enabling_a_stage_and_setting_a_template_complete_set_up_tasks(
    client: TestClient, runtime: Runtime
) -> None:
    runtime.pipeline.ingest_now([f.job("j1")])
    # A stage with a new interview arrives on the existing job.
    stages = (*f.STAGES, f.stage("s-take-home", "Take-home", 4, ("k-take-home", "Exercise")))
    runtime.pipeline.ingest_now([f.job("j1", updated=5, stages=stages)])
    open_ = client.get("/api/tasks", params={"assignee": f.CORA}).json()["tasks"]
    assert sorted(t["category"] for t in open_) == ["new_interview", "new_job", "new_stage"]

    job = client.get("/api/jobs/j1").json()
    take_home = next(s for s in job["stages"] if s["id"] == "s-take-home")
    assert take_home["scheduling_enabled"] is False
    assert take_home["interview_kinds"] == [
        {"id": "k-take-home", "name": "Exercise", "template": ""}
    ]

    response = client.put(
        "/api/jobs/j1/stages/s-take-home",
        json={"scheduling_enabled": True, "interview_templates": {"k-take-home": "90 minutes"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["scheduling_enabled"] is True
    assert response.json()["interview_kinds"][0]["template"] == "90 minutes"

    assert ids(client.get("/api/tasks", params={"assignee": f.CORA})) == []
    done = client.get("/api/tasks", params={"status": "completed"}).json()["tasks"]
    assert {t["category"]: t["resolution"] for t in done} == {
        "new_job": "action_taken",
        "new_stage": "action_taken",
        "new_interview": "action_taken",
    }


@sqlite_only
def test_set_up_of_unknown_job_stage_or_interview_is_404(
    client: TestClient, runtime: Runtime
) -> None:
    runtime.pipeline.ingest_now([f.job("j1")])
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.put("/api/jobs/nope/stages/s-phone", json={}).status_code == 404
    assert client.put("/api/jobs/j1/stages/nope", json={}).status_code == 404
    response = client.put(
        "/api/jobs/j1/stages/s-phone", json={"interview_templates": {"k-nope": "x"}}
    )
    assert response.status_code == 404
    assert client.put("/api/jobs/j1/stages/s-phone", json={"colour": "red"}).status_code == 422


# --- the document ---------------------------------------------------------------------------


@sqlite_only
def test_openapi_document_describes_the_contract(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/{task_id}/complete"} <= set(paths)
    assert {"/api/tasks/{task_id}/assign", "/api/coordinators", "/api/jobs/{job_id}"} <= set(paths)
    assert "put" in paths["/api/jobs/{job_id}/stages/{stage_id}"]
    assert not any(p == "/" or p.startswith(("/signin", "/tasks/")) for p in paths)
    schemas = doc["components"]["schemas"]
    assert set(schemas["TaskOut"]["properties"]) >= SPEC_FIELDS
    assert set(schemas["CategoryName"]["enum"]) == set(CATEGORY_NAMES)
    complete = paths["/api/tasks/{task_id}/complete"]["post"]["responses"]
    assert {"200", "401", "404", "409"} <= set(complete)
