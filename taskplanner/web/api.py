"""The JSON API under ``/api``: tasks (list, detail, complete one or many, assign, snooze),
coordinators, job set-up.

Field names are the stable contract of SPEC §4. Lists are newest first (or most urgent
first) and paged with a keyset cursor (``next_cursor`` → ``?cursor=``), so pages stay exact
while tasks are added.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col

from taskplanner import jobsetup
from taskplanner.domain.assignment import Choice, Post
from taskplanner.domain.categories import CATEGORY_NAMES
from taskplanner.engine import TaskAlreadyCompleted, TaskNotFound
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.tasklist import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    BadCursor,
    SortOrder,
    StatusFilter,
    TaskQuery,
    UrgencyCursor,
    get_task,
    history_json,
    list_tasks,
    open_counts_by_assignee,
    parse_cursor,
    task_json,
)
from taskplanner.web.auth import EMAIL, ApiClient, Authenticator

# The names of SPEC §2, as an enum so the OpenAPI document lists them and FastAPI answers
# 422 for anything else.
CategoryName = enum.StrEnum(  # type: ignore[misc]
    "CategoryName", {name: name for name in CATEGORY_NAMES}
)

def invalid(loc: tuple[str, ...], message: str, value: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the documented HTTPValidationError), for a value that
    passes its declared type but not a check made in the handler."""
    return RequestValidationError(
        [{"loc": loc, "msg": message, "type": "value_error", "input": value[:200]}]
    )


# Identifiers come from the ATS; refuse control characters (PostgreSQL rejects NUL in text).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN)]
StageId = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN)]
# Task ids are PostgreSQL INTEGERs: larger numbers cannot name a task (and must not reach SQL).
MAX_TASK_ID = 2**31 - 1
TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID, description="The task's id")]
EmailStr = Annotated[str, Field(max_length=254, pattern=EMAIL.pattern)]
# Roles whose people appear in "Assigned to" even with nothing open.
COORDINATING_ROLES = frozenset({"coordinator", "recruiter", "admin"})


def api_task(runtime: Runtime, task: m.Task) -> dict[str, Any]:
    """A task as the API shows it: links to this server's pages are absolute when
    ``server.public_url`` is set (a client elsewhere cannot follow a relative one)."""
    out = task_json(task)
    url = out.get("action_url")
    public = runtime.config.server.public_url
    if public and isinstance(url, str) and url.startswith("/") and not url.startswith("//"):
        out["action_url"] = runtime.config.server.link(url)
    return out


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def authenticator_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def api_client(request: Request) -> ApiClient:
    return authenticator_of(request).api_client(request)


class ErrorOut(BaseModel):
    detail: str


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorOut, "description": "No tokens configured and not a loopback client"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such task"}
}
_COMPLETED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The task is already completed"}
}

router = APIRouter(prefix="/api", dependencies=[Depends(api_client)], responses=_AUTH_ERRORS)


# --- response and request models -------------------------------------------------------------


# Bodies made of a table's columns derive from its SQLModel field group (store/models.py).
# An answer always carries every field: say so in the schema, defaults or not.
ANSWER = SQLModel.model_config | {"json_schema_serialization_defaults_required": True}


class TaskOut(m.TaskFields):
    model_config = ANSWER
    # The closed vocabularies, spelled out.
    category: CategoryName
    status: Literal["open", "completed"]
    resolution: Literal["action_taken", "obsolete", "manual"] | None
    category_label: str


class HistoryOut(m.TaskHistoryFields):
    model_config = ANSWER


class TaskDetailOut(TaskOut):
    history: list[HistoryOut]


class TaskPageOut(BaseModel):
    tasks: list[TaskOut]
    next_cursor: int | str | None = Field(
        description="Pass as ?cursor= (with the same sort) for the next page; null on the "
        "last page. A number in newest order, a token in urgency order"
    )


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: EmailStr | None = Field(
        default=None, description="Who completed it (history records the API otherwise)"
    )


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: EmailStr
    by: EmailStr | None = None


class BulkCompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=MAX_TASK_ID)]] = Field(min_length=1, max_length=500)
    by: EmailStr | None = Field(
        default=None, description="Who completed them (history records the API otherwise)"
    )


class SkippedOut(BaseModel):
    id: int
    why: str = Field(description='"no such task" or "already completed"')


class BulkCompleteOut(BaseModel):
    completed: list[TaskOut]
    skipped: list[SkippedOut]


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime = Field(description="ISO 8601 with its offset, in the future")
    by: EmailStr | None = None


class CoordinatorOut(BaseModel):
    email: str
    name: str | None
    role: str | None
    open_tasks: int


class CoordinatorsOut(BaseModel):
    coordinators: list[CoordinatorOut]


class OwnerOut(BaseModel):
    email: str
    source: Literal["config", "page", "ats", "default"] = Field(
        description="config: [[jobs]] in the configuration; page: set on the set-up page or "
        "this API; ats: the ATS's hiring team; default: nobody named (a stage's owner is then "
        "the job coordinator, a job's the account owner)"
    )


class InterviewKindOut(m.InterviewKindFields):
    model_config = ANSWER
    template: str


class StageOut(m.StageFields):
    model_config = ANSWER
    scheduling_enabled: bool
    scheduling_default: bool = Field(description="The organisation's default for this stage")
    inactivity_alerts: bool
    interview_kinds: list[InterviewKindOut]
    owner: OwnerOut = Field(description="The stage owner (SPEC §3)")


class JobOut(m.JobFields):
    model_config = ANSWER
    coordinator: OwnerOut = Field(description="The job coordinator (SPEC §3)")
    stages: list[StageOut]


class JobSetupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coordinator: EmailStr | None = Field(
        description="The job coordinator; null: back to the configuration's, else the ATS's"
    )
    by: EmailStr | None = None


class StageSetupIn(m.StageSetupChoices):
    model_config = SQLModel.model_config | {"extra": "forbid"}
    interview_templates: (
        dict[
            Annotated[str, Field(max_length=200)],
            Annotated[str, Field(max_length=20_000, pattern=r"^[^\x00]*$")],
        ]
        | None
    ) = Field(default=None, description="Interview kind id → template text")
    owner: EmailStr | None = Field(
        default=None,
        description="The stage owner; null: back to the configuration's, else the job "
        "coordinator; left out: unchanged",
    )
    by: EmailStr | None = None


# --- tasks ---------------------------------------------------------------------------------------


@router.get("/tasks", response_model=TaskPageOut, summary="List tasks, newest or most urgent first")
def get_tasks(
    request: Request,
    assignee: Annotated[
        str | None,
        Query(
            max_length=254,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Email of the assignee; empty or left out: everyone",
        ),
    ] = None,
    status_: Annotated[StatusFilter, Query(alias="status")] = StatusFilter.OPEN,
    category: Annotated[
        CategoryName | Literal[""] | None,
        Query(description="One of the categories of SPEC §2; empty or left out: all"),
    ] = None,
    sort: Annotated[
        SortOrder,
        Query(
            description="newest: highest id first. urgency: overdue first (most overdue on "
            "top), then due soonest, then those without a due time, newest first"
        ),
    ] = SortOrder.NEWEST,
    cursor: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=CURSOR_PATTERN,
            description="A next_cursor from the previous page, in the same sort order",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Text the candidate's name, the job's name or the title contains "
            "(any case); empty or left out: no search",
        ),
    ] = None,
    job_id: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    ] = None,
    stage_id: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    ] = None,
    job_coordinator: Annotated[
        str | None,
        Query(
            max_length=254,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Email: the tasks on the jobs this person coordinates, whoever "
            "holds them",
        ),
    ] = None,
    include_snoozed: Annotated[
        bool, Query(description="Also the open tasks snoozed until a later time")
    ] = False,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    sort_order = SortOrder(sort)
    before_id: int | None = None
    after: UrgencyCursor | None = None
    if cursor:
        try:
            parsed = parse_cursor(cursor, sort_order, MAX_TASK_ID)
        except BadCursor as exc:
            raise invalid(("query", "cursor"), str(exc), cursor) from None
        if isinstance(parsed, UrgencyCursor):
            after = parsed
        else:
            before_id = parsed
    query = TaskQuery(
        assignee=assignee,
        status=status_,
        category=str(category) if category else None,
        before_id=before_id,
        limit=limit,
        sort=sort_order,
        after=after,
        text=q.strip() if q and q.strip() else None,
        job_id=job_id or None,
        stage_id=stage_id or None,
        include_snoozed=include_snoozed,
        now=runtime.clock(),
    )
    with transaction(runtime.db, read_only=True) as session:
        if job_coordinator:
            jobs = jobsetup.jobs_coordinated_by(session, runtime.rules, job_coordinator)
            query = replace(query, job_ids=jobs)
        page = list_tasks(session, query)
        tasks = [api_task(runtime, t) for t in page.tasks]
        return {"tasks": tasks, "next_cursor": page.next_cursor}


@router.post(
    "/tasks/complete",
    response_model=BulkCompleteOut,
    summary="Complete several tasks by hand; says which were completed and which skipped, why",
)
def complete_tasks(
    request: Request,
    body: BulkCompleteIn,
    client: Annotated[ApiClient, Depends(api_client)],
) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db) as session:
        result = runtime.pipeline.tasks.complete_many(session, body.ids, by=body.by or client.actor)
        return {
            "completed": [api_task(runtime, t) for t in result.completed],
            "skipped": [{"id": i, "why": why} for i, why in result.skipped],
        }


@router.get(
    "/tasks/{task_id}",
    response_model=TaskDetailOut,
    responses=_NOT_FOUND,
    summary="One task with its history",
)
def get_one_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db, read_only=True) as session:
        task = get_task(session, task_id)
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}")
        return {**api_task(runtime, task), "history": history_json(session, task_id)}


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskOut,
    responses={**_NOT_FOUND, **_COMPLETED},
    summary="Complete a task by hand (resolution manual, recording who)",
)
def complete_task(
    request: Request,
    task_id: TaskId,
    client: Annotated[ApiClient, Depends(api_client)],
    body: Annotated[CompleteIn | None, Body()] = None,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    by = (body.by if body else None) or client.actor
    with transaction(runtime.db) as session, _task_errors(task_id):
        return api_task(runtime, runtime.pipeline.tasks.complete(session, task_id, by=by))


@router.post(
    "/tasks/{task_id}/assign",
    response_model=TaskOut,
    responses={**_NOT_FOUND, **_COMPLETED},
    summary="Reassign an open task by hand (it then stays when owners change)",
)
def assign_task(
    request: Request,
    task_id: TaskId,
    body: AssignIn,
    client: Annotated[ApiClient, Depends(api_client)],
) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db) as session, _task_errors(task_id):
        task = runtime.pipeline.tasks.assign(
            session, task_id, to=body.assignee, by=body.by or client.actor
        )
        return api_task(runtime, task)


@router.post(
    "/tasks/{task_id}/snooze",
    response_model=TaskOut,
    responses={**_NOT_FOUND, **_COMPLETED},
    summary="Snooze an open task: it stays open, out of the open list until the time given",
)
def snooze_task(
    request: Request,
    task_id: TaskId,
    body: SnoozeIn,
    client: Annotated[ApiClient, Depends(api_client)],
) -> dict[str, Any]:
    runtime = runtime_of(request)
    until = body.until.astimezone(UTC)
    if until <= runtime.clock():
        raise invalid(("body", "until"), "must be in the future", body.until.isoformat())
    with transaction(runtime.db) as session, _task_errors(task_id):
        task = runtime.pipeline.tasks.snooze(
            session, task_id, until=until, by=body.by or client.actor
        )
        return api_task(runtime, task)


@router.post(
    "/tasks/{task_id}/unsnooze",
    response_model=TaskOut,
    responses={**_NOT_FOUND, **_COMPLETED},
    summary="Bring a snoozed task back to the open list now",
)
def unsnooze_task(
    request: Request,
    task_id: TaskId,
    client: Annotated[ApiClient, Depends(api_client)],
    body: Annotated[CompleteIn | None, Body()] = None,
) -> dict[str, Any]:
    runtime = runtime_of(request)
    by = (body.by if body else None) or client.actor
    with transaction(runtime.db) as session, _task_errors(task_id):
        return api_task(runtime, runtime.pipeline.tasks.unsnooze(session, task_id, by=by))


@contextmanager
def _task_errors(task_id: int) -> Iterator[None]:
    """A hand action on a task: 404 when there is none, 409 when it is already completed."""
    try:
        yield
    except TaskNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}") from None
    except TaskAlreadyCompleted:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"task {task_id} is already completed"
        ) from None


# --- people --------------------------------------------------------------------------------------


def coordinators(session: Session, runtime: Runtime) -> list[dict[str, Any]]:
    """People who coordinate (from the configuration) and everyone with open tasks."""
    counts = open_counts_by_assignee(session)
    people = {p.email: p for p in runtime.config.people}
    emails = set(counts) | {e for e, p in people.items() if p.role in COORDINATING_ROLES}
    emails.add(runtime.config.organisation.account_owner)
    names: dict[str, str] = {}
    if emails:
        stmt = select(col(m.User.email), col(m.User.name)).where(col(m.User.email).in_(emails))
        names = {email.lower(): name for email, name in session.execute(stmt).all()}
    out: list[dict[str, Any]] = []
    for email in emails:
        person = people.get(email)
        out.append(
            {
                "email": email,
                "name": (person.name if person else None) or names.get(email),
                "role": person.role if person else None,
                "open_tasks": counts.get(email, 0),
            }
        )
    out.sort(key=lambda c: (str(c["name"] or c["email"]).casefold(), c["email"]))
    return out


@router.get(
    "/coordinators",
    response_model=CoordinatorsOut,
    summary="Coordinators and everyone with open tasks, with their open counts",
)
def get_coordinators(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db, read_only=True) as session:
        return {"coordinators": coordinators(session, runtime)}


# --- job set-up ----------------------------------------------------------------------------------


def job_json(view: jobsetup.JobView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "status": view.status,
        "url": view.url,
        "coordinator": owner_json(view.coordinator),
        "stages": [stage_json(s) for s in view.stages],
    }


def owner_json(choice: Choice) -> dict[str, Any]:
    return {"email": choice.email, "source": choice.source.value}


def stage_json(stage: jobsetup.StageView) -> dict[str, Any]:
    return {
        "id": stage.id,
        "name": stage.name,
        "position": stage.position,
        "scheduling_enabled": stage.scheduling_enabled,
        "scheduling_default": stage.scheduling_default,
        "inactivity_alerts": stage.inactivity_alerts,
        "interview_kinds": [
            {"id": k.id, "name": k.name, "template": k.template} for k in stage.interview_kinds
        ],
        "owner": owner_json(stage.owner),
    }


_NO_JOB: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such job, stage or interview"}
}
_NOT_ALLOWED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorOut,
        "description": "Invalid body, or a person whose role may not hold the post (a job "
        "coordinator is a coordinator, recruiter or admin; a stage owner may also be a hiring "
        "manager, never an interviewer)",
    }
}


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=_NO_JOB,
    summary="A job's stages with their scheduling set-up and interview templates",
)
def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db, read_only=True) as session:
        try:
            return job_json(jobsetup.describe_job(session, runtime.rules, job_id))
        except jobsetup.SetupNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.put(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**_NO_JOB, **_NOT_ALLOWED},
    summary="Set the job coordinator (null: back to the default)",
    description="Open tasks assigned through the job's roles follow the new coordinator; "
    "tasks reassigned by hand stay where a person put them.",
)
def put_job(
    request: Request,
    job_id: JobId,
    body: JobSetupIn,
    client: Annotated[ApiClient, Depends(api_client)],
) -> dict[str, Any]:
    runtime = runtime_of(request)
    with transaction(runtime.db) as session, _setup_errors():
        jobsetup.check_owner(session, runtime.rules, body.coordinator, Post.JOB_COORDINATOR)
        runtime.pipeline.set_job_coordinator(
            session, job_id, body.coordinator, by=body.by or client.actor
        )
        return job_json(jobsetup.describe_job(session, runtime.rules, job_id))


@contextmanager
def _setup_errors() -> Iterator[None]:
    """404 for an unknown job or stage, 422 for an owner the roles' rules refuse."""
    try:
        yield
    except jobsetup.SetupNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except jobsetup.OwnerNotAllowed as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None


@router.put(
    "/jobs/{job_id}/stages/{stage_id}",
    response_model=StageOut,
    responses={**_NO_JOB, **_NOT_ALLOWED},
    summary="Set up a stage: scheduling, inactivity alerts, interview templates",
    description="Enabling a stage completes the job's new_job and the stage's new_stage "
    "tasks; a non-empty template completes the interview's new_interview task "
    "(resolution action_taken). A new owner takes the open tasks assigned through the "
    "stage's roles (not those placed by hand). Omitted fields stay as they are.",
)
def put_stage(
    request: Request,
    job_id: JobId,
    stage_id: StageId,
    body: StageSetupIn,
    client: Annotated[ApiClient, Depends(api_client)],
) -> dict[str, Any]:
    runtime = runtime_of(request)
    owner = body.owner if "owner" in body.model_fields_set else jobsetup.UNCHANGED
    with transaction(runtime.db) as session, _setup_errors():
        apply_stage_setup(
            session,
            runtime,
            job_id,
            stage_id,
            by=body.by or client.actor,
            scheduling_enabled=body.scheduling_enabled,
            inactivity_alerts=body.inactivity_alerts,
            interview_templates=body.interview_templates,
            owner=owner,
        )
        view = jobsetup.describe_job(session, runtime.rules, job_id)
        return next(stage_json(s) for s in view.stages if s.id == stage_id)


def apply_stage_setup(
    session: Session,
    runtime: Runtime,
    job_id: str,
    stage_id: str,
    *,
    by: str,
    scheduling_enabled: bool | None = None,
    inactivity_alerts: bool | None = None,
    interview_templates: dict[str, str] | None = None,
    owner: str | None | jobsetup.Unchanged = jobsetup.UNCHANGED,
) -> None:
    """Store the set-up and let the engine close the tasks it completes and move those a new
    stage owner takes (one transaction). Raises OwnerNotAllowed for an owner the roles'
    rules refuse."""
    if not isinstance(owner, jobsetup.Unchanged):
        jobsetup.check_owner(session, runtime.rules, owner, Post.STAGE_OWNER)
    runtime.pipeline.set_up_stage(
        session,
        job_id,
        stage_id,
        by=by,
        scheduling_enabled=scheduling_enabled,
        inactivity_alerts=inactivity_alerts,
        interview_templates=interview_templates,
        owner=owner,
    )
