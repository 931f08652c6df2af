"""API latency benchmark: the first page of ``GET /api/tasks?assignee=…`` with 1,000 and with
1,000,000 tasks in the database, on a SQLite file and on PostgreSQL, and their ratio; for the
newest-first order, the urgency order (``sort=urgency``) and a search (``q=`` in urgency
order, as the page asks).

The app runs under uvicorn on 127.0.0.1 and is called over HTTP with a bearer token, as a
client would. The queried coordinator has the same 60 open tasks (plus older completed
ones) in both databases, spread through the id range, so both first pages hold 50 tasks.
Target (issues 7 and 15): ratio <= 1.5 for each. Tasks (with a candidate and a job each,
so a search has names to look through) are bulk-inserted here (COPY / executemany) - a
benchmark shortcut; tests only ever create tasks through the pipeline. Scratch databases
are removed at the end. Prints figures; asserts nothing.

    .venv/bin/python bench/api.py [--sizes 1000,1000000] [--backends sqlite,postgres]
        [--queries newest,urgency,search] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from taskplanner.clock import system_clock  # noqa: E402
from taskplanner.config import Config  # noqa: E402
from taskplanner.runtime import Runtime  # noqa: E402
from taskplanner.store.database import create_db_engine  # noqa: E402
from taskplanner.store.migrate import upgrade  # noqa: E402
from taskplanner.web.app import create_app  # noqa: E402
from tests.webapp import serve  # noqa: E402

PG_ADMIN_URL = os.environ.get("TASKPLANNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "bench-token-5d1f0e"  # noqa: S105 - a made-up token for a loopback server
CORA = "cora@acme.example"
CORA_TASKS, CORA_OPEN = 200, 60
COLUMNS = (
    "id", "key", "category", "title", "recommended_action", "action_url", "assignee",
    "assigned_via", "status", "resolution", "completed_by", "completion_reason", "job_id",
    "stage_id", "application_id", "candidate_id", "created_at", "due_at", "completed_at",
    "updated_at",
)  # fmt: skip
CANDIDATE_COLUMNS = ("id", "name", "email", "updated_at", "content_hash")
JOB_COLUMNS = (
    "id", "name", "status", "created_at", "updated_at", "first_seen_at", "content_hash",
)  # fmt: skip
JOBS = 300
# Each measured request: its query parameters besides the assignee.
QUERIES: dict[str, dict[str, str]] = {
    "newest": {},
    "urgency": {"sort": "urgency"},
    # What a coordinator types: part of a name; many of Cora's tasks match.
    "search": {"sort": "urgency", "q": "phone"},
}
CATEGORIES = ("ready_to_schedule", "schedule_cancelled", "interviewer_declined", "new_job")
T0 = datetime(2024, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # naive UTC, as stored


def task_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` tasks: 100 coordinators, 95% completed; Cora's 200 spread through the ids."""
    cora_every = max(1, count // CORA_TASKS)
    cora_seen = 0
    for i in range(1, count + 1):
        is_cora = i % cora_every == 0 and cora_seen < CORA_TASKS
        if is_cora:
            cora_seen += 1
            assignee = CORA
            # Her newest 60 are open, the older ones completed.
            is_open = cora_seen > CORA_TASKS - CORA_OPEN
        else:
            assignee = f"coord{i % 100:03d}@acme.example"
            is_open = i % 20 == 0
        created = T0 + timedelta(seconds=30 * i)
        category = CATEGORIES[i % len(CATEGORIES)]
        yield (
            i,
            f"{category}:bench:{i}",
            category,
            f"Schedule Candidate {i} for Phone Screen (Engineer {i % 300})",
            "Schedule the candidate.",
            f"https://ats.example/people/c{i}",
            assignee,
            "candidate_coordinator",
            "open" if is_open else "completed",
            None if is_open else "action_taken",
            None,
            None if is_open else "an interview was scheduled",
            f"j{i % 300}",
            f"s{i % 900}",
            f"a{i}",
            f"c{i}",
            created,
            created + timedelta(days=2) if category == "ready_to_schedule" else None,
            None if is_open else created + timedelta(hours=5),
            created,
        )


def candidate_rows(count: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, count + 1):
        yield (f"c{i}", f"Candidate {i}", f"c{i}@example.com", T0, f"h{i}")


def job_rows() -> Iterator[tuple[Any, ...]]:
    for j in range(JOBS):
        yield (f"j{j}", f"Engineer {j}", "open", T0, T0, T0, f"h{j}")


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    placeholders = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608


def _sqlite_value(value: Any) -> Any:
    return value.isoformat(" ") if isinstance(value, datetime) else value


def seed_sqlite(path: Path, count: int) -> None:
    import sqlite3

    connection = sqlite3.connect(path)
    with connection:
        for table, columns, rows in (
            ("tasks", COLUMNS, task_rows(count)),
            ("candidates", CANDIDATE_COLUMNS, candidate_rows(count)),
            ("jobs", JOB_COLUMNS, job_rows()),
        ):
            connection.executemany(
                _insert_sql(table, columns),
                (tuple(_sqlite_value(v) for v in row) for row in rows),
            )
    connection.execute("ANALYZE")
    connection.close()


def seed_postgres(url: str, count: int) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        for table, columns, rows in (
            ("tasks", COLUMNS, task_rows(count)),
            ("candidates", CANDIDATE_COLUMNS, candidate_rows(count)),
            ("jobs", JOB_COLUMNS, job_rows()),
        ):
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        connection.execute("SELECT setval(pg_get_serial_sequence('tasks', 'id'), %s)", (count,))
        connection.commit()
    # What autovacuum does to a loaded table soon after (visibility map, statistics).
    with psycopg.connect(url, autocommit=True) as connection:
        for table in ("tasks", "candidates", "jobs"):
            connection.execute(f"VACUUM ANALYZE {table}")


def runtime_for(url: str) -> Runtime:
    config = Config.model_validate(
        {
            "organisation": {"name": "Bench", "account_owner": "ada@acme.example"},
            "database": {"url": url},
            "server": {"api_tokens_env": "BENCH_TOKENS"},
        }
    )
    config.server.set_secret("api_tokens", TOKEN)
    return Runtime.from_config(config, clock=system_clock, migrate=False)


def first_page_timings(client: httpx.Client, requests: int, query: str) -> list[float]:
    timings = []
    params = {"assignee": CORA, **QUERIES[query]}
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/api/tasks", params=params)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        assert len(response.json()["tasks"]) == 50
    return timings


Timings = dict[str, dict[int, list[float]]]  # query -> size -> latencies (ms)


def measure(urls: dict[int, str], requests: int, queries: list[str], rounds: int = 6) -> Timings:
    """Latencies (ms) of Cora's first page per query and database size.

    The sizes are measured in alternating rounds against servers running side by side, so
    both see the same background load on a shared machine.
    """
    timings: Timings = {query: {size: [] for size in urls} for query in queries}
    with ExitStack() as stack:
        clients = {}
        for size, url in urls.items():
            runtime = runtime_for(url)
            stack.callback(runtime.close)
            base = stack.enter_context(serve(create_app(runtime)))
            client = stack.enter_context(
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
            )
            for query in queries:  # warm up connections, caches, the interpreter
                first_page_timings(client, 30, query)
            clients[size] = client
        for _ in range(rounds):
            for query in queries:
                for size, client in clients.items():
                    per_round = max(1, requests // rounds)
                    timings[query][size] += first_page_timings(client, per_round, query)
    return timings


def migrated(url: str) -> None:
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()


def bench_sqlite(sizes: list[int], requests: int, queries: list[str]) -> Timings:
    with tempfile.TemporaryDirectory(prefix="taskplanner-bench-") as folder:
        urls = {}
        for size in sizes:
            path = Path(folder) / f"tasks-{size}.db"
            urls[size] = f"sqlite:///{path}"
            migrated(urls[size])
            started = time.perf_counter()
            seed_sqlite(path, size)
            print(f"sqlite    {size:>9,} tasks seeded in {time.perf_counter() - started:.1f} s")
        return measure(urls, requests, queries)


def bench_postgres(sizes: list[int], requests: int, queries: list[str]) -> Timings:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    names = {size: f"taskplanner_bench_{uuid.uuid4().hex[:8]}" for size in sizes}
    try:
        urls = {}
        for size, name in names.items():
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            urls[size] = f"{base}/{name}"
            migrated(urls[size])
            started = time.perf_counter()
            seed_postgres(urls[size], size)
            print(f"postgres  {size:>9,} tasks seeded in {time.perf_counter() - started:.1f} s")
        return measure(urls, requests, queries)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    queries = args.queries.split(",")
    runners = {"sqlite": bench_sqlite, "postgres": bench_postgres}
    for backend in args.backends.split(","):
        timings = runners[backend](sizes, args.requests, queries)
        for query in queries:
            medians = {}
            for size in sizes:
                ordered = sorted(timings[query][size])
                medians[size] = statistics.median(ordered)
                p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
                print(
                    f"{backend:<9} {query:<8} {size:>9,} tasks: first page (50 tasks) over "
                    f"HTTP median {medians[size]:6.2f} ms  p95 {p95:6.2f} ms  (n={len(ordered)})",
                    flush=True,
                )
            ratio = medians[max(sizes)] / medians[min(sizes)]
            verdict = "ok" if ratio <= 1.5 else "ABOVE TARGET"
            print(
                f"{backend:<9} {query:<8} ratio {max(sizes):,} / {min(sizes):,} tasks: "
                f"{ratio:.2f} (target <= 1.5: {verdict})",
                flush=True,
            )


if __name__ == "__main__":
    main()
