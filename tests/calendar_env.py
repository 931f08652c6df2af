"""The loopback calendar providers for tests: the fakes, connectors built against them, and
one provider-neutral driver, so a calendar scenario is written once for Google and Microsoft.

Registered as a pytest plugin by ``tests/conftest.py``: its fixtures are visible everywhere.
Each fake is module-scoped; tests sharing one use :func:`unique` calendar addresses.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import PollPage
from connectors.google_calendar import SCHEDULE_TAG_KEY, GoogleCalendarConnector
from connectors.http import RetryPolicy
from connectors.microsoft_calendar import MicrosoftCalendarConnector
from taskplanner.domain.snapshots import CalendarEventSnapshot, Deletion
from taskplanner.sandbox.fake_google_calendar import Attendee, FakeGoogleCalendar
from taskplanner.sandbox.fake_graph import FakeGraph, GraphAttendee

GRAPH_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
GRAPH_CLIENT_SECRET = "fake-client-secret-value"


class Sleeps(list[float]):
    """An injected sleep that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


_unique_counter = itertools.count(1)


def unique(address: str) -> str:
    """An address no other test uses (the fakes are shared by a module's tests)."""
    local, domain = address.split("@")
    return f"{local}{next(_unique_counter)}@{domain}"


# --- the fakes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def google_fake() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server


@pytest.fixture(scope="module")
def google_key_file(
    google_fake: FakeGoogleCalendar, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return google_fake.write_service_account_key(tmp_path_factory.mktemp("google") / "key.json")


@pytest.fixture(scope="module")
def graph_fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        server.add_client(GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET)
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


# --- connectors with test defaults -----------------------------------------------------


def google_connector(
    fake: FakeGoogleCalendar,
    key_file: Path,
    calendars: Sequence[str],
    *,
    name: str = "google",
    sleep: Sleeps | None = None,
    **kwargs: Any,
) -> GoogleCalendarConnector:
    """The real connector pointed at the fake; retries never really sleep."""
    kwargs.setdefault(
        "policy", RetryPolicy(sleep=Sleeps() if sleep is None else sleep, max_attempts=4)
    )
    kwargs.setdefault("per_user_rate", 0.0)
    kwargs.setdefault("max_workers", 4)
    return GoogleCalendarConnector(
        name, calendars=calendars, credentials_file=key_file, base_url=fake.url, **kwargs
    )


def graph_connector(
    fake: FakeGraph,
    calendars: Sequence[str],
    *,
    name: str = "m365",
    sleep: Sleeps | None = None,
    **kwargs: Any,
) -> MicrosoftCalendarConnector:
    """The real connector (msal + httpx) pointed at the fake; retries never really sleep."""
    kwargs.setdefault(
        "policy", RetryPolicy(sleep=Sleeps() if sleep is None else sleep, max_attempts=4)
    )
    kwargs.setdefault("client_secret", GRAPH_CLIENT_SECRET)
    kwargs.setdefault("max_workers", 4)
    return MicrosoftCalendarConnector(
        name,
        tenant_id=fake.tenant_id,
        client_id=GRAPH_CLIENT_ID,
        calendars=calendars,
        base_url=fake.graph_url,
        authority_url=fake.authority_url,
        ca_file=fake.ca_file,
        **kwargs,
    )


def run(connector: Any, cursors: dict[str, str], *, full: bool = False) -> list[PollPage]:
    """One poll without a database, applying cursors the way the sync runner does."""
    pages = list(connector.poll(cursors, started_at=datetime.now(UTC), full=full))
    for page in pages:
        if page.cursor is not None:
            cursors[page.partition] = page.cursor
    return pages


def events(pages: list[PollPage]) -> dict[str, CalendarEventSnapshot]:
    return {
        s.event_id: s for p in pages for s in p.snapshots if isinstance(s, CalendarEventSnapshot)
    }


def deletions(pages: list[PollPage]) -> list[Deletion]:
    return [s for p in pages for s in p.snapshots if isinstance(s, Deletion)]


# --- one driver for both providers -----------------------------------------------------

ACCEPTED, DECLINED, NO_ANSWER = "accepted", "declined", "no_answer"


@dataclass(frozen=True)
class Invitee:
    """An attendee in provider-neutral terms."""

    email: str
    response: str = NO_ANSWER  # ACCEPTED | DECLINED | NO_ANSWER
    room: bool = False
    name: str | None = None


@dataclass(frozen=True)
class Booking:
    """One event in one calendar, and the id an ATS records for it."""

    calendar: str
    event_id: str  # the provider's id, as the connector reports it
    link_id: str  # what the ATS stores as the interview's external event id


class CalendarProvider(ABC):
    """Create and change events in a fake the way people do in the provider's UI."""

    connector_name: str
    kind: str  # the configured type
    room: str  # two room addresses in the provider's form
    room_2: str
    supports_private_tag: bool  # whether a poll reads back our schedule tag
    secret: str  # credential material that must never appear in an error

    @abstractmethod
    def connector(self, calendars: Sequence[str], **kwargs: Any) -> Any: ...

    @abstractmethod
    def book(
        self,
        calendar: str,
        *,
        start: datetime,
        end: datetime,
        invitees: Sequence[Invitee],
        tag: str | None = None,
        ical_uid: str | None = None,
        event_id: str | None = None,
    ) -> Booking:
        """Create an event (``event_id`` reuses an id, as Google does for every copy)."""

    # The fakes share these operations; what differs is how an attendee and an answer are
    # written (``_attendee``, ``responses``), how sync state expires, and fault injection.
    fake: Any
    responses: dict[str, str]  # our answer words -> the provider's

    @staticmethod
    @abstractmethod
    def _attendee(invitee: Invitee) -> Any: ...

    def respond(self, booking: Booking, email: str, response: str) -> None:
        self.fake.set_response(booking.calendar, booking.event_id, email, self.responses[response])

    def invite(self, booking: Booking, invitee: Invitee) -> None:
        self.fake.add_attendee(booking.calendar, booking.event_id, self._attendee(invitee))

    def uninvite(self, booking: Booking, email: str) -> None:
        self.fake.remove_attendee(booking.calendar, booking.event_id, email)

    def move(self, booking: Booking, *, start: datetime, end: datetime) -> None:
        self.fake.move_event(booking.calendar, booking.event_id, start=start, end=end)

    def cancel(self, booking: Booking) -> None:
        """The organiser cancels the meeting."""
        self.fake.cancel_event(booking.calendar, booking.event_id)

    def delete(self, booking: Booking) -> None:
        """The event is deleted from the calendar."""
        self.fake.delete_event(booking.calendar, booking.event_id)

    @abstractmethod
    def expire_sync_state(self, calendar: str) -> None:
        """Sync tokens / delta links of the calendar now answer 410."""

    @abstractmethod
    def open_calendar(self, calendar: str) -> None:
        """A calendar (a user's mailbox) that exists, with nothing in it yet."""

    @abstractmethod
    def out_of_office(self, calendar: str, *, start: datetime, end: datetime) -> Booking:
        """The calendar's owner marks themselves out of office (the provider's own shape)."""

    def revoke_credentials(self) -> None:
        self.fake.revoke_credentials()

    def restore_credentials(self) -> None:
        self.fake.restore_credentials()

    def expire_access_tokens(self) -> None:
        self.fake.expire_access_tokens()

    def request_count(self, calendar: str) -> int:
        count: int = self.fake.request_count(calendar)
        return count

    def reset_counters(self) -> None:
        self.fake.reset_counters()

    @abstractmethod
    def slow_next(self, seconds: float, *, calendar: str, times: int = 1) -> None: ...

    @abstractmethod
    def deny(self, calendar: str, *, gone: bool = False) -> None:
        """The calendar can no longer be read (access refused; ``gone``: its user left)."""

    @abstractmethod
    def allow(self, calendar: str) -> None: ...


_GOOGLE_RESPONSES = {ACCEPTED: "accepted", DECLINED: "declined", NO_ANSWER: "needsAction"}
_GRAPH_RESPONSES = {ACCEPTED: "accepted", DECLINED: "declined", NO_ANSWER: "none"}


class GoogleProvider(CalendarProvider):
    connector_name = "google"
    kind = "google_calendar"
    room = "room-berlin-1@resource.calendar.google.com"
    room_2 = "room-berlin-2@resource.calendar.google.com"
    supports_private_tag = True
    secret = "PRIVATE KEY"
    responses = _GOOGLE_RESPONSES

    def __init__(self, fake: FakeGoogleCalendar, key_file: Path, sleep: Sleeps) -> None:
        self.fake, self.key_file, self.sleep = fake, key_file, sleep

    def connector(self, calendars: Sequence[str], **kwargs: Any) -> GoogleCalendarConnector:
        return google_connector(
            self.fake,
            self.key_file,
            calendars,
            name=self.connector_name,
            sleep=self.sleep,
            **kwargs,
        )

    def book(
        self,
        calendar: str,
        *,
        start: datetime,
        end: datetime,
        invitees: Sequence[Invitee],
        tag: str | None = None,
        ical_uid: str | None = None,
        event_id: str | None = None,
    ) -> Booking:
        attendees = [Attendee(calendar, "accepted", organizer=True)]
        attendees += [self._attendee(i) for i in invitees]
        event = self.fake.add_event(
            calendar,
            start=start,
            end=end,
            organizer=calendar,
            attendees=attendees,
            event_id=event_id,
            ical_uid=ical_uid,
            private_properties={SCHEDULE_TAG_KEY: tag} if tag else None,
        )
        return Booking(calendar, str(event["id"]), str(event["id"]))

    @staticmethod
    def _attendee(invitee: Invitee) -> Attendee:
        return Attendee(
            invitee.email,
            _GOOGLE_RESPONSES[invitee.response],
            resource=invitee.room,
            name=invitee.name,
        )

    def expire_sync_state(self, calendar: str) -> None:
        self.fake.expire_sync_tokens(calendar)

    def out_of_office(self, calendar: str, *, start: datetime, end: datetime) -> Booking:
        event = self.fake.add_out_of_office(calendar, start=start, end=end)
        return Booking(calendar, str(event["id"]), str(event["id"]))

    def open_calendar(self, calendar: str) -> None:
        self.fake.add_calendar(calendar)

    def slow_next(self, seconds: float, *, calendar: str, times: int = 1) -> None:
        self.fake.slow_next(seconds, calendar_id=calendar, times=times)

    def deny(self, calendar: str, *, gone: bool = False) -> None:
        self.fake.deny_calendar(calendar, 404 if gone else 403)

    def allow(self, calendar: str) -> None:
        self.fake.allow_calendar(calendar)


class GraphProvider(CalendarProvider):
    connector_name = "m365"
    kind = "microsoft_calendar"
    room = "room.berlin1@acme.example"
    room_2 = "room.berlin2@acme.example"
    # Delta responses do not carry extended properties (see fake_graph's docstring).
    supports_private_tag = False
    secret = GRAPH_CLIENT_SECRET
    responses = _GRAPH_RESPONSES

    def __init__(self, fake: FakeGraph, sleep: Sleeps) -> None:
        self.fake, self.sleep = fake, sleep

    def connector(self, calendars: Sequence[str], **kwargs: Any) -> MicrosoftCalendarConnector:
        return graph_connector(
            self.fake, calendars, name=self.connector_name, sleep=self.sleep, **kwargs
        )

    def book(
        self,
        calendar: str,
        *,
        start: datetime,
        end: datetime,
        invitees: Sequence[Invitee],
        tag: str | None = None,
        ical_uid: str | None = None,
        event_id: str | None = None,
    ) -> Booking:
        if event_id is not None:
            raise ValueError("Graph gives every mailbox's copy its own id; share ical_uid")
        event = self.fake.add_event(
            calendar,
            start=start,
            end=end,
            organizer=calendar,
            attendees=[self._attendee(i) for i in invitees],
            ical_uid=ical_uid,
            extended_properties={SCHEDULE_TAG_KEY: tag} if tag else None,
        )
        return Booking(calendar, str(event["id"]), str(event["id"]))

    @staticmethod
    def _attendee(invitee: Invitee) -> GraphAttendee:
        return GraphAttendee(
            invitee.email,
            _GRAPH_RESPONSES[invitee.response],
            type="resource" if invitee.room else "required",
            name=invitee.name,
        )

    def expire_sync_state(self, calendar: str) -> None:
        self.fake.expire_delta_links(calendar)

    def out_of_office(self, calendar: str, *, start: datetime, end: datetime) -> Booking:
        event = self.fake.add_out_of_office(calendar, start=start, end=end)
        return Booking(calendar, str(event["id"]), str(event["id"]))

    def open_calendar(self, calendar: str) -> None:
        self.fake.add_user(calendar)

    def slow_next(self, seconds: float, *, calendar: str, times: int = 1) -> None:
        self.fake.slow_next(seconds, user=calendar, times=times)

    def deny(self, calendar: str, *, gone: bool = False) -> None:
        self.fake.deny_mailbox(calendar, "not_found" if gone else "access_policy")

    def allow(self, calendar: str) -> None:
        self.fake.allow_mailbox(calendar)


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest, sleeps: Sleeps) -> CalendarProvider:
    """Each calendar provider in turn, behind the same driver."""
    if request.param == "google":
        fake: FakeGoogleCalendar = request.getfixturevalue("google_fake")
        return GoogleProvider(fake, request.getfixturevalue("google_key_file"), sleeps)
    return GraphProvider(request.getfixturevalue("graph_fake"), sleeps)
