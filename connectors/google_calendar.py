"""Google Calendar connector: per-calendar ``events.list`` full sync, then ``syncToken`` sync.

Reads each configured calendar with a service account and domain-wide delegation, and maps
events (attendees, responses, rooms, our private schedule tag) to CalendarEventSnapshots.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2
import httplib2
import structlog
from google.auth import exceptions as google_auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.base import (
    ConnectorError,
    FatalConnectorError,
    PartitionUnreadable,
    PollPage,
    ProgressCallback,
    ProviderRequestError,
    RetriableConnectorError,
)
from connectors.http import (
    RETRIABLE_STATUSES,
    RequestStats,
    RetryableAnswer,
    RetryPolicy,
    retry_after_seconds,
)
from connectors.partition_pool import PartitionPool
from taskplanner.clock import Clock, system_clock
from taskplanner.domain.snapshots import (
    AttendeeSnapshot,
    CalendarEventSnapshot,
    EntityKind,
    EventStatus,
    Response,
)

log = structlog.get_logger(__name__)

SCOPES = ("https://www.googleapis.com/auth/calendar.readonly",)
DEFAULT_ROOT_URL = "https://www.googleapis.com/"
API_PATH = "calendar/v3/"
ROOM_SUFFIX = "@resource.calendar.google.com"
SCHEDULE_TAG_KEY = "taskplanner_schedule_id"

# 403 reasons Google documents as "slow down" rather than "forbidden"
# (https://developers.google.com/workspace/calendar/api/guides/errors#403_rate_limit_exceeded,
# #403_user_rate_limit_exceeded, #403_calendar_usage_limits_exceeded).
RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)

_RESPONSES = {
    "needsAction": Response.NEEDS_ACTION,
    "accepted": Response.ACCEPTED,
    "tentative": Response.TENTATIVE,
    "declined": Response.DECLINED,
}
_STATUSES = {
    "confirmed": EventStatus.CONFIRMED,
    "tentative": EventStatus.TENTATIVE,
    "cancelled": EventStatus.CANCELLED,
}


class GoogleCalendarSettings(Protocol):
    """The fields of ``[connectors.<name>]`` with ``type = "google_calendar"`` (SPEC §6)."""

    credentials_file: Path | str
    calendars: Sequence[str]
    base_url: str | None
    token_url: str | None


@dataclass(frozen=True)
class GoogleCursor:
    """What one calendar's cursor holds (stored as compact JSON).

    ``time_min`` is the lower bound of the full listing that produced the token; a 410
    resync lists the same range again, so its ``present_ids`` match what the mirror holds.
    """

    sync_token: str
    time_min: str

    def dumps(self) -> str:
        return json.dumps({"sync_token": self.sync_token, "time_min": self.time_min})

    @classmethod
    def loads(cls, raw: str | None) -> GoogleCursor | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(sync_token=str(data["sync_token"]), time_min=str(data["time_min"]))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable cursor: start over with a full listing


class _SyncTokenGone(Exception):
    """Google answered 410: the sync token expired (``fullSyncRequired``)."""


class _ThreadState(threading.local):
    http: httplib2.Http | None = None
    service: Any = None


class _Counters:
    """RequestStats plus token grants, safe to bump from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stats = RequestStats()
        self.token_requests = 0

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            if name == "token_requests":
                self.token_requests += by
            else:
                setattr(self.stats, name, getattr(self.stats, name) + by)


class GoogleCalendarConnector:
    """Google Workspace calendars through a service account with domain-wide delegation.

    One partition per calendar address; its cursor is a :class:`GoogleCursor`. User
    calendars are read as their owner (``with_subject(calendar)``). Room calendars
    (``...@resource.calendar.google.com``) cannot be impersonated, so they are read as
    ``admin_email`` (else the first user calendar configured): Workspace shares resource
    calendars with the whole domain, and an admin always sees them.
    """

    kind = "google_calendar"

    def __init__(
        self,
        name: str,
        *,
        calendars: Sequence[str],
        credentials_file: str | Path | None = None,
        credentials_info: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        admin_email: str | None = None,
        max_workers: int = 8,
        page_size: int = 250,
        lookback: timedelta = timedelta(days=7),
        per_user_rate: float = 8.0,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        clock: Clock = system_clock,
        http_factory: Callable[[], httplib2.Http] | None = None,
    ) -> None:
        """``http_factory`` makes each worker thread's httplib2 connection (token grants and
        API calls both go through it); default ``httplib2.Http(timeout=timeout)``. Tests pass
        ``googleapiclient.http.HttpMockSequence``; what a factory makes, its caller closes.
        """
        if credentials_file is None and credentials_info is None:
            raise ValueError("credentials_file or credentials_info is required")
        self.name = name
        self.calendars = list(dict.fromkeys(calendars))
        self._credentials_file = Path(credentials_file) if credentials_file else None
        self._credentials_info = dict(credentials_info) if credentials_info else None
        self.api_endpoint = _api_endpoint(base_url)
        self.token_url = token_url
        users = [c for c in self.calendars if not c.endswith(ROOM_SUFFIX)]
        self.admin_email = admin_email or (users[0] if users else None)
        self.page_size = page_size
        self.lookback = lookback
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self._counters = _Counters()
        self._pool = PartitionPool(name, max_workers)
        self._local = _ThreadState()
        self._base_credentials: service_account.Credentials | None = None
        self._subject_lock = threading.Lock()
        self._subjects: dict[str, tuple[service_account.Credentials, threading.Lock]] = {}
        self._http_factory = http_factory
        self._http_pools: list[httplib2.Http] = []  # every thread's, closed by close()
        self._throttle = _SubjectThrottle(per_user_rate, self.policy.sleep)

    @classmethod
    def from_config(cls, name: str, cfg: Any, **overrides: Any) -> GoogleCalendarConnector:
        """Build from a config section (duck-typed against SPEC §6's google_calendar keys).

        The key file's contents come from ``cfg.secret("credentials")`` when the config
        loader resolved them, else the file ``credentials_file`` is read.
        """
        info: dict[str, Any] | None = None
        secret = getattr(cfg, "optional_secret", None)
        try:
            raw = secret("credentials") if callable(secret) else None
        except KeyError:  # not resolved by the loader: read the file ourselves
            raw = None
        if raw:
            info = _parse_key(name, raw, str(cfg.credentials_file))
        kwargs: dict[str, Any] = {
            "calendars": list(cfg.calendars),
            "credentials_file": None if info else cfg.credentials_file,
            "credentials_info": info,
            "base_url": getattr(cfg, "base_url", None),
            "token_url": getattr(cfg, "token_url", None),
            "admin_email": getattr(cfg, "admin_email", None),
        }
        kwargs.update(overrides)
        return cls(name, **kwargs)

    # ------------------------------------------------------------------ Connector protocol

    @property
    def stats(self) -> RequestStats:
        """API request counters (token grants are in :attr:`token_requests`)."""
        return self._counters.stats

    @property
    def token_requests(self) -> int:
        return self._counters.token_requests

    def authenticate(self) -> None:
        """Load the key and obtain a fresh token for the first calendar's subject.

        Always asks the token endpoint (one grant), so a revoked key is noticed even while
        a cached access token has not expired yet.
        """
        if not self.calendars:
            self._load_credentials()
            return
        self._token(self._subject(self.calendars[0]), self._thread_http(), force=True)

    def poll(
        self,
        cursors: Mapping[str, str],
        *,
        started_at: datetime,
        full: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Iterator[PollPage]:
        """One page stream per calendar; a calendar's last page carries its new cursor.

        An idle calendar costs exactly one ``events.list`` request and yields nothing.
        """
        self._load_credentials()

        def sync(calendar: str) -> Generator[PollPage, None, None]:
            cursor = None if full else GoogleCursor.loads(cursors.get(calendar))
            return self._sync_calendar(calendar, cursor, started_at)

        yield from self._pool.run(self.calendars, sync, progress=progress)

    def close(self) -> None:
        self._pool.close()
        with self._subject_lock:
            pools, self._http_pools = self._http_pools, []
        for http in pools:
            http.close()

    # ------------------------------------------------------------------ one calendar

    def _sync_calendar(
        self, calendar: str, cursor: GoogleCursor | None, started_at: datetime
    ) -> Generator[PollPage, None, None]:
        if cursor is not None:
            try:
                yield from self._incremental(calendar, cursor, started_at)
                return
            except _SyncTokenGone:
                log.info("sync token expired, full resync", connector=self.name, calendar=calendar)
            time_min = cursor.time_min
        else:
            time_min = _rfc3339(self.clock() - self.lookback)
        yield from self._full(calendar, time_min, started_at)

    def _incremental(
        self, calendar: str, cursor: GoogleCursor, started_at: datetime
    ) -> Iterator[PollPage]:
        page_token: str | None = None
        while True:
            body = self._list(calendar, syncToken=cursor.sync_token, pageToken=page_token)
            zone = calendar_zone(body)
            snapshots = [
                self._snapshot(calendar, item, started_at, zone) for item in body.get("items", [])
            ]
            page_token = body.get("nextPageToken")
            if page_token:
                yield PollPage(calendar, list(snapshots))
                continue
            new_cursor = GoogleCursor(str(body["nextSyncToken"]), cursor.time_min)
            if snapshots or new_cursor != cursor:
                yield PollPage(calendar, list(snapshots), cursor=new_cursor.dumps())
            return

    def _full(self, calendar: str, time_min: str, started_at: datetime) -> Iterator[PollPage]:
        present: set[str] = set()
        page_token: str | None = None
        while True:
            try:
                body = self._list(calendar, timeMin=time_min, pageToken=page_token)
            except _SyncTokenGone as exc:  # a page token of a full listing never expires
                raise ProviderRequestError(
                    self.name, f"full listing of {calendar} answered 410", status=410
                ) from exc
            items = body.get("items", [])
            zone = calendar_zone(body)
            snapshots = [self._snapshot(calendar, item, started_at, zone) for item in items]
            # Bare event ids: the runner diffs them against this partition's mirror.
            present.update(str(item["id"]) for item in items)
            page_token = body.get("nextPageToken")
            if page_token:
                yield PollPage(calendar, list(snapshots))
                continue
            yield PollPage(
                calendar,
                list(snapshots),
                cursor=GoogleCursor(str(body["nextSyncToken"]), time_min).dumps(),
                present_ids={EntityKind.CALENDAR_EVENT: present},
            )
            return

    def _snapshot(
        self, calendar: str, item: Mapping[str, Any], started_at: datetime, zone: tzinfo = UTC
    ) -> CalendarEventSnapshot:
        try:
            return event_snapshot(self.name, calendar, item, fallback_updated=started_at, zone=zone)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderRequestError(
                self.name,
                f"unreadable event {item.get('id', '?')} on {calendar}: {type(exc).__name__}",
                status=200,
            ) from exc

    # ------------------------------------------------------------------ HTTP

    def _list(self, calendar: str, **params: Any) -> dict[str, Any]:
        """One events.list call with the shared retry policy; 410 raises _SyncTokenGone."""
        subject = self._subject(calendar)
        query = {k: v for k, v in params.items() if v is not None}
        refreshed = False

        def send(http: httplib2.Http, force_token: bool) -> dict[str, Any]:
            credentials = self._token(subject, http, force=force_token)
            request = (
                self._service()
                .events()
                .list(
                    calendarId=calendar,
                    singleEvents=True,  # instances, not recurrence rules: each has its own time
                    showDeleted=True,  # required with syncToken; keeps tombstones in full syncs
                    maxResults=self.page_size,
                    **query,
                )
            )
            authed = google_auth_httplib2.AuthorizedHttp(
                credentials, http=http, refresh_status_codes=()
            )
            self._throttle.wait(subject)
            self._counters.bump("requests")
            result: dict[str, Any] = request.execute(http=authed, num_retries=0)
            return result

        def attempt() -> dict[str, Any]:
            nonlocal refreshed
            http = self._thread_http()
            try:
                try:
                    return send(http, force_token=False)
                except HttpError as exc:
                    if int(exc.resp.status) != 401 or refreshed:
                        raise
                    refreshed = True  # the token may have been revoked early: get a new one
                    return send(http, force_token=True)
            except HttpError as exc:
                raise self._list_error(calendar, exc) from None
            except (httplib2.HttpLib2Error, OSError) as exc:
                # Timeouts and refused/reset connections; drop the connection pool.
                http.close()
                self._local.http = None
                self._local.service = None
                raise RetryableAnswer(f"events.list {calendar}: {type(exc).__name__}") from None

        return self.policy.call(
            attempt,
            connector=self.name,
            on_retry=lambda: self._counters.bump("retries"),
            on_give_up=lambda: self._counters.bump("errors"),
        )

    def _list_error(self, calendar: str, exc: HttpError) -> Exception:
        """What an events.list error answer means: retry, resync, or a ConnectorError."""
        status = int(exc.resp.status)
        reason = _error_reason(exc.content)
        if status == 410:
            return _SyncTokenGone()
        rate_limited = status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS)
        if rate_limited or status in RETRIABLE_STATUSES:
            if rate_limited:
                self._counters.bump("throttled")
            return RetryableAnswer(
                f"events.list {calendar} ({reason})",
                status=status,
                retry_after=retry_after_seconds(_headers(exc.resp)),
                throttled=rate_limited,
            )
        self._counters.bump("errors")
        if status == 401:
            return FatalConnectorError(
                self.name, f"access token rejected reading {calendar}", status=401
            )
        if status in (403, 404):
            # Only this calendar: shared free/busy only, not shared with the account read as,
            # or gone (https://developers.google.com/workspace/calendar/api/guides/errors
            # "403: Forbidden for non-organizer", "404: Not found"). The others go on.
            what = "access forbidden" if status == 403 else "calendar not found"
            return PartitionUnreadable(self.name, f"{what} ({reason})", status=status)
        return ProviderRequestError(
            self.name,
            f"events.list {calendar} failed ({reason})",
            status=status,
            body=exc.content.decode("utf-8", "replace"),
        )

    def _thread_http(self) -> httplib2.Http:
        # httplib2 is not thread-safe: one connection pool (and one service) per worker.
        local = self._local
        if local.http is None:
            if self._http_factory is not None:
                local.http = self._http_factory()
            else:
                local.http = httplib2.Http(timeout=self.timeout)
                with self._subject_lock:
                    self._http_pools.append(local.http)
        return local.http

    def _service(self) -> Any:
        local = self._local
        if local.service is None:
            options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
            local.service = build(
                "calendar",
                "v3",
                http=self._thread_http(),
                static_discovery=True,  # the discovery document shipped with the library
                cache_discovery=False,
                client_options=options,
            )
        return local.service

    # ------------------------------------------------------------------ credentials

    def _subject(self, calendar: str) -> str:
        if not calendar.endswith(ROOM_SUFFIX):
            return calendar
        if self.admin_email is None:
            raise FatalConnectorError(
                self.name, f"room calendar {calendar} needs admin_email (a user to read it as)"
            )
        return self.admin_email

    def _load_credentials(self) -> service_account.Credentials:
        if self._base_credentials is not None:
            return self._base_credentials
        if self._credentials_info is not None:
            info = self._credentials_info
            where = "credentials_info"
        else:
            if self._credentials_file is None:  # unreachable: __init__ demands one of the two
                raise FatalConnectorError(self.name, "no credentials configured")
            where = str(self._credentials_file)
            try:
                raw = self._credentials_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise FatalConnectorError(
                    self.name, f"cannot read credentials_file {where}: {exc.strerror}"
                ) from None
            info = _parse_key(self.name, raw, where)
        try:
            credentials: service_account.Credentials = (
                service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Never echo the key: name the file and what is wrong with it.
            raise FatalConnectorError(
                self.name, f"{where} is not a service-account key ({type(exc).__name__})"
            ) from None
        if self.token_url:
            credentials = credentials.with_token_uri(self.token_url)
        self._base_credentials = credentials
        return credentials

    def _token(
        self, subject: str, http: httplib2.Http, *, force: bool = False
    ) -> service_account.Credentials:
        """The delegated credentials for ``subject`` with a valid access token.

        Tokens are cached per subject across polls (an idle cycle costs no grant); the
        per-subject lock stops two workers reading rooms as the same admin from both
        refreshing.
        """
        base = self._load_credentials()
        with self._subject_lock:
            entry = self._subjects.get(subject)
            if entry is None:
                delegated: service_account.Credentials = base.with_subject(subject)
                entry = (delegated, threading.Lock())
                self._subjects[subject] = entry
        credentials, lock = entry
        with lock:
            if force or not credentials.valid:
                self._counters.bump("token_requests")
                try:
                    credentials.refresh(google_auth_httplib2.Request(http))
                except google_auth_exceptions.RefreshError as exc:
                    raise self._refresh_error(subject, exc) from None
                except google_auth_exceptions.TransportError as exc:
                    raise RetriableConnectorError(
                        self.name, f"token endpoint unreachable ({type(exc).__name__})"
                    ) from None
        return credentials

    def _refresh_error(
        self, subject: str, exc: google_auth_exceptions.RefreshError
    ) -> ConnectorError:
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Mapping) else {}
        error = str(data.get("error", "unknown_error"))
        description = str(data.get("error_description", ""))
        if getattr(exc, "retryable", False):
            return RetriableConnectorError(self.name, f"token grant failed ({error})")
        if error == "invalid_grant" and "email or user id" in description.lower():
            # The impersonated user does not exist (left the domain): only their calendar fails.
            return PartitionUnreadable(
                self.name, f"Google does not know the user {subject} ({error})", status=400
            )
        status = 401 if error in ("unauthorized_client", "invalid_client") else 400
        return FatalConnectorError(
            self.name, f"service account credentials rejected ({error})", status=status
        )


class _SubjectThrottle:
    """At most ``rate`` requests per second per impersonated user.

    Calendar API quotas are per minute per user (600, see
    https://developers.google.com/workspace/calendar/api/guides/quota); rooms are all read
    as one admin, so many rooms would otherwise burst past it.
    """

    def __init__(self, rate: float, sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, subject: str) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(subject, 0.0))
            self._next[subject] = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


# ---------------------------------------------------------------------- mapping


def calendar_zone(body: Mapping[str, Any]) -> tzinfo:
    """The calendar's time zone from an events.list answer (its ``timeZone``: "The time zone
    of the calendar", https://developers.google.com/workspace/calendar/api/v3/reference/
    events/list#response); UTC when absent or unknown."""
    name = body.get("timeZone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def event_snapshot(
    connector: str,
    calendar: str,
    item: Mapping[str, Any],
    *,
    fallback_updated: datetime,
    zone: tzinfo = UTC,
) -> CalendarEventSnapshot:
    """Map one Google Calendar Event resource to a CalendarEventSnapshot.

    Deleted events arrive as ``status: "cancelled"`` with little more than their id
    (https://developers.google.com/workspace/calendar/api/v3/reference/events/list,
    ``showDeleted``); they keep whatever the mirror knew apart from the status.
    """
    attendees = tuple(
        AttendeeSnapshot(
            email=str(a["email"]),
            response=_RESPONSES.get(str(a.get("responseStatus")), Response.NEEDS_ACTION),
            is_resource=bool(a.get("resource", False)),
            is_organizer=bool(a.get("organizer", False)),
            name=a.get("displayName"),
            comment=_comment(a.get("comment")),
        )
        for a in item.get("attendees", ())
        if a.get("email")
    )
    private = (item.get("extendedProperties") or {}).get("private") or {}
    organizer = (item.get("organizer") or {}).get("email")
    updated = item.get("updated")
    return CalendarEventSnapshot(
        connector=connector,
        calendar_id=calendar,
        event_id=str(item["id"]),
        status=_STATUSES.get(str(item.get("status", "confirmed")), EventStatus.CONFIRMED),
        updated_at=_parse_datetime(updated) if updated else fallback_updated,
        starts_at=_event_time(item.get("start"), zone),
        ends_at=_event_time(item.get("end"), zone),
        ical_uid=item.get("iCalUID"),
        organizer_email=organizer,
        attendees=attendees,
        schedule_tag=private.get(SCHEDULE_TAG_KEY),
        title=item.get("summary"),
        # Event types (https://developers.google.com/calendar/api/guides/event-types): an
        # "outOfOffice" event sits on its owner's primary calendar, with outOfOfficeProperties
        # (autoDeclineMode, declineMessage) and no attendees; events.list returns every type
        # unless eventTypes narrows it.
        out_of_office=item.get("eventType") == "outOfOffice",
    )


def _event_time(value: Any, zone: tzinfo = UTC) -> datetime | None:
    if not isinstance(value, Mapping):
        return None
    if value.get("dateTime"):
        return _parse_datetime(str(value["dateTime"]))
    if value.get("date"):
        # An all-day event's date is a day of the calendar's time zone (the event's own
        # ``timeZone`` when it names one): midnight there, as UTC.
        own = value.get("timeZone")
        if isinstance(own, str) and own:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo(own)
        day = date.fromisoformat(str(value["date"]))
        return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
    return None


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_endpoint(base_url: str | None) -> str | None:
    """``base_url`` may be the API root (``https://www.googleapis.com``) or include the path."""
    if not base_url:
        return None
    root = base_url.rstrip("/")
    if root.endswith("/calendar/v3"):
        return root + "/"
    return f"{root}/{API_PATH}"


def _parse_key(connector: str, raw: str, where: str) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except ValueError:
        raise FatalConnectorError(connector, f"{where} is not JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise FatalConnectorError(connector, f"{where} is not a service-account key")
    return info


def _error_reason(content: bytes) -> str:
    try:
        error = json.loads(content)["error"]
        errors = error.get("errors") or [{}]
        return str(errors[0].get("reason") or error.get("status") or "unknown")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unknown"


def _headers(resp: Any) -> dict[str, str]:
    # httplib2.Response is a dict of lower-cased header names.
    return {str(k).lower(): str(v) for k, v in dict(resp).items()}


MAX_COMMENT = 2000


def _comment(value: object) -> str | None:
    """An attendee's response comment ("The attendee's response comment. Optional.", the
    Events resource): text only, no control characters (PostgreSQL refuses NUL), bounded."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if ch.isprintable() or ch in "\n\t").strip()
    return text[:MAX_COMMENT] or None
