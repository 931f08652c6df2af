"""Snapshots ingested together in one transaction (an inbox chunk, a poll page) end exactly as
when ingested one at a time, and what a rolled-back savepoint recorded leaves no trace."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from taskplanner.domain import snapshots as sn
from taskplanner.pipeline import Pipeline
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.ats_env import MIRROR_TABLES, clear_database
from tests.factories import application, candidate, job, schedule, stage_owner_rules
from tests.taskflow import history, tasks


@pytest.fixture
def pipeline(db: Engine, clock: Any) -> Pipeline:
    return Pipeline(db, stage_owner_rules(), clock)


def story() -> list[sn.Snapshot]:
    """Several changes to the same entities, so later snapshots find rows the earlier ones
    added in the same transaction (not flushed yet when ingested together)."""
    return [
        job(),
        candidate("c1", coordinator="cora@acme.example"),
        application("a1", stage="s-phone", updated=1),
        application("a2", candidate_id="c2", stage="s-phone", updated=1),
        candidate("c2", updated=2),  # after its application: the coordinator arrives late
        application("a1", stage="s-onsite", updated=3),  # moves on: Phone Screen obsolete
        application("a1", stage="s-phone", updated=4),  # and back: a new task, same key
        schedule("i1", app_id="a2", stage="s-phone", updated=5),  # a2 gets scheduled
        application("a2", candidate_id="c2", stage="s-phone", updated=2),  # older: stale
        application(
            "a3",
            candidate_id="c3",
            stage="s-onsite",
            updated=6,
            with_candidate=candidate("c3", coordinator="sam@acme.example", updated=6),
        ),
    ]


def outcome(db: Engine) -> tuple[Any, ...]:
    found = tasks(db)
    task_rows = [
        (t.key, t.status, t.resolution, t.assignee, t.completion_reason) for t in found
    ]
    histories = [
        [(e.action, e.detail) for e in history(db, t.id)] for t in found
    ]
    mirror = {}
    with transaction(db, read_only=True) as session:
        for name in MIRROR_TABLES:
            table = m.metadata.tables[name]
            columns = [c for c in table.columns if c.name != "first_seen_at"]
            query = select(*columns).order_by(*table.primary_key.columns)
            mirror[name] = [tuple(r) for r in session.execute(query)]
    return task_rows, histories, mirror


def test_a_batch_ends_as_the_same_snapshots_one_at_a_time(pipeline: Pipeline) -> None:
    one_by_one = story()
    for snapshot in one_by_one:
        pipeline.ingest_now([snapshot])
    separately = outcome(pipeline.db)
    assert [(key, status) for key, status, *_ in separately[0]] == [
        ("new_job:j1", "open"),
        ("ready_to_schedule:a1:s-phone", "completed"),
        ("ready_to_schedule:a2:s-phone", "completed"),
        ("ready_to_schedule:a1:s-onsite", "completed"),
        ("ready_to_schedule:a1:s-phone", "open"),
        ("ready_to_schedule:a3:s-onsite", "open"),
    ]

    clear_database(pipeline.db)
    pipeline.ingest_now(story())  # one transaction, read ahead

    assert outcome(pipeline.db) == separately


def test_history_recorded_in_a_rolled_back_savepoint_is_dropped(pipeline: Pipeline) -> None:
    with transaction(pipeline.db) as session:
        pipeline.ingest(session, [job(), candidate("c1"), application("a1", stage="s-phone")])
        with pytest.raises(RuntimeError), session.begin_nested():
            pipeline.ingest(session, [application("a2", candidate_id="c2", stage="s-phone")])
            raise RuntimeError("the delivery failed after opening a task")
        pipeline.ingest(session, [application("a3", candidate_id="c3", stage="s-phone")])

    found = tasks(pipeline.db)
    assert [t.key for t in found] == [
        "new_job:j1",
        "ready_to_schedule:a1:s-phone",
        "ready_to_schedule:a3:s-phone",
    ]
    assert [[e.action for e in history(pipeline.db, t.id)] for t in found] == [["opened"]] * 3
    with transaction(pipeline.db, read_only=True) as session:
        task_ids = {t.id for t in found}
        assert set(session.scalars(select(m.TaskHistory.task_id))) == task_ids
