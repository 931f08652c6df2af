"""``taskplanner status``: readiness, integrations, inbox and open tasks at a glance.

Reads the database only, so it works beside running daemons and tells what they see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from taskplanner import ownership
from taskplanner.domain.assignment import Absence
from taskplanner.domain.categories import CATEGORY_NAMES
from taskplanner.engine import OPEN
from taskplanner.inbox import PENDING, oldest_pending_age
from taskplanner.ownership import AtsRoleBreach
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import describe_error, transaction
from taskplanner.store.migrate import current_revision, head_revision


@dataclass
class IntegrationStatus:
    name: str
    type: str
    state: str = "ok"  # ok | failing | broken | never synced
    last_success_at: datetime | None = None
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    next_due_at: datetime | None = None


@dataclass
class Status:
    database: str
    reachable: bool
    error: str | None = None
    revision: str | None = None
    head: str | None = None
    integrations: list[IntegrationStatus] = field(default_factory=list)
    inbox: dict[str, int] = field(default_factory=dict)
    inbox_lag_seconds: float = 0.0
    open_tasks: dict[str, int] = field(default_factory=dict)
    oldest_open: dict[str, datetime] = field(default_factory=dict)
    handovers: list[Absence] = field(default_factory=list)  # in force now
    role_breaches: list[AtsRoleBreach] = field(default_factory=list)  # known from the ATS only

    @property
    def ready(self) -> bool:
        return self.reachable and self.revision == self.head


def collect_status(runtime: Runtime) -> Status:
    url = make_url(runtime.config.database.url).render_as_string(hide_password=True)
    status = Status(database=url, reachable=False, head=head_revision())
    now = runtime.clock()
    try:
        status.revision = current_revision(runtime.db)
        with transaction(runtime.db, read_only=True) as session:
            health = {h.connector: h for h in session.scalars(select(m.IntegrationHealth))}
            sources = {s.connector: s for s in session.scalars(select(m.SyncSource))}
            status.inbox = {
                str(k): int(v)
                for k, v in session.execute(
                    select(col(m.InboxDelivery.status), func.count()).group_by(
                        col(m.InboxDelivery.status)
                    )
                )
            }
            status.inbox_lag_seconds = oldest_pending_age(session, now)
            tasks = session.execute(
                select(col(m.Task.category), func.count(), func.min(col(m.Task.created_at)))
                .where(col(m.Task.status) == OPEN)
                .group_by(col(m.Task.category))
            )
            for category, count, oldest in tasks:
                status.open_tasks[category] = int(count)
                moment = _aware(oldest, now)
                if moment is not None:
                    status.oldest_open[category] = moment
            away = ownership.absences(session, runtime.rules, now)
            status.handovers = sorted(away.values(), key=lambda a: a.person)
            status.role_breaches = ownership.ats_role_breaches(session, runtime.rules)
    except SQLAlchemyError as exc:
        status.error = describe_error(exc)
        return status
    status.reachable = True
    for name, connector in runtime.config.enabled_connectors().items():
        row = health.get(name)
        source = sources.get(name)
        item = IntegrationStatus(name=name, type=connector.type)
        if row is not None:
            item.state, item.last_error = row.state, row.last_error
            item.last_success_at = row.last_success_at
        elif source is None or source.last_finished_at is None:
            item.state = "never synced"
        if source is not None:
            item.lease_owner, item.lease_expires_at = source.lease_owner, source.lease_expires_at
            item.next_due_at = source.next_due_at
        status.integrations.append(item)
    return status


def _aware(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's min() hands back the stored text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=now.tzinfo)
    return value  # type: ignore[no-any-return]


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{_span((now - moment).total_seconds())} ago"


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_ORIGINS = {
    "config": "configuration",
    "reassign": "taskplanner reassign",
    "out_of_office": "out of office",
}


def _people_lines(status: Status) -> list[str]:
    lines = []
    if status.handovers:
        lines.append("hand-overs in force:")
        for absence in status.handovers:
            to = absence.stand_in or "the next in line"
            until = f"until {absence.until:%Y-%m-%d %H:%M} UTC" if absence.until else "for good"
            origin = _ORIGINS.get(absence.origin, absence.origin)
            lines.append(f"  {absence.person} → {to}, {until} ({origin})")
    if status.role_breaches:
        lines.append("role breaches the ATS reports (passed over in assignment):")
        lines += [f"  {breach.describe()}" for breach in status.role_breaches]
    return lines


def render_status(status: Status, now: datetime) -> str:
    """Plain text, one fact per line, for a terminal or a log."""
    lines = [f"taskplanner: {'ready' if status.ready else 'NOT READY'}"]
    if not status.reachable:
        lines.append(f"database: {status.database}: unreachable: {status.error}")
        return "\n".join(lines)
    migrations = (
        "current"
        if status.revision == status.head
        else f"at {status.revision}, needs {status.head} (run `taskplanner db upgrade`)"
    )
    lines.append(f"database: {status.database} (migrations {migrations})")
    lines.append("integrations:" if status.integrations else "integrations: none configured")
    width = max((len(i.name) for i in status.integrations), default=0)
    for item in status.integrations:
        parts = [f"  {item.name:<{width}}  {item.state:<12}"]
        parts.append(f"last success {_ago(item.last_success_at, now)}")
        if item.lease_owner and item.lease_expires_at and item.lease_expires_at > now:
            parts.append(f"polling now on {item.lease_owner}")
        elif item.next_due_at is not None:
            wait = (item.next_due_at - now).total_seconds()
            parts.append("next poll due now" if wait <= 0 else f"next poll in {_span(wait)}")
        if item.state != "ok" and item.last_error:
            parts.append(f"error: {item.last_error}")
        lines.append(", ".join(parts))
    pending = status.inbox.get(PENDING, 0)
    counts = ", ".join(f"{count} {name}" for name, count in sorted(status.inbox.items()))
    lag = f", oldest waiting {_span(status.inbox_lag_seconds)}" if pending else ""
    lines.append(f"inbox: {counts or 'empty'}{lag}")
    lines += _people_lines(status)
    total = sum(status.open_tasks.values())
    lines.append(f"open tasks: {total}")
    for category in CATEGORY_NAMES:
        count = status.open_tasks.get(category, 0)
        if count:
            oldest = status.oldest_open.get(category)
            age = f" (oldest {_span((now - oldest).total_seconds())})" if oldest else ""
            lines.append(f"  {category:<22} {count:>5}{age}")
    return "\n".join(lines)
