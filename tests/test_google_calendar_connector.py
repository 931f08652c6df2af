"""GoogleCalendarConnector with the real google-api-python-client against the loopback fake."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import (
    Connector,
    FatalConnectorError,
    PartitionsFailed,
    PollPage,
    RetriableConnectorError,
)
from connectors.google_calendar import GoogleCalendarConnector
from taskplanner.config import GoogleCalendarConfig
from taskplanner.domain.snapshots import (
    EntityKind,
    EventStatus,
    Response,
)
from taskplanner.sandbox.fake_google_calendar import Attendee, FakeGoogleCalendar
from tests.calendar_env import Sleeps, events, google_connector, run, unique

CORA = "cora@acme.example"
SAM = "sam@acme.example"
ROOM = "room-berlin-1@resource.calendar.google.com"
CANDIDATE = "jane.candidate@gmail.example"
MakeConnector = Callable[..., GoogleCalendarConnector]
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


@pytest.fixture
def fake(google_fake: FakeGoogleCalendar) -> FakeGoogleCalendar:
    return google_fake


@pytest.fixture
def make_connector(
    fake: FakeGoogleCalendar, google_key_file: Path, sleeps: Sleeps
) -> Iterator[MakeConnector]:
    made: list[GoogleCalendarConnector] = []

    def make(calendars: list[str], **kwargs: Any) -> GoogleCalendarConnector:
        connector = google_connector(fake, google_key_file, calendars, sleep=sleeps, **kwargs)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def interview(
    fake: FakeGoogleCalendar, calendar: str, *, room: str | None = None, **kwargs: object
) -> str:
    attendees = [
        Attendee(calendar, "accepted", organizer=True),
        Attendee(SAM, "needsAction", name="Sam Interviewer"),
        Attendee(CANDIDATE, "needsAction"),
    ]
    if room:
        attendees.append(Attendee(room, "accepted", resource=True, name="Berlin 1"))
    event = fake.add_event(
        calendar,
        start=SOON,
        end=SOON + timedelta(hours=1),
        organizer=calendar,
        attendees=attendees,
        **kwargs,  # type: ignore[arg-type]
    )
    return str(event["id"])


def test_connector_satisfies_the_protocol(make_connector: MakeConnector) -> None:
    assert isinstance(make_connector([CORA]), Connector)


def test_full_sync_maps_attendees_rooms_organizer_and_schedule_tag(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    event_id = interview(
        fake,
        cora,
        room=ROOM,
        summary="Onsite: Jane",
        ical_uid="abc123@google.com",
        private_properties={"taskplanner_schedule_id": "sched-42"},
    )
    pages = run(make_connector([cora]), {})

    snapshot = events(pages)[event_id]
    assert snapshot.status is EventStatus.CONFIRMED
    assert snapshot.calendar_id == cora
    assert snapshot.starts_at == SOON and snapshot.starts_at.tzinfo is not None
    assert snapshot.ends_at == SOON + timedelta(hours=1)
    assert snapshot.ical_uid == "abc123@google.com"
    assert snapshot.schedule_tag == "sched-42"
    assert snapshot.organizer_email == cora
    assert snapshot.title == "Onsite: Jane"
    by_email = {a.email: a for a in snapshot.attendees}
    assert by_email[cora].is_organizer and by_email[cora].response is Response.ACCEPTED
    assert (
        by_email[SAM].response is Response.NEEDS_ACTION and by_email[SAM].name == "Sam Interviewer"
    )
    assert by_email[ROOM].is_resource and not by_email[SAM].is_resource
    assert by_email[CANDIDATE].response is Response.NEEDS_ACTION


def test_incremental_sync_yields_only_what_changed(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    first, second = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    assert set(events(run(connector, cursors))) == {first, second}

    fake.set_response(cora, second, SAM, "declined")
    pages = run(connector, cursors)

    changed = events(pages)
    assert set(changed) == {second}
    declined = {a.email: a.response for a in changed[second].attendees}[SAM]
    assert declined is Response.DECLINED
    assert pages[-1].present_ids is None  # an incremental page never claims completeness


def test_pages_follow_next_page_token_and_only_the_last_carries_cursor_and_present_ids(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    ids = {interview(fake, cora) for _ in range(5)}
    pages = run(make_connector([cora], page_size=2), {})

    assert [len(p.snapshots) for p in pages] == [2, 2, 1]
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: ids}
    assert fake.request_count(cora) == 3


def test_deleted_and_cancelled_events_arrive_as_cancelled_snapshots(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    kept, deleted = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)

    fake.delete_event(cora, deleted)
    changed = events(run(connector, cursors))

    assert set(changed) == {deleted}
    assert changed[deleted].status is EventStatus.CANCELLED
    assert kept not in changed


def test_moved_event_shows_new_times(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    event_id = interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    before = events(run(connector, cursors))[event_id]

    later = SOON + timedelta(days=1)
    fake.move_event(cora, event_id, start=later, end=later + timedelta(hours=1))
    after = events(run(connector, cursors))[event_id]

    assert after.starts_at == later
    assert after.updated_at > before.updated_at


def test_expired_sync_token_resyncs_in_full_and_lists_every_present_event(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    kept, purged = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)
    old_cursor = cursors[cora]

    fake.purge_event(cora, purged)  # gone without a tombstone while the token was dead
    fake.expire_sync_tokens(cora)
    pages = run(connector, cursors)

    assert set(events(pages)) == {kept}
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {kept}}
    assert cursors[cora] != old_cursor
    # The new token works: the next cycle is incremental and idle again.
    fake.reset_counters()
    assert run(connector, cursors) == []
    assert fake.request_count(cora) == 1


def test_idle_incremental_cycle_costs_one_request_per_calendar(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    calendars = [unique(CORA) for _ in range(6)]
    for calendar in calendars:
        interview(fake, calendar)
    fake.add_calendar(ROOM)
    connector = make_connector([*calendars, ROOM])
    cursors: dict[str, str] = {}
    run(connector, cursors)
    fake.reset_counters()

    assert run(connector, cursors) == []
    assert run(connector, cursors) == []

    assert {c: fake.request_count(c) for c in [*calendars, ROOM]} == {
        c: 2 for c in [*calendars, ROOM]
    }
    assert fake.token_requests == 0  # access tokens are reused across cycles


def test_room_calendar_is_read_as_the_admin(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    room = unique("room-munich@resource.calendar.google.com")
    admin = unique("ada@acme.example")
    fake.add_user(admin)
    event = fake.add_event(
        room,
        start=SOON,
        end=SOON + timedelta(hours=1),
        organizer=CORA,
        attendees=[Attendee(room, "declined", resource=True)],
    )
    pages = run(make_connector([room], admin_email=admin), {})

    room_view = events(pages)[event["id"]]
    assert room_view.attendees[0].is_resource
    assert room_view.attendees[0].response is Response.DECLINED
    assert fake.token_requests_by_subject[admin] == 1


def test_full_poll_lists_everything_again_with_present_ids(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    event_id = interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)

    pages = run(connector, cursors, full=True)

    assert event_id in events(pages)
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {event_id}}


def test_calendars_are_synced_concurrently_within_the_worker_bound(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    calendars = [unique(CORA) for _ in range(6)]
    for calendar in calendars:
        fake.add_calendar(calendar)
        fake.slow_next(0.2, calendar_id=calendar)
    connector = make_connector(calendars, max_workers=3)
    run(connector, {})  # grants first, so the slow listings overlap
    fake.reset_counters()
    for calendar in calendars:
        fake.slow_next(0.2, calendar_id=calendar)

    run(connector, {})

    assert 2 <= fake.max_in_flight <= 3


def test_abandoning_a_poll_midway_leaves_the_connector_usable(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    calendars = [unique(CORA) for _ in range(5)]
    for calendar in calendars:
        interview(fake, calendar)
    connector = make_connector(calendars)
    poll = connector.poll({}, started_at=datetime.now(UTC))
    assert isinstance(poll, Generator)
    next(poll)
    poll.close()  # e.g. the daemon is shutting down

    assert len(events(run(connector, {}))) == 5


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [
        ("rate_limit_429", 7.0),
        ("rate_limit_403", None),
        ("user_rate_limit_403", None),
        ("unavailable_503", 3.0),
        ("backend_error_500", None),
    ],
)
def test_rate_limits_and_server_errors_are_retried_with_backoff(
    fake: FakeGoogleCalendar,
    make_connector: MakeConnector,
    sleeps: Sleeps,
    kind: str,
    retry_after: float | None,
) -> None:
    cora = unique(CORA)
    event_id = interview(fake, cora)
    connector = make_connector([cora])
    fake.fail_next(kind, calendar_id=cora, times=2, retry_after=retry_after)

    pages = run(connector, {})

    assert event_id in events(pages)
    assert fake.request_count(cora) == 3
    assert len(sleeps) == 2
    if retry_after is not None:
        assert sleeps == [retry_after, retry_after]
    assert connector.stats.retries == 2


def test_persistent_throttling_gives_up_with_a_retriable_error(
    fake: FakeGoogleCalendar, make_connector: MakeConnector, sleeps: Sleeps
) -> None:
    cora = unique(CORA)
    interview(fake, cora)
    fake.fail_next("rate_limit_429", calendar_id=cora, times=4)

    with pytest.raises(RetriableConnectorError) as raised:
        run(make_connector([cora]), {})
    assert raised.value.status == 429
    assert len(sleeps) == 3


def test_forbidden_calendar_fails_alone_and_is_not_retried(
    fake: FakeGoogleCalendar, make_connector: MakeConnector, sleeps: Sleeps
) -> None:
    cora, room = unique(CORA), unique("room@acme.example")
    event_id = interview(fake, cora)
    fake.add_calendar(room)
    fake.fail_next("forbidden_403", calendar_id=room)

    seen: list[PollPage] = []
    with pytest.raises(PartitionsFailed) as raised:
        for page in make_connector([room, cora]).poll({}, started_at=datetime.now(UTC)):
            seen.append(page)
    assert event_id in events(seen)
    assert list(raised.value.failures) == [room]
    assert raised.value.failures[room].status == 403
    assert raised.value.needs_admin
    assert sleeps == []


def test_one_unknown_user_fails_only_its_calendar(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    event_id = interview(fake, cora)
    gone = unique("left@acme.example")
    connector = make_connector([gone, cora])

    seen: list[PollPage] = []
    with pytest.raises(PartitionsFailed) as raised:
        for page in connector.poll({}, started_at=datetime.now(UTC)):
            seen.append(page)
    assert event_id in events(seen)
    assert list(raised.value.failures) == [gone]


def test_revoked_credentials_are_fatal(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)

    fake.revoke_credentials()
    try:
        with pytest.raises(FatalConnectorError) as raised:
            run(connector, cursors)
        with pytest.raises(FatalConnectorError):
            connector.authenticate()
    finally:
        fake.restore_credentials()
    assert "invalid_grant" in str(raised.value)
    assert "PRIVATE KEY" not in str(raised.value)
    # Recovery: the same connector syncs again once the key is valid.
    assert run(connector, cursors) == []


def test_an_expired_access_token_is_renewed_once(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    cora = unique(CORA)
    interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)
    fake.expire_access_tokens()
    fake.reset_counters()

    assert run(connector, cursors) == []
    assert fake.request_count(cora) == 2  # the 401 and the retry with a fresh token
    assert fake.token_requests == 1


def test_unreadable_key_file_is_fatal_and_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "key.json"
    bad.write_text('{"type": "authorized_user", "private_key": "secret"}')
    connector = GoogleCalendarConnector("google", calendars=[CORA], credentials_file=bad)
    with pytest.raises(FatalConnectorError) as raised:
        connector.authenticate()
    assert str(bad) in str(raised.value)
    assert "secret" not in str(raised.value)


def test_from_config_reads_the_spec_keys(fake: FakeGoogleCalendar, google_key_file: Path) -> None:
    cora = unique(CORA)
    event_id = interview(fake, cora)
    cfg = GoogleCalendarConfig(
        type="google_calendar",
        credentials_file=google_key_file,
        calendars=[cora],
        base_url=fake.url,
        token_url=fake.token_uri,
    )
    cfg.set_secret("credentials", google_key_file.read_text())  # what Config.resolve_secrets does
    connector = GoogleCalendarConnector.from_config("google", cfg)
    try:
        assert event_id in events(run(connector, {}))
    finally:
        connector.close()


def test_all_day_event_starts_at_midnight_in_the_calendars_time_zone(
    fake: FakeGoogleCalendar, make_connector: MakeConnector
) -> None:
    """Issue 13 §6: an all-day event's ``date`` is a day of the calendar's time zone (the
    events.list answer's ``timeZone``), not a UTC day."""
    cora = unique(CORA)
    fake.add_calendar(cora, time_zone="Europe/Berlin")
    day = (SOON + timedelta(days=1)).date()
    event = fake.add_event(cora, start=day, end=day + timedelta(days=1))  # type: ignore[arg-type]

    snapshot = events(run(make_connector([cora]), {}))[str(event["id"])]

    berlin = ZoneInfo("Europe/Berlin")
    assert snapshot.starts_at == datetime.combine(day, datetime.min.time(), berlin)
    assert snapshot.ends_at == datetime.combine(
        day + timedelta(days=1), datetime.min.time(), berlin
    )
