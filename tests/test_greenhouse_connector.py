"""GreenhouseConnector against the loopback fake Greenhouse over 127.0.0.1 (and respx for a few
HTTP details): polling finds every change Greenhouse sends no webhook for, survives throttling and
failures, treats rejected credentials as fatal, and accepts only correctly signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from connectors.base import (
    FatalConnectorError,
    MalformedPayloadError,
    PollPage,
    PollProgress,
    UnknownEventError,
    WebhookRejected,
)
from connectors.greenhouse import PARTITIONS, GreenhouseConnector
from connectors.http import RetryPolicy
from taskplanner.clock import FrozenClock
from taskplanner.config import GreenhouseConfig
from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    ApplicationStatus,
    Deletion,
    EntityKind,
    JobSnapshot,
    JobStatus,
    Response,
    ScheduleSnapshot,
    ScheduleStatus,
    ScorecardSnapshot,
    Snapshot,
    UserSnapshot,
)
from taskplanner.sandbox.fake_greenhouse import (
    FakeGreenhouse,
    SeededOrganisation,
    WebhookRecorder,
    seed_organisation,
    sign,
)

T = TypeVar("T")
WEBHOOK_SECRET = "whsec-test-0123456789"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "greenhouse"
# CI clones the repo into another folder with shared/ beside it: <repo>/../shared.
SHARED_FIXTURES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "providers" / "greenhouse"
)


class SleepRecorder:
    """Stands in for time.sleep so retries are instant and countable."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeGreenhouse]:
    with FakeGreenhouse() as server:
        yield server


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def org(fake: FakeGreenhouse) -> SeededOrganisation:
    return seed_organisation(fake, jobs=2, applications_per_job=3)


def make_connector(
    fake: FakeGreenhouse, sleeps: SleepRecorder | None = None, **options: Any
) -> GreenhouseConnector:
    options.setdefault("lookback", timedelta(0))
    return GreenhouseConnector(
        "greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        webhook_secret=WEBHOOK_SECRET,
        policy=RetryPolicy(sleep=sleeps or SleepRecorder(), base_delay=0.01),
        **options,
    )


@pytest.fixture
def connector(fake: FakeGreenhouse, sleeps: SleepRecorder) -> Iterator[GreenhouseConnector]:
    con = make_connector(fake, sleeps)
    yield con
    con.close()


def run_poll(
    connector: GreenhouseConnector, cursors: dict[str, str] | None = None, *, full: bool = False
) -> list[PollPage]:
    return list(connector.poll(cursors or {}, started_at=datetime.now(UTC), full=full))


def cursors_of(pages: list[PollPage]) -> dict[str, str]:
    return {page.partition: page.cursor for page in pages if page.cursor is not None}


def snapshots(pages: list[PollPage]) -> list[Snapshot]:
    return [s for page in pages for s in page.snapshots]


def of_kind(pages: list[PollPage], kind: type[T]) -> list[T]:
    return [s for s in snapshots(pages) if isinstance(s, kind)]


def by_id(pages: list[PollPage], kind: type[T]) -> dict[str, T]:
    return {getattr(s, "id"): s for s in of_kind(pages, kind)}  # noqa: B009


def last_page(pages: list[PollPage], partition: str) -> PollPage:
    return [p for p in pages if p.partition == partition][-1]


# ---------------------------------------------------------------------------- polling


def test_full_poll_yields_every_entity_and_the_ids_still_present(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    pages = run_poll(connector, full=True)

    jobs = by_id(pages, JobSnapshot)
    assert set(jobs) == {str(j) for j in org.job_ids}
    job = jobs[str(org.job_ids[0])]
    assert job.status is JobStatus.OPEN
    assert job.published is True
    assert job.coordinator_email == "cora@acme.example"
    assert job.recruiter_email == "rick@acme.example"
    assert job.stages is not None
    assert [s.name for s in job.stages] == [
        "Application Review",
        "Phone Screen",
        "Technical Interview",
        "Onsite",
        "Offer",
    ]
    assert [k.name for k in job.stages[3].interview_kinds or ()] == [
        "Onsite Panel",
        "Hiring Manager Interview",
    ]
    applications = by_id(pages, ApplicationSnapshot)
    assert set(applications) == {str(a) for a in org.application_ids}
    application = applications[str(org.application_ids[0])]
    assert application.candidate is not None
    assert application.candidate.coordinator_email == "cora@acme.example"
    assert application.stage_entered_at is not None
    users = by_id(pages, UserSnapshot)
    assert users[str(org.recruiter_id)].role == "admin"

    for partition in PARTITIONS:
        final = last_page(pages, partition)
        assert final.cursor is not None
        assert final.present_ids is not None
    assert last_page(pages, "applications").present_ids == {
        EntityKind.APPLICATION: {str(a) for a in org.application_ids},
        EntityKind.CANDIDATE: {str(c) for c in org.candidate_ids},
    }


def test_full_poll_of_an_empty_organisation_says_nothing_is_left(
    fake: FakeGreenhouse, connector: GreenhouseConnector
) -> None:
    pages = run_poll(connector, full=True)
    assert [p.partition for p in pages] == list(PARTITIONS)
    assert last_page(pages, "interviews").present_ids == {EntityKind.SCHEDULE: set()}
    assert last_page(pages, "applications").present_ids == {
        EntityKind.APPLICATION: set(),
        EntityKind.CANDIDATE: set(),
    }


def test_cursor_is_the_poll_start_and_only_changes_come_back(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    started_at = datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    pages = list(connector.poll({}, started_at=started_at, full=True))
    assert set(cursors_of(pages).values()) == {"2030-01-02T03:04:05.678Z"}

    cursors = cursors_of(run_poll(connector, full=True))
    application_id = org.application_ids[0]
    job_id = fake.record("applications", application_id)["job_id"]
    fake.move_application(application_id, fake.stage_id(job_id, "Onsite"))

    pages = run_poll(connector, cursors)

    assert [s.id for s in of_kind(pages, ApplicationSnapshot)] == [str(application_id)]
    moved = by_id(pages, ApplicationSnapshot)[str(application_id)]
    assert moved.stage_id == str(fake.stage_id(job_id, "Onsite"))
    assert of_kind(pages, UserSnapshot) == []
    assert of_kind(pages, JobSnapshot) == []
    assert all(last_page(pages, p).present_ids is None for p in PARTITIONS if p != "interviews")


def test_poll_asks_greenhouse_only_for_rows_updated_since_the_cursor(
    fake: FakeGreenhouse, org: SeededOrganisation
) -> None:
    connector = make_connector(fake, lookback=timedelta(minutes=2))
    cursors = cursors_of(run_poll(connector, full=True))
    fake.reset_counters()
    run_poll(connector, cursors)
    first_users_request = next(r for r in fake.request_log if r.path == "/v3/users")
    cursor = datetime.fromisoformat(cursors["users"].replace("Z", "+00:00"))
    expected = (cursor - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert first_users_request.query["updated_at"] == [f"gte|{expected}"]
    connector.close()


def test_stage_added_without_a_webhook_reaches_the_job_on_the_next_poll(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    job_id = org.job_ids[0]
    before = by_id(run_poll(connector, full=True), JobSnapshot)[str(job_id)]
    cursors = cursors_of(run_poll(connector, full=True))
    job_updated_at = fake.record("jobs", job_id)["updated_at"]

    stage_id = fake.add_stage(job_id, "Take-home Exercise", ["Homework Review"])

    assert fake.record("jobs", job_id)["updated_at"] == job_updated_at  # Greenhouse's quirk
    after = by_id(run_poll(connector, cursors), JobSnapshot)[str(job_id)]
    assert after.stages is not None
    assert str(stage_id) in {s.id for s in after.stages}
    assert after.updated_at > before.updated_at  # the mirror must not drop it as stale


def test_unpublished_and_deleted_posts_turn_the_job_unpublished(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    first, second = org.job_ids
    pages = run_poll(connector, full=True)
    before = by_id(pages, JobSnapshot)
    cursors = cursors_of(pages)
    fake.unpublish_job(first)
    post = fake.record("job_posts", fake.publish_job(second))
    fake.delete_job_post(int(post["id"]))

    after = by_id(run_poll(connector, cursors), JobSnapshot)

    assert (after[str(first)].published, after[str(second)].published) == (False, False)
    assert after[str(first)].updated_at > before[str(first)].updated_at
    assert after[str(second)].updated_at > before[str(second)].updated_at


def test_interviewer_rsvp_and_scorecard_arrive_by_polling(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    application_id = org.application_ids[0]
    job_id = fake.record("applications", application_id)["job_id"]
    interviewer = org.interviewer_ids[0]
    starts = datetime.now(UTC) + timedelta(days=1)
    interview_id = fake.schedule_interview(
        application_id,
        fake.interview_kind_id(job_id, "Onsite"),
        [interviewer],
        starts,
        starts + timedelta(hours=1),
        external_event_id="evt-123",
    )
    pages = run_poll(connector, full=True)
    schedule = by_id(pages, ScheduleSnapshot)[str(interview_id)]
    assert schedule.status is ScheduleStatus.SCHEDULED
    assert schedule.external_event_id == "evt-123"
    assert schedule.stage_id == str(fake.stage_id(job_id, "Onsite"))
    assert schedule.starts_at == starts.replace(microsecond=starts.microsecond // 1000 * 1000)
    assert schedule.interviewers is not None
    assert [(i.email, i.response) for i in schedule.interviewers] == [
        ("ivy@acme.example", Response.NEEDS_ACTION)
    ]
    draft = of_kind(pages, ScorecardSnapshot)
    assert [(s.schedule_id, s.submitted) for s in draft] == [(str(interview_id), False)]
    cursors = cursors_of(pages)

    fake.set_interviewer_response(interview_id, interviewer, "declined")
    fake.submit_scorecard(interview_id, interviewer)
    pages = run_poll(connector, cursors)

    schedule = by_id(pages, ScheduleSnapshot)[str(interview_id)]
    assert schedule.interviewers is not None
    assert schedule.interviewers[0].response is Response.DECLINED
    (scorecard,) = of_kind(pages, ScorecardSnapshot)
    assert scorecard.submitted is True
    assert scorecard.interviewer_email == "ivy@acme.example"
    assert scorecard.submitted_at is not None


def test_interviewer_without_email_is_resolved_through_their_user_id(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    """Issue 13 §2: the v3 interviewers schema allows ``email: null``; the row still names its
    user. A row with neither is left out and logged once, the rest of the panel stays."""
    application_id = org.application_ids[0]
    job_id = fake.record("applications", application_id)["job_id"]
    ivy, igor, ines = org.interviewer_ids
    starts = datetime.now(UTC) + timedelta(days=1)
    interview_id = fake.schedule_interview(
        application_id,
        fake.interview_kind_id(job_id, "Onsite"),
        [ivy, igor, ines],
        starts,
        starts + timedelta(hours=1),
    )
    fake.set_interviewer_response(interview_id, igor, "declined")
    fake.hide_interviewer_email(interview_id, igor)
    fake.hide_interviewer_email(interview_id, ines, drop_user_id=True)

    with capture_logs() as logs:
        pages = run_poll(connector, full=True)
        cursors = cursors_of(pages)
        fake.set_interviewer_response(interview_id, ivy, "accepted")
        again = run_poll(connector, cursors)

    schedule = by_id(pages, ScheduleSnapshot)[str(interview_id)]
    assert schedule.interviewers is not None
    assert [(i.email, i.response) for i in schedule.interviewers] == [
        ("igor@acme.example", Response.DECLINED),
        ("ivy@acme.example", Response.NEEDS_ACTION),
    ]
    assert str(interview_id) in by_id(again, ScheduleSnapshot)
    unknown = [e for e in logs if e["event"] == "greenhouse.interviewer_unknown"]
    assert len(unknown) == 1
    assert unknown[0]["interview"] == interview_id


def test_all_day_interview_days_are_days_of_the_accounts_time_zone(
    fake: FakeGreenhouse, org: SeededOrganisation, sleeps: SleepRecorder
) -> None:
    """Issue 13 §6: ``all_day_start_on``/``all_day_end_on`` are date-only (``_on``,
    docs/standardizations) local days: midnight in the connector's ``time_zone``."""
    application_id = org.application_ids[0]
    job_id = fake.record("applications", application_id)["job_id"]
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    interview_id = fake.schedule_all_day_interview(
        application_id,
        fake.interview_kind_id(job_id, "Onsite"),
        [org.interviewer_ids[0]],
        day,
        day + timedelta(days=1),
    )
    connector = make_connector(fake, sleeps, time_zone="Europe/Berlin")

    schedule = by_id(run_poll(connector, full=True), ScheduleSnapshot)[str(interview_id)]

    berlin = ZoneInfo("Europe/Berlin")
    assert schedule.starts_at == datetime.combine(day, datetime.min.time(), berlin)
    assert schedule.ends_at == datetime.combine(
        day + timedelta(days=1), datetime.min.time(), berlin
    )
    connector.close()


def test_cancelled_interview_drops_out_of_present_ids_without_webhooks(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    fake.webhooks_enabled = False
    application_id = org.application_ids[0]
    job_id = fake.record("applications", application_id)["job_id"]
    starts = datetime.now(UTC) + timedelta(days=2)
    kind = fake.interview_kind_id(job_id, "Phone Screen")
    kept = fake.schedule_interview(
        application_id, kind, [org.interviewer_ids[0]], starts, starts + timedelta(hours=1)
    )
    cancelled = fake.schedule_interview(
        application_id, kind, [org.interviewer_ids[1]], starts, starts + timedelta(hours=1)
    )
    cursors = cursors_of(run_poll(connector, full=True))

    fake.cancel_interview(cancelled)
    pages = run_poll(connector, cursors)

    assert last_page(pages, "interviews").present_ids == {EntityKind.SCHEDULE: {str(kept)}}


def idle_poll(past_interviews: int) -> tuple[int, dict[EntityKind, set[str]] | None, set[str]]:
    """Requests of one idle incremental poll of an organisation whose current activity is
    fixed (one upcoming timed and one all-day interview) beside ``past_interviews`` ended
    ones; with what its interviews sweep vouched for and the upcoming ids."""
    # Written an hour ago (Greenhouse's clock), so nothing is newer than the cursors.
    with FakeGreenhouse(clock=lambda: datetime.now(UTC) - timedelta(hours=1)) as fake:
        org = seed_organisation(fake, jobs=1, applications_per_job=2)
        application_id = org.application_ids[0]
        job_id = fake.record("applications", application_id)["job_id"]
        kind = fake.interview_kind_id(job_id, "Phone Screen")
        panel = [org.interviewer_ids[0]]
        now = datetime.now(UTC)
        upcoming = {
            fake.schedule_interview(
                application_id,
                kind,
                panel,
                now + timedelta(days=2),
                now + timedelta(days=2, hours=1),
            ),
            fake.schedule_all_day_interview(
                application_id,
                kind,
                panel,
                (now + timedelta(days=3)).date(),
                (now + timedelta(days=3)).date(),
            ),
        }
        for day in range(past_interviews):
            starts = now - timedelta(days=30 + day)
            fake.schedule_interview(
                application_id, kind, panel, starts, starts + timedelta(hours=1)
            )
        connector = make_connector(fake, per_page=5)
        cursors = cursors_of(run_poll(connector, full=True))
        fake.reset_counters()
        pages = run_poll(connector, cursors)
        connector.close()
        return (
            sum(fake.requests.values()),
            last_page(pages, "interviews").present_ids,
            {str(i) for i in upcoming},
        )


def test_idle_poll_costs_the_same_however_many_interviews_lie_in_the_past() -> None:
    """Issue 13 §9: the hard-delete sweep asks only for interviews that can still matter
    (ends_at / all_day_end_on filters of /v3/interviews), not for the whole history."""
    few, few_present, few_upcoming = idle_poll(past_interviews=0)
    many, many_present, many_upcoming = idle_poll(past_interviews=40)

    assert many == few
    assert few_present == {EntityKind.SCHEDULE: few_upcoming}
    assert many_present == {EntityKind.SCHEDULE: many_upcoming}


def test_small_pages_yield_every_record_exactly_once_and_cursor_travels_alone(
    fake: FakeGreenhouse, sleeps: SleepRecorder
) -> None:
    seed_organisation(fake, jobs=3, applications_per_job=7)
    connector = make_connector(fake, sleeps, per_page=2)
    progress: list[PollProgress] = []

    pages = list(
        connector.poll({}, started_at=datetime.now(UTC), full=True, progress=progress.append)
    )

    ids = [s.id for s in of_kind(pages, ApplicationSnapshot)]
    assert len(ids) == 21
    assert len(set(ids)) == 21
    assert len([p for p in pages if p.partition == "applications"]) >= 10
    assert fake.requests_to("applications") >= 11
    cursor_requests = [r for r in fake.request_log if "cursor" in r.query]
    assert cursor_requests
    assert all(set(r.query) == {"cursor"} for r in cursor_requests)
    assert all(r.status == 200 for r in fake.request_log)
    application_progress = [p for p in progress if p.partition == "applications"]
    assert [p.pages for p in application_progress] == list(range(1, len(application_progress) + 1))
    assert application_progress[-1].records == 21
    assert application_progress[-1].total_partitions == len(PARTITIONS)
    connector.close()


def test_fake_refuses_a_cursor_sent_with_another_parameter(fake: FakeGreenhouse) -> None:
    seed_organisation(fake, jobs=1, applications_per_job=3)
    token = httpx.post(
        f"{fake.auth_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(fake.client_id, fake.client_secret),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.get(f"{fake.base_url}/v3/applications", params={"per_page": 1}, headers=headers)
    next_url = first.headers["link"].split(";")[0].strip("<>")

    assert httpx.get(next_url, headers=headers).status_code == 200
    assert httpx.get(next_url + "&per_page=1", headers=headers).status_code == 400


# ---------------------------------------------------------------------------- failures


def test_429_storm_and_server_errors_are_retried_and_nothing_is_lost(
    fake: FakeGreenhouse, org: SeededOrganisation, sleeps: SleepRecorder
) -> None:
    clean = make_connector(fake)
    expected = snapshots(run_poll(clean, full=True))
    clean.close()
    connector = make_connector(fake, sleeps, per_page=2)

    fake.throttle_next(times=4, retry_after=7, path="/v3/applications")
    fake.fail_next(500, times=2, path="/v3/jobs")
    fake.fail_next(503, times=1, path="/v3/interviews")
    pages = run_poll(connector, full=True)

    assert fake.pending_faults == 0
    assert sorted(map(repr, snapshots(pages))) == sorted(map(repr, expected))
    assert sleeps.calls.count(7.0) == 4  # Retry-After honoured exactly
    assert len(sleeps.calls) == 7
    assert connector.stats.throttled == 4
    connector.close()


def test_429_without_retry_after_waits_out_the_ten_second_window(
    fake: FakeGreenhouse, org: SeededOrganisation, sleeps: SleepRecorder
) -> None:
    """Issue 13 §3: Harvest's 429 carries no Retry-After nor rate-limit headers
    (greenhouse-api-docs harvest/_introduction.md "Throttling"; limits are per 10 seconds)."""
    clean = make_connector(fake)
    expected = snapshots(run_poll(clean, full=True))
    clean.close()
    connector = make_connector(fake, sleeps)

    fake.throttle_next(times=3, retry_after=None, path="/v3/applications")
    pages = run_poll(connector, full=True)

    assert fake.pending_faults == 0
    assert sorted(map(repr, snapshots(pages))) == sorted(map(repr, expected))
    assert len(sleeps.calls) == 3
    assert all(10.0 <= s <= 12.0 for s in sleeps.calls)  # a whole window, plus jitter
    assert len(set(sleeps.calls)) > 1
    connector.close()


def test_enforced_rate_limit_without_headers_is_waited_out_not_given_up() -> None:
    """The fake enforcing its limit the way Harvest does (bare 429s): a poll needing many
    windows finishes. Time runs 20 times faster (each sleep is 1/20 of its length)."""
    with FakeGreenhouse(rate_limit=6, rate_window=1.0, enforce_rate_limit=True) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=2)
        waited: list[float] = []

        def fast_sleep(seconds: float) -> None:
            waited.append(seconds)
            time.sleep(seconds / 20)

        connector = make_connector(fake)
        connector.policy.sleep = fast_sleep
        pages = run_poll(connector, full=True)

        assert len(of_kind(pages, ApplicationSnapshot)) == 2
        assert fake.statuses[429] > 0
        assert all(s >= 10.0 for s in waited)
        connector.close()


def test_cut_bodies_and_slow_answers_are_retried(
    fake: FakeGreenhouse, org: SeededOrganisation, sleeps: SleepRecorder
) -> None:
    connector = make_connector(fake, sleeps, timeout=0.3)
    fake.truncate_next(path="/v3/users")
    fake.disconnect_next(path="/v3/jobs")
    fake.slow_next(1.0, path="/v3/scorecards")

    pages = run_poll(connector, full=True)

    assert fake.pending_faults == 0
    assert len(of_kind(pages, UserSnapshot)) == 5
    assert len(of_kind(pages, JobSnapshot)) == 2
    assert len(sleeps.calls) == 3
    connector.close()


def test_pauses_when_the_rate_limit_budget_is_spent(
    sleeps: SleepRecorder,
) -> None:
    with FakeGreenhouse(rate_limit=4, rate_window=60) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=1)
        connector = make_connector(fake, sleeps)
        run_poll(connector, full=True)
        assert connector.rate_limit_pauses > 0
        assert sleeps.calls and all(s == 10.0 for s in sleeps.calls)
        connector.close()


def test_revoked_credentials_are_fatal_and_say_no_secret(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    run_poll(connector, full=True)
    fake.revoke_credentials()

    with pytest.raises(FatalConnectorError) as caught:
        run_poll(connector)

    assert caught.value.status == 401
    assert fake.client_secret not in str(caught.value)
    assert fake.client_id not in str(caught.value)


def test_restored_credentials_work_again_with_a_new_token(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    run_poll(connector, full=True)
    fake.revoke_credentials()
    with pytest.raises(FatalConnectorError):
        run_poll(connector)
    fake.restore_credentials()

    assert of_kind(run_poll(connector, full=True), JobSnapshot)


def test_expired_token_is_refreshed_once(
    fake: FakeGreenhouse, org: SeededOrganisation, connector: GreenhouseConnector
) -> None:
    run_poll(connector, full=True)
    assert fake.tokens_issued == 1
    fake.expire_all_tokens()

    pages = run_poll(connector, full=True)

    assert of_kind(pages, JobSnapshot)
    assert fake.tokens_issued == 2
    assert fake.statuses[401] == 1


def test_token_is_renewed_before_it_expires(fake: FakeGreenhouse, org: SeededOrganisation) -> None:
    clock = FrozenClock(datetime.now(UTC))
    connector = make_connector(fake, clock=clock)
    run_poll(connector, full=True)
    clock.advance(timedelta(minutes=59, seconds=30))

    run_poll(connector, full=True)

    assert fake.tokens_issued == 2
    assert fake.statuses[401] == 0
    connector.close()


def test_token_response_with_expires_at_is_understood() -> None:
    with FakeGreenhouse(token_expiry_field="expires_at", token_ttl=7200) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=1)
        clock = FrozenClock(datetime.now(UTC))
        connector = make_connector(fake, clock=clock)
        connector.authenticate()
        clock.advance(timedelta(minutes=90))  # past the 1 h fallback, inside the 2 h token
        run_poll(connector, full=True)
        assert fake.tokens_issued == 1
        connector.close()


def test_wrong_client_secret_is_fatal(fake: FakeGreenhouse) -> None:
    connector = GreenhouseConnector(
        "greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id=fake.client_id,
        client_secret="not-the-secret",
        webhook_secret=None,
        policy=RetryPolicy(sleep=SleepRecorder()),
    )
    with pytest.raises(FatalConnectorError) as caught:
        connector.authenticate()
    assert "not-the-secret" not in str(caught.value)
    connector.close()


def test_unknown_sub_user_is_fatal(fake: FakeGreenhouse) -> None:
    connector = make_connector(fake, user_id="999999")
    with pytest.raises(FatalConnectorError):
        connector.authenticate()
    connector.close()


def test_link_to_another_host_is_followed_on_our_own_base_url() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.post("https://auth.example/token").respond(
            200, json={"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}
        )
        users = mock.get("https://harvest.example/v3/users")
        users.side_effect = [
            httpx.Response(
                200,
                json=[
                    {
                        "id": 1,
                        "primary_email": "a@x.example",
                        "name": "A",
                        "updated_at": "2026-01-01T00:00:00.000Z",
                    }
                ],
                headers={"Link": '<https://elsewhere.example/v3/users?cursor=abc>; rel="next"'},
            ),
            httpx.Response(
                200,
                json=[
                    {
                        "id": 2,
                        "primary_email": "b@x.example",
                        "name": "B",
                        "updated_at": "2026-01-01T00:00:00.000Z",
                    }
                ],
            ),
        ]
        mock.get(host="harvest.example", path__regex=r"/v3/.*").respond(200, json=[])
        connector = GreenhouseConnector(
            "greenhouse",
            base_url="https://harvest.example",
            auth_url="https://auth.example",
            client_id="id",
            client_secret="secret",
            webhook_secret=None,
            policy=RetryPolicy(sleep=SleepRecorder()),
        )
        pages = list(connector.poll({}, started_at=datetime.now(UTC), full=True))

        assert [s.id for s in of_kind(pages, UserSnapshot)] == ["1", "2"]
        second = users.calls[1].request
        assert second.url.host == "harvest.example"
        assert dict(second.url.params) == {"cursor": "abc"}
        assert second.headers["Authorization"] == "Bearer t1"
        connector.close()


def test_from_config_reads_urls_user_and_secrets(
    fake: FakeGreenhouse, org: SeededOrganisation
) -> None:
    cfg = GreenhouseConfig(
        type="greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id_env="GH_ID",
        client_secret_env="GH_SECRET",
        webhook_secret_env="GH_HOOK",
        user_id=str(org.recruiter_id),
    )
    cfg.set_secret("client_id", fake.client_id)
    cfg.set_secret("client_secret", fake.client_secret)
    cfg.set_secret("webhook_secret", WEBHOOK_SECRET)

    connector = GreenhouseConnector.from_config("gh", cfg)
    connector.authenticate()
    body = b'{"action":"ping","payload":{}}'
    connector.verify_webhook({"Signature": sign(body, WEBHOOK_SECRET)}, body)
    token_request = next(r for r in fake.request_log if r.path == "/token")
    assert token_request.status == 200
    assert connector.name == "gh"
    connector.close()


def test_links_lead_to_the_configured_greenhouse_host(
    fake: FakeGreenhouse, org: SeededOrganisation
) -> None:
    cfg = GreenhouseConfig(
        type="greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id_env="GH_ID",
        client_secret_env="GH_SECRET",
        app_url="https://app.eu.greenhouse.io/",
    )
    cfg.set_secret("client_id", fake.client_id)
    cfg.set_secret("client_secret", fake.client_secret)
    connector = GreenhouseConnector.from_config("gh", cfg)
    try:
        pages = run_poll(connector, full=True)
    finally:
        connector.close()

    job_id, application_id = org.job_ids[0], org.application_ids[0]
    candidate_id = fake.record("applications", application_id)["candidate_id"]
    application = by_id(pages, ApplicationSnapshot)[str(application_id)]
    assert by_id(pages, JobSnapshot)[str(job_id)].url == (
        f"https://app.eu.greenhouse.io/sdash/{job_id}"
    )
    assert application.url == (
        f"https://app.eu.greenhouse.io/people/{candidate_id}?application_id={application_id}"
    )
    assert application.candidate is not None
    assert application.candidate.url == f"https://app.eu.greenhouse.io/people/{candidate_id}"
    # Webhooks too (issue 13 §8): the documented stage-change delivery links to the EU host.
    (hooked,) = connector.parse_webhook(
        {}, (FIXTURES / "webhook_candidate_stage_change.json").read_bytes()
    ).snapshots
    assert isinstance(hooked, ApplicationSnapshot)
    assert hooked.url == "https://app.eu.greenhouse.io/people/265772?application_id=265277"


def test_links_default_to_app_greenhouse_io(fake: FakeGreenhouse, org: SeededOrganisation) -> None:
    """Issue 13 §8: without ``app_url`` the links lead to https://app.greenhouse.io."""
    cfg = GreenhouseConfig(
        type="greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id_env="GH_ID",
        client_secret_env="GH_SECRET",
    )
    cfg.set_secret("client_id", fake.client_id)
    cfg.set_secret("client_secret", fake.client_secret)
    connector = GreenhouseConnector.from_config("gh", cfg)
    try:
        pages = run_poll(connector, full=True)
    finally:
        connector.close()

    job_id = org.job_ids[0]
    assert by_id(pages, JobSnapshot)[str(job_id)].url == f"https://app.greenhouse.io/sdash/{job_id}"


# ---------------------------------------------------------------------------- webhooks


@pytest.fixture
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as sink:
        yield sink


def test_signed_delivery_from_the_fake_is_accepted_and_parsed(
    fake: FakeGreenhouse, recorder: WebhookRecorder, connector: GreenhouseConnector
) -> None:
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    application_id = org.application_ids[0]
    job_id = org.job_ids[0]
    fake.move_application(application_id, fake.stage_id(job_id, "Onsite"))

    delivery = recorder.received[-1]
    connector.verify_webhook(delivery.headers, delivery.body)
    parsed = connector.parse_webhook(delivery.headers, delivery.body)

    assert parsed.event_type == "candidate_stage_change"
    (application,) = parsed.snapshots
    assert isinstance(application, ApplicationSnapshot)
    assert application.stage_name == "Onsite"
    assert application.job is not None  # so a job no poll has brought is known at once
    assert (application.job.id, application.job.stages) == (str(job_id), None)
    assert application.id == str(application_id)
    assert application.stage_id == str(fake.stage_id(job_id, "Onsite"))
    assert application.stage_entered_at == application.updated_at
    assert (
        connector.delivery_id(delivery.headers, delivery.body)
        == delivery.headers["Greenhouse-Event-ID"]
    )


def test_webhook_and_poll_describe_the_same_application_alike(
    fake: FakeGreenhouse, recorder: WebhookRecorder, connector: GreenhouseConnector
) -> None:
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    application_id = org.application_ids[0]
    fake.reject_application(application_id)
    parsed = connector.parse_webhook({}, recorder.received[-1].body).snapshots[0]
    polled = by_id(run_poll(connector, full=True), ApplicationSnapshot)[str(application_id)]

    assert isinstance(parsed, ApplicationSnapshot)
    assert (
        parsed.id,
        parsed.candidate_id,
        parsed.job_id,
        parsed.stage_id,
        parsed.status,
        parsed.url,
    ) == (polled.id, polled.candidate_id, polled.job_id, polled.stage_id, polled.status, polled.url)
    assert parsed.status is ApplicationStatus.REJECTED
    # Webhooks carry second precision, Harvest v3 milliseconds.
    assert abs(parsed.updated_at - polled.updated_at) < timedelta(seconds=1)
    assert parsed.candidate is not None and polled.candidate is not None
    assert (parsed.candidate.name, parsed.candidate.email, parsed.candidate.coordinator_email) == (
        polled.candidate.name,
        polled.candidate.email,
        polled.candidate.coordinator_email,
    )


def test_webhooks_switched_off_send_nothing(
    fake: FakeGreenhouse, recorder: WebhookRecorder
) -> None:
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET, enabled=False)
    seed_organisation(fake, jobs=1, applications_per_job=2)
    assert recorder.received == []


@pytest.fixture
def escaped_delivery(
    fake: FakeGreenhouse, recorder: WebhookRecorder
) -> tuple[dict[str, str], bytes]:
    """A real signed job_post delivery whose body has \\u003c escapes and raw non-ASCII."""
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
    job_id = fake.create_job("Développeur·se")
    fake.publish_job(job_id, content="<p>Café & crème</p>")
    delivery = recorder.received[-1]
    assert b"\\u003cp\\u003e" in delivery.body
    assert "é".encode() in delivery.body
    return delivery.headers, delivery.body


def test_signature_over_the_raw_body_is_accepted(
    connector: GreenhouseConnector, escaped_delivery: tuple[dict[str, str], bytes]
) -> None:
    headers, body = escaped_delivery
    connector.verify_webhook(headers, body)
    connector.verify_webhook({k.lower(): v for k, v in headers.items()}, body)


def test_one_flipped_byte_in_the_body_is_rejected(
    connector: GreenhouseConnector, escaped_delivery: tuple[dict[str, str], bytes]
) -> None:
    headers, body = escaped_delivery
    tampered = bytearray(body)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(headers, bytes(tampered))


def test_one_flipped_character_in_the_signature_is_rejected(
    connector: GreenhouseConnector, escaped_delivery: tuple[dict[str, str], bytes]
) -> None:
    headers, body = escaped_delivery
    signature = headers["Signature"]
    last = signature[-1]
    headers = {**headers, "Signature": signature[:-1] + ("0" if last != "0" else "1")}
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(headers, body)


def test_signature_over_reserialised_json_is_rejected(
    connector: GreenhouseConnector, escaped_delivery: tuple[dict[str, str], bytes]
) -> None:
    _, body = escaped_delivery
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    digest = hmac.new(WEBHOOK_SECRET.encode(), reserialised, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejected):
        connector.verify_webhook({"Signature": f"sha256 {digest}"}, body)


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256", "sha1 " + "0" * 40, "sha256=" + "0" * 64],
)
def test_missing_or_malformed_signature_header_is_rejected(
    connector: GreenhouseConnector, signature: str | None
) -> None:
    body = b'{"action":"ping","payload":{}}'
    headers = {} if signature is None else {"Signature": signature}
    with pytest.raises(WebhookRejected):
        connector.verify_webhook(headers, body)


def test_without_a_webhook_secret_every_delivery_is_rejected(fake: FakeGreenhouse) -> None:
    connector = GreenhouseConnector(
        "greenhouse",
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        webhook_secret=None,
    )
    body = b'{"action":"ping","payload":{}}'
    with pytest.raises(WebhookRejected):
        connector.verify_webhook({"Signature": sign(body, "")}, body)
    connector.close()


def test_delivery_id_falls_back_to_a_digest_of_the_body(connector: GreenhouseConnector) -> None:
    body = b'{"action":"ping","payload":{}}'
    assert connector.delivery_id({"greenhouse-event-id": "abc"}, body) == "abc"
    assert connector.delivery_id({}, body) == "sha256:" + hashlib.sha256(body).hexdigest()


def test_ping_is_recognised(
    fake: FakeGreenhouse, recorder: WebhookRecorder, connector: GreenhouseConnector
) -> None:
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
    fake.send_ping()
    delivery = recorder.received[-1]
    connector.verify_webhook(delivery.headers, delivery.body)
    parsed = connector.parse_webhook(delivery.headers, delivery.body)
    assert parsed.is_ping
    assert parsed.snapshots == []


def test_cancelled_interview_webhook_is_a_schedule_deletion(
    fake: FakeGreenhouse, recorder: WebhookRecorder, connector: GreenhouseConnector
) -> None:
    fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
    org = seed_organisation(fake, jobs=1, applications_per_job=1)
    job_id = org.job_ids[0]
    starts = datetime.now(UTC) + timedelta(days=1)
    interview_id = fake.schedule_interview(
        org.application_ids[0],
        fake.interview_kind_id(job_id, "Onsite"),
        [org.interviewer_ids[0]],
        starts,
        starts + timedelta(hours=1),
    )
    sent_before = len(recorder.received)  # scheduling sends nothing
    fake.cancel_interview(interview_id)

    assert len(recorder.received) == sent_before + 1
    parsed = connector.parse_webhook({}, recorder.received[-1].body)
    assert [(d.kind, d.id) for d in parsed.snapshots if isinstance(d, Deletion)] == [
        (EntityKind.SCHEDULE, str(interview_id))
    ]


@pytest.fixture(scope="module")
def parser() -> Iterator[GreenhouseConnector]:
    """A connector that only parses (no server behind its URLs)."""
    con = GreenhouseConnector(
        "greenhouse",
        base_url="https://harvest.invalid",
        auth_url="https://auth.invalid",
        client_id="id",
        client_secret="secret",
        webhook_secret=WEBHOOK_SECRET,
    )
    yield con
    con.close()


def fixture_files() -> list[Path]:
    files = {p.name: p for p in sorted(FIXTURES.glob("webhook_*.json"))}
    if SHARED_FIXTURES.is_dir():
        for path in sorted(SHARED_FIXTURES.glob("webhook_*.json")):
            files.setdefault(path.name, path)  # a newer shared fixture is parsed too
    return list(files.values())


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_every_documented_webhook_example_parses(parser: GreenhouseConnector, path: Path) -> None:
    body = path.read_bytes()
    parsed = parser.parse_webhook({}, body)
    assert parsed.event_type == json.loads(body)["action"]


def parse_fixture(parser: GreenhouseConnector, name: str) -> list[Snapshot]:
    return parser.parse_webhook({}, (FIXTURES / name).read_bytes()).snapshots


def test_documented_stage_change_maps_to_an_application_in_its_new_stage(
    parser: GreenhouseConnector,
) -> None:
    (application,) = parse_fixture(parser, "webhook_candidate_stage_change.json")
    assert isinstance(application, ApplicationSnapshot)
    assert application.stage_name == "Assessment"
    assert application.job is not None
    assert (application.job.id, application.job.name, application.job.stages) == (
        "3485",
        "Designer",
        None,
    )
    assert (application.id, application.candidate_id, application.job_id, application.stage_id) == (
        "265277",
        "265772",
        "3485",
        "71416",
    )
    assert application.status is ApplicationStatus.ACTIVE
    assert application.updated_at == datetime(2015, 2, 9, 16, 38, 36, tzinfo=UTC)
    assert application.stage_entered_at == application.updated_at
    assert application.candidate is not None
    assert application.candidate.email == "giuseppe.hurley@example.com"
    assert application.candidate.coordinator_email == "alicia.flopple.3128@example.com"


def test_documented_reject_and_hire_close_the_application(parser: GreenhouseConnector) -> None:
    (rejected,) = parse_fixture(parser, "webhook_candidate_rejected.json")
    (hired,) = parse_fixture(parser, "webhook_candidate_hired.json")
    assert isinstance(rejected, ApplicationSnapshot) and isinstance(hired, ApplicationSnapshot)
    assert rejected.status is ApplicationStatus.REJECTED
    assert hired.status is ApplicationStatus.HIRED
    # The hire payload has no last_activity_at: the offer's resolution time stands in.
    assert hired.updated_at == datetime(2014, 11, 20, 22, 49, 14, tzinfo=UTC)
    assert hired.job_id == "323753"


def test_documented_job_created_has_unknown_stages_and_publication(
    parser: GreenhouseConnector,
) -> None:
    (job,) = parse_fixture(parser, "webhook_job_created.json")
    assert isinstance(job, JobSnapshot)
    assert (job.id, job.name, job.status) == ("371417", "Software Engineer", JobStatus.OPEN)
    assert job.updated_at == datetime(2016, 10, 20, 18, 16, 32, tzinfo=UTC)
    assert job.stages is None
    assert job.published is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("webhook_job_stage_deleted.json", [(EntityKind.STAGE, "430608")]),
        ("webhook_interview_deleted.json", [(EntityKind.SCHEDULE, "31087450")]),
        ("webhook_scorecard_deleted.json", [(EntityKind.SCORECARD, "6036088")]),
        ("webhook_application_deleted.json", [(EntityKind.APPLICATION, "46194062")]),
        ("webhook_job_deleted.json", [(EntityKind.JOB, "209256")]),
        ("webhook_candidate_merged.json", [(EntityKind.CANDIDATE, "37031511")]),
        (
            "webhook_candidate_deleted.json",
            [
                (EntityKind.CANDIDATE, "37031511"),
                (EntityKind.APPLICATION, "46196263"),
                (EntityKind.APPLICATION, "46196258"),
            ],
        ),
    ],
)
def test_documented_deletions_become_deletions(
    parser: GreenhouseConnector, name: str, expected: list[tuple[EntityKind, str]]
) -> None:
    found = parse_fixture(parser, name)
    assert [(d.kind, d.id) for d in found if isinstance(d, Deletion)] == expected
    assert len(found) == len(expected)


@pytest.mark.parametrize(
    "name",
    [
        "webhook_offer_created.json",
        "webhook_offer_deleted.json",
        "webhook_job_post_updated.json",
        "webhook_prospect_created.json",
        "webhook_candidate_anonymized.json",
    ],
)
def test_documented_events_without_a_snapshot_are_accepted_empty(
    parser: GreenhouseConnector, name: str
) -> None:
    assert parse_fixture(parser, name) == []


def test_unknown_event_is_reported_as_such(parser: GreenhouseConnector) -> None:
    with pytest.raises(UnknownEventError):
        parser.parse_webhook({}, b'{"action": "brand_new_event", "payload": {}}')


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"payload": {}}',
        b'{"action": "candidate_stage_change"}',
        b'{"action": "candidate_stage_change", "payload": {"application": {"id": 1}}}',
        b'{"action": "job_created", "payload": {"job": {"id": 5}}}',
    ],
)
def test_malformed_delivery_is_reported_as_such(parser: GreenhouseConnector, body: bytes) -> None:
    with pytest.raises(MalformedPayloadError):
        parser.parse_webhook({}, body)
