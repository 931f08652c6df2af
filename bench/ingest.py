"""Webhook ingest benchmark: an ATS's deliveries through POST /webhooks/<ats> to tasks.

Serves the real app with uvicorn on 127.0.0.1 beside the daemon's inbox worker process
(woken by each stored delivery), and sends N signed deliveries, captured from the provider's
loopback fake (``--ats``, Greenhouse by default) as it announces one new application in Phone
Screen each (so about one ``ready_to_schedule`` task each), from a separate process over a pool
of concurrent keep-alive connections (a lean
HTTP/1.1 client: httpx would spend more CPU per request than the server, crowding it out on
a small machine). Beside it, in the same run and on the same database and uvicorn setup, a
baseline: a bare endpoint that only writes the raw body to a table. Prints both rates,
their ratio (target >= 50%) and the acknowledgement latency at a paced 200 deliveries/s
(target: p99 < 50 ms), with the processor running and, for comparison, stopped. SQLite by
default, PostgreSQL with --postgres. Prints figures; asserts nothing.

    .venv/bin/python bench/ingest.py [--ats greenhouse] [--deliveries 10000] [--concurrency 32]
        [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from multiprocessing.connection import Connection as PipeEnd
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, Table, func, select  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from taskplanner.daemon import DaemonOptions  # noqa: E402
from taskplanner.inbox import DONE  # noqa: E402
from taskplanner.inbox_worker import InboxWorker, RoundFailed, WorkerSpec  # noqa: E402
from taskplanner.logsetup import configure_logging  # noqa: E402
from taskplanner.providers import display_name  # noqa: E402
from taskplanner.sandbox.fake_ats import seed_organisation  # noqa: E402
from taskplanner.sandbox.webhook_recorder import WebhookRecorder  # noqa: E402
from taskplanner.store import models as m  # noqa: E402
from taskplanner.store.database import create_db_engine, transaction  # noqa: E402
from taskplanner.store.migrate import upgrade  # noqa: E402
from taskplanner.web.app import create_app  # noqa: E402
from tests.ats_env import E2E_PROVIDERS, ATSEnv, ats_env  # noqa: E402
from tests.webapp import serve  # noqa: E402

Delivery = tuple[bytes, dict[str, str]]
PG_ADMIN_URL = os.environ.get("TASKPLANNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

raw_metadata = MetaData()
raw_deliveries = Table(
    "bench_raw_deliveries",
    raw_metadata,
    Column("id", Integer, primary_key=True),
    Column("body", LargeBinary, nullable=False),
)


# ---------------------------------------------------------------------------- databases


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="taskplanner-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'ingest.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"taskplanner_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- deliveries


def capture_deliveries(env: ATSEnv, job: Any, stage: Any, count: int, tag: str) -> list[Delivery]:
    """``count`` signed deliveries as the fake sends them when new candidates apply into
    ``stage`` (captured by a recorder, not the daemon): the provider's own bodies and headers."""
    fake = env.fake
    first = len(fake.webhook_deliveries)
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, env.secret)
        n = 0
        while len(fake.webhook_deliveries) - first < count:
            fake.add_candidate_application(
                job, "Bench", f"{tag}{n}", f"bench-{tag}{n}@example.com", stage_id=stage
            )
            n += 1
        fake.flush_webhooks()
    return [(d.body, dict(d.headers)) for d in fake.webhook_deliveries[first : first + count]]


# ---------------------------------------------------------------------------- the sender process


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs pre-built requests.

    The sender is part of the rig, not of what is measured: httpx spends more CPU per request
    than the server does, and on a small machine that CPU comes out of the server's share. So
    requests are written as bytes and only the status line and Content-Length are parsed.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(status_line.split()[1]), body

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to ``size`` connections to one server, opened as needed and reused."""

    def __init__(self, url: str, size: int) -> None:
        address = urlsplit(url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(size)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        async with self.slots:
            connection = self._reusable()
            if connection is None:
                connection = await Connection.open(self.host, self.port)
            try:
                answer = await connection.exchange(request)
            except BaseException:
                connection.close()
                raise
            connection.used = time.monotonic()
            self.idle.append(connection)
            return answer

    def _reusable(self) -> Connection | None:
        """The most recently used idle connection; ones idle near uvicorn's keep-alive
        timeout (5 s) are closed instead, as the server may be closing them right now."""
        while self.idle:
            connection = self.idle.pop()
            if time.monotonic() - connection.used < 3.0:
                return connection
            connection.close()
        return None

    def close(self) -> None:
        for connection in self.idle:
            connection.close()


def build_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    address = urlsplit(url)
    lines = [f"POST {address.path} HTTP/1.1", f"Host: {address.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Sent:
    """Acknowledgement latencies (from the first attempt) and how many sends were retried."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.retries = 0

    async def post(self, pool: Pool, request: bytes) -> None:
        # Like Greenhouse, send again when the connection drops before an answer (a keep-alive
        # connection the server closed just then); the event id makes the copy a duplicate.
        began = time.perf_counter()
        for attempt in range(3):
            try:
                status, body = await pool.exchange(request)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                if attempt == 2:
                    raise
                self.retries += 1
        self.latencies.append(time.perf_counter() - began)
        if status != 200:
            raise RuntimeError(f"POST answered {status}: {body[:300]!r}")


async def _burst(url: str, deliveries: list[Delivery], concurrency: int) -> Sent:
    requests = [build_request(url, body, headers) for body, headers in deliveries]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    sent = Sent()
    pool = Pool(url, concurrency)

    async def worker() -> None:
        while not queue.empty():
            await sent.post(pool, queue.get_nowait())

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        pool.close()
    return sent


async def _paced(url: str, deliveries: list[Delivery], rate: float) -> Sent:
    """Open loop: delivery i leaves at start + i/rate whatever the earlier ones are doing."""
    requests = [build_request(url, body, headers) for body, headers in deliveries]
    sent = Sent()
    pool = Pool(url, 64)

    async def send(at: float, request: bytes) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        await sent.post(pool, request)

    start = time.perf_counter() + 0.2
    try:
        await asyncio.gather(*(send(start + i / rate, r) for i, r in enumerate(requests)))
    finally:
        pool.close()
    return sent


def sender(conn: PipeEnd) -> None:
    """Runs in its own process so the client does not share the server's GIL."""
    while True:
        order = conn.recv()
        if order is None:
            return
        kind, url, deliveries, parameter = order
        began = time.perf_counter()
        if kind == "burst":
            sent = asyncio.run(_burst(url, deliveries, parameter))
        else:
            sent = asyncio.run(_paced(url, deliveries, parameter))
        conn.send(
            {
                "began_wall": time.time() - (time.perf_counter() - began),
                "seconds": time.perf_counter() - began,
                "latencies": sent.latencies,
                "retries": sent.retries,
            }
        )


# ---------------------------------------------------------------------------- the servers


def inbox_worker(env: ATSEnv, app: Any) -> InboxWorker:
    """The inbox worker process the daemon runs, wired to this app as the daemon wires it."""
    options = DaemonOptions()
    spec = WorkerSpec(
        config=env.runtime.config,
        owner="bench",
        lease=env.runtime.config.daemon.lease,
        batch=options.inbox_batch,
        idle=options.inbox_idle,
        log_level="warning",
        log_json=False,
    )

    def on_round(failed: RoundFailed | None) -> None:
        if failed is not None:
            print(f"  inbox round failed: {failed.error}", file=sys.stderr)

    worker = InboxWorker(spec, on_processed=lambda *_: None, on_round=on_round)
    app.state.inbox_wakeup = worker.wakeup
    return worker


def bare_app(db: Engine, limit: int) -> Starlette:
    """The baseline: take the raw body, write it to the database, answer 200."""

    def store(body: bytes) -> None:
        with transaction(db) as session:
            session.execute(raw_deliveries.insert().values(body=body))

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > limit:
            return JSONResponse({"status": "too large"}, status_code=413)
        await run_in_threadpool(store, body)
        return JSONResponse({"status": "accepted"})

    return Starlette(routes=[Route("/webhooks/{name}", receive, methods=["POST"])])


def count(db: Engine, query: Any) -> int:
    with transaction(db, read_only=True) as session:
        return int(session.scalar(query) or 0)


def wait_for_tasks(db: Engine, expected: int, timeout: float = 1800.0) -> float:
    """Wall-clock time (time.time) when ``expected`` deliveries have been processed."""
    processed = (
        select(func.count()).select_from(m.InboxDelivery).where(m.InboxDelivery.status == DONE)
    )
    deadline = time.monotonic() + timeout
    while count(db, processed) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count(db, processed)} of {expected} processed")
        time.sleep(0.05)  # one read every 50 ms: next to nothing beside the work measured
    return time.time()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ---------------------------------------------------------------------------- main


def run(
    url: str,
    ats: str,
    total: int,
    concurrency: int,
    paced_rate: float,
    paced_seconds: float,
    label: str,
) -> None:
    engine = create_db_engine(url)
    upgrade(engine)
    raw_metadata.create_all(engine)
    engine.dispose()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=sender, args=(child,))
    process.start()
    child.close()  # so a sender that dies shows here as EOFError instead of a hang
    try:
        with ats_env(url, ats) as env:
            org = seed_organisation(env.fake, jobs=1, applications_per_job=0)
            job = org.job_ids[0]
            assert env.sync().ok  # the baseline sync: the job and its stages are known
            phone = env.fake.stage_id(job, "Phone Screen")
            paced_count = int(paced_rate * paced_seconds)
            # Deliveries are captured now and sent minutes later. Lever refuses a delivery whose
            # signed triggeredAt is over five minutes old (a replay), so the provider's clock is
            # an hour ahead while capturing (it never goes back): to the endpoint they are
            # fresh. Our clock is put back at once; the inbox worker process keeps real time.
            env.clock.advance(timedelta(hours=1))
            env.fake.add_user("bench-clock@acme.example", "Bench", "Clock")  # reads it once
            env.clock.advance(-timedelta(hours=1))
            # Captured after the baseline and never polled: only the deliveries tell of them.
            deliveries = capture_deliveries(env, job, phone, total, "burst")
            paced = capture_deliveries(env, job, phone, paced_count, "paced")
            unprocessed = capture_deliveries(env, job, phone, paced_count, "alone")
            limit = env.runtime.config.server.max_body_bytes
            all_tasks = select(func.count()).select_from(m.Task)
            tasks_before = count(env.db, all_tasks)

            # The daemon's inbox worker process, started now so it is ready (idle) when the
            # deliveries come.
            app = create_app(env.runtime)
            worker = inbox_worker(env, app)
            worker.start()

            # Baseline: the same POSTs to a bare endpoint writing the raw body.
            with serve(bare_app(env.db, limit)) as bare_url:  # type: ignore[arg-type]
                parent.send(("burst", f"{bare_url}/webhooks/{env.name}", deliveries, concurrency))
                bare = parent.recv()
            stored = count(env.db, select(func.count()).select_from(raw_deliveries))
            assert stored >= total, stored  # a re-sent body is stored twice: no dedupe here

            # The pipeline: verify, store in the inbox, answer; processed alongside.
            with serve(app) as app_url:
                hook = f"{app_url}/webhooks/{env.name}"
                try:
                    parent.send(("burst", hook, deliveries, concurrency))
                    acked = parent.recv()
                    finished = wait_for_tasks(env.db, total)
                    opened = count(env.db, all_tasks) - tasks_before
                    parent.send(("paced", hook, paced, paced_rate))
                    paced_result = parent.recv()
                    wait_for_tasks(env.db, total + paced_count)
                finally:
                    worker.stop(timeout=30)
                # For comparison: the acknowledgement path alone, nothing processed meanwhile.
                parent.send(("paced", hook, unprocessed, paced_rate))
                ack_only = parent.recv()
    finally:
        if process.is_alive():
            parent.send(None)
        process.join(timeout=30)

    bare_rate = total / bare["seconds"]
    pipeline_rate = total / (finished - acked["began_wall"])
    ack_rate = total / acked["seconds"]
    latencies = [s * 1000 for s in paced_result["latencies"]]
    retries = bare["retries"] + acked["retries"] + paced_result["retries"] + ack_only["retries"]
    alone = [s * 1000 for s in ack_only["latencies"]]
    print(
        f"ingest bench ({display_name(ats)}, {label}, {total} deliveries, "
        f"{concurrency} concurrent connections)"
    )
    print(
        f"  baseline  bare endpoint, raw body to the database: {bare_rate:8.0f} deliveries/s "
        f"(p99 ack {percentile(bare['latencies'], 0.99) * 1000:.1f} ms)"
    )
    print(
        f"  pipeline  POST /webhooks/{ats} to processed tasks: {pipeline_rate:8.0f} "
        f"deliveries/s ({opened} tasks opened; acknowledged at {ack_rate:.0f}/s, "
        f"p99 ack {percentile(acked['latencies'], 0.99) * 1000:.1f} ms under load)"
    )
    print(f"  ratio     pipeline / baseline: {pipeline_rate / bare_rate:6.1%}   (target >= 50%)")
    print(
        f"  paced     {paced_rate:.0f} deliveries/s for {paced_seconds:.0f} s, processed beside: "
        f"ack p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms   (target p99 < 50 ms at 200/s)"
    )
    print(
        f"            the same with the inbox processor paused (acknowledgement only): "
        f"p50 {statistics.median(alone):.1f} ms, p99 {percentile(alone, 0.99):.1f} ms"
    )
    if retries:
        print(f"  ({retries} sends retried after the server dropped the connection)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--ats", choices=E2E_PROVIDERS, default=E2E_PROVIDERS[0], help="the ATS whose fake sends"
    )
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--paced-rate", type=float, default=200.0, help="deliveries per second")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument(
        "--postgres", action="store_true", help=f"a fresh database on {PG_ADMIN_URL}"
    )
    args = parser.parse_args()
    configure_logging("error")  # the figures, not a log line per request
    database = postgres_database() if args.postgres else sqlite_database()
    with database as url:
        run(
            url,
            args.ats,
            args.deliveries,
            args.concurrency,
            args.paced_rate,
            args.paced_seconds,
            "PostgreSQL" if args.postgres else "SQLite",
        )


if __name__ == "__main__":
    main()
