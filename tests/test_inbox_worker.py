"""The daemon's inbox worker: deliveries acknowledged by the daemon's web server are processed
by a worker process (or a thread, by configuration), reported in the daemon's metrics, and a
worker that dies is replaced; a daemon killed with SIGKILL leaves no worker behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
    WebhookDelivery,
    WebhookRecorder,
    seed_organisation,
)
from tests.daemon_harness import DaemonProcess, daemon_process, free_port

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "worker-test-webhook-secret"
ENV = {
    "GH_CLIENT_ID": DEFAULT_CLIENT_ID,
    "GH_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "GH_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


@pytest.fixture
def greenhouse() -> Iterator[tuple[FakeGreenhouse, int]]:
    with FakeGreenhouse() as fake:
        org = seed_organisation(fake, seed=3, jobs=1, applications_per_job=0)
        yield fake, org.job_ids[0]


def write_config(path: Path, database: Path, port: int, fake: FakeGreenhouse, mode: str) -> Path:
    path.write_text(f"""
[organisation]
name = "Acme"
account_owner = "rick@acme.example"

[database]
url = "sqlite:///{database}"

[server]
port = {port}

[daemon]
shutdown_timeout = "5s"
inbox_worker = "{mode}"

[rules]
scheduling_stages = ["Phone Screen"]

[connectors.greenhouse]
type = "greenhouse"
base_url = "{fake.base_url}"
auth_url = "{fake.auth_url}"
client_id_env = "GH_CLIENT_ID"
client_secret_env = "GH_CLIENT_SECRET"
webhook_secret_env = "GH_WEBHOOK_SECRET"
poll_interval = "1h"
""")
    return path


def applications(fake: FakeGreenhouse, job: int, first: int, count: int) -> list[WebhookDelivery]:
    """Signed deliveries of ``count`` new applications in Phone Screen (not sent yet)."""
    phone = fake.stage_id(job, "Phone Screen")
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
        for n in range(first, first + count):
            fake.add_candidate_application(job, "Pat", f"W{n}", f"w{n}@example.com", stage_id=phone)
    return fake.webhook_deliveries[-count:]


def post_all(daemon: DaemonProcess, deliveries: list[WebhookDelivery]) -> None:
    def post(delivery: WebhookDelivery) -> int:
        response = httpx.post(
            f"{daemon.url}/webhooks/greenhouse",
            content=delivery.body,
            headers=delivery.headers,
            timeout=10,
        )
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, deliveries)) == {200}


def scalar(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(sql).fetchone()[0])


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def processed_metric(daemon: DaemonProcess) -> float:
    text = httpx.get(f"{daemon.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("taskplanner_inbox_deliveries_processed_total{") and (
            'result="done"' in line and 'connector="greenhouse"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def worker_pids(daemon: DaemonProcess) -> list[int]:
    return [
        int(e["pid"]) for e in daemon.events() if e.get("event") == "inbox_worker_started"
    ]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_webhooks_are_processed_and_counted_by_the_daemon(
    tmp_path: Path, greenhouse: tuple[FakeGreenhouse, int], mode: str
) -> None:
    fake, job = greenhouse
    database, port = tmp_path / "taskplanner.db", free_port()
    config = write_config(tmp_path / "config.toml", database, port, fake, mode)
    with daemon_process(
        ["run", "--config", str(config)], port=port, workdir=tmp_path, env=ENV
    ) as daemon:
        daemon.wait_until_serving()
        wait_for("the first sync", lambda: scalar(database, "SELECT count(*) FROM stages") > 0)

        post_all(daemon, applications(fake, job, 0, 60))

        wait_for(
            "every delivery to be processed",
            lambda: scalar(database, "SELECT count(*) FROM inbox WHERE status = 'done'") == 60,
        )
        open_tasks = "SELECT count(*) FROM tasks WHERE category = 'ready_to_schedule'"
        assert scalar(database, open_tasks) == 60
        wait_for("the metrics to count them", lambda: processed_metric(daemon) == 60, timeout=5)
        assert len(worker_pids(daemon)) == (1 if mode == "process" else 0)

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_dead_worker_is_replaced_and_a_killed_daemon_leaves_no_worker(
    tmp_path: Path, greenhouse: tuple[FakeGreenhouse, int]
) -> None:
    fake, job = greenhouse
    database, port = tmp_path / "taskplanner.db", free_port()
    config = write_config(tmp_path / "config.toml", database, port, fake, "process")
    with daemon_process(
        ["run", "--config", str(config)], port=port, workdir=tmp_path, env=ENV
    ) as daemon:
        daemon.wait_until_serving()
        wait_for("the first sync", lambda: scalar(database, "SELECT count(*) FROM stages") > 0)
        (first,) = worker_pids(daemon)
        assert first in children(daemon.pid)

        os.kill(first, signal.SIGKILL)  # while it waits for work
        # Waking a dead worker must not hang the server (multiprocessing.Event.set() would
        # wait for the dead waiter forever): this delivery is acknowledged at once.
        (early,) = applications(fake, job, 100, 1)
        answer = httpx.post(
            f"{daemon.url}/webhooks/greenhouse", content=early.body, headers=early.headers,
            timeout=10,
        )
        assert answer.status_code == 200
        wait_for("a new worker", lambda: len(worker_pids(daemon)) == 2)
        assert any(e.get("event") == "inbox_worker_died" for e in daemon.events())
        second = worker_pids(daemon)[-1]
        assert second != first and second in children(daemon.pid)

        post_all(daemon, applications(fake, job, 0, 20))
        wait_for(
            "the new worker to process them (and the one that came meanwhile)",
            lambda: scalar(database, "SELECT count(*) FROM inbox WHERE status = 'done'") == 21,
        )

        daemon.process.kill()  # SIGKILL: no shutdown, no chance to stop the worker
        daemon.process.wait(timeout=10)
        wait_for("the worker to go with the daemon", lambda: not alive(second), timeout=10)
