"""Calendar change → task, end to end, for Google Calendar and Microsoft 365.

Events are made and changed in the loopback fakes; the real connectors poll them through
the SyncRunner into the normalizer and the task engine. The ATS side (job, candidate,
application, interview) is fed as snapshots through the same pipeline.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors.base import PollPage
from taskplanner.clock import FrozenClock
from taskplanner.pipeline import Pipeline
from taskplanner.sandbox.fake_google_calendar import FakeGoogleCalendar
from taskplanner.store import models as m
from taskplanner.store.database import create_db_engine
from taskplanner.sync import SyncReport, SyncRunner
from tests.calendar_env import (
    ACCEPTED,
    DECLINED,
    Booking,
    CalendarProvider,
    Invitee,
    unique,
)
from tests.factories import (
    ADA,
    CANDIDATE_EMAIL,
    CARL,
    CORA,
    IRIS,
    IVAN,
    application,
    candidate,
    job,
    rules,
    schedule,
)
from tests.taskflow import history, only_task, tasks

INTERVIEWER_DECLINED = "interviewer_declined"
ROOM_DECLINED = "room_declined"
CANDIDATE_DECLINED = "candidate_declined"
SCHEDULE_CANCELLED = "schedule_cancelled"
CALENDAR_CATEGORIES = (INTERVIEWER_DECLINED, ROOM_DECLINED, CANDIDATE_DECLINED, SCHEDULE_CANCELLED)
OPEN, DONE, OBSOLETE = "open", "action_taken", "obsolete"


@pytest.fixture
def clock() -> FrozenClock:
    # The fakes stamp events with real time, and "future" is judged against this clock.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


# --- one organisation, one calendar connector ------------------------------------------


@dataclass
class World:
    """One database with the pipeline and a SyncRunner over one calendar connector."""

    provider: CalendarProvider
    db: Engine
    pipeline: Pipeline
    runner: SyncRunner
    connector: Any
    clock: FrozenClock

    @property
    def name(self) -> str:
        return self.provider.connector_name

    def sync(self, *, ok: bool = True) -> SyncReport:
        """One polling pass, as the daemon runs it when the source is due."""
        assert self.runner.claim(self.name, force=True)
        report = self.runner.sync(self.name)
        assert report.ok is ok, report.error
        return report

    def ats(self, *snapshots: Any) -> None:
        self.pipeline.ingest_now(snapshots)

    def states(self) -> dict[str, tuple[str, ...]]:
        """Each calendar category's tasks, oldest first, as "open" or their resolution."""
        found: dict[str, tuple[str, ...]] = {}
        for category in CALENDAR_CATEGORIES:
            states = tuple(t.resolution or t.status for t in tasks(self.db, category))
            if states:
                found[category] = states
        return found

    def close(self) -> None:
        self.connector.close()
        self.db.dispose()


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(provider: CalendarProvider, clock: FrozenClock) -> Iterator[MakeWorld]:
    made: list[World] = []

    def make(db_url: str, calendars: Sequence[str], *, connector: Any = None) -> World:
        db = create_db_engine(db_url)
        pipeline = Pipeline(db, rules(), clock)
        connector = connector or provider.connector(calendars)
        runner = SyncRunner(
            db=db,
            pipeline=pipeline,
            connectors=lambda _name: connector,
            kinds={provider.connector_name: provider.kind},
            intervals={provider.connector_name: timedelta(minutes=5)},
            owner="test",
            clock=clock,
        )
        runner.ensure_sources()
        world = World(provider, db, pipeline, runner, connector, clock)
        made.append(world)
        return world

    yield make
    for world in made:
        world.close()


def sqlite_copy(template: Path, path: Path) -> str:
    """Another empty, migrated SQLite database (two worlds side by side)."""
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def interview_invitees(provider: CalendarProvider) -> list[Invitee]:
    """Interviewer, candidate and room, all accepted."""
    return [
        Invitee(IVAN, ACCEPTED, name="Ivan"),
        Invitee(CANDIDATE_EMAIL, ACCEPTED),
        Invitee(provider.room, ACCEPTED, room=True, name="Berlin 1"),
    ]


def ats_interview(
    booking: Booking | None,
    starts: datetime,
    *,
    schedule_id: str = "i1",
    app_id: str = "a1",
    external: str | None = None,
) -> list[Any]:
    """Job j1, candidate c1 (coordinated by Carl) in Phone Screen, and its interview."""
    event_id = external if external is not None else (booking.link_id if booking else None)
    return [
        job(),
        candidate(coordinator=CARL),
        application(app_id, stage="s-phone"),
        schedule(schedule_id, app_id=app_id, starts=starts, event_id=event_id),
    ]


# --- the scenario table -----------------------------------------------------------------


@dataclass
class Scene:
    """One linked interview: what a step may change, in the calendar or the ATS."""

    world: World
    booking: Booking
    starts: datetime

    @property
    def provider(self) -> CalendarProvider:
        return self.world.provider

    def who(self, role: str) -> str:
        return {"interviewer": IVAN, "candidate": CANDIDATE_EMAIL, "room": self.provider.room}[role]


@dataclass(frozen=True)
class Step:
    what: str
    change: Callable[[Scene], None]
    expect: dict[str, tuple[str, ...]] = field(default_factory=dict)


def declines(role: str, expect: dict[str, tuple[str, ...]]) -> Step:
    return Step(
        f"the {role} declines",
        lambda s: s.provider.respond(s.booking, s.who(role), DECLINED),
        expect,
    )


def accepts(role: str, expect: dict[str, tuple[str, ...]]) -> Step:
    return Step(
        f"the {role} accepts",
        lambda s: s.provider.respond(s.booking, s.who(role), ACCEPTED),
        expect,
    )


def _replace_interviewer(s: Scene) -> None:
    s.provider.uninvite(s.booking, IVAN)
    s.provider.invite(s.booking, Invitee(IRIS, ACCEPTED, name="Iris"))


def _swap_room(s: Scene) -> None:
    s.provider.uninvite(s.booking, s.provider.room)
    s.provider.invite(s.booking, Invitee(s.provider.room_2, ACCEPTED, room=True, name="Berlin 2"))


def _move_a_day_later(s: Scene) -> None:
    s.provider.move(
        s.booking, start=s.starts + timedelta(days=1), end=s.starts + timedelta(days=1, hours=1)
    )


def _reschedule(s: Scene) -> None:
    """The coordinator books a new event and the ATS records a new interview for it."""
    later = s.starts + timedelta(days=3)
    booking = s.provider.book(
        s.booking.calendar,
        start=later,
        end=later + timedelta(hours=1),
        invitees=interview_invitees(s.provider),
    )
    s.world.ats(*ats_interview(booking, later, schedule_id="i2"))


def _interview_passes(s: Scene) -> None:
    """Time moves past the interview and the periodic sweep runs."""
    s.world.clock.advance(s.starts - s.world.clock.now + timedelta(hours=2))
    s.world.pipeline.sweep_now()


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    starts_in: timedelta = timedelta(days=2)  # from now; negative: the interview is over


ID, RD, CD, SC = INTERVIEWER_DECLINED, ROOM_DECLINED, CANDIDATE_DECLINED, SCHEDULE_CANCELLED

SCENARIOS = (
    Scenario(
        "interviewer_replaced",
        (
            declines("interviewer", {ID: (OPEN,)}),
            Step("the interviewer is replaced", _replace_interviewer, {ID: (DONE,)}),
        ),
    ),
    Scenario(
        "interviewer_accepts_again",
        (declines("interviewer", {ID: (OPEN,)}), accepts("interviewer", {ID: (DONE,)})),
    ),
    Scenario(
        "interviewer_accepts_the_moved_event",
        (
            declines("interviewer", {ID: (OPEN,)}),
            Step("the event moves a day later", _move_a_day_later, {ID: (OPEN,)}),
            accepts("interviewer", {ID: (DONE,)}),
        ),
    ),
    Scenario(
        "interviewer_declined_then_event_cancelled",
        (
            declines("interviewer", {ID: (OPEN,)}),
            Step(
                "the event is cancelled",
                lambda s: s.provider.cancel(s.booking),
                {ID: (OBSOLETE,), SC: (OPEN,)},
            ),
        ),
    ),
    Scenario(
        "interviewer_declined_then_the_interview_passed",
        (
            declines("interviewer", {ID: (OPEN,)}),
            Step("the interview passes", _interview_passes, {ID: (OBSOLETE,)}),
        ),
    ),
    Scenario(
        "room_swapped",
        (
            declines("room", {RD: (OPEN,)}),
            Step("the room is swapped", _swap_room, {RD: (DONE,)}),
        ),
    ),
    Scenario(
        "room_accepts",
        (declines("room", {RD: (OPEN,)}), accepts("room", {RD: (DONE,)})),
    ),
    Scenario(
        "room_declined_then_event_cancelled",
        (
            declines("room", {RD: (OPEN,)}),
            Step(
                "the event is cancelled",
                lambda s: s.provider.cancel(s.booking),
                {RD: (OBSOLETE,), SC: (OPEN,)},
            ),
        ),
    ),
    Scenario(
        "candidate_accepts_again",
        (declines("candidate", {CD: (OPEN,)}), accepts("candidate", {CD: (DONE,)})),
    ),
    Scenario(
        "candidate_accepts_the_moved_event",
        (
            declines("candidate", {CD: (OPEN,)}),
            Step("the event moves a day later", _move_a_day_later, {CD: (OPEN,)}),
            accepts("candidate", {CD: (DONE,)}),
        ),
    ),
    Scenario(
        "candidate_declined_then_schedule_cancelled",
        (
            declines("candidate", {CD: (OPEN,)}),
            Step(
                "the event is cancelled",
                lambda s: s.provider.cancel(s.booking),
                {CD: (DONE,), SC: (OPEN,)},
            ),
        ),
    ),
    Scenario(
        "schedule_deleted_then_rescheduled",
        (
            Step("the event is deleted", lambda s: s.provider.delete(s.booking), {SC: (OPEN,)}),
            Step("a new interview is scheduled", _reschedule, {SC: (DONE,)}),
        ),
    ),
    Scenario(
        "declines_after_the_interview_happened",
        (
            declines("interviewer", {}),
            declines("room", {}),
            declines("candidate", {}),
        ),
        starts_in=timedelta(hours=-3),
    ),
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: the main flow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_calendar_changes_open_and_close_tasks(
    scenario: Scenario,
    provider: CalendarProvider,
    make_world: MakeWorld,
    db_url: str,
    clock: FrozenClock,
) -> None:
    calendar = unique(CORA)
    world = make_world(db_url, [calendar])
    starts = clock.now + scenario.starts_in
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    world.ats(*ats_interview(booking, starts))
    world.sync()
    assert world.states() == {}
    scene = Scene(world, booking, starts)

    for step in scenario.steps:
        step.change(scene)
        world.sync()
        assert world.states() == step.expect, step.what

    for task in tasks(world.db):
        if task.category in CALENDAR_CATEGORIES:
            assert task.assignee == CARL  # the coordinator the ATS gave the candidate


def test_main_flow_declines_replacements_and_a_cancellation(
    provider: CalendarProvider, make_world: MakeWorld, db_url: str, clock: FrozenClock
) -> None:
    calendar = unique(CORA)
    world = make_world(db_url, [calendar])
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    world.ats(*ats_interview(booking, starts))
    world.sync()
    scene = Scene(world, booking, starts)

    for role in ("interviewer", "room", "candidate"):
        provider.respond(booking, scene.who(role), DECLINED)
    assert world.sync().opened == 3
    assert world.states() == {ID: (OPEN,), RD: (OPEN,), CD: (OPEN,)}
    assert {t.assignee for t in tasks(world.db, status=OPEN) if t.category in (ID, RD, CD)} == {
        CARL
    }

    _replace_interviewer(scene)
    _swap_room(scene)
    provider.respond(booking, CANDIDATE_EMAIL, ACCEPTED)
    assert world.sync().closed == 3
    assert world.states() == {ID: (DONE,), RD: (DONE,), CD: (DONE,)}

    provider.delete(booking)
    world.sync()
    assert world.states() == {ID: (DONE,), RD: (DONE,), CD: (DONE,), SC: (OPEN,)}

    _reschedule(scene)
    world.sync()
    assert world.states() == {ID: (DONE,), RD: (DONE,), CD: (DONE,), SC: (DONE,)}


def test_interviewer_declined_task_names_the_event_and_the_interviewer(
    provider: CalendarProvider, make_world: MakeWorld, db_url: str, clock: FrozenClock
) -> None:
    calendar = unique(CORA)
    world = make_world(db_url, [calendar])
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    world.ats(*ats_interview(booking, starts))
    world.sync()

    provider.respond(booking, IVAN, DECLINED)
    report = world.sync()

    assert report.opened == 1
    task = only_task(world.db, INTERVIEWER_DECLINED)
    assert (task.status, task.assignee, task.assigned_via) == (OPEN, CARL, "candidate_coordinator")
    assert task.schedule_id == "i1" and task.application_id == "a1" and task.candidate_id == "c1"
    assert task.attendee == IVAN
    assert task.event_id == f"{provider.connector_name}:{calendar}/{booking.event_id}"
    assert task.due_at == starts
    assert task.title.startswith("Ivan (interviewer) declined Phone Screen with Giuseppe Hurley")

    _replace_interviewer(Scene(world, booking, starts))
    world.sync()

    task = only_task(world.db, INTERVIEWER_DECLINED)
    assert (task.status, task.resolution) == ("completed", DONE)
    assert task.completion_reason == "the interviewer was replaced"
    assert [h.action for h in history(world.db, task.id)] == ["opened", "completed"]


def test_a_decline_carries_the_attendees_comment_where_the_calendar_keeps_one(
    provider: CalendarProvider, make_world: MakeWorld, db_url: str, clock: FrozenClock
) -> None:
    """Google Calendar keeps an attendee's response comment (Events resource,
    ``attendees[].comment``: https://developers.google.com/calendar/api/v3/reference/events);
    a Microsoft Graph attendee has no such field, so there the task carries none."""
    calendar = unique(CORA)
    world = make_world(db_url, [calendar])
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    world.ats(*ats_interview(booking, starts))
    world.sync()

    google = isinstance(provider.fake, FakeGoogleCalendar)
    if google:
        comment = "Off sick that day\x00 — sorry!"
        provider.fake.set_response(booking.calendar, booking.event_id, IVAN, "declined", comment)
    else:
        provider.respond(booking, IVAN, DECLINED)
    world.sync()

    task = only_task(world.db, INTERVIEWER_DECLINED)
    assert task.detail == ("Off sick that day — sorry!" if google else None)


def test_a_schedule_is_cancelled_only_when_every_linked_event_is(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    organiser, interviewer = unique(CORA), unique(IVAN)
    world = make_world(db_url, [organiser, interviewer])
    starts = clock.now + timedelta(days=2)
    uid = f"{unique('uid@acme.example')}"
    first = provider.book(
        organiser,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
        ical_uid=uid,
    )
    # The same meeting in the interviewer's calendar: Google keeps the event id, Graph gives
    # the copy its own id and shares only the iCalUId, which is what the ATS records here.
    copy = provider.book(
        interviewer,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
        ical_uid=uid,
        event_id=first.event_id if provider.kind == "google_calendar" else None,
    )
    world.ats(*ats_interview(first, starts, external=uid))
    world.sync()

    provider.delete(first)
    world.sync()
    assert world.states() == {}

    provider.delete(copy)
    world.sync()
    assert world.states() == {SC: (OPEN,)}
    with Session(world.db) as session:
        linked = session.scalars(select(m.CalendarEvent).where(m.CalendarEvent.schedule_id == "i1"))
        assert {e.calendar_id for e in linked} == {organiser, interviewer}


# --- an expired sync token / delta link --------------------------------------------------


class RecordingConnector:
    """Wraps a real connector: records each poll's pages and can expire the provider's sync
    state for one calendar in the middle of a poll."""

    def __init__(self, inner: Any, provider: CalendarProvider, calendar: str) -> None:
        self.inner, self.provider, self.calendar = inner, provider, calendar
        self.name, self.kind = inner.name, inner.kind
        self.pages: list[PollPage] = []
        self._armed = False

    def expire_mid_poll(self) -> None:
        """The next poll loses the calendar's sync state after its first page arrives.

        The fake holds the calendar's next two requests back for a moment; the second (the
        next page) is answered after the expiry below, so it gets 410.
        """
        self.provider.slow_next(0.3, calendar=self.calendar, times=2)
        self._armed = True

    def full_listings(self) -> set[str]:
        """The calendars the last poll listed in full (its last page says what is present)."""
        return {p.partition for p in self.pages if p.present_ids is not None}

    def authenticate(self) -> None:
        self.inner.authenticate()

    def poll(self, cursors: Any, **kwargs: Any) -> Iterator[PollPage]:
        self.pages = []
        for page in self.inner.poll(cursors, **kwargs):
            if self._armed and page.partition == self.calendar:
                self._armed = False
                self.provider.expire_sync_state(self.calendar)
            self.pages.append(page)
            yield page

    def close(self) -> None:
        self.inner.close()


def mirror_and_tasks(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the calendar mirror and of the tasks with their history, ids left out."""
    with Session(db) as session:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for model in (m.CalendarEvent, m.CalendarAttendee):
            rows = session.execute(select(model.__table__)).all()
            tables[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
        task_columns = [c for c in m.Task.__table__.columns if c.key != "id"]
        rows = session.execute(select(*task_columns)).all()
        tables["tasks"] = sorted((tuple(r) for r in rows), key=repr)
        entries = session.execute(
            select(m.Task.key, m.TaskHistory.action, m.TaskHistory.detail, m.TaskHistory.actor)
            .join(m.Task, m.Task.id == m.TaskHistory.task_id)
            .order_by(m.TaskHistory.id)
        ).all()
        tables["task_history"] = sorted((tuple(r) for r in entries), key=repr)
    return tables


@pytest.mark.parametrize("interruption", ["between_polls", "mid_poll"])
def test_full_resync_after_expired_sync_state_matches_an_uninterrupted_run(
    provider: CalendarProvider,
    make_world: MakeWorld,
    clock: FrozenClock,
    sqlite_template: Path,
    tmp_path: Path,
    interruption: str,
) -> None:
    cora, dana = unique(CORA), unique("dana@acme.example")
    starts = clock.now + timedelta(days=2)
    bookings: dict[str, Booking] = {}
    for n, calendar in ((1, cora), (2, cora), (3, cora), (4, dana)):
        bookings[f"i{n}"] = provider.book(
            calendar,
            start=starts + timedelta(hours=n),
            end=starts + timedelta(hours=n + 1),
            invitees=[
                Invitee(IVAN, ACCEPTED),
                Invitee(f"candidate{n}@example.com", ACCEPTED),
                Invitee(provider.room, ACCEPTED, room=True),
            ],
        )
    # One event a page: the interrupted incremental poll has more pages to come.
    page_size = 1 if interruption == "mid_poll" else 50
    worlds = []
    for label in ("steady", "interrupted"):
        connector = RecordingConnector(
            provider.connector([cora, dana], page_size=page_size), provider, cora
        )
        world = make_world(
            sqlite_copy(sqlite_template, tmp_path / f"{label}.db"),
            [cora, dana],
            connector=connector,
        )
        world.ats(job())
        for n in range(1, 5):
            world.ats(
                candidate(
                    f"c{n}",
                    name=f"Candidate {n}",
                    email=f"candidate{n}@example.com",
                    coordinator=CARL,
                ),
                application(f"a{n}", candidate_id=f"c{n}"),
                schedule(
                    f"i{n}",
                    app_id=f"a{n}",
                    starts=starts + timedelta(hours=n),
                    event_id=bookings[f"i{n}"].link_id,
                ),
            )
        world.sync()
        worlds.append(world)
    steady, interrupted = worlds

    # While the interrupted world's sync token dies: declines, a move, a deletion, a new
    # unlinked event, and a decline taken back.
    provider.respond(bookings["i1"], IVAN, DECLINED)
    provider.respond(bookings["i1"], "candidate1@example.com", DECLINED)
    provider.respond(bookings["i1"], "candidate1@example.com", ACCEPTED)
    provider.respond(bookings["i2"], provider.room, DECLINED)
    provider.move(
        bookings["i2"], start=starts + timedelta(days=1), end=starts + timedelta(days=1, hours=1)
    )
    provider.delete(bookings["i3"])
    provider.respond(bookings["i4"], "candidate4@example.com", DECLINED)
    provider.book(
        cora, start=starts, end=starts + timedelta(hours=1), invitees=[Invitee(IVAN, DECLINED)]
    )
    steady.sync()
    assert steady.connector.full_listings() == set()
    if interruption == "mid_poll":
        interrupted.connector.expire_mid_poll()
    else:
        provider.expire_sync_state(cora)
    interrupted.sync()
    assert interrupted.connector.full_listings() == {cora}  # dana's calendar: incremental
    if interruption == "mid_poll":
        # The sync state expired after the first page of an incremental poll was in.
        first = next(p for p in interrupted.connector.pages if p.partition == cora)
        assert first.cursor is None and first.present_ids is None

    assert steady.states() == {ID: (OPEN,), RD: (OPEN,), SC: (OPEN,), CD: (OPEN,)}
    assert mirror_and_tasks(interrupted.db) == mirror_and_tasks(steady.db)

    # After the resync the interrupted world polls incrementally again; now the other one
    # finds its sync token expired (the provider keeps one generation per calendar).
    _replace_interviewer(Scene(interrupted, bookings["i1"], starts))
    _swap_room(Scene(interrupted, bookings["i2"], starts))
    provider.respond(bookings["i4"], "candidate4@example.com", ACCEPTED)
    provider.book(
        cora, start=starts, end=starts + timedelta(hours=1), invitees=[Invitee(IRIS, DECLINED)]
    )
    for world in worlds:
        world.ats(schedule("i3b", app_id="a3", starts=starts + timedelta(days=3), event_id=None))
    interrupted.sync()
    assert interrupted.connector.full_listings() == set()
    steady.sync()
    assert steady.connector.full_listings() == {cora}

    assert steady.states() == {ID: (DONE,), RD: (DONE,), SC: (DONE,), CD: (DONE,)}
    assert mirror_and_tasks(interrupted.db) == mirror_and_tasks(steady.db)


# --- cost of an idle cycle ---------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_idle_cycle_costs_one_request_per_calendar(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    # Three people and a room (Google reads a room's calendar as the first user).
    calendars = [unique(CORA), unique(IVAN), unique("dana@acme.example"), unique(provider.room)]
    starts = clock.now + timedelta(days=2)
    for calendar in calendars:
        provider.book(
            calendar,
            start=starts,
            end=starts + timedelta(hours=1),
            invitees=interview_invitees(provider),
        )
    world = make_world(db_url, calendars)
    assert world.sync().snapshots == len(calendars)

    for _ in range(2):
        provider.reset_counters()
        report = world.sync()
        assert (report.pages, report.snapshots, report.opened, report.closed) == (0, 0, 0, 0)
        assert {c: provider.request_count(c) for c in calendars} == {c: 1 for c in calendars}


# --- credentials -------------------------------------------------------------------------


def test_revoked_credentials_open_broken_integration_until_a_sync_succeeds(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    world = make_world(db_url, [calendar])
    world.sync()

    provider.expire_access_tokens()  # an expired access token is renewed without a fuss
    world.sync()
    assert tasks(world.db, "broken_integration") == []

    provider.revoke_credentials()
    try:
        report = world.sync(ok=False)
    finally:
        provider.restore_credentials()

    task = only_task(world.db, "broken_integration")
    assert (task.status, task.assignee, task.integration) == (OPEN, ADA, provider.connector_name)
    assert task.detail == report.error
    assert task.detail is not None and task.detail.startswith(f"{provider.connector_name}: ")
    assert provider.secret not in task.detail and "Bearer" not in task.detail

    world.sync()
    task = only_task(world.db, "broken_integration")
    assert (task.status, task.resolution) == ("completed", DONE)


def test_calendars_that_cannot_be_read_are_named_while_the_others_sync(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    """Issue 13 §4: a room shared free/busy only or a mailbox excluded by an application
    access policy (403), a user who left (404): those calendars fail alone, the rest keep
    syncing and opening tasks, and broken_integration names each one with its error."""
    calendar, room, left = unique(CORA), unique(provider.room), unique("leo@acme.example")
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=interview_invitees(provider),
    )
    for other in (room, left):
        provider.open_calendar(other)
    world = make_world(db_url, [calendar, room, left])
    world.ats(*ats_interview(booking, starts))
    world.sync()

    provider.deny(room)
    provider.deny(left, gone=True)
    provider.respond(booking, IVAN, DECLINED)
    # The readable calendar answers last: the refusals must not stop it.
    provider.slow_next(0.5, calendar=calendar)
    report = world.sync(ok=False)

    assert world.states() == {INTERVIEWER_DECLINED: (OPEN,)}
    task = only_task(world.db, "broken_integration")
    assert task.status == OPEN and task.detail == report.error
    assert task.detail is not None
    assert f"{room}: " in task.detail and "403" in task.detail
    assert f"{left}: " in task.detail and "404" in task.detail
    assert f"{calendar}:" not in task.detail
    assert provider.secret not in task.detail

    provider.allow(room)
    provider.allow(left)
    world.sync()
    task = only_task(world.db, "broken_integration")
    assert (task.status, task.resolution) == ("completed", DONE)


# --- linking events to ATS interviews -----------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_event_linked_only_by_our_private_tag(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    if not provider.supports_private_tag:
        pytest.skip("Graph delta responses do not carry extended properties")
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    # No recorded event id, and the candidate is not invited: only the tag can link it.
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=[Invitee(IVAN, ACCEPTED), Invitee(provider.room, ACCEPTED, room=True)],
        tag="i1",
    )
    world = make_world(db_url, [calendar])
    world.ats(*ats_interview(None, starts))
    world.sync()

    provider.respond(booking, IVAN, DECLINED)
    world.sync()

    assert only_task(world.db, INTERVIEWER_DECLINED).schedule_id == "i1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_event_linked_only_by_the_candidate_among_attendees_in_the_interview_window(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts + timedelta(minutes=15),  # overlaps the ATS interview's time
        end=starts + timedelta(minutes=45),
        invitees=[Invitee(IVAN, ACCEPTED), Invitee(CANDIDATE_EMAIL.upper(), ACCEPTED)],
    )
    world = make_world(db_url, [calendar])
    world.ats(*ats_interview(None, starts))
    world.sync()

    provider.respond(booking, IVAN, DECLINED)
    world.sync()

    assert only_task(world.db, INTERVIEWER_DECLINED).schedule_id == "i1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unlinked_events_are_mirrored_but_open_nothing(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    strangers = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=[Invitee(IVAN, ACCEPTED), Invitee(provider.room, ACCEPTED, room=True)],
    )
    next_week = starts + timedelta(days=7)  # the candidate, but outside the interview's time
    elsewhen = provider.book(
        calendar,
        start=next_week,
        end=next_week + timedelta(hours=1),
        invitees=[Invitee(IVAN, ACCEPTED), Invitee(CANDIDATE_EMAIL, ACCEPTED)],
    )
    world = make_world(db_url, [calendar])
    world.ats(*ats_interview(None, starts, external="an-event-we-never-see"))
    world.sync()

    provider.respond(strangers, IVAN, DECLINED)
    provider.respond(strangers, provider.room, DECLINED)
    provider.respond(elsewhen, IVAN, DECLINED)
    provider.respond(elsewhen, CANDIDATE_EMAIL, DECLINED)
    provider.delete(elsewhen)
    world.sync()

    assert world.states() == {}
    with Session(world.db) as session:
        rows = session.scalars(
            select(m.CalendarEvent).where(m.CalendarEvent.calendar_id == calendar)
        )
        assert {(r.event_id, r.schedule_id) for r in rows} == {
            (strangers.event_id, None),
            (elsewhen.event_id, None),
        }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_declined_event_synced_before_its_ats_interview_opens_the_task_on_link(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    invitees = [Invitee(IVAN, DECLINED), *interview_invitees(provider)[1:]]
    booking = provider.book(
        calendar, start=starts, end=starts + timedelta(hours=1), invitees=invitees
    )
    world = make_world(db_url, [calendar])
    world.sync()
    assert world.states() == {}

    world.ats(*ats_interview(booking, starts))

    assert world.states() == {ID: (OPEN,)}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_event_seen_before_its_interview_is_linked_by_the_candidate_when_it_arrives(
    provider: CalendarProvider, make_world: MakeWorld, clock: FrozenClock, db_url: str
) -> None:
    """Issue 13 §7: an event the ATS does not name (no recorded id, no tag) that the poll saw
    before the interview existed is linked by the candidate among its attendees when the
    interview arrives; its later cancellation (a stub without attendees) reaches the
    schedule through that stored link."""
    calendar = unique(CORA)
    starts = clock.now + timedelta(days=2)
    booking = provider.book(
        calendar,
        start=starts,
        end=starts + timedelta(hours=1),
        invitees=[Invitee(IVAN, ACCEPTED), Invitee(CANDIDATE_EMAIL.upper(), ACCEPTED)],
    )
    world = make_world(db_url, [calendar])
    world.sync()

    world.ats(*ats_interview(None, starts, external=None))

    with Session(world.db) as session:
        row = session.scalars(
            select(m.CalendarEvent).where(m.CalendarEvent.calendar_id == calendar)
        ).one()
        assert row.schedule_id == "i1"
    provider.respond(booking, IVAN, DECLINED)
    world.sync()
    assert world.states() == {ID: (OPEN,)}

    provider.cancel(booking)
    world.sync()
    assert world.states()[SC] == (OPEN,)
