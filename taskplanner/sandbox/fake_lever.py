"""A loopback fake Lever: the Lever Data API v1 read endpoints, its rate limit and signed webhooks.

Tests and ``taskplanner sandbox`` drive an editable organisation through the `FakeATS` methods;
a Lever connector talks to it over 127.0.0.1 exactly as it would to ``https://api.lever.co/v1``.
It was written from Lever's documentation alone (not from a connector), and is strict where the
documentation is, so that a connector's wrong assumptions fail here rather than in production.

Sources: https://hire.lever.co/developer/documentation, sections (as named there)
- "Authentication > Basic Auth": the API key is the username, the password is left blank.
- "Rate Limits": token bucket per API key, steady state 10 requests/second, bursts up to 20.
- "Responses and Errors": status codes, and the error body ``{"code": ..., "message": ...}``
  (example ``{"code": "ResourceNotFound", "message": "stages <id> was not found"}``).
- "Pagination" and "Lists": ``limit`` 1..100 (default 100), an opaque ``offset`` token that
  must come from a previous response, list bodies ``{"data": [...], "hasNext": ..., "next": ...}``.
- "Customizing the Response": ``include`` (only the named fields) and ``expand`` (ids become
  objects; expand wins over include), both as repeated parameters.
- "Confidential Data": confidential postings/opportunities are left out unless asked for.
- Reference pages: Opportunities (attributes, "List all opportunities" filters,
  "List deleted opportunities"), Applications, Contacts, Postings ("List all postings" filters
  and the rule that ``updated_at_*`` combine with ``confidentiality`` only), Stages,
  Archive Reasons, Users (access roles, ``includeDeactivated``), Interviews, Panels, Feedback,
  Feedback Templates, "Webhooks via the API > List Webhooks".
- "Webhooks": ``POST`` with ``User-Agent: Lever-Webhooks``, body
  ``{"triggeredAt": <ms>, "event": ..., "data": {...}, "signature": ..., "token": ...}`` where
  ``token`` is a random 48-character string and ``signature`` is the hex HMAC-SHA256, keyed with
  the webhook's signature token, of ``token + str(triggeredAt)`` ("Request signing"); any non-2xx
  answer counts as not received and Lever "will continue trying to send the webhook five times,
  waiting longer and longer in between tries" ("Responding to a webhook").

How our vocabulary (`FakeATS`) maps onto Lever:
- job -> posting. ``open`` is an unlisted (``internal``) posting, `publish_job` makes it
  ``published`` (job sites), `unpublish_job` makes it ``internal`` again, `close_job` ``closed``.
  The recruiter is the posting ``owner``; Lever has no job coordinator, so
  `set_job_coordinator` and ``create_job(coordinator_id=...)`` raise `NotSupportedByProvider`.
- stages are account-wide (``GET /stages``): every posting's pipeline is the whole account list.
  ``create_job(stages=...)`` makes sure the account has those stages (missing ones are inserted
  in the given order, before the next given stage the account already has); `add_stage` adds
  an account-wide stage (visible in every posting; by default before the last stage) and
  `stage_ids(job)` is the account pipeline in order. Lever has no API to remove a stage, so
  `remove_stage` raises `NotSupportedByProvider`.
- interview kind -> feedback template whose ``stage`` is the stage (account-wide as well).
- candidate -> contact; application -> opportunity (one opportunity has at most one
  application, whose id is in ``applications``). ``coordinator_id`` of an application is the
  opportunity ``owner`` (default: the posting owner).
- reject/unreject/hire -> the opportunity's ``archived`` state with an archive reason
  (``type`` non-hired / hired). Delete -> the opportunity moves to ``/opportunities/deleted``.
- interview -> a panel with one interview; interviewers have no RSVP in Lever
  (`set_interviewer_response` raises `NotSupportedByProvider`); `cancel_interview` sets
  ``canceledAt``, `delete_interview` removes it. Scorecard -> a feedback form of the interview.

UNCONFIRMED (the documentation is unclear or silent; the fake's choice is stated):
1. Webhook ``data`` fields: only ``candidateStageChange`` has an example (``opportunityId``,
   ``candidateId``, ``contactId``, ``toStageId``, ``fromStageId``); the rest are hidden behind
   "Show child fields". Here every event carries ``opportunityId``, ``candidateId`` (the
   deprecated alias, sent equal to the opportunity id; NB the documented candidateStageChange
   example, shared/fixtures/providers/lever/webhook_candidate_stage_change.json, has a
   ``candidateId`` unlike both its ``opportunityId`` and ``contactId``, so receivers must read
   ``opportunityId``) and ``contactId``, plus ``applicationId`` and
   ``postingId`` (applicationCreated), ``fromArchived``/``toArchived`` (candidateArchiveChange)
   and ``interviewId``/``panelId`` (interview events). ``contactCreated`` carries ``contactId``.
2. The webhook field table lists an ``id`` ("Event UID") that neither example carries: not sent.
3. A retry carries the same ``token``, ``triggeredAt`` and ``signature`` (byte-for-byte
   redelivery), so a receiver's staleness window must outlast Lever's retry schedule.
4. Marking a candidate hired archives the opportunity: both ``candidateArchiveChange`` and
   ``candidateHired`` are sent. Cancelling an interview sends ``interviewUpdated``.
5. Error ``code`` values other than ``ResourceNotFound``; 429 carries no ``Retry-After`` (none is
   documented; the docs say "retrying using exponential backoff").
6. The opportunity's archived state: the attribute table says ``archived`` (an object; shape
   ``{"archivedAt", "reason"}`` as for applications) while the examples show older top-level
   ``archivedAt``/``archiveReason``; only ``archived`` is served.
7. Undocumented answers, made strict here (400): unknown query parameters, a repeated
   single-valued parameter, comma-joined values (the docs repeat parameters), an ``offset`` with
   other filters than the request that returned it, ``group`` on postings (not modelled).
8. Postings: ``followers`` only appear when included or expanded (the list examples have none);
   every response is wrapped in ``data`` (a few examples show bare objects).
9. Interviews, panels and feedback do not move the opportunity's ``updatedAt`` (they are not in
   the documented list of fields that do); users, stages and feedback forms of the past are
   found by listing again.
10. Lever documents no calendar event id on interviews: ``external_event_id`` is kept by the
    fake (`interview_event_id`) and not served.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import queue
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from taskplanner.sandbox.fake_ats import (
    CANDIDATE_COORDINATOR,
    DEFAULT_STAGES,
    HARD_DELETES,
    JOB_PUBLISHING,
    ConnectorSettings,
    FakeATSError,
    NotSupportedByProvider,
    PersonRole,
    Response,
)

Record = dict[str, Any]
Clock = Callable[[], datetime]
Query = dict[str, list[str]]

DEFAULT_API_KEY = "fake-lever-api-key"
API_PREFIX = "/v1"
MAX_LIMIT = 100  # "The limit can range between 1 and 100 items."
DEFAULT_LIMIT = 100  # "By default, the limit is set to 100 results."
STEADY_RATE = 10.0  # "a steady state number of 10 requests/second per API key"
BURST = 20  # "we allow bursts of requests up to 20 requests/second"
MAX_OFFSET_TOKENS = 10_000  # tokens the fake remembers; older ones answer 400

ACCESS_ROLES = ("super admin", "admin", "team member", "limited team member", "interviewer")
# Our [[people]] roles onto Lever's access roles (Users > accessRole). The account owner needs
# "super admin" to configure webhooks ("How to set up webhooks").
ROLE_TO_ACCESS: dict[str, str] = {
    "admin": "super admin",
    "coordinator": "team member",
    "recruiter": "team member",
    "hiring_manager": "limited team member",
    "interviewer": "interviewer",
}
POSTING_STATES = ("published", "internal", "closed", "draft", "pending", "rejected")
ORIGINS = ("agency", "applied", "internal", "referred", "sourced", "university")
CONFIDENTIALITY = ("confidential", "non-confidential", "all")

# "Webhooks via the API": the event names a webhook can be configured for.
WEBHOOK_EVENTS = (
    "applicationCreated",
    "candidateHired",
    "candidateStageChange",
    "candidateArchiveChange",
    "candidateDeleted",
    "interviewCreated",
    "interviewUpdated",
    "interviewDeleted",
    "contactCreated",
    "contactUpdated",
)
# What the fake sends unless told otherwise: the candidate and interview events.
DEFAULT_WEBHOOK_EVENTS = frozenset(WEBHOOK_EVENTS[:8])
WEBHOOK_USER_AGENT = "Lever-Webhooks"

# The account's stages in the "List all stages" example; pass as ``initial_stages`` for an
# account that looks like a fresh Lever one. By default the fake starts with no stages, so a
# job created with the default plan has exactly those five stages.
LEVER_EXAMPLE_STAGES = (
    "New applicant",
    "New lead",
    "Recruiter Screen",
    "Phone Interview",
    "On-Site Interview",
    "Background Check",
    "Offer",
)
# "List all archive reasons" example: (text, status, type).
ARCHIVE_REASONS: tuple[tuple[str, str, str], ...] = (
    ("Underqualified", "active", "non-hired"),
    ("Culture Fit", "active", "non-hired"),
    ("Timing", "active", "non-hired"),
    ("Withdrew", "active", "non-hired"),
    ("Offer declined", "active", "non-hired"),
    ("Hired", "active", "hired"),
    ("Position filled", "inactive", "non-hired"),
)
SCORE_OPTIONS = ("4 - Strong Hire", "3 - Hire", "2 - No Hire", "1 - Strong No Hire")

# Public field names, in the order of the documentation's examples. ``include`` may name these.
USER_FIELDS = ("id", "name", "username", "email", "createdAt", "deactivatedAt",
               "externalDirectoryId", "accessRole", "photo", "linkedContactIds", "jobTitle",
               "managerId")
STAGE_FIELDS = ("id", "text")
ARCHIVE_REASON_FIELDS = ("id", "text", "status", "type")
CONTACT_FIELDS = ("id", "name", "headline", "isAnonymized", "location", "emails", "phones")
POSTING_FIELDS = ("id", "text", "createdAt", "updatedAt", "user", "owner", "hiringManager",
                  "confidentiality", "categories", "content", "country", "tags", "state",
                  "distributionChannels", "reqCode", "requisitionCodes", "salaryDescription",
                  "salaryDescriptionHtml", "salaryRange", "urls", "workplaceType", "followers")
OPPORTUNITY_FIELDS = ("id", "name", "headline", "contact", "emails", "phones", "confidentiality",
                      "location", "links", "createdAt", "updatedAt", "lastInteractionAt",
                      "lastAdvancedAt", "snoozedUntil", "archived", "stage", "stageChanges",
                      "owner", "tags", "sources", "origin", "sourcedBy", "applications",
                      "followers", "urls", "dataProtection", "isAnonymized",
                      "opportunityLocation")
APPLICATION_FIELDS = ("id", "opportunityId", "candidateId", "createdAt", "type", "posting",
                      "postingOwner", "postingHiringManager", "user", "name", "email", "phone",
                      "company", "links", "comments", "customQuestions", "archived",
                      "requisitionForHire")
INTERVIEW_FIELDS = ("id", "panel", "subject", "note", "interviewers", "timezone", "createdAt",
                    "date", "duration", "location", "feedbackTemplate", "feedbackForms",
                    "feedbackReminder", "user", "stage", "canceledAt", "postings")
PANEL_FIELDS = ("id", "applications", "canceledAt", "createdAt", "end", "externallyManaged",
                "externalUrl", "interviews", "note", "stage", "start", "timezone", "user",
                "feedbackReminder")
# The panel example embeds this subset of each interview.
PANEL_INTERVIEW_FIELDS = ("id", "date", "duration", "feedbackReminder", "feedbackTemplate",
                          "interviewers", "location", "note", "subject")
FEEDBACK_FIELDS = ("id", "type", "text", "instructions", "fields", "baseTemplateId", "interview",
                   "panel", "user", "createdAt", "updatedAt", "completedAt", "deletedAt")
TEMPLATE_FIELDS = ("id", "text", "group", "createdAt", "updatedAt", "instructions", "stage",
                   "fields")
WEBHOOK_FIELDS = ("id", "url", "event", "createdAt", "updatedAt", "configuration")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")


def ms(moment: datetime) -> int:
    """Lever's ``Timestamp``: milliseconds since the Unix epoch."""
    return int(moment.astimezone(UTC).timestamp() * 1000)


def sign(token: str, triggered_at: int, signature_token: str) -> str:
    """The body's ``signature``: hex HMAC-SHA256 of ``token + triggeredAt`` ("Request signing")."""
    message = f"{token}{triggered_at}".encode()
    return hmac.new(signature_token.encode("utf-8"), message, hashlib.sha256).hexdigest()


class FakeLeverError(FakeATSError):
    """A driver asked the fake Lever organisation for something that does not exist."""


@dataclass
class Fault:
    """One failure applied to the next matching API request.

    kind: ``status`` (answer ``status`` with Lever's error body, plus ``Retry-After`` if given),
    ``slow`` (sleep ``delay`` seconds, then answer normally), ``truncate`` (a 200 whose JSON is
    cut in half), ``disconnect`` (headers promise the whole body, the connection closes early).
    """

    kind: Literal["status", "slow", "truncate", "disconnect"]
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    path: str | None = None  # requests whose path starts with this (with or without /v1)

    def matches(self, path: str) -> bool:
        if self.path is None:
            return path.startswith(API_PREFIX + "/")
        prefix = self.path if self.path.startswith(API_PREFIX) else API_PREFIX + self.path
        return path.startswith(prefix)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    route: str | None  # the documented route, e.g. "/opportunities/:opportunity/interviews"
    query: Query
    status: int
    at: float  # the fake's monotonic clock


@dataclass
class WebhookDelivery:
    """One webhook POST the fake made (or tried to make): the exact bytes Lever would send."""

    event: str
    token: str
    triggered_at: int
    body: bytes
    headers: dict[str, str]
    attempt: int = 1
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def payload(self) -> Record:
        decoded: Record = json.loads(self.body)
        return decoded


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None


@dataclass(frozen=True)
class _Offset:
    path: str
    params: tuple[tuple[str, tuple[str, ...]], ...]
    seen: frozenset[str]


class _ApiError(Exception):  # noqa: N818 - an HTTP answer, not a bug
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, "BadRequest", message)


def _not_found(kind: str, record_id: str) -> _ApiError:
    # The documented example: "stages a80bbbe0-... was not found".
    return _ApiError(404, "ResourceNotFound", f"{kind} {record_id} was not found")


_STATUS_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "ResourceNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class _Params:
    """One request's query parameters, checked against what the route documents."""

    def __init__(self, raw: Query, allowed: Iterable[str]) -> None:
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            # Undocumented: Lever's answer to unknown parameters. Refused so that a connector
            # sending one (a typo, a Greenhouse habit) fails here instead of being ignored.
            raise _bad_request(f"unknown query parameter(s): {', '.join(unknown)}")
        self.raw = raw

    def one(self, name: str) -> str | None:
        values = self.raw.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise _bad_request(f"{name} may be given only once")
        return values[0]

    def many(self, *names: str, text: bool = False) -> list[str]:
        """Every value of a repeatable parameter. Ids, enums and field names refuse commas
        (the docs repeat the parameter instead); ``text`` values ("New York, NY") may hold one."""
        values = [v for name in names for v in self.raw.get(name, [])]
        for value in values:
            if "," in value and not text:
                raise _bad_request(
                    f"{names[0]}: one value per parameter; repeat the parameter for more "
                    f"({names[0]}=a&{names[0]}=b), not {value!r}"
                )
            if not value:
                raise _bad_request(f"{names[0]} is empty")
        return values

    def uuids(self, name: str) -> set[str] | None:
        values = self.many(name)
        for value in values:
            if not _UUID.match(value):
                raise _bad_request(f"{name}: {value!r} is not a UID")
        return set(values) if values else None

    def timestamp(self, name: str) -> int | None:
        value = self.one(name)
        if value is None:
            return None
        if not value.isdigit():
            # "If either value is not a proper timestamp a 400 error will be returned" (Files).
            raise _bad_request(f"{name} must be a timestamp in milliseconds, not {value!r}")
        return int(value)

    def flag(self, name: str) -> bool | None:
        value = self.one(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise _bad_request(f"{name} must be true or false")
        return value == "true"

    def choice(self, name: str, options: Sequence[str]) -> str | None:
        value = self.one(name)
        if value is not None and value not in options:
            raise _bad_request(f"{name} must be one of {', '.join(options)}")
        return value

    def choices(self, options: Sequence[str], *names: str) -> set[str] | None:
        values = self.many(*names)
        for value in values:
            if value not in options:
                raise _bad_request(f"{names[0]}: {value!r} is not one of {', '.join(options)}")
        return set(values) if values else None

    def limit(self) -> int:
        value = self.one("limit")
        if value is None:
            return DEFAULT_LIMIT
        if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
            raise _bad_request(f"limit must be between 1 and {MAX_LIMIT}")
        return int(value)

    def signature(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The request's filters: what an offset token must be used with again."""
        return tuple(sorted((k, tuple(v)) for k, v in self.raw.items()
                            if k not in ("limit", "offset")))


@dataclass(frozen=True)
class _Shape:
    """How a resource is rendered: its fields, the optional ones, what ``expand`` can do."""

    kind: str  # the resource's name in error messages ("opportunities", "stages", ...)
    fields: tuple[str, ...]
    expanders: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLever


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet; the fake keeps its own request log."""

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        reply = self.server.fake._handle(method, self.path, self.headers.get("Authorization"))
        fault = reply.fault
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
            self.close_connection = True


class FakeLever:
    """A real HTTP server on 127.0.0.1 that behaves like Lever, with an editable organisation.

    Use as a context manager (or ``start()``/``stop()``); ``base_url`` is the API root the
    connector's ``base_url`` points at (``http://127.0.0.1:<port>/v1``). Mutation methods move
    the records' Lever timestamps and, when a webhook target is configured, POST the webhook
    Lever documents for the change (synchronously unless ``async_webhooks=True``; then
    ``flush_webhooks()`` waits). The documented rate limit is enforced unless
    ``enforce_rate_limit=False``; `max_requests_per_second` shows what a client actually sent.
    """

    provider = "lever"
    capabilities = frozenset({JOB_PUBLISHING, CANDIDATE_COORDINATOR, HARD_DELETES})

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhooks_enabled: bool = True,
        webhook_events: Iterable[str] = DEFAULT_WEBHOOK_EVENTS,
        async_webhooks: bool = False,
        webhook_retry_delays: Sequence[float] = (),
        enforce_rate_limit: bool = True,
        rate_limit: float = STEADY_RATE,
        rate_burst: int = BURST,
        confidential_access: bool = True,
        initial_stages: Sequence[str] = (),
        account_url: str = "https://hire.lever.co",
        jobs_url: str = "https://jobs.lever.co/acme",
        seed: int | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhooks_enabled = webhooks_enabled
        self.webhook_events = set(webhook_events)
        unknown = self.webhook_events - set(WEBHOOK_EVENTS)
        if unknown:
            raise ValueError(f"unknown Lever webhook events: {sorted(unknown)}")
        # Per-event signature tokens (Lever makes one per webhook); unset events use the secret.
        self.event_signature_tokens: dict[str, str] = {}
        self.async_webhooks = async_webhooks
        # Automatic redelivery of failed webhooks (async mode only); Lever retries five times.
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self.enforce_rate_limit = enforce_rate_limit
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.confidential_access = confidential_access
        self.account_url = account_url.rstrip("/")
        self.jobs_url = jobs_url.rstrip("/")
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._rng = random.Random(seed)  # noqa: S311 - ids of test data, not secrets

        self._lock = threading.RLock()
        self._last_stamp = 0
        self._revoked = False
        self._faults: deque[Fault] = deque()
        self._bucket = float(rate_burst)
        self._bucket_at = monotonic()
        self._offsets: OrderedDict[str, _Offset] = OrderedDict()

        self._users: dict[str, Record] = {}
        self._stages: list[Record] = []  # the account pipeline, in order
        self._archive_reasons: dict[str, Record] = {}
        self._templates: dict[str, Record] = {}
        self._postings: dict[str, Record] = {}
        self._contacts: dict[str, Record] = {}
        self._opportunities: dict[str, Record] = {}  # deleted ones stay, marked "_deletedAt"
        self._applications: dict[str, Record] = {}
        self._panels: dict[str, Record] = {}
        self._interviews: dict[str, Record] = {}
        self._feedback: dict[str, Record] = {}
        self._webhook_ids: dict[str, str] = {}
        self._webhook_times: dict[str, int] = {}

        self.requests: Counter[str] = Counter()  # path -> count (every method and outcome)
        self.statuses: Counter[int] = Counter()
        self.request_log: list[RequestRecord] = []
        self.request_times: list[float] = []  # monotonic arrival time of every request
        self.webhook_deliveries: list[WebhookDelivery] = []

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhook_queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._webhook_client: httpx.Client | None = None
        self._retry_timers: list[threading.Timer] = []

        for text, status, kind in ARCHIVE_REASONS:
            reason_id = self._new_id()
            self._archive_reasons[reason_id] = {
                "id": reason_id, "text": text, "status": status, "type": kind,
            }
        for name in initial_stages:
            self._insert_stage(name, len(self._stages))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeLever:
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-lever", daemon=True
        )
        self._thread.start()
        if self.async_webhooks:
            self._webhook_thread = threading.Thread(
                target=self._webhook_worker, name="fake-lever-webhooks", daemon=True
            )
            self._webhook_thread.start()
        return self

    def stop(self) -> None:
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
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

    def __enter__(self) -> FakeLever:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Lever is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API root, as ``https://api.lever.co/v1`` is for the real Lever."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def connector_settings(self, webhook_secret: str) -> ConnectorSettings:
        """A ``type = "lever"`` connector table pointing at this fake, with the API key (and
        ``webhook_secret``) in the environment its ``*_env`` keys name."""
        table: dict[str, Any] = {
            "type": self.provider,
            "base_url": self.base_url,
            "api_key_env": "FAKE_LEVER_API_KEY",
            "webhook_secret_env": "FAKE_LEVER_WEBHOOK_SECRET",
            "app_url": self.account_url,
        }
        if self.rate_limit != STEADY_RATE:
            # A fake that allows more than Lever does (the test suites') says so, so the
            # connector need not keep to Lever's 10 requests per second against it.
            table["requests_per_second"] = self.rate_limit
        return ConnectorSettings(
            table=table,
            environ={
                "FAKE_LEVER_API_KEY": self.api_key,
                "FAKE_LEVER_WEBHOOK_SECRET": webhook_secret,
            },
        )

    # ------------------------------------------------------------------ credentials and faults

    def revoke_credentials(self) -> None:
        """The API key is deleted in Lever's settings: every request answers 401."""
        with self._lock:
            self._revoked = True

    def restore_credentials(self) -> None:
        with self._lock:
            self._revoked = False

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
        self, times: int = 1, *, retry_after: float | str | None = None, path: str | None = None
    ) -> None:
        """Lever's throttling answer: 429 with the error body (no ``Retry-After`` is documented;
        pass ``retry_after`` to add one anyway)."""
        self.fail_next(429, times=times, retry_after=retry_after, path=path)

    def slow_next(self, delay: float, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("slow", delay=delay, path=path) for _ in range(times)))

    def truncate_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("truncate", path=path) for _ in range(times)))

    def disconnect_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("disconnect", path=path) for _ in range(times)))

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.request_log.clear()
            self.request_times.clear()

    def requests_to(self, route: str) -> int:
        """Requests that matched a documented route, e.g. ``"/opportunities/:opportunity"``."""
        with self._lock:
            return sum(1 for r in self.request_log if r.route == route)

    def max_requests_per_second(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds (all routes, all
        answers): what a test compares with Lever's documented 10 per second."""
        with self._lock:
            times = sorted(self.request_times)
        best = start = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ------------------------------------------------------------------ webhooks

    def configure_webhook(
        self, url: str, secret: str, *, enabled: bool = True, events: Iterable[str] | None = None
    ) -> None:
        """Send the enabled events to ``url``, signed with ``secret`` (the signature token)."""
        with self._lock:
            self.webhook_url = url
            self.webhook_secret = secret
            self.webhooks_enabled = enabled
            if events is not None:
                chosen = set(events)
                if chosen - set(WEBHOOK_EVENTS):
                    raise ValueError(f"unknown Lever webhook events: {sorted(chosen)}")
                self.webhook_events = chosen

    def signature_token_for(self, event: str) -> str | None:
        return self.event_signature_tokens.get(event, self.webhook_secret)

    def flush_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook has been POSTed (a no-op when sending synchronously)."""
        deadline = time.monotonic() + timeout
        while self.async_webhooks and time.monotonic() < deadline:
            if self._webhook_queue.unfinished_tasks == 0:
                return
            time.sleep(0.01)

    def redeliver(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Send a past delivery again, byte for byte (Lever's retry, or "Rerun" in its UI)."""
        again = WebhookDelivery(delivery.event, delivery.token, delivery.triggered_at,
                                delivery.body, dict(delivery.headers), delivery.attempt + 1)
        self._post_webhook(again)
        return again

    def send_test_webhook(self) -> WebhookDelivery | None:
        """The settings page's "test" POST: ``candidateHired`` with empty ``data``."""
        return self.send_webhook("candidateHired", {}, force=True)

    def send_webhook(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        triggered_at: int | None = None,
        token: str | None = None,
        force: bool = False,
    ) -> WebhookDelivery | None:
        """Build, sign and send one delivery. ``triggered_at`` (ms) makes a stale one;
        ``force`` sends an event even when it is not among ``webhook_events``."""
        if event not in WEBHOOK_EVENTS:
            raise ValueError(f"{event!r} is not a Lever webhook event")
        signature_token = self.signature_token_for(event)
        if not (self.webhooks_enabled and self.webhook_url and signature_token):
            return None
        if event not in self.webhook_events and not force:
            return None
        token = token or secrets.token_hex(24)  # "Randomly generated string with length 48"
        moment = ms(self._clock()) if triggered_at is None else triggered_at
        body = json.dumps(
            {"triggeredAt": moment, "event": event, "data": dict(data),
             "signature": sign(token, moment, signature_token), "token": token},
            separators=(",", ":"),
        ).encode("utf-8")
        headers = {"User-Agent": WEBHOOK_USER_AGENT, "Content-Type": "application/json"}
        delivery = WebhookDelivery(event, token, moment, body, headers)
        if self.async_webhooks and self._webhook_thread is not None:
            self._webhook_queue.put(delivery)
        else:
            self._post_webhook(delivery)
        return delivery

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
                if not item.delivered and item.attempt <= len(self.webhook_retry_delays):
                    self._schedule_retry(item)
            finally:
                self._webhook_queue.task_done()

    def _schedule_retry(self, delivery: WebhookDelivery) -> None:
        again = WebhookDelivery(delivery.event, delivery.token, delivery.triggered_at,
                                delivery.body, dict(delivery.headers), delivery.attempt + 1)
        timer = threading.Timer(self.webhook_retry_delays[delivery.attempt - 1],
                                self._webhook_queue.put, args=(again,))
        timer.daemon = True
        self._retry_timers.append(timer)
        timer.start()

    # ------------------------------------------------------------------ organisation: reads

    def record(self, resource: str, record_id: str) -> Record:
        """A copy of one stored record as the API serves it (``resource`` as in the URL)."""
        with self._lock:
            table = self._table(resource)
            if record_id not in table:
                raise FakeLeverError(f"no {resource} record {record_id}")
            return _public(table[record_id])

    def user_id(self, email: str) -> str:
        with self._lock:
            for user in self._users.values():
                if user["email"].lower() == email.lower():
                    return str(user["id"])
        raise FakeLeverError(f"no user {email!r}")

    def stage_id(self, job_id: str, name: str) -> str:
        with self._lock:
            self._posting(job_id)
            for stage in self._stages:
                if stage["text"] == name:
                    return str(stage["id"])
        raise FakeLeverError(f"the account has no stage named {name!r}")

    def stage_ids(self, job_id: str) -> list[str]:
        """The account pipeline: in Lever every posting has all of it."""
        with self._lock:
            self._posting(job_id)
            return [str(s["id"]) for s in self._stages]

    def interview_kind_id(self, job_id: str, stage_name: str, name: str | None = None) -> str:
        """The feedback template of a stage (the first one unless ``name`` is given)."""
        stage = self.stage_id(job_id, stage_name)
        with self._lock:
            for template in self._templates.values():
                if (template["stage"] or {}).get("id") == stage and name in (None,
                                                                           template["text"]):
                    return str(template["id"])
        raise FakeLeverError(f"stage {stage_name!r} has no feedback template {name or ''}")

    def archive_reason_id(self, text: str) -> str:
        with self._lock:
            for reason in self._archive_reasons.values():
                if reason["text"] == text:
                    return str(reason["id"])
        raise FakeLeverError(f"no archive reason {text!r}")

    def application_id_of(self, opportunity_id: str) -> str:
        """The id of the (single) application on an opportunity."""
        with self._lock:
            return str(self._opportunity(opportunity_id)["applications"][0])

    def panel_id_of(self, interview_id: str) -> str:
        with self._lock:
            return str(self._interview(interview_id)["panel"])

    def interview_event_id(self, interview_id: str) -> str | None:
        """The calendar event id the driver gave; Lever's API has no field for it."""
        with self._lock:
            value = self._interview(interview_id)["_external_event_id"]
            return None if value is None else str(value)

    # ------------------------------------------------------------------ organisation: people

    def add_user(
        self,
        email: str,
        first_name: str,
        last_name: str,
        *,
        role: PersonRole | None = None,
        access_role: str | None = None,
        job_title: str | None = None,
        external_directory_id: str | None = None,
        manager_id: str | None = None,
    ) -> str:
        """A Lever user; ``access_role`` (a Lever value) wins over our ``role``."""
        chosen = access_role or ROLE_TO_ACCESS.get(role or "interviewer", "interviewer")
        if chosen not in ACCESS_ROLES:
            raise FakeLeverError(f"unknown access role {chosen!r}")
        with self._lock:
            if any(u["email"].lower() == email.lower() for u in self._users.values()):
                raise FakeLeverError(f"a user with email {email!r} exists")
            user_id = self._new_id()
            self._users[user_id] = {
                "id": user_id,
                "name": f"{first_name} {last_name}",
                "username": email.split("@", 1)[0],
                "email": email,
                "createdAt": self._stamp(),
                "deactivatedAt": None,
                "externalDirectoryId": external_directory_id,
                "accessRole": chosen,
                "photo": None,
                "linkedContactIds": None,
                "jobTitle": job_title,
                "managerId": manager_id,
            }
        return user_id

    def deactivate_user(self, user_id: str) -> None:
        """No webhook; ``GET /users`` leaves the user out unless ``includeDeactivated=true``."""
        with self._lock:
            self._user(user_id)["deactivatedAt"] = self._stamp()

    def reactivate_user(self, user_id: str) -> None:
        with self._lock:
            self._user(user_id)["deactivatedAt"] = None

    def set_access_role(self, user_id: str, access_role: str) -> None:
        if access_role not in ACCESS_ROLES:
            raise FakeLeverError(f"unknown access role {access_role!r}")
        with self._lock:
            self._user(user_id)["accessRole"] = access_role

    # ------------------------------------------------------------------ organisation: postings

    def create_job(
        self,
        name: str,
        *,
        stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
        status: Literal["open", "draft", "closed"] = "open",
        recruiter_id: str | None = None,
        coordinator_id: str | None = None,
        hiring_manager_id: str | None = None,
        created_by_id: str | None = None,
        confidential: bool = False,
        team: str | None = "Engineering",
        department: str | None = None,
        location: str = "Berlin",
        commitment: str = "Full-time",
        tags: Sequence[str] = (),
    ) -> str:
        """A posting (``internal`` when open). Lever sends no webhook for postings: poll them.

        ``stages`` are made sure of account-wide (see the module docstring); the recruiter is
        the posting owner.
        """
        if coordinator_id is not None:
            raise NotSupportedByProvider(
                "Lever postings name an owner and a hiring manager, not a coordinator"
            )
        state = {"open": "internal", "draft": "draft", "closed": "closed"}[status]
        with self._lock:
            for user in (recruiter_id, hiring_manager_id, created_by_id):
                if user is not None:
                    self._user(user)
            self._ensure_stages(stages)
            now = self._stamp()
            posting_id = self._new_id()
            self._postings[posting_id] = {
                "id": posting_id,
                "text": name,
                "createdAt": now,
                "updatedAt": now,
                "user": created_by_id or recruiter_id,
                "owner": recruiter_id,
                "hiringManager": hiring_manager_id,
                "confidentiality": "confidential" if confidential else "non-confidential",
                "categories": {
                    "team": team,
                    "department": department,
                    "location": location,
                    "allLocations": [location],
                    "commitment": commitment,
                    "level": None,
                },
                "content": {
                    "description": f"Join us as {name}.",
                    "descriptionHtml": f"<div>Join us as {name}.</div>",
                    "lists": [],
                    "closing": "",
                    "closingHtml": "",
                },
                "country": None,
                "tags": list(tags),
                "state": state,
                # "If none is provided, distributionChannels defaults to public and internal."
                "distributionChannels": ["public", "internal"],
                "reqCode": None,
                "requisitionCodes": [],
                "salaryDescription": None,
                "salaryDescriptionHtml": None,
                "salaryRange": None,
                "urls": {
                    "list": self.jobs_url,
                    "show": f"{self.jobs_url}/{posting_id}",
                    "apply": f"{self.jobs_url}/{posting_id}/apply",
                },
                "workplaceType": "unspecified",
                "followers": [u for u in dict.fromkeys((recruiter_id, hiring_manager_id)) if u],
            }
        return posting_id

    def publish_job(self, job_id: str, *, channels: Sequence[str] = ("public", "internal")
                    ) -> str:
        """The posting becomes ``published`` on the given job sites; returns the posting id."""
        if not channels or set(channels) - {"public", "internal"}:
            raise FakeLeverError("channels must be public and/or internal")
        with self._lock:
            self._touch(self._posting(job_id), state="published",
                        distributionChannels=list(channels))
        return job_id

    def unpublish_job(self, job_id: str) -> None:
        """Back to ``internal`` ("unlisted"): open for candidates, off the job sites."""
        self.set_posting_state(job_id, "internal")

    def close_job(self, job_id: str) -> None:
        self.set_posting_state(job_id, "closed")

    def set_posting_state(self, job_id: str, state: str) -> None:
        if state not in POSTING_STATES:
            raise FakeLeverError(f"unknown posting state {state!r}")
        with self._lock:
            self._touch(self._posting(job_id), state=state)

    def rename_job(self, job_id: str, name: str) -> None:
        with self._lock:
            self._touch(self._posting(job_id), text=name)

    def set_job_coordinator(self, job_id: str, user_id: str) -> None:
        raise NotSupportedByProvider(
            "Lever postings have no coordinator (only owner, hiringManager and followers)"
        )

    def set_posting_owner(self, job_id: str, user_id: str) -> None:
        with self._lock:
            self._user(user_id)
            posting = self._posting(job_id)
            followers = list(dict.fromkeys([*posting["followers"], user_id]))
            self._touch(posting, owner=user_id, followers=followers)

    def set_hiring_manager(self, job_id: str, user_id: str) -> None:
        with self._lock:
            self._user(user_id)
            self._touch(self._posting(job_id), hiringManager=user_id)

    # ------------------------------------------------------------------ organisation: stages

    def add_stage(self, job_id: str, name: str, interviews: Sequence[str] = (), *,
                  position: int | None = None) -> str:
        """A new account-wide stage (every posting gets it), by default before the last stage.

        Lever sends no webhook for stages and ``/stages`` has no timestamps: poll the list.
        """
        with self._lock:
            self._posting(job_id)
            stage = self._stage_named(name)
            if stage is None:
                where = max(0, len(self._stages) - 1) if position is None else position
                stage = self._insert_stage(name, where)
            for interview in interviews:
                self._ensure_template(stage, interview)
            return str(stage["id"])

    def remove_stage(self, stage_id: str) -> None:
        raise NotSupportedByProvider(
            "Lever's stages are account-wide and its API cannot remove one from a posting"
        )

    def add_interview_kind(self, stage_id: str, name: str) -> str:
        """A feedback template for the stage (templates are account-wide); no webhook."""
        with self._lock:
            stage = next((s for s in self._stages if s["id"] == stage_id), None)
            if stage is None:
                raise FakeLeverError(f"no stage {stage_id}")
            return self._ensure_template(stage, name)

    # ------------------------------------------------------------------ organisation: candidates

    def add_candidate_application(
        self,
        job_id: str,
        first_name: str,
        last_name: str,
        email: str,
        *,
        stage_id: str | None = None,
        coordinator_id: str | None = None,
        origin: str = "applied",
        tags: Sequence[str] = (),
    ) -> tuple[str, str]:
        """A person applying to a posting: ``(contact id, opportunity id)``.

        The contact is shared with earlier opportunities of the same email (Lever dedupes on
        email). Sends ``applicationCreated`` (and ``contactCreated`` for a new contact).
        """
        with self._lock:
            contact_id, created = self._contact_for(f"{first_name} {last_name}", email)
            opportunity_id = self._insert_opportunity(contact_id, job_id, stage_id,
                                                      coordinator_id, origin, tags)
            data = self._application_event(opportunity_id)
        if created:
            self.send_webhook("contactCreated", {"contactId": contact_id})
        self.send_webhook("applicationCreated", data)
        return contact_id, opportunity_id

    def add_application(self, candidate_id: str, job_id: str, *, stage_id: str | None = None
                        ) -> str:
        """The same person applying to another posting: a new opportunity of the contact."""
        with self._lock:
            self._contact(candidate_id)
            opportunity_id = self._insert_opportunity(candidate_id, job_id, stage_id, None,
                                                      "applied", ())
            data = self._application_event(opportunity_id)
        self.send_webhook("applicationCreated", data)
        return opportunity_id

    def move_application(self, application_id: str, stage_id: str) -> None:
        """Sends ``candidateStageChange`` (the documented example's data)."""
        with self._lock:
            opportunity = self._opportunity(application_id)
            stage = next((s for s in self._stages if s["id"] == stage_id), None)
            if stage is None:
                raise FakeLeverError(f"no stage {stage_id}")
            from_stage = opportunity["stage"]
            self._enter_stage(opportunity, stage)
            data = {**self._ids(opportunity), "toStageId": stage_id, "fromStageId": from_stage}
        self.send_webhook("candidateStageChange", data)

    def advance_application(self, application_id: str) -> str:
        """To the next stage of the account pipeline; returns its id."""
        with self._lock:
            opportunity = self._opportunity(application_id)
            ids = [s["id"] for s in self._stages]
            index = ids.index(opportunity["stage"]) + 1 if opportunity["stage"] in ids else 0
            if index >= len(ids):
                raise FakeLeverError("the opportunity is in the last stage")
            target = str(ids[index])
        self.move_application(application_id, target)
        return target

    def reject_application(self, application_id: str, *, reason: str = "Underqualified") -> None:
        """Archive with a non-hired reason; sends ``candidateArchiveChange``."""
        self._archive(application_id, self.archive_reason_id(reason))

    def unreject_application(self, application_id: str) -> None:
        """Unarchive; sends ``candidateArchiveChange``."""
        self._archive(application_id, None)

    def hire(self, application_id: str) -> None:
        """Archive as hired; sends ``candidateArchiveChange`` then ``candidateHired``."""
        self._archive(application_id, self.archive_reason_id("Hired"))
        with self._lock:
            data = self._ids(self._opportunity(application_id))
        self.send_webhook("candidateHired", data)

    def delete_application(self, application_id: str, *, deleted_by: str | None = None) -> None:
        """Delete the opportunity: it leaves ``/opportunities`` for ``/opportunities/deleted``
        and its interviews, panels and feedback go with it. Sends ``candidateDeleted``."""
        with self._lock:
            opportunity = self._opportunity(application_id)
            data = self._ids(opportunity)
            self._drop_opportunity(opportunity, deleted_by)
        self.send_webhook("candidateDeleted", data)

    def delete_candidate(self, candidate_id: str, *, deleted_by: str | None = None) -> None:
        """Delete every opportunity of the contact (one ``candidateDeleted`` each)."""
        with self._lock:
            self._contact(candidate_id)
            doomed = [o for o in self._opportunities.values()
                      if o["contact"] == candidate_id and "_deletedAt" not in o]
            payloads = [self._ids(o) for o in doomed]
            for opportunity in doomed:
                self._drop_opportunity(opportunity, deleted_by)
            del self._contacts[candidate_id]
        for data in payloads:
            self.send_webhook("candidateDeleted", data)

    # ------------------------------------------------------------------ interviews and feedback

    def schedule_interview(
        self,
        application_id: str,
        interview_kind_id: str,
        interviewer_ids: Sequence[str],
        starts_at: datetime,
        ends_at: datetime,
        *,
        external_event_id: str | None = None,
        organizer_id: str | None = None,
        location: str | None = None,
        timezone: str = "UTC",
    ) -> str:
        """A panel with one interview in the opportunity's current stage; sends
        ``interviewCreated``. Returns the interview id."""
        if ends_at <= starts_at:
            raise FakeLeverError("an interview must end after it starts")
        if not interviewer_ids:
            raise FakeLeverError("an interview needs at least one interviewer")
        with self._lock:
            opportunity = self._opportunity(application_id)
            template = self._templates.get(interview_kind_id)
            if template is None:
                raise FakeLeverError(f"no feedback template {interview_kind_id}")
            if organizer_id is not None:
                self._user(organizer_id)
            interviewers = [self._interviewer(u, interview_kind_id) for u in interviewer_ids]
            now = self._stamp()
            panel_id, interview_id = self._new_id(), self._new_id()
            posting_id = self._applications[opportunity["applications"][0]]["posting"]
            posting = self._postings.get(posting_id) or {}
            self._interviews[interview_id] = {
                "id": interview_id,
                "panel": panel_id,
                "subject": f"{template['text']} - {opportunity['name']} - "
                           f"{posting.get('text', '')}",
                "note": None,
                "interviewers": interviewers,
                "timezone": timezone,
                "createdAt": now,
                "date": ms(starts_at),
                "duration": _minutes(starts_at, ends_at),
                "location": location,
                "feedbackTemplate": interview_kind_id,
                "feedbackForms": [],
                "feedbackReminder": "frequently",  # the documented default
                "user": organizer_id,
                "stage": opportunity["stage"],
                "canceledAt": None,
                "postings": [posting_id] if posting_id else [],
                "_opportunity": application_id,
                "_external_event_id": external_event_id,
            }
            self._panels[panel_id] = {
                "id": panel_id,
                "applications": list(opportunity["applications"]),
                "canceledAt": None,
                "createdAt": now,
                "end": ms(ends_at),
                "externallyManaged": False,  # scheduled in Lever, not through the API
                "externalUrl": None,
                "interviews": [interview_id],
                "note": None,
                "stage": opportunity["stage"],
                "start": ms(starts_at),
                "timezone": timezone,
                "user": organizer_id,
                "feedbackReminder": "frequently",
                "_opportunity": application_id,
            }
            data = self._interview_event(interview_id)
        self.send_webhook("interviewCreated", data)
        return interview_id

    def reschedule_interview(self, interview_id: str, starts_at: datetime, ends_at: datetime
                             ) -> None:
        """Sends ``interviewUpdated``."""
        if ends_at <= starts_at:
            raise FakeLeverError("an interview must end after it starts")
        with self._lock:
            interview = self._interview(interview_id)
            interview.update(date=ms(starts_at), duration=_minutes(starts_at, ends_at))
            self._refresh_panel(self._panels[interview["panel"]])
            data = self._interview_event(interview_id)
        self.send_webhook("interviewUpdated", data)

    def add_interviewer(self, interview_id: str, user_id: str) -> None:
        """Sends ``interviewUpdated``."""
        with self._lock:
            interview = self._interview(interview_id)
            if any(i["id"] == user_id for i in interview["interviewers"]):
                raise FakeLeverError(f"user {user_id} is already on interview {interview_id}")
            interview["interviewers"].append(
                self._interviewer(user_id, interview["feedbackTemplate"])
            )
            data = self._interview_event(interview_id)
        self.send_webhook("interviewUpdated", data)

    def remove_interviewer(self, interview_id: str, user_id: str) -> None:
        """Sends ``interviewUpdated``."""
        with self._lock:
            interview = self._interview(interview_id)
            kept = [i for i in interview["interviewers"] if i["id"] != user_id]
            if len(kept) == len(interview["interviewers"]):
                raise FakeLeverError(f"user {user_id} is not on interview {interview_id}")
            interview["interviewers"] = kept
            data = self._interview_event(interview_id)
        self.send_webhook("interviewUpdated", data)

    def set_interviewer_response(self, interview_id: str, user_id: str, response: Response
                                 ) -> None:
        raise NotSupportedByProvider(
            "Lever's interviews record no per-interviewer response (only the calendar does)"
        )

    def cancel_interview(self, interview_id: str) -> None:
        """Set ``canceledAt`` (on the panel too once all its interviews are cancelled); sends
        ``interviewUpdated``."""
        with self._lock:
            interview = self._interview(interview_id)
            if interview["canceledAt"] is not None:
                raise FakeLeverError(f"interview {interview_id} is already cancelled")
            now = self._stamp()
            interview["canceledAt"] = now
            panel = self._panels[interview["panel"]]
            if all(self._interviews[i]["canceledAt"] is not None for i in panel["interviews"]):
                panel["canceledAt"] = now
            data = self._interview_event(interview_id)
        self.send_webhook("interviewUpdated", data)

    def delete_interview(self, interview_id: str) -> None:
        """Remove the interview (and its panel when it was the last one: "Removing the last
        interview from a panel will delete the panel"); sends ``interviewDeleted``."""
        with self._lock:
            interview = self._interview(interview_id)
            data = self._interview_event(interview_id)
            panel = self._panels[interview["panel"]]
            panel["interviews"].remove(interview_id)
            del self._interviews[interview_id]
            if panel["interviews"]:
                self._refresh_panel(panel)
            else:
                del self._panels[panel["id"]]
        self.send_webhook("interviewDeleted", data)

    def submit_scorecard(self, interview_id: str, user_id: str, *,
                         rating: str = "3 - Hire") -> str:
        """The interviewer completes the interview's feedback form. Lever sends no webhook:
        poll ``/opportunities/:opportunity/feedback``."""
        if rating not in SCORE_OPTIONS:
            raise FakeLeverError(f"rating must be one of {SCORE_OPTIONS}")
        with self._lock:
            interview = self._interview(interview_id)
            if not any(i["id"] == user_id for i in interview["interviewers"]):
                raise FakeLeverError(f"user {user_id} is not on interview {interview_id}")
            template = self._templates[interview["feedbackTemplate"]]
            now = self._stamp()
            feedback_id = self._new_id()
            fields = json.loads(json.dumps(template["fields"]))
            fields[0]["value"] = rating
            self._feedback[feedback_id] = {
                "id": feedback_id,
                "type": "interview",
                "text": template["text"],
                "instructions": template["instructions"],
                "fields": fields,
                "baseTemplateId": template["id"],
                "interview": interview_id,
                "panel": interview["panel"],
                "user": user_id,
                "createdAt": now,
                "updatedAt": now,
                "completedAt": now,
                "deletedAt": None,
                "_opportunity": interview["_opportunity"],
            }
            interview["feedbackForms"].append(feedback_id)
            return feedback_id

    def delete_scorecard(self, scorecard_id: str) -> None:
        """The form stays listed with ``deletedAt`` set (as in the documented examples)."""
        with self._lock:
            feedback = self._feedback.get(scorecard_id)
            if feedback is None or feedback["deletedAt"] is not None:
                raise FakeLeverError(f"no feedback form {scorecard_id}")
            now = self._stamp()
            feedback.update(deletedAt=now, updatedAt=now)
            interview = self._interviews.get(feedback["interview"])
            if interview is not None and scorecard_id in interview["feedbackForms"]:
                interview["feedbackForms"].remove(scorecard_id)

    # ------------------------------------------------------------------ internals: storage

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _stamp(self) -> int:
        """Now in milliseconds, strictly after the previous stamp."""
        with self._lock:
            now = max(ms(self._clock()), self._last_stamp + 1)
            self._last_stamp = now
            return now

    def _touch(self, record: Record, **changes: Any) -> None:
        record.update(changes)
        record["updatedAt"] = self._stamp()

    def _table(self, resource: str) -> dict[str, Record]:
        tables = {
            "users": self._users, "postings": self._postings, "contacts": self._contacts,
            "opportunities": self._opportunities, "applications": self._applications,
            "panels": self._panels, "interviews": self._interviews, "feedback": self._feedback,
            "feedback_templates": self._templates, "archive_reasons": self._archive_reasons,
            "stages": {str(s["id"]): s for s in self._stages},
        }
        if resource not in tables:
            raise FakeLeverError(f"unknown resource {resource!r}")
        return tables[resource]

    def _user(self, user_id: str) -> Record:
        if user_id not in self._users:
            raise FakeLeverError(f"no user {user_id}")
        return self._users[user_id]

    def _posting(self, posting_id: str) -> Record:
        if posting_id not in self._postings:
            raise FakeLeverError(f"no posting {posting_id}")
        return self._postings[posting_id]

    def _contact(self, contact_id: str) -> Record:
        if contact_id not in self._contacts:
            raise FakeLeverError(f"no contact {contact_id}")
        return self._contacts[contact_id]

    def _opportunity(self, opportunity_id: str) -> Record:
        opportunity = self._opportunities.get(opportunity_id)
        if opportunity is None or "_deletedAt" in opportunity:
            raise FakeLeverError(f"no opportunity {opportunity_id}")
        return opportunity

    def _interview(self, interview_id: str) -> Record:
        if interview_id not in self._interviews:
            raise FakeLeverError(f"no interview {interview_id}")
        return self._interviews[interview_id]

    def _stage_named(self, name: str) -> Record | None:
        return next((s for s in self._stages if s["text"] == name), None)

    def _insert_stage(self, name: str, position: int) -> Record:
        stage = {"id": self._new_id(), "text": name}
        self._stages.insert(max(0, min(position, len(self._stages))), stage)
        return stage

    def _ensure_stages(self, stages: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Add the missing stages of a plan to the account pipeline, keeping the plan's order:
        each goes before the next stage of the plan the account already has (else after the
        previous one, else at the end)."""
        names = [name for name, _ in stages]
        for index, (name, interviews) in enumerate(stages):
            stage = self._stage_named(name)
            if stage is None:
                later = [self._stage_named(n) for n in names[index + 1:]]
                anchor = next((s for s in later if s is not None), None)
                if anchor is not None:
                    where = self._stages.index(anchor)
                elif index > 0 and (previous := self._stage_named(names[index - 1])):
                    where = self._stages.index(previous) + 1
                else:
                    where = len(self._stages)
                stage = self._insert_stage(name, where)
            for interview in interviews:
                self._ensure_template(stage, interview)

    def _ensure_template(self, stage: Record, name: str) -> str:
        for template in self._templates.values():
            if template["text"] == name and (template["stage"] or {}).get("id") == stage["id"]:
                return str(template["id"])
        now = self._stamp()
        template_id = self._new_id()
        self._templates[template_id] = {
            "id": template_id,
            "text": name,
            "group": None,
            "createdAt": now,
            "updatedAt": now,
            "instructions": "",
            "stage": {"id": stage["id"], "text": stage["text"]},
            # "fields is required to have exactly one field of type score-system."
            "fields": [{
                "id": self._new_id(),
                "type": "score-system",
                "text": "Rating",
                "description": "",
                "required": True,
                "prompt": "Select one",
                "options": [{"text": option} for option in SCORE_OPTIONS],
            }],
        }
        return template_id

    def _contact_for(self, name: str, email: str) -> tuple[str, bool]:
        for contact in self._contacts.values():
            if email.lower() in (e.lower() for e in contact["emails"]):
                return str(contact["id"]), False
        contact_id = self._new_id()
        self._contacts[contact_id] = {
            "id": contact_id,
            "name": name,
            "headline": "",
            "isAnonymized": False,
            "location": {"name": "Berlin"},
            "emails": [email],
            "phones": [],
        }
        return contact_id, True

    def _insert_opportunity(self, contact_id: str, job_id: str, stage_id: str | None,
                            owner_id: str | None, origin: str, tags: Sequence[str]) -> str:
        posting = self._posting(job_id)
        if origin not in ORIGINS:
            raise FakeLeverError(f"origin must be one of {ORIGINS}")
        if owner_id is not None:
            self._user(owner_id)
        if stage_id is None:
            if not self._stages:
                raise FakeLeverError("the account has no stages")
            stage = self._stages[0]
        else:
            found = next((s for s in self._stages if s["id"] == stage_id), None)
            if found is None:
                raise FakeLeverError(f"no stage {stage_id}")
            stage = found
        contact = self._contacts[contact_id]
        owner = owner_id or posting["owner"]
        now = self._stamp()
        opportunity_id, application_id = self._new_id(), self._new_id()
        self._applications[application_id] = {
            "id": application_id,
            "opportunityId": opportunity_id,
            "candidateId": opportunity_id,  # deprecated alias of opportunityId
            "createdAt": now,
            "type": "posting",
            "posting": job_id,
            "postingOwner": posting["owner"],
            "postingHiringManager": posting["hiringManager"],
            "user": None,
            "name": contact["name"],
            "email": contact["emails"][0],
            "phone": None,
            "company": None,
            "links": [],
            "comments": None,
            "customQuestions": [],
            "archived": None,
            "requisitionForHire": None,
        }
        self._opportunities[opportunity_id] = {
            "id": opportunity_id,
            "name": contact["name"],
            "headline": contact["headline"],
            "contact": contact_id,
            "emails": list(contact["emails"]),
            "phones": list(contact["phones"]),
            "confidentiality": posting["confidentiality"],
            "location": contact["location"]["name"],
            "links": [],
            "createdAt": now,
            "updatedAt": now,
            "lastInteractionAt": now,
            "lastAdvancedAt": now,
            "snoozedUntil": None,
            "archived": None,
            "stage": stage["id"],
            "stageChanges": [{
                "toStageId": stage["id"],
                "toStageIndex": self._stages.index(stage),
                "userId": None,
                "updatedAt": now,
            }],
            "owner": owner,
            "tags": list(tags),
            "sources": ["Posting"] if origin == "applied" else [],
            "origin": origin,
            "sourcedBy": None,
            "applications": [application_id],
            "followers": [u for u in dict.fromkeys((owner, posting["hiringManager"])) if u],
            "urls": {
                "list": f"{self.account_url}/candidates",
                "show": f"{self.account_url}/candidates/{opportunity_id}",
            },
            "dataProtection": None,
            "isAnonymized": False,
            "opportunityLocation": posting["categories"]["location"],
        }
        return opportunity_id

    def _enter_stage(self, opportunity: Record, stage: Record) -> None:
        now = self._stamp()
        opportunity["stage"] = stage["id"]
        opportunity["stageChanges"].append({
            "toStageId": stage["id"],
            "toStageIndex": self._stages.index(stage),
            "userId": None,
            "updatedAt": now,
        })
        opportunity.update(lastAdvancedAt=now, lastInteractionAt=now, updatedAt=now)

    def _archive(self, opportunity_id: str, reason_id: str | None) -> None:
        with self._lock:
            opportunity = self._opportunity(opportunity_id)
            before = opportunity["archived"]
            if reason_id is None and before is None:
                raise FakeLeverError(f"opportunity {opportunity_id} is not archived")
            now = self._stamp()
            after = None if reason_id is None else {"archivedAt": now, "reason": reason_id}
            opportunity.update(archived=after, lastInteractionAt=now, updatedAt=now)
            for application_id in opportunity["applications"]:
                self._applications[application_id]["archived"] = after
            data = {**self._ids(opportunity), "fromArchived": before, "toArchived": after}
        self.send_webhook("candidateArchiveChange", data)

    def _drop_opportunity(self, opportunity: Record, deleted_by: str | None) -> None:
        opportunity_id = opportunity["id"]
        opportunity["_deletedAt"] = self._stamp()
        opportunity["_deletedBy"] = deleted_by
        for table in (self._interviews, self._panels, self._feedback):
            for record_id in [k for k, v in table.items() if v["_opportunity"] == opportunity_id]:
                del table[record_id]

    def _interviewer(self, user_id: str, template_id: str) -> Record:
        user = self._user(user_id)
        return {"email": user["email"], "id": user_id, "name": user["name"],
                "feedbackTemplate": template_id}

    def _refresh_panel(self, panel: Record) -> None:
        interviews = [self._interviews[i] for i in panel["interviews"]]
        panel["start"] = min(i["date"] for i in interviews)
        panel["end"] = max(i["date"] + i["duration"] * 60_000 for i in interviews)

    # ------------------------------------------------------------------ internals: webhook data

    def _ids(self, opportunity: Record) -> Record:
        return {"opportunityId": opportunity["id"], "candidateId": opportunity["id"],
                "contactId": opportunity["contact"]}

    def _application_event(self, opportunity_id: str) -> Record:
        opportunity = self._opportunities[opportunity_id]
        application = self._applications[opportunity["applications"][0]]
        return {**self._ids(opportunity), "applicationId": application["id"],
                "postingId": application["posting"]}

    def _interview_event(self, interview_id: str) -> Record:
        interview = self._interviews[interview_id]
        opportunity = self._opportunities[interview["_opportunity"]]
        return {**self._ids(opportunity), "interviewId": interview_id,
                "panelId": interview["panel"]}

    # ------------------------------------------------------------------ internals: HTTP

    def _handle(self, method: str, raw_path: str, authorization: str | None) -> _Reply:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        with self._lock:
            now = self._monotonic()
            self.requests[path] += 1
            self.request_times.append(now)
            fault = self._take_fault(path)
            route, reply = self._route(method, path, query, authorization, fault)
            self.statuses[reply.status] += 1
            self.request_log.append(RequestRecord(method, path, route, query, reply.status, now))
            return reply

    def _take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(path):
                del self._faults[index]
                return fault
        return None

    def _route(self, method: str, path: str, query: Query, authorization: str | None,
               fault: Fault | None) -> tuple[str | None, _Reply]:
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            code = _STATUS_CODES.get(fault.status, "Error")
            return None, _error_reply(fault.status, code, "injected failure", headers)
        if not self._authorised(authorization):
            # "A valid API key was not provided with the request."
            return None, _error_reply(401, "Unauthorized", "Invalid API key",
                                      {"WWW-Authenticate": 'Basic realm="Lever"'})
        if self.enforce_rate_limit and not self._take_token():
            return None, _error_reply(429, "TooManyRequests", "Rate limit exceeded")
        template, handler, ids = self._match(path)
        if handler is None or method != "GET":
            # "Either the request method and path supplied do not specify a known action in
            # the API, or the object specified by the request does not exist." Only the read
            # endpoints are modelled.
            return template, _error_reply(404, "ResourceNotFound",
                                          f"no action {method} {path}")
        try:
            payload = handler(query, **ids)
        except _ApiError as exc:
            return template, _error_reply(exc.status, exc.code, exc.message)
        reply = _json_reply(200, payload)
        reply.fault = fault
        return template, reply

    def _authorised(self, authorization: str | None) -> bool:
        if self._revoked or not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic ").strip(),
                                       validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # "providing an API key as the username and leaving the password blank"
        return bool(sep) and password == "" and hmac.compare_digest(user, self.api_key)

    def _take_token(self) -> bool:
        """The documented token bucket: ``rate_limit`` per second, holding ``rate_burst``."""
        now = self._monotonic()
        self._bucket = min(float(self.rate_burst),
                           self._bucket + (now - self._bucket_at) * self.rate_limit)
        self._bucket_at = now
        if self._bucket < 1.0:
            return False
        self._bucket -= 1.0
        return True

    def _match(self, path: str) -> tuple[str | None, Callable[..., Any] | None, dict[str, str]]:
        if not path.startswith(API_PREFIX + "/"):
            return None, None, {}
        parts = path[len(API_PREFIX) + 1:].rstrip("/").split("/")
        for template, handler in self._routes():
            pattern = template.strip("/").split("/")
            if len(pattern) != len(parts):
                continue
            ids: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith(":"):
                    ids[want[1:]] = got
                elif want != got:
                    break
            else:
                return template, handler, ids
        return None, None, {}

    def _routes(self) -> list[tuple[str, Callable[..., Any]]]:
        # Literal segments before ":id" ones ("/opportunities/deleted" first).
        return [
            ("/opportunities", self._list_opportunities),
            ("/opportunities/deleted", self._list_deleted_opportunities),
            ("/opportunities/:opportunity", self._get_opportunity),
            ("/opportunities/:opportunity/applications", self._list_applications),
            ("/opportunities/:opportunity/applications/:application", self._get_application),
            ("/opportunities/:opportunity/interviews", self._list_interviews),
            ("/opportunities/:opportunity/interviews/:interview", self._get_interview),
            ("/opportunities/:opportunity/panels", self._list_panels),
            ("/opportunities/:opportunity/panels/:panel", self._get_panel),
            ("/opportunities/:opportunity/feedback", self._list_feedback),
            ("/opportunities/:opportunity/feedback/:feedback", self._get_feedback),
            ("/postings", self._list_postings),
            ("/postings/:posting", self._get_posting),
            ("/stages", self._list_stages),
            ("/stages/:stage", self._get_stage),
            ("/archive_reasons", self._list_archive_reasons),
            ("/archive_reasons/:archive_reason", self._get_archive_reason),
            ("/users", self._list_users),
            ("/users/:user", self._get_user),
            ("/feedback_templates", self._list_templates),
            ("/feedback_templates/:feedback_template", self._get_template),
            ("/contacts/:contact", self._get_contact),
            ("/webhooks", self._list_webhooks),
        ]

    # ------------------------------------------------------------------ HTTP: rendering

    def _user_object(self, user_id: Any) -> Any:
        if user_id is None:
            return None
        if isinstance(user_id, list):
            return [self._user_object(u) for u in user_id]
        user = self._users.get(user_id)
        return _public(user) if user is not None else user_id

    def _stage_object(self, stage_id: Any) -> Any:
        stage = next((s for s in self._stages if s["id"] == stage_id), None)
        return _public(stage) if stage is not None else stage_id

    def _posting_object(self, posting_id: Any) -> Any:
        if isinstance(posting_id, list):
            return [self._posting_object(p) for p in posting_id]
        posting = self._postings.get(posting_id)
        if posting is None:
            return posting_id
        data = _public(posting)
        data.pop("followers", None)
        return data

    def _shapes(self) -> dict[str, _Shape]:
        users = self._user_object
        return {
            "users": _Shape("users", USER_FIELDS),
            "stages": _Shape("stages", STAGE_FIELDS),
            "archive_reasons": _Shape("archive_reasons", ARCHIVE_REASON_FIELDS),
            "feedback_templates": _Shape("feedback_templates", TEMPLATE_FIELDS),
            "contacts": _Shape("contacts", CONTACT_FIELDS),
            "webhooks": _Shape("webhooks", WEBHOOK_FIELDS),
            "postings": _Shape(
                "postings", POSTING_FIELDS,
                {"user": users, "owner": users, "hiringManager": users, "followers": users},
                optional=frozenset({"followers"}),
            ),
            "opportunities": _Shape(
                "opportunities", OPPORTUNITY_FIELDS,
                {
                    "applications": lambda ids: [_public(self._applications[i]) for i in ids],
                    "stage": self._stage_object,
                    "owner": users,
                    "followers": users,
                    "sourcedBy": users,
                    "contact": lambda c: _public(self._contacts[c]) if c in self._contacts
                    else c,
                },
            ),
            "deleted_opportunities": _Shape(
                "opportunities", (*OPPORTUNITY_FIELDS, "deletedBy", "deletedAt"),
            ),
            "applications": _Shape(
                "applications", APPLICATION_FIELDS,
                {"posting": self._posting_object, "postingOwner": users,
                 "postingHiringManager": users, "user": users},
            ),
            "interviews": _Shape(
                "interviews", INTERVIEW_FIELDS,
                {"feedbackForms": lambda ids: [_public(self._feedback[i]) for i in ids],
                 "user": users, "stage": self._stage_object, "postings": self._posting_object},
            ),
            "panels": _Shape("panels", PANEL_FIELDS,
                             {"user": users, "stage": self._stage_object}),
            "feedback": _Shape("feedback", FEEDBACK_FIELDS, {"user": users}),
        }

    def _render(self, record: Record, shape: _Shape, include: list[str], expand: list[str]
                ) -> Record:
        data = _public(record)
        if shape.kind == "panels":
            data["interviews"] = [
                {k: _public(self._interviews[i])[k] for k in PANEL_INTERVIEW_FIELDS}
                for i in record["interviews"]
            ]
        for name in shape.optional:
            if name not in include and name not in expand:
                data.pop(name, None)
        for name in expand:
            data[name] = shape.expanders[name](data.get(name))
        if include:
            # "If the include parameter is specified, no other fields other than those set in
            # the request will be returned"; "anything that is expanded will automatically be
            # included".
            data = {k: v for k, v in data.items() if k == "id" or k in include or k in expand}
        return data

    def _customising(self, params: _Params, shape: _Shape) -> tuple[list[str], list[str]]:
        include = params.many("include")
        expand = params.many("expand")
        for name in include:
            if name not in shape.fields:
                raise _bad_request(f"include: {shape.kind} have no field {name!r}")
        for name in expand:
            if name not in shape.expanders:
                raise _bad_request(f"expand: {name!r} cannot be expanded on {shape.kind}")
        return include, expand

    def _one(self, query: Query, kind: str, record: Record | None, record_id: str,
             allowed: Iterable[str] = ()) -> Record:
        shape = self._shapes()[kind]
        params = _Params(query, {"include", "expand", *allowed})
        include, expand = self._customising(params, shape)
        if record is None:
            raise _not_found(shape.kind, record_id)
        return {"data": self._render(record, shape, include, expand)}

    def _list(self, query: Query, kind: str, path: str, rows: Callable[[_Params], list[Record]],
              filters: Iterable[str] = ()) -> Record:
        shape = self._shapes()[kind]
        params = _Params(query, {"include", "expand", "limit", "offset", *filters})
        include, expand = self._customising(params, shape)
        limit = params.limit()
        offset = params.one("offset")
        signature = params.signature()
        seen: frozenset[str] = frozenset()
        if offset is not None:
            state = self._offsets.get(offset)
            if state is None:
                raise _bad_request(
                    "offset was not returned by a previous request (\"You can only pass in an "
                    "offset that was returned to you via a previously paginated request\")"
                )
            if state.path != path or state.params != signature:
                # Undocumented; refused so a connector that drops its filters on the next page
                # (and would silently get another list) fails here.
                raise _bad_request("offset belongs to a request with other parameters")
            seen = state.seen
        remaining = [r for r in rows(params) if r["id"] not in seen]
        page = remaining[:limit]
        answer: Record = {
            "data": [self._render(r, shape, include, expand) for r in page],
            "hasNext": len(remaining) > limit,
        }
        if answer["hasNext"]:
            # The documented token looks like "0.1414895548650.a6070140-...".
            token = f"0.{self._stamp()}.{uuid.uuid4()}"
            self._offsets[token] = _Offset(path, signature,
                                           seen | frozenset(str(r["id"]) for r in page))
            while len(self._offsets) > MAX_OFFSET_TOKENS:
                self._offsets.popitem(last=False)
            answer["next"] = token
        return answer

    # ------------------------------------------------------------------ HTTP: endpoints

    def _visible_opportunity(self, opportunity_id: str) -> Record | None:
        opportunity = self._opportunities.get(opportunity_id)
        if opportunity is None or "_deletedAt" in opportunity:
            return None
        if opportunity["confidentiality"] == "confidential" and not self.confidential_access:
            raise _ApiError(403, "Forbidden", "this API key has no access to confidential data")
        return opportunity

    def _confidentiality(self, params: _Params) -> set[str]:
        # "If unspecified, defaults to non-confidential. To get both ... you must specify all."
        value = params.choice("confidentiality", CONFIDENTIALITY) or "non-confidential"
        if value != "non-confidential" and not self.confidential_access:
            raise _ApiError(403, "Forbidden", "this API key has no access to confidential data")
        return {"confidential", "non-confidential"} if value == "all" else {value}

    def _list_opportunities(self, query: Query) -> Record:
        filters = (
            "tag", "email", "origin", "source", "confidentiality", "stage_id", "posting_id",
            "archived_posting_id", "created_at_start", "created_at_end", "updated_at_start",
            "updated_at_end", "advanced_at_start", "advanced_at_end", "archived_at_start",
            "archived_at_end", "archived", "archive_reason_id", "snoozed", "contact_id",
            "location",
        )

        def rows(params: _Params) -> list[Record]:
            checks: list[Callable[[Record], bool]] = []
            allowed = self._confidentiality(params)
            checks.append(lambda o: o["confidentiality"] in allowed)
            if tags := params.many("tag", text=True):
                checks.append(lambda o: bool(set(tags) & set(o["tags"])))
            if (email := params.one("email")) is not None:
                checks.append(lambda o: email.lower() in (e.lower() for e in o["emails"]))
            if origins := params.choices(ORIGINS, "origin"):
                checks.append(lambda o: o["origin"] in origins)
            if sources := params.many("source", text=True):
                checks.append(lambda o: bool(set(sources) & set(o["sources"])))
            if stages := params.uuids("stage_id"):
                checks.append(lambda o: o["stage"] in stages)
            if postings := params.uuids("posting_id"):
                checks.append(lambda o: bool(self._postings_of(o) & postings))
            if archived_postings := params.uuids("archived_posting_id"):
                checks.append(lambda o: o["archived"] is not None
                              and bool(self._postings_of(o) & archived_postings))
            for prefix, read in (
                ("created_at", lambda o: o["createdAt"]),
                ("updated_at", lambda o: o["updatedAt"]),
                ("advanced_at", lambda o: o["lastAdvancedAt"]),
                ("archived_at", lambda o: (o["archived"] or {}).get("archivedAt")),
            ):
                checks.extend(_window(params, prefix, read))
            if (archived := params.flag("archived")) is not None:
                checks.append(lambda o: (o["archived"] is not None) == archived)
            if reasons := params.uuids("archive_reason_id"):
                checks.append(lambda o: (o["archived"] or {}).get("reason") in reasons)
            if (snoozed := params.flag("snoozed")) is not None:
                now = ms(self._clock())
                checks.append(lambda o: ((o["snoozedUntil"] or 0) > now) == snoozed)
            if contacts := params.uuids("contact_id"):
                checks.append(lambda o: o["contact"] in contacts)
            if locations := params.many("location", text=True):
                checks.append(lambda o: (o["opportunityLocation"] or "unspecified") in locations)
            return [o for o in self._opportunities.values()
                    if "_deletedAt" not in o and all(check(o) for check in checks)]

        return self._list(query, "opportunities", "/opportunities", rows, filters)

    def _postings_of(self, opportunity: Record) -> set[str]:
        return {self._applications[a]["posting"] for a in opportunity["applications"]}

    def _list_deleted_opportunities(self, query: Query) -> Record:
        def rows(params: _Params) -> list[Record]:
            checks = _window(params, "deleted_at", lambda o: o["_deletedAt"])
            deleted = [o for o in self._opportunities.values()
                       if "_deletedAt" in o and all(check(o) for check in checks)]
            # "deletedBy"/"deletedAt": "this attribute only appears for deleted Opportunities".
            return [{**o, "deletedBy": o["_deletedBy"], "deletedAt": o["_deletedAt"]}
                    for o in deleted]

        return self._list(query, "deleted_opportunities", "/opportunities/deleted", rows,
                          ("deleted_at_start", "deleted_at_end"))

    def _get_opportunity(self, query: Query, opportunity: str) -> Record:
        return self._one(query, "opportunities", self._visible_opportunity(opportunity),
                         opportunity)

    def _owned(self, opportunity_id: str) -> Record:
        record = self._visible_opportunity(opportunity_id)
        if record is None:
            raise _not_found("opportunities", opportunity_id)
        return record

    def _list_applications(self, query: Query, opportunity: str) -> Record:
        # Deprecated in favour of expand=applications, "maintained for backwards compatibility".
        record = self._owned(opportunity)
        return self._list(query, "applications", f"/opportunities/{opportunity}/applications",
                          lambda _: [self._applications[a] for a in record["applications"]])

    def _get_application(self, query: Query, opportunity: str, application: str) -> Record:
        record = self._owned(opportunity)
        found = (self._applications.get(application)
                 if application in record["applications"] else None)
        return self._one(query, "applications", found, application)

    def _children(self, table: dict[str, Record], opportunity: str) -> list[Record]:
        return [r for r in table.values() if r["_opportunity"] == opportunity]

    def _list_interviews(self, query: Query, opportunity: str) -> Record:
        self._owned(opportunity)
        return self._list(query, "interviews", f"/opportunities/{opportunity}/interviews",
                          lambda _: self._children(self._interviews, opportunity))

    def _get_interview(self, query: Query, opportunity: str, interview: str) -> Record:
        self._owned(opportunity)
        found = self._interviews.get(interview)
        found = found if found is not None and found["_opportunity"] == opportunity else None
        return self._one(query, "interviews", found, interview)

    def _list_panels(self, query: Query, opportunity: str) -> Record:
        self._owned(opportunity)
        return self._list(query, "panels", f"/opportunities/{opportunity}/panels",
                          lambda _: self._children(self._panels, opportunity))

    def _get_panel(self, query: Query, opportunity: str, panel: str) -> Record:
        self._owned(opportunity)
        found = self._panels.get(panel)
        found = found if found is not None and found["_opportunity"] == opportunity else None
        return self._one(query, "panels", found, panel)

    def _list_feedback(self, query: Query, opportunity: str) -> Record:
        self._owned(opportunity)
        return self._list(query, "feedback", f"/opportunities/{opportunity}/feedback",
                          lambda _: self._children(self._feedback, opportunity))

    def _get_feedback(self, query: Query, opportunity: str, feedback: str) -> Record:
        self._owned(opportunity)
        found = self._feedback.get(feedback)
        found = found if found is not None and found["_opportunity"] == opportunity else None
        return self._one(query, "feedback", found, feedback)

    def _list_postings(self, query: Query) -> Record:
        filters = ("state", "distributionChannel", "confidentiality", "group", "team",
                   "department", "location", "commitment", "level", "tag", "updated_at_start",
                   "updated_at_end")

        def rows(params: _Params) -> list[Record]:
            if params.raw.keys() & {"updated_at_start", "updated_at_end"}:
                others = set(params.raw) - {"updated_at_start", "updated_at_end",
                                            "confidentiality", "limit", "offset"}
                if others:
                    # "updated_at_ parameters can only be used in combination with
                    # confidentiality. No other parameters can be used in combination".
                    raise _bad_request(
                        "updated_at_start/updated_at_end combine only with confidentiality, "
                        f"not with {', '.join(sorted(others))}"
                    )
            if params.one("group") is not None:
                raise _bad_request("group (grouped results) is not modelled by the fake Lever")
            checks: list[Callable[[Record], bool]] = []
            allowed = self._confidentiality(params)
            checks.append(lambda p: p["confidentiality"] in allowed)
            states = params.choices(POSTING_STATES, "state")
            channels = params.choices(("public", "internal"), "distributionChannel")
            if states:
                checks.append(lambda p: p["state"] in states)
            if channels:
                checks.append(lambda p: p["state"] != "published"
                              or bool(channels & set(p["distributionChannels"])))
            elif states and "published" in states:
                # "List requests for published postings will only return postings that appear
                # on your public job site" unless distributionChannel says otherwise.
                checks.append(lambda p: p["state"] != "published"
                              or "public" in p["distributionChannels"])
            for name in ("team", "department", "commitment", "level"):
                if wanted := params.many(name, text=True):
                    checks.append(functools.partial(_category_in, name=name, wanted=set(wanted)))
            if locations := params.many("location", text=True):
                checks.append(lambda p: bool(set(locations) & set(p["categories"]["allLocations"])))
            if tags := params.many("tag", text=True):
                checks.append(lambda p: bool(set(tags) & set(p["tags"])))
            checks.extend(_window(params, "updated_at", lambda p: p["updatedAt"]))
            return [p for p in self._postings.values() if all(check(p) for check in checks)]

        return self._list(query, "postings", "/postings", rows, filters)

    def _get_posting(self, query: Query, posting: str) -> Record:
        params = _Params(query, {"include", "expand", "distribution"})
        params.choice("distribution", ("internal", "external"))
        record = self._postings.get(posting)
        if record is not None and record["confidentiality"] == "confidential" \
                and not self.confidential_access:
            raise _ApiError(403, "Forbidden", "this API key has no access to confidential data")
        return self._one(query, "postings", record, posting, ("distribution",))

    def _list_stages(self, query: Query) -> Record:
        return self._list(query, "stages", "/stages", lambda _: list(self._stages))

    def _get_stage(self, query: Query, stage: str) -> Record:
        found = next((s for s in self._stages if s["id"] == stage), None)
        return self._one(query, "stages", found, stage)

    def _list_archive_reasons(self, query: Query) -> Record:
        def rows(params: _Params) -> list[Record]:
            kind = params.choice("type", ("hired", "non-hired"))
            return [r for r in self._archive_reasons.values() if kind in (None, r["type"])]

        return self._list(query, "archive_reasons", "/archive_reasons", rows, ("type",))

    def _get_archive_reason(self, query: Query, archive_reason: str) -> Record:
        return self._one(query, "archive_reasons", self._archive_reasons.get(archive_reason),
                         archive_reason)

    def _list_users(self, query: Query) -> Record:
        filters = ("email", "accessRole", "accessRole[]", "includeDeactivated",
                   "external_directory_id")

        def rows(params: _Params) -> list[Record]:
            email = params.one("email")
            # The docs' own example repeats ``accessRole[]``; the parameter table says
            # ``accessRole``. Both are taken.
            roles = params.many("accessRole", "accessRole[]")
            with_deactivated = params.flag("includeDeactivated") or False
            directory_id = params.one("external_directory_id")
            return [
                u for u in self._users.values()
                if (with_deactivated or u["deactivatedAt"] is None)
                and (email is None or u["email"].lower() == email.lower())
                and (not roles or u["accessRole"] in roles)
                and (directory_id is None or u["externalDirectoryId"] == directory_id)
            ]

        return self._list(query, "users", "/users", rows, filters)

    def _get_user(self, query: Query, user: str) -> Record:
        return self._one(query, "users", self._users.get(user), user)

    def _list_templates(self, query: Query) -> Record:
        return self._list(query, "feedback_templates", "/feedback_templates",
                          lambda _: list(self._templates.values()))

    def _get_template(self, query: Query, feedback_template: str) -> Record:
        return self._one(query, "feedback_templates", self._templates.get(feedback_template),
                         feedback_template)

    def _get_contact(self, query: Query, contact: str) -> Record:
        return self._one(query, "contacts", self._contacts.get(contact), contact)

    def _list_webhooks(self, query: Query) -> Record:
        def rows(_: _Params) -> list[Record]:
            if not (self.webhooks_enabled and self.webhook_url):
                return []
            hooks = []
            for event in WEBHOOK_EVENTS:
                if event not in self.webhook_events:
                    continue
                hook_id = self._webhook_ids.setdefault(event, self._new_id())
                created = self._webhook_times.setdefault(event, self._stamp())
                hooks.append({"id": hook_id, "url": self.webhook_url, "event": event,
                              "createdAt": created, "updatedAt": created, "configuration": {}})
            return hooks

        return self._list(query, "webhooks", "/webhooks", rows)


def _category_in(posting: Record, *, name: str, wanted: set[str]) -> bool:
    return posting["categories"][name] in wanted


def _minutes(starts_at: datetime, ends_at: datetime) -> int:
    return max(1, round((ends_at - starts_at) / timedelta(minutes=1)))


def _window(params: _Params, prefix: str, read: Callable[[Record], int | None]
            ) -> list[Callable[[Record], bool]]:
    """``<prefix>_start``/``<prefix>_end``: both inclusive ("from that timestamp (inclusive)")."""
    checks: list[Callable[[Record], bool]] = []
    start = params.timestamp(f"{prefix}_start")
    end = params.timestamp(f"{prefix}_end")

    def at_or_after(record: Record, bound: int) -> bool:
        value = read(record)
        return value is not None and value >= bound

    def at_or_before(record: Record, bound: int) -> bool:
        value = read(record)
        return value is not None and value <= bound

    if start is not None:
        checks.append(functools.partial(at_or_after, bound=start))
    if end is not None:
        checks.append(functools.partial(at_or_before, bound=end))
    return checks


def _public(record: Record) -> Record:
    """A deep copy without the fake's private ``_`` keys: callers cannot edit the store."""
    data = {k: v for k, v in record.items() if not k.startswith("_")}
    copied: Record = json.loads(json.dumps(data))
    return copied


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return _Reply(status, json.dumps(payload).encode("utf-8"), merged)


def _error_reply(status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> _Reply:
    # "Responses and Errors > Example error response": {"code": ..., "message": ...}
    return _json_reply(status, {"code": code, "message": message}, headers)


if TYPE_CHECKING:
    from taskplanner.sandbox.fake_ats import FakeATS

    _conforms: FakeATS[str] = FakeLever()
