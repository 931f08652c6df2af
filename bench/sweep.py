"""Sweep benchmark: the periodic sweep over 100,000 active applications.

Bulk-inserts a large organisation into the mirror (tests/factories.py:sweep_population) of
a migrated SQLite file, and of a scratch PostgreSQL database when one is reachable
(TASKPLANNER_BENCH_PG, else postgresql://postgres@127.0.0.1:5432/test; the scratch database
is created and dropped). Runs the sweep with a frozen clock and prints its duration, the
tasks it opened, and two baselines measured in the same run: a plain SELECT count(*) over
the applications, and the same sweep over 10,000 applications. Asserts nothing.

    .venv/bin/python bench/sweep.py [--applications 100000] [--small 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402

from taskplanner.clock import FrozenClock  # noqa: E402
from taskplanner.pipeline import Pipeline  # noqa: E402
from taskplanner.store import models as m  # noqa: E402
from taskplanner.store.database import create_db_engine  # noqa: E402
from taskplanner.store.migrate import upgrade  # noqa: E402
from tests.factories import sweep_population  # noqa: E402
from tests.taskflow import insert_population  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="taskplanner-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"taskplanner_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed_count(engine: Engine) -> float:
    with engine.connect() as connection:
        started = time.perf_counter()
        connection.execute(select(func.count()).select_from(m.Application)).scalar_one()
        return time.perf_counter() - started


def sweep_once(url: str, applications: int) -> dict[str, float]:
    """Load a fresh database with ``applications`` active ones and sweep it once."""
    engine = create_db_engine(url)
    try:
        upgrade(engine)
        population = sweep_population(applications, now=NOW)
        started = time.perf_counter()
        insert_population(engine, population)
        loaded = time.perf_counter() - started
        pipeline = Pipeline(engine, population.rules, FrozenClock(NOW))
        count = timed_count(engine)
        started = time.perf_counter()
        result = pipeline.sweep_now()
        swept = time.perf_counter() - started
        started = time.perf_counter()
        pipeline.sweep_now()  # nothing new: the steady-state cost of every later sweep
        again = time.perf_counter() - started
        return {
            "load_s": loaded,
            "count_s": count,
            "sweep_s": swept,
            "opened": float(sum(result.opened.values())),
            "expected": float(len(population.expected_inactive)),
            "again_s": again,
        }
    finally:
        engine.dispose()


def report(
    backend: str, large: int, small: int, url_of: Callable[[], AbstractContextManager[str]]
) -> None:
    with url_of() as url:
        big = sweep_once(url, large)
    with url_of() as url:
        little = sweep_once(url, small)
    ratio = big["sweep_s"] / little["sweep_s"] if little["sweep_s"] else float("nan")
    print(f"{backend}:")
    print(
        f"  {large:,} active applications: sweep {big['sweep_s']:.3f} s, "
        f"opened {int(big['opened']):,} (expected {int(big['expected']):,}), "
        f"repeat sweep {big['again_s']:.3f} s (bulk load {big['load_s']:.1f} s)"
    )
    print(
        f"  baseline: SELECT count(*) over them {big['count_s'] * 1000:.1f} ms; "
        f"sweep over {small:,}: {little['sweep_s']:.3f} s "
        f"(opened {int(little['opened']):,}); ratio {ratio:.1f}x for {large / small:.0f}x the rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    args = parser.parse_args()

    report("sqlite (file)", args.applications, args.small, sqlite_database)

    admin_url = os.environ.get("TASKPLANNER_BENCH_PG", DEFAULT_PG)
    try:
        psycopg.connect(admin_url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        print(f"postgresql: skipped, not reachable at {admin_url} ({exc.__class__.__name__})")
        return
    report("postgresql", args.applications, args.small, lambda: postgres_database(admin_url))


if __name__ == "__main__":
    main()
