"""The normalizer: compares canonical snapshots with the mirror, stores them, emits events.

Level-triggered: a snapshot is the whole state of an entity at the provider's
``updated_at``. An older snapshot never overwrites a newer one, a duplicate changes
nothing, and the events are the differences, so replays and re-orderings are harmless.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import readahead
from taskplanner.clock import Clock, system_clock
from taskplanner.domain import events as ev
from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import OrgRules
from taskplanner.domain.events import AttendeeRole, DomainEvent
from taskplanner.store import models as m

DELETED = "deleted"
# session.info key of the engine's per-transaction view of people (roles, who left).
PEOPLE_CACHE = "people_facts"
# session.info key set while a source's first sync is stored: what it finds was there before.
BASELINE = "normalizer_baseline"
_Row = TypeVar("_Row", bound=m.Base)


def content_hash(snapshot: Any, *, ignore: tuple[str, ...] = ("updated_at",)) -> str:
    """A digest of what a snapshot says, apart from when it says it."""
    data = {
        f.name: _plain(getattr(snapshot, f.name))
        for f in dataclasses.fields(snapshot)
        if f.name not in ignore
    }
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copies (snapshots are frozen): same JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class StageInterviews:
    has_live: bool = False
    cancelled_schedule_id: str | None = None


class _Mirrored(Protocol):
    updated_at: datetime
    content_hash: str


def _is_stale(row: _Mirrored, at: datetime, digest: str) -> bool:
    """True when the snapshot is older than the mirror or says nothing new.

    A newer snapshot that says nothing new still moves the mirror's time forward: else a
    delayed older snapshot arriving next (the change this one reverted) would look newer
    than the state we hold, and win.
    """
    if at < row.updated_at:
        return True
    if digest == row.content_hash:
        if at > row.updated_at:  # only then: an unchanged poll must not write every row
            row.updated_at = at
        return True
    return False


class Normalizer:
    def __init__(self, rules: OrgRules, clock: Clock = system_clock) -> None:
        self.rules = rules
        self.clock = clock

    def apply(self, session: Session, snapshots: Iterable[sn.Snapshot]) -> list[DomainEvent]:
        """Store every snapshot and return the domain events they cause, in order."""
        snapshots = list(snapshots)
        if len(snapshots) > 1:
            self.read_ahead(session, snapshots)
        out: list[DomainEvent] = []
        for snapshot in snapshots:
            # No flush between snapshots: lookups see rows added meanwhile (the session's
            # pending rows; any query flushes first), and a batch's inserts go in together.
            out.extend(self._apply_one(session, snapshot))
        return out

    @staticmethod
    def read_ahead(session: Session, snapshots: Iterable[sn.Snapshot]) -> None:
        """Load what these snapshots will look up (and their tasks) in a few queries."""
        readahead.tasks(session, readahead.mirror(session, snapshots))

    def _apply_one(self, session: Session, s: sn.Snapshot) -> list[DomainEvent]:
        match s:
            case sn.UserSnapshot():
                return self._user(session, s)
            case sn.JobSnapshot():
                return self._job(session, s)
            case sn.CandidateSnapshot():
                return self._candidate(session, s)
            case sn.ApplicationSnapshot():
                return self._application(session, s)
            case sn.ScheduleSnapshot():
                return self._schedule(session, s)
            case sn.ScorecardSnapshot():
                return self._scorecard(session, s)
            case sn.CalendarEventSnapshot():
                return self._calendar_event(session, s)
            case sn.Deletion():
                return self._deletion(session, s)
        raise TypeError(f"not a snapshot: {type(s).__name__}")

    # --- users and candidates ---------------------------------------------------------

    def _user(self, session: Session, s: sn.UserSnapshot) -> list[DomainEvent]:
        row = readahead.locked(session, m.User, s.id)
        digest = content_hash(s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        left = row is not None and s.deactivated and not row.deactivated
        row = row or m.User(id=s.id, email="", name="", updated_at=s.updated_at, content_hash="")
        row.email, row.name, row.role = s.email.lower(), s.name, s.role
        row.deactivated, row.updated_at, row.content_hash = s.deactivated, s.updated_at, digest
        session.add(row)
        session.flush()
        session.info.pop(PEOPLE_CACHE, None)  # the engine's per-transaction view of people
        return [ev.PersonLeft(at=s.updated_at, email=row.email)] if left else []

    def _candidate(self, session: Session, s: sn.CandidateSnapshot) -> list[DomainEvent]:
        row = readahead.locked(session, m.Candidate, s.id)
        digest = content_hash(s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        out: list[DomainEvent] = []
        coordinator = s.coordinator_email.lower() if s.coordinator_email else None
        if row is None:
            row = m.Candidate(id=s.id, name=s.name, updated_at=s.updated_at, content_hash="")
            if coordinator and self._has_applications(session, s.id):
                # Their application came first (another poll partition) and its tasks went
                # to the stage owner meanwhile.
                out.append(ev.CandidateCoordinatorChanged(at=s.updated_at, candidate_id=s.id))
        elif row.coordinator_email != coordinator:
            out.append(ev.CandidateCoordinatorChanged(at=s.updated_at, candidate_id=s.id))
        row.name, row.email, row.url = s.name, s.email.lower() if s.email else None, s.url
        row.coordinator_email, row.updated_at, row.content_hash = coordinator, s.updated_at, digest
        session.add(row)
        return out

    def _has_applications(self, session: Session, candidate_id: str) -> bool:
        if readahead.read_ahead(session).applications_of.get(candidate_id) is False:
            return False
        query = select(col(m.Application.id)).where(col(m.Application.candidate_id) == candidate_id)
        return session.scalars(query.limit(1)).first() is not None

    # --- jobs, stages, interview kinds ------------------------------------------------

    def _job(self, session: Session, s: sn.JobSnapshot) -> list[DomainEvent]:
        row = readahead.locked(session, m.Job, s.id)
        digest = content_hash(s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        out: list[DomainEvent] = []
        is_new = row is None
        coordinator = _known_owner(s.coordinator_email, row.coordinator_email if row else None)
        recruiter = _known_owner(s.recruiter_email, row.recruiter_email if row else None)
        if row is None:
            row = m.Job(
                id=s.id,
                name=s.name,
                status=s.status.value,
                created_at=s.created_at,
                updated_at=s.updated_at,
                first_seen_at=self.clock(),
                content_hash=digest,
            )
            if s.status is not sn.JobStatus.CLOSED:
                out.append(ev.JobCreated(at=s.updated_at, job_id=s.id, job_name=s.name, url=s.url))
        else:
            if row.status == DELETED:
                return []
            if s.status is sn.JobStatus.CLOSED and row.status != sn.JobStatus.CLOSED:
                out.append(ev.JobClosed(at=s.updated_at, job_id=s.id))
            if s.published and not row.published:
                out.append(ev.JobPublished(at=s.updated_at, job_id=s.id))
            if (row.coordinator_email, row.recruiter_email) != (coordinator, recruiter):
                out.append(ev.JobOwnerChanged(at=s.updated_at, job_id=s.id))
        row.name, row.status, row.url = s.name, s.status.value, s.url
        if s.published is not None:
            row.published = s.published
        row.coordinator_email, row.recruiter_email = coordinator, recruiter
        row.created_at, row.updated_at, row.content_hash = s.created_at, s.updated_at, digest
        session.add(row)
        if s.stages is not None:
            out.extend(self._stages(session, row, s.stages, announce=not is_new))
            if is_new:
                out.extend(self._adopt_applications(session, row))
        return out

    def _adopt_applications(self, session: Session, job: m.Job) -> list[DomainEvent]:
        """Applications that arrived before their job sat in a stage nobody knew yet.

        Their entry could not tell whether the stage is enabled for scheduling; now it can.
        One that is already scheduled in its stage needs nothing.
        """
        scheduled = (
            select(col(m.Schedule.id))
            .where(
                col(m.Schedule.application_id) == col(m.Application.id),
                col(m.Schedule.stage_id) == col(m.Application.stage_id),
                col(m.Schedule.status).not_in([sn.ScheduleStatus.CANCELLED.value, DELETED]),
            )
            .exists()
        )
        query = select(m.Application).where(
            col(m.Application.job_id) == job.id,
            col(m.Application.status) == sn.ApplicationStatus.ACTIVE.value,
            col(m.Application.stage_id).is_not(None),
            ~scheduled,
        )
        out: list[DomainEvent] = []
        for application in session.scalars(query):
            stage = session.get(m.Stage, application.stage_id)
            if stage is None or stage.job_id != job.id:
                continue
            out.append(
                ev.ApplicationEnteredStage(
                    at=job.updated_at,
                    app=self.app_context(session, application),
                    entered_at=application.stage_entered_at or application.updated_at,
                    scheduling_enabled=self.scheduling_enabled(session, stage),
                    cancelled_schedule_id=self.stage_interviews(
                        session, application.id, stage.id
                    ).cancelled_schedule_id,
                )
            )
        return out

    def _stages(
        self,
        session: Session,
        job: m.Job,
        stages: tuple[sn.StageSnapshot, ...],
        *,
        announce: bool,
    ) -> list[DomainEvent]:
        """Diff a job's stages and interview kinds; a new job's own stages announce nothing."""
        out: list[DomainEvent] = []
        at = job.updated_at
        known = {
            st.id: st
            for st in session.scalars(select(m.Stage).where(col(m.Stage.job_id) == job.id))
        }
        if not known:
            # A job first seen through a webhook has no plan yet (job webhooks carry no stages),
            # so the first snapshot with stages is the plan the job came with, which its new_job
            # task covers (SPEC §2); announcing it would open a new_stage/new_interview per stage.
            # Greenhouse plans always keep Application Review and Offer, so a known plan is
            # never empty.
            announce = False
        seen: set[str] = set()
        for snap in stages:
            seen.add(snap.id)
            stage = known.get(snap.id)
            if stage is None:
                stage = m.Stage(id=snap.id, job_id=job.id, name=snap.name, position=snap.position)
                if announce:
                    out.append(
                        ev.StageCreated(
                            at=at,
                            job_id=job.id,
                            job_name=job.name,
                            stage_id=snap.id,
                            stage_name=snap.name,
                            scheduling_enabled=self.rules.stage_enabled_by_default(snap.name),
                        )
                    )
            stage.name, stage.position = snap.name, snap.position
            session.add(stage)
            if snap.interview_kinds is not None:
                out.extend(self._interview_kinds(session, job, stage, snap, announce=announce))
        for stage_id in known.keys() - seen:
            out.extend(self._remove_stage(session, job.id, stage_id, at))
        return out

    def _interview_kinds(
        self,
        session: Session,
        job: m.Job,
        stage: m.Stage,
        snap: sn.StageSnapshot,
        *,
        announce: bool,
    ) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        query = select(m.InterviewKind).where(col(m.InterviewKind.stage_id) == stage.id)
        known = {k.id: k for k in session.scalars(query)}
        seen = set()
        for kind in snap.interview_kinds or ():
            seen.add(kind.id)
            row = known.get(kind.id)
            if row is None:
                row = m.InterviewKind(id=kind.id, job_id=job.id, stage_id=stage.id, name=kind.name)
                if announce:
                    out.append(
                        ev.InterviewKindCreated(
                            at=job.updated_at,
                            job_id=job.id,
                            job_name=job.name,
                            stage_id=stage.id,
                            stage_name=stage.name,
                            interview_kind_id=kind.id,
                            interview_name=kind.name,
                        )
                    )
            row.name = kind.name
            session.add(row)
        for kind_id in known.keys() - seen:
            session.delete(known[kind_id])
            out.append(
                ev.InterviewKindRemoved(at=job.updated_at, job_id=job.id, interview_kind_id=kind_id)
            )
        return out

    def _remove_stage(
        self, session: Session, job_id: str, stage_id: str, at: datetime
    ) -> list[DomainEvent]:
        session.execute(delete(m.InterviewKind).where(col(m.InterviewKind.stage_id) == stage_id))
        session.execute(delete(m.Stage).where(col(m.Stage.id) == stage_id))
        return [ev.StageRemoved(at=at, job_id=job_id, stage_id=stage_id)]

    def scheduling_enabled(self, session: Session, stage: m.Stage | None) -> bool:
        """A coordinator's explicit set-up wins; else the organisation's stage names."""
        if stage is None:
            return False
        # Most stages have no set-up row; remember that for the transaction, since a missing
        # row is not kept by the identity map and every entry into the stage asks again.
        known: dict[str, m.StageSetup | None] = session.info.setdefault("stage_setup", {})
        if stage.id not in known:
            known[stage.id] = session.get(m.StageSetup, stage.id)
        setup = known[stage.id]
        if setup is not None and setup.scheduling_enabled is not None:
            return setup.scheduling_enabled
        return self.rules.stage_enabled_by_default(stage.name)

    # --- applications -----------------------------------------------------------------

    def app_context(
        self,
        session: Session,
        application: m.Application,
        stage_id: str | None = None,
        *,
        stage_name: str | None = None,
    ) -> ev.ApplicationContext:
        """What a task needs of an application; ``stage_name`` names a stage not stored yet."""
        candidate = readahead.get(session, m.Candidate, application.candidate_id)
        job = readahead.get(session, m.Job, application.job_id)
        stage_id = stage_id or application.stage_id
        stage = readahead.get(session, m.Stage, stage_id) if stage_id else None
        return ev.ApplicationContext(
            application_id=application.id,
            candidate_id=application.candidate_id,
            candidate_name=candidate.name if candidate else f"candidate {application.candidate_id}",
            job_id=application.job_id,
            job_name=job.name if job else f"job {application.job_id}",
            stage_id=stage_id,
            stage_name=stage.name if stage else stage_name,
            url=application.url or (candidate.url if candidate else None),
        )

    def waiting_in_stage(self, session: Session, stage_id: str, at: datetime) -> list[DomainEvent]:
        """Candidates already in a stage that was just enabled for scheduling.

        Enabling a stage is a coordinator saying "schedule people here": those sitting in
        it with nothing scheduled there yet are ready to schedule from now on.
        """
        return self.waiting_in_stages(session, [stage_id], at)

    def waiting_for_scheduling(self, session: Session, at: datetime) -> list[DomainEvent]:
        """Everyone waiting in a stage enabled for scheduling with nothing scheduled there:
        the backlog a coordinator finds on the first day (the go-live pass)."""
        stages = session.scalars(select(m.Stage).order_by(col(m.Stage.id)))
        enabled = [st.id for st in stages if self.scheduling_enabled(session, st)]
        return self.waiting_in_stages(session, enabled, at)

    def waiting_in_stages(
        self, session: Session, stage_ids: list[str], at: datetime
    ) -> list[DomainEvent]:
        a, s = m.Application, m.Schedule
        scheduled_here = exists().where(
            col(s.application_id) == a.id,
            col(s.stage_id) == a.stage_id,
            col(s.status).not_in([sn.ScheduleStatus.CANCELLED.value, DELETED]),
        )
        out: list[DomainEvent] = []
        for start in range(0, len(stage_ids), 500):
            query = select(a).where(
                col(a.stage_id).in_(stage_ids[start : start + 500]),
                col(a.status) == sn.ApplicationStatus.ACTIVE.value,
                ~scheduled_here,
            )
            out += [
                ev.ApplicationEnteredStage(
                    at=at,
                    app=self.app_context(session, application),
                    entered_at=application.stage_entered_at or at,
                    scheduling_enabled=True,
                )
                for application in session.scalars(query.order_by(a.id))
            ]
        return out

    def _application(self, session: Session, s: sn.ApplicationSnapshot) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        if s.candidate is not None:
            out.extend(self._candidate(session, s.candidate))
        if s.job is not None and readahead.get(session, m.Job, s.job_id) is None:
            # A job no poll (and no job webhook) has brought yet: known from now on, as if its
            # job_created webhook had come. A known job is left to its own snapshots.
            out.extend(self._job(session, s.job))
        row = readahead.locked(session, m.Application, s.id)
        digest = content_hash(s, ignore=("updated_at", "candidate", "stage_name", "job"))
        if row is not None and row.status == DELETED:
            _fill_tombstone(row, s)
            return out
        if row is not None and _is_stale(row, s.updated_at, digest):
            _learn_stage_entry(row, s)
            return out
        active = s.status is sn.ApplicationStatus.ACTIVE
        is_new = row is None
        if row is None:
            row = m.Application(
                id=s.id,
                candidate_id=s.candidate_id,
                job_id=s.job_id,
                stage_id=s.stage_id,
                status=s.status.value,
                stage_entered_at=s.stage_entered_at,
                url=s.url,
                updated_at=s.updated_at,
                content_hash=digest,
                first_seen_at=None if session.info.get(BASELINE) else self.clock(),
            )
            session.add(row)
            readahead.read_ahead(session).applications_of[s.candidate_id] = True
            entered = active and s.stage_id is not None
        else:
            was_active = row.status == sn.ApplicationStatus.ACTIVE
            moved = row.stage_id != s.stage_id
            if moved and row.stage_id is not None:
                out.append(
                    ev.ApplicationLeftStage(
                        at=s.updated_at, application_id=s.id, stage_id=row.stage_id
                    )
                )
            if was_active and not active:
                out.append(
                    ev.ApplicationClosed(
                        at=s.updated_at, application_id=s.id, status=s.status.value
                    )
                )
            entered = active and s.stage_id is not None and (moved or not was_active)
            if moved:
                row.stage_entered_at = s.stage_entered_at
            else:  # the same visit (an unrejection resumes it): a report may only refine it
                _learn_stage_entry(row, s)
            row.candidate_id, row.job_id, row.stage_id = s.candidate_id, s.job_id, s.stage_id
            readahead.read_ahead(session).applications_of[s.candidate_id] = True
            row.status, row.url = s.status.value, s.url
            row.updated_at, row.content_hash = s.updated_at, digest
            session.add(row)
        if entered and s.stage_id is not None:
            stage = readahead.get(session, m.Stage, s.stage_id)
            if stage is None and s.stage_name:
                # A stage no poll has brought yet (its job's plan is unknown): the delivery
                # names it, and the organisation's stage names decide. Not stored: a stage
                # kept from a delivery could outlive its removal, and the plan the poll brings
                # is the job's first (SPEC §2); the entry itself is what needs the answer.
                enabled = self.rules.stage_enabled_by_default(s.stage_name)
            else:
                enabled = self.scheduling_enabled(session, stage)
            interviews = self.stage_interviews(session, s.id, s.stage_id)
            out.append(
                ev.ApplicationEnteredStage(
                    at=s.updated_at,
                    app=self.app_context(session, row, stage_name=s.stage_name),
                    entered_at=row.stage_entered_at or s.updated_at,
                    scheduling_enabled=enabled,
                    has_live_schedule_in_stage=interviews.has_live,
                    cancelled_schedule_id=interviews.cancelled_schedule_id,
                )
            )
        if is_new:
            out.extend(self._adopt_schedules(session, row))
        return out

    def _adopt_schedules(self, session: Session, application: m.Application) -> list[DomainEvent]:
        """Say now what schedules stored before their application could not say then.

        Interviews and applications come from different poll partitions, so an interview
        can arrive first; its creation (which completes ``ready_to_schedule``) and the
        declines recorded meanwhile follow the application's own events.
        """
        out: list[DomainEvent] = []
        if readahead.read_ahead(session).schedules_of.get(application.id) is False:
            return out  # read ahead: none were stored before it
        query = select(m.Schedule).where(
            col(m.Schedule.application_id) == application.id,
            col(m.Schedule.status).not_in([sn.ScheduleStatus.CANCELLED.value, DELETED]),
        )
        for schedule in session.scalars(query):
            app = self.app_context(session, application, schedule.stage_id)
            out.append(ev.ScheduleCreated(at=schedule.updated_at, schedule_id=schedule.id, app=app))
            declined = select(m.ScheduleInterviewer).where(
                col(m.ScheduleInterviewer.schedule_id) == schedule.id,
                col(m.ScheduleInterviewer.response) == sn.Response.DECLINED.value,
            )
            for person in session.scalars(declined):
                out.append(
                    self._interviewer_responded(
                        schedule, app, person.email, person.response, None, person.name
                    )
                )
            events = select(m.CalendarEvent).where(
                col(m.CalendarEvent.schedule_id) == schedule.id,
                col(m.CalendarEvent.status) != sn.EventStatus.CANCELLED.value,
            )
            for event in session.scalars(events):
                for attendee in self._attendees(session, event):
                    if attendee.response == sn.Response.DECLINED:
                        out.append(self._responded(session, event, attendee, app, previous=None))
            # Now that its candidate is known, events naming them can be linked too.
            out.extend(self._link_events(session, schedule, app))
        return out

    # --- schedules (ATS interviews) ----------------------------------------------------

    def _schedule(self, session: Session, s: sn.ScheduleSnapshot) -> list[DomainEvent]:
        row = readahead.locked(session, m.Schedule, s.id)
        digest = content_hash(s)
        if row is not None and row.status == DELETED:
            return self._fill_schedule_tombstone(session, row, s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        application = readahead.get(session, m.Application, s.application_id)
        stage_id = s.stage_id or self._stage_of_kind(session, s.interview_kind_id)
        if stage_id is None and application is not None:
            stage_id = row.stage_id if row is not None else application.stage_id
        out: list[DomainEvent] = []
        first_seen = row is None
        was_scheduled = row is not None and row.status != sn.ScheduleStatus.CANCELLED
        moved = row is not None and (row.starts_at, row.ends_at) != (s.starts_at, s.ends_at)
        if row is None:
            row = m.Schedule(
                id=s.id,
                application_id=s.application_id,
                status=s.status.value,
                updated_at=s.updated_at,
                content_hash=digest,
            )
        row.application_id, row.stage_id, row.interview_kind_id = (
            s.application_id,
            stage_id,
            s.interview_kind_id,
        )
        readahead.read_ahead(session).schedules_of[s.application_id] = True
        row.status, row.starts_at, row.ends_at = s.status.value, s.starts_at, s.ends_at
        row.external_event_id, row.updated_at, row.content_hash = (
            s.external_event_id,
            s.updated_at,
            digest,
        )
        session.add(row)
        session.flush()
        if application is None:
            # The application arrives later (another partition): nothing to say yet, but
            # keep the interviewers for then (see _adopt_schedules).
            if s.interviewers is not None:
                self._interviewers(session, row, None, s)
            self._link_events(session, row)
            return out
        app = self.app_context(session, application, stage_id)
        scheduled = s.status is not sn.ScheduleStatus.CANCELLED
        if scheduled and not was_scheduled:
            out.append(ev.ScheduleCreated(at=s.updated_at, schedule_id=s.id, app=app))
        elif not scheduled and (was_scheduled or first_seen):
            # First seen already cancelled: its "scheduled" delivery comes later, stale. The
            # cancellation is news all the same (schedule_cancelled is a state); a baseline's
            # is not, and the engine opens no moment from a baseline (GoLive.MOMENT).
            out.append(self._cancelled(session, s.id, app, application, s.updated_at))
        if moved and scheduled:
            out.append(
                ev.EventMoved(
                    at=s.updated_at, schedule_id=s.id, starts_at=s.starts_at, ends_at=s.ends_at
                )
            )
        if s.interviewers is not None:
            out.extend(self._interviewers(session, row, app, s))
        out.extend(self._link_events(session, row, app))
        return out

    def _stage_of_kind(self, session: Session, kind_id: str | None) -> str | None:
        kind = session.get(m.InterviewKind, kind_id) if kind_id else None
        return kind.stage_id if kind else None

    def _cancelled(
        self,
        session: Session,
        schedule_id: str,
        app: ev.ApplicationContext,
        application: m.Application,
        at: datetime,
    ) -> ev.ScheduleCancelled:
        # Re-scheduling is needed only while the application is still in the interview's stage:
        # a cancellation that reaches us after the candidate moved on (deliveries come in any
        # order) would open a task that nothing closes, since the move came first. Nor while
        # another interview there is on: its replacement may have come first.
        stage_id = app.stage_id
        in_stage = (
            application.status == sn.ApplicationStatus.ACTIVE
            and stage_id is not None
            and application.stage_id == stage_id
        )
        live = (
            in_stage
            and stage_id is not None
            and self.stage_interviews(session, application.id, stage_id).has_live
        )
        return ev.ScheduleCancelled(
            at=at,
            schedule_id=schedule_id,
            app=app,
            application_active=in_stage,
            has_live_schedule_in_stage=live,
        )

    def stage_interviews(
        self, session: Session, application_id: str, stage_id: str
    ) -> StageInterviews:
        """An application's interviews in one stage, as the mirror holds them now.

        Live: neither cancelled nor deleted in the ATS, and not every calendar event of it
        cancelled. The latest cancelled one (by provider time, then id, so every delivery
        order picks the same) is what a schedule_cancelled task opened on entry points to.
        """
        if readahead.read_ahead(session).schedules_of.get(application_id) is False:
            return StageInterviews()
        query = select(
            col(m.Schedule.id), col(m.Schedule.status), col(m.Schedule.updated_at)
        ).where(
            col(m.Schedule.application_id) == application_id,
            col(m.Schedule.stage_id) == stage_id,
        )
        schedules = session.execute(query).all()
        if not schedules:
            return StageInterviews()
        events: dict[str, list[str]] = {}
        linked = select(col(m.CalendarEvent.schedule_id), col(m.CalendarEvent.status)).where(
            col(m.CalendarEvent.schedule_id).in_([row.id for row in schedules])
        )
        for schedule_id, status in session.execute(linked):
            events.setdefault(schedule_id or "", []).append(status)
        live, cancelled = False, []
        for schedule_id, status, updated_at in schedules:
            statuses = events.get(schedule_id, [])
            gone = status in (sn.ScheduleStatus.CANCELLED.value, DELETED) or (
                bool(statuses) and all(st == sn.EventStatus.CANCELLED for st in statuses)
            )
            if gone:
                cancelled.append((updated_at, schedule_id))
            else:
                live = True
        return StageInterviews(
            has_live=live, cancelled_schedule_id=max(cancelled)[1] if cancelled else None
        )

    def _fill_schedule_tombstone(
        self, session: Session, row: m.Schedule, s: sn.ScheduleSnapshot
    ) -> list[DomainEvent]:
        """A snapshot of an interview whose deletion came first (deliveries come in any order).

        Learn whose and in which stage it was, nothing more, and say what the deletion could
        not: that the application's interview was cancelled.
        """
        row.updated_at = max(row.updated_at, s.updated_at)
        if row.application_id:
            return []
        row.application_id, row.interview_kind_id = s.application_id, s.interview_kind_id
        row.stage_id = s.stage_id or self._stage_of_kind(session, s.interview_kind_id)
        session.add(row)
        readahead.read_ahead(session).schedules_of[s.application_id] = True
        application = readahead.get(session, m.Application, s.application_id)
        if application is None:
            return []
        app = self.app_context(session, application, row.stage_id)
        return [self._cancelled(session, row.id, app, application, row.updated_at)]

    def _interviewers(
        self,
        session: Session,
        row: m.Schedule,
        app: ev.ApplicationContext | None,
        s: sn.ScheduleSnapshot,
    ) -> list[DomainEvent]:
        """The ATS's own record of interviewer responses (Greenhouse keeps RSVPs too).

        Without ``app`` (the application is not known yet) they are stored silently.
        """
        out: list[DomainEvent] = []
        query = select(m.ScheduleInterviewer).where(
            col(m.ScheduleInterviewer.schedule_id) == row.id
        )
        known = {i.email: i for i in session.scalars(query)}
        seen = set()
        for person in s.interviewers or ():
            email = person.email.lower()
            seen.add(email)
            before = known.get(email)
            previous = before.response if before else None
            if app is not None and previous != person.response.value:
                out.append(
                    self._interviewer_responded(
                        row, app, email, person.response.value, previous, person.name, s.updated_at
                    )
                )
            item = before or m.ScheduleInterviewer(schedule_id=row.id, email=email, response="")
            item.response, item.name = person.response.value, person.name
            session.add(item)
        for email in known.keys() - seen:
            session.delete(known[email])
            if app is not None:
                out.append(
                    ev.AttendeeRemoved(
                        at=s.updated_at,
                        schedule_id=row.id,
                        role=AttendeeRole.INTERVIEWER,
                        email=email,
                    )
                )
        return out

    def _interviewer_responded(
        self,
        row: m.Schedule,
        app: ev.ApplicationContext,
        email: str,
        response: str,
        previous: str | None,
        name: str | None,
        at: datetime | None = None,
    ) -> ev.AttendeeResponded:
        return ev.AttendeeResponded(
            at=at or row.updated_at,
            schedule_id=row.id,
            app=app,
            role=AttendeeRole.INTERVIEWER,
            email=email,
            response=response,
            previous=previous,
            starts_at=row.starts_at,
            is_future=self._is_future(row.starts_at),
            attendee_name=name,
        )

    def _is_future(self, starts_at: datetime | None) -> bool:
        return starts_at is not None and starts_at > self.clock()

    def _link_events(
        self, session: Session, schedule: m.Schedule, app: ev.ApplicationContext | None = None
    ) -> list[DomainEvent]:
        """Link calendar events that name this schedule and replay their declines.

        Besides the recorded event id and our tag, an event mirrored before the interview
        existed is found the way `_find_schedule` finds one: the candidate among its (non-room)
        attendees during the interview's time. The link is stored, so a later cancellation
        stub without attendees still reaches the schedule.
        """
        ids = [schedule.external_event_id] if schedule.external_event_id else []
        conditions = [col(m.CalendarEvent.schedule_tag) == schedule.id]
        if ids:
            conditions += [
                col(m.CalendarEvent.event_id).in_(ids),
                col(m.CalendarEvent.ical_uid).in_(ids),
            ]
        candidate_email = self._candidate_email(session, schedule)
        if (
            candidate_email
            and schedule.starts_at is not None
            and schedule.ends_at is not None
            and schedule.status not in (sn.ScheduleStatus.CANCELLED.value, DELETED)
        ):
            a, e = m.CalendarAttendee, m.CalendarEvent
            attended = exists().where(
                col(a.connector) == col(e.connector),
                col(a.calendar_id) == col(e.calendar_id),
                col(a.event_id) == col(e.event_id),
                col(a.email) == candidate_email,
                col(a.is_resource).is_(False),
            )
            conditions.append(
                and_(
                    attended,
                    col(e.starts_at) < schedule.ends_at,
                    col(e.ends_at) > schedule.starts_at,
                    col(e.status) != sn.EventStatus.CANCELLED.value,
                )
            )
        query = select(m.CalendarEvent).where(
            or_(*conditions),
            col(m.CalendarEvent.schedule_id).is_(None),
        )
        out: list[DomainEvent] = []
        for event in session.scalars(query):
            event.schedule_id = schedule.id
            session.add(event)
            if app is None or event.status == sn.EventStatus.CANCELLED:
                continue
            for attendee in self._attendees(session, event):
                if attendee.response == sn.Response.DECLINED:
                    out.append(self._responded(session, event, attendee, app, previous=None))
        return out

    def _candidate_email(self, session: Session, schedule: m.Schedule) -> str | None:
        application = readahead.get(session, m.Application, schedule.application_id)
        if application is None:
            return None
        candidate = readahead.get(session, m.Candidate, application.candidate_id)
        return candidate.email.lower() if candidate is not None and candidate.email else None

    def link_crossed_events(self, session: Session) -> list[DomainEvent]:
        """Link the calendar events still unlinked although a schedule names them.

        A schedule links the events stored before it (`_link_events`), an event the schedule
        stored before it (`_find_schedule`). An ATS poll and a calendar poll commit on their
        own, though: on PostgreSQL each can store its half while the other's is not yet
        committed, and then neither sees the other, and the event's declines open nothing.
        Every sync ends with this pass, after its own commits, so the later of two crossing
        syncs links them (found by the fault soak, tests/reliability).
        """
        named = or_(
            col(m.CalendarEvent.event_id) == col(m.Schedule.external_event_id),
            col(m.CalendarEvent.ical_uid) == col(m.Schedule.external_event_id),
        )
        unlinked = exists().where(
            named,
            col(m.CalendarEvent.schedule_id).is_(None),
            col(m.CalendarEvent.out_of_office).is_(False),
        )
        query = select(m.Schedule).where(
            col(m.Schedule.external_event_id).is_not(None), unlinked
        )
        out: list[DomainEvent] = []
        for schedule in session.scalars(query).all():
            application = session.get(m.Application, schedule.application_id)
            app = None
            if application is not None and schedule.status not in (
                sn.ScheduleStatus.CANCELLED.value,
                DELETED,
            ):
                app = self.app_context(session, application, schedule.stage_id)
            out.extend(self._link_events(session, schedule, app))
        return out

    # --- scorecards ---------------------------------------------------------------------

    def _scorecard(self, session: Session, s: sn.ScorecardSnapshot) -> list[DomainEvent]:
        """Mirror a submitted scorecard; a draft only updates one already mirrored.

        Drafts are not mirrored: nothing acts on one (a task waits for the submission), and
        one would go stale unseen. Greenhouse keeps a placeholder draft per assigned
        interviewer (``/v3/interviewers``) and drops it silently with its interviewer or its
        interview (``scorecard_deleted`` fires only for a scorecard deleted on its own:
        grnhse/greenhouse-api-docs source/includes/webhooks/_interview_events.md), which an
        ``updated_at`` poll never sees. A mirrored draft would then stay or not, linked to its
        interview or not, by whether a poll had read it just before.
        """
        row = readahead.locked(session, m.Scorecard, s.id)
        if row is None and not s.submitted:
            return []
        digest = content_hash(s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        was_submitted = row is not None and row.submitted
        row = row or m.Scorecard(
            id=s.id,
            application_id=s.application_id,
            interviewer_email="",
            submitted=False,
            updated_at=s.updated_at,
            content_hash=digest,
        )
        row.application_id, row.schedule_id = s.application_id, s.schedule_id
        row.interviewer_email, row.submitted = s.interviewer_email.lower(), s.submitted
        row.submitted_at, row.updated_at, row.content_hash = s.submitted_at, s.updated_at, digest
        session.add(row)
        if s.submitted and not was_submitted:
            return [
                ev.ScorecardSubmitted(
                    at=s.updated_at,
                    application_id=s.application_id,
                    schedule_id=s.schedule_id,
                    interviewer_email=row.interviewer_email,
                )
            ]
        return []

    # --- calendar events ---------------------------------------------------------------

    def _calendar_event(self, session: Session, s: sn.CalendarEventSnapshot) -> list[DomainEvent]:
        key = (s.connector, s.calendar_id, s.event_id)
        row = readahead.locked(session, m.CalendarEvent, key)
        digest = content_hash(s)
        if row is not None and _is_stale(row, s.updated_at, digest):
            return []
        before_attendees = {a.email: a for a in self._attendees(session, row)} if row else {}
        before_status = row.status if row else None
        before_times = (row.starts_at, row.ends_at) if row else None
        # Google reports a deleted event as a bare "cancelled" stub (id and status only):
        # keep what the mirror knew about it instead of blanking it.
        bare_cancel = row is not None and s.status is sn.EventStatus.CANCELLED and not s.attendees
        if row is None:
            row = m.CalendarEvent(
                connector=s.connector,
                calendar_id=s.calendar_id,
                event_id=s.event_id,
                status=s.status.value,
                updated_at=s.updated_at,
                content_hash=digest,
            )
        if not bare_cancel or s.starts_at is not None:
            row.starts_at, row.ends_at = s.starts_at, s.ends_at
        if not bare_cancel or s.ical_uid is not None:
            row.ical_uid = s.ical_uid
        if not bare_cancel or s.organizer_email is not None:
            row.organizer_email = s.organizer_email.lower() if s.organizer_email else None
        if not bare_cancel or s.title is not None:
            row.title = s.title
        if not bare_cancel or s.schedule_tag is not None:
            row.schedule_tag = s.schedule_tag
        was_away = bool(row.out_of_office)
        if not bare_cancel:
            row.out_of_office = s.out_of_office
        row.status, row.updated_at, row.content_hash = s.status.value, s.updated_at, digest
        away = self._away_changed(row, was_away, before_status, before_times)
        if row.out_of_office:
            session.add(row)
            return away  # an absence, never an interview
        newly_linked = False
        if row.schedule_id is None:
            row.schedule_id = self._find_schedule(session, s)
            newly_linked = row.schedule_id is not None
        session.add(row)
        if not bare_cancel:
            session.execute(delete(m.CalendarAttendee).where(*_attendee_key(row)))
        for a in s.attendees:
            session.add(
                m.CalendarAttendee(
                    connector=s.connector,
                    calendar_id=s.calendar_id,
                    event_id=s.event_id,
                    email=a.email.lower(),
                    response=a.response.value,
                    is_resource=a.is_resource,
                    is_organizer=a.is_organizer,
                    name=a.name,
                    comment=a.comment,
                )
            )
        session.flush()
        schedule = session.get(m.Schedule, row.schedule_id) if row.schedule_id else None
        application = session.get(m.Application, schedule.application_id) if schedule else None
        if schedule is None or application is None:
            return away  # unlinked events are kept but open nothing
        app = self.app_context(session, application, schedule.stage_id)
        if newly_linked:
            before_attendees, before_times = {}, (row.starts_at, row.ends_at)
        return away + self._event_changes(
            session, row, schedule, application, app, before_status, before_times, before_attendees
        )

    def _away_changed(
        self,
        row: m.CalendarEvent,
        was_away: bool,
        before_status: str | None,
        before_times: tuple[datetime | None, datetime | None] | None,
    ) -> list[DomainEvent]:
        """An out-of-office event that appeared, moved, ended or was cancelled changes who
        holds its owner's tasks (with rules.follow_out_of_office)."""
        if not self.rules.follow_out_of_office or not (was_away or row.out_of_office):
            return []
        before = (before_status, before_times, was_away)
        if before == (row.status, (row.starts_at, row.ends_at), bool(row.out_of_office)):
            return []
        return [ev.PersonAwayChanged(at=row.updated_at, email=row.calendar_id.lower())]

    def _event_changes(
        self,
        session: Session,
        row: m.CalendarEvent,
        schedule: m.Schedule,
        application: m.Application,
        app: ev.ApplicationContext,
        before_status: str | None,
        before_times: tuple[datetime | None, datetime | None] | None,
        before_attendees: dict[str, m.CalendarAttendee],
    ) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        cancelled = row.status == sn.EventStatus.CANCELLED
        was_cancelled = before_status == sn.EventStatus.CANCELLED
        if cancelled:
            # First seen cancelled too (a copy of the meeting we had not synced yet): whether
            # the schedule is off must not depend on which copy arrived first.
            if not was_cancelled and self._all_events_cancelled(session, schedule.id):
                cancellation = self._cancelled(
                    session, schedule.id, app, application, row.updated_at
                )
                out.append(cancellation)
            return out
        if was_cancelled:
            # The schedule's events came back: for the coordinator that is a new schedule.
            out.append(ev.ScheduleCreated(at=row.updated_at, schedule_id=schedule.id, app=app))
        if before_times is not None and before_times != (row.starts_at, row.ends_at):
            out.append(
                ev.EventMoved(
                    at=row.updated_at,
                    schedule_id=schedule.id,
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                )
            )
        now_attendees = {a.email: a for a in self._attendees(session, row)}
        for email, attendee in now_attendees.items():
            previous = before_attendees.get(email)
            if previous is None and attendee.response != sn.Response.DECLINED:
                continue
            if previous is not None and previous.response == attendee.response:
                continue
            out.append(
                self._responded(
                    session, row, attendee, app, previous=previous.response if previous else None
                )
            )
        for email in before_attendees.keys() - now_attendees.keys():
            role = self._role(session, before_attendees[email], app)
            out.append(
                ev.AttendeeRemoved(
                    at=row.updated_at, schedule_id=schedule.id, role=role, email=email
                )
            )
        return out

    def _responded(
        self,
        session: Session,
        event: m.CalendarEvent,
        attendee: m.CalendarAttendee,
        app: ev.ApplicationContext,
        *,
        previous: str | None,
    ) -> ev.AttendeeResponded:
        return ev.AttendeeResponded(
            at=event.updated_at,
            schedule_id=event.schedule_id or "",
            app=app,
            role=self._role(session, attendee, app),
            email=attendee.email,
            response=attendee.response,
            previous=previous,
            starts_at=event.starts_at,
            is_future=self._is_future(event.starts_at),
            event_id=f"{event.connector}:{event.calendar_id}/{event.event_id}",
            attendee_name=attendee.name,
            comment=attendee.comment,
        )

    def _role(
        self, session: Session, attendee: m.CalendarAttendee, app: ev.ApplicationContext
    ) -> AttendeeRole:
        if attendee.is_resource:
            return AttendeeRole.ROOM
        candidate = session.get(m.Candidate, app.candidate_id)
        if candidate is not None and candidate.email and candidate.email == attendee.email:
            return AttendeeRole.CANDIDATE
        return AttendeeRole.INTERVIEWER

    def _attendees(self, session: Session, row: m.CalendarEvent | None) -> list[m.CalendarAttendee]:
        if row is None:
            return []
        return list(session.scalars(select(m.CalendarAttendee).where(*_attendee_key(row))))

    def _all_events_cancelled(self, session: Session, schedule_id: str) -> bool:
        query = select(col(m.CalendarEvent.status)).where(
            col(m.CalendarEvent.schedule_id) == schedule_id
        )
        return all(status == sn.EventStatus.CANCELLED for status in session.scalars(query))

    def _find_schedule(self, session: Session, s: sn.CalendarEventSnapshot) -> str | None:
        """ATS-recorded event id, else our tag, else the candidate among the attendees."""
        ids = [i for i in (s.event_id, s.ical_uid) if i]
        found = session.scalars(
            select(col(m.Schedule.id)).where(col(m.Schedule.external_event_id).in_(ids))
        ).first()
        if found:
            return found
        if s.schedule_tag and session.get(m.Schedule, s.schedule_tag) is not None:
            return s.schedule_tag
        if s.starts_at is None or s.ends_at is None:
            return None
        emails = [a.email.lower() for a in s.attendees if not a.is_resource]
        if not emails:
            return None
        query = (
            select(col(m.Schedule.id))
            .join(m.Application, col(m.Application.id) == col(m.Schedule.application_id))
            .join(m.Candidate, col(m.Candidate.id) == col(m.Application.candidate_id))
            .where(
                col(m.Candidate.email).in_(emails),
                col(m.Schedule.starts_at) < s.ends_at,
                col(m.Schedule.ends_at) > s.starts_at,
                col(m.Schedule.status).not_in([sn.ScheduleStatus.CANCELLED.value, DELETED]),
            )
            .order_by(col(m.Schedule.starts_at))
        )
        return session.scalars(query).first()

    # --- deletions ------------------------------------------------------------------------

    def _deletion(self, session: Session, d: sn.Deletion) -> list[DomainEvent]:
        kind = d.kind
        if kind is sn.EntityKind.APPLICATION:
            app_row = readahead.locked(session, m.Application, d.id)
            if app_row is None:
                # Deliveries arrive in any order: keep a tombstone so the application's older
                # snapshots, still on their way, cannot bring it back (with its tasks).
                app_row = m.Application(
                    id=d.id,
                    candidate_id="",
                    job_id="",
                    status=DELETED,
                    updated_at=d.at,
                    content_hash=DELETED,
                )
                session.add(app_row)
                return []
            if app_row.status == DELETED:
                app_row.updated_at = max(app_row.updated_at, d.at)
                return []
            out: list[DomainEvent] = []
            if app_row.status == sn.ApplicationStatus.ACTIVE:
                out.append(ev.ApplicationClosed(at=d.at, application_id=d.id, status=DELETED))
            # A deletion is final, whatever came before it: the tombstone keeps the identity
            # only, so the mirror does not depend on which snapshots happened to arrive first.
            app_row.status, app_row.updated_at = DELETED, max(app_row.updated_at, d.at)
            app_row.stage_id, app_row.stage_entered_at, app_row.content_hash = None, None, DELETED
            session.add(app_row)
            return out
        if kind is sn.EntityKind.SCHEDULE:
            schedule = readahead.locked(session, m.Schedule, d.id)
            if schedule is None:
                # As for applications: an older poll page must not resurrect it.
                session.add(
                    m.Schedule(
                        id=d.id,
                        application_id="",
                        status=DELETED,
                        updated_at=d.at,
                        content_hash=DELETED,
                    )
                )
                return []
            if schedule.status == DELETED:
                return []
            was_cancelled = schedule.status == sn.ScheduleStatus.CANCELLED
            application = session.get(m.Application, schedule.application_id)
            schedule.status, schedule.updated_at = DELETED, max(schedule.updated_at, d.at)
            session.add(schedule)
            if application is None or was_cancelled:
                return []
            app = self.app_context(session, application, schedule.stage_id)
            return [self._cancelled(session, schedule.id, app, application, d.at)]
        if kind is sn.EntityKind.JOB:
            job = readahead.locked(session, m.Job, d.id)
            if job is None or job.status == DELETED:
                return []
            was_closed = job.status == sn.JobStatus.CLOSED
            job.status, job.updated_at = DELETED, max(job.updated_at, d.at)
            session.add(job)
            return [] if was_closed else [ev.JobClosed(at=d.at, job_id=d.id)]
        if kind is sn.EntityKind.STAGE:
            stage = session.get(m.Stage, d.id)
            if stage is None:
                return []
            return self._remove_stage(session, stage.job_id, stage.id, d.at)
        if kind is sn.EntityKind.INTERVIEW_KIND:
            interview = session.get(m.InterviewKind, d.id)
            if interview is None:
                return []
            session.delete(interview)
            return [
                ev.InterviewKindRemoved(at=d.at, job_id=interview.job_id, interview_kind_id=d.id)
            ]
        if kind is sn.EntityKind.CALENDAR_EVENT:
            return self._delete_calendar_event(session, d)
        if kind is sn.EntityKind.SCORECARD:
            session.execute(delete(m.Scorecard).where(col(m.Scorecard.id) == d.id))
        elif kind is sn.EntityKind.CANDIDATE:
            # Nothing to do to the applications here: a deleted candidate's applications come
            # as deletions of their own (Greenhouse's deleted_application_ids, a full sync's
            # present_ids), which close their tasks; a merged-away candidate's applications
            # live on under the survivor. Marking them deleted here, silently, left their
            # open tasks behind and kept merged applications deleted for good.
            pass
        elif kind is sn.EntityKind.USER:
            person = session.get(m.User, d.id)
            if person is not None and not person.deactivated:
                person.deactivated = True
                session.add(person)
                session.flush()
                session.info.pop(PEOPLE_CACHE, None)
                return [ev.PersonLeft(at=d.at, email=person.email)]
        return []

    def _delete_calendar_event(self, session: Session, d: sn.Deletion) -> list[DomainEvent]:
        calendar_id, _, event_id = d.id.rpartition("/")
        row = readahead.locked(session, m.CalendarEvent, (d.connector or "", calendar_id, event_id))
        if row is None or row.status == sn.EventStatus.CANCELLED:
            return []
        # A deleted event is a cancelled one; keeping the row keeps its link and history.
        snapshot = sn.CalendarEventSnapshot(
            connector=row.connector,
            calendar_id=row.calendar_id,
            event_id=row.event_id,
            status=sn.EventStatus.CANCELLED,
            updated_at=max(row.updated_at, d.at),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            ical_uid=row.ical_uid,
            organizer_email=row.organizer_email,
            schedule_tag=row.schedule_tag,
            title=row.title,
            out_of_office=bool(row.out_of_office),
            attendees=tuple(
                sn.AttendeeSnapshot(
                    email=a.email,
                    response=sn.Response(a.response),
                    is_resource=a.is_resource,
                    is_organizer=a.is_organizer,
                    name=a.name,
                    comment=a.comment,
                )
                for a in self._attendees(session, row)
            ),
        )
        return self._calendar_event(session, snapshot)


def _learn_stage_entry(row: m.Application, s: sn.ApplicationSnapshot) -> None:
    """Take the entry time a snapshot reports for the stage the application is in now.

    Only the provider knows when an application entered its stage (Greenhouse: the stage
    history; a stage-change webhook: its own time); a snapshot that does not say (a
    rejection, an unrejection) leaves it unknown (None) rather than guessing. Older
    snapshots count too, and the latest entry reported for the current stage wins: any
    earlier one belongs to an earlier visit. So the mirror ends the same in every delivery
    order, and a poll's millisecond time replaces a webhook's same entry cut to the second.
    """
    entered = s.stage_entered_at
    if s.stage_id != row.stage_id or entered is None:
        return
    if row.stage_entered_at is None or entered > row.stage_entered_at:
        row.stage_entered_at = entered


def _fill_tombstone(row: m.Application, s: sn.ApplicationSnapshot) -> None:
    """An older snapshot of a deleted application: learn who and where it was, nothing more.

    The identity never changes, so every delivery order ends with the same tombstone.
    """
    row.candidate_id, row.job_id, row.url = s.candidate_id, s.job_id, s.url
    row.updated_at = max(row.updated_at, s.updated_at)


def _known_owner(reported: str | None, stored: str | None) -> str | None:
    """A job owner as the snapshot says it: None keeps what we had, "" means nobody."""
    if reported is None:
        return stored
    return reported.lower() or None


def _attendee_key(row: m.CalendarEvent) -> tuple[Any, ...]:
    return (
        col(m.CalendarAttendee.connector) == row.connector,
        col(m.CalendarAttendee.calendar_id) == row.calendar_id,
        col(m.CalendarAttendee.event_id) == row.event_id,
    )
