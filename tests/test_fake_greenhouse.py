"""The fake Greenhouse keeps to the documented Harvest v3 and webhook contract, so tests that pass
against it exercise the behaviour the real provider has (raw HTTP here, no connector)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse, WebhookRecorder, seed_organisation

SECRET = "hook-secret"


@pytest.fixture
def fake() -> Iterator[FakeGreenhouse]:
    with FakeGreenhouse() as server:
        yield server


def token(fake: FakeGreenhouse, **form: str) -> httpx.Response:
    return httpx.post(
        f"{fake.auth_url}/token",
        data={"grant_type": "client_credentials", **form},
        auth=(fake.client_id, fake.client_secret),
    )


def get(
    fake: FakeGreenhouse, resource: str, bearer: str | None = None, **params: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.get(f"{fake.base_url}/v3/{resource}", params=params, headers=headers)


@pytest.fixture
def bearer(fake: FakeGreenhouse) -> str:
    return str(token(fake).json()["access_token"])


def test_token_needs_the_client_credentials(fake: FakeGreenhouse) -> None:
    answer = token(fake)
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "Bearer"
    assert answer.json()["expires_in"] == 3600
    wrong = httpx.post(
        f"{fake.auth_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(fake.client_id, "nope"),
    )
    assert wrong.status_code == 401
    assert token(fake, grant_type="password").status_code == 400


def test_harvest_needs_a_live_bearer_token(fake: FakeGreenhouse, bearer: str) -> None:
    assert get(fake, "users").status_code == 401
    assert get(fake, "users", bearer).status_code == 200
    fake.revoke_credentials()
    assert get(fake, "users", bearer).status_code == 401
    assert token(fake).status_code == 401
    fake.restore_credentials()
    assert get(fake, "users", bearer).status_code == 401  # issued before the revocation
    assert get(fake, "users", token(fake).json()["access_token"]).status_code == 200


def test_list_parameters_are_validated_like_greenhouse(fake: FakeGreenhouse, bearer: str) -> None:
    assert get(fake, "users", bearer, per_page="0").status_code == 400
    assert get(fake, "users", bearer, per_page="501").status_code == 400
    assert get(fake, "users", bearer, page="2").status_code == 400  # v1 paging is gone
    too_many = ",".join(str(i) for i in range(1, 52))
    assert get(fake, "users", bearer, ids=too_many).status_code == 400
    assert get(fake, "users", bearer, updated_at="2024-01-01").status_code == 400
    assert get(fake, "nonexistent", bearer).status_code == 404


def test_date_filters_take_the_pipe_and_bracket_forms(fake: FakeGreenhouse, bearer: str) -> None:
    fake.add_user("old@acme.example", "Old", "User")
    middle = datetime.now(UTC) + timedelta(milliseconds=5)
    while datetime.now(UTC) <= middle:
        pass
    fresh = fake.add_user("new@acme.example", "New", "User")
    stamp = middle.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    pipe = get(fake, "users", bearer, updated_at=f"gte|{stamp}").json()
    bracket = get(fake, "users", bearer, **{"updated_at[gte]": stamp}).json()
    window = get(fake, "users", bearer, updated_at=f"gte|{stamp}|lt|2999-01-01T00:00:00Z").json()

    assert [u["id"] for u in pipe] == [fresh]
    assert bracket == pipe == window


def test_rows_have_v3_fields_and_sparse_fieldsets(fake: FakeGreenhouse, bearer: str) -> None:
    seed_organisation(fake, jobs=1, applications_per_job=1)
    (user, *_) = get(fake, "users", bearer).json()
    assert {"primary_email", "deactivated", "created_at", "updated_at"} <= user.keys()
    assert user["updated_at"].endswith("Z") and len(user["updated_at"]) == 24
    sparse = get(fake, "interviews", bearer, fields="id,status").json()
    assert sparse == []
    (application,) = get(fake, "applications", bearer, fields="status").json()
    assert set(application) == {"id", "status"}


def test_deleted_job_posts_are_hidden_unless_asked_for(fake: FakeGreenhouse, bearer: str) -> None:
    job = fake.create_job("Engineer")
    post = fake.publish_job(job)
    fake.delete_job_post(post)
    assert get(fake, "job_posts", bearer).json() == []
    assert [p["id"] for p in get(fake, "job_posts", bearer, active="false").json()] == [post]


def test_rate_limit_headers_count_down_and_can_be_enforced() -> None:
    with FakeGreenhouse(rate_limit=2, enforce_rate_limit=True) as fake:
        fresh = token(fake).json()["access_token"]
        first, second, third = (get(fake, "users", fresh) for _ in range(3))
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert second.headers["X-RateLimit-Remaining"] == "0"
        assert third.status_code == 429
        # As Harvest documents its 429: no Retry-After, no X-RateLimit-* headers.
        assert "Retry-After" not in third.headers
        assert "X-RateLimit-Remaining" not in third.headers
    with FakeGreenhouse(rate_limit=1, enforce_rate_limit=True, retry_after_on_429=True) as fake:
        fresh = token(fake).json()["access_token"]
        get(fake, "users", fresh)
        assert int(get(fake, "users", fresh).headers["Retry-After"]) >= 1


def test_faults_apply_in_order_and_are_counted(fake: FakeGreenhouse, bearer: str) -> None:
    fake.throttle_next(retry_after=3)
    fake.fail_next(500)
    fake.truncate_next()
    throttled, failed, cut, fine = (get(fake, "users", bearer) for _ in range(4))
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert failed.status_code == 500
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert fine.json() == []
    assert fake.requests_to("users") == 4
    assert fake.statuses[429] == 1


def test_webhooks_are_signed_over_the_escaped_raw_body(fake: FakeGreenhouse) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        job = fake.create_job("Ingénieur <Backend>")
        fake.publish_job(job)

    actions = [json.loads(r.body)["action"] for r in recorder.received]
    assert actions == ["job_created", "job_post_created"]
    created = recorder.received[0]
    assert b"Ing\xc3\xa9nieur \\u003cBackend\\u003e" in created.body
    algorithm, digest = created.headers["Signature"].split(" ")
    assert algorithm == "sha256"
    assert digest == hmac.new(SECRET.encode(), created.body, hashlib.sha256).hexdigest()
    assert created.headers["Content-Type"] == "application/json"
    ids = {r.headers["Greenhouse-Event-ID"] for r in recorder.received}
    assert len(ids) == 2


def test_polling_only_changes_send_no_webhook(fake: FakeGreenhouse) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        org = seed_organisation(fake, jobs=1, applications_per_job=1)
        sent = len(recorder.received)
        job = org.job_ids[0]
        starts = datetime.now(UTC) + timedelta(days=1)
        interview = fake.schedule_interview(
            org.application_ids[0],
            fake.interview_kind_id(job, "Onsite"),
            [org.interviewer_ids[0]],
            starts,
            starts + timedelta(hours=1),
        )
        fake.set_interviewer_response(interview, org.interviewer_ids[0], "accepted")
        fake.submit_scorecard(interview, org.interviewer_ids[0])
        fake.add_stage(job, "Reference Check")
        assert len(recorder.received) == sent


def test_async_webhooks_arrive_after_flush() -> None:
    with (
        WebhookRecorder() as recorder,
        FakeGreenhouse(
            webhook_url=recorder.url, webhook_secret=SECRET, async_webhooks=True
        ) as fake,
    ):
        org = seed_organisation(fake, jobs=1, applications_per_job=2)
        fake.reject_application(org.application_ids[0])
        fake.flush_webhooks()
        actions = [json.loads(r.body)["action"] for r in recorder.received]
        assert actions.count("new_candidate_application") == 2
        assert actions[-1] == "reject_candidate"
        assert all(d.delivered for d in fake.webhook_deliveries)


def test_a_reset_fault_drops_the_connection_without_an_answer(
    fake: FakeGreenhouse, bearer: str
) -> None:
    fake.reset_next()
    with pytest.raises(httpx.TransportError):
        get(fake, "users", bearer)
    assert get(fake, "users", bearer).json() == []


def test_held_webhooks_go_out_on_release_newest_first(fake: FakeGreenhouse) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        fake.hold_webhooks()
        job = fake.create_job("Backend Engineer")
        fake.publish_job(job)
        assert recorder.received == []

        held = fake.release_webhooks()

        actions = [json.loads(r.body)["action"] for r in recorder.received]
        assert actions == ["job_post_created", "job_created"]
        assert [d.action for d in held] == ["job_created", "job_post_created"]
        fake.rename_job(job, "Backend Engineer II")  # no longer held
        assert json.loads(recorder.received[-1].body)["action"] == "job_updated"
