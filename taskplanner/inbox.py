"""The inbox: webhook deliveries stored before the sender hears 2xx, processed afterwards.

A delivery is processed in the same transaction that marks it done, so a crash between
storing and processing means it is processed exactly once after restart. Rows are claimed
with leases (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) so several replicas share the work
and a dead replica's claims expire. A delivery that keeps failing is dead-lettered with
its error; one that is malformed or of an unknown type is set aside at once. Neither ever
blocks the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session
from sqlmodel import col

from connectors.base import (
    ConnectorError,
    MalformedPayloadError,
    ParsedDelivery,
    UnknownEventError,
    WebhookSource,
)
from taskplanner import readahead
from taskplanner.clock import Clock, system_clock
from taskplanner.engine import optimistic_opens
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
    """Store a verified delivery once; a re-delivery with the same id is a duplicate.

    One statement on the acknowledgement path: insert unless the (connector, delivery id)
    is there already, which also settles two replicas receiving the same delivery at once.
    """
    kept = {k.lower(): v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}
    values = {
        "connector": connector,
        "delivery_id": delivery_id,
        "headers": json.dumps(kept, sort_keys=True),
        "body": body,
        "received_at": now,
        "next_attempt_at": now,
        "status": PENDING,
        "attempts": 0,
    }
    table = m.InboxDelivery
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
    statement = (
        insert.values(values)
        .on_conflict_do_nothing(index_elements=["connector", "delivery_id"])
        .returning(col(table.id))
    )
    new_id = session.execute(statement).scalar()
    if new_id is not None:
        return StoredDelivery(new_id, duplicate=False)
    existing = session.scalars(
        select(col(m.InboxDelivery.id)).where(
            col(m.InboxDelivery.connector) == connector,
            col(m.InboxDelivery.delivery_id) == delivery_id,
        )
    ).one()
    return StoredDelivery(existing, duplicate=True)


@dataclass(frozen=True)
class _Pending:
    connector: str
    delivery_id: str
    headers: Mapping[str, str]
    body: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredDelivery]


class DeliveryWriter:
    """Stores the deliveries of concurrent webhook requests together (a group commit).

    Each request still hears its 2xx only once the transaction holding its delivery has
    committed, but the requests that arrive while one transaction commits share the next:
    one write lock and one commit per group instead of per delivery, which leaves the inbox
    processor more of the database during a burst. A transaction that fails is retried
    one delivery at a time, so one bad delivery fails only its own request.
    """

    def __init__(
        self,
        db: Engine,
        clock: Clock = system_clock,
        *,
        max_group: int = 64,
        idle_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_group = max_group
        self.idle_seconds = idle_seconds  # a writer thread idle this long ends
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def store(
        self, *, connector: str, delivery_id: str, headers: Mapping[str, str], body: bytes
    ) -> StoredDelivery:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredDelivery] = loop.create_future()
        self._queue.put(_Pending(connector, delivery_id, headers, body, loop, future))
        self._start()  # after the put: a writer about to leave sees the delivery and stays
        return await future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="inbox-writer", daemon=True
                )
                self._thread.start()

    def _next(self) -> _Pending | None:
        """The next delivery, or None when none came for a while (the thread then ends)."""
        while True:
            try:
                return self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._start_lock:
                    if self._queue.empty():
                        self._thread = None
                        return None

    def _run(self) -> None:
        while (first := self._next()) is not None:
            group = [first]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._settle(group, self._write(group))
            except (OperationalError, InterfaceError) as exc:
                # The database is away: each delivery alone would only wait for it again.
                for pending in group:
                    _resolve(pending, exc)
            except Exception:  # noqa: BLE001 - find the one that fails, alone
                for pending in group:
                    try:
                        self._settle([pending], self._write([pending]))
                    except Exception as exc:  # noqa: BLE001 - its request answers 5xx
                        _resolve(pending, exc)

    def _write(self, group: list[_Pending]) -> list[StoredDelivery]:
        with transaction(self.db) as session:
            now = self.clock()
            return [
                store_delivery(
                    session,
                    connector=p.connector,
                    delivery_id=p.delivery_id,
                    headers=p.headers,
                    body=p.body,
                    now=now,
                )
                for p in group
            ]

    @staticmethod
    def _settle(group: list[_Pending], stored: list[StoredDelivery]) -> None:
        for pending, result in zip(group, stored, strict=True):
            _resolve(pending, result)


def _resolve(pending: _Pending, outcome: StoredDelivery | BaseException) -> None:
    def settle() -> None:
        if pending.future.done():  # the client went away meanwhile
            return
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the request's event loop has closed
        pending.loop.call_soon_threadsafe(settle)


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: ~2 s, 4 s, 8 s ... capped at 30 minutes."""
    base = min(1800.0, 2.0**attempts)
    return timedelta(seconds=(rng or random).uniform(base / 2, base))  # noqa: S311


class Ignored(str):
    """Why a delivery is set aside unprocessed (malformed, or an event we do not handle)."""


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
        chunk_size: int = 100,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.sources = sources
        self.owner = owner
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = lease
        self.on_processed = on_processed
        # Acknowledging webhooks comes first: in the daemon's own process (a thread) a
        # waiting acknowledgement needs the interpreter lock, so while one waits the
        # processor ends its transaction early and steps aside. A worker process needs no
        # such turn-taking: stores are group-committed and queue for SQLite's write lock in
        # the kernel, waiting at most one short chunk.
        self.should_yield = should_yield
        self.batch_seconds = batch_seconds
        self.chunk_size = chunk_size
        self._seconds_each = 0.002  # a running estimate of the time one delivery takes

    def run_once(self, limit: int = 200) -> ProcessStats:
        """Claim up to ``limit`` due deliveries and process them."""
        stats, _ = self.process_claimed(self.claim(limit))
        return stats

    def drain_round(self, limit: int, *, stop: Callable[[], bool] | None = None) -> int:
        """Claim up to ``limit`` deliveries, process them, give back what ``stop`` left.

        Returns how many were claimed (0: nothing is due).
        """
        ids = self.claim(limit)
        _, left = self.process_claimed(ids, stop=stop)
        if left:
            with transaction(self.db) as session:
                release_claims(session, self.owner, left)
        return len(ids)

    def process_claimed(
        self, ids: list[int], *, stop: Callable[[], bool] | None = None
    ) -> tuple[ProcessStats, list[int]]:
        """Process claimed deliveries in short transactions; returns what ``stop`` left over.

        Each transaction takes about as many deliveries as fit ``batch_seconds``: one
        commit (and one write lock) serves several deliveries, and each delivery is marked
        done in the transaction that applied it, so a crash never applies one twice.
        Between transactions the processor steps aside while ``should_yield`` says an
        acknowledgement is waiting.
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
            time.sleep(0.0005)

    def claim(self, limit: int) -> list[int]:
        now = self.clock()
        inbox = m.InboxDelivery
        with transaction(self.db) as session:
            query = (
                select(col(inbox.id))
                .where(
                    col(inbox.status) == PENDING,
                    col(inbox.next_attempt_at) <= now,
                    or_(col(inbox.lease_expires_at).is_(None), col(inbox.lease_expires_at) < now),
                )
                .order_by(col(inbox.id))
                .limit(limit)
            )
            if not is_sqlite(self.db):
                query = query.with_for_update(skip_locked=True)
            ids = [i for i in session.scalars(query) if i is not None]
            if ids:
                session.execute(
                    update(inbox)
                    .where(col(inbox.id).in_(ids))
                    .values(lease_owner=self.owner, lease_expires_at=now + self.lease)
                )
        return ids

    def _process_chunk(self, ids: list[int], stats: ProcessStats) -> int:
        """One transaction over a prefix of ``ids``; returns how many it consumed.

        The chunk's rows, and the mirror rows and tasks its deliveries touch, are read
        ahead in a few queries. The deliveries are then applied under one savepoint; if
        one of them fails, that savepoint is rolled back and the chunk goes again with a
        savepoint per delivery, so only the failing one is retried later.
        """
        started = time.monotonic()
        chunk = ids[: self._fitting()]
        outcomes: list[tuple[str, str]] = []
        with transaction(self.db) as session:
            rows = self._claimed_rows(session, chunk)
            work = [(row, self._parse(row)) for row in rows]
            self._read_ahead(session, work)
            try:
                with session.begin_nested(), optimistic_opens(session):
                    consumed = self._apply_chunk(session, work, started, outcomes, careful=False)
            except Exception:  # noqa: BLE001 - one delivery failed: find which, alone
                readahead.forget(session)
                outcomes.clear()
                consumed = self._apply_chunk(session, work, started, outcomes, careful=True)
        if outcomes:
            each = (time.monotonic() - started) / len(outcomes)
            self._seconds_each = 0.7 * self._seconds_each + 0.3 * each
        for connector, outcome in outcomes:
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            if self.on_processed is not None:
                self.on_processed(connector, outcome)
        if consumed == len(rows):
            return len(chunk)  # rows gone or taken over by another replica count as consumed
        return chunk.index(rows[consumed].id)

    def _read_ahead(
        self, session: Session, work: list[tuple[m.InboxDelivery, ParsedDelivery | str]]
    ) -> None:
        snapshots = [s for _, p in work if isinstance(p, ParsedDelivery) for s in p.snapshots]
        try:
            with session.begin_nested():
                self.pipeline.read_ahead(session, snapshots)
        except DBAPIError as exc:
            # A lock conflict with another replica (PostgreSQL's deadlock detector): go on
            # without; each delivery then reads and locks its rows as it goes.
            readahead.forget(session)
            log.info("inbox_read_ahead_skipped", error=f"{type(exc).__name__}: {exc.orig}")

    def _fitting(self) -> int:
        """How many deliveries to read (and read ahead for): about what fits the time."""
        return max(1, min(self.chunk_size, round(self.batch_seconds / self._seconds_each) + 1))

    def _claimed_rows(self, session: Session, ids: list[int]) -> list[m.InboxDelivery]:
        query = select(m.InboxDelivery).where(col(m.InboxDelivery.id).in_(ids)).with_for_update()
        found = {row.id: row for row in session.scalars(query)}
        return [
            row
            for row in (found.get(i) for i in ids)
            # else another replica took it over after our lease ran out, or it is done
            if row is not None and row.status == PENDING and row.lease_owner == self.owner
        ]

    def _parse(self, row: m.InboxDelivery) -> ParsedDelivery | str:
        """The delivery's snapshots, or why it cannot be processed."""
        source = self.sources(row.connector)
        if source is None:
            return "the connector is no longer configured"
        try:
            return source.parse_webhook(json.loads(row.headers), row.body)
        except (UnknownEventError, MalformedPayloadError) as exc:
            return Ignored(exc.message[:500])  # a reason, not the payload it quotes
        except ConnectorError as exc:
            # A connector that reads the provider to parse (Lever's deliveries carry ids only)
            # could not: the delivery stays and is tried again later, then dead-lettered.
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the inbox
            # A parser bug gives the same error when tried again, so the delivery is set
            # aside at once (``taskplanner inbox retry`` takes it up after a fix).
            log.error(
                "delivery_parser_failed",
                connector=row.connector,
                delivery=row.delivery_id,
                error=type(exc).__name__,
            )
            return Ignored(f"the {row.connector} parser failed ({type(exc).__name__})")

    def _apply_chunk(
        self,
        session: Session,
        work: list[tuple[m.InboxDelivery, ParsedDelivery | str]],
        started: float,
        outcomes: list[tuple[str, str]],
        *,
        careful: bool,
    ) -> int:
        """Apply deliveries in order until the time is up; returns how many were applied."""
        done = 0
        for row, parsed in work:
            outcome = self._apply_row(session, row, parsed, careful=careful)
            row.attempts += 1
            if outcome == "failed":
                outcome = self._fail(row, row.last_error or "", self.clock())
            row.lease_owner, row.lease_expires_at = None, None
            outcomes.append((row.connector, outcome))
            done += 1
            if time.monotonic() - started >= self.batch_seconds or (
                self.should_yield is not None and self.should_yield()
            ):
                break
        return done

    def _apply_row(
        self,
        session: Session,
        row: m.InboxDelivery,
        parsed: ParsedDelivery | str,
        *,
        careful: bool,
    ) -> str:
        now = self.clock()
        if isinstance(parsed, Ignored):
            row.status, row.last_error, row.processed_at = IGNORED, str(parsed), now
            log.warning(
                "delivery_ignored",
                connector=row.connector,
                delivery=row.delivery_id,
                reason=str(parsed),
            )
            return IGNORED
        if isinstance(parsed, str):
            row.last_error = parsed
            return "failed"
        if careful:
            try:
                with session.begin_nested():
                    self.pipeline.ingest(session, parsed.snapshots)
            except Exception as exc:  # a bug or a database error: retry later, then dead-letter
                # The savepoint took back what it wrote and, on PostgreSQL, the row locks it
                # took: what was noted about them no longer holds.
                readahead.forget(session)
                row.event_type = parsed.event_type[:100]
                row.last_error = f"{type(exc).__name__}: {exc}"
                return "failed"
        else:  # the caller's savepoint covers the chunk; a failure sends it round again
            self.pipeline.ingest(session, parsed.snapshots)
        # Set only now: touching the row before the ingest would make its autoflush write
        # the row twice.
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


def release_claims(session: Session, owner: str, ids: list[int] | None = None) -> None:
    """Give back ``owner``'s claims on unprocessed deliveries (all of them, or ``ids``)."""
    query = update(m.InboxDelivery).where(
        col(m.InboxDelivery.lease_owner) == owner, col(m.InboxDelivery.status) == PENDING
    )
    if ids is not None:
        query = query.where(col(m.InboxDelivery.id).in_(ids))
    session.execute(query.values(lease_owner=None, lease_expires_at=None))


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
        select(func.min(col(m.InboxDelivery.received_at))).where(
            col(m.InboxDelivery.status) == PENDING
        )
    )
    if oldest is None:
        return 0.0
    return max(0.0, (now - oldest).total_seconds())
