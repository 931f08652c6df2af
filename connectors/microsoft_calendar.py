"""Microsoft 365 calendar connector: Graph ``calendarView/delta`` rounds per user calendar.

Authenticates with msal client credentials, follows ``@odata.nextLink`` pages to the
``@odata.deltaLink`` (stored as the cursor), and maps events and ``@removed`` items to
CalendarEventSnapshots and Deletions.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msal
import requests
import structlog
from requests.adapters import BaseAdapter

from connectors.base import (
    ConnectorError,
    FatalConnectorError,
    PartitionUnreadable,
    PollPage,
    ProgressCallback,
    ProviderRequestError,
    RetriableConnectorError,
)
from connectors.http import ProviderHTTP, RequestStats, RetryPolicy
from connectors.partition_pool import PartitionPool
from taskplanner.clock import Clock, system_clock
from taskplanner.domain.snapshots import (
    AttendeeSnapshot,
    CalendarEventSnapshot,
    Deletion,
    EntityKind,
    EventStatus,
    Response,
    Snapshot,
)

log = structlog.get_logger(__name__)

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
SCHEDULE_TAG_NAME = "taskplanner_schedule_id"
# Refresh a little before expiry so a token never dies between check and use.
TOKEN_MARGIN = 300.0

_RESPONSES = {
    "none": Response.NEEDS_ACTION,
    "notResponded": Response.NEEDS_ACTION,
    "organizer": Response.ACCEPTED,
    "accepted": Response.ACCEPTED,
    "tentativelyAccepted": Response.TENTATIVE,
    "declined": Response.DECLINED,
}
# msal error codes that mean "the app registration or its secret is wrong": stop and report.
_FATAL_TOKEN_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "invalid_scope", "invalid_grant"}
)


@dataclass(frozen=True)
class GraphCursor:
    """One calendar's cursor: the round's deltaLink and the window it was opened with.

    Graph fixes the calendarView window at the round's first request and carries it inside
    the opaque token (https://learn.microsoft.com/graph/delta-query-events), so the window
    is kept beside the link: a 410 resync lists the same window again, and the connector
    knows when to open a new round with a window further ahead.
    """

    delta_link: str
    start: datetime
    end: datetime

    def dumps(self) -> str:
        return json.dumps(
            {
                "delta_link": self.delta_link,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
            }
        )

    @classmethod
    def loads(cls, raw: str | None) -> GraphCursor | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(
                delta_link=str(data["delta_link"]),
                start=datetime.fromisoformat(data["start"]),
                end=datetime.fromisoformat(data["end"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # unreadable cursor: open a new round


class _SyncStateGone(Exception):
    """Graph answered 410 / ``syncStateNotFound``: the delta link is dead."""


class _IdentitySession(requests.Session):
    """The requests session msal uses, with our CA bundle and timeout on every call.

    requests lets ``REQUESTS_CA_BUNDLE`` override a session-wide ``verify``
    (https://github.com/psf/requests/issues/3829), so it is passed per request instead.
    """

    def __init__(self, verify: str | bool, timeout: float) -> None:
        super().__init__()
        self._verify = verify
        self._timeout = timeout

    def request(  # forwards everything, forces two keywords
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        if self._verify is not True:
            kwargs["verify"] = self._verify
        return super().request(method, url, *args, **kwargs)


class MicrosoftCalendarConnector:
    """Microsoft 365 user (and room mailbox) calendars through Microsoft Graph.

    One partition per calendar address (a user principal name or room mailbox); the cursor
    is a :class:`GraphCursor`. Rounds cover ``now - window_past .. now + window_future``
    (default 1 day back, 60 days ahead); once less than half of ``window_future`` remains,
    the old round is drained one last time and a new round opens on a fresh window.
    """

    kind = "microsoft_calendar"

    def __init__(
        self,
        name: str,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        calendars: Sequence[str],
        base_url: str = DEFAULT_GRAPH_URL,
        authority_url: str = DEFAULT_AUTHORITY_URL,
        ca_file: str | Path | None = None,
        max_workers: int = 8,
        page_size: int = 100,
        window_past: timedelta = timedelta(days=1),
        window_future: timedelta = timedelta(days=60),
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        clock: Clock = system_clock,
        transport: httpx.BaseTransport | None = None,
        identity_adapter: BaseAdapter | None = None,
        time_zone: str = "UTC",
    ) -> None:
        """``transport`` carries the Graph calls (httpx); ``identity_adapter`` is mounted on the
        requests session msal talks to the identity platform through (its ``http_client``).
        Both default to the network; tests replace them to see the exact requests.
        """
        self.name = name
        self.tenant_id = tenant_id
        self.calendars = list(dict.fromkeys(calendars))
        self.base_url = base_url.rstrip("/")
        self.authority = f"{authority_url.rstrip('/')}/{tenant_id}"
        self.page_size = page_size
        self.window_past = window_past
        self.window_future = window_future
        self.timeout = timeout
        self.clock = clock
        # The mailboxes' zone: the day of an all-day event is a day there (see _all_day).
        self.zone = ZoneInfo(time_zone)
        self._client_id = client_id
        self._client_secret = client_secret
        self._verify: str | bool = str(ca_file) if ca_file else True
        self._identity_adapter = identity_adapter
        if transport is None and ca_file:
            transport = httpx.HTTPTransport(
                verify=ssl.create_default_context(cafile=str(ca_file)),
                limits=httpx.Limits(max_connections=max_workers + 2),
            )
        self._http = ProviderHTTP(
            name,
            self.base_url,
            auth_headers=self._auth_headers,
            refresh_auth=self._drop_token,
            timeout=timeout,
            policy=policy,
            transport=transport,
            headers={
                # Immutable ids survive moves between folders
                # (https://learn.microsoft.com/graph/outlook-immutable-id); the page size
                # keeps a full round of a busy calendar to a few requests.
                "Prefer": f'odata.maxpagesize={page_size}, IdType="ImmutableId"',
            },
        )
        self._pool = PartitionPool(name, max_workers)
        self._token_lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._session: _IdentitySession | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_requests = 0

    @classmethod
    def from_config(cls, name: str, cfg: Any, **overrides: Any) -> MicrosoftCalendarConnector:
        """Build from a config section (duck-typed against SPEC §6's microsoft_calendar keys)."""
        kwargs: dict[str, Any] = {
            "tenant_id": cfg.tenant_id,
            "client_id": cfg.secret("client_id"),
            "client_secret": cfg.secret("client_secret"),
            "calendars": list(cfg.calendars),
            "base_url": getattr(cfg, "base_url", None) or DEFAULT_GRAPH_URL,
            "authority_url": getattr(cfg, "authority_url", None) or DEFAULT_AUTHORITY_URL,
            "ca_file": getattr(cfg, "ca_file", None),
            "time_zone": getattr(cfg, "time_zone", None) or "UTC",
        }
        kwargs.update(overrides)
        return cls(name, **kwargs)

    # ------------------------------------------------------------------ Connector protocol

    @property
    def stats(self) -> RequestStats:
        return self._http.stats

    def authenticate(self) -> None:
        """Ask the identity platform for a new token (a revoked secret fails here)."""
        self._drop_token()
        self._access_token()

    def poll(
        self,
        cursors: Mapping[str, str],
        *,
        started_at: datetime,
        full: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Iterator[PollPage]:
        """One page stream per calendar; a calendar's last page carries its new cursor.

        An idle calendar costs exactly one delta request and yields nothing.
        """

        def sync(calendar: str) -> Generator[PollPage, None, None]:
            cursor = None if full else GraphCursor.loads(cursors.get(calendar))
            return self._readable(self._sync_calendar(calendar, cursor, started_at))

        yield from self._pool.run(self.calendars, sync, progress=progress)

    def _readable(self, pages: Generator[PollPage, None, None]) -> Generator[PollPage, None, None]:
        """One mailbox's pages; a mailbox Graph will not show fails alone.

        With a token that works, a 403 names this mailbox: an application access policy
        excludes it, or the room allows free/busy only (ErrorAccessDenied,
        https://learn.microsoft.com/graph/auth-limit-mailbox-access). A 404 is a user who
        left or a mailbox not on Exchange Online (ErrorItemNotFound, ErrorInvalidUser,
        MailboxNotEnabledForRESTAPI).
        """
        try:
            yield from pages
        except FatalConnectorError as exc:
            if exc.status != 403:
                raise
            raise PartitionUnreadable(
                self.name,
                "access denied (is the mailbox excluded by an application access policy?)",
                status=403,
            ) from None
        except ProviderRequestError as exc:
            if exc.status != 404:
                raise
            raise PartitionUnreadable(
                self.name, f"mailbox not found ({_graph_code(exc.body)})", status=404
            ) from None
        finally:
            pages.close()

    def close(self) -> None:
        self._pool.close()
        self._http.close()
        with self._token_lock:
            if self._session is not None:
                self._session.close()
            self._session = None
            self._app = None

    # ------------------------------------------------------------------ one calendar

    def _sync_calendar(
        self, calendar: str, cursor: GraphCursor | None, started_at: datetime
    ) -> Generator[PollPage, None, None]:
        now = self.clock()
        fresh_window = (now - self.window_past, now + self.window_future)
        if cursor is not None and not self._ours(cursor.delta_link):
            cursor = None  # the link points at another host (base_url changed): start over
        if cursor is None:
            yield from self._initial_round(calendar, fresh_window, started_at, present=True)
            return
        if cursor.end - now < self.window_future / 2:
            # Drain the old round so deletions are not lost, then open the new window. The
            # new listing claims no completeness: events before its start stay mirrored.
            try:
                yield from self._round(calendar, cursor, started_at, final=True)
            except _SyncStateGone:
                yield from self._initial_round(calendar, fresh_window, started_at, present=True)
                return
            yield from self._initial_round(calendar, fresh_window, started_at, present=False)
            return
        try:
            yield from self._round(calendar, cursor, started_at, final=False)
        except _SyncStateGone:
            log.info("delta link expired, full resync", connector=self.name, calendar=calendar)
            window = (cursor.start, cursor.end)
            yield from self._initial_round(calendar, window, started_at, present=True)

    def _round(
        self, calendar: str, cursor: GraphCursor, started_at: datetime, *, final: bool
    ) -> Generator[PollPage, None, None]:
        url = cursor.delta_link
        while True:
            body = self._get(url)
            snapshots = self._snapshots(calendar, body, started_at)
            next_link = body.get("@odata.nextLink")
            if next_link:
                if snapshots:
                    yield PollPage(calendar, snapshots)
                url = self._checked(str(next_link))
                continue
            new_cursor = GraphCursor(
                self._checked(str(body["@odata.deltaLink"])), cursor.start, cursor.end
            )
            if final:
                if snapshots:
                    yield PollPage(calendar, snapshots)
            elif snapshots or new_cursor != cursor:
                yield PollPage(calendar, snapshots, cursor=new_cursor.dumps())
            return

    def _initial_round(
        self,
        calendar: str,
        window: tuple[datetime, datetime],
        started_at: datetime,
        *,
        present: bool,
    ) -> Generator[PollPage, None, None]:
        query = urlencode({"startDateTime": _iso(window[0]), "endDateTime": _iso(window[1])})
        url = f"{self.base_url}/users/{quote(calendar)}/calendarView/delta?{query}"
        seen: set[str] = set()
        while True:
            try:
                body = self._get(url)
            except _SyncStateGone as exc:
                raise ProviderRequestError(
                    self.name, f"initial delta round of {calendar} answered 410", status=410
                ) from exc
            snapshots = self._snapshots(calendar, body, started_at)
            # Bare event ids: the runner diffs them against this partition's mirror.
            seen.update(s.event_id for s in snapshots if isinstance(s, CalendarEventSnapshot))
            next_link = body.get("@odata.nextLink")
            if next_link:
                yield PollPage(calendar, snapshots)
                url = self._checked(str(next_link))
                continue
            cursor = GraphCursor(self._checked(str(body["@odata.deltaLink"])), *window)
            yield PollPage(
                calendar,
                snapshots,
                cursor=cursor.dumps(),
                present_ids={EntityKind.CALENDAR_EVENT: seen} if present else None,
            )
            return

    def _snapshots(
        self, calendar: str, body: Mapping[str, Any], started_at: datetime
    ) -> list[Snapshot]:
        result: list[Snapshot] = []
        masters: dict[str, Mapping[str, Any] | None] = {}
        for item in body.get("value", []):
            try:
                if (
                    item.get("seriesMasterId")
                    and "attendees" not in item
                    and "@removed" not in item
                ):
                    whole = self._hydrate_occurrence(calendar, item, masters)
                    if whole is not None:
                        result.append(
                            graph_event_snapshot(
                                self.name,
                                calendar,
                                whole,
                                fallback_updated=started_at,
                                zone=self.zone,
                            )
                        )
                elif "@removed" in item:
                    result.append(
                        Deletion(
                            kind=EntityKind.CALENDAR_EVENT,
                            id=f"{calendar}/{item['id']}",
                            at=started_at,
                            connector=self.name,
                        )
                    )
                else:
                    result.append(
                        graph_event_snapshot(
                            self.name, calendar, item, fallback_updated=started_at, zone=self.zone
                        )
                    )
            except (KeyError, TypeError, ValueError) as exc:
                raise ProviderRequestError(
                    self.name,
                    f"unreadable event {item.get('id', '?')} on {calendar}: {type(exc).__name__}",
                    status=200,
                ) from exc
        return result

    def _hydrate_occurrence(
        self,
        calendar: str,
        item: Mapping[str, Any],
        masters: dict[str, Mapping[str, Any] | None],
    ) -> dict[str, Any] | None:
        """An occurrence as delta sends it (id, seriesMasterId, type, start, end only:
        microsoftgraph/microsoft-graph-docs#22197, microsoft-graph-docs-contrib#34) completed
        from its series master (``GET /users/{id}/events/{id}``, whole): subject, organizer
        and attendees are the series', times the occurrence's. Missing fields never read as
        "no attendees". None when the master is gone (the series was deleted meanwhile)."""
        master_id = str(item["seriesMasterId"])
        if master_id not in masters:
            url = f"{self.base_url}/users/{quote(calendar)}/events/{quote(master_id, safe='')}"
            try:
                masters[master_id] = self._get(url)
            except ProviderRequestError as exc:
                if exc.status != 404:
                    raise
                masters[master_id] = None
        master = masters[master_id]
        if master is None:
            log.info(
                "series master gone, occurrence skipped",
                connector=self.name,
                calendar=calendar,
                event=item.get("id"),
            )
            return None
        whole = {k: v for k, v in master.items() if k != "lastModifiedDateTime"}
        whole.update({k: v for k, v in item.items() if not k.startswith("@")})
        return whole

    # ------------------------------------------------------------------ HTTP

    def _get(self, url: str) -> dict[str, Any]:
        try:
            body, _ = self._http.get_json(url)
        except ProviderRequestError as exc:
            # Documented resync signals: 410 Gone, or a 4xx whose code is syncStateNotFound /
            # resyncRequired (https://learn.microsoft.com/graph/delta-query-overview).
            text = exc.body.lower()
            if exc.status == 410 or "syncstatenotfound" in text or "resyncrequired" in text:
                raise _SyncStateGone() from None
            raise
        if not isinstance(body, dict):
            raise ProviderRequestError(self.name, "delta answer is not a JSON object", status=200)
        return body

    def _ours(self, link: str) -> bool:
        mine, theirs = urlsplit(self.base_url), urlsplit(link)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    def _checked(self, link: str) -> str:
        # Never send our bearer token to a host other than the configured Graph endpoint.
        if not self._ours(link):
            raise ProviderRequestError(
                self.name,
                f"Graph returned a link to another host ({urlsplit(link).netloc})",
                status=200,
            )
        return link

    # ------------------------------------------------------------------ credentials

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _drop_token(self) -> None:
        with self._token_lock:
            self._token = None
            # msal serves its cached token (and caches errors for a while): a new app
            # starts clean, so a rotated secret or revived app registration is seen at once.
            self._app = None

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is not None and self._token_expires - TOKEN_MARGIN > time.monotonic():
                return self._token
            try:
                result = self._msal().acquire_token_for_client(scopes=[GRAPH_SCOPE])
            except requests.RequestException as exc:
                raise RetriableConnectorError(
                    self.name, f"identity platform unreachable ({type(exc).__name__})"
                ) from None
            if not isinstance(result, dict) or "access_token" not in result:
                self._app = None
                raise self._token_error(result if isinstance(result, dict) else {})
            if result.get("token_source") != "cache":
                self.token_requests += 1
            self._token = str(result["access_token"])
            self._token_expires = time.monotonic() + float(result.get("expires_in", 3599))
            return self._token

    def _msal(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            if self._session is not None:
                self._session.close()
            self._session = _IdentitySession(self._verify, self.timeout)
            if self._identity_adapter is not None:
                self._session.mount("https://", self._identity_adapter)
                self._session.mount("http://", self._identity_adapter)
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._client_secret,
                    authority=self.authority,
                    # A configurable authority (sovereign clouds, the loopback fake) is not
                    # in Microsoft's instance list: skip that check, keep tenant discovery.
                    instance_discovery=False,
                    http_client=self._session,
                )
            except requests.RequestException as exc:
                raise RetriableConnectorError(
                    self.name, f"identity platform unreachable ({type(exc).__name__})"
                ) from None
            except ValueError:
                raise FatalConnectorError(
                    self.name,
                    f"tenant {self.tenant_id} not found at the authority (check tenant_id "
                    "and authority_url)",
                ) from None
        return self._app

    def _token_error(self, result: Mapping[str, Any]) -> ConnectorError:
        error = str(result.get("error", "unknown_error"))
        codes = ",".join(f"AADSTS{c}" for c in result.get("error_codes", []) or [])
        what = f"token request failed ({error}{' ' + codes if codes else ''})"
        if error in _FATAL_TOKEN_ERRORS:
            status = 401 if error == "invalid_client" else 400
            return FatalConnectorError(self.name, what, status=status)
        return RetriableConnectorError(self.name, what)


def _graph_code(body: str) -> str:
    """The ``error.code`` of a Graph error body (``unknown`` when it has none)."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return str(code)


# ---------------------------------------------------------------------- mapping


def graph_event_snapshot(
    connector: str,
    calendar: str,
    item: Mapping[str, Any],
    *,
    fallback_updated: datetime,
    zone: tzinfo = UTC,
) -> CalendarEventSnapshot:
    """Map one Graph event (https://learn.microsoft.com/graph/api/resources/event); ``zone``
    is the mailbox's, for all-day events."""
    attendees = []
    for attendee in item.get("attendees") or ():
        address = (attendee.get("emailAddress") or {}).get("address")
        if not address:
            continue
        response = str((attendee.get("status") or {}).get("response", "none"))
        attendees.append(
            AttendeeSnapshot(
                email=str(address),
                response=_RESPONSES.get(response, Response.NEEDS_ACTION),
                is_resource=attendee.get("type") == "resource",
                is_organizer=response == "organizer",
                name=(attendee.get("emailAddress") or {}).get("name"),
            )
        )
    organizer = ((item.get("organizer") or {}).get("emailAddress") or {}).get("address")
    modified = item.get("lastModifiedDateTime")
    return CalendarEventSnapshot(
        connector=connector,
        calendar_id=calendar,
        event_id=str(item["id"]),
        # Graph has no "tentative" event state; a cancelled meeting stays in attendees'
        # calendars with isCancelled until they remove it.
        status=EventStatus.CANCELLED if item.get("isCancelled") else EventStatus.CONFIRMED,
        updated_at=_parse_instant(str(modified)) if modified else fallback_updated,
        starts_at=_all_day(item, "start", zone) or _graph_time(item.get("start")),
        ends_at=_all_day(item, "end", zone) or _graph_time(item.get("end")),
        ical_uid=item.get("iCalUId"),
        organizer_email=organizer,
        attendees=tuple(attendees),
        schedule_tag=_schedule_tag(item),
        title=item.get("subject"),
        # showAs is the event's freeBusyStatus: free, tentative, busy, oof,
        # workingElsewhere or unknown (https://learn.microsoft.com/graph/api/resources/event);
        # "oof" marks the mailbox owner out of office for the event's span.
        out_of_office=item.get("showAs") == "oof",
    )


def _schedule_tag(item: Mapping[str, Any]) -> str | None:
    # Delta responses do not expand extended properties; read the tag when a payload has it.
    for prop in item.get("singleValueExtendedProperties") or ():
        if str(prop.get("id", "")).endswith(f"Name {SCHEDULE_TAG_NAME}"):
            value = prop.get("value")
            return str(value) if value is not None else None
    return None


def _all_day(item: Mapping[str, Any], key: str, zone: tzinfo) -> datetime | None:
    """An all-day event's start or end: midnight of its day in the event's own zone.

    Graph labels an all-day event's midnight "UTC" while it is a local day
    (learn.microsoft.com/answers/questions/970878, msgraph-sdk-javascript#1158), so the date
    is read and placed in ``originalStartTimeZone`` when that is an IANA name, else in the
    mailbox's zone (the connector's ``time_zone``; Windows zone names are not IANA names).
    """
    if not item.get("isAllDay"):
        return None
    value = item.get(key)
    if not isinstance(value, Mapping) or not value.get("dateTime"):
        return None
    day = _parse_naive(str(value["dateTime"])).date()
    own = item.get("originalStartTimeZone" if key == "start" else "originalEndTimeZone")
    if isinstance(own, str) and own and own.upper() != "UTC":
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(own)
    return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)


def _graph_time(value: Any) -> datetime | None:
    """``{"dateTime": "2016-12-09T20:30:00.0000000", "timeZone": "UTC"}`` to aware UTC.

    Graph answers in UTC unless ``Prefer: outlook.timezone`` asks otherwise (we never do);
    an IANA zone is honoured, anything else is read as UTC.
    """
    if not isinstance(value, Mapping) or not value.get("dateTime"):
        return None
    local = _parse_naive(str(value["dateTime"]))
    zone_name = str(value.get("timeZone") or "UTC")
    zone: Any = UTC
    if zone_name.upper() not in ("UTC", "Z"):
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
    return local.replace(tzinfo=zone).astimezone(UTC)


def _parse_naive(value: str) -> datetime:
    # Graph writes seven fractional digits; Python reads at most six.
    head, dot, fraction = value.partition(".")
    fraction = fraction.rstrip("Z")
    text = f"{head}.{fraction[:6]}" if dot and fraction else head
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed


def _parse_instant(value: str) -> datetime:
    """``lastModifiedDateTime`` such as ``2016-12-08T19:14:51.2939722Z``."""
    text = value.strip()
    offset = ""
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        text, offset = text[:-6], text[-6:]
    naive = _parse_naive(text)
    if offset:
        return datetime.fromisoformat(naive.isoformat() + offset).astimezone(UTC)
    return naive.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
