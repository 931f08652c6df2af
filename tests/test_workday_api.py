"""A coordinator's working day through the JSON API (issue 15): urgency order and its
paging, search and filters, the job coordinator's view, bulk completion and snoozing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskplanner.cli import app as cli
from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from tests import factories as f
from tests.webapp import TOKEN, candidates_in_phone_screen, make_runtime, seed_two_coordinators

AUTH = {"Authorization": f"Bearer {TOKEN}"}
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN])
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), headers=AUTH) as client:
        yield client


def tasks_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


def titles(response: httpx.Response) -> list[str]:
    return [t["title"] for t in tasks_of(response)]


def declined_interview(schedule_id: str, app_id: str, starts_in: timedelta, now: Any) -> Any:
    """An interview whose interviewer declined, starting ``starts_in`` from now."""
    return f.schedule(
        schedule_id,
        app_id=app_id,
        event_id=None,
        starts=now + starts_in,
        updated=5,
        interviewers=(sn.InterviewerSnapshot("ivan@acme.example", sn.Response.DECLINED, "Ivan"),),
    )


# --- urgency -------------------------------------------------------------------------------


def test_ready_to_schedule_is_due_after_schedule_within(
    client: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 1)])
    (ready,) = tasks_of(client.get("/api/tasks", params={"category": "ready_to_schedule"}))
    assert ready["due_at"] == "2026-03-04T09:00:00Z"  # the default "2d" after it opened


@sqlite_only
def test_schedule_within_is_configurable(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN], rules={"schedule_within": "4h"})
    try:
        runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 1)])
        with TestClient(create_app(runtime), headers=AUTH) as client:
            ready = tasks_of(client.get("/api/tasks", params={"category": "ready_to_schedule"}))
        assert ready[0]["due_at"] == "2026-03-02T13:00:00Z"
    finally:
        runtime.close()


def test_urgency_puts_the_most_overdue_first_then_due_soonest_then_newest(
    client: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 1)])  # due +2d
    clock.advance(timedelta(days=1))
    runtime.pipeline.ingest_now(candidates_in_phone_screen(2, 1))  # due +3d
    runtime.pipeline.ingest_now(
        [f.job("j9", name="Later Job", updated=10, stages=f.job_stages("j9"))]
    )  # no due time
    clock.advance(timedelta(days=1, hours=12))  # Person 1 half a day overdue
    runtime.pipeline.ingest_now(candidates_in_phone_screen(3, 1))
    # Person 4's interview is booked (their ready_to_schedule closes) and declined.
    interview = declined_interview("i4", "a4", timedelta(hours=2), clock())
    runtime.pipeline.ingest_now([*candidates_in_phone_screen(4, 1), interview])
    urgent = tasks_of(client.get("/api/tasks", params={"sort": "urgency"}))
    assert [t["title"] for t in urgent] == [
        "Schedule Person 1 for Phone Screen (Software Engineer)",  # overdue
        "Ivan (interviewer) declined Phone Screen with Person 4 (Software Engineer)",  # in 2h
        "Schedule Person 2 for Phone Screen (Software Engineer)",  # due in 12h
        "Schedule Person 3 for Phone Screen (Software Engineer)",  # due in 2 days
        "Set up Later Job for scheduling",  # no due time: newest first
        "Set up Software Engineer for scheduling",
    ]
    newest = tasks_of(client.get("/api/tasks"))  # the default stays newest first
    assert [t["id"] for t in newest] == sorted((t["id"] for t in urgent), reverse=True)


def test_urgency_paging_returns_every_task_exactly_once_while_tasks_are_added(
    client: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.pipeline.ingest_now(
        [f.job("j1"), f.job("j2", name="Data Analyst", updated=1, stages=f.job_stages("j2"))]
    )
    for batch in range(5):  # due times spread over days, several tasks per due time
        runtime.pipeline.ingest_now(candidates_in_phone_screen(10 * batch + 1, 4))
        clock.advance(timedelta(hours=7))
    existing = {t["id"] for t in tasks_of(client.get("/api/tasks", params={"limit": 500}))}
    assert len(existing) == 22

    seen: list[int] = []
    cursor: str | None = None
    added = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": "urgency"}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/api/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        # Between pages: new candidates (due later than all), a new job (no due time) and
        # an overdue-to-be task land before and after the cursor.
        clock.advance(timedelta(minutes=5))
        runtime.pipeline.ingest_now(candidates_in_phone_screen(1000 + added, 1))
        runtime.pipeline.ingest_now(
            [f.job(f"jx{added}", name=f"Job {added}", updated=20, stages=())]
        )
        added += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a task was returned twice"
    assert existing <= set(seen)


@sqlite_only
def test_a_cursor_only_works_in_its_own_order(client: TestClient, runtime: Runtime) -> None:
    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 3)])
    urgent = client.get("/api/tasks", params={"sort": "urgency", "limit": 1}).json()
    assert urgent["next_cursor"].startswith("u.")
    newest = client.get("/api/tasks", params={"limit": 1}).json()
    assert isinstance(newest["next_cursor"], int)
    wrong = client.get("/api/tasks", params={"cursor": urgent["next_cursor"]})
    assert wrong.status_code == 422
    assert "sort=urgency" in wrong.json()["detail"][0]["msg"]
    wrong = client.get("/api/tasks", params={"sort": "urgency", "cursor": newest["next_cursor"]})
    assert wrong.status_code == 422
    assert client.get("/api/tasks", params={"sort": "oldest"}).status_code == 422
    assert client.get("/api/tasks", params={"cursor": "u.x.1"}).status_code == 422


# --- finding -----------------------------------------------------------------------------


def test_q_finds_candidate_job_and_title_text_in_any_case(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=2)
    runtime.pipeline.ingest_now(
        [
            f.candidate("c77", name="Zoë Ångström", email="z@example.com"),
            f.application("a77", candidate_id="c77", updated=2),
        ]
    )
    assert titles(client.get("/api/tasks", params={"q": "zoË"})) == [
        "Schedule Zoë Ångström for Phone Screen (Software Engineer)"
    ]
    by_job = titles(client.get("/api/tasks", params={"q": "data ANALYST"}))
    assert len(by_job) == 3 and all("Data Analyst" in t for t in by_job)
    assert titles(client.get("/api/tasks", params={"q": "set up"})) == [
        "Set up Data Analyst for scheduling",
        "Set up Software Engineer for scheduling",
    ]
    # LIKE's wildcards are plain text here.
    assert titles(client.get("/api/tasks", params={"q": "%"})) == []
    assert titles(client.get("/api/tasks", params={"q": "_"})) == []
    assert len(titles(client.get("/api/tasks", params={"q": ""}))) == 7


def test_q_follows_a_candidates_new_name(client: TestClient, runtime: Runtime) -> None:
    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 1)])
    runtime.pipeline.ingest_now([f.candidate("c1", name="Robin Renamed", updated=9)])
    found = titles(client.get("/api/tasks", params={"q": "renamed"}))
    assert found == ["Schedule Person 1 for Phone Screen (Software Engineer)"]


def test_job_and_stage_filters(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=2)
    on_j2 = tasks_of(client.get("/api/tasks", params={"job_id": "j2"}))
    assert {t["job_id"] for t in on_j2} == {"j2"} and len(on_j2) == 3
    phone = tasks_of(client.get("/api/tasks", params={"stage_id": "s2-phone"}))
    assert {t["stage_id"] for t in phone} == {"s2-phone"} and len(phone) == 2
    both = client.get("/api/tasks", params={"job_id": "j1", "stage_id": "s2-phone"})
    assert tasks_of(both) == []
    assert tasks_of(client.get("/api/tasks", params={"job_id": "nope"})) == []


def test_job_coordinator_sees_the_open_tasks_on_their_jobs_whoever_holds_them(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=2)  # Cora coordinates j1, Sam j2
    mine = tasks_of(client.get("/api/tasks", params={"job_coordinator": f.CORA}))
    moved = mine[0]["id"]
    client.post(f"/api/tasks/{moved}/assign", json={"assignee": f.SAM})
    on_coras_jobs = tasks_of(
        client.get("/api/tasks", params={"job_coordinator": "Cora@Acme.example"})
    )
    assert {t["job_id"] for t in on_coras_jobs} == {"j1"}
    assert len(on_coras_jobs) == 3
    assert {t["assignee"] for t in on_coras_jobs} == {f.CORA, f.SAM}
    sams = tasks_of(client.get("/api/tasks", params={"job_coordinator": f.SAM}))
    assert {t["job_id"] for t in sams} == {"j2"}
    nobody = client.get("/api/tasks", params={"job_coordinator": "nobody@acme.example"})
    assert tasks_of(nobody) == []


# --- acting --------------------------------------------------------------------------------


def test_bulk_complete_says_what_was_completed_and_what_was_skipped(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=2)
    a, b, c = (t["id"] for t in tasks_of(client.get("/api/tasks", params={"assignee": f.CORA})))
    client.post(f"/api/tasks/{c}/complete")
    response = client.post(
        "/api/tasks/complete", json={"ids": [a, b, c, 99999, a], "by": "Cora@acme.example"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(t["id"] for t in body["completed"]) == sorted([a, b])
    assert {t["completed_by"] for t in body["completed"]} == {f.CORA}
    assert body["skipped"] == [
        {"id": c, "why": "already completed"},
        {"id": 99999, "why": "no such task"},
    ]
    history = client.get(f"/api/tasks/{a}").json()["history"]
    assert (history[-1]["action"], history[-1]["actor"]) == ("completed", f.CORA)
    assert tasks_of(client.get("/api/tasks", params={"assignee": f.CORA})) == []


@sqlite_only
def test_bulk_complete_refuses_bad_bodies(client: TestClient) -> None:
    assert client.post("/api/tasks/complete", json={"ids": []}).status_code == 422
    assert client.post("/api/tasks/complete", json={"ids": [0]}).status_code == 422
    assert client.post("/api/tasks/complete", json={"ids": list(range(1, 502))}).status_code == 422
    assert client.post("/api/tasks/complete", json={"ids": [1], "by": "x"}).status_code == 422
    assert client.post("/api/tasks/complete", json={"ids": ["a"]}).status_code == 422


def test_a_snoozed_task_leaves_the_open_list_until_its_time(
    client: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = tasks_of(client.get("/api/tasks", params={"assignee": f.CORA}))[0]["id"]
    response = client.post(
        f"/api/tasks/{task_id}/snooze",
        json={"until": "2026-03-03T10:00:00+01:00", "by": "cora@acme.example"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["snoozed_until"]) == (
        "open",
        "2026-03-03T09:00:00Z",
    )
    open_ids = [t["id"] for t in tasks_of(client.get("/api/tasks", params={"assignee": f.CORA}))]
    assert task_id not in open_ids
    with_snoozed = client.get("/api/tasks", params={"assignee": f.CORA, "include_snoozed": "true"})
    assert task_id in [t["id"] for t in tasks_of(with_snoozed)]
    urgent = client.get("/api/tasks", params={"assignee": f.CORA, "sort": "urgency"})
    assert task_id not in [t["id"] for t in tasks_of(urgent)]

    clock.advance(timedelta(days=1))  # 2026-03-03 09:00 UTC: its time has come
    back = tasks_of(client.get("/api/tasks", params={"assignee": f.CORA}))
    assert task_id in [t["id"] for t in back]

    history = client.get(f"/api/tasks/{task_id}").json()["history"]
    assert history[-1]["action"] == "snoozed"
    assert history[-1]["actor"] == f.CORA
    assert "2026-03-03 09:00 UTC" in history[-1]["detail"]


def test_unsnooze_brings_a_task_back_at_once(client: TestClient, runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = tasks_of(client.get("/api/tasks", params={"assignee": f.SAM}))[0]["id"]
    client.post(f"/api/tasks/{task_id}/snooze", json={"until": "2026-04-01T00:00:00Z"})
    assert task_id not in [t["id"] for t in tasks_of(client.get("/api/tasks"))]
    response = client.post(f"/api/tasks/{task_id}/unsnooze", json={"by": f.SAM})
    assert response.status_code == 200
    assert response.json()["snoozed_until"] is None
    assert task_id in [t["id"] for t in tasks_of(client.get("/api/tasks"))]
    history = client.get(f"/api/tasks/{task_id}").json()["history"]
    assert [(h["action"], h["actor"]) for h in history[-2:]] == [
        ("snoozed", "api"),
        ("unsnoozed", f.SAM),
    ]


@sqlite_only
def test_snooze_refuses_a_past_or_naive_time_and_a_completed_task(
    client: TestClient, runtime: Runtime
) -> None:
    seed_two_coordinators(runtime, per_person=1)
    task_id = tasks_of(client.get("/api/tasks"))[0]["id"]
    past = client.post(f"/api/tasks/{task_id}/snooze", json={"until": "2026-03-01T00:00:00Z"})
    assert past.status_code == 422
    [problem] = past.json()["detail"]  # shaped like FastAPI's own 422s
    assert (problem["loc"], problem["msg"]) == (["body", "until"], "must be in the future")
    naive = client.post(f"/api/tasks/{task_id}/snooze", json={"until": "2026-04-01T00:00:00"})
    assert naive.status_code == 422
    assert client.post(f"/api/tasks/{task_id}/snooze", json={"until": "soon"}).status_code == 422
    missing = client.post("/api/tasks/99999/snooze", json={"until": "2026-04-01T00:00:00Z"})
    assert missing.status_code == 404
    client.post(f"/api/tasks/{task_id}/complete")
    late = client.post(f"/api/tasks/{task_id}/snooze", json={"until": "2026-04-01T00:00:00Z"})
    assert late.status_code == 409
    assert client.post(f"/api/tasks/{task_id}/unsnooze").status_code == 409


# --- links and the configuration -------------------------------------------------------------


@sqlite_only
def test_links_to_our_pages_use_public_url(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN], public_url="https://tasks.acme.example/")
    try:
        runtime.pipeline.ingest_now([f.job("j1")])
        with TestClient(create_app(runtime), headers=AUTH) as client:
            (task,) = tasks_of(client.get("/api/tasks"))
            assert task["action_url"] == "https://tasks.acme.example/jobs/j1/setup"
            detail = client.get(f"/api/tasks/{task['id']}").json()
            assert detail["action_url"] == "https://tasks.acme.example/jobs/j1/setup"
    finally:
        runtime.close()


def test_config_check_warns_when_listening_everywhere_without_public_url(
    tmp_path: Path,
) -> None:
    base = """
[organisation]
name = "Acme"
account_owner = "ada@acme.example"

[database]
url = "sqlite:///x.db"

[server]
host = "0.0.0.0"
"""
    path = tmp_path / "taskplanner.toml"
    path.write_text(base, encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: server.host is 0.0.0.0 and server.public_url is not set" in result.stdout
    assert "http://0.0.0.0:8080/" in result.stdout
    assert "schedule within 2d" in result.stdout

    path.write_text(base + 'public_url = "https://tasks.acme.example/"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stdout
