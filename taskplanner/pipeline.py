"""One place where snapshots become tasks: normalizer then engine, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from taskplanner import jobsetup
from taskplanner.clock import Clock, system_clock
from taskplanner.domain.assignment import OrgRules
from taskplanner.domain.events import DomainEvent
from taskplanner.domain.snapshots import Snapshot
from taskplanner.engine import EngineResult, TaskEngine
from taskplanner.normalizer import Normalizer
from taskplanner.store.database import transaction
from taskplanner.store.models import Stage
from taskplanner.sweep import Sweeper, SweepResult


class Pipeline:
    def __init__(self, db: Engine, rules: OrgRules, clock: Clock = system_clock) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock
        self.normalizer = Normalizer(rules, clock)
        self.tasks = TaskEngine(rules, clock)
        self.sweeper = Sweeper(self.tasks)

    def ingest(
        self, session: Session, snapshots: Iterable[Snapshot], *, baseline: bool = False
    ) -> EngineResult:
        events = self.normalizer.apply(session, snapshots)
        return self.tasks.handle(session, events, allow_open=not baseline)

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
    ) -> EngineResult:
        """A coordinator's set-up of one stage, and the tasks it completes or opens."""
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
        )
        if scheduling_enabled and not was_enabled:
            events += self.normalizer.waiting_in_stage(session, stage_id, now)
        return self.tasks.handle(session, events)

    def ingest_now(self, snapshots: Iterable[Snapshot], *, baseline: bool = False) -> EngineResult:
        """Ingest in a transaction of its own."""
        with transaction(self.db) as session:
            return self.ingest(session, snapshots, baseline=baseline)

    def sweep_now(self) -> SweepResult:
        with transaction(self.db) as session:
            return self.sweeper.run(session)
