"""Greenhouse: Harvest v3 polling and signed webhooks, mapped to canonical snapshots.

No other module sees a Greenhouse payload. Docs: https://harvestdocs.greenhouse.io (Harvest v3:
OAuth client credentials, Link-header cursors, pipe-form filters) and
github.com/grnhse/greenhouse-api-docs source/includes/webhooks (webhook events and signatures).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
import structlog

from connectors.base import (
    ConnectorError,
    FatalConnectorError,
    MalformedPayloadError,
    ParsedDelivery,
    PollPage,
    PollProgress,
    ProgressCallback,
    ProviderRequestError,
    RetriableConnectorError,
    UnknownEventError,
    WebhookRejected,
)
from connectors.http import ProviderHTTP, RetryPolicy, retry_after_seconds
from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    ApplicationStatus,
    CandidateSnapshot,
    Deletion,
    EntityKind,
    InterviewerSnapshot,
    InterviewKindSnapshot,
    JobSnapshot,
    JobStatus,
    Response,
    ScheduleSnapshot,
    ScheduleStatus,
    ScorecardSnapshot,
    Snapshot,
    StageSnapshot,
    UserSnapshot,
)

log = structlog.get_logger(__name__)

Record = dict[str, Any]
Clock = Callable[[], datetime]

# Poll order matters a little: users first so owner/interviewer e-mails resolve from the cache.
PARTITIONS: tuple[str, ...] = ("users", "jobs", "applications", "interviews", "scorecards")
# What a complete listing of each partition vouches for (its present_ids keys).
PARTITION_KINDS: dict[str, tuple[EntityKind, ...]] = {
    "users": (EntityKind.USER,),
    "jobs": (EntityKind.JOB,),
    "applications": (EntityKind.APPLICATION, EntityKind.CANDIDATE),
    "interviews": (EntityKind.SCHEDULE,),
    "scorecards": (EntityKind.SCORECARD,),
}

MAX_IDS_PER_REQUEST = 50  # every *_ids filter: "length <= 50" (v3 reference pages)
MAX_PER_PAGE = 500  # per_page: "integer 1 to 500" (v3 reference pages)
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
# The token response format is UNCONFIRMED for client credentials (HARVEST_V3.md §1); the partner
# guide gives access tokens a one-hour TTL, so that is the fallback.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=1)
# Greenhouse's rate limit is a rolling 10-second window (about 50 requests); when
# X-RateLimit-Remaining hits 0 without saying when it resets, wait out a whole window.
RATE_LIMIT_WINDOW_SECONDS = 10.0

_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)

# v3 application statuses: third-party lists disagree ("active" vs "in_process", plus paused,
# completed, unvisited for prospects). Unknown values count as active.
_APPLICATION_STATUS = {
    "active": ApplicationStatus.ACTIVE,
    "in_process": ApplicationStatus.ACTIVE,
    "paused": ApplicationStatus.ACTIVE,
    "unvisited": ApplicationStatus.ACTIVE,
    "rejected": ApplicationStatus.REJECTED,
    "hired": ApplicationStatus.HIRED,
    # A prospect application promoted to a candidate application via convert_to_candidate: the
    # old row is no longer worked, so it is closed for our purposes.
    "converted": ApplicationStatus.WITHDRAWN,
    "completed": ApplicationStatus.WITHDRAWN,
}
_JOB_STATUS = {"open": JobStatus.OPEN, "closed": JobStatus.CLOSED, "draft": JobStatus.DRAFT}
# v3 interview statuses (third-party spec of /v3/interviews): to_be_scheduled is a placeholder,
# scheduled is on the calendar, awaiting_feedback/complete/collect_feedback happened, skipped did
# not happen, to_be_sent/sent/received are take-home tests.
_SCHEDULE_STATUS = {
    "scheduled": ScheduleStatus.SCHEDULED,
    "sent": ScheduleStatus.SCHEDULED,
    "awaiting_feedback": ScheduleStatus.COMPLETE,
    "complete": ScheduleStatus.COMPLETE,
    "collect_feedback": ScheduleStatus.COMPLETE,
    "received": ScheduleStatus.COMPLETE,
    "skipped": ScheduleStatus.CANCELLED,
}
# Not (or no longer) on anyone's calendar: emitted as a deletion of the schedule.
_UNSCHEDULED = frozenset({"to_be_scheduled", "to_be_sent"})
_RESPONSE = {
    "needs_action": Response.NEEDS_ACTION,
    "accepted": Response.ACCEPTED,
    "tentative": Response.TENTATIVE,
    "declined": Response.DECLINED,
}

_APPLICATION_EVENTS: dict[str, ApplicationStatus | None] = {
    "new_candidate_application": None,
    "candidate_stage_change": None,
    "application_updated": None,
    "reject_candidate": ApplicationStatus.REJECTED,
    "unreject_candidate": ApplicationStatus.ACTIVE,
    "hire_candidate": ApplicationStatus.HIRED,
    "unhire_candidate": ApplicationStatus.ACTIVE,
}
_JOB_EVENTS = frozenset({"job_created", "job_updated", "job_approved"})
# Documented events that carry nothing we model (or nothing we can apply): accepted, no snapshots.
# - offer_*: offers close applications only through hire/reject, which have their own events.
# - job_post_*: the payload has job_id + live but not the job's name/status/creation time that a
#   JobSnapshot needs; the jobs poll reads job_posts.live instead.
# - update_candidate / candidate_anonymized: no timestamp to order them by; the poll has them.
_IGNORED_EVENTS = frozenset(
    {
        "offer_created",
        "offer_approved",
        "offer_updated",
        "offer_deleted",
        "job_post_created",
        "job_post_updated",
        "job_post_deleted",
        "new_prospect_application",
        "prospect_created",
        "update_candidate",
        "candidate_anonymized",
        "department_deleted",
        "office_deleted",
    }
)


class GreenhouseConfigLike(Protocol):
    """What ``from_config`` reads (``taskplanner.config.GreenhouseConfig`` fits)."""

    @property
    def base_url(self) -> str: ...

    @property
    def auth_url(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    def secret(self, name: str) -> str: ...


@dataclass
class _Token:
    value: str
    expires_at: datetime


@dataclass
class _Presence:
    """Ids seen in a listing that covers a whole kind (full sync, or the interview sweep)."""

    ids: dict[EntityKind, set[str]] = field(default_factory=dict)
    complete: bool = False

    def add(self, kind: EntityKind, entity_id: str) -> None:
        self.ids.setdefault(kind, set()).add(entity_id)


class GreenhouseConnector:
    """Greenhouse Harvest v3 + webhooks. Implements ``Connector`` and ``WebhookSource``.

    Partitions (one cursor each): ``users``, ``jobs`` (jobs with their stages, interview kinds,
    hiring team and job posts), ``applications`` (with candidate and current stage entry),
    ``interviews`` (scheduled interviews with interviewers and RSVPs), ``scorecards``.
    A cursor is the poll's ``started_at`` as ISO 8601 UTC with milliseconds
    (``2026-01-05T09:00:00.000Z``); the next poll asks for ``updated_at=gte|<cursor - lookback>``.
    """

    kind = "greenhouse"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        webhook_secret: str | None,
        user_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        per_page: int = MAX_PER_PAGE,
        lookback: timedelta = timedelta(minutes=2),
        sweep_interviews: bool = True,
        app_url: str = "https://app.greenhouse.io",
    ) -> None:
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError("per_page must be between 1 and 500")
        self.name = name
        self._client_id = client_id
        self._client_secret = client_secret
        self._webhook_secret = webhook_secret
        self._user_id = user_id
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._per_page = per_page
        # Re-reading a little before the cursor covers clock skew between us and Greenhouse and
        # rows committed late; snapshots are idempotent, so duplicates cost nothing.
        self._lookback = lookback
        self._sweep_interviews = sweep_interviews
        self._app_url = app_url.rstrip("/")
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._user_emails: dict[int, str] = {}
        self.policy = policy or RetryPolicy()
        self.rate_limit_pauses = 0
        self._auth_http = ProviderHTTP(
            name,
            auth_url.rstrip("/"),
            timeout=timeout,
            policy=self.policy,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._http = ProviderHTTP(
            name,
            base_url.rstrip("/"),
            auth_headers=self._auth_headers,
            refresh_auth=self._refresh_after_401,
            timeout=timeout,
            policy=self.policy,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @classmethod
    def from_config(
        cls, name: str, cfg: GreenhouseConfigLike, **options: Any
    ) -> GreenhouseConnector:
        """Build from the ``[connectors.<name>]`` table (secrets already resolved)."""
        optional_secret = getattr(cfg, "optional_secret", None)
        webhook_secret = (
            optional_secret("webhook_secret")
            if callable(optional_secret)
            else cfg.secret("webhook_secret")
        )
        return cls(
            name,
            base_url=cfg.base_url,
            auth_url=cfg.auth_url,
            client_id=cfg.secret("client_id"),
            client_secret=cfg.secret("client_secret"),
            webhook_secret=webhook_secret,
            user_id=cfg.user_id,
            **options,
        )

    @property
    def stats(self) -> Any:
        """Request counters of the Harvest client (for metrics)."""
        return self._http.stats

    def close(self) -> None:
        self._http.close()
        self._auth_http.close()

    # ------------------------------------------------------------------ authentication

    def authenticate(self) -> None:
        """Get a fresh access token; FatalConnectorError when the credentials are rejected."""
        with self._token_lock:
            self._fetch_token()

    def _auth_headers(self) -> Mapping[str, str]:
        with self._token_lock:
            token = self._token
            if token is None or self._clock() >= token.expires_at - TOKEN_REFRESH_MARGIN:
                token = self._fetch_token()
            return {"Authorization": f"Bearer {token.value}"}

    def _refresh_after_401(self) -> None:
        # ProviderHTTP calls this once after a 401: the token may have been revoked or expired
        # early. A second 401 (or a refused token request) is fatal.
        with self._token_lock:
            self._fetch_token()

    def _fetch_token(self) -> _Token:
        # OAuth client credentials: POST {auth_url}/token with HTTP Basic client_id:client_secret
        # and grant_type=client_credentials (+ sub=<user id> to act as that user)
        # (https://harvestdocs.greenhouse.io/docs/authentication).
        form = {"grant_type": "client_credentials"}
        if self._user_id:
            form["sub"] = str(self._user_id)
        try:
            response = self._auth_http.request(
                "POST", "/token", data=form, auth=(self._client_id, self._client_secret)
            )
        except ProviderRequestError as exc:
            # 400 invalid_request/invalid_grant: a bad user_id or a credential of the wrong kind.
            raise FatalConnectorError(
                self.name,
                "token request refused (check client id, secret and user_id)",
                status=exc.status,
            ) from None
        try:
            body = response.json()
            value = body["access_token"]
            if not isinstance(value, str) or not value:
                raise ValueError("empty access token")
        except (ValueError, KeyError, TypeError):
            raise RetriableConnectorError(
                self.name, "token endpoint returned no access token", status=response.status_code
            ) from None
        self._token = _Token(value, self._token_expiry(body))
        log.debug(
            "greenhouse.token_refreshed",
            connector=self.name,
            expires_at=self._token.expires_at.isoformat(),
        )
        return self._token

    def _token_expiry(self, body: Mapping[str, Any]) -> datetime:
        # Third-party clients disagree: {"expires_in": 3600} or {"expires_at": "<ISO>"}.
        now = self._clock()
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return now + timedelta(seconds=float(expires_in))
        expires_at = body.get("expires_at")
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
            return datetime.fromtimestamp(float(expires_at), UTC)
        if isinstance(expires_at, str):
            parsed = _parse_time(expires_at)
            if parsed is not None:
                return parsed
        return now + DEFAULT_TOKEN_LIFETIME

    # ------------------------------------------------------------------ polling

    def poll(
        self,
        cursors: Mapping[str, str],
        *,
        started_at: datetime,
        full: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Iterator[PollPage]:
        """Yield pages per partition; the last page of each carries its new cursor.

        Incremental polls ask each resource for ``updated_at >= cursor - lookback``. Greenhouse
        sends no webhook for scheduled interviews, RSVPs, scorecards or stage additions, and a
        stage or hiring-team change does not move the job's own ``updated_at``: so child
        resources are polled too and their parents re-emitted. A full poll lists everything and
        sets ``present_ids`` on each partition's last page. Hard deletes are invisible to
        ``updated_at`` filters; cancelled interviews are hard deletes, so the interviews partition
        also sweeps the ids of every interview and reports them as ``present_ids`` on every poll
        (``sweep_interviews``).
        """
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        new_cursor = _format_time(started_at)
        producers: dict[str, Callable[[datetime | None, _Presence], Iterator[list[Snapshot]]]] = {
            "users": self._poll_users,
            "jobs": self._poll_jobs,
            "applications": self._poll_applications,
            "interviews": self._poll_interviews,
            "scorecards": self._poll_scorecards,
        }
        for done, partition in enumerate(PARTITIONS):
            since = None if full else _parse_time(cursors.get(partition))
            presence = _Presence(
                ids={kind: set() for kind in PARTITION_KINDS[partition]}, complete=since is None
            )
            pages = producers[partition](since, presence)
            counter = _ProgressCounter(self.name, partition, progress, len(PARTITIONS), done)
            yield from _pages_with_cursor(partition, pages, new_cursor, presence, counter)

    def _since(self, since: datetime | None) -> dict[str, str]:
        if since is None:
            return {}
        # Pipe form, as on the list-endpoints guide: updated_at=gte|2024-01-01T00:00:00Z.
        return {"updated_at": f"gte|{_format_time(since - self._lookback)}"}

    # users ------------------------------------------------------------

    def _poll_users(self, since: datetime | None, presence: _Presence) -> Iterator[list[Snapshot]]:
        for rows in self._pages("users", self._since(since)):
            snapshots: list[Snapshot] = []
            for row in rows:
                user = self._map_user(row)
                if user is not None:
                    snapshots.append(user)
                    presence.add(EntityKind.USER, user.id)
            if snapshots:
                yield snapshots

    def _map_user(self, row: Record) -> UserSnapshot | None:
        user_id = row.get("id")
        email = row.get("primary_email")
        updated_at = _parse_time(row.get("updated_at"))
        if not isinstance(user_id, int) or not isinstance(email, str) or updated_at is None:
            return None  # service accounts have an empty primary_email
        if not email:
            return None
        self._user_emails[user_id] = email
        name = row.get("name") or " ".join(
            part for part in (row.get("first_name"), row.get("last_name")) if part
        )
        return UserSnapshot(
            id=str(user_id),
            email=email,
            name=str(name or email),
            updated_at=updated_at,
            role="admin" if row.get("site_admin") else None,
            deactivated=bool(row.get("deactivated")),
        )

    def _emails(self, user_ids: Iterable[Any]) -> dict[int, str]:
        wanted = {u for u in user_ids if isinstance(u, int)}
        missing = sorted(wanted - self._user_emails.keys())
        for row in self._list_by_ids("users", "ids", missing):
            self._map_user(row)
        return {u: self._user_emails[u] for u in wanted if u in self._user_emails}

    # jobs -------------------------------------------------------------

    def _poll_jobs(self, since: datetime | None, presence: _Presence) -> Iterator[list[Snapshot]]:
        emitted: set[int] = set()
        for rows in self._pages("jobs", self._since(since)):
            snapshots = self._job_snapshots(rows)
            for job in snapshots:
                emitted.add(int(job.id))
                presence.add(EntityKind.JOB, job.id)
            if snapshots:
                yield list(snapshots)
        if since is None:
            return
        # A stage, interview kind, hiring-team row or post can change without the job moving.
        changed: set[int] = set()
        child_queries: list[tuple[str, dict[str, str]]] = [
            ("job_interview_stages", {}),
            ("job_interviews", {}),
            ("job_owners", {}),
            ("job_posts", {}),
            ("job_posts", {"active": "false"}),  # deleted posts are hidden unless asked for
        ]
        for resource, extra in child_queries:
            for rows in self._pages(resource, {**self._since(since), **extra}):
                changed.update(r["job_id"] for r in rows if isinstance(r.get("job_id"), int))
        for batch in _chunks(sorted(changed - emitted)):
            snapshots = self._job_snapshots(self._list_all("jobs", {"ids": _join(batch)}))
            if snapshots:
                yield list(snapshots)

    def _job_snapshots(self, rows: Sequence[Record]) -> list[JobSnapshot]:
        jobs = [r for r in rows if isinstance(r.get("id"), int) and not r.get("is_template")]
        if not jobs:
            return []
        ids = [int(r["id"]) for r in jobs]
        stages = self._list_by_ids("job_interview_stages", "job_ids", ids)
        kinds = self._list_by_ids("job_interviews", "job_ids", ids)
        owners = self._list_by_ids("job_owners", "job_ids", ids)
        posts = self._list_by_ids("job_posts", "job_ids", ids)
        # Deleted posts are hidden by default; their deletion time still dates the snapshot.
        posts += self._list_by_ids("job_posts", "job_ids", ids, {"active": "false"})
        emails = self._emails(
            [o.get("user_id") for o in owners] + [j.get("created_by_id") for j in jobs]
        )
        snapshots = []
        for job in jobs:
            snapshot = self._map_job(job, stages, kinds, owners, posts, emails)
            if snapshot is not None:
                snapshots.append(snapshot)
        return snapshots

    def _map_job(
        self,
        job: Record,
        stages: Sequence[Record],
        kinds: Sequence[Record],
        owners: Sequence[Record],
        posts: Sequence[Record],
        emails: Mapping[int, str],
    ) -> JobSnapshot | None:
        job_id = int(job["id"])
        created_at = _parse_time(job.get("created_at"))
        updated_at = _parse_time(job.get("updated_at"))
        if created_at is None or updated_at is None or not isinstance(job.get("name"), str):
            log.warning(
                "greenhouse.record_skipped",
                connector=self.name,
                resource="jobs",
                id=job_id,
                reason="missing name or timestamps",
            )
            return None
        own = [r for r in (*stages, *kinds, *owners, *posts) if r.get("job_id") == job_id]
        # The job snapshot is the whole plan: its time is the newest of its parts, so a
        # snapshot with a new stage is never older than the one the mirror holds.
        newest = max([updated_at, *(t for r in own if (t := _parse_time(r.get("updated_at"))))])
        job_stages = sorted(
            (s for s in stages if s.get("job_id") == job_id and s.get("active", True)),
            key=lambda s: (s.get("sort_order") or 0, s["id"]),
        )
        stage_snapshots = tuple(
            StageSnapshot(
                id=str(stage["id"]),
                name=str(stage.get("name") or ""),
                position=int(stage.get("sort_order") or 0),
                interview_kinds=tuple(
                    InterviewKindSnapshot(id=str(k["id"]), name=str(k.get("name") or ""))
                    for k in sorted(
                        (
                            k
                            for k in kinds
                            if k.get("job_interview_stage_id") == stage["id"]
                            and k.get("active", True)
                        ),
                        key=lambda k: (k.get("sort_order") or 0, k["id"]),
                    )
                ),
            )
            for stage in job_stages
        )
        job_posts = [
            p for p in posts if p.get("job_id") == job_id and p.get("active", True) is not False
        ]
        return JobSnapshot(
            id=str(job_id),
            name=str(job["name"]),
            status=_JOB_STATUS.get(str(job.get("status")), JobStatus.OPEN),
            created_at=created_at,
            updated_at=newest,
            published=any(bool(p.get("live")) for p in job_posts),
            # "" says "the poll looked and found nobody"; None (webhooks) says "not known".
            coordinator_email=_owner_email(owners, job_id, "coordinator", emails) or "",
            recruiter_email=_recruiter_email(job, owners, emails) or "",
            stages=stage_snapshots,
            url=f"{self._app_url}/sdash/{job_id}",
        )

    # applications -----------------------------------------------------

    def _poll_applications(
        self, since: datetime | None, presence: _Presence
    ) -> Iterator[list[Snapshot]]:
        emitted: set[int] = set()

        def emit(rows: Sequence[Record]) -> list[Snapshot]:
            fresh = [r for r in rows if r.get("id") not in emitted]
            snapshots = self._application_snapshots(fresh)
            for application in snapshots:
                emitted.add(int(application.id))
                presence.add(EntityKind.APPLICATION, application.id)
                presence.add(EntityKind.CANDIDATE, application.candidate_id)
            return list(snapshots)

        for rows in self._pages("applications", self._since(since)):
            if snapshots := emit(rows):
                yield snapshots
        if since is None:
            return
        # The embedded candidate and the stage history are resources of their own.
        candidate_ids = {
            r["id"]
            for rows in self._pages("candidates", self._since(since))
            for r in rows
            if isinstance(r.get("id"), int)
        }
        application_ids = {
            r["application_id"]
            for rows in self._pages("application_stages", self._since(since))
            for r in rows
            if isinstance(r.get("application_id"), int)
        }
        for batch in _chunks(sorted(candidate_ids)):
            if snapshots := emit(self._list_all("applications", {"candidate_ids": _join(batch)})):
                yield snapshots
        for batch in _chunks(sorted(application_ids - emitted)):
            if snapshots := emit(self._list_all("applications", {"ids": _join(batch)})):
                yield snapshots

    def _application_snapshots(self, rows: Sequence[Record]) -> list[ApplicationSnapshot]:
        # Prospect applications have no job or several; they are not in a hiring pipeline.
        applications = [
            r
            for r in rows
            if isinstance(r.get("id"), int)
            and not r.get("prospect")
            and isinstance(r.get("job_id"), int)
            and isinstance(r.get("candidate_id"), int)
        ]
        if not applications:
            return []
        candidates = {
            c["id"]: c
            for c in self._list_by_ids(
                "candidates", "ids", sorted({a["candidate_id"] for a in applications})
            )
        }
        history: dict[int, list[Record]] = {}
        for row in self._list_by_ids(
            "application_stages", "application_ids", [a["id"] for a in applications]
        ):
            history.setdefault(row.get("application_id") or 0, []).append(row)
        emails = self._emails(a.get("coordinator_id") for a in applications)
        snapshots = []
        for application in applications:
            snapshot = self._map_application(
                application,
                candidates.get(application["candidate_id"]),
                history.get(application["id"], []),
                emails,
            )
            if snapshot is not None:
                snapshots.append(snapshot)
        return snapshots

    def _map_application(
        self,
        application: Record,
        candidate: Record | None,
        stage_rows: Sequence[Record],
        emails: Mapping[int, str],
    ) -> ApplicationSnapshot | None:
        application_id = int(application["id"])
        updated_at = _parse_time(application.get("updated_at"))
        if updated_at is None or candidate is None:
            log.warning(
                "greenhouse.record_skipped",
                connector=self.name,
                resource="applications",
                id=application_id,
                reason="missing candidate or updated_at",
            )
            return None
        entry = _current_stage_entry(stage_rows)
        stage_id = (
            entry.get("job_interview_stage_id")
            if entry is not None
            else application.get("job_interview_stage_id") or application.get("stage_id")
        )
        times = [updated_at, _parse_time(candidate.get("updated_at"))]
        if entry is not None:
            times.append(_parse_time(entry.get("updated_at")))
        candidate_id = int(application["candidate_id"])
        candidate_snapshot = CandidateSnapshot(
            id=str(candidate_id),
            name=_person_name(candidate),
            updated_at=_parse_time(candidate.get("updated_at")) or updated_at,
            email=_first_email(candidate.get("email_addresses")),
            coordinator_email=_lookup(emails, application.get("coordinator_id")),
            url=f"{self._app_url}/people/{candidate_id}",
        )
        return ApplicationSnapshot(
            id=str(application_id),
            candidate_id=str(candidate_id),
            job_id=str(application["job_id"]),
            stage_id=str(stage_id) if stage_id is not None else None,
            status=_APPLICATION_STATUS.get(
                str(application.get("status")), ApplicationStatus.ACTIVE
            ),
            updated_at=max(t for t in times if t is not None),
            stage_entered_at=_parse_time(entry.get("entered_at")) if entry is not None else None,
            candidate=candidate_snapshot,
            url=f"{self._app_url}/people/{candidate_id}?application_id={application_id}",
        )

    # interviews -------------------------------------------------------

    def _poll_interviews(
        self, since: datetime | None, presence: _Presence
    ) -> Iterator[list[Snapshot]]:
        emitted: set[int] = set()
        kinds: dict[int, Record] = {}

        def emit(rows: Sequence[Record]) -> list[Snapshot]:
            fresh = [r for r in rows if r.get("id") not in emitted]
            snapshots = self._schedule_snapshots(fresh, kinds)
            for snapshot in snapshots:
                if isinstance(snapshot, ScheduleSnapshot | Deletion):
                    emitted.add(int(snapshot.id))
                if isinstance(snapshot, ScheduleSnapshot):
                    presence.add(EntityKind.SCHEDULE, snapshot.id)
            return snapshots

        for rows in self._pages("interviews", self._since(since)):
            if snapshots := emit(rows):
                yield snapshots
        if since is None:
            return
        # An RSVP lives on /v3/interviewers and need not move the interview row.
        interview_ids = {
            r["interview_id"]
            for rows in self._pages("interviewers", self._since(since))
            for r in rows
            if isinstance(r.get("interview_id"), int)
        }
        for batch in _chunks(sorted(interview_ids - emitted)):
            if snapshots := emit(self._list_all("interviews", {"ids": _join(batch)})):
                yield snapshots
        if self._sweep_interviews:
            # Cancelling an interview deletes it and (without webhooks) nothing says so: list
            # every interview id (sparse fieldset) so the runner can drop the vanished ones.
            sweep = _Presence(ids={EntityKind.SCHEDULE: set()}, complete=True)
            for rows in self._pages("interviews", {"fields": "id,status"}):
                for row in rows:
                    if isinstance(row.get("id"), int) and row.get("status") not in _UNSCHEDULED:
                        sweep.add(EntityKind.SCHEDULE, str(row["id"]))
            presence.ids = sweep.ids
            presence.complete = True

    def _schedule_snapshots(
        self, rows: Sequence[Record], kinds: dict[int, Record]
    ) -> list[Snapshot]:
        interviews = [r for r in rows if isinstance(r.get("id"), int)]
        if not interviews:
            return []
        panel: dict[int, list[Record]] = {}
        ids = [r["id"] for r in interviews]
        for row in self._list_by_ids("interviewers", "interview_ids", ids):
            panel.setdefault(row.get("interview_id") or 0, []).append(row)
        missing = sorted(
            {
                r["job_interview_id"]
                for r in interviews
                if isinstance(r.get("job_interview_id"), int) and r["job_interview_id"] not in kinds
            }
        )
        for kind in self._list_by_ids("job_interviews", "ids", missing):
            kinds[int(kind["id"])] = kind
        snapshots: list[Snapshot] = []
        for interview in interviews:
            snapshot = self._map_schedule(interview, panel.get(interview["id"], []), kinds)
            if snapshot is not None:
                snapshots.append(snapshot)
        return snapshots

    def _map_schedule(
        self, interview: Record, panel: Sequence[Record], kinds: Mapping[int, Record]
    ) -> Snapshot | None:
        interview_id = int(interview["id"])
        updated_at = _parse_time(interview.get("updated_at"))
        application_id = interview.get("application_id")
        if updated_at is None or not isinstance(application_id, int):
            log.warning(
                "greenhouse.record_skipped",
                connector=self.name,
                resource="interviews",
                id=interview_id,
                reason="missing application_id or updated_at",
            )
            return None
        newest = max([updated_at, *(t for r in panel if (t := _parse_time(r.get("updated_at"))))])
        status = str(interview.get("status") or "")
        if status in _UNSCHEDULED:
            return Deletion(kind=EntityKind.SCHEDULE, id=str(interview_id), at=newest)
        kind_id = interview.get("job_interview_id")
        kind = kinds.get(kind_id) if isinstance(kind_id, int) else None
        stage_id = kind.get("job_interview_stage_id") if kind is not None else None
        interviewers = tuple(
            InterviewerSnapshot(
                email=str(row["email"]),
                response=_RESPONSE.get(str(row.get("response_status")), Response.NEEDS_ACTION),
            )
            for row in sorted(panel, key=lambda r: str(r.get("email") or ""))
            if isinstance(row.get("email"), str) and row["email"]
        )
        return ScheduleSnapshot(
            id=str(interview_id),
            application_id=str(application_id),
            status=_SCHEDULE_STATUS.get(status, ScheduleStatus.SCHEDULED),
            updated_at=newest,
            stage_id=str(stage_id) if stage_id is not None else None,
            interview_kind_id=str(kind_id) if kind_id is not None else None,
            starts_at=_parse_time(interview.get("starts_at"))
            or _parse_day(interview.get("all_day_start_on")),
            ends_at=_parse_time(interview.get("ends_at"))
            or _parse_day(interview.get("all_day_end_on")),
            external_event_id=interview.get("external_event_id") or None,
            interviewers=interviewers,
        )

    # scorecards -------------------------------------------------------

    def _poll_scorecards(
        self, since: datetime | None, presence: _Presence
    ) -> Iterator[list[Snapshot]]:
        for rows in self._pages("scorecards", self._since(since)):
            snapshots = self._scorecard_snapshots(rows)
            for snapshot in snapshots:
                presence.add(EntityKind.SCORECARD, snapshot.id)
            if snapshots:
                yield list(snapshots)

    def _scorecard_snapshots(self, rows: Sequence[Record]) -> list[ScorecardSnapshot]:
        scorecards = [r for r in rows if isinstance(r.get("id"), int)]
        if not scorecards:
            return []
        # v3 scorecards carry interviewer_id but no interview id: the interviewer row holding
        # the scorecard_id ties a scorecard to its scheduled interview.
        by_scorecard = {
            row["scorecard_id"]: row
            for row in self._list_by_ids(
                "interviewers", "scorecard_ids", [s["id"] for s in scorecards]
            )
            if isinstance(row.get("scorecard_id"), int)
        }
        emails = self._emails(s.get("interviewer_id") for s in scorecards)
        snapshots = []
        for scorecard in scorecards:
            row = by_scorecard.get(scorecard["id"])
            email = (row or {}).get("email") or _lookup(emails, scorecard.get("interviewer_id"))
            updated_at = _parse_time(scorecard.get("updated_at"))
            application_id = scorecard.get("application_id")
            if not email or updated_at is None or not isinstance(application_id, int):
                log.warning(
                    "greenhouse.record_skipped",
                    connector=self.name,
                    resource="scorecards",
                    id=scorecard["id"],
                    reason="no interviewer e-mail, application or updated_at",
                )
                continue
            schedule_id = (row or {}).get("interview_id")
            snapshots.append(
                ScorecardSnapshot(
                    id=str(scorecard["id"]),
                    application_id=str(application_id),
                    interviewer_email=str(email),
                    submitted=scorecard.get("status") == "complete",
                    updated_at=updated_at,
                    schedule_id=str(schedule_id) if schedule_id is not None else None,
                    submitted_at=_parse_time(scorecard.get("submitted_at")),
                )
            )
        return snapshots

    # HTTP -------------------------------------------------------------

    def _pages(self, resource: str, params: Mapping[str, str]) -> Iterator[list[Record]]:
        """Every page of a v3 list; filters and per_page go on the first request only.

        The next page comes only from ``Link: <...?cursor=...>; rel="next"`` and a request
        carrying ``cursor`` must carry nothing else (https://harvestdocs.greenhouse.io/docs/pagination).
        We re-issue the cursor against our own base URL so the token never follows a link to
        another host.
        """
        path = f"/v3/{resource}"
        query: dict[str, str] = {**params, "per_page": str(self._per_page)}
        while True:
            body, response = self._http.get_json(path, params=query)
            self._respect_rate_limit(response)
            if not isinstance(body, list):
                raise MalformedPayloadError(
                    self.name,
                    f"GET {path} did not return a JSON array",
                    status=response.status_code,
                )
            yield [row for row in body if isinstance(row, dict)]
            cursor = _next_cursor(self.name, response.headers.get("link"))
            if cursor is None:
                return
            query = {"cursor": cursor}

    def _list_all(self, resource: str, params: Mapping[str, str]) -> list[Record]:
        return [row for rows in self._pages(resource, params) for row in rows]

    def _list_by_ids(
        self,
        resource: str,
        filter_name: str,
        ids: Iterable[int],
        extra: Mapping[str, str] | None = None,
    ) -> list[Record]:
        rows: list[Record] = []
        for batch in _chunks(sorted(set(ids))):
            rows.extend(self._list_all(resource, {filter_name: _join(batch), **(extra or {})}))
        return rows

    def _respect_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is None or remaining.strip() != "0":
            return
        wait = (
            retry_after_seconds(response.headers)
            or _reset_seconds(response.headers.get("x-ratelimit-reset"), self._clock())
            or RATE_LIMIT_WINDOW_SECONDS
        )
        self.rate_limit_pauses += 1
        log.info("greenhouse.rate_limit_pause", connector=self.name, seconds=wait)
        self.policy.sleep(min(wait, self.policy.max_delay))

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check ``Signature: sha256 <hex>``: HMAC-SHA256 of the raw body with the secret key.

        The digest covers the body exactly as sent, Unicode escapes included
        (webhooks/_introduction.md "Authentication"), so never re-serialise before checking.
        """
        if not self._webhook_secret:
            raise WebhookRejected(self.name, "no webhook secret configured", status=401)
        header = _header(headers, "Signature")
        if not header:
            raise WebhookRejected(self.name, "missing Signature header", status=401)
        algorithm, _, given = header.strip().partition(" ")
        if algorithm.lower() != "sha256" or not given:
            raise WebhookRejected(self.name, "malformed Signature header", status=401)
        expected = hmac.new(self._webhook_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given.strip().lower()):
            raise WebhookRejected(self.name, "signature does not match the body", status=401)

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """``Greenhouse-Event-ID`` (unique per delivery), else a digest of the body."""
        event_id = _header(headers, "Greenhouse-Event-ID")
        if event_id:
            return event_id.strip()
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedDelivery:
        """Map one verified delivery to snapshots.

        Webhook payloads use the v1 shapes and often lack an ``updated_at``; the snapshot time
        is the payload's own newest timestamp (``last_activity_at`` for applications, the offer's
        ``resolved_at`` for a hire, the job's latest of created/opened/closed) so a late
        redelivery never beats a newer poll. Payloads with no time at all (deletions) use the
        parse time: a deletion is final.
        """
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedPayloadError(self.name, "body is not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("action"), str):
            raise MalformedPayloadError(self.name, "no action in the delivery")
        action: str = document["action"]
        payload = document.get("payload")
        if action == "ping":
            return ParsedDelivery(event_type=action, snapshots=[], is_ping=True)
        if not isinstance(payload, dict):
            raise MalformedPayloadError(self.name, f"{action}: no payload object")
        try:
            snapshots = self._parse_action(action, payload)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedPayloadError(
                self.name, f"{action}: unexpected payload ({type(exc).__name__}: {exc})"
            ) from None
        return ParsedDelivery(event_type=action, snapshots=snapshots)

    def _parse_action(self, action: str, payload: Record) -> list[Snapshot]:
        if action in _APPLICATION_EVENTS:
            return self._application_from_webhook(action, payload["application"])
        if action in _JOB_EVENTS:
            return [self._job_from_webhook(payload["job"])]
        if action in _IGNORED_EVENTS:
            return []
        now = self._clock()
        if action == "job_deleted":
            return [Deletion(EntityKind.JOB, _id(payload["job"]), now)]
        if action == "job_interview_stage_deleted":
            stage = payload["job_interview_stage"]
            return [
                Deletion(EntityKind.STAGE, _id(stage), _parse_time(stage.get("updated_at")) or now)
            ]
        if action == "interview_deleted":
            return [Deletion(EntityKind.SCHEDULE, _id(payload["interview"]), now)]
        if action == "scorecard_deleted":
            scorecard = payload["scorecard"]
            return [
                Deletion(
                    EntityKind.SCORECARD,
                    _id(scorecard),
                    _parse_time(scorecard.get("updated_at")) or now,
                )
            ]
        if action == "delete_application":
            return [Deletion(EntityKind.APPLICATION, _id(payload["application"]), now)]
        if action == "delete_candidate":
            person = payload["person"]
            deleted: list[Snapshot] = [
                Deletion(EntityKind.APPLICATION, str(int(a)), now)
                for a in person.get("deleted_application_ids") or []
            ]
            return [Deletion(EntityKind.CANDIDATE, _id(person), now), *deleted]
        if action in ("merge_candidate", "candidate_merged"):
            # The documented payload's person is the candidate merged away (new_candidate_id is
            # the survivor); its applications move to the survivor and the poll picks them up.
            return [Deletion(EntityKind.CANDIDATE, _id(payload["person"]), now)]
        raise UnknownEventError(self.name, f"unhandled Greenhouse event {action!r}")

    def _application_from_webhook(self, action: str, application: Record) -> list[Snapshot]:
        if application.get("prospect"):
            return []
        application_id = _id(application)
        candidate = application["candidate"]
        jobs = application.get("jobs") or []
        job = jobs[0] if jobs else application.get("job")
        if not isinstance(job, dict):
            return []  # a jobless prospect
        offer: Record = application["offer"] if isinstance(application.get("offer"), dict) else {}
        at = _parse_time(application.get("last_activity_at")) or _latest(
            offer.get("resolved_at"),
            application.get("rejected_at"),
            application.get("applied_at"),
            offer.get("created_at"),
        )
        if at is None:
            raise ValueError("no timestamp in the application")
        status_value = application.get("status")
        status = (
            _APPLICATION_STATUS.get(status_value, ApplicationStatus.ACTIVE)
            if isinstance(status_value, str)
            else _APPLICATION_EVENTS[action] or ApplicationStatus.ACTIVE
        )
        stage = application.get("current_stage")
        stage_id = _id(stage) if isinstance(stage, dict) else None
        # Greenhouse does not say when the stage was entered; for a stage change the delivery's
        # newest time (last_activity_at) is the best estimate, for a new application applied_at.
        entered: datetime | None = None
        if action in ("candidate_stage_change", "unhire_candidate"):
            entered = at
        elif action == "new_candidate_application":
            entered = _parse_time(application.get("applied_at")) or at
        candidate_id = _id(candidate)
        coordinator = candidate.get("coordinator")
        return [
            ApplicationSnapshot(
                id=application_id,
                candidate_id=candidate_id,
                job_id=_id(job),
                stage_id=stage_id,
                status=status,
                updated_at=at,
                stage_entered_at=entered,
                candidate=CandidateSnapshot(
                    id=candidate_id,
                    name=_person_name(candidate),
                    updated_at=at,
                    email=_first_email(candidate.get("email_addresses")),
                    coordinator_email=(coordinator or {}).get("email") or None,
                    url=f"{self._app_url}/people/{candidate_id}",
                ),
                url=f"{self._app_url}/people/{candidate_id}?application_id={application_id}",
            )
        ]

    def _job_from_webhook(self, job: Record) -> JobSnapshot:
        created_at = _parse_time(job.get("created_at"))
        if created_at is None or not isinstance(job.get("name"), str):
            raise ValueError("job without name or created_at")
        updated_at = _latest(job.get("created_at"), job.get("opened_at"), job.get("closed_at"))
        job_id = _id(job)
        # Job webhooks name the hiring team by user id only, and say nothing of stages or posts.
        # Ids this connector has already polled (users partition) resolve to e-mails, so a new
        # job's task goes to its coordinator at once rather than to the account owner until the
        # next poll; unknown ids, stages and posts stay None (unknown) and the poll fills them in.
        team = job.get("hiring_team")
        team = team if isinstance(team, dict) else {}
        recruiter = self._team_email(team.get("recruiters")) or _lookup(
            self._user_emails, job.get("created_by_id")
        )
        return JobSnapshot(
            id=job_id,
            name=job["name"],
            status=_JOB_STATUS.get(str(job.get("status")), JobStatus.OPEN),
            created_at=created_at,
            updated_at=updated_at or created_at,
            coordinator_email=self._team_email(team.get("coordinators")),
            recruiter_email=recruiter,
            url=f"{self._app_url}/sdash/{job_id}",
        )

    def _team_email(self, members: Any) -> str | None:
        """The first hiring-team member (``{"user_id": ...}``) whose e-mail we know."""
        for member in members if isinstance(members, list) else ():
            if isinstance(member, dict):
                email = _lookup(self._user_emails, member.get("user_id"))
                if email:
                    return email
        return None


# ---------------------------------------------------------------------- helpers


class _ProgressCounter:
    def __init__(
        self,
        connector: str,
        partition: str,
        callback: ProgressCallback | None,
        total: int,
        done: int,
    ) -> None:
        self.connector = connector
        self.partition = partition
        self.callback = callback
        self.total = total
        self.done = done
        self.pages = 0
        self.records = 0

    def page(self, records: int) -> None:
        self.pages += 1
        self.records += records
        if self.callback is not None:
            self.callback(
                PollProgress(
                    self.connector, self.partition, self.pages, self.records, self.total, self.done
                )
            )


def _pages_with_cursor(
    partition: str,
    pages: Iterator[list[Snapshot]],
    cursor: str,
    presence: _Presence,
    counter: _ProgressCounter,
) -> Iterator[PollPage]:
    """Hold one page back so the last one can carry the cursor (and present_ids)."""
    held: list[Snapshot] | None = None
    for snapshots in pages:
        if held is not None:
            counter.page(len(held))
            yield PollPage(partition, held)
        held = snapshots
    final = held or []
    present = {kind: set(ids) for kind, ids in presence.ids.items()} if presence.complete else None
    counter.page(len(final))
    yield PollPage(partition, final, cursor=cursor, present_ids=present)


def _next_cursor(connector: str, link: str | None) -> str | None:
    if not link:
        return None
    match = _LINK_NEXT.search(link)
    if match is None:
        return None
    cursor = parse_qs(urlsplit(match.group(1)).query).get("cursor")
    if not cursor or not cursor[0]:
        raise ProviderRequestError(connector, "Link rel=next without a cursor", status=200)
    return cursor[0]


def _reset_seconds(value: str | None, now: datetime) -> float | None:
    # X-RateLimit-Reset's unit is UNCONFIRMED for v3: accept seconds-to-wait or an epoch time.
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number > 1_000_000_000:
        return max(0.0, number - now.timestamp())
    return max(0.0, number)


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
        yield ids[start : start + MAX_IDS_PER_REQUEST]


def _join(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def _format_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, rounded down so a ``gte`` filter never skips a row."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_day(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(0), UTC)
    except ValueError:
        return None


def _latest(*values: Any) -> datetime | None:
    times = [t for v in values if (t := _parse_time(v)) is not None]
    return max(times) if times else None


def _id(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise TypeError("expected an object with an id")
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ValueError("id is not an integer or string")
    return str(value)


def _lookup(emails: Mapping[int, str], user_id: Any) -> str | None:
    return emails.get(user_id) if isinstance(user_id, int) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _person_name(person: Mapping[str, Any]) -> str:
    parts = [person.get("first_name"), person.get("last_name")]
    return " ".join(str(p) for p in parts if p).strip() or f"Candidate {person.get('id')}"


def _first_email(addresses: Any) -> str | None:
    if not isinstance(addresses, list):
        return None
    for address in addresses:
        if isinstance(address, dict) and isinstance(address.get("value"), str) and address["value"]:
            return str(address["value"])
    return None


def _owner_email(
    owners: Sequence[Record], job_id: int, role: str, emails: Mapping[int, str]
) -> str | None:
    # job_owners: type sourcer|recruiter|coordinator, "responsible" marks the default assignee.
    rows = sorted(
        (o for o in owners if o.get("job_id") == job_id and o.get("type") == role),
        key=lambda o: (not o.get("responsible"), o.get("id") or 0),
    )
    for row in rows:
        email = _lookup(emails, row.get("user_id"))
        if email:
            return email
    return None


def _recruiter_email(
    job: Record, owners: Sequence[Record], emails: Mapping[int, str]
) -> str | None:
    recruiter = _owner_email(owners, int(job["id"]), "recruiter", emails)
    creator = job.get("created_by_id")  # v1's field; the v3 job schema may not carry it
    if recruiter is None and isinstance(creator, int):
        return emails.get(creator)
    return recruiter


def _current_stage_entry(rows: Sequence[Record]) -> Record | None:
    """The row with ``current: true`` (``exited_at`` null); None when the application left
    every stage (hired: v3 has no stage for terminal applications)."""
    current = [
        r
        for r in rows
        if r.get("current") or (r.get("current") is None and r.get("exited_at") is None)
    ]
    if not current:
        return None
    oldest = datetime.min.replace(tzinfo=UTC)
    return max(
        current, key=lambda r: (_parse_time(r.get("entered_at")) or oldest, r.get("id") or 0)
    )


__all__ = ["PARTITIONS", "ConnectorError", "GreenhouseConfigLike", "GreenhouseConnector"]
