"""A coordinator's working day on the page (issue 15), in a real browser (Playwright driving
Debian's Chromium, as in test_page.py): urgency order and its marks, search and filters kept
in the URL, bulk completion, reassigning, snoozing and the return, what a decline and a
broken integration say, and the "My jobs" view. A few checks without a browser at the end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from tests import factories as f
from tests.taskflow import integration_fails
from tests.test_page import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, csrf_of, sign_in, task_ids_on
from tests.webapp import (
    TOKEN,
    candidates_in_phone_screen,
    make_runtime,
    seed_two_coordinators,
    serve,
)

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
browser_test = [pytest.mark.browser, sqlite_only]


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN])
    yield runtime
    runtime.close()


@contextmanager
def signed_in_page(runtime: Runtime, email: str = f.CORA) -> Iterator[tuple[Any, str]]:
    """A Chromium page signed in as ``email`` on a real server; yields (page, base URL)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve(create_app(runtime)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(base + "/")
            page.get_by_label("Your work email").fill(email)
            page.get_by_label("Access token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"/\??[^/]*$"))
            yield page, base
        finally:
            browser.close()


def declined(
    schedule_id: str,
    app_id: str,
    starts: Any,
    *,
    email: str = "ivan@acme.example",
    name: str | None = "Ivan Interviewer",
) -> sn.ScheduleSnapshot:
    return f.schedule(
        schedule_id,
        app_id=app_id,
        event_id=None,
        starts=starts,
        updated=5,
        interviewers=(sn.InterviewerSnapshot(email, sn.Response.DECLINED, name),),
    )


# --- in a browser ----------------------------------------------------------------------------


@pytest.mark.browser
@sqlite_only
def test_the_list_is_most_urgent_first_with_overdue_and_due_today_marked(
    runtime: Runtime, clock: FrozenClock
) -> None:
    from playwright.sync_api import expect

    runtime.pipeline.ingest_now([f.job("j1"), *candidates_in_phone_screen(1, 1)])
    clock.advance(timedelta(days=1, hours=3))
    runtime.pipeline.ingest_now(candidates_in_phone_screen(2, 1))
    clock.advance(timedelta(days=1, hours=2))  # Person 1 an hour overdue; Person 2 due in 1 day
    runtime.pipeline.ingest_now(candidates_in_phone_screen(3, 1))
    clock.advance(timedelta(days=1, hours=20))  # Person 2 overdue 22h, Person 3 due in 4h
    with signed_in_page(runtime) as (page, _):
        rows = page.locator("li.task")
        expect(rows).to_have_count(4)
        expect(rows.nth(0)).to_contain_text("Schedule Person 1")
        expect(rows.nth(0)).to_have_class(re.compile(r"\boverdue\b"))
        expect(rows.nth(0)).to_contain_text("Overdue by 2 days")
        expect(rows.nth(1)).to_contain_text("Schedule Person 2")
        expect(rows.nth(1)).to_contain_text("Overdue by 22 hours")
        expect(rows.nth(2)).to_contain_text("Schedule Person 3")
        expect(rows.nth(2)).to_have_class(re.compile(r"\bdue-today\b"))
        expect(rows.nth(2)).to_contain_text("Due today, in 4 hours")
        expect(rows.nth(3)).to_contain_text("Set up Software Engineer")
        page.screenshot(path=str(ARTIFACTS / "workday-01-urgency.png"), full_page=True)
        # Newest first is one choice away, and the URL says so.
        page.get_by_label("Order").select_option("newest")
        expect(page).to_have_url(re.compile(r"sort=newest"))
        expect(rows.nth(0)).to_contain_text("Schedule Person 3")


@pytest.mark.browser
@sqlite_only
def test_search_and_filters_are_kept_in_the_url_and_counts_follow(runtime: Runtime) -> None:
    from playwright.sync_api import expect

    seed_two_coordinators(runtime, per_person=3)
    runtime.pipeline.ingest_now(
        [
            f.candidate("c77", name="Zoë Ångström", email="z@example.com"),
            f.application("a77", candidate_id="c77", updated=2),
        ]
    )
    with signed_in_page(runtime) as (page, base):
        rows = page.locator("li.task")
        expect(rows).to_have_count(5)
        all_link = page.get_by_role("navigation", name="Filter by category").get_by_role(
            "link", name=re.compile("^All")
        )
        expect(all_link).to_contain_text("5")

        page.get_by_label("Search").fill("zoë")
        page.get_by_label("Search").press("Enter")
        expect(page).to_have_url(re.compile(r"q=zo%C3%AB"))
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Schedule Zoë Ångström")
        expect(all_link).to_contain_text("1")

        page.get_by_label("Search").fill("")
        page.get_by_label("Search").press("Enter")
        page.get_by_label("Category", exact=True).select_option("new_job")
        expect(page).to_have_url(re.compile(r"category=new_job"))
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Set up Software Engineer")

        # A bookmark of "Sam's tasks on Data Analyst, ready to schedule" opens that view.
        page.goto(base + f"/?assignee={f.SAM}&job=j2&category=ready_to_schedule")
        expect(page.get_by_label("Job")).to_have_value("j2")
        expect(page.get_by_label("Category", exact=True)).to_have_value("ready_to_schedule")
        expect(rows).to_have_count(3)
        expect(all_link).to_contain_text("4")  # Sam's open tasks on j2, any category
        page.get_by_label("Job").select_option("j1")
        expect(page).to_have_url(re.compile(r"job=j1"))
        expect(page.get_by_text("Nothing here.")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "workday-02-filters.png"), full_page=True)


@pytest.mark.browser
@sqlite_only
def test_bulk_complete_with_checkboxes_and_one_button(runtime: Runtime) -> None:
    from playwright.sync_api import expect

    seed_two_coordinators(runtime, per_person=3)
    with signed_in_page(runtime) as (page, _):
        rows = page.locator("li.task")
        expect(rows).to_have_count(4)
        for name in ("Person 1", "Person 3"):
            rows.filter(has_text=f"Schedule {name} ").get_by_role(
                "checkbox", name=re.compile("^Select")
            ).check()
        page.get_by_role("button", name="Complete selected").click()
        expect(page.get_by_role("status")).to_have_text("Completed 2 tasks.")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="Person 2")).to_have_count(1)
        page.get_by_label("Show completed").check()
        done = page.locator("li.task.completed")
        expect(done).to_have_count(2)
        expect(done.first.locator(".completed-by")).to_have_text(f.CORA)


@pytest.mark.browser
@sqlite_only
def test_reassign_from_the_page(runtime: Runtime) -> None:
    from playwright.sync_api import expect

    seed_two_coordinators(runtime, per_person=2)
    with signed_in_page(runtime) as (page, _):
        rows = page.locator("li.task")
        expect(rows).to_have_count(3)
        row = rows.filter(has_text="Schedule Person 2")
        row.get_by_text("Reassign", exact=True).first.click()
        row.get_by_label("Reassign to").fill(f.SAM)
        row.get_by_role("button", name="Reassign").click()
        expect(page.get_by_role("status")).to_have_text(f"Task reassigned to {f.SAM}.")
        expect(rows).to_have_count(2)
        page.get_by_label("Assigned to").select_option(f.SAM)
        moved = page.locator("li.task").filter(has_text="Schedule Person 2")
        expect(moved).to_have_count(1)


@pytest.mark.browser
@sqlite_only
def test_snooze_and_its_return(runtime: Runtime, clock: FrozenClock) -> None:
    from playwright.sync_api import expect

    seed_two_coordinators(runtime, per_person=2)
    with signed_in_page(runtime) as (page, _):
        rows = page.locator("li.task")
        expect(rows).to_have_count(3)
        row = rows.filter(has_text="Schedule Person 1")
        row.get_by_text("Snooze", exact=True).first.click()
        row.get_by_label("Snooze").select_option("1h")
        row.get_by_role("button", name="Snooze").click()
        expect(page.get_by_role("status")).to_contain_text(
            "Task snoozed until Mon 02 Mar 2026, 11:00"
        )
        expect(rows).to_have_count(2)
        snoozed = page.get_by_role("region", name="Snoozed")
        expect(snoozed).to_contain_text("Schedule Person 1")
        expect(snoozed).to_contain_text("until Mon 02 Mar 2026, 11:00")
        page.screenshot(path=str(ARTIFACTS / "workday-03-snoozed.png"), full_page=True)

        clock.advance(timedelta(hours=1))  # its time comes: back in the list by itself
        expect(rows.filter(has_text="Schedule Person 1")).to_have_count(1)
        expect(page.get_by_role("region", name="Snoozed")).to_have_count(0)

        # Snoozed again, then brought back by hand.
        row = rows.filter(has_text="Schedule Person 2")
        row.get_by_text("Snooze", exact=True).first.click()
        row.get_by_label("Snooze").select_option("tomorrow")
        row.get_by_role("button", name="Snooze").click()
        expect(rows).to_have_count(2)
        page.get_by_role("button", name=re.compile("^Back to the list")).click()
        expect(rows).to_have_count(3)


@pytest.mark.browser
@sqlite_only
def test_a_decline_shows_the_interview_time_who_declined_and_no_address(
    runtime: Runtime, clock: FrozenClock
) -> None:
    from playwright.sync_api import expect

    starts = clock() + timedelta(days=1, hours=1)  # Tue 03 Mar 2026, 10:00 UTC = 11:00 Berlin
    runtime.pipeline.ingest_now(
        [
            f.job("j1"),
            *candidates_in_phone_screen(1, 3),
            declined("i1", "a1", starts),
            declined("i2", "a2", starts, email="nameless@acme.example", name=None),
            f.user("nameless@acme.example"),  # the ATS knows their name
            # Person 3's interview: declined in the calendar, with a comment.
            f.schedule("i3", app_id="a3", event_id="ev3", starts=starts, updated=5),
            sn.CalendarEventSnapshot(
                connector="google",
                calendar_id="ivan@acme.example",
                event_id="ev3",
                status=sn.EventStatus.CONFIRMED,
                updated_at=f.at(6),
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                attendees=(
                    sn.AttendeeSnapshot(
                        "ivan@acme.example",
                        sn.Response.DECLINED,
                        name="Ivan Interviewer",
                        comment="Off sick <b>that</b> day",
                    ),
                ),
            ),
        ]
    )
    with signed_in_page(runtime) as (page, _):
        row = page.locator("li.task").filter(has_text="Person 1")
        expect(row).to_contain_text("Ivan Interviewer (interviewer) declined Phone Screen")
        expect(row.locator(".interview-time")).to_have_text("Tue 03 Mar 2026, 11:00")
        expect(row).to_contain_text("(Europe/Berlin)")
        expect(row.locator(".declined-by")).to_have_text("Ivan Interviewer")
        other = page.locator("li.task").filter(has_text="Person 2")
        expect(other.locator(".title")).to_contain_text("Nameless (interviewer) declined")
        expect(other.locator(".declined-by")).to_have_text("Nameless")
        commented = page.locator("li.task").filter(has_text="Person 3")
        expect(commented.locator(".comment")).to_have_text("“Off sick <b>that</b> day”")
        expect(page.locator("li.task .title").filter(has_text="@")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "workday-04-decline.png"), full_page=True)


@pytest.mark.browser
@sqlite_only
def test_a_broken_integration_shows_its_error_and_what_to_do_never_a_secret(
    runtime: Runtime,
) -> None:
    from playwright.sync_api import expect

    secret = "sk_live_9f8e7d6c5b4a"
    integration_fails(
        runtime.pipeline,
        error=f"401 Unauthorized from https://harvest.example/v1/jobs?api_key={secret}",
    )
    with signed_in_page(runtime, email=f.ADA) as (page, _):
        row = page.locator("li.task").filter(has_text="integration cannot sync")
        expect(row.locator(".error-text")).to_contain_text("401 Unauthorized")
        expect(row.locator(".advice")).to_contain_text("refused our credentials")
        assert secret not in page.content()
        page.screenshot(path=str(ARTIFACTS / "workday-05-integration.png"), full_page=True)


@pytest.mark.browser
@sqlite_only
def test_my_jobs_shows_the_open_tasks_on_my_jobs_whoever_holds_them(runtime: Runtime) -> None:
    from playwright.sync_api import expect

    seed_two_coordinators(runtime, per_person=2)  # Cora coordinates j1, Sam j2
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        first = api.get("/api/tasks", params={"assignee": f.CORA}).json()["tasks"][0]
        api.post(f"/api/tasks/{first['id']}/assign", json={"assignee": f.SAM})
    with signed_in_page(runtime) as (page, _):
        rows = page.locator("li.task")
        expect(rows).to_have_count(2)
        page.get_by_role("link", name="My jobs").click()
        expect(page.get_by_role("heading", name="Open tasks on your jobs")).to_be_visible()
        expect(page).to_have_url(re.compile(r"view=jobs"))
        expect(rows).to_have_count(3)
        expect(rows.filter(has_text=first["title"])).to_contain_text(f"with {f.SAM}")
        expect(rows.filter(has_text="Analyst")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "workday-06-my-jobs.png"), full_page=True)


# --- without a browser ---------------------------------------------------------------------------


@sqlite_only
def test_page_actions_need_the_csrf_token_and_check_like_the_api(runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    with TestClient(create_app(runtime)) as cora:
        assert sign_in(cora).status_code == 303
        page = cora.get("/").text
        token = csrf_of(page)
        task_id = task_ids_on(page)[0]
        for path, data in (
            ("/tasks/complete", {"ids": str(task_id)}),
            (f"/tasks/{task_id}/assign", {"assignee": f.SAM}),
            (f"/tasks/{task_id}/snooze", {"until": "1h"}),
            (f"/tasks/{task_id}/unsnooze", {}),
        ):
            assert cora.post(path, data=data).status_code == 403, path
        json = {"Accept": "application/json"}
        bad = cora.post(
            f"/tasks/{task_id}/assign", data={"csrf_token": token, "assignee": "sam"}, headers=json
        )
        assert (bad.status_code, bad.json()["detail"]) == (422, "'sam' is not an email address.")
        nowhere = cora.post(
            "/tasks/99999/assign", data={"csrf_token": token, "assignee": f.SAM}, headers=json
        )
        assert nowhere.status_code == 404
        never = cora.post(
            f"/tasks/{task_id}/snooze", data={"csrf_token": token, "until": "forever"}, headers=json
        )
        assert never.status_code == 422
        none = cora.post("/tasks/complete", data={"csrf_token": token}, headers=json)
        assert none.status_code == 400
        done = cora.post(
            "/tasks/complete",
            data={"csrf_token": token, "ids": [str(task_id), "99999", "x", "²"]},
            headers=json,
        )
        assert done.json()["detail"] == "Completed 1 task. Skipped 1 (no such task)."
        late = cora.post(
            f"/tasks/{task_id}/assign", data={"csrf_token": token, "assignee": f.SAM}, headers=json
        )
        assert late.status_code == 409


@sqlite_only
def test_a_bad_cursor_or_job_in_the_url_is_ignored(runtime: Runtime) -> None:
    seed_two_coordinators(runtime, per_person=1)
    with TestClient(create_app(runtime)) as cora:
        sign_in(cora)
        for query in (
            "cursor=u.x.1",
            "cursor=99999999999",
            "cursor=%C2%B2",
            "job=%00",
            "sort=sideways",
            "q=%07",
        ):
            response = cora.get("/?" + query)
            assert response.status_code == 200, query
            assert len(task_ids_on(response.text)) == 2, query


@sqlite_only
def test_an_inactive_candidates_wait_is_computed_when_shown(
    runtime: Runtime, clock: FrozenClock
) -> None:
    runtime.pipeline.ingest_now(
        [f.job("j1"), f.candidate("c1"), f.application("a1", stage="s-review", entered=0)]
    )
    clock.advance(timedelta(days=16))
    runtime.pipeline.sweep_now()
    with TestClient(create_app(runtime)) as cora:
        sign_in(cora)
        first = cora.get("/").text
        assert "in the stage for 17 days" in first
        clock.advance(timedelta(days=2))
        sign_in(cora)
        assert "in the stage for 19 days" in cora.get("/").text
