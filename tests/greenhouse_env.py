"""The Greenhouse end-to-end rig: the loopback fake Greenhouse, the real app served by uvicorn
on 127.0.0.1 and the real database, wired the way the daemon wires them.

Shared by ``tests/test_greenhouse_e2e.py`` and ``bench/ingest.py``; the clocks here make
provider time well defined (one whole second per change) and let tests move our time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, delete, func, select

from connectors.greenhouse import GreenhouseConnector
from connectors.http import RetryPolicy
from taskplanner.config import Config
from taskplanner.inbox import PENDING, InboxProcessor, ProcessStats
from taskplanner.runtime import Runtime
from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
    sign,
)
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.sync import SyncReport, SyncRunner
from tests.webapp import make_config, serve

GREENHOUSE = "greenhouse"
WEBHOOK_SECRET = "whsec-e2e-5c1d0b7a"
OWNER = "e2e-replica"

# Mirror columns that record *our* clock rather than the provider's state: two runs at
# different moments differ there by design.
OWN_CLOCK_COLUMNS: dict[str, frozenset[str]] = {"jobs": frozenset({"first_seen_at"})}
MIRROR_TABLES = (
    "users",
    "jobs",
    "stages",
    "interview_kinds",
    "candidates",
    "applications",
    "schedules",
    "schedule_interviewers",
    "scorecards",
)


class OffsetClock:
    """Our clock: real time plus an offset a test moves (``advance``) to skip hours."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class ProviderClock:
    """Greenhouse's clock: follows ``base`` in whole seconds, at least ``step`` per reading.

    Webhook timestamps have second precision (Harvest has milliseconds); one whole second per
    change makes "which change is newer" well defined on both paths, and equal on both.
    """

    def __init__(self, base: OffsetClock, step: timedelta = timedelta(seconds=1)) -> None:
        self.base = base
        self.step = step
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self.base().replace(microsecond=0)
            if self._last is not None and now < self._last + self.step:
                now = self._last + self.step
            self._last = now
            return now


class SleepRecorder:
    """Stands in for time.sleep in a RetryPolicy: retries are instant and countable."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def greenhouse_config(
    db_url: str, fake_url: str, *, secret: str = WEBHOOK_SECRET, **rules: Any
) -> Config:
    """The test organisation (tests.webapp) with a Greenhouse connector pointing at the fake
    at ``fake_url`` (its Harvest and OAuth base), with the fake's default credentials."""
    config = make_config(
        db_url,
        rules=rules,
        connectors={
            GREENHOUSE: {
                "type": "greenhouse",
                "base_url": fake_url,
                "auth_url": fake_url,
                "client_id_env": "GREENHOUSE_CLIENT_ID",
                "client_secret_env": "GREENHOUSE_CLIENT_SECRET",
                "webhook_secret_env": "GREENHOUSE_WEBHOOK_SECRET",
            }
        },
    )
    connector = config.connectors[GREENHOUSE]
    connector.set_secret("client_id", DEFAULT_CLIENT_ID)
    connector.set_secret("client_secret", DEFAULT_CLIENT_SECRET)
    connector.set_secret("webhook_secret", secret)
    return config


def make_connector(
    fake: FakeGreenhouse,
    *,
    secret: str = WEBHOOK_SECRET,
    sleeps: SleepRecorder | None = None,
    **options: Any,
) -> GreenhouseConnector:
    """A connector whose retries never really sleep."""
    return GreenhouseConnector(
        GREENHOUSE,
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        webhook_secret=secret,
        policy=RetryPolicy(sleep=sleeps or SleepRecorder(), base_delay=0.05),
        **options,
    )


@dataclass
class GreenhouseEnv:
    fake: FakeGreenhouse
    runtime: Runtime
    url: str  # the served app, e.g. http://127.0.0.1:PORT
    clock: OffsetClock
    secret: str
    http: httpx.Client

    @property
    def db(self) -> Engine:
        return self.runtime.db

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/{GREENHOUSE}"

    def connect_webhooks(self) -> None:
        """Point the fake's webhooks at our endpoint (after the baseline sync, as in production)."""
        self.fake.configure_webhook(self.webhook_url, self.secret)

    def runner(self) -> SyncRunner:
        runner = self.runtime.sync_runner(OWNER, jitter=0.0)
        runner.ensure_sources()
        return runner

    def sync(self, *, full: bool = False) -> SyncReport:
        """One poll now, whatever the schedule says (``claim(force=True)`` + ``sync``)."""
        runner = self.runner()
        assert runner.claim(GREENHOUSE, force=True)
        return runner.sync(GREENHOUSE, full=full)

    def processor(self, **kwargs: Any) -> InboxProcessor:
        return self.runtime.inbox_processor(OWNER, **kwargs)

    def process(self) -> ProcessStats:
        """One inbox processing cycle."""
        return self.processor().run_once()

    def drain(self) -> ProcessStats:
        total = ProcessStats()
        processor = self.processor()
        while (stats := processor.run_once()).total:
            for name in ("done", "ignored", "failed", "dead"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
        return total

    def post(
        self, body: bytes, headers: Mapping[str, str] | None = None, *, connector: str = GREENHOUSE
    ) -> httpx.Response:
        return self.http.post(
            f"{self.url}/webhooks/{connector}", content=body, headers=dict(headers or {})
        )

    def signed_headers(self, body: bytes, event_id: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Signature": sign(body, self.secret),
            "Greenhouse-Event-ID": event_id,
        }


@contextmanager
def greenhouse_env(
    db_url: str, *, secret: str = WEBHOOK_SECRET, **rules: Any
) -> Iterator[GreenhouseEnv]:
    """The fake (webhooks not yet connected), a runtime on ``db_url`` and the app served."""
    clock = OffsetClock()
    # rate_limit: the fake's generous default still runs out over many syncs in a few seconds,
    # and a connector that sees X-RateLimit-Remaining: 0 waits out a real 10 s window.
    with FakeGreenhouse(clock=ProviderClock(clock), rate_limit=1_000_000) as fake:
        config = greenhouse_config(db_url, fake.base_url, secret=secret, **rules)
        runtime = Runtime.from_config(config, clock=clock, migrate=False)
        try:
            with serve(_app(runtime)) as url, httpx.Client(timeout=30) as http:
                yield GreenhouseEnv(fake, runtime, url, clock, secret, http)
        finally:
            runtime.close()


def _app(runtime: Runtime) -> Any:
    from taskplanner.web.app import create_app

    return create_app(runtime)


# ---------------------------------------------------------------------------- reading back


def clear_database(db: Engine) -> None:
    """Empty every table (both backends), keeping the migrated schema."""
    with transaction(db) as session:
        for table in reversed(m.metadata.sorted_tables):
            session.execute(delete(table))


def mirror(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored column of the canonical mirror, rows in primary-key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with transaction(db, read_only=True) as session:
        for name in MIRROR_TABLES:
            table = m.metadata.tables[name]
            skip = OWN_CLOCK_COLUMNS.get(table.name, frozenset())
            columns = [c for c in table.columns if c.name not in skip]
            query = select(*columns).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(row) for row in session.execute(query)]
    return out


def open_situations(db: Engine) -> list[tuple[str, str, str]]:
    """(category, key, assignee) of every open task, sorted."""
    with transaction(db, read_only=True) as session:
        rows = session.execute(
            select(m.Task.category, m.Task.key, m.Task.assignee).where(m.Task.status == "open")
        )
        return sorted(tuple(row) for row in rows)  # type: ignore[misc]


def count_deliveries(db: Engine, status: str = PENDING) -> int:
    with transaction(db, read_only=True) as session:
        query = select(func.count()).select_from(m.InboxDelivery)
        return int(session.scalar(query.where(m.InboxDelivery.status == status)) or 0)
