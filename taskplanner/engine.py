"""The task engine: turns domain events into open/closed tasks, assigns them, keeps history.

Which events open or close which tasks is decided by the category table
(``taskplanner.domain.categories``); this module stores the outcome, resolves assignees
through the mirror and the configuration, and appends history for every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as orm_events
from sqlalchemy import insert, inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import ownership, readahead
from taskplanner.clock import Clock, system_clock
from taskplanner.domain import assignment
from taskplanner.domain import events as ev
from taskplanner.domain.alerting import NO_ALERTS, AlertPolicy
from taskplanner.domain.categories import (
    CATEGORY_BY_NAME,
    DUE_AT_INTERVIEW_START,
    CloseTasks,
    GoLive,
    OpenTask,
    Resolution,
    Role,
    TaskRefs,
    intents_for,
)
from taskplanner.domain.events import DomainEvent
from taskplanner.store import models as m

OPEN = "open"
COMPLETED = "completed"
_OPTIMISTIC = "engine_optimistic"
_QUIET = "engine_quiet"


@contextmanager
def optimistic_opens(session: Session) -> Iterator[None]:
    """Open tasks without a savepoint each, for a caller that would rather redo its whole
    batch when another replica opened the same situation first (a rare conflict)."""
    session.info[_OPTIMISTIC] = True
    try:
        yield
    finally:
        session.info.pop(_OPTIMISTIC, None)


@contextmanager
def quiet_opens(session: Session) -> Iterator[None]:
    """Open tasks without alerts: the go-live backlog describes what was there before
    taskplanner was connected, and lands on the page, not in everyone's Slack at once."""
    before = session.info.get(_QUIET)
    session.info[_QUIET] = True
    try:
        yield
    finally:
        if before is None:
            session.info.pop(_QUIET, None)


class TaskNotFound(LookupError):
    pass


class TaskAlreadyCompleted(RuntimeError):
    pass


@dataclass
class EngineResult:
    opened: list[m.Task] = field(default_factory=list)
    closed: list[m.Task] = field(default_factory=list)
    reassigned: int = 0


@dataclass
class BulkResult:
    """What a bulk completion did: the tasks completed, and (id, why) for those skipped."""

    completed: list[m.Task] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class HandOverResult:
    """What ``taskplanner reassign`` moved: tasks that follow the hand-over (they come back
    when it ends) and tasks someone had placed by hand on the person (they stay moved)."""

    followed: int
    placed_by_hand: int

    @property
    def moved(self) -> int:
        return self.followed + self.placed_by_hand


class TaskEngine:
    def __init__(
        self,
        rules: assignment.OrgRules,
        clock: Clock = system_clock,
        alerts: AlertPolicy = NO_ALERTS,
    ) -> None:
        self.rules = rules
        self.clock = clock
        # Which openings queue a Slack or email message (``alert_outbox``), in the same
        # transaction as the task, so a message exists exactly when the task does.
        self.alerts = alerts

    # --- events -------------------------------------------------------------------------

    def handle(
        self, session: Session, events: Sequence[DomainEvent], *, baseline: bool = False
    ) -> EngineResult:
        """Apply the category table to each event.

        ``baseline`` is True while a source takes its first sync: what it describes existed
        before taskplanner was connected, so only the categories that describe a state open
        from it (``GoLive.STATE``); moments nobody saw happen open nothing, and
        ``ready_to_schedule`` is found by the go-live pass once every record is in.
        """
        if baseline and not session.info.get(_QUIET):
            with quiet_opens(session):
                return self.handle(session, events, baseline=True)
        result = EngineResult()
        for event in events:
            actor = f"event:{event.name}"
            for intent in intents_for(event):
                if isinstance(intent, OpenTask):
                    if baseline and CATEGORY_BY_NAME[intent.category].go_live is not GoLive.STATE:
                        continue
                    task = self.open(session, intent, actor=actor, observed_at=event.at)
                    if task is not None:
                        result.opened.append(task)
                elif isinstance(intent, CloseTasks):
                    closed = self.close(session, intent, actor=actor, observed_at=event.at)
                    result.closed.extend(closed)
            if isinstance(event, ev.JobOwnerChanged | ev.JobCreated):
                # JobCreated too: tasks opened before their job arrived (another poll
                # partition) went to the account owner for want of a coordinator.
                result.reassigned += self.refresh_assignments(session, job_id=event.job_id)
            elif isinstance(event, ev.CandidateCoordinatorChanged):
                result.reassigned += self.refresh_assignments(
                    session, candidate_id=event.candidate_id
                )
            elif isinstance(event, ev.PersonLeft):
                result.reassigned += self.refresh_assignments(session, assignee=event.email)
            elif isinstance(event, ev.PersonAwayChanged):
                result.reassigned += self.follow_absences(session, [event.email])
            elif isinstance(event, ev.EventMoved):
                self.follow_interview_move(session, event, actor=actor)
        return result

    def follow_interview_move(self, session: Session, event: ev.EventMoved, *, actor: str) -> int:
        """Open declines are due when their interview starts; a move moves that date.

        Without this the sweep would retire a decline on a postponed interview at the old
        time, while the interviewer still cannot come at the new one.
        """
        if event.starts_at is None:
            return 0
        query = select(m.Task).where(
            col(m.Task.status) == OPEN,
            col(m.Task.schedule_id) == event.schedule_id,
            col(m.Task.category).in_(DUE_AT_INTERVIEW_START),
        )
        now = self.clock()
        count = 0
        for task in session.scalars(query.with_for_update()):
            if task.due_at == event.starts_at:
                continue
            before = task.due_at.isoformat() if task.due_at else "none"
            task.due_at, task.updated_at = event.starts_at, now
            session.add(task)
            detail = f"due {before} → {event.starts_at.isoformat()} (the interview moved)"
            self._history(session, task, "due_changed", detail, actor, now)
            count += 1
        return count

    def open(
        self,
        session: Session,
        intent: OpenTask,
        *,
        actor: str,
        observed_at: datetime | None = None,
    ) -> m.Task | None:
        """Open a task unless one is already open for the same situation.

        ``observed_at`` is the provider time of what was observed. An observation no newer
        than the one that resolved this situation before is the same news arriving from a
        second source (the ATS and a calendar, or two calendar copies of one meeting), not
        a new occurrence, so it does not reopen a task someone already dealt with.
        """
        if self._settled(session, intent, observed_at):
            return None
        category = CATEGORY_BY_NAME[intent.category]
        now = self.clock()
        owner = self.assignment_for(session, category.assignee, intent.refs)
        task = _new_task(intent, owner, now, self.rules)
        if session.get_bind().dialect.name == "sqlite" or session.info.get(_OPTIMISTIC):
            # SQLite has one writer at a time (BEGIN IMMEDIATE): nobody can open it
            # meanwhile. An optimistic caller (the inbox's chunks) redoes its whole batch,
            # with a savepoint per task, if another replica opened it first. The insert
            # waits for the next flush, so a batch's tasks go in together.
            session.add(task)
        else:
            try:
                # Another replica may open the same situation at the same moment; the
                # partial unique index on open keys decides who wins.
                with session.begin_nested():
                    session.add(task)
                    session.flush()
            except IntegrityError:
                return None
        self._history(session, task, "opened", _opened_for(owner), actor, now)
        self._queue_alerts(session, [task], now)
        _note_opened(session, [task])
        return task

    def _queue_alerts(self, session: Session, tasks: Iterable[m.Task], now: datetime) -> None:
        if not self.alerts or session.info.get(_QUIET):
            return
        for task in tasks:
            for channel in self.alerts.channels_for(task.category, task.due_at, now):
                values = {"channel": channel, "status": "pending", "attempts": 0}
                values |= {"created_at": now, "next_attempt_at": now}
                _record(session, task, m.AlertOutbox, values)

    def _settled(self, session: Session, intent: OpenTask, observed_at: datetime | None) -> bool:
        """Is this situation open already, or resolved by news at least this new?"""
        known = readahead.read_ahead(session).tasks_of.get(intent.refs.application_id or "")
        if known is not None:  # every task of the application was read ahead
            return any(
                t.key == intent.key
                and (
                    t.status == OPEN
                    or (
                        observed_at is not None
                        and t.resolved_observation_at is not None
                        and t.resolved_observation_at > observed_at
                    )
                )
                for t in known
            )
        settled = col(m.Task.status) == OPEN
        if observed_at is not None:
            settled = or_(settled, col(m.Task.resolved_observation_at) > observed_at)
        query = select(col(m.Task.id)).where(col(m.Task.key) == intent.key, settled)
        return session.scalars(query).first() is not None

    def open_many(
        self, session: Session, intents: Iterable[OpenTask], *, actor: str
    ) -> list[m.Task]:
        """Open many tasks at once (the sweep); callers have excluded existing situations."""
        now = self.clock()
        owners: dict[tuple[object, ...], assignment.Assignment] = {}
        pending = list(intents)
        tasks = []
        opened_for: list[str] = []
        for intent in pending:
            category = CATEGORY_BY_NAME[intent.category]
            role, refs = category.assignee, intent.refs
            per_candidate = role is Role.CANDIDATE_COORDINATOR
            cache_key = (
                role,
                refs.job_id,
                refs.stage_id,
                refs.application_id if per_candidate else None,
                refs.candidate_id if per_candidate else None,
            )
            if cache_key not in owners:
                owners[cache_key] = self.assignment_for(session, role, refs)
            tasks.append(_new_task(intent, owners[cache_key], now, self.rules))
            opened_for.append(_opened_for(owners[cache_key]))
        if not tasks:
            return []
        try:
            with session.begin_nested():
                session.add_all(tasks)
                session.flush()
        except IntegrityError:
            # Someone opened one of these meanwhile (another replica): go one by one.
            return [t for t in (self.open(session, i, actor=actor) for i in pending) if t]
        entries = []
        for t, detail in zip(tasks, opened_for, strict=True):
            opened = {"at": now, "action": "opened", "detail": detail}
            entries.append(_Entry(t, {**opened, "actor": actor}, None))
        _insert_history(session, entries)
        self._queue_alerts(session, tasks, now)
        _note_opened(session, tasks)
        return tasks

    def finish(
        self, session: Session, task: m.Task, resolution: Resolution, reason: str, actor: str
    ) -> None:
        """Complete one open task automatically (``action_taken`` or ``obsolete``)."""
        self._complete(session, task, resolution, None, reason, actor, self.clock())

    def close(
        self,
        session: Session,
        intent: CloseTasks,
        *,
        actor: str,
        observed_at: datetime | None = None,
    ) -> list[m.Task]:
        closed = []
        now = self.clock()
        for task in self._open_matching(session, intent):
            self._complete(
                session, task, intent.resolution, None, intent.reason, actor, now, observed_at
            )
            closed.append(task)
        return closed

    def _open_matching(self, session: Session, intent: CloseTasks) -> list[m.Task]:
        known = readahead.read_ahead(session).tasks_of.get(intent.match.get("application_id") or "")
        if known is not None:  # every task of the application was read ahead (and locked)
            return [
                t
                for t in known
                if t.category == intent.category
                and t.status == OPEN
                and all(getattr(t, column) == value for column, value in intent.match.items())
            ]
        query = select(m.Task).where(
            col(m.Task.category) == intent.category, col(m.Task.status) == OPEN
        )
        for column, value in intent.match.items():
            query = query.where(getattr(m.Task, column) == value)
        return list(session.scalars(query.with_for_update()))

    # --- people ---------------------------------------------------------------------------

    def complete(self, session: Session, task_id: int, *, by: str) -> m.Task:
        """Complete a task by hand (``manual``), recording who did it."""
        task = self._get_for_update(session, task_id)
        if task.status != OPEN:
            raise TaskAlreadyCompleted(f"task {task_id} is already completed")
        by = by.lower()
        self._complete(session, task, Resolution.MANUAL, by, f"completed by {by}", by, self.clock())
        return task

    def assign(self, session: Session, task_id: int, *, to: str, by: str) -> m.Task:
        """Reassign one task by hand; it stays there when owners change later."""
        task = self._get_for_update(session, task_id)
        if task.status != OPEN:
            raise TaskAlreadyCompleted(f"task {task_id} is already completed")
        self._reassign(session, task, to.lower(), assignment.MANUAL, by.lower(), "by hand")
        return task

    def complete_many(self, session: Session, task_ids: Sequence[int], *, by: str) -> BulkResult:
        """Complete several tasks by hand; those that cannot be are skipped, with why."""
        by = by.lower()
        now = self.clock()
        wanted = list(dict.fromkeys(task_ids))
        found = {
            t.id: t
            for t in session.scalars(
                select(m.Task).where(col(m.Task.id).in_(wanted)).with_for_update()
            )
        }
        result = BulkResult()
        for task_id in wanted:
            task = found.get(task_id)
            if task is None:
                result.skipped.append((task_id, "no such task"))
            elif task.status != OPEN:
                result.skipped.append((task_id, "already completed"))
            else:
                reason = f"completed by {by}"
                self._complete(session, task, Resolution.MANUAL, by, reason, by, now)
                result.completed.append(task)
        return result

    def snooze(self, session: Session, task_id: int, *, until: datetime, by: str) -> m.Task:
        """Keep an open task out of the open list until ``until``; it stays open."""
        task = self._get_for_update(session, task_id)
        if task.status != OPEN:
            raise TaskAlreadyCompleted(f"task {task_id} is already completed")
        now = self.clock()
        task.snoozed_until, task.updated_at = until, now
        session.add(task)
        detail = f"snoozed until {until.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC"
        self._history(session, task, "snoozed", detail, by.lower(), now)
        return task

    def unsnooze(self, session: Session, task_id: int, *, by: str) -> m.Task:
        """Bring a snoozed task back to the open list now."""
        task = self._get_for_update(session, task_id)
        if task.status != OPEN:
            raise TaskAlreadyCompleted(f"task {task_id} is already completed")
        now = self.clock()
        if task.snoozed_until is not None:
            task.snoozed_until, task.updated_at = None, now
            session.add(task)
            self._history(session, task, "unsnoozed", "back in the open list", by.lower(), now)
        return task

    def hand_over(
        self,
        session: Session,
        *,
        from_: str,
        to: str,
        by: str,
        until: datetime | None = None,
    ) -> HandOverResult:
        """``taskplanner reassign --from A --to B [--until]``: record the hand-over and move
        A's open tasks to B. Those assigned through a role follow the hand-over (new tasks
        go to B too, and they come back to A when it ends); those someone placed on A by
        hand move by hand."""
        from_, to, by = from_.lower(), to.lower(), by.lower()
        ownership.record_handover(session, from_, to, until, by, self.clock())
        followed = self.follow_absences(session, [from_], actor=by)
        query = select(m.Task).where(
            col(m.Task.assignee) == from_,
            col(m.Task.status) == OPEN,
            col(m.Task.assigned_via) == assignment.MANUAL,
        )
        placed = 0
        for task in session.scalars(query.with_for_update()):
            self._reassign(session, task, to, assignment.MANUAL, by, "hand-over")
            placed += 1
        return HandOverResult(followed, placed)

    def end_hand_over(self, session: Session, *, person: str, by: str) -> int | None:
        """``taskplanner reassign --from A --clear``: the tasks that moved because of A's
        recorded hand-over go back to A. None when none was recorded."""
        if not ownership.clear_handover(session, person):
            return None
        return self.follow_absences(session, [person.lower()], actor=by.lower())

    def follow_absences(
        self, session: Session, people: Iterable[str] | None = None, *, actor: str = "taskplanner"
    ) -> int:
        """Move open tasks to the stand-ins of people who are away, and back from those whose
        absence ended (all people, or just these). Level-triggered: the sweep calls it every
        minute, so an ``away_until`` or the end of an out-of-office event needs no timer."""
        ownership.forget_absences(session)
        away = ownership.absences(session, self.rules, self.clock())
        role_assigned = col(m.Task.assigned_via) != assignment.MANUAL
        if people is None:
            leaving = select(m.Task).where(col(m.Task.assignee).in_(list(away)))
            covered = select(m.Task).where(
                col(m.Task.handed_over_from).is_not(None),
                col(m.Task.handed_over_from).not_in(list(away)),
            )
        else:
            wanted = sorted({p.lower() for p in people})
            leaving = select(m.Task).where(col(m.Task.assignee).in_(wanted))
            covered = select(m.Task).where(col(m.Task.handed_over_from).in_(wanted))
        moved = 0
        seen: set[int] = set()
        for query in (leaving, covered):
            query = query.where(col(m.Task.status) == OPEN, role_assigned).order_by(col(m.Task.id))
            for task in list(session.scalars(query.with_for_update())):
                if task.id in seen:
                    continue
                seen.add(task.id)
                moved += self._refresh(session, task, "owner changed", actor)
        return moved

    def refresh_assignments(
        self,
        session: Session,
        *,
        job_id: str | None = None,
        candidate_id: str | None = None,
        assignee: str | None = None,
        everything: bool = False,
        why: str = "owner changed",
        actor: str = "taskplanner",
    ) -> int:
        """Re-resolve open tasks assigned through a role (owner changes follow; hand stays)."""
        query = select(m.Task).where(
            col(m.Task.status) == OPEN, col(m.Task.assigned_via) != assignment.MANUAL
        )
        if job_id is not None:
            query = query.where(col(m.Task.job_id) == job_id)
        elif candidate_id is not None:
            query = query.where(col(m.Task.candidate_id) == candidate_id)
        elif assignee is not None:
            query = query.where(col(m.Task.assignee) == assignee.lower())
        elif not everything:
            return 0
        return sum(self._refresh(session, task, why, actor) for task in session.scalars(query))

    def _refresh(self, session: Session, task: m.Task, why: str, actor: str) -> int:
        """Give one role-assigned task to whom its role resolves to now; 1 if it moved."""
        owner = self.assignment_for(session, Role(task.assigned_via), _task_refs(task))
        before, before_covered = task.assignee, task.handed_over_from
        if (owner.assignee, owner.handed_over_from) == (before, before_covered):
            return 0
        task.handed_over_from = owner.handed_over_from
        if owner.assignee == before:
            session.add(task)  # the same person holds it, now for another reason
            return 0
        if owner.handed_over_from and owner.handed_over_from != before_covered:
            why = owner.why()
        elif before_covered and owner.assignee == before_covered:
            why = f"hand-over from {before_covered} ended"
        self._reassign(session, task, owner.assignee, task.assigned_via, actor, why)
        return 1

    def assignee_for(self, session: Session, role: Role, refs: TaskRefs) -> str:
        return self.assignment_for(session, role, refs).assignee

    def assignment_for(
        self, session: Session, role: Role, refs: TaskRefs
    ) -> assignment.Assignment:
        """Who gets a task of ``role`` about ``refs`` now (SPEC §3: the ownership order, the
        roles' rules, who left, hand-overs)."""
        facts = ownership.owner_facts(session, self.rules, refs, role)
        people = ownership.people(session, self.rules, facts.emails(), self.clock())
        return assignment.assign(role, facts, people)

    # --- internals --------------------------------------------------------------------------

    def _get_for_update(self, session: Session, task_id: int) -> m.Task:
        task = session.scalars(
            select(m.Task).where(col(m.Task.id) == task_id).with_for_update()
        ).first()
        if task is None:
            raise TaskNotFound(f"no task {task_id}")
        return task

    def _complete(
        self,
        session: Session,
        task: m.Task,
        resolution: Resolution,
        by: str | None,
        reason: str,
        actor: str,
        now: datetime,
        observed_at: datetime | None = None,
    ) -> None:
        task.status, task.resolution = COMPLETED, resolution.value
        task.completed_by, task.completion_reason = by, reason
        task.completed_at = task.updated_at = now
        # Provider time of what resolved it; a person's or the sweep's act is "now".
        task.resolved_observation_at = observed_at or now
        session.add(task)
        self._history(session, task, "completed", f"{resolution.value}: {reason}", actor, now)

    def _reassign(
        self, session: Session, task: m.Task, to: str, via: str, actor: str, why: str
    ) -> None:
        now = self.clock()
        before = task.assignee
        task.assignee, task.assigned_via, task.updated_at = to, via, now
        if via == assignment.MANUAL:
            task.handed_over_from = None  # placed by a person: no hand-over moves it back
        session.add(task)
        self._history(session, task, "reassigned", f"{before} → {to} ({why})", actor, now)

    def _history(
        self, session: Session, task: m.Task, action: str, detail: str, actor: str, at: Any
    ) -> None:
        record_history(session, task, at=at, action=action, detail=detail, actor=actor)


def _note_opened(session: Session, tasks: Iterable[m.Task]) -> None:
    """Keep the tasks read ahead for an application complete."""
    known = readahead.read_ahead(session).tasks_of
    for task in tasks:
        if task.application_id in known:
            known[task.application_id].append(task)


_REF_FIELDS = tuple(TaskRefs.__dataclass_fields__)


def _opened_for(owner: assignment.Assignment) -> str:
    if owner.handed_over_from:
        return f"opened for {owner.assignee} ({owner.why()})"
    return f"opened for {owner.assignee}"


def _new_task(
    intent: OpenTask, owner: assignment.Assignment, now: datetime, rules: assignment.OrgRules
) -> m.Task:
    category = CATEGORY_BY_NAME[intent.category]
    due_at = intent.due_at
    if due_at is None and intent.category == "ready_to_schedule":
        due_at = now + rules.schedule_within  # [rules] schedule_within
    return m.Task(
        key=intent.key,
        category=intent.category,
        title=intent.title,
        recommended_action=category.recommended_action,
        action_url=intent.action_url,
        detail=intent.detail,
        assignee=owner.assignee,
        assigned_via=category.assignee.value,
        handed_over_from=owner.handed_over_from,
        status=OPEN,
        created_at=now,
        due_at=due_at,
        updated_at=now,
        **_refs(intent.refs),
    )


def _refs(refs: TaskRefs) -> dict[str, Any]:  # keyword arguments of m.Task
    return {name: getattr(refs, name) for name in _REF_FIELDS}


def _task_refs(task: m.Task) -> TaskRefs:
    return TaskRefs(**{name: getattr(task, name) for name in _REF_FIELDS})


# --- history -------------------------------------------------------------------------------
#
# History rows are plain inserts nobody reads back in the transaction that writes them, so
# they are not ORM objects (each of which the flush would insert alone, to learn its id): they
# wait in the session, are written together by the next flush (when their tasks have ids) or
# at commit, and are dropped with a savepoint that rolls back.

_HISTORY = "task_history_pending"


@dataclass
class _Entry:
    task: m.Task
    values: dict[str, Any]
    transaction: Any  # the (nested) transaction it was written in
    table: Any = m.TaskHistory  # or m.AlertOutbox: rows keyed by the task's id alike


def record_history(session: Session, task: m.Task, **values: Any) -> None:
    _record(session, task, m.TaskHistory, values)


def _record(session: Session, task: m.Task, table: Any, values: dict[str, Any]) -> None:
    transaction = session.get_nested_transaction() or session.get_transaction()
    entry = _Entry(task, values, transaction, table)
    if task.id is not None and not inspect(task).modified:
        # Nothing of this task waits for a flush that would write the entry along (the task
        # was flushed on its own): write it now, in the transaction it belongs to, rather
        # than at a flush that may come inside a savepoint begun later.
        _insert_history(session, [entry])
        return
    session.info.setdefault(_HISTORY, []).append(entry)


def _insert_history(session: Session, entries: list[_Entry]) -> None:
    by_table: dict[Any, list[dict[str, Any]]] = {}
    for e in entries:
        by_table.setdefault(e.table, []).append({"task_id": e.task.id, **e.values})
    for table, rows in by_table.items():
        session.connection().execute(insert(table), rows)


def write_history(session: Session) -> None:
    """Write the waiting history rows now (a flush first, for tasks without an id)."""
    pending: list[_Entry] = session.info.get(_HISTORY) or []
    if any(e.task.id is None for e in pending):
        session.flush()
    _write(session)


def _write(session: Session) -> None:
    pending: list[_Entry] = session.info.get(_HISTORY) or []
    ready = [e for e in pending if e.task.id is not None]
    if not ready:
        return
    session.info[_HISTORY] = [e for e in pending if e.task.id is None]
    _insert_history(session, ready)


@orm_events.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    _write(session)


@orm_events.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.info.get(_HISTORY):
        write_history(session)


@orm_events.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: Any) -> None:
    """Forget what was recorded inside the transaction or savepoint that rolled back."""
    pending: list[_Entry] | None = session.info.get(_HISTORY)
    if not pending:
        return

    def inside(transaction: Any) -> bool:
        while transaction is not None:
            if transaction is previous:
                return True
            transaction = transaction.parent
        return False

    session.info[_HISTORY] = [e for e in pending if not inside(e.transaction)]


def history_of(session: Session, task_id: int) -> Iterable[m.TaskHistory]:
    write_history(session)
    return session.scalars(
        select(m.TaskHistory)
        .where(col(m.TaskHistory.task_id) == task_id)
        .order_by(col(m.TaskHistory.id))
    )
