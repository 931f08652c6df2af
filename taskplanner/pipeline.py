"""One place where snapshots become tasks: normalizer then engine, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from taskplanner import jobsetup, ownership
from taskplanner.clock import Clock, system_clock
from taskplanner.domain.alerting import NO_ALERTS, AlertPolicy
from taskplanner.domain.assignment import OrgRules
from taskplanner.domain.events import DomainEvent
from taskplanner.domain.snapshots import Snapshot
from taskplanner.engine import EngineResult, TaskEngine, quiet_opens
from taskplanner.normalizer import BASELINE, Normalizer
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.store.models import Stage
from taskplanner.sweep import Sweeper, SweepResult


@dataclass
class GoLiveResult:
    opened: list[m.Task] = field(default_factory=list)


class Pipeline:
    def __init__(
        self,
        db: Engine,
        rules: OrgRules,
        clock: Clock = system_clock,
        alerts: AlertPolicy = NO_ALERTS,
    ) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock
        self.normalizer = Normalizer(rules, clock)
        self.tasks = TaskEngine(rules, clock, alerts)
        self.sweeper = Sweeper(self.tasks)

    def ingest(
        self, session: Session, snapshots: Iterable[Snapshot], *, baseline: bool = False
    ) -> EngineResult:
        if baseline:
            session.info[BASELINE] = True
        try:
            events = self.normalizer.apply(session, snapshots)
        finally:
            session.info.pop(BASELINE, None)
        return self.tasks.handle(session, events, baseline=baseline)

    def read_ahead(self, session: Session, snapshots: Iterable[Snapshot]) -> None:
        """Load what ingesting these snapshots will look up, in a few queries."""
        self.normalizer.read_ahead(session, snapshots)

    def handle(self, session: Session, events: list[DomainEvent]) -> EngineResult:
        return self.tasks.handle(session, events)

    def set_up_stage(
        self,
        session: Session,
        job_id: str,
        stage_id: str,
        *,
        by: str | None,
        scheduling_enabled: bool | None = None,
        inactivity_alerts: bool | None = None,
        interview_templates: Mapping[str, str] | None = None,
        owner: str | None | jobsetup.Unchanged = jobsetup.UNCHANGED,
    ) -> EngineResult:
        """A coordinator's set-up of one stage, and the tasks it completes, opens or moves.

        ``owner`` is the stage owner chosen on the page (None: back to the configuration's,
        else the job coordinator); open tasks assigned through the stage's roles follow.
        """
        stage = session.get(Stage, stage_id)
        was_enabled = self.normalizer.scheduling_enabled(session, stage)
        now = self.clock()
        events = jobsetup.update_stage(
            session,
            job_id,
            stage_id,
            now=now,
            by=by,
            scheduling_enabled=scheduling_enabled,
            inactivity_alerts=inactivity_alerts,
            interview_templates=interview_templates,
            owner=owner,
        )
        ownership.forget_page_owners(session)
        if scheduling_enabled and not was_enabled:
            events += self.normalizer.waiting_in_stage(session, stage_id, now)
        result = self.tasks.handle(session, events)
        if not isinstance(owner, jobsetup.Unchanged):
            why = f"stage owner set on the set-up page by {by}" if by else "owner changed"
            result.reassigned += self.tasks.refresh_assignments(session, job_id=job_id, why=why)
        return result

    def go_live(self, session: Session, *, ats: bool) -> GoLiveResult:
        """The end of a source's first sync (SPEC §3, Go-live): what the baseline could only
        tell once every record was in. For an ATS, everyone waiting in a stage enabled for
        scheduling with nothing scheduled there is ready to schedule, and the sweep finds the
        time-based tasks at once rather than a minute later."""
        result = GoLiveResult()
        if not ats:
            return result
        now = self.clock()
        with quiet_opens(session):
            events = self.normalizer.waiting_for_scheduling(session, now)
            result.opened += self.tasks.handle(session, events).opened
            result.opened += self.sweeper.run(session, now).opened_tasks
        return result

    def set_job_coordinator(
        self, session: Session, job_id: str, email: str | None, *, by: str | None
    ) -> int:
        """The job coordinator chosen on the set-up page (None: back to the configuration's,
        else the ATS's); open tasks assigned through the job's roles follow. Returns how many
        moved."""
        jobsetup.set_job_coordinator(session, job_id, email, now=self.clock(), by=by)
        ownership.forget_page_owners(session)
        why = f"job coordinator set on the set-up page by {by}" if by else "owner changed"
        return self.tasks.refresh_assignments(session, job_id=job_id, why=why)

    def ingest_now(self, snapshots: Iterable[Snapshot], *, baseline: bool = False) -> EngineResult:
        """Ingest in a transaction of its own."""
        with transaction(self.db) as session:
            return self.ingest(session, snapshots, baseline=baseline)

    def sweep_now(self) -> SweepResult:
        with transaction(self.db) as session:
            return self.sweeper.run(session)
