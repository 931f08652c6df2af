"""The exact HTTP requests AshbyConnector sends, checked against Ashby's documentation.

respx stands in for https://api.ashbyhq.com, so each test asserts what the docs prescribe
(method, path, headers, JSON body with ``syncToken`` / ``cursor``) rather than what the loopback
fake accepts: a fake and its connector can share a wrong assumption, a test written from the
docs cannot.

Sources:
- INTRO: https://developers.ashbyhq.com/reference/introduction ("RPC-style API, where endpoints
  follow the form /CATEGORY.method"; POST; JSON bodies with ``Content-Type: application/json``;
  ``Authorization: Basic <base64(your api key + ":")>``).
- AUTH: https://developers.ashbyhq.com/reference/authentication (key as basic-auth username,
  blank password; missing key 401, wrong or deactivated key 403).
- SYNC: https://developers.ashbyhq.com/docs/pagination-and-incremental-sync ("To begin a full
  sync, POST an empty JSON object"; ``limit``; ``moreDataAvailable`` + ``nextCursor`` ->
  ``cursor``; the ``syncToken`` of the last page starts the next, incremental, pass;
  ``sync_token_expired``: discard the token and run a full sync).
- RESPONSES: https://developers.ashbyhq.com/docs/responses (``success: false`` with
  ``errorInfo`` inside HTTP 200).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from connectors.ashby import PARTITIONS, AshbyConnector, AshbyUnsuccessful
from connectors.base import FatalConnectorError, PollPage
from connectors.http import RetryPolicy
from taskplanner.domain.snapshots import ApplicationSnapshot, EntityKind

API_KEY = "ashby-key-7f3e"
API = "https://api.ashbyhq.com"
NOW = datetime(2026, 1, 5, 9, 5, tzinfo=UTC)
APPLICATION: dict[str, Any] = {
    "id": "2c6991c5-8f6c-4b4a-9a1a-6f1c1c6f8a01",
    "createdAt": "2026-01-02T10:00:00.000Z",
    "updatedAt": "2026-01-05T08:59:00.000Z",
    "status": "Active",
    "candidate": {
        "id": "5b0c2a44-2b1e-4b57-8bb2-5c5b8d4e9c02",
        "name": "Ada Lovelace",
        "primaryEmailAddress": {"value": "ada@example.com", "type": "Personal", "isPrimary": True},
    },
    "currentInterviewStage": {
        "id": "e1b8d6a0-6a44-4c8c-b8a5-4bd9a9f1a003",
        "title": "Phone Screen",
        "type": "Active",
        "orderInInterviewPlan": 2,
        "interviewPlanId": "a9e9b3f0-3c2e-4f35-9f2d-2f6b0d5e7a04",
    },
    "job": {"id": "0d9f6a56-4c5b-4d6e-8f70-1a2b3c4d5e05", "title": "Backend Engineer"},
    "hiringTeam": [],
}
OTHER = {**APPLICATION, "id": "9f0e8d7c-6b5a-4e3d-8c2b-1a0f9e8d7c06"}


@dataclass
class Sent:
    """One request as Ashby would receive it."""

    method: str
    path: str
    headers: httpx.Headers
    body: dict[str, Any]


class Ashby:
    """respx routes at Ashby's documented host: each ``POST /<endpoint>`` answers from a queue
    (an empty last page with a syncToken once the queue runs out); ``sent`` is every request."""

    def __init__(self) -> None:
        self.router = respx.Router(assert_all_mocked=True)
        self.queues: dict[str, list[dict[str, Any]]] = {}
        self.router.post(url__startswith=f"{API}/").mock(side_effect=self._answer)

    def queue(self, endpoint: str, *answers: dict[str, Any]) -> None:
        self.queues.setdefault(endpoint, []).extend(answers)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.removeprefix("/")
        queued = self.queues.get(endpoint)
        if queued:
            return httpx.Response(200, json=queued.pop(0))
        if endpoint == "jobInterviewPlan.info":
            return httpx.Response(200, json={"success": True, "results": {"stages": []}})
        return httpx.Response(
            200,
            json={
                "success": True,
                "results": [],
                "moreDataAvailable": False,
                "syncToken": f"{endpoint}-token-1",
            },
        )

    def sent(self, endpoint: str | None = None) -> list[Sent]:
        out = []
        for call in self.router.calls:
            request = call.request
            path = request.url.path
            if endpoint is not None and path != f"/{endpoint}":
                continue
            body = json.loads(request.content) if request.content else None
            out.append(Sent(request.method, path, request.headers, body))
        return out


@pytest.fixture
def ashby() -> Ashby:
    return Ashby()


@pytest.fixture
def connector(ashby: Ashby) -> Iterator[AshbyConnector]:
    made = AshbyConnector(
        "ashby",
        base_url=API,
        api_key=API_KEY,
        webhook_secret="whsec",
        transport=httpx.MockTransport(ashby.router.handler),
        policy=RetryPolicy(sleep=lambda _seconds: None),
        clock=lambda: NOW,
    )
    yield made
    made.close()


def run(
    connector: AshbyConnector, cursors: dict[str, str], *, full: bool = False
) -> list[PollPage]:
    return list(connector.poll(cursors, started_at=NOW, full=full))


def cursors_of(pages: list[PollPage]) -> dict[str, str]:
    return {p.partition: p.cursor for p in pages if p.cursor is not None}


def page(
    results: list[dict[str, Any]], *, cursor: str | None = None, token: str | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "success": True,
        "results": results,
        "moreDataAvailable": cursor is not None,
    }
    if cursor is not None:
        answer["nextCursor"] = cursor
    if token is not None:
        answer["syncToken"] = token
    return answer


def test_every_request_is_a_json_post_with_the_key_as_basic_auth_username(
    ashby: Ashby, connector: AshbyConnector
) -> None:
    """INTRO + AUTH: POST /CATEGORY.method, ``Content-Type: application/json``,
    ``Authorization: Basic base64("<key>:")``."""
    run(connector, {})
    expected = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    sent = ashby.sent()
    assert sent
    for request in sent:
        assert request.method == "POST"
        assert request.headers["authorization"] == expected
        assert request.headers["content-type"] == "application/json"
        assert isinstance(request.body, dict)


def test_a_full_sync_posts_no_sync_token_and_follows_next_cursor(
    ashby: Ashby, connector: AshbyConnector
) -> None:
    """SYNC "Full sync": POST ``{}`` (here with ``limit``), then the same request with
    ``cursor`` = ``nextCursor`` while ``moreDataAvailable``; the last page's ``syncToken`` is
    kept for the next pass, and a complete listing vouches for every id (present_ids)."""
    ashby.queue(
        "application.list",
        page([APPLICATION], cursor="cur-2"),
        page([OTHER], token="apps-token-1"),
    )
    pages = run(connector, {})

    assert [s.body for s in ashby.sent("application.list")] == [
        {"limit": 100},
        {"limit": 100, "cursor": "cur-2"},
    ]
    assert [s.body for s in ashby.sent("job.list")] == [
        {"status": ["Draft", "Open", "Closed", "Archived"], "limit": 100}
    ]
    assert [s.body for s in ashby.sent("user.list")] == [{"includeDeactivated": True, "limit": 100}]
    last = [p for p in pages if p.partition == "applications"][-1]
    assert json.loads(last.cursor or "") == {"application.list": "apps-token-1"}
    assert last.present_ids is not None
    assert last.present_ids[EntityKind.APPLICATION] == {APPLICATION["id"], OTHER["id"]}
    assert [p.partition for p in pages if p.cursor is not None] == list(PARTITIONS)


def test_a_poll_sends_the_stored_sync_token_on_every_page(
    ashby: Ashby, connector: AshbyConnector
) -> None:
    """SYNC "Incremental sync": the stored ``syncToken`` goes in the body; later pages of
    the same pass add ``cursor`` to the same request. An incremental pass vouches for nothing
    beyond what it lists (no present_ids) and stores the new token."""
    cursors = {"applications": json.dumps({"application.list": "apps-token-1"})}
    ashby.queue(
        "application.list",
        page([APPLICATION], cursor="cur-9"),
        page([], token="apps-token-2"),
    )
    pages = run(connector, cursors)

    assert [s.body for s in ashby.sent("application.list")] == [
        {"limit": 100, "syncToken": "apps-token-1"},
        {"limit": 100, "syncToken": "apps-token-1", "cursor": "cur-9"},
    ]
    applications = [p for p in pages if p.partition == "applications"]
    assert applications[-1].present_ids is None
    assert json.loads(applications[-1].cursor or "") == {"application.list": "apps-token-2"}
    assert [
        s.id for p in applications for s in p.snapshots if isinstance(s, ApplicationSnapshot)
    ] == [APPLICATION["id"]]


@pytest.mark.parametrize(
    "code", ["sync_token_expired", "sync_token_invalid", "incremental_sync_too_large"]
)
def test_a_rejected_sync_token_is_dropped_for_a_full_sync(
    ashby: Ashby, connector: AshbyConnector, code: str
) -> None:
    """SYNC: "discard the syncToken and perform a full sync" on ``sync_token_expired``,
    ``sync_token_invalid`` (changelog 2026-08-04) and ``incremental_sync_too_large``
    (changelog 2026-05-14). RESPONSES: the error comes as ``success: false``."""
    cursors = {"applications": json.dumps({"application.list": "stale-token"})}
    ashby.queue(
        "application.list",
        {
            "success": False,
            "errors": [code],
            "errorInfo": {"code": code, "message": "discard it and run a full sync"},
        },
        page([APPLICATION], token="fresh-token"),
    )
    pages = run(connector, cursors)

    assert [s.body for s in ashby.sent("application.list")] == [
        {"limit": 100, "syncToken": "stale-token"},
        {"limit": 100},
    ]
    last = [p for p in pages if p.partition == "applications"][-1]
    assert json.loads(last.cursor or "") == {"application.list": "fresh-token"}
    assert last.present_ids is not None  # the resync is a full listing
    assert connector.resyncs == 1


@pytest.mark.parametrize("code", ["next_cursor_expired", "invalid_next_cursor"])
def test_a_rejected_cursor_restarts_the_listing_with_the_same_token(
    ashby: Ashby, connector: AshbyConnector, code: str
) -> None:
    """SYNC (changelog 2026-08-04): an expired or undecodable cursor means "restart the
    listing without a cursor"; the pass's syncToken stays."""
    cursors = {"applications": json.dumps({"application.list": "apps-token-1"})}
    ashby.queue(
        "application.list",
        page([APPLICATION], cursor="cur-old"),
        {"success": False, "errorInfo": {"code": code, "message": "restart the listing"}},
        page([APPLICATION], cursor="cur-new"),
        page([OTHER], token="apps-token-2"),
    )
    run(connector, cursors)
    assert [s.body for s in ashby.sent("application.list")] == [
        {"limit": 100, "syncToken": "apps-token-1"},
        {"limit": 100, "syncToken": "apps-token-1", "cursor": "cur-old"},
        {"limit": 100, "syncToken": "apps-token-1"},
        {"limit": 100, "syncToken": "apps-token-1", "cursor": "cur-new"},
    ]


def test_success_false_fails_the_poll_with_ashbys_message(
    ashby: Ashby, connector: AshbyConnector
) -> None:
    """RESPONSES: "what would be 4XX errors will return 200 with success being false"; the
    poll fails with the code and message instead of reading an empty listing."""
    ashby.queue(
        "application.list",
        {
            "success": False,
            "errors": ["internal_error"],
            "errorInfo": {
                "code": "internal_error",
                "message": "Something went wrong",
                "requestId": "01HZX",
            },
        },
    )
    with pytest.raises(AshbyUnsuccessful) as caught:
        run(connector, {}, full=True)
    assert "application.list failed: internal_error: Something went wrong" in str(caught.value)
    assert caught.value.status == 200


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, "missing_api_key", "Missing API key"),
        (403, "invalid_api_key", "The API key is invalid or deactivated"),
        (403, "missing_endpoint_permission", "Missing endpoint permission: candidatesRead"),
    ],
)
def test_a_rejected_key_is_fatal_with_ashbys_reason_and_no_retry(
    ashby: Ashby, connector: AshbyConnector, status: int, code: str, message: str
) -> None:
    """AUTH: a missing key is 401, a wrong or deactivated one 403, a key without the
    endpoint's permission 403 ``missing_endpoint_permission``: fatal at once, and the reason
    (which permission to grant) is kept; the key itself never appears."""
    ashby.router.routes.clear()
    route = ashby.router.post(f"{API}/user.list").mock(
        return_value=httpx.Response(
            status,
            json={
                "success": False,
                "errors": [code],
                "errorInfo": {"code": code, "message": message},
            },
        )
    )
    with pytest.raises(FatalConnectorError) as caught:
        run(connector, {})
    assert caught.value.status == status
    assert f"{code}: {message}" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert route.call_count == 1
