"""The fake Ashby keeps to Ashby's documented API and webhook contract, so a connector that
passes against it meets what Ashby promises (raw HTTP with httpx here, no connector)."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from taskplanner.sandbox.fake_ashby import FakeAshby, SeededOrganisation, seed_organisation
from taskplanner.sandbox.fake_ats import INTERVIEWER_RSVP, FakeATS, NotSupportedByProvider
from taskplanner.sandbox.fake_greenhouse import WebhookRecorder

SECRET = "ashby-secret-token"
# One connection pool for the module: a fresh httpx client per call builds an SSL context each.
HTTP = httpx.Client(timeout=10.0)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture
def fake() -> Iterator[FakeAshby]:
    with FakeAshby(seed=7) as server:
        yield server


@pytest.fixture
def org(fake: FakeAshby) -> SeededOrganisation:
    return seed_organisation(fake, jobs=2, applications_per_job=3)


def call(fake: FakeAshby, endpoint: str, body: Any = None, *,
         auth: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """POST https://api.ashbyhq.com/<endpoint> with a JSON body and the API key as user name."""
    return HTTP.post(f"{fake.base_url}/{endpoint}", json={} if body is None else body,
                     auth=auth or (fake.api_key, ""), **kwargs)


def ok(fake: FakeAshby, endpoint: str, body: Any = None) -> dict[str, Any]:
    answer = call(fake, endpoint, body)
    assert answer.status_code == 200
    payload: dict[str, Any] = answer.json()
    assert payload["success"] is True, payload
    return payload


def error_code(answer: httpx.Response) -> str:
    payload = answer.json()
    assert payload["success"] is False
    assert payload["errors"] == [payload["errorInfo"]["code"]]
    assert payload["errorInfo"]["message"] and payload["errorInfo"]["requestId"]
    return str(payload["errorInfo"]["code"])


def list_all(fake: FakeAshby, endpoint: str, limit: int = 2, **body: Any
             ) -> tuple[list[dict[str, Any]], str | None]:
    """Follow nextCursor until moreDataAvailable is false, as the sync guide describes."""
    results: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        request = {**body, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(fake, endpoint, request)
        results.extend(page["results"])
        if not page["moreDataAvailable"]:
            assert "nextCursor" not in page
            return results, page.get("syncToken")
        assert "syncToken" not in page  # only the last page of a pass carries one
        cursor = page["nextCursor"]


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """An independent check of Ashby-Signature: sha256=<hex HMAC-SHA256 of the raw body>."""
    if header is None or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256="), expected)


# ---------------------------------------------------------------------- auth and envelope


def test_every_call_needs_the_api_key_as_basic_auth_user(fake: FakeAshby) -> None:
    assert httpx.post(f"{fake.base_url}/user.list", json={}).status_code == 401
    assert call(fake, "user.list", auth=("wrong-key", "")).status_code == 403
    assert call(fake, "user.list").status_code == 200
    fake.revoke_credentials()
    revoked = call(fake, "user.list")
    assert revoked.status_code == 403
    assert error_code(revoked) == "invalid_api_key"
    fake.restore_credentials()
    assert call(fake, "user.list").status_code == 200


def test_a_key_without_the_endpoint_permission_is_told_which_one(fake: FakeAshby) -> None:
    fake.revoke_permission("interviewsRead")
    refused = call(fake, "interviewSchedule.list")
    assert refused.status_code == 403
    assert error_code(refused) == "missing_endpoint_permission"
    assert "interviewsRead" in refused.json()["errorInfo"]["message"]
    assert call(fake, "application.list").status_code == 200


def test_endpoints_are_rpc_posts_with_json_bodies(fake: FakeAshby, org: SeededOrganisation
                                                  ) -> None:
    assert httpx.get(f"{fake.base_url}/user.list", auth=(fake.api_key, "")).status_code == 405
    assert call(fake, "user.nonexistent").status_code == 404
    malformed = httpx.post(f"{fake.base_url}/user.list", content=b"{not json",
                           auth=(fake.api_key, ""))
    assert (malformed.status_code, error_code(malformed)) == (200, "invalid_input")
    empty = httpx.post(f"{fake.base_url}/job.list", auth=(fake.api_key, ""))
    assert empty.json()["success"] is True  # "POST an empty JSON object" or nothing at all


def test_would_be_4xx_errors_are_http_200_with_success_false(fake: FakeAshby,
                                                             org: SeededOrganisation) -> None:
    missing = call(fake, "application.info", {"applicationId": "00000000-0000-4000-8000-0"})
    assert missing.status_code == 200
    assert error_code(missing) == "application_not_found"
    unknown = call(fake, "application.list", {"pageSize": 10})
    assert (unknown.status_code, error_code(unknown)) == (200, "invalid_input")
    for limit in (0, 101, "5", True):
        assert error_code(call(fake, "application.list", {"limit": limit})) == "invalid_input"


def test_info_answers_carry_one_object_and_lists_an_array(fake: FakeAshby,
                                                          org: SeededOrganisation) -> None:
    application = ok(fake, "application.info", {"applicationId": org.application_ids[0]})
    assert application["results"]["id"] == org.application_ids[0]
    listed = ok(fake, "application.list")
    assert isinstance(listed["results"], list) and listed["moreDataAvailable"] is False


# ---------------------------------------------------------------------- documented shapes


def test_applications_have_their_current_stage_candidate_job_and_team(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    application = ok(fake, "application.info",
                     {"applicationId": org.application_ids[0]})["results"]
    assert {"id", "createdAt", "updatedAt", "status", "candidate", "currentInterviewStage",
            "job", "hiringTeam"} <= application.keys()
    assert application["status"] == "Active"
    stage = application["currentInterviewStage"]
    assert {"id", "title", "type", "orderInInterviewPlan", "interviewPlanId"} <= stage.keys()
    assert application["job"]["id"] == org.job_ids[0]
    roles = {m["role"]: m["userId"] for m in application["hiringTeam"]}
    assert roles["Recruiting Coordinator"] == org.coordinator_id
    assert application["updatedAt"].endswith("Z") and len(application["updatedAt"]) == 24


def test_jobs_name_their_interview_plans_whose_stages_are_listed_in_order(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    job = ok(fake, "job.info", {"id": org.job_ids[0]})["results"]
    assert job["status"] == "Open" and job["interviewPlanIds"] == [job["defaultInterviewPlanId"]]
    stages = ok(fake, "interviewStage.list", {"interviewPlanId": job["defaultInterviewPlanId"]})
    assert stages["moreDataAvailable"] is False and "syncToken" not in stages
    titles = [s["title"] for s in stages["results"]]
    assert titles == ["Lead", "Application Review", "Phone Screen", "Technical Interview",
                      "Onsite", "Offer", "Hired", "Archived"]
    orders = [s["orderInInterviewPlan"] for s in stages["results"]]
    assert orders == sorted(orders)
    plan = ok(fake, "jobInterviewPlan.info", {"jobId": org.job_ids[0]})["results"]
    onsite = next(s for s in plan["stages"] if s["title"] == "Onsite")
    planned = [i["title"] for a in onsite["activities"] for i in a["interviews"]]
    assert planned == ["Onsite Panel", "Hiring Manager Interview"]


def test_job_list_leaves_drafts_out_unless_asked_for(fake: FakeAshby) -> None:
    fake.create_job("Open role")
    draft = fake.create_job("Draft role", status="draft")
    assert [j["title"] for j in ok(fake, "job.list")["results"]] == ["Open role"]
    asked = ok(fake, "job.list", {"status": ["Draft"]})["results"]
    assert [j["id"] for j in asked] == [draft]


def test_job_interviews_are_only_listed_with_include_non_shared(fake: FakeAshby,
                                                                org: SeededOrganisation) -> None:
    assert ok(fake, "interview.list")["results"] == []
    interviews = ok(fake, "interview.list", {"includeNonSharedInterviews": True})["results"]
    assert {i["jobId"] for i in interviews} == set(org.job_ids)
    assert {"id", "title", "isArchived", "isFeedbackRequired", "feedbackFormDefinitionId"} <= (
        interviews[0].keys())


def test_deactivated_users_are_listed_only_when_asked(fake: FakeAshby,
                                                      org: SeededOrganisation) -> None:
    fake.deactivate_user(org.interviewer_ids[0])
    enabled = {u["id"] for u in ok(fake, "user.list")["results"]}
    everyone = ok(fake, "user.list", {"includeDeactivated": True})["results"]
    assert org.interviewer_ids[0] not in enabled
    gone = next(u for u in everyone if u["id"] == org.interviewer_ids[0])
    assert gone["isEnabled"] is False and gone["globalRole"] == "Limited Access"
    found = ok(fake, "user.search", {"email": "CORA@acme.example"})["results"]
    assert [u["id"] for u in found] == [org.coordinator_id]


def test_only_published_postings_are_listed(fake: FakeAshby, org: SeededOrganisation) -> None:
    assert len(ok(fake, "jobPosting.list")["results"]) == 2
    fake.unpublish_job(org.job_ids[0])
    postings = ok(fake, "jobPosting.list")["results"]
    assert [p["jobId"] for p in postings] == [org.job_ids[1]]
    job = ok(fake, "job.info", {"id": org.job_ids[0]})["results"]
    assert job["jobPostingIds"] == []
    job = ok(fake, "job.info", {"id": org.job_ids[0],
                                "includeUnpublishedJobPostingsIds": True})["results"]
    assert len(job["jobPostingIds"]) == 1
    assert error_code(call(fake, "jobPosting.list", {"syncToken": "x"})) == "invalid_input"


def test_schedules_carry_events_with_interviewers_and_calendar_ids(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    starts = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
    kind = fake.interview_kind_id(org.job_ids[0], "Onsite")
    event_id = fake.schedule_interview(org.application_ids[0], kind, org.interviewer_ids[:2],
                                       starts, starts + timedelta(hours=1),
                                       external_event_id="gcal-123",
                                       organizer_id=org.coordinator_id)
    (schedule,) = ok(fake, "interviewSchedule.list",
                     {"applicationId": org.application_ids[0]})["results"]
    assert schedule["status"] == "Scheduled"
    assert schedule["scheduledBy"]["id"] == org.coordinator_id
    (event,) = schedule["interviewEvents"]
    assert event["id"] == event_id and event["interviewId"] == kind
    assert (event["startTime"], event["endTime"]) == ("2030-05-06T09:00:00.000Z",
                                                      "2030-05-06T10:00:00.000Z")
    assert event["interviewerCalendarEventId"] == "gcal-123"
    assert [i["id"] for i in event["interviewers"]] == org.interviewer_ids[:2]
    assert event["interviewerUserIds"] == org.interviewer_ids[:2]
    assert {"email", "firstName", "isFeedbackRequired", "trainingRole"} <= (
        event["interviewers"][0].keys())
    assert error_code(call(fake, "interviewEvent.list")) == "invalid_input"
    events = ok(fake, "interviewEvent.list",
                {"interviewScheduleId": schedule["id"], "expand": ["interview"]})["results"]
    assert events[0]["interview"]["id"] == kind


def test_feedback_names_its_submitter_interview_and_event(fake: FakeAshby,
                                                          org: SeededOrganisation) -> None:
    starts = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
    kind = fake.interview_kind_id(org.job_ids[0], "Technical Interview")
    event_id = fake.schedule_interview(org.application_ids[0], kind, [org.interviewer_ids[0]],
                                       starts, starts + timedelta(hours=1))
    with pytest.raises(Exception, match="not on interview"):
        fake.submit_scorecard(event_id, org.interviewer_ids[1])
    feedback_id = fake.submit_scorecard(event_id, org.interviewer_ids[0])
    (feedback,) = ok(fake, "applicationFeedback.list",
                     {"applicationId": org.application_ids[0]})["results"]
    assert feedback["id"] == feedback_id
    assert feedback["submittedByUser"]["id"] == org.interviewer_ids[0]
    assert (feedback["interviewId"], feedback["interviewEventId"]) == (kind, event_id)
    assert {"submittedAt", "formDefinition", "submittedValues", "applicationId"} <= (
        feedback.keys())


# ---------------------------------------------------------------------- pagination and sync


def test_a_full_listing_pages_with_cursors_and_ends_with_a_sync_token(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    results, token = list_all(fake, "application.list", limit=4)
    assert sorted(a["id"] for a in results) == sorted(org.application_ids)
    assert token
    assert fake.requests_to("application.list") == 2


def test_incremental_sync_returns_only_what_changed_since_the_token(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    _, token = list_all(fake, "application.list")
    fake.reject_application(org.application_ids[1])
    _, added = fake.add_candidate_application(org.job_ids[0], "New", "Person", "n@example.com")
    changed, token2 = list_all(fake, "application.list", syncToken=token)
    assert {a["id"] for a in changed} == {org.application_ids[1], added}
    archived = next(a for a in changed if a["id"] == org.application_ids[1])
    assert archived["status"] == "Archived" and archived["archiveReason"]["text"]
    assert archived["currentInterviewStage"]["type"] == "Archived"
    nothing, token3 = list_all(fake, "application.list", syncToken=token2)
    assert nothing == [] and token3


def test_a_mirror_kept_by_incremental_syncs_equals_a_fresh_full_sync(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    rows, token = list_all(fake, "application.list")
    mirror = {a["id"]: a for a in rows}
    fake.advance_application(org.application_ids[0])
    fake.hire(org.application_ids[2])
    fake.add_candidate_application(org.job_ids[1], "Late", "Comer", "late@example.com")
    changes, _ = list_all(fake, "application.list", syncToken=token)
    mirror.update({a["id"]: a for a in changes})
    fresh, _ = list_all(fake, "application.list")
    assert mirror == {a["id"]: a for a in fresh}


def test_what_changes_during_a_full_pass_comes_again_next_time(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    first = ok(fake, "application.list", {"limit": 3})
    fake.reject_application(first["results"][0]["id"])  # already served in this pass
    rest = ok(fake, "application.list", {"limit": 3, "cursor": first["nextCursor"]})
    assert rest["moreDataAvailable"] is False
    changed, _ = list_all(fake, "application.list", syncToken=rest["syncToken"])
    assert [a["id"] for a in changed] == [first["results"][0]["id"]]
    assert changed[0]["status"] == "Archived"


def test_incremental_pages_take_the_sync_token_with_the_cursor(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    _, token = list_all(fake, "candidate.list")
    for index in range(3):
        fake.add_candidate_application(org.job_ids[0], "C", str(index), f"c{index}@example.com")
    first = ok(fake, "candidate.list", {"syncToken": token, "limit": 2})
    second = ok(fake, "candidate.list",
                {"syncToken": token, "limit": 2, "cursor": first["nextCursor"]})
    assert len(first["results"]) + len(second["results"]) == 3
    _, other = list_all(fake, "candidate.list")
    mixed = call(fake, "candidate.list", {"syncToken": other, "cursor": first["nextCursor"]})
    assert error_code(mixed) == "invalid_next_cursor"


def test_expired_or_undecodable_sync_tokens_are_refused(fake: FakeAshby,
                                                        org: SeededOrganisation) -> None:
    _, token = list_all(fake, "application.list")
    _, job_token = list_all(fake, "job.list")
    assert token is not None and job_token is not None
    assert error_code(call(fake, "application.list", {"syncToken": job_token})) == (
        "sync_token_invalid")
    assert error_code(call(fake, "application.list", {"syncToken": token[:-3] + "abc"})) == (
        "sync_token_invalid")
    fake.expire_sync_tokens()
    expired = call(fake, "application.list", {"syncToken": token})
    assert (expired.status_code, error_code(expired)) == (200, "sync_token_expired")
    _, fresh = list_all(fake, "application.list")  # the full resync the guide asks for
    assert ok(fake, "application.list", {"syncToken": fresh})["results"] == []
    fake.invalidate_sync_tokens()
    assert error_code(call(fake, "application.list", {"syncToken": fresh})) == (
        "sync_token_invalid")


def test_sync_tokens_and_cursors_can_expire_with_time() -> None:
    with FakeAshby(sync_token_ttl=0.05, cursor_ttl=0.05) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=3)
        page = ok(fake, "application.list", {"limit": 1})
        time.sleep(0.1)
        stale = call(fake, "application.list", {"limit": 1, "cursor": page["nextCursor"]})
        assert error_code(stale) == "next_cursor_expired"
        _, token = list_all(fake, "application.list", limit=100)
        time.sleep(0.1)
        assert error_code(call(fake, "application.list", {"syncToken": token})) == (
            "sync_token_expired")


def test_expired_or_foreign_cursors_mean_restart_the_listing(fake: FakeAshby,
                                                             org: SeededOrganisation) -> None:
    page = ok(fake, "application.list", {"limit": 2})
    cursor = page["nextCursor"]
    assert error_code(call(fake, "application.list", {"cursor": "garbage"})) == (
        "invalid_next_cursor")
    assert error_code(call(fake, "candidate.list", {"cursor": cursor})) == "invalid_next_cursor"
    other_filter = call(fake, "application.list", {"cursor": cursor, "status": "Active"})
    assert error_code(other_filter) == "invalid_next_cursor"
    fake.expire_cursors()
    assert error_code(call(fake, "application.list", {"cursor": cursor})) == (
        "next_cursor_expired")
    fresh = ok(fake, "application.list", {"limit": 2})["nextCursor"]
    fake.invalidate_cursors()
    assert error_code(call(fake, "application.list", {"cursor": fresh})) == (
        "invalid_next_cursor")
    restarted, token = list_all(fake, "application.list")
    assert len(restarted) == 6 and token


def test_an_incremental_sync_too_deep_is_refused_but_a_full_one_is_not() -> None:
    with FakeAshby(max_incremental_pages=1) as fake:
        org = seed_organisation(fake, jobs=1, applications_per_job=3)
        _, token = list_all(fake, "application.list", limit=1)  # full passes have no cap
        for application_id in org.application_ids:
            fake.reject_application(application_id)
        first = ok(fake, "application.list", {"syncToken": token, "limit": 1})
        deeper = call(fake, "application.list",
                      {"syncToken": token, "limit": 1, "cursor": first["nextCursor"]})
        assert (deeper.status_code, error_code(deeper)) == (200, "incremental_sync_too_large")
        everything, _ = list_all(fake, "application.list", limit=1)
        assert {a["status"] for a in everything} == {"Archived"}


def test_only_sync_capable_endpoints_return_sync_tokens(fake: FakeAshby,
                                                        org: SeededOrganisation) -> None:
    for endpoint in ("application.list", "candidate.list", "job.list", "user.list",
                     "interviewSchedule.list", "applicationFeedback.list", "interview.list",
                     "interviewPlan.list"):
        assert "syncToken" in ok(fake, endpoint), endpoint
    assert "syncToken" not in ok(fake, "jobPosting.list")


# ---------------------------------------------------------------------- faults


def test_success_false_carries_a_message_in_an_http_200(fake: FakeAshby,
                                                        org: SeededOrganisation) -> None:
    fake.unsuccessful_next(code="internal_error", message="Temporarily unavailable",
                           path="/application.list")
    failed = call(fake, "application.list")
    assert failed.status_code == 200
    assert failed.json()["success"] is False and "results" not in failed.json()
    assert failed.json()["errorInfo"]["message"] == "Temporarily unavailable"
    assert len(ok(fake, "application.list")["results"]) == 6
    assert fake.error_codes["internal_error"] == 1


def test_faults_apply_in_order_and_are_counted(fake: FakeAshby) -> None:
    fake.throttle_next(retry_after=3)
    fake.fail_next(503)
    fake.truncate_next()
    throttled, failed, cut = (call(fake, "user.list") for _ in range(3))
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert error_code(throttled) == "rate_limit_exceeded"
    assert failed.status_code == 503
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    fake.disconnect_next()
    with pytest.raises(httpx.HTTPError):
        call(fake, "user.list")
    fake.slow_next(0.5)
    with pytest.raises(httpx.ReadTimeout):
        call(fake, "user.list", timeout=0.1)
    assert ok(fake, "user.list")["results"] == []
    assert fake.statuses[429] == 1 and fake.requests_to("user.list") == 6


def test_the_rate_limit_answers_429_with_retry_after() -> None:
    with FakeAshby(rate_limit=2, rate_window=60, enforce_rate_limit=True) as fake:
        statuses = [call(fake, "user.list").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert int(call(fake, "user.list").headers["Retry-After"]) >= 1


# ---------------------------------------------------------------------- webhooks


def test_webhooks_are_signed_over_the_raw_body(fake: FakeAshby) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        fake.create_job("Ingénieur <Backend> & Co")
    (received,) = recorder.received
    assert received.headers["Content-Type"] == "application/json"
    assert verify(received.body, received.headers["Ashby-Signature"], SECRET)
    assert not verify(received.body + b" ", received.headers["Ashby-Signature"], SECRET)
    assert not verify(received.body, "sha256=" + "0" * 64, SECRET)
    assert not verify(received.body, None, SECRET)
    assert "Ingénieur <Backend> & Co".encode() in received.body
    payload = json.loads(received.body)
    assert list(payload) == ["webhookActionId", "action", "data"]
    assert payload["action"] == "jobCreate"
    assert {"id", "title", "status", "employmentType", "updatedAt", "confidential"} <= (
        payload["data"]["job"].keys())


def test_without_a_secret_token_no_signature_is_sent(fake: FakeAshby) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, "")
        fake.send_ping()
    (ping,) = recorder.received
    assert "Ashby-Signature" not in ping.headers
    assert json.loads(ping.body)["data"] == {"webhookActionType": "ping"}


def test_related_webhooks_share_one_webhook_action_id(fake: FakeAshby,
                                                      org: SeededOrganisation) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        fake.advance_application(org.application_ids[0])
        fake.hire(org.application_ids[1])
    payloads = [json.loads(r.body) for r in recorder.received]
    assert [p["action"] for p in payloads] == [
        "candidateStageChange", "applicationUpdate",
        "candidateHire", "applicationUpdate", "candidateStageChange"]
    assert len({p["webhookActionId"] for p in payloads[:2]}) == 1
    assert len({p["webhookActionId"] for p in payloads[2:]}) == 1
    assert payloads[0]["webhookActionId"] != payloads[2]["webhookActionId"]
    hired = payloads[2]["data"]["application"]
    assert hired["status"] == "Hired" and hired["currentInterviewStage"]["type"] == "Hired"
    assert "offer" not in payloads[2]["data"]  # only "if one exists"


def test_schedule_webhooks_follow_the_related_webhooks_page(fake: FakeAshby,
                                                            org: SeededOrganisation) -> None:
    starts = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
    kind = fake.interview_kind_id(org.job_ids[0], "Phone Screen")
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET,
                               types=["interviewScheduleCreate", "interviewScheduleUpdate"])
        event = fake.schedule_interview(org.application_ids[0], kind, [org.interviewer_ids[0]],
                                        starts, starts + timedelta(minutes=30))
        fake.reschedule_interview(event, starts + timedelta(days=1),
                                  starts + timedelta(days=1, minutes=30))
        fake.cancel_interview(event)
    payloads = [json.loads(r.body) for r in recorder.received]
    assert [p["action"] for p in payloads] == ["interviewScheduleCreate",
                                               "interviewScheduleUpdate",
                                               "interviewScheduleUpdate",
                                               "interviewScheduleUpdate"]
    assert "candidateId" not in payloads[0]["data"]["interviewSchedule"]
    assert payloads[1]["data"]["interviewSchedule"]["candidateId"] == org.candidate_ids[0]
    moved = payloads[2]["data"]["interviewSchedule"]["interviewEvents"][0]
    assert moved["startTime"] == "2030-05-07T09:00:00.000Z"
    cancelled = payloads[3]["data"]["interviewSchedule"]
    # The cancelled schedule still names its event, so a reader knows which interview went.
    assert cancelled["status"] == "Cancelled"
    assert [e["id"] for e in cancelled["interviewEvents"]] == [event]


def test_webhook_action_ids_can_be_left_out_as_the_openapi_schemas_do() -> None:
    with WebhookRecorder() as recorder, FakeAshby(webhook_url=recorder.url,
                                                  webhook_secret=SECRET,
                                                  webhook_action_ids=False) as fake:
        fake.create_job("Schema only")
    assert list(json.loads(recorder.received[0].body)) == ["action", "data"]


def test_changes_without_a_documented_webhook_show_in_incremental_reads(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    starts = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
    event = fake.schedule_interview(org.application_ids[0],
                                    fake.interview_kind_id(org.job_ids[0], "Onsite"),
                                    [org.interviewer_ids[0]], starts, starts + timedelta(hours=1))
    _, schedules_token = list_all(fake, "interviewSchedule.list")
    _, feedback_token = list_all(fake, "applicationFeedback.list")
    _, plans_token = list_all(fake, "interviewPlan.list")
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        fake.submit_scorecard(event, org.interviewer_ids[0])
        fake.add_stage(org.job_ids[0], "Reference Check", ["Reference Call"])
    assert recorder.received == []
    (schedule,), _ = list_all(fake, "interviewSchedule.list", syncToken=schedules_token)
    assert schedule["interviewEvents"][0]["hasSubmittedFeedback"] is True
    assert len(list_all(fake, "applicationFeedback.list", syncToken=feedback_token)[0]) == 1
    (plan,), _ = list_all(fake, "interviewPlan.list", syncToken=plans_token)
    job = ok(fake, "job.info", {"id": org.job_ids[0]})["results"]
    assert plan["id"] == job["defaultInterviewPlanId"]
    titles = [s["title"] for s in ok(fake, "interviewStage.list",
                                     {"interviewPlanId": plan["id"]})["results"]]
    assert titles.index("Reference Check") == titles.index("Offer") - 1


def test_deleting_a_candidate_takes_its_applications_and_sends_candidate_delete(
        fake: FakeAshby, org: SeededOrganisation) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        fake.delete_candidate(org.candidate_ids[0])
    payload = json.loads(recorder.received[0].body)
    assert payload["action"] == "candidateDelete"
    assert payload["data"] == {"candidate": {"id": org.candidate_ids[0]}}
    remaining = {a["id"] for a in ok(fake, "application.list")["results"]}
    assert org.application_ids[0] not in remaining and len(remaining) == 5
    assert error_code(call(fake, "candidate.info", {"id": org.candidate_ids[0]})) == (
        "candidate_not_found")


def test_failed_deliveries_are_retried_except_after_non_retryable_statuses() -> None:
    with (WebhookRecorder(status=500) as failing,
          FakeAshby(webhook_url=failing.url, webhook_secret=SECRET, webhook_retries=True,
                    retry_delay_scale=0.0001) as fake):
        fake.send_ping()
        fake.flush_webhooks(timeout=20)
        (delivery,) = fake.webhook_deliveries
        assert delivery.attempts == 10 and not delivery.delivered
        assert len(failing.received) == 10
        assert len({r.body for r in failing.received}) == 1  # same bytes, same webhookActionId
    with (WebhookRecorder(status=410) as gone,
          FakeAshby(webhook_url=gone.url, webhook_secret=SECRET, webhook_retries=True,
                    retry_delay_scale=0.0001) as fake):
        fake.send_ping()
        fake.flush_webhooks()
        assert len(gone.received) == 1


def test_redelivery_repeats_the_exact_bytes(fake: FakeAshby) -> None:
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, SECRET)
        (first,) = fake.send_ping()
        again = fake.redeliver(first)
    assert again.delivered
    assert recorder.received[0].body == recorder.received[1].body
    assert (recorder.received[0].headers["Ashby-Signature"]
            == recorder.received[1].headers["Ashby-Signature"])


def test_async_webhooks_arrive_after_flush() -> None:
    with (WebhookRecorder() as recorder,
          FakeAshby(webhook_url=recorder.url, webhook_secret=SECRET,
                    async_webhooks=True) as fake):
        org = seed_organisation(fake, jobs=1, applications_per_job=2)
        fake.reject_application(org.application_ids[0])
        fake.flush_webhooks()
        actions = [json.loads(r.body)["action"] for r in recorder.received]
        assert actions.count("applicationSubmit") == 2
        assert actions[-2:] == ["candidateStageChange", "applicationUpdate"]
        assert all(d.delivered for d in fake.webhook_deliveries)


# ---------------------------------------------------------------------- FakeATS conformance


def test_the_fake_is_a_fake_ats_without_interviewer_rsvp(fake: FakeAshby,
                                                         org: SeededOrganisation) -> None:
    assert isinstance(fake, FakeATS)
    assert fake.provider == "ashby"
    assert INTERVIEWER_RSVP not in fake.capabilities
    starts = datetime.now(UTC) + timedelta(days=1)
    event = fake.schedule_interview(org.application_ids[0],
                                    fake.interview_kind_id(org.job_ids[0], "Onsite"),
                                    [org.interviewer_ids[0]], starts, starts + timedelta(hours=1))
    with pytest.raises(NotSupportedByProvider):
        fake.set_interviewer_response(event, org.interviewer_ids[0], "declined")
    with pytest.raises(NotSupportedByProvider):
        fake.delete_application(org.application_ids[0])


def test_every_protocol_method_takes_the_protocol_arguments(fake: FakeAshby) -> None:
    for name, member in vars(FakeATS).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        wanted = list(inspect.signature(member).parameters.values())[1:]
        offered = inspect.signature(getattr(fake, name)).parameters
        for parameter in wanted:
            assert parameter.name in offered, f"{name} lacks {parameter.name}"
            assert offered[parameter.name].kind == parameter.kind, f"{name}({parameter.name})"
        extra = [p for p in offered.values() if p.name not in {w.name for w in wanted}]
        assert all(p.default is not inspect.Parameter.empty for p in extra), name


def test_application_lifecycle_through_the_protocol(fake: FakeAshby,
                                                    org: SeededOrganisation) -> None:
    application = org.application_ids[0]
    fake.reject_application(application)
    fake.unreject_application(application)
    restored = ok(fake, "application.info", {"applicationId": application})["results"]
    assert restored["status"] == "Active" and "archiveReason" not in restored
    new_coordinator = fake.add_user("sam@acme.example", "Sam", "Scheduler", role="coordinator")
    fake.set_job_coordinator(org.job_ids[0], new_coordinator)
    team = ok(fake, "job.info", {"id": org.job_ids[0]})["results"]["hiringTeam"]
    assert {m["userId"] for m in team if m["role"] == "Recruiting Coordinator"} == {
        new_coordinator}
    candidate, own = fake.add_candidate_application(org.job_ids[1], "Own", "Coordinator",
                                                    "own@example.com",
                                                    coordinator_id=new_coordinator)
    team = ok(fake, "application.info", {"applicationId": own})["results"]["hiringTeam"]
    assert {m["userId"] for m in team if m["role"] == "Recruiting Coordinator"} == {
        new_coordinator}
    assert ok(fake, "candidate.info", {"id": candidate})["results"]["applicationIds"] == [own]
    stages = fake.stage_ids(org.job_ids[1])
    fake.remove_stage(stages[1])
    assert fake.stage_ids(org.job_ids[1]) == [stages[0], *stages[2:]]
    fake.close_job(org.job_ids[1])
    assert ok(fake, "job.info", {"id": org.job_ids[1]})["results"]["status"] == "Closed"
