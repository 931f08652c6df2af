"""`GreenhouseConnector`: Harvest v3 polling by partition and signed webhooks, as snapshots.

The pieces live beside it: `client` (OAuth, pages, rate limit), `mapping` (records and payloads
to snapshots) and `webhooks` (signature, delivery id, parsing). This module decides what to
list, in which order, and which parents a changed child re-emits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
import structlog

from connectors.base import ParsedDelivery, PollPage, ProgressCallback
from connectors.greenhouse import mapping, webhooks
from connectors.greenhouse.client import (
    MAX_PER_PAGE,
    Clock,
    HarvestClient,
    chunks,
    join_ids,
)
from connectors.greenhouse.mapping import IncompleteRecord, Links, Record
from connectors.http import RequestStats, RetryPolicy
from connectors.polling import Partition, Presence, poll_partitions
from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    Deletion,
    EntityKind,
    JobSnapshot,
    ScheduleSnapshot,
    ScorecardSnapshot,
    Snapshot,
    UserSnapshot,
)

log = structlog.get_logger("connectors.greenhouse")

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


class GreenhouseConfigLike(Protocol):
    """What ``from_config`` reads (``taskplanner.config.GreenhouseConfig`` fits)."""

    @property
    def base_url(self) -> str: ...

    @property
    def auth_url(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    def secret(self, name: str) -> str: ...


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
        sweep_grace: timedelta = timedelta(days=1),
        app_url: str = mapping.DEFAULT_APP_URL,
        time_zone: str = "UTC",
    ) -> None:
        self.name = name
        self._webhook_secret = webhook_secret
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        # Re-reading a little before the cursor covers clock skew between us and Greenhouse and
        # rows committed late; snapshots are idempotent, so duplicates cost nothing.
        self._lookback = lookback
        self._sweep_interviews = sweep_interviews
        # How long after its end an interview is still swept for a silent delete (its
        # pending_evaluation task still needs it).
        self._sweep_grace = sweep_grace
        self._links = Links(app_url.rstrip("/"))
        # The account's zone: all_day_start_on/all_day_end_on name days there.
        self._zone = ZoneInfo(time_zone)
        self._user_emails: dict[int, str] = {}
        self._unknown_interviewers: set[tuple[Any, Any]] = set()
        self._harvest = HarvestClient(
            name,
            base_url=base_url,
            auth_url=auth_url,
            client_id=client_id,
            client_secret=client_secret,
            user_id=user_id,
            transport=transport,
            policy=policy,
            clock=self._clock,
            timeout=timeout,
            per_page=per_page,
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
        app_url = getattr(cfg, "app_url", None)
        if app_url:
            options.setdefault("app_url", app_url)
        time_zone = getattr(cfg, "time_zone", None)
        if time_zone:
            options.setdefault("time_zone", time_zone)
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
    def policy(self) -> RetryPolicy:
        """The retry policy every Harvest and token request follows."""
        return self._harvest.policy

    @property
    def rate_limit_pauses(self) -> int:
        """How often the poll waited because X-RateLimit-Remaining reached 0."""
        return self._harvest.rate_limit_pauses

    @property
    def stats(self) -> RequestStats:
        """Request counters of the Harvest client (for metrics)."""
        return self._harvest.stats

    def close(self) -> None:
        self._harvest.close()

    def authenticate(self) -> None:
        """Get a fresh access token; FatalConnectorError when the credentials are rejected."""
        self._harvest.authenticate()

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
        also sweeps the ids of the interviews ending after now - ``sweep_grace`` and reports them
        as ``present_ids`` (scoped by ``present_from``) on every poll (``sweep_interviews``).
        """
        producers = {
            "users": self._poll_users,
            "jobs": self._poll_jobs,
            "applications": self._poll_applications,
            "interviews": self._poll_interviews,
            "scorecards": self._poll_scorecards,
        }
        partitions = [Partition(p, PARTITION_KINDS[p], producers[p]) for p in PARTITIONS]
        return poll_partitions(
            self.name, partitions, cursors, started_at=started_at, full=full, progress=progress
        )

    def _since(self, since: datetime | None) -> dict[str, str]:
        if since is None:
            return {}
        # Pipe form, as on the list-endpoints guide: updated_at=gte|2024-01-01T00:00:00Z.
        return {"updated_at": f"gte|{mapping.format_time(since - self._lookback)}"}

    def _skipped(self, resource: str, record_id: Any, problem: IncompleteRecord) -> None:
        log.warning(
            "greenhouse.record_skipped",
            connector=self.name,
            resource=resource,
            id=record_id,
            reason=str(problem),
        )

    # users ------------------------------------------------------------

    def _poll_users(self, since: datetime | None, presence: Presence) -> Iterator[list[Snapshot]]:
        for rows in self._harvest.pages("users", self._since(since)):
            snapshots: list[Snapshot] = []
            for row in rows:
                user = self._remember_user(row)
                if user is not None:
                    snapshots.append(user)
                    presence.add(EntityKind.USER, user.id)
            if snapshots:
                yield snapshots

    def _remember_user(self, row: Record) -> UserSnapshot | None:
        user = mapping.map_user(row)
        if user is not None:
            self._user_emails[int(user.id)] = user.email
        return user

    def _emails(self, user_ids: Iterable[Any]) -> dict[int, str]:
        wanted = {u for u in user_ids if isinstance(u, int)}
        missing = sorted(wanted - self._user_emails.keys())
        for row in self._harvest.list_by_ids("users", "ids", missing):
            self._remember_user(row)
        return {u: self._user_emails[u] for u in wanted if u in self._user_emails}

    # jobs -------------------------------------------------------------

    def _poll_jobs(self, since: datetime | None, presence: Presence) -> Iterator[list[Snapshot]]:
        emitted: set[int] = set()
        for rows in self._harvest.pages("jobs", self._since(since)):
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
            for rows in self._harvest.pages(resource, {**self._since(since), **extra}):
                changed.update(r["job_id"] for r in rows if isinstance(r.get("job_id"), int))
        for batch in chunks(sorted(changed - emitted)):
            rows = self._harvest.list_all("jobs", {"ids": join_ids(batch)})
            if snapshots := self._job_snapshots(rows):
                yield list(snapshots)

    def _job_snapshots(self, rows: Sequence[Record]) -> list[JobSnapshot]:
        jobs = [r for r in rows if isinstance(r.get("id"), int) and not r.get("is_template")]
        if not jobs:
            return []
        ids = [int(r["id"]) for r in jobs]
        harvest = self._harvest
        stages = harvest.list_by_ids("job_interview_stages", "job_ids", ids)
        kinds = harvest.list_by_ids("job_interviews", "job_ids", ids)
        owners = harvest.list_by_ids("job_owners", "job_ids", ids)
        posts = harvest.list_by_ids("job_posts", "job_ids", ids)
        # Deleted posts are hidden by default; their deletion time still dates the snapshot.
        posts += harvest.list_by_ids("job_posts", "job_ids", ids, {"active": "false"})
        emails = self._emails(
            [o.get("user_id") for o in owners] + [j.get("created_by_id") for j in jobs]
        )
        snapshots = []
        for job in jobs:
            try:
                snapshots.append(
                    mapping.map_job(job, stages, kinds, owners, posts, emails, self._links)
                )
            except IncompleteRecord as problem:
                self._skipped("jobs", job["id"], problem)
        return snapshots

    # applications -----------------------------------------------------

    def _poll_applications(
        self, since: datetime | None, presence: Presence
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

        harvest = self._harvest
        for rows in harvest.pages("applications", self._since(since)):
            if snapshots := emit(rows):
                yield snapshots
        if since is None:
            return
        # The embedded candidate and the stage history are resources of their own.
        candidate_ids = {
            r["id"]
            for rows in harvest.pages("candidates", self._since(since))
            for r in rows
            if isinstance(r.get("id"), int)
        }
        application_ids = {
            r["application_id"]
            for rows in harvest.pages("application_stages", self._since(since))
            for r in rows
            if isinstance(r.get("application_id"), int)
        }
        for batch in chunks(sorted(candidate_ids)):
            rows = harvest.list_all("applications", {"candidate_ids": join_ids(batch)})
            if snapshots := emit(rows):
                yield snapshots
        for batch in chunks(sorted(application_ids - emitted)):
            if snapshots := emit(harvest.list_all("applications", {"ids": join_ids(batch)})):
                yield snapshots

    def _application_snapshots(self, rows: Sequence[Record]) -> list[ApplicationSnapshot]:
        applications = [r for r in rows if mapping.is_pipeline_application(r)]
        if not applications:
            return []
        candidates = {
            c["id"]: c
            for c in self._harvest.list_by_ids(
                "candidates", "ids", sorted({a["candidate_id"] for a in applications})
            )
        }
        history: dict[int, list[Record]] = {}
        for row in self._harvest.list_by_ids(
            "application_stages", "application_ids", [a["id"] for a in applications]
        ):
            history.setdefault(row.get("application_id") or 0, []).append(row)
        emails = self._emails(a.get("coordinator_id") for a in applications)
        snapshots = []
        for application in applications:
            try:
                snapshots.append(
                    mapping.map_application(
                        application,
                        candidates.get(application["candidate_id"]),
                        history.get(application["id"], []),
                        emails,
                        self._links,
                    )
                )
            except IncompleteRecord as problem:
                self._skipped("applications", application["id"], problem)
        return snapshots

    # interviews -------------------------------------------------------

    def _poll_interviews(
        self, since: datetime | None, presence: Presence
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

        harvest = self._harvest
        for rows in harvest.pages("interviews", self._since(since)):
            if snapshots := emit(rows):
                yield snapshots
        if since is None:
            return
        # An RSVP lives on /v3/interviewers and need not move the interview row.
        interview_ids = {
            r["interview_id"]
            for rows in harvest.pages("interviewers", self._since(since))
            for r in rows
            if isinstance(r.get("interview_id"), int)
        }
        for batch in chunks(sorted(interview_ids - emitted)):
            if snapshots := emit(harvest.list_all("interviews", {"ids": join_ids(batch)})):
                yield snapshots
        if self._sweep_interviews:
            # Cancelling an interview deletes it and (without webhooks) nothing says so: list the
            # ids (sparse fieldset) of the interviews that can still matter, those ending after
            # now - sweep_grace, so the runner can drop the vanished ones among them. Listing
            # every interview instead costs one request per 500 past interviews on every poll.
            # ends_at and all_day_end_on are filters of /v3/interviews
            # (https://harvestdocs.greenhouse.io/reference/get_v3-interviews); all-day
            # interviews have no ends_at, and their day is a local one, hence the spare day.
            ends_from = self._clock() - self._sweep_grace
            sweep = Presence(ids={EntityKind.SCHEDULE: set()}, complete=True, ends_from=ends_from)
            queries = (
                {"ends_at": f"gte|{mapping.format_time(ends_from)}"},
                {"all_day_end_on": f"gte|{(ends_from.date() - timedelta(days=1)).isoformat()}"},
            )
            for query in queries:
                for rows in harvest.pages("interviews", {**query, "fields": "id,status"}):
                    for row in rows:
                        if (
                            isinstance(row.get("id"), int)
                            and row.get("status") not in mapping.UNSCHEDULED
                        ):
                            sweep.add(EntityKind.SCHEDULE, str(row["id"]))
            presence.ids = sweep.ids
            presence.complete = True
            presence.ends_from = ends_from

    def _schedule_snapshots(
        self, rows: Sequence[Record], kinds: dict[int, Record]
    ) -> list[Snapshot]:
        interviews = [r for r in rows if isinstance(r.get("id"), int)]
        if not interviews:
            return []
        panel: dict[int, list[Record]] = {}
        ids = [r["id"] for r in interviews]
        for row in self._harvest.list_by_ids("interviewers", "interview_ids", ids):
            panel.setdefault(row.get("interview_id") or 0, []).append(row)
        missing = sorted(
            {
                r["job_interview_id"]
                for r in interviews
                if isinstance(r.get("job_interview_id"), int) and r["job_interview_id"] not in kinds
            }
        )
        for kind in self._harvest.list_by_ids("job_interviews", "ids", missing):
            kinds[int(kind["id"])] = kind
        # The v3 interviewers schema allows email: null; such a row names its user, whose
        # e-mail the users partition has (as for scorecards).
        rows = [row for rows in panel.values() for row in rows]
        emails = self._emails(r.get("user_id") for r in rows if not r.get("email"))
        for row in rows:
            if mapping.interviewer_email(row, emails) is None:
                self._unknown_interviewer(row)
        snapshots: list[Snapshot] = []
        for interview in interviews:
            try:
                snapshots.append(
                    mapping.map_schedule(
                        interview, panel.get(interview["id"], []), kinds, emails, self._zone
                    )
                )
            except IncompleteRecord as problem:
                self._skipped("interviews", interview["id"], problem)
        return snapshots

    def _unknown_interviewer(self, row: Record) -> None:
        """A panel row with neither e-mail nor a known user: left out, logged once per row."""
        key = (row.get("interview_id"), row.get("id"))
        if key in self._unknown_interviewers:
            return
        self._unknown_interviewers.add(key)
        log.warning(
            "greenhouse.interviewer_unknown",
            connector=self.name,
            interview=row.get("interview_id"),
            interviewer_row=row.get("id"),
            user_id=row.get("user_id"),
            reason="no e-mail and no user with one; no task can reach this interviewer",
        )

    # scorecards -------------------------------------------------------

    def _poll_scorecards(
        self, since: datetime | None, presence: Presence
    ) -> Iterator[list[Snapshot]]:
        for rows in self._harvest.pages("scorecards", self._since(since)):
            snapshots = self._scorecard_snapshots(rows)
            for snapshot in snapshots:
                presence.add(EntityKind.SCORECARD, snapshot.id)
            if snapshots:
                yield list(snapshots)

    def _scorecard_snapshots(self, rows: Sequence[Record]) -> list[ScorecardSnapshot]:
        scorecards = [r for r in rows if isinstance(r.get("id"), int)]
        if not scorecards:
            return []
        by_scorecard = {
            row["scorecard_id"]: row
            for row in self._harvest.list_by_ids(
                "interviewers", "scorecard_ids", [s["id"] for s in scorecards]
            )
            if isinstance(row.get("scorecard_id"), int)
        }
        emails = self._emails(s.get("interviewer_id") for s in scorecards)
        snapshots = []
        for scorecard in scorecards:
            try:
                snapshots.append(
                    mapping.map_scorecard(scorecard, by_scorecard.get(scorecard["id"]), emails)
                )
            except IncompleteRecord as problem:
                self._skipped("scorecards", scorecard["id"], problem)
        return snapshots

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless ``Signature`` is the HMAC-SHA256 of the raw body."""
        webhooks.verify_signature(self.name, self._webhook_secret, headers, body)

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """``Greenhouse-Event-ID`` (unique per delivery), else a digest of the body."""
        return webhooks.delivery_id(headers, body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedDelivery:
        """Map one verified delivery to snapshots; hiring-team ids resolve through the users
        this connector has polled."""
        return webhooks.parse_delivery(
            self.name, body, now=self._clock(), user_emails=self._user_emails, links=self._links
        )
