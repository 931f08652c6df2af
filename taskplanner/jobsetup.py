"""Job set-up done in taskplanner: enabling stages for scheduling, interview templates,
and the job coordinator and stage owners chosen on the page.

The set-up is the recommended action of ``new_job``, ``new_stage`` and ``new_interview``;
storing it emits the events that complete those tasks. Owners are checked against the
roles' rules (SPEC §3) before they are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import ownership
from taskplanner.domain import assignment as asg
from taskplanner.domain import events as ev
from taskplanner.domain.assignment import Choice, OrgRules, Post
from taskplanner.domain.events import DomainEvent
from taskplanner.store import models as m


class SetupNotFound(LookupError):
    pass


class OwnerNotAllowed(ValueError):
    """The person chosen may not hold the post (the roles' rules); the message says why."""

    def __init__(self, breach: asg.RoleBreach) -> None:
        self.breach = breach
        super().__init__(breach.describe())


class Unchanged:
    """Leave a setting as it is (where None already means "back to the default")."""


UNCHANGED = Unchanged()


def check_owner(session: Session, rules: OrgRules, email: str | None, post: Post) -> None:
    """Refuse someone whose role, in [[people]] or the ATS, does not allow ``post``."""
    if email is None:
        return
    breach = ownership.role_breach(session, rules, email, post)
    if breach is not None:
        raise OwnerNotAllowed(breach)


def set_job_coordinator(
    session: Session, job_id: str, email: str | None, *, now: datetime, by: str | None
) -> None:
    """Store the job coordinator chosen on the page (None: back to the default)."""
    if session.get(m.Job, job_id) is None:
        raise SetupNotFound(f"no job {job_id}")
    row = session.get(m.JobSetup, job_id) or m.JobSetup(job_id=job_id, updated_at=now)
    row.coordinator_email = email.lower() if email else None
    row.updated_at, row.updated_by = now, by
    session.add(row)
    session.flush()


def update_stage(
    session: Session,
    job_id: str,
    stage_id: str,
    *,
    now: datetime,
    by: str | None,
    scheduling_enabled: bool | None = None,
    inactivity_alerts: bool | None = None,
    interview_templates: Mapping[str, str] | None = None,
    owner: str | None | Unchanged = UNCHANGED,
) -> list[DomainEvent]:
    """Store a coordinator's set-up of one stage; None leaves a setting as it is (but an
    ``owner`` of None goes back to the default owner)."""
    stage = session.get(m.Stage, stage_id)
    if stage is None or stage.job_id != job_id:
        raise SetupNotFound(f"job {job_id} has no stage {stage_id}")
    setup = session.get(m.StageSetup, stage_id) or m.StageSetup(
        stage_id=stage_id, job_id=job_id, updated_at=now
    )
    out: list[DomainEvent] = []
    if scheduling_enabled is not None:
        setup.scheduling_enabled = scheduling_enabled
        if scheduling_enabled:
            out.append(ev.StageSchedulingEnabled(at=now, job_id=job_id, stage_id=stage_id, by=by))
    if inactivity_alerts is not None:
        setup.inactivity_alerts = inactivity_alerts
    if not isinstance(owner, Unchanged):
        setup.owner_email = owner.lower() if owner else None
    setup.updated_at, setup.updated_by = now, by
    session.add(setup)
    session.info.pop("stage_setup", None)  # the normalizer's per-transaction view
    kinds = {
        k.id: k
        for k in session.scalars(
            select(m.InterviewKind).where(col(m.InterviewKind.stage_id) == stage_id)
        )
    }
    for kind_id, text in (interview_templates or {}).items():
        if kind_id not in kinds:
            raise SetupNotFound(f"stage {stage_id} has no interview {kind_id}")
        template = session.get(m.InterviewTemplate, kind_id) or m.InterviewTemplate(
            interview_kind_id=kind_id, job_id=job_id, stage_id=stage_id, template="", updated_at=now
        )
        template.template, template.updated_at, template.updated_by = text, now, by
        session.add(template)
        if text.strip():
            out.append(
                ev.InterviewTemplateSet(at=now, job_id=job_id, interview_kind_id=kind_id, by=by)
            )
    session.flush()
    return out


@dataclass(frozen=True)
class InterviewKindView:
    id: str
    name: str
    template: str


@dataclass(frozen=True)
class StageView:
    id: str
    name: str
    position: int
    scheduling_enabled: bool  # what applies now: the explicit set-up, else the default
    scheduling_default: bool  # the organisation's `scheduling_stages` default
    inactivity_alerts: bool
    interview_kinds: list[InterviewKindView]
    owner: Choice  # the stage owner, and where it comes from
    owner_on_page: str | None = None  # what the set-up page holds (None: nothing set there)


@dataclass(frozen=True)
class JobView:
    id: str
    name: str
    status: str
    url: str | None
    stages: list[StageView]
    coordinator: Choice  # the job coordinator, and where it comes from
    coordinator_on_page: str | None = None  # what the set-up page holds


def describe_job(session: Session, rules: OrgRules, job_id: str) -> JobView:
    """A job's stages with their set-up as it applies now (for the set-up page and API)."""
    job = session.get(m.Job, job_id)
    if job is None:
        raise SetupNotFound(f"no job {job_id}")
    stages = list(
        session.scalars(
            select(m.Stage)
            .where(col(m.Stage.job_id) == job_id)
            .order_by(col(m.Stage.position), col(m.Stage.id))
        )
    )
    setups = {
        s.stage_id: s
        for s in session.scalars(select(m.StageSetup).where(col(m.StageSetup.job_id) == job_id))
    }
    templates = {
        t.interview_kind_id: t.template
        for t in session.scalars(
            select(m.InterviewTemplate).where(col(m.InterviewTemplate.job_id) == job_id)
        )
    }
    kinds: dict[str, list[InterviewKindView]] = {}
    for kind in session.scalars(
        select(m.InterviewKind)
        .where(col(m.InterviewKind.job_id) == job_id)
        .order_by(col(m.InterviewKind.id))
    ):
        view = InterviewKindView(kind.id, kind.name, templates.get(kind.id, ""))
        kinds.setdefault(kind.stage_id, []).append(view)
    people = ownership.people(session, rules, _named(session, rules, job_id), None)
    coordinator = asg.job_coordinator(ownership.job_facts(session, rules, job_id), people)
    views = []
    for stage in stages:
        owner = asg.stage_owner(ownership.job_facts(session, rules, job_id, stage.id), people)
        setup = setups.get(stage.id)
        default = rules.stage_enabled_by_default(stage.name)
        enabled = default
        if setup is not None and setup.scheduling_enabled is not None:
            enabled = setup.scheduling_enabled
        alerts = rules.stage_inactivity(job_id, stage.name) is not None
        if setup is not None and setup.inactivity_alerts is not None:
            alerts = setup.inactivity_alerts
        views.append(
            StageView(
                id=stage.id,
                name=stage.name,
                position=stage.position,
                scheduling_enabled=enabled,
                scheduling_default=default,
                inactivity_alerts=alerts,
                interview_kinds=kinds.get(stage.id, []),
                owner=owner,
                owner_on_page=setup.owner_email if setup is not None else None,
            )
        )
    coordinator_on_page, _ = ownership.page_owners(session, job_id)
    return JobView(
        job.id, job.name, job.status, job.url, views, coordinator, coordinator_on_page
    )


def _named(session: Session, rules: OrgRules, job_id: str) -> set[str]:
    """Everyone who could own the job or its stages (whose roles and leaving matter)."""
    facts = ownership.job_facts(session, rules, job_id)
    _, owners = ownership.page_owners(session, job_id)
    configured = set(rules.job(job_id).stage_owners.values())
    return facts.emails() | {e.lower() for e in (*owners.values(), *configured)}


def jobs_coordinated_by(session: Session, rules: OrgRules, email: str) -> frozenset[str]:
    """The jobs whose coordinator (as the set-up page shows it) is this person."""
    email = email.lower()
    on_page = {
        job_id
        for job_id, coordinator in session.execute(
            select(col(m.JobSetup.job_id), col(m.JobSetup.coordinator_email))
        ).all()
        if coordinator and coordinator.lower() == email
    }
    configured = {
        job_id
        for job_id, override in rules.jobs.items()
        if override.coordinator and override.coordinator.lower() == email
    }
    rows = session.execute(
        select(col(m.Job.id), col(m.Job.coordinator_email), col(m.Job.recruiter_email))
    ).all()
    maybe = on_page | configured
    for job_id, coordinator, recruiter in rows:
        named = {(coordinator or "").lower(), (recruiter or "").lower()}
        if email in named or email == rules.account_owner.lower():
            maybe.add(job_id)
    known = {job_id for job_id, _, _ in rows}
    out = set()
    for job_id in sorted(maybe & known):
        facts = ownership.job_facts(session, rules, job_id)
        people = ownership.people(session, rules, facts.emails(), None)
        if asg.job_coordinator(facts, people).email == email:
            out.add(job_id)
    return frozenset(out)
