"""The daily digest: one email per person with open tasks, at ``digest.send_at`` local time.

Each email counts the open tasks per category, lists the overdue and then the oldest ones
and links to the page; a job coordinator's also has "On your jobs": the open tasks on the jobs
they coordinate by holder, and the applicants new since their last email. Which local day a
person was last sent is kept per recipient in ``sync_cursors`` (connector ``digest:daily``,
a name no connector can have), claimed before sending, so a restart or a second replica never
sends the same day twice.
"""

from __future__ import annotations

import smtplib
import ssl
import time as time_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from ipaddress import ip_address
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlencode, urljoin, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import structlog
import tenacity
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner import ownership
from taskplanner.clock import span_text
from taskplanner.config import Config, DigestConfig
from taskplanner.domain.categories import CATEGORIES, CATEGORY_BY_NAME
from taskplanner.engine import OPEN
from taskplanner.runtime import Runtime, rules_from_config
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.tasklist import (
    open_counts,
    open_counts_by_assignee,
    related_names,
    task_notes,
)

log = structlog.get_logger("taskplanner.digest")

CURSOR_NAME = "digest:daily"  # sync_cursors.connector; ":" is not allowed in connector names
# A daemon that was down at send_at still sends within this window, but nobody gets
# "this morning's" digest in the evening.
LATE_WINDOW = timedelta(hours=6)
LISTED = 15  # tasks listed in one email; the counts cover the rest
SEND_ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 2.0
SMTP_TIMEOUT_SECONDS = 30.0

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "web" / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- what a digest says -----------------------------------------------------------------------


@dataclass(frozen=True)
class DigestItem:
    title: str
    category_label: str
    recommended_action: str
    url: str | None
    context: str  # candidate · job, when known
    age: str
    overdue_by: str | None
    # A decline's interview time, a broken integration's error and what to do (issue 15).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobReport:
    """One job a person coordinates: its open tasks by holder, and who applied lately."""

    name: str
    holders: list[tuple[str, int]]  # (holder's name, open tasks), most first
    new_applicants: list[str]  # candidates' names, up to LISTED
    new_count: int

    @property
    def open_total(self) -> int:
        return sum(count for _, count in self.holders)


@dataclass(frozen=True)
class Digest:
    recipient: str
    name: str | None
    counts: list[tuple[str, int]]  # (category label, open count), table order, non-zero
    total: int
    overdue: int
    items: list[DigestItem]
    page_url: str
    organisation: str
    local_date: date = field(compare=False)
    jobs: list[JobReport] = field(default_factory=list)  # "On your jobs", by job name
    since: datetime | None = None  # the last email, for "new applicants since"

    @property
    def subject(self) -> str:
        if not self.total:
            held, new = sum(j.open_total for j in self.jobs), sum(j.new_count for j in self.jobs)
            tasks = "task" if held == 1 else "tasks"
            applicants = "applicant" if new == 1 else "applicants"
            return (
                f"{self.organisation} taskplanner: on your jobs, {held} open {tasks}, "
                f"{new} new {applicants}"
            )
        tasks = "task" if self.total == 1 else "tasks"
        overdue = f", {self.overdue} overdue" if self.overdue else ""
        return f"{self.organisation} taskplanner: {self.total} open {tasks}{overdue}"

    @property
    def greeting_name(self) -> str:
        return (self.name or self.recipient.split("@")[0]).split()[0]

    def text(self) -> str:
        lines = [f"Hello {self.greeting_name},", ""]
        if self.total:
            lines += self._own_text()
        else:
            lines += ["You have no open tasks of your own.", ""]
        if self.jobs:
            lines += ["", "On your jobs:", ""]
            for job in self.jobs:
                tasks = "task" if job.open_total == 1 else "tasks"
                lines.append(f"{job.name}: {job.open_total} open {tasks}")
                width = max((len(holder) for holder, _ in job.holders), default=0)
                lines += [f"  {holder:<{width}}  {count:>4}" for holder, count in job.holders]
                if job.new_count:
                    more = job.new_count - len(job.new_applicants)
                    names = ", ".join(job.new_applicants) + (f" and {more} more" if more else "")
                    lines.append(
                        f"  New applicants since your last email: {job.new_count} ({names})"
                    )
                else:
                    lines.append("  No new applicants since your last email.")
                lines.append("")
        lines += ["", f"Your task list: {self.page_url}", ""]
        news = ", or news on the jobs you coordinate" if self.jobs else ""
        lines.append(f"You get this email on days when you have open tasks in taskplanner{news}.")
        return "\n".join(lines) + "\n"

    def _own_text(self) -> list[str]:
        lines = []
        tasks = "task" if self.total == 1 else "tasks"
        overdue = f" ({self.overdue} overdue)" if self.overdue else ""
        lines += [f"You have {self.total} open {tasks}{overdue}.", ""]
        width = max(len(label) for label, _ in self.counts)
        lines += [f"  {label:<{width}}  {count:>4}" for label, count in self.counts]
        lines += ["", "Overdue and oldest first:", ""]
        for item in self.items:
            flag = f"[OVERDUE by {item.overdue_by}] " if item.overdue_by else ""
            lines.append(f"- {flag}{item.title}")
            detail = f"{item.category_label}, opened {item.age} ago"
            if item.context:
                detail = f"{item.context} · {detail}"
            lines.append(f"  {detail}")
            lines += [f"  {note}" for note in item.notes]
            lines.append(f"  {item.recommended_action}")
            if item.url:
                lines.append(f"  {item.url}")
        if self.total > len(self.items):
            lines += ["", f"…and {self.total - len(self.items)} more on the page."]
        return lines

    def html(self) -> str:
        return _templates.get_template("email_digest.html").render(digest=self)

    def message(self, sender: str, now: datetime) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = self.recipient
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = make_msgid("digest", domain=sender.rsplit("@", 1)[-1])
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content(self.text())
        msg.add_alternative(self.html(), subtype="html")
        return msg


def base_url(config: Config) -> str:
    """Where people reach the page: digest.page_url, else server.public_url, else host:port."""
    if config.digest is not None and config.digest.page_url:
        return config.digest.page_url
    if config.server.public_url:
        return config.server.public_url
    return f"http://{config.server.host}:{config.server.port}/"


def page_link(config: Config, recipient: str) -> str:
    url = base_url(config)
    separator = "&" if "?" in url else "?"
    return url + separator + urlencode({"assignee": recipient})


def compute_digest(
    session: Session,
    config: Config,
    recipient: str,
    now: datetime,
    *,
    coordinated: Mapping[str, list[str]] | None = None,
) -> Digest | None:
    """One person's digest, or None when nothing is open for them and nothing is new on the
    jobs they coordinate. ``coordinated``: `ownership.job_coordinators`, when known."""
    counts = open_counts(session, recipient)
    total = sum(counts.values())
    if coordinated is None:
        coordinated = ownership.job_coordinators(session, rules_from_config(config))
    since = last_sent(session, recipient) or now - timedelta(days=1)
    jobs = job_reports(session, config, coordinated.get(recipient, []), since, now)
    if total == 0 and not any(j.open_total or j.new_count for j in jobs):
        return None
    mine = (col(m.Task.assignee) == recipient, col(m.Task.status) == OPEN)
    overdue_count = session.scalar(
        select(func.count()).select_from(m.Task).where(*mine, col(m.Task.due_at) <= now)
    )
    overdue = list(
        session.scalars(
            select(m.Task)
            .where(*mine, col(m.Task.due_at) <= now)
            .order_by(col(m.Task.due_at), col(m.Task.id))
            .limit(LISTED)
        )
    )
    oldest = list(
        session.scalars(select(m.Task).where(*mine).order_by(col(m.Task.id)).limit(LISTED))
    )
    seen = {t.id for t in overdue}
    tasks = (overdue + [t for t in oldest if t.id not in seen])[:LISTED]
    names = related_names(session, tasks, config.people_by_email())
    zone = config.organisation.zone()
    root = base_url(config)
    items = []
    for task in tasks:
        category = CATEGORY_BY_NAME.get(task.category)
        context = " · ".join(n for n in (names.candidate(task), names.job(task)) if n)
        is_overdue = task.due_at is not None and task.due_at <= now
        items.append(
            DigestItem(
                title=names.title(task),
                category_label=category.label if category else task.category,
                recommended_action=task.recommended_action,
                url=_absolute(root, task.action_url),
                context=context,
                age=span_text(now - task.created_at),
                overdue_by=span_text(now - task.due_at) if is_overdue and task.due_at else None,
                notes=tuple(task_notes(task, names, now, zone)),
            )
        )
    person = config.people_by_email().get(recipient)
    name = person.name if person and person.name else None
    if name is None:
        name = session.scalars(
            select(col(m.User.name)).where(col(m.User.email) == recipient).limit(1)
        ).first()
    return Digest(
        recipient=recipient,
        name=name,
        counts=[(c.label, counts[c.name]) for c in CATEGORIES if counts.get(c.name)],
        total=total,
        overdue=int(overdue_count or 0),
        items=items,
        page_url=page_link(config, recipient),
        organisation=config.organisation.name,
        local_date=now.astimezone(zone).date(),
        jobs=jobs,
        since=since,
    )


def last_sent(session: Session, recipient: str) -> datetime | None:
    """When this person's last digest went out (claimed), from the digest's cursor."""
    row = session.get(m.SyncCursor, (CURSOR_NAME, recipient))
    return row.updated_at if row is not None else None


def job_reports(
    session: Session, config: Config, job_ids: Sequence[str], since: datetime, now: datetime
) -> list[JobReport]:
    """"On your jobs": per job, open tasks by holder and the applicants first seen since
    ``since`` (a source's first sync brings no "new" ones: see Application.first_seen_at)."""
    if not job_ids:
        return []
    names = dict(
        session.execute(
            select(col(m.Job.id), col(m.Job.name)).where(col(m.Job.id).in_(job_ids))
        ).all()
    )
    held = session.execute(
        select(col(m.Task.job_id), col(m.Task.assignee), func.count())
        .where(col(m.Task.job_id).in_(job_ids), col(m.Task.status) == OPEN)
        .group_by(col(m.Task.job_id), col(m.Task.assignee))
    ).all()
    holders: dict[str, list[tuple[str, int]]] = {}
    for job_id, assignee, count in held:
        holders.setdefault(str(job_id), []).append((assignee, int(count)))
    fresh = (
        select(col(m.Application.job_id), col(m.Candidate.name))
        .join(m.Candidate, col(m.Candidate.id) == col(m.Application.candidate_id), isouter=True)
        .where(
            col(m.Application.job_id).in_(job_ids),
            col(m.Application.first_seen_at) > since,
            col(m.Application.first_seen_at) <= now,
        )
        .order_by(col(m.Application.first_seen_at), col(m.Application.id))
    )
    applicants: dict[str, list[str]] = {}
    for job_id, candidate in session.execute(fresh):
        applicants.setdefault(job_id, []).append(candidate or "(name not synced yet)")
    display = _display_names(session, config, {a for rows in holders.values() for a, _ in rows})
    reports = []
    for job_id in job_ids:
        rows = sorted(holders.get(job_id, []), key=lambda row: (-row[1], row[0]))
        new = applicants.get(job_id, [])
        reports.append(
            JobReport(
                name=names.get(job_id, job_id),
                holders=[(display.get(a, a), n) for a, n in rows],
                new_applicants=new[:LISTED],
                new_count=len(new),
            )
        )
    return sorted(reports, key=lambda r: r.name.casefold())


def _display_names(session: Session, config: Config, emails: set[str]) -> dict[str, str]:
    """A person's name where the configuration or the ATS knows it, else their address."""
    out = {p.email: p.name for p in config.people if p.name and p.email in emails}
    missing = emails - set(out)
    if missing:
        users = select(col(m.User.email), col(m.User.name)).where(
            col(m.User.email).in_(missing)
        )
        out |= {email: name for email, name in session.execute(users) if name}
    return out


def _absolute(root: str, url: str | None) -> str | None:
    if not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        return urljoin(root, url)
    return url if urlsplit(url).scheme in ("http", "https") else None


def digest_recipients(
    session: Session, config: Config
) -> tuple[list[str], dict[str, list[str]]]:
    """Everyone with open tasks or jobs they coordinate, and those jobs."""
    coordinated = ownership.job_coordinators(session, rules_from_config(config))
    return sorted(set(open_counts_by_assignee(session)) | set(coordinated)), coordinated


def compute_digests(session: Session, config: Config, now: datetime) -> list[Digest]:
    """A digest for everyone with open tasks or news on their jobs, by recipient."""
    out = []
    recipients, coordinated = digest_recipients(session, config)
    for recipient in recipients:
        digest = compute_digest(session, config, recipient, now, coordinated=coordinated)
        if digest is not None:
            out.append(digest)
    return out


# --- sending -------------------------------------------------------------------------------------


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpError(RuntimeError):
    pass


@dataclass(frozen=True)
class SmtpMailer:
    """``smtp://user:pass@host:587`` (STARTTLS when offered) or ``smtps://…:465`` (TLS).

    A password is only sent over TLS, except to a server on the loopback interface.
    """

    url: str
    timeout: float = SMTP_TIMEOUT_SECONDS

    def send(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpError("digest.smtp_url must look like smtp://host:587 or smtps://host:465")
        host = parts.hostname
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else ""
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if scheme == "smtps":
            client = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=self.timeout, context=context
            )
        else:
            client = smtplib.SMTP(host, parts.port or 587, timeout=self.timeout)
        with client:
            client.ehlo()
            encrypted = scheme == "smtps"
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                encrypted = True
            if user:
                if not encrypted and not _is_loopback(host):
                    raise SmtpError(
                        f"{host} does not offer STARTTLS: refusing to send the password in clear"
                    )
                client.login(user, password)
            client.send_message(message)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def send_with_retry(
    mailer: Mailer,
    message: EmailMessage,
    *,
    recipient: str,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time_module.sleep,
) -> bool:
    """Try a few times with doubling pauses; one log line when it gives up (never the SMTP
    password: errors are smtplib's and ours, which carry none)."""

    def gave_up(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        log.error(
            "digest.gave_up",
            recipient=recipient,
            attempts=state.attempt_number,
            error=f"{type(exc).__name__}: {exc}",
        )
        return False

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((OSError, smtplib.SMTPException, SmtpError)),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=FIRST_BACKOFF_SECONDS),
        sleep=sleep,
        retry_error_callback=gave_up,
    )

    def send() -> bool:
        mailer.send(message)
        return True

    sent: bool = retrying(send)
    if sent:
        log.info("digest.sent", recipient=recipient, attempt=retrying.statistics["attempt_number"])
    return sent


# --- when to send --------------------------------------------------------------------------------


def digest_slot(now: datetime, settings: DigestConfig, zone: ZoneInfo) -> tuple[date, datetime]:
    """The local day and the moment of the latest ``send_at`` at or before ``now``."""
    local_now = now.astimezone(zone)
    for days_back in (0, 1):
        day = local_now.date() - timedelta(days=days_back)
        moment = datetime.combine(day, settings.send_at, tzinfo=zone)
        if moment <= local_now:
            return day, moment
    raise AssertionError("unreachable: yesterday's send time is always in the past")


@dataclass(frozen=True)
class _Claim:
    previous: str | None  # the day sent before, so a failed send can give this one back


def _claim(session: Session, recipient: str, day: date, now: datetime) -> _Claim | None:
    """Mark ``day`` as this recipient's digest day; None if it is taken already."""
    row = session.get(m.SyncCursor, (CURSOR_NAME, recipient), with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    m.SyncCursor(
                        connector=CURSOR_NAME,
                        partition=recipient,
                        cursor=day.isoformat(),
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return None  # another replica claimed it a moment ago
        return _Claim(previous=None)
    if row.cursor >= day.isoformat():
        return None
    claim = _Claim(previous=row.cursor)
    row.cursor, row.updated_at = day.isoformat(), now
    return claim


def _release(runtime: Runtime, recipient: str, previous: str | None) -> None:
    with transaction(runtime.db) as session:
        row = session.get(m.SyncCursor, (CURSOR_NAME, recipient))
        if row is None:
            return
        if previous is None:
            session.delete(row)
        else:
            row.cursor = previous


@dataclass
class DigestRun:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """How many digests went out (so ``if run:`` reads "something was sent")."""
        return len(self.sent)


def send_due_digests(
    runtime: Runtime,
    now: datetime | None = None,
    *,
    mailer: Mailer | None = None,
    sleep: Callable[[float], None] = time_module.sleep,
) -> DigestRun:
    """Send today's digests if ``send_at`` (organisation time) has come and they are not sent.

    Call it every minute or so from a worker thread; it does nothing outside the send window
    and sends each person at most one digest per local day.
    """
    run = DigestRun()
    settings = runtime.config.digest
    if settings is None:
        return run
    now = now or runtime.clock()
    day, moment = digest_slot(now, settings, runtime.config.organisation.zone())
    if now - moment >= LATE_WINDOW:
        return run
    return send_digests(runtime, now, day=day, mailer=mailer, sleep=sleep)


def send_digests(
    runtime: Runtime,
    now: datetime,
    *,
    day: date | None = None,
    mailer: Mailer | None = None,
    sleep: Callable[[float], None] = time_module.sleep,
    recipients: Sequence[str] | None = None,
) -> DigestRun:
    """Send the digest of ``day`` (default: today, organisation time) to everyone with open
    tasks who has not had it yet (``taskplanner digest send``)."""
    run = DigestRun()
    settings = runtime.config.digest
    if settings is None:
        raise SmtpError("no [digest] section in the configuration")
    day = day or now.astimezone(runtime.config.organisation.zone()).date()
    mailer = mailer or SmtpMailer(settings.smtp_url())
    with transaction(runtime.db, read_only=True) as session:
        everyone, coordinated = digest_recipients(session, runtime.config)
    for recipient in recipients or everyone:
        with transaction(runtime.db) as session:
            digest = compute_digest(
                session, runtime.config, recipient, now, coordinated=coordinated
            )
            if digest is None:
                continue
            claim = _claim(session, recipient, day, now)
        if claim is None:
            run.already_sent.append(recipient)
            continue
        message = digest.message(settings.from_, now)
        if send_with_retry(mailer, message, recipient=recipient, sleep=sleep):
            run.sent.append(recipient)
        else:
            run.failed.append(recipient)
            # Give the day back so the next tick (still in the send window) tries again.
            _release(runtime, recipient, claim.previous)
    if run.sent or run.failed:
        log.info("digest.run", day=day.isoformat(), sent=len(run.sent), failed=len(run.failed))
    return run


def preview_digests(runtime: Runtime, now: datetime | None = None) -> list[EmailMessage]:
    """What ``digest send`` would send now, without sending or recording anything."""
    now = now or runtime.clock()
    sender = runtime.config.digest.from_ if runtime.config.digest else "taskplanner@localhost"
    with transaction(runtime.db, read_only=True) as session:
        digests = compute_digests(session, runtime.config, now)
    return [d.message(sender, now) for d in digests]
