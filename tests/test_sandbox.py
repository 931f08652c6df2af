"""What a newcomer and an operator see of the process: the sandbox's tasks appear and close by
themselves, SIGTERM stops cleanly, a second signal stops at once, and SQLite runs one daemon."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskplanner.daemon import DaemonError
from taskplanner.providers import ATS_TYPES, sandbox_types
from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
    seed_organisation,
)
from taskplanner.sandbox.run import prepare_database
from tests.daemon_harness import cli_command, cli_env, daemon_process, free_port

pytestmark = pytest.mark.slow

AUTO_RESOLUTIONS = {"action_taken", "obsolete"}


def all_tasks(url: str) -> list[dict[str, object]]:
    response = httpx.get(f"{url}/api/tasks", params={"status": "all", "limit": 200}, timeout=10)
    response.raise_for_status()
    tasks: list[dict[str, object]] = response.json()["tasks"]
    return tasks


@pytest.mark.parametrize("ats", sandbox_types())
def test_sandbox_shows_tasks_appearing_and_closing_by_themselves_then_stops_on_sigterm(
    tmp_path: Path, ats: str
) -> None:
    port = free_port()
    args = ["sandbox", "--seed", "1", "--port", str(port), "--db", str(tmp_path / "sandbox.db")]
    args += ["--ats", ats]
    with daemon_process(args, port=port, workdir=tmp_path, name="sandbox") as sandbox:
        sandbox.wait_until_serving(timeout=60)
        categories: set[object] = set()
        closed: list[dict[str, object]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            tasks = all_tasks(sandbox.url)
            categories = {t["category"] for t in tasks}
            closed = [
                t
                for t in tasks
                if t["status"] == "completed" and t["resolution"] in AUTO_RESOLUTIONS
            ]
            if len(categories) >= 4 and closed:
                break
            time.sleep(1)
        assert len(categories) >= 4, f"only {sorted(map(str, categories))}"
        assert closed, "no task closed by itself"
        assert f"open http://127.0.0.1:{port}" in sandbox.output()
        assert httpx.get(sandbox.url + "/", timeout=10, follow_redirects=True).status_code == 200

        sandbox.signal(signal.SIGTERM)
        asked = time.monotonic()
        assert sandbox.wait(timeout=10) == 0
        assert time.monotonic() - asked < 10
    events = {e.get("event") for e in sandbox.events()}
    assert {"shutdown_requested", "daemon_stopped"} <= events


@pytest.mark.parametrize("ats", [t for t in ATS_TYPES if t not in sandbox_types()])
def test_the_sandbox_refuses_an_ats_it_cannot_run_in_one_line(tmp_path: Path, ats: str) -> None:
    database = tmp_path / "sandbox.db"
    refused = subprocess.run(
        cli_command("sandbox", "--ats", ats, "--port", str(free_port()), "--db", str(database)),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"--ats {ats}: ") and refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr and not database.exists()


def test_the_sandbox_never_empties_a_database_it_did_not_make(tmp_path: Path) -> None:
    real = tmp_path / "taskplanner.db"
    with sqlite3.connect(real) as connection:
        connection.execute("CREATE TABLE tasks (id INTEGER)")
    with pytest.raises(DaemonError, match="is not a sandbox database"):
        prepare_database(real)
    with sqlite3.connect(real) as connection:
        assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (0,)

    sandbox = tmp_path / "sandbox.db"
    prepare_database(sandbox)
    with sqlite3.connect(sandbox) as connection:
        connection.execute("CREATE TABLE leftovers (id INTEGER)")
    prepare_database(sandbox)  # its own file: emptied again
    with sqlite3.connect(sandbox) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


# --------------------------------------------------------------------------- signals


GH_ENV = {
    "GH_CLIENT_ID": DEFAULT_CLIENT_ID,
    "GH_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
}


def write_config(
    path: Path,
    *,
    database: Path,
    port: int,
    greenhouse: FakeGreenhouse | None = None,
    shutdown_timeout: str = "20s",
) -> Path:
    text = f"""
[organisation]
name = "Acme"
account_owner = "ada@acme.example"

[database]
url = "sqlite:///{database}"

[server]
port = {port}

[daemon]
lease = "10s"
shutdown_timeout = "{shutdown_timeout}"
"""
    if greenhouse is not None:
        text += f"""
[connectors.greenhouse]
type = "greenhouse"
base_url = "{greenhouse.base_url}"
auth_url = "{greenhouse.auth_url}"
client_id_env = "GH_CLIENT_ID"
client_secret_env = "GH_CLIENT_SECRET"
poll_interval = "1h"
"""
    path.write_text(text)
    return path


@pytest.fixture
def slow_greenhouse() -> Iterator[FakeGreenhouse]:
    """A Greenhouse whose next list request takes half a minute: a poll stuck mid-page."""
    with FakeGreenhouse() as fake:
        seed_organisation(fake, seed=3, jobs=1, applications_per_job=1)
        fake.slow_next(30, path="/v3/users")
        yield fake


def lease_owner(database: Path, source: str) -> str | None:
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            "SELECT lease_owner FROM sync_sources WHERE connector = ?", (source,)
        ).fetchone()
    return row[0] if row else None


def wait_for_lease(database: Path, source: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if database.exists():
            try:
                owner = lease_owner(database, source)
            except sqlite3.OperationalError:  # not migrated yet
                owner = None
            if owner:
                return owner
        time.sleep(0.2)
    raise AssertionError(f"nobody claimed {source} within {timeout}s")


def test_sigterm_during_a_stuck_poll_gives_the_lease_back_and_exits_0_within_the_timeout(
    tmp_path: Path, slow_greenhouse: FakeGreenhouse
) -> None:
    port, database = free_port(), tmp_path / "taskplanner.db"
    config = write_config(
        tmp_path / "taskplanner.toml",
        database=database,
        port=port,
        greenhouse=slow_greenhouse,
        shutdown_timeout="2s",
    )
    with daemon_process(["run", "--config", str(config)], port=port, workdir=tmp_path,
                        env=GH_ENV) as daemon:
        daemon.wait_until_serving()
        assert wait_for_lease(database, "greenhouse").endswith(f":{daemon.pid}")
        daemon.signal(signal.SIGTERM)
        asked = time.monotonic()
        assert daemon.wait(timeout=10) == 0
        assert time.monotonic() - asked < 6
    assert lease_owner(database, "greenhouse") is None
    events = [e.get("event") for e in daemon.events()]
    assert "shutdown_incomplete" in events  # the page never came back; its lease did


def test_a_second_sigint_exits_at_once_while_shutdown_waits_for_work(
    tmp_path: Path, slow_greenhouse: FakeGreenhouse
) -> None:
    port, database = free_port(), tmp_path / "taskplanner.db"
    config = write_config(
        tmp_path / "taskplanner.toml", database=database, port=port, greenhouse=slow_greenhouse
    )
    with daemon_process(["run", "--config", str(config)], port=port, workdir=tmp_path,
                        env=GH_ENV) as daemon:
        daemon.wait_until_serving()
        wait_for_lease(database, "greenhouse")
        daemon.signal(signal.SIGINT)
        time.sleep(1.5)
        assert daemon.alive(), "the first SIGINT should wait for the poll in progress"
        daemon.signal(signal.SIGINT)
        asked = time.monotonic()
        assert daemon.wait(timeout=5) == 128 + signal.SIGINT
        assert time.monotonic() - asked < 3
    assert "shutdown_forced" in [e.get("event") for e in daemon.events()]


# --------------------------------------------------------------------------- SQLite


def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    port, database = free_port(), tmp_path / "taskplanner.db"
    first = write_config(tmp_path / "first.toml", database=database, port=port)
    second = write_config(tmp_path / "second.toml", database=database, port=free_port())
    with daemon_process(["run", "--config", str(first)], port=port, workdir=tmp_path) as daemon:
        daemon.wait_until_serving()
        refused = subprocess.run(
            cli_command("run", "--config", str(second)),
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1
        assert f"another taskplanner daemon (pid {daemon.pid})" in refused.stderr
        assert "use PostgreSQL to run several replicas" in refused.stderr
        assert httpx.get(daemon.url + "/healthz", timeout=5).status_code == 200
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
