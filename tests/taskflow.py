"""Drive the real pipeline the way the daemon, the page and the CLI do, and read tasks back.

Set-up, integration health and hand actions go through the same functions production
calls; tasks are only ever read here, never written.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from taskplanner import health, jobsetup
from taskplanner.engine import EngineResult
from taskplanner.pipeline import Pipeline
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.factories import CORA, SweepPopulation

GREENHOUSE = "greenhouse"


@dataclass(frozen=True)
class Entry:
    """One history row, without its id and time."""

    action: str
    actor: str
    detail: str


def tasks(db: Engine, category: str | None = None, *, status: str | None = None) -> list[m.Task]:
    query = select(m.Task).order_by(m.Task.id)  # type: ignore[arg-type]
    if category is not None:
        query = query.where(m.Task.category == category)
    if status is not None:
        query = query.where(m.Task.status == status)
    with Session(db) as session:
        return list(session.scalars(query))


def open_tasks(db: Engine, category: str | None = None) -> list[m.Task]:
    return tasks(db, category, status="open")


def only_task(db: Engine, category: str) -> m.Task:
    """The one task of ``category`` (any status); fails when there are none or several."""
    found = tasks(db, category)
    assert len(found) == 1, [(t.key, t.status) for t in found]
    return found[0]


def history(db: Engine, task_id: int | None) -> list[Entry]:
    query = (
        select(m.TaskHistory).where(m.TaskHistory.task_id == task_id).order_by(m.TaskHistory.id)  # type: ignore[arg-type]
    )
    with Session(db) as session:
        return [Entry(h.action, h.actor, h.detail) for h in session.scalars(query)]


def set_up_stage(
    pipeline: Pipeline,
    stage_id: str,
    *,
    job_id: str = "j1",
    by: str = CORA,
    scheduling_enabled: bool | None = None,
    inactivity_alerts: bool | None = None,
    interview_templates: dict[str, str] | None = None,
    owner: str | None | jobsetup.Unchanged = jobsetup.UNCHANGED,
) -> EngineResult:
    """A coordinator's job set-up (what PUT /api/jobs/{job}/stages/{stage} does)."""
    with transaction(pipeline.db) as session:
        return pipeline.set_up_stage(
            session,
            job_id,
            stage_id,
            by=by,
            scheduling_enabled=scheduling_enabled,
            inactivity_alerts=inactivity_alerts,
            interview_templates=interview_templates,
            owner=owner,
        )


def integration_fails(
    pipeline: Pipeline,
    connector: str = GREENHOUSE,
    *,
    error: str = "401 Unauthorized: the API key was revoked",
    fatal: bool = True,
    threshold: int = 3,
) -> EngineResult:
    with transaction(pipeline.db) as session:
        events = health.record_failure(
            session, connector, error, pipeline.clock(), fatal=fatal, threshold=threshold
        )
        return pipeline.handle(session, events)


def integration_syncs(pipeline: Pipeline, connector: str = GREENHOUSE) -> EngineResult:
    with transaction(pipeline.db) as session:
        return pipeline.handle(session, health.record_success(session, connector, pipeline.clock()))


def integrations_configured(pipeline: Pipeline, connectors: Collection[str]) -> EngineResult:
    """The daemon starts with this set of connectors in its configuration."""
    with transaction(pipeline.db) as session:
        events = health.retire_unconfigured(session, connectors, pipeline.clock())
        return pipeline.handle(session, events)


def complete_by_hand(pipeline: Pipeline, task_id: int | None, *, by: str) -> m.Task:
    assert task_id is not None
    with transaction(pipeline.db) as session:
        return pipeline.tasks.complete(session, task_id, by=by)


def assign_by_hand(pipeline: Pipeline, task_id: int | None, *, to: str, by: str) -> m.Task:
    assert task_id is not None
    with transaction(pipeline.db) as session:
        return pipeline.tasks.assign(session, task_id, to=to, by=by)


def hand_over(
    pipeline: Pipeline, *, from_: str, to: str, by: str, until: datetime | None = None
) -> int:
    """``taskplanner reassign --from --to [--until]``: how many open tasks moved."""
    with transaction(pipeline.db) as session:
        return pipeline.tasks.hand_over(session, from_=from_, to=to, by=by, until=until).moved


def end_hand_over(pipeline: Pipeline, person: str, *, by: str) -> int | None:
    """``taskplanner reassign --from PERSON --clear``."""
    with transaction(pipeline.db) as session:
        return pipeline.tasks.end_hand_over(session, person=person, by=by)


def insert_population(db: Engine, population: SweepPopulation) -> None:
    """Bulk-insert the mirror rows of a large organisation (the store, never tasks)."""
    with transaction(db) as session:
        for model, rows in population.tables:
            session.execute(insert(model), rows)
