"""A loopback fake of Google Calendar (events.list) and Google's OAuth token endpoint.

The real google-api-python-client and google-auth talk to it over HTTP on 127.0.0.1, so the
tests and the sandbox exercise the same code paths as production: service-account JWT
grants with domain-wide delegation, ``syncToken`` incremental sync, ``nextPageToken`` pages,
410 ``fullSyncRequired`` and the documented rate-limit errors.

Documented behaviour modelled here:
- events.list parameters and sync-token rules: the ``syncToken``/``showDeleted``
  descriptions in the discovery document shipped with google-api-python-client
  (``calendar.v3.json``) and https://developers.google.com/workspace/calendar/api/guides/sync
- error bodies: https://developers.google.com/workspace/calendar/api/guides/errors
  (``shared/fixtures/providers/google_calendar/error_*.json``)
- token endpoint errors: RFC 6749 §5.2 bodies (``invalid_grant``, ``unauthorized_client``)
  as Google's OAuth server returns them for service accounts.

Use it as a context manager or with ``start()``/``stop()``::

    with FakeGoogleCalendar() as fake:
        key_file = fake.write_service_account_key(tmp_path / "key.json")
        fake.add_calendar("cora@acme.example")
        fake.add_event("cora@acme.example", start=..., end=..., attendees=[...])
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOM_SUFFIX = "@resource.calendar.google.com"
CALENDAR_SCOPE_PREFIX = "https://www.googleapis.com/auth/calendar"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EVENTS_PATH_PREFIX = "/calendar/v3/calendars/"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a public URL

# Google's documented response statuses for an invitation.
RESPONSES = frozenset({"needsAction", "declined", "tentative", "accepted"})

# Failure kinds `fail_next` understands: (HTTP status, error domain, reason, message).
FAILURES: dict[str, tuple[int, str, str, str]] = {
    "rate_limit_429": (429, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    "rate_limit_403": (403, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    "user_rate_limit_403": (
        403,
        "usageLimits",
        "userRateLimitExceeded",
        "User Rate Limit Exceeded",
    ),
    "quota_exceeded_403": (403, "usageLimits", "quotaExceeded", "Calendar usage limits exceeded."),
    "backend_error_500": (500, "global", "backendError", "Backend Error"),
    "unavailable_503": (503, "global", "backendError", "Service Unavailable"),
    "forbidden_403": (403, "global", "forbidden", "Forbidden"),
}


@dataclass(frozen=True)
class Attendee:
    """An invitee as the test describes it; becomes one entry of ``event.attendees``."""

    email: str
    response: str = "needsAction"  # needsAction | declined | tentative | accepted
    resource: bool = False  # a room
    organizer: bool = False
    optional: bool = False
    name: str | None = None


@dataclass
class _Failure:
    kind: str
    calendar_id: str | None
    retry_after: float | None
    delay: float


@dataclass
class _Event:
    calendar_id: str
    id: str
    data: dict[str, Any]
    seq: int
    encoded: bytes = b""


@dataclass
class _Calendar:
    id: str
    owner: str | None  # the user whose delegated token may read it; None = any domain user
    time_zone: str = "UTC"  # the calendar's own zone (events.list ``timeZone``)
    generation: int = 0
    last_seq: int = 0
    events: dict[str, _Event] = field(default_factory=dict)


@dataclass
class _ServiceAccount:
    client_email: str
    public_key_pem: bytes | None
    delegation: bool = True


@dataclass
class _AccessToken:
    subject: str | None
    expires_at: float


@dataclass
class _PageState:
    calendar_id: str
    generation: int
    event_ids: list[str]
    offset: int
    sync_seq: int
    incremental: bool


class FakeGoogleCalendar:
    """Google Calendar ``events.list`` plus the OAuth token endpoint, on 127.0.0.1.

    Point google-auth at :attr:`token_uri` (the ``token_uri`` of the key file) and
    google-api-python-client at :attr:`api_endpoint` (``client_options.api_endpoint``).
    Every public method is thread-safe and may be called while the server runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_lifetime: int = 3600,
        max_page_size: int = 2500,
    ) -> None:
        self._lock = threading.RLock()
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.access_token_lifetime = access_token_lifetime
        self.max_page_size = max_page_size
        self._seq = itertools.count(1)
        self._calendars: dict[str, _Calendar] = {}
        self._users: set[str] = set()
        self._service_accounts: dict[str, _ServiceAccount] = {}
        self._tokens: dict[str, _AccessToken] = {}
        self._pages: dict[str, _PageState] = {}
        self._failures: deque[_Failure] = deque()
        self._denied: dict[str, int] = {}  # calendar -> 403/404 until allowed again
        self._revoked = False
        self._event_counter = itertools.count(1)
        self._last_updated = datetime(2000, 1, 1, tzinfo=UTC)
        #: events.list requests per calendar id (every request, failed ones included).
        self.requests_by_calendar: Counter[str] = Counter()
        #: token endpoint requests per impersonated subject.
        self.token_requests_by_subject: Counter[str] = Counter()
        #: the most events.list requests ever served at the same time.
        self.max_in_flight = 0
        self._in_flight = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGoogleCalendar:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-google-calendar", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGoogleCalendar:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the connector's ``base_url``)."""
        if self._server is None:
            raise RuntimeError("FakeGoogleCalendar is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint (the key file's ``token_uri``, the config's ``token_url``)."""
        return f"{self.url}/token"

    @property
    def api_endpoint(self) -> str:
        """What google-api-python-client takes as ``client_options.api_endpoint``."""
        return f"{self.url}/calendar/v3/"

    # ------------------------------------------------------------------ identity

    def add_service_account(
        self, client_email: str, public_key_pem: bytes | None = None, *, delegation: bool = True
    ) -> None:
        """Accept JWT grants from ``client_email``.

        With ``public_key_pem`` the assertion's RS256 signature is verified; without it any
        signature is accepted. ``delegation=False`` models a client id that was not granted
        domain-wide delegation (401 ``unauthorized_client``).
        """
        with self._lock:
            self._service_accounts[client_email] = _ServiceAccount(
                client_email, public_key_pem, delegation
            )

    def write_service_account_key(
        self,
        path: str | Path,
        *,
        client_email: str = "taskplanner@fake-project.iam.gserviceaccount.com",
        token_uri: str | None = None,
    ) -> Path:
        """Generate an RSA key, register its public half and write a service-account JSON key.

        The file has the shape of a key downloaded from the Google Cloud console, with
        ``token_uri`` pointing at this fake.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.add_service_account(client_email, public_pem)
        info = {
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": secrets.token_hex(20),
            "private_key": private_pem,
            "client_email": client_email,
            "client_id": str(100000000000000000000 + secrets.randbelow(10**19)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri or self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/fake",
            "universe_domain": "googleapis.com",
        }
        target = Path(path)
        target.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return target

    def add_user(self, email: str) -> None:
        """A Workspace user the service account may impersonate (``sub`` of the JWT)."""
        with self._lock:
            self._users.add(email.lower())

    def remove_user(self, email: str) -> None:
        """The user leaves the domain: grants for them fail with ``invalid_grant``."""
        with self._lock:
            self._users.discard(email.lower())

    def revoke_credentials(self) -> None:
        """The key is deleted / the service account disabled.

        The token endpoint answers 400 ``invalid_grant`` and every issued access token is
        rejected with 401, as after a key rotation in the Cloud console.
        """
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def restore_credentials(self) -> None:
        with self._lock:
            self._revoked = False

    def expire_access_tokens(self) -> None:
        """Issued access tokens stop working (401); new grants still succeed."""
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ calendars and events

    def add_calendar(
        self, calendar_id: str, *, owner: str | None = None, time_zone: str = "UTC"
    ) -> None:
        """A calendar. A user calendar is readable by its owner (default: its own address).

        Room calendars (``...@resource.calendar.google.com``) have no owner and are readable
        by any user of the domain, which is how Workspace shares resource calendars.
        """
        with self._lock:
            if calendar_id in self._calendars:
                return
            if calendar_id.endswith(ROOM_SUFFIX):
                reader = owner
            else:
                reader = owner or calendar_id
                self._users.add(reader.lower())
            self._calendars[calendar_id] = _Calendar(
                calendar_id, reader.lower() if reader else None, time_zone
            )

    def add_event(
        self,
        calendar_id: str,
        *,
        start: datetime,
        end: datetime,
        event_id: str | None = None,
        summary: str = "Interview",
        attendees: Iterable[Attendee | Mapping[str, Any]] = (),
        organizer: str | None = None,
        ical_uid: str | None = None,
        private_properties: Mapping[str, str] | None = None,
        status: str = "confirmed",
    ) -> dict[str, Any]:
        """Create an event on ``calendar_id`` (created on demand); returns its JSON."""
        with self._lock:
            self.add_calendar(calendar_id)
            calendar = self._calendars[calendar_id]
            event_id = event_id or f"evt{next(self._event_counter):06d}{uuid.uuid4().hex[:8]}"
            if event_id in calendar.events:
                raise ValueError(f"event {event_id} already exists on {calendar_id}")
            now = self._next_updated()
            organizer_email = organizer or calendar_id
            data: dict[str, Any] = {
                "kind": "calendar#event",
                "etag": "",
                "id": event_id,
                "status": status,
                "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
                "created": _rfc3339(now),
                "updated": _rfc3339(now),
                "summary": summary,
                "creator": {"email": organizer_email},
                "organizer": {"email": organizer_email},
                "start": _time(start),
                "end": _time(end),
                "iCalUID": ical_uid or f"{event_id}@google.com",
                "sequence": 0,
                "attendees": [_attendee_json(a) for a in attendees],
                "eventType": "default",
            }
            if private_properties:
                data["extendedProperties"] = {"private": dict(private_properties)}
            event = _Event(calendar_id, event_id, data, 0)
            calendar.events[event_id] = event
            self._touch(calendar, event, now=now)
            return _decoded(event)

    def update_event(self, calendar_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of an event and bump ``updated``.

        Keyword names: ``summary``, ``start``, ``end`` (datetimes), ``attendees`` (Attendee or
        dicts), ``organizer`` (email), ``status``, ``private_properties`` (dict), or any raw
        Event field name (given as JSON).
        """
        with self._lock:
            calendar, event = self._find(calendar_id, event_id)
            data = event.data
            for key, value in changes.items():
                if key in ("start", "end"):
                    data[key] = _time(value)
                elif key == "attendees":
                    data["attendees"] = [_attendee_json(a) for a in value]
                elif key == "organizer":
                    data["organizer"] = {"email": value}
                elif key == "private_properties":
                    data.setdefault("extendedProperties", {})["private"] = dict(value)
                else:
                    data[key] = value
            data["sequence"] = int(data.get("sequence", 0)) + 1
            self._touch(calendar, event)
            return _decoded(event)

    def add_out_of_office(
        self,
        calendar_id: str,
        *,
        start: datetime,
        end: datetime,
        summary: str = "Out of office",
        decline_message: str = "I am out of office and will reply when I am back.",
    ) -> dict[str, Any]:
        """The calendar's owner marks themselves out of office from ``start`` to ``end``.

        The shape of https://developers.google.com/calendar/api/guides/event-types: an
        ``eventType`` of ``"outOfOffice"`` with ``outOfOfficeProperties``, on the owner's own
        calendar, opaque, without attendees.
        """
        event = self.add_event(calendar_id, start=start, end=end, summary=summary)
        return self.update_event(
            calendar_id,
            str(event["id"]),
            eventType="outOfOffice",
            transparency="opaque",
            attendees=[],
            outOfOfficeProperties={
                "autoDeclineMode": "declineAllConflictingInvitations",
                "declineMessage": decline_message,
            },
        )

    def move_event(
        self, calendar_id: str, event_id: str, *, start: datetime, end: datetime
    ) -> dict[str, Any]:
        """Reschedule the event (its id and iCalUID stay)."""
        return self.update_event(calendar_id, event_id, start=start, end=end)

    def set_response(
        self,
        calendar_id: str,
        event_id: str,
        email: str,
        response: str,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Set one attendee's ``responseStatus`` (needsAction | declined | tentative | accepted)
        and, when given, their response ``comment``."""
        if response not in RESPONSES:
            raise ValueError(f"unknown responseStatus {response!r}")
        with self._lock:
            calendar, event = self._find(calendar_id, event_id)
            for attendee in event.data.get("attendees", []):
                if attendee["email"].lower() == email.lower():
                    attendee["responseStatus"] = response
                    if comment is not None:
                        attendee["comment"] = comment
                    break
            else:
                raise KeyError(f"{email} is not an attendee of {event_id}")
            self._touch(calendar, event)
            return _decoded(event)

    def add_attendee(
        self, calendar_id: str, event_id: str, attendee: Attendee | Mapping[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(calendar_id, event_id)
            attendees = [*event.data.get("attendees", []), attendee]
            return self.update_event(calendar_id, event_id, attendees=attendees)

    def remove_attendee(self, calendar_id: str, event_id: str, email: str) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(calendar_id, event_id)
            attendees = [
                a for a in event.data.get("attendees", []) if a["email"].lower() != email.lower()
            ]
            return self.update_event(calendar_id, event_id, attendees=attendees)

    def set_private_property(
        self, calendar_id: str, event_id: str, key: str, value: str
    ) -> dict[str, Any]:
        """Set ``extendedProperties.private[key]`` (e.g. ``taskplanner_schedule_id``)."""
        with self._lock:
            _, event = self._find(calendar_id, event_id)
            private = dict(event.data.get("extendedProperties", {}).get("private", {}))
            private[key] = value
            return self.update_event(calendar_id, event_id, private_properties=private)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete (or cancel: Google treats both alike) an event.

        It stays visible as ``status: "cancelled"`` to ``showDeleted=true`` listings and to
        incremental sync, carrying only its identity, like Google's tombstones.
        """
        with self._lock:
            calendar, event = self._find(calendar_id, event_id)
            event.data = {
                "kind": "calendar#event",
                "etag": "",
                "id": event.id,
                "status": "cancelled",
                "updated": "",
            }
            self._touch(calendar, event)

    cancel_event = delete_event

    def purge_event(self, calendar_id: str, event_id: str) -> None:
        """Forget an event entirely (a tombstone Google no longer keeps)."""
        with self._lock:
            calendar, _ = self._find(calendar_id, event_id)
            del calendar.events[event_id]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(calendar_id, event_id)
            return _decoded(event)

    def event_ids(self, calendar_id: str) -> list[str]:
        with self._lock:
            return sorted(self._calendars[calendar_id].events)

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Sync tokens (and incremental page tokens) of one or all calendars now get 410."""
        with self._lock:
            targets = [calendar_id] if calendar_id else list(self._calendars)
            for target in targets:
                self._calendars[target].generation += 1

    # ------------------------------------------------------------------ faults and counters

    def fail_next(
        self,
        kind: str = "rate_limit_429",
        *,
        calendar_id: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` events.list requests (for ``calendar_id``, or any) with an
        error from :data:`FAILURES`, optionally with a ``Retry-After`` header."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {sorted(FAILURES)}")
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(kind, calendar_id, retry_after, 0.0))

    def deny_calendar(self, calendar_id: str, status: int = 403) -> None:
        """Refuse ``calendar_id`` on every events.list until `allow_calendar`, while the others
        answer: 403 ``forbidden`` (not shared with the account read as, e.g. a room shared
        free/busy only) or 404 ``notFound`` (gone), the documented errors
        (https://developers.google.com/workspace/calendar/api/guides/errors)."""
        if status not in (403, 404):
            raise ValueError("status must be 403 or 404")
        with self._lock:
            self._denied[calendar_id] = status

    def allow_calendar(self, calendar_id: str) -> None:
        with self._lock:
            self._denied.pop(calendar_id, None)

    def slow_next(self, seconds: float, *, calendar_id: str | None = None, times: int = 1) -> None:
        """Delay the next ``times`` events.list answers by ``seconds`` (timeouts, concurrency)."""
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure("slow", calendar_id, None, seconds))

    def request_count(self, calendar_id: str | None = None) -> int:
        """events.list requests served for one calendar, or in total."""
        with self._lock:
            if calendar_id is None:
                return sum(self.requests_by_calendar.values())
            return self.requests_by_calendar[calendar_id]

    @property
    def token_requests(self) -> int:
        with self._lock:
            return sum(self.token_requests_by_subject.values())

    def reset_counters(self) -> None:
        with self._lock:
            self.requests_by_calendar.clear()
            self.token_requests_by_subject.clear()
            self.max_in_flight = 0

    # ------------------------------------------------------------------ internals

    def _find(self, calendar_id: str, event_id: str) -> tuple[_Calendar, _Event]:
        calendar = self._calendars.get(calendar_id)
        if calendar is None or event_id not in calendar.events:
            raise KeyError(f"no event {event_id} on {calendar_id}")
        return calendar, calendar.events[event_id]

    def _next_updated(self) -> datetime:
        # `updated` must strictly increase so "newer snapshot wins" comparisons are exact.
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_updated:
            now = self._last_updated + timedelta(milliseconds=1)
        self._last_updated = now
        return now

    def _touch(self, calendar: _Calendar, event: _Event, *, now: datetime | None = None) -> None:
        seq = next(self._seq)
        event.seq = seq
        calendar.last_seq = seq
        event.data["updated"] = _rfc3339(now or self._next_updated())
        event.data["etag"] = f'"{seq}"'
        self._refresh_self_flags(calendar, event)
        event.encoded = json.dumps(event.data, separators=(",", ":")).encode()

    @staticmethod
    def _refresh_self_flags(calendar: _Calendar, event: _Event) -> None:
        # `self` marks the entry for the calendar being read, as Google does per copy.
        me = calendar.id.lower()
        organizer = event.data.get("organizer")
        if organizer is not None:
            organizer.pop("self", None)
            if organizer.get("email", "").lower() == me:
                organizer["self"] = True
        for attendee in event.data.get("attendees", []):
            attendee.pop("self", None)
            if attendee.get("email", "").lower() == me:
                attendee["self"] = True

    # --- token endpoint

    def _grant(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type: " + form.get("grant_type", ""),
            }
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        issuer = str(claims.get("iss", ""))
        subject = claims.get("sub")
        with self._lock:
            account = self._service_accounts.get(issuer)
            revoked = self._revoked
            self.token_requests_by_subject[str(subject or issuer)] += 1
        if account is None or revoked:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if account.public_key_pem is not None:
            try:
                jwt.decode(
                    assertion,
                    account.public_key_pem,
                    algorithms=["RS256"],
                    # google-auth always signs for Google's endpoint, whatever token_uri is.
                    audience=[GOOGLE_TOKEN_AUDIENCE, self.token_uri],
                )
            except jwt.InvalidAudienceError:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT: Token must be a short-lived token "
                    "(60 minutes) and in a reasonable timeframe.",
                }
            except jwt.PyJWTError:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT Signature.",
                }
        scopes = str(claims.get("scope", "")).split()
        if subject is not None:
            if not account.delegation or not any(
                s.startswith(CALENDAR_SCOPE_PREFIX) for s in scopes
            ):
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                }
            with self._lock:
                known = str(subject).lower() in self._users
            if not known:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid email or User ID",
                }
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _AccessToken(
                str(subject).lower() if subject else None,
                time.monotonic() + self.access_token_lifetime,
            )
        return 200, {
            "access_token": token,
            "expires_in": self.access_token_lifetime,
            "token_type": "Bearer",
        }

    # --- events.list

    def _list_events(
        self, calendar_id: str, params: Mapping[str, str], authorization: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._answer_list(calendar_id, params, authorization)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer_list(
        self, calendar_id: str, params: Mapping[str, str], authorization: str
    ) -> tuple[int, dict[str, str], bytes]:
        failure = self._take_failure(calendar_id)
        if failure is not None:
            if failure.kind == "slow":
                time.sleep(failure.delay)
            else:
                status, domain, reason, message = FAILURES[failure.kind]
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = _seconds(failure.retry_after)
                return status, headers, _error_body(status, domain, reason, message)

        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            grant = self._tokens.get(token)
            calendar = self._calendars.get(calendar_id)
        if grant is None or grant.expires_at < time.monotonic():
            return (
                401,
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                (
                    _error_body(
                        401,
                        "global",
                        "authError",
                        "Invalid Credentials",
                        location=("header", "Authorization"),
                    )
                ),
            )
        if calendar is None or (calendar.owner is not None and grant.subject != calendar.owner):
            # Google hides calendars the caller cannot see behind a plain 404.
            return 404, {}, _error_body(404, "global", "notFound", "Not Found")
        denied = self._denied.get(calendar_id)
        if denied == 403:
            return 403, {}, _error_body(403, "global", "forbidden", "Forbidden")
        if denied == 404:
            return 404, {}, _error_body(404, "global", "notFound", "Not Found")

        try:
            max_results = min(int(params.get("maxResults", "250")), self.max_page_size)
            if max_results < 1:
                raise ValueError
        except ValueError:
            return 400, {}, _error_body(400, "global", "invalid", "Invalid Value")
        sync_token = params.get("syncToken")
        page_token = params.get("pageToken")
        show_deleted = params.get("showDeleted", "false") == "true"
        if sync_token is not None:
            forbidden = {
                "iCalUID",
                "orderBy",
                "privateExtendedProperty",
                "q",
                "sharedExtendedProperty",
                "timeMin",
                "timeMax",
                "updatedMin",
            } & set(params)
            if forbidden or params.get("showDeleted") == "false":
                return (
                    400,
                    {},
                    _error_body(
                        400,
                        "global",
                        "invalid",
                        "Sync token cannot be used with showDeleted=false or filters: "
                        + ", ".join(sorted(forbidden or {"showDeleted"})),
                    ),
                )

        with self._lock:
            if page_token is not None:
                state = self._pages.get(page_token)
                if state is None or state.calendar_id != calendar_id:
                    return 400, {}, _error_body(400, "global", "invalid", "Invalid page token")
                if state.incremental and state.generation != calendar.generation:
                    return 410, {}, _full_sync_required()
            elif sync_token is not None:
                decoded = _decode_sync_token(sync_token)
                if (
                    decoded is None
                    or decoded[0] != calendar_id
                    or decoded[1] != calendar.generation
                ):
                    return 410, {}, _full_sync_required()
                since = decoded[2]
                changed = sorted(
                    (e for e in calendar.events.values() if e.seq > since),
                    key=lambda e: (e.seq, e.id),
                )
                state = _PageState(
                    calendar_id,
                    calendar.generation,
                    [e.id for e in changed],
                    0,
                    max(since, calendar.last_seq),
                    incremental=True,
                )
            else:
                time_min = _parse_time_param(params.get("timeMin"))
                time_max = _parse_time_param(params.get("timeMax"))
                listed = [
                    e
                    for e in calendar.events.values()
                    if (show_deleted or e.data.get("status") != "cancelled")
                    and _in_range(e.data, time_min, time_max)
                ]
                listed.sort(key=lambda e: e.id)
                state = _PageState(
                    calendar_id,
                    calendar.generation,
                    [e.id for e in listed],
                    0,
                    calendar.last_seq,
                    incremental=False,
                )
            chunk_ids = state.event_ids[state.offset : state.offset + max_results]
            items = [calendar.events[eid].encoded for eid in chunk_ids if eid in calendar.events]
            next_offset = state.offset + max_results
            tail: dict[str, str]
            if next_offset < len(state.event_ids):
                next_token = secrets.token_urlsafe(16)
                self._pages[next_token] = _PageState(
                    state.calendar_id,
                    state.generation,
                    state.event_ids,
                    next_offset,
                    state.sync_seq,
                    state.incremental,
                )
                tail = {"nextPageToken": next_token}
            else:
                tail = {
                    "nextSyncToken": _encode_sync_token(
                        calendar_id, calendar.generation, state.sync_seq
                    )
                }
            if page_token is not None:
                self._pages.pop(page_token, None)
        head = {
            "kind": "calendar#events",
            "etag": f'"{state.sync_seq}"',
            "summary": calendar_id,
            "updated": _rfc3339(datetime.now(UTC)),
            "timeZone": calendar.time_zone,
            "accessRole": "reader",
            "defaultReminders": [],
            **tail,
        }
        body = json.dumps(head, separators=(",", ":")).encode()
        return 200, {}, body[:-1] + b',"items":[' + b",".join(items) + b"]}"

    def _take_failure(self, calendar_id: str) -> _Failure | None:
        with self._lock:
            self.requests_by_calendar[calendar_id] += 1
            for index, failure in enumerate(self._failures):
                if failure.calendar_id in (None, calendar_id):
                    del self._failures[index]
                    return failure
        return None


# ---------------------------------------------------------------------- HTTP plumbing


def _make_handler(fake: FakeGoogleCalendar) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: httplib2 reuses connections
        # Headers and body go out as two writes; with Nagle on, the body waits for the
        # client's delayed ACK (40 ms on Linux) on every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # quiet: tests and benches read their own output

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            if urlsplit(self.path).path != "/token":
                self._send(404, {}, b'{"error":"not_found"}')
                return
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            status, body = fake._grant(form)
            self._send(status, {}, json.dumps(body).encode())

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path = parts.path
            if path.startswith(EVENTS_PATH_PREFIX) and path.endswith("/events"):
                calendar_id = unquote(path[len(EVENTS_PATH_PREFIX) : -len("/events")])
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, headers, body = fake._list_events(
                    calendar_id, params, self.headers.get("Authorization", "")
                )
                self._send(status, headers, body)
                return
            self._send(404, {}, _error_body(404, "global", "notFound", "Not Found"))

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


# ---------------------------------------------------------------------- payload helpers


def _error_body(
    code: int,
    domain: str,
    reason: str,
    message: str,
    *,
    location: tuple[str, str] | None = None,
) -> bytes:
    error: dict[str, Any] = {"domain": domain, "reason": reason, "message": message}
    if location is not None:
        error["locationType"], error["location"] = location
    return json.dumps({"error": {"errors": [error], "code": code, "message": message}}).encode()


def _full_sync_required() -> bytes:
    # The shape of the errors guide's "410: Gone" example (error_410_full_sync_required.json).
    return _error_body(
        410,
        "calendar",
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
        location=("parameter", "syncToken"),
    )


def _encode_sync_token(calendar_id: str, generation: int, seq: int) -> str:
    raw = f"{generation}|{seq}|{calendar_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_sync_token(token: str) -> tuple[str, int, int] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        generation, seq, calendar_id = raw.split("|", 2)
        return calendar_id, int(generation), int(seq)
    except (ValueError, UnicodeDecodeError):
        return None


def _decoded(event: _Event) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.encoded)
    return data


def _attendee_json(attendee: Attendee | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(attendee, Mapping):
        return dict(attendee)
    if attendee.response not in RESPONSES:
        raise ValueError(f"unknown responseStatus {attendee.response!r}")
    data: dict[str, Any] = {"email": attendee.email, "responseStatus": attendee.response}
    if attendee.name:
        data["displayName"] = attendee.name
    if attendee.resource:
        data["resource"] = True
    if attendee.organizer:
        data["organizer"] = True
    if attendee.optional:
        data["optional"] = True
    return data


def _time(value: datetime | date) -> dict[str, str]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        return {
            "dateTime": value.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "timeZone": "UTC",
        }
    return {"date": value.isoformat()}


def _rfc3339(value: datetime) -> str:
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_time_param(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _event_bound(data: Mapping[str, Any], key: str) -> datetime | None:
    when = data.get(key)
    if not isinstance(when, Mapping):
        return None
    if "dateTime" in when:
        return datetime.fromisoformat(str(when["dateTime"]).replace("Z", "+00:00"))
    if "date" in when:
        return datetime.combine(date.fromisoformat(str(when["date"])), datetime.min.time(), UTC)
    return None


def _in_range(
    data: Mapping[str, Any], time_min: datetime | None, time_max: datetime | None
) -> bool:
    # events.list: timeMin bounds the event's end (exclusive), timeMax its start (exclusive).
    if time_min is None and time_max is None:
        return True
    start, end = _event_bound(data, "start"), _event_bound(data, "end")
    if time_min is not None and end is not None and end <= time_min:
        return False
    return not (time_max is not None and start is not None and start >= time_max)
