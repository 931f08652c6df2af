"""Go-live, end to end: an organisation that already has a backlog connects taskplanner.

The loopback fake Greenhouse and a fake calendar (Google, then Microsoft) hold candidates
already waiting, interviews already declined, past interviews without scorecards and old
jobs; the real connectors' first syncs run through the SyncRunner. Afterwards exactly the
tasks that describe a state are open (SPEC §3, Go-live), none that describe a moment, and a
second sync opens nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskplanner.cli import app
from taskplanner.runtime import Runtime
from taskplanner.sandbox.fake_greenhouse import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeGreenhouse,
)
from taskplanner.sync import SyncReport, SyncRunner
from tests.ats_env import OffsetClock, ProviderClock
from tests.calendar_env import (
    ACCEPTED,
    DECLINED,
    CalendarProvider,
    GoogleProvider,
    Invitee,
    unique,
)
from tests.greenhouse_env import (
    GREENHOUSE,
    make_connector,
)
from tests.taskflow import tasks
from tests.webapp import make_config

CORA, SAM, ADA = "cora@acme.example", "sam@acme.example", "ada@acme.example"
MOMENTS = {"new_job", "new_stage", "new_interview", "schedule_cancelled"}


@dataclass
class Backlog:
    """What the organisation holds before taskplanner looks, and what go-live must open."""

    expected: set[tuple[str, str | None, str | None, str]]  # category, application, attendee, who
    calendar: str
    job_id: int


@dataclass
class Org:
    fake: FakeGreenhouse
    provider: CalendarProvider
    runtime: Runtime
    clock: OffsetClock
    backlog: Backlog

    def sync(self, name: str) -> SyncReport:
        runner: SyncRunner = self.runtime.sync_runner("go-live-test", jitter=0.0)
        runner.ensure_sources()
        assert runner.claim(name, force=True)
        report = runner.sync(name)
        assert report.ok, report.error
        return report

    def open_situations(self) -> set[tuple[str, str | None, str | None, str]]:
        return {
            (t.category, t.application_id, t.attendee, t.assignee)
            for t in tasks(self.runtime.db, status="open")
        }


def calendar_connector_config(provider: CalendarProvider, calendar: str) -> dict[str, Any]:
    if isinstance(provider, GoogleProvider):
        return {
            "type": "google_calendar",
            "credentials_file": str(provider.key_file),
            "calendars": [calendar],
        }
    return {
        "type": "microsoft_calendar",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "client_id_env": "M365_CLIENT_ID",
        "client_secret_env": "M365_CLIENT_SECRET",
        "calendars": [calendar],
    }


def build_backlog(fake: FakeGreenhouse, provider: CalendarProvider, clock: OffsetClock) -> Backlog:
    """Three weeks of history, then today's state: see the module docstring."""
    cora = fake.add_user(CORA, "Cora", "Coordinator")
    sam = fake.add_user(SAM, "Sam", "Recruiter")
    ivy = fake.add_user("ivy@acme.example", "Ivy", "Interviewer")
    job = fake.create_job("Platform Engineer", recruiter_id=sam, coordinator_id=cora)
    fake.publish_job(job)
    old_draft = fake.create_job(
        "Data Analyst", recruiter_id=sam, coordinator_id=cora
    )  # unpublished
    stage = {name: fake.stage_id(job, name) for name in ("Application Review", "Phone Screen")}
    stage["Onsite"] = fake.stage_id(job, "Onsite")

    def apply(last: str, stage_name: str) -> int:
        email = f"{last.lower()}@example.com"
        return fake.add_candidate_application(job, "Pat", last, email, stage_id=stage[stage_name])[
            1
        ]

    reviewing = apply("Reviewing", "Application Review")  # sits there for three weeks
    clock.advance(timedelta(days=21))
    fake.add_stage(job, "Take-home Exercise")  # a stage added before go-live: no new_stage

    waiting = apply("Waiting", "Phone Screen")
    scheduled = apply("Scheduled", "Onsite")
    declined = apply("Declined", "Onsite")
    calendar_declined = apply("Calendar", "Phone Screen")
    past = apply("Past", "Onsite")
    cancelled = apply("Cancelled", "Onsite")

    now = clock()
    onsite = fake.interview_kind_id(job, "Onsite")
    phone = fake.interview_kind_id(job, "Phone Screen")

    def interview(application: int, kind: int, start: Any, event_id: str | None = None) -> int:
        return fake.schedule_interview(
            application, kind, [ivy], start, start + timedelta(hours=1), external_event_id=event_id
        )

    interview(scheduled, onsite, now + timedelta(days=2))
    declined_interview = interview(declined, onsite, now + timedelta(days=3))
    fake.set_interviewer_response(declined_interview, ivy, "declined")
    interview(past, onsite, now - timedelta(days=2))  # ended long ago, no scorecard

    calendar = unique(CORA)
    start = now + timedelta(days=4)
    booking = provider.book(
        calendar,
        start=start,
        end=start + timedelta(hours=1),
        invitees=[
            Invitee("ivy@acme.example", ACCEPTED),
            Invitee("calendar@example.com", DECLINED),  # the candidate
            Invitee(provider.room, DECLINED, room=True),
        ],
    )
    interview(calendar_declined, phone, start, booking.link_id)
    start = now + timedelta(days=5)
    gone = provider.book(
        calendar, start=start, end=start + timedelta(hours=1), invitees=[Invitee(CORA, ACCEPTED)]
    )
    interview(cancelled, onsite, start, gone.link_id)
    provider.cancel(gone)  # cancelled on the calendar before go-live: no schedule_cancelled

    room = provider.room.lower()
    return Backlog(
        expected={
            ("ready_to_schedule", str(waiting), None, CORA),
            ("interviewer_declined", str(declined), "ivy@acme.example", CORA),
            ("room_declined", str(calendar_declined), room, CORA),
            ("candidate_declined", str(calendar_declined), "calendar@example.com", CORA),
            ("pending_evaluation", str(past), "ivy@acme.example", CORA),
            ("inactive_candidate", str(reviewing), None, CORA),
            ("job_not_live", None, None, CORA),
        },
        calendar=calendar,
        job_id=old_draft,
    )


@pytest.fixture
def org(db_url: str, provider: CalendarProvider) -> Iterator[Org]:
    clock = OffsetClock()
    with FakeGreenhouse(clock=ProviderClock(clock), rate_limit=1_000_000) as fake:
        backlog = build_backlog(fake, provider, clock)
        config = make_config(
            db_url,
            connectors={
                GREENHOUSE: {
                    "type": "greenhouse",
                    "base_url": fake.base_url,
                    "auth_url": fake.auth_url,
                    "client_id_env": "GREENHOUSE_CLIENT_ID",
                    "client_secret_env": "GREENHOUSE_CLIENT_SECRET",
                },
                provider.connector_name: calendar_connector_config(provider, backlog.calendar),
            },
        )
        runtime = Runtime.from_config(config, clock=clock, migrate=False)
        runtime.use_connector(GREENHOUSE, make_connector(fake))
        runtime.use_connector(provider.connector_name, provider.connector([backlog.calendar]))
        try:
            yield Org(fake, provider, runtime, clock, backlog)
        finally:
            runtime.close()


@pytest.mark.parametrize("first", ["ats", "calendar"])
def test_first_sync_opens_the_backlog_of_states_and_no_moments(org: Org, first: str) -> None:
    calendar = org.provider.connector_name
    order = [GREENHOUSE, calendar] if first == "ats" else [calendar, GREENHOUSE]

    reports = {name: org.sync(name) for name in order}

    assert org.open_situations() == org.backlog.expected
    everything = tasks(org.runtime.db)
    assert {t.category for t in everything} & MOMENTS == set()
    assert all(t.status == "open" for t in everything)  # nothing opened only to close again
    # Each first sync ends with its go-live summary; together they account for every task.
    summaries = [reports[name].go_live for name in order]
    assert all(s is not None for s in summaries)
    opened = sum(s.total for s in summaries if s is not None)
    assert opened == len(org.backlog.expected)
    ats = reports[GREENHOUSE].go_live
    assert ats is not None
    assert ats.by_category["ready_to_schedule"] == 1
    assert ats.by_category["job_not_live"] == 1
    assert ats.by_person == {CORA: ats.total}

    again = {name: org.sync(name) for name in order}

    assert [r.opened for r in again.values()] == [0, 0]
    assert all(r.go_live is None for r in again.values())
    assert org.open_situations() == org.backlog.expected


def test_after_go_live_moments_open_again(org: Org) -> None:
    org.sync(GREENHOUSE)
    sam = org.fake.user_id(SAM)

    new_job = org.fake.create_job("Designer", recruiter_id=sam)
    report = org.sync(GREENHOUSE)

    assert report.go_live is None
    assert [(t.category, t.job_id) for t in tasks(org.runtime.db, "new_job")] == [
        ("new_job", str(new_job))
    ]


# --- the CLI ------------------------------------------------------------------------------


def test_sync_full_ends_the_first_sync_with_a_go_live_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = OffsetClock()
    with FakeGreenhouse(clock=ProviderClock(clock), rate_limit=1_000_000) as fake:
        cora = fake.add_user(CORA, "Cora", "Coordinator")
        job = fake.create_job("Platform Engineer", coordinator_id=cora)
        fake.publish_job(job)
        for last in ("One", "Two"):
            fake.add_candidate_application(
                job, "Pat", last, f"{last}@example.com", stage_id=fake.stage_id(job, "Onsite")
            )
        path = tmp_path / "taskplanner.toml"
        path.write_text(
            f"""
[organisation]
name = "Acme"
account_owner = "{ADA}"

[database]
url = "sqlite:///{tmp_path / "tp.db"}"

[rules]
scheduling_stages = ["Onsite"]

[connectors.greenhouse]
type = "greenhouse"
base_url = "{fake.base_url}"
auth_url = "{fake.auth_url}"
client_id_env = "GH_ID"
client_secret_env = "GH_SECRET"
"""
        )
        monkeypatch.setenv("GH_ID", DEFAULT_CLIENT_ID)
        monkeypatch.setenv("GH_SECRET", DEFAULT_CLIENT_SECRET)

        first = CliRunner().invoke(app, ["sync", "--full", "--config", str(path)])
        second = CliRunner().invoke(app, ["sync", "--full", "--config", str(path)])

    assert first.exit_code == 0, first.stderr
    lines = [line.split() for line in first.stdout.splitlines()]
    assert "greenhouse: go-live: 2 task(s) opened by the first sync" in first.stdout
    assert ["greenhouse:", "ready_to_schedule", "2"] in lines
    assert ["greenhouse:", CORA, "2"] in lines
    assert "new_job" not in first.stdout  # the job existed before: a moment nobody saw
    assert second.exit_code == 0, second.stderr
    assert "go-live" not in second.stdout
    assert "0 task(s) opened" in second.stdout
