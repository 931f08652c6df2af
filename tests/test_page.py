"""The coordinator's page: sign-in, escaping, CSRF, covering another list, completing by hand,
job set-up, and (with Playwright driving Chromium) the whole scenario in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
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

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_CANDIDATE = '<script>alert("pwned")</script> Zoë "Quote" O\'Neil 山田太郎'
HOSTILE_JOB = "R&D <b>Lead</b> — Ωmega «ĉefo» محلل"
NEW_JOB_STAGES = (
    f.stage("s3-intro", "Intro chat", 0),
    f.stage("s3-deep", "Deep dive", 1, ("k3-deep", "System design")),
)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN, SECOND_TOKEN])
    yield runtime
    runtime.close()


def sign_in(client: TestClient, email: str = f.CORA, token: str = TOKEN) -> httpx.Response:
    return client.post(
        "/signin", data={"email": email, "token": token, "next": "/"}, follow_redirects=False
    )


@pytest.fixture
def cora(runtime: Runtime) -> Iterator[TestClient]:
    """A browser-like client signed in as Cora."""
    with TestClient(create_app(runtime)) as client:
        assert sign_in(client).status_code == 303
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def task_ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="task [^"]*" id="task-(\d+)"', html)]


# --- sign-in ---------------------------------------------------------------------------------


@sqlite_only
def test_the_page_asks_for_sign_in_and_refuses_a_wrong_token(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as client:
        response = client.get("/", params={"assignee": f.SAM}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin?next=")

        form = client.get("/signin")
        assert 'name="token"' in form.text

        refused = sign_in(client, token="wrong-token")
        assert refused.status_code == 401
        assert "not right" in refused.text
        assert "wrong-token" not in refused.text
        assert client.get("/", follow_redirects=False).status_code == 303

        assert sign_in(client, email="not an email").status_code == 400

        response = sign_in(client, token=SECOND_TOKEN)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert client.get("/").status_code == 200


@sqlite_only
def test_sign_in_stops_answering_a_client_that_keeps_guessing_tokens(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as client:
        for n in range(20):
            assert sign_in(client, token=f"guess-{n}").status_code == 401

        refused = sign_in(client)  # even the right token, while refused
        assert refused.status_code == 429
        assert "Too many wrong tokens" in refused.text
        assert client.get("/", follow_redirects=False).status_code == 303


@sqlite_only
def test_a_forged_session_cookie_is_ignored(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as client:
        sign_in(client)
        value = client.cookies["taskplanner_session"]
        body, _, mac = value.partition(".")
        client.cookies.set("taskplanner_session", body + "." + mac[::-1])
        assert client.get("/", follow_redirects=False).status_code == 303


@sqlite_only
def test_a_trusted_proxy_header_signs_people_in(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(db_url, clock, trusted_user_header="X-Forwarded-Email")
    seed_two_coordinators(runtime, per_person=1)
    try:
        with TestClient(create_app(runtime)) as client:
            page = client.get("/", headers={"X-Forwarded-Email": "Sam@Acme.example"})
            assert page.status_code == 200
            assert "Signed in as <strong>sam@acme.example</strong>" in page.text
            assert "Schedule Analyst 100" in page.text
            # No header (a request around the proxy) and no tokens: no form sign-in either.
            client.cookies.clear()
            assert client.get("/", follow_redirects=False).status_code == 303
            assert client.get("/signin").status_code == 403
    finally:
        runtime.close()


# --- what the list shows ------------------------------------------------------------------------


def test_names_with_markup_quotes_and_non_latin_text_render_as_text(
    runtime: Runtime, cora: TestClient
) -> None:
    runtime.pipeline.ingest_now(
        [
            f.job("j1", name=HOSTILE_JOB),
            f.candidate("c1", name=HOSTILE_CANDIDATE),
            f.application("a1"),
        ]
    )
    pages = [cora.get("/"), cora.get("/tasks/live"), cora.get("/jobs/j1/setup")]
    for page in pages:
        assert page.status_code == 200
        html = page.text
        assert "<script>alert" not in html
        assert "<b>Lead</b>" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html or (
            page is pages[2]  # the set-up page names the job only
        )
        assert "R&amp;D &lt;b&gt;Lead&lt;/b&gt; — Ωmega «ĉefo» محلل" in html
    assert "Zoë &#34;Quote&#34; O&#39;Neil 山田太郎" in pages[0].text
    # Only our own script, from /static, runs; the policy forbids inline ones.
    assert re.findall(r"<script[^>]*>", pages[0].text) == ['<script src="/static/tasks.js" defer>']
    assert "script-src 'self'" in pages[0].headers["content-security-policy"]


@sqlite_only
def test_no_token_or_session_secret_appears_in_any_page(runtime: Runtime, cora: TestClient) -> None:
    seed_two_coordinators(runtime, per_person=2)
    session_cookie = cora.cookies["taskplanner_session"]
    pages = [
        cora.get("/"),
        cora.get("/", params={"assignee": f.SAM, "completed": "1"}),
        cora.get("/tasks/live"),
        cora.get("/jobs/j1/setup"),
        cora.get("/jobs/nope/setup"),
        cora.get("/signin", follow_redirects=True),
        cora.get("/static/tasks.js"),
    ]
    with TestClient(create_app(runtime)) as anonymous:
        pages += [anonymous.get("/signin"), sign_in(anonymous, token="bad")]
    for page in pages:
        for secret in (TOKEN, SECOND_TOKEN, session_cookie):
            assert secret not in page.text, page.url


def test_assigned_to_shows_someone_elses_list_and_counts(
    runtime: Runtime, cora: TestClient
) -> None:
    seed_two_coordinators(runtime, per_person=2)
    mine = cora.get("/").text
    assert "Your open tasks" in mine
    assert len(task_ids_on(mine)) == 3
    assert "Schedule Person 1 for Phone Screen (Software Engineer)" in mine
    assert re.search(r'<option value="sam@acme.example">\s*Sam Recruiter — 3 open', mine)

    sams = cora.get("/", params={"assignee": f.SAM}).text
    assert "Sam Recruiter’s open tasks" in sams
    assert "Schedule Analyst 100" in sams and "Schedule Person 1" not in sams
    assert re.search(r'Ready to schedule <span class="count">2</span>', sams)

    only_new_jobs = cora.get("/", params={"assignee": f.SAM, "category": "new_job"}).text
    assert len(task_ids_on(only_new_jobs)) == 1
    assert "Set up Data Analyst for scheduling" in only_new_jobs


def test_completing_with_the_checkmark_records_who_and_needs_the_csrf_token(
    runtime: Runtime, cora: TestClient
) -> None:
    seed_two_coordinators(runtime, per_person=2)
    page = cora.get("/", params={"assignee": f.SAM}).text  # covering for Sam
    task_id = task_ids_on(page)[0]
    token = csrf_of(page)

    forged = cora.post(f"/tasks/{task_id}/complete", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    cross_site = cora.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert task_id in task_ids_on(cora.get("/", params={"assignee": f.SAM}).text)

    done = cora.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token, "return_to": f"/?assignee={f.SAM}"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/?assignee={f.SAM}"
    assert task_id not in task_ids_on(cora.get("/", params={"assignee": f.SAM}).text)

    with_completed = cora.get("/", params={"assignee": f.SAM, "completed": "1"}).text
    item = with_completed.split(f'id="task-{task_id}"')[1].split("</li>")[0]
    assert "Completed by hand" in item
    assert f'by <strong class="completed-by">{f.CORA}</strong>' in item

    again = cora.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert again.status_code == 409


@sqlite_only
def test_overdue_tasks_are_highlighted(
    runtime: Runtime, cora: TestClient, clock: FrozenClock
) -> None:
    runtime.pipeline.ingest_now([f.job("j1", published=False)])
    clock.advance(timedelta(days=3))
    runtime.pipeline.sweep_now()  # job_not_live: due a day after the job was created
    sign_in(cora)  # three days on, the morning's session has expired
    html = cora.get("/").text
    overdue = re.findall(r'<li class="task open overdue" id="task-\d+"', html)
    assert len(overdue) == 1
    assert "Overdue by" in html and "Publish the job." in html


@sqlite_only
def test_only_web_links_become_buttons(runtime: Runtime, cora: TestClient) -> None:
    sneaky = sn.CandidateSnapshot(
        id="c1",
        name="Link Person",
        email="lp@example.com",
        coordinator_email=None,
        updated_at=f.at(0),
        url="javascript:alert(1)",
    )
    runtime.pipeline.ingest_now([f.job("j1"), sneaky, f.application("a1")])
    html = cora.get("/").text
    assert "Schedule Link Person" in html
    assert "javascript:" not in html
    assert 'href="/jobs/j1/setup"' in html  # the new_job task's own set-up page


def test_setup_page_enables_a_stage_and_closes_the_new_job_task(
    runtime: Runtime, cora: TestClient
) -> None:
    runtime.pipeline.ingest_now([f.job("j3", name="Platform Engineer", stages=NEW_JOB_STAGES)])
    page = cora.get("/jobs/j3/setup")
    assert page.status_code == 200
    assert 'Set up <span class="job-name">Platform Engineer</span>' in page.text
    assert "<strong>open</strong>" in page.text

    saved = cora.post(
        "/jobs/j3/setup",
        data={
            "csrf_token": csrf_of(page.text),
            "enabled:s3-deep": "1",
            "template:k3-deep": "Whiteboard a URL shortener",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    after = cora.get(saved.headers["location"]).text
    assert "Saved." in after
    assert "Done: action taken" in after
    assert "Whiteboard a URL shortener" in after
    assert re.search(r'name="enabled:s3-deep" value="1" checked', after)
    assert not re.search(r'name="enabled:s3-intro" value="1" checked', after)
    assert "Set up Platform Engineer" not in cora.get("/").text  # left the open list


@sqlite_only
def test_setup_page_needs_the_csrf_token(runtime: Runtime, cora: TestClient) -> None:
    runtime.pipeline.ingest_now([f.job("j3", stages=NEW_JOB_STAGES)])
    refused = cora.post("/jobs/j3/setup", data={"enabled:s3-deep": "1"})
    assert refused.status_code == 403
    assert "<strong>open</strong>" in cora.get("/jobs/j3/setup").text


# --- in a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
@sqlite_only
def test_coordinator_works_the_list_in_a_browser(runtime: Runtime) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    seed_two_coordinators(runtime, per_person=3)
    runtime.pipeline.ingest_now(
        [
            f.job("j3", name="Platform Engineer", stages=NEW_JOB_STAGES),
            f.candidate("c77", name="Zoë 山田 <b>bold</b>"),
            f.application("a77", candidate_id="c77", updated=2),
        ]
    )
    ARTIFACTS.mkdir(exist_ok=True)

    with serve(create_app(runtime)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(15_000)

            # Sign in.
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.get_by_label("Your work email").fill(f.CORA)
            page.get_by_label("Access token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()

            # The seeded tasks, most urgent first: those due (ready to schedule), oldest first.
            expect(page.get_by_role("heading", name="Your open tasks")).to_be_visible()
            tasks = page.locator("li.task")
            expect(tasks).to_have_count(6)  # 3 + Zoë ready to schedule, 2 new jobs
            expect(tasks.first).to_contain_text("Schedule Person 1")
            expect(tasks.last).to_contain_text("Set up Software Engineer")
            expect(
                page.get_by_text("Schedule Zoë 山田 <b>bold</b> for Phone Screen")
            ).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "01-my-tasks.png"), full_page=True)

            # Live update: a candidate arrives while the page is open; no reload happens.
            page.evaluate("window.__stillTheSamePage = true")
            runtime.pipeline.ingest_now(candidates_in_phone_screen(500, 1, name="Live"))
            expect(page.get_by_text("Schedule Live 500 for Phone Screen")).to_be_visible()
            assert page.evaluate("window.__stillTheSamePage") is True

            # Cover for Sam.
            page.get_by_label("Assigned to").select_option(f.SAM)
            expect(page.get_by_role("heading", name="Sam Recruiter’s open tasks")).to_be_visible()
            expect(tasks).to_have_count(4)
            expect(tasks.first).to_contain_text("Analyst")
            page.screenshot(path=str(ARTIFACTS / "02-covering-sam.png"), full_page=True)

            # Back to my list; complete a task with the checkmark, from the keyboard.
            page.get_by_label("Assigned to").select_option(f.CORA)
            expect(page.get_by_role("heading", name="Your open tasks")).to_be_visible()
            target = tasks.filter(has_text="Schedule Person 2 for Phone Screen")
            check = target.get_by_role("button", name=re.compile("^Mark complete"))
            check.focus()
            page.keyboard.press("Enter")
            expect(target).to_have_count(0)
            expect(page.get_by_role("status")).to_have_text("Task completed.")

            # Show completed: it is there, completed by hand, by me.
            page.get_by_label("Show completed").check()
            expect(
                page.get_by_role("heading", name="Your open and completed tasks")
            ).to_be_visible()
            done = page.locator("li.task.completed").filter(has_text="Schedule Person 2")
            expect(done).to_contain_text("Completed by hand")
            expect(done.locator(".completed-by")).to_have_text(f.CORA)
            page.screenshot(path=str(ARTIFACTS / "03-show-completed.png"), full_page=True)

            # Set up the new job from its task: enable a stage; the task closes action_taken.
            tasks.filter(has_text="Set up Platform Engineer").get_by_role(
                "link", name="Set up job"
            ).click()
            expect(page.get_by_role("heading", name="Set up Platform Engineer")).to_be_visible()
            deep_dive = page.get_by_role("group", name="Deep dive")
            deep_dive.get_by_label("Enabled for scheduling").check()
            deep_dive.get_by_label("Interview template: System design").fill("Design a queue")
            page.get_by_role("button", name="Save set-up").click()
            expect(page.get_by_text("Saved.")).to_be_visible()
            expect(page.locator(".setup-task")).to_contain_text("Done: action taken")
            page.screenshot(path=str(ARTIFACTS / "04-job-setup.png"), full_page=True)

            page.get_by_role("link", name="← Task list").click()
            page.get_by_label("Show completed").check()
            closed = page.locator("li.task.completed").filter(has_text="Set up Platform Engineer")
            expect(closed).to_contain_text("Done: action taken")
            expect(closed).to_contain_text("a stage was enabled for scheduling")

            # A phone.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.context.add_cookies(page.context.cookies())
            phone.goto(base + "/")
            expect(phone.get_by_role("heading", name="Your open tasks")).to_be_visible()
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
            phone.screenshot(path=str(ARTIFACTS / "05-phone.png"), full_page=True)
        finally:
            browser.close()
