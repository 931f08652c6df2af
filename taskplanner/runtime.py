"""The composition root: one configuration becomes a database, a pipeline and connectors.

The CLI, the web app and the daemon all start from a ``Runtime``; tests and the sandbox
build one from a ``Config`` made in Python.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from taskplanner.clock import Clock, system_clock
from taskplanner.config import Config, ConfigError
from taskplanner.domain.alerting import EMAIL, SLACK, AlertPolicy, AlertRoute
from taskplanner.domain.assignment import Absence, JobOverrideRules, OrgRules
from taskplanner.inbox import InboxProcessor
from taskplanner.pipeline import Pipeline
from taskplanner.providers import PROVIDERS, ProviderUnavailable
from taskplanner.store.database import create_db_engine
from taskplanner.store.migrate import upgrade
from taskplanner.sync import SyncRunner


class UnsupportedConnector(RuntimeError):
    """A configured connector whose provider has no connector in this version."""


def connector_available(connector_type: str) -> bool:
    """Whether this build has a connector class for a connector type the config accepts."""
    return connector_type in PROVIDERS and PROVIDERS[connector_type].connector_available


def unavailable_connectors(config: Config) -> list[ConfigError]:
    """A configuration problem for each enabled connector whose type has no class yet.

    The CLI checks this at start-up (`taskplanner.config.ConfigCheck`), so such a file stops
    with exit code 2 and one line instead of failing at the first sync.
    """
    return [
        ConfigError(
            f"connectors.{name}.type",
            f"{reason}; set enabled = false to keep the section",
            config.source,
        )
        for name, connector in config.enabled_connectors().items()
        if (reason := PROVIDERS[connector.type].unavailable_reason()) is not None
    ]


def replica_id() -> str:
    """Names this process in leases and logs: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def rules_from_config(config: Config) -> OrgRules:
    """The organisation's rules as the pure domain sees them."""
    rules = config.rules
    return OrgRules(
        account_owner=config.organisation.account_owner.lower(),
        scheduling_stages=frozenset(rules.scheduling_stages),
        inactivity_stages=frozenset(rules.inactivity_stages),
        evaluation_due_after=rules.evaluation_due_after,
        job_live_within=rules.job_live_within,
        inactivity_after=rules.inactivity_after,
        schedule_within=rules.schedule_within,
        people_roles={p.email.lower(): p.role for p in config.people},
        handovers={
            p.email.lower(): Absence(
                p.email.lower(),
                p.handover_to,
                "config",
                until=_back_on(p.away_until, config.organisation.zone()),
            )
            for p in config.people
            if p.handover_to is not None or p.away_until is not None
        },
        follow_out_of_office=rules.follow_out_of_office,
        jobs={
            job.ats_job_id: JobOverrideRules(
                coordinator=job.coordinator,
                stage_owners=dict(job.stage_owners),
                inactivity_after=dict(job.inactivity_after),
            )
            for job in config.jobs
        },
    )


def alert_policy(config: Config) -> AlertPolicy:
    """The ``[notifications.*]`` sections as the domain's alert routes."""
    routes = []
    slack, email = config.notifications.slack, config.notifications.email
    if slack is not None:
        routes.append(AlertRoute(SLACK, frozenset(slack.categories), slack.decline_within))
    if email is not None:
        routes.append(AlertRoute(EMAIL, frozenset(email.categories), email.decline_within))
    return AlertPolicy(tuple(routes))


def _back_on(value: date | datetime | None, zone: ZoneInfo) -> datetime | None:
    """``away_until``: a date is the day they are back, from midnight in the organisation's
    time zone; an instant is taken as it is."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), zone).astimezone(UTC)


def build_connector(name: str, connector_config: Any) -> Any:
    """Instantiate the connector class the provider registry names for a configured connector."""
    provider = PROVIDERS.get(connector_config.type)
    if provider is None:
        raise UnsupportedConnector(
            f"connectors.{name}.type: unknown connector type {connector_config.type!r}"
        )
    try:
        cls = provider.connector_class()
    except ProviderUnavailable as exc:
        raise UnsupportedConnector(f"connectors.{name}.type: {exc}") from None
    return cls.from_config(name, connector_config)


@dataclass
class Runtime:
    config: Config
    db: Engine
    pipeline: Pipeline
    clock: Clock = system_clock
    _connectors: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: Config, *, clock: Clock = system_clock, migrate: bool = True
    ) -> Runtime:
        db = create_db_engine(config.database.url)
        if migrate:
            upgrade(db)
        pipeline = Pipeline(db, rules_from_config(config), clock, alert_policy(config))
        return cls(config=config, db=db, pipeline=pipeline, clock=clock)

    @property
    def rules(self) -> OrgRules:
        return self.pipeline.rules

    def connector(self, name: str) -> Any:
        """The connector instance for a configured, enabled connector (built once)."""
        if name not in self._connectors:
            connector_config = self.config.enabled_connectors().get(name)
            if connector_config is None:
                raise KeyError(name)
            self._connectors[name] = build_connector(name, connector_config)
        return self._connectors[name]

    def use_connector(self, name: str, connector: Any) -> None:
        """Serve ``name`` with this instance instead of one built from the configuration.

        Tests and benchmarks inject a connector with their own retry policy (instant sleeps)
        or clock; the webhook route, the inbox and the sync runner then all share it.
        """
        if name not in self.config.enabled_connectors():
            raise KeyError(name)
        previous = self._connectors.pop(name, None)
        if previous is not None and previous is not connector:
            previous.close()
        self._connectors[name] = connector

    def built_connectors(self) -> dict[str, Any]:
        """The connectors built so far (for metrics: their request counters)."""
        return dict(self._connectors)

    def webhook_source(self, name: str) -> Any | None:
        """The connector behind ``POST /webhooks/{name}``, if it takes webhooks."""
        connector_config = self.config.enabled_connectors().get(name)
        if connector_config is None or not connector_config.is_ats:
            return None
        try:
            return self.connector(name)
        except UnsupportedConnector:
            return None

    def sync_runner(self, owner: str | None = None, **kwargs: Any) -> SyncRunner:
        enabled = self.config.enabled_connectors()
        return SyncRunner(
            db=self.db,
            pipeline=self.pipeline,
            connectors=self.connector,
            kinds={name: c.type for name, c in enabled.items()},
            intervals={name: c.poll_interval for name, c in enabled.items()},
            owner=owner or replica_id(),
            clock=self.clock,
            failure_threshold=self.config.rules.integration_failure_threshold,
            **kwargs,
        )

    def inbox_processor(self, owner: str | None = None, **kwargs: Any) -> InboxProcessor:
        return InboxProcessor(
            self.db,
            self.pipeline,
            self.webhook_source,
            owner=owner or replica_id(),
            clock=self.clock,
            max_attempts=self.config.rules.inbox_max_attempts,
            **kwargs,
        )

    def alert_dispatcher(self, owner: str | None = None, **kwargs: Any) -> Any:
        """The sender of ``alert_outbox`` rows (``taskplanner.alerts``), from the config."""
        from taskplanner.alerts import AlertDispatcher, senders_from_config

        senders = kwargs.pop("senders", None) or senders_from_config(self.config, self.clock)
        return AlertDispatcher(
            self.db,
            self.config,
            senders,
            owner=owner or replica_id(),
            clock=self.clock,
            **kwargs,
        )

    def close(self) -> None:
        for connector in self._connectors.values():
            connector.close()
        self._connectors.clear()
        self.db.dispose()
