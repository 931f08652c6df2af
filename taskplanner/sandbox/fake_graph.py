"""A loopback fake of Microsoft Graph ``calendarView/delta`` and the Microsoft identity platform.

The real msal (client-credentials flow) and our httpx client talk to it over HTTPS on
127.0.0.1: msal only accepts ``https`` authorities, so the fake serves TLS with a
self-signed certificate it generates at start; hand :attr:`FakeGraph.ca_file` to the
client as the CA bundle.

Documented behaviour modelled here:
- delta rounds: https://learn.microsoft.com/graph/delta-query-events and
  https://learn.microsoft.com/graph/api/event-delta (``@odata.nextLink`` pages, then
  ``@odata.deltaLink``; the next round returns changes and ``@removed`` items; the window
  given by the first request is carried inside the opaque ``$skiptoken``/``$deltatoken``);
  fixtures ``shared/fixtures/providers/microsoft_graph/calendarview_delta_*.json``
- expired sync state: https://learn.microsoft.com/graph/delta-query-overview
  ("synchronization reset": 410 Gone, error code ``syncStateNotFound``; the body is not
  documented, so it has Graph's usual ``{"error": {"code", "message", "innerError"}}`` shape)
- throttling: https://learn.microsoft.com/graph/throttling (429/503 with ``Retry-After``)
- ``Prefer: odata.maxpagesize=N`` and ``Prefer: IdType="ImmutableId"``
  (https://learn.microsoft.com/graph/outlook-immutable-id), answered with
  ``Preference-Applied``
- the token endpoint and OpenID discovery document msal reads for a custom authority
  (``/{tenant}/v2.0/.well-known/openid-configuration``, ``/{tenant}/oauth2/v2.0/token``).

Open extensions and ``singleValueExtendedProperties`` are not part of delta responses
(delta does not support ``$expand``), so the fake stores ``extended_properties`` on events
but never returns them from ``calendarView/delta``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_TENANT = "00000000-0000-0000-0000-000000000000"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

# Graph's attendee response values (microsoft.graph.responseType).
RESPONSES = frozenset(
    {"none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"}
)
ATTENDEE_TYPES = frozenset({"required", "optional", "resource"})

# Failure kinds `fail_next` understands: (status, error code, message).
FAILURES: dict[str, tuple[int, str, str]] = {
    "throttled_429": (429, "TooManyRequests", "Too many requests, retry after a while."),
    "unavailable_503": (503, "ServiceUnavailable", "Service is temporarily unavailable."),
    "server_error_500": (500, "InternalServerError", "An internal server error occurred."),
    "gateway_timeout_504": (504, "GatewayTimeout", "The gateway timed out."),
    "forbidden_403": (403, "ErrorAccessDenied", "Access is denied. Check credentials."),
}


@dataclass(frozen=True)
class GraphAttendee:
    """An invitee as the test describes it; becomes one entry of ``event.attendees``."""

    email: str
    response: str = "none"  # none | organizer | tentativelyAccepted | accepted | declined | ...
    type: str = "required"  # required | optional | resource (a room)
    name: str | None = None


@dataclass
class _Failure:
    kind: str
    user: str | None
    retry_after: float | None
    delay: float


@dataclass
class _Event:
    immutable_id: str
    rest_id: str
    data: dict[str, Any]
    seq: int = 0
    deleted: bool = False
    extended_properties: dict[str, str] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    # (seq, start, end, deleted) after each change: what a client synced at `seq` saw.
    history: list[tuple[int, datetime | None, datetime | None, bool]] = field(default_factory=list)

    def visible_at(self, seq: int, window: tuple[datetime, datetime]) -> bool:
        """Whether a client whose round ended at ``seq`` had this event in its window."""
        state = None
        for entry in self.history:
            if entry[0] > seq:
                break
            state = entry
        if state is None or state[3]:
            return False
        start, end = state[1], state[2]
        return start is None or end is None or (start < window[1] and end > window[0])


@dataclass
class _Mailbox:
    user: str
    generation: int = 0
    last_seq: int = 0
    events: dict[str, _Event] = field(default_factory=dict)


@dataclass
class _Round:
    """What a ``$skiptoken`` stands for: the rest of one delta response."""

    user: str
    generation: int
    event_ids: list[str]
    offset: int
    sync_seq: int
    window: tuple[datetime, datetime]
    incremental: bool


class FakeGraph:
    """Graph ``/users/{user}/calendarView/delta`` and the identity platform, on 127.0.0.1.

    Point msal at ``authority=f"{fake.authority_url}/{tenant}"`` (with
    ``instance_discovery=False``) and Graph calls at :attr:`graph_url`; trust
    :attr:`ca_file`. Every public method is thread-safe.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant_id: str = DEFAULT_TENANT,
        tls: bool = True,
        default_page_size: int = 10,
        max_page_size: int = 1000,
        access_token_lifetime: int = 3599,
        sparse_occurrences: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._host = host
        self._port = port
        self._tls = tls
        self.tenant_id = tenant_id
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.access_token_lifetime = access_token_lifetime
        # calendarView/delta returns an occurrence of a recurring meeting with only id,
        # seriesMasterId, type, start and end (microsoftgraph/microsoft-graph-docs#22197,
        # microsoft-graph-docs-contrib#34; GET /events/{id} returns it whole). False serves
        # occurrences whole.
        self.sparse_occurrences = sparse_occurrences
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self._ca_file: Path | None = None
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._mailboxes: dict[str, _Mailbox] = {}
        self._clients: dict[str, str] = {}
        self._tokens: dict[str, float] = {}
        self._rounds: dict[str, _Round] = {}
        self._failures: deque[_Failure] = deque()
        self._denied: dict[str, str] = {}  # mailbox -> "access_policy" | "not_found"
        self._revoked = False
        self._last_modified = datetime(2000, 1, 1, tzinfo=UTC)
        #: calendarView/delta requests per user (failed ones included).
        self.requests_by_calendar: Counter[str] = Counter()
        self.token_requests = 0
        self.discovery_requests = 0
        #: GET /users/{id}/events/{id} requests (series masters).
        self.event_requests = 0
        #: the Prefer headers of the last delta request, per user (for assertions).
        self.last_prefer: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGraph:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        if self._tls:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="fake-graph-"))
            cert, key = _self_signed_certificate(self._host, self._tmpdir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            # The handshake runs in each connection's thread (see Handler.setup), so one
            # slow client never stalls the accept loop.
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._ca_file = cert
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-graph", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGraph is not started")
        host, port = self._server.server_address[:2]
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host!s}:{port}"

    @property
    def authority_url(self) -> str:
        """The identity host (the connector's ``authority_url``; msal adds the tenant)."""
        return self.url

    @property
    def graph_url(self) -> str:
        """The Graph root including the version (the connector's ``base_url``)."""
        return f"{self.url}/v1.0"

    @property
    def ca_file(self) -> Path:
        """PEM of the self-signed certificate the fake serves (trust it as a CA bundle)."""
        if self._ca_file is None:
            raise RuntimeError("FakeGraph serves TLS only after start() with tls=True")
        return self._ca_file

    # ------------------------------------------------------------------ identity

    def add_client(self, client_id: str, client_secret: str) -> None:
        """An app registration with a client secret and the Calendars.Read application role."""
        with self._lock:
            self._clients[client_id] = client_secret

    def revoke_credentials(self) -> None:
        """The client secret is deleted / the app disabled.

        The token endpoint answers 401 ``invalid_client`` (AADSTS7000215) and Graph rejects
        every issued token with 401 ``InvalidAuthenticationToken``.
        """
        with self._lock:
            self._revoked = True
            self._tokens.clear()

    def restore_credentials(self) -> None:
        with self._lock:
            self._revoked = False

    def expire_access_tokens(self) -> None:
        """Issued tokens stop working (401); new grants still succeed."""
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ mailboxes and events

    def add_user(self, user: str) -> None:
        """A mailbox whose primary calendar the app may read."""
        with self._lock:
            self._mailboxes.setdefault(user.lower(), _Mailbox(user.lower()))

    def add_event(
        self,
        user: str,
        *,
        start: datetime,
        end: datetime,
        subject: str = "Interview",
        attendees: Iterable[GraphAttendee | Mapping[str, Any]] = (),
        organizer: str | None = None,
        organizer_name: str | None = None,
        is_cancelled: bool = False,
        ical_uid: str | None = None,
        extended_properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create an event in ``user``'s calendar (mailbox created on demand).

        Returns the event as Graph shows it with ``Prefer: IdType="ImmutableId"``; its
        ``id`` is what the other methods take.
        """
        with self._lock:
            self.add_user(user)
            mailbox = self._mailboxes[user.lower()]
            number = next(self._ids)
            immutable_id = (
                f"AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{number:08d}{uuid.uuid4().hex[:6]}="
            )
            rest_id = f"AAMkAGI2TG93AAA{number:08d}{uuid.uuid4().hex[:6]}AAA="
            now = self._next_modified()
            organizer_email = organizer or user
            data: dict[str, Any] = {
                "@odata.type": "#microsoft.graph.event",
                "@odata.etag": "",
                "createdDateTime": _graph_instant(now),
                "lastModifiedDateTime": _graph_instant(now),
                "changeKey": "",
                "iCalUId": ical_uid
                or "040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(24).upper(),
                "subject": subject,
                "isCancelled": is_cancelled,
                "isOrganizer": organizer_email.lower() == user.lower(),
                "type": "singleInstance",
                "showAs": "busy",
                "start": _graph_time(start),
                "end": _graph_time(end),
                "organizer": {
                    "emailAddress": {
                        "name": organizer_name or organizer_email,
                        "address": organizer_email,
                    }
                },
                "attendees": [_attendee_json(a) for a in attendees],
            }
            event = _Event(
                immutable_id,
                rest_id,
                data,
                extended_properties=dict(extended_properties or {}),
                start=start,
                end=end,
            )
            mailbox.events[immutable_id] = event
            self._touch(mailbox, event, now=now)
            return self._render(event, immutable=True)

    def add_all_day_event(
        self,
        user: str,
        day: date,
        *,
        days: int = 1,
        zone: str = "Europe/Berlin",
        windows_zone: str = "W. Europe Standard Time",
        **fields: Any,
    ) -> dict[str, Any]:
        """An all-day event as Graph shows it: ``isAllDay``, its local midnights labelled
        "UTC" (learn.microsoft.com/answers/questions/970878) and its zone under the Windows
        name in ``originalStartTimeZone`` (as in the event resource's examples)."""
        local = ZoneInfo(zone)
        start = datetime.combine(day, datetime.min.time(), local)
        end = datetime.combine(day + timedelta(days=days), datetime.min.time(), local)
        with self._lock:
            made = self.add_event(user, start=start, end=end, **fields)
            mailbox, event = self._find(user, made["id"])
            event.data.update(
                isAllDay=True,
                originalStartTimeZone=windows_zone,
                originalEndTimeZone=windows_zone,
                start={"dateTime": f"{day.isoformat()}T00:00:00.0000000", "timeZone": "UTC"},
                end={
                    "dateTime": f"{(day + timedelta(days=days)).isoformat()}T00:00:00.0000000",
                    "timeZone": "UTC",
                },
            )
            self._touch(mailbox, event)
            return self._render(event, immutable=True)

    def add_recurring_event(
        self,
        user: str,
        *,
        start: datetime,
        end: datetime,
        occurrences: int,
        every: timedelta = timedelta(days=7),
        **fields: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A recurring meeting: its series master (never listed by calendarView, only read by
        ``GET /users/{id}/events/{id}``) and ``occurrences`` occurrences; ``fields`` as for
        `add_event`. Returns (master, occurrences) as Graph shows them whole."""
        with self._lock:
            master = self.add_event(user, start=start, end=end, **fields)
            mailbox, master_event = self._find(user, master["id"])
            master_event.data["type"] = "seriesMaster"
            made = []
            for n in range(occurrences):
                occurrence = self.add_event(
                    user, start=start + n * every, end=end + n * every, **fields
                )
                _, event = self._find(user, occurrence["id"])
                event.data.update(
                    type="occurrence",
                    seriesMasterId=master["id"],
                    iCalUId=master_event.data["iCalUId"],
                )
                self._touch(mailbox, event)
                made.append(self._render(event, immutable=True))
            return self._render(master_event, immutable=True), made

    def respond_to_series(self, user: str, master_id: str, email: str, response: str) -> None:
        """An attendee answers the whole series: the master and every occurrence change."""
        with self._lock:
            self.set_response(user, master_id, email, response)
            mailbox = self._mailboxes[user.lower()]
            for event in list(mailbox.events.values()):
                if event.data.get("seriesMasterId") == master_id:
                    self.set_response(user, event.immutable_id, email, response)

    def update_event(self, user: str, event_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields and bump ``lastModifiedDateTime``.

        Keyword names: ``subject``, ``start``, ``end`` (datetimes), ``attendees``
        (GraphAttendee or dicts), ``organizer`` (email), ``is_cancelled``,
        ``extended_properties`` (dict), or any raw Graph event property (as JSON).
        """
        with self._lock:
            mailbox, event = self._find(user, event_id)
            for key, value in changes.items():
                if key in ("start", "end"):
                    event.data[key] = _graph_time(value)
                    setattr(event, key, value)
                elif key == "attendees":
                    event.data["attendees"] = [_attendee_json(a) for a in value]
                elif key == "organizer":
                    event.data["organizer"] = {"emailAddress": {"name": value, "address": value}}
                elif key == "is_cancelled":
                    event.data["isCancelled"] = bool(value)
                elif key == "extended_properties":
                    event.extended_properties = dict(value)
                else:
                    event.data[key] = value
            self._touch(mailbox, event)
            return self._render(event, immutable=True)

    def add_out_of_office(
        self, user: str, *, start: datetime, end: datetime, subject: str = "Out of office"
    ) -> dict[str, Any]:
        """The mailbox owner blocks ``start`` to ``end`` as out of office: an event whose
        ``showAs`` is ``"oof"`` (freeBusyStatus, https://learn.microsoft.com/graph/api/
        resources/event), organised by themselves, without attendees."""
        event = self.add_event(user, start=start, end=end, subject=subject)
        return self.update_event(user, str(event["id"]), showAs="oof")

    def move_event(
        self, user: str, event_id: str, *, start: datetime, end: datetime
    ) -> dict[str, Any]:
        """Reschedule (the immutable id stays)."""
        return self.update_event(user, event_id, start=start, end=end)

    def set_response(self, user: str, event_id: str, email: str, response: str) -> dict[str, Any]:
        """Set one attendee's ``status.response`` as this mailbox's copy shows it."""
        if response not in RESPONSES:
            raise ValueError(f"unknown response {response!r}")
        with self._lock:
            mailbox, event = self._find(user, event_id)
            for attendee in event.data["attendees"]:
                if attendee["emailAddress"]["address"].lower() == email.lower():
                    attendee["status"] = {
                        "response": response,
                        "time": _graph_instant(self._next_modified()),
                    }
                    break
            else:
                raise KeyError(f"{email} is not an attendee of {event_id}")
            self._touch(mailbox, event)
            return self._render(event, immutable=True)

    def add_attendee(
        self, user: str, event_id: str, attendee: GraphAttendee | Mapping[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(user, event_id)
            return self.update_event(user, event_id, attendees=[*event.data["attendees"], attendee])

    def remove_attendee(self, user: str, event_id: str, email: str) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(user, event_id)
            kept = [
                a
                for a in event.data["attendees"]
                if a["emailAddress"]["address"].lower() != email.lower()
            ]
            return self.update_event(user, event_id, attendees=kept)

    def cancel_event(self, user: str, event_id: str) -> dict[str, Any]:
        """The organizer cancels: attendees' copies stay with ``isCancelled: true``."""
        return self.update_event(user, event_id, is_cancelled=True)

    def delete_event(self, user: str, event_id: str) -> None:
        """Delete from the mailbox: the next delta round reports it as ``@removed``."""
        with self._lock:
            mailbox, event = self._find(user, event_id)
            event.deleted = True
            self._touch(mailbox, event)

    def set_extended_property(self, user: str, event_id: str, name: str, value: str) -> None:
        """Store a singleValueExtendedProperty (not returned by delta; see module docstring)."""
        with self._lock:
            _, event = self._find(user, event_id)
            event.extended_properties[name] = value

    def event(self, user: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            _, event = self._find(user, event_id)
            return self._render(event, immutable=True)

    def expire_delta_links(self, user: str | None = None) -> None:
        """Delta links (and incremental skip links) of one or all users now get 410."""
        with self._lock:
            targets = [user.lower()] if user else list(self._mailboxes)
            for target in targets:
                self._mailboxes[target].generation += 1

    # ------------------------------------------------------------------ faults and counters

    def fail_next(
        self,
        kind: str = "throttled_429",
        *,
        user: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` delta requests (for ``user``, or any) with an error from
        :data:`FAILURES`, with ``Retry-After`` when given."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {sorted(FAILURES)}")
        with self._lock:
            for _ in range(times):
                self._failures.append(
                    _Failure(kind, user.lower() if user else None, retry_after, 0.0)
                )

    def deny_mailbox(self, user: str, kind: str = "access_policy") -> None:
        """Refuse ``user``'s delta until `allow_mailbox` while the others answer:
        ``access_policy`` (403 ErrorAccessDenied) or ``not_found`` (404, a user who left)."""
        if kind not in ("access_policy", "not_found"):
            raise ValueError("kind must be access_policy or not_found")
        with self._lock:
            self._denied[user.lower()] = kind

    def allow_mailbox(self, user: str) -> None:
        with self._lock:
            self._denied.pop(user.lower(), None)

    def slow_next(self, seconds: float, *, user: str | None = None, times: int = 1) -> None:
        with self._lock:
            for _ in range(times):
                self._failures.append(
                    _Failure("slow", user.lower() if user else None, None, seconds)
                )

    def request_count(self, user: str | None = None) -> int:
        with self._lock:
            if user is None:
                return sum(self.requests_by_calendar.values())
            return self.requests_by_calendar[user.lower()]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests_by_calendar.clear()
            self.token_requests = 0
            self.discovery_requests = 0
            self.event_requests = 0

    # ------------------------------------------------------------------ internals

    def _find(self, user: str, event_id: str) -> tuple[_Mailbox, _Event]:
        mailbox = self._mailboxes.get(user.lower())
        if mailbox is None or event_id not in mailbox.events:
            raise KeyError(f"no event {event_id} in {user}'s calendar")
        event = mailbox.events[event_id]
        if event.deleted:
            raise KeyError(f"event {event_id} was deleted")
        return mailbox, event

    def _next_modified(self) -> datetime:
        now = datetime.now(UTC)
        if now <= self._last_modified:
            now = self._last_modified + timedelta(microseconds=1)
        self._last_modified = now
        return now

    def _touch(self, mailbox: _Mailbox, event: _Event, *, now: datetime | None = None) -> None:
        seq = next(self._seq)
        event.seq = seq
        mailbox.last_seq = seq
        event.history.append((seq, event.start, event.end, event.deleted))
        event.data["lastModifiedDateTime"] = _graph_instant(now or self._next_modified())
        event.data["@odata.etag"] = f'W/"{base64.b64encode(str(seq).encode()).decode()}"'
        event.data["changeKey"] = base64.b64encode(str(seq).encode()).decode()

    @staticmethod
    def _render(event: _Event, *, immutable: bool) -> dict[str, Any]:
        body = {**event.data, "id": event.immutable_id if immutable else event.rest_id}
        return json.loads(json.dumps(body))  # type: ignore[no-any-return]

    @staticmethod
    def _removed(event: _Event, *, immutable: bool) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.event",
            "id": event.immutable_id if immutable else event.rest_id,
            "@removed": {"reason": "deleted"},
        }

    # --- identity endpoints

    def _openid_configuration(self, tenant: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.discovery_requests += 1
        if tenant != self.tenant_id:
            return 400, _aad_error(
                "invalid_tenant",
                f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
                90002,
            )
        base = f"{self.url}/{tenant}"
        return 200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{self.url}/{tenant}/v2.0",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _token(self, tenant: str, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests += 1
            expected_secret = self._clients.get(form.get("client_id", ""))
            revoked = self._revoked
        if tenant != self.tenant_id:
            return 400, _aad_error(
                "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.", 90002
            )
        if form.get("grant_type") != "client_credentials":
            return 400, _aad_error(
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
                70003,
            )
        if expected_secret is None:
            return 400, _aad_error(
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id', '')}' was "
                "not found in the directory.",
                700016,
            )
        if revoked or not secrets.compare_digest(expected_secret, form.get("client_secret", "")):
            return 401, _aad_error(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID.",
                7000215,
            )
        if GRAPH_SCOPE not in form.get("scope", "").split():
            return 400, _aad_error(
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid.",
                1002012,
            )
        token = "eyJ0eXAiOiJKV1QiLCJub25jZSI6ImZha2UifQ." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.access_token_lifetime
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": token,
        }

    # --- calendarView/delta

    def _delta(
        self,
        user: str,
        params: Mapping[str, str],
        authorization: str,
        prefer: list[str],
    ) -> tuple[int, dict[str, str], bytes]:
        user = user.lower()
        with self._lock:
            self.requests_by_calendar[user] += 1
            self.last_prefer[user] = prefer
            failure = next((f for f in self._failures if f.user in (None, user)), None)
            if failure is not None:
                self._failures.remove(failure)
        if failure is not None:
            if failure.kind == "slow":
                time.sleep(failure.delay)
            else:
                status, code, message = FAILURES[failure.kind]
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(int(failure.retry_after))
                return status, headers, _graph_error(code, message)

        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            expires = self._tokens.get(token)
            mailbox = self._mailboxes.get(user)
        if expires is None or expires < time.monotonic():
            return (
                401,
                {"WWW-Authenticate": 'Bearer realm=""'},
                _graph_error(
                    "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
                ),
            )
        with self._lock:
            denied = self._denied.get(user)
        if mailbox is None or denied == "not_found":
            return (
                404,
                {},
                _graph_error("ErrorInvalidUser", f"The requested user '{user}' is invalid."),
            )
        if denied == "access_policy":
            # An application access policy scoping the app away from this mailbox
            # (https://learn.microsoft.com/graph/auth-limit-mailbox-access): 403 for it alone.
            return (
                403,
                {},
                _graph_error(
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
                    "AccessPolicy settings.",
                ),
            )

        page_size, immutable = self._preferences(prefer)
        applied = [f"odata.maxpagesize={page_size}"]
        if immutable:
            applied.append('IdType="ImmutableId"')
        with self._lock:
            skiptoken = params.get("$skiptoken")
            deltatoken = params.get("$deltatoken")
            if skiptoken is not None:
                round_ = self._rounds.get(skiptoken)
                if (
                    round_ is None
                    or round_.user != user
                    or (round_.incremental and round_.generation != mailbox.generation)
                ):
                    return 410, {}, _sync_state_not_found()
            elif deltatoken is not None:
                decoded = _decode_delta_token(deltatoken)
                if decoded is None or decoded[0] != user or decoded[1] != mailbox.generation:
                    return 410, {}, _sync_state_not_found()
                _, _, since, window = decoded
                changed = sorted(
                    (e for e in mailbox.events.values() if e.seq > since),
                    key=lambda e: (e.seq, e.immutable_id),
                )
                # Changes outside the window are invisible, unless the event left it (or was
                # deleted) after the client last saw it there: then it is "@removed".
                changed = [
                    e
                    for e in changed
                    if ((not e.deleted and _in(e, window)) or e.visible_at(since, window))
                    and e.data.get("type") != "seriesMaster"  # calendarView lists occurrences
                ]
                round_ = _Round(
                    user,
                    mailbox.generation,
                    [e.immutable_id for e in changed],
                    0,
                    max(since, mailbox.last_seq),
                    window,
                    incremental=True,
                )
            else:
                try:
                    window = (
                        _parse_instant(params["startDateTime"]),
                        _parse_instant(params["endDateTime"]),
                    )
                except (KeyError, ValueError):
                    return (
                        400,
                        {},
                        _graph_error(
                            "ErrorInvalidParameter",
                            "This request requires a time window specified by the query string "
                            "parameters StartDateTime and EndDateTime.",
                        ),
                    )
                listed = sorted(
                    (
                        e
                        for e in mailbox.events.values()
                        if not e.deleted
                        and _in(e, window)
                        and e.data.get("type") != "seriesMaster"
                    ),
                    key=lambda e: e.immutable_id,
                )
                round_ = _Round(
                    user,
                    mailbox.generation,
                    [e.immutable_id for e in listed],
                    0,
                    mailbox.last_seq,
                    window,
                    incremental=False,
                )
            chunk = round_.event_ids[round_.offset : round_.offset + page_size]
            items: list[dict[str, Any]] = []
            for event_id in chunk:
                event = mailbox.events[event_id]
                if event.deleted or not _in(event, round_.window):
                    # Deleted, or moved out of the window: gone from this calendarView.
                    items.append(self._removed(event, immutable=immutable))
                elif self.sparse_occurrences and event.data.get("type") == "occurrence":
                    whole = self._render(event, immutable=immutable)
                    items.append({k: whole[k] for k in _SPARSE_OCCURRENCE if k in whole})
                else:
                    items.append(self._render(event, immutable=immutable))
            base = f"{self.graph_url}/users/{quote(user)}/calendarView/delta"
            body: dict[str, Any] = {
                "@odata.context": f"{self.graph_url}/$metadata#Collection(event)",
            }
            next_offset = round_.offset + page_size
            if next_offset < len(round_.event_ids):
                key = secrets.token_urlsafe(18)
                self._rounds[key] = _Round(
                    round_.user,
                    round_.generation,
                    round_.event_ids,
                    next_offset,
                    round_.sync_seq,
                    round_.window,
                    round_.incremental,
                )
                body["@odata.nextLink"] = f"{base}?$skiptoken={key}"
            else:
                token = _encode_delta_token(
                    user, mailbox.generation, round_.sync_seq, round_.window
                )
                body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
            if skiptoken is not None:
                self._rounds.pop(skiptoken, None)
        body["value"] = items
        return 200, {"Preference-Applied": ", ".join(applied)}, json.dumps(body).encode()

    def _get_event(
        self, user: str, event_id: str, authorization: str, prefer: list[str]
    ) -> tuple[int, dict[str, str], bytes]:
        """GET /users/{id}/events/{id}: the whole event (a series master included)."""
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            self.event_requests += 1
            expires = self._tokens.get(token)
            mailbox = self._mailboxes.get(user.lower())
            event = None
            if mailbox is not None:
                event = mailbox.events.get(event_id) or next(
                    (e for e in mailbox.events.values() if e.rest_id == event_id), None
                )
        if expires is None or expires < time.monotonic():
            return 401, {}, _graph_error("InvalidAuthenticationToken", "Access token expired.")
        if event is None or event.deleted:
            return 404, {}, _graph_error(
                "ErrorItemNotFound", "The specified object was not found in the store."
            )
        _, immutable = self._preferences(prefer)
        return 200, {}, json.dumps(self._render(event, immutable=immutable)).encode()

    def _preferences(self, prefer: list[str]) -> tuple[int, bool]:
        page_size = self.default_page_size
        immutable = False
        for header in prefer:
            for part in header.split(","):
                name, _, value = part.strip().partition("=")
                if name.strip().lower() == "odata.maxpagesize":
                    with contextlib.suppress(ValueError):
                        page_size = max(1, min(int(value), self.max_page_size))
                elif name.strip().lower() == "idtype":
                    immutable = value.strip().strip('"') == "ImmutableId"
        return page_size, immutable


# ---------------------------------------------------------------------- HTTP plumbing


def _make_handler(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle on, the body waits for the
        # client's delayed ACK (40 ms on Linux) on every keep-alive request.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(10)
                try:
                    self.request.do_handshake()
                except (OSError, ssl.SSLError):
                    self.request.close()
                    raise
                self.request.settimeout(None)
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            segments = [unquote(s) for s in parts.path.strip("/").split("/")]
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if (
                len(segments) == 5
                and segments[0] == "v1.0"
                and segments[1] == "users"
                and segments[3:] == ["calendarView", "delta"]
            ):
                status, headers, body = fake._delta(
                    segments[2],
                    params,
                    self.headers.get("Authorization", ""),
                    self.headers.get_all("Prefer") or [],
                )
                self._send(status, headers, body)
                return
            if len(segments) == 5 and segments[:2] == ["v1.0", "users"] and segments[3] == "events":
                status, headers, body = fake._get_event(
                    segments[2],
                    segments[4],
                    self.headers.get("Authorization", ""),
                    self.headers.get_all("Prefer") or [],
                )
                self._send(status, headers, body)
                return
            if len(segments) == 4 and segments[1:] == [
                "v2.0",
                ".well-known",
                "openid-configuration",
            ]:
                status, payload = fake._openid_configuration(segments[0])
                self._send(status, {}, json.dumps(payload).encode())
                return
            self._send(404, {}, _graph_error("ResourceNotFound", "Resource not found."))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            segments = urlsplit(self.path).path.strip("/").split("/")
            if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                status, payload = fake._token(unquote(segments[0]), form)
                self._send(status, {}, json.dumps(payload).encode())
                return
            self._send(404, {}, _graph_error("ResourceNotFound", "Resource not found."))

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("request-id", str(uuid.uuid4()))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


# ---------------------------------------------------------------------- payload helpers

# What calendarView/delta shows of an occurrence (microsoft-graph-docs-contrib#34).
_SPARSE_OCCURRENCE = ("@odata.type", "@odata.etag", "id", "seriesMasterId", "type", "start", "end")


def _graph_error(code: str, message: str) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = str(uuid.uuid4())
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now,
                    "request-id": request_id,
                    "client-request-id": request_id,
                },
            }
        }
    ).encode()


def _sync_state_not_found() -> bytes:
    return _graph_error(
        "SyncStateNotFound",
        "The sync state generation is not valid or has expired. Please do a full sync.",
    )


def _aad_error(error: str, description: str, code: int) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }


def _encode_delta_token(
    user: str, generation: int, seq: int, window: tuple[datetime, datetime]
) -> str:
    raw = json.dumps(
        [user, generation, seq, window[0].isoformat(), window[1].isoformat()],
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_delta_token(token: str) -> tuple[str, int, int, tuple[datetime, datetime]] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        user, generation, seq, start, end = json.loads(raw)
        return (
            str(user),
            int(generation),
            int(seq),
            (datetime.fromisoformat(start), datetime.fromisoformat(end)),
        )
    except (ValueError, TypeError):
        return None


def _attendee_json(attendee: GraphAttendee | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(attendee, Mapping):
        return json.loads(json.dumps(attendee))  # type: ignore[no-any-return]
    if attendee.response not in RESPONSES:
        raise ValueError(f"unknown response {attendee.response!r}")
    if attendee.type not in ATTENDEE_TYPES:
        raise ValueError(f"unknown attendee type {attendee.type!r}")
    return {
        "type": attendee.type,
        "status": {"response": attendee.response, "time": "0001-01-01T00:00:00Z"},
        "emailAddress": {"name": attendee.name or attendee.email, "address": attendee.email},
    }


def _graph_time(value: datetime) -> dict[str, str]:
    # Graph writes local wall time with seven fractional digits and names the zone apart.
    if value.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    utc = value.astimezone(UTC)
    return {
        "dateTime": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0",
        "timeZone": "UTC",
    }


def _graph_instant(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def _parse_instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _in(event: _Event, window: tuple[datetime, datetime]) -> bool:
    if event.start is None or event.end is None:
        return True
    return event.start < window[1] and event.end > window[0]


def _self_signed_certificate(host: str, directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for ``host``/localhost that is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "taskplanner fake graph")])
    now = datetime.now(UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "fake-graph-cert.pem"
    key_path = directory / "fake-graph-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
