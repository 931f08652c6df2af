"""``taskplanner run``: the HTTP server and the scheduled work in one process.

uvicorn serves the web app (webhooks, API, page, health, metrics) from a thread; APScheduler
runs the polls, the sweep, the digest and subscription renewals; a loop drains the inbox as
soon as a webhook is stored. Work shared between replicas is claimed with leases in the
database, kept alive by a heartbeat and released on SIGTERM.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col

from taskplanner import health, ownership
from taskplanner.clock import Clock, system_clock
from taskplanner.config import Config
from taskplanner.inbox import PENDING, InboxProcessor, release_claims
from taskplanner.inbox_worker import InboxWorker, RoundFailed, WorkerSpec
from taskplanner.logsetup import current_settings
from taskplanner.metrics import Metrics
from taskplanner.runtime import Runtime, UnsupportedConnector, replica_id
from taskplanner.store import models as m
from taskplanner.store.database import describe_error, is_sqlite, transaction
from taskplanner.store.migrate import current_revision, head_revision, upgrade
from taskplanner.sync import SyncReport, SyncRunner

log = structlog.get_logger("taskplanner.daemon")

# pg_advisory_lock key serialising migrations when several replicas start at once.
MIGRATION_LOCK_KEY = 0x7461736B  # "task"
# Rows in sync_sources that are not connectors: cluster-wide periodic jobs (names a
# connector can never have, see config._CONNECTOR_NAME).
SWEEP, DIGEST, RENEWAL = "_sweep", "_digest", "_renewal"


class DaemonError(RuntimeError):
    """The daemon cannot start; the message is one line for the operator."""


@dataclass(frozen=True)
class DaemonOptions:
    """How often the daemon looks for work. Defaults suit production; the sandbox shortens them."""

    sync_tick: float = 2.0  # look for sources whose turn it is (poll_interval decides)
    inbox_idle: float = 1.0  # inbox loop wait when there is nothing to do and no wake-up
    inbox_batch: int = 50  # deliveries claimed at once (each processed in its own transaction)
    sweep_every: timedelta = timedelta(minutes=1)
    digest_every: timedelta = timedelta(minutes=1)
    renew_every: timedelta = timedelta(minutes=30)
    alerts_every: float = 2.0  # look for Slack/email alerts to send (every replica does)
    lease: timedelta | None = None  # default: [daemon] lease
    inbox_worker: str | None = None  # "process" or "thread"; default: [daemon] inbox_worker
    shutdown_timeout: timedelta | None = None  # default: [daemon] shutdown_timeout


# --------------------------------------------------------------------------- start-up checks


def is_loopback(host: str) -> bool:
    """True when ``host`` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def listen_address(runtime: Runtime, host: str | None = None) -> str:
    """The address to bind: without API tokens or an identity provider to say who people
    are, the server may only answer this machine."""
    server = runtime.config.server
    wanted = host or server.host
    if server.api_tokens() or server.oidc is not None or is_loopback(wanted):
        return wanted
    log.warning(
        "server_forced_to_loopback",
        configured_host=wanted,
        host="127.0.0.1",
        reason="no API tokens (server.api_tokens_env) and no [server.oidc] configured",
    )
    return "127.0.0.1"


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a taken port is one clear error."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise DaemonError(f"server.host: cannot use {host!r}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DaemonError(
            f"server.port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class SqliteLock:
    """One daemon per SQLite file: an exclusive ``flock`` on ``<database>.lock``.

    SQLite has no row locks to share work with, so a second daemon on the same file would
    poll every source twice. The lock dies with the process, even after ``kill -9``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_url(cls, url: str) -> SqliteLock | None:
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(Path(database).resolve().with_name(Path(database).name + ".lock"))

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DaemonError(
                f"database.url: cannot open the database: {self.path.with_suffix('')}: "
                f"{exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            database = self.path.with_suffix("")
            raise DaemonError(
                f"database.url: another taskplanner daemon (pid {holder}) is already running "
                f"on {database}; SQLite allows one daemon per file, use PostgreSQL to run "
                "several replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def upgrade_schema(db: Engine) -> None:
    """Migrate to head; on PostgreSQL one replica at a time (the others wait, then find it done)."""
    if is_sqlite(db):
        upgrade(db)
        return
    with db.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            upgrade(db)
        finally:
            connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            connection.commit()


def check_schema(db: Engine) -> None:
    current, head = current_revision(db), head_revision()
    if current != head:
        raise DaemonError(
            f"database.url: the schema is at revision {current or 'none'}, this version needs "
            f"{head}: run `taskplanner db upgrade` (or start without --no-migrate)"
        )


# --------------------------------------------------------------------------- leases


@dataclass
class PeriodicLease:
    """A job the whole cluster runs once per ``every``, on one replica at a time.

    Uses a ``sync_sources`` row of its own (``_sweep``, ``_digest``, ...) exactly like a
    source: ``next_due_at`` says when it is due, the lease says who runs it now.
    """

    db: Engine
    name: str
    every: timedelta
    owner: str
    lease: timedelta
    clock: Clock

    def ensure(self) -> None:
        with transaction(self.db) as session:
            if session.get(m.SyncSource, self.name) is None:
                try:
                    with session.begin_nested():
                        session.add(m.SyncSource(connector=self.name))
                        session.flush()
                except IntegrityError:
                    pass  # another replica created it at the same moment

    def claim(self) -> bool:
        now = self.clock()
        with transaction(self.db) as session:
            query = select(m.SyncSource).where(col(m.SyncSource.connector) == self.name)
            row = session.scalars(
                query.with_for_update(skip_locked=not is_sqlite(self.db))
            ).first()
            if row is None:
                return False
            held = (
                row.lease_owner not in (None, self.owner)
                and row.lease_expires_at is not None
                and row.lease_expires_at > now
            )
            if held or (row.next_due_at is not None and row.next_due_at > now):
                return False
            row.lease_owner, row.lease_expires_at = self.owner, now + self.lease
            row.last_started_at = now
            session.add(row)
        return True

    def release(self, *, done: bool) -> None:
        now = self.clock()
        with transaction(self.db) as session:
            row = session.get(m.SyncSource, self.name)
            if row is None or row.lease_owner != self.owner:
                return
            row.lease_owner, row.lease_expires_at = None, None
            if done:
                row.last_finished_at, row.next_due_at = now, now + self.every
            session.add(row)


def extend_leases(db: Engine, owner: str, lease: timedelta, now: datetime) -> None:
    """The heartbeat: everything this replica holds stays its own for another ``lease``."""
    until = now + lease
    # Rows locked right now belong to work in progress (a sync page extends its own lease,
    # a delivery being processed is about to be done): skip them rather than wait, so the
    # heartbeat never joins a lock cycle with that work. One short transaction per table.
    skip = not is_sqlite(db)
    sources = select(col(m.SyncSource.connector)).where(col(m.SyncSource.lease_owner) == owner)
    with transaction(db) as session:
        held = list(session.scalars(sources.with_for_update(skip_locked=skip)))
        if held:
            session.execute(
                update(m.SyncSource)
                .where(col(m.SyncSource.connector).in_(held))
                .values(lease_expires_at=until)
            )
    deliveries = select(col(m.InboxDelivery.id)).where(
        col(m.InboxDelivery.lease_owner) == owner, col(m.InboxDelivery.status) == PENDING
    )
    with transaction(db) as session:
        claimed = list(session.scalars(deliveries.with_for_update(skip_locked=skip)))
        if claimed:
            session.execute(
                update(m.InboxDelivery)
                .where(col(m.InboxDelivery.id).in_(claimed))
                .values(lease_expires_at=until)
            )


def release_leases(db: Engine, owner: str, inbox_ids: list[int] | None = None) -> None:
    """Give back what this replica holds (all of it, or some claimed deliveries)."""
    with transaction(db) as session:
        release_claims(session, owner, inbox_ids)
        if inbox_ids is None:
            # next_due_at stays as it was: a source interrupted mid-poll is due at once.
            session.execute(
                update(m.SyncSource)
                .where(col(m.SyncSource.lease_owner) == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )


# --------------------------------------------------------------------------- the daemon


class _StoppablePolls:
    """Wraps a connector so a poll stops between pages once shutdown begins.

    Each page is stored with its cursor before the next is fetched, so stopping there loses
    nothing: the next poll, here or on another replica, carries on from that cursor.
    """

    def __init__(self, connector: Any, stopping: threading.Event) -> None:
        self._connector = connector
        self._stopping = stopping

    def poll(self, cursors: Mapping[str, str], **kwargs: Any) -> Iterator[Any]:
        pages = self._connector.poll(cursors, **kwargs)
        try:
            for page in pages:
                yield page
                if self._stopping.is_set():
                    log.info("sync_interrupted", connector=self._connector.name)
                    return
        finally:
            close = getattr(pages, "close", None)
            if callable(close):
                close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)


@dataclass
class _JobHealth:
    """Logs a failing job once when it starts failing and once when it recovers."""

    failing: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, job: str, exc: BaseException) -> None:
        """Call while handling ``exc``."""
        self.failed_as(job, RoundFailed.of(exc))

    def failed_as(self, job: str, failed: RoundFailed) -> None:
        """A failure described (the inbox worker's, told across processes)."""
        with self.lock:
            first = job not in self.failing
            self.failing[job] = failed.error
        if first:
            if failed.database:
                log.warning("job_failed", job=job, error=failed.error)
            else:
                log.error("job_failed", job=job, error=failed.error, traceback=failed.trace)

    def succeeded(self, job: str) -> None:
        with self.lock:
            was = self.failing.pop(job, None)
        if was is not None:
            log.info("job_recovered", job=job)


class Daemon:
    """The process ``taskplanner run`` starts. ``run()`` blocks until a signal stops it."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        options: DaemonOptions | None = None,
        host: str | None = None,
        port: int | None = None,
        owner: str | None = None,
        on_started: Callable[[Daemon], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.options = options or DaemonOptions()
        daemon_config = runtime.config.daemon
        self.lease = self.options.lease or daemon_config.lease
        self.shutdown_timeout = (
            self.options.shutdown_timeout or daemon_config.shutdown_timeout
        ).total_seconds()
        self.owner = owner or replica_id()
        self.host = listen_address(runtime, host)
        self.port = runtime.config.server.port if port is None else port
        self.on_started = on_started
        self.stopping = threading.Event()  # no new work from here on
        self.stopped = threading.Event()  # run() may return
        self.wakeup = threading.Event()  # set by POST /webhooks when a delivery is stored
        self.jobs = _JobHealth()
        self.incomplete = False  # a unit of work outlived the shutdown timeout
        self._signals = 0
        self._busy = 0
        self._busy_lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._http_thread: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._socket: socket.socket | None = None
        self.metrics: Metrics | None = None
        self.runner: SyncRunner | None = None
        self.processor: InboxProcessor | None = None
        self.worker: InboxWorker | None = None
        self.sources: list[str] = []
        self._failing_sources: set[str] = set()
        self._warned_breaches: set[tuple[str, str, str]] = set()
        self._alerts: Any = None  # taskplanner.alerts.AlertDispatcher, when alerts are on

    # ---- public

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start everything, wait for SIGTERM/SIGINT (or ``stop()``), shut down; exit code."""
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        try:
            while not self.stopping.wait(0.5):
                if self.worker is not None:
                    self.worker.restart_if_dead()
                if self._server_thread_died():
                    log.error("server_stopped_unexpectedly")
                    self.stopping.set()
                    self.shutdown()
                    return 1
        finally:
            if not self.stopped.is_set():
                self.shutdown()
        return 0

    def stop(self) -> None:
        """Ask the daemon to shut down (what SIGTERM does)."""
        self.stopping.set()
        self.wakeup.set()
        if self.worker is not None:
            self.worker.request_stop()  # it finishes the transaction in hand and leaves

    # ---- start-up

    def start(self) -> None:
        from taskplanner.web.app import create_app
        from taskplanner.web.ops import app_metrics
        from taskplanner.web.webhooks import webhooks_in_flight

        runtime = self.runtime
        self._socket = bind_socket(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        app = create_app(runtime)
        app.state.inbox_wakeup = self.wakeup
        self.metrics = metrics = app_metrics(app)

        self.sources = self._usable_sources()
        self.runner = runtime.sync_runner(self.owner, lease=self.lease, on_report=self._on_report)
        self.runner.connectors = self._connector_for_sync
        self.runner.ensure_sources()
        if self._inbox_in_a_process():
            self.worker = self._inbox_worker(metrics)
            app.state.inbox_wakeup = self.worker.wakeup
        else:
            self.processor = runtime.inbox_processor(
                self.owner,
                lease=self.lease,
                on_processed=metrics.observe_processed,
                should_yield=webhooks_in_flight(app).busy,
            )
        self._apply_configuration()
        self._start_scheduler()
        if self.worker is not None:
            self.worker.start()
        else:
            self._start_thread("inbox", self._inbox_loop)
        self._start_server(app)
        log.info(
            "daemon_started",
            url=self.url,
            replica=self.owner,
            database=_safe_url(runtime.config.database.url),
            sources=self.sources,
            lease_seconds=self.lease.total_seconds(),
        )
        if self.on_started is not None:
            self.on_started(self)

    def _inbox_in_a_process(self) -> bool:
        choice = self.options.inbox_worker or self.runtime.config.daemon.inbox_worker
        # A worker process keeps its own clock: a runtime on another clock (tests, the
        # sandbox's time travel) processes in a thread.
        return choice == "process" and self.runtime.clock is system_clock

    def _inbox_worker(self, metrics: Metrics) -> InboxWorker:
        level, as_json = current_settings()
        spec = WorkerSpec(
            config=self.runtime.config,
            owner=self.owner,
            lease=self.lease,
            batch=self.options.inbox_batch,
            idle=self.options.inbox_idle,
            log_level=level,
            log_json=as_json,
        )

        def on_round(failed: RoundFailed | None) -> None:
            if failed is None:
                self.jobs.succeeded("inbox")
            else:
                self.jobs.failed_as("inbox", failed)

        return InboxWorker(spec, on_processed=metrics.observe_processed, on_round=on_round)

    def _usable_sources(self) -> list[str]:
        names = []
        for name, connector_config in self.runtime.config.enabled_connectors().items():
            try:
                self.runtime.connector(name)
            except UnsupportedConnector as exc:
                log.error("connector_unsupported", connector=name, error=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - the first sync records it as a failure
                log.warning(
                    "connector_not_built",
                    connector=name,
                    type=connector_config.type,
                    error=type(exc).__name__,
                )
            names.append(name)
        return names

    def _connector_for_sync(self, name: str) -> Any:
        return _StoppablePolls(self.runtime.connector(name), self.stopping)

    def _apply_configuration(self) -> None:
        """What a changed configuration means for open tasks, applied at start.

        Integrations no longer configured retire their broken_integration task, and open
        tasks follow owners the configuration now names (job coordinators, stage owners);
        tasks assigned by hand stay where a person put them.
        """
        runtime = self.runtime
        configured = list(runtime.config.enabled_connectors())
        try:
            with transaction(runtime.db) as session:
                events = health.retire_unconfigured(session, configured, runtime.clock())
                runtime.pipeline.handle(session, events)
                moved = runtime.pipeline.tasks.refresh_assignments(session, everything=True)
            if moved:
                log.info("tasks_reassigned_by_configuration", count=moved)
        except SQLAlchemyError as exc:
            self.jobs.failed("apply_configuration", exc)

    def _start_scheduler(self) -> None:
        options = self.options
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # A thread per job (each runs one instance at a time), so a long poll never
            # delays the heartbeat that keeps its lease.
            executors={"default": ThreadPoolExecutor(len(self.sources) + 4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        now = datetime.now(UTC)
        # Look for due sources at least twice per poll interval, so short intervals hold.
        enabled = self.runtime.config.enabled_connectors()
        intervals = [c.poll_interval.total_seconds() for c in enabled.values()]
        tick = max(0.5, min([options.sync_tick, *(i / 2 for i in intervals)]))
        for name in self.sources:
            scheduler.add_job(
                self._guarded,
                "interval",
                args=(f"sync:{name}", self._sync_source, name),
                seconds=tick,
                id=f"sync:{name}",
                next_run_time=now,
            )
        periodic: list[tuple[str, timedelta, Callable[[], None]]] = [
            (SWEEP, options.sweep_every, self._sweep),
            (RENEWAL, options.renew_every, self._renew_subscriptions),
        ]
        if self.runtime.config.digest is not None:
            periodic.append((DIGEST, options.digest_every, self._send_digests))
        for name, every, job in periodic:
            lease = PeriodicLease(
                self.runtime.db, name, every, self.owner, self.lease, self.runtime.clock
            )
            with contextlib.suppress(SQLAlchemyError):
                lease.ensure()
            tick = max(1.0, min(every.total_seconds() / 4, 15.0))
            scheduler.add_job(
                self._guarded,
                "interval",
                args=(name.strip("_"), self._periodic, lease, job),
                seconds=tick,
                id=name,
                next_run_time=now + timedelta(seconds=1),
            )
        if self.runtime.pipeline.tasks.alerts:
            # Every replica sends (rows are claimed one by one), in a job of its own: a slow
            # or failing Slack holds up this thread only, never the tasks.
            self._alerts = self.runtime.alert_dispatcher(self.owner, lease=self.lease)
            scheduler.add_job(
                self._guarded,
                "interval",
                args=("alerts", self._send_alerts),
                seconds=options.alerts_every,
                id="alerts",
                next_run_time=now + timedelta(seconds=1),
            )
        heartbeat = max(0.5, self.lease.total_seconds() / 3)
        scheduler.add_job(
            self._guarded,
            "interval",
            args=("heartbeat", self._heartbeat),
            seconds=heartbeat,
            id="heartbeat",
        )
        scheduler.start()
        self._scheduler = scheduler

    def _start_thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _start_server(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=logging.getLogger().isEnabledFor(logging.DEBUG),
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=max(1, int(self.shutdown_timeout / 2)),
        )
        server = uvicorn.Server(config)
        self._server = server
        sock = self._socket
        assert sock is not None  # noqa: S101 - bound in start()
        thread = self._start_thread("http", lambda: server.run(sockets=[sock]))
        self._http_thread = thread
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise DaemonError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.02)

    def _server_thread_died(self) -> bool:
        return self._http_thread is not None and not self._http_thread.is_alive()

    # ---- the work

    def _guarded(self, job: str, work: Callable[..., Any], *args: Any) -> None:
        """Run one unit unless shutting down; count it as busy so shutdown can wait for it."""
        with self._busy_lock:
            if self.stopping.is_set():
                return
            self._busy += 1
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - a job must never kill the scheduler
            self.jobs.failed(job, exc)
        else:
            self.jobs.succeeded(job)
        finally:
            with self._busy_lock:
                self._busy -= 1
                self._busy_lock.notify_all()

    def _sync_source(self, name: str) -> None:
        runner = self.runner
        assert runner is not None  # noqa: S101 - set in start()
        if runner.claim(name):
            runner.sync(name)

    def _on_report(self, report: SyncReport) -> None:
        if self.metrics is not None:
            self.metrics.observe_sync(report)
        fields: dict[str, Any] = {
            "connector": report.connector,
            "pages": report.pages,
            "records": report.snapshots,
            "deleted": report.deleted,
            "opened": report.opened,
            "closed": report.closed,
            "seconds": round(report.seconds, 3),
        }
        if not report.ok:
            # Once per failure streak; the integration's health logs its own transitions.
            first = report.connector not in self._failing_sources
            self._failing_sources.add(report.connector)
            (log.warning if first else log.debug)("sync_failed", error=report.error, **fields)
            return
        self._failing_sources.discard(report.connector)
        if report.opened or report.closed or report.deleted:
            log.info("sync_finished", **fields)
        else:
            log.debug("sync_finished", **fields)
        if report.go_live is not None:
            # The first sync is over: what everyone finds on their list on day one.
            log.info(
                "go_live",
                connector=report.connector,
                opened=report.go_live.total,
                per_category=report.go_live.by_category,
                per_person=report.go_live.by_person,
            )

    def _periodic(self, lease: PeriodicLease, job: Callable[[], None]) -> None:
        if not lease.claim():
            return
        done = False
        try:
            job()
            done = True
        finally:
            lease.release(done=done)

    def _sweep(self) -> None:
        result = self.runtime.pipeline.sweep_now()
        if result.opened or result.closed or result.reassigned:
            log.info(
                "sweep_finished",
                opened=dict(result.opened),
                closed=dict(result.closed),
                handed_over=result.reassigned,
            )
        self._warn_role_breaches()

    def _warn_role_breaches(self) -> None:
        """Owners whose ATS role breaks the roles' rules: a warning once per breach (they are
        passed over in assignment; ``taskplanner status`` lists them)."""
        with transaction(self.runtime.db, read_only=True) as session:
            breaches = ownership.ats_role_breaches(session, self.runtime.rules)
        for breach in breaches:
            key = (breach.email, str(breach.post), breach.job_id)
            if key not in self._warned_breaches:
                self._warned_breaches.add(key)
                log.warning(
                    "role_breach_in_ats",
                    email=breach.email,
                    role=breach.role,
                    post=str(breach.post),
                    job_id=breach.job_id,
                    detail=breach.describe(),
                )

    def _send_digests(self) -> None:
        try:  # the digest arrives with the web helpers' module; without it there is none
            digest = importlib.import_module("taskplanner.digest")
        except ImportError:
            return
        send: Callable[..., Any] | None = getattr(digest, "send_due_digests", None)
        if send is not None:
            send(self.runtime, self.runtime.clock())  # it logs what it sent (digest.run)

    def _send_alerts(self) -> None:
        self._alerts.run_once()  # it logs each message (alert.sent, alert.retry_later, …)

    def _renew_subscriptions(self) -> None:
        for name in self.sources:
            try:
                connector = self.runtime.connector(name)
            except Exception:  # noqa: BLE001, S112 - its sync reports the problem
                continue
            renew = getattr(connector, "renew_subscriptions", None)
            if callable(renew):
                renew()
                log.info("subscriptions_renewed", connector=name)

    def _heartbeat(self) -> None:
        extend_leases(self.runtime.db, self.owner, self.lease, self.runtime.clock())

    def _inbox_loop(self) -> None:
        """Drain the inbox; sleep until a webhook wakes it or a second passes."""
        while not self.stopping.is_set():
            self.wakeup.clear()
            claimed = 0
            with self._busy_lock:
                if self.stopping.is_set():
                    break
                self._busy += 1
            try:
                claimed = self._inbox_round()
            except Exception as exc:  # noqa: BLE001 - keep draining after the database returns
                self.jobs.failed("inbox", exc)
            else:
                self.jobs.succeeded("inbox")
            finally:
                with self._busy_lock:
                    self._busy -= 1
                    self._busy_lock.notify_all()
            if claimed == 0:
                self.wakeup.wait(self.options.inbox_idle)

    def _inbox_round(self) -> int:
        processor = self.processor
        assert processor is not None  # noqa: S101 - set in start()
        return processor.drain_round(self.options.inbox_batch, stop=self.stopping.is_set)

    # ---- shutdown

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals > 1:
            # A second signal means "now": leases expire by themselves.
            log.warning("shutdown_forced", signal=name)
            _flush()
            os._exit(128 + signum)
        log.info("shutdown_requested", signal=name, timeout_seconds=self.shutdown_timeout)
        self.stop()

    def _units_running(self) -> int:
        with self._busy_lock:
            return self._busy

    def shutdown(self) -> None:
        """Stop taking work, let the current units finish, release leases, close the server."""
        self.stop()
        deadline = time.monotonic() + self.shutdown_timeout
        if self._server is not None:
            self._server.should_exit = True
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        beat_every, beat_at = self.lease.total_seconds() / 3, time.monotonic()
        while self._units_running() and time.monotonic() < deadline:
            if time.monotonic() - beat_at >= beat_every:
                # The scheduler's heartbeat has stopped; what is finishing keeps its leases.
                beat_at = time.monotonic()
                with contextlib.suppress(SQLAlchemyError):
                    self._heartbeat()
            with self._busy_lock:
                self._busy_lock.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        self.incomplete = self._units_running() > 0
        if self.incomplete:
            log.warning("shutdown_incomplete", units_running=self._busy)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            self.incomplete = True
        if self.worker is not None and not self.worker.stop(deadline - time.monotonic()):
            log.warning("shutdown_incomplete", units_running="inbox worker")
            self.incomplete = True
        try:
            release_leases(self.runtime.db, self.owner)
        except SQLAlchemyError as exc:
            log.warning("leases_not_released", error=type(exc).__name__)
        if self._socket is not None:
            self._socket.close()
        self.runtime.close()
        self.stopped.set()
        log.info("daemon_stopped", replica=self.owner, clean=not self.incomplete)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


# --------------------------------------------------------------------------- entry point


def open_daemon_runtime(config: Config, *, migrate: bool, clock: Clock = system_clock) -> Runtime:
    """Open the database, then migrate (one replica at a time) or check the schema is current."""
    runtime = Runtime.from_config(config, clock=clock, migrate=False)
    try:
        if migrate:
            upgrade_schema(runtime.db)
        check_schema(runtime.db)
    except SQLAlchemyError as exc:
        runtime.close()
        raise DaemonError(
            f"database.url: cannot open the database: {describe_error(exc)} ({config.source})"
        ) from None
    except BaseException:
        runtime.close()
        raise
    return runtime


def run_daemon(
    config: Config,
    *,
    migrate: bool = True,
    options: DaemonOptions | None = None,
    host: str | None = None,
    port: int | None = None,
    clock: Clock = system_clock,
    on_started: Callable[[Daemon], None] | None = None,
    install_signal_handlers: bool = True,
) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit code. Raises `DaemonError` at start-up.

    A SQLite file is locked first, so a second daemon on it stops before touching anything.
    """
    lock = SqliteLock.for_url(config.database.url) if config.database.is_sqlite else None
    if lock is not None:
        lock.acquire()
    try:
        runtime = open_daemon_runtime(config, migrate=migrate, clock=clock)
        daemon = Daemon(runtime, options=options, host=host, port=port, on_started=on_started)
        try:
            code = daemon.run(install_signal_handlers=install_signal_handlers)
        except BaseException:
            if not daemon.stopped.is_set():
                daemon.shutdown()
            raise
    finally:
        if lock is not None:
            lock.release()
    if daemon.incomplete:
        # A unit outlived the timeout: its lease is released, and its worker thread would
        # otherwise hold up the interpreter's exit.
        _flush()
        os._exit(code)
    return code
