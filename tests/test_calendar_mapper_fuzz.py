"""The calendar payload mappers on bad input (hypothesis): documented events with one value
made null, wrong-typed, nasty text or taken out, and random JSON. Each maps to a snapshot that
can be stored (text without NUL or lone surrogates, aware times) or raises one of the
module's ``UNREADABLE_EVENT`` errors, which the connector reports as one clear
``unreadable event <id> on <calendar>`` error; never another exception.

Shapes: Google's Event resource
(https://developers.google.com/workspace/calendar/api/v3/reference/events#resource) and Graph's
event (https://learn.microsoft.com/graph/api/resources/event).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import google_calendar as google
from connectors import microsoft_calendar as graph
from connectors.base import ProviderRequestError
from tests import bad_input as bad

FALLBACK = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

GOOGLE_EVENTS: list[dict[str, Any]] = [
    {
        "kind": "calendar#event",
        "id": "evt1",
        "status": "confirmed",
        "updated": "2026-03-02T09:00:00.000Z",
        "summary": "Phone Screen: Ada Lovelace",
        "start": {"dateTime": "2026-03-10T09:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-10T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "iCalUID": "evt1@google.com",
        "organizer": {"email": "cora@acme.example", "self": True},
        "attendees": [
            {"email": "ivy@acme.example", "responseStatus": "accepted", "displayName": "Ivy"},
            {"email": "room-1@resource.calendar.google.com", "resource": True},
            {"email": "cora@acme.example", "organizer": True, "responseStatus": "accepted"},
        ],
        "extendedProperties": {"private": {google.SCHEDULE_TAG_KEY: "42"}},
        "eventType": "default",
    },
    {
        "id": "ooo1",
        "status": "confirmed",
        "updated": "2026-03-02T09:00:00Z",
        "start": {"date": "2026-03-11"},
        "end": {"date": "2026-03-12"},
        "eventType": "outOfOffice",
        "outOfOfficeProperties": {"autoDeclineMode": "declineAllConflictingInvitations"},
    },
    {"id": "gone1", "status": "cancelled"},  # a deleted event in an incremental listing
]

GRAPH_EVENTS: list[dict[str, Any]] = [
    {
        "id": "AAMkAGI2TG93AAA=",
        "subject": "Onsite: Grace Hopper",
        "isCancelled": False,
        "lastModifiedDateTime": "2016-12-08T19:14:51.2939722Z",
        "start": {"dateTime": "2026-03-10T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-10T10:00:00.0000000", "timeZone": "Europe/Berlin"},
        "iCalUId": "040000008200E00074C5B7101A82E008",
        "showAs": "busy",
        "organizer": {"emailAddress": {"name": "Cora", "address": "cora@acme.example"}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted", "time": "2016-12-08T19:14:51Z"},
                "emailAddress": {"name": "Ivy", "address": "ivy@acme.example"},
            },
            {
                "type": "resource",
                "status": {"response": "none"},
                "emailAddress": {"name": "Room 1", "address": "room1@acme.example"},
            },
        ],
        "singleValueExtendedProperties": [
            {
                "id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name "
                + graph.SCHEDULE_TAG_NAME,
                "value": "42",
            }
        ],
    },
    {
        "id": "AAMkOOF=",
        "subject": "Away",
        "showAs": "oof",
        "lastModifiedDateTime": "2026-03-02T09:00:00+01:00",
        "start": {"dateTime": "2026-03-11T00:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-03-12T00:00:00.0000000", "timeZone": "UTC"},
    },
]

Mapper = Callable[[Any], Any]
MAPPERS: dict[str, tuple[Mapper, list[dict[str, Any]], tuple[type[Exception], ...]]] = {
    "google_calendar": (
        lambda item: google.event_snapshot(
            "google", "cora@acme.example", item, fallback_updated=FALLBACK
        ),
        GOOGLE_EVENTS,
        google.UNREADABLE_EVENT,
    ),
    "microsoft_calendar": (
        lambda item: graph.graph_event_snapshot(
            "m365", "cora@acme.example", item, fallback_updated=FALLBACK
        ),
        GRAPH_EVENTS,
        graph.UNREADABLE_EVENT,
    ),
}


def events(samples: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(samples).flatmap(bad.mutated),
        bad.json_values(),
    )


@pytest.mark.parametrize("provider", list(MAPPERS))
def test_a_calendar_event_maps_to_a_storable_snapshot_or_a_clear_error(provider: str) -> None:
    mapper, samples, unreadable = MAPPERS[provider]
    for sample in samples:
        bad.assert_well_typed(mapper(sample))

    @settings(max_examples=bad.EXAMPLES * 8)
    @given(item=events(samples))
    def run(item: Any) -> None:
        result = bad.outcome(lambda: mapper(item), unreadable)
        if not isinstance(result, Exception):
            bad.assert_well_typed(result)

    run()


@pytest.mark.parametrize("item", ["not an event", 7, None, ["x"]])
def test_the_graph_connector_reports_an_unreadable_item_as_one_clear_error(item: Any) -> None:
    connector = graph.MicrosoftCalendarConnector.__new__(graph.MicrosoftCalendarConnector)
    connector.name = "m365"
    with pytest.raises(ProviderRequestError, match="unreadable event .* on cora@acme.example"):
        connector._snapshots("cora@acme.example", {"value": [item]}, FALLBACK)
