"""The exact HTTP requests GoogleCalendarConnector sends, checked against Google's docs.

The client library's own ``googleapiclient.http.HttpMockSequence`` stands in for Google (token
grants and Calendar API calls both go through it, injected with ``http_factory``); each test
asserts what the docs prescribe rather than what the loopback fake accepts.

Sources (quoted in each test):
- EVENTS_LIST: https://developers.google.com/workspace/calendar/api/v3/reference/events/list
  (the parameter texts are also in the discovery document shipped with the client library,
  ``googleapiclient/discovery_cache/documents/calendar.v3.json``)
- SYNC: https://developers.google.com/workspace/calendar/api/guides/sync
- ERRORS: https://developers.google.com/workspace/calendar/api/guides/errors
- SERVICE_ACCOUNT: https://developers.google.com/identity/protocols/oauth2/service-account
  ("Preparing to make an authorized API call" > HTTP/REST)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from googleapiclient.http import HttpMockSequence

from connectors.base import FatalConnectorError, PollPage
from connectors.google_calendar import GoogleCalendarConnector, GoogleCursor
from connectors.http import RetryPolicy
from taskplanner.clock import FrozenClock
from taskplanner.config import GoogleCalendarConfig
from taskplanner.domain.snapshots import CalendarEventSnapshot, EntityKind

CALENDAR = "sam.recruiter@acme.example"
CLIENT_EMAIL = "taskplanner@acme-project.iam.gserviceaccount.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"
EVENTS_URL = f"https://www.googleapis.com/calendar/v3/calendars/{CALENDAR}/events"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FULL_SYNC_FROM = "2025-12-29T09:00:00Z"  # NOW less the connector's seven-day lookback
SYNC_TOKEN = "CPDAlvWDx70CEPDAlvWDx70CGAU="  # the example token of SYNC
# The listing parameters every events.list call of the connector carries.
LISTING = {"singleEvents": "true", "showDeleted": "true", "maxResults": "250", "alt": "json"}
# ERRORS, "410: Gone", first example (trailing comma after "syncToken" removed).
FULL_SYNC_REQUIRED = {
    "error": {
        "errors": [
            {
                "domain": "calendar",
                "reason": "fullSyncRequired",
                "message": "Sync token is no longer valid, a full sync is required.",
                "locationType": "parameter",
                "location": "syncToken",
            }
        ],
        "code": 410,
        "message": "Sync token is no longer valid, a full sync is required.",
    }
}
UNAUTHENTICATED = {
    "error": {
        "errors": [
            {
                "domain": "global",
                "reason": "authError",
                "message": "Invalid Credentials",
                "locationType": "header",
                "location": "Authorization",
            }
        ],
        "code": 401,
        "message": "Invalid Credentials",
    }
}


@dataclass
class Sent:
    """One request as Google would receive it."""

    method: str
    url: str  # scheme, host and decoded path: no query
    query: dict[str, str]
    headers: dict[str, str]
    body: str


class Google:
    """An ``HttpMockSequence`` fed one scripted answer per request; ``sent`` reads it back."""

    def __init__(self) -> None:
        self.answers: list[tuple[dict[str, str], str]] = []  # HttpMockSequence pops from it
        self.http = HttpMockSequence(self.answers)
        self._tokens = iter(f"ya29.token-{n}" for n in range(1, 100))

    def token(self, expires_in: int = 3599) -> None:
        body = {
            "access_token": next(self._tokens),
            "expires_in": expires_in,
            "token_type": "Bearer",
        }
        self.answers.append(({"status": "200"}, json.dumps(body)))

    def events(self, status: int = 200, **body: Any) -> None:
        self.answers.append(({"status": str(status)}, json.dumps(body)))

    @property
    def sent(self) -> list[Sent]:
        requests = []
        for uri, method, body, headers in self.http.request_sequence:
            parts = urlsplit(uri)
            query = parse_qs(parts.query, keep_blank_values=True)
            assert all(len(v) == 1 for v in query.values()), f"repeated parameter in {uri}"
            requests.append(
                Sent(
                    method,
                    f"{parts.scheme}://{parts.netloc}{unquote(parts.path)}",
                    {k: v[0] for k, v in query.items()},
                    {str(k).lower(): str(v) for k, v in (headers or {}).items()},
                    body.decode() if isinstance(body, bytes) else (body or ""),
                )
            )
        return requests

    def unanswered(self) -> int:
        return len(self.answers)


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> Path:
    """A service-account key shaped like one downloaded from the Cloud console."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "acme-project",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "104729348572034857203",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return path


@pytest.fixture
def google() -> Google:
    return Google()


@pytest.fixture
def connector(google: Google, key_file: Path) -> Iterator[GoogleCalendarConnector]:
    """Built the way the daemon builds it: ``from_config`` on a ``[connectors.google]`` table
    with the documented default endpoints; only the wire is the library's mock."""
    cfg = GoogleCalendarConfig(
        type="google_calendar", credentials_file=key_file, calendars=[CALENDAR]
    )
    cfg.set_secret("credentials", key_file.read_text())  # what Config.resolve_secrets does
    made = GoogleCalendarConnector.from_config(
        "google",
        cfg,
        http_factory=lambda: google.http,
        policy=RetryPolicy(sleep=lambda _seconds: None),
        clock=FrozenClock(NOW),
    )
    yield made
    made.close()
    assert google.unanswered() == 0, "a scripted answer was never asked for"


def poll(connector: GoogleCalendarConnector, cursors: dict[str, str]) -> list[PollPage]:
    return list(connector.poll(cursors, started_at=NOW))


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "calendar#event",
        "id": event_id,
        "status": "confirmed",
        "updated": "2026-01-04T10:00:00.000Z",
        "summary": "Interview",
        "start": {"dateTime": "2026-01-07T10:00:00Z"},
        "end": {"dateTime": "2026-01-07T11:00:00Z"},
        **fields,
    }


def jwt_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, claims, signature = assertion.split(".")
    return (
        json.loads(decode(header)),
        json.loads(decode(claims)),
        f"{header}.{claims}".encode(),
        decode(signature),
    )


# ---------------------------------------------------------------------------- token request


def test_token_request_is_a_signed_jwt_bearer_grant_for_the_calendar_owner(
    google: Google, connector: GoogleCalendarConnector, private_key: rsa.RSAPrivateKey
) -> None:
    """SERVICE_ACCOUNT, "Making the access token request": "POST /token HTTP/1.1 Host:
    oauth2.googleapis.com Content-Type: application/x-www-form-urlencoded
    grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<JWT>".
    "Forming the JWT header": ``{"alg":"RS256","typ":"JWT", "kid": <key id>}``. "Forming the JWT
    claim set": "iss: The email address of the service account. scope: A space-delimited list
    of the permissions that the application requests. aud: ... When making an access token
    request this value is always https://oauth2.googleapis.com/token. exp: ... This value has a
    maximum of 1 hour after the issued time. iat: The time the assertion was issued";
    "Additional claims": "sub: The email address of the user for which the application is
    requesting delegated access" (domain-wide delegation: each calendar is read as its owner).
    "Computing the signature": RSA SHA-256 over ``{Base64url header}.{Base64url claim set}``."""
    google.token()

    connector.authenticate()

    [token] = google.sent
    assert (token.method, token.url, token.query) == ("POST", TOKEN_URI, {})
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token.body)
    assert set(form) == {"grant_type", "assertion"}
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims, signed, signature = jwt_parts(form["assertion"][0])
    assert header == {
        "alg": "RS256",
        "typ": "JWT",
        "kid": "0123456789abcdef0123456789abcdef01234567",
    }
    assert {k: claims[k] for k in ("iss", "sub", "scope", "aud")} == {
        "iss": CLIENT_EMAIL,
        "sub": CALENDAR,
        "scope": "https://www.googleapis.com/auth/calendar.readonly",
        "aud": TOKEN_URI,
    }
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    private_key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------------------- full sync


def test_full_sync_pages_with_the_same_query_and_keeps_the_last_pages_sync_token(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """SYNC, "Initial full sync": "the original request for all the resources of the collection
    ... You can optionally restrict the list request using request parameters"; "If the result
    set is too large and the response gets paginated, then the nextSyncToken field is present
    only on the very last page." EVENTS_LIST: ``GET
    https://www.googleapis.com/calendar/v3/calendars/calendarId/events``; "pageToken: Token
    specifying which result page to return"; "timeMin: ... Must be an RFC3339 timestamp with
    mandatory time zone offset"; "showDeleted: Whether to include deleted events (with status
    equals "cancelled") in the result"; "singleEvents: Whether to expand recurring events into
    instances"; "maxResults: ... By default the value is 250 events". SERVICE_ACCOUNT, "Calling
    Google APIs": "Authorization: Bearer <access_token>"."""
    google.token()
    google.events(items=[event("evt1")], nextPageToken="CigKGjRxZ2RmZzE")
    google.events(items=[event("evt2")], nextSyncToken=SYNC_TOKEN)

    pages = poll(connector, {})

    token, first, second = google.sent
    assert token.url == TOKEN_URI
    assert (first.method, first.url) == (second.method, second.url) == ("GET", EVENTS_URL)
    assert first.query == {**LISTING, "timeMin": FULL_SYNC_FROM}
    assert second.query == {**LISTING, "timeMin": FULL_SYNC_FROM, "pageToken": "CigKGjRxZ2RmZzE"}
    assert (
        first.headers["authorization"] == second.headers["authorization"] == ("Bearer ya29.token-1")
    )
    # Only the last page carries the cursor: the sync token exactly as Google sent it.
    assert [p.cursor for p in pages[:-1]] == [None]
    cursor = GoogleCursor.loads(pages[-1].cursor)
    assert cursor == GoogleCursor(SYNC_TOKEN, FULL_SYNC_FROM)
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {"evt1", "evt2"}}


# ---------------------------------------------------------------------------- incremental poll


def test_incremental_poll_sends_the_sync_token_back_unchanged_without_time_bounds(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """EVENTS_LIST, syncToken: "Token obtained from the nextSyncToken field returned on the last
    page of results from the previous list request ... it is not allowed to set showDeleted to
    False. There are several query parameters that cannot be specified together with
    nextSyncToken ...: iCalUID, orderBy, privateExtendedProperty, q, sharedExtendedProperty,
    timeMin, timeMax, updatedMin. All other query parameters should be the same as for the
    initial synchronization to avoid undefined behavior." SYNC, "Incremental sync": "In cases
    where a large number of resources have changed ... you may find a pageToken instead of a
    syncToken in the list result. In these cases you'll need to perform the exact same list
    query as was used for retrieval of the first page in the incremental sync (with the exact
    same syncToken ...)" plus the pageToken."""
    stored = GoogleCursor(SYNC_TOKEN, FULL_SYNC_FROM).dumps()
    google.token()
    google.events(items=[event("evt3")], nextPageToken="EjYKKzRx")
    google.events(
        items=[event("evt4", status="cancelled")], nextSyncToken="CKCbvbWDx70CEKCbvbWDx70CGAU="
    )

    pages = poll(connector, {CALENDAR: stored})

    _token, first, second = google.sent
    assert (first.method, first.url) == (second.method, second.url) == ("GET", EVENTS_URL)
    assert first.query == {**LISTING, "syncToken": SYNC_TOKEN}
    assert second.query == {**LISTING, "syncToken": SYNC_TOKEN, "pageToken": "EjYKKzRx"}
    cursor = GoogleCursor.loads(pages[-1].cursor)
    assert cursor == GoogleCursor("CKCbvbWDx70CEKCbvbWDx70CGAU=", FULL_SYNC_FROM)
    snapshots = [s for p in pages for s in p.snapshots if isinstance(s, CalendarEventSnapshot)]
    assert [s.event_id for s in snapshots] == ["evt3", "evt4"]


def test_idle_incremental_poll_reuses_the_cached_token(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """SERVICE_ACCOUNT, "Handling the response": the grant answers with an access token and its
    ``expires_in``; until then it is reused, so a second poll costs one events.list request and
    no grant (the connector caches the delegated credentials per calendar owner)."""
    stored = GoogleCursor(SYNC_TOKEN, FULL_SYNC_FROM).dumps()
    google.token()
    google.events(items=[], nextSyncToken=SYNC_TOKEN)
    google.events(items=[], nextSyncToken=SYNC_TOKEN)

    assert poll(connector, {CALENDAR: stored}) == []
    assert poll(connector, {CALENDAR: stored}) == []

    assert [s.url for s in google.sent] == [TOKEN_URI, EVENTS_URL, EVENTS_URL]
    assert {s.headers["authorization"] for s in google.sent[1:]} == {"Bearer ya29.token-1"}


# ---------------------------------------------------------------------------- documented errors


def test_410_full_sync_required_lists_again_without_the_sync_token(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """EVENTS_LIST, syncToken: "If the syncToken expires, the server will respond with a 410
    GONE response code and the client should clear its storage and perform a full
    synchronization without any syncToken." SYNC, "Full sync required by server": "Sometimes
    sync tokens are invalidated by the server ... the server will respond to an incremental
    request with a response code 410. This should trigger a full wipe of the client's store and
    a new full sync." The 410 body is ERRORS' ``fullSyncRequired`` example. The new listing
    covers the same window as the one that produced the dead token, so its ``present_ids``
    stand in for the wipe: what the mirror holds and Google no longer lists is deleted."""
    stored = GoogleCursor(SYNC_TOKEN, FULL_SYNC_FROM).dumps()
    google.token()
    google.events(410, **FULL_SYNC_REQUIRED)
    google.events(items=[event("evt1")], nextSyncToken="CNew0Token=")

    pages = poll(connector, {CALENDAR: stored})

    _token, refused, relisted = google.sent
    assert refused.query == {**LISTING, "syncToken": SYNC_TOKEN}
    assert relisted.url == EVENTS_URL
    assert relisted.query == {**LISTING, "timeMin": FULL_SYNC_FROM}
    assert GoogleCursor.loads(pages[-1].cursor) == GoogleCursor("CNew0Token=", FULL_SYNC_FROM)
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {"evt1"}}


def test_401_gets_a_new_token_and_repeats_the_request_with_it(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """ERRORS, "401: Invalid Credentials": "Invalid authorization header. The access token
    you're using is either expired or invalid." (``authError``, location ``Authorization``);
    "Suggested actions: Get a new access token using the long-lived refresh token." A service
    account has no refresh token: its new access token comes from a new signed JWT grant
    (SERVICE_ACCOUNT, "Making the access token request"), and the identical list request is
    sent again with the new bearer."""
    google.token()
    google.events(401, **UNAUTHENTICATED)
    google.token()
    google.events(items=[], nextSyncToken=SYNC_TOKEN)

    poll(connector, {})

    first_token, refused, second_token, retried = google.sent
    assert first_token.url == second_token.url == TOKEN_URI
    assert parse_qs(second_token.body)["grant_type"] == [
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ]
    assert (refused.url, refused.query) == (retried.url, retried.query)
    assert refused.headers["authorization"] == "Bearer ya29.token-1"
    assert retried.headers["authorization"] == "Bearer ya29.token-2"


def test_401_after_a_fresh_token_is_fatal(
    google: Google, connector: GoogleCalendarConnector
) -> None:
    """One new grant per refused request: ERRORS, 401: "If you are seeing this for a service
    account, check that you have successfully completed all the steps in the service account
    page" (the domain-wide delegation), which no retry fixes."""
    google.token()
    google.events(401, **UNAUTHENTICATED)
    google.token()
    google.events(401, **UNAUTHENTICATED)

    with pytest.raises(FatalConnectorError) as raised:
        poll(connector, {})

    assert raised.value.status == 401
    assert [s.url for s in google.sent] == [TOKEN_URI, EVENTS_URL, TOKEN_URI, EVENTS_URL]
