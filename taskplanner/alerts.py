"""Alerts that cannot wait for tomorrow's email: Slack direct messages and immediate emails.

The engine queues a row in ``alert_outbox`` in the transaction that opens a task; the
`AlertDispatcher` (a daemon job on every replica, off the task-processing path) claims rows
one at a time with a lease and sends them. A message goes out at most once: a row is marked
``posting`` right before the one call that is not safe to repeat (``chat.postMessage``, the
SMTP transaction); a replica that dies there leaves an ``unknown`` row, logged, not resent.
"""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol
from urllib.error import URLError

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, or_, select, update
from sqlmodel import col

from taskplanner.clock import Clock, system_clock
from taskplanner.config import Config, SlackAlertsConfig
from taskplanner.digest import Mailer, SmtpError, SmtpMailer, _absolute, base_url, page_link
from taskplanner.domain.alerting import EMAIL, SLACK
from taskplanner.domain.categories import CATEGORY_BY_NAME
from taskplanner.engine import OPEN
from taskplanner.store import models as m
from taskplanner.store.database import is_sqlite, transaction
from taskplanner.tasklist import related_names

log = structlog.get_logger("taskplanner.alerts")

PENDING, SENDING, POSTING = "pending", "sending", "posting"
SENT, FAILED, UNKNOWN = "sent", "failed", "unknown"
SKIPPED = "skipped"  # the task was done before its alert went out
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
SLACK_TIMEOUT_SECONDS = 10


# --- what an alert says --------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    task_id: int
    assignee: str
    title: str
    category_label: str
    recommended_action: str
    context: str  # candidate · job, when known
    url: str  # the task's link (the ATS, the set-up page), else the assignee's task list
    page_url: str
    organisation: str


def compose(session: Any, config: Config, task: m.Task) -> Alert:
    names = related_names(session, [task])
    category = CATEGORY_BY_NAME.get(task.category)
    page = page_link(config, task.assignee)
    return Alert(
        task_id=task.id,
        assignee=task.assignee,
        title=task.title,
        category_label=category.label if category else task.category,
        recommended_action=task.recommended_action,
        context=" · ".join(n for n in (names.candidate(task), names.job(task)) if n),
        url=_absolute(base_url(config), task.action_url) or page,
        page_url=page,
        organisation=config.organisation.name,
    )


def slack_text(alert: Alert) -> str:
    """Slack mrkdwn; ``&``, ``<`` and ``>`` escaped as Slack asks
    (https://docs.slack.dev/messaging/formatting-message-text#escaping)."""

    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    lines = [f"*{esc(alert.title)}*"]
    if alert.context:
        lines.append(esc(alert.context))
    lines.append(f"{esc(alert.category_label)}: {esc(alert.recommended_action)}")
    lines.append(f"<{esc(alert.url)}|Open> · <{esc(alert.page_url)}|Your task list>")
    return "\n".join(lines)


def alert_email(alert: Alert, sender: str, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = alert.assignee
    msg["Subject"] = f"{alert.organisation} taskplanner: {alert.title}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("alert", domain=sender.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    lines = [alert.title, ""]
    if alert.context:
        lines.append(alert.context)
    lines += [f"{alert.category_label}: {alert.recommended_action}", "", alert.url, ""]
    lines += [f"Your task list: {alert.page_url}", ""]
    lines.append("You get this email at once for tasks that cannot wait for the daily digest.")
    msg.set_content("\n".join(lines) + "\n")
    return msg


# --- how a send ends -----------------------------------------------------------------------------


class SendLater(Exception):  # noqa: N818 - an outcome, not a failure of ours
    """Nothing was delivered and trying again later may work (5xx, rate limit, refused)."""

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.retry_after = retry_after


class SendFailed(Exception):
    """Nothing was delivered and trying again will not help (bad token, no such user)."""


class OutcomeUnknown(Exception):  # noqa: N818
    """The message may have gone out (a timeout after the request was sent): never resent."""


@dataclass(frozen=True)
class Delivered:
    to: str  # Slack user or channel id, or an email address
    how: str  # dm | channel | email


class Sender(Protocol):
    def send(self, alert: Alert, posting: Callable[[], None]) -> Delivered:
        """Deliver ``alert``; call ``posting()`` right before the step that must not be
        repeated. Raises `SendLater`, `SendFailed` or `OutcomeUnknown`."""
        ...


class SlackSender:
    """``users.lookupByEmail`` then ``chat.postMessage`` to the user id (the app's DM with
    them), through the official slack_sdk; the channel when the person has no account.

    https://docs.slack.dev/reference/methods/users.lookupByEmail (``users_not_found``),
    https://docs.slack.dev/reference/methods/chat.postMessage (a user id as ``channel``
    posts to the app's DM), https://docs.slack.dev/apis/web-api/rate-limits (HTTP 429,
    ``ratelimited``, ``Retry-After`` in seconds).
    """

    def __init__(self, settings: SlackAlertsConfig, timeout: int = SLACK_TIMEOUT_SECONDS) -> None:
        self.channel = settings.channel
        # No retry handlers: a retry is the outbox's decision (after Retry-After, never
        # a second chat.postMessage whose first may have gone through).
        self.client = WebClient(
            token=settings.bot_token(),
            base_url=settings.base_url,
            timeout=timeout,
            retry_handlers=[],
        )

    def send(self, alert: Alert, posting: Callable[[], None]) -> Delivered:
        user = self._lookup(alert.assignee)
        target, how = (user, "dm") if user else (self.channel, "channel")
        if target is None:
            raise SendFailed(f"no Slack user for {alert.assignee} and no channel configured")
        posting()
        self._call("chat.postMessage", lambda: self.client.chat_postMessage(
            channel=target, text=slack_text(alert), unfurl_links=False
        ), posting=True)
        return Delivered(target, how)

    def _lookup(self, email: str) -> str | None:
        try:
            response = self._call(
                "users.lookupByEmail", lambda: self.client.users_lookupByEmail(email=email)
            )
        except SendFailed as exc:
            if "users_not_found" in str(exc):
                return None
            raise
        user = response.get("user") or {}
        return str(user["id"]) if user.get("id") else None

    def _call(self, method: str, call: Callable[[], Any], *, posting: bool = False) -> Any:
        try:
            return call()
        except SlackApiError as exc:
            raise _slack_outcome(method, exc.response) from None
        except (URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            described = f"{method}: {type(reason).__name__}"
            if posting and not isinstance(reason, ConnectionRefusedError | socket.gaierror):
                # The request may have reached Slack: a second one could post twice.
                raise OutcomeUnknown(described) from None
            raise SendLater(described) from None


def _slack_outcome(method: str, response: Any) -> Exception:
    """SendLater or SendFailed from a Slack error response (never the token: only the
    method, the HTTP status and Slack's error code)."""
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) or {}
    error = response.get("error") if hasattr(response, "get") else None
    # slack_sdk puts its own sentence there for a body that is not JSON (an HTML 503).
    code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else None
    described = f"{method}: HTTP {status}" + (f" {code}" if code else "")
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return SendLater(described, _retry_after(headers))
    if status >= 500 or code in _TRANSIENT_ERRORS:
        return SendLater(described)
    return SendFailed(described)


_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
# Documented for every method as the service's own trouble, not the request's.
_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(1.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


class EmailSender:
    """An email at once, through the digest's mail settings (``[digest]`` smtp_url, from)."""

    def __init__(self, mailer: Mailer, sender: str, clock: Clock = system_clock) -> None:
        self.mailer = mailer
        self.sender = sender
        self.clock = clock

    def send(self, alert: Alert, posting: Callable[[], None]) -> Delivered:
        message = alert_email(alert, self.sender, self.clock())
        posting()
        try:
            self.mailer.send(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendFailed(f"SMTP refused {alert.assignee}: {_smtp_codes(exc)}") from None
        except smtplib.SMTPResponseException as exc:
            what = f"SMTP {exc.smtp_code}"
            raise (SendFailed(what) if exc.smtp_code >= 500 else SendLater(what)) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Connecting, TLS or login failed before the message was handed over.
            raise SendLater(f"SMTP: {type(exc).__name__}") from None
        except SmtpError as exc:  # ours: a server that would get the password in clear
            raise SendFailed(str(exc)) from None
        return Delivered(alert.assignee, "email")


def _smtp_codes(exc: smtplib.SMTPRecipientsRefused) -> str:
    return ", ".join(str(code) for code, _ in exc.recipients.values())


# --- the dispatcher ------------------------------------------------------------------------------


@dataclass
class AlertRun:
    sent: list[int] = field(default_factory=list)  # outbox row ids
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    return min(LONGEST_RETRY, FIRST_RETRY * float(2 ** max(0, attempts - 1)))


def senders_from_config(config: Config, clock: Clock = system_clock) -> dict[str, Sender]:
    senders: dict[str, Sender] = {}
    if config.notifications.slack is not None:
        senders[SLACK] = SlackSender(config.notifications.slack)
    if config.notifications.email is not None and config.digest is not None:
        mailer = SmtpMailer(config.digest.smtp_url())
        senders[EMAIL] = EmailSender(mailer, config.digest.from_, clock)
    return senders


_DONE_ALREADY = object()  # a claimed row that needs no sending


class _ClaimLost(Exception):
    pass


class AlertDispatcher:
    """Sends what the outbox holds; every replica runs one, each row is sent by one."""

    def __init__(
        self,
        db: Engine,
        config: Config,
        senders: Mapping[str, Sender],
        *,
        owner: str,
        clock: Clock = system_clock,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.config = config
        self.senders = dict(senders)
        self.owner = owner
        self.clock = clock
        # Longer than one send can take (lookup + post, each within the timeout).
        self.lease = max(lease, timedelta(seconds=3 * SLACK_TIMEOUT_SECONDS))

    def run_once(self, limit: int = 100) -> AlertRun:
        """Send what is due, one row at a time, until nothing is or ``limit`` were tried."""
        run = AlertRun()
        if not self._anything_in_flight():
            return run
        self._give_up_on_interrupted_posts(run)
        for _ in range(limit):
            claimed = self._claim()
            if claimed is None:
                break
            if claimed is not _DONE_ALREADY and not self._send(claimed, run):
                break  # rate-limited: the rest waits for the next run
        return run

    def _anything_in_flight(self) -> bool:
        """A read first, so an idle daemon takes no write lock (SQLite has one) every tick."""
        box = m.AlertOutbox
        busy = col(box.status).in_((PENDING, SENDING, POSTING))
        with transaction(self.db, read_only=True) as session:
            return session.scalars(select(col(box.id)).where(busy).limit(1)).first() is not None

    def _give_up_on_interrupted_posts(self, run: AlertRun) -> None:
        now = self.clock()
        box = m.AlertOutbox
        with transaction(self.db) as session:
            query = select(box).where(
                col(box.status) == POSTING, col(box.lease_expires_at) < now
            )
            if not is_sqlite(self.db):
                query = query.with_for_update(skip_locked=True)
            for row in session.scalars(query):
                row.last_error = f"the sender {row.lease_owner} stopped while posting"
                row.status, row.lease_owner, row.lease_expires_at = UNKNOWN, None, None
                run.unknown.append(row.id)
                log.error(
                    "alert.outcome_unknown",
                    channel=row.channel,
                    task_id=row.task_id,
                    reason="a replica stopped while sending; not resent, to never send twice",
                )

    def _claim(self) -> tuple[int, str, Alert] | object | None:
        now = self.clock()
        box = m.AlertOutbox
        with transaction(self.db) as session:
            query = (
                select(box)
                .where(
                    col(box.channel).in_(list(self.senders)),
                    or_(
                        (col(box.status) == PENDING) & (col(box.next_attempt_at) <= now),
                        # Claimed by a replica that stopped before posting: safe to send.
                        (col(box.status) == SENDING) & (col(box.lease_expires_at) < now),
                    ),
                )
                .order_by(col(box.id))
                .limit(1)
            )
            if not is_sqlite(self.db):
                query = query.with_for_update(skip_locked=True)
            row = session.scalars(query).first()
            if row is None:
                return None
            row.status, row.attempts = SENDING, row.attempts + 1
            row.lease_owner, row.lease_expires_at = self.owner, now + self.lease
            task = session.get(m.Task, row.task_id)
            if task is None or task.status != OPEN:
                # Completed meanwhile (an interviewer who accepts again a minute later):
                # an alert about it now would send someone after nothing.
                row.status, row.lease_owner, row.lease_expires_at = SKIPPED, None, None
                return _DONE_ALREADY
            return row.id, row.channel, compose(session, self.config, task)

    def _mark(self, row_id: int, **values: Any) -> bool:
        """Update a row this replica still holds; False when it holds it no more."""
        box = m.AlertOutbox
        with transaction(self.db) as session:
            result = session.execute(
                update(box)
                .where(col(box.id) == row_id, col(box.lease_owner) == self.owner)
                .values(**values)
            )
            return bool(getattr(result, "rowcount", 0))

    def _send(self, claimed: Any, run: AlertRun) -> bool:
        """Send one claimed row; False when Slack asked us to slow down."""
        row_id, channel, alert = claimed
        fields = {"channel": channel, "task_id": alert.task_id}

        def posting() -> None:
            if not self._mark(row_id, status=POSTING):
                raise _ClaimLost

        try:
            delivered = self.senders[channel].send(alert, posting)
        except _ClaimLost:
            # Our lease ran out before the post (a very slow lookup): another replica may
            # have it now, so this one must not post.
            log.warning("alert.claim_lost", **fields)
            return True
        except SendLater as exc:
            self._retry_later(row_id, str(exc), exc.retry_after, run, fields)
            return exc.retry_after is None
        except SendFailed as exc:
            self._mark(row_id, status=FAILED, lease_owner=None, lease_expires_at=None,
                       last_error=str(exc))
            run.failed.append(row_id)
            log.warning("alert.not_sent", assignee=alert.assignee, error=str(exc), **fields)
        except OutcomeUnknown as exc:
            self._mark(row_id, status=UNKNOWN, lease_owner=None, lease_expires_at=None,
                       last_error=str(exc))
            run.unknown.append(row_id)
            log.error("alert.outcome_unknown", error=str(exc), **fields)
        else:
            self._mark(row_id, status=SENT, sent_at=self.clock(), sent_to=delivered.to,
                       lease_owner=None, lease_expires_at=None, last_error=None)
            run.sent.append(row_id)
            log.info("alert.sent", to=delivered.to, how=delivered.how, **fields)
        return True

    def _retry_later(
        self,
        row_id: int,
        error: str,
        retry_after: float | None,
        run: AlertRun,
        fields: dict[str, Any],
    ) -> None:
        with transaction(self.db) as session:
            row = session.get(m.AlertOutbox, row_id)
            if row is None or row.lease_owner != self.owner:
                return
            attempts = row.attempts
            row.lease_owner, row.lease_expires_at, row.last_error = None, None, error
            if attempts >= MAX_ATTEMPTS:
                row.status = FAILED
            else:
                delay = (
                    timedelta(seconds=retry_after) if retry_after else retry_delay(attempts)
                )
                row.status, row.next_attempt_at = PENDING, self.clock() + delay
        if attempts >= MAX_ATTEMPTS:
            run.failed.append(row_id)
            log.error("alert.gave_up", attempts=attempts, error=error, **fields)
        else:
            run.retrying.append(row_id)
            log.warning("alert.retry_later", attempts=attempts, error=error,
                        retry_after=retry_after, **fields)
