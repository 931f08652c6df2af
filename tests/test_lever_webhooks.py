"""Lever's webhooks through the real app: the signature in the body, stale deliveries, and the
documented request rate kept however many deliveries arrive at once.

The loopback fake Lever signs deliveries as https://hire.lever.co/developer/documentation#webhooks
("Request signing") says: ``signature`` is the hex HMAC-SHA256, keyed with the webhook's
signature token, of ``token + triggeredAt``; it covers neither ``event`` nor ``data``. Deliveries
go to ``POST /webhooks/lever`` (uvicorn on 127.0.0.1) and into the inbox of the real database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.lever.client import DOCUMENTED_RATE
from connectors.lever.webhooks import MAX_SKEW
from taskplanner.inbox import DONE
from taskplanner.sandbox.fake_ats import seed_organisation
from taskplanner.sandbox.fake_lever import BURST, FakeLever, WebhookDelivery, ms
from tests.ats_env import ATSDriver, ATSEnv, ats_env, change_lever_token, count_deliveries
from tests.taskflow import open_tasks

LEVER = "lever"


@pytest.fixture
def env(db_url: str) -> Iterator[ATSEnv]:
    with ats_env(db_url, LEVER) as environment:
        yield environment


def one_stage_change(env: ATSEnv) -> tuple[WebhookDelivery, Any]:
    """A baseline sync, then a candidate moved into Phone Screen: one signed delivery."""
    fake = env.fake
    org = seed_organisation(fake, jobs=1, applications_per_job=0)
    job = org.job_ids[0]
    _, application = fake.add_candidate_application(
        job,
        "Edsger",
        "Dijkstra",
        "ed@example.com",
        stage_id=fake.stage_id(job, "Application Review"),
    )
    assert env.sync().ok
    env.connect_webhooks()
    fake.move_application(application, fake.stage_id(job, "Phone Screen"))
    [delivery] = env.delivered()
    return delivery, application


def edit(body: bytes, **changes: Any) -> bytes:
    document = json.loads(body)
    document.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del document[key]
    return json.dumps(document, separators=(",", ":")).encode()


def test_a_signed_fresh_delivery_is_stored_and_opens_its_task(env: ATSEnv) -> None:
    delivery, application = one_stage_change(env)

    assert delivery.delivered
    assert count_deliveries(env.db) == 1
    assert env.drain().done == 1
    (ready,) = open_tasks(env.db, "ready_to_schedule")
    assert ready.application_id == application


@pytest.mark.parametrize(
    "tamper",
    ["token", "triggeredAt", "signature", "missing signature", "other signature token"],
)
def test_a_tampered_or_unsigned_delivery_is_refused_and_nothing_is_stored(
    env: ATSEnv, tamper: str
) -> None:
    """The signed parts of the body (``token``, ``triggeredAt``) or the signature changed, the
    signature left out, or signed with another webhook's token: 401, and the inbox holds only
    what was stored before."""
    delivery, _ = one_stage_change(env)
    document = json.loads(delivery.body)
    if tamper == "token":
        body, _ = change_lever_token(delivery.body, delivery.headers)
    elif tamper == "triggeredAt":
        body = edit(delivery.body, triggeredAt=document["triggeredAt"] + 1)
    elif tamper == "signature":
        flipped = ("1" if document["signature"][0] == "0" else "0") + document["signature"][1:]
        body = edit(delivery.body, signature=flipped)
    elif tamper == "missing signature":
        body = edit(delivery.body, signature=None)
    else:
        env.fake.configure_webhook(env.webhook_url, "another-webhooks-signature-token")
        env.fake.send_webhook("candidateStageChange", document["data"])
        body = env.fake.webhook_deliveries[-1].body

    answer = env.post(body, delivery.headers)

    assert answer.status_code == 401
    assert count_deliveries(env.db) == 1  # the genuine one, from before
    for secret in env.secrets():
        assert secret not in answer.text


def test_a_stale_delivery_is_refused_even_when_correctly_signed(env: ATSEnv) -> None:
    """A captured delivery replayed later carries its old ``triggeredAt``, which the signature
    covers: older than MAX_SKEW (five minutes) it is refused."""
    _, application = one_stage_change(env)
    stale = datetime.now(UTC) - MAX_SKEW - timedelta(seconds=30)
    data = {"opportunityId": application, "candidateId": application}
    old = env.fake.send_webhook("candidateStageChange", data, triggered_at=ms(stale))
    fresh = env.fake.send_webhook(
        "candidateStageChange", data, triggered_at=ms(datetime.now(UTC) - timedelta(minutes=4))
    )

    assert old is not None and old.status_code == 401
    assert fresh is not None and fresh.status_code == 200
    assert count_deliveries(env.db) == 2


def test_unsigned_data_changed_in_a_copy_is_stored_once_and_only_lever_state_is_kept(
    env: ATSEnv,
) -> None:
    """``data`` is outside the signature: a copy with another opportunity id passes the check,
    but it carries the original's ``token`` (signed), so it is the same delivery and stored
    once; and the connector reads what Lever holds, never what ``data`` claims."""
    delivery, application = one_stage_change(env)
    document = json.loads(delivery.body)
    forged = edit(delivery.body, data={**document["data"], "toStageId": "not-a-stage"})

    assert env.post(forged, delivery.headers).status_code == 200
    assert count_deliveries(env.db) == 1
    env.drain()
    (ready,) = open_tasks(env.db, "ready_to_schedule")
    assert ready.application_id == application


# ---------------------------------------------------------------------------- the rate


def test_a_burst_of_webhooks_never_makes_the_connector_exceed_lever_documented_rate(
    db_url: str,
) -> None:
    """ "Rate Limits": 10 requests per second per API key steady, bursts up to 20. A fake that
    enforces exactly that, 60 candidates applying at once (each delivery read back from the
    API) and three inbox processors working at the same time: the fake never sees more than
    20 requests in any second, never answers 429, and everything is processed."""
    driver = ATSDriver(LEVER, lambda clock: FakeLever(clock=clock))
    with ats_env(db_url, LEVER, driver=driver) as env:
        fake = env.fake
        assert isinstance(fake, FakeLever)
        assert "requests_per_second" not in env.settings.table  # Lever's own rate applies
        org = seed_organisation(fake, jobs=1, applications_per_job=0)
        job = org.job_ids[0]
        assert env.sync().ok
        env.connect_webhooks()
        phone = fake.stage_id(job, "Phone Screen")
        applicants = 60
        for n in range(applicants):
            fake.add_candidate_application(
                job, "Cand", f"No{n}", f"c{n}@example.com", stage_id=phone
            )
        assert count_deliveries(env.db) == applicants  # one applicationCreated each
        fake.reset_counters()

        started = time.monotonic()
        workers = [threading.Thread(target=_drain, args=(env, f"worker-{n}")) for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        elapsed = time.monotonic() - started

        assert count_deliveries(env.db, DONE) == applicants
        assert len(open_tasks(env.db, "ready_to_schedule")) == applicants
        # At least one read per application (a delivery parsed in a chunk that ran out of
        # time is parsed again with the next one).
        reads = sum(fake.requests.values())
        assert reads >= applicants
        assert fake.statuses[429] == 0
        assert fake.max_requests_per_second() <= BURST
        # Sustained, the steady rate holds: 60 reads cannot have taken much under 5 seconds.
        assert elapsed >= (reads - BURST) / DOCUMENTED_RATE * 0.9


def _drain(env: ATSEnv, owner: str) -> None:
    processor = env.runtime.inbox_processor(owner)
    while processor.run_once(limit=10).total:
        pass
