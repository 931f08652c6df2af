"""A loopback fake Ashby: the RPC-style POST API, syncToken incremental reads, signed webhooks.

Tests and ``taskplanner sandbox`` drive an editable organisation through its methods (the
`FakeATS` protocol); an Ashby connector talks to it over 127.0.0.1 exactly as it would to
``https://api.ashbyhq.com``. Written from Ashby's documentation alone, so a connector tested
against it is tested against what Ashby promises, not against its author's assumptions.

Sources (developers.ashbyhq.com; the OpenAPI document was read from its copy in
github.com/api-evangelist/ashby @ 89313ad5 : openapi/ashby-api-openapi.json, ``info.title``
"Ashby API"):
- /docs/authentication: HTTP Basic, API key as the username, blank password; a missing key is
  401, a wrong or deactivated key 403, a key without the endpoint's permission 403 with
  ``missing_endpoint_permission``. The permission per endpoint is the reference's
  "Requires the ... permission" line.
- /docs/responses: ``{"success": true, "results": ...}``; "what would be 4XX errors will return
  200 with success being false" plus ``errorInfo`` (``code``, ``message``, ``requestId``); the
  OpenAPI error schema (``report.generate`` 429) also carries the deprecated ``errors`` list.
- /docs/pagination-and-incremental-sync, /docs/sync and the changelog entries
  2026-05-14 "Reject Deep Pagination on Incremental Sync" and 2026-08-04 "Actionable Pagination
  Error Messages": ``limit`` (maximum and default 100, ``brand.list`` schema), ``cursor`` /
  ``nextCursor`` / ``moreDataAvailable``, a ``syncToken`` on the last page of a pass only, and
  the codes ``sync_token_expired``, ``sync_token_invalid``, ``incremental_sync_too_large``,
  ``next_cursor_expired``, ``invalid_next_cursor``. An endpoint supports incremental sync exactly
  when its request schema has ``syncToken`` (the OpenAPI ``opening.list``,
  ``surveyFormDefinition.list`` and ``department.list`` request schemas that others reference).
- Resource shapes: the OpenAPI schemas of application.list/info (``webhooks.pushToHRIS ...
  application``), job.list/info (``webhooks.jobCreate ... job``), interviewPlan.list,
  interviewStage.list/info, jobInterviewPlan.info, interview.list/info, interviewSchedule.list
  (``webhooks.interviewScheduleCreate ... interviewSchedule``), interviewEvent.list,
  applicationFeedback.list, user.list/info/search, candidate.list/info, jobPosting.list/info
  (``webhooks.jobPostingUpdate ... jobPosting``), hiringTeamRole.list, archiveReason.list,
  apiKey.info. Field names cross-checked with Airbyte's source-ashby manifest
  (airbytehq/airbyte : airbyte-integrations/connectors/source-ashby/manifest.yaml) and Nango's
  Ashby syncs (NangoHQ/integration-templates : integrations/ashby/syncs/candidates.ts, which
  sends ``syncToken`` together with ``cursor`` on later pages of an incremental pass).
- Webhooks: /docs/setting-up-webhooks, /docs/authenticating-webhooks (``Ashby-Signature:
  sha256=<hex HMAC-SHA256 of the raw body>``, sent only when a secret token is configured),
  /docs/common-payload-data (every payload is ``{"webhookActionId", "action", "data"}``; the id
  is the same across retries), /docs/related-webhooks (candidateStageChange also sends
  applicationUpdate; candidateHire also sends applicationUpdate and candidateStageChange;
  interviewScheduleCreate also sends interviewScheduleUpdate; jobPostingPublish/Unpublish also
  send jobPostingUpdate; related deliveries share one webhookActionId), /docs/retries (at most
  10 attempts, delay ``(2^n - 1) x 10 s``, no retry after 401/403/404/405/410), and the OpenAPI
  ``webhooks`` section for each ``data`` schema.

What Ashby cannot express, the fake refuses with `NotSupportedByProvider`: an interviewer's RSVP
(interview events list interviewers without a response) and deleting a single application (no
endpoint, no webhook; candidates can be deleted, ``candidateDelete``).

UNCONFIRMED (chosen here, not found in the docs; each is a constructor switch or a constant):
- The HTTP status of the five pagination errors: 200 with ``success: false`` (the responses
  page's rule for would-be 4XX errors; the changelog only says the status did not change).
- The page count that triggers ``incremental_sync_too_large`` (``max_incremental_pages``); the
  error is raised on the first page past it.
- How long sync tokens and cursors live (``sync_token_ttl``, ``cursor_ttl``: forever unless set).
- That a cursor is tied to its endpoint and filters, and to the syncToken of its pass.
- That incremental results never report deletions (no tombstone shape is documented).
- The 401/403 ``errorInfo.code`` values, the 429 rate and its ``Retry-After`` header, the body
  of injected 5xx answers, and answers to unknown endpoints (404) or non-POST methods (405).
- Unknown request parameters are refused with ``invalid_input`` (Ashby may ignore them).
- The webhook body's exact bytes (compact JSON, UTF-8, no escaping) and the order in which
  related webhooks arrive (primary first).
- Stage types: the interviewStageGroup ``stageType`` vocabulary (Lead, PreInterviewScreen,
  Active, Offer, Hired, Archived) is used for ``interviewStage.type``; every plan gets a Lead
  stage first and Hired and Archived stages last. Rejecting moves to Archived, hiring to Hired.
- Hiring-team role titles "Recruiter", "Recruiting Coordinator", "Hiring Manager"; an
  application's ``hiringTeam`` is the job's team with the application's own members on top.
- What cancelling does to a schedule's events: the schedule becomes ``Cancelled`` and keeps
  its (only) event listed, so its ``interviewScheduleUpdate`` names the cancelled interview;
  an event cancelled out of several is taken off the schedule.
- Whether submitting feedback or changing a job's postings sends any webhook (here: none, but
  ``updatedAt`` moves so incremental reads see it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import queue
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from taskplanner.sandbox.fake_ats import (
    CANDIDATE_COORDINATOR,
    DEFAULT_STAGES,
    HARD_DELETES,
    HIRING_TEAM_COORDINATOR,
    JOB_PUBLISHING,
    PER_JOB_STAGES,
    STAGE_REMOVAL,
    ConnectorSettings,
    FakeATSError,
    NotSupportedByProvider,
    PersonRole,
    Response,
)

Record = dict[str, Any]
Clock = Callable[[], datetime]

DEFAULT_API_KEY = "fake-ashby-api-key"  # noqa: S105 - a loopback fake's fixed key
MAX_LIMIT = 100  # "The maximum and default value is 100." (brand.list ``limit``)
DEFAULT_MAX_INCREMENTAL_PAGES = 50  # UNCONFIRMED: Ashby does not publish the number
WEBHOOK_MAX_ATTEMPTS = 10  # /docs/retries
WEBHOOK_NO_RETRY = frozenset({401, 403, 404, 405, 410})  # /docs/retries

# The documented webhook types: webhook.create's ``webhookType`` enum plus the other entries of
# the OpenAPI ``webhooks`` section.
WEBHOOK_TYPES = frozenset({
    "applicationSubmit", "applicationUpdate", "candidateHire", "candidateStageChange",
    "candidateDelete", "candidateMerge", "interviewPlanTransition", "interviewScheduleCreate",
    "interviewScheduleUpdate", "jobPostingUpdate", "jobPostingPublish", "jobPostingUnpublish",
    "offerCreate", "offerUpdate", "offerDelete", "pushToHRIS", "surveySubmit", "jobCreate",
    "jobUpdate", "openingCreate", "signatureRequestUpdate", "ping",
})

# Pagination and incremental-sync error codes (guide + changelog).
SYNC_TOKEN_EXPIRED = "sync_token_expired"  # noqa: S105 - an error code
SYNC_TOKEN_INVALID = "sync_token_invalid"  # noqa: S105 - an error code
INCREMENTAL_SYNC_TOO_LARGE = "incremental_sync_too_large"
NEXT_CURSOR_EXPIRED = "next_cursor_expired"
INVALID_NEXT_CURSOR = "invalid_next_cursor"

# ``globalRole`` values (user.info schema) for our role vocabulary. UNCONFIRMED mapping.
GLOBAL_ROLES: dict[str | None, str] = {
    "admin": "Organization Admin",
    "coordinator": "Elevated Access",
    "recruiter": "Elevated Access",
    "hiring_manager": "Limited Access",
    "interviewer": "Limited Access",
    None: "Limited Access",
}
RECRUITER_ROLE = "Recruiter"
COORDINATOR_ROLE = "Recruiting Coordinator"
HIRING_MANAGER_ROLE = "Hiring Manager"
HIRING_TEAM_ROLES = (RECRUITER_ROLE, COORDINATOR_ROLE, HIRING_MANAGER_ROLE)
JOB_STATUSES = {"open": "Open", "draft": "Draft", "closed": "Closed"}
APPLICATION_STATUS_BY_STAGE_TYPE = {
    "Lead": "Lead",
    "PreInterviewScreen": "Active",
    "Active": "Active",
    "Offer": "Active",
    "Hired": "Hired",
    "Archived": "Archived",
}
SYSTEM_STAGE_TYPES = ("Lead", "Hired", "Archived")

# Each endpoint's permission ("Requires the [`...`] permission" in the reference).
PERMISSIONS = {
    "apiKey.info": "apiKeysRead",
    "application.list": "candidatesRead",
    "application.info": "candidatesRead",
    "applicationFeedback.list": "candidatesRead",
    "candidate.list": "candidatesRead",
    "candidate.info": "candidatesRead",
    "job.list": "jobsRead",
    "job.info": "jobsRead",
    "jobInterviewPlan.info": "jobsRead",
    "jobPosting.list": "jobsRead",
    "jobPosting.info": "jobsRead",
    "interview.list": "interviewsRead",
    "interview.info": "interviewsRead",
    "interviewEvent.list": "interviewsRead",
    "interviewPlan.list": "interviewsRead",
    "interviewSchedule.list": "interviewsRead",
    "interviewStage.list": "interviewsRead",
    "interviewStage.info": "interviewsRead",
    "user.list": "organizationRead",
    "user.info": "organizationRead",
    "user.search": "organizationRead",
    "hiringTeamRole.list": "organizationRead",
    "archiveReason.list": "hiringProcessMetadataRead",
}
ALL_PERMISSIONS = frozenset(PERMISSIONS.values())


def iso_ms(moment: datetime) -> str:
    """Ashby's date-time format: UTC, milliseconds, ``Z`` (``2022-08-12T20:29:56.964Z``)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.astimezone(UTC)


def ashby_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as a JavaScript ``JSON.stringify`` would write it (UNCONFIRMED)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The ``Ashby-Signature`` header value for ``body`` (/docs/authenticating-webhooks)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class FakeAshbyError(FakeATSError):
    """A test asked the fake organisation for something that does not exist."""


@dataclass
class Fault:
    """One failure applied to the next matching request.

    kind: ``status`` (answer ``status``, with ``Retry-After`` if given), ``unsuccessful`` (HTTP
    200 with ``success: false`` and ``code``/``message``), ``slow`` (sleep ``delay`` seconds,
    then answer normally), ``truncate`` (the JSON body cut in half), ``disconnect`` (headers
    promise the whole body, the connection closes half-way).
    """

    kind: Literal["status", "unsuccessful", "slow", "truncate", "disconnect"]
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    path: str | None = None  # only requests whose path starts with this; None = any
    code: str = "unknown_error"
    message: str = "injected failure"

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    body: Any
    status: int
    error_code: str | None  # errorInfo.code of an unsuccessful answer


@dataclass
class WebhookDelivery:
    """One webhook POST the fake made, with every attempt's outcome."""

    action: str
    webhook_action_id: str | None
    body: bytes
    headers: dict[str, str]
    status_code: int | None = None
    error: str | None = None
    attempts: int = 0

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
    error_code: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAshby


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet; the fake keeps its own request log."""

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake._handle(method, self.path, self.headers.get("Authorization"),
                                         body)
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


class _ApiError(Exception):
    """An answer with ``success: false`` (HTTP 200 unless ``status`` says otherwise)."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class _Listing:
    """How one list endpoint selects, filters and serialises its rows."""

    table: str
    params: frozenset[str]  # accepted body parameters besides cursor/limit/syncToken
    incremental: bool  # the request schema has ``syncToken``
    paginated: bool = True


# Every list endpoint the fake serves. ``params`` come from each endpoint's request schema.
# opening.list request schema: createdAfter, cursor, syncToken, limit.
_OPENING_LIST = frozenset({"createdAfter"})
LISTINGS: dict[str, _Listing] = {
    "application.list": _Listing("applications", _OPENING_LIST | {"status", "jobId", "expand"},
                                 incremental=True),
    "candidate.list": _Listing("candidates", _OPENING_LIST, incremental=True),
    "job.list": _Listing("jobs", _OPENING_LIST | {"status", "openedAfter", "openedBefore",
                                                  "closedAfter", "closedBefore",
                                                  "includeUnpublishedJobPostingsIds", "expand"},
                         incremental=True),
    "interviewPlan.list": _Listing("plans", frozenset({"includeArchived"}), incremental=True),
    "interview.list": _Listing("interviews", frozenset({
        "includeArchived", "includeNonSharedInterviews",
        "excludeArchivedScheduleTemplateInterviews"}), incremental=True),
    "interviewSchedule.list": _Listing("schedules",
                                       _OPENING_LIST | {"applicationId", "interviewStageId"},
                                       incremental=True),
    "interviewEvent.list": _Listing("events", _OPENING_LIST | {"interviewScheduleId", "expand"},
                                    incremental=True),
    "applicationFeedback.list": _Listing("feedback", _OPENING_LIST | {"applicationId"},
                                         incremental=True),
    "user.list": _Listing("users", frozenset({"includeDeactivated"}), incremental=True),
}
_EXPANDS = {
    "application.list": frozenset({"openings"}),
    "application.info": frozenset({"openings", "applicationFormSubmissions", "referrals"}),
    "job.list": frozenset({"location", "openings"}),
    "job.info": frozenset({"location", "openings"}),
    "interviewEvent.list": frozenset({"interview"}),
    "jobPosting.info": frozenset({"job"}),
}
_APPLICATION_STATUSES = ("Hired", "Archived", "Active", "Lead")
UNPUBLISHED_POSTINGS = "includeUnpublishedJobPostingsIds"  # carried like an expansion
_JOB_STATUS_VALUES = ("Draft", "Open", "Closed", "Archived")
# A small feedback form (the shape of applicationFeedback.list's documented example).
FEEDBACK_FORM: Record = {"sections": [{"title": "Feedback", "fields": [
    {"isRequired": True, "field": {
        "id": "550e8400-e29b-41d4-a716-446655440001", "type": "ValueSelect",
        "path": "overall_recommendation", "title": "Overall Recommendation",
        "humanReadablePath": "Overall Recommendation", "isNullable": False,
        "selectableValues": [{"label": "Strong Hire", "value": "strong_hire"},
                             {"label": "Hire", "value": "hire"},
                             {"label": "No Hire", "value": "no_hire"}]}},
    {"isRequired": False, "field": {
        "id": "550e8400-e29b-41d4-a716-446655440003", "type": "RichText",
        "path": "detailed_feedback", "title": "Detailed Feedback",
        "humanReadablePath": "Detailed Feedback", "isNullable": False}},
]}]}
ARCHIVE_REASON: Record = {"text": "Not a fit", "reasonType": "RejectedByOrg", "isArchived": False}


class FakeAshby:
    """A real HTTP server on 127.0.0.1 that behaves like Ashby, with an editable organisation.

    Use as a context manager (or ``start()``/``stop()``). ``base_url`` stands in for
    ``https://api.ashbyhq.com``: every endpoint is ``POST {base_url}/<resource>.<action>``.
    Changes bump ``updatedAt`` and, when a webhook target is set, POST the webhooks Ashby
    documents for them (synchronously unless ``async_webhooks=True``; then
    ``flush_webhooks()`` waits for them).

    Switches: ``fail_next``/``throttle_next``/``slow_next``/``truncate_next``/
    ``disconnect_next`` (transport), ``unsuccessful_next`` (HTTP 200, ``success: false``),
    ``revoke_credentials``/``revoke_permission`` (403), ``expire_sync_tokens``/
    ``invalidate_sync_tokens``/``expire_cursors``/``invalidate_cursors`` and
    ``max_incremental_pages`` (the five pagination codes), ``enforce_rate_limit`` (429),
    ``webhook_retries`` with ``retry_delay_scale`` (Ashby's retry schedule, sped up),
    ``webhook_action_ids=False`` (payloads exactly as the OpenAPI schemas list them).
    """

    provider = "ashby"
    capabilities = frozenset({JOB_PUBLISHING, PER_JOB_STAGES, STAGE_REMOVAL,
                              HIRING_TEAM_COORDINATOR, CANDIDATE_COORDINATOR, HARD_DELETES})

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        permissions: Iterable[str] = ALL_PERMISSIONS,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhooks_enabled: bool = True,
        webhook_types: Iterable[str] | None = None,
        webhook_action_ids: bool = True,
        async_webhooks: bool = False,
        webhook_retries: bool = False,
        retry_delay_scale: float = 1.0,
        rate_limit: int = 1000,
        rate_window: float = 60.0,
        enforce_rate_limit: bool = False,
        max_incremental_pages: int = DEFAULT_MAX_INCREMENTAL_PAGES,
        sync_token_ttl: float | None = None,
        cursor_ttl: float | None = None,
        pagination_error_status: int = 200,
        app_url: str = "https://app.ashbyhq.com",
        seed: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self.permissions = set(permissions)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhooks_enabled = webhooks_enabled
        self.webhook_types = frozenset(webhook_types) if webhook_types else WEBHOOK_TYPES
        # /docs/common-payload-data documents ``webhookActionId`` on every payload, the OpenAPI
        # payload schemas do not list it: False sends the schema-only body.
        self.webhook_action_ids = webhook_action_ids
        self.async_webhooks = async_webhooks
        self.webhook_retries = webhook_retries
        self.retry_delay_scale = retry_delay_scale
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.enforce_rate_limit = enforce_rate_limit
        self.max_incremental_pages = max_incremental_pages
        self.sync_token_ttl = sync_token_ttl
        self.cursor_ttl = cursor_ttl
        self.pagination_error_status = pagination_error_status
        self.app_url = app_url.rstrip("/")
        self._clock: Clock = clock or (lambda: datetime.now(UTC))

        self._lock = threading.RLock()
        self._rng = random.Random(seed)  # noqa: S311 - ids for test data, not security
        # Sync tokens and cursors are signed; a new key makes every issued one undecodable.
        self._keys = {"sync": secrets.token_bytes(16), "cursor": secrets.token_bytes(16)}
        self._last_stamp: datetime | None = None
        self._seq = 0
        self._order = itertools.count(1)
        self._tables: dict[str, dict[str, Record]] = {name: {} for name in (
            "users", "plans", "stages", "interviews", "jobs", "postings", "candidates",
            "applications", "schedules", "events", "feedback")}
        self._revoked = False
        self._token_generation = 0
        self._cursor_generation = 0
        self._faults: deque[Fault] = deque()
        self._window: deque[float] = deque()
        self._department_id = self._new_id()
        self._location_id = self._new_id()
        self._feedback_form_id = self._new_id()
        self._archive_reason_id = self._new_id()
        self._role_ids = {role: self._new_id() for role in HIRING_TEAM_ROLES}

        self.requests: Counter[str] = Counter()  # path -> count (all outcomes)
        self.statuses: Counter[int] = Counter()  # HTTP status -> count
        self.error_codes: Counter[str] = Counter()  # errorInfo.code -> count
        self.request_log: list[RequestRecord] = []
        self.webhook_deliveries: list[WebhookDelivery] = []

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhook_queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._webhook_client: httpx.Client | None = None
        self._retry_timers: set[threading.Timer] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAshby:
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="fake-ashby", daemon=True)
        self._thread.start()
        if self.async_webhooks:
            self._webhook_thread = threading.Thread(target=self._webhook_worker,
                                                    name="fake-ashby-webhooks", daemon=True)
            self._webhook_thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            timers = list(self._retry_timers)
            self._retry_timers.clear()
        for timer in timers:
            timer.cancel()
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

    def __enter__(self) -> FakeAshby:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Ashby is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Stands in for ``https://api.ashbyhq.com`` (the connector appends ``/<endpoint>``)."""
        return f"http://{self.host}:{self.port}"

    def connector_settings(self, webhook_secret: str) -> ConnectorSettings:
        """A ``type = "ashby"`` connector table pointing at this fake, with the API key (and
        ``webhook_secret``) in the environment its ``*_env`` keys name."""
        return ConnectorSettings(
            table={
                "type": self.provider,
                "base_url": self.base_url,
                "api_key_env": "FAKE_ASHBY_API_KEY",
                "webhook_secret_env": "FAKE_ASHBY_WEBHOOK_SECRET",
            },
            environ={
                "FAKE_ASHBY_API_KEY": self.api_key,
                "FAKE_ASHBY_WEBHOOK_SECRET": webhook_secret,
            },
        )

    # ------------------------------------------------------------------ credentials & faults

    def revoke_credentials(self) -> None:
        """The API key is deactivated: every request is answered 403 until restored."""
        with self._lock:
            self._revoked = True

    def restore_credentials(self) -> None:
        with self._lock:
            self._revoked = False

    def revoke_permission(self, permission: str) -> None:
        """Take one permission (``candidatesRead``, ``interviewsRead``...) off the API key."""
        with self._lock:
            self.permissions.discard(permission)

    def grant_permission(self, permission: str) -> None:
        with self._lock:
            self.permissions.add(permission)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to the next request that matches it, in order."""
        with self._lock:
            self._faults.extend(faults)

    def fail_next(self, status: int = 500, *, times: int = 1,
                  retry_after: float | str | None = None, path: str | None = None) -> None:
        value = None if retry_after is None else str(retry_after)
        self.inject(*(Fault("status", status, value, path=path) for _ in range(times)))

    def throttle_next(self, times: int = 1, *, retry_after: float | str = 1,
                      path: str | None = None) -> None:
        """Answer the next ``times`` requests 429 (``rate_limit_exceeded``) with Retry-After."""
        self.fail_next(429, times=times, retry_after=retry_after, path=path)

    def unsuccessful_next(self, times: int = 1, *, code: str = "internal_error",
                          message: str = "Something went wrong on Ashby's side (injected)",
                          path: str | None = None) -> None:
        """Answer HTTP 200 with ``success: false`` and this ``errorInfo``, ``times`` times."""
        self.inject(*(Fault("unsuccessful", 200, path=path, code=code, message=message)
                      for _ in range(times)))

    def slow_next(self, delay: float, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("slow", delay=delay, path=path) for _ in range(times)))

    def truncate_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("truncate", path=path) for _ in range(times)))

    def disconnect_next(self, *, times: int = 1, path: str | None = None) -> None:
        self.inject(*(Fault("disconnect", path=path) for _ in range(times)))

    def expire_sync_tokens(self) -> None:
        """Every syncToken issued so far answers ``sync_token_expired``."""
        with self._lock:
            self._token_generation += 1

    def expire_cursors(self) -> None:
        """Every cursor issued so far answers ``next_cursor_expired``."""
        with self._lock:
            self._cursor_generation += 1

    def invalidate_sync_tokens(self) -> None:
        """Every syncToken issued so far can no longer be decoded: ``sync_token_invalid``."""
        with self._lock:
            self._keys["sync"] = secrets.token_bytes(16)

    def invalidate_cursors(self) -> None:
        """Every cursor issued so far can no longer be decoded: ``invalid_next_cursor``."""
        with self._lock:
            self._keys["cursor"] = secrets.token_bytes(16)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.error_codes.clear()
            self.request_log.clear()

    def requests_to(self, endpoint: str) -> int:
        """How many requests reached ``/<endpoint>`` (e.g. ``application.list``)."""
        return self.requests[f"/{endpoint}"]

    # ------------------------------------------------------------------ webhooks

    def configure_webhook(self, url: str, secret: str, *, enabled: bool = True,
                          types: Iterable[str] | None = None) -> None:
        """Point webhooks of ``types`` (default: every documented type) at ``url``.

        In Ashby each webhook setting has one type, a request URL and an optional secret token;
        this is one setting per type, all with the same URL and secret. An empty ``secret``
        sends no ``Ashby-Signature`` header, as Ashby does without a secret token.
        """
        unknown = set(types or ()) - WEBHOOK_TYPES
        if unknown:
            raise FakeAshbyError(f"not documented webhook types: {sorted(unknown)}")
        self.webhook_url = url
        self.webhook_secret = secret
        self.webhooks_enabled = enabled
        self.webhook_types = frozenset(types) if types else WEBHOOK_TYPES

    def send_ping(self) -> list[WebhookDelivery]:
        """The ``ping`` Ashby sends to check that a webhook URL is live."""
        return self._emit([("ping", {"webhookActionType": "ping"})])

    def flush_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook and scheduled retry has been POSTed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                retries = len(self._retry_timers)
            if self._webhook_queue.unfinished_tasks == 0 and retries == 0:
                return
            time.sleep(0.01)

    def redeliver(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Send a past delivery again byte for byte (same webhookActionId), as a retry does."""
        again = WebhookDelivery(delivery.action, delivery.webhook_action_id, delivery.body,
                                dict(delivery.headers))
        self._post_webhook(again)
        return again

    def _emit(self, webhooks: Sequence[tuple[str, Record]]) -> list[WebhookDelivery]:
        """Send the webhooks of one underlying event; related ones share a webhookActionId."""
        if not (self.webhooks_enabled and self.webhook_url):
            return []
        action_id = str(uuid.uuid4())
        deliveries: list[WebhookDelivery] = []
        for action, data in webhooks:
            if action not in self.webhook_types:
                continue
            payload: Record = {"action": action, "data": data}
            if self.webhook_action_ids:
                payload = {"webhookActionId": action_id, **payload}
            body = ashby_json(payload)
            headers = {"Content-Type": "application/json", "User-Agent": "fake-ashby"}
            if self.webhook_secret:
                headers["Ashby-Signature"] = sign(body, self.webhook_secret)
            deliveries.append(WebhookDelivery(
                action, action_id if self.webhook_action_ids else None, body, headers))
        for delivery in deliveries:
            if self.async_webhooks and self._webhook_thread is not None:
                self._webhook_queue.put(delivery)
            else:
                self._post_webhook(delivery)
        return deliveries

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
            delivery.error = None
        except httpx.HTTPError as exc:
            delivery.status_code = None
            delivery.error = type(exc).__name__
        with self._lock:
            delivery.attempts += 1
            if delivery.attempts == 1:
                self.webhook_deliveries.append(delivery)
            if (self.webhook_retries and not delivery.delivered
                    and delivery.status_code not in WEBHOOK_NO_RETRY
                    and delivery.attempts < WEBHOOK_MAX_ATTEMPTS):
                # Delay = (2^attempt_number - 1) x 10 seconds (/docs/retries).
                delay = (2 ** delivery.attempts - 1) * 10 * self.retry_delay_scale
                timer = threading.Timer(delay, self._retry, args=(delivery,))
                timer.daemon = True
                self._retry_timers.add(timer)
                timer.start()

    def _retry(self, delivery: WebhookDelivery) -> None:
        try:
            if self._server is not None:  # a stopped fake sends nothing more
                self._post_webhook(delivery)
        finally:
            with self._lock:
                self._retry_timers.discard(threading.current_thread())

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

    def record(self, table: str, record_id: str) -> Record:
        """One record as the API serves it (``users``, ``jobs``, ``applications``...)."""
        with self._lock:
            return self._public(table, self._get(table, record_id))

    def records(self, table: str) -> list[Record]:
        with self._lock:
            return [self._public(table, r) for r in self._ordered(table)]

    def user_id(self, email: str) -> str:
        with self._lock:
            for user in self._tables["users"].values():
                if user["email"] == email:
                    return str(user["id"])
        raise FakeAshbyError(f"no user {email!r}")

    def stage_id(self, job_id: str, name: str) -> str:
        with self._lock:
            for stage in self._plan_stages(job_id, pipeline_only=False):
                if stage["title"] == name:
                    return str(stage["id"])
        raise FakeAshbyError(f"job {job_id} has no stage named {name!r}")

    def stage_ids(self, job_id: str) -> list[str]:
        """The job's pipeline stages in plan order (without the Lead, Hired and Archived ones)."""
        with self._lock:
            return [str(s["id"]) for s in self._plan_stages(job_id)]

    def system_stage_id(self, job_id: str, stage_type: str) -> str:
        """The id of the job plan's ``Lead``, ``Hired`` or ``Archived`` stage."""
        with self._lock:
            for stage in self._plan_stages(job_id, pipeline_only=False):
                if stage["type"] == stage_type:
                    return str(stage["id"])
        raise FakeAshbyError(f"job {job_id} has no {stage_type} stage")

    def interview_kind_id(self, job_id: str, stage_name: str, name: str | None = None) -> str:
        """The interview (``interview.list`` id) planned in a stage; the first if no name."""
        stage = self.stage_id(job_id, stage_name)
        with self._lock:
            kinds = [k for k in self._ordered("interviews")
                     if k["_stage"] == stage and not k["isArchived"]
                     and (name is None or k["title"] == name)]
        if not kinds:
            raise FakeAshbyError(f"stage {stage_name!r} of job {job_id} plans no interview")
        return str(kinds[0]["id"])

    # ------------------------------------------------------------------ organisation: people

    def add_user(self, email: str, first_name: str, last_name: str, *,
                 role: PersonRole | None = None) -> str:
        with self._lock:
            now = self._stamp()
            user_id = self._new_id()
            self._insert("users", {
                "id": user_id,
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
                "globalRole": GLOBAL_ROLES[role],
                "isEnabled": True,
                "updatedAt": now,
            })
        return user_id

    def deactivate_user(self, user_id: str) -> None:
        """``isEnabled`` false; user.list hides the user unless ``includeDeactivated``."""
        with self._lock:
            self._touch(self._get("users", user_id), isEnabled=False)

    # ------------------------------------------------------------------ organisation: jobs

    def create_job(
        self,
        name: str,
        *,
        stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
        status: Literal["open", "draft", "closed"] = "open",
        recruiter_id: str | None = None,
        coordinator_id: str | None = None,
        hiring_manager_id: str | None = None,
    ) -> str:
        """A job with its own interview plan and hiring team; sends ``jobCreate``."""
        with self._lock:
            for user in (recruiter_id, coordinator_id, hiring_manager_id):
                if user is not None:
                    self._get("users", user)
            now = self._stamp()
            job_id, plan_id = self._new_id(), self._new_id()
            self._insert("plans", {"id": plan_id, "title": f"{name} Interview Plan",
                                   "isArchived": False, "createdAt": now, "updatedAt": now,
                                   "_job": job_id})
            plan: list[tuple[str, str, tuple[str, ...]]] = [("Lead", "Lead", ())]
            for index, (stage_name, interviews) in enumerate(stages):
                kind = ("Offer" if stage_name == "Offer"
                        else "PreInterviewScreen" if index == 0 else "Active")
                plan.append((stage_name, kind, tuple(interviews)))
            plan += [("Hired", "Hired", ()), ("Archived", "Archived", ())]
            for order, (title, kind, interviews) in enumerate(plan):
                self._insert_stage(job_id, plan_id, title, kind, order, interviews)
            team = [{"userId": user, "role": role} for user, role in (
                (recruiter_id, RECRUITER_ROLE), (coordinator_id, COORDINATOR_ROLE),
                (hiring_manager_id, HIRING_MANAGER_ROLE)) if user is not None]
            job: Record = {
                "id": job_id,
                "title": name,
                "confidential": False,
                "status": JOB_STATUSES[status],
                "employmentType": "FullTime",
                "locationId": self._location_id,
                "departmentId": self._department_id,
                "defaultInterviewPlanId": plan_id,
                "interviewPlanIds": [plan_id],
                "customFields": [],
                "jobPostingIds": [],
                "createdAt": now,
                "updatedAt": now,
                "_team": team,
                "_author": recruiter_id,
            }
            if status == "open":
                job["openedAt"] = now
            if status == "closed":
                job["openedAt"] = job["closedAt"] = now
            self._insert("jobs", job)
            payload = {"job": self._job_public(job)}
        self._emit([("jobCreate", payload)])
        return job_id

    def add_stage(self, job_id: str, name: str, interviews: Sequence[str] = ()) -> str:
        """A stage before Offer (or before Hired); no webhook: interviewStage.list shows it."""
        with self._lock:
            job = self._get("jobs", job_id)
            stages = self._plan_stages(job_id, pipeline_only=False)
            position = next(int(s["orderInInterviewPlan"]) for s in stages
                            if s["type"] in ("Offer", "Hired", "Archived"))
            for stage in stages:
                if int(stage["orderInInterviewPlan"]) >= position:
                    self._touch(stage, orderInInterviewPlan=int(stage["orderInInterviewPlan"]) + 1)
            stage_id = self._insert_stage(job_id, str(job["defaultInterviewPlanId"]), name,
                                          "Active", position, tuple(interviews))
            self._touch(self._get("plans", str(job["defaultInterviewPlanId"])))
            return stage_id

    def remove_stage(self, stage_id: str) -> None:
        """Take a stage off its plan; its interviews are archived. No webhook."""
        with self._lock:
            stage = self._get("stages", stage_id)
            if stage["type"] in SYSTEM_STAGE_TYPES:
                raise FakeAshbyError(f"the {stage['type']} stage cannot be removed")
            self._touch(stage, _removed=True)
            for kind in self._tables["interviews"].values():
                if kind["_stage"] == stage_id:
                    self._touch(kind, isArchived=True)
            self._touch(self._get("plans", str(stage["interviewPlanId"])))

    def add_interview_kind(self, stage_id: str, name: str) -> str:
        """An interview (``interview.list``) planned in a stage; no webhook."""
        with self._lock:
            stage = self._get("stages", stage_id)
            kind_id = self._insert_kind(str(stage["_job"]), stage_id, name)
            self._touch(self._get("plans", str(stage["interviewPlanId"])))
            return kind_id

    def publish_job(self, job_id: str) -> str:
        """Publish the job's posting (created on first use); sends ``jobPostingPublish`` and
        ``jobPostingUpdate``. Returns the posting id."""
        with self._lock:
            job = self._get("jobs", job_id)
            now = self._stamp()
            posting = next((p for p in self._tables["postings"].values()
                            if p["jobId"] == job_id), None)
            if posting is None:
                posting_id = self._new_id()
                posting = {
                    "id": posting_id,
                    "title": job["title"],
                    "jobId": job_id,
                    "isListed": True,
                    "publishedDate": now[:10],
                    "updatedAt": now,
                    "_published": True,
                }
                self._insert("postings", posting)
                self._touch(job, now=now, jobPostingIds=[*job["jobPostingIds"], posting_id])
            else:
                self._touch(posting, now=now, _published=True, publishedDate=now[:10])
            payload = {"jobPosting": self._posting_public(posting)}
        self._emit([("jobPostingPublish", payload), ("jobPostingUpdate", payload)])
        return str(posting["id"])

    def unpublish_job(self, job_id: str) -> None:
        """Sends ``jobPostingUnpublish`` and ``jobPostingUpdate``; jobPosting.list drops it."""
        with self._lock:
            self._get("jobs", job_id)
            posting = next((p for p in self._tables["postings"].values()
                            if p["jobId"] == job_id and p["_published"]), None)
            if posting is None:
                raise FakeAshbyError(f"job {job_id} has no published posting")
            self._touch(posting, _published=False)
            payload = {"jobPosting": self._posting_public(posting)}
        self._emit([("jobPostingUnpublish", payload), ("jobPostingUpdate", payload)])

    def close_job(self, job_id: str) -> None:
        """Status Closed; sends ``jobUpdate``."""
        with self._lock:
            job = self._get("jobs", job_id)
            now = self._stamp()
            self._touch(job, now=now, status="Closed", closedAt=now)
            payload = {"job": self._job_public(job)}
        self._emit([("jobUpdate", payload)])

    def set_job_status(self, job_id: str, status: Literal["Draft", "Open", "Closed", "Archived"]
                       ) -> None:
        """Any documented job status (job.setStatus); sends ``jobUpdate``."""
        if status not in _JOB_STATUS_VALUES:
            raise FakeAshbyError(f"unknown job status {status!r}")
        with self._lock:
            job = self._get("jobs", job_id)
            now = self._stamp()
            changes: Record = {"status": status}
            if status == "Open" and "openedAt" not in job:
                changes["openedAt"] = now
            if status == "Closed":
                changes["closedAt"] = now
            self._touch(job, now=now, **changes)
            payload = {"job": self._job_public(job)}
        self._emit([("jobUpdate", payload)])

    def rename_job(self, job_id: str, name: str) -> None:
        with self._lock:
            job = self._get("jobs", job_id)
            self._touch(job, title=name)
            payload = {"job": self._job_public(job)}
        self._emit([("jobUpdate", payload)])

    def set_job_coordinator(self, job_id: str, user_id: str) -> None:
        """Replace the job's Recruiting Coordinator; sends ``jobUpdate``."""
        with self._lock:
            job = self._get("jobs", job_id)
            self._get("users", user_id)
            team = [m for m in job["_team"] if m["role"] != COORDINATOR_ROLE]
            self._touch(job, _team=[*team, {"userId": user_id, "role": COORDINATOR_ROLE}])
            payload = {"job": self._job_public(job)}
        self._emit([("jobUpdate", payload)])

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
    ) -> tuple[str, str]:
        """A new candidate applying to a job: ``(candidate id, application id)``.

        Sends ``applicationSubmit``.
        """
        with self._lock:
            self._get("jobs", job_id)
            now = self._stamp()
            candidate_id = self._new_id()
            self._insert("candidates", {
                "id": candidate_id,
                "createdAt": now,
                "updatedAt": now,
                "name": f"{first_name} {last_name}",
                "primaryEmailAddress": {"value": email, "type": "Personal", "isPrimary": True},
                "emailAddresses": [{"value": email, "type": "Personal", "isPrimary": True}],
                "phoneNumbers": [],
                "socialLinks": [],
                "tags": [],
                "applicationIds": [],
                "fileHandles": [],
                "customFields": [],
                "profileUrl": f"{self.app_url}/candidate-searches/new/right-side/candidates/"
                              f"{candidate_id}",
            })
            application_id = self._insert_application(candidate_id, job_id, stage_id,
                                                      coordinator_id, now)
            payload = {"application": self._application_public(
                self._get("applications", application_id))}
        self._emit([("applicationSubmit", payload)])
        return candidate_id, application_id

    def add_application(self, candidate_id: str, job_id: str, *, stage_id: str | None = None
                        ) -> str:
        """An existing candidate considered for another job; sends ``applicationSubmit``."""
        with self._lock:
            self._get("candidates", candidate_id)
            application_id = self._insert_application(candidate_id, job_id, stage_id, None,
                                                      self._stamp())
            payload = {"application": self._application_public(
                self._get("applications", application_id))}
        self._emit([("applicationSubmit", payload)])
        return application_id

    def move_application(self, application_id: str, stage_id: str) -> None:
        """Another stage of the same plan; sends ``candidateStageChange`` + ``applicationUpdate``.

        Moving to the plan's Archived stage rejects, to its Hired stage hires.
        """
        with self._lock:
            application = self._get("applications", application_id)
            stage = self._get("stages", stage_id)
            if stage["_job"] != application["_job"] or stage["_removed"]:
                raise FakeAshbyError("the stage is not on the application's interview plan")
            kind = stage["type"]
        if kind == "Archived":
            self.reject_application(application_id)
            return
        if kind == "Hired":
            self.hire(application_id)
            return
        with self._lock:
            self._enter_stage(application, stage, self._stamp())
            payload = {"application": self._application_public(application)}
        self._emit([("candidateStageChange", payload), ("applicationUpdate", payload)])

    def advance_application(self, application_id: str) -> str:
        """The next pipeline stage of the plan; returns its id."""
        with self._lock:
            application = self._get("applications", application_id)
            stages = self.stage_ids(str(application["_job"]))
            current = application["_stage"]
            index = stages.index(current) + 1 if current in stages else 0
            if index >= len(stages):
                raise FakeAshbyError("the application is in the last stage")
            target = stages[index]
        self.move_application(application_id, target)
        return target

    def reject_application(self, application_id: str) -> None:
        """To the Archived stage with an archive reason; sends ``candidateStageChange`` +
        ``applicationUpdate``."""
        with self._lock:
            application = self._get("applications", application_id)
            archived = self._get("stages", self.system_stage_id(str(application["_job"]),
                                                                "Archived"))
            now = self._stamp()
            before = (application.get("_before_archive") if application["status"] == "Archived"
                      else application["_stage"])
            self._touch(application, now=now, _before_archive=before,
                        archiveReason={"id": self._archive_reason_id, **ARCHIVE_REASON,
                                       "customFields": []},
                        archivedAt=now)
            self._enter_stage(application, archived, now)
            payload = {"application": self._application_public(application)}
        self._emit([("candidateStageChange", payload), ("applicationUpdate", payload)])

    def unreject_application(self, application_id: str) -> None:
        """Back to the stage it was archived from; same webhooks as a stage change."""
        with self._lock:
            application = self._get("applications", application_id)
            if application["status"] != "Archived":
                raise FakeAshbyError("the application is not archived")
            target = application.get("_before_archive") or self.stage_ids(
                str(application["_job"]))[0]
            now = self._stamp()
            application.pop("archiveReason", None)
            application.pop("archivedAt", None)
            self._enter_stage(application, self._get("stages", str(target)), now)
            payload = {"application": self._application_public(application)}
        self._emit([("candidateStageChange", payload), ("applicationUpdate", payload)])

    def hire(self, application_id: str) -> None:
        """To the Hired stage; sends ``candidateHire`` (no offer: none was made), then
        ``applicationUpdate`` and ``candidateStageChange``, all with one webhookActionId."""
        with self._lock:
            application = self._get("applications", application_id)
            hired = self._get("stages", self.system_stage_id(str(application["_job"]), "Hired"))
            self._enter_stage(application, hired, self._stamp())
            payload = {"application": self._application_public(application)}
        self._emit([("candidateHire", payload), ("applicationUpdate", payload),
                    ("candidateStageChange", payload)])

    def delete_application(self, application_id: str) -> None:
        raise NotSupportedByProvider(
            "Ashby documents no way to delete a single application and no webhook for it; "
            "archive it (reject_application) or delete the candidate")

    def delete_candidate(self, candidate_id: str) -> None:
        """The candidate and everything under it disappear; sends ``candidateDelete``."""
        with self._lock:
            candidate = self._get("candidates", candidate_id)
            for application_id in list(candidate["applicationIds"]):
                self._drop_application(str(application_id))
            del self._tables["candidates"][candidate_id]
        self._emit([("candidateDelete", {"candidate": {"id": candidate_id}})])

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
    ) -> str:
        """A Scheduled interview schedule with one event; returns the interview *event* id.

        ``external_event_id`` becomes the event's ``interviewerCalendarEventId``. Sends
        ``interviewScheduleCreate`` and ``interviewScheduleUpdate``.
        """
        with self._lock:
            application = self._get("applications", application_id)
            kind = self._get("interviews", interview_kind_id)
            if kind["jobId"] not in (None, application["_job"]):
                raise FakeAshbyError("the interview belongs to another job")
            for user in (*interviewer_ids, *([organizer_id] if organizer_id else [])):
                self._get("users", user)
            now = self._stamp()
            schedule_id, event_id = self._new_id(), self._new_id()
            schedule = {
                "id": schedule_id,
                "status": "Scheduled",
                "applicationId": application_id,
                "interviewStageId": application["_stage"],
                "createdAt": now,
                "updatedAt": now,
                "_scheduled_by": organizer_id,
            }
            self._insert("schedules", schedule)
            self._insert("events", {
                "id": event_id,
                "interviewId": interview_kind_id,
                "interviewScheduleId": schedule_id,
                "createdAt": now,
                "updatedAt": now,
                "startTime": iso_ms(starts_at),
                "endTime": iso_ms(ends_at),
                "feedbackLink": f"{self.app_url}/interview-briefings/{event_id}/feedback",
                "location": None,
                "meetingLink": None,
                "interviewerCalendarEventId": external_event_id,
                "hasSubmittedFeedback": False,
                "_interviewers": [{"userId": user, "isFeedbackRequired":
                                   bool(kind["isFeedbackRequired"])} for user in interviewer_ids],
            })
            created, updated = self._schedule_payloads(schedule)
        self._emit([("interviewScheduleCreate", created), ("interviewScheduleUpdate", updated)])
        return event_id

    def reschedule_interview(self, interview_id: str, starts_at: datetime, ends_at: datetime
                             ) -> None:
        """New times for the event; sends ``interviewScheduleUpdate``."""
        self._change_event(interview_id, startTime=iso_ms(starts_at), endTime=iso_ms(ends_at))

    def add_interviewer(self, interview_id: str, user_id: str) -> None:
        with self._lock:
            event = self._get("events", interview_id)
            self._get("users", user_id)
            if any(i["userId"] == user_id for i in event["_interviewers"]):
                raise FakeAshbyError(f"user {user_id} is already on interview {interview_id}")
            kind = self._get("interviews", str(event["interviewId"]))
            panel = [*event["_interviewers"],
                     {"userId": user_id, "isFeedbackRequired": bool(kind["isFeedbackRequired"])}]
        self._change_event(interview_id, _interviewers=panel)

    def remove_interviewer(self, interview_id: str, user_id: str) -> None:
        with self._lock:
            event = self._get("events", interview_id)
            panel = [i for i in event["_interviewers"] if i["userId"] != user_id]
            if len(panel) == len(event["_interviewers"]):
                raise FakeAshbyError(f"user {user_id} is not on interview {interview_id}")
        self._change_event(interview_id, _interviewers=panel)

    def set_interviewer_response(self, interview_id: str, user_id: str, response: Response
                                 ) -> None:
        raise NotSupportedByProvider(
            "Ashby's interview events list interviewers without an RSVP (interviewEvent.list "
            "'interviewers'); responses live only in the interviewers' calendars")

    def cancel_interview(self, interview_id: str) -> None:
        """Cancel the event and its feedback. The schedule's only event stays listed under
        the now ``Cancelled`` schedule (UNCONFIRMED: the interviewSchedule status enum has
        Cancelled, and a cancelled schedule still says what was cancelled, so a webhook reader
        can tell which interview went); one of several events is taken off the schedule.
        Sends ``interviewScheduleUpdate``."""
        with self._lock:
            event = self._get("events", interview_id)
            schedule = self._get("schedules", str(event["interviewScheduleId"]))
            if schedule["status"] == "Cancelled":
                raise FakeAshbyError(f"interview {interview_id} is already cancelled")
            for feedback in list(self._tables["feedback"].values()):
                if feedback["interviewEventId"] == interview_id:
                    del self._tables["feedback"][str(feedback["id"])]
            others = [e for e in self._tables["events"].values()
                      if e["interviewScheduleId"] == schedule["id"] and e["id"] != interview_id]
            now = self._stamp()
            if others:
                del self._tables["events"][interview_id]
                self._touch(schedule, now=now)
            else:
                self._touch(event, now=now, hasSubmittedFeedback=False)
                self._touch(schedule, now=now, status="Cancelled")
            _, updated = self._schedule_payloads(schedule)
        self._emit([("interviewScheduleUpdate", updated)])

    def submit_scorecard(self, interview_id: str, user_id: str) -> str:
        """The interviewer's feedback (applicationFeedback.list). No webhook is documented for
        feedback: the event's ``hasSubmittedFeedback`` and ``updatedAt`` change."""
        with self._lock:
            event = self._get("events", interview_id)
            if not any(i["userId"] == user_id for i in event["_interviewers"]):
                raise FakeAshbyError(f"user {user_id} is not on interview {interview_id}")
            schedule = self._get("schedules", str(event["interviewScheduleId"]))
            now = self._stamp()
            feedback_id = self._new_id()
            self._insert("feedback", {
                "id": feedback_id,
                "applicationId": schedule["applicationId"],
                "feedbackFormDefinitionId": self._feedback_form_id,
                "interviewId": event["interviewId"],
                "interviewEventId": interview_id,
                "submittedAt": now,
                "_user": user_id,
                "submittedValues": {"overall_recommendation": "hire",
                                    "detailed_feedback": "Clear and careful (fake)."},
            })
            self._touch(event, now=now, hasSubmittedFeedback=True)
            self._touch(schedule, now=now)
            return feedback_id

    def delete_scorecard(self, scorecard_id: str) -> None:
        """The feedback disappears from applicationFeedback.list; no webhook."""
        with self._lock:
            feedback = self._get("feedback", scorecard_id)
            del self._tables["feedback"][scorecard_id]
            event = self._tables["events"].get(str(feedback["interviewEventId"]))
            if event is not None:
                left = any(f["interviewEventId"] == event["id"]
                           for f in self._tables["feedback"].values())
                self._touch(event, hasSubmittedFeedback=left)
                self._touch(self._get("schedules", str(event["interviewScheduleId"])))

    # ------------------------------------------------------------------ internals: storage

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _stamp(self) -> str:
        """Now, strictly after the previous stamp, at Ashby's millisecond precision."""
        with self._lock:
            now = self._clock().astimezone(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last_stamp is not None and now <= self._last_stamp:
                now = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = now
            return iso_ms(now)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _insert(self, table: str, record: Record) -> None:
        record["_n"] = next(self._order)
        record["_seq"] = self._next_seq()
        self._tables[table][str(record["id"])] = record

    def _touch(self, record: Record, *, now: str | None = None, **changes: Any) -> None:
        """Apply changes; the record's ``updatedAt`` (if it has one) and change sequence move."""
        record.update(changes)
        if "updatedAt" in record:
            record["updatedAt"] = now or self._stamp()
        record["_seq"] = self._next_seq()

    def _get(self, table: str, record_id: str) -> Record:
        try:
            return self._tables[table][str(record_id)]
        except KeyError:
            raise FakeAshbyError(f"no {table} record {record_id}") from None

    def _ordered(self, table: str) -> list[Record]:
        return sorted(self._tables[table].values(), key=lambda r: int(r["_n"]))

    def _plan_stages(self, job_id: str, *, pipeline_only: bool = True) -> list[Record]:
        job = self._get("jobs", job_id)
        stages = [s for s in self._tables["stages"].values()
                  if s["interviewPlanId"] == job["defaultInterviewPlanId"] and not s["_removed"]
                  and not (pipeline_only and s["type"] in SYSTEM_STAGE_TYPES)]
        return sorted(stages, key=lambda s: int(s["orderInInterviewPlan"]))

    def _insert_stage(self, job_id: str, plan_id: str, title: str, kind: str, order: int,
                      interviews: Iterable[str]) -> str:
        stage_id = self._new_id()
        self._insert("stages", {
            "id": stage_id,
            "title": title,
            "type": kind,
            "orderInInterviewPlan": order,
            "interviewPlanId": plan_id,
            "_job": job_id,
            "_activity": self._new_id(),
            "_removed": False,
        })
        for interview in interviews:
            self._insert_kind(job_id, stage_id, interview)
        return stage_id

    def _insert_kind(self, job_id: str, stage_id: str, title: str) -> str:
        kind_id = self._new_id()
        self._insert("interviews", {
            "id": kind_id,
            "title": title,
            "externalTitle": title,
            "isArchived": False,
            "isDebrief": False,
            "isFeedbackRequired": True,
            "isFeedbackRequested": True,
            "instructionsHtml": f"<p>{title}</p>",
            "instructionsPlain": title,
            "jobId": job_id,
            "feedbackFormDefinitionId": self._feedback_form_id,
            "_stage": stage_id,
            "_plan_entry": self._new_id(),
        })
        return kind_id

    def _insert_application(self, candidate_id: str, job_id: str, stage_id: str | None,
                            coordinator_id: str | None, now: str) -> str:
        target = stage_id or self.stage_ids(job_id)[0]
        stage = self._get("stages", target)
        if stage["_job"] != job_id or stage["_removed"]:
            raise FakeAshbyError("the stage is not on the job's interview plan")
        if coordinator_id is not None:
            self._get("users", coordinator_id)
        posting = next((p for p in self._tables["postings"].values()
                        if p["jobId"] == job_id and p["_published"]), None)
        application_id = self._new_id()
        application: Record = {
            "id": application_id,
            "createdAt": now,
            "updatedAt": now,
            "status": APPLICATION_STATUS_BY_STAGE_TYPE[str(stage["type"])],
            "customFields": [],
            "_candidate": candidate_id,
            "_job": job_id,
            "_stage": target,
            "_team": ([{"userId": coordinator_id, "role": COORDINATOR_ROLE}]
                      if coordinator_id else []),
        }
        if posting is not None:
            application["appliedViaJobPostingId"] = posting["id"]
        self._insert("applications", application)
        candidate = self._get("candidates", candidate_id)
        self._touch(candidate, now=now,
                    applicationIds=[*candidate["applicationIds"], application_id])
        return application_id

    def _enter_stage(self, application: Record, stage: Record, now: str) -> None:
        status = APPLICATION_STATUS_BY_STAGE_TYPE[str(stage["type"])]
        if status != "Archived":
            application.pop("archiveReason", None)
            application.pop("archivedAt", None)
        self._touch(application, now=now, _stage=stage["id"], status=status)

    def _drop_application(self, application_id: str) -> None:
        for schedule in list(self._tables["schedules"].values()):
            if schedule["applicationId"] == application_id:
                for event in list(self._tables["events"].values()):
                    if event["interviewScheduleId"] == schedule["id"]:
                        del self._tables["events"][str(event["id"])]
                del self._tables["schedules"][str(schedule["id"])]
        for feedback in list(self._tables["feedback"].values()):
            if feedback["applicationId"] == application_id:
                del self._tables["feedback"][str(feedback["id"])]
        del self._tables["applications"][application_id]

    def _change_event(self, event_id: str, **changes: Any) -> None:
        with self._lock:
            event = self._get("events", event_id)
            schedule = self._get("schedules", str(event["interviewScheduleId"]))
            now = self._stamp()
            self._touch(event, now=now, **changes)
            self._touch(schedule, now=now)
            _, updated = self._schedule_payloads(schedule)
        self._emit([("interviewScheduleUpdate", updated)])

    def _schedule_payloads(self, schedule: Record) -> tuple[Record, Record]:
        """``interviewScheduleCreate`` and ``interviewScheduleUpdate`` data (the latter adds
        ``candidateId``)."""
        public = self._schedule_public(schedule)
        application = self._tables["applications"].get(str(schedule["applicationId"]))
        candidate = application["_candidate"] if application else None
        return {"interviewSchedule": public}, {"interviewSchedule": {**public,
                                                                     "candidateId": candidate}}

    # ------------------------------------------------------------------ internals: shapes

    def _public(self, table: str, record: Record, expand: frozenset[str] = frozenset()
                ) -> Record:
        serialise: dict[str, Callable[[Record], Record]] = {
            "users": self._user_public,
            "plans": self._plan_public,
            "stages": self._stage_public,
            "interviews": self._interview_public,
            "jobs": lambda r: self._job_public(r, expand),
            "postings": self._posting_public,
            "candidates": self._candidate_public,
            "applications": lambda r: self._application_public(r, expand),
            "schedules": self._schedule_public,
            "events": lambda r: self._event_public(r, expand),
            "feedback": self._feedback_public,
        }
        copied: Record = json.loads(json.dumps(serialise[table](record)))
        return copied

    @staticmethod
    def _visible(record: Record) -> Record:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    def _user_public(self, user: Record) -> Record:
        return self._visible(user)

    def _plan_public(self, plan: Record) -> Record:
        return self._visible(plan)

    def _stage_public(self, stage: Record) -> Record:
        return self._visible(stage)

    def _interview_public(self, interview: Record) -> Record:
        return self._visible(interview)

    def _member_public(self, member: Mapping[str, Any]) -> Record:
        user = self._tables["users"].get(str(member["userId"]), {})
        return {"email": user.get("email"), "firstName": user.get("firstName"),
                "lastName": user.get("lastName"), "role": member["role"],
                "userId": member["userId"]}

    def _job_public(self, job: Record, expand: frozenset[str] = frozenset()) -> Record:
        public = self._visible(job)
        if UNPUBLISHED_POSTINGS not in expand:
            public["jobPostingIds"] = [p for p in job["jobPostingIds"]
                                       if self._tables["postings"][p]["_published"]]
        public["hiringTeam"] = [self._member_public(m) for m in job["_team"]]
        author = self._tables["users"].get(str(job.get("_author")))
        if author is not None:
            public["author"] = self._user_public(author)
        if "location" in expand:
            public["location"] = {"id": self._location_id, "name": "Berlin Office",
                                  "isArchived": False, "isRemote": False,
                                  "workplaceType": "OnSite", "type": "Location"}
        if "openings" in expand:
            public["openings"] = []
        return public

    def _posting_public(self, posting: Record) -> Record:
        public = self._visible(posting)
        public.update({
            "departmentName": "Engineering",
            "teamName": "Engineering",
            "locationName": "Berlin Office",
            "locationIds": {"primaryLocationId": self._location_id, "secondaryLocationIds": []},
            "workplaceType": "OnSite",
            "employmentType": "FullTime",
            "externalLink": f"https://jobs.ashbyhq.com/fake/{posting['id']}",
            "applyLink": f"https://jobs.ashbyhq.com/fake/{posting['id']}/application",
            "shouldDisplayCompensationOnJobBoard": False,
        })
        return public

    def _candidate_public(self, candidate: Record) -> Record:
        return self._visible(candidate)

    def _application_public(self, application: Record, expand: frozenset[str] = frozenset()
                            ) -> Record:
        candidate = self._tables["candidates"][str(application["_candidate"])]
        job = self._tables["jobs"][str(application["_job"])]
        stage = self._tables["stages"][str(application["_stage"])]
        team = {m["role"]: m for m in job["_team"]}
        team.update({m["role"]: m for m in application["_team"]})
        public = self._visible(application)
        public.update({
            "candidate": {"id": candidate["id"], "name": candidate["name"],
                          "primaryEmailAddress": candidate["primaryEmailAddress"]},
            "currentInterviewStage": self._stage_public(stage),
            "job": {"id": job["id"], "title": job["title"], "locationId": job["locationId"],
                    "departmentId": job["departmentId"]},
            "hiringTeam": [self._member_public(m) for m in team.values()],
        })
        if "openings" in expand:
            public["openings"] = []
        return public

    def _schedule_public(self, schedule: Record) -> Record:
        public = self._visible(schedule)
        organiser = self._tables["users"].get(str(schedule.get("_scheduled_by")))
        public["scheduledBy"] = self._user_public(organiser) if organiser else None
        events = sorted((e for e in self._tables["events"].values()
                         if e["interviewScheduleId"] == schedule["id"]),
                        key=lambda e: int(e["_n"]))
        public["interviewEvents"] = [self._event_public(e) for e in events]
        return public

    def _event_public(self, event: Record, expand: frozenset[str] = frozenset()) -> Record:
        public = self._visible(event)
        interviewers = []
        for entry in event["_interviewers"]:
            user = self._tables["users"].get(str(entry["userId"]))
            if user is None:
                continue
            interviewers.append({**self._user_public(user), "trainingRole": None,
                                 "interviewerPool": None,
                                 "isFeedbackRequired": entry["isFeedbackRequired"]})
        public["interviewerUserIds"] = [i["id"] for i in interviewers]  # deprecated, still sent
        public["interviewers"] = interviewers
        public["notetakerTranscriptId"] = None
        if "interview" in expand:
            kind = self._tables["interviews"].get(str(event["interviewId"]))
            if kind is not None:
                public["interview"] = self._interview_public(kind)
        return public

    def _feedback_public(self, feedback: Record) -> Record:
        public = self._visible(feedback)
        user = self._tables["users"].get(str(feedback["_user"]))
        public["submittedByUser"] = self._user_public(user) if user else None
        public["formDefinition"] = FEEDBACK_FORM
        return public

    # ------------------------------------------------------------------ internals: HTTP

    def _handle(self, method: str, raw_path: str, authorization: str | None, body: bytes
                ) -> _Reply:
        path = raw_path.split("?", 1)[0]
        with self._lock:
            self.requests[path] += 1
            fault = self._take_fault(path)
            reply = self._route(method, path, authorization, body, fault)
            self.statuses[reply.status] += 1
            if reply.error_code:
                self.error_codes[reply.error_code] += 1
            try:
                logged: Any = json.loads(body) if body else {}
            except (ValueError, UnicodeDecodeError):
                logged = body.decode("utf-8", "replace")
            self.request_log.append(RequestRecord(method, path, logged, reply.status,
                                                  reply.error_code))
            return reply

    def _take_fault(self, path: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(path):
                del self._faults[index]
                return fault
        return None

    def _route(self, method: str, path: str, authorization: str | None, body: bytes,
               fault: Fault | None) -> _Reply:
        if fault is not None and fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            code = "rate_limit_exceeded" if fault.status == 429 else "internal_error"
            return _error_reply(code, f"Injected HTTP {fault.status}", fault.status, headers)
        if fault is not None and fault.kind == "unsuccessful":
            return _error_reply(fault.code, fault.message)
        endpoint = path.removeprefix("/")
        handler = self._endpoints().get(endpoint)
        if handler is None:
            reply = _error_reply("not_found", f"No such endpoint: {path}", 404)
        elif method != "POST":
            reply = _error_reply("method_not_allowed", "Use POST", 405, {"Allow": "POST"})
        else:
            reply = self._call(endpoint, handler, authorization, body)
        reply.fault = fault
        return reply

    def _call(self, endpoint: str, handler: Callable[[Record], Record],
              authorization: str | None, body: bytes) -> _Reply:
        credentials = _basic_credentials(authorization)
        if credentials is None or not credentials[0]:
            return _error_reply("missing_api_key",
                                "Missing API key: send it as the basic auth username", 401)
        if self._revoked or not hmac.compare_digest(credentials[0].encode(),
                                                    self.api_key.encode()):
            return _error_reply("invalid_api_key", "The API key is invalid or deactivated", 403)
        permission = PERMISSIONS[endpoint]
        if permission not in self.permissions:
            return _error_reply("missing_endpoint_permission",
                                f"Missing endpoint permission: {permission}", 403)
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        try:
            request = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return _error_reply("invalid_input", "Request payload is malformed")
        if not isinstance(request, dict):
            return _error_reply("invalid_input", "Request payload must be a JSON object")
        try:
            return _json_reply(200, handler(request))
        except _ApiError as exc:
            return _error_reply(exc.code, exc.message, exc.status)

    def _throttled(self) -> _Reply | None:
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.rate_window:
            self._window.popleft()
        if self.enforce_rate_limit and len(self._window) >= self.rate_limit:
            wait = self.rate_window - (now - self._window[0])
            return _error_reply("rate_limit_exceeded", "Rate limit exceeded for this API key",
                                429, {"Retry-After": str(max(1, math.ceil(wait)))})
        self._window.append(now)
        return None

    def _endpoints(self) -> dict[str, Callable[[Record], Record]]:
        listings = {name: self._lister(name) for name in LISTINGS}
        return {
            **listings,
            "apiKey.info": self._api_key_info,
            "application.info": self._application_info,
            "candidate.info": self._candidate_info,
            "job.info": self._job_info,
            "jobInterviewPlan.info": self._job_interview_plan_info,
            "jobPosting.list": self._job_posting_list,
            "jobPosting.info": self._job_posting_info,
            "interview.info": self._interview_info,
            "interviewStage.list": self._interview_stage_list,
            "interviewStage.info": self._interview_stage_info,
            "user.info": self._user_info,
            "user.search": self._user_search,
            "hiringTeamRole.list": self._hiring_team_role_list,
            "archiveReason.list": self._archive_reason_list,
        }

    # ------------------------------------------------------------------ internals: lists

    def _lister(self, endpoint: str) -> Callable[[Record], Record]:
        return lambda body: self._list(endpoint, body)

    def _list(self, endpoint: str, body: Record) -> Record:
        listing = LISTINGS[endpoint]
        _check_params(body, listing.params | {"cursor", "limit", "syncToken"})
        limit = _limit(body)
        expand = _expand(endpoint, body)
        if _optional_bool(body, "includeUnpublishedJobPostingsIds"):
            expand |= {UNPUBLISHED_POSTINGS}
        predicate = self._predicate(endpoint, body)
        filters = _filter_key(body)
        token = _optional_str(body, "syncToken")
        cursor = _optional_str(body, "cursor")
        since: int | None = None
        if token is not None:
            since = int(self._read_token(endpoint, token)["s"])
        if cursor is not None:
            state = self._read_cursor(endpoint, filters, cursor)
            if token is not None and state["i"] != since:
                raise self._pagination_error(
                    INVALID_NEXT_CURSOR, "The cursor belongs to another sync; restart the listing")
            since = state["i"]
            after, snapshot, page = int(state["k"]), int(state["s"]), int(state["p"]) + 1
        else:
            after, snapshot, page = 0, self._seq, 1
        if since is not None and page > self.max_incremental_pages:
            raise self._pagination_error(
                INCREMENTAL_SYNC_TOO_LARGE,
                f"Incremental sync exceeds {self.max_incremental_pages} pages; discard the "
                "syncToken and run a full sync")
        rows = [r for r in self._ordered(listing.table)
                if int(r["_n"]) > after and (since is None or int(r["_seq"]) > since)
                and predicate(r)]
        chunk = rows[:limit]
        more = len(rows) > limit
        answer: Record = {
            "success": True,
            "results": [self._public(listing.table, r, expand) for r in chunk],
            "moreDataAvailable": more,
        }
        if more:
            answer["nextCursor"] = self._encode("cursor", {
                "e": endpoint, "f": filters, "k": int(chunk[-1]["_n"]), "s": snapshot,
                "i": since, "p": page, "g": self._cursor_generation, "t": time.monotonic()})
        elif listing.incremental:
            # Capped at the pass's start: what changed during the pass comes again next time.
            answer["syncToken"] = self._encode("sync", {
                "e": endpoint, "s": snapshot, "g": self._token_generation,
                "t": time.monotonic()})
        return answer

    def _predicate(self, endpoint: str, body: Record) -> Callable[[Record], bool]:
        checks: list[Callable[[Record], bool]] = []
        created_after = _optional_int(body, "createdAfter")
        if created_after is not None:
            stamp = "submittedAt" if endpoint == "applicationFeedback.list" else "createdAt"
            checks.append(lambda r: _millis(r.get(stamp)) > created_after)
        if endpoint == "application.list":
            status = _optional_str(body, "status")
            if status is not None and status not in _APPLICATION_STATUSES:
                raise _ApiError("invalid_input", f"status must be one of {_APPLICATION_STATUSES}")
            job_id = _optional_str(body, "jobId")
            if status is not None:
                checks.append(lambda r: r["status"] == status)
            if job_id is not None:
                checks.append(lambda r: r["_job"] == job_id)
        elif endpoint == "job.list":
            statuses = body.get("status", ["Open", "Closed", "Archived"])  # Draft only if asked
            if not isinstance(statuses, list) or not all(s in _JOB_STATUS_VALUES
                                                         for s in statuses):
                raise _ApiError("invalid_input", f"status must be a list of {_JOB_STATUS_VALUES}")
            checks.append(lambda r: r["status"] in statuses)
            for name, stamp, compare in (("openedAfter", "openedAt", 1),
                                         ("openedBefore", "openedAt", -1),
                                         ("closedAfter", "closedAt", 1),
                                         ("closedBefore", "closedAt", -1)):
                bound = _optional_int(body, name)
                if bound is not None:
                    checks.append(_bound_check(stamp, bound, compare))
        elif endpoint == "interviewPlan.list":
            if not _optional_bool(body, "includeArchived"):
                checks.append(lambda r: not r["isArchived"])
        elif endpoint == "interview.list":
            if not _optional_bool(body, "includeArchived"):
                checks.append(lambda r: not r["isArchived"])
            if not _optional_bool(body, "includeNonSharedInterviews"):
                checks.append(lambda r: r["jobId"] is None)
            _optional_bool(body, "excludeArchivedScheduleTemplateInterviews")
        elif endpoint == "interviewSchedule.list":
            application_id = _optional_str(body, "applicationId")
            stage_id = _optional_str(body, "interviewStageId")
            if application_id is not None:
                checks.append(lambda r: r["applicationId"] == application_id)
            if stage_id is not None:
                checks.append(lambda r: r["interviewStageId"] == stage_id)
        elif endpoint == "interviewEvent.list":
            schedule_id = _optional_str(body, "interviewScheduleId")
            if schedule_id is None:
                raise _ApiError("invalid_input", "interviewScheduleId is required")
            checks.append(lambda r: r["interviewScheduleId"] == schedule_id)
        elif endpoint == "applicationFeedback.list":
            application_id = _optional_str(body, "applicationId")
            if application_id is not None:
                checks.append(lambda r: r["applicationId"] == application_id)
        elif endpoint == "user.list" and not _optional_bool(body, "includeDeactivated"):
            checks.append(lambda r: bool(r["isEnabled"]))
        return lambda record: all(check(record) for check in checks)

    def _encode(self, kind: str, state: Mapping[str, Any]) -> str:
        raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._keys[kind], raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")

    def _decode(self, kind: str, value: str) -> Record | None:
        try:
            data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            raw, mac = data[:-12], data[-12:]
            expected = hmac.new(self._keys[kind], raw, hashlib.sha256).digest()
            if len(data) <= 12 or not hmac.compare_digest(mac, expected[:12]):
                return None
            state = json.loads(raw)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        return state if isinstance(state, dict) else None

    def _read_token(self, endpoint: str, token: str) -> Record:
        state = self._decode("sync", token)
        if state is None or state.get("e") != endpoint:
            raise self._pagination_error(
                SYNC_TOKEN_INVALID, "The syncToken cannot be decoded for this endpoint; discard "
                "it and run a full sync")
        if state.get("g") != self._token_generation or (
                self.sync_token_ttl is not None
                and time.monotonic() - float(state["t"]) > self.sync_token_ttl):
            raise self._pagination_error(
                SYNC_TOKEN_EXPIRED, "The syncToken has expired; discard it and run a full sync")
        return state

    def _read_cursor(self, endpoint: str, filters: str, cursor: str) -> Record:
        state = self._decode("cursor", cursor)
        if state is None or state.get("e") != endpoint or state.get("f") != filters:
            raise self._pagination_error(
                INVALID_NEXT_CURSOR, "The cursor cannot be decoded for this request; restart "
                "the listing without a cursor")
        if state.get("g") != self._cursor_generation or (
                self.cursor_ttl is not None
                and time.monotonic() - float(state["t"]) > self.cursor_ttl):
            raise self._pagination_error(
                NEXT_CURSOR_EXPIRED, "The cursor has expired; restart the listing without a "
                "cursor")
        return state

    def _pagination_error(self, code: str, message: str) -> _ApiError:
        return _ApiError(code, message, self.pagination_error_status)

    # ------------------------------------------------------------------ internals: endpoints

    def _find(self, table: str, record_id: str | None, code: str, what: str) -> Record:
        record = self._tables[table].get(str(record_id)) if record_id else None
        if record is None:
            raise _ApiError(code, f"{what} not found")
        return record

    def _api_key_info(self, body: Record) -> Record:
        _check_params(body, frozenset())
        return {"success": True, "results": {
            "title": "taskplanner (fake)", "createdAt": "2024-01-01T00:00:00.000Z",
            "scopes": sorted(self.permissions)}}

    def _application_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"applicationId", "submittedFormInstanceId", "expand"}))
        expand = _expand("application.info", body)
        application = self._find("applications", _optional_str(body, "applicationId"),
                                 "application_not_found", "Application")
        return {"success": True, "results": self._public("applications", application, expand)}

    def _candidate_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"id", "externalMappingId"}))
        candidate = self._find("candidates", _optional_str(body, "id"), "candidate_not_found",
                               "Candidate")
        return {"success": True, "results": self._public("candidates", candidate)}

    def _job_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"id", "includeUnpublishedJobPostingsIds", "expand"}))
        expand = _expand("job.info", body)
        if _optional_bool(body, "includeUnpublishedJobPostingsIds"):
            expand |= {UNPUBLISHED_POSTINGS}
        job = self._find("jobs", _optional_str(body, "id"), "job_not_found", "Job")
        return {"success": True, "results": self._public("jobs", job, expand)}

    def _job_interview_plan_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"jobId"}))
        job = self._find("jobs", _optional_str(body, "jobId"), "job_not_found", "Job")
        stages = []
        for stage in self._plan_stages(str(job["id"]), pipeline_only=False):
            kinds = [k for k in self._ordered("interviews")
                     if k["_stage"] == stage["id"] and not k["isArchived"]]
            activities = [{"id": stage["_activity"], "title": f"{stage['title']} Schedule",
                           "interviews": [{"id": k["_plan_entry"], "title": k["title"],
                                           "interviewId": k["id"],
                                           "interviewDurationMinutes": 60,
                                           "isSchedulable": True} for k in kinds]}] if kinds else []
            stages.append({**self._stage_public(stage), "activities": activities})
        results = {"jobId": job["id"], "interviewPlanId": job["defaultInterviewPlanId"],
                   "stages": [{k: v for k, v in s.items() if k != "interviewPlanId"}
                              for s in stages]}
        return {"success": True, "results": json.loads(json.dumps(results))}

    def _job_posting_list(self, body: Record) -> Record:
        _check_params(body, frozenset({"location", "department", "listedOnly", "jobBoardId"}))
        listed_only = _optional_bool(body, "listedOnly")
        location = _optional_str(body, "location")
        department = _optional_str(body, "department")
        _optional_str(body, "jobBoardId")
        results = [self._public("postings", p) for p in self._ordered("postings")
                   if p["_published"] and (p["isListed"] or not listed_only)]
        results = [p for p in results
                   if (location is None or p["locationName"] == location)
                   and (department is None or p["departmentName"] == department)]
        return {"success": True, "results": results}

    def _job_posting_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"jobPostingId", "jobBoardId", "expand"}))
        expand = _expand("jobPosting.info", body)
        posting = self._find("postings", _optional_str(body, "jobPostingId"),
                             "job_posting_not_found", "Job posting")
        public = self._public("postings", posting)
        description = f"<p>{posting['title']}</p>"
        public.update({
            "descriptionPlain": posting["title"], "descriptionHtml": description,
            "descriptionParts": {"descriptionOpening": None,
                                 "descriptionBody": {"html": description,
                                                     "plain": posting["title"]},
                                 "descriptionClosing": None},
            "linkedData": {}, "applicationFormDefinition": {"sections": []},
            "surveyFormDefinitions": [],
            "compensation": {"compensationTiers": [],
                             "shouldDisplayCompensationOnJobBoard": False},
        })
        if "job" in expand:
            public["job"] = self._public("jobs", self._get("jobs", str(posting["jobId"])))
        return {"success": True, "results": public}

    def _interview_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"id"}))
        kind = self._find("interviews", _optional_str(body, "id"), "interview_not_found",
                          "Interview")
        return {"success": True, "results": self._public("interviews", kind)}

    def _interview_stage_list(self, body: Record) -> Record:
        _check_params(body, frozenset({"interviewPlanId"}))
        plan_id = _optional_str(body, "interviewPlanId")
        if plan_id is None:
            raise _ApiError("invalid_input", "interviewPlanId is required")
        self._find("plans", plan_id, "interview_plan_not_found", "Interview plan")
        stages = sorted((s for s in self._tables["stages"].values()
                         if s["interviewPlanId"] == plan_id and not s["_removed"]),
                        key=lambda s: int(s["orderInInterviewPlan"]))
        return {"success": True, "results": [self._public("stages", s) for s in stages],
                "moreDataAvailable": False}

    def _interview_stage_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"interviewStageId"}))
        stage = self._find("stages", _optional_str(body, "interviewStageId"),
                           "interview_stage_not_found", "Interview stage")
        return {"success": True, "results": self._public("stages", stage)}

    def _user_info(self, body: Record) -> Record:
        _check_params(body, frozenset({"userId"}))
        user = self._find("users", _optional_str(body, "userId"), "user_not_found", "User")
        return {"success": True, "results": self._public("users", user)}

    def _user_search(self, body: Record) -> Record:
        _check_params(body, frozenset({"email"}))
        email = _optional_str(body, "email")
        if email is None:
            raise _ApiError("invalid_input", "email is required")
        return {"success": True, "results": [self._public("users", u)
                                             for u in self._ordered("users")
                                             if u["email"].lower() == email.lower()]}

    def _hiring_team_role_list(self, body: Record) -> Record:
        _check_params(body, frozenset({"namesOnly"}))
        names_only = body.get("namesOnly", True)
        if not isinstance(names_only, bool):
            raise _ApiError("invalid_input", "namesOnly must be a boolean")
        if names_only:
            return {"success": True, "results": list(HIRING_TEAM_ROLES)}
        return {"success": True, "results": [{"id": self._role_ids[r], "title": r}
                                             for r in HIRING_TEAM_ROLES]}

    def _archive_reason_list(self, body: Record) -> Record:
        _check_params(body, frozenset({"includeArchived"}))
        _optional_bool(body, "includeArchived")
        return {"success": True, "results": [{"id": self._archive_reason_id, **ARCHIVE_REASON}]}


# ---------------------------------------------------------------------- request helpers


def _error_body(code: str, message: str) -> Record:
    """``errors`` (deprecated list of codes) and ``errorInfo`` (code, message, requestId)."""
    request_id = base64.b32encode(secrets.token_bytes(10)).decode()[:16]
    return {"success": False, "errors": [code],
            "errorInfo": {"code": code, "message": message, "requestId": request_id}}


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return _Reply(status, json.dumps(payload).encode("utf-8"), merged)


def _error_reply(code: str, message: str, status: int = 200,
                 headers: Mapping[str, str] | None = None) -> _Reply:
    reply = _json_reply(status, _error_body(code, message), headers)
    reply.error_code = code
    return reply


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization.removeprefix("Basic ").strip(),
                                   validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    # The docs say to leave the password blank; whatever is sent there is not checked.
    return (user, password) if sep else None


def _check_params(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _ApiError("invalid_input", f"Unknown parameter(s): {', '.join(unknown)}")


def _limit(body: Mapping[str, Any]) -> int:
    value = body.get("limit", MAX_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise _ApiError("invalid_input", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return value


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _ApiError("invalid_input", f"{name} must be a non-empty string")
    return value


def _optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ApiError("invalid_input", f"{name} must be milliseconds since the Unix epoch")
    return value


def _optional_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise _ApiError("invalid_input", f"{name} must be a boolean")
    return value


def _expand(endpoint: str, body: Mapping[str, Any]) -> frozenset[str]:
    value = body.get("expand", [])
    allowed = _EXPANDS.get(endpoint, frozenset())
    if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed
                                              for v in value):
        raise _ApiError("invalid_input", f"expand takes a list of {sorted(allowed)}")
    return frozenset(value)


def _filter_key(body: Mapping[str, Any]) -> str:
    """What a cursor is tied to: the request's parameters other than paging ones."""
    rest = {k: v for k, v in body.items() if k not in ("cursor", "limit", "syncToken")}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def _millis(value: Any) -> int:
    if not isinstance(value, str):
        return -1
    return int(parse_iso(value).timestamp() * 1000)


def _bound_check(stamp: str, bound: int, direction: int) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        moment = _millis(record.get(stamp))
        if moment < 0:
            return False
        return moment > bound if direction > 0 else moment < bound

    return check


@dataclass
class SeededOrganisation:
    """Ids of what ``seed_organisation`` created, for tests to act on."""

    coordinator_id: str
    recruiter_id: str
    interviewer_ids: list[str]
    job_ids: list[str]
    application_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)


_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen")
_JOB_NAMES = ("Backend Engineer", "Product Designer", "Data Scientist", "Développeur·se Frontend")


def seed_organisation(fake: FakeAshby, *, seed: int = 0, jobs: int = 2,
                      applications_per_job: int = 3, domain: str = "acme.example"
                      ) -> SeededOrganisation:
    """A small deterministic organisation: a coordinator, a recruiter, three interviewers and
    ``jobs`` published jobs with applications spread over their pipeline stages."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    coordinator = fake.add_user(f"cora@{domain}", "Cora", "Coordinator", role="coordinator")
    recruiter = fake.add_user(f"rick@{domain}", "Rick", "Recruiter", role="recruiter")
    interviewers = [fake.add_user(f"{first.lower()}@{domain}", first, "Interviewer",
                                  role="interviewer") for first in ("Ivy", "Igor", "Ines")]
    org = SeededOrganisation(coordinator, recruiter, interviewers, [])
    for index in range(jobs):
        job_id = fake.create_job(_JOB_NAMES[(seed + index) % len(_JOB_NAMES)],
                                 recruiter_id=recruiter, coordinator_id=coordinator)
        fake.publish_job(job_id)
        org.job_ids.append(job_id)
        stages = fake.stage_ids(job_id)
        for _ in range(applications_per_job):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            email = f"{first}.{last}.{rng.randrange(10_000)}@example.com".lower()
            candidate_id, application_id = fake.add_candidate_application(
                job_id, first, last, email, stage_id=stages[rng.randrange(len(stages) - 1)])
            org.candidate_ids.append(candidate_id)
            org.application_ids.append(application_id)
    return org
