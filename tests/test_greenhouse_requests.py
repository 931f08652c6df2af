"""The exact HTTP requests GreenhouseConnector sends, checked against the Harvest v3 docs.

respx stands in for Greenhouse at its documented hosts, so each test asserts what the docs
prescribe (method, URL, query, headers, body) rather than what the loopback fake accepts: a fake
and its connector can share a wrong assumption, a test written from the docs cannot.

Sources (quoted in each test):
- AUTH: https://harvestdocs.greenhouse.io/docs/authentication
- PAGINATION: https://harvestdocs.greenhouse.io/docs/pagination
- LIST: https://harvestdocs.greenhouse.io/docs/list-endpoints
- ../shared/fixtures/providers/greenhouse/HARVEST_V3.md (beside the repository) collects the
  same pages.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.base import FatalConnectorError, PollPage
from connectors.greenhouse import PARTITIONS, GreenhouseConnector
from connectors.http import RetryPolicy
from taskplanner.clock import FrozenClock
from taskplanner.config import GreenhouseConfig
from taskplanner.domain.snapshots import JobSnapshot, UserSnapshot

CLIENT_ID = "gh-client-id-4711"
CLIENT_SECRET = "gh-client-secret-0815"
USER_ID = "4080"  # the Greenhouse user the token acts as (`sub`)
TOKEN_URL = "https://auth.greenhouse.io/token"
HARVEST = "https://harvest.greenhouse.io"
NOW = datetime(2026, 1, 5, 9, 5, tzinfo=UTC)
# A cursor as the pagination guide describes it: URL-safe Base64, opaque, padding included.
CURSOR = "eyJhZnRlciI6MTAxLCJwZXJfcGFnZSI6NTAwfQ_-w=="


@dataclass
class Sent:
    """One request as Greenhouse would receive it."""

    method: str
    url: str  # scheme, host and path: no query
    path: str
    params: dict[str, list[str]]
    headers: httpx.Headers
    body: bytes


class Harvest:
    """respx routes at Greenhouse's documented hosts; ``sent`` is every request in order."""

    def __init__(self) -> None:
        self.router = respx.Router(assert_all_mocked=True)
        self.tokens = iter(f"jwt-{n}" for n in range(1, 100))
        self.token_route = self.router.post(TOKEN_URL).mock(side_effect=self._token)
        self.lists: dict[tuple[str, frozenset[tuple[str, str]]], list[httpx.Response]] = {}
        self.api_route = self.router.get(url__startswith=f"{HARVEST}/v3/").mock(
            side_effect=self._list
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        # The token response is UNCONFIRMED for client credentials (HARVEST_V3.md §1); this is
        # the shape third-party clients read, with the one-hour TTL of the partner guide.
        return httpx.Response(
            200,
            json={"access_token": next(self.tokens), "token_type": "Bearer", "expires_in": 3600},
        )

    def answer(self, resource: str, *responses: httpx.Response, **params: str) -> None:
        """Queue answers for ``GET /v3/<resource>`` with exactly ``params`` (per_page aside)."""
        key = (resource, frozenset(params.items()))
        self.lists.setdefault(key, []).extend(responses)

    def _list(self, request: httpx.Request) -> httpx.Response:
        resource = request.url.path.removeprefix("/v3/")
        params = {k: v for k, v in request.url.params.multi_items() if k != "per_page"}
        queued = self.lists.get((resource, frozenset(params.items())))
        if queued:
            return queued.pop(0)
        return httpx.Response(200, json=[])  # a list endpoint with nothing to say

    @property
    def sent(self) -> list[Sent]:
        return [
            Sent(
                call.request.method,
                str(call.request.url.copy_with(query=None)),
                call.request.url.path,
                parse_qs(call.request.url.query.decode(), keep_blank_values=True),
                call.request.headers,
                call.request.content,
            )
            for call in self.router.calls
        ]

    def api(self) -> list[Sent]:
        return [s for s in self.sent if s.path.startswith("/v3/")]

    def token_requests(self) -> list[Sent]:
        return [s for s in self.sent if s.path == "/token"]


@pytest.fixture
def harvest() -> Harvest:
    return Harvest()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def connector(harvest: Harvest, clock: FrozenClock) -> Iterator[GreenhouseConnector]:
    """Built the way the daemon builds it: ``from_config`` on a ``[connectors.greenhouse]``
    table that keeps the documented default URLs."""
    cfg = GreenhouseConfig(
        type="greenhouse",
        client_id_env="GREENHOUSE_CLIENT_ID",
        client_secret_env="GREENHOUSE_CLIENT_SECRET",
        user_id=USER_ID,
    )
    cfg.set_secret("client_id", CLIENT_ID)  # what Config.resolve_secrets does
    cfg.set_secret("client_secret", CLIENT_SECRET)
    made = GreenhouseConnector.from_config(
        "greenhouse",
        cfg,
        transport=httpx.MockTransport(harvest.router.handler),
        policy=RetryPolicy(sleep=lambda _seconds: None),
        clock=clock,
    )
    yield made
    made.close()


def poll(connector: GreenhouseConnector, cursors: dict[str, str], **kwargs: Any) -> list[PollPage]:
    return list(connector.poll(cursors, started_at=NOW, **kwargs))


def query(sent: Sent) -> dict[str, str]:
    """The decoded query of a request, each parameter present exactly once."""
    assert all(len(values) == 1 for values in sent.params.values()), sent.params
    return {key: values[0] for key, values in sent.params.items()}


def user(user_id: int, email: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": email.split("@")[0],
        "primary_email": email,
        "updated_at": "2026-01-02T10:00:00.000Z",
    }


def job(job_id: int) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"Job {job_id}",
        "status": "open",
        "created_at": "2025-12-01T10:00:00.000Z",
        "updated_at": "2026-01-02T10:00:00.000Z",
    }


# ---------------------------------------------------------------------------- token request


def test_token_request_is_client_credentials_with_basic_auth_and_sub(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """AUTH, "Step 2: Generate an access token": "Make a server-to-server POST request to the
    token endpoint. Endpoint: https://auth.greenhouse.io/token; Authentication: HTTP Basic using
    <<CLIENT_ID>>:<<CLIENT_SECRET>>; Body format: application/x-www-form-urlencoded; Body
    parameters (URL-encoded): grant_type=client_credentials, sub=<<USER_ID>> (a Greenhouse
    user_id to identify the authorizing user)"."""
    connector.authenticate()

    [token] = harvest.sent
    assert (token.method, token.url) == ("POST", TOKEN_URL)
    assert token.params == {}
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token.headers["Authorization"] == f"Basic {basic}"
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token.body.decode()) == {"grant_type": ["client_credentials"], "sub": [USER_ID]}


def test_token_request_without_a_configured_user_sends_no_sub(harvest: Harvest) -> None:
    """AUTH lists ``sub`` among the body parameters without saying whether it may be left out;
    only a third party (Nango's connect guide) says it is optional and then "default[s] to an
    auto-generated service account user attached to the credentials". The config makes
    ``user_id`` optional, so with none the connector sends ``grant_type`` alone: UNCONFIRMED on
    a Greenhouse page, asserted as what the connector does."""
    connector = GreenhouseConnector(
        "greenhouse",
        base_url=HARVEST,
        auth_url="https://auth.greenhouse.io",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_secret=None,
        transport=httpx.MockTransport(harvest.router.handler),
    )
    connector.authenticate()
    connector.close()

    [token] = harvest.token_requests()
    assert parse_qs(token.body.decode()) == {"grant_type": ["client_credentials"]}


# ---------------------------------------------------------------------------- full sync


def test_full_sync_lists_every_resource_and_follows_the_link_header_cursor_alone(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """PAGINATION: "Make your first request with whatever filters you need. Then, keep calling
    the rel="next" URL from the response Link header until there's no next link." "When you pass
    a cursor, it must be the only query parameter ... put filters and per_page on the first
    request only". "Treat the cursor as an opaque value". "When the Link header is missing or
    empty, you're on the last page."
    LIST: "ids: Filter results by specific IDs. parent resource(s): Narrow results to those
    associated with a parent resource", written ``candidate_ids=12345,12346``. AUTH: "Call
    Harvest v3 endpoints with Authorization: Bearer <<ACCESS_TOKEN>>".

    Which child resource takes which ``*_ids`` filter, and ``job_posts?active=false`` (deleted
    posts), are only partly on Greenhouse pages (HARVEST_V3.md §5 marks ``job_owners``,
    ``job_posts`` filters and ``active`` as third-party): asserted as what the connector sends.
    The guide says to request the Link URL itself; the connector sends its ``cursor`` alone to
    its own configured Harvest URL instead (a bearer token never follows a link to another
    host), which is the same request while the link points at the same endpoint."""
    harvest.answer(
        "users",
        httpx.Response(
            200,
            json=[user(101, "cora@acme.example")],
            headers={"Link": f'<{HARVEST}/v3/users?cursor={CURSOR}>; rel="next"'},
        ),
    )
    harvest.answer(
        "users", httpx.Response(200, json=[user(102, "rick@acme.example")]), cursor=CURSOR
    )
    harvest.answer("jobs", httpx.Response(200, json=[job(7), job(8)]))
    harvest.answer(
        "job_owners",
        httpx.Response(
            200,
            json=[
                {"id": 1, "job_id": 7, "user_id": 101, "type": "coordinator", "responsible": True}
            ],
        ),
        job_ids="7,8",
    )

    pages = poll(connector, {}, full=True)

    assert {s.url.removesuffix(s.path) for s in harvest.api()} == {HARVEST}
    requested = [(s.path, query(s)) for s in harvest.api()]
    assert requested == [
        ("/v3/users", {"per_page": "500"}),
        ("/v3/users", {"cursor": CURSOR}),
        ("/v3/jobs", {"per_page": "500"}),
        ("/v3/job_interview_stages", {"job_ids": "7,8", "per_page": "500"}),
        ("/v3/job_interviews", {"job_ids": "7,8", "per_page": "500"}),
        ("/v3/job_owners", {"job_ids": "7,8", "per_page": "500"}),
        ("/v3/job_posts", {"job_ids": "7,8", "per_page": "500"}),
        ("/v3/job_posts", {"job_ids": "7,8", "active": "false", "per_page": "500"}),
        ("/v3/applications", {"per_page": "500"}),
        ("/v3/interviews", {"per_page": "500"}),
        ("/v3/scorecards", {"per_page": "500"}),
    ]
    assert {s.headers["Authorization"] for s in harvest.api()} == {"Bearer jwt-1"}
    assert len(harvest.token_requests()) == 1
    # What the requests brought back, and a cursor per partition on its last page.
    users = [s.id for p in pages for s in p.snapshots if isinstance(s, UserSnapshot)]
    assert users == ["101", "102"]
    jobs = {s.id: s for p in pages for s in p.snapshots if isinstance(s, JobSnapshot)}
    assert jobs["7"].coordinator_email == "cora@acme.example"
    assert {p.partition: p.cursor for p in pages if p.cursor} == dict.fromkeys(
        PARTITIONS, "2026-01-05T09:05:00.000Z"
    )


# ---------------------------------------------------------------------------- incremental poll


def test_incremental_poll_sends_updated_at_in_pipe_form_on_every_resource(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """LIST: "updated_at: Filter by last updated date, supporting the same operators as
    created_at" ("gte, lte, gt, and lt"), in the pipe form of its example
    ``created_at=gte|2024-01-01T00:00:00Z``; "For each resource, the following filters are
    supported", so child resources (stages, owners, posts, candidates, stage history,
    interviewers) take it too. The filter is the stored cursor less the two-minute lookback.
    The interview sweep lists ids only with ``fields`` (get_v3-interviews: a comma-separated
    list of fields to return), and only of interviews that can still matter: ``ends_at`` and
    ``all_day_end_on`` are filters of get_v3-interviews."""
    cursors = dict.fromkeys(PARTITIONS, "2026-01-05T09:00:00.000Z")
    since = {"updated_at": "gte|2026-01-05T08:58:00.000Z", "per_page": "500"}

    pages = poll(connector, cursors)

    requested = [(s.path, query(s)) for s in harvest.api()]
    assert requested == [
        ("/v3/users", since),
        ("/v3/jobs", since),
        ("/v3/job_interview_stages", since),
        ("/v3/job_interviews", since),
        ("/v3/job_owners", since),
        ("/v3/job_posts", since),
        ("/v3/job_posts", {**since, "active": "false"}),
        ("/v3/applications", since),
        ("/v3/candidates", since),
        ("/v3/application_stages", since),
        ("/v3/interviews", since),
        ("/v3/interviewers", since),
        # The sweep covers interviews ending after now - one day (timed and all-day ones).
        (
            "/v3/interviews",
            {"ends_at": "gte|2026-01-04T09:05:00.000Z", "fields": "id,status", "per_page": "500"},
        ),
        (
            "/v3/interviews",
            {"all_day_end_on": "gte|2026-01-03", "fields": "id,status", "per_page": "500"},
        ),
        ("/v3/scorecards", since),
    ]
    assert {p.partition: p.cursor for p in pages if p.cursor} == dict.fromkeys(
        PARTITIONS, "2026-01-05T09:05:00.000Z"
    )


def test_link_header_with_prev_and_next_is_followed_by_its_next_link(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """PAGINATION: "Harvest v3 currently returns only a next link (no prev or last)", but the
    READ migration guide (https://harvestdocs.greenhouse.io/docs/step-by-step-migration-instructions)
    still says both ``next`` and ``prev`` come back: with both, only ``rel="next"`` is
    followed, and a ``prev`` link alone ends the listing."""
    harvest.answer(
        "users",
        httpx.Response(
            200,
            json=[],
            headers={
                "Link": f'<{HARVEST}/v3/users?cursor=cHJldg>; rel="prev", '
                f'<{HARVEST}/v3/users?cursor={CURSOR}>; rel="next"'
            },
        ),
    )
    harvest.answer(
        "users",
        httpx.Response(
            200, json=[], headers={"Link": f'<{HARVEST}/v3/users?cursor=cHJldg>; rel="prev"'}
        ),
        cursor=CURSOR,
    )

    poll(connector, {}, full=True)

    users = [query(s) for s in harvest.api() if s.path == "/v3/users"]
    assert users == [{"per_page": "500"}, {"cursor": CURSOR}]


def test_incremental_pages_carry_the_cursor_without_the_filter(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """PAGINATION: "All filtering and pagination settings from the initial request are embedded
    in the cursor itself" and "GET /v3/jobs?cursor=...&status=closed" "will fail": the filter of
    an incremental poll goes on its first page only."""
    harvest.answer(
        "scorecards",
        httpx.Response(
            200, json=[], headers={"Link": f'<{HARVEST}/v3/scorecards?cursor={CURSOR}>; rel="next"'}
        ),
        updated_at="gte|2026-01-05T08:58:00.000Z",
    )

    poll(connector, {"scorecards": "2026-01-05T09:00:00.000Z"})

    scorecards = [query(s) for s in harvest.api() if s.path == "/v3/scorecards"]
    assert scorecards == [
        {"updated_at": "gte|2026-01-05T08:58:00.000Z", "per_page": "500"},
        {"cursor": CURSOR},
    ]


# ---------------------------------------------------------------------------- token refresh


def test_expired_token_is_replaced_before_the_next_request(
    harvest: Harvest, connector: GreenhouseConnector, clock: FrozenClock
) -> None:
    """The client-credentials token response is UNCONFIRMED (HARVEST_V3.md §1); the partner
    guide (https://harvestdocs.greenhouse.io/docs/harvest-partner-oauth) gives "Access Token: 1
    hour". Once ``expires_in`` has run out, the next call first asks the token endpoint again,
    with the same documented request, then carries the new bearer."""
    connector.authenticate()
    clock.advance(timedelta(hours=1))

    poll(connector, {}, full=True)

    sent = harvest.sent
    assert [s.path for s in sent[:3]] == ["/token", "/token", "/v3/users"]
    assert parse_qs(sent[1].body.decode()) == {
        "grant_type": ["client_credentials"],
        "sub": [USER_ID],
    }
    assert {s.headers["Authorization"] for s in harvest.api()} == {"Bearer jwt-2"}


def test_401_gets_one_new_token_and_the_same_request_again(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """A 401 means the bearer was not accepted (AUTH: every call carries "Authorization: Bearer
    <<ACCESS_TOKEN>>"; tokens are JWTs that expire, partner guide "Access Token: 1 hour"). The
    connector asks for one new token and repeats the identical request with it."""
    connector.authenticate()
    harvest.answer("users", httpx.Response(401, json={"error": "invalid_token"}))

    poll(connector, {}, full=True)

    sent = harvest.sent
    assert [s.path for s in sent[:4]] == ["/token", "/v3/users", "/token", "/v3/users"]
    assert query(sent[1]) == query(sent[3]) == {"per_page": "500"}
    assert sent[1].headers["Authorization"] == "Bearer jwt-1"
    assert sent[3].headers["Authorization"] == "Bearer jwt-2"
    assert len(harvest.token_requests()) == 2


def test_second_401_after_a_refresh_is_fatal_without_more_token_requests(
    harvest: Harvest, connector: GreenhouseConnector
) -> None:
    """Only one refresh per request: a fresh token that is refused too means the credential
    lacks access (AUTH: scopes are configured on the credential), which no retry fixes."""
    harvest.answer(
        "users", httpx.Response(401, json={"error": "invalid_token"}), httpx.Response(401, json={})
    )

    with pytest.raises(FatalConnectorError) as raised:
        poll(connector, {}, full=True)

    assert raised.value.status == 401
    assert [s.path for s in harvest.sent] == ["/token", "/v3/users", "/token", "/v3/users"]
    assert CLIENT_SECRET not in str(raised.value)
