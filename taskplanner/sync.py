"""Polling connectors: leases per source, cursors stored with their data, health, deletions.

Each page a connector yields is stored in one transaction together with the cursor it
advances, so a crash never skips data. A source is polled by one replica at a time: the
replica holds a lease on its ``sync_sources`` row (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) and extends it as pages arrive; a dead replica's lease expires and another
takes over. The shared ``next_due_at`` makes every source polled once per interval.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from connectors.base import (
    ConnectorError,
    FatalConnectorError,
    PartitionsFailed,
    PollPage,
    ProgressCallback,
)
from taskplanner import health
from taskplanner.clock import Clock, system_clock
from taskplanner.domain import snapshots as sn
from taskplanner.normalizer import DELETED
from taskplanner.pipeline import Pipeline
from taskplanner.providers import ATS_TYPES, describe_failure
from taskplanner.store import models as m
from taskplanner.store.database import is_sqlite, transaction

log = structlog.get_logger("taskplanner.sync")


@dataclass
class GoLiveSummary:
    """What a source's first sync opened (SPEC §3, Go-live), for the operator."""

    by_category: dict[str, int] = field(default_factory=dict)
    by_person: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_category.values())

    def lines(self) -> list[str]:
        """Plain text: one line per category, then one per person, most first."""
        out = [f"go-live: {self.total} task(s) opened by the first sync"]
        for title, counts in (("per category", self.by_category), ("per person", self.by_person)):
            if counts:
                out.append(f"  {title}:")
                width = max(len(k) for k in counts)
                for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                    out.append(f"    {key:<{width}}  {count:>5}")
        return out


@dataclass
class SyncReport:
    connector: str
    ok: bool = True
    pages: int = 0
    snapshots: int = 0
    deleted: int = 0
    opened: int = 0
    closed: int = 0
    error: str | None = None
    seconds: float = 0.0
    skipped: bool = False
    go_live: GoLiveSummary | None = None  # set on the pass that ends the first sync
    _opened_tasks: Counter[tuple[str, str]] = field(default_factory=Counter, repr=False)

    def count_opened(self, tasks: Iterable[m.Task]) -> None:
        for task in tasks:
            self.opened += 1
            self._opened_tasks[(task.category, task.assignee)] += 1

    def summarise_go_live(self) -> GoLiveSummary:
        by_category: Counter[str] = Counter()
        by_person: Counter[str] = Counter()
        for (category, person), count in self._opened_tasks.items():
            by_category[category] += count
            by_person[person] += count
        self.go_live = GoLiveSummary(dict(by_category), dict(by_person))
        return self.go_live


@dataclass
class SyncRunner:
    db: Engine
    pipeline: Pipeline
    connectors: Callable[[str], Any]  # name -> Connector
    kinds: dict[str, str]  # name -> configured type
    intervals: dict[str, timedelta]  # name -> poll_interval
    owner: str
    clock: Clock = system_clock
    lease: timedelta = timedelta(minutes=5)
    failure_threshold: int = 3
    jitter: float = 0.1  # share of the interval added at random, so sources spread out
    on_report: Callable[[SyncReport], None] | None = None
    _rng: random.Random = field(default_factory=random.Random)

    # --- scheduling and leases ----------------------------------------------------------

    def ensure_sources(self) -> None:
        """Create a ``sync_sources`` row per configured connector (idempotent, race-safe)."""
        with transaction(self.db) as session:
            for name in self.kinds:
                if session.get(m.SyncSource, name) is None:
                    try:
                        with session.begin_nested():
                            session.add(m.SyncSource(connector=name))
                            session.flush()
                    except IntegrityError:
                        pass

    def run_due(self) -> list[SyncReport]:
        """Poll every source whose turn it is and that no other replica holds."""
        reports = []
        for name in self.kinds:
            if self.claim(name):
                reports.append(self.sync(name))
        return reports

    def claim(self, name: str, *, force: bool = False) -> bool:
        now = self.clock()
        with transaction(self.db) as session:
            query = select(m.SyncSource).where(col(m.SyncSource.connector) == name)
            query = query.with_for_update(skip_locked=not is_sqlite(self.db))
            row = session.scalars(query).first()
            if row is None:
                return False  # locked by another replica right now (or not created yet)
            held = (
                row.lease_owner not in (None, self.owner)
                and row.lease_expires_at is not None
                and row.lease_expires_at > now
            )
            if held or (not force and row.next_due_at is not None and row.next_due_at > now):
                return False
            if row.lease_owner not in (None, self.owner):
                log.info("lease_taken_over", connector=name, previous_owner=row.lease_owner)
            row.lease_owner, row.lease_expires_at = self.owner, now + self.lease
            row.last_started_at = now
            session.add(row)
        return True

    def _extend(self, session: Session, name: str) -> None:
        row = session.get(m.SyncSource, name)
        if row is not None and row.lease_owner == self.owner:
            row.lease_expires_at = self.clock() + self.lease
            session.add(row)

    def _release(self, name: str) -> None:
        now = self.clock()
        interval = self.intervals.get(name, timedelta(minutes=5))
        spread = interval.total_seconds() * self.jitter * self._rng.random()
        with transaction(self.db) as session:
            row = session.get(m.SyncSource, name)
            if row is None or row.lease_owner != self.owner:
                return
            row.lease_owner, row.lease_expires_at = None, None
            row.last_finished_at = now
            row.next_due_at = now + interval + timedelta(seconds=spread)
            session.add(row)

    # --- one pass -------------------------------------------------------------------------

    def sync(
        self, name: str, *, full: bool = False, progress: ProgressCallback | None = None
    ) -> SyncReport:
        """One polling pass over a source the caller has claimed (or a manual ``sync``)."""
        report = SyncReport(connector=name)
        started = self.clock()
        clock_start = time.monotonic()
        try:
            connector = self.connectors(name)
            with transaction(self.db, read_only=True) as session:
                cursors = {
                    c.partition: c.cursor
                    for c in session.scalars(
                        select(m.SyncCursor).where(col(m.SyncCursor.connector) == name)
                    )
                }
                source = session.get(m.SyncSource, name)
                live = source is not None and source.went_live_at is not None
            pages = connector.poll(cursors, started_at=started, full=full, progress=progress)
            for page in pages:
                # A partition's first listing (no cursor yet) is a baseline: it describes what
                # existed before taskplanner looked, so only states open from it (GoLive).
                baseline = page.partition not in cursors
                self._store_page(name, page, report, baseline=baseline)
            if not live:
                self._go_live(name, report)
            self._record(name, report, error=None)
        except ConnectorError as exc:
            report.ok, report.error = False, describe_failure(name, self.kinds.get(name), exc)
            self._record(name, report, error=exc)
        except Exception as exc:  # a bug: keep the daemon alive, count it as a failure
            log.exception("sync_crashed", connector=name)
            report.ok, report.error = False, describe_failure(name, self.kinds.get(name), exc)
            self._record(name, report, error=exc)
        finally:
            report.seconds = time.monotonic() - clock_start
            self._release(name)
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _store_page(self, name: str, page: PollPage, report: SyncReport, *, baseline: bool) -> None:
        with transaction(self.db) as session:
            snapshots: list[sn.Snapshot] = list(page.snapshots)
            if page.present_ids is not None:
                vanished = self._vanished(session, name, page)
                report.deleted += len(vanished)
                snapshots.extend(vanished)
            result = self.pipeline.ingest(session, snapshots, baseline=baseline)
            report.count_opened(result.opened)
            if page.cursor is not None:
                cursor = session.get(m.SyncCursor, (name, page.partition)) or m.SyncCursor(
                    connector=name, partition=page.partition, cursor="", updated_at=self.clock()
                )
                cursor.cursor, cursor.updated_at = page.cursor, self.clock()
                session.add(cursor)
            self._extend(session, name)
        report.pages += 1
        report.snapshots += len(page.snapshots)
        report.closed += len(result.closed)

    def _go_live(self, name: str, report: SyncReport) -> None:
        """End a source's first complete sync: the go-live pass, then its summary."""
        with transaction(self.db) as session:
            source = session.get(m.SyncSource, name)
            if source is None or source.went_live_at is not None:
                return  # another replica (or an earlier pass) took it live
            result = self.pipeline.go_live(session, ats=self.kinds.get(name) in ATS_TYPES)
            report.count_opened(result.opened)
            source.went_live_at = self.clock()
            session.add(source)
        report.summarise_go_live()

    def _vanished(self, session: Session, name: str, page: PollPage) -> list[sn.Snapshot]:
        """Mirror entities a full listing no longer has: deleted upstream, unannounced."""
        now = self.clock()
        out: list[sn.Snapshot] = []
        for kind, present in (page.present_ids or {}).items():
            mirrored = _mirror_ids(session, name, page.partition, kind, ends_from=page.present_from)
            for entity_id in mirrored - present:
                if kind is sn.EntityKind.CALENDAR_EVENT:
                    entity_id = f"{page.partition}/{entity_id}"
                out.append(sn.Deletion(kind=kind, id=entity_id, at=now, connector=name))
        return out

    def _record(self, name: str, report: SyncReport, error: BaseException | None) -> None:
        now = self.clock()
        with transaction(self.db) as session:
            if error is None:
                events = health.record_success(session, name, now)
            else:
                events = health.record_failure(
                    session,
                    name,
                    report.error or describe_failure(name, self.kinds.get(name), error),
                    now,
                    # A calendar that cannot be read needs an administrator, not a retry.
                    fatal=isinstance(error, FatalConnectorError)
                    or (isinstance(error, PartitionsFailed) and error.needs_admin),
                    threshold=self.failure_threshold,
                )
            result = self.pipeline.handle(session, events)
            report.count_opened(result.opened)
            report.closed += len(result.closed)


def _mirror_ids(
    session: Session,
    connector: str,
    partition: str,
    kind: sn.EntityKind,
    *,
    ends_from: datetime | None = None,
) -> set[str]:
    query: Any
    if kind is sn.EntityKind.CALENDAR_EVENT:
        query = select(col(m.CalendarEvent.event_id)).where(
            col(m.CalendarEvent.connector) == connector,
            col(m.CalendarEvent.calendar_id) == partition,
            col(m.CalendarEvent.status) != sn.EventStatus.CANCELLED.value,
        )
    elif kind is sn.EntityKind.APPLICATION:
        query = select(col(m.Application.id)).where(col(m.Application.status) != DELETED)
    elif kind is sn.EntityKind.JOB:
        query = select(col(m.Job.id)).where(col(m.Job.status) != DELETED)
    elif kind is sn.EntityKind.SCHEDULE:
        query = select(col(m.Schedule.id)).where(col(m.Schedule.status).not_in([DELETED]))
        if ends_from is not None:
            # A narrowed sweep: schedules that ended before it (or have no end) are not covered.
            query = query.where(col(m.Schedule.ends_at) >= ends_from)
    elif kind is sn.EntityKind.SCORECARD:
        query = select(col(m.Scorecard.id))
    elif kind is sn.EntityKind.CANDIDATE:
        query = select(col(m.Candidate.id))
    elif kind is sn.EntityKind.USER:
        query = select(col(m.User.id)).where(col(m.User.deactivated).is_(False))
    elif kind is sn.EntityKind.STAGE:
        query = select(col(m.Stage.id))
    else:
        query = select(col(m.InterviewKind.id))
    return {str(i) for i in session.scalars(query)}


def last_success(session: Session, name: str) -> datetime | None:
    row = session.get(m.IntegrationHealth, name)
    return row.last_success_at if row else None
