"""Promises of docs/threat-model.md that no other test held yet; each fails when its promise
is broken. The document names, next to each promise, the test that holds it (here or in
another file); tests/test_docs_name_real_tests.py checks every named test exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from connectors.base import WebhookRejected
from connectors.greenhouse.webhooks import signature, verify_signature
from taskplanner import digest
from taskplanner.clock import FrozenClock
from taskplanner.config import ConfigError, parse_config
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.web.app import create_app
from taskplanner.web.auth import SESSION_COOKIE
from tests import factories as f
from tests.ats_env import ats_env, mirror, open_situations
from tests.webapp import SAM_STAGES, SECOND_TOKEN, TOKEN, make_runtime, seed_two_coordinators

HTTPS = "https://tasks.acme.example"
EVIL = "https://evil.example"


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN, f"ci-bot={SECOND_TOKEN}"])
    seed_two_coordinators(runtime, per_person=2)
    yield runtime
    runtime.close()


def signed_in(runtime: Runtime) -> TestClient:
    client = TestClient(create_app(runtime), base_url=HTTPS)
    answer = client.post("/signin", data={"email": f.CORA, "token": TOKEN}, follow_redirects=False)
    assert answer.status_code == 303
    return client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match
    return match.group(1)


def open_task_of(runtime: Runtime, assignee: str = f.CORA) -> int:
    with transaction(runtime.db, read_only=True) as session:
        task_id = session.scalars(
            select(m.Task.id).where(m.Task.assignee == assignee, m.Task.status == "open")
        ).first()
    assert task_id is not None
    return task_id


def status_of(runtime: Runtime, task_id: int) -> str:
    with transaction(runtime.db, read_only=True) as session:
        task = session.get(m.Task, task_id)
        assert task is not None
        return task.status


# --- an attacker on the network -------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_session_cookies_are_httponly_samesite_and_secure_over_https(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime), base_url=HTTPS)
    answer = client.post("/signin", data={"email": f.CORA, "token": TOKEN}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite"} <= attributes
    assert "samesite=lax" in cookie.lower()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pages_carry_a_content_security_policy_and_refuse_framing(runtime: Runtime) -> None:
    client = signed_in(runtime)
    for path in ("/", "/jobs/j1/setup", "/signin"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"


# --- a forged or replayed webhook -----------------------------------------------------------


def test_without_a_webhook_secret_every_delivery_is_refused() -> None:
    body = b'{"action": "ping", "payload": {}}'
    for secret in ("", None):
        with pytest.raises(WebhookRejected, match="no webhook secret"):
            # Even one "signed" with an empty key, as a forger would try.
            verify_signature("greenhouse", secret, {"Signature": signature(body, "")}, body)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_old_delivery_replayed_under_a_new_id_changes_nothing(db_url: str) -> None:
    from taskplanner.sandbox.fake_ats import seed_organisation

    with ats_env(db_url, "greenhouse") as env:
        fake = env.fake
        org = seed_organisation(fake, jobs=1, applications_per_job=1)
        assert env.sync().ok
        env.connect_webhooks()
        job, application = org.job_ids[0], org.application_ids[0]
        fake.move_application(application, fake.stage_id(job, "Phone Screen"))
        fake.flush_webhooks()
        old = env.delivered()[-1]
        fake.move_application(application, fake.stage_id(job, "Onsite"))
        env.drain()
        before = (mirror(env.db), open_situations(env.db))

        # The signature covers the body, not the event id header: a captured delivery can be
        # sent again under a new id. It is stored, and then changes nothing: older than what
        # the mirror holds.
        replay = {**old.headers, "Greenhouse-Event-ID": "replayed-under-a-new-id"}
        assert env.post(old.body, replay).json()["status"] == "accepted"
        assert env.drain().done == 1
        assert (mirror(env.db), open_situations(env.db)) == before


# --- a coordinator --------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cross_site_form_post_is_refused_even_with_the_csrf_token(runtime: Runtime) -> None:
    client = signed_in(runtime)
    token = csrf_of(client.get("/").text)
    task_id = open_task_of(runtime)

    refused = client.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token},
        headers={"Origin": EVIL},
        follow_redirects=False,
    )

    assert refused.status_code == 403
    assert status_of(runtime, task_id) == "open"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "target", ["//evil.example/", "/\\evil.example", f"{EVIL}/", "javascript:alert(1)"]
)
def test_sign_in_never_sends_the_browser_to_another_site(runtime: Runtime, target: str) -> None:
    client = TestClient(create_app(runtime), base_url=HTTPS)
    answer = client.post(
        "/signin", data={"email": f.CORA, "token": TOKEN, "next": target}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    again = client.get("/signin", params={"next": target}, follow_redirects=False)
    assert again.headers["location"] == "/"


# --- a leaked API token ---------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_token_removed_from_the_configuration_stops_working(
    db_url: str, clock: FrozenClock
) -> None:
    leaked = {"Authorization": f"Bearer {SECOND_TOKEN}"}
    before = make_runtime(db_url, clock, tokens=[TOKEN, f"ci-bot={SECOND_TOKEN}"])
    try:
        assert TestClient(create_app(before)).get("/api/tasks", headers=leaked).status_code == 200
    finally:
        before.close()
    # The admin takes it out of server.api_tokens_env and restarts.
    after = make_runtime(db_url, clock, tokens=[TOKEN])
    try:
        client = TestClient(create_app(after))
        assert client.get("/api/tasks", headers=leaked).status_code == 401
        refused = client.post("/signin", data={"email": f.CORA, "token": SECOND_TOKEN})
        assert refused.status_code == 401
    finally:
        after.close()


# --- a leaked session cookie ----------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_session_cookie_does_not_open_the_json_api(runtime: Runtime) -> None:
    client = signed_in(runtime)
    assert client.get("/").status_code == 200
    assert client.get("/api/tasks").status_code == 401
    task_id = open_task_of(runtime)
    assert client.post(f"/api/tasks/{task_id}/complete").status_code == 401
    assert status_of(runtime, task_id) == "open"


# --- ATS-controlled text ----------------------------------------------------------------------

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HEADER_INJECTION = "Ada\r\nBcc: eve@evil.example\r\nSubject: win"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ats_text_in_the_digest_stays_text_and_adds_no_mail_header(
    db_url: str, clock: FrozenClock
) -> None:
    runtime = make_runtime(
        db_url, clock, digest={"send_at": "08:00", "from": "taskplanner@acme.example"}
    )
    try:
        runtime.pipeline.ingest_now(
            [
                f.job("j1", name=f"Engineer {MARKUP}{HEADER_INJECTION}"),
                f.candidate("c1", name=f"{HEADER_INJECTION} {MARKUP}"),
                f.application("a1", candidate_id="c1", job_id="j1", stage="s-phone"),
                # An address the ATS holds that is not one never becomes an assignee (or a To:).
                f.job(
                    "j2",
                    name="Analyst",
                    coordinator=f"mallory@acme.example{HEADER_INJECTION}",
                    stages=SAM_STAGES,
                ),
            ]
        )
        messages = digest.preview_digests(runtime)
        with transaction(runtime.db, read_only=True) as session:
            assignees = set(session.scalars(select(m.Task.assignee)))
    finally:
        runtime.close()
    assert not any("\n" in a or "evil" in a for a in assignees), assignees
    [message] = [msg for msg in messages if msg["To"] == f.CORA]
    expected = {
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "Content-Type",
        "MIME-Version",
    }
    assert set(message.keys()) == expected
    assert "evil" not in "".join(str(message[h]) for h in message)
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    content = str(html.get_content())
    assert "&lt;script&gt;" in content
    assert "<script" not in content and "<img" not in content


def test_text_neither_database_can_store_is_cleaned_not_refused(
    db_url: str, clock: FrozenClock
) -> None:
    runtime = make_runtime(db_url, clock)
    try:
        runtime.pipeline.ingest_now(
            [
                f.job("j1"),
                f.candidate("c1", name="Ada\x00 Lovelace\ud800"),
                f.application("a1", candidate_id="c1", job_id="j1", stage="s-phone"),
            ]
        )
        with transaction(runtime.db, read_only=True) as session:
            candidate = session.get(m.Candidate, "c1")
            assert candidate is not None
            assert candidate.name == "Ada Lovelace\ufffd"
            titles = session.scalars(select(m.Task.title)).all()
        assert any("Ada Lovelace" in title for title in titles)
    finally:
        runtime.close()


# --- a malicious configuration file -----------------------------------------------------------


@pytest.mark.parametrize(
    "connector_type", ["os:system", "connectors.base:Connector", "subprocess", "../greenhouse"]
)
def test_a_connector_type_is_looked_up_never_imported_from_the_file(connector_type: str) -> None:
    data = {
        "organisation": {"name": "Acme", "account_owner": "ada@acme.example"},
        "connectors": {"ats": {"type": connector_type, "client_id_env": "X"}},
    }
    with pytest.raises(ConfigError, match="connectors.ats.type: unknown connector type"):
        parse_config(data, environ={"X": "x"})
