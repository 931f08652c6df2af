"""``taskplanner sandbox``: the real daemon on a generated organisation, served by loopback fakes.

Starts a fake ATS (``--ats``, Greenhouse by default, as the provider registry finds it) and the
fake Google Calendar, fills them (`SandboxOrganisation`), builds the configuration in Python
(secrets included, no environment needed) and runs the daemon. After the first ATS sync — the
baseline, which opens only the backlog of tasks that describe a state (go-live) — the fake
starts sending signed webhooks and the organisation changes on a timer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from taskplanner.config import Config, parse_config
from taskplanner.daemon import Daemon, DaemonError, DaemonOptions, SqliteLock, run_daemon
from taskplanner.providers import ATS_TYPES, PROVIDERS
from taskplanner.sandbox.fake_ats import ConnectorSettings, FakeATS
from taskplanner.sandbox.fake_google_calendar import FakeGoogleCalendar
from taskplanner.sandbox.organisation import PEOPLE, SCHEDULING_STAGES, SandboxOrganisation
from taskplanner.store.database import transaction
from taskplanner.sync import last_success

log = structlog.get_logger("taskplanner.sandbox")

# SQLite's header field for "which application made this file": "TPSB".
SANDBOX_APPLICATION_ID = 0x54505342
WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - a loopback fake's fixed secret
DEFAULT_ATS = ATS_TYPES[0]
# Seconds instead of minutes, so a newcomer sees the whole life of a task in a minute.
SANDBOX_OPTIONS = DaemonOptions(
    sync_tick=1.0,
    inbox_idle=1.0,
    sweep_every=timedelta(seconds=5),
    renew_every=timedelta(minutes=5),
)


def sandbox_config(
    *,
    ats: ConnectorSettings,
    google: FakeGoogleCalendar,
    google_key: Path,
    calendars: list[str],
    database: Path,
    port: int,
    seed: int,
) -> Config:
    """The sandbox organisation's configuration, as a TOML file would say it; the ATS
    connector is named after its type (``[connectors.greenhouse]``), its secrets are the
    sandbox's whole "environment"."""
    ats_name = str(ats.table["type"])
    data: dict[str, Any] = {
        "organisation": {
            "name": f"Acme Sandbox (seed {seed})",
            "account_owner": PEOPLE[0].email,
            "timezone": "Europe/Berlin",
        },
        "database": {"url": f"sqlite:///{database.resolve()}"},
        "server": {"host": "127.0.0.1", "port": port},
        "daemon": {"lease": "15s", "shutdown_timeout": "5s"},
        "rules": {
            "evaluation_due_after": "30s",
            "job_live_within": "20s",
            "inactivity_after": "40s",
            "scheduling_stages": list(SCHEDULING_STAGES),
            "integration_failure_threshold": 2,
        },
        "people": [
            {"email": p.email, "name": p.name, "role": p.role} for p in PEOPLE
        ],
        "connectors": {
            ats_name: {**ats.table, "poll_interval": "3s"},
            "google": {
                "type": "google_calendar",
                "credentials_file": str(google_key),
                "calendars": calendars,
                "base_url": google.url,
                "token_url": google.token_uri,
                "poll_interval": "3s",
            },
        },
    }
    return parse_config(data, environ=ats.environ)


def prepare_database(path: Path) -> None:
    """Start from an empty file: the fakes are generated anew, ids and all.

    Only a file the sandbox made is replaced (it carries SANDBOX_APPLICATION_ID), so a
    mistyped ``--db`` never wipes a real database; nor while a daemon runs on it.
    """
    if path.exists() and _application_id(path) != SANDBOX_APPLICATION_ID:
        raise DaemonError(
            f"--db: {path} exists and is not a sandbox database; choose another file"
        )
    lock = SqliteLock.for_url(f"sqlite:///{path.resolve()}")
    if lock is not None:
        lock.acquire()
    try:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute(f"PRAGMA application_id = {SANDBOX_APPLICATION_ID}")
            connection.commit()
    finally:
        if lock is not None:
            lock.release()


def _application_id(path: Path) -> int | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            return int(connection.execute("PRAGMA application_id").fetchone()[0])
    except sqlite3.DatabaseError:
        return None


class Timeline:
    """Waits for the baseline sync, turns webhooks on, then applies the changes on a timer."""

    def __init__(
        self, organisation: SandboxOrganisation, ats: FakeATS[Any], connector: str
    ) -> None:
        self.organisation = organisation
        self.ats = ats
        self.connector = connector
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, daemon: Daemon) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(daemon,), name="sandbox-timeline", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, daemon: Daemon) -> None:
        if not self._wait_for_baseline(daemon):
            return
        webhooks = f"{daemon.url}/webhooks/{self.connector}"
        self.ats.configure_webhook(webhooks, WEBHOOK_SECRET)
        log.info("sandbox_baseline_synced", webhooks=webhooks)
        for change in self.organisation.changes():
            if self.stopping.wait(change.after) or daemon.stopping.is_set():
                return
            try:
                change.apply()
            except Exception:  # noqa: BLE001 - one odd change must not end the sandbox
                log.exception("sandbox_change_failed", change=change.description)
            else:
                log.info("sandbox_change", change=change.description)

    def _wait_for_baseline(self, daemon: Daemon) -> bool:
        while not self.stopping.wait(0.2):
            if daemon.stopping.is_set():
                return False
            try:
                with transaction(daemon.runtime.db, read_only=True) as session:
                    if last_success(session, self.connector) is not None:
                        return True
            except Exception:  # noqa: BLE001, S112 - the database is being created; try again
                continue
        return False


def sandbox_unavailable(ats: str) -> str | None:
    """Why ``--ats ats`` cannot run here (one line), or None when it can."""
    provider = PROVIDERS.get(ats)
    if provider is None or not provider.is_ats:
        return f"--ats: unknown ATS {ats!r} (one of: {', '.join(ATS_TYPES)})"
    reason = provider.unavailable_reason()
    if reason is None and not provider.fake_available:
        reason = f"there is no fake {provider.display_name} in this version of taskplanner"
    return f"--ats {ats}: {reason}" if reason else None


def run_sandbox(
    *,
    seed: int = 1,
    port: int = 8080,
    db_path: Path = Path("taskplanner-sandbox.db"),
    ats: str = DEFAULT_ATS,
    options: DaemonOptions = SANDBOX_OPTIONS,
) -> int:
    """Run until SIGTERM/SIGINT; the exit code. Raises DaemonError when it cannot start
    (`sandbox_unavailable` says beforehand whether ``ats`` can run)."""
    unavailable = sandbox_unavailable(ats)
    if unavailable is not None:
        raise DaemonError(unavailable)
    provider = PROVIDERS[ats]
    fake: FakeATS[Any] = provider.fake_class()(async_webhooks=True).start()
    google = FakeGoogleCalendar().start()
    timeline: Timeline | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="taskplanner-sandbox-") as keys:
            google_key = google.write_service_account_key(Path(keys) / "google-key.json")
            organisation = SandboxOrganisation(fake, google, seed=seed)
            organisation.build()
            config = sandbox_config(
                ats=fake.connector_settings(WEBHOOK_SECRET),
                google=google,
                google_key=google_key,
                calendars=organisation.calendars,
                database=db_path,
                port=port,
                seed=seed,
            )
            prepare_database(db_path)
            timeline = Timeline(organisation, fake, ats)

            def started(daemon: Daemon) -> None:
                assert timeline is not None  # noqa: S101 - set just above
                print(  # noqa: T201 - the one line a newcomer needs
                    f"taskplanner sandbox (seed {seed}): open {daemon.url}  "
                    f"(fake {provider.display_name} {fake.base_url}, "
                    f"fake Google Calendar {google.url}; "
                    "Ctrl-C to stop)",
                    flush=True,
                )
                timeline.start(daemon)

            return run_daemon(config, options=options, on_started=started)
    finally:
        if timeline is not None:
            timeline.stop()
        fake.stop()
        google.stop()
