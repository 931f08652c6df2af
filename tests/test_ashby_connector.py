"""Ashby end to end where Ashby differs from the other ATSs: its signature header, its
``success: false`` answers and its syncToken resyncs. The fake Ashby sends signed webhooks to
the real app (uvicorn on 127.0.0.1) and answers the real connector's polls; the database is
real (SQLite and PostgreSQL). The scenarios every ATS shares are in tests/test_ats_e2e.py.

Docs: https://developers.ashbyhq.com/docs/authenticating-webhooks (``Ashby-Signature:
sha256=<hex HMAC-SHA256 of the raw body>``), /docs/responses (``success: false``),
/docs/pagination-and-incremental-sync (expired syncTokens: full sync).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.ashby.webhooks import signature
from taskplanner.inbox import IGNORED
from taskplanner.sandbox.fake_ats import seed_organisation
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.ats_env import (
    ATSEnv,
    ats_env,
    count_deliveries,
    mirror,
    open_situations,
)
from tests.taskflow import open_tasks


@pytest.fixture
def env(db_url: str) -> Iterator[ATSEnv]:
    with ats_env(db_url, "ashby") as environment:
        yield environment


def stored(env: ATSEnv) -> int:
    return sum(
        count_deliveries(env.db, status)
        for status in ("pending", "done", "ignored", "failed", "dead")
    )


def test_signed_deliveries_are_accepted_and_bad_signatures_store_nothing(env: ATSEnv) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    assert env.sync().ok
    env.connect_webhooks()
    fake.move_application(org.application_ids[0], fake.stage_id(org.job_ids[0], "Onsite"))
    fake.flush_webhooks()
    sent = env.delivered()
    assert sent and all(d.headers["Ashby-Signature"].startswith("sha256=") for d in sent)
    assert stored(env) == len(sent)
    body, headers = sent[0].body, dict(sent[0].headers)

    # A valid delivery we craft ourselves, signed with the configured secret, is accepted.
    crafted = json.dumps({"action": "ping", "data": {"webhookActionType": "ping"}}).encode()
    ok = {"Content-Type": "application/json", "Ashby-Signature": signature(crafted, env.secret)}
    assert env.post(crafted, ok).status_code == 200
    accepted = stored(env)

    tampered_body = body.replace(b'"Active"', b'"Hired"', 1)
    assert tampered_body != body
    wrong_hex = dict(headers, **{"Ashby-Signature": "sha256=" + "0" * 64})
    other_secret = dict(headers, **{"Ashby-Signature": signature(body, "not-the-secret")})
    unsigned = {k: v for k, v in headers.items() if k != "Ashby-Signature"}
    bare_hex = dict(headers, **{"Ashby-Signature": headers["Ashby-Signature"][len("sha256=") :]})
    for bad_body, bad_headers in (
        (tampered_body, headers),
        (body, wrong_hex),
        (body, other_secret),
        (body, unsigned),
        (body, bare_hex),
    ):
        response = env.post(bad_body, bad_headers)
        assert response.status_code == 401, bad_headers
        assert env.secret not in response.text
    assert stored(env) == accepted  # nothing stored for any of them


def test_an_expired_sync_token_resyncs_to_the_mirror_an_incremental_poll_reached(
    env: ATSEnv,
) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=2, applications_per_job=3)
    assert env.sync().ok  # baseline: full listings, syncTokens stored
    job = org.job_ids[0]
    # Changes only polls see (webhooks are not connected).
    fake.move_application(org.application_ids[0], fake.stage_id(job, "Phone Screen"))
    fake.reject_application(org.application_ids[1])
    _, added = fake.add_candidate_application(
        job, "Grace", "Hopper", "grace@example.com", stage_id=fake.stage_id(job, "Onsite")
    )
    starts = env.clock() + timedelta(days=1)
    interview = fake.schedule_interview(
        added,
        fake.interview_kind_id(job, "Onsite"),
        [org.interviewer_ids[0]],
        starts,
        starts + timedelta(hours=1),
    )
    fake.submit_scorecard(interview, org.interviewer_ids[0])
    fake.add_stage(job, "Take-home Exercise", ["Homework Review"])
    fake.reset_counters()

    incremental = env.sync()
    assert incremental.ok
    assert fake.error_codes == {}
    by_incremental = mirror(env.db)
    tasks_by_incremental = open_situations(env.db)
    assert any(row[0] == added for row in by_incremental["applications"])

    fake.expire_sync_tokens()
    fake.reset_counters()
    resync = env.sync()

    assert resync.ok, resync.error
    assert fake.error_codes["sync_token_expired"] >= 1
    unfiltered = [
        r for r in fake.request_log if r.path == "/application.list" and "syncToken" not in r.body
    ]
    assert unfiltered, "the application listing was read again in full"
    assert mirror(env.db) == by_incremental
    assert open_situations(env.db) == tasks_by_incremental

    # And the next poll is incremental again, from the fresh token.
    fake.reset_counters()
    assert env.sync().ok
    assert fake.error_codes == {}
    assert all("syncToken" in r.body for r in fake.request_log if r.path == "/application.list")


@pytest.mark.parametrize("full", [False, True])
def test_success_false_fails_the_poll_and_never_empties_the_mirror(env: ATSEnv, full: bool) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=3)
    job = org.job_ids[0]
    fake.move_application(org.application_ids[0], fake.stage_id(job, "Phone Screen"))
    assert env.sync().ok
    before, tasks_before = mirror(env.db), open_situations(env.db)
    assert before["applications"] and tasks_before

    for endpoint in ("application.list", "user.list", "interviewSchedule.list"):
        fake.unsuccessful_next(
            path=f"/{endpoint}",
            code="internal_error",
            message="Something went wrong on Ashby's side",
        )
        failed = env.sync(full=full)
        assert not failed.ok
        assert failed.error is not None
        assert f"{endpoint} failed: internal_error: Something went wrong" in failed.error
        assert mirror(env.db) == before
        # Every task stays as it was (the repeated failures add broken_integration, below).
        still = [t for t in open_situations(env.db) if t[0] != "broken_integration"]
        assert still == tasks_before
    assert open_tasks(env.db, "ready_to_schedule")
    (broken,) = open_tasks(env.db, "broken_integration")
    assert broken.detail is not None and "success" not in broken.detail.lower()
    assert "failed: internal_error: Something went wrong" in broken.detail


def test_malformed_and_unknown_deliveries_are_set_aside_and_the_rest_processed(
    env: ATSEnv,
) -> None:
    env.connect_webhooks()

    def post_signed(body: bytes) -> int:
        headers = {
            "Content-Type": "application/json",
            "Ashby-Signature": signature(body, env.secret),
        }
        return env.post(body, headers).status_code

    malformed = b'{"action": "candidateStageChange", "data": '
    unknown = json.dumps({"action": "brandNewEvent", "data": {"thing": {"id": "x"}}}).encode()
    no_application = json.dumps({"action": "applicationUpdate", "data": {"job": {}}}).encode()
    for body in (malformed, unknown, no_application):
        assert post_signed(body) == 200  # acknowledged: Ashby must not retry it forever
    org = seed_organisation(env.fake, jobs=1, applications_per_job=0)

    stats = env.process()

    assert stats.ignored == 3 and stats.failed == 0 and stats.dead == 0
    assert stats.done >= 1
    with transaction(env.db, read_only=True) as session:
        errors = {
            row.last_error
            for row in session.scalars(select(m.InboxDelivery))
            if row.status == IGNORED
        }
    assert "body is not JSON" in errors
    assert any("brandNewEvent" in (e or "") for e in errors)
    assert any("applicationUpdate: unexpected payload" in (e or "") for e in errors)
    assert [t.job_id for t in open_tasks(env.db, "new_job")] == [str(org.job_ids[0])]
