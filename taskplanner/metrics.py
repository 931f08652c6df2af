"""Prometheus metrics: counters moved by the daemon, gauges read from the database on scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from taskplanner.clock import Clock
from taskplanner.domain.categories import CATEGORY_NAMES
from taskplanner.engine import OPEN
from taskplanner.inbox import PENDING, oldest_pending_age
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.sync import SyncReport

log = structlog.get_logger("taskplanner.metrics")
HEALTH_STATES = ("ok", "failing", "broken")


class DatabaseCollector(Collector):
    """Open tasks, task age, inbox lag and integration state, read at scrape time."""

    def __init__(self, db: Engine, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        try:
            with transaction(self.db, read_only=True) as session:
                now = self.clock()
                open_tasks = dict(
                    session.execute(
                        select(col(m.Task.category), func.count())
                        .where(col(m.Task.status) == OPEN)
                        .group_by(col(m.Task.category))
                    ).all()
                )
                oldest = dict(
                    session.execute(
                        select(col(m.Task.category), func.min(col(m.Task.created_at)))
                        .where(col(m.Task.status) == OPEN)
                        .group_by(col(m.Task.category))
                    ).all()
                )
                inbox = dict(
                    session.execute(
                        select(col(m.InboxDelivery.status), func.count()).group_by(
                            col(m.InboxDelivery.status)
                        )
                    ).all()
                )
                lag = oldest_pending_age(session, now)
                states = {h.connector: h.state for h in session.query(m.IntegrationHealth)}
        except SQLAlchemyError as exc:
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            return
        tasks = GaugeMetricFamily(
            "taskplanner_open_tasks", "Open tasks per category", labels=["category"]
        )
        age = GaugeMetricFamily(
            "taskplanner_oldest_open_task_age_seconds",
            "Age of the oldest open task per category",
            labels=["category"],
        )
        for category in CATEGORY_NAMES:
            tasks.add_metric([category], open_tasks.get(category, 0))
            started = oldest.get(category)
            if started is not None:
                age.add_metric([category], max(0.0, (now - started).total_seconds()))
        yield tasks
        yield age
        rows = GaugeMetricFamily(
            "taskplanner_inbox_deliveries", "Inbox deliveries per status", labels=["status"]
        )
        for status, count in sorted(inbox.items()):
            rows.add_metric([status], count)
        yield rows
        yield GaugeMetricFamily(
            "taskplanner_inbox_lag_seconds",
            "Age of the oldest unprocessed delivery",
            value=lag if inbox.get(PENDING) else 0.0,
        )
        state = GaugeMetricFamily(
            "taskplanner_integration_state",
            "1 for the state each integration is in",
            labels=["connector", "state"],
        )
        for connector, current in sorted(states.items()):
            for name in HEALTH_STATES:
                state.add_metric([connector, name], 1.0 if current == name else 0.0)
        yield state


class ProviderCollector(Collector):
    """Requests, throttling and retries each connector's HTTP layer counted."""

    def __init__(self, connectors: Callable[[], dict[str, Any]]) -> None:
        self.connectors = connectors

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "taskplanner_provider_requests", "Requests sent to providers", labels=["connector"]
        )
        throttled = CounterMetricFamily(
            "taskplanner_provider_throttled",
            "Provider answers of 429 / rate limit exceeded",
            labels=["connector"],
        )
        for name, connector in sorted(self.connectors().items()):
            stats = getattr(connector, "stats", None)
            if stats is None:
                continue
            requests.add_metric([name], float(getattr(stats, "requests", 0)))
            throttled.add_metric([name], float(getattr(stats, "throttled", 0)))
        yield requests
        yield throttled


class Metrics:
    def __init__(self, db: Engine, clock: Clock, connectors: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.deliveries_received = Counter(
            "taskplanner_webhook_deliveries_received",
            "Webhook deliveries received, by outcome",
            ["connector", "outcome"],
            registry=self.registry,
        )
        self.deliveries_processed = Counter(
            "taskplanner_inbox_deliveries_processed",
            "Inbox deliveries processed, by result (done, ignored, failed, dead)",
            ["connector", "result"],
            registry=self.registry,
        )
        self.sync_duration = Histogram(
            "taskplanner_sync_duration_seconds",
            "Duration of one polling pass",
            ["connector"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.sync_errors = Counter(
            "taskplanner_sync_errors",
            "Failed polling passes",
            ["connector"],
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(db, clock))
        self.registry.register(ProviderCollector(connectors))

    def observe_sync(self, report: SyncReport) -> None:
        self.sync_duration.labels(report.connector).observe(report.seconds)
        if not report.ok:
            self.sync_errors.labels(report.connector).inc()

    def observe_processed(self, connector: str, result: str, count: int = 1) -> None:
        self.deliveries_processed.labels(connector, result).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
