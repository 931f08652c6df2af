"""Two daemons on one PostgreSQL database share the work: each source is polled by one of them
per interval, a replica killed with SIGKILL is taken over when its lease runs out, and webhook
deliveries spread over both are each processed exactly once without duplicating a task."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from taskplanner.sandbox.fake_google_calendar import Attendee, FakeGoogleCalendar
from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
    WebhookDelivery,
    WebhookRecorder,
    seed_organisation,
)
from tests.daemon_harness import DaemonProcess, daemon_process, free_port, fresh_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 4.0  # [daemon] lease: how long a dead replica's work waits
POLL = 2.0  # poll_interval of both sources
CALENDARS = ("cora@acme.example", "sam@acme.example")
WEBHOOK_SECRET = "replica-test-webhook-secret"
ENV = {
    "GH_CLIENT_ID": DEFAULT_CLIENT_ID,
    "GH_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "GH_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
DELIVERIES = 1000
CONFLICT = re.compile(r"UniqueViolation|DeadlockDetected|SerializationFailure|LockNotAvailable")


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database: the replicas migrate it themselves, both at once."""
    with fresh_pg_database("taskplanner_replicas") as url:
        yield url


@dataclass
class Providers:
    greenhouse: FakeGreenhouse
    google: FakeGoogleCalendar
    google_key: Path
    job_ids: list[int]
    seeded_applications: list[int]  # there before go-live: their backlog opens at the first sync


@pytest.fixture
def providers(tmp_path: Path) -> Iterator[Providers]:
    with FakeGreenhouse() as greenhouse, FakeGoogleCalendar() as google:
        org = seed_organisation(greenhouse, seed=7, jobs=2, applications_per_job=2)
        key = google.write_service_account_key(tmp_path / "google-key.json")
        for calendar in CALENDARS:
            google.add_calendar(calendar)
            google.add_event(
                calendar,
                start=datetime(2030, 1, 7, 10, tzinfo=UTC),
                end=datetime(2030, 1, 7, 11, tzinfo=UTC),
                attendees=[Attendee(calendar, "accepted", organizer=True)],
            )
        yield Providers(greenhouse, google, key, org.job_ids, org.application_ids)


def write_config(path: Path, *, database_url: str, port: int, providers: Providers) -> Path:
    gh, google = providers.greenhouse, providers.google
    path.write_text(f"""
[organisation]
name = "Acme"
account_owner = "rick@acme.example"

[database]
url = "{database_url}"

[server]
port = {port}

[daemon]
lease = "{int(LEASE)}s"
shutdown_timeout = "5s"

[connectors.greenhouse]
type = "greenhouse"
base_url = "{gh.base_url}"
auth_url = "{gh.auth_url}"
client_id_env = "GH_CLIENT_ID"
client_secret_env = "GH_CLIENT_SECRET"
webhook_secret_env = "GH_WEBHOOK_SECRET"
poll_interval = "{int(POLL)}s"

[connectors.google]
type = "google_calendar"
credentials_file = "{providers.google_key}"
calendars = {list(CALENDARS)!r}
base_url = "{google.url}"
token_url = "{google.token_uri}"
poll_interval = "{int(POLL)}s"
""".replace("'", '"'))
    return path


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as connection:
        return list(connection.execute(sql).fetchall())


def wait_for(what: str, condition: object, timeout: float, explain: object = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except psycopg.Error:
            pass  # the replicas are still migrating
        time.sleep(0.2)
    detail = explain() if callable(explain) else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} {detail}")


APPLICANTS = 100
STAGES = ("Phone Screen", "Technical Interview", "Onsite")


def make_deliveries(providers: Providers) -> list[WebhookDelivery]:
    """Signed Greenhouse deliveries: 100 candidates apply, then each moves stage nine times.

    Every move opens a ``ready_to_schedule`` task and makes the previous one obsolete; in the
    end each application has exactly one open, whatever order the replicas saw things in.
    """
    gh = providers.greenhouse
    with WebhookRecorder() as recorder:
        gh.configure_webhook(recorder.url, WEBHOOK_SECRET)
        applications = []
        for index in range(APPLICANTS):
            job = providers.job_ids[index % len(providers.job_ids)]
            _, application = gh.add_candidate_application(
                job, "Pat", f"Applicant{index}", f"pat.{index}@example.com"
            )
            applications.append((job, application))
        for move in range(DELIVERIES // APPLICANTS - 1):
            for job, application in applications:
                gh.move_application(application, gh.stage_id(job, STAGES[move % len(STAGES)]))
        gh.webhooks_enabled = False
    deliveries = list(gh.webhook_deliveries)
    assert len(deliveries) == DELIVERIES
    return deliveries


class Sender:
    """Posts deliveries to the replicas in turn; a refused one goes to the other replica."""

    def __init__(self, replicas: list[DaemonProcess]) -> None:
        self.replicas = replicas
        self.acknowledged: dict[str, int] = {}
        self.lock = threading.Lock()
        self.local = threading.local()
        self.clients: list[httpx.Client] = []

    def client(self) -> httpx.Client:
        """One keep-alive client per sending thread."""
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=10)
            with self.lock:
                self.clients.append(self.local.client)
        client: httpx.Client = self.local.client
        return client

    def send(self, index: int, delivery: WebhookDelivery) -> None:
        for attempt in range(6):
            replica = self.replicas[(index + attempt) % len(self.replicas)]
            try:
                response = self.client().post(
                    f"{replica.url}/webhooks/greenhouse",
                    content=delivery.body,
                    headers=delivery.headers,
                )
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                with self.lock:
                    self.acknowledged[delivery.event_id] = response.status_code
                return
        raise AssertionError(f"delivery {delivery.event_id} was never acknowledged")

    def send_all(self, deliveries: list[tuple[int, WebhookDelivery]]) -> None:
        try:
            with ThreadPoolExecutor(8) as pool:
                for future in [pool.submit(self.send, i, d) for i, d in deliveries]:
                    future.result()
        finally:
            for client in self.clients:
                client.close()
            self.clients.clear()
            self.local = threading.local()


def test_two_replicas_share_polls_survive_a_kill_and_process_every_delivery_once(
    tmp_path: Path, fresh_database: str, providers: Providers
) -> None:
    gh, google = providers.greenhouse, providers.google
    ports = [free_port(), free_port()]
    configs = [
        write_config(tmp_path / f"replica{i}.toml", database_url=fresh_database, port=port,
                     providers=providers)
        for i, port in enumerate(ports)
    ]
    with (
        daemon_process(["run", "--config", str(configs[0])], port=ports[0], workdir=tmp_path,
                       name="replica0", env=ENV) as first,
        daemon_process(["run", "--config", str(configs[1])], port=ports[1], workdir=tmp_path,
                       name="replica1", env=ENV) as second,
    ):
        replicas = [first, second]
        for replica in replicas:
            replica.wait_until_serving(timeout=60, path="/readyz")
        wait_for(
            "the first sync of both sources",
            lambda: query(
                fresh_database,
                "SELECT count(*) FROM integration_health WHERE last_success_at IS NOT NULL",
            )[0][0] == 2,
            timeout=30,
        )

        # Each source is polled once per interval, by one replica or the other, not by both.
        gh.reset_counters()
        google.reset_counters()
        window = 4 * POLL
        time.sleep(window)
        most = window / POLL + 1
        greenhouse_polls = gh.requests_to("users")  # the first request of every poll
        calendar_polls = [google.request_count(c) for c in CALENDARS]
        assert 2 <= greenhouse_polls <= most, greenhouse_polls
        assert all(2 <= polls <= most for polls in calendar_polls), calendar_polls

        # A poll that hangs mid-page: whoever runs it holds the greenhouse lease, and nobody
        # polls Greenhouse until that replica is gone and its lease has run out.
        gh.slow_next(5 * LEASE, path="/v3/users")
        wait_for("a poll stuck on the slow page", lambda: gh.pending_faults == 0, timeout=30)
        owner = query(
            fresh_database, "SELECT lease_owner FROM sync_sources WHERE connector = 'greenhouse'"
        )[0][0]
        assert isinstance(owner, str)
        victim = next(r for r in replicas if owner.endswith(f":{r.pid}"))
        survivor = next(r for r in replicas if r is not victim)

        # Meanwhile candidates apply and move through the stages: only webhooks tell, at first.
        deliveries = make_deliveries(providers)
        sender = Sender(replicas)
        numbered = list(enumerate(deliveries))
        sender.send_all(numbered[:300])
        killed_at = datetime.now(UTC).replace(tzinfo=None)  # columns hold naive UTC
        victim.process.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        sender.send_all(numbered[300:])

        def taken_over() -> datetime | None:
            for event in survivor.events():
                if event.get("event") == "lease_taken_over" and event["connector"] == "greenhouse":
                    return datetime.fromisoformat(event["timestamp"]).replace(tzinfo=None)
            return None

        wait_for("the survivor to take the greenhouse source over", taken_over, timeout=3 * LEASE)
        takeover = (taken_over() - killed_at).total_seconds()  # type: ignore[operator]
        assert takeover <= LEASE + POLL / 2 + 1.5, takeover

        wait_for(
            "every delivery to be processed",
            lambda: query(fresh_database, "SELECT count(*) FROM inbox WHERE status <> 'done'")[0][0]
            == 0,
            timeout=60,
            explain=lambda: (
                query(fresh_database, "SELECT status, attempts, lease_owner, count(*) FROM inbox "
                      "GROUP BY 1, 2, 3"),
                survivor.logs()[-3000:],
            ),
        )

        assert len(sender.acknowledged) == DELIVERIES
        inbox = query(fresh_database, "SELECT delivery_id, status, attempts FROM inbox")
        assert len(inbox) == DELIVERIES
        assert {row[0] for row in inbox} == set(sender.acknowledged)
        assert {row[1] for row in inbox} == {"done"}
        # A retry is allowed only after a write conflict with the other replica or a poll
        # (its transaction rolled back whole); the task checks below prove one effect each.
        retried = {row[0] for row in inbox if row[2] != 1}
        failures = [
            e for r in replicas for e in r.events() if e.get("event") == "delivery_failed"
        ]
        assert {f["delivery"] for f in failures} == retried
        assert all(CONFLICT.search(f["error"]) for f in failures), failures

        duplicated = query(
            fresh_database,
            "SELECT key, count(*) FROM tasks WHERE status = 'open' "
            "GROUP BY key HAVING count(*) > 1",
        )
        assert duplicated == []
        # A stage visited again is a new task under the same key (the moves cycle through
        # three stages, all within the fake's same second), but no delivery opens two.
        seeded = ", ".join(f"'{a}'" for a in providers.seeded_applications)
        per_application = query(
            fresh_database,
            "SELECT application_id, count(*) FROM tasks WHERE category = 'ready_to_schedule' "
            f"AND application_id NOT IN ({seeded}) GROUP BY 1",
        )
        assert len(per_application) == APPLICANTS
        assert max(int(str(n)) for _, n in per_application) <= DELIVERIES // APPLICANTS
        ready = query(
            fresh_database,
            "SELECT count(*), count(DISTINCT application_id) FROM tasks "
            f"WHERE category = 'ready_to_schedule' AND status = 'open' "
            f"AND application_id NOT IN ({seeded})",
        )[0]
        assert ready[1] == APPLICANTS
        assert ready[0] == APPLICANTS, "one open ready_to_schedule per application"

        survivor.signal(signal.SIGTERM)
        assert survivor.wait(timeout=15) == 0

