"""The fault soak: the real daemon against the loopback fakes while an organisation changes.

One *run* starts a fake Greenhouse and a fake Google Calendar, fills them (`Organisation`),
starts ``taskplanner run`` as a subprocess on a fresh PostgreSQL database (reached through a
`TcpProxy`, so the database can be taken away) and, after the baseline sync, connects the
webhooks. Then the scripted organisation changes in steps: candidates apply, move, are
rejected; interviews are scheduled, declined, moved, cancelled, their panels changed. Each
entity changes at most once per step, and after each step the run waits until the daemon has
caught up (a poll of every source that started after the step, an empty inbox).

A *faulted* run does the same while injecting faults (`FAULT_KINDS`); a *clean* run of the same
seed injects none. At the end the two databases must hold the same mirror, the same open
tasks and the same closed ones (`compare`), and every webhook the daemon acknowledged must have
been processed (`lost_deliveries`). The daemon's log must not contain any configured secret,
nor a ``sync_crashed`` (a poll that hit a bug).

Time: the provider's clock (`StepClock`) advances one second per change from a base both runs
share (`soak_base`), so provider timestamps are equal in both; interviews lie days ahead of
that base and the rules' time windows are long, so the moment a run happens at does not change
its tasks.

Used by ``tests/reliability/test_soak.py`` (a short soak) and ``bench/soak.py --minutes N``.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlmodel import col

from taskplanner.sandbox.fake_google_calendar import (
    CONNECTION_RESET,
    TRUNCATED_JSON,
    Attendee,
    FakeGoogleCalendar,
)
from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse, WebhookDelivery
from taskplanner.store import models as m
from taskplanner.store.database import create_db_engine, transaction
from tests.ats_env import OWN_CLOCK_COLUMNS, mirror, open_situations
from tests.daemon_harness import (
    DaemonProcess,
    TcpProxy,
    cli_command,
    cli_env,
    free_port,
    fresh_pg_database,
)

# Configured secrets: each must never appear in the daemon's log.
GH_CLIENT_ID = "soak-greenhouse-client"
GH_CLIENT_SECRET = "soak-gh-client-secret-4b9e1c7a"  # noqa: S105 - a loopback fake's
WEBHOOK_SECRET = "soak-webhook-secret-d20f93e1"  # noqa: S105
API_TOKEN = "soak-api-token-8a61f0b2"  # noqa: S105
DB_PASSWORD = "soak-db-password-c3e7a915"  # noqa: S105 - trust auth ignores it
ENV = {
    "SOAK_GH_CLIENT_ID": GH_CLIENT_ID,
    "SOAK_GH_CLIENT_SECRET": GH_CLIENT_SECRET,
    "SOAK_GH_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "SOAK_API_TOKENS": API_TOKEN,
}
CONNECTORS = ("greenhouse", "google")
POLL = 1  # seconds between polls of each source
LEASE = 3  # seconds: a killed daemon's leases run out this fast
SLOW = 31.0  # seconds: past the connectors' 30 s HTTP timeout

DOMAIN = "acme.example"
COORDINATORS = (f"cora@{DOMAIN}", f"sam@{DOMAIN}")
INTERVIEWERS = tuple(f"{n}@{DOMAIN}" for n in ("ivy", "igor", "ines", "omar", "olga"))
PEOPLE = (
    (f"rick@{DOMAIN}", "Rick", "Recruiter", "admin"),
    (COORDINATORS[0], "Cora", "Coordinator", "coordinator"),
    (COORDINATORS[1], "Sam", "Scheduler", "coordinator"),
    *((email, email.split("@")[0].title(), "Interviewer", "interviewer") for email in INTERVIEWERS),
)
ROOMS = ("room-berlin-1@resource.calendar.google.com", "room-berlin-2@resource.calendar.google.com")
STAGES = ("Application Review", "Phone Screen", "Technical Interview", "Onsite", "Offer")
SCHEDULING = ("Phone Screen", "Technical Interview", "Onsite")
JOBS = ("Backend Engineer", "Product Designer", "Data Scientist", "Site Reliability Engineer")
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Joan", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth")


T = TypeVar("T")


def _hms(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%H:%M:%S}"


class StepClock:
    """The provider's clock: one second later at every reading, from a fixed base.

    Greenhouse's webhooks carry whole seconds, so one second per change keeps "which is newer"
    exact on both paths; the same script reads it the same number of times in both runs.
    """

    def __init__(self, base: datetime) -> None:
        self.base = base
        self.readings = 0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.readings += 1
            return self.base + timedelta(seconds=self.readings)


# ---------------------------------------------------------------------------- the organisation


@dataclass
class Application:
    id: int
    job: int
    coordinator: str
    name: str
    email: str
    stage: str
    active: bool = True
    interview: Interview | None = None  # the upcoming one, if any


@dataclass
class Interview:
    id: int
    event_id: str
    calendar: str
    panel: list[str]
    starts_at: datetime
    declined: str | None = None  # an interviewer who declined and is not yet replaced
    candidate_declined: bool = False


@dataclass(frozen=True)
class Change:
    kind: str
    apply: Callable[[], None]


class Organisation:
    """A recruiting team in the fakes and its seeded, scripted changes.

    The same seed and base give the same ids, timestamps and changes in every run.
    """

    def __init__(
        self, gh: FakeGreenhouse, google: FakeGoogleCalendar, *, seed: int, base: datetime,
        applications: int,
    ) -> None:
        self.gh, self.google = gh, google
        self.rng = random.Random(seed)  # noqa: S311 - test data
        self.day0 = base.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
        self.size = applications
        self.users: dict[str, int] = {}
        self.jobs: list[tuple[int, str]] = []  # (job id, its coordinator)
        self.applications: list[Application] = []
        self.events = 0
        self.counts: Counter[str] = Counter()

    def build(self) -> None:
        for email, first, last, role in PEOPLE:
            self.users[email] = self.gh.add_user(email, first, last, role=role)  # type: ignore[arg-type]
        for calendar in COORDINATORS:
            self.google.add_calendar(calendar)
        for index, name in enumerate(JOBS):
            coordinator = COORDINATORS[index % len(COORDINATORS)]
            job = self.gh.create_job(name, recruiter_id=self.users[PEOPLE[0][0]],
                                     coordinator_id=self.users[coordinator])
            self.gh.publish_job(job)
            self.jobs.append((job, coordinator))
        for _ in range(self.size):
            app = self._apply(self.rng.choice(STAGES[:-1]))
            if app.stage in SCHEDULING and self.rng.random() < 0.5:
                self._schedule(app)

    def step(self, changes: int) -> list[Change]:
        """Up to ``changes`` changes, each to a different application (and its interview)."""
        out: list[Change] = []
        touched: set[int] = set()
        for _ in range(changes * 3):
            if len(out) >= changes:
                break
            change = self._pick(touched)
            if change is not None:
                out.append(change)
        return out

    # ------------------------------------------------------------------ choosing

    def _pick(self, touched: set[int]) -> Change | None:
        kind = self.rng.choices(
            ("apply", "move", "schedule", "decline", "replace", "candidate_declines",
             "reschedule", "cancel", "reject"),
            weights=(2, 5, 4, 2, 3, 1, 2, 2, 1),
        )[0]
        if kind == "apply":
            return Change(kind, self._new_candidate)
        free = [a for a in self.applications if a.active and a.id not in touched]
        with_interview = [a for a in free if a.interview is not None]
        candidates: list[Application]
        if kind == "move":
            candidates = [a for a in free if a.interview is None and a.stage != "Offer"]
        elif kind == "schedule":
            candidates = [a for a in free if a.interview is None and a.stage in SCHEDULING]
        elif kind == "decline":
            candidates = [a for a in with_interview if a.interview and not a.interview.declined]
        elif kind == "replace":
            candidates = [a for a in with_interview if a.interview and a.interview.declined]
        elif kind == "candidate_declines":
            candidates = [a for a in with_interview
                          if a.interview and not a.interview.candidate_declined]
        elif kind in ("reschedule", "cancel"):
            candidates = with_interview
        else:  # reject: an application with nothing scheduled (cancel first, as people do)
            candidates = [a for a in free if a.interview is None]
        if not candidates:
            return None
        app = self.rng.choice(candidates)
        touched.add(app.id)
        action: Callable[[Application], None] = getattr(self, f"_{kind}")
        # Decide the random parts now, so applying is deterministic whenever it runs.
        seed = self.rng.randrange(1 << 30)
        return Change(kind, lambda: self._with_seed(seed, action, app))

    def _with_seed(self, seed: int, action: Callable[[Application], None], app: Application
                   ) -> None:
        saved, self.rng = self.rng, random.Random(seed)  # noqa: S311
        try:
            action(app)
        finally:
            self.rng = saved

    # ------------------------------------------------------------------ acting on the fakes

    def _apply(self, stage: str) -> Application:
        job, coordinator = self.rng.choice(self.jobs)
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        email = f"{first}.{last}.{len(self.applications) + 1}@example.com".lower()
        _, app_id = self.gh.add_candidate_application(
            job, first, last, email, stage_id=self.gh.stage_id(job, stage)
        )
        app = Application(app_id, job, coordinator, f"{first} {last}", email, stage)
        self.applications.append(app)
        return app

    def _new_candidate(self) -> None:
        self._apply("Application Review")

    def _move(self, app: Application) -> None:
        app.stage = STAGES[STAGES.index(app.stage) + 1]
        self.gh.move_application(app.id, self.gh.stage_id(app.job, app.stage))

    def _schedule(self, app: Application) -> None:
        self.events += 1
        event_id = f"soak{self.events:06d}"
        starts = self.day0 + timedelta(days=self.rng.randrange(10), hours=9 + self.rng.randrange(8))
        panel = self.rng.sample(INTERVIEWERS, 2)
        room = self.rng.choice(ROOMS)
        self.google.add_event(
            app.coordinator,
            event_id=event_id,
            start=starts,
            end=starts + timedelta(hours=1),
            summary=f"{app.stage}: {app.name}",
            organizer=app.coordinator,
            attendees=[
                Attendee(app.coordinator, "accepted", organizer=True),
                *(Attendee(email, "accepted") for email in panel),
                Attendee(app.email, "accepted", name=app.name),
                Attendee(room, "accepted", resource=True),
            ],
        )
        interview_id = self.gh.schedule_interview(
            app.id,
            self.gh.interview_kind_id(app.job, app.stage),
            [self.users[email] for email in panel],
            starts,
            starts + timedelta(hours=1),
            external_event_id=event_id,
            organizer_id=self.users[app.coordinator],
        )
        app.interview = Interview(interview_id, event_id, app.coordinator, panel, starts)

    def _decline(self, app: Application) -> None:
        interview = _must(app.interview)
        interview.declined = self.rng.choice(interview.panel)
        self.google.set_response(interview.calendar, interview.event_id, interview.declined,
                                 "declined")

    def _replace(self, app: Application) -> None:
        interview = _must(app.interview)
        leaving = _must(interview.declined)
        joining = self.rng.choice([e for e in INTERVIEWERS if e not in interview.panel])
        self.gh.remove_interviewer(interview.id, self.users[leaving])
        self.gh.add_interviewer(interview.id, self.users[joining])
        self.google.remove_attendee(interview.calendar, interview.event_id, leaving)
        self.google.add_attendee(interview.calendar, interview.event_id,
                                 Attendee(joining, "accepted"))
        interview.panel = [e for e in interview.panel if e != leaving] + [joining]
        interview.declined = None

    def _candidate_declines(self, app: Application) -> None:
        interview = _must(app.interview)
        interview.candidate_declined = True
        self.google.set_response(interview.calendar, interview.event_id, app.email, "declined")

    def _reschedule(self, app: Application) -> None:
        interview = _must(app.interview)
        interview.starts_at += timedelta(days=1 + self.rng.randrange(3))
        end = interview.starts_at + timedelta(hours=1)
        self.gh.reschedule_interview(interview.id, interview.starts_at, end)
        self.google.move_event(interview.calendar, interview.event_id,
                               start=interview.starts_at, end=end)

    def _cancel(self, app: Application) -> None:
        interview = _must(app.interview)
        self.gh.cancel_interview(interview.id)
        self.google.delete_event(interview.calendar, interview.event_id)
        app.interview = None

    def _reject(self, app: Application) -> None:
        self.gh.reject_application(app.id)
        app.active = False


def _must(value: T | None) -> T:
    assert value is not None  # noqa: S101 - the script only picks what has one
    return value


# ---------------------------------------------------------------------------- faults

# Every kind a faulted run injects; `FaultPlan` spreads them over the steps.
FAULT_KINDS = (
    "greenhouse_429_retry_after",
    "greenhouse_429_no_retry_after",
    "greenhouse_5xx_burst",
    "greenhouse_slow_past_timeout",
    "greenhouse_connection_reset",
    "greenhouse_truncated_json",
    "google_429_retry_after",
    "google_429_no_retry_after",
    "google_5xx_burst",
    "google_connection_reset",
    "google_truncated_json",
    "google_sync_token_expired",
    "credential_revoked",
    "webhooks_duplicated",
    "webhooks_reordered",
    "database_unavailable",
    "daemon_killed",
)


@dataclass
class FaultPlan:
    """Which faults each step gets: ``per_step`` kinds in turn (every kind once per round, in
    a shuffled order), plus, with chance ``extra`` each, further ones at random."""

    rng: random.Random
    per_step: int = 1
    extra: float = 0.5
    slow: bool = True  # whether slow answers (31 s each) are among the kinds
    _queue: list[str] = field(default_factory=list)

    def next_step(self) -> list[str]:
        kinds = [k for k in FAULT_KINDS if self.slow or "slow" not in k]
        chosen = []
        for _ in range(self.per_step):
            if not self._queue:
                self._queue = self.rng.sample(kinds, len(kinds))
            chosen.append(self._queue.pop())
        while self.rng.random() < self.extra:
            chosen.append(self.rng.choice(kinds))
        return sorted(set(chosen))


# ---------------------------------------------------------------------------- one run


class StepGate:
    """Keeps the clean run to the steps the faulted run takes.

    The faulted run (the leader) goes on while steps are left and time is; the clean run
    follows, step for step, and ends where the leader ended.
    """

    def __init__(self, steps: int | None, seconds: float | None) -> None:
        self.steps, self.deadline = steps, None if seconds is None else time.monotonic() + seconds
        self.taken = 0
        self.finished = False
        self._changed = threading.Condition()

    def lead(self, number: int) -> bool:
        with self._changed:
            go = (self.steps is None or number <= self.steps) and (
                self.deadline is None or time.monotonic() < self.deadline
            )
            if go:
                self.taken = number
            else:
                self.finished = True
            self._changed.notify_all()
            return go

    def follow(self, number: int) -> bool:
        with self._changed:
            self._changed.wait_for(lambda: self.taken >= number or self.finished)
            return self.taken >= number

    def finish(self) -> None:
        with self._changed:
            self.finished = True
            self._changed.notify_all()


@dataclass
class RunResult:
    mirror: dict[str, list[tuple[Any, ...]]]
    open_tasks: list[tuple[str, str, str]]
    tasks: Counter[tuple[Any, ...]]
    deliveries: Counter[str]
    faults: Counter[str]
    lost_deliveries: list[str]
    changes: Counter[str]
    leaked_secrets: list[str]
    crashed_polls: int  # `sync_crashed` in the log: a poll that hit a bug
    steps: int
    unsettled_steps: int
    daemon_starts: int
    daemon_crashes: int
    seconds: float


class Daemon:
    """``taskplanner run`` as a subprocess that can be killed and started again; every start
    appends to the same log files."""

    def __init__(self, config: Path, port: int, workdir: Path) -> None:
        self.config, self.port, self.workdir = config, port, workdir
        self.log_path = workdir / "daemon.stderr.log"
        self.out_path = workdir / "daemon.stdout.log"
        self.handle: DaemonProcess | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as stderr, self.out_path.open("ab") as stdout:
            process = subprocess.Popen(  # noqa: S603 - our own CLI
                cli_command("run", "--config", str(self.config)),
                cwd=self.workdir, env=cli_env(ENV), stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr,
            )
        self.handle = DaemonProcess(process, self.port, self.log_path, self.out_path)
        self.starts += 1
        self.handle.wait_until_serving(timeout=120)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released."""
        if self.handle is not None:
            self.handle.process.send_signal(signal.SIGKILL)
            self.handle.process.wait(timeout=30)

    def stop(self) -> None:
        if self.handle is not None and self.handle.alive():
            self.handle.signal(signal.SIGTERM)
            try:
                self.handle.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.handle.kill()

    def alive(self) -> bool:
        return self.handle is not None and self.handle.alive()

    def logs(self) -> str:
        text = ""
        for path in (self.log_path, self.out_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text


def write_config(path: Path, *, database_url: str, port: int, gh: FakeGreenhouse,
                 google: FakeGoogleCalendar, google_key: Path) -> Path:
    people = "\n".join(
        f'[[people]]\nemail = "{email}"\nname = "{first} {last}"\nrole = "{role}"\n'
        for email, first, last, role in PEOPLE
    )
    calendars = ", ".join(f'"{c}"' for c in COORDINATORS)
    scheduling = ", ".join(f'"{s}"' for s in SCHEDULING)
    path.write_text(f"""
[organisation]
name = "Acme Soak"
account_owner = "{PEOPLE[0][0]}"

[database]
url = "{database_url}"

[server]
port = {port}
api_tokens_env = "SOAK_API_TOKENS"

[daemon]
lease = "{LEASE}s"
shutdown_timeout = "5s"

[rules]
scheduling_stages = [{scheduling}]
integration_failure_threshold = 2

{people}
[connectors.greenhouse]
type = "greenhouse"
base_url = "{gh.base_url}"
auth_url = "{gh.auth_url}"
client_id_env = "SOAK_GH_CLIENT_ID"
client_secret_env = "SOAK_GH_CLIENT_SECRET"
webhook_secret_env = "SOAK_GH_WEBHOOK_SECRET"
poll_interval = "{POLL}s"

[connectors.google]
type = "google_calendar"
credentials_file = "{google_key}"
calendars = [{calendars}]
base_url = "{google.url}"
token_url = "{google.token_uri}"
poll_interval = "{POLL}s"
""")
    return path


@dataclass
class SoakRun:
    """One run of the script; ``faults=None`` makes it the clean run."""

    workdir: Path
    seed: int
    base: datetime
    gate: StepGate
    changes_per_step: int
    applications: int
    faults: FaultPlan | None = None
    settle_timeout: float = 120.0
    # The last catching-up: no fault strikes any more, so only a loaded machine makes it slow.
    # It must finish (else the comparison would read a run half caught up): it gets longer,
    # and failing it is an error naming what is still pending, never a comparison.
    final_settle_timeout: float = 600.0
    say: Callable[[str], None] = lambda _: None

    def __post_init__(self) -> None:
        self.injected: Counter[str] = Counter()
        self.steps_taken = 0
        self.unsettled = 0
        self.crashes = 0

    def run(self) -> RunResult:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        clock = StepClock(self.base)
        with (
            FakeGreenhouse(client_id=GH_CLIENT_ID, client_secret=GH_CLIENT_SECRET, clock=clock,
                           async_webhooks=True, rate_limit=1_000_000) as gh,
            FakeGoogleCalendar() as google,
            fresh_pg_database("taskplanner_soak") as url,
        ):
            self.gh, self.google = gh, google
            org = Organisation(gh, google, seed=self.seed, base=self.base,
                               applications=self.applications)
            org.build()
            key = google.write_service_account_key(self.workdir / "google-key.json")
            proxy = TcpProxy(("127.0.0.1", 5432)).start()
            self.proxy = proxy
            host_url = url.replace("postgresql://postgres@",
                                   f"postgresql+psycopg://postgres:{DB_PASSWORD}@")
            proxied = host_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            port = free_port()
            config = write_config(self.workdir / "taskplanner.toml", database_url=proxied,
                                  port=port, gh=gh, google=google, google_key=key)
            self.daemon = Daemon(config, port, self.workdir)
            self.db = create_db_engine(url.replace("postgresql://", "postgresql+psycopg://"))
            try:
                self.daemon.start()
                self._wait(self._went_live, "the baseline sync", 120)
                gh.configure_webhook(f"http://127.0.0.1:{port}/webhooks/greenhouse",
                                     WEBHOOK_SECRET)
                proceed = self.gate.lead if self.faults else self.gate.follow
                number = 1
                while proceed(number):
                    self._step(org, number)
                    number += 1
                self._finish()
                return self._result(org, started)
            finally:
                if self.faults:
                    self.gate.finish()
                self.daemon.stop()
                proxy.cut()
                self.db.dispose()

    # ------------------------------------------------------------------ steps

    def _step(self, org: Organisation, number: int) -> None:
        self.steps_taken = number
        changes = org.step(self.changes_per_step)
        kinds = self.faults.next_step() if self.faults else []
        self.say(f"step {number}: {len(changes)} changes, faults: {', '.join(kinds) or '-'}")
        rng = self.faults.rng if self.faults else random.Random(0)  # noqa: S311
        self._before(kinds)
        # Faults that strike at a random moment among the changes.
        moments = {kind: rng.randrange(len(changes) + 1)
                   for kind in kinds if kind in ("database_unavailable", "daemon_killed")}
        cut_until = 0.0
        for index, change in enumerate([*changes, None]):
            for kind, moment in moments.items():
                if moment != index:
                    continue
                if kind == "daemon_killed":
                    self.daemon.kill()
                elif kind == "database_unavailable":
                    self.proxy.cut()
                    cut_until = time.monotonic() + rng.uniform(1.0, 3.0)
            if change is not None:
                change.apply()
                org.counts[change.kind] += 1
        if cut_until:
            time.sleep(max(0.0, cut_until - time.monotonic()))
            self.proxy.restore()
        if "daemon_killed" in kinds:
            time.sleep(rng.uniform(0.0, 1.0))
            self.daemon.start()
        self._after(kinds, rng)
        self.injected.update(kinds)
        self._settle(number)

    def _before(self, kinds: Sequence[str]) -> None:
        gh, google = self.gh, self.google
        for kind in kinds:
            if kind == "greenhouse_429_retry_after":
                gh.throttle_next(4, retry_after=1)
            elif kind == "greenhouse_429_no_retry_after":
                gh.fail_next(429, times=4)
            elif kind == "greenhouse_5xx_burst":
                gh.fail_next(503, times=3)
                gh.fail_next(500, times=2)
            elif kind == "greenhouse_slow_past_timeout":
                gh.slow_next(SLOW)
            elif kind == "greenhouse_connection_reset":
                gh.reset_next(times=2)
                gh.disconnect_next()
            elif kind == "greenhouse_truncated_json":
                gh.truncate_next(times=2)
            elif kind == "google_429_retry_after":
                google.fail_next("rate_limit_429", times=4, retry_after=1)
            elif kind == "google_429_no_retry_after":
                google.fail_next("rate_limit_429", times=4)
            elif kind == "google_5xx_burst":
                google.fail_next("unavailable_503", times=3)
                google.fail_next("backend_error_500", times=2)
            elif kind == "google_connection_reset":
                google.fail_next(CONNECTION_RESET, times=2)
            elif kind == "google_truncated_json":
                google.fail_next(TRUNCATED_JSON, times=2)
            elif kind == "google_sync_token_expired":
                google.expire_sync_tokens()
            elif kind == "credential_revoked":
                gh.revoke_credentials()
            elif kind == "webhooks_reordered":
                gh.hold_webhooks()

    def _after(self, kinds: Sequence[str], rng: random.Random) -> None:
        gh = self.gh
        gh.flush_webhooks()
        if "credential_revoked" in kinds:
            # Long enough for polls to fail past the threshold (a broken_integration task).
            time.sleep(POLL * 5)
            gh.restore_credentials()
        if "webhooks_reordered" in kinds:
            gh.release_webhooks(reverse=True)
        if "webhooks_duplicated" in kinds:
            sent = [d for d in gh.webhook_deliveries if d.delivered]
            for delivery in rng.sample(sent, min(len(sent), 8)):
                gh.redeliver(delivery)

    def _settle(self, number: int) -> None:
        self.gh.flush_webhooks()
        mark = datetime.now(UTC)
        if not self._wait(lambda: self._caught_up(mark), f"step {number}", self.settle_timeout,
                          fail=False):
            self.unsettled += 1
            self.say(f"step {number} did not settle: {'; '.join(self._pending(mark))}")

    def _finish(self) -> None:
        """Faults stop: credentials back, the database back, the daemon running; then the
        last poll of every source, twice (any fault left queued was spent by the first).

        Each wait ends as soon as the run has caught up; one that does not within
        `final_settle_timeout` fails the run with what is still pending.
        """
        self.gh.restore_credentials()
        self.google.restore_credentials()
        self.gh.release_webhooks()
        if not self.daemon.alive():
            self.daemon.start()
        for _ in range(2):
            self.gh.flush_webhooks()
            mark = datetime.now(UTC)
            if not self._wait(lambda: self._caught_up(mark), "the final poll",  # noqa: B023
                              self.final_settle_timeout, fail=False):
                name = "faulted" if self.faults else "clean"
                raise AssertionError(
                    f"the {name} run did not settle within {self.final_settle_timeout:.0f}s "
                    f"after its last step, so its end state is not compared; pending: "
                    f"{'; '.join(self._pending(mark))}\n"
                    f"daemon log (end):\n{self.daemon.logs()[-3000:]}"
                )

    # ------------------------------------------------------------------ reading the database

    def _went_live(self) -> bool:
        with transaction(self.db, read_only=True) as session:
            rows = [session.get(m.SyncSource, name) for name in CONNECTORS]
            return all(row is not None and row.went_live_at is not None for row in rows)

    def _caught_up(self, mark: datetime) -> bool:
        """A poll of every source started after ``mark`` and succeeded, and the inbox is
        empty."""
        return not self._pending(mark)

    def _pending(self, mark: datetime) -> list[str]:
        """What `_caught_up` still waits for, one phrase each (empty: caught up)."""
        out: list[str] = []
        try:
            with transaction(self.db, read_only=True) as session:
                for name in CONNECTORS:
                    source = session.get(m.SyncSource, name)
                    health = session.get(m.IntegrationHealth, name)
                    started = source.last_started_at if source else None
                    succeeded = health.last_success_at if health else None
                    if started is None or started <= mark:
                        out.append(f"{name}: no poll started since {mark:%H:%M:%S} "
                                   f"(last started {_hms(started)})")
                    elif succeeded is None or succeeded < started:
                        out.append(f"{name}: the poll started at {_hms(started)} has not "
                                   f"succeeded (last success {_hms(succeeded)})")
                    if health is not None and health.state != "ok":
                        out.append(f"{name}: health {health.state} "
                                   f"({(health.last_error or '')[:200]})")
                pending = session.scalar(
                    select(func.count()).select_from(m.InboxDelivery)
                    .where(col(m.InboxDelivery.status) == "pending")
                ) or 0
                if pending:
                    out.append(f"inbox: {pending} webhook deliveries pending")
        except Exception as problem:  # noqa: BLE001 - the database itself may be the reason
            out.append(f"the database could not be read: {type(problem).__name__}: {problem}")
        return out

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float, *,
              fail: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if condition():
                    return True
            if not self.daemon.alive():  # exited by itself: a finding, counted
                self.crashes += 1
                self.say(f"the daemon exited by itself:\n{self.daemon.logs()[-2000:]}")
                self.daemon.start()
            time.sleep(0.2)
        self.say(f"timed out after {timeout:.0f}s waiting for {what}")
        if fail:
            raise AssertionError(f"timed out waiting for {what}:\n{self.daemon.logs()[-3000:]}")
        return False

    def _result(self, org: Organisation, started: float) -> RunResult:
        deliveries: Counter[str] = Counter()
        for delivery in self.gh.webhook_deliveries:
            deliveries["sent"] += 1
            deliveries["acknowledged" if delivery.delivered else "not_acknowledged"] += 1
        deliveries["redelivered"] = sum(1 for _ in self._redeliveries())
        return RunResult(
            mirror=full_mirror(self.db),
            open_tasks=open_situations(self.db),
            tasks=task_view(self.db),
            deliveries=deliveries,
            faults=Counter(self.injected),
            lost_deliveries=lost_deliveries(self.db, self.gh.webhook_deliveries),
            changes=Counter(org.counts),
            leaked_secrets=leaked_secrets(self.daemon.logs(), self.secrets()),
            crashed_polls=self.daemon.logs().count('"event": "sync_crashed"'),
            steps=self.steps_taken,
            unsettled_steps=self.unsettled,
            daemon_starts=self.daemon.starts,
            daemon_crashes=self.crashes,
            seconds=time.monotonic() - started,
        )

    def _redeliveries(self) -> Iterator[WebhookDelivery]:
        seen: set[str] = set()
        for delivery in self.gh.webhook_deliveries:
            if delivery.event_id in seen:
                yield delivery
            seen.add(delivery.event_id)

    def secrets(self) -> list[str]:
        """Every secret the daemon was given or was handed by a provider."""
        key = json.loads((self.workdir / "google-key.json").read_text())
        pem_lines = [line for line in key["private_key"].splitlines() if "-----" not in line]
        issued = [*self.gh._tokens, *self.google._tokens]  # noqa: SLF001 - the fakes' own record
        return [GH_CLIENT_SECRET, WEBHOOK_SECRET, API_TOKEN, DB_PASSWORD,
                key["private_key_id"], *pem_lines, *issued]


# ---------------------------------------------------------------------------- comparing

# The fake calendar stamps `updated` with the real time: a moment of this run, compared nowhere.
CALENDAR_TABLES = {"calendar_events": {"updated_at"}, "calendar_attendees": set()}
# Columns whose value depends on the path a record took, not on the provider's state: a
# webhook's (v1) candidate carries no updated_at, so the application's stands in
# (connectors/greenhouse/mapping.py, map_application); a poll reads the candidate's own.
PATH_COLUMNS = {"candidates": "updated_at"}


def full_mirror(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The ATS mirror (tests.ats_env.mirror) and the calendar mirror, rows in key order.

    A deleted record's ``updated_at`` is when *we* saw it go (a deletion carries no provider
    time), so it is blanked, as are `PATH_COLUMNS`; `CALENDAR_TABLES` leaves some out.
    """
    out = mirror(db)
    for name in out:
        names = [c.name for c in m.metadata.tables[name].columns
                 if c.name not in OWN_CLOCK_COLUMNS.get(name, frozenset())]
        if name in PATH_COLUMNS:
            blank = names.index(PATH_COLUMNS[name])
            out[name] = [tuple(None if i == blank else v for i, v in enumerate(row))
                         for row in out[name]]
        if "status" in names and "updated_at" in names:
            status, updated = names.index("status"), names.index("updated_at")
            out[name] = [
                tuple(None if i == updated and row[status] == "deleted" else v
                      for i, v in enumerate(row))
                for row in out[name]
            ]
    with transaction(db, read_only=True) as session:
        for name, skip in CALENDAR_TABLES.items():
            table = m.metadata.tables[name]
            columns = [c for c in table.columns if c.name not in skip]
            query = select(*columns).order_by(*table.primary_key.columns)
            out[name] = [tuple(row) for row in session.execute(query)]
    return out


def task_view(db: Engine) -> Counter[tuple[Any, ...]]:
    """Every task, open or closed, as (category, key, assignee, status, resolution).

    ``broken_integration`` tasks are left out: they record the faults themselves (a revoked
    credential opens one), which a clean run has none of.
    """
    with transaction(db, read_only=True) as session:
        rows = session.execute(
            select(col(m.Task.category), col(m.Task.key), col(m.Task.assignee),
                   col(m.Task.status), col(m.Task.resolution))
            .where(col(m.Task.category) != "broken_integration")
        )
        return Counter(tuple(row) for row in rows)


def lost_deliveries(db: Engine, deliveries: Sequence[WebhookDelivery]) -> list[str]:
    """Event ids of webhooks the daemon acknowledged (2xx) that are not processed."""
    acknowledged = {d.event_id for d in deliveries if d.delivered}
    with transaction(db, read_only=True) as session:
        processed = set(session.scalars(
            select(col(m.InboxDelivery.delivery_id)).where(
                col(m.InboxDelivery.connector) == "greenhouse",
                col(m.InboxDelivery.status).in_(("done", "ignored")),
            )
        ))
    return sorted(acknowledged - processed)


def leaked_secrets(text: str, secrets: Sequence[str]) -> list[str]:
    """The secrets found in ``text``, each shortened to its first four characters."""
    return sorted({s[:4] + "..." for s in secrets if s and s in text})


def compare(clean: RunResult, faulted: RunResult) -> list[str]:
    """One line per difference between the runs' end states (none expected)."""
    out: list[str] = []
    for table in sorted(set(clean.mirror) | set(faulted.mirror)):
        a, b = Counter(clean.mirror.get(table, [])), Counter(faulted.mirror.get(table, []))
        out += [f"{table}: only in the clean run: {row}" for row in sorted((a - b).elements(),
                                                                            key=repr)]
        out += [f"{table}: only in the faulted run: {row}" for row in sorted((b - a).elements(),
                                                                              key=repr)]
    a_open, b_open = Counter(clean.open_tasks), Counter(faulted.open_tasks)
    out += [f"open task only in the clean run: {t}" for t in sorted((a_open - b_open).elements())]
    out += [f"open task only in the faulted run: {t}"
            for t in sorted((b_open - a_open).elements())]
    out += [f"task only in the clean run: {t}"
            for t in sorted((clean.tasks - faulted.tasks).elements(), key=repr)]
    out += [f"task only in the faulted run: {t}"
            for t in sorted((faulted.tasks - clean.tasks).elements(), key=repr)]
    return out


def soak_base() -> datetime:
    """The provider clock's base for both runs: now, to the second.

    The provider's clock must not lag ours: an ATS poll asks for what changed since the
    previous poll's start by *our* clock, as in production, where both follow real time. A
    `StepClock` runs ahead of real time (one second per change), which only re-reads.
    """
    return datetime.now(UTC).replace(microsecond=0)


def run_pair(
    workdir: Path, *, seed: int, changes_per_step: int, applications: int,
    steps: int | None = None, minutes: float | None = None,
    slow: bool = True, faults_per_step: int = 1, extra_faults: float = 0.5,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[RunResult, RunResult]:
    """The clean run and the faulted run of one script, side by side (two threads), for
    ``steps`` steps or until ``minutes`` have passed, whichever comes first."""
    base = soak_base()
    gate = StepGate(steps, None if minutes is None else minutes * 60)
    common = dict(seed=seed, base=base, gate=gate, changes_per_step=changes_per_step,
                  applications=applications)
    clean = SoakRun(workdir / "clean", **common)  # type: ignore[arg-type]
    faulted = SoakRun(
        workdir / "faulted",
        faults=FaultPlan(random.Random(seed + 1), per_step=faults_per_step,  # noqa: S311
                         extra=extra_faults, slow=slow),
        say=say,
        **common,  # type: ignore[arg-type]
    )
    results: dict[str, RunResult] = {}
    errors: list[BaseException] = []

    def go(name: str, run: SoakRun) -> None:
        try:
            results[name] = run.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
            gate.finish()

    threads = [threading.Thread(target=go, args=(n, r), name=f"soak-{n}")
               for n, r in (("clean", clean), ("faulted", faulted))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results["clean"], results["faulted"]
