"""ATS polling cost benchmark: does an idle poll stay cheap as the organisation's history grows?

Drives the ATS's loopback fake through the `FakeATS` protocol (``--ats``, Greenhouse by default)
and its real connector over 127.0.0.1. Two organisations with the same current activity (open
jobs, applications, upcoming interviews) differ only in their past: ``--small`` and ``--large``
interviews that ended long ago. For each it prints the requests and seconds of one idle
incremental poll (after a warm-up one; seconds: the best of several) and their large/small
ratio (target <= 1.2). Then a full
sync of ``--applications`` applications: its requests beside the minimum the page size allows
for the applications themselves. Prints figures; asserts nothing.

    .venv/bin/python bench/poll_cost.py [--ats greenhouse] [--small 1000] [--large 100000]
        [--applications 10000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.ashby import PARTITIONS as ASHBY_PARTITIONS  # noqa: E402
from connectors.ashby.client import MAX_LIMIT as ASHBY_MAX_LIMIT  # noqa: E402
from connectors.greenhouse import PARTITIONS as GREENHOUSE_PARTITIONS  # noqa: E402
from connectors.http import RetryPolicy  # noqa: E402
from connectors.lever import PARTITIONS as LEVER_PARTITIONS  # noqa: E402
from connectors.polling import format_cursor  # noqa: E402
from taskplanner.providers import PROVIDERS  # noqa: E402
from taskplanner.sandbox.fake_ats import FakeATS, seed_organisation  # noqa: E402
from tests.ats_env import ats_config  # noqa: E402

WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a loopback fake's made-up secret
PAST_PER_APPLICATION = 10  # ended interviews per archived application
UPCOMING_INTERVIEWS = 40
# Idle polls measured per organisation; the best time is printed (on a shared machine the
# others only measure the neighbours' load).
REPEATS = 9


class SettableClock:
    """The fake's clock: real time plus an offset, so history can be written in the past."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass(frozen=True)
class Provider:
    """How the bench builds one provider's fake and what its connector's page size is."""

    make_fake: Callable[[SettableClock], FakeATS[Any]]
    partitions: tuple[str, ...]  # the connector's cursors
    max_per_page: int
    # The path whose requests list the applications (the full sync's minimum is counted on it).
    applications_path: str = "/applications"
    # Cursors are timestamps the bench can write (Greenhouse, Lever's updated_at filters), or
    # tokens only the provider hands out (Ashby's syncToken): those come from a full sync.
    timestamp_cursors: bool = True


def _greenhouse(clock: SettableClock) -> FakeATS[Any]:
    from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse

    fake: FakeATS[Any] = FakeGreenhouse(clock=clock, rate_limit=10_000_000)
    return fake


def _lever(clock: SettableClock) -> FakeATS[Any]:
    from taskplanner.sandbox.fake_lever import FakeLever

    # A fake allowing more than Lever's 10 requests/s (its connector settings say so): the
    # bench counts requests; at the real rate, seconds are requests / 10.
    fake: FakeATS[Any] = FakeLever(clock=clock, rate_limit=10_000_000, rate_burst=20_000_000)
    return fake


def _ashby(clock: SettableClock) -> FakeATS[Any]:
    from taskplanner.sandbox.fake_ashby import FakeAshby

    # Incremental listings of any size: the bench measures polls, not the too-large answer.
    fake: FakeATS[Any] = FakeAshby(clock=clock, rate_limit=10_000_000, max_incremental_pages=10**6)
    return fake


ATS: dict[str, Provider] = {
    "greenhouse": Provider(_greenhouse, GREENHOUSE_PARTITIONS, max_per_page=500),
    "lever": Provider(
        _lever, LEVER_PARTITIONS, max_per_page=100, applications_path="/opportunities"
    ),
    "ashby": Provider(
        _ashby,
        ASHBY_PARTITIONS,
        max_per_page=ASHBY_MAX_LIMIT,
        applications_path="/application.list",
        timestamp_cursors=False,
    ),
}


def make_connector(ats: str, fake: FakeATS[Any]) -> Any:
    settings = fake.connector_settings(WEBHOOK_SECRET)
    config = ats_config("sqlite://", settings.table, settings.environ)
    cls = PROVIDERS[ats].connector_class()
    return cls.from_config(ats, config.connectors[ats], policy=RetryPolicy())


def seed_current_activity(fake: FakeATS[Any]) -> None:
    """What is going on now: the same in both organisations."""
    org = seed_organisation(fake, jobs=5, applications_per_job=20)
    now = datetime.now(UTC)
    for n in range(UPCOMING_INTERVIEWS):
        application = org.application_ids[n % len(org.application_ids)]
        kind = fake.interview_kind_id(org.job_of[application], "Phone Screen")
        starts = now + timedelta(days=1, hours=n)
        fake.schedule_interview(
            application, kind, org.interviewer_ids[:2], starts, starts + timedelta(hours=1)
        )


def seed_history(fake: FakeATS[Any], interviews: int) -> None:
    """Archived applications with interviews that ended between 30 days and years ago."""
    interviewer = fake.add_user("past@acme.example", "Pat", "Past", role="interviewer")
    job = fake.create_job("Archived role")
    kind = fake.interview_kind_id(job, "Phone Screen")
    ended = datetime.now(UTC) - timedelta(days=30)
    application = None
    for n in range(interviews):
        if n % PAST_PER_APPLICATION == 0:
            _, application = fake.add_candidate_application(
                job, "Past", f"Candidate{n}", f"past{n}@example.com"
            )
        starts = ended - timedelta(hours=6 * n)
        fake.schedule_interview(
            application, kind, [interviewer], starts, starts + timedelta(hours=1)
        )


def idle_poll(ats: str, past_interviews: int) -> tuple[int, float]:
    """(requests, seconds) of one idle incremental poll of an organisation with that history."""
    clock = SettableClock()
    clock.offset = -timedelta(hours=3)  # everything written so far predates the cursors
    with ATS[ats].make_fake(clock) as fake:
        seed_current_activity(fake)
        seed_history(fake, past_interviews)
        clock.offset = timedelta(0)
        connector = make_connector(ats, fake)
        if ATS[ats].timestamp_cursors:
            started = datetime.now(UTC) - timedelta(hours=1)
            # As if a full sync had run an hour ago: every partition's cursor is that moment.
            cursors = {name: format_cursor(started) for name in ATS[ats].partitions}
        else:
            # The provider's own tokens, as a full sync leaves them.
            cursors = {}
            for page in connector.poll({}, started_at=datetime.now(UTC), full=True):
                if page.cursor is not None:
                    cursors[page.partition] = page.cursor
        list(connector.poll(cursors, started_at=datetime.now(UTC)))  # warm-up (fake indexes)
        # The fake's rows and indexes live in this process: keep the garbage collector's full
        # passes over them out of the connector's figures (they are not the connector's).
        gc.collect()
        gc.freeze()
        runs: list[tuple[int, float]] = []
        for _ in range(REPEATS):
            fake.reset_counters()
            began = time.perf_counter()
            pages = list(connector.poll(cursors, started_at=datetime.now(UTC)))
            runs.append((sum(fake.requests.values()), time.perf_counter() - began))
            changed = sum(len(p.snapshots) for p in pages)
            if changed:
                print(f"  (warning: the idle poll still brought {changed} snapshots)")
        connector.close()
    gc.unfreeze()
    return runs[0][0], min(seconds for _, seconds in runs)


def full_sync(ats: str, applications: int) -> tuple[int, dict[str, int], float]:
    """(requests of all, requests per path, seconds) of a full sync."""
    clock = SettableClock()
    clock.offset = -timedelta(hours=3)
    with ATS[ats].make_fake(clock) as fake:
        jobs = max(1, applications // 500)
        seed_organisation(fake, jobs=jobs, applications_per_job=applications // jobs)
        clock.offset = timedelta(0)
        connector = make_connector(ats, fake)
        fake.reset_counters()
        began = time.perf_counter()
        list(connector.poll({}, started_at=datetime.now(UTC), full=True))
        seconds = time.perf_counter() - began
        connector.close()
        return sum(fake.requests.values()), dict(fake.requests), seconds


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ats", choices=sorted(ATS), default="greenhouse")
    parser.add_argument("--small", type=int, default=1_000, help="past interviews, small org")
    parser.add_argument("--large", type=int, default=100_000, help="past interviews, large org")
    parser.add_argument("--applications", type=int, default=10_000, help="for the full sync")
    args = parser.parse_args()

    print(f"{args.ats}: one idle incremental poll (same current activity)")
    figures = {}
    for past in (args.small, args.large):
        began = time.perf_counter()
        requests, seconds = idle_poll(args.ats, past)
        figures[past] = (requests, seconds)
        print(
            f"  {past:>7,} past interviews: {requests:>4} requests, {seconds:6.3f} s"
            f"   (set-up {time.perf_counter() - began:.0f} s)"
        )
    (small_requests, small_seconds), (large_requests, large_seconds) = (
        figures[args.small],
        figures[args.large],
    )
    print(
        f"  ratio large/small: requests {large_requests / small_requests:.2f}, "
        f"seconds {large_seconds / small_seconds:.2f}   (target <= 1.2)"
    )

    total, by_path, seconds = full_sync(args.ats, args.applications)
    minimum = math.ceil(args.applications / ATS[args.ats].max_per_page)
    listing = sum(
        n for path, n in by_path.items() if path.endswith(ATS[args.ats].applications_path)
    )
    print(f"{args.ats}: full sync of {args.applications:,} applications ({seconds:.1f} s)")
    print(
        f"  {listing} requests listing the applications; the minimum at "
        f"{ATS[args.ats].max_per_page} per page: {minimum}"
    )
    busiest = sorted(by_path.items(), key=lambda item: -item[1])[:6]
    print(f"  {total} requests in all; most: " + ", ".join(f"{p} {n}" for p, n in busiest))


if __name__ == "__main__":
    main()
