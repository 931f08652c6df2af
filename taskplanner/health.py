"""Integration health as a state machine: ok → failing → broken → ok.

Logged once per transition, not on every failed poll. Turning broken (a fatal error, or
``threshold`` failures in a row) emits ``integration_failed``, which opens the
``broken_integration`` task; the first success afterwards emits ``integration_recovered``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner.domain import events as ev
from taskplanner.domain.events import DomainEvent
from taskplanner.logsetup import mask_secrets
from taskplanner.store import models as m

log = structlog.get_logger("taskplanner.health")

OK, FAILING, BROKEN = "ok", "failing", "broken"


def record_success(session: Session, connector: str, now: datetime) -> list[DomainEvent]:
    row = _row(session, connector, now)
    before = row.state
    row.state, row.consecutive_failures, row.last_success_at = OK, 0, now
    out: list[DomainEvent] = []
    if before != OK:
        row.changed_at = now
        log.info("integration_recovered", connector=connector, previous_state=before)
        out.append(ev.IntegrationRecovered(at=now, integration=connector))
    session.add(row)
    return out


def record_failure(
    session: Session,
    connector: str,
    error: str,
    now: datetime,
    *,
    fatal: bool,
    threshold: int,
) -> list[DomainEvent]:
    error = mask_secrets(error)  # it is shown on the page and in emails
    row = _row(session, connector, now)
    before = row.state
    row.consecutive_failures += 1
    row.last_error, row.last_failure_at = error, now
    broken = fatal or row.consecutive_failures >= threshold
    row.state = BROKEN if broken else FAILING
    out: list[DomainEvent] = []
    if row.state != before:
        row.changed_at = now
        log.warning(
            "integration_" + row.state,
            connector=connector,
            error=error,
            failures=row.consecutive_failures,
            fatal=fatal,
        )
        if row.state == BROKEN:
            out.append(ev.IntegrationFailed(at=now, integration=connector, error=error))
    session.add(row)
    return out


def retire_unconfigured(
    session: Session, configured: Collection[str], now: datetime
) -> list[DomainEvent]:
    """Forget connectors no longer in the configuration (called at start-up).

    Their ``broken_integration`` task can never be completed by a successful sync any more,
    so ``integration_removed`` makes it obsolete (SPEC §2).
    """
    out: list[DomainEvent] = []
    query = select(m.IntegrationHealth).where(
        col(m.IntegrationHealth.connector).not_in(list(configured))
    )
    for row in session.scalars(query):
        log.info("integration_removed", connector=row.connector, previous_state=row.state)
        out.append(ev.IntegrationRemoved(at=now, integration=row.connector))
        session.delete(row)
    return out


def _row(session: Session, connector: str, now: datetime) -> m.IntegrationHealth:
    return session.get(m.IntegrationHealth, connector) or m.IntegrationHealth(
        connector=connector, changed_at=now
    )
