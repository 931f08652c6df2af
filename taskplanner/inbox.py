"""The inbox: webhook deliveries stored before the sender hears 2xx, processed afterwards.

A delivery is processed in the same transaction that marks it done, so a crash between
storing and processing means it is processed exactly once after restart. Rows are claimed
with leases (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) so several replicas share the work
and a dead replica's claims expire. A delivery that keeps failing is dead-lettered with
its error; one that is malformed or of an unknown type is set aside at once. Neither ever
blocks the rest.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import MalformedPayloadError, UnknownEventError, WebhookSource
from taskplanner.clock import Clock, system_clock
from taskplanner.pipeline import Pipeline
from taskplanner.store import models as m
from taskplanner.store.database import is_sqlite, transaction

log = structlog.get_logger("taskplanner.inbox")

PENDING, DONE, IGNORED, DEAD = "pending", "done", "ignored", "dead"
# Headers never kept: they may carry credentials and the processing does not need them.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class StoredDelivery:
    id: int
    duplicate: bool


def store_delivery(
    session: Session,
    *,
    connector: str,
    delivery_id: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> StoredDelivery:
    """Store a verified delivery once; a re-delivery with the same id is a duplicate."""
    existing = session.scalars(
        select(m.InboxDelivery.id).where(
            m.InboxDelivery.connector == connector, m.InboxDelivery.delivery_id == delivery_id
        )
    ).first()
    if existing is not None:
        return StoredDelivery(existing, duplicate=True)
    kept = {k.lower(): v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}
    row = m.InboxDelivery(
        connector=connector,
        delivery_id=delivery_id,
        headers=json.dumps(kept, sort_keys=True),
        body=body,
        received_at=now,
        next_attempt_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # The same delivery arrived twice at once (two replicas): the other one won.
        again = session.scalars(
            select(m.InboxDelivery.id).where(
                m.InboxDelivery.connector == connector, m.InboxDelivery.delivery_id == delivery_id
            )
        ).one()
        return StoredDelivery(again, duplicate=True)
    assert row.id is not None  # noqa: S101 - set by the flush above
    return StoredDelivery(row.id, duplicate=False)


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: ~2 s, 4 s, 8 s ... capped at 30 minutes."""
    base = min(1800.0, 2.0**attempts)
    return timedelta(seconds=(rng or random).uniform(base / 2, base))  # noqa: S311


@dataclass
class ProcessStats:
    done: int = 0
    ignored: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def total(self) -> int:
        return self.done + self.ignored + self.failed + self.dead


class InboxProcessor:
    def __init__(
        self,
        db: Engine,
        pipeline: Pipeline,
        sources: Callable[[str], WebhookSource | None],
        *,
        owner: str,
        clock: Clock = system_clock,
        max_attempts: int = 8,
        lease: timedelta = timedelta(seconds=60),
        on_processed: Callable[[str, str], None] | None = None,
        should_yield: Callable[[], bool] | None = None,
        batch_seconds: float = 0.02,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.sources = sources
        self.owner = owner
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = lease
        self.on_processed = on_processed
        # Acknowledging webhooks comes first: while one waits (the daemon says so), the
        # processor ends its transaction early and steps aside, so a burst of processing
        # never holds the sender's 2xx behind the database's write lock or the GIL.
        self.should_yield = should_yield
        self.batch_seconds = batch_seconds

    def run_once(self, limit: int = 200) -> ProcessStats:
        """Claim up to ``limit`` due deliveries and process them."""
        stats, _ = self.process_claimed(self.claim(limit))
        return stats

    def process_claimed(
        self, ids: list[int], *, stop: Callable[[], bool] | None = None
    ) -> tuple[ProcessStats, list[int]]:
        """Process claimed deliveries in short transactions; returns what ``stop`` left over.

        Each transaction takes deliveries until ``batch_seconds`` have passed or an
        acknowledgement is waiting: one commit (and one write lock) serves several
        deliveries, and each delivery still has its own savepoint and is marked done in
        the transaction that applied it, so a crash never applies one twice.
        """
        stats = ProcessStats()
        position = 0
        while position < len(ids):
            if stop is not None and stop():
                break
            position += self._process_chunk(ids[position:], stats)
            if self.should_yield is not None:
                self._step_aside()
        return stats, ids[position:]

    def _step_aside(self) -> None:
        assert self.should_yield is not None  # noqa: S101 - checked by the caller
        deadline = time.monotonic() + 0.05
        while self.should_yield() and time.monotonic() < deadline:
            time.sleep(0.001)

    def claim(self, limit: int) -> list[int]:
        now = self.clock()
        inbox = m.InboxDelivery
        with transaction(self.db) as session:
            query = (
                select(inbox.id)
                .where(
                    inbox.status == PENDING,
                    inbox.next_attempt_at <= now,
                    or_(inbox.lease_expires_at.is_(None), inbox.lease_expires_at < now),
                )
                .order_by(inbox.id)
                .limit(limit)
            )
            if not is_sqlite(self.db):
                query = query.with_for_update(skip_locked=True)
            ids = [i for i in session.scalars(query) if i is not None]
            if ids:
                session.execute(
                    update(inbox)
                    .where(inbox.id.in_(ids))
                    .values(lease_owner=self.owner, lease_expires_at=now + self.lease)
                )
        return ids

    def process(self, delivery_id: int) -> str | None:
        """Process one claimed delivery; returns done / ignored / failed / dead."""
        stats = ProcessStats()
        self._process_chunk([delivery_id], stats, limit=1)
        for outcome in ("done", "ignored", "failed", "dead"):
            if getattr(stats, outcome):
                return outcome
        return None

    def _process_chunk(
        self, ids: list[int], stats: ProcessStats, *, limit: int | None = None
    ) -> int:
        """One transaction over a prefix of ``ids``; returns how many it consumed."""
        started = time.monotonic()
        consumed = 0
        outcomes: list[tuple[str, str]] = []
        with transaction(self.db) as session:
            for delivery_id in ids[:limit]:
                consumed += 1
                row = session.scalars(
                    select(m.InboxDelivery)
                    .where(m.InboxDelivery.id == delivery_id)
                    .with_for_update()
                ).first()
                if row is None or row.status != PENDING or row.lease_owner != self.owner:
                    continue  # another replica took it over after our lease ran out
                outcome = self._process_row(session, row)
                row.lease_owner, row.lease_expires_at = None, None
                session.add(row)
                outcomes.append((row.connector, outcome))
                if time.monotonic() - started >= self.batch_seconds or (
                    self.should_yield is not None and self.should_yield()
                ):
                    break
        for connector, outcome in outcomes:
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            if self.on_processed is not None:
                self.on_processed(connector, outcome)
        return consumed

    def _process_row(self, session: Session, row: m.InboxDelivery) -> str:
        outcome = self._apply_row(session, row)
        # The attempt is counted with its outcome: touching the row before the ingest would
        # make the ingest's autoflush write it once before and once after.
        row.attempts += 1
        if outcome == "failed":
            return self._fail(row, row.last_error or "", self.clock())
        return outcome

    def _apply_row(self, session: Session, row: m.InboxDelivery) -> str:
        now = self.clock()
        source = self.sources(row.connector)
        if source is None:
            row.last_error = "the connector is no longer configured"
            return "failed"
        headers: dict[str, str] = json.loads(row.headers)
        try:
            parsed = source.parse_webhook(headers, row.body)
        except (UnknownEventError, MalformedPayloadError) as exc:
            row.status, row.last_error, row.processed_at = IGNORED, exc.message, now
            log.warning(
                "delivery_ignored",
                connector=row.connector,
                delivery=row.delivery_id,
                reason=exc.message,
            )
            return IGNORED
        try:
            with session.begin_nested():
                self.pipeline.ingest(session, parsed.snapshots)
        except Exception as exc:  # a bug or a database error: retry later, then dead-letter
            row.event_type, row.last_error = parsed.event_type[:100], f"{type(exc).__name__}: {exc}"
            return "failed"
        row.event_type = parsed.event_type[:100]
        row.status, row.processed_at, row.last_error = DONE, now, None
        return DONE

    def _fail(self, row: m.InboxDelivery, error: str, now: datetime) -> str:
        row.last_error = error[:2000]
        if row.attempts >= self.max_attempts:
            row.status = DEAD
            log.error(
                "delivery_dead_lettered",
                connector=row.connector,
                delivery=row.delivery_id,
                attempts=row.attempts,
                error=row.last_error,
            )
            return DEAD
        row.next_attempt_at = now + retry_delay(row.attempts)
        log.warning(
            "delivery_failed",
            connector=row.connector,
            delivery=row.delivery_id,
            attempts=row.attempts,
            error=row.last_error,
        )
        return "failed"


def retry(session: Session, inbox_id: int, now: datetime) -> m.InboxDelivery:
    """Put a dead or ignored delivery back in the queue (``taskplanner inbox retry``)."""
    row = session.get(m.InboxDelivery, inbox_id)
    if row is None:
        raise LookupError(f"no inbox delivery {inbox_id}")
    row.status, row.attempts, row.next_attempt_at = PENDING, 0, now
    row.lease_owner, row.lease_expires_at = None, None
    session.add(row)
    return row


def oldest_pending_age(session: Session, now: datetime) -> float:
    """Seconds the oldest unprocessed delivery has waited (the inbox lag)."""
    oldest = session.scalar(
        select(func.min(m.InboxDelivery.received_at)).where(m.InboxDelivery.status == PENDING)
    )
    if oldest is None:
        return 0.0
    return max(0.0, (now - oldest).total_seconds())
