"""The exact HTTP requests LeverConnector sends, checked against Lever's documentation.

respx stands in for Lever at its documented host, so each test asserts what the docs prescribe
(method, path, query, headers, body) rather than what the loopback fake accepts: a fake and its
connector can share a wrong assumption, a test written from the docs cannot.

Source: https://hire.lever.co/developer/documentation, sections quoted in each test:
- AUTH: "Authentication > Basic Auth"
- PAGINATION: "Pagination" (``limit``, ``offset``, ``hasNext``, ``next``)
- CUSTOMIZING: "Customizing the Response" (``expand``, repeated parameters)
- OPPORTUNITIES: "Opportunities > List all opportunities" (``updated_at_start``,
  ``confidentiality``, ``archived``) and "List deleted opportunities" (``deleted_at_start``)
- POSTINGS: "Postings > List all postings" ("updated_at_ parameters can only be used in
  combination with confidentiality")
- USERS: "Users > List all users" (``includeDeactivated``)
- INTERVIEWS, FEEDBACK: "Interviews > List all interviews / Retrieve a single interview",
  "Feedback > List all feedback"
- WEBHOOKS: "Webhooks" ("Request signing", example delivery of candidateStageChange)
Example payloads: tests/fixtures/lever/, copied from the product's shared provider fixtures
(SOURCES.md there).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from connectors.base import PollPage
from connectors.http import RetryPolicy
from connectors.lever import PARTITIONS, LeverConnector
from connectors.lever.client import RateLimiter
from connectors.lever.webhooks import sign
from taskplanner.clock import FrozenClock
from taskplanner.config import LeverConfig
from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    Deletion,
    JobSnapshot,
    ScheduleSnapshot,
    ScorecardSnapshot,
)

API_KEY = "lever-api-key-3f9a"
SIGNATURE_TOKEN = "73311ged32110cc40e00c672c2e03e1a42fa28a4fabde089"  # "Create a Webhook" example
LEVER = "https://api.lever.co/v1"
NOW = datetime(2026, 1, 5, 9, 5, tzinfo=UTC)
CURSOR = "2026-01-05T09:00:00.000Z"
SINCE_MS = str(
    int((datetime(2026, 1, 5, 9, 0, tzinfo=UTC) - timedelta(minutes=2)).timestamp() * 1000)
)
FIXTURES = Path(__file__).parent / "fixtures" / "lever"
# Ids: posting, stage, template, user and interview as in the documented examples.
OPPORTUNITY = "250d8f03-738a-4bba-a671-8a3d73477145"
CONTACT = "7f23e772-f2cf-4a8e-a5f1-8b9c2b4fa8e3"
POSTING = "9026d1f1-a03b-49dc-8a17-5f448d1de52b"
STAGE = "fe763d80-e612-4787-98bc-686679c6ac9b"  # "Phone Interview" of "List all stages"
TEMPLATE = "7fdd449e-0bb1-4ac8-9b96-9281c1dc2099"
USER = "e434f554-659d-462d-abeb-943b9deaa370"
RACHEL = "e2befaae-b830-4c21-a002-2d5019486d1a"  # "List all users": rachal@example.com
INTERVIEW = "6ff55c8e-fe04-4eb4-835a-630b1c0da421"
OFFSET = "0.1414895548650.a6070140-10d9-4c5c-a6b3-9db9fb8b6c2b"  # PAGINATION's example token
JSON = {"Accept": "application/json"}


@dataclass
class Sent:
    method: str
    path: str
    params: list[tuple[str, str]]  # in order, repeated parameters kept
    headers: httpx.Headers
    body: bytes


class Lever:
    """respx routes at api.lever.co; ``answer`` queues bodies per path and exact query."""

    def __init__(self) -> None:
        self.router = respx.Router(assert_all_mocked=True)
        self.answers: dict[tuple[str, frozenset[tuple[str, str]]], list[httpx.Response]] = {}
        self.router.get(url__startswith=f"{LEVER}/").mock(side_effect=self._answer)

    def answer(self, path: str, body: Any, *params: tuple[str, str], status: int = 200) -> None:
        key = (path, frozenset(params))
        self.answers.setdefault(key, []).append(httpx.Response(status, json=body))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        params = frozenset(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        queued = self.answers.get((path, params))
        if queued:
            return queued.pop(0)
        if "/" in path.strip("/") and not path.endswith(("interviews", "feedback", "deleted")):
            return httpx.Response(
                404, json={"code": "ResourceNotFound", "message": f"{path} was not found"}
            )
        return httpx.Response(200, json={"data": [], "hasNext": False})

    @property
    def sent(self) -> list[Sent]:
        return [
            Sent(
                call.request.method,
                call.request.url.path.removeprefix("/v1"),
                parse_qsl(call.request.url.query.decode(), keep_blank_values=True),
                call.request.headers,
                call.request.content,
            )
            for call in self.router.calls
        ]


@pytest.fixture
def lever() -> Lever:
    return Lever()


@pytest.fixture
def connector(lever: Lever) -> Iterator[LeverConnector]:
    """Built the way the daemon builds it: ``from_config`` on a ``[connectors.lever]`` table
    that keeps the documented default URL and rate."""
    cfg = LeverConfig(type="lever", api_key_env="LEVER_API_KEY", webhook_secret_env="LEVER_TOKEN")
    cfg.set_secret("api_key", API_KEY)
    cfg.set_secret("webhook_secret", SIGNATURE_TOKEN)
    made = LeverConnector.from_config(
        "lever",
        cfg,
        transport=httpx.MockTransport(lever.router.handler),
        policy=RetryPolicy(sleep=lambda _seconds: None),
        clock=FrozenClock(NOW),
        wall_clock=FrozenClock(NOW),
        limiter=RateLimiter(1_000),  # the documented rate has its own test (test_lever_rate)
    )
    yield made
    made.close()


def poll(connector: LeverConnector, cursors: dict[str, str], **kwargs: Any) -> list[PollPage]:
    return list(connector.poll(cursors, started_at=NOW, **kwargs))


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def fixture_data(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())["data"]


def posting() -> dict[str, Any]:
    return {
        "id": POSTING,
        "text": "Office Manager",
        "createdAt": ms(NOW - timedelta(days=30)),
        "updatedAt": ms(NOW - timedelta(days=1)),
        "owner": RACHEL,
        "hiringManager": None,
        "confidentiality": "non-confidential",
        "state": "published",
    }


def template() -> dict[str, Any]:
    return {
        "id": TEMPLATE,
        "text": "Phone screen",
        "stage": {"id": STAGE, "text": "Phone Interview"},
        "createdAt": ms(NOW - timedelta(days=40)),
        "updatedAt": ms(NOW - timedelta(days=40)),
    }


def opportunity(**changes: Any) -> dict[str, Any]:
    """An opportunity as "List all opportunities" returns it with ``expand=applications`` and
    ``expand=owner``."""
    record = {
        "id": OPPORTUNITY,
        "name": "Kristoff Bjorgman",
        "contact": CONTACT,
        "emails": ["kristoff@example.com"],
        "createdAt": ms(NOW - timedelta(days=3)),
        "updatedAt": ms(NOW - timedelta(minutes=1)),
        "lastAdvancedAt": ms(NOW - timedelta(minutes=1)),
        "archived": None,
        "stage": STAGE,
        "stageChanges": [
            {
                "toStageId": STAGE,
                "toStageIndex": 3,
                "userId": USER,
                "updatedAt": ms(NOW - timedelta(minutes=1)),
            }
        ],
        "owner": {"id": USER, "name": "Rachel Green", "email": "rachel@example.com"},
        "followers": [USER],
        "applications": [
            {
                "id": "cdb3b1a5-6d04-4b6e-9b5b-0d2d1ec2b7d6",
                "posting": POSTING,
                "type": "posting",
                "opportunityId": OPPORTUNITY,
            }
        ],
        "urls": {
            "list": "https://hire.lever.co/candidates",
            "show": f"https://hire.lever.co/candidates/{OPPORTUNITY}",
        },
    }
    record.update(changes)
    return record


def feedback() -> dict[str, Any]:
    return {
        "id": "0a96e6ca-2f17-4046-87b3-15d3b6a148db",
        "type": "interview",
        "text": "Phone screen",
        "interview": INTERVIEW,
        "panel": "fdb313e8-13c5-47de-9e51-6a21a4d76ff6",
        "user": "412f5bf5-1509-4916-ba5b-8b16a5c3ce6d",
        "createdAt": ms(NOW - timedelta(hours=2)),
        "updatedAt": ms(NOW - timedelta(hours=2)),
        "completedAt": ms(NOW - timedelta(hours=2)),
        "deletedAt": None,
    }


def basic() -> str:
    return "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()


def assert_plain_gets(lever: Lever) -> None:
    """AUTH: "providing an API key as the username and leaving the password blank"; every
    read is a GET without a body, asking for JSON."""
    for sent in lever.sent:
        assert (sent.method, sent.body) == ("GET", b"")
        assert sent.headers["Authorization"] == basic()
        assert sent.headers["Accept"] == "application/json"


# ---------------------------------------------------------------------------- a full sync


def test_full_sync_lists_every_resource_with_documented_parameters_and_follows_offsets(
    lever: Lever, connector: LeverConnector
) -> None:
    """PAGINATION: "limit ... can range between 1 and 100"; a response has ``hasNext`` and,
    when true, ``next``: "You can only pass in an offset that was returned to you via a
    previously paginated request", with the same filters. USERS: ``includeDeactivated=true``
    lists deactivated users too. OPPORTUNITIES / POSTINGS: ``confidentiality`` "defaults to
    non-confidential. To get both ... you must specify all". CUSTOMIZING: ``expand`` repeated,
    one value per parameter. INTERVIEWS and FEEDBACK are listed per opportunity."""
    lever.answer(
        "/users",
        {"data": fixture_data("api_list_users.json"), "hasNext": False},
        ("includeDeactivated", "true"),
        ("limit", "100"),
    )
    lever.answer(
        "/stages",
        {"data": fixture_data("api_list_stages.json"), "hasNext": False},
        ("limit", "100"),
    )
    lever.answer("/feedback_templates", {"data": [template()], "hasNext": False}, ("limit", "100"))
    lever.answer(
        "/postings",
        {"data": [posting()], "hasNext": False},
        ("confidentiality", "all"),
        ("limit", "100"),
    )
    listing = (
        ("confidentiality", "all"),
        ("expand", "applications"),
        ("expand", "owner"),
        ("limit", "100"),
    )
    second = opportunity(id="4e2d1a5f-1d37-4b3c-9f7e-2c6b8f0d9a11", contact=CONTACT)
    lever.answer(
        "/opportunities", {"data": [opportunity()], "hasNext": True, "next": OFFSET}, *listing
    )
    lever.answer(
        "/opportunities", {"data": [second], "hasNext": False}, *listing, ("offset", OFFSET)
    )
    lever.answer(
        "/opportunities",
        {"data": [{"id": OPPORTUNITY}], "hasNext": False},
        ("confidentiality", "all"),
        ("limit", "100"),
    )
    lever.answer(
        f"/opportunities/{OPPORTUNITY}/interviews",
        {"data": fixture_data("api_get_opportunity_interviews.json"), "hasNext": False},
        ("limit", "100"),
    )
    lever.answer(
        f"/opportunities/{OPPORTUNITY}/feedback",
        {"data": [feedback()], "hasNext": False},
        ("limit", "100"),
    )

    pages = poll(connector, {}, full=True)

    assert [(s.path, s.params) for s in lever.sent] == [
        ("/users", [("includeDeactivated", "true"), ("limit", "100")]),
        ("/stages", [("limit", "100")]),
        ("/feedback_templates", [("limit", "100")]),
        ("/postings", [("confidentiality", "all"), ("limit", "100")]),
        ("/opportunities", list(listing)),
        ("/opportunities", [*listing, ("offset", OFFSET)]),
        ("/opportunities", [("confidentiality", "all"), ("limit", "100")]),  # interviews' scope
        (f"/opportunities/{OPPORTUNITY}/interviews", [("limit", "100")]),
        (f"/opportunities/{OPPORTUNITY}/feedback", [("limit", "100")]),
    ]
    assert_plain_gets(lever)
    snapshots = [s for page in pages for s in page.snapshots]
    [job] = [s for s in snapshots if isinstance(s, JobSnapshot)]
    assert job.stages is not None and len(job.stages) == 7  # the account's whole pipeline
    assert job.recruiter_email == "rachal@example.com"  # the posting owner, via /users
    applications = [s for s in snapshots if isinstance(s, ApplicationSnapshot)]
    assert {a.id for a in applications} == {OPPORTUNITY, second["id"]}
    assert applications[0].stage_id == f"{POSTING}:{STAGE}"
    assert applications[0].url == f"https://hire.lever.co/candidates/{OPPORTUNITY}"
    [schedule] = [s for s in snapshots if isinstance(s, ScheduleSnapshot)]
    assert (schedule.application_id, schedule.interview_kind_id) == (
        OPPORTUNITY,
        f"{POSTING}:{TEMPLATE}",
    )
    [scorecard] = [s for s in snapshots if isinstance(s, ScorecardSnapshot)]
    assert (scorecard.schedule_id, scorecard.submitted) == (INTERVIEW, True)


# ---------------------------------------------------------------------------- a poll


def test_incremental_poll_asks_for_changes_since_the_cursor_less_the_lookback(
    lever: Lever, connector: LeverConnector
) -> None:
    """OPPORTUNITIES: ``updated_at_start`` "Filter opportunities by the timestamp they were
    last updated ... (inclusive)", in milliseconds; deletions since come from "List deleted
    opportunities" with ``deleted_at_start``. POSTINGS: "updated_at_ parameters can only be
    used in combination with confidentiality. No other parameters can be used in
    combination" (so no ``expand`` there). Users carry no ``updatedAt``: listed whole. The
    second poll of a process is the steady state (the first one also learns the stages and
    the opportunities to watch)."""
    cursors = dict.fromkeys(PARTITIONS, CURSOR)
    poll(connector, cursors)
    lever.router.calls.clear()

    poll(connector, cursors)

    assert [(s.path, s.params) for s in lever.sent] == [
        ("/users", [("includeDeactivated", "true"), ("limit", "100")]),
        ("/stages", [("limit", "100")]),
        ("/feedback_templates", [("limit", "100")]),
        (
            "/postings",
            [("confidentiality", "all"), ("updated_at_start", SINCE_MS), ("limit", "100")],
        ),
        (
            "/opportunities",
            [
                ("confidentiality", "all"),
                ("expand", "applications"),
                ("expand", "owner"),
                ("updated_at_start", SINCE_MS),
                ("limit", "100"),
            ],
        ),
        ("/opportunities/deleted", [("deleted_at_start", SINCE_MS), ("limit", "100")]),
    ]
    assert_plain_gets(lever)


def test_first_poll_of_a_process_builds_the_watch_list_from_opportunities_in_a_pipeline(
    lever: Lever, connector: LeverConnector
) -> None:
    """Lever sends no webhook for feedback and lists interviews per opportunity only, so the
    first poll after a start reads every opportunity not archived (OPPORTUNITIES:
    ``archived=false``) and keeps those with an interview ahead or feedback due."""
    lever.answer(
        "/opportunities",
        {"data": [{"id": OPPORTUNITY}], "hasNext": False},
        ("confidentiality", "all"),
        ("archived", "false"),
        ("limit", "100"),
    )
    ahead = {**fixture_data("api_get_opportunity_interview.json"), "date": ms(NOW) + 3_600_000}
    lever.answer(
        f"/opportunities/{OPPORTUNITY}/interviews",
        {"data": [ahead], "hasNext": False},
        ("limit", "100"),
    )
    cursors = dict.fromkeys(PARTITIONS, CURSOR)

    poll(connector, cursors)
    first = [(s.path, s.params) for s in lever.sent if s.path.startswith("/opportunities")]
    lever.router.calls.clear()
    poll(connector, cursors)
    second = [(s.path, s.params) for s in lever.sent if s.path.startswith("/opportunities")]

    changed = (
        "/opportunities",
        [
            ("confidentiality", "all"),
            ("expand", "applications"),
            ("expand", "owner"),
            ("updated_at_start", SINCE_MS),
            ("limit", "100"),
        ],
    )
    deleted = ("/opportunities/deleted", [("deleted_at_start", SINCE_MS), ("limit", "100")])
    in_pipeline = (
        "/opportunities",
        [("confidentiality", "all"), ("archived", "false"), ("limit", "100")],
    )
    watched = [
        (f"/opportunities/{OPPORTUNITY}/interviews", [("limit", "100")]),
        (f"/opportunities/{OPPORTUNITY}/feedback", [("limit", "100")]),
    ]
    assert first == [changed, deleted, in_pipeline, *watched]
    assert second == [changed, deleted, *watched]  # still watched: the interview is ahead


# ---------------------------------------------------------------------------- webhooks


def delivery(event: str, data: dict[str, Any], triggered_at: datetime = NOW) -> bytes:
    """A body shaped like WEBHOOKS' example delivery, signed as "Request signing" says."""
    token = "4b0a0e8a1b7f4c3d9e2f6a5b8c7d0e1f2a3b4c5d6e7f8091"
    moment = ms(triggered_at)
    return json.dumps(
        {
            "triggeredAt": moment,
            "event": event,
            "data": data,
            "signature": sign(token, moment, SIGNATURE_TOKEN),
            "token": token,
        }
    ).encode()


def test_a_stage_change_webhook_reads_the_opportunity_it_names_and_its_posting_once(
    lever: Lever, connector: LeverConnector
) -> None:
    """WEBHOOKS: the candidateStageChange example's data is ``opportunityId``, ``candidateId``,
    ``contactId``, ``toStageId``, ``fromStageId`` and nothing else: the opportunity is read
    ("Retrieve a single opportunity", with CUSTOMIZING's ``expand``), and its posting
    ("Retrieve a single posting", owner expanded), which is not read again for the next
    delivery (Lever sends no posting webhooks; a poll or five minutes refresh it)."""
    example = json.loads((FIXTURES / "webhook_candidate_stage_change.json").read_text())
    body = delivery("candidateStageChange", {**example["data"], "opportunityId": OPPORTUNITY})
    for _ in range(2):
        lever.answer(
            f"/opportunities/{OPPORTUNITY}",
            {"data": opportunity()},
            ("expand", "applications"),
            ("expand", "owner"),
        )
    owner = {"id": RACHEL, "name": "Rachel Green", "email": "rachal@example.com"}
    lever.answer(
        f"/postings/{POSTING}", {"data": {**posting(), "owner": owner}}, ("expand", "owner")
    )

    connector.verify_webhook({"Content-Type": "application/json"}, body)
    parsed = connector.parse_webhook({}, body)
    again = connector.parse_webhook({}, body)

    opportunity_read = (
        f"/opportunities/{OPPORTUNITY}",
        [("expand", "applications"), ("expand", "owner")],
    )
    assert [(s.path, s.params) for s in lever.sent] == [
        opportunity_read,
        (f"/postings/{POSTING}", [("expand", "owner")]),
        opportunity_read,
    ]
    assert_plain_gets(lever)
    job, application = parsed.snapshots
    assert isinstance(job, JobSnapshot) and job.id == POSTING
    assert job.stages is None  # the pipeline is for a poll to say
    assert (job.recruiter_email, job.coordinator_email) == ("rachal@example.com", "")
    assert isinstance(application, ApplicationSnapshot)
    assert (application.id, application.stage_id) == (OPPORTUNITY, f"{POSTING}:{STAGE}")
    assert again.snapshots == parsed.snapshots


def test_an_interview_webhook_reads_that_interview_and_a_vanished_one_is_a_deletion(
    lever: Lever, connector: LeverConnector
) -> None:
    """INTERVIEWS: "Retrieve a single interview" is
    ``GET /opportunities/:opportunity/interviews/:interview``; an interview deleted since
    answers 404 ("Responses and Errors": ResourceNotFound)."""
    lever.answer(
        f"/opportunities/{OPPORTUNITY}/interviews/{INTERVIEW}",
        {"data": fixture_data("api_get_opportunity_interview.json")},
    )
    data = {"opportunityId": OPPORTUNITY, "interviewId": INTERVIEW}

    created = connector.parse_webhook({}, delivery("interviewCreated", data))
    deleted = connector.parse_webhook({}, delivery("interviewDeleted", data))

    assert [(s.path, s.params) for s in lever.sent] == [
        (f"/opportunities/{OPPORTUNITY}/interviews/{INTERVIEW}", []),
        (f"/opportunities/{OPPORTUNITY}/interviews/{INTERVIEW}", []),
    ]
    [schedule] = created.snapshots
    assert isinstance(schedule, ScheduleSnapshot) and schedule.id == INTERVIEW
    assert schedule.interviewers is not None
    assert [i.email for i in schedule.interviewers] == ["rachel@exampleq3.com"]
    [gone] = deleted.snapshots
    assert isinstance(gone, Deletion) and gone.id == INTERVIEW


def test_the_settings_page_test_request_is_a_ping_that_reads_nothing(
    lever: Lever, connector: LeverConnector
) -> None:
    """WEBHOOKS, "How to set up webhooks": the test request is a candidateHired delivery with
    empty ``data`` (fixture webhook_test_request_candidate_hired.json)."""
    example = json.loads((FIXTURES / "webhook_test_request_candidate_hired.json").read_text())
    body = delivery("candidateHired", example.get("data") or {})

    parsed = connector.parse_webhook({}, body)

    assert parsed.is_ping and parsed.snapshots == []
    assert lever.sent == []
