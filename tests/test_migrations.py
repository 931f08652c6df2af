"""The schema the Alembic migrations build equals the models' metadata, on both backends."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from taskplanner.store import models
from taskplanner.store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    is_current,
    upgrade,
)


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, models.metadata))


def test_migrated_schema_equals_the_models(db: Engine) -> None:
    assert schema_differences(db) == []


def test_migrations_create_every_table_of_the_models(db: Engine) -> None:
    tables = set(inspect(db).get_table_names()) - {"alembic_version"}
    assert tables == set(models.metadata.tables)


def test_open_task_key_is_unique_only_among_open_tasks(db: Engine) -> None:
    # The partial unique index is what stops two replicas opening the same situation.
    indexes = {ix["name"]: ix for ix in inspect(db).get_indexes("tasks")}
    assert indexes["uq_tasks_open_key"]["unique"]
    assert indexes["uq_tasks_open_key"]["column_names"] == ["key"]


def test_upgrade_is_idempotent(db: Engine) -> None:
    assert is_current(db)

    upgrade(db)
    upgrade(db)

    assert current_revision(db) == head_revision()
    assert schema_differences(db) == []


def test_downgrade_to_base_and_upgrade_again_rebuilds_the_schema(db: Engine) -> None:
    config = alembic_config(db)
    with db.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(db).get_table_names()) <= {"alembic_version"}

    upgrade(db)

    assert schema_differences(db) == []


def test_the_comparison_notices_a_schema_that_drifted(db: Engine) -> None:
    # Guards the test above against comparing nothing.
    with db.begin() as connection:
        connection.execute(text("DROP INDEX ix_tasks_key"))
        connection.execute(text("ALTER TABLE tasks ADD COLUMN stray INTEGER"))

    kinds = sorted(diff[0] for diff in schema_differences(db))

    assert kinds == ["add_index", "remove_column"]
