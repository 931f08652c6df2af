"""Job set-up done in taskplanner: enabling stages for scheduling, interview templates.

The set-up is the recommended action of ``new_job``, ``new_stage`` and ``new_interview``;
storing it emits the events that complete those tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from taskplanner.domain import events as ev
from taskplanner.domain.events import DomainEvent
from taskplanner.store import models as m


class SetupNotFound(LookupError):
    pass


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
) -> list[DomainEvent]:
    """Store a coordinator's set-up of one stage; None leaves a setting as it is."""
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
    setup.updated_at, setup.updated_by = now, by
    session.add(setup)
    kinds = {
        k.id: k
        for k in session.scalars(select(m.InterviewKind).where(m.InterviewKind.stage_id == stage_id))
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
