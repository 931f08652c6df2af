"""The ``taskplanner`` command line: one Typer app with a sub-app per command group.

Every command takes ``--config PATH`` after its name. Expected failures end with one line on
stderr each and an exit code, never a traceback: every configuration problem (one line per
problem naming the key and the file) and a bad argument exit 2, an unreachable database or a
failing provider exit 1 (see `CommandLine`). Only a bug shows a traceback, without locals.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col
from typer.core import TyperGroup

from connectors.base import ConnectorError, PollProgress
from taskplanner import __version__
from taskplanner.config import (
    Config,
    ConfigError,
    GoogleCalendarConfig,
    MicrosoftCalendarConfig,
    format_duration,
    load_config,
)
from taskplanner.providers import ATS_TYPES
from taskplanner.store.database import describe_error, transaction
from taskplanner.store.migrate import upgrade

if TYPE_CHECKING:
    from taskplanner.runtime import Runtime

# Typer (0.29 on) vendors click as typer._click and has no public name for these two; the
# version range in pyproject.toml keeps this import valid (tests import this module).
from typer._click.exceptions import NoArgsIsHelpError, UsageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _OneLineUsageError(UsageError):
    """A bad argument as one line (click prints usage, a hint and the error on three)."""

    def show(self, file: Any = None) -> None:
        where = self.ctx.command_path if self.ctx is not None else "taskplanner"
        typer.echo(f"{where}: {self.format_message()} (see {where} --help)", file=file, err=True)


class CommandLine(TyperGroup):
    """The root command: turns expected failures anywhere below it into one-line messages.

    Configuration problems and bad arguments exit 2, an unreachable database and provider
    errors exit 1. Anything else is a bug and keeps its traceback (locals are never shown:
    they hold the configuration).
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise _one_line(exc) from None
        except ConfigError as exc:
            fail(str(exc))
        except SQLAlchemyError as exc:
            fail(f"database: {describe_error(exc)}", EXIT_FAILED)
        except ConnectorError as exc:
            fail(str(exc), EXIT_FAILED)


def _one_line(exc: UsageError) -> UsageError:
    if isinstance(exc, NoArgsIsHelpError | _OneLineUsageError):
        return exc  # the help text itself, or already one line
    return _OneLineUsageError(exc.format_message(), exc.ctx)


def command_group(**options: Any) -> typer.Typer:
    """A Typer (sub-)app that never renders locals in a traceback (they hold the config)."""
    return typer.Typer(
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=None,  # plain click errors: short lines that are easy to grep in logs
        **options,
    )


app = command_group(
    name="taskplanner",
    help="Keep one task list per recruiting coordinator in sync with the ATS and calendars.",
    no_args_is_help=True,
    add_completion=False,
    cls=CommandLine,
)

# Shared by every command: `taskplanner <command> --config prod.toml`.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration file (default: $TASKPLANNER_CONFIG, else ./taskplanner.toml).",
        show_default=False,
        dir_okay=False,
    ),
]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line to stderr and exit (2 = usage or configuration error)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load_config_or_exit(path: Path | None) -> Config:
    """Load the configuration for a command, or exit 2 with one line per problem.

    A connector type this build has no connector for is a configuration problem too.
    """
    from taskplanner.runtime import unavailable_connectors

    try:
        return load_config(path, checks=(unavailable_connectors,))
    except ConfigError as exc:
        fail(str(exc))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"taskplanner {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Keep one task list per recruiting coordinator in sync with the ATS and calendars."""
    from taskplanner.logsetup import configure_logging

    # Warnings and errors of the libraries and of taskplanner go to stderr, masked and without
    # locals (`run` and `sandbox` set their own level); unconfigured structlog would print
    # rich tracebacks with every local variable, the configuration included.
    configure_logging("warning")


# --------------------------------------------------------------------------- config

config_app = command_group(help="Inspect the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration (keys, values, secrets) and print a summary."""
    loaded = load_config_or_exit(config)
    typer.echo(describe_config(loaded))


def describe_config(config: Config) -> str:
    """A short human summary of a loaded configuration; never includes secret values."""
    org = config.organisation
    rules = config.rules
    lines = [
        f"config ok: {config.source}",
        f"organisation: {org.name} (account owner {org.account_owner}, timezone {org.timezone})",
        f"database: {_hide_password(config.database.url)}",
        f"server: {config.server.host}:{config.server.port}"
        + (" (API tokens required)" if config.server.api_tokens_env else " (loopback API only)"),
    ]
    oidc = config.server.oidc
    if oidc is not None:
        domains = ", ".join(oidc.allowed_domains)
        lines.append(f"page sign-in: identity provider {oidc.issuer} (domains: {domains})")
    elif config.server.api_tokens_env:
        lines.append("page sign-in: email and shared token (identity is self-asserted)")
    if config.connectors:
        lines.append("connectors:")
        width = max(len(name) for name in config.connectors)
        for name, connector in config.connectors.items():
            details = f"poll every {format_duration(connector.poll_interval)}"
            if isinstance(connector, GoogleCalendarConfig | MicrosoftCalendarConfig):
                details += f", {len(connector.calendars)} calendar(s)"
            if not connector.enabled:
                details += ", disabled"
            lines.append(f"  {name:<{width}}  {connector.type:<18}  {details}")
    else:
        lines.append("connectors: none")
    lines += [
        f"people: {len(config.people)}",
        *(
            f"  hand-over: {p.email} → {p.handover_to or 'the next in line'} "
            + (f"until {p.away_until}" if p.away_until else "for good")
            for p in config.people
            if p.handover_to or p.away_until
        ),
        f"job overrides: {len(config.jobs)}",
        f"rules: evaluation due after {format_duration(rules.evaluation_due_after)}, "
        f"job live within {format_duration(rules.job_live_within)}, "
        f"inactivity after {format_duration(rules.inactivity_after)}, "
        f"schedule within {format_duration(rules.schedule_within)}",
        f"  scheduling stages: {', '.join(rules.scheduling_stages) or '-'}",
        f"  inactivity stages: {', '.join(rules.inactivity_stages) or '-'}",
        f"  out-of-office events hand tasks over: {'yes' if rules.follow_out_of_office else 'no'}",
    ]
    if config.digest is not None:
        lines.append(
            f"digest: daily at {config.digest.send_at:%H:%M} ({org.timezone}) "
            f"from {config.digest.from_}"
        )
    else:
        lines.append("digest: off")
    slack, email = config.notifications.slack, config.notifications.email
    for name, section in (("slack", slack), ("email", email)):
        if section is None:
            lines.append(f"alerts by {name}: off")
            continue
        channel = slack.channel if name == "slack" and slack is not None else None
        where = f" (else #{channel})" if channel else ""
        lines.append(
            f"alerts by {name}{where}: {', '.join(section.categories) or '-'}; declines within "
            f"{format_duration(section.decline_within)}"
        )
    if config.server.listens_everywhere() and not config.server.public_url:
        lines.append(
            f"warning: server.host is {config.server.host} and server.public_url is not set: "
            f"links in emails and the API would point at "
            f"{config.server.link('/')}, which nobody can open; set server.public_url "
            f'(e.g. "https://tasks.example.com/")'
        )
    return "\n".join(lines)


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


# --------------------------------------------------------------------------- runtime


def open_runtime(config_path: Path | None, *, migrate: bool = True) -> Runtime:
    """Load the configuration and open the database (exit 2 on a configuration error)."""
    from taskplanner.runtime import Runtime

    loaded = load_config_or_exit(config_path)
    try:
        return Runtime.from_config(loaded, migrate=migrate)
    except SQLAlchemyError as exc:
        fail(
            f"database.url: cannot open the database: {describe_error(exc)} ({loaded.source})",
            EXIT_FAILED,
        )


def _fmt_time(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else "-"


# --------------------------------------------------------------------------- tasks

tasks_app = command_group(help="Read and work the task list.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("list")
def tasks_list(
    config: ConfigOption = None,
    assignee: Annotated[str | None, typer.Option(help="Only this person's tasks.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Open and completed tasks.")] = False,
    completed: Annotated[bool, typer.Option("--completed", help="Completed tasks only.")] = False,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many tasks.", min=1)] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines: one task object per line (jq, grep).")
    ] = False,
) -> None:
    """List tasks, newest first (open ones unless --all or --completed)."""
    from taskplanner.domain.categories import CATEGORY_NAMES
    from taskplanner.tasklist import StatusFilter, TaskQuery, list_tasks, task_json

    if all_ and completed:
        fail("--all and --completed cannot be used together")
    if category is not None and category not in CATEGORY_NAMES:
        fail(f"--category: unknown category {category!r}; one of {', '.join(CATEGORY_NAMES)}")
    status = (
        StatusFilter.ALL if all_ else StatusFilter.COMPLETED if completed else StatusFilter.OPEN
    )
    runtime = open_runtime(config)
    try:
        with transaction(runtime.db, read_only=True) as session:
            page = list_tasks(
                session, TaskQuery(assignee=assignee, status=status, category=category, limit=limit)
            )
            rows = [task_json(t) for t in page.tasks]
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    zone = runtime.config.organisation.zone()
    if not rows:
        typer.echo("no tasks")
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for heading in ("id", "category", "title", "assignee", "created", "due", "status"):
            table.add_column(heading)
        for t, task in zip(rows, page.tasks, strict=True):
            table.add_row(
                str(t["id"]),
                t["category"],
                t["title"],
                t["assignee"],
                _fmt_time(task.created_at, zone),
                _fmt_time(task.due_at, zone),
                t["status"] if t["status"] == "open" else f"{t['resolution']}",
            )
        Console().print(table)
        return
    for t, task in zip(rows, page.tasks, strict=True):
        state = t["status"] if t["status"] == "open" else t["resolution"]
        typer.echo(
            f"{t['id']}\t{t['category']}\t{state}\t{t['assignee']}\t"
            f"{_fmt_time(task.created_at, zone)}\t{t['title']}"
        )


@tasks_app.command("complete")
def tasks_complete(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    config: ConfigOption = None,
    by: Annotated[str | None, typer.Option(help="Who completes it (default: $USER).")] = None,
) -> None:
    """Complete a task by hand (resolution manual, recording who)."""
    from taskplanner.engine import TaskAlreadyCompleted, TaskNotFound

    who = _address_or_exit("--by", by) if by else os.environ.get("USER") or "cli"
    runtime = open_runtime(config)
    try:
        with transaction(runtime.db) as session:
            task = runtime.pipeline.tasks.complete(session, task_id, by=who)
            title = task.title
    except TaskNotFound:
        fail(f"no task {task_id}", 1)
    except TaskAlreadyCompleted:
        fail(f"task {task_id} is already completed", 1)
    finally:
        runtime.close()
    typer.echo(f"completed {task_id}: {title}")


@app.command("reassign")
def reassign(
    from_: Annotated[str, typer.Option("--from", help="Whose open tasks to hand over.")],
    to: Annotated[str | None, typer.Option("--to", help="Who stands in for them.")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="The day they are back (YYYY-MM-DD); default: for good."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="End their hand-over: tasks go back to them.")
    ] = False,
    config: ConfigOption = None,
    by: Annotated[str | None, typer.Option(help="Who does it (default: $USER).")] = None,
) -> None:
    """Hand one person's open tasks, and every new one, to a stand-in (someone leaves or is
    away) until --until or --clear; tasks that followed the hand-over then go back."""
    from taskplanner import ownership
    from taskplanner.domain.assignment import handover_cycle

    person = _address_or_exit("--from", from_)
    if clear and (to or until):
        fail("--clear ends a hand-over: give it with --from only")
    if not clear and not to:
        fail("--to: missing (who stands in), or --clear to end the hand-over")
    stand_in = _address_or_exit("--to", to) if to else ""
    if stand_in == person:
        fail(f"--to: {stand_in} cannot stand in for themselves")
    who = _address_or_exit("--by", by) if by else os.environ.get("USER") or "cli"
    runtime = open_runtime(config)
    back = _back_on_or_exit(until, runtime) if until else None
    rules = runtime.rules
    try:
        with transaction(runtime.db) as session:
            if not ownership.knows(session, rules, person):
                fail(
                    f"--from: taskplanner knows nobody called {person} (not in [[people]], "
                    f"the ATS's users or any task) ({runtime.config.source})"
                )
            if clear:
                moved = runtime.pipeline.tasks.end_hand_over(session, person=person, by=who)
                configured = rules.handovers.get(person)
                if moved is None and configured is not None:
                    fail(
                        f"--clear: {person}'s hand-over is in the configuration ([[people]] "
                        f"handover_to / away_until); remove it there ({runtime.config.source})"
                    )
                text = (
                    f"no hand-over recorded for {person}; nothing to clear"
                    if moved is None
                    else f"{person}'s hand-over ended: {moved} open task(s) went back to them"
                )
            else:
                stand_ins: dict[str, str | None] = {
                    p: a.stand_in for p, a in rules.handovers.items()
                }
                stand_ins.update(ownership.recorded_stand_ins(session))
                stand_ins[person] = stand_in
                cycle = handover_cycle(stand_ins, person)
                if cycle is not None:
                    fail(f"--to: hand-over cycle {' → '.join(cycle)}: someone must keep the tasks")
                result = runtime.pipeline.tasks.hand_over(
                    session, from_=person, to=stand_in, by=who, until=back
                )
                span = f"until {until}" if until else "for good"
                text = (
                    f"moved {result.moved} open task(s) from {person} to {stand_in} "
                    f"({result.followed} follow the hand-over, {result.placed_by_hand} had been "
                    f"placed by hand); new tasks go to {stand_in} {span}"
                )
    finally:
        runtime.close()
    typer.echo(text)


def _address_or_exit(option: str, value: str) -> str:
    from taskplanner.config import email_address

    try:
        return email_address(value)
    except ValueError:
        fail(f"{option}: not an email address: {value!r}")


def _back_on_or_exit(value: str, runtime: Runtime) -> datetime:
    """``--until YYYY-MM-DD``: the day they are back, from midnight in the organisation's
    time zone; it must lie ahead."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        runtime.close()
        fail(f"--until: expected a date like 2027-01-04, got {value!r}")
    back = datetime.combine(day, time(0), runtime.config.organisation.zone()).astimezone(UTC)
    if back <= runtime.clock():
        runtime.close()
        fail(f"--until: {value} has begun already; give the day they are back")
    return back


# --------------------------------------------------------------------------- db

db_app = command_group(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply every pending migration (the daemon also does this on start)."""
    from taskplanner.store.migrate import current_revision

    runtime = open_runtime(config, migrate=False)
    try:
        before = current_revision(runtime.db)
        upgrade(runtime.db)
        after = current_revision(runtime.db)
    finally:
        runtime.close()
    typer.echo(f"database at revision {after}" + ("" if before == after else f" (was {before})"))


# --------------------------------------------------------------------------- sync


@app.command("sync")
def sync(
    source: Annotated[str | None, typer.Argument(help="One connector (default: all).")] = None,
    config: ConfigOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="List everything; notice deletions.")
    ] = False,
) -> None:
    """One polling pass, with progress; exits 1 if a source failed."""
    runtime = open_runtime(config)
    names = list(runtime.config.enabled_connectors())
    if source is not None:
        if source not in names:
            runtime.close()
            close = difflib.get_close_matches(source, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(names) or '-'}"
            fail(f"no enabled connector named {source!r}, {hint} ({runtime.config.source})")
        names = [source]
    runner = runtime.sync_runner()
    runner.ensure_sources()
    failed = False
    try:
        for name in names:
            if not runner.claim(name, force=True):
                typer.echo(f"{name}: another taskplanner process is polling it now; skipped")
                continue
            report = runner.sync(name, full=full, progress=_progress_printer(name))
            _end_progress()
            if report.ok:
                typer.echo(
                    f"{name}: ok, {report.snapshots} record(s) in {report.pages} page(s), "
                    f"{report.deleted} deleted, {report.opened} task(s) opened, "
                    f"{report.closed} closed ({report.seconds:.1f}s)"
                )
                if report.go_live is not None:
                    for line in report.go_live.lines():
                        typer.echo(f"{name}: {line}")
            else:
                failed = True
                typer.echo(f"{name}: failed: {report.error}", err=True)
    finally:
        runtime.close()
    if failed:
        raise typer.Exit(1)


def _progress_printer(name: str) -> Callable[[PollProgress], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(p: PollProgress) -> None:
        total = f"/{p.total_partitions}" if p.total_partitions else ""
        sys.stderr.write(
            f"\r{name}: {p.partition} page {p.pages}, {p.records} record(s), "
            f"{p.done_partitions}{total} part(s) done   "
        )
        sys.stderr.flush()

    return show


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


# --------------------------------------------------------------------------- inbox

inbox_app = command_group(help="Webhook deliveries waiting, set aside or dead-lettered.")
app.add_typer(inbox_app, name="inbox")


@inbox_app.command("list")
def inbox_list(
    config: ConfigOption = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only dead-lettered and set-aside deliveries.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 50,
) -> None:
    """List recent deliveries with their status, attempts and last error."""
    from sqlalchemy import select

    from taskplanner.inbox import DEAD, IGNORED
    from taskplanner.store import models as m

    runtime = open_runtime(config)
    try:
        with transaction(runtime.db, read_only=True) as session:
            query = select(m.InboxDelivery).order_by(col(m.InboxDelivery.id).desc()).limit(limit)
            if failed:
                query = query.where(col(m.InboxDelivery.status).in_([DEAD, IGNORED]))
            rows = list(session.scalars(query))
    finally:
        runtime.close()
    zone = runtime.config.organisation.zone()
    if not rows:
        typer.echo("inbox empty" if not failed else "no failed deliveries")
    for row in rows:
        typer.echo(
            f"{row.id}\t{row.connector}\t{row.status}\t{row.event_type or '-'}\t"
            f"attempts={row.attempts}\t{_fmt_time(row.received_at, zone)}\t"
            f"{row.last_error or ''}"
        )


@inbox_app.command("retry")
def inbox_retry(
    inbox_id: Annotated[int, typer.Argument(help="The delivery's inbox id.")],
    config: ConfigOption = None,
) -> None:
    """Put a dead-lettered or set-aside delivery back in the queue."""
    from taskplanner.inbox import retry

    runtime = open_runtime(config)
    try:
        with transaction(runtime.db) as session:
            retry(session, inbox_id, runtime.clock())
    except LookupError as exc:
        fail(str(exc), 1)
    finally:
        runtime.close()
    typer.echo(f"delivery {inbox_id} queued again")


# --------------------------------------------------------------------------- digest

digest_app = command_group(help="The daily digest email.", no_args_is_help=True)
app.add_typer(digest_app, name="digest")


@digest_app.command("send")
def digest_send(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the emails instead of sending them.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Send today's digest now to everyone with open tasks who has not had it today."""
    from taskplanner import digest

    loaded = load_config_or_exit(config)
    if loaded.digest is None and not dry_run:
        fail(f"digest: missing section [digest] (needed to send email) ({loaded.source})")
    runtime = open_runtime(config)
    try:
        if dry_run:
            messages = digest.preview_digests(runtime)
            for message in messages:
                typer.echo(f"From: {message['From']}\nTo: {message['To']}")
                typer.echo(f"Subject: {message['Subject']}\n")
                text = message.get_body(preferencelist=("plain",))
                typer.echo(text.get_content() if text is not None else "")
                typer.echo("-" * 72)
            typer.echo(f"dry run: {len(messages)} email(s) would be sent, none sent")
            return
        run = digest.send_digests(runtime, runtime.clock())
    finally:
        runtime.close()
    typer.echo(
        f"sent {len(run.sent)}, failed {len(run.failed)}, already sent today "
        f"{len(run.already_sent)}"
    )
    for recipient in run.failed:
        typer.echo(f"failed: {recipient}", err=True)
    if run.failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- daemon

LogLevelOption = Annotated[
    str,
    typer.Option(
        "--log-level",
        help="debug, info, warning or error. Logs go to stderr: JSON lines unless a terminal.",
    ),
]


def _configure_logging_or_exit(level: str) -> None:
    from taskplanner.logsetup import configure_logging

    try:
        configure_logging(level)
    except ValueError as exc:
        fail(f"--log-level: {exc}")


@app.command("run")
def run(
    config: ConfigOption = None,
    log_level: LogLevelOption = "info",
    no_migrate: Annotated[
        bool,
        typer.Option("--no-migrate", help="Do not migrate; refuse to start if migrations pend."),
    ] = False,
) -> None:
    """The daemon: HTTP server, polls, inbox, sweep and digest until SIGTERM/SIGINT."""
    from taskplanner.daemon import DaemonError, run_daemon

    _configure_logging_or_exit(log_level)
    loaded = load_config_or_exit(config)
    try:
        code = run_daemon(loaded, migrate=not no_migrate)
    except DaemonError as exc:
        fail(str(exc), 1)
    raise typer.Exit(code)


@app.command("status")
def status(config: ConfigOption = None) -> None:
    """Readiness, integrations, inbox and open tasks at a glance; exits 1 when not ready."""
    from taskplanner.status import collect_status, render_status

    runtime = open_runtime(config, migrate=False)
    try:
        report = collect_status(runtime)
        typer.echo(render_status(report, runtime.clock()))
    finally:
        runtime.close()
    raise typer.Exit(0 if report.ready else 1)


@app.command("sandbox")
def sandbox(
    seed: Annotated[int, typer.Option(help="Seed of the generated organisation.")] = 1,
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.", min=0, max=65535)] = 8080,
    db: Annotated[
        Path,
        typer.Option(help="SQLite file, emptied at start (only one the sandbox made).",
                     dir_okay=False),
    ] = Path("taskplanner-sandbox.db"),
    ats: Annotated[str, typer.Option(help=f"The fake ATS: {', '.join(ATS_TYPES)}.")] = ATS_TYPES[0],
    log_level: LogLevelOption = "info",
) -> None:
    """The daemon on a generated organisation served by a loopback fake ATS and Google."""
    from taskplanner.daemon import DaemonError
    from taskplanner.sandbox.run import run_sandbox, sandbox_unavailable

    unavailable = sandbox_unavailable(ats)
    if unavailable is not None:
        fail(unavailable)
    _configure_logging_or_exit(log_level)
    try:
        code = run_sandbox(seed=seed, port=port, db_path=db, ats=ats)
    except DaemonError as exc:
        fail(str(exc), 1)
    raise typer.Exit(code)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``taskplanner = "taskplanner.cli:main"``)."""
    app(args=argv, prog_name="taskplanner")


if __name__ == "__main__":
    main()
