"""The coordinator's page: the task list at ``/`` and the job set-up page (sign-in is in
``signin.py``).

Server-rendered with Jinja2 (autoescaped); ``static/tasks.js`` only enhances it (filters
apply on change, the list refreshes itself, buttons act without a reload). Every button is
a form that works without the script too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
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
    DECLINES,
    BadCursor,
    SortOrder,
    StatusFilter,
    TaskQuery,
    UrgencyCursor,
    integration_advice,
    integration_error,
    list_tasks,
    open_counts,
    parse_cursor,
    related_names,
    snoozed_tasks,
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


SORT_LABELS = {"urgency": "Most urgent first", "newest": "Newest first"}
SNOOZE_CHOICES = (
    ("1h", "For an hour"),
    ("tomorrow", "Until tomorrow morning"),
    ("3d", "For three days"),
    ("monday", "Until next Monday morning"),
)


@dataclass(frozen=True)
class ListView:
    """The list's filters as they appear in the query string (so a view can be bookmarked)."""

    assignee: str
    completed: bool = False
    category: str | None = None
    cursor: str | None = None
    sort: SortOrder = SortOrder.URGENCY
    q: str = ""
    job_id: str | None = None
    my_jobs: bool = False  # the tasks on the jobs the signed-in person coordinates

    def params(self, **changes: Any) -> dict[str, str]:
        view = replace(self, **changes) if changes else self
        out = {"assignee": view.assignee}
        if view.my_jobs:
            out["view"] = "jobs"
        if view.completed:
            out["completed"] = "1"
        if view.category:
            out["category"] = view.category
        if view.q:
            out["q"] = view.q
        if view.job_id:
            out["job"] = view.job_id
        if view.sort is not SortOrder.URGENCY:
            out["sort"] = view.sort.value
        if view.cursor:
            out["cursor"] = view.cursor
        return out

    def url(self, **changes: Any) -> str:
        return "/?" + urlencode(self.params(**changes))

    @classmethod
    def from_request(cls, request: Request, user: PageUser) -> ListView:
        query = request.query_params
        assignee = valid_email(query.get("assignee", "")) or user.email
        category = query.get("category")
        sort = SortOrder.NEWEST if query.get("sort") == "newest" else SortOrder.URGENCY
        cursor = query.get("cursor", "")
        try:
            parse_cursor(cursor, sort, MAX_TASK_ID)
        except BadCursor:
            cursor = ""
        job = query.get("job", "")[:200]
        q = query.get("q", "").strip()[:200]
        return cls(
            assignee=assignee,
            completed=query.get("completed", "") in ("1", "on", "true"),
            category=category if category in CATEGORY_BY_NAME else None,
            cursor=cursor or None,
            sort=sort,
            q="".join(ch for ch in q if ch.isprintable()),
            job_id=job if job and ID_PATTERN.fullmatch(job) else None,
            my_jobs=query.get("view") == "jobs",
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
    is_open = task.status == "open"
    decline = task.category in DECLINES
    # A decline's due time is its interview's start (it follows a move).
    due = None if decline else task.due_at
    overdue = is_open and due is not None and due <= now
    due_today = (
        is_open
        and not overdue
        and due is not None
        and due.astimezone(zone).date() == now.astimezone(zone).date()
    )
    due_text = ""
    if due is not None:
        due_text = span_text(now - due if overdue else due - now)
    interview_soon = decline and is_open and task.due_at is not None and task.due_at > now
    interview_today = bool(
        interview_soon
        and task.due_at is not None
        and task.due_at.astimezone(zone).date() == now.astimezone(zone).date()
    )
    snoozed = bool(is_open and task.snoozed_until and task.snoozed_until > now)
    broken = task.category == "broken_integration"
    error = integration_error(task) if broken else ""
    return {
        **task_json(task),
        "title": names.title(task),
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
        "due_today": due_today or interview_today,
        "due_text": due_text,
        "due_local": _local(due, zone),
        "decline": decline,
        "interview_local": _local(task.due_at, zone) if decline else "",
        "interview_in": span_text(task.due_at - now) if interview_soon and task.due_at else "",
        "zone_name": str(zone),
        "declined_by": names.person(task.attendee) if decline else None,
        "comment": task.detail if decline and task.detail else "",
        "error": error,
        "advice": integration_advice(error) if broken else "",
        "waiting": names.waiting(task, now),
        "snoozed": snoozed,
        "snoozed_local": _local(task.snoozed_until, zone) if snoozed else "",
    }


def snooze_until(choice: str, now: datetime, zone: ZoneInfo) -> datetime | None:
    """The instant a snooze choice on the page means (mornings at 09:00 local time)."""
    local = now.astimezone(zone)
    morning = time(9, 0)
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "3d":
        return now + timedelta(days=3)
    if choice == "tomorrow":
        day = local.date() + timedelta(days=1)
    elif choice == "monday":
        day = local.date() + timedelta(days=7 - local.weekday())
    else:
        return None
    return datetime.combine(day, morning, zone).astimezone(UTC)


def list_query(session: Session, runtime: Runtime, view: ListView, user: PageUser) -> TaskQuery:
    status_filter = StatusFilter.ALL if view.completed else StatusFilter.OPEN
    cursor = parse_cursor(view.cursor, view.sort, MAX_TASK_ID) if view.cursor else None
    return TaskQuery(
        assignee=None if view.my_jobs else view.assignee,
        status=status_filter,
        category=view.category,
        before_id=cursor if isinstance(cursor, int) else None,
        after=cursor if isinstance(cursor, UrgencyCursor) else None,
        limit=PAGE_LIMIT,
        sort=view.sort,
        text=view.q or None,
        job_id=view.job_id,
        job_ids=(
            jobsetup.jobs_coordinated_by(session, runtime.rules, user.email)
            if view.my_jobs
            else None
        ),
        now=runtime.clock(),
    )


def list_context(
    session: Session, runtime: Runtime, view: ListView, user: PageUser
) -> dict[str, Any]:
    query = list_query(session, runtime, view, user)
    page = list_tasks(session, query)
    now = runtime.clock()
    snoozed = snoozed_tasks(session, replace(query, category=None, limit=PAGE_LIMIT), now)
    names = related_names(session, page.tasks + snoozed, runtime.config.people_by_email())
    zone = runtime.config.organisation.zone()
    counts = open_counts(session, query=query)
    return {
        "view": view,
        "rows": [task_row(t, names, now, zone) for t in page.tasks],
        "snoozed_rows": [task_row(t, names, now, zone) for t in snoozed],
        "next_url": view.url(cursor=str(page.next_cursor)) if page.next_cursor else None,
        "categories": [
            {"name": c.name, "label": c.label, "count": counts.get(c.name, 0)} for c in CATEGORIES
        ],
        "total_open": sum(counts.values()),
        "category_label": CATEGORY_BY_NAME[view.category].label if view.category else "",
        "live_url": "/tasks/live?" + urlencode(view.params()),
        "snooze_choices": SNOOZE_CHOICES,
        "filtered": bool(view.q or view.job_id or view.category),
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


def job_choices(session: Session) -> list[dict[str, str]]:
    """Jobs for the job filter: those not closed, by name."""
    stmt = (
        select(col(m.Job.id), col(m.Job.name))
        .where(col(m.Job.status) != "closed")
        .order_by(col(m.Job.name), col(m.Job.id))
        .limit(1000)
    )
    return [{"id": job_id, "name": name} for job_id, name in session.execute(stmt).all()]


@router.get("/", response_class=HTMLResponse)
def task_page(request: Request) -> Response:
    auth = authenticator_of(request)
    user = auth.page_user(request)
    if user is None:
        return signin_redirect(request)
    runtime = runtime_of(request)
    view = ListView.from_request(request, user)
    with transaction(runtime.db, read_only=True) as session:
        context = list_context(session, runtime, view, user)
        people = coordinators(session, runtime)
        context["handovers"] = handover_rows(session, runtime)
        context["jobs"] = job_choices(session)
    known = {p["email"] for p in people}
    for email in (user.email, view.assignee):
        if email not in known:
            # Everyone with open tasks is listed already: this person has none.
            people.append({"email": email, "name": None, "open_tasks": 0})
            known.add(email)
    names = {p["email"]: p["name"] for p in people}
    context.update(
        people=people,
        assignee_name=names.get(view.assignee) or view.assignee,
        sort_labels=SORT_LABELS,
    )
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
        context = list_context(session, runtime, view, user)
        context["assignee_name"] = display_name(session, runtime, view.assignee)
        context["people"] = coordinators(session, runtime)
    return render(request, "_tasklist.html", context, user=user)


async def _page_action(
    request: Request,
    task_id: int | None,
    act: Callable[[Session, PageUser, dict[str, Any]], tuple[int, str]],
) -> Response:
    """A button on the list: signed in, CSRF-checked; answers JSON to the page's script and
    a redirect back to the list otherwise (or a message when the task is gone)."""
    auth = authenticator_of(request)
    user = await run_in_threadpool(auth.page_user, request)
    if user is None:
        if wants_json(request):
            return JSONResponse({"detail": "sign in again"}, status.HTTP_401_UNAUTHORIZED)
        return signin_redirect(request)
    form = await request.form()
    auth.check_csrf(request, user, str(form.get(CSRF_FIELD) or ""))
    fields: dict[str, Any] = {key: form.getlist(key) for key in form}
    runtime = runtime_of(request)

    def run() -> tuple[int, str]:
        with transaction(runtime.db) as session:
            try:
                return act(session, user, fields)
            except TaskNotFound:
                session.rollback()
                return 404, "That task no longer exists."
            except TaskAlreadyCompleted:
                session.rollback()
                return 409, "That task was already completed."

    code, text = await run_in_threadpool(run)
    if wants_json(request):
        return JSONResponse({"detail": text}, status_code=code)
    if code in (400, 404, 422):
        return message(request, "Not done", text, code, user)
    # 409 as well: someone (or the ATS) closed it meanwhile; the list shows how.
    return_to = (fields.get("return_to") or [""])[0]
    return RedirectResponse(safe_next(str(return_to)), status.HTTP_303_SEE_OTHER)


def _task_id(task_id: int) -> int:
    return task_id if 0 < task_id <= MAX_TASK_ID else 0  # 0 cannot exist: answered 404


@router.post("/tasks/complete")
async def complete_many_from_page(request: Request) -> Response:
    """The checkboxes and the one button: complete the ticked tasks."""
    runtime = runtime_of(request)

    def act(session: Session, user: PageUser, fields: dict[str, Any]) -> tuple[int, str]:
        raw = [str(v) for v in fields.get("ids", [])][:500]
        ids = [int(v) for v in raw if v.isascii() and v.isdigit() and 0 < int(v) <= MAX_TASK_ID]
        if not ids:
            return 400, "Tick the tasks to complete first."
        result = runtime.pipeline.tasks.complete_many(session, ids, by=user.email)
        done = len(result.completed)
        text = f"Completed {done} task{'s' if done != 1 else ''}."
        if result.skipped:
            whys = sorted({why for _, why in result.skipped})
            text += f" Skipped {len(result.skipped)} ({', '.join(whys)})."
        return 200, text

    return await _page_action(request, None, act)


@router.post("/tasks/{task_id}/complete")
async def complete_from_page(request: Request, task_id: int) -> Response:
    runtime = runtime_of(request)

    def act(session: Session, user: PageUser, fields: dict[str, Any]) -> tuple[int, str]:
        runtime.pipeline.tasks.complete(session, _task_id(task_id), by=user.email)
        return 200, "Task completed."

    return await _page_action(request, task_id, act)


@router.post("/tasks/{task_id}/assign")
async def assign_from_page(request: Request, task_id: int) -> Response:
    """Reassign with the API's checks: an email address, a task that exists and is open."""
    runtime = runtime_of(request)

    def act(session: Session, user: PageUser, fields: dict[str, Any]) -> tuple[int, str]:
        raw = str((fields.get("assignee") or [""])[0]).strip()
        email = valid_email(raw)
        if email is None:
            return 422, f"{raw[:254]!r} is not an email address."
        task = runtime.pipeline.tasks.assign(session, _task_id(task_id), to=email, by=user.email)
        return 200, f"Task reassigned to {task.assignee}."

    return await _page_action(request, task_id, act)


@router.post("/tasks/{task_id}/snooze")
async def snooze_from_page(request: Request, task_id: int) -> Response:
    runtime = runtime_of(request)

    def act(session: Session, user: PageUser, fields: dict[str, Any]) -> tuple[int, str]:
        choice = str((fields.get("until") or [""])[0])
        zone = runtime.config.organisation.zone()
        until = snooze_until(choice, runtime.clock(), zone)
        if until is None:
            return 422, "Choose how long to snooze it."
        runtime.pipeline.tasks.snooze(session, _task_id(task_id), until=until, by=user.email)
        return 200, f"Task snoozed until {_local(until, zone)}."

    return await _page_action(request, task_id, act)


@router.post("/tasks/{task_id}/unsnooze")
async def unsnooze_from_page(request: Request, task_id: int) -> Response:
    runtime = runtime_of(request)

    def act(session: Session, user: PageUser, fields: dict[str, Any]) -> tuple[int, str]:
        runtime.pipeline.tasks.unsnooze(session, _task_id(task_id), by=user.email)
        return 200, "Task back in the list."

    return await _page_action(request, task_id, act)


# --- job set-up ----------------------------------------------------------------------------------


def setup_rows(session: Session, runtime: Runtime, job_id: str) -> list[dict[str, Any]]:
    tasks = tasks_for_job(session, job_id)
    names = related_names(session, tasks, runtime.config.people_by_email())
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
