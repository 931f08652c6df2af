"""The periodic sweep: time-based categories, found in SQL rather than in Python loops.

Opens ``pending_evaluation``, ``inactive_candidate`` and ``job_not_live`` when their
condition has held long enough (``due_at`` is the moment it began), retires decline
tasks whose interview has passed, and moves tasks to and from stand-ins as hand-overs
begin and end. Each situation is opened once: a task completed by hand
is not reopened by the next sweep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner.domain.categories import OpenTask, Resolution, TaskRefs
from taskplanner.domain.snapshots import ApplicationStatus, JobStatus, Response, ScheduleStatus
from taskplanner.engine import OPEN, TaskEngine
from taskplanner.store import models as m

T = TypeVar("T")
CHUNK = 500
ACTOR = "sweep"


@dataclass
class SweepResult:
    opened: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    closed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    opened_tasks: list[m.Task] = field(default_factory=list)
    reassigned: int = 0  # tasks that went to a stand-in, or came back from one


class Sweeper:
    def __init__(self, engine: TaskEngine) -> None:
        self.engine = engine
        self.rules = engine.rules

    def run(self, session: Session, now: datetime | None = None) -> SweepResult:
        now = now or self.engine.clock()
        result = SweepResult()
        for intents in (
            self.overdue_evaluations(session, now),
            self.inactive_applications(session, now),
            self.unpublished_jobs(session, now),
        ):
            for task in self.engine.open_many(session, list(intents), actor=ACTOR):
                result.opened[task.category] += 1
                result.opened_tasks.append(task)
        for category, count in self.passed_declines(session, now).items():
            result.closed[category] += count
        # Hand-overs begin and end with time (away_until, out-of-office spans): follow them.
        result.reassigned = self.engine.follow_absences(session)
        return result

    def overdue_evaluations(self, session: Session, now: datetime) -> list[OpenTask]:
        s, i, a = m.Schedule, m.ScheduleInterviewer, m.Application
        due_after = self.rules.evaluation_due_after
        key = literal("pending_evaluation:") + col(s.id) + literal(":") + col(i.email)
        submitted = exists().where(
            col(m.Scorecard.submitted).is_(True),
            col(m.Scorecard.interviewer_email) == col(i.email),
            or_(
                col(m.Scorecard.schedule_id) == col(s.id),
                and_(
                    col(m.Scorecard.schedule_id).is_(None),
                    col(m.Scorecard.application_id) == col(s.application_id),
                ),
            ),
        )
        # Most declines arrive as calendar RSVPs that the ATS never hears of; someone who
        # declined the event owes no scorecard either.
        e, ea = m.CalendarEvent, m.CalendarAttendee
        declined_on_calendar = exists().where(
            col(e.schedule_id) == col(s.id),
            col(ea.connector) == col(e.connector),
            col(ea.calendar_id) == col(e.calendar_id),
            col(ea.event_id) == col(e.event_id),
            col(ea.email) == col(i.email),
            col(ea.response) == Response.DECLINED.value,
        )
        query = (
            select(
                col(s.id),
                col(s.application_id),
                col(s.stage_id),
                col(s.ends_at),
                col(i.email),
                col(i.name),
                col(a.candidate_id),
                col(a.job_id),
                col(m.Candidate.name),
                col(m.Job.name),
                col(m.Stage.name),
                func.coalesce(col(a.url), col(m.Candidate.url)),
            )
            .join(i, col(i.schedule_id) == col(s.id))
            .join(a, col(a.id) == col(s.application_id))
            .outerjoin(m.Candidate, col(m.Candidate.id) == col(a.candidate_id))
            .outerjoin(m.Job, col(m.Job.id) == col(a.job_id))
            .outerjoin(m.Stage, col(m.Stage.id) == col(s.stage_id))
            .where(
                col(s.status).in_([ScheduleStatus.SCHEDULED.value, ScheduleStatus.COMPLETE.value]),
                col(s.ends_at) < now - due_after,
                col(a.status) == ApplicationStatus.ACTIVE.value,
                col(i.response) != Response.DECLINED.value,
                ~declined_on_calendar,
                ~submitted,
                ~exists().where(col(m.Task.key) == key),
            )
        )
        intents = []
        for row in session.execute(query):
            (
                sid,
                app_id,
                stage_id,
                ends_at,
                email,
                name,
                cand_id,
                job_id,
                cand_name,
                job_name,
                stage_name,
                url,
            ) = row
            intents.append(
                OpenTask(
                    "pending_evaluation",
                    key=f"pending_evaluation:{sid}:{email}",
                    title=(
                        f"Scorecard missing from {name or email} for {cand_name or cand_id} "
                        f"({stage_name or 'interview'}, {job_name or job_id})"
                    ),
                    refs=TaskRefs(
                        job_id=job_id,
                        stage_id=stage_id,
                        application_id=app_id,
                        candidate_id=cand_id,
                        schedule_id=sid,
                        attendee=email,
                    ),
                    action_url=url,
                    due_at=ends_at + due_after if ends_at else None,
                )
            )
        return intents

    def inactivity_thresholds(self, session: Session) -> dict[timedelta, list[str]]:
        """Stage ids grouped by how long an application may sit there (alerts on only)."""
        explicit = dict(
            session.execute(
                select(col(m.StageSetup.stage_id), col(m.StageSetup.inactivity_alerts)).where(
                    col(m.StageSetup.inactivity_alerts).is_not(None)
                )
            ).all()
        )
        groups: dict[timedelta, list[str]] = defaultdict(list)
        for stage_id, job_id, name in session.execute(
            select(col(m.Stage.id), col(m.Stage.job_id), col(m.Stage.name))
        ):
            threshold = self.rules.stage_inactivity(job_id, name)
            alerts = explicit.get(stage_id)
            if alerts is False:
                continue
            if alerts is True and threshold is None:
                threshold = self.rules.inactivity_after
            if threshold is not None:
                groups[threshold].append(stage_id)
        return groups

    def inactive_applications(self, session: Session, now: datetime) -> Iterator[OpenTask]:
        a = m.Application
        already = exists().where(
            col(m.Task.category) == "inactive_candidate",
            col(m.Task.application_id) == col(a.id),
            col(m.Task.stage_id) == col(a.stage_id),
            col(m.Task.created_at) >= col(a.stage_entered_at),
        )
        for threshold, stage_ids in self.inactivity_thresholds(session).items():
            for chunk in _chunks(stage_ids, CHUNK):
                query = (
                    select(
                        col(a.id),
                        col(a.stage_id),
                        col(a.stage_entered_at),
                        col(a.candidate_id),
                        col(a.job_id),
                        col(m.Candidate.name),
                        col(m.Job.name),
                        col(m.Stage.name),
                        func.coalesce(col(a.url), col(m.Candidate.url)),
                    )
                    .outerjoin(m.Candidate, col(m.Candidate.id) == col(a.candidate_id))
                    .outerjoin(m.Job, col(m.Job.id) == col(a.job_id))
                    .outerjoin(m.Stage, col(m.Stage.id) == col(a.stage_id))
                    .where(
                        col(a.status) == ApplicationStatus.ACTIVE.value,
                        col(a.stage_id).in_(chunk),
                        col(a.stage_entered_at) < now - threshold,
                        ~already,
                    )
                )
                rows = session.execute(query)
                for app_id, stage_id, entered, cand_id, job_id, cand, job, stage, url in rows:
                    if entered is None:  # excluded by the query; keeps the types honest
                        continue
                    yield OpenTask(
                        "inactive_candidate",
                        key=f"inactive_candidate:{app_id}:{stage_id}:{entered.isoformat()}",
                        # No length of time here: the page and the email compute the
                        # wait when they show it (a title is written once).
                        title=(
                            f"{cand or cand_id} is waiting in {stage or 'a stage'} "
                            f"({job or job_id})"
                        ),
                        refs=TaskRefs(
                            job_id=job_id,
                            stage_id=stage_id,
                            application_id=app_id,
                            candidate_id=cand_id,
                        ),
                        action_url=url,
                        due_at=entered + threshold,
                    )

    def unpublished_jobs(self, session: Session, now: datetime) -> list[OpenTask]:
        within = self.rules.job_live_within
        key = literal("job_not_live:") + col(m.Job.id)
        query = select(m.Job).where(
            col(m.Job.status) == JobStatus.OPEN.value,
            col(m.Job.published).is_(False),
            col(m.Job.created_at) < now - within,
            ~exists().where(col(m.Task.key) == key),
        )
        return [
            OpenTask(
                "job_not_live",
                key=f"job_not_live:{job.id}",
                title=f"{job.name} is not published yet",
                refs=TaskRefs(job_id=job.id),
                action_url=job.url,
                due_at=job.created_at + within,
            )
            for job in session.scalars(query)
        ]

    def passed_declines(self, session: Session, now: datetime) -> dict[str, int]:
        """A decline on an interview that has already started needs nothing any more."""
        query = select(m.Task).where(
            col(m.Task.status) == OPEN,
            col(m.Task.category).in_(["interviewer_declined", "room_declined"]),
            col(m.Task.due_at) < now,
        )
        closed: dict[str, int] = defaultdict(int)
        for task in session.scalars(query.with_for_update()):
            self.engine.finish(
                session, task, Resolution.OBSOLETE, "the interview has passed", ACTOR
            )
            closed[task.category] += 1
        return closed


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
