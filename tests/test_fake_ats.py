"""Every fake ATS keeps the `FakeATS` contract its drivers (the sandbox organisation, the
end-to-end suites, the ingest benchmark) rely on: it is one, for its provider; changes go out
as signed webhooks its provider's connector accepts; counters count; revoked credentials get
401; faults are answered the way the provider answers them; a capability it lacks is refused.

Parametrised over every fake in this version (the provider registry finds them); checks that
need the provider's connector skip until that connector is here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import FatalConnectorError, WebhookRejected
from connectors.http import RetryPolicy
from taskplanner.config import parse_config
from taskplanner.providers import ATS_TYPES, PROVIDERS
from taskplanner.sandbox.fake_ats import (
    CANDIDATE_COORDINATOR,
    CAPABILITIES,
    DEFAULT_STAGES,
    HARD_DELETES,
    HIRING_TEAM_COORDINATOR,
    INTERVIEWER_RSVP,
    JOB_PUBLISHING,
    STAGE_REMOVAL,
    FakeATS,
    FakeATSError,
    NotSupportedByProvider,
    SignedDelivery,
    seed_organisation,
)
from taskplanner.sandbox.webhook_recorder import WebhookRecorder
from tests.ats_env import SleepRecorder

FAKES = [t for t in ATS_TYPES if PROVIDERS[t].fake_available]
SECRET = "whsec-conformance-31d7"


@pytest.fixture(params=FAKES)
def fake(request: pytest.FixtureRequest) -> Iterator[FakeATS[Any]]:
    with PROVIDERS[request.param].fake_class()() as server:
        yield server


def connector_for(
    fake: FakeATS[Any], *, secret: str = SECRET, sleeps: SleepRecorder | None = None
) -> Any:
    """The provider's real connector on the fake, configured the way the sandbox configures it
    (skips the test while the provider has no connector in this version)."""
    provider = PROVIDERS[fake.provider]
    if not provider.connector_available:
        pytest.skip(f"no {provider.display_name} connector in this version")
    settings = fake.connector_settings(secret)
    config = parse_config(
        {
            "organisation": {"name": "Conformance", "account_owner": "ada@acme.example"},
            "connectors": {fake.provider: settings.table},
        },
        environ=settings.environ,
    )
    policy = RetryPolicy(sleep=sleeps or SleepRecorder(), base_delay=0.01, max_attempts=4)
    return provider.connector_class().from_config(
        fake.provider, config.connectors[fake.provider], policy=policy
    )


def poll_all(connector: Any) -> int:
    """One full poll; how many snapshots came back."""
    pages = connector.poll({}, started_at=datetime.now(UTC), full=True)
    return sum(len(page.snapshots) for page in pages)


# ---------------------------------------------------------------------------- identity


def test_each_fake_is_a_fake_ats_standing_in_for_its_provider(fake: FakeATS[Any]) -> None:
    assert isinstance(fake, FakeATS)
    assert fake.provider in FAKES
    assert PROVIDERS[fake.provider].fake_class() is type(fake)
    assert fake.capabilities <= CAPABILITIES
    settings = fake.connector_settings(SECRET)
    assert settings.table["type"] == fake.provider
    assert SECRET in settings.environ.values()
    assert all(key.endswith(("_env", "_url")) or key == "type" for key in settings.table)


def test_the_organisation_reads_back_what_was_made(fake: FakeATS[Any]) -> None:
    cora = fake.add_user("cora@acme.example", "Cora", "Coordinator", role="coordinator")
    assert fake.user_id("cora@acme.example") == cora
    with pytest.raises(FakeATSError):
        fake.user_id("nobody@acme.example")

    named = HIRING_TEAM_COORDINATOR in fake.capabilities
    job = fake.create_job("Backend Engineer", coordinator_id=cora if named else None)
    stages = fake.stage_ids(job)
    assert stages == [fake.stage_id(job, name) for name, _ in DEFAULT_STAGES]
    with pytest.raises(FakeATSError):
        fake.stage_id(job, "No Such Stage")
    onsite_kinds = {fake.interview_kind_id(job, "Onsite", name) for name in DEFAULT_STAGES[3][1]}
    assert len(onsite_kinds) == 2
    assert fake.interview_kind_id(job, "Onsite") in onsite_kinds

    candidate, application = fake.add_candidate_application(
        job, "Ada", "Lovelace", "ada@example.com", stage_id=stages[0]
    )
    assert candidate != application
    assert fake.advance_application(application) == stages[1]


# ---------------------------------------------------------------------------- webhooks


def test_changes_go_out_as_signed_deliveries_the_providers_connector_accepts(
    fake: FakeATS[Any],
) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        org = seed_organisation(fake, jobs=1, applications_per_job=2)
        application = org.application_ids[0]
        fake.move_application(application, fake.stage_ids(org.job_ids[0])[-1])
        fake.reject_application(org.application_ids[1])
        fake.flush_webhooks()
        sent: list[SignedDelivery] = list(fake.webhook_deliveries)
        assert len(sent) >= 4 and all(isinstance(d, SignedDelivery) for d in sent)
        assert all(d.delivered for d in sent)
        assert [r.body for r in recorder.received] == [d.body for d in sent]

        again = fake.redeliver(sent[-1])
        fake.flush_webhooks()
        assert again.delivered
        assert (recorder.received[-1].body, recorder.received[-1].headers.get("Content-Type")) == (
            sent[-1].body,
            sent[-1].headers.get("Content-Type"),
        )

        fake.configure_webhook(recorder.url, SECRET, enabled=False)
        fake.reject_application(application)
        fake.flush_webhooks()
        assert len(recorder.received) == len(sent) + 1  # nothing more while disabled

    connector = connector_for(fake)
    stranger = connector_for(fake, secret="someone-elses-secret")
    try:
        for delivery in sent:
            connector.verify_webhook(delivery.headers, delivery.body)
            assert connector.parse_webhook(delivery.headers, delivery.body).event_type
            with pytest.raises(WebhookRejected):
                stranger.verify_webhook(delivery.headers, delivery.body)
        assert connector.delivery_id(again.headers, again.body) == connector.delivery_id(
            sent[-1].headers, sent[-1].body
        )
    finally:
        connector.close()
        stranger.close()


def test_async_webhooks_are_all_out_after_flush(fake: FakeATS[Any]) -> None:
    with (
        WebhookRecorder() as recorder,
        PROVIDERS[fake.provider].fake_class()(async_webhooks=True) as background,
    ):
        background.configure_webhook(recorder.url, SECRET)
        org = seed_organisation(background, jobs=1, applications_per_job=3)
        background.flush_webhooks()
        assert len(recorder.received) == len(background.webhook_deliveries) >= 3  # one each
        assert len(org.application_ids) == 3


# ---------------------------------------------------------------------------- the API


def test_counters_count_the_connectors_requests_and_reset(fake: FakeATS[Any]) -> None:
    seed_organisation(fake, jobs=1, applications_per_job=1)
    connector = connector_for(fake)
    try:
        fake.reset_counters()
        assert sum(fake.requests.values()) == 0
        assert poll_all(connector) > 0
        assert sum(fake.requests.values()) > 0
        fake.reset_counters()
        assert sum(fake.requests.values()) == 0
    finally:
        connector.close()


def test_revoked_credentials_are_rejected_until_restored(fake: FakeATS[Any]) -> None:
    seed_organisation(fake, jobs=1, applications_per_job=1)
    connector = connector_for(fake)
    try:
        assert poll_all(connector) > 0
        fake.revoke_credentials()
        with pytest.raises(FatalConnectorError) as rejected:
            poll_all(connector)
        # 401, or 403 where the provider documents it (Ashby: a deactivated key is 403,
        # https://developers.ashbyhq.com/reference/authentication).
        assert rejected.value.status in (401, 403)
        fake.restore_credentials()
        assert poll_all(connector) > 0
    finally:
        connector.close()


def test_server_errors_and_throttling_are_answered_for_the_connector_to_retry(
    fake: FakeATS[Any],
) -> None:
    seed_organisation(fake, jobs=1, applications_per_job=1)
    sleeps = SleepRecorder()
    connector = connector_for(fake, sleeps=sleeps)
    try:
        clean = poll_all(connector)
        fake.fail_next(503, times=2)
        fake.throttle_next(retry_after=3)
        assert poll_all(connector) == clean
        assert sleeps.calls.count(3.0) == 1  # the throttling answer's Retry-After
        assert len([s for s in sleeps.calls if s != 3.0]) >= 2  # a backoff per 503
    finally:
        connector.close()


# ---------------------------------------------------------------------------- capabilities

Operation = Callable[[FakeATS[Any], dict[str, Any]], object]
OPERATIONS: dict[str, Operation] = {
    INTERVIEWER_RSVP: lambda fake, o: fake.set_interviewer_response(
        o["interview"], o["interviewer"], "declined"
    ),
    JOB_PUBLISHING: lambda fake, o: fake.publish_job(o["job"]),
    STAGE_REMOVAL: lambda fake, o: fake.remove_stage(o["stage"]),
    HIRING_TEAM_COORDINATOR: lambda fake, o: fake.set_job_coordinator(o["job"], o["other"]),
    CANDIDATE_COORDINATOR: lambda fake, o: fake.add_candidate_application(
        o["job"], "Grace", "Hopper", "grace@example.com", coordinator_id=o["other"]
    ),
    HARD_DELETES: lambda fake, o: fake.delete_candidate(
        fake.add_candidate_application(o["job"], "Alan", "Turing", "alan@example.com")[0]
    ),
}


@pytest.mark.parametrize("capability", sorted(OPERATIONS))
def test_a_capability_works_where_the_fake_claims_it_and_is_refused_where_not(
    fake: FakeATS[Any], capability: str
) -> None:
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    job, application = org.job_ids[0], org.application_ids[0]
    other = fake.add_user("sam@acme.example", "Sam", "Scheduler", role="coordinator")
    starts = datetime.now(UTC) + timedelta(days=1)
    interview = fake.schedule_interview(
        application,
        fake.interview_kind_id(job, "Onsite"),
        org.interviewer_ids[:1],
        starts,
        starts + timedelta(hours=1),
    )
    objects = {
        "job": job,
        "application": application,
        "interview": interview,
        "interviewer": org.interviewer_ids[0],
        "other": other,
        "stage": fake.stage_id(job, "Technical Interview"),
    }
    if capability in fake.capabilities:
        OPERATIONS[capability](fake, objects)
    else:
        with pytest.raises(NotSupportedByProvider):
            OPERATIONS[capability](fake, objects)
