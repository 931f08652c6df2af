"""MicrosoftCalendarConnector with real msal and httpx against the loopback fake Graph."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import (
    Connector,
    FatalConnectorError,
    RetriableConnectorError,
)
from connectors.microsoft_calendar import MicrosoftCalendarConnector
from taskplanner.clock import FrozenClock
from taskplanner.config import MicrosoftCalendarConfig
from taskplanner.domain.snapshots import (
    EntityKind,
    EventStatus,
    Response,
)
from taskplanner.sandbox.fake_graph import FakeGraph, GraphAttendee
from tests.calendar_env import (
    GRAPH_CLIENT_ID,
    GRAPH_CLIENT_SECRET,
    Sleeps,
    deletions,
    events,
    graph_connector,
    run,
    unique,
)

CLIENT_ID, CLIENT_SECRET = GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET
SAM = "sam@acme.example"
ROOM = "room.berlin@acme.example"
CANDIDATE = "jane.candidate@gmail.example"
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)

MakeConnector = Callable[..., MicrosoftCalendarConnector]


@pytest.fixture
def fake(graph_fake: FakeGraph) -> FakeGraph:
    return graph_fake


@pytest.fixture
def make_connector(fake: FakeGraph, sleeps: Sleeps) -> Iterator[MakeConnector]:
    made: list[MicrosoftCalendarConnector] = []

    def make(calendars: list[str], **kwargs: Any) -> MicrosoftCalendarConnector:
        connector = graph_connector(fake, calendars, sleep=sleeps, **kwargs)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def interview(fake: FakeGraph, user: str, *, room: str | None = None, **kwargs: object) -> str:
    attendees = [
        GraphAttendee(SAM, "none", name="Sam Interviewer"),
        GraphAttendee(CANDIDATE, "none", type="optional"),
    ]
    if room:
        attendees.append(GraphAttendee(room, "accepted", type="resource", name="Berlin 1"))
    event = fake.add_event(
        user,
        start=SOON,
        end=SOON + timedelta(hours=1),
        organizer=user,
        attendees=attendees,
        **kwargs,  # type: ignore[arg-type]
    )
    return str(event["id"])


def test_connector_satisfies_the_protocol(make_connector: MakeConnector) -> None:
    assert isinstance(make_connector([SAM]), Connector)


def test_full_sync_maps_attendee_types_responses_and_immutable_ids(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    event_id = interview(fake, cora, room=ROOM, subject="Onsite: Jane", ical_uid="uid-1")
    connector = make_connector([cora])

    snapshot = events(run(connector, {}))[event_id]  # the immutable id fake.add_event returned

    assert snapshot.status is EventStatus.CONFIRMED
    assert snapshot.starts_at == SOON and snapshot.ends_at == SOON + timedelta(hours=1)
    assert snapshot.ical_uid == "uid-1"
    assert snapshot.title == "Onsite: Jane"
    assert snapshot.organizer_email == cora
    by_email = {a.email: a for a in snapshot.attendees}
    assert by_email[SAM].response is Response.NEEDS_ACTION
    assert by_email[SAM].name == "Sam Interviewer"
    assert by_email[ROOM].is_resource and by_email[ROOM].response is Response.ACCEPTED
    assert not by_email[CANDIDATE].is_resource
    prefer = " ".join(fake.last_prefer[cora])
    assert 'IdType="ImmutableId"' in prefer and "odata.maxpagesize=100" in prefer


def test_incremental_round_yields_only_what_changed_and_declines(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    first, second = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    assert set(events(run(connector, cursors))) == {first, second}

    fake.set_response(cora, second, SAM, "declined")
    fake.set_response(cora, second, CANDIDATE, "tentativelyAccepted")
    pages = run(connector, cursors)

    changed = events(pages)
    assert set(changed) == {second}
    responses = {a.email: a.response for a in changed[second].attendees}
    assert responses == {SAM: Response.DECLINED, CANDIDATE: Response.TENTATIVE}
    assert pages[-1].present_ids is None


def test_pages_follow_next_links_and_only_the_last_carries_cursor_and_present_ids(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    ids = {interview(fake, cora) for _ in range(5)}
    pages = run(make_connector([cora], page_size=2), {})

    assert [len(p.snapshots) for p in pages] == [2, 2, 1]
    assert [p.cursor is not None for p in pages] == [False, False, True]
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: ids}
    assert fake.request_count(cora) == 3


def test_deleted_events_become_deletions_and_cancelled_ones_cancelled_snapshots(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    kept, deleted, cancelled = (interview(fake, cora) for _ in range(3))
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)

    fake.delete_event(cora, deleted)
    fake.cancel_event(cora, cancelled)
    pages = run(connector, cursors)

    assert [(d.kind, d.id, d.connector) for d in deletions(pages)] == [
        (EntityKind.CALENDAR_EVENT, f"{cora}/{deleted}", "m365")
    ]
    assert set(events(pages)) == {cancelled}
    assert events(pages)[cancelled].status is EventStatus.CANCELLED
    assert kept not in events(pages)


def test_replacing_an_interviewer_and_moving_show_up(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    event_id = interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)

    fake.remove_attendee(cora, event_id, SAM)
    fake.add_attendee(cora, event_id, GraphAttendee("kim@acme.example", "accepted"))
    later = SOON + timedelta(hours=3)
    fake.move_event(cora, event_id, start=later, end=later + timedelta(hours=1))
    snapshot = events(run(connector, cursors))[event_id]

    assert {a.email for a in snapshot.attendees} == {CANDIDATE, "kim@acme.example"}
    assert snapshot.starts_at == later


def test_expired_delta_link_resyncs_the_same_window_with_present_ids(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    kept, deleted = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)
    window_before = {k: v for k, v in json.loads(cursors[cora]).items() if k != "delta_link"}

    fake.delete_event(cora, deleted)
    fake.expire_delta_links(cora)
    pages = run(connector, cursors)

    assert set(events(pages)) == {kept}
    assert pages[-1].present_ids == {EntityKind.CALENDAR_EVENT: {kept}}
    window_after = {k: v for k, v in json.loads(cursors[cora]).items() if k != "delta_link"}
    assert window_after == window_before
    fake.reset_counters()
    assert run(connector, cursors) == []
    assert fake.request_count(cora) == 1


def test_idle_cycle_costs_one_request_per_calendar_and_no_token(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    calendars = [unique("cora@acme.example") for _ in range(6)]
    for calendar in calendars:
        interview(fake, calendar)
    connector = make_connector(calendars)
    cursors: dict[str, str] = {}
    run(connector, cursors)
    fake.reset_counters()

    assert run(connector, cursors) == []
    assert run(connector, cursors) == []

    assert {c: fake.request_count(c) for c in calendars} == {c: 2 for c in calendars}
    assert fake.token_requests == 0


def test_window_rolls_forward_without_losing_deletions(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    clock = FrozenClock(datetime.now(UTC))
    near, deleted = interview(fake, cora), interview(fake, cora)
    connector = make_connector([cora], clock=clock)
    cursors: dict[str, str] = {}
    run(connector, cursors)

    far = clock.now + timedelta(days=80)
    far_event = fake.add_event(cora, start=far, end=far + timedelta(hours=1))["id"]
    fake.delete_event(cora, deleted)
    clock.advance(timedelta(days=40))  # less than half of the 60-day window is left
    pages = run(connector, cursors)

    assert [d.id for d in deletions(pages)] == [f"{cora}/{deleted}"]
    assert far_event in events(pages)  # the new window reaches it
    # The near event is in the past now: outside the new window, it stays in the mirror
    # because the new round claims no completeness.
    assert near not in events(pages)
    assert all(p.present_ids is None for p in pages)
    assert json.loads(cursors[cora])["end"].startswith(
        (clock.now + timedelta(days=60)).date().isoformat()
    )


@pytest.mark.parametrize(
    ("kind", "retry_after"),
    [("throttled_429", 9.0), ("unavailable_503", 2.0), ("server_error_500", None)],
)
def test_throttling_and_outages_are_retried_honouring_retry_after(
    fake: FakeGraph,
    make_connector: MakeConnector,
    sleeps: Sleeps,
    kind: str,
    retry_after: float | None,
) -> None:
    cora = unique("cora@acme.example")
    event_id = interview(fake, cora)
    connector = make_connector([cora])
    fake.fail_next(kind, user=cora, times=2, retry_after=retry_after)

    pages = run(connector, {})

    assert event_id in events(pages)
    assert fake.request_count(cora) == 3
    assert len(sleeps) == 2
    if retry_after is not None:
        assert sleeps == [retry_after, retry_after]


def test_persistent_throttling_gives_up_with_a_retriable_error(
    fake: FakeGraph, make_connector: MakeConnector, sleeps: Sleeps
) -> None:
    cora = unique("cora@acme.example")
    interview(fake, cora)
    fake.fail_next("throttled_429", user=cora, times=4, retry_after=1)
    with pytest.raises(RetriableConnectorError) as raised:
        run(make_connector([cora]), {})
    assert raised.value.status == 429
    assert sleeps == [1.0, 1.0, 1.0]


def test_revoked_secret_is_fatal_and_recovers(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
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
    assert raised.value.status == 401
    assert "invalid_client" in str(raised.value)
    assert CLIENT_SECRET not in str(raised.value)
    assert run(connector, cursors) == []


def test_wrong_secret_is_fatal_without_echoing_it(make_connector: MakeConnector) -> None:
    connector = make_connector([SAM], client_secret="not-the-secret")
    with pytest.raises(FatalConnectorError) as raised:
        connector.authenticate()
    assert "not-the-secret" not in str(raised.value)
    assert "AADSTS7000215" in str(raised.value)


def test_expired_access_token_is_renewed_once(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    cora = unique("cora@acme.example")
    interview(fake, cora)
    connector = make_connector([cora])
    cursors: dict[str, str] = {}
    run(connector, cursors)
    fake.expire_access_tokens()
    fake.reset_counters()

    assert run(connector, cursors) == []
    assert fake.request_count(cora) == 2
    assert fake.token_requests == 1


def test_from_config_reads_the_spec_keys(fake: FakeGraph) -> None:
    cora = unique("cora@acme.example")
    event_id = interview(fake, cora)
    cfg = MicrosoftCalendarConfig(
        type="microsoft_calendar",
        tenant_id=fake.tenant_id,
        client_id_env="M365_CLIENT_ID",
        client_secret_env="M365_CLIENT_SECRET",
        calendars=[cora],
        base_url=fake.graph_url,
        authority_url=fake.authority_url,
    )
    cfg.set_secret("client_id", CLIENT_ID)  # what Config.resolve_secrets does
    cfg.set_secret("client_secret", CLIENT_SECRET)
    # The fake serves a self-signed certificate; the config has no key for a CA bundle.
    connector = MicrosoftCalendarConnector.from_config("m365", cfg, ca_file=fake.ca_file)
    try:
        assert event_id in events(run(connector, {}))
    finally:
        connector.close()


def test_sparse_occurrences_of_a_recurring_meeting_keep_the_series_attendees(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    """Issue 13 §5: delta returns an occurrence with only id, seriesMasterId, type, start and
    end (microsoftgraph/microsoft-graph-docs#22197, microsoft-graph-docs-contrib#34). Its
    attendees come from the series master, and a later sparse copy never clears them."""
    user = unique(SAM.replace("sam", "cora"))
    master, occurrences = fake.add_recurring_event(
        user,
        start=SOON,
        end=SOON + timedelta(hours=1),
        occurrences=3,
        subject="Weekly panel",
        organizer=user,
        attendees=[GraphAttendee(SAM, "accepted"), GraphAttendee(CANDIDATE, "none")],
    )
    connector = make_connector([user])
    cursors: dict[str, str] = {}
    reads = fake.event_requests
    pages = run(connector, cursors)

    seen = events(pages)
    assert set(seen) == {o["id"] for o in occurrences}  # the master itself is not listed
    first = seen[occurrences[0]["id"]]
    assert first.title == "Weekly panel"
    assert {(a.email, a.response) for a in first.attendees} == {
        (SAM, Response.ACCEPTED),
        (CANDIDATE, Response.NEEDS_ACTION),
    }
    assert first.starts_at == SOON
    assert seen[occurrences[1]["id"]].starts_at == SOON + timedelta(days=7)
    assert fake.event_requests - reads == 1  # one master read for the whole series

    fake.respond_to_series(user, master["id"], SAM, "declined")
    again = events(run(connector, cursors))

    assert {(a.email, a.response) for a in again[occurrences[0]["id"]].attendees} == {
        (SAM, Response.DECLINED),
        (CANDIDATE, Response.NEEDS_ACTION),
    }


def test_all_day_event_is_a_day_of_the_mailboxs_time_zone(
    fake: FakeGraph, make_connector: MakeConnector
) -> None:
    """Issue 13 §6: Graph labels an all-day event's midnight "UTC" and names its zone the
    Windows way; its day is placed in the connector's ``time_zone``."""
    user = unique(SAM.replace("sam", "dora"))
    day = (SOON + timedelta(days=1)).date()
    event = fake.add_all_day_event(user, day)

    snapshot = events(run(make_connector([user], time_zone="Europe/Berlin"), {}))[event["id"]]

    berlin = ZoneInfo("Europe/Berlin")
    assert snapshot.starts_at == datetime.combine(day, datetime.min.time(), berlin)
    assert snapshot.ends_at == datetime.combine(
        day + timedelta(days=1), datetime.min.time(), berlin
    )
