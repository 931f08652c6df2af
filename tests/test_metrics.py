"""What an operator scrapes and probes: /metrics parses as Prometheus text and its counters move
as deliveries arrive; /readyz says 503 while the database is away and 200 once it is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskplanner.config import Config, parse_config
from taskplanner.daemon import Daemon
from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
    SeededOrganisation,
    WebhookRecorder,
    seed_organisation,
)
from tests.daemon_harness import TcpProxy, fresh_pg_database, running_daemon

WEBHOOK_SECRET = "metrics-test-webhook-secret"


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels), parsed by prometheus-client."""
    response = httpx.get(daemon.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def config(database_url: str, connectors: dict[str, Any] | None = None) -> Config:
    return parse_config(
        {
            "organisation": {"name": "Acme", "account_owner": "rick@acme.example"},
            "database": {"url": database_url},
            "daemon": {"lease": "10s", "shutdown_timeout": "5s"},
            "connectors": connectors or {},
        },
        environ={
            "GH_ID": DEFAULT_CLIENT_ID,
            "GH_SECRET": DEFAULT_CLIENT_SECRET,
            "GH_HOOK": WEBHOOK_SECRET,
        },
    )


def greenhouse_connector(fake: FakeGreenhouse) -> dict[str, Any]:
    """[connectors.greenhouse] against the fake, polling hourly (the tests drive webhooks)."""
    return {
        "greenhouse": {
            "type": "greenhouse",
            "base_url": fake.base_url,
            "auth_url": fake.auth_url,
            "client_id_env": "GH_ID",
            "client_secret_env": "GH_SECRET",
            "webhook_secret_env": "GH_HOOK",
            "poll_interval": "1h",
        }
    }


@pytest.fixture
def greenhouse() -> Iterator[tuple[FakeGreenhouse, SeededOrganisation]]:
    with FakeGreenhouse() as fake:
        yield fake, seed_organisation(fake, seed=11, jobs=1, applications_per_job=1)


def test_metrics_parse_and_their_counters_move_as_deliveries_arrive(
    tmp_path: Path, greenhouse: tuple[FakeGreenhouse, SeededOrganisation]
) -> None:
    fake, org = greenhouse
    connectors = greenhouse_connector(fake)
    with running_daemon(config(f"sqlite:///{tmp_path / 'tp.db'}", connectors)) as daemon:
        eventually(
            lambda: value(scrape(daemon), "taskplanner_sync_duration_seconds_count",
                          connector="greenhouse") == 1,
            "the first (baseline) poll",
        )
        before = scrape(daemon)
        assert value(before, "taskplanner_provider_requests_total", connector="greenhouse") > 0
        # Go-live: the seeded candidate already waiting in a scheduling stage, if any.
        waiting = value(before, "taskplanner_open_tasks", category="ready_to_schedule")
        assert waiting in (0, 1)

        fake.configure_webhook(f"{daemon.url}/webhooks/greenhouse", WEBHOOK_SECRET)
        job = org.job_ids[0]
        applications = [
            fake.add_candidate_application(job, "Pat", f"Tester{i}", f"pat{i}@example.com")[1]
            for i in range(3)
        ]
        fake.move_application(applications[0], fake.stage_id(job, "Phone Screen"))
        fake.redeliver(fake.webhook_deliveries[0])
        rejected = httpx.post(f"{daemon.url}/webhooks/greenhouse", content=b"{}",
                              headers={"Signature": "sha256 0000"}, timeout=10)
        assert rejected.status_code == 401

        def processed() -> bool:
            after = scrape(daemon)
            return value(after, "taskplanner_inbox_deliveries_processed_total",
                         connector="greenhouse", result="done") == 4

        eventually(processed, "four deliveries processed")
        after = scrape(daemon)
        received = "taskplanner_webhook_deliveries_received_total"
        assert value(after, received, connector="greenhouse", outcome="accepted") == 4
        assert value(after, received, connector="greenhouse", outcome="duplicate") == 1
        assert value(after, received, connector="greenhouse", outcome="rejected") == 1
        assert value(after, "taskplanner_open_tasks", category="ready_to_schedule") == waiting + 1
        assert value(after, "taskplanner_inbox_deliveries", status="done") == 4
        assert value(after, "taskplanner_inbox_lag_seconds") == 0
        assert value(after, "taskplanner_integration_state", connector="greenhouse",
                     state="ok") == 1


@pytest.mark.postgres
def test_readyz_is_503_while_the_database_is_away_and_200_again_without_a_restart(
    greenhouse: tuple[FakeGreenhouse, SeededOrganisation],
) -> None:
    fake, org = greenhouse
    connectors = greenhouse_connector(fake)
    with WebhookRecorder() as recorder:
        fake.configure_webhook(recorder.url, WEBHOOK_SECRET)
        fake.add_candidate_application(org.job_ids[0], "Pat", "Offline", "pat@example.com")
    (delivery,) = recorder.received
    with fresh_pg_database("taskplanner_readyz") as url:
        proxy = TcpProxy(("127.0.0.1", 5432)).start()
        try:
            proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            assert proxied != url
            with running_daemon(config(proxied, connectors)) as daemon:
                hook = f"{daemon.url}/webhooks/greenhouse"
                ready = httpx.get(daemon.url + "/readyz", timeout=10)
                assert ready.status_code == 200
                assert ready.json()["database"] == "ok"

                proxy.cut()
                eventually(
                    lambda: httpx.get(daemon.url + "/readyz", timeout=15).status_code == 503,
                    "readyz to notice the database is gone",
                )
                down = httpx.get(daemon.url + "/readyz", timeout=15).json()
                assert down["database"].startswith("unreachable")
                assert httpx.get(daemon.url + "/healthz", timeout=5).status_code == 200
                assert httpx.get(daemon.url + "/metrics", timeout=15).status_code == 200
                # A webhook meanwhile is not acknowledged, so the provider sends it again.
                refused = httpx.post(
                    hook, content=delivery.body, headers=delivery.headers, timeout=30
                )
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "30"

                proxy.restore()
                eventually(
                    lambda: httpx.get(daemon.url + "/readyz", timeout=15).status_code == 200,
                    "readyz to see the database again",
                )
                again = httpx.post(hook, content=delivery.body, headers=delivery.headers)
                assert again.status_code == 200 and again.json()["status"] == "accepted"
        finally:
            proxy.cut()
