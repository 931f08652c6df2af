"""Greenhouse end to end, what only Greenhouse has: its ``Signature`` header over the exact bytes
(Unicode escapes included), ``Greenhouse-Event-ID``, the set-up ping, its payloads and v3
paths. The loopback fake Greenhouse talks to the real app (uvicorn on 127.0.0.1) and the real
database (SQLite and PostgreSQL). The scenarios every ATS shares are in ``test_ats_e2e.py``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from taskplanner.inbox import DONE, IGNORED, store_delivery
from taskplanner.sandbox.fake_greenhouse import (
    WebhookRecorder,
    greenhouse_json,
    seed_organisation,
    sign,
)
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.ats_env import SleepRecorder, clear_database, mirror
from tests.greenhouse_env import GREENHOUSE, GreenhouseEnv, greenhouse_env, make_connector
from tests.taskflow import history, open_tasks, tasks

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


# ---------------------------------------------------------------------------- 2. faults


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
        pytest.skip("SQLite stores any key; PostgreSQL's index refuses a huge one, as needed here")
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
    # The third one gives its candidate an id of 6,000 random characters: PostgreSQL's btree
    # index refuses keys over 2,704 bytes. (A NUL character, which PostgreSQL refuses too, is
    # cleaned before it reaches the database.)
    poisoned = json.loads(received[2][1])
    poisoned["payload"]["application"]["candidate"]["id"] = secrets.token_hex(3_000)
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
    assert rows[2].attempts == 1 and "index row" in (rows[2].last_error or "")
    assert rows[2].next_attempt_at > env.clock()  # retried later, with backoff
    opened = open_tasks(env.db, "ready_to_schedule")
    assert len(opened) == 4
    assert all([e.action for e in history(env.db, t.id)] == ["opened"] for t in opened)


# ---------------------------------------------------------------------------- 3. provider edges


def schedule_statuses(db: Engine) -> dict[str, str]:
    with transaction(db, read_only=True) as session:
        return {s.id: s.status for s in session.scalars(select(m.Schedule))}


def test_narrow_sweep_drops_a_silently_cancelled_interview_and_keeps_past_ones(
    env: GreenhouseEnv,
) -> None:
    """Issue 13 §9: the sweep covers only interviews ending after now - grace; what it does not
    cover (long-past interviews) is not taken for deleted."""
    fake = env.greenhouse
    org = seed_organisation(fake, jobs=1, applications_per_job=2)
    kind = fake.interview_kind_id(org.job_ids[0], "Phone Screen")
    application = org.application_ids[0]
    now = env.clock()
    past = fake.schedule_interview(
        application,
        kind,
        org.interviewer_ids[:1],
        now - timedelta(days=40),
        now - timedelta(days=40) + timedelta(hours=1),
    )
    upcoming = fake.schedule_interview(
        application,
        kind,
        org.interviewer_ids[:1],
        now + timedelta(days=2),
        now + timedelta(days=2, hours=1),
    )
    env.runtime.use_connector(GREENHOUSE, make_connector(fake))
    assert env.sync().ok
    fake.cancel_interview(upcoming)  # webhooks not connected: only the sweep can tell

    assert env.sync().ok

    statuses = schedule_statuses(env.db)
    assert statuses[str(past)] != "deleted"
    assert statuses[str(upcoming)] == "deleted"


def cursors(db: Engine) -> dict[str, str]:
    with transaction(db, read_only=True) as session:
        return {c.partition: c.cursor for c in session.scalars(select(m.SyncCursor))}


def health_state(db: Engine) -> str:
    with transaction(db, read_only=True) as session:
        row = session.get(m.IntegrationHealth, GREENHOUSE)
        assert row is not None
        return row.state


def test_a_long_storm_of_bare_429s_ends_as_failing_then_recovers_with_its_cursors(
    env: GreenhouseEnv,
) -> None:
    """Issue 13 §3: bare 429s (Harvest sends no Retry-After) are waited out a window at a
    time; a storm longer than the connector's patience fails the poll without moving a
    cursor, and the next poll after it picks up what changed meanwhile."""
    fake = env.greenhouse
    org = seed_organisation(fake, jobs=1, applications_per_job=2)
    sleeps = SleepRecorder()
    env.runtime.use_connector(GREENHOUSE, make_connector(fake, sleeps=sleeps))
    assert env.sync().ok
    before = cursors(env.db)

    fake.throttle_next(times=10_000, retry_after=None)
    report = env.sync()

    assert not report.ok
    assert "429" in (report.error or "")
    assert health_state(env.db) == "failing"
    assert cursors(env.db) == before
    assert sleeps.calls and all(10.0 <= s <= 12.0 for s in sleeps.calls)
    assert sum(sleeps.calls) >= 300  # patience: minutes of throttling, not seconds

    fake.clear_faults()
    moved = org.application_ids[0]
    target = fake.stage_id(org.job_ids[0], "Onsite")
    fake.move_application(moved, target)
    assert env.sync().ok
    assert health_state(env.db) == "ok"
    with transaction(env.db, read_only=True) as session:
        application = session.get(m.Application, str(moved))
        assert application is not None and application.stage_id == str(target)


def test_webhook_for_a_job_no_poll_has_brought_opens_ready_to_schedule_at_once(
    env: GreenhouseEnv,
) -> None:
    """Issue 13 §1: the delivery names the job (``jobs[0]``) and the stage (``current_stage``
    id and name); a stage enabled by name opens ready_to_schedule from the webhook alone,
    while Harvest is unreachable, and the poll bringing the job later opens nothing twice."""
    fake = env.greenhouse
    seed_organisation(fake, jobs=1, applications_per_job=0)
    assert env.sync().ok
    env.connect_webhooks(enabled=False)
    job = fake.create_job("Site Reliability Engineer")  # no webhook reaches us, no poll runs
    env.connect_webhooks()
    fake.fail_next(503, times=10_000)  # Harvest unreachable: only webhooks arrive
    phone = fake.stage_id(job, "Phone Screen")
    _, application = fake.add_candidate_application(
        job, "Grace", "Hopper", "grace@example.com", stage_id=phone
    )

    assert env.process().done >= 1

    (ready,) = open_tasks(env.db, "ready_to_schedule")
    assert (ready.application_id, ready.stage_id) == (str(application), str(phone))
    fake.clear_faults()
    opened_before = {(t.category, t.key) for t in tasks(env.db)}

    assert env.sync().ok

    assert {(t.category, t.key) for t in tasks(env.db)} == opened_before
    assert [t.application_id for t in open_tasks(env.db, "ready_to_schedule")] == [str(application)]
    with transaction(env.db, read_only=True) as session:
        stages = session.scalars(select(m.Stage).where(m.Stage.job_id == str(job))).all()
        assert [s.name for s in sorted(stages, key=lambda s: s.position)] == [
            "Application Review",
            "Phone Screen",
            "Technical Interview",
            "Onsite",
            "Offer",
        ]


def test_an_interviewer_harvest_shows_without_email_still_gets_their_decline_task(
    env: GreenhouseEnv,
) -> None:
    """Issue 13 §2: the v3 interviewers row may carry ``email: null``; its ``user_id`` still
    names the interviewer, so their decline opens interviewer_declined as for anyone."""
    fake = env.greenhouse
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    igor = org.interviewer_ids[1]
    starts = env.clock() + timedelta(days=2)
    interview = fake.schedule_interview(
        org.application_ids[0],
        fake.interview_kind_id(org.job_ids[0], "Onsite"),
        [igor],
        starts,
        starts + timedelta(hours=1),
    )
    fake.hide_interviewer_email(interview, igor)
    env.runtime.use_connector(GREENHOUSE, make_connector(fake))
    assert env.sync().ok

    fake.set_interviewer_response(interview, igor, "declined")
    assert env.sync().ok

    (declined,) = open_tasks(env.db, "interviewer_declined")
    assert (declined.schedule_id, declined.attendee) == (str(interview), "igor@acme.example")


def scorecard_rows(db: Engine) -> set[tuple[str | None, str, bool]]:
    with transaction(db, read_only=True) as session:
        return {
            (s.schedule_id, s.interviewer_email, s.submitted)
            for s in session.scalars(select(m.Scorecard))
        }


def test_drafts_greenhouse_drops_silently_leave_the_same_mirror_whether_a_poll_saw_them(
    env: GreenhouseEnv,
) -> None:
    """Greenhouse keeps one placeholder (draft) scorecard per assigned interviewer (v3
    ``/v3/interviewers``: "one placeholder scorecard per assigned interviewer") and removes it
    when the interview is cancelled ("the scorecard is removed from the interviewer's
    dashboard", support.greenhouse.io/hc/en-us/articles/360021800692); ``scorecard_deleted``
    fires only when one scorecard is deleted by hand or through the API
    (grnhse/greenhouse-api-docs source/includes/webhooks/_interview_events.md), and an
    ``updated_at`` poll never sees a deletion. So the mirror must not depend on whether a poll
    read a draft before it went: interview A's drafts were read, B's never were, and both end
    as the submitted scorecard only; cancelled C leaves nothing."""
    fake = env.greenhouse
    org = seed_organisation(fake, jobs=1, applications_per_job=3)
    ivy, igor = org.interviewer_ids[:2]
    kind = fake.interview_kind_id(org.job_ids[0], "Onsite")
    starts = env.clock() + timedelta(days=2)

    def interview(application: int) -> int:
        return fake.schedule_interview(
            application, kind, [ivy, igor], starts, starts + timedelta(hours=1)
        )

    seen, cancelled = interview(org.application_ids[0]), interview(org.application_ids[1])
    env.runtime.use_connector(GREENHOUSE, make_connector(fake))
    assert env.sync().ok  # reads the drafts of `seen` and `cancelled`
    unseen = interview(org.application_ids[2])
    for removed_from in (seen, unseen):
        fake.remove_interviewer(removed_from, igor)  # igor's draft goes with him
        fake.submit_scorecard(removed_from, ivy)
    fake.cancel_interview(cancelled)  # webhooks not connected: the sweep finds it

    assert env.sync().ok

    assert scorecard_rows(env.db) == {
        (str(seen), "ivy@acme.example", True),
        (str(unseen), "ivy@acme.example", True),
    }
    assert schedule_statuses(env.db)[str(cancelled)] == "deleted"
