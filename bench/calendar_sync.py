"""Calendar sync benchmark: full sync and idle incremental cycle over many calendars.

Runs each loopback fake in its own process (so the figures are the connector's, not the
fake's) and prints wall time and the connector process's peak RSS for a full sync of
N calendars x M events and for an idle cycle. Targets (issue 5): idle cycle for 1,000
calendars under 10 s, peak memory under 300 MB. Prints figures; asserts nothing.

    .venv/bin/python bench/calendar_sync.py [--calendars 1000] [--events 50] [--workers 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.base import PollPage  # noqa: E402
from connectors.google_calendar import GoogleCalendarConnector  # noqa: E402
from connectors.microsoft_calendar import MicrosoftCalendarConnector  # noqa: E402

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"  # noqa: S105 - a loopback fake's made-up secret


def calendar_addresses(count: int) -> list[str]:
    return [f"coordinator{i:04d}@acme.example" for i in range(count)]


def serve_google(conn: Connection, calendars: int, events: int, workdir: str) -> None:
    from taskplanner.sandbox.fake_google_calendar import Attendee, FakeGoogleCalendar

    start = datetime.now(UTC) + timedelta(days=1)
    with FakeGoogleCalendar() as fake:
        key = fake.write_service_account_key(Path(workdir) / "key.json")
        for address in calendar_addresses(calendars):
            fake.add_calendar(address)
            for n in range(events):
                when = start + timedelta(hours=n)
                fake.add_event(
                    address,
                    start=when,
                    end=when + timedelta(hours=1),
                    summary=f"Interview {n}",
                    attendees=[
                        Attendee(address, "accepted", organizer=True),
                        Attendee(f"interviewer{n % 7}@acme.example", "needsAction"),
                        Attendee(f"candidate{n}@example.org", "needsAction"),
                        Attendee("room-1@resource.calendar.google.com", "accepted", resource=True),
                    ],
                    private_properties={"taskplanner_schedule_id": f"s{n}"},
                )
        conn.send({"url": fake.url, "key": str(key)})
        conn.recv()  # until the benchmark is done
        conn.send({"requests": fake.request_count(), "grants": fake.token_requests})


def serve_graph(conn: Connection, calendars: int, events: int) -> None:
    from taskplanner.sandbox.fake_graph import FakeGraph, GraphAttendee

    start = datetime.now(UTC) + timedelta(days=1)
    with FakeGraph() as fake:
        fake.add_client(CLIENT_ID, CLIENT_SECRET)
        for address in calendar_addresses(calendars):
            for n in range(events):
                when = start + timedelta(hours=n)
                fake.add_event(
                    address,
                    start=when,
                    end=when + timedelta(hours=1),
                    subject=f"Interview {n}",
                    attendees=[
                        GraphAttendee(f"interviewer{n % 7}@acme.example", "none"),
                        GraphAttendee(f"candidate{n}@example.org", "none", type="optional"),
                        GraphAttendee("room-1@acme.example", "accepted", type="resource"),
                    ],
                )
        conn.send(
            {
                "graph": fake.graph_url,
                "authority": fake.authority_url,
                "tenant": fake.tenant_id,
                "ca": str(fake.ca_file),
            }
        )
        conn.recv()
        conn.send({"requests": fake.request_count(), "grants": fake.token_requests})


def drain(pages: Iterator[PollPage], cursors: dict[str, str]) -> tuple[int, int]:
    """Consume pages the way the runner would (keep cursors, drop snapshots)."""
    count = records = 0
    for page in pages:
        count += 1
        records += len(page.snapshots)
        if page.cursor is not None:
            cursors[page.partition] = page.cursor
    return count, records


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(label: str, connector: Any, calendars: int) -> None:
    cursors: dict[str, str] = {}
    began = time.perf_counter()
    pages, records = drain(connector.poll(cursors, started_at=datetime.now(UTC)), cursors)
    full = time.perf_counter() - began
    print(
        f"{label:9} full sync   {calendars} calendars: {full:6.2f} s, {pages} pages, "
        f"{records} events, {len(cursors)} cursors, peak RSS {peak_rss_mb():.0f} MB"
    )
    requests_before = connector.stats.requests
    began = time.perf_counter()
    pages, records = drain(connector.poll(cursors, started_at=datetime.now(UTC)), cursors)
    idle = time.perf_counter() - began
    print(
        f"{label:9} idle cycle  {calendars} calendars: {idle:6.2f} s, {pages} pages, "
        f"{connector.stats.requests - requests_before} API requests, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calendars", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--only", choices=["google", "microsoft"], default=None)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    addresses = calendar_addresses(args.calendars)
    print(
        f"calendar sync bench: {args.calendars} calendars x {args.events} events, "
        f"{args.workers} workers; start RSS {peak_rss_mb():.0f} MB"
    )

    if args.only in (None, "google"):
        with tempfile.TemporaryDirectory() as workdir:
            parent, child = ctx.Pipe()
            server = ctx.Process(
                target=serve_google, args=(child, args.calendars, args.events, workdir)
            )
            server.start()
            info = parent.recv()
            google = GoogleCalendarConnector(
                "google",
                calendars=addresses,
                credentials_file=info["key"],
                base_url=info["url"],
                max_workers=args.workers,
            )
            try:
                measure("google", google, args.calendars)
            finally:
                google.close()
                parent.send("stop")
                served = parent.recv()
                server.join(timeout=30)
            print(f"google    fake served {served['requests']} requests, {served['grants']} grants")

    if args.only in (None, "microsoft"):
        parent, child = ctx.Pipe()
        server = ctx.Process(target=serve_graph, args=(child, args.calendars, args.events))
        server.start()
        info = parent.recv()
        graph = MicrosoftCalendarConnector(
            "m365",
            tenant_id=info["tenant"],
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            calendars=addresses,
            base_url=info["graph"],
            authority_url=info["authority"],
            ca_file=info["ca"],
            max_workers=args.workers,
        )
        try:
            measure("microsoft", graph, args.calendars)
        finally:
            graph.close()
            parent.send("stop")
            served = parent.recv()
            server.join(timeout=30)
        print(f"microsoft fake served {served['requests']} requests, {served['grants']} grants")


if __name__ == "__main__":
    main()
