"""Greenhouse end to end: the loopback fake Greenhouse sends signed webhooks to the real app
(uvicorn on 127.0.0.1) and answers the real connector's polls; deliveries go through the
durable inbox into the real database (SQLite and PostgreSQL), and tasks open and close the
way a coordinator would see them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from taskplanner.inbox import DONE, IGNORED, store_delivery
from taskplanner.sandbox.fake_greenhouse import (
    FakeGreenhouse,
    WebhookDelivery,
    WebhookRecorder,
    greenhouse_json,
    seed_organisation,
    sign,
)
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.greenhouse_env import (
    GREENHOUSE,
    GreenhouseEnv,
    SleepRecorder,
    clear_database,
    count_deliveries,
    greenhouse_env,
    make_connector,
    mirror,
    open_situations,
)
from tests.taskflow import history, only_task, open_tasks, tasks

REPO = Path(__file__).resolve().parents[1]
Outcome = tuple[list[tuple[str, str, str]], dict[str, list[tuple[Any, ...]]]]
CORA, ADA = "cora@acme.example", "ada@acme.example"
# RFC 4231 test case 2 (HMAC-SHA256). Greenhouse documents the algorithm and shows a header
# value, but publishes no key/body/signature triple to check against; this vector stands in.
RFC4231_KEY = "Jefe"
RFC4231_BODY = b"what do ya want for nothing?"
RFC4231_SIGNATURE = "sha256 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@pytest.fixture
def env(db_url: str) -> Iterator[GreenhouseEnv]:
    with greenhouse_env(db_url) as environment:
        yield environment


def inbox(db: Engine) -> list[m.InboxDelivery]:
    with transaction(db, read_only=True) as session:
        return list(session.scalars(select(m.InboxDelivery).order_by(m.InboxDelivery.id)))


def delivered(fake: FakeGreenhouse) -> list[WebhookDelivery]:
    return [d for d in fake.webhook_deliveries if d.delivered]


def flip_byte(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# ---------------------------------------------------------------------------- 1. the endpoint


def test_signed_deliveries_are_stored_and_tampered_ones_are_refused(db_url: str) -> None:
    with greenhouse_env(db_url, secret=RFC4231_KEY) as env:
        env.connect_webhooks()
        job_id = env.fake.create_job("Développeur·se Frontend")
        env.fake.publish_job(job_id, content="<p>Café & crème</p>")
        sent = env.fake.webhook_deliveries[-1]
        body, headers = sent.body, sent.headers

        # Greenhouse escapes <, > and & and sends non-ASCII as UTF-8: re-serialising the JSON
        # changes the bytes the signature covers.
        assert b"\\u003cp\\u003e" in body and "é".encode() in body
        reserialised = json.dumps(json.loads(body)).encode()
        assert reserialised != body
        assert [d.status_code for d in env.fake.webhook_deliveries] == [200, 200]
        stored = inbox(env.db)
        assert [(row.delivery_id, row.body) for row in stored][-1] == (sent.event_id, body)

        def refused(body: bytes, signature: str | None, event_id: str) -> int:
            tampered = {**headers, "Greenhouse-Event-ID": event_id}
            tampered.pop("Signature")
            if signature is not None:
                tampered["Signature"] = signature
            return env.post(body, tampered).status_code

        signature = headers["Signature"]
        last = signature[-1]
        assert refused(flip_byte(body, len(body) // 2), signature, "t1") == 401
        assert refused(flip_byte(body, 0), signature, "t2") == 401
        assert refused(body, signature[:-1] + ("0" if last != "0" else "1"), "t3") == 401
        assert refused(body, sign(reserialised, RFC4231_KEY), "t4") == 401
        assert refused(reserialised, signature, "t5") == 401
        assert refused(body, None, "t6") == 401
        assert refused(body, signature.replace("sha256 ", "sha256="), "t7") == 401
        assert len(inbox(env.db)) == len(stored)  # nothing stored for any of them

        # Greenhouse retries a delivery with the same event id: stored once.
        again = env.fake.redeliver(sent)
        assert again.status_code == 200
        assert len(inbox(env.db)) == len(stored)

        # The RFC 4231 vector, end to end: the right signature over those exact bytes.
        answer = env.post(RFC4231_BODY, {"Signature": RFC4231_SIGNATURE})
        assert answer.status_code == 200
        assert inbox(env.db)[-1].body == RFC4231_BODY
        assert sign(RFC4231_BODY, RFC4231_KEY) == RFC4231_SIGNATURE


def test_unknown_connector_is_404_and_oversized_bodies_are_413(env: GreenhouseEnv) -> None:
    ping = greenhouse_json({"action": "ping", "payload": {}})
    assert env.post(ping, env.signed_headers(ping, "p1"), connector="lever").status_code == 404

    limit = env.runtime.config.server.max_body_bytes
    huge = greenhouse_json({"action": "ping", "payload": {"pad": "x" * limit}})
    assert len(huge) > limit
    assert env.post(huge, env.signed_headers(huge, "big")).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for start in range(0, len(huge), 65_536):
            yield huge[start : start + 65_536]

    streamed = env.http.post(
        env.webhook_url, content=chunks(), headers=env.signed_headers(huge, "b")
    )
    assert streamed.status_code == 413
    assert inbox(env.db) == []

    assert env.post(ping, env.signed_headers(ping, "p2")).status_code == 200
    assert len(inbox(env.db)) == 1


def test_malformed_and_unknown_deliveries_are_set_aside_without_blocking_the_rest(
    env: GreenhouseEnv,
) -> None:
    env.connect_webhooks()
    malformed = b'{"action": "candidate_stage_change", "payload": '
    unknown = greenhouse_json({"action": "brand_new_event", "payload": {"id": 1}})
    assert env.post(malformed, env.signed_headers(malformed, "bad-json")).status_code == 200
    assert env.post(unknown, env.signed_headers(unknown, "unknown")).status_code == 200
    assert env.fake.send_ping() is not None
    job_id = env.fake.create_job("Data Scientist", coordinator_id=None)
    assert [d.status_code for d in env.fake.webhook_deliveries] == [200, 200]

    stats = env.process()

    assert (stats.done, stats.ignored, stats.failed, stats.dead) == (2, 2, 0, 0)
    rows = {row.delivery_id: row for row in inbox(env.db)}
    assert (rows["bad-json"].status, rows["bad-json"].last_error) == (IGNORED, "body is not JSON")
    assert rows["unknown"].status == IGNORED
    assert "brand_new_event" in (rows["unknown"].last_error or "")
    ping, created = (rows[d.event_id] for d in env.fake.webhook_deliveries)
    assert (ping.status, ping.event_type) == (DONE, "ping")
    assert (created.status, created.event_type) == (DONE, "job_created")
    assert [t.job_id for t in open_tasks(env.db, "new_job")] == [str(job_id)]
    assert env.process().total == 0  # set aside for a person, never retried on its own


# ---------------------------------------------------------------------------- 3. end to end


def test_tasks_open_and_close_through_webhooks_polls_and_the_sweep(env: GreenhouseEnv) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=0)
    job = org.job_ids[0]
    review, phone, onsite = (
        fake.stage_id(job, name) for name in ("Application Review", "Phone Screen", "Onsite")
    )
    first, second = (
        fake.add_candidate_application(job, "Ada", name, f"{name}@example.com", stage_id=review)[1]
        for name in ("Lovelace", "Hopper")
    )
    baseline = env.sync()
    assert baseline.ok and baseline.snapshots > 0
    assert open_situations(env.db) == []  # what existed before taskplanner opens nothing
    env.connect_webhooks()

    # Webhook: the stage change is stored by POST /webhooks and one cycle opens the task.
    fake.move_application(first, phone)
    assert delivered(fake)[-1].action == "candidate_stage_change"
    assert env.process().done == 1
    (ready,) = open_tasks(env.db, "ready_to_schedule")
    assert (ready.application_id, ready.stage_id, ready.assignee) == (str(first), str(phone), CORA)

    # Webhooks off: the next poll finds the move.
    fake.webhooks_enabled = False
    fake.move_application(second, onsite)
    assert env.process().total == 0
    assert env.sync().ok
    found = {t.application_id: t for t in open_tasks(env.db, "ready_to_schedule")}
    assert found[str(second)].stage_id == str(onsite)

    # Greenhouse sends no webhook for a scheduled interview: the poll closes the task.
    starts = env.clock() + timedelta(hours=1)
    ivy = org.interviewer_ids[0]
    interview = fake.schedule_interview(
        first,
        fake.interview_kind_id(job, "Phone Screen"),
        [ivy],
        starts,
        starts + timedelta(hours=1),
    )
    assert env.sync().ok
    done = {t.application_id: t for t in tasks(env.db, "ready_to_schedule")}[str(first)]
    assert (done.status, done.resolution) == ("completed", "action_taken")

    # Rejecting the candidate makes their open tasks obsolete.
    fake.webhooks_enabled = True
    fake.reject_application(second)
    assert env.process().done == 1
    rejected = {t.application_id: t for t in tasks(env.db, "ready_to_schedule")}[str(second)]
    assert (rejected.status, rejected.resolution) == ("completed", "obsolete")
    assert open_tasks(env.db, "ready_to_schedule") == []

    # A new job opens new_job (webhook); its own stages open nothing when the poll learns them;
    # a stage added later (poll only: no webhook exists for it) opens new_stage.
    new_job = fake.create_job(
        "Site Reliability Engineer",
        recruiter_id=org.recruiter_id,
        coordinator_id=org.coordinator_id,
    )
    assert env.process().done == 1
    (new_job_task,) = open_tasks(env.db, "new_job")
    assert (new_job_task.job_id, new_job_task.assignee) == (str(new_job), CORA)
    assert env.sync().ok
    assert open_tasks(env.db, "new_stage") == []
    assert open_tasks(env.db, "new_interview") == []
    take_home = fake.add_stage(new_job, "Take-home Exercise", ["Homework Review"])
    assert env.process().total == 0
    assert env.sync().ok
    (new_stage,) = open_tasks(env.db, "new_stage")
    assert (new_stage.job_id, new_stage.stage_id, new_stage.assignee) == (
        str(new_job),
        str(take_home),
        CORA,
    )

    # Two days later Ivy still owes a scorecard: the sweep opens pending_evaluation for the
    # stage owner; the submitted scorecard (poll only) closes it.
    env.runtime.pipeline.sweep_now()
    assert open_tasks(env.db, "pending_evaluation") == []
    env.clock.advance(timedelta(days=2))
    env.runtime.pipeline.sweep_now()
    (pending,) = open_tasks(env.db, "pending_evaluation")
    assert (pending.schedule_id, pending.attendee, pending.assignee) == (
        str(interview),
        "ivy@acme.example",
        CORA,
    )
    fake.submit_scorecard(interview, ivy)
    assert env.sync().ok
    evaluated = only_task(env.db, "pending_evaluation")
    assert (evaluated.status, evaluated.resolution) == ("completed", "action_taken")


# ---------------------------------------------------------------------------- 2. replays


FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Radia")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen")


def drive_organisation(fake: FakeGreenhouse, rng: random.Random, count: int) -> None:
    """Change the fake organisation at random until it has sent ``count`` webhooks.

    Every kind of change Greenhouse announces by webhook and the engine acts on: stage moves
    (into and out of scheduling stages), new applications, rejections and their undoing, hires
    and their undoing, deleted applications and candidates, new and closed jobs, job posts,
    cancelled interviews, pings. Left out: renaming a job (job webhooks carry no updated_at, so
    two job_updated deliveries cannot be ordered; the next poll repairs the name) and removing
    a stage (a random walk would keep moving candidates into it).
    """
    created_jobs: list[int] = []
    coordinator = fake.user_id("cora@acme.example")
    recruiter = fake.user_id("rick@acme.example")
    while len(delivered(fake)) < count:
        applications = fake.records("applications")
        by_status: dict[str, list[int]] = {}
        for application in applications:
            by_status.setdefault(application["status"], []).append(int(application["id"]))
        active, rejected = by_status.get("active", []), by_status.get("rejected", [])
        hired = by_status.get("hired", [])
        open_jobs = [int(j["id"]) for j in fake.records("jobs") if j["status"] == "open"]
        interviews = [int(i["id"]) for i in fake.records("interviews")]
        roll = rng.random()
        if roll < 0.36 and active:
            application_id = rng.choice(active)
            record = fake.record("applications", application_id)
            stages = fake.stage_ids(int(record["job_id"]))
            target = [s for s in stages if s != record["job_interview_stage_id"]]
            fake.move_application(application_id, rng.choice(target))
        elif roll < 0.48 and open_jobs:
            job_id = rng.choice(open_jobs)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}.{rng.randrange(10_000)}@example.com".lower()
            stage = rng.choice(fake.stage_ids(job_id)[:-1])
            fake.add_candidate_application(job_id, first, last, email, stage_id=stage)
        elif roll < 0.58 and active:
            fake.reject_application(rng.choice(active))
        elif roll < 0.64 and rejected:
            fake.unreject_application(rng.choice(rejected))
        elif roll < 0.68 and active:
            fake.hire(rng.choice(active))
        elif roll < 0.70 and hired:
            fake.unhire(rng.choice(hired))
        elif roll < 0.73:
            name = f"{rng.choice(('Backend', 'Data', 'Design'))} role {len(created_jobs) + 1}"
            created_jobs.append(
                fake.create_job(name, recruiter_id=recruiter, coordinator_id=coordinator)
            )
        elif roll < 0.76 and open_jobs:
            fake.publish_job(rng.choice(open_jobs), content="<p>Join us & grow</p>")
        elif roll < 0.78 and set(created_jobs) & set(open_jobs):
            fake.close_job(rng.choice(sorted(set(created_jobs) & set(open_jobs))))
        elif roll < 0.82 and interviews:
            fake.cancel_interview(rng.choice(interviews))
        elif roll < 0.86 and applications:
            fake.delete_application(int(rng.choice(applications)["id"]))
        elif roll < 0.88 and applications:
            fake.delete_candidate(int(rng.choice(applications)["candidate_id"]))
        elif roll < 0.90:
            fake.send_ping()


def test_replayed_and_shuffled_deliveries_give_the_same_tasks_and_mirror(
    env: GreenhouseEnv,
) -> None:
    fake = env.fake
    rng = random.Random(20260301)
    org = seed_organisation(fake, jobs=2, applications_per_job=6, seed=3)
    starts = env.clock() + timedelta(days=3)
    for application_id in org.application_ids[::2]:
        record = fake.record("applications", application_id)
        stage = next(
            s["name"]
            for s in fake.records("job_interview_stages")
            if s["id"] == record["job_interview_stage_id"]
        )
        fake.schedule_interview(
            application_id,
            fake.interview_kind_id(int(record["job_id"]), stage),
            [org.interviewer_ids[0]],
            starts,
            starts + timedelta(hours=1),
        )
    # Deletions carry no time in Greenhouse's payload, so the connector dates them at parse
    # time; a fixed parse clock (before every provider time) keeps that out of the comparison.
    parse_time = datetime(2020, 1, 1, tzinfo=UTC)
    connector = make_connector(fake, clock=lambda: parse_time)
    env.runtime.use_connector(GREENHOUSE, connector)
    baseline = [
        s for page in connector.poll({}, started_at=env.clock(), full=True) for s in page.snapshots
    ]

    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, env.secret)
        drive_organisation(fake, rng, 200)
    deliveries = delivered(fake)
    assert len(deliveries) == 200
    assert len({d.action for d in deliveries}) >= 10

    def run(sequence: list[WebhookDelivery], senders: int) -> Outcome:
        clear_database(env.db)
        env.runtime.pipeline.ingest_now(baseline, baseline=True)

        def send(delivery: WebhookDelivery) -> int:
            return env.post(delivery.body, delivery.headers).status_code

        with ThreadPoolExecutor(senders) as pool:
            assert set(pool.map(send, sequence)) == {200}
        env.drain()
        with transaction(env.db, read_only=True) as session:
            query = select(m.InboxDelivery.status, func.count()).group_by(m.InboxDelivery.status)
            assert dict(session.execute(query).all()) == {DONE: 200}  # duplicates stored once
        return open_situations(env.db), mirror(env.db)

    open_in_order, mirror_in_order = run(deliveries, senders=1)
    opened_in_order = len(tasks(env.db))
    # Twice each, shuffled, and four at a time: copies of one delivery race each other too.
    twice = deliveries * 2
    rng.shuffle(twice)
    open_shuffled, mirror_shuffled = run(twice, senders=4)

    # Open tasks and the mirror, not every task ever opened: in order, a candidate moved into
    # Phone Screen and on to Offer gets a ready_to_schedule that the move makes obsolete; a
    # shuffled run that sees the later move first never opens it. Both end in the same state.
    assert opened_in_order > len(open_in_order) > 0
    assert open_shuffled == open_in_order
    for table, rows in mirror_in_order.items():
        assert mirror_shuffled[table] == rows, table


# ---------------------------------------------------------------------------- 4. faults


def test_throttling_and_server_errors_are_retried_and_nothing_is_lost(env: GreenhouseEnv) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=2, applications_per_job=5)
    starts = env.clock() + timedelta(days=1)
    job = org.job_ids[0]
    interview = fake.schedule_interview(
        org.application_ids[0],
        fake.interview_kind_id(job, "Onsite"),
        org.interviewer_ids[:2],
        starts,
        starts + timedelta(hours=1),
    )
    fake.submit_scorecard(interview, org.interviewer_ids[0])
    env.runtime.use_connector(GREENHOUSE, make_connector(fake))
    assert env.sync().ok
    clean = mirror(env.db)
    assert clean["applications"] and clean["schedules"] and clean["scorecards"]
    clear_database(env.db)

    sleeps = SleepRecorder()
    env.runtime.use_connector(GREENHOUSE, make_connector(fake, sleeps=sleeps, per_page=2))
    fake.throttle_next(times=4, retry_after=7, path="/v3/applications")
    fake.throttle_next(times=3, retry_after=2, path="/v3/users")
    fake.fail_next(500, times=3, path="/v3/jobs")
    fake.fail_next(502, times=1, path="/token")
    fake.fail_next(503, times=2, path="/v3/interviews")
    report = env.sync()

    assert report.ok, report.error
    assert fake.pending_faults == 0
    assert mirror(env.db) == clean
    assert sleeps.calls.count(7.0) == 4 and sleeps.calls.count(2.0) == 3  # Retry-After honoured
    backoff = [s for s in sleeps.calls if s not in (7.0, 2.0)]
    assert len(backoff) == 6 and all(0 < s < 1 for s in backoff)
    # Exponential backoff with jitter, in poll order: the token's 502, /v3/jobs' three 500s in
    # a row (each wait about twice the one before), then /v3/interviews' two 503s.
    _, *jobs_waits, first_503, second_503 = backoff
    assert jobs_waits == sorted(jobs_waits) and first_503 < second_503
    assert open_tasks(env.db, "broken_integration") == []


def integration_health(db: Engine) -> m.IntegrationHealth:
    with Session(db) as session:
        row = session.get(m.IntegrationHealth, GREENHOUSE)
        assert row is not None
        return row


def test_revoked_credentials_open_broken_integration_at_once_and_restoring_closes_it(
    env: GreenhouseEnv,
) -> None:
    fake = env.fake
    seed_organisation(fake, jobs=1, applications_per_job=2)
    sleeps = SleepRecorder()
    env.runtime.use_connector(GREENHOUSE, make_connector(fake, sleeps=sleeps))
    assert env.sync().ok

    fake.revoke_credentials()
    failed = env.sync()

    assert not failed.ok
    assert sleeps.calls == []  # rejected credentials are fatal: no retry, no waiting
    (task,) = open_tasks(env.db, "broken_integration")
    assert (task.integration, task.assignee) == (GREENHOUSE, ADA)
    assert task.detail is not None and "greenhouse" in task.detail and "401" in task.detail
    health = integration_health(env.db)
    assert health.state == "broken" and health.last_error == task.detail
    for secret in (fake.client_secret, env.secret, "Bearer", "Basic"):
        assert secret not in task.detail
    for token in list(fake._tokens):  # every access token the fake ever issued
        assert token not in task.detail
    assert not env.sync().ok
    assert len(tasks(env.db, "broken_integration")) == 1  # one situation, one task

    fake.restore_credentials()
    assert env.sync().ok

    closed = only_task(env.db, "broken_integration")
    assert (closed.status, closed.resolution) == ("completed", "action_taken")
    assert [e.action for e in history(env.db, closed.id)] == ["opened", "completed"]
    assert integration_health(env.db).state == "ok"


def test_repeated_failures_open_broken_integration_at_the_threshold(env: GreenhouseEnv) -> None:
    fake = env.fake
    seed_organisation(fake, jobs=1, applications_per_job=1)
    connector = make_connector(fake)
    connector.policy.max_attempts = 2
    env.runtime.use_connector(GREENHOUSE, connector)
    assert env.sync().ok
    threshold = env.runtime.config.rules.integration_failure_threshold
    fake.fail_next(500, times=2 * threshold, path="/v3/users")

    for _ in range(threshold - 1):
        assert not env.sync().ok
        assert integration_health(env.db).state == "failing"
        assert open_tasks(env.db, "broken_integration") == []
    assert not env.sync().ok

    (task,) = open_tasks(env.db, "broken_integration")
    assert task.detail is not None and "gave up after 2 attempts" in task.detail
    assert env.sync().ok
    assert only_task(env.db, "broken_integration").resolution == "action_taken"


# A worker of its own: processes the inbox of the database named on the command line until it
# is empty (or killed). Claims few at a time so that, killed, it leaves leases behind.
WORKER = """
import sys
from taskplanner.runtime import Runtime
from tests.greenhouse_env import greenhouse_config

db_url, fake_url, secret = sys.argv[1:4]
runtime = Runtime.from_config(greenhouse_config(db_url, fake_url, secret=secret), migrate=False)
processor = runtime.inbox_processor("doomed-worker")
print("ready", flush=True)
while processor.run_once(limit=25).total:
    pass
"""


def test_a_killed_processor_leaves_every_delivery_to_be_processed_exactly_once(
    env: GreenhouseEnv,
) -> None:
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=0)
    job = org.job_ids[0]
    assert env.sync().ok  # baseline: the stages are known
    phone = fake.stage_id(job, "Phone Screen")
    backlog = 250
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, env.secret)
        for n in range(backlog):
            fake.add_candidate_application(
                job, "Cand", f"No{n}", f"c{n}@example.com", stage_id=phone
            )
    with transaction(env.db) as session:
        for request in recorder.received:
            store_delivery(
                session,
                connector=GREENHOUSE,
                delivery_id=request.headers["Greenhouse-Event-ID"],
                headers=request.headers,
                body=request.body,
                now=env.clock(),
            )
    assert count_deliveries(env.db) == backlog

    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WORKER, env.runtime.config.database.url, fake.base_url, env.secret],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while count_deliveries(env.db, DONE) < 40:
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(timeout=10)
    processed_before = count_deliveries(env.db, DONE)
    assert 0 < processed_before < backlog  # killed mid-way, with claimed deliveries left

    env.clock.advance(timedelta(minutes=2))  # past the dead worker's leases
    env.drain()

    rows = inbox(env.db)
    assert [(r.status, r.attempts) for r in rows] == [(DONE, 1)] * backlog
    opened = tasks(env.db, "ready_to_schedule")
    assert len(opened) == backlog
    assert len({t.key for t in opened}) == backlog
    assert all([e.action for e in history(env.db, t.id)] == ["opened"] for t in opened)


def test_processing_stops_between_transactions_and_leaves_the_rest_claimed(
    env: GreenhouseEnv,
) -> None:
    env.connect_webhooks()
    for _ in range(5):
        env.fake.send_ping()
    processor = env.processor(batch_seconds=0)  # one delivery per transaction
    ids = processor.claim(10)
    assert len(ids) == 5
    asked = iter([False, False, True])

    stats, left = processor.process_claimed(ids, stop=lambda: next(asked, True))

    # Two transactions ran (one delivery each); the daemon releases what is left at shutdown.
    assert (stats.done, left) == (2, ids[2:])
    assert [row.status for row in inbox(env.db)] == [
        "done",
        "done",
        "pending",
        "pending",
        "pending",
    ]
    stats, left = processor.process_claimed(left)
    assert (stats.done, left) == (3, [])


def test_a_delivery_the_database_refuses_fails_alone_and_its_chunk_is_processed(
    env: GreenhouseEnv,
) -> None:
    if env.db.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL character; PostgreSQL refuses it, as needed here")
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=0)
    job = org.job_ids[0]
    assert env.sync().ok
    phone = fake.stage_id(job, "Phone Screen")
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, env.secret)
        for n in range(5):
            fake.add_candidate_application(job, "Cand", f"N{n}", f"c{n}@x.example", stage_id=phone)
    received = [(dict(r.headers), r.body) for r in recorder.received]
    # The third one names its candidate with a NUL character, which PostgreSQL refuses.
    poisoned = json.loads(received[2][1])
    poisoned["payload"]["application"]["candidate"]["first_name"] = "Ca\u0000nd"
    body = json.dumps(poisoned).encode()
    received[2] = ({**received[2][0], "Signature": sign(body, env.secret)}, body)
    with transaction(env.db) as session:
        for headers, body in received:
            store_delivery(
                session,
                connector=GREENHOUSE,
                delivery_id=headers["Greenhouse-Event-ID"],
                headers=headers,
                body=body,
                now=env.clock(),
            )

    stats = env.processor(batch_seconds=60).run_once()  # one chunk for all five

    assert (stats.done, stats.failed) == (4, 1)
    rows = inbox(env.db)
    assert [r.status for r in rows] == [DONE, DONE, "pending", DONE, DONE]
    assert rows[2].attempts == 1 and "NUL" in (rows[2].last_error or "")
    assert rows[2].next_attempt_at > env.clock()  # retried later, with backoff
    opened = open_tasks(env.db, "ready_to_schedule")
    assert len(opened) == 4
    assert all([e.action for e in history(env.db, t.id)] == ["opened"] for t in opened)
