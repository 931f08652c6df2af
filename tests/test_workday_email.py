"""What a row says, in the daily email too (issue 15): a decline's interview time in the
organisation's time zone and who declined, a broken integration's error (never a secret)
and what to do about it, people's names rather than addresses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from taskplanner import digest
from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.runtime import Runtime
from taskplanner.store.database import transaction
from tests import factories as f
from tests.taskflow import integration_fails
from tests.webapp import candidates_in_phone_screen, make_runtime

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(
        db_url, clock, digest={"send_at": "08:00", "from": "taskplanner@acme.example"}
    )
    yield runtime
    runtime.close()


def digest_for(runtime: Runtime, recipient: str) -> digest.Digest:
    with transaction(runtime.db, read_only=True) as session:
        found = digest.compute_digest(session, runtime.config, recipient, runtime.clock())
    assert found is not None
    return found


@sqlite_only
def test_the_email_shows_a_declines_interview_time_and_who_declined(
    runtime: Runtime, clock: FrozenClock
) -> None:
    starts = clock() + timedelta(days=1, hours=1)  # 10:00 UTC: 11:00 in Berlin
    interview = f.schedule(
        "i1",
        app_id="a1",
        event_id=None,
        starts=starts,
        updated=5,
        interviewers=(sn.InterviewerSnapshot("nameless@acme.example", sn.Response.DECLINED, None),),
    )
    runtime.pipeline.ingest_now(
        [
            f.job("j1"),
            f.user("nameless@acme.example"),
            *candidates_in_phone_screen(1, 1),
            interview,
        ]
    )
    mail = digest_for(runtime, f.CORA)
    text, html = mail.text(), mail.html()
    assert "Interview Tue 03 Mar 2026, 11:00 (Europe/Berlin), declined by Nameless" in text
    assert "Nameless (interviewer) declined Phone Screen with Person 1" in text
    assert "nameless@acme.example" not in text
    assert "declined by Nameless" in html


@sqlite_only
def test_the_email_shows_a_broken_integrations_error_and_what_to_do(runtime: Runtime) -> None:
    secret = "tok-9a8b7c6d5e"
    integration_fails(runtime.pipeline, error=f"401 Unauthorized (Authorization: Bearer {secret})")
    mail = digest_for(runtime, f.ADA)
    text = mail.text()
    assert "Error: 401 Unauthorized (Authorization: Bearer ***)" in text
    assert "What to do: The provider refused our credentials" in text
    assert secret not in text and secret not in mail.html()
