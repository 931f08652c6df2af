"""Reading the task list: filters, keyset pagination, and the JSON shape of SPEC §4.

Shared by the HTTP API, the page, the CLI and the digest so they all show the same thing.
Newest first means highest id first; a page cursor is the last id seen, so pages stay
stable while tasks are added and no request counts the whole table. Urgency order (overdue
first, then due soonest, then newest) pages the same way with a cursor naming the last
task's due time and id.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner.clock import span_text
from taskplanner.domain.categories import CATEGORY_BY_NAME
from taskplanner.engine import COMPLETED, OPEN, history_of
from taskplanner.logsetup import mask_secrets
from taskplanner.store import models as m

DEFAULT_LIMIT = 50
_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
MAX_LIMIT = 500


class StatusFilter(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    ALL = "all"


class SortOrder(enum.StrEnum):
    """``newest``: highest id first. ``urgency``: tasks with a due time first, the most
    overdue on top, then due soonest (ties: older first); then those without one, newest
    first."""

    NEWEST = "newest"
    URGENCY = "urgency"


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class UrgencyCursor:
    """The last task of an urgency page: its due time (None: in the part without one)."""

    due_at: datetime | None
    id: int

    def token(self) -> str:
        due = "n" if self.due_at is None else str(_micros(self.due_at))
        return f"u.{due}.{self.id}"


Cursor = int | UrgencyCursor
CURSOR_PATTERN = r"^([0-9]{1,10}|u\.(n|[0-9]{1,19})\.[0-9]{1,10})$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def parse_cursor(raw: str, sort: SortOrder, max_id: int) -> Cursor:
    """A ``next_cursor`` as a client passes it back; BadCursor if it is not one of ``sort``."""
    if not re.fullmatch(CURSOR_PATTERN, raw):
        raise BadCursor("not a cursor")
    if raw.isdigit():
        if sort is not SortOrder.NEWEST:
            raise BadCursor("this cursor is from sort=newest")
        value = int(raw)
        if not 0 < value <= max_id + 1:
            raise BadCursor("cursor out of range")
        return value
    parts = raw.split(".")
    if (
        len(parts) != 3
        or parts[0] != "u"
        or not parts[2].isdigit()
        or not (parts[1] == "n" or parts[1].isdigit())
    ):
        raise BadCursor("not a cursor")
    if sort is not SortOrder.URGENCY:
        raise BadCursor("this cursor is from sort=urgency")
    task_id = int(parts[2])
    if not 0 < task_id <= max_id + 1:
        raise BadCursor("cursor out of range")
    if parts[1] == "n":
        return UrgencyCursor(None, task_id)
    try:
        due = _EPOCH + timedelta(microseconds=int(parts[1]))
    except OverflowError:
        raise BadCursor("cursor out of range") from None
    return UrgencyCursor(due, task_id)


@dataclass(frozen=True)
class TaskQuery:
    assignee: str | None = None
    status: StatusFilter = StatusFilter.OPEN
    category: str | None = None
    before_id: int | None = None  # newest order's cursor: tasks with a smaller id
    limit: int = DEFAULT_LIMIT
    sort: SortOrder = SortOrder.NEWEST
    after: UrgencyCursor | None = None  # urgency order's cursor
    text: str | None = None  # q=: candidate name, job name or title contain it (any case)
    job_id: str | None = None
    stage_id: str | None = None
    job_ids: frozenset[str] | None = None  # job_coordinator=: the jobs they coordinate
    include_snoozed: bool = False
    now: datetime | None = None  # what "snoozed until" compares with (None: ignore snoozing)


@dataclass(frozen=True)
class TaskPage:
    tasks: list[m.Task]
    next_cursor: int | str | None


def _filtered(stmt: _S, query: TaskQuery, *, category: bool = True) -> _S:
    if query.assignee:
        stmt = stmt.where(col(m.Task.assignee) == query.assignee.lower())
    if query.status is StatusFilter.OPEN:
        stmt = stmt.where(col(m.Task.status) == OPEN)
    elif query.status is StatusFilter.COMPLETED:
        stmt = stmt.where(col(m.Task.status) == COMPLETED)
    if category and query.category:
        stmt = stmt.where(col(m.Task.category) == query.category)
    if query.job_id:
        stmt = stmt.where(col(m.Task.job_id) == query.job_id)
    if query.stage_id:
        stmt = stmt.where(col(m.Task.stage_id) == query.stage_id)
    if query.job_ids is not None:
        stmt = stmt.where(col(m.Task.job_id).in_(sorted(query.job_ids)))
    if query.text:
        # Correlated: each task the other filters keep looks up its own candidate and job
        # by primary key, so the search costs what the page costs, however many
        # candidates the mirror holds.
        needle = query.text.lower()
        candidate = (
            select(literal(1))
            .where(
                col(m.Candidate.id) == col(m.Task.candidate_id),
                func.lower(col(m.Candidate.name)).contains(needle, autoescape=True),
            )
            .exists()
        )
        job = (
            select(literal(1))
            .where(
                col(m.Job.id) == col(m.Task.job_id),
                func.lower(col(m.Job.name)).contains(needle, autoescape=True),
            )
            .exists()
        )
        stmt = stmt.where(
            or_(func.lower(col(m.Task.title)).contains(needle, autoescape=True), candidate, job)
        )
    if (
        not query.include_snoozed
        and query.now is not None  # without a time, snoozing is not looked at
        and query.status is not StatusFilter.COMPLETED
    ):
        # A snoozed task leaves the open list until its time comes.
        awake: list[ColumnElement[bool]] = [
            col(m.Task.snoozed_until).is_(None),
            col(m.Task.snoozed_until) <= query.now,
        ]
        if query.status is StatusFilter.ALL:
            awake.append(col(m.Task.status) != OPEN)
        stmt = stmt.where(or_(*awake))
    return stmt


def list_tasks(session: Session, query: TaskQuery) -> TaskPage:
    limit = max(1, min(query.limit, MAX_LIMIT))
    if query.sort is SortOrder.URGENCY:
        return _by_urgency(session, query, limit)
    stmt = _filtered(select(m.Task), query)
    if query.before_id is not None:
        stmt = stmt.where(col(m.Task.id) < query.before_id)
    stmt = stmt.order_by(col(m.Task.id).desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(rows, rows[-1].id if more and rows else None)


def _by_urgency(session: Session, query: TaskQuery, limit: int) -> TaskPage:
    """Two index ranges: tasks with a due time (due_at, id ascending), then those without
    (id descending). The cursor is the last task's place, so a page never repeats or skips
    a task that was there before, whatever arrives meanwhile."""
    after = query.after
    rows: list[m.Task] = []
    if after is None or after.due_at is not None:
        due = col(m.Task.due_at)
        stmt = _filtered(select(m.Task), query).where(due.is_not(None))
        if after is not None:
            stmt = stmt.where(
                or_(due > after.due_at, and_(due == after.due_at, col(m.Task.id) > after.id))
            )
        stmt = stmt.order_by(due, col(m.Task.id)).limit(limit + 1)
        rows = list(session.scalars(stmt))
    if len(rows) <= limit:
        stmt = _filtered(select(m.Task), query).where(col(m.Task.due_at).is_(None))
        if after is not None and after.due_at is None:
            stmt = stmt.where(col(m.Task.id) < after.id)
        stmt = stmt.order_by(col(m.Task.id).desc()).limit(limit + 1 - len(rows))
        rows += list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    if not (more and rows):
        return TaskPage(rows, None)
    return TaskPage(rows, UrgencyCursor(rows[-1].due_at, rows[-1].id).token())


def get_task(session: Session, task_id: int) -> m.Task | None:
    return session.get(m.Task, task_id)


def open_counts(
    session: Session, assignee: str | None = None, query: TaskQuery | None = None
) -> dict[str, int]:
    """Open tasks per category (for one person, or everyone; or those a query's filters
    other than the category keep)."""
    query = replace(query or TaskQuery(), status=StatusFilter.OPEN)
    if assignee:
        query = replace(query, assignee=assignee)
    stmt = _filtered(select(col(m.Task.category), func.count()), query, category=False)
    counts: dict[str, int] = dict(session.execute(stmt.group_by(col(m.Task.category))).all())
    return {name: counts.get(name, 0) for name in CATEGORY_BY_NAME}


def open_counts_by_assignee(session: Session) -> dict[str, int]:
    stmt = (
        select(col(m.Task.assignee), func.count())
        .where(col(m.Task.status) == OPEN)
        .group_by(col(m.Task.assignee))
    )
    return dict(session.execute(stmt).all())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def task_json(task: m.Task) -> dict[str, Any]:
    """The stable JSON names of SPEC §4 (plus a few display extras)."""
    category = CATEGORY_BY_NAME.get(task.category)
    return {
        "id": task.id,
        "category": task.category,
        "category_label": category.label if category else task.category,
        "title": task.title,
        "recommended_action": task.recommended_action,
        "action_url": task.action_url,
        "detail": task.detail,
        "assignee": task.assignee,
        "status": task.status,
        "resolution": task.resolution,
        "completed_by": task.completed_by,
        "completion_reason": task.completion_reason,
        "job_id": task.job_id,
        "stage_id": task.stage_id,
        "interview_kind_id": task.interview_kind_id,
        "application_id": task.application_id,
        "candidate_id": task.candidate_id,
        "schedule_id": task.schedule_id,
        "event_id": task.event_id,
        "attendee": task.attendee,
        "integration": task.integration,
        "created_at": _iso(task.created_at),
        "due_at": _iso(task.due_at),
        "completed_at": _iso(task.completed_at),
        "snoozed_until": _iso(task.snoozed_until),
    }


def history_json(session: Session, task_id: int) -> list[dict[str, Any]]:
    return [
        {"at": _iso(h.at), "action": h.action, "detail": h.detail, "actor": h.actor}
        for h in history_of(session, task_id)
    ]


def snoozed_tasks(session: Session, query: TaskQuery, now: datetime) -> list[m.Task]:
    """The open tasks a query's filters keep that are snoozed now, waking soonest first."""
    stmt = _filtered(
        select(m.Task), replace(query, status=StatusFilter.OPEN, include_snoozed=True)
    ).where(col(m.Task.snoozed_until) > now)
    stmt = stmt.order_by(col(m.Task.snoozed_until), col(m.Task.id)).limit(query.limit)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class RelatedNames:
    """Display names of the candidates, jobs and people a page of tasks refers to, and when
    the applications entered their stage (a wait is computed when shown)."""

    candidates: dict[str, str]
    jobs: dict[str, str]
    people: dict[str, str] = field(default_factory=dict)
    entered: dict[str, datetime] = field(default_factory=dict)

    def candidate(self, task: m.Task) -> str | None:
        return self.candidates.get(task.candidate_id) if task.candidate_id else None

    def job(self, task: m.Task) -> str | None:
        return self.jobs.get(task.job_id) if task.job_id else None

    def person(self, email: str | None) -> str | None:
        """A person's name when known, else their address."""
        if not email:
            return None
        return self.people.get(email.lower()) or email

    def title(self, task: m.Task) -> str:
        """The title, with a person's address replaced by their name when it is known."""
        title = task.title
        if task.attendee and task.attendee in title and task.attendee.lower() in self.people:
            title = title.replace(task.attendee, self.people[task.attendee.lower()])
        return title

    def waiting(self, task: m.Task, now: datetime) -> str:
        """For an inactive candidate: how long they have been in the stage, as of now."""
        if task.category != "inactive_candidate" or not task.application_id:
            return ""
        entered = self.entered.get(task.application_id)
        return span_text(now - entered) if entered else ""


def related_names(
    session: Session, tasks: list[m.Task], people: Mapping[str, Any] | None = None
) -> RelatedNames:
    """A few primary-key lookups for a whole page, never one query per task.

    ``people``: the configuration's people by email (their names come first).
    """
    candidate_ids = {t.candidate_id for t in tasks if t.candidate_id}
    job_ids = {t.job_id for t in tasks if t.job_id}
    candidates: dict[str, str] = {}
    jobs: dict[str, str] = {}
    if candidate_ids:
        stmt = select(col(m.Candidate.id), col(m.Candidate.name)).where(
            col(m.Candidate.id).in_(candidate_ids)
        )
        candidates = dict(session.execute(stmt).all())
    if job_ids:
        jobs_stmt = select(col(m.Job.id), col(m.Job.name)).where(col(m.Job.id).in_(job_ids))
        jobs = dict(session.execute(jobs_stmt).all())
    emails = {t.attendee.lower() for t in tasks if t.attendee}
    names: dict[str, str] = {}
    if emails:
        users = select(col(m.User.email), col(m.User.name)).where(
            func.lower(col(m.User.email)).in_(emails)
        )
        names = {email.lower(): name for email, name in session.execute(users).all() if name}
        attendees = select(
            col(m.ScheduleInterviewer.email), col(m.ScheduleInterviewer.name)
        ).where(
            col(m.ScheduleInterviewer.schedule_id).in_(
                {t.schedule_id for t in tasks if t.schedule_id and t.attendee}
            )
        )
        for email, name in session.execute(attendees).all():
            if name and email.lower() in emails:
                names.setdefault(email.lower(), name)
        for email, person in (people or {}).items():
            if email.lower() in emails and getattr(person, "name", None):
                names[email.lower()] = person.name
    waiting = {t.application_id for t in tasks if t.category == "inactive_candidate"}
    entered: dict[str, datetime] = {}
    if waiting:
        apps = select(col(m.Application.id), col(m.Application.stage_entered_at)).where(
            col(m.Application.id).in_(waiting)
        )
        entered = {app_id: at for app_id, at in session.execute(apps).all() if at}
    return RelatedNames(candidates, jobs, names, entered)


# What to do about a broken integration, by what its error says (the recommended action
# covers the rest).
INTEGRATION_ADVICE = (
    (
        ("401", "403", "unauthori", "forbidden", "invalid_grant", "credential", "api key"),
        "The provider refused our credentials: check the key or token in the environment "
        "variable the configuration names, and that the account still has access; then "
        "restart taskplanner.",
    ),
    (
        ("429", "rate limit", "ratelimit", "too many requests"),
        "The provider is limiting our requests: nothing to change unless it lasts; check "
        "whether another tool shares the same API key.",
    ),
    (
        ("404", "not found"),
        "Something the configuration names no longer exists at the provider (a calendar, "
        "a board, an account): check the connector's settings.",
    ),
    (
        ("timeout", "timed out", "connect", "500", "502", "503", "504", "unavailable"),
        "The provider did not answer: check its status page and this server's network; "
        "the task closes by itself once a sync succeeds.",
    ),
)


def integration_advice(error: str | None) -> str:
    text = (error or "").lower()
    for needles, advice in INTEGRATION_ADVICE:
        if any(n in text for n in needles):
            return advice
    return "Read the error, fix the connector's settings or credentials, and restart taskplanner."


def integration_error(task: m.Task) -> str:
    """A broken integration's error as people see it (credentials masked, belt and braces:
    health masks them before storing)."""
    return mask_secrets(task.detail) if task.detail else ""


DECLINES = frozenset({"interviewer_declined", "room_declined", "candidate_declined"})


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if value else ""


def task_notes(task: m.Task, names: RelatedNames, now: datetime, zone: ZoneInfo) -> list[str]:
    """What a task says beyond its title, computed when shown (for the email; the page lays
    out the same facts itself): a decline's interview time and who declined, a broken
    integration's error and what to do, an inactive candidate's wait."""
    notes = []
    if task.category in DECLINES and task.due_at is not None:
        notes.append(
            f"Interview {local_time(task.due_at, zone)} ({zone.key}), declined by "
            f"{names.person(task.attendee)}"
        )
        if task.detail:
            notes.append(f"“{task.detail}”")
    elif task.category == "broken_integration":
        error = integration_error(task)
        if error:
            notes.append(f"Error: {error}")
        notes.append(f"What to do: {integration_advice(error)}")
    elif waiting := names.waiting(task, now):
        notes.append(f"In the stage for {waiting}")
    return notes


SETUP_CATEGORIES = ("new_job", "new_stage", "new_interview")


def tasks_for_job(
    session: Session, job_id: str, categories: tuple[str, ...] = SETUP_CATEGORIES, limit: int = 20
) -> list[m.Task]:
    """A job's tasks of some categories, newest first (the set-up page shows its own)."""
    stmt = (
        select(m.Task)
        .where(col(m.Task.job_id) == job_id, col(m.Task.category).in_(categories))
        .order_by(col(m.Task.id).desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
