"""The daemon's parts an operator relies on: who may listen where, leases shared by replicas,
heartbeats and their release, polls that stop between pages, secret-free logs, the one-daemon
lock of SQLite, the schema check, and ``taskplanner status``."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine
from typer.testing import CliRunner

from connectors.base import PollPage
from taskplanner import health
from taskplanner.cli import app
from taskplanner.clock import FrozenClock
from taskplanner.config import parse_config
from taskplanner.daemon import (
    DaemonError,
    PeriodicLease,
    SqliteLock,
    _StoppablePolls,
    extend_leases,
    listen_address,
    open_daemon_runtime,
    release_leases,
)
from taskplanner.domain.categories import OpenTask, TaskRefs
from taskplanner.inbox import store_delivery
from taskplanner.logsetup import configure_logging
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction

# --------------------------------------------------------------------------- listening


def runtime_with_server(tmp_path: Path, **server: Any) -> Runtime:
    config = parse_config(
        {
            "organisation": {"name": "Acme", "account_owner": "ada@acme.example"},
            "database": {"url": f"sqlite:///{tmp_path / 'tp.db'}"},
            "server": server,
        },
        environ={"TP_TOKENS": "token-one,token-two"},
    )
    return Runtime.from_config(config)


def test_without_api_tokens_a_public_address_is_replaced_by_loopback(tmp_path: Path) -> None:
    runtime = runtime_with_server(tmp_path, host="0.0.0.0")  # noqa: S104 - what is refused
    try:
        assert listen_address(runtime) == "127.0.0.1"
        assert listen_address(runtime, "localhost") == "localhost"
        assert listen_address(runtime, "::1") == "::1"
    finally:
        runtime.close()


def test_with_api_tokens_the_configured_address_is_kept(tmp_path: Path) -> None:
    runtime = runtime_with_server(tmp_path, host="0.0.0.0", api_tokens_env="TP_TOKENS")  # noqa: S104
    try:
        assert listen_address(runtime) == "0.0.0.0"  # noqa: S104
    finally:
        runtime.close()


# --------------------------------------------------------------------------- leases


def make_lease(db: Engine, owner: str, clock: FrozenClock) -> PeriodicLease:
    return PeriodicLease(
        db, "_sweep", timedelta(minutes=1), owner, timedelta(seconds=30), clock
    )


def test_a_periodic_job_runs_once_per_interval_across_replicas(
    db: Engine, clock: FrozenClock
) -> None:
    first, second = make_lease(db, "a:1", clock), make_lease(db, "b:2", clock)
    first.ensure()
    second.ensure()
    assert first.claim()
    assert not second.claim()  # held
    first.release(done=True)
    assert not second.claim()  # done for this minute
    clock.advance(timedelta(seconds=61))
    assert second.claim()
    assert not first.claim()


def test_a_dead_replicas_periodic_job_is_taken_over_when_its_lease_runs_out(
    db: Engine, clock: FrozenClock
) -> None:
    first, second = make_lease(db, "a:1", clock), make_lease(db, "b:2", clock)
    first.ensure()
    assert first.claim()  # ... and the replica dies without releasing
    clock.advance(timedelta(seconds=29))
    assert not second.claim()
    clock.advance(timedelta(seconds=2))
    assert second.claim()


def test_heartbeat_extends_what_a_replica_holds_and_release_gives_it_back(
    db: Engine, clock: FrozenClock
) -> None:
    now = clock()
    with transaction(db) as session:
        session.add(m.SyncSource(connector="greenhouse", lease_owner="a:1",
                                 lease_expires_at=now + timedelta(seconds=5),
                                 next_due_at=now - timedelta(seconds=1)))
        session.add(m.SyncSource(connector="google", lease_owner="b:2",
                                 lease_expires_at=now + timedelta(seconds=5)))
        stored = [
            store_delivery(session, connector="greenhouse", delivery_id=f"d{i}", headers={},
                           body=b"{}", now=now).id
            for i in range(3)
        ]
    with transaction(db) as session:
        for inbox_id in stored[:2]:
            row = session.get(m.InboxDelivery, inbox_id)
            assert row is not None
            row.lease_owner, row.lease_expires_at = "a:1", now + timedelta(seconds=5)

    extend_leases(db, "a:1", timedelta(seconds=30), now)
    with transaction(db, read_only=True) as session:
        assert session.get(m.SyncSource, "greenhouse").lease_expires_at == now + timedelta(  # type: ignore[union-attr]
            seconds=30
        )
        assert session.get(m.SyncSource, "google").lease_expires_at == now + timedelta(  # type: ignore[union-attr]
            seconds=5
        )
        assert [session.get(m.InboxDelivery, i).lease_expires_at for i in stored] == [  # type: ignore[union-attr]
            now + timedelta(seconds=30), now + timedelta(seconds=30), None
        ]

    release_leases(db, "a:1", stored[:1])
    with transaction(db, read_only=True) as session:
        assert [session.get(m.InboxDelivery, i).lease_owner for i in stored] == [  # type: ignore[union-attr]
            None, "a:1", None
        ]
    release_leases(db, "a:1")
    with transaction(db, read_only=True) as session:
        greenhouse = session.get(m.SyncSource, "greenhouse")
        assert greenhouse is not None
        assert (greenhouse.lease_owner, greenhouse.lease_expires_at) == (None, None)
        # Interrupted mid-poll: still due, so the next replica polls it at once.
        assert greenhouse.next_due_at == now - timedelta(seconds=1)
        assert session.get(m.SyncSource, "google").lease_owner == "b:2"  # type: ignore[union-attr]
        assert session.get(m.InboxDelivery, stored[1]).lease_owner is None  # type: ignore[union-attr]


# --------------------------------------------------------------------------- shutdown


class ThreePages:
    name = "greenhouse"

    def __init__(self) -> None:
        self.closed = False

    def poll(self, cursors: dict[str, str], **_: Any) -> Iterator[PollPage]:
        try:
            for number in range(3):
                yield PollPage(partition="applications", cursor=str(number))
        finally:
            self.closed = True


def test_a_poll_stops_after_the_page_in_hand_once_shutdown_begins() -> None:
    stopping = threading.Event()
    connector = ThreePages()
    pages = _StoppablePolls(connector, stopping).poll({})
    assert next(pages).cursor == "0"
    stopping.set()
    assert list(pages) == []
    assert connector.closed
    assert _StoppablePolls(connector, stopping).name == "greenhouse"


# --------------------------------------------------------------------------- logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.parametrize("as_json", [True, False])
def test_log_lines_never_carry_secrets(as_json: bool, restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", json=as_json, stream=stream)
    log = structlog.get_logger("taskplanner.test")
    log.info(
        "connector_configured",
        client_secret="s3cr3t-value",
        database="postgresql+psycopg://tp:db-pass-123@db.internal/tp",
        header="Bearer tok.en-456",
        connector="greenhouse",
    )
    logging.getLogger("uvicorn.error").warning("smtp://mailer:mail-pass-789@smtp.example:587")
    log.debug("not shown at info")
    text = stream.getvalue()
    for secret in ("s3cr3t-value", "db-pass-123", "tok.en-456", "mail-pass-789"):
        assert secret not in text
    assert "greenhouse" in text
    assert "not shown" not in text
    if as_json:
        first = json.loads(text.splitlines()[0])
        assert first["event"] == "connector_configured"
        assert first["client_secret"] == "***"
        assert first["level"] == "info"
        assert "timestamp" in first


def test_an_unknown_log_level_is_refused_by_the_command_line() -> None:
    result = CliRunner().invoke(app, ["run", "--log-level", "loud", "--config", "/nonexistent"])
    assert result.exit_code == 2


# --------------------------------------------------------------------------- start-up


def sqlite_config(path: Path) -> Any:
    return parse_config(
        {
            "organisation": {"name": "Acme", "account_owner": "ada@acme.example"},
            "database": {"url": f"sqlite:///{path}"},
        }
    )


def test_one_sqlite_file_takes_one_daemon(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tp.db'}"
    first, second = SqliteLock.for_url(url), SqliteLock.for_url(url)
    assert first is not None and second is not None
    first.acquire()
    try:
        with pytest.raises(DaemonError, match="another taskplanner daemon .* is already running"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()
    assert SqliteLock.for_url("sqlite:///:memory:") is None


def test_without_migrations_a_behind_schema_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match="taskplanner db upgrade"):
        open_daemon_runtime(sqlite_config(tmp_path / "empty.db"), migrate=False)
    open_daemon_runtime(sqlite_config(tmp_path / "empty.db"), migrate=True).close()


# --------------------------------------------------------------------------- status


def write_config(path: Path, database_url: str) -> Path:
    path.write_text(f"""
[organisation]
name = "Acme"
account_owner = "ada@acme.example"

[database]
url = "{database_url}"

[connectors.greenhouse]
type = "greenhouse"
base_url = "http://127.0.0.1:9"
auth_url = "http://127.0.0.1:9"
client_id_env = "GH_ID"
client_secret_env = "GH_SECRET"
""")
    return path


def test_status_shows_integrations_inbox_and_open_tasks_at_a_glance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_ID", "id")
    monkeypatch.setenv("GH_SECRET", "secret")
    config = write_config(tmp_path / "tp.toml", f"sqlite:///{tmp_path / 'tp.db'}")
    runtime = Runtime.from_config(sqlite_config(tmp_path / "tp.db"))
    now = runtime.clock()
    with transaction(runtime.db) as session:
        events = health.record_failure(session, "greenhouse", "greenhouse: rejected (HTTP 401)",
                                       now, fatal=True, threshold=3)
        runtime.pipeline.handle(session, events)
        for index in range(2):
            store_delivery(session, connector="greenhouse", delivery_id=f"d{index}",
                           headers={}, body=b"{}", now=now - timedelta(minutes=3))
        runtime.pipeline.tasks.open(
            session,
            OpenTask("new_job", key="new_job:j1", title="Set up Engineer",
                     refs=TaskRefs(job_id="j1")),
            actor="test",
        )
    runtime.close()

    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "taskplanner: ready"
    assert "(migrations current)" in lines[1]
    greenhouse = next(line for line in lines if line.strip().startswith("greenhouse"))
    assert "broken" in greenhouse and "HTTP 401" in greenhouse
    assert "inbox: 2 pending, oldest waiting 3m" in result.output
    assert "open tasks: 2" in result.output
    assert any(line.split()[:2] == ["broken_integration", "1"] for line in lines)
    assert any(line.split()[:2] == ["new_job", "1"] for line in lines)


def test_status_exits_1_when_the_database_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_ID", "id")
    monkeypatch.setenv("GH_SECRET", "secret")
    config = write_config(
        tmp_path / "tp.toml", "postgresql+psycopg://tp:hidden-pw@127.0.0.1:9/tp"
    )
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith("taskplanner: NOT READY")
    assert "unreachable" in result.output
    assert "hidden-pw" not in result.output
