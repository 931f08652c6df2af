"""The end-to-end rig for any ATS: its loopback fake, the real app served by uvicorn on 127.0.0.1
and the real database, wired the way the daemon wires them.

What differs between providers beyond the `FakeATS` protocol sits in one `ATSDriver` each
(`DRIVERS`); adding a provider to the suites (``tests/test_ats_e2e.py``) and to
``bench/ingest.py`` is one entry there. The clocks here make provider time well defined (one
whole second per change) and let tests move our time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, delete, func, select

from connectors.base import WebhookSource
from connectors.http import RetryPolicy
from taskplanner.config import Config
from taskplanner.inbox import PENDING, InboxProcessor, ProcessStats
from taskplanner.providers import PROVIDERS, sandbox_types
from taskplanner.runtime import Runtime
from taskplanner.sandbox.fake_ashby import FakeAshby
from taskplanner.sandbox.fake_ats import ConnectorSettings, FakeATS, SignedDelivery
from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse
from taskplanner.sandbox.fake_lever import FakeLever
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.sync import SyncReport, SyncRunner
from tests.webapp import make_config, serve

WEBHOOK_SECRET = "whsec-e2e-5c1d0b7a"
OWNER = "e2e-replica"

# Mirror columns that record *our* clock rather than the provider's state: two runs at
# different moments differ there by design.
OWN_CLOCK_COLUMNS: dict[str, frozenset[str]] = {
    "jobs": frozenset({"first_seen_at"}),
    "applications": frozenset({"first_seen_at"}),
}
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

Headers = dict[str, str]


class OffsetClock:
    """Our clock: real time plus an offset a test moves (``advance``) to skip hours."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class ProviderClock:
    """The provider's clock: follows ``base`` in whole seconds, at least ``step`` per reading.

    Webhook timestamps may have second precision (Greenhouse's do; Harvest has milliseconds);
    one whole second per change makes "which change is newer" well defined on both paths, and
    equal on both.
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


# ---------------------------------------------------------------------------- the drivers


def flip_body_byte(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, Headers]:
    """The body changed by one bit, headers as sent: breaks a signature over the raw body."""
    changed = bytearray(body)
    changed[len(changed) // 2] ^= 0x01
    return bytes(changed), dict(headers)


def change_lever_token(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, Headers]:
    """Lever signs ``token + triggeredAt``, not the body: change the token by one character."""
    document = json.loads(body)
    token = str(document["token"])
    document["token"] = ("0" if token[0] != "0" else "1") + token[1:]
    return json.dumps(document, separators=(",", ":")).encode(), dict(headers)


def own_id(job: Any, item: Any) -> str:
    """A stage or interview kind as our mirror names it, where the provider's id is per job."""
    return str(item)


def lever_id(job: Any, item: Any) -> str:
    """Lever's stages and feedback templates are account-wide: each posting's pipeline holds
    them as ``<posting id>:<id>`` (connectors.lever.mapping)."""
    return f"{job}:{item}"


@dataclass(frozen=True)
class ATSDriver:
    """What the suites need to know of one provider beyond the `FakeATS` protocol.

    ``make_fake(clock)``: the fake (not started) on the provider clock, webhooks sent
    synchronously, limits generous enough for many polls in a few seconds.
    ``tamper(body, headers)``: the delivery with its signature no longer valid (where the
    signature covers only part of the body, change that part).
    """

    provider: str
    make_fake: Callable[[ProviderClock], FakeATS[Any]]
    tamper: Callable[[bytes, Mapping[str, str]], tuple[bytes, Headers]] = flip_body_byte
    # (job id, the fake's stage or interview kind id) -> the id our mirror and tasks use.
    stage_ref: Callable[[Any, Any], str] = own_id
    # Deliveries say what the change was (Greenhouse), rather than name what changed for the
    # connector to read now (Lever): only then does replaying them show the states between.
    webhooks_carry_state: bool = True
    # A poll says when an application entered its stage (Ashby's does not: the history is a
    # separate listing), so what sat idle before go-live shows as idle.
    stage_entry_known: bool = True

    @property
    def available(self) -> bool:
        """Both its connector and its fake are in this version."""
        return self.provider in sandbox_types()


DRIVERS: dict[str, ATSDriver] = {
    # rate_limit: the fake's generous default still runs out over many syncs in a few seconds,
    # and a connector that sees X-RateLimit-Remaining: 0 waits out a real 10 s window.
    "greenhouse": ATSDriver(
        "greenhouse", lambda clock: FakeGreenhouse(clock=clock, rate_limit=1_000_000)
    ),
    # Lever's documented 10 requests/second would make the suites slow; the fake allows more
    # and says so in its connector settings. tests/test_lever_requests.py keeps to the real rate.
    "lever": ATSDriver(
        "lever",
        lambda clock: FakeLever(clock=clock, rate_limit=10_000, rate_burst=20_000),
        tamper=change_lever_token,
        stage_ref=lever_id,
        webhooks_carry_state=False,
    ),
    # Ashby's signature covers the raw body (Ashby-Signature: sha256=<hex>): flip_body_byte.
    "ashby": ATSDriver(
        "ashby", lambda clock: FakeAshby(clock=clock, seed=20260301), stage_entry_known=False
    ),
}
# The providers every end-to-end scenario runs on (and bench/ingest.py offers).
E2E_PROVIDERS: list[str] = [name for name, driver in DRIVERS.items() if driver.available]


# ---------------------------------------------------------------------------- the rig


def ats_config(
    db_url: str,
    table: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    **rules: Any,
) -> Config:
    """The test organisation (tests.webapp) with one ATS connector, named after its type, from
    the table a fake's `connector_settings` gave; secrets from ``environ`` (default: os.environ,
    as in a worker process started with them)."""
    name = str(table["type"])
    config = make_config(db_url, rules=rules, connectors={name: dict(table)})
    config.resolve_secrets(environ)
    return config


@dataclass
class ATSEnv:
    driver: ATSDriver
    fake: FakeATS[Any]
    settings: ConnectorSettings
    runtime: Runtime
    url: str  # the served app, e.g. http://127.0.0.1:PORT
    clock: OffsetClock
    secret: str
    http: httpx.Client

    @property
    def name(self) -> str:
        """The connector's name (its type): the webhook path, sync source and integration."""
        return self.driver.provider

    @property
    def db(self) -> Engine:
        return self.runtime.db

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/{self.name}"

    @property
    def connector(self) -> WebhookSource:
        """The connector the app, the inbox and the sync runner share."""
        source: WebhookSource = self.runtime.connector(self.name)
        return source

    def secrets(self) -> list[str]:
        """Every secret the connector was configured with (none may ever be shown)."""
        return list(self.settings.environ.values())

    def connect_webhooks(self, *, enabled: bool = True) -> None:
        """Point the fake's webhooks at our endpoint (after the baseline sync, as in production);
        ``enabled=False`` stops them, so only polls see what happens."""
        self.fake.configure_webhook(self.webhook_url, self.secret, enabled=enabled)

    def delivered(self) -> list[SignedDelivery]:
        """Webhook deliveries the fake made that were answered 2xx."""
        return [d for d in self.fake.webhook_deliveries if d.delivered]

    def make_connector(
        self, *, sleeps: SleepRecorder | None = None, max_attempts: int = 6, **options: Any
    ) -> Any:
        """A connector built from the configuration, as the runtime builds it, whose retries
        never really sleep (``options``: e.g. a ``clock`` for parse times)."""
        policy = RetryPolicy(
            sleep=sleeps or SleepRecorder(), base_delay=0.05, max_attempts=max_attempts
        )
        cls = PROVIDERS[self.name].connector_class()
        return cls.from_config(
            self.name, self.runtime.config.connectors[self.name], policy=policy, **options
        )

    def use_connector(self, **kwargs: Any) -> Any:
        """Serve the webhook route, the inbox and polls with `make_connector(**kwargs)`."""
        connector = self.make_connector(**kwargs)
        self.runtime.use_connector(self.name, connector)
        return connector

    def runner(self) -> SyncRunner:
        runner = self.runtime.sync_runner(OWNER, jitter=0.0)
        runner.ensure_sources()
        return runner

    def sync(self, *, full: bool = False) -> SyncReport:
        """One poll now, whatever the schedule says (``claim(force=True)`` + ``sync``)."""
        runner = self.runner()
        assert runner.claim(self.name, force=True)
        return runner.sync(self.name, full=full)

    def processor(self, **kwargs: Any) -> InboxProcessor:
        return self.runtime.inbox_processor(OWNER, **kwargs)

    def process(self) -> ProcessStats:
        """One inbox processing cycle (after the fake's pending webhooks went out)."""
        self.fake.flush_webhooks()
        return self.processor().run_once()

    def drain(self) -> ProcessStats:
        self.fake.flush_webhooks()
        total = ProcessStats()
        processor = self.processor()
        while (stats := processor.run_once()).total:
            for name in ("done", "ignored", "failed", "dead"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
        return total

    def settle(self) -> SyncReport:
        """Whatever the provider announces by webhook is processed, then one poll finds the
        rest (providers differ in which changes they announce)."""
        self.drain()
        report = self.sync()
        assert report.ok, report.error
        return report

    def post(
        self, body: bytes, headers: Mapping[str, str] | None = None, *, connector: str | None = None
    ) -> httpx.Response:
        return self.http.post(
            f"{self.url}/webhooks/{connector or self.name}",
            content=body,
            headers=dict(headers or {}),
        )


@contextmanager
def ats_env(
    db_url: str,
    provider: str = "greenhouse",
    *,
    secret: str = WEBHOOK_SECRET,
    driver: ATSDriver | None = None,
    **rules: Any,
) -> Iterator[ATSEnv]:
    """The fake (webhooks not yet connected), a runtime on ``db_url`` and the app served;
    ``driver`` replaces the provider's usual one (e.g. a fake with its documented limits)."""
    driver = driver or DRIVERS[provider]
    clock = OffsetClock()
    with driver.make_fake(ProviderClock(clock)) as fake:
        settings = fake.connector_settings(secret)
        config = ats_config(db_url, settings.table, settings.environ, **rules)
        runtime = Runtime.from_config(config, clock=clock, migrate=False)
        try:
            with serve(_app(runtime)) as url, httpx.Client(timeout=30) as http:
                yield ATSEnv(driver, fake, settings, runtime, url, clock, secret, http)
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
