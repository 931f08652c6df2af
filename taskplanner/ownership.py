"""Ownership as stored: the facts about a task's owners, what is known of people, and the
hand-overs in force, read from the mirror, the set-up and the configuration's rules.

The decisions are pure (``taskplanner.domain.assignment``); this module gathers their inputs
and records the hand-overs made with ``taskplanner reassign``. What it reads once per
transaction is kept in ``session.info`` and dropped where the underlying rows change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import readahead
from taskplanner.domain import assignment as asg
from taskplanner.domain.assignment import Absence, Choice, OrgRules, OwnerFacts, People, Post
from taskplanner.domain.categories import Role, TaskRefs
from taskplanner.domain.snapshots import EventStatus, JobStatus
from taskplanner.normalizer import PEOPLE_CACHE
from taskplanner.store import models as m

OWNER_SETUP = "owner_setup"  # job id -> (coordinator set on the page, {stage id: owner})
ABSENCES = "absences_in_force"
REASSIGN = "reassign"  # Absence.origin of a hand-over recorded with `taskplanner reassign`


# --- owners of a job, a stage, a candidate -----------------------------------------------------


def page_owners(session: Session, job_id: str | None) -> tuple[str | None, dict[str, str]]:
    """The job coordinator and stage owners set on the set-up page for a job."""
    if not job_id:
        return None, {}
    known: dict[str, tuple[str | None, dict[str, str]]] = session.info.setdefault(OWNER_SETUP, {})
    if job_id not in known:
        # One query for both: the job's row (stage "") and its stages' owners.
        job = select(literal(""), col(m.JobSetup.coordinator_email)).where(
            col(m.JobSetup.job_id) == job_id
        )
        stages = select(col(m.StageSetup.stage_id), col(m.StageSetup.owner_email)).where(
            col(m.StageSetup.job_id) == job_id, col(m.StageSetup.owner_email).is_not(None)
        )
        owners = {stage: email for stage, email in session.execute(job.union_all(stages))}
        coordinator = owners.pop("", None)
        known[job_id] = (coordinator, {stage: e for stage, e in owners.items() if e})
    return known[job_id]


def forget_page_owners(session: Session) -> None:
    session.info.pop(OWNER_SETUP, None)


def owner_facts(
    session: Session, rules: OrgRules, refs: TaskRefs, role: Role = Role.STAGE_OWNER
) -> OwnerFacts:
    """What the page, the configuration and the ATS say about one task's owners.

    The stage is the one the task is about: the stage the candidate entered, or their
    interview's stage. It is fixed when the task opens, so a batch of deliveries assigns
    exactly as the same deliveries one at a time would (the mirror is already at the batch's
    end when its events reach the engine); without one, the stage the application is in.
    """
    stage_id = refs.stage_id
    if stage_id is None and role is Role.CANDIDATE_COORDINATOR and refs.application_id:
        application = readahead.get(session, m.Application, refs.application_id)
        if application is not None and application.stage_id:
            stage_id = application.stage_id
    candidate = (
        readahead.get(session, m.Candidate, refs.candidate_id) if refs.candidate_id else None
    )
    return job_facts(
        session,
        rules,
        refs.job_id,
        stage_id,
        candidate_coordinator=candidate.coordinator_email if candidate else None,
    )


def job_facts(
    session: Session,
    rules: OrgRules,
    job_id: str | None,
    stage_id: str | None = None,
    *,
    candidate_coordinator: str | None = None,
) -> OwnerFacts:
    job = readahead.get(session, m.Job, job_id) if job_id else None
    stage = readahead.get(session, m.Stage, stage_id) if stage_id else None
    coordinator_on_page, owners_on_page = page_owners(session, job_id)
    override = rules.job(job_id)
    coordinator: Choice | None = None
    if coordinator_on_page:
        coordinator = Choice(coordinator_on_page, asg.Source.PAGE)
    elif override.coordinator:
        coordinator = Choice(override.coordinator.lower(), asg.Source.CONFIG)
    owner: Choice | None = None
    if stage_id and owners_on_page.get(stage_id):
        owner = Choice(owners_on_page[stage_id], asg.Source.PAGE)
    elif stage is not None and (configured := override.stage_owner(stage.name)):
        owner = Choice(configured, asg.Source.CONFIG)
    return OwnerFacts(
        account_owner=rules.account_owner.lower(),
        job_coordinator_set=coordinator,
        stage_owner_set=owner,
        job_ats_coordinator=job.coordinator_email if job else None,
        job_ats_recruiter=job.recruiter_email if job else None,
        candidate_ats_coordinator=candidate_coordinator,
    )


def job_coordinators(session: Session, rules: OrgRules) -> dict[str, list[str]]:
    """Who coordinates which live (open or draft) jobs, as the set-up names them: the page's
    choice, else the configuration's, else the ATS's. {email: [job id, …]}."""
    live = (JobStatus.OPEN.value, JobStatus.DRAFT.value)
    jobs = session.execute(
        select(col(m.Job.id), col(m.Job.coordinator_email)).where(col(m.Job.status).in_(live))
    ).all()
    on_page = dict(
        session.execute(
            select(col(m.JobSetup.job_id), col(m.JobSetup.coordinator_email)).where(
                col(m.JobSetup.coordinator_email).is_not(None)
            )
        ).all()
    )
    out: dict[str, list[str]] = {}
    for job_id, ats_coordinator in jobs:
        chosen = on_page.get(job_id) or rules.job(job_id).coordinator or ats_coordinator
        if chosen:
            out.setdefault(chosen.lower(), []).append(job_id)
    return out


# --- people ----------------------------------------------------------------------------------


def people(
    session: Session, rules: OrgRules, emails: Iterable[str], now: datetime | None
) -> People:
    """Roles (the configuration's, else the ATS's), who left the ATS, and who is away at
    ``now`` (None: nobody, for showing who owns what regardless of hand-overs)."""
    away = absences(session, rules, now) if now is not None else {}
    wanted = {e.lower() for e in emails} | set(away)
    wanted |= {a.stand_in.lower() for a in away.values() if a.stand_in}
    facts = _people_facts(session, wanted)
    return People(
        config_roles=rules.people_roles,
        ats_roles={e: role for e, (role, _) in facts.items() if role},
        gone=frozenset(e for e, (_, left) in facts.items() if left),
        away=away,
    )


def _people_facts(session: Session, emails: set[str]) -> dict[str, tuple[str | None, bool]]:
    """email -> (role the ATS gives them, deactivated), read once per transaction."""
    known: dict[str, tuple[str | None, bool]] = session.info.setdefault(PEOPLE_CACHE, {})
    missing = sorted(emails - known.keys())
    for start in range(0, len(missing), 500):
        chunk = missing[start : start + 500]
        found: dict[str, tuple[str | None, bool]] = {}
        rows = session.execute(
            select(col(m.User.email), col(m.User.role), col(m.User.deactivated)).where(
                col(m.User.email).in_(chunk)
            )
        )
        for email, role, deactivated in rows:
            before_role, before_left = found.get(email, (None, False))
            found[email] = (before_role or role, before_left or bool(deactivated))
        for email in chunk:
            known[email] = found.get(email, (None, False))
    return {e: known[e] for e in emails}


def role_breach(session: Session, rules: OrgRules, email: str, post: Post) -> asg.RoleBreach | None:
    """Whether ``email`` may not hold ``post`` by what [[people]] or the ATS say."""
    facts = _people_facts(session, {email.lower()})
    ats = {e: role for e, (role, _) in facts.items() if role}
    return People(config_roles=rules.people_roles, ats_roles=ats).breach(email, post)


# --- hand-overs ------------------------------------------------------------------------------


def absences(session: Session, rules: OrgRules, now: datetime) -> dict[str, Absence]:
    """Who is away now and who stands in: [[people]] hand-overs, those recorded with
    ``taskplanner reassign``, and (with rules.follow_out_of_office) out-of-office events on
    synced calendars. One per person (see ``assignment.in_force``)."""
    cached: dict[str, Absence] | None = session.info.get(ABSENCES)
    if cached is not None:
        return cached
    found = list(rules.handovers.values())
    found += [
        Absence(h.person, h.stand_in, REASSIGN, until=h.until)
        for h in session.scalars(select(m.Handover))
    ]
    if rules.follow_out_of_office:
        found += out_of_office(session, rules, now)
    result = asg.in_force(found, now)
    session.info[ABSENCES] = result
    return result


def out_of_office(session: Session, rules: OrgRules, now: datetime) -> list[Absence]:
    """Out-of-office events on synced calendars that hold at ``now``: their owner is away,
    handing over to the ``handover_to`` they name in [[people]] (else the next in line)."""
    e = m.CalendarEvent
    rows = session.execute(
        select(col(e.calendar_id), col(e.starts_at), col(e.ends_at)).where(
            col(e.out_of_office).is_(True),
            col(e.ends_at) > now,
            col(e.starts_at) <= now,
            col(e.status) != EventStatus.CANCELLED.value,
        )
    )
    out = []
    for calendar, starts, ends in rows:
        person = calendar.lower()
        out.append(Absence(person, rules.stand_in_named_by(person), "out_of_office", ends, starts))
    return out


def forget_absences(session: Session) -> None:
    session.info.pop(ABSENCES, None)


def record_handover(
    session: Session, person: str, stand_in: str, until: datetime | None, by: str, now: datetime
) -> None:
    """Store (or replace) the hand-over of ``taskplanner reassign --from --to [--until]``."""
    row = session.get(m.Handover, person.lower()) or m.Handover(
        person=person.lower(), stand_in="", created_at=now, created_by=by
    )
    row.stand_in, row.until, row.created_at, row.created_by = stand_in.lower(), until, now, by
    session.add(row)
    session.flush()
    forget_absences(session)


def clear_handover(session: Session, person: str) -> bool:
    """End the recorded hand-over of ``person``; False when there was none."""
    result = session.execute(delete(m.Handover).where(col(m.Handover.person) == person.lower()))
    forget_absences(session)
    return bool(getattr(result, "rowcount", 0))


def recorded_stand_ins(session: Session) -> dict[str, str]:
    """person -> stand-in of every recorded hand-over (to refuse a cycle)."""
    rows = session.execute(select(col(m.Handover.person), col(m.Handover.stand_in)))
    return {person: stand_in for person, stand_in in rows}


# --- who taskplanner knows -------------------------------------------------------------------


def knows(session: Session, rules: OrgRules, email: str) -> bool:
    """Someone named in the configuration, an ATS user, or anyone who ever had a task."""
    email = email.lower()
    named = {rules.account_owner.lower(), *rules.people_roles, *rules.handovers}
    for job in rules.jobs.values():
        named |= {o.lower() for o in job.stage_owners.values()}
        if job.coordinator:
            named.add(job.coordinator.lower())
    if email in named:
        return True
    if session.scalars(
        select(col(m.User.id)).where(func.lower(col(m.User.email)) == email).limit(1)
    ).first():
        return True
    query = select(col(m.Task.id)).where(col(m.Task.assignee) == email).limit(1)
    return session.scalars(query).first() is not None


# --- role breaches only the ATS knows --------------------------------------------------------


@dataclass(frozen=True)
class AtsRoleBreach:
    """Someone holding a post the role the ATS gives them does not allow; assignment passes
    them over (SPEC §3). [[people]] and the set-up page refuse such a choice themselves."""

    email: str
    role: str
    post: Post
    job_id: str
    job_name: str

    def describe(self) -> str:
        return (
            f"{self.email} is {asg.role_text(self.role)} in the ATS but {self.post} of "
            f"{self.job_name} ({self.job_id}); a {self.post} must be "
            f"{asg.allowed_roles_text(self.post)}: their tasks go to the next in line"
        )


def ats_role_breaches(session: Session, rules: OrgRules) -> list[AtsRoleBreach]:
    """Owners of open jobs whose ATS role breaks the roles' rules (config roles win)."""
    roles = {
        email.lower(): str(role)
        for email, role in session.execute(
            select(col(m.User.email), col(m.User.role)).where(
                col(m.User.role).is_not(None), col(m.User.deactivated).is_(False)
            )
        )
        if email.lower() not in rules.people_roles
    }
    if not roles:
        return []
    suspects = set(roles)
    jobs = session.execute(
        select(
            col(m.Job.id), col(m.Job.name), col(m.Job.coordinator_email), col(m.Job.recruiter_email)
        ).where(col(m.Job.status).in_([JobStatus.OPEN.value, JobStatus.DRAFT.value]))
    ).all()
    names = {job_id: name for job_id, name, _, _ in jobs}
    found: dict[tuple[str, Post, str], AtsRoleBreach] = {}

    def check(email: str | None, post: Post, job_id: str) -> None:
        if not email or email.lower() not in suspects:
            return
        email = email.lower()
        if not asg.may_hold(post, roles[email]):
            found[(email, post, job_id)] = AtsRoleBreach(
                email, roles[email], post, job_id, names.get(job_id, job_id)
            )

    for job_id, _name, coordinator, recruiter in jobs:
        check(coordinator, Post.JOB_COORDINATOR, job_id)
        check(recruiter, Post.JOB_COORDINATOR, job_id)
    for job_id, email in session.execute(
        select(col(m.JobSetup.job_id), col(m.JobSetup.coordinator_email))
    ):
        if job_id in names:
            check(email, Post.JOB_COORDINATOR, job_id)
    for job_id, email in session.execute(
        select(col(m.StageSetup.job_id), col(m.StageSetup.owner_email)).where(
            col(m.StageSetup.owner_email).is_not(None)
        )
    ):
        if job_id in names:
            check(email, Post.STAGE_OWNER, job_id)
    return sorted(found.values(), key=lambda b: (b.job_id, b.email, b.post))
