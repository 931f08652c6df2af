"""`LeverConnector`: Lever polling by partition and signed webhooks, as snapshots.

The pieces live beside it: `client` (Basic auth, offset pages, the rate limit), `mapping`
(records to snapshots) and `webhooks` (signature, freshness, delivery id). This module decides
what to list, in which order, and what a webhook's ids are fetched as.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import structlog

from connectors.base import (
    MalformedPayloadError,
    ParsedDelivery,
    PollPage,
    ProgressCallback,
    ProviderRequestError,
    UnknownEventError,
)
from connectors.http import RequestStats, RetryPolicy
from connectors.lever import mapping, webhooks
from connectors.lever.client import DOCUMENTED_RATE, MAX_LIMIT, LeverClient, RateLimiter
from connectors.lever.mapping import IncompleteRecord, Links, Record, from_ms, ref, to_ms
from connectors.polling import Partition, Presence, poll_partitions
from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    Deletion,
    EntityKind,
    JobSnapshot,
    ScheduleSnapshot,
    ScheduleStatus,
    ScorecardSnapshot,
    Snapshot,
)

log = structlog.get_logger("connectors.lever")

Clock = Callable[[], datetime]

# Users first so owner and interviewer e-mails resolve from the cache; applications before
# interviews so the interviews partition knows which opportunities moved.
PARTITIONS: tuple[str, ...] = ("users", "jobs", "applications", "interviews")
PARTITION_KINDS: dict[str, tuple[EntityKind, ...]] = {
    "users": (EntityKind.USER,),
    "jobs": (EntityKind.JOB,),
    "applications": (EntityKind.APPLICATION, EntityKind.CANDIDATE),
    "interviews": (EntityKind.SCHEDULE, EntityKind.SCORECARD),
}
# An interview whose feedback is still missing this long after it ended is no longer looked
# for on every poll (a full sync still reads it).
FEEDBACK_WATCH = timedelta(days=30)
# How long a posting read by a poll or for a webhook is reported as read (the default
# poll_interval) before a webhook reads it again.
POSTING_FRESH = 300.0
# Opportunities whose interviews and feedback go in one page of the interviews partition.
OPPORTUNITIES_PER_PAGE = 25


class LeverConfigLike(Protocol):
    """What ``from_config`` reads (``taskplanner.config.LeverConfig`` fits)."""

    @property
    def base_url(self) -> str: ...

    def secret(self, name: str) -> str: ...


class LeverConnector:
    """Lever Data API v1 + webhooks. Implements ``Connector`` and ``WebhookSource``.

    Partitions (one cursor each): ``users`` (always the whole list: users carry no
    ``updatedAt``), ``jobs`` (postings with the account's stages and feedback templates),
    ``applications`` (opportunities with their application and contact; deletions from
    ``/opportunities/deleted``), ``interviews`` (each opportunity's interviews and feedback
    forms: Lever lists them per opportunity only). A cursor is the poll's ``started_at``; the
    next poll asks for ``updated_at_start = cursor - lookback`` in milliseconds.
    """

    kind = "lever"

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
        wall_clock: Clock | None = None,
        timeout: float = 30.0,
        limit: int = MAX_LIMIT,
        lookback: timedelta = timedelta(minutes=2),
        app_url: str = mapping.DEFAULT_APP_URL,
        requests_per_second: float = DOCUMENTED_RATE,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self._tokens = webhooks.signature_tokens(webhook_secret)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        # triggeredAt is Lever's real time: freshness is judged against ours, not against the
        # clock tests and the sandbox may move.
        self._wall_clock: Clock = wall_clock or (lambda: datetime.now(UTC))
        self._lookback = lookback
        self._links = Links(app_url.rstrip("/"))
        self._lever = LeverClient(
            name,
            base_url=base_url,
            api_key=api_key,
            transport=transport,
            policy=policy,
            timeout=timeout,
            limit=limit,
            requests_per_second=requests_per_second,
            limiter=limiter,
        )
        self._lock = threading.Lock()
        self._emails: dict[str, str] = {}
        self._reason_types: dict[str, str] = {}
        self._pipeline_seen: str | None = None  # digest of the stages and templates last read
        # Opportunities whose interviews may still change or still wait for feedback (Lever
        # sends no webhook for feedback): read again on every poll.
        self._watched: set[str] = set()
        self._swept = False  # the watch list has been built since this process started
        self._interviews_of: dict[str, set[str]] = {}
        self._moved: set[str] = set()  # opportunities the applications partition saw change
        self._posting_of: dict[str, str] = {}  # opportunity -> posting, for interviews' stages
        # Each posting as a webhook about one of its opportunities reports it, and when it was
        # read (monotonic seconds): Lever sends no posting webhooks, so the job of a new
        # posting's first candidate is known at once, not at the next poll (an inbox worker
        # process never polls). Its pipeline is left unknown (``stages=None``): only a poll,
        # which reads stages and templates, says that.
        self._jobs_seen: dict[str, tuple[float, JobSnapshot]] = {}

    @classmethod
    def from_config(cls, name: str, cfg: LeverConfigLike, **options: Any) -> LeverConnector:
        """Build from the ``[connectors.<name>]`` table (secrets already resolved)."""
        optional_secret = getattr(cfg, "optional_secret", None)
        webhook_secret = (
            optional_secret("webhook_secret")
            if callable(optional_secret)
            else cfg.secret("webhook_secret")
        )
        for key in ("app_url", "requests_per_second"):
            value = getattr(cfg, key, None)
            if value:
                options.setdefault(key, value)
        return cls(
            name,
            base_url=cfg.base_url,
            api_key=cfg.secret("api_key"),
            webhook_secret=webhook_secret,
            **options,
        )

    @property
    def policy(self) -> RetryPolicy:
        return self._lever.policy

    @property
    def limiter(self) -> RateLimiter:
        """The token bucket every request of this API key waits for."""
        return self._lever.limiter

    @property
    def stats(self) -> RequestStats:
        return self._lever.stats

    def close(self) -> None:
        self._lever.close()

    def authenticate(self) -> None:
        """One cheap request; FatalConnectorError when Lever rejects the API key."""
        next(self._lever.pages("/users"), None)

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

        What only polls see: new and changed postings, stages and feedback templates (Lever
        sends no webhook for them), submitted feedback, deactivated users, and whatever a
        refused or lost webhook pointed at.
        """
        producers = {
            "users": self._poll_users,
            "jobs": self._poll_jobs,
            "applications": self._poll_applications,
            "interviews": self._poll_interviews,
        }
        partitions = [Partition(p, PARTITION_KINDS[p], producers[p]) for p in PARTITIONS]
        return poll_partitions(
            self.name, partitions, cursors, started_at=started_at, full=full, progress=progress
        )

    def _since(self, since: datetime) -> str:
        return str(to_ms(since - self._lookback))

    def _skipped(self, resource: str, record_id: Any, problem: IncompleteRecord) -> None:
        log.warning(
            "lever.record_skipped",
            connector=self.name,
            resource=resource,
            id=record_id,
            reason=str(problem),
        )

    # users ------------------------------------------------------------

    def _poll_users(self, since: datetime | None, presence: Presence) -> Iterator[list[Snapshot]]:
        # No updatedAt and no updated_at filter on users: the whole list (deactivated included,
        # "includeDeactivated") every time, which also vouches for every user.
        presence.complete = True
        for rows in self._lever.pages("/users", [("includeDeactivated", "true")]):
            snapshots: list[Snapshot] = []
            for row in rows:
                user = mapping.map_user(row)
                if user is not None:
                    self._emails[user.id] = user.email
                    snapshots.append(user)
                    presence.add(EntityKind.USER, user.id)
            if snapshots:
                yield snapshots

    # jobs -------------------------------------------------------------

    def _poll_jobs(self, since: datetime | None, presence: Presence) -> Iterator[list[Snapshot]]:
        stages = self._lever.list_all("/stages")
        templates = self._lever.list_all("/feedback_templates")
        seen = _digest(
            [(s.get("id"), s.get("text")) for s in stages],
            [(t.get("id"), ref(t.get("stage")), t.get("text")) for t in templates],
        )
        # A stage or template belongs to every posting: when they changed (or this process has
        # not seen them yet) every posting's pipeline changed, so all postings are listed.
        everything = since is None or seen != self._pipeline_seen
        params: list[tuple[str, str]] = [("confidentiality", "all")]
        if not everything and since is not None:
            # "updated_at_ parameters can only be used in combination with confidentiality"
            # (List all postings): no expand here, owners resolve through the users partition.
            params.append(("updated_at_start", self._since(since)))
        presence.complete = everything
        for rows in self._lever.pages("/postings", params):
            jobs: list[JobSnapshot] = []
            for posting in rows:
                try:
                    job = mapping.map_job(posting, stages, templates, self._emails, self._links)
                except IncompleteRecord as problem:
                    self._skipped("postings", posting.get("id"), problem)
                    continue
                jobs.append(job)
                presence.add(EntityKind.JOB, job.id)
            if jobs:
                yield list(jobs)
            now = time.monotonic()
            with self._lock:
                self._jobs_seen.update((j.id, (now, replace(j, stages=None))) for j in jobs)
        self._pipeline_seen = seen

    # applications -----------------------------------------------------

    def _poll_applications(
        self, since: datetime | None, presence: Presence
    ) -> Iterator[list[Snapshot]]:
        params: list[tuple[str, str]] = [
            ("confidentiality", "all"),
            ("expand", "applications"),
            ("expand", "owner"),
        ]
        if since is not None:
            params.append(("updated_at_start", self._since(since)))
        moved: set[str] = set()
        for rows in self._lever.pages("/opportunities", params):
            snapshots: list[Snapshot] = []
            for opportunity in rows:
                snapshot = self._application(opportunity)
                if snapshot is None:
                    continue
                moved.add(snapshot.id)
                snapshots.append(snapshot)
                presence.add(EntityKind.APPLICATION, snapshot.id)
                presence.add(EntityKind.CANDIDATE, snapshot.candidate_id)
            if snapshots:
                yield snapshots
        if since is not None:
            deleted: list[Snapshot] = []
            window = [("deleted_at_start", self._since(since))]
            for rows in self._lever.pages("/opportunities/deleted", window):
                for row in rows:
                    opportunity_id = ref(row.get("id"))
                    at = from_ms(row.get("deletedAt")) or self._clock()
                    if opportunity_id is not None:
                        deleted.append(Deletion(EntityKind.APPLICATION, opportunity_id, at))
            if deleted:
                yield deleted
        with self._lock:
            self._moved = moved

    def _application(self, opportunity: Record) -> ApplicationSnapshot | None:
        archived = opportunity.get("archived")
        reason = ref(archived.get("reason")) if isinstance(archived, dict) else None
        if reason is not None and reason not in self._reason_types:
            self._load_reasons()
            self._reason_types.setdefault(reason, "")  # gone from the list: read it once only
        try:
            snapshot = mapping.map_application(
                opportunity, self._reason_types, self._emails, self._links
            )
        except IncompleteRecord as problem:
            self._skipped("opportunities", opportunity.get("id"), problem)
            return None
        if snapshot is not None:
            self._posting_of[snapshot.id] = snapshot.job_id
        return snapshot

    def _load_reasons(self) -> None:
        for row in self._lever.list_all("/archive_reasons"):
            reason = ref(row.get("id"))
            if reason is not None:
                self._reason_types[reason] = str(row.get("type") or "")

    # interviews -------------------------------------------------------

    def _poll_interviews(
        self, since: datetime | None, presence: Presence
    ) -> Iterator[list[Snapshot]]:
        """Interviews and feedback of: every opportunity (full), else the ones that moved in
        this poll, the watched ones (interviews ahead or feedback missing) and, once per
        process, every opportunity still in a pipeline (to build the watch list)."""
        with self._lock:
            scope = set() if since is None else set(self._moved) | set(self._watched)
        if since is None or not self._swept:
            archived = [] if since is None else [("archived", "false")]
            params = [("confidentiality", "all"), *archived]
            listed = {
                opportunity_id
                for rows in self._lever.pages("/opportunities", params)
                for row in rows
                if (opportunity_id := ref(row.get("id"))) is not None
            }
            scope |= listed
        ordered = sorted(scope)
        for start in range(0, len(ordered), OPPORTUNITIES_PER_PAGE):
            batch: list[Snapshot] = []
            for opportunity_id in ordered[start : start + OPPORTUNITIES_PER_PAGE]:
                for snapshot in self._read_interviews(opportunity_id, full=since is None):
                    batch.append(snapshot)
                    if isinstance(snapshot, ScheduleSnapshot):
                        presence.add(EntityKind.SCHEDULE, snapshot.id)
                    elif isinstance(snapshot, ScorecardSnapshot):
                        presence.add(EntityKind.SCORECARD, snapshot.id)
            if batch:
                yield batch
        self._swept = True

    def _read_interviews(self, opportunity_id: str, *, full: bool) -> list[Snapshot]:
        """One opportunity's interviews and feedback forms; a vanished interview (Lever deletes
        them outright) becomes a deletion. Updates the watch list."""
        path = f"/opportunities/{opportunity_id}"
        try:
            interviews = self._lever.list_all(f"{path}/interviews")
            forms = self._lever.list_all(f"{path}/feedback")
        except ProviderRequestError as exc:
            if exc.status != 404:
                raise
            # Deleted meanwhile: the applications partition (or its webhook) says so.
            with self._lock:
                self._watched.discard(opportunity_id)
                self._interviews_of.pop(opportunity_id, None)
            return []
        snapshots: list[Snapshot] = []
        ids: set[str] = set()
        now = self._clock()
        for interview in interviews:
            try:
                schedule = mapping.map_schedule(
                    interview, opportunity_id, self._posting_of.get(opportunity_id)
                )
            except IncompleteRecord as problem:
                self._skipped("interviews", interview.get("id"), problem)
                continue
            ids.add(schedule.id)
            snapshots.append(schedule)
        # An interviewer's e-mail is on the interview itself; the users list covers the rest.
        emails = dict(self._emails)
        for interview in interviews:
            for person in interview.get("interviewers") or []:
                if not isinstance(person, dict) or not isinstance(person.get("email"), str):
                    continue
                if (user := ref(person.get("id"))) and person["email"]:
                    emails.setdefault(user, person["email"])
        submitted: dict[str, int] = {}
        for form in forms:
            try:
                scorecard = mapping.map_feedback(form, opportunity_id, emails)
            except IncompleteRecord as problem:
                self._skipped("feedback", form.get("id"), problem)
                continue
            if scorecard is None:
                continue
            snapshots.append(scorecard)
            if (
                not isinstance(scorecard, Deletion)
                and scorecard.submitted
                and scorecard.schedule_id
            ):
                submitted[scorecard.schedule_id] = submitted.get(scorecard.schedule_id, 0) + 1
        with self._lock:
            before = self._interviews_of.get(opportunity_id, set())
            self._interviews_of[opportunity_id] = ids
            if not full:
                snapshots.extend(
                    Deletion(EntityKind.SCHEDULE, gone, now) for gone in sorted(before - ids)
                )
            waiting = any(
                _still_open(s, submitted.get(s.id, 0), now)
                for s in snapshots
                if isinstance(s, ScheduleSnapshot)
            )
            if waiting:
                self._watched.add(opportunity_id)
            else:
                self._watched.discard(opportunity_id)
        return snapshots

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless the body's ``signature`` is the HMAC-SHA256 of its
        ``token + triggeredAt`` under a configured signature token, and ``triggeredAt`` is
        fresh (`webhooks.MAX_SKEW`)."""
        webhooks.verify(self.name, self._tokens, body, now=self._wall_clock())

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The body's ``token``, random per delivery and repeated by Lever's retries."""
        return webhooks.delivery_id(body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedDelivery:
        """Fetch what a verified delivery points at and map it to snapshots.

        Lever's webhooks carry ids only (and the signature does not cover them), so the
        opportunity or interview is read from the API now: its current state, which makes a
        late or repeated delivery as good as a fresh one. A failed read raises a
        ConnectorError: the inbox keeps the delivery and tries again later.
        """
        event = webhooks.read_event(self.name, body)
        if event.event in webhooks.IGNORED_EVENTS:
            return ParsedDelivery(event_type=event.event, snapshots=[])
        # Only opportunityId: the documented example's candidateId (deprecated) differs from
        # both opportunityId and contactId, so it names neither.
        opportunity_id = event.id("opportunityId")
        if event.event == "candidateHired" and not event.data:
            # The settings page's test request: candidateHired with empty data ("How to set up
            # webhooks"); nothing happened.
            return ParsedDelivery(event_type=event.event, snapshots=[], is_ping=True)
        if event.event in webhooks.OPPORTUNITY_EVENTS:
            if opportunity_id is None:
                raise MalformedPayloadError(self.name, f"{event.event}: no opportunityId in data")
            return ParsedDelivery(event.event, self._fetch_opportunity(opportunity_id))
        if event.event in webhooks.INTERVIEW_EVENTS:
            if opportunity_id is None:
                raise MalformedPayloadError(self.name, f"{event.event}: no opportunityId in data")
            interview_id = event.id("interviewId")
            return ParsedDelivery(event.event, self._fetch_interviews(opportunity_id, interview_id))
        raise UnknownEventError(self.name, f"unhandled Lever event {event.event!r}")

    def _fetch_opportunity(self, opportunity_id: str) -> list[Snapshot]:
        try:
            opportunity = self._lever.get(
                f"/opportunities/{opportunity_id}",
                [("expand", "applications"), ("expand", "owner")],
            )
        except ProviderRequestError as exc:
            if exc.status != 404:
                raise
            # candidateDeleted (or any event about an opportunity deleted since).
            return [Deletion(EntityKind.APPLICATION, opportunity_id, self._clock())]
        snapshot = self._application(opportunity)
        if snapshot is None:
            return []
        job = self._posting(snapshot.job_id)
        return [snapshot] if job is None else [job, snapshot]

    def _posting(self, posting_id: str) -> JobSnapshot | None:
        """The posting as a job without its pipeline: read at most every POSTING_FRESH seconds,
        and reported with every webhook about its opportunities (the same snapshot again
        changes nothing; a newer one from a poll wins by its time)."""
        with self._lock:
            seen = self._jobs_seen.get(posting_id)
        if seen is not None and time.monotonic() - seen[0] < POSTING_FRESH:
            return seen[1]
        try:
            # expand=owner: the owner's e-mail without the users list (a worker never polls).
            posting = self._lever.get(f"/postings/{posting_id}", [("expand", "owner")])
        except ProviderRequestError as exc:
            if exc.status != 404:
                raise
            return None
        try:
            job = mapping.map_job(posting, [], [], self._emails, self._links)
        except IncompleteRecord as problem:
            self._skipped("postings", posting_id, problem)
            return None
        job = replace(job, stages=None)
        with self._lock:
            self._jobs_seen[posting_id] = (time.monotonic(), job)
        return job

    def _fetch_interviews(self, opportunity_id: str, interview_id: str | None) -> list[Snapshot]:
        with self._lock:
            self._watched.add(opportunity_id)  # its feedback comes later, without webhooks
        path = f"/opportunities/{opportunity_id}/interviews"
        if interview_id is None:
            # UNCONFIRMED: interview events' data beyond the opportunity (see the fake's
            # docstring): without an interview id, read all of the opportunity's interviews.
            try:
                rows = self._lever.list_all(path)
            except ProviderRequestError as exc:
                if exc.status != 404:
                    raise
                return []
        else:
            try:
                rows = [self._lever.get(f"{path}/{interview_id}")]
            except ProviderRequestError as exc:
                if exc.status != 404:
                    raise
                return [Deletion(EntityKind.SCHEDULE, interview_id, self._clock())]
        snapshots: list[Snapshot] = []
        for row in rows:
            try:
                snapshots.append(
                    mapping.map_schedule(row, opportunity_id, self._posting_of.get(opportunity_id))
                )
            except IncompleteRecord as problem:
                self._skipped("interviews", row.get("id"), problem)
        return snapshots


def _still_open(schedule: ScheduleSnapshot, submitted: int, now: datetime) -> bool:
    """An interview that may still change, or whose feedback is still due."""
    if schedule.status is ScheduleStatus.CANCELLED:
        return False
    if schedule.ends_at is None or schedule.ends_at > now:
        return True
    expected = len(schedule.interviewers or ())
    return submitted < expected and now - schedule.ends_at < FEEDBACK_WATCH


def _digest(*parts: Iterable[Sequence[Any]]) -> str:
    text = json.dumps([list(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
