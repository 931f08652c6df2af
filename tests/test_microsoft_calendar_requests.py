"""The exact HTTP requests MicrosoftCalendarConnector sends, checked against Microsoft's docs.

Graph calls go through httpx, so respx stands in for Graph at its documented host. Tokens come
from msal, which talks ``requests``: a recording ``requests`` adapter is mounted on the session
msal uses as its ``http_client`` (``identity_adapter``), so msal itself builds every identity
request and the test reads them off the wire. Each test asserts what the docs prescribe rather
than what the loopback fake accepts.

Sources (quoted in each test; paths in github.com/microsoftgraph/microsoft-graph-docs-contrib):
- EVENT_DELTA: https://learn.microsoft.com/graph/api/event-delta
  (api-reference/v1.0/api/event-delta.md)
- DELTA_EVENTS: https://learn.microsoft.com/graph/delta-query-events
  (concepts/delta-query-events.md)
- DELTA_OVERVIEW: https://learn.microsoft.com/graph/delta-query-overview
  (concepts/delta-query-overview.md)
- ERRORS: https://learn.microsoft.com/graph/errors (concepts/errors.md)
- CLIENT_CREDENTIALS: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  ("First case: Access token request with a shared secret")
- OIDC: https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
  ("Find your app's OpenID configuration document URI")
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import requests
import respx
from requests.adapters import BaseAdapter

from connectors.base import PollPage
from connectors.http import RetryPolicy
from connectors.microsoft_calendar import GraphCursor, MicrosoftCalendarConnector
from taskplanner.clock import FrozenClock
from taskplanner.config import MicrosoftCalendarConfig
from taskplanner.domain.snapshots import Deletion, EntityKind

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
CLIENT_SECRET = "sampleCredentia1s~secret"
CALENDAR = "sam.recruiter@acme.example"
AUTHORITY = f"https://login.microsoftonline.com/{TENANT}"
DISCOVERY_URL = f"{AUTHORITY}/v2.0/.well-known/openid-configuration"
TOKEN_URL = f"{AUTHORITY}/oauth2/v2.0/token"
GRAPH = "https://graph.microsoft.com/v1.0"
DELTA_URL = f"{GRAPH}/users/{CALENDAR}/calendarView/delta"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(days=1), NOW + timedelta(days=60))  # the connector's default round
WINDOW_QUERY = {"startDateTime": "2026-01-04T09:00:00Z", "endDateTime": "2026-03-06T09:00:00Z"}
# State-token links in the shape of DELTA_EVENTS' examples (opaque to the client).
NEXT_LINK = f"{DELTA_URL}?$skiptoken=R0usmcCM996atia_s"
DELTA_LINK = f"{DELTA_URL}?$deltatoken=R0usmcMDNGg0J1E"
NEW_DELTA_LINK = f"{DELTA_URL}?$deltatoken=R0usmcFuQtZdtpk4"


@dataclass
class Sent:
    """One request as the identity platform or Graph would receive it."""

    method: str
    url: str  # the full URL as sent
    headers: Mapping[str, str]
    body: str

    @property
    def path(self) -> str:
        """Scheme, host and decoded path: no query."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{unquote(parts.path)}"

    @property
    def query(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.url).query, keep_blank_values=True)
        assert all(len(v) == 1 for v in query.values()), f"repeated parameter in {self.url}"
        return {k: v[0] for k, v in query.items()}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body, keep_blank_values=True).items()}


class IdentityPlatform(BaseAdapter):
    """A ``requests`` transport adapter answering as login.microsoftonline.com does."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []
        self.expires_in = 3599
        self._tokens = iter(f"eyJ0eXAi.graph-token-{n}" for n in range(1, 100))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        self.sent.append(Sent(str(request.method), str(request.url), request.headers, body))
        if request.url == DISCOVERY_URL:
            # OIDC: the document's endpoints for a tenant-specific authority.
            answer = {
                "authorization_endpoint": f"{AUTHORITY}/oauth2/v2.0/authorize",
                "token_endpoint": TOKEN_URL,
                "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            }
        elif request.url == TOKEN_URL:
            # CLIENT_CREDENTIALS, "Successful response example".
            answer = {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": next(self._tokens),
            }
        else:
            raise AssertionError(f"unexpected identity request {request.method} {request.url}")
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        response._content = json.dumps(answer).encode()
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def tokens(self) -> list[Sent]:
        return [s for s in self.sent if s.path == TOKEN_URL]


class Graph:
    """respx routes at graph.microsoft.com answering each GET with the next queued response."""

    def __init__(self) -> None:
        self.router = respx.Router(assert_all_mocked=True)
        self.queue: list[httpx.Response] = []
        self.router.get(url__startswith=f"{GRAPH}/").mock(side_effect=self._answer)

    def answer(self, *responses: httpx.Response) -> None:
        self.queue.extend(responses)

    def page(
        self, *events: dict[str, Any], next_link: str | None = None, delta: str | None = None
    ) -> None:
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "value": list(events),
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        if delta:
            body["@odata.deltaLink"] = delta
        self.queue.append(httpx.Response(200, json=body))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        assert self.queue, f"unexpected Graph request {request.url}"
        return self.queue.pop(0)

    @property
    def sent(self) -> list[Sent]:
        return [
            Sent(
                c.request.method, str(c.request.url), c.request.headers, c.request.content.decode()
            )
            for c in self.router.calls
        ]


@pytest.fixture
def identity() -> IdentityPlatform:
    return IdentityPlatform()


@pytest.fixture
def graph() -> Iterator[Graph]:
    made = Graph()
    yield made
    assert made.queue == [], "a queued Graph answer was never asked for"


@pytest.fixture
def connector(identity: IdentityPlatform, graph: Graph) -> Iterator[MicrosoftCalendarConnector]:
    """Built the way the daemon builds it: ``from_config`` on a ``[connectors.m365]`` table
    with the documented default Graph and authority URLs; only the wires are replaced."""
    cfg = MicrosoftCalendarConfig(
        type="microsoft_calendar",
        tenant_id=TENANT,
        client_id_env="M365_CLIENT_ID",
        client_secret_env="M365_CLIENT_SECRET",
        calendars=[CALENDAR],
    )
    cfg.set_secret("client_id", CLIENT_ID)  # what Config.resolve_secrets does
    cfg.set_secret("client_secret", CLIENT_SECRET)
    made = MicrosoftCalendarConnector.from_config(
        "m365",
        cfg,
        transport=httpx.MockTransport(graph.router.handler),
        identity_adapter=identity,
        policy=RetryPolicy(sleep=lambda _seconds: None),
        clock=FrozenClock(NOW),
    )
    yield made
    made.close()


def poll(connector: MicrosoftCalendarConnector, cursors: dict[str, str]) -> list[PollPage]:
    return list(connector.poll(cursors, started_at=NOW))


def stored_cursor(delta_link: str = DELTA_LINK) -> dict[str, str]:
    return {CALENDAR: GraphCursor(delta_link, *WINDOW).dumps()}


def event(event_id: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": event_id,
        "subject": "Interview",
        "lastModifiedDateTime": "2026-01-04T10:00:00.0000000Z",
        "start": {"dateTime": "2026-01-07T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-01-07T11:00:00.0000000", "timeZone": "UTC"},
        "attendees": [],
        "organizer": {"emailAddress": {"name": "Sam", "address": CALENDAR}},
    }


def preferences(sent: Sent) -> set[str]:
    """The preferences of the ``Prefer`` header (RFC 7240: comma-separated)."""
    return {p.strip() for p in sent.headers["Prefer"].split(",")}


# ---------------------------------------------------------------------------- token request


def test_token_request_is_the_documented_client_credentials_grant(
    identity: IdentityPlatform, connector: MicrosoftCalendarConnector
) -> None:
    """CLIENT_CREDENTIALS, "First case": "POST /{tenant}/oauth2/v2.0/token HTTP/1.1 Host:
    login.microsoftonline.com Content-Type: application/x-www-form-urlencoded
    client_id=...&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&client_secret=...
    &grant_type=client_credentials"; "scope: ... The value passed for the scope parameter in this
    request should be the resource identifier (application ID URI) of the resource you want,
    affixed with the .default suffix. For the Microsoft Graph example, the value is
    https://graph.microsoft.com/.default". msal first reads the tenant's OpenID configuration
    (OIDC: "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration")
    to find the token endpoint. msal adds ``client_info=1`` of its own; nothing else beyond the
    documented fields is sent."""
    connector.authenticate()

    discovery, token = identity.sent
    assert (discovery.method, discovery.url) == ("GET", DISCOVERY_URL)
    assert (token.method, token.url) == ("POST", TOKEN_URL)
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    documented = {
        "client_id": CLIENT_ID,
        "scope": "https://graph.microsoft.com/.default",
        "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    assert {k: token.form.get(k) for k in documented} == documented
    assert set(token.form) - set(documented) <= {"client_info"}


# ---------------------------------------------------------------------------- initial round


def test_initial_round_sends_the_window_once_then_follows_next_links_verbatim(
    identity: IdentityPlatform, graph: Graph, connector: MicrosoftCalendarConnector
) -> None:
    """EVENT_DELTA, "HTTP request": ``GET
    /users/{id}/calendarView/delta?startDateTime={start_datetime}&endDateTime={end_datetime}``;
    "Request headers": "Authorization: Bearer {token}. Required." and "Prefer:
    odata.maxpagesize={x}. Optional."; "If you use any query parameter ... you must specify it
    in the initial delta request ... In subsequent requests, simply copy and apply the
    @odata.nextLink or @odata.deltaLink URL from the previous response". DELTA_EVENTS: "A
    @odata.deltaLink returned in a response signifies that the current round of change
    tracking is complete. You can save and use the @odata.deltaLink URL when you begin the next
    round"; its example requests repeat ``Prefer: odata.maxpagesize=2`` on every page.

    Doc points asserted as what the connector does: EVENT_DELTA's header table also lists
    "Content-Type: application/json. Required." for this GET, yet none of the docs' example
    requests carries it and a GET has no body, so the connector sends none (asserted). The
    user principal name goes into the path percent-encoded (``%40``); the docs write the id
    raw and do not say either way (the decoded path is asserted). ``IdType="ImmutableId"``
    rides in the same Prefer header (https://learn.microsoft.com/graph/outlook-immutable-id:
    ``Prefer: IdType="ImmutableId"``), comma-separated as RFC 7240 allows."""
    graph.page(event("AAMkADNVxRAAA="), next_link=NEXT_LINK)
    graph.page(event("AAMkADVxSAAA="), delta=DELTA_LINK)

    pages = poll(connector, {})

    first, second = graph.sent
    assert (first.method, first.path, first.query) == ("GET", DELTA_URL, WINDOW_QUERY)
    assert (second.method, second.url) == ("GET", NEXT_LINK)
    for sent in (first, second):
        assert sent.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-1"
        assert preferences(sent) == {"odata.maxpagesize=100", 'IdType="ImmutableId"'}
        assert "Content-Type" not in sent.headers
    assert len(identity.tokens()) == 1
    assert [p.cursor for p in pages[:-1]] == [None]
    assert GraphCursor.loads(pages[-1].cursor) == GraphCursor(DELTA_LINK, *WINDOW)
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {"AAMkADNVxRAAA=", "AAMkADVxSAAA="}}


# ---------------------------------------------------------------------------- next round


def test_next_round_requests_the_stored_delta_link_exactly(
    identity: IdentityPlatform, graph: Graph, connector: MicrosoftCalendarConnector
) -> None:
    """DELTA_OVERVIEW, step 3: "When the application needs to learn about changes to the
    resource, it makes a new request using the @odata.deltaLink URL received in step 2";
    "State tokens ... encode and include other query parameters ... Therefore, it's not required
    to repeat them"; DELTA_EVENTS, "The next round": the first request is the saved deltaLink.
    Removed instances come back as "their id and an @removed object"."""
    removed = {
        "@odata.type": "#microsoft.graph.event",
        "id": "AAMkADVxTAAA=",
        "@removed": {"reason": "deleted"},
    }
    graph.page(removed, delta=NEW_DELTA_LINK)

    pages = poll(connector, stored_cursor())

    [sent] = graph.sent
    assert (sent.method, sent.url) == ("GET", DELTA_LINK)
    assert "odata.maxpagesize=100" in preferences(sent)
    assert sent.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-1"
    assert GraphCursor.loads(pages[-1].cursor) == GraphCursor(NEW_DELTA_LINK, *WINDOW)
    [deletion] = [s for p in pages for s in p.snapshots if isinstance(s, Deletion)]
    assert deletion.id == f"{CALENDAR}/AAMkADVxTAAA="


@pytest.mark.parametrize(
    ("status", "code", "headers"),
    [
        # DELTA_OVERVIEW, "Synchronization reset": "Delta query can return a response code of
        # 410 (gone) and a Location header containing a request URL with an empty $deltaToken
        # (same as the initial query)".
        (410, "resyncRequired", {"Location": f"{DELTA_URL}?$deltatoken="}),
        # DELTA_OVERVIEW, "Token duration": "In case of an expired token, the service should
        # respond with a 40X-series error with error codes such as syncStateNotFound".
        (400, "syncStateNotFound", {}),
        # ERRORS, "resyncRequired: The delta token is no longer valid, and the app must reset
        # the sync state."
        (400, "resyncRequired", {}),
    ],
)
def test_dead_delta_link_opens_a_new_round_on_the_same_window(
    graph: Graph,
    connector: MicrosoftCalendarConnector,
    status: int,
    code: str,
    headers: dict[str, str],
) -> None:
    """A refused deltaLink restarts with the initial query (DELTA_OVERVIEW: "the application
    must restart with a full synchronization"): the same calendarView window, no state token.
    The connector builds that query itself rather than following ``Location``; both are "the
    same as the initial query". ERRORS: the error body is ``{"error": {"code": ...}}``."""
    body = {"error": {"code": code, "message": "The delta token is no longer valid."}}
    graph.answer(httpx.Response(status, json=body, headers=headers))
    graph.page(event("AAMkADNVxRAAA="), delta=NEW_DELTA_LINK)

    pages = poll(connector, stored_cursor())

    refused, restarted = graph.sent
    assert refused.url == DELTA_LINK
    assert (restarted.method, restarted.path, restarted.query) == ("GET", DELTA_URL, WINDOW_QUERY)
    assert GraphCursor.loads(pages[-1].cursor) == GraphCursor(NEW_DELTA_LINK, *WINDOW)
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {"AAMkADNVxRAAA="}}


# ---------------------------------------------------------------------------- token refresh


def test_expired_token_is_replaced_before_the_next_graph_request(
    identity: IdentityPlatform, graph: Graph, connector: MicrosoftCalendarConnector
) -> None:
    """CLIENT_CREDENTIALS, "Successful response": "expires_in: The amount of time that an
    access token is valid (in seconds)". A token that has (nearly) run out is not used again: the
    next poll asks the token endpoint with the same documented grant first, then Graph sees
    the new bearer."""
    identity.expires_in = 60  # inside the connector's (and msal's) five-minute margin
    graph.page(delta=NEW_DELTA_LINK)
    graph.page(delta=NEW_DELTA_LINK)

    poll(connector, stored_cursor())
    poll(connector, stored_cursor(NEW_DELTA_LINK))

    first_token, second_token = identity.tokens()
    assert second_token.form["grant_type"] == "client_credentials"
    assert second_token.form["scope"] == "https://graph.microsoft.com/.default"
    first, second = graph.sent
    assert first.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-1"
    assert second.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-2"
    assert second.url == NEW_DELTA_LINK


def test_401_gets_a_new_token_and_repeats_the_same_request(
    identity: IdentityPlatform, graph: Graph, connector: MicrosoftCalendarConnector
) -> None:
    """ERRORS: "401 Unauthorized: Required authentication information is either missing or not
    valid for the resource." The connector drops its token, asks the identity platform again
    (a fresh msal app: discovery, then the grant) and repeats the identical request with the
    new bearer."""
    body = {"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}
    graph.answer(httpx.Response(401, json=body))
    graph.page(delta=NEW_DELTA_LINK)

    poll(connector, stored_cursor())

    assert [(s.method, s.url) for s in identity.sent] == [
        ("GET", DISCOVERY_URL),
        ("POST", TOKEN_URL),
        ("GET", DISCOVERY_URL),
        ("POST", TOKEN_URL),
    ]
    refused, retried = graph.sent
    assert refused.url == retried.url == DELTA_LINK
    assert refused.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-1"
    assert retried.headers["Authorization"] == "Bearer eyJ0eXAi.graph-token-2"
    assert preferences(retried) == preferences(refused)
