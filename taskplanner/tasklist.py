"""Reading the task list: filters, keyset pagination, and the JSON shape of SPEC §4.

Shared by the HTTP API, the page, the CLI and the digest so they all show the same thing.
Newest first means highest id first; a page cursor is the last id seen, so pages stay
stable while tasks are added and no request counts the whole table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner.domain.categories import CATEGORY_BY_NAME
from taskplanner.engine import COMPLETED, OPEN, history_of
from taskplanner.store import models as m

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class StatusFilter(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    ALL = "all"


@dataclass(frozen=True)
class TaskQuery:
    assignee: str | None = None
    status: StatusFilter = StatusFilter.OPEN
    category: str | None = None
    before_id: int | None = None  # the cursor: tasks with a smaller id
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class TaskPage:
    tasks: list[m.Task]
    next_cursor: int | None


def list_tasks(session: Session, query: TaskQuery) -> TaskPage:
    limit = max(1, min(query.limit, MAX_LIMIT))
    stmt = select(m.Task)
    if query.assignee:
        stmt = stmt.where(col(m.Task.assignee) == query.assignee.lower())
    if query.status is StatusFilter.OPEN:
        stmt = stmt.where(col(m.Task.status) == OPEN)
    elif query.status is StatusFilter.COMPLETED:
        stmt = stmt.where(col(m.Task.status) == COMPLETED)
    if query.category:
        stmt = stmt.where(col(m.Task.category) == query.category)
    if query.before_id is not None:
        stmt = stmt.where(col(m.Task.id) < query.before_id)
    stmt = stmt.order_by(col(m.Task.id).desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(rows, rows[-1].id if more and rows else None)


def get_task(session: Session, task_id: int) -> m.Task | None:
    return session.get(m.Task, task_id)


def open_counts(session: Session, assignee: str | None = None) -> dict[str, int]:
    """Open tasks per category (for one person, or everyone)."""
    stmt = select(col(m.Task.category), func.count()).where(col(m.Task.status) == OPEN)
    if assignee:
        stmt = stmt.where(col(m.Task.assignee) == assignee.lower())
    counts = dict(session.execute(stmt.group_by(col(m.Task.category))).all())
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
    }


def history_json(session: Session, task_id: int) -> list[dict[str, Any]]:
    return [
        {"at": _iso(h.at), "action": h.action, "detail": h.detail, "actor": h.actor}
        for h in history_of(session, task_id)
    ]


@dataclass(frozen=True)
class RelatedNames:
    """Display names of the candidates and jobs a page of tasks refers to."""

    candidates: dict[str, str]
    jobs: dict[str, str]

    def candidate(self, task: m.Task) -> str | None:
        return self.candidates.get(task.candidate_id) if task.candidate_id else None

    def job(self, task: m.Task) -> str | None:
        return self.jobs.get(task.job_id) if task.job_id else None


def related_names(session: Session, tasks: list[m.Task]) -> RelatedNames:
    """Two primary-key lookups for a whole page, never one query per task."""
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
    return RelatedNames(candidates, jobs)


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
