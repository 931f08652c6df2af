"""The store's tables are SQLModel table models whose rows behave like the code expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col

from taskplanner.store import models as m
from taskplanner.web import api

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_every_table_is_a_sqlmodel_table_model() -> None:
    classes = [mapper.class_ for mapper in m.Base._sa_registry.mappers]

    assert all(issubclass(cls, SQLModel) and cls.model_config.get("table") for cls in classes)
    assert {cls.__table__.name for cls in classes} == set(m.metadata.tables)


def test_a_new_row_reads_its_column_defaults_before_it_is_stored() -> None:
    delivery = m.InboxDelivery(connector="greenhouse", delivery_id="d-1")
    health = m.IntegrationHealth(connector="greenhouse", changed_at=NOW)

    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 0, None)
    assert (health.state, health.consecutive_failures) == ("ok", 0)


def test_a_row_refuses_an_attribute_its_table_does_not_have() -> None:
    with pytest.raises(TypeError, match="Task has no attribute 'asignee'"):
        m.Task(asignee="cora@example.com")


def test_a_stored_row_reads_back_with_its_defaults_and_utc_times(db: Engine) -> None:
    with Session(db) as session, session.begin():
        task = m.Task(
            key="new_job:j1",
            category="new_job",
            title="Set up Backend Engineer",
            recommended_action="Enable scheduling",
            assignee="cora@example.com",
            assigned_via="coordinator",
            job_id="j1",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(task)
        session.flush()
        task_id = task.id
    with Session(db) as session:
        stored = session.scalars(select(m.Task).where(col(m.Task.key) == "new_job:j1")).one()

        assert stored.id == task_id
        assert (stored.status, stored.resolution, stored.job_id) == ("open", None, "j1")
        assert stored.created_at == NOW and stored.created_at.tzinfo is UTC


def test_the_api_task_body_is_the_task_tables_public_columns() -> None:
    # TaskOut derives from the table's field group: a new public column shows up in the API.
    columns = set(m.Task.__table__.columns.keys())
    body = set(api.TaskOut.model_fields)

    assert set(m.TaskFields.model_fields) <= columns
    assert body - columns == {"category_label"}
    assert columns - body == {"key", "assigned_via", "resolved_observation_at", "updated_at"}
