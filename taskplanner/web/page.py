"""The coordinator's page: the task list at ``/`` and the job set-up page (sign-in is in
``signin.py``).

Server-rendered with Jinja2 (autoescaped); ``static/tasks.js`` only enhances it (filters
apply on change, the list refreshes itself, the checkmark completes without a reload).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import jobsetup, ownership
from taskplanner.clock import span_text
from taskplanner.domain.assignment import Post
from taskplanner.domain.categories import CATEGORIES, CATEGORY_BY_NAME
from taskplanner.engine import TaskAlreadyCompleted, TaskNotFound
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.tasklist import (
    StatusFilter,
    TaskQuery,
    list_tasks,
    open_counts,
    related_names,
    task_json,
    tasks_for_job,
)
from taskplanner.web.api import (
    ID_PATTERN as ID_REGEX,
)
from taskplanner.web.api import (
    MAX_TASK_ID,
    apply_stage_setup,
    authenticator_of,
    coordinators,
    runtime_of,
)
from taskplanner.web.auth import CSRF_FIELD, PageUser, valid_email

HERE = Path(__file__).parent
ID_PATTERN = re.compile(ID_REGEX)
PAGE_LIMIT = 50
RESOLUTION_LABELS = {
    "action_taken": "Done: action taken",
    "obsolete": "No longer needed",
    "manual": "Completed by hand",
}
# Inline scripts and styles are never needed: everything comes from /static.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=environment)
router = APIRouter(include_in_schema=False)


def static_url(name: str) -> str:
    return f"/static/{name}"


environment.globals["static_url"] = static_url


# --- what the page shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListView:
    """The list's filters as they appear in the query string."""

    assignee: str
    completed: bool = False
    category: str | None = None
    cursor: int | None = None

    def params(self, **changes: Any) -> dict[str, str]:
        view = replace(self, **changes) if changes else self
        out = {"assignee": view.assignee}
        if view.completed:
            out["completed"] = "1"
        if view.category:
            out["category"] = view.category
        if view.cursor:
            out["cursor"] = str(view.cursor)
        return out

    def url(self, **changes: Any) -> str:
        return "/?" + urlencode(self.params(**changes))

    @classmethod
    def from_request(cls, request: Request, user: PageUser) -> ListView:
        query = request.query_params
        assignee = valid_email(query.get("assignee", "")) or user.email
        category = query.get("category")
        cursor = query.get("cursor", "")
        return cls(
            assignee=assignee,
            completed=query.get("completed", "") in ("1", "on", "true"),
            category=category if category in CATEGORY_BY_NAME else None,
            cursor=int(cursor) if cursor.isdigit() and 0 < int(cursor) <= MAX_TASK_ID + 1 else None,
        )


def safe_action_url(url: str | None) -> str | None:
    """Only http(s) links and our own paths become hrefs (never ``javascript:``)."""
    if not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %Y, %H:%M") if value else ""


def task_row(task: m.Task, names: Any, now: datetime, zone: ZoneInfo) -> dict[str, Any]:
    action_url = safe_action_url(task.action_url)
    external = bool(action_url and not action_url.startswith("/"))
    if action_url is None:
        action_label = ""
    elif not external:
        action_label = "Set up job" if "/setup" in action_url else "Open"
    else:
        action_label = "Open candidate" if task.candidate_id else "Open in ATS"
    overdue = task.status == "open" and task.due_at is not None and task.due_at <= now
    due_text = ""
    if task.due_at is not None:
        due_text = span_text(now - task.due_at if overdue else task.due_at - now)
    return {
        **task_json(task),
        "action_url": action_url,  # only http(s) or our own pages
        "action_label": action_label,
        "external": external,
        "candidate_name": names.candidate(task),
        "job_name": names.job(task),
        "resolution_label": RESOLUTION_LABELS.get(task.resolution or "", task.resolution),
        "age": span_text(now - task.created_at),
        "created_iso": task.created_at.isoformat(),
        "created_local": _local(task.created_at, zone),
        "completed_iso": task.completed_at.isoformat() if task.completed_at else "",
        "completed_local": _local(task.completed_at, zone),
        "overdue": overdue,
        "due_text": due_text,
    }


def list_context(session: Session, runtime: Runtime, view: ListView) -> dict[str, Any]:
    status_filter = StatusFilter.ALL if view.completed else StatusFilter.OPEN
    page = list_tasks(
        session,
        TaskQuery(
            assignee=view.assignee,
            status=status_filter,
            category=view.category,
            before_id=view.cursor,
            limit=PAGE_LIMIT,
        ),
    )
    names = related_names(session, page.tasks)
    now = runtime.clock()
    zone = runtime.config.organisation.zone()
    counts = open_counts(session, view.assignee)
    return {
        "view": view,
        "rows": [task_row(t, names, now, zone) for t in page.tasks],
        "next_url": view.url(cursor=page.next_cursor) if page.next_cursor else None,
        "categories": [
            {"name": c.name, "label": c.label, "count": counts.get(c.name, 0)} for c in CATEGORIES
        ],
        "total_open": sum(counts.values()),
        "category_label": CATEGORY_BY_NAME[view.category].label if view.category else "",
        "live_url": "/tasks/live?" + urlencode(view.params()),
    }


def display_name(session: Session, runtime: Runtime, email: str) -> str:
    person = runtime.config.people_by_email().get(email)
    if person is not None and person.name:
        return person.name
    user = session.scalars(
        select(col(m.User.name)).where(col(m.User.email) == email).limit(1)
    ).first()
    return user or email


HANDOVER_ORIGINS = {
    "config": "configuration file",
    "reassign": "taskplanner reassign",
    "out_of_office": "out-of-office event",
}


def handover_rows(session: Session, runtime: Runtime) -> list[dict[str, Any]]:
    """Hand-overs in force now, for the list page (SPEC §3)."""
    zone = runtime.config.organisation.zone()
    away = ownership.absences(session, runtime.rules, runtime.clock())
    return [
        {
            "person": a.person,
            "stand_in": a.stand_in,
            "until_text": f"until {_local(a.until, zone)}" if a.until else "for good",
            "origin_text": HANDOVER_ORIGINS.get(a.origin, a.origin),
        }
        for a in sorted(away.values(), key=lambda a: a.person)
    ]


# --- rendering helpers --------------------------------------------------------------------------


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    user: PageUser | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    runtime = runtime_of(request)
    auth = authenticator_of(request)
    base = {
        "org_name": runtime.config.organisation.name,
        "user": user,
        "csrf_token": auth.csrf_token(user) if user else "",
    }
    response = templates.TemplateResponse(
        request, name, {**base, **context}, status_code=status_code, headers=SECURITY_HEADERS
    )
    if user is not None:
        auth.set_cookie(response, user, request)
    return response


def signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/signin?" + urlencode({"next": target}), status.HTTP_303_SEE_OTHER)


def safe_next(value: str | None) -> str:
    """Only paths on this server: never an open redirect to another site."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def message(
    request: Request, heading: str, text: str, status_code: int, user: PageUser | None
) -> HTMLResponse:
    return render(
        request,
        "message.html",
        {"heading": heading, "message": text},
        user=user,
        status_code=status_code,
    )


# --- the task list -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def task_page(request: Request) -> Response:
    auth = authenticator_of(request)
    user = auth.page_user(request)
    if user is None:
        return signin_redirect(request)
    runtime = runtime_of(request)
    view = ListView.from_request(request, user)
    with transaction(runtime.db, read_only=True) as session:
        context = list_context(session, runtime, view)
        people = coordinators(session, runtime)
        context["handovers"] = handover_rows(session, runtime)
    known = {p["email"] for p in people}
    for email in (user.email, view.assignee):
        if email not in known:
            # Everyone with open tasks is listed already: this person has none.
            people.append({"email": email, "name": None, "open_tasks": 0})
            known.add(email)
    names = {p["email"]: p["name"] for p in people}
    context.update(people=people, assignee_name=names.get(view.assignee) or view.assignee)
    return render(request, "tasks.html", context, user=user)


@router.get("/tasks/live", response_class=HTMLResponse)
def task_list_fragment(request: Request) -> Response:
    """The list region alone, for the page's polling (no full reload)."""
    auth = authenticator_of(request)
    user = auth.page_user(request)
    if user is None:
        return JSONResponse({"detail": "sign in again"}, status.HTTP_401_UNAUTHORIZED)
    runtime = runtime_of(request)
    view = ListView.from_request(request, user)
    with transaction(runtime.db, read_only=True) as session:
        context = list_context(session, runtime, view)
        context["assignee_name"] = display_name(session, runtime, view.assignee)
    return render(request, "_tasklist.html", context, user=user)


@router.post("/tasks/{task_id}/complete")
async def complete_from_page(request: Request, task_id: int) -> Response:
    auth = authenticator_of(request)
    user = await run_in_threadpool(auth.page_user, request)
    if user is None:
        if wants_json(request):
            return JSONResponse({"detail": "sign in again"}, status.HTTP_401_UNAUTHORIZED)
        return signin_redirect(request)
    form = await request.form()
    auth.check_csrf(request, user, str(form.get(CSRF_FIELD) or ""))
    runtime = runtime_of(request)
    if not 0 < task_id <= MAX_TASK_ID:
        task_id = 0  # cannot exist; answered as not found below

    def complete() -> tuple[int, str]:
        with transaction(runtime.db) as session:
            try:
                runtime.pipeline.tasks.complete(session, task_id, by=user.email)
            except TaskNotFound:
                return 404, "That task no longer exists."
            except TaskAlreadyCompleted:
                return 409, "That task was already completed."
        return 200, "Task completed."

    code, text = await run_in_threadpool(complete)
    if wants_json(request):
        return JSONResponse({"detail": text}, status_code=code)
    if code == 404:
        return message(request, "Task not found", text, 404, user)
    # 409 as well: someone (or the ATS) closed it meanwhile; the list shows how.
    return RedirectResponse(safe_next(str(form.get("return_to") or "")), status.HTTP_303_SEE_OTHER)


# --- job set-up ----------------------------------------------------------------------------------


def setup_rows(session: Session, runtime: Runtime, job_id: str) -> list[dict[str, Any]]:
    tasks = tasks_for_job(session, job_id)
    names = related_names(session, tasks)
    now = runtime.clock()
    zone = runtime.config.organisation.zone()
    return [task_row(t, names, now, zone) for t in tasks]


SOURCE_LABELS = {
    "page": "set on this page",
    "config": "from the configuration file",
    "ats": "from the ATS",
    "default": "by default",
}


@router.get("/jobs/{job_id}/setup", response_class=HTMLResponse)
def setup_page(request: Request, job_id: str) -> Response:
    auth = authenticator_of(request)
    user = auth.page_user(request)
    if user is None:
        return signin_redirect(request)
    runtime = runtime_of(request)
    if not ID_PATTERN.fullmatch(job_id):
        return message(request, "Job not found", "That is not a job id.", 404, user)
    with transaction(runtime.db, read_only=True) as session:
        try:
            context = setup_context(session, runtime, job_id)
        except jobsetup.SetupNotFound:
            return message(request, "Job not found", f"There is no job {job_id}.", 404, user)
    context["saved"] = request.query_params.get("saved") == "1"
    return render(request, "setup.html", context, user=user)


def setup_context(session: Session, runtime: Runtime, job_id: str) -> dict[str, Any]:
    job = jobsetup.describe_job(session, runtime.rules, job_id)
    return {
        "job": job,
        "job_url": safe_action_url(job.url),
        "setup_rows": setup_rows(session, runtime, job_id),
        "source_labels": SOURCE_LABELS,
        "error": None,
    }


@router.post("/jobs/{job_id}/setup")
async def save_setup(request: Request, job_id: str) -> Response:
    auth = authenticator_of(request)
    user = await run_in_threadpool(auth.page_user, request)
    if user is None:
        return signin_redirect(request)
    form = await request.form()
    auth.check_csrf(request, user, str(form.get(CSRF_FIELD) or ""))
    if not ID_PATTERN.fullmatch(job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not a job id")
    # PostgreSQL refuses NUL in text; a browser never sends one in a textarea anyway.
    fields = {key: str(value).replace("\x00", "") for key, value in form.items()}
    runtime = runtime_of(request)

    def save() -> str | None:
        """None when saved; else what the coordinator must correct (nothing is stored)."""
        with transaction(runtime.db) as session:
            job = jobsetup.describe_job(session, runtime.rules, job_id)
            try:
                owners = chosen_owners(job, fields)
                coordinator = owners.pop("", jobsetup.UNCHANGED)
                if not isinstance(coordinator, jobsetup.Unchanged):
                    jobsetup.check_owner(
                        session, runtime.rules, coordinator, Post.JOB_COORDINATOR
                    )
                    runtime.pipeline.set_job_coordinator(
                        session, job_id, coordinator, by=user.email
                    )
                for stage in job.stages:
                    save_stage(
                        session,
                        runtime,
                        job_id,
                        stage,
                        fields,
                        user.email,
                        owners.get(stage.id, jobsetup.UNCHANGED),
                    )
            except (ValueError, jobsetup.OwnerNotAllowed) as exc:
                session.rollback()
                return str(exc)
        return None

    try:
        problem = await run_in_threadpool(save)
    except jobsetup.SetupNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}") from None
    if problem is not None:
        with transaction(runtime.db, read_only=True) as session:
            context = setup_context(session, runtime, job_id)
        context.update(error=problem, saved=False)
        return render(request, "setup.html", context, user=user, status_code=422)
    return RedirectResponse(
        f"/jobs/{quote(job_id, safe='')}/setup?saved=1", status.HTTP_303_SEE_OTHER
    )


def chosen_owners(
    job: jobsetup.JobView, fields: dict[str, str]
) -> dict[str, str | None | jobsetup.Unchanged]:
    """The job coordinator (key "") and stage owners (by stage id) the form changes.

    Each field holds what is set on the page: a new address sets it, an emptied field goes
    back to the default; an address that is not one is refused (ValueError).
    """
    wanted: list[tuple[str, str, str | None, str]] = [
        ("", "coordinator", job.coordinator_on_page, "Job coordinator")
    ]
    wanted += [
        (stage.id, f"owner:{stage.id}", stage.owner_on_page, f"Owner of {stage.name}")
        for stage in job.stages
    ]
    out: dict[str, str | None | jobsetup.Unchanged] = {}
    for key, field, current, label in wanted:
        if field not in fields:
            continue
        raw = fields[field].strip()
        email = valid_email(raw) if raw else None
        if raw and email is None:
            raise ValueError(f"{label}: {raw[:254]!r} is not an email address.")
        if email != current:
            out[key] = email
    return out


def save_stage(
    session: Session,
    runtime: Runtime,
    job_id: str,
    stage: jobsetup.StageView,
    fields: dict[str, str],
    by: str,
    owner: str | None | jobsetup.Unchanged = jobsetup.UNCHANGED,
) -> None:
    """Store what the form changed for one stage.

    A ticked stage is confirmed explicitly even when the organisation's default already
    enables it: ticking and saving is the set-up the new_job task asks for.
    """
    setup = session.get(m.StageSetup, stage.id)
    enabled = f"enabled:{stage.id}" in fields
    scheduling: bool | None = None
    if enabled and (setup is None or setup.scheduling_enabled is not True):
        scheduling = True
    elif not enabled and stage.scheduling_enabled:
        scheduling = False
    alerts_on = f"alerts:{stage.id}" in fields
    alerts = alerts_on if alerts_on != stage.inactivity_alerts else None
    templates_changed = {
        kind.id: fields[f"template:{kind.id}"][:20_000]
        for kind in stage.interview_kinds
        if f"template:{kind.id}" in fields
        and fields[f"template:{kind.id}"].replace("\r\n", "\n") != kind.template
    }
    unchanged_owner = isinstance(owner, jobsetup.Unchanged)
    if scheduling is None and alerts is None and not templates_changed and unchanged_owner:
        return
    apply_stage_setup(
        session,
        runtime,
        job_id,
        stage.id,
        by=by,
        scheduling_enabled=scheduling,
        inactivity_alerts=alerts,
        interview_templates={k: v.replace("\r\n", "\n") for k, v in templates_changed.items()}
        or None,
        owner=owner,
    )
