"""`AshbyConnector`: syncToken polling by partition and signed webhooks, as snapshots.

The pieces live beside it: `client` (basic auth, ``success: false``, cursors and syncTokens),
`mapping` (records and payloads to snapshots) and `webhooks` (signature, delivery id,
parsing). This module decides what to list, in which order, and what a partition's cursor is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog

from connectors.ashby import mapping, webhooks
from connectors.ashby.client import MAX_LIMIT, AshbyClient, Listing
from connectors.ashby.mapping import IncompleteRecord, Links, Record
from connectors.base import ParsedDelivery, PollPage, PollProgress, ProgressCallback
from connectors.http import RequestStats, RetryPolicy
from taskplanner.domain.snapshots import (
    EntityKind,
    JobSnapshot,
    ScheduleSnapshot,
    Snapshot,
)

log = structlog.get_logger("connectors.ashby")

Clock = Callable[[], datetime]

# Users first so that nothing waits on an unknown e-mail; jobs before the applications in them.
PARTITIONS: tuple[str, ...] = ("users", "jobs", "applications", "interviews", "feedback")
PARTITION_KINDS: dict[str, tuple[EntityKind, ...]] = {
    "users": (EntityKind.USER,),
    "jobs": (EntityKind.JOB,),
    "applications": (EntityKind.APPLICATION, EntityKind.CANDIDATE),
    "interviews": (EntityKind.SCHEDULE,),
    "feedback": (EntityKind.SCORECARD,),
}
# Every job status (job.list lists Draft jobs only when asked).
JOB_STATUSES = ["Draft", "Open", "Closed", "Archived"]


class AshbyConfigLike(Protocol):
    """What ``from_config`` reads (``taskplanner.config.AshbyConfig`` fits)."""

    @property
    def base_url(self) -> str: ...

    def secret(self, name: str) -> str: ...


@dataclass
class _Pass:
    """What one partition's producer leaves behind: the tokens for next time and, after a
    complete listing, every id it saw."""

    tokens: dict[str, str | None] = field(default_factory=dict)
    complete: bool = False
    ids: dict[EntityKind, set[str]] = field(default_factory=dict)

    def add(self, kind: EntityKind, entity_id: str) -> None:
        self.ids.setdefault(kind, set()).add(entity_id)


Producer = Callable[[Mapping[str, str], _Pass], Iterator[list[Snapshot]]]


class AshbyConnector:
    """Ashby API + webhooks. Implements ``Connector`` and ``WebhookSource``.

    Partitions (one cursor each): ``users`` (user.list), ``jobs`` (job.list with each job's
    jobInterviewPlan.info; interviewPlan.list finds plans that changed under an unchanged job),
    ``applications`` (application.list, with candidate and current interview stage),
    ``interviews`` (interviewSchedule.list: schedules with their events and interviewers),
    ``feedback`` (applicationFeedback.list). A partition's cursor is a JSON object of its
    endpoints' syncTokens; without one (or with ``full``) the endpoint is listed completely and
    the partition's last page carries ``present_ids``.
    """

    kind = "ashby"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str,
        webhook_secret: str | None,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        limit: int = MAX_LIMIT,
        app_url: str = mapping.DEFAULT_APP_URL,
    ) -> None:
        self.name = name
        self._webhook_secret = webhook_secret
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._links = Links(app_url.rstrip("/"))
        self._client = AshbyClient(
            name,
            base_url=base_url,
            api_key=api_key,
            transport=transport,
            policy=policy,
            timeout=timeout,
            limit=limit,
        )

    @classmethod
    def from_config(cls, name: str, cfg: AshbyConfigLike, **options: Any) -> AshbyConnector:
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
        return cls(
            name,
            base_url=cfg.base_url,
            api_key=cfg.secret("api_key"),
            webhook_secret=webhook_secret,
            **options,
        )

    @property
    def policy(self) -> RetryPolicy:
        return self._client.policy

    @property
    def stats(self) -> RequestStats:
        return self._client.stats

    @property
    def resyncs(self) -> int:
        """Full listings forced by a rejected syncToken since this connector was made."""
        return self._client.resyncs

    def close(self) -> None:
        self._client.close()

    def authenticate(self) -> None:
        """apiKey.info: FatalConnectorError when the key is missing, wrong or deactivated."""
        self._client.call("apiKey.info", {})

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

        ``started_at`` is not needed: syncTokens, not times, say where the next poll starts.
        """
        producers: dict[str, Producer] = {
            "users": self._poll_users,
            "jobs": self._poll_jobs,
            "applications": self._poll_applications,
            "interviews": self._poll_interviews,
            "feedback": self._poll_feedback,
        }
        for done, partition in enumerate(PARTITIONS):
            tokens = {} if full else read_cursor(cursors.get(partition))
            state = _Pass(ids={kind: set() for kind in PARTITION_KINDS[partition]})
            records = 0
            held: list[Snapshot] | None = None
            for pages, batch in enumerate(producers[partition](tokens, state), start=1):
                if held is not None:
                    yield PollPage(partition, held)
                held = batch
                records += len(batch)
                if progress is not None:
                    progress(
                        PollProgress(self.name, partition, pages, records, len(PARTITIONS), done)
                    )
            present = {k: set(v) for k, v in state.ids.items()} if state.complete else None
            yield PollPage(
                partition, held or [], cursor=write_cursor(state.tokens), present_ids=present
            )

    def _pages(
        self, endpoint: str, params: Mapping[str, Any], tokens: Mapping[str, str], state: _Pass
    ) -> Iterator[list[Record]]:
        """Every page of one endpoint from its token; records the next token in ``state``."""
        listing = Listing()
        yield from self._client.pages(
            endpoint, params, sync_token=tokens.get(endpoint), listing=listing
        )
        state.tokens[endpoint] = listing.sync_token
        state.complete = listing.full

    def _skipped(self, resource: str, record: Record, problem: Exception) -> None:
        log.warning(
            "ashby.record_skipped",
            connector=self.name,
            resource=resource,
            id=record.get("id"),
            reason=str(problem),
        )

    def _poll_users(self, tokens: Mapping[str, str], state: _Pass) -> Iterator[list[Snapshot]]:
        for rows in self._pages("user.list", {"includeDeactivated": True}, tokens, state):
            users: list[Snapshot] = []
            for row in rows:
                user = mapping.map_user(row)
                if user is not None:
                    users.append(user)
                    state.add(EntityKind.USER, user.id)
            yield users

    def _poll_jobs(self, tokens: Mapping[str, str], state: _Pass) -> Iterator[list[Snapshot]]:
        # Stages and interviews live on the job's interview plan, whose changes do not move the
        # job's updatedAt: list the plans that changed first, with their times.
        plans = _Pass()
        plan_times: dict[str, datetime] = {}
        for rows in self._pages("interviewPlan.list", {}, tokens, plans):
            for plan in rows:
                at = mapping.parse_time(plan.get("updatedAt"))
                if isinstance(plan.get("id"), str) and at is not None:
                    plan_times[plan["id"]] = at
        emitted: set[str] = set()
        params = {"status": JOB_STATUSES}
        for rows in self._pages("job.list", params, tokens, state):
            jobs = self._job_snapshots(rows, plan_times)
            for job in jobs:
                emitted.add(job.id)
                state.add(EntityKind.JOB, job.id)
            yield list(jobs)
        state.tokens["interviewPlan.list"] = plans.tokens.get("interviewPlan.list")
        if state.complete or not plan_times:
            return
        # Plans changed under jobs that did not: find those jobs (a plan does not name its job).
        for rows in self._client.pages("job.list", params, sync_token=None, listing=Listing()):
            hit = [
                r
                for r in rows
                if r.get("defaultInterviewPlanId") in plan_times and r.get("id") not in emitted
            ]
            if jobs := self._job_snapshots(hit, plan_times):
                emitted.update(j.id for j in jobs)
                yield list(jobs)

    def _job_snapshots(
        self, rows: Sequence[Record], plan_times: Mapping[str, datetime]
    ) -> list[JobSnapshot]:
        out: list[JobSnapshot] = []
        for job in rows:
            if not isinstance(job.get("id"), str):
                continue
            try:
                plan = self._client.call("jobInterviewPlan.info", {"jobId": job["id"]})["results"]
                plan_id = job.get("defaultInterviewPlanId")
                out.append(
                    mapping.map_job(
                        job,
                        plan if isinstance(plan, dict) else None,
                        self._links,
                        plan_updated_at=plan_times.get(plan_id)
                        if isinstance(plan_id, str)
                        else None,
                    )
                )
            except (IncompleteRecord, KeyError, TypeError, ValueError) as problem:
                self._skipped("jobs", job, problem)
        return out

    def _poll_applications(
        self, tokens: Mapping[str, str], state: _Pass
    ) -> Iterator[list[Snapshot]]:
        for rows in self._pages("application.list", {}, tokens, state):
            out: list[Snapshot] = []
            for row in rows:
                try:
                    application = mapping.map_application(row, self._links)
                except (IncompleteRecord, KeyError, TypeError, ValueError) as problem:
                    self._skipped("applications", row, problem)
                    continue
                out.append(application)
                state.add(EntityKind.APPLICATION, application.id)
                state.add(EntityKind.CANDIDATE, application.candidate_id)
            yield out

    def _poll_interviews(self, tokens: Mapping[str, str], state: _Pass) -> Iterator[list[Snapshot]]:
        for rows in self._pages("interviewSchedule.list", {}, tokens, state):
            out: list[Snapshot] = []
            for row in rows:
                try:
                    snapshots = mapping.map_schedule(row)
                except (IncompleteRecord, KeyError, TypeError, ValueError) as problem:
                    self._skipped("interviewSchedules", row, problem)
                    continue
                for snapshot in snapshots:
                    if isinstance(snapshot, ScheduleSnapshot):
                        state.add(EntityKind.SCHEDULE, snapshot.id)
                out.extend(snapshots)
            yield out

    def _poll_feedback(self, tokens: Mapping[str, str], state: _Pass) -> Iterator[list[Snapshot]]:
        for rows in self._pages("applicationFeedback.list", {}, tokens, state):
            out: list[Snapshot] = []
            for row in rows:
                try:
                    scorecard = mapping.map_feedback(row)
                except (IncompleteRecord, KeyError, TypeError, ValueError) as problem:
                    self._skipped("applicationFeedback", row, problem)
                    continue
                out.append(scorecard)
                state.add(EntityKind.SCORECARD, scorecard.id)
            yield out

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless ``Ashby-Signature`` is the HMAC-SHA256 of the body."""
        webhooks.verify_signature(self.name, self._webhook_secret, headers, body)

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The action, the affected resource's id and its updatedAt (see `webhooks.delivery_id`)."""
        return webhooks.delivery_id(body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedDelivery:
        return webhooks.parse_delivery(self.name, body, now=self._clock(), links=self._links)


def read_cursor(value: str | None) -> dict[str, str]:
    """A partition's stored cursor (``{"<endpoint>": "<syncToken>"}``); {} lists everything."""
    if not value:
        return {}
    try:
        tokens = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(tokens, dict):
        return {}
    return {k: v for k, v in tokens.items() if isinstance(k, str) and isinstance(v, str) and v}


def write_cursor(tokens: Mapping[str, str | None]) -> str:
    return json.dumps({k: v for k, v in sorted(tokens.items()) if v}, separators=(",", ":"))
