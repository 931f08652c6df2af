"""A loopback fake Greenhouse: OAuth token endpoint, Harvest v3 list endpoints, signed webhooks.

Tests and `taskplanner sandbox` drive an editable organisation through its methods; the real
`GreenhouseConnector` talks to it over 127.0.0.1 exactly as it would to Greenhouse.

Shapes follow what Greenhouse documents (``shared/fixtures/providers/greenhouse/HARVEST_V3.md``):
- Harvest v3 (https://harvestdocs.greenhouse.io): OAuth client-credentials tokens from
  ``POST /token``, list endpoints returning a bare JSON array, cursor pagination only through the
  ``Link: <...?cursor=...>; rel="next"`` header, a cursor must be the only query parameter,
  pipe-form date filters (``updated_at=gte|2024-01-01T00:00:00Z``), comma-separated ``*_ids``
  (at most 50), ``per_page`` 1..500 (default 100), ISO 8601 UTC timestamps with milliseconds.
  Field names of the v3 resources come from the v3 reference pages where they were readable and
  otherwise from a third-party client built from the v3 spec (Airbyte's source-greenhouse
  manifest: applications.job_interview_stage_id/coordinator_id, interviews.starts_at/ends_at,
  interviewers.scorecard_id/response_status, scorecards.interviewer_id/status, job_owners.type/
  responsible, job_interview_stages.sort_order/active). Where v3 is silent, v1 meaning is kept.
- Webhooks (github.com/grnhse/greenhouse-api-docs, source/includes/webhooks): the current
  ``{"action": ..., "payload": {...}}`` format with v1-style embedded objects, a
  ``Signature: sha256 <hex HMAC-SHA256 of the raw body>`` header, a unique ``Greenhouse-Event-ID``
  header, and Unicode/HTML characters escaped as ``\\u003c`` the way Greenhouse's encoder does.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import itertools
import json
import math
import queue
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from taskplanner.sandbox.fake_ats import (
    CAPABILITIES,
    DEFAULT_STAGES,
    ConnectorSettings,
    FakeATSError,
    PersonRole,
    SeededOrganisation,
    seed_organisation,
)
from taskplanner.sandbox.webhook_recorder import ReceivedRequest, WebhookRecorder

Record = dict[str, Any]
Clock = Callable[[], datetime]

DEFAULT_CLIENT_ID = "fake-greenhouse-client"
DEFAULT_CLIENT_SECRET = "fake-greenhouse-secret"  # noqa: S105 - a loopback fake's fixed secret
MAX_IDS_PER_FILTER = 50  # "length <= 50" on every *_ids filter of the v3 reference pages
MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 100

# Every plan has Application Review first and Offer last (v3 job_interview_stages docs), as
# fake_ats.DEFAULT_STAGES has it.

_DATE, _DAY, _IDS, _BOOL, _TEXT = "date", "day", "ids", "bool", "text"
_COMMON_FILTERS: dict[str, tuple[str, str]] = {
    "ids": ("id", _IDS),
    "created_at": ("created_at", _DATE),
    "updated_at": ("updated_at", _DATE),
}
# resource -> {query parameter: (record field, kind)}; anything else is a 400, which is how the
# tests prove the connector only sends documented parameters.
RESOURCE_FILTERS: dict[str, dict[str, tuple[str, str]]] = {
    "users": {"primary_email": ("primary_email", _TEXT)},
    "jobs": {"status": ("status", _TEXT)},
    "job_interview_stages": {"job_ids": ("job_id", _IDS), "active": ("active", _BOOL)},
    "job_interviews": {
        "job_ids": ("job_id", _IDS),
        "job_interview_stage_ids": ("job_interview_stage_id", _IDS),
        "active": ("active", _BOOL),
    },
    "job_owners": {
        "job_ids": ("job_id", _IDS),
        "user_ids": ("user_id", _IDS),
        "type": ("type", _TEXT),
    },
    "job_posts": {
        "job_ids": ("job_id", _IDS),
        "live": ("live", _BOOL),
        "active": ("active", _BOOL),
    },
    "candidates": {},
    "applications": {
        "candidate_ids": ("candidate_id", _IDS),
        "job_ids": ("job_id", _IDS),
        "status": ("status", _TEXT),
        "last_activity_at": ("last_activity_at", _DATE),
    },
    "application_stages": {
        "application_ids": ("application_id", _IDS),
        "job_interview_stage_ids": ("job_interview_stage_id", _IDS),
        # The docs' name for the "only the current entry" flag is cut off; v1 meaning, guessed name.
        "current": ("current", _BOOL),
    },
    "interviews": {
        "application_ids": ("application_id", _IDS),
        "job_ids": ("job_id", _IDS),
        "job_interview_ids": ("job_interview_id", _IDS),
        "status": ("status", _TEXT),
        "starts_at": ("starts_at", _DATE),
        "ends_at": ("ends_at", _DATE),
        # Date-only fields end in _on (docs/standardizations); both are filters of
        # https://harvestdocs.greenhouse.io/reference/get_v3-interviews.
        "all_day_start_on": ("all_day_start_on", _DAY),
        "all_day_end_on": ("all_day_end_on", _DAY),
        "external_event_id": ("external_event_id", _TEXT),
    },
    "interviewers": {
        "interview_ids": ("interview_id", _IDS),
        "user_ids": ("user_id", _IDS),
        "scorecard_ids": ("scorecard_id", _IDS),
        "response_status": ("response_status", _TEXT),
    },
    "scorecards": {
        "application_ids": ("application_id", _IDS),
        "interviewer_ids": ("interviewer_id", _IDS),
        "submitter_ids": ("submitter_id", _IDS),
        "status": ("status", _TEXT),
        "submitted_at": ("submitted_at", _DATE),
    },
}
_BRACKET_FILTER = re.compile(r"^(\w+)\[(gte|gt|lte|lt)\]$")
_OPERATORS: dict[str, Callable[[datetime, datetime], bool]] = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}
RESPONSE_STATUSES = ("needs_action", "accepted", "tentative", "declined")


def iso_ms(moment: datetime) -> str:
    """Harvest v3 date-time format: UTC, milliseconds, ``Z`` (e.g. ``2024-12-15T03:55:00.000Z``)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_s(moment: datetime) -> str:
    """The webhook examples' format: UTC to the second (``2015-02-09T16:38:36Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.astimezone(UTC)


def greenhouse_json(payload: Any) -> bytes:
    """Encode like Greenhouse's webhook sender: compact, UTF-8, with ``<``, ``>`` and ``&`` escaped.

    The docs' example: ``<p>hello</p>`` is sent as ``\\u003cp\\u003ehello\\u003c/p\\u003e`` and the
    signature covers those exact bytes, so a receiver that re-serialises the JSON breaks it.
    """
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The ``Signature`` header value Greenhouse sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256 {digest}"


class FakeGreenhouseError(FakeATSError):
    """A test asked the fake organisation for something that does not exist."""


@dataclass
class Fault:
    """One failure applied to the next matching request.

    kind: ``status`` (answer ``status`` with an error body, plus ``Retry-After`` if given),
    ``slow`` (sleep ``delay`` seconds before answering normally, to trip a client timeout),
    ``truncate`` (a 200 whose JSON body is cut in half), ``disconnect`` (headers promise the
    whole body, the connection closes half-way), ``reset`` (no answer at all: the connection
    is closed with RST).
    """

    kind: Literal["status", "slow", "truncate", "disconnect", "reset"]
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    path: str | None = None  # only requests whose path starts with this; None = any /v3 path

    def matches(self, path: str) -> bool:
        if self.path is None:
            return path.startswith("/v3/")
        return path.startswith(self.path)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int


@dataclass
class WebhookDelivery:
    """One webhook POST the fake made (or tried to make)."""

    action: str
    event_id: str
    body: bytes
    headers: dict[str, str]
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class _Token:
    expires_monotonic: float
    generation: int


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGreenhouse


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without this, Nagle + delayed ACK add ~40 ms
    # to every keep-alive request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet; the fake keeps its own request log."""

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake._handle(method, self.path, self.headers.get("Authorization"), body)
        fault = reply.fault
        if fault is not None and fault.kind == "reset":
            # SO_LINGER with a zero timeout: the server's close sends RST, nothing answered.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            payload = reply.body
            declared = len(payload)
            if fault is not None and fault.kind == "truncate":
                payload = payload[: len(payload) // 2]
                declared = len(payload)
            elif fault is not None and fault.kind == "disconnect":
                payload = payload[: len(payload) // 2]
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(declared))
            if fault is not None and fault.kind == "disconnect":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test): nothing to answer.
            self.close_connection = True


class FakeGreenhouse:
    """A real HTTP server on 127.0.0.1 that behaves like Greenhouse, with an editable organisation.

    Use as a context manager (or ``start()``/``stop()``). ``base_url`` is both the Harvest base URL
    and the auth URL (``{base_url}/token``). Mutation methods bump ``updated_at`` and, when a
    webhook target is configured and ``webhooks_enabled`` is true, POST the matching signed webhook
    synchronously (set ``async_webhooks=True`` and call ``flush_webhooks()`` to decouple).
    Implements `taskplanner.sandbox.fake_ats.FakeATS`.
    """

    provider = "greenhouse"
    # Greenhouse has all of them: RSVPs on /v3/interviewers, job posts, a plan per job,
    # hiring-team coordinators, a coordinator per application, hard deletes.
    capabilities = CAPABILITIES

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_ttl: float = 3600.0,
        token_expiry_field: Literal["expires_in", "expires_at"] = "expires_in",  # noqa: S107
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhooks_enabled: bool = True,
        async_webhooks: bool = False,
        webhook_ms_timestamps: bool = False,
        rate_limit: int = 500,
        rate_window: float = 10.0,
        enforce_rate_limit: bool = False,
        retry_after_on_429: bool = False,
        cursor_conflict_status: int = 400,
        app_url: str = "https://app.greenhouse.io",
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.token_expiry_field = token_expiry_field
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhooks_enabled = webhooks_enabled
        self.async_webhooks = async_webhooks
        # Greenhouse's webhook examples carry second-precision times while Harvest v3 has
        # milliseconds; keep that difference unless a test wants them equal.
        self.webhook_ms_timestamps = webhook_ms_timestamps
        # Greenhouse allows about 50 requests per 10 s; the default here is generous so tests
        # that do not study throttling never pause. Set rate_limit=50 to be realistic.
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.enforce_rate_limit = enforce_rate_limit
        # Harvest's own 429 carries neither Retry-After nor the X-RateLimit-* headers ("the
        # HTTP 429 response will exclude the X-RateLimit-Limit and X-RateLimit-Remaining
        # headers", greenhouse-api-docs harvest/_introduction.md "Throttling"); True adds them
        # (what some third-party pages claim).
        self.retry_after_on_429 = retry_after_on_429
        # The status for "cursor plus another parameter" is not documented (HARVEST_V3.md §2);
        # a third-party client maps it to 422. Tests may switch.
        self.cursor_conflict_status = cursor_conflict_status
        self.app_url = app_url.rstrip("/")
        self._clock: Clock = clock or (lambda: datetime.now(UTC))

        self._lock = threading.RLock()
        self._last_stamp: datetime | None = None
        self._ids = itertools.count(1001)
        # Bumped by every write (each one stamps a time or adds/removes a row): the indexes
        # below are rebuilt lazily when it moved, so an organisation with 100,000 past
        # interviews answers a narrow query without scanning them all (as Greenhouse would).
        self._version = 0
        self._indexes: dict[tuple[str, str], tuple[int, Any]] = {}
        self._tables: dict[str, dict[int, Record]] = {
            name: _Table(self) for name in RESOURCE_FILTERS
        }
        self._job_meta: dict[int, Record] = {}  # v1-only job fields the webhooks still carry
        # application id -> its current application_stages row (so a move needs no scan)
        self._current_stage: dict[int, int] = {}
        self._tokens: dict[str, _Token] = {}
        self._credential_generation = 0
        self._revoked = False
        self._faults: deque[Fault] = deque()
        self._window: deque[float] = deque()
        self._webhook_ids = itertools.count(1)
        self._held_webhooks: list[WebhookDelivery] | None = None  # see hold_webhooks

        self.requests: Counter[str] = Counter()  # path -> count (all methods, all outcomes)
        self.statuses: Counter[int] = Counter()  # HTTP status -> count
        self.request_log: list[RequestRecord] = []
        self.tokens_issued = 0
        self.webhook_deliveries: list[WebhookDelivery] = []

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhook_queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._webhook_client: httpx.Client | None = None  # made on first use (SSL setup is slow)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGreenhouse:
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-greenhouse", daemon=True
        )
        self._thread.start()
        if self.async_webhooks:
            self._webhook_thread = threading.Thread(
                target=self._webhook_worker, name="fake-greenhouse-webhooks", daemon=True
            )
            self._webhook_thread.start()
        return self

    def stop(self) -> None:
        if self._webhook_thread is not None:
            self._webhook_queue.put(None)
            self._webhook_thread.join(timeout=10)
            self._webhook_thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._webhook_client is not None:
            self._webhook_client.close()
            self._webhook_client = None

    def __enter__(self) -> FakeGreenhouse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Greenhouse is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Harvest base URL (the connector appends ``/v3/...``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def auth_url(self) -> str:
        """OAuth base URL (the connector appends ``/token``)."""
        return self.base_url

    def connector_settings(self, webhook_secret: str) -> ConnectorSettings:
        """A ``type = "greenhouse"`` connector table pointing at this fake, with its client
        credentials (and ``webhook_secret``) in the environment its ``*_env`` keys name."""
        return ConnectorSettings(
            table={
                "type": self.provider,
                "base_url": self.base_url,
                "auth_url": self.auth_url,
                "app_url": self.app_url,
                "client_id_env": "FAKE_GREENHOUSE_CLIENT_ID",
                "client_secret_env": "FAKE_GREENHOUSE_CLIENT_SECRET",
                "webhook_secret_env": "FAKE_GREENHOUSE_WEBHOOK_SECRET",
            },
            environ={
                "FAKE_GREENHOUSE_CLIENT_ID": self.client_id,
                "FAKE_GREENHOUSE_CLIENT_SECRET": self.client_secret,
                "FAKE_GREENHOUSE_WEBHOOK_SECRET": webhook_secret,
            },
        )

    # ------------------------------------------------------------------ credentials & faults

    def revoke_credentials(self) -> None:
        """Reject the client credentials and every token issued so far (401) until restored."""
        with self._lock:
            self._revoked = True
            self._credential_generation += 1

    def restore_credentials(self) -> None:
        """Accept the client credentials again; tokens issued before the revocation stay dead."""
        with self._lock:
            self._revoked = False

    def expire_all_tokens(self) -> None:
        """Make every issued access token answer 401, as if its hour had passed."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_monotonic = 0.0

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to the next request that matches it, in order."""
        with self._lock:
            self._faults.extend(faults)

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        path: str | None = None,
    ) -> None:
        value = None if retry_after is None else str(retry_after)
        self.inject(*(Fault("status", status, value, path=path) for _ in range(times)))

    def throttle_next(
        self, times: int = 1, *, retry_after: float | str | None = 1, path: str | None = None
    ) -> None:
        """Answer the next ``times`` requests 429 with ``Retry-After`` (``None``: with no
        header at all, as Harvest documents its 429s)."""
        self.fail_next(429, times=times, retry_after=retry_after, path=path)

    def clear_faults(self) -> None:
        """Drop every queued fault (a storm ends)."""
        with self._lock:
            self._faults.clear()

    def slow_next(self, delay: float, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("slow", delay=delay, path=path) for _ in range(times)))

    def truncate_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("truncate", path=path) for _ in range(times)))

    def disconnect_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("disconnect", path=path) for _ in range(times)))

    def reset_next(self, *, times: int = 1, path: str | None = None) -> None:
        """Drop the next ``times`` connections without an answer (closed with RST)."""
        self.inject(*(Fault("reset", path=path) for _ in range(times)))

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.request_log.clear()

    def requests_to(self, resource: str) -> int:
        """How many requests reached ``/v3/<resource>``."""
        return self.requests[f"/v3/{resource}"]

    # ------------------------------------------------------------------ webhooks

    def configure_webhook(self, url: str, secret: str, *, enabled: bool = True) -> None:
        self.webhook_url = url
        self.webhook_secret = secret
        self.webhooks_enabled = enabled

    def send_ping(self) -> WebhookDelivery | None:
        """The ping Greenhouse sends when a webhook is saved.

        UNCONFIRMED shape: the docs only say the ping carries "some configuration settings"
        (webhooks/_introduction.md); the body here is ``{"action": "ping", "payload": {...}}``.
        """
        return self._send_webhook("ping", {"web_hook_id": 1, "url": self.webhook_url})

    def flush_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook has been POSTed (a no-op when sending synchronously)."""
        deadline = time.monotonic() + timeout
        while self.async_webhooks and time.monotonic() < deadline:
            if self._webhook_queue.unfinished_tasks == 0:
                return
            time.sleep(0.01)

    def redeliver(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Send a past delivery again byte for byte, same event id (Greenhouse retries)."""
        again = WebhookDelivery(delivery.action, delivery.event_id, delivery.body,
                                dict(delivery.headers))
        self._post_webhook(again)
        return again

    def _send_webhook(self, action: str, payload: Mapping[str, Any]) -> WebhookDelivery | None:
        if not (self.webhooks_enabled and self.webhook_url and self.webhook_secret):
            return None
        body = greenhouse_json({"action": action, "payload": payload})
        event_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "Signature": sign(body, self.webhook_secret),
            "Greenhouse-Event-ID": event_id,
            "User-Agent": "Greenhouse-Webhooks (fake)",
        }
        delivery = WebhookDelivery(action, event_id, body, headers)
        with self._lock:
            if self._held_webhooks is not None:
                self._held_webhooks.append(delivery)
                return delivery
        self._dispatch_webhook(delivery)
        return delivery

    def _dispatch_webhook(self, delivery: WebhookDelivery) -> None:
        if self.async_webhooks and self._webhook_thread is not None:
            self._webhook_queue.put(delivery)
        else:
            self._post_webhook(delivery)

    def hold_webhooks(self) -> None:
        """Keep back the webhooks of the changes that follow, until `release_webhooks`.

        Greenhouse gives no ordering guarantee and retries failed deliveries later, so
        deliveries can arrive late and out of order; this makes that happen on purpose.
        """
        with self._lock:
            if self._held_webhooks is None:
                self._held_webhooks = []

    def release_webhooks(self, *, reverse: bool = True) -> list[WebhookDelivery]:
        """Send what `hold_webhooks` kept back, newest first unless ``reverse=False``."""
        with self._lock:
            held, self._held_webhooks = self._held_webhooks or [], None
        for delivery in reversed(held) if reverse else held:
            self._dispatch_webhook(delivery)
        return held

    def _post_webhook(self, delivery: WebhookDelivery) -> None:
        url = self.webhook_url
        if url is None:
            return
        if self._webhook_client is None:
            self._webhook_client = httpx.Client(timeout=10.0)
        try:
            response = self._webhook_client.post(url, content=delivery.body,
                                                 headers=delivery.headers)
            delivery.status_code = response.status_code
        except httpx.HTTPError as exc:
            delivery.error = type(exc).__name__
        with self._lock:
            self.webhook_deliveries.append(delivery)

    def _webhook_worker(self) -> None:
        while True:
            item = self._webhook_queue.get()
            try:
                if item is None:
                    return
                self._post_webhook(item)
            finally:
                self._webhook_queue.task_done()

    # ------------------------------------------------------------------ organisation: reads

    def record(self, resource: str, record_id: int) -> Record:
        """A copy of one stored record (as the list endpoint would serve it)."""
        with self._lock:
            return _public(self._get(resource, record_id))

    def records(self, resource: str) -> list[Record]:
        with self._lock:
            return [_public(r) for r in sorted(self._tables[resource].values(),
                                               key=lambda r: int(r["id"]))]

    def stage_id(self, job_id: int, name: str) -> int:
        with self._lock:
            for stage in self._tables["job_interview_stages"].values():
                if stage["job_id"] == job_id and stage["name"] == name and stage["active"]:
                    return int(stage["id"])
        raise FakeGreenhouseError(f"job {job_id} has no active stage named {name!r}")

    def stage_ids(self, job_id: int) -> list[int]:
        with self._lock:
            stages = [s for s in self._tables["job_interview_stages"].values()
                      if s["job_id"] == job_id and s["active"]]
        return [int(s["id"]) for s in sorted(stages, key=lambda s: int(s["sort_order"]))]

    def interview_kind_id(self, job_id: int, stage_name: str, name: str | None = None) -> int:
        """The ``job_interviews`` id (interview kind) in a stage; the first one if no name given."""
        stage = self.stage_id(job_id, stage_name)
        with self._lock:
            kinds = sorted(
                (k for k in self._tables["job_interviews"].values()
                 if k["job_interview_stage_id"] == stage and (name is None or k["name"] == name)),
                key=lambda k: int(k["sort_order"]),
            )
        if not kinds:
            raise FakeGreenhouseError(f"stage {stage_name!r} of job {job_id} has no interview")
        return int(kinds[0]["id"])

    def user_id(self, email: str) -> int:
        with self._lock:
            for user in self._tables["users"].values():
                if user["primary_email"] == email:
                    return int(user["id"])
        raise FakeGreenhouseError(f"no user {email!r}")

    # ------------------------------------------------------------------ organisation: writes

    def add_user(
        self,
        email: str,
        first_name: str,
        last_name: str,
        *,
        role: PersonRole | None = None,
        site_admin: bool = False,
        employee_id: str | None = None,
    ) -> int:
        """A Greenhouse user. Greenhouse has one account-wide role that matters to us, site
        admin (``role="admin"`` or ``site_admin=True``); coordinators and recruiters are named
        per job (hiring team) and per application, so other roles change nothing here."""
        site_admin = site_admin or role == "admin"
        with self._lock:
            now = self._stamp()
            user_id = self._new_id()
            # v3 renamed primary_email_address -> primary_email and disabled -> deactivated
            # (https://harvestdocs.greenhouse.io/reference/get_v3-users).
            self._tables["users"][user_id] = {
                "id": user_id,
                "first_name": first_name,
                "last_name": last_name,
                "name": f"{first_name} {last_name}",
                "primary_email": email,
                "emails": [email],
                "employee_id": employee_id,
                "site_admin": site_admin,
                "deactivated": False,
                "created_at": now,
                "updated_at": now,
            }
        return user_id

    def deactivate_user(self, user_id: int) -> None:
        with self._lock:
            self._touch(self._get("users", user_id), deactivated=True)

    def create_job(
        self,
        name: str,
        *,
        stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
        status: Literal["open", "draft", "closed"] = "open",
        recruiter_id: int | None = None,
        coordinator_id: int | None = None,
        created_by_id: int | None = None,
    ) -> int:
        """A job with its interview plan and hiring team; sends ``job_created``."""
        with self._lock:
            now = self._stamp()
            job_id = self._new_id()
            self._tables["jobs"][job_id] = {
                "id": job_id,
                "name": name,
                "requisition_id": None,
                "notes": None,
                "confidential": False,
                "status": status,
                "department_id": None,
                "office_ids": [],
                "is_template": False,
                "copied_from_id": None,
                "opened_at": now if status == "open" else None,
                "closed_at": now if status == "closed" else None,
                "custom_fields": {},
                "created_at": now,
                "updated_at": now,
            }
            self._job_meta[job_id] = {"created_by_id": created_by_id or recruiter_id}
            for position, (stage_name, interviews) in enumerate(stages):
                self._insert_stage(job_id, stage_name, interviews, position, now)
            if recruiter_id is not None:
                self._insert_owner(job_id, recruiter_id, "recruiter", now)
            if coordinator_id is not None:
                self._insert_owner(job_id, coordinator_id, "coordinator", now)
            payload = self._job_payload(job_id)
        self._send_webhook("job_created", payload)
        return job_id

    def add_stage(
        self, job_id: int, name: str, interviews: Sequence[str] = (), *, position: int | None = None
    ) -> int:
        """Add a stage to a job's plan. Greenhouse has no webhook for this: poll only.

        The job's own ``updated_at`` does not move, which is what a poller must cope with.
        """
        with self._lock:
            self._get("jobs", job_id)
            now = self._stamp()
            stages = [s for s in self._tables["job_interview_stages"].values()
                      if s["job_id"] == job_id]
            if position is None:
                # Before Offer, which the docs say is always last.
                position = max((int(s["sort_order"]) for s in stages), default=0)
            for stage in stages:
                if int(stage["sort_order"]) >= position:
                    self._touch(stage, sort_order=int(stage["sort_order"]) + 1, now=now)
            return self._insert_stage(job_id, name, interviews, position, now)

    def remove_stage(self, stage_id: int) -> None:
        """Take a stage off the plan (kept inactive, as v3 does).

        Sends ``job_interview_stage_deleted``.
        """
        with self._lock:
            stage = self._get("job_interview_stages", stage_id)
            self._touch(stage, active=False)
            for kind in self._tables["job_interviews"].values():
                if kind["job_interview_stage_id"] == stage_id:
                    self._touch(kind, active=False)
            payload = {"job_interview_stage": {
                "id": stage_id,
                "job_id": stage["job_id"],
                "created_at": stage["created_at"],
                "updated_at": stage["updated_at"],
                "name": stage["name"],
                "active": True,  # as in the documented example, which carries the pre-delete row
            }}
        self._send_webhook("job_interview_stage_deleted", payload)

    def add_interview_kind(self, stage_id: int, name: str) -> int:
        """Add an interview to a stage of the plan (``job_interviews``); no webhook exists."""
        with self._lock:
            stage = self._get("job_interview_stages", stage_id)
            now = self._stamp()
            order = 1 + sum(1 for k in self._tables["job_interviews"].values()
                            if k["job_interview_stage_id"] == stage_id)
            return self._insert_kind(int(stage["job_id"]), stage_id, name, order, now)

    def publish_job(self, job_id: int, *, live: bool = True, title: str | None = None,
                    content: str = "<p>Come work with us!</p>") -> int:
        """Create or update the job's post; sends ``job_post_created`` or ``job_post_updated``."""
        with self._lock:
            job = self._get("jobs", job_id)
            now = self._stamp()
            post = next((p for p in self._tables["job_posts"].values()
                         if p["job_id"] == job_id and p["active"]), None)
            if post is None:
                post_id = self._new_id()
                post = {
                    "id": post_id,
                    "job_id": job_id,
                    "title": title or job["name"],
                    "content": content,
                    "internal_content": None,
                    "internal": False,
                    "live": live,
                    "active": True,
                    "first_published_at": now if live else None,
                    "job_board_id": 1,
                    "language": "en",
                    "created_at": now,
                    "updated_at": now,
                }
                self._tables["job_posts"][post_id] = post
                action = "job_post_created"
            else:
                changes: dict[str, Any] = {"live": live}
                if title is not None:
                    changes["title"] = title
                if live and post["first_published_at"] is None:
                    changes["first_published_at"] = now
                self._touch(post, now=now, **changes)
                action = "job_post_updated"
            payload = self._job_post_payload(post)
        self._send_webhook(action, payload)
        return int(post["id"])

    def unpublish_job(self, job_id: int) -> None:
        self.publish_job(job_id, live=False)

    def delete_job_post(self, post_id: int) -> None:
        with self._lock:
            post = self._get("job_posts", post_id)
            self._touch(post, active=False, live=False)
            payload = {"job_post": self._job_post_payload(post)}
        self._send_webhook("job_post_deleted", payload)

    def close_job(self, job_id: int) -> None:
        """Sends ``job_updated`` with status closed."""
        with self._lock:
            now = self._stamp()
            self._touch(self._get("jobs", job_id), now=now, status="closed", closed_at=now)
            payload = self._job_payload(job_id)
        self._send_webhook("job_updated", payload)

    def rename_job(self, job_id: int, name: str) -> None:
        with self._lock:
            self._touch(self._get("jobs", job_id), name=name)
            payload = self._job_payload(job_id)
        self._send_webhook("job_updated", payload)

    def set_job_coordinator(self, job_id: int, user_id: int) -> None:
        """Replace the hiring team's responsible coordinator; sends ``job_updated``.

        The change lives on ``job_owners``; the job row itself is not touched (v3 moved the
        hiring team to its own resource).
        """
        with self._lock:
            self._get("jobs", job_id)
            self._get("users", user_id)
            now = self._stamp()
            for owner in list(self._tables["job_owners"].values()):
                if owner["job_id"] == job_id and owner["type"] == "coordinator":
                    del self._tables["job_owners"][int(owner["id"])]
            self._insert_owner(job_id, user_id, "coordinator", now)
            payload = self._job_payload(job_id)
        self._send_webhook("job_updated", payload)

    def add_candidate_application(
        self,
        job_id: int,
        first_name: str,
        last_name: str,
        email: str,
        *,
        stage_id: int | None = None,
        coordinator_id: int | None = None,
        recruiter_id: int | None = None,
    ) -> tuple[int, int]:
        """A new candidate applying to a job; returns (candidate_id, application_id).

        Sends ``new_candidate_application``.
        """
        with self._lock:
            self._get("jobs", job_id)
            now = self._stamp()
            candidate_id = self._new_id()
            self._tables["candidates"][candidate_id] = {
                "id": candidate_id,
                "first_name": first_name,
                "last_name": last_name,
                "preferred_name": None,
                "company": None,
                "title": None,
                "private": False,
                "can_email": True,
                "email_addresses": [{"value": email, "type": "personal"}],
                "phone_numbers": [],
                "tags": [],
                "last_activity_at": now,
                "created_at": now,
                "updated_at": now,
            }
            application_id = self._insert_application(
                candidate_id, job_id, stage_id, coordinator_id, recruiter_id, now
            )
            payload = self._application_payload(application_id)
        self._send_webhook("new_candidate_application", payload)
        return candidate_id, application_id

    def add_application(self, candidate_id: int, job_id: int, *, stage_id: int | None = None
                        ) -> int:
        """An existing candidate applying to another job; sends ``new_candidate_application``."""
        with self._lock:
            self._get("candidates", candidate_id)
            now = self._stamp()
            application_id = self._insert_application(candidate_id, job_id, stage_id, None, None,
                                                      now)
            payload = self._application_payload(application_id)
        self._send_webhook("new_candidate_application", payload)
        return application_id

    def move_application(self, application_id: int, stage_id: int) -> None:
        """Move to another stage of the same job; sends ``candidate_stage_change``."""
        with self._lock:
            application = self._get("applications", application_id)
            stage = self._get("job_interview_stages", stage_id)
            if stage["job_id"] != application["job_id"]:
                raise FakeGreenhouseError("the stage belongs to another job")
            now = self._stamp()
            self._enter_stage(application, stage, now)
            payload = self._application_payload(application_id)
        self._send_webhook("candidate_stage_change", payload)

    def advance_application(self, application_id: int) -> int:
        """Move to the next stage of the plan; returns the stage id."""
        with self._lock:
            application = self._get("applications", application_id)
            stages = self.stage_ids(int(application["job_id"]))
            current = application["job_interview_stage_id"]
            index = stages.index(current) + 1 if current in stages else 0
            if index >= len(stages):
                raise FakeGreenhouseError("the application is in the last stage")
            target = stages[index]
        self.move_application(application_id, target)
        return target

    def reject_application(self, application_id: int) -> None:
        """Sends ``reject_candidate``."""
        with self._lock:
            application = self._get("applications", application_id)
            now = self._stamp()
            self._touch(application, now=now, status="rejected", rejected_at=now,
                        rejection_reason_id=1, last_activity_at=now)
            payload = self._application_payload(application_id)
        self._send_webhook("reject_candidate", payload)

    def unreject_application(self, application_id: int) -> None:
        """Sends ``unreject_candidate``."""
        with self._lock:
            application = self._get("applications", application_id)
            now = self._stamp()
            self._touch(application, now=now, status="active", rejected_at=None,
                        rejection_reason_id=None, last_activity_at=now)
            payload = self._application_payload(application_id)
        self._send_webhook("unreject_candidate", payload)

    unreject = unreject_application

    def hire(self, application_id: int) -> None:
        """Sends ``hire_candidate`` (whose documented payload has no status or current stage)."""
        with self._lock:
            application = self._get("applications", application_id)
            now = self._stamp()
            # v3: job_interview_stage_id is null for applications in a terminal state.
            self._leave_stage(application_id, now)
            self._touch(application, now=now, status="hired", last_activity_at=now,
                        job_interview_stage_id=None, stage_id=None, stage_name=None)
            payload = self._hire_payload(application_id, now)
        self._send_webhook("hire_candidate", payload)

    def unhire(self, application_id: int, stage_id: int | None = None) -> None:
        """Back to active in a stage (the first by default); sends ``unhire_candidate``."""
        with self._lock:
            application = self._get("applications", application_id)
            target = stage_id or self.stage_ids(int(application["job_id"]))[0]
            now = self._stamp()
            self._touch(application, now=now, status="active")
            self._enter_stage(application, self._get("job_interview_stages", target), now)
            payload = self._application_payload(application_id)
        self._send_webhook("unhire_candidate", payload)

    def delete_application(self, application_id: int) -> None:
        """Hard delete; interviews and scorecards go silently. Sends ``delete_application``."""
        with self._lock:
            application = self._get("applications", application_id)
            payload = {"application": {
                "id": application_id,
                "candidate_id": application["candidate_id"],
                "job_id": application["job_id"],
                "created_at": self._webhook_time(application["created_at"]),
                "source_id": None,
                "candidate_rejection_reason_id": application["rejection_reason_id"],
                "rejection_note_id": None,
                "rejected_at": self._webhook_time(application["rejected_at"]),
                "referrer_id": None,
                "prospect": False,
                "rejected_by_user_id": None,
            }}
            self._drop_application(application_id)
        self._send_webhook("delete_application", payload)

    def delete_candidate(self, candidate_id: int) -> None:
        """Hard delete with every application; sends ``delete_candidate`` (no cascade hooks)."""
        with self._lock:
            candidate = self._get("candidates", candidate_id)
            application_ids = sorted(
                int(a["id"]) for a in self._tables["applications"].values()
                if a["candidate_id"] == candidate_id
            )
            payload = {"person": {
                "id": candidate_id,
                "first_name": candidate["first_name"],
                "last_name": candidate["last_name"],
                "company": candidate["company"],
                "title": candidate["title"],
                "created_at": self._webhook_time(candidate["created_at"]),
                "headline": None,
                "is_private": False,
                "recruiter_user_id": None,
                "coordinator_user_id": None,
                "can_email": True,
                "deleted_application_ids": application_ids,
            }}
            for application_id in application_ids:
                self._drop_application(application_id)
            del self._tables["candidates"][candidate_id]
        self._send_webhook("delete_candidate", payload)

    def schedule_interview(
        self,
        application_id: int,
        interview_kind_id: int,
        interviewer_ids: Sequence[int],
        starts_at: datetime,
        ends_at: datetime,
        *,
        external_event_id: str | None = None,
        organizer_id: int | None = None,
        location: str | None = None,
    ) -> int:
        """Put an interview on the calendar. Greenhouse sends NO webhook for this: poll only.

        Each interviewer gets an ``interviewers`` row (needs_action) and a draft scorecard, as
        v3 does ("Greenhouse creates a placeholder scorecard per assigned interviewer").
        """
        with self._lock:
            application = self._get("applications", application_id)
            kind = self._get("job_interviews", interview_kind_id)
            if kind["job_id"] != application["job_id"]:
                raise FakeGreenhouseError("the interview belongs to another job")
            now = self._stamp()
            interview_id = self._new_id()
            self._tables["interviews"][interview_id] = {
                "id": interview_id,
                "application_id": application_id,
                "job_id": application["job_id"],
                "job_interview_id": interview_kind_id,
                "status": "scheduled",
                "starts_at": iso_ms(starts_at),
                "ends_at": iso_ms(ends_at),
                "all_day_start_on": None,
                "all_day_end_on": None,
                "external_event_id": external_event_id or f"fake-event-{interview_id}",
                "location": location,
                "video_conferencing_url": None,
                "organizer_id": organizer_id,
                "scheduled_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for user_id in interviewer_ids:
                self._insert_interviewer(interview_id, user_id, now)
            self._touch(application, now=now, last_activity_at=now)
        return interview_id

    def schedule_all_day_interview(
        self,
        application_id: int,
        interview_kind_id: int,
        interviewer_ids: Sequence[int],
        start_on: date,
        end_on: date,
    ) -> int:
        """An all-day interview: no ``starts_at``/``ends_at``, only the date-only
        ``all_day_start_on``/``all_day_end_on`` (local dates, "_on" per docs/standardizations,
        filters of https://harvestdocs.greenhouse.io/reference/get_v3-interviews). No webhook."""
        placeholder = datetime.combine(start_on, datetime.min.time(), UTC)
        interview_id = self.schedule_interview(
            application_id, interview_kind_id, interviewer_ids, placeholder, placeholder
        )
        with self._lock:
            self._touch(self._get("interviews", interview_id), starts_at=None, ends_at=None,
                        all_day_start_on=start_on.isoformat(),
                        all_day_end_on=end_on.isoformat())
        return interview_id

    def reschedule_interview(self, interview_id: int, starts_at: datetime, ends_at: datetime
                             ) -> None:
        """No webhook: poll only."""
        with self._lock:
            self._touch(self._get("interviews", interview_id),
                        starts_at=iso_ms(starts_at), ends_at=iso_ms(ends_at))

    def set_interview_status(self, interview_id: int, status: str) -> None:
        """E.g. ``awaiting_feedback`` or ``complete`` after the interview; no webhook."""
        with self._lock:
            self._touch(self._get("interviews", interview_id), status=status)

    def add_interviewer(self, interview_id: int, user_id: int) -> None:
        with self._lock:
            self._get("interviews", interview_id)
            self._insert_interviewer(interview_id, user_id, self._stamp())

    def remove_interviewer(self, interview_id: int, user_id: int) -> None:
        """Drop a panel member (and their draft scorecard, the placeholder of that assignment);
        no webhook: ``scorecard_deleted`` fires only for a scorecard deleted on its own
        (grnhse/greenhouse-api-docs source/includes/webhooks/_interview_events.md)."""
        with self._lock:
            row = self._interviewer_row(interview_id, user_id)
            del self._tables["interviewers"][int(row["id"])]
            scorecard_id = row["scorecard_id"]
            if scorecard_id in self._tables["scorecards"]:
                del self._tables["scorecards"][scorecard_id]
            # The panel changed: the interview row moves too.
            self._touch(self._get("interviews", interview_id))

    def set_interviewer_response(
        self,
        interview_id: int,
        user_id: int,
        response: Literal["needs_action", "accepted", "tentative", "declined"],
    ) -> None:
        """An interviewer's RSVP changes; it shows on ``/v3/interviewers`` only (no webhook)."""
        if response not in RESPONSE_STATUSES:
            raise FakeGreenhouseError(f"unknown response {response!r}")
        with self._lock:
            self._touch(self._interviewer_row(interview_id, user_id), response_status=response)

    def hide_interviewer_email(self, interview_id: int, user_id: int, *,
                               drop_user_id: bool = False) -> None:
        """Serve this panel row with ``email: null`` (the v3 interviewers schema allows it: a
        user without a primary e-mail, or one the credential may not see), and with
        ``drop_user_id`` also ``user_id: null``. No webhook."""
        with self._lock:
            row = self._interviewer_row(interview_id, user_id)
            self._touch(row, email=None)
            if drop_user_id:
                row["user_id"] = None

    def cancel_interview(self, interview_id: int) -> None:
        """Cancelling deletes the interview in Greenhouse; sends ``interview_deleted``."""
        with self._lock:
            self._drop_interview(interview_id)
        self._send_webhook("interview_deleted", {"interview": {"id": interview_id}})

    delete_interview = cancel_interview

    def submit_scorecard(self, interview_id: int, user_id: int, *,
                         rating: str = "yes") -> int:
        """The interviewer submits their scorecard. Greenhouse sends no webhook for this."""
        with self._lock:
            row = self._interviewer_row(interview_id, user_id)
            scorecard = self._get("scorecards", int(row["scorecard_id"]))
            now = self._stamp()
            self._touch(scorecard, now=now, status="complete", submitted_at=now,
                        submitter_id=user_id, candidate_rating=rating)
            return int(scorecard["id"])

    def delete_scorecard(self, scorecard_id: int) -> None:
        """Sends ``scorecard_deleted``."""
        with self._lock:
            scorecard = self._get("scorecards", scorecard_id)
            application = self._tables["applications"].get(int(scorecard["application_id"]))
            payload = {"scorecard": {
                "id": scorecard_id,
                "candidate_id": application["candidate_id"] if application else None,
                "interviewed_at": scorecard["interviewed_at"],
                "created_at": scorecard["created_at"],
                "updated_at": scorecard["updated_at"],
                "scorecard_status": scorecard["status"],
            }}
            del self._tables["scorecards"][scorecard_id]
            for row in self._tables["interviewers"].values():
                if row["scorecard_id"] == scorecard_id:
                    row["scorecard_id"] = None
        self._send_webhook("scorecard_deleted", payload)

    # ------------------------------------------------------------------ internals: storage

    def _new_id(self) -> int:
        return next(self._ids)

    def _stamp(self) -> str:
        """Now, strictly after the previous stamp, at Harvest's millisecond precision."""
        with self._lock:
            self._version += 1
            now = self._clock().astimezone(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last_stamp is not None and now <= self._last_stamp:
                now = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = now
            return iso_ms(now)

    def _get(self, resource: str, record_id: int) -> Record:
        try:
            return self._tables[resource][int(record_id)]
        except KeyError:
            raise FakeGreenhouseError(f"no {resource} record {record_id}") from None

    def _touch(self, record: Record, *, now: str | None = None, **changes: Any) -> None:
        record.update(changes)
        record["updated_at"] = now or self._stamp()

    def _insert_stage(self, job_id: int, name: str, interviews: Iterable[str], position: int,
                      now: str) -> int:
        stage_id = self._new_id()
        self._tables["job_interview_stages"][stage_id] = {
            "id": stage_id,
            "job_id": job_id,
            "name": name,
            "sort_order": position,
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for order, interview in enumerate(interviews, start=1):
            self._insert_kind(job_id, stage_id, interview, order, now)
        return stage_id

    def _insert_kind(self, job_id: int, stage_id: int, name: str, order: int, now: str) -> int:
        kind_id = self._new_id()
        self._tables["job_interviews"][kind_id] = {
            "id": kind_id,
            "job_id": job_id,
            "job_interview_stage_id": stage_id,
            "name": name,
            "sort_order": order,
            "active": True,
            "scheduling_type": "needs_scheduling",
            "duration": 60,
            "require_scorecard": True,
            "created_at": now,
            "updated_at": now,
        }
        return kind_id

    def _insert_owner(self, job_id: int, user_id: int, role: str, now: str) -> None:
        owner_id = self._new_id()
        self._tables["job_owners"][owner_id] = {
            "id": owner_id,
            "job_id": job_id,
            "user_id": user_id,
            "type": role,
            "responsible": True,
            "created_at": now,
            "updated_at": now,
        }

    def _insert_application(self, candidate_id: int, job_id: int, stage_id: int | None,
                            coordinator_id: int | None, recruiter_id: int | None, now: str) -> int:
        target = stage_id or self.stage_ids(job_id)[0]
        stage = self._get("job_interview_stages", target)
        if stage["job_id"] != job_id:
            raise FakeGreenhouseError("the stage belongs to another job")
        owners = {o["type"]: o["user_id"] for o in self._tables["job_owners"].values()
                  if o["job_id"] == job_id and o["responsible"]}
        application_id = self._new_id()
        application: Record = {
            "id": application_id,
            "candidate_id": candidate_id,
            "job_id": job_id,
            "prospect": False,
            "prospective_job_ids": [],
            # The v3 status vocabulary is UNCONFIRMED (third-party lists disagree: "active" vs
            # "in_process"); the fake uses the webhook/v1 value.
            "status": "active",
            "job_interview_stage_id": None,
            "stage_id": None,
            "stage_name": None,
            "coordinator_id": coordinator_id or owners.get("coordinator"),
            "recruiter_id": recruiter_id or owners.get("recruiter"),
            "job_post_id": None,
            "source_id": None,
            "referrer_id": None,
            "rejected_at": None,
            "rejection_reason_id": None,
            "last_activity_at": now,
            "created_at": now,
            "updated_at": now,
        }
        self._tables["applications"][application_id] = application
        self._enter_stage(application, stage, now)
        return application_id

    def _leave_stage(self, application_id: int, now: str) -> None:
        row = self._tables["application_stages"].get(self._current_stage.pop(application_id, 0))
        if row is not None and row["current"]:
            self._touch(row, now=now, current=False, exited_at=now)

    def _enter_stage(self, application: Record, stage: Record, now: str) -> None:
        application_id = int(application["id"])
        self._leave_stage(application_id, now)
        row_id = self._new_id()
        self._current_stage[application_id] = row_id
        self._tables["application_stages"][row_id] = {
            "id": row_id,
            "application_id": application_id,
            "job_interview_stage_id": stage["id"],
            "entered_at": now,
            "exited_at": None,
            "current": True,
            "created_at": now,
            "updated_at": now,
        }
        self._touch(application, now=now, job_interview_stage_id=stage["id"],
                    stage_id=stage["id"], stage_name=stage["name"], last_activity_at=now)

    def _insert_interviewer(self, interview_id: int, user_id: int, now: str) -> None:
        interview = self._get("interviews", interview_id)
        user = self._get("users", user_id)
        scorecard_id = self._new_id()
        # v3 field names per third-party spec: interviewer_id, submitter_id, candidate_rating.
        self._tables["scorecards"][scorecard_id] = {
            "id": scorecard_id,
            "application_id": interview["application_id"],
            "interviewer_id": user_id,
            "submitter_id": None,
            "interview_kit_id": interview["job_interview_id"],
            "status": "draft",
            "candidate_rating": None,
            "interviewed_at": interview["starts_at"],
            "submitted_at": None,
            "created_at": now,
            "updated_at": now,
        }
        row_id = self._new_id()
        self._tables["interviewers"][row_id] = {
            "id": row_id,
            "interview_id": interview_id,
            "user_id": user_id,
            "email": user["primary_email"],
            "response_status": "needs_action",
            "scorecard_id": scorecard_id,
            "created_at": now,
            "updated_at": now,
        }

    def _interviewer_row(self, interview_id: int, user_id: int) -> Record:
        for row in self._tables["interviewers"].values():
            if row["interview_id"] == interview_id and row["user_id"] == user_id:
                return row
        raise FakeGreenhouseError(f"user {user_id} is not on interview {interview_id}")

    def _drop_interview(self, interview_id: int) -> None:
        """The interview and its panel go; so do its drafts ("The interview is deleted, and the
        scorecard is removed from the interviewer's My Dashboard page":
        support.greenhouse.io/hc/en-us/articles/360021800692), submitted scorecards stay."""
        self._get("interviews", interview_id)
        del self._tables["interviews"][interview_id]
        for row in list(self._tables["interviewers"].values()):
            if row["interview_id"] == interview_id:
                del self._tables["interviewers"][int(row["id"])]
                scorecard = self._tables["scorecards"].get(row["scorecard_id"])
                if scorecard is not None and scorecard["status"] == "draft":
                    del self._tables["scorecards"][int(scorecard["id"])]

    def _drop_application(self, application_id: int) -> None:
        for interview in list(self._tables["interviews"].values()):
            if interview["application_id"] == application_id:
                self._drop_interview(int(interview["id"]))
        for resource in ("scorecards", "application_stages"):
            for row in list(self._tables[resource].values()):
                if row["application_id"] == application_id:
                    del self._tables[resource][int(row["id"])]
        self._current_stage.pop(application_id, None)
        del self._tables["applications"][application_id]

    # ------------------------------------------------------------------ internals: webhook payloads

    def _webhook_time(self, value: str | None) -> str | None:
        if value is None or self.webhook_ms_timestamps:
            return value
        return iso_s(parse_iso(value))

    def _user_ref(self, user_id: int | None) -> Record | None:
        if user_id is None or user_id not in self._tables["users"]:
            return None
        user = self._tables["users"][user_id]
        return {"id": user_id, "email": user["primary_email"], "name": user["name"],
                "employee_id": user["employee_id"]}

    def _job_v1(self, job_id: int) -> Record:
        job = self._get("jobs", job_id)
        post = next((p for p in self._tables["job_posts"].values()
                     if p["job_id"] == job_id and p["active"]), None)
        return {
            "id": job_id,
            "name": job["name"],
            "requisition_id": job["requisition_id"],
            "notes": job["notes"],
            "confidential": job["confidential"],
            "job_post_id": post["id"] if post else None,
            "status": job["status"],
            "created_by_id": self._job_meta.get(job_id, {}).get("created_by_id"),
            "created_at": self._webhook_time(job["created_at"]),
            "opened_at": self._webhook_time(job["opened_at"]),
            "closed_at": self._webhook_time(job["closed_at"]),
            "departments": [],
            "offices": [],
            "custom_fields": {},
        }

    def _job_payload(self, job_id: int) -> Record:
        owners = [o for o in self._tables["job_owners"].values() if o["job_id"] == job_id]

        def team(role: str) -> list[Record]:
            return [
                {"user_id": o["user_id"],
                 "employee_id": self._tables["users"].get(o["user_id"], {}).get("employee_id")}
                for o in owners if o["type"] == role
            ]

        job = self._job_v1(job_id)
        job["hiring_team"] = {
            "hiring_managers": [],
            "sourcers": team("sourcer"),
            "recruiters": team("recruiter"),
            "coordinators": team("coordinator"),
        }
        job["openings"] = []
        return {"job": job}

    def _job_post_payload(self, post: Record) -> Record:
        return {
            "id": post["id"],
            "title": post["title"],
            "location": "Berlin, Germany",
            "content": post["content"],
            "internal_content": post["internal_content"],
            "updated_at": post["updated_at"],  # the job post examples carry milliseconds
            "job_id": post["job_id"],
            "external": not post["internal"],
            "internal": post["internal"],
            "live": post["live"],
            "questions": [],
        }

    def _candidate_v1(self, application: Record) -> Record:
        candidate = self._get("candidates", int(application["candidate_id"]))
        candidate_id = int(candidate["id"])
        return {
            "id": candidate_id,
            "first_name": candidate["first_name"],
            "last_name": candidate["last_name"],
            "title": candidate["title"],
            "company": candidate["company"],
            "created_at": self._webhook_time(candidate["created_at"]),
            "external_id": None,
            "photo_url": None,
            "url": f"{self.app_url}/people/{candidate_id}",
            "is_private": candidate["private"],
            "can_email": candidate["can_email"],
            "phone_numbers": [],
            "email_addresses": list(candidate["email_addresses"]),
            "addresses": [],
            "website_addresses": [],
            "social_media_addresses": [],
            "educations": [],
            "employments": [],
            # v1 carried the coordinator on the candidate; v3 keeps it on the application.
            "recruiter": self._user_ref(application["recruiter_id"]),
            "coordinator": self._user_ref(application["coordinator_id"]),
            "attachments": [],
            "tags": list(candidate["tags"]),
            "custom_fields": {},
        }

    def _application_payload(self, application_id: int) -> Record:
        application = self._get("applications", application_id)
        stage_id = application["job_interview_stage_id"]
        current_stage: Record | None = None
        if stage_id is not None:
            stage = self._get("job_interview_stages", int(stage_id))
            current_stage = {
                "id": stage_id,
                "name": stage["name"],
                "interviews": [
                    {"id": k["id"], "name": k["name"], "status": "to_be_scheduled",
                     "interview_kit": {"url": None, "content": "", "questions": []},
                     "interviewers": []}
                    for k in self._tables["job_interviews"].values()
                    if k["job_interview_stage_id"] == stage_id and k["active"]
                ],
            }
        candidate_id = application["candidate_id"]
        return {"application": {
            "id": application_id,
            "rejected_at": self._webhook_time(application["rejected_at"]),
            "prospect": False,
            "status": application["status"],
            "applied_at": self._webhook_time(application["created_at"]),
            "last_activity_at": self._webhook_time(application["last_activity_at"]),
            "url": f"{self.app_url}/people/{candidate_id}?application_id={application_id}",
            "source": None,
            "credited_to": None,
            "rejection_reason": (
                {"id": 1, "name": "Not a fit", "type": {"id": 1, "name": "We rejected them"}}
                if application["status"] == "rejected" else None
            ),
            "rejection_details": None,
            "current_stage": current_stage,
            "custom_fields": {},
            "candidate": self._candidate_v1(application),
            "jobs": [self._job_v1(int(application["job_id"]))],
        }}

    def _hire_payload(self, application_id: int, now: str) -> Record:
        """Shaped like the documented ``hire_candidate`` example: no status, no current stage."""
        application = self._get("applications", application_id)
        job = self._job_v1(int(application["job_id"]))
        candidate_id = application["candidate_id"]
        return {"application": {
            "id": application_id,
            "opening": {"opening_id": None, "custom_fields": []},
            "credited_to": None,
            "source": None,
            "url": f"{self.app_url}/people/{candidate_id}?application_id={application_id}",
            "candidate": self._candidate_v1(application),
            "job": {"id": job["id"], "name": job["name"], "open_date": job["opened_at"],
                    "close_date": job["closed_at"], "requisition_id": None, "departments": [],
                    "offices": [], "custom_fields": {}},
            "jobs": [job],
            "custom_fields": {},
            "offer": {"id": self._new_id(), "version": 1,
                      "created_at": self._webhook_time(now), "sent_at": None,
                      "resolved_at": self._webhook_time(now), "starts_at": None,
                      "custom_fields": {}},
        }}

    # ------------------------------------------------------------------ internals: HTTP

    def _handle(self, method: str, raw_path: str, authorization: str | None, body: bytes
                ) -> _Reply:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        with self._lock:
            self.requests[path] += 1
            fault = self._take_fault(path)
            reply = self._route(method, path, query, authorization, body, fault)
            self.statuses[reply.status] += 1
            self.request_log.append(RequestRecord(method, path, query, reply.status))
            return reply

    def _take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(path):
                del self._faults[index]
                return fault
        return None

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               authorization: str | None, body: bytes, fault: Fault | None) -> _Reply:
        if fault is not None and fault.kind == "status":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return _json_reply(fault.status, {"message": "injected failure"}, headers)
        if path == "/token":
            if method != "POST":
                return _json_reply(405, {"message": "method not allowed"})
            reply = self._token(authorization, body)
        elif path.startswith("/v3/"):
            if method != "GET":
                return _json_reply(405, {"message": "method not allowed"})
            reply = self._harvest(path.removeprefix("/v3/"), query, authorization)
        else:
            reply = _json_reply(404, {"message": "not found"})
        if fault is not None:
            reply.fault = fault
        return reply

    def _token(self, authorization: str | None, body: bytes) -> _Reply:
        # OAuth 2.0 client credentials: HTTP Basic client_id:client_secret, form body
        # grant_type=client_credentials, optional sub
        # (https://harvestdocs.greenhouse.io/docs/authentication).
        form = parse_qs(body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return _json_reply(400, {"error": "unsupported_grant_type"})
        credentials = _basic_credentials(authorization)
        expected = (self.client_id, self.client_secret)
        if (
            credentials is None
            or not (hmac.compare_digest(credentials[0], expected[0])
                    and hmac.compare_digest(credentials[1], expected[1]))
            or self._revoked
        ):
            return _json_reply(401, {"error": "invalid_client"})
        sub = form.get("sub", [None])[0]
        if sub is not None and (not sub.isdigit() or int(sub) not in self._tables["users"]):
            return _json_reply(400, {"error": "invalid_request",
                                     "error_description": "sub is not a user"})
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(time.monotonic() + self.token_ttl,
                                     self._credential_generation)
        self.tokens_issued += 1
        answer: Record = {"access_token": token, "token_type": "Bearer"}
        if self.token_expiry_field == "expires_at":  # noqa: S105 - a field name
            answer["expires_at"] = (datetime.now(UTC) + timedelta(seconds=self.token_ttl)
                                    ).isoformat(timespec="seconds")
        else:
            answer["expires_in"] = max(0, math.floor(self.token_ttl))
        return _json_reply(200, answer, {"Cache-Control": "no-store"})

    def _authorised(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        token = self._tokens.get(authorization.removeprefix("Bearer ").strip())
        return (
            token is not None
            and token.generation == self._credential_generation
            and not self._revoked
            and token.expires_monotonic > time.monotonic()
        )

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.rate_window:
            self._window.popleft()
        over = len(self._window) >= self.rate_limit
        if not over or not self.enforce_rate_limit:
            self._window.append(now)
        remaining = max(0, self.rate_limit - len(self._window))
        headers = {"X-RateLimit-Limit": str(self.rate_limit),
                   "X-RateLimit-Remaining": str(remaining)}
        if over and self.enforce_rate_limit:
            if not self.retry_after_on_429:
                return {}, True
            wait = self.rate_window - (now - self._window[0])
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return headers, over and self.enforce_rate_limit

    def _harvest(self, resource: str, query: dict[str, list[str]], authorization: str | None
                 ) -> _Reply:
        if not self._authorised(authorization):
            return _json_reply(401, {"message": "Unauthorized"},
                               {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        rate_headers, throttled = self._rate_headers()
        if throttled:
            return _json_reply(429, {"message": "Too many requests"}, rate_headers)
        if resource not in self._tables:
            return _json_reply(404, {"message": f"unknown resource {resource}"}, rate_headers)
        try:
            rows, next_cursor = self._page(resource, query)
        except _BadRequest as exc:
            return _json_reply(exc.status, {"message": exc.message}, rate_headers)
        headers = dict(rate_headers)
        if next_cursor is not None:
            link = f"{self.base_url}/v3/{resource}?{urlencode({'cursor': next_cursor})}"
            headers["Link"] = f'<{link}>; rel="next"'
        return _json_reply(200, rows, headers)

    def _page(self, resource: str, query: dict[str, list[str]]
              ) -> tuple[list[Record], str | None]:
        if "cursor" in query:
            if len(query) > 1 or len(query["cursor"]) > 1:
                # "When cursor is passed it must be the only query parameter" (docs/pagination).
                raise _BadRequest("cursor must be the only query parameter",
                                  self.cursor_conflict_status)
            state = _decode_cursor(query["cursor"][0])
            if state.get("r") != resource:
                raise _BadRequest("cursor belongs to another resource")
            filters: dict[str, list[str]] = state["f"]
            per_page = int(state["n"])
            after = int(state["a"])
        else:
            filters = {k: v for k, v in query.items() if k != "per_page"}
            per_page = _per_page(query.get("per_page"))
            after = 0
        predicate, fields = _compile_filters(resource, filters)
        # job_posts: "Deleted posts are excluded by default; pass active=false to retrieve them."
        hide_deleted = resource == "job_posts" and "active" not in filters
        table = self._tables[resource]
        keys = self._candidate_keys(resource, filters)
        rows = [
            record
            for key in (sorted(table) if keys is None else sorted(k for k in keys if k in table))
            if key > after
            and predicate(record := table[key])
            and not (hide_deleted and not record["active"])
        ]
        page = rows[:per_page]
        next_cursor = None
        if len(rows) > per_page:
            next_cursor = _encode_cursor(
                {"r": resource, "f": filters, "n": per_page, "a": int(page[-1]["id"])}
            )
        return [_public(r, fields) for r in page], next_cursor


    # ------------------------------------------------------------------ internals: indexes

    def _candidate_keys(self, resource: str, filters: Mapping[str, list[str]]
                        ) -> Iterable[int] | None:
        """Ids that may match ``filters`` (a superset), from an index; None: scan them all."""
        allowed = {**_COMMON_FILTERS, **RESOURCE_FILTERS[resource]}
        for name, values in filters.items():
            if name not in allowed or len(values) != 1:
                continue
            record_field, kind = allowed[name]
            if kind == _IDS:
                try:
                    wanted = {int(v) for v in values[0].split(",") if v}
                except ValueError:
                    continue  # the predicate reports it
                if record_field == "id":
                    return wanted
                by_value: dict[Any, list[int]] = self._index(resource, record_field, _IDS)
                return [key for value in wanted for key in by_value.get(value, ())]
            if kind in (_DATE, _DAY):
                parts = values[0].split("|")
                if len(parts) == 2 and parts[0] in ("gte", "gt"):
                    try:
                        bound = _PARSE[kind](parts[1])
                    except ValueError:
                        continue
                    ordered: tuple[list[Any], list[int]] = self._index(
                        resource, record_field, kind
                    )
                    start = bisect.bisect_left(ordered[0], bound)
                    return ordered[1][start:]
        return None

    def _index(self, resource: str, record_field: str, kind: str) -> Any:
        cached = self._indexes.get((resource, record_field))
        if cached is not None and cached[0] == self._version:
            return cached[1]
        table = self._tables[resource]
        index: Any
        if kind == _IDS:
            index = {}
            for key, record in table.items():
                index.setdefault(record.get(record_field), []).append(key)
        else:
            pairs = sorted(
                (_PARSE[kind](str(record[record_field])), key)
                for key, record in table.items()
                if record.get(record_field) is not None
            )
            index = ([moment for moment, _ in pairs], [key for _, key in pairs])
        self._indexes[(resource, record_field)] = (self._version, index)
        return index


_PARSE: dict[str, Callable[[str], Any]] = {_DATE: parse_iso, _DAY: date.fromisoformat}


class _Table(dict[int, Record]):
    """A resource's rows by id; adding or removing one invalidates the fake's indexes."""

    def __init__(self, fake: FakeGreenhouse) -> None:
        super().__init__()
        self._fake = fake

    def __setitem__(self, key: int, value: Record) -> None:
        self._fake._version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: int) -> None:
        self._fake._version += 1
        super().__delitem__(key)


class _BadRequest(Exception):  # noqa: N818
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return _Reply(status, json.dumps(payload).encode("utf-8"), merged)


def _public(record: Record, fields: Sequence[str] | None = None) -> Record:
    data = {k: v for k, v in record.items() if not k.startswith("_")}
    if fields:
        data = {k: v for k, v in data.items() if k in fields or k == "id"}
    copied: Record = json.loads(json.dumps(data))  # a deep copy: callers cannot edit the store
    return copied


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization.removeprefix("Basic ").strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _per_page(values: list[str] | None) -> int:
    if not values:
        return DEFAULT_PER_PAGE
    try:
        per_page = int(values[0])
    except ValueError:
        raise _BadRequest("per_page must be an integer") from None
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise _BadRequest("per_page must be between 1 and 500")
    return per_page


def _encode_cursor(state: Mapping[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(state, dict) or not {"r", "f", "n", "a"} <= state.keys():
            raise ValueError("incomplete cursor")
    except (ValueError, binascii.Error):
        raise _BadRequest("invalid cursor") from None
    return dict(state)


def _compile_filters(resource: str, filters: Mapping[str, list[str]]
                     ) -> tuple[Callable[[Record], bool], list[str] | None]:
    allowed = {**_COMMON_FILTERS, **RESOURCE_FILTERS[resource]}
    checks: list[Callable[[Record], bool]] = []
    fields: list[str] | None = None
    for name, values in filters.items():
        if len(values) != 1:
            raise _BadRequest(f"{name} given more than once")
        value = values[0]
        if name == "fields":
            fields = [f for f in value.split(",") if f]
            continue
        bracket = _BRACKET_FILTER.match(name)
        if bracket:
            # The bracket form appears on one reference page (user_emails); accept it too.
            name, value = bracket.group(1), f"{bracket.group(2)}|{value}"
        if name not in allowed:
            raise _BadRequest(f"unknown parameter {name}")
        record_field, kind = allowed[name]
        checks.append(_check(record_field, kind, name, value))

    def predicate(record: Record) -> bool:
        return all(check(record) for check in checks)

    return predicate, fields


def _check(record_field: str, kind: str, name: str, value: str) -> Callable[[Record], bool]:
    if kind == _IDS:
        try:
            wanted = {int(v) for v in value.split(",") if v}
        except ValueError:
            raise _BadRequest(f"{name} must be a comma-separated list of integers") from None
        if len(wanted) > MAX_IDS_PER_FILTER:
            raise _BadRequest(f"{name} takes at most {MAX_IDS_PER_FILTER} ids")
        return lambda r: r.get(record_field) in wanted
    if kind == _BOOL:
        if value not in ("true", "false"):
            raise _BadRequest(f"{name} must be true or false")
        flag = value == "true"
        return lambda r: bool(r.get(record_field)) == flag
    if kind == _TEXT:
        return lambda r: r.get(record_field) == value
    if kind == _DAY:
        return _day_range(record_field, name, value)
    parts = value.split("|")
    if len(parts) % 2 or not parts[0]:
        raise _BadRequest(f"{name} must look like gte|2024-01-01T00:00:00Z")
    bounds: list[tuple[Callable[[datetime, datetime], bool], datetime]] = []
    for operator, moment in zip(parts[::2], parts[1::2], strict=True):
        if operator not in _OPERATORS:
            raise _BadRequest(f"{name}: unknown operator {operator}")
        try:
            bounds.append((_OPERATORS[operator], parse_iso(moment)))
        except ValueError:
            raise _BadRequest(f"{name}: {moment!r} is not an ISO 8601 date-time") from None

    def in_range(record: Record) -> bool:
        raw = record.get(record_field)
        if raw is None:
            return False
        moment_value = parse_iso(str(raw))
        return all(compare(moment_value, bound) for compare, bound in bounds)

    return in_range


def _day_range(record_field: str, name: str, value: str) -> Callable[[Record], bool]:
    """A date-only filter (``all_day_end_on=gte|2026-01-05``) on a date-only field."""
    parts = value.split("|")
    if len(parts) % 2 or not parts[0]:
        raise _BadRequest(f"{name} must look like gte|2024-01-01")
    bounds: list[tuple[Callable[[Any, Any], bool], date]] = []
    for operator, day in zip(parts[::2], parts[1::2], strict=True):
        if operator not in _OPERATORS:
            raise _BadRequest(f"{name}: unknown operator {operator}")
        try:
            bounds.append((_OPERATORS[operator], date.fromisoformat(day)))
        except ValueError:
            raise _BadRequest(f"{name}: {day!r} is not an ISO 8601 date") from None

    def in_range(record: Record) -> bool:
        raw = record.get(record_field)
        if raw is None:
            return False
        day_value = date.fromisoformat(str(raw))
        return all(compare(day_value, bound) for compare, bound in bounds)

    return in_range


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_STAGES",
    "FakeGreenhouse",
    "FakeGreenhouseError",
    "Fault",
    "ReceivedRequest",
    "SeededOrganisation",
    "WebhookDelivery",
    "WebhookRecorder",
    "greenhouse_json",
    "seed_organisation",
    "sign",
]
