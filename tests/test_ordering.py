"""Out-of-order, replayed and duplicated deliveries change nothing they should not.

The provider's ``updated_at`` decides: an older snapshot never overwrites a newer one, a
duplicate emits no event, and a stale stage move opens no task for the stage it names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from connectors.base import PollPage
from taskplanner.clock import FrozenClock
from taskplanner.domain import snapshots as sn
from taskplanner.pipeline import Pipeline
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.sync import SyncRunner
from tests.factories import (
    CARL,
    CORA,
    IVAN,
    SAM,
    application,
    applied_world,
    at,
    candidate,
    interview_event,
    job,
    rules,
    schedule,
    scheduled_world,
    scorecard,
)
from tests.taskflow import history, open_tasks, tasks

DECLINED, ACCEPTED = sn.Response.DECLINED, sn.Response.ACCEPTED


@pytest.fixture
def pipeline(db: Engine, clock: FrozenClock) -> Pipeline:
    return Pipeline(db, rules(), clock)


def mirror(db: Engine, model: type[m.Base], *key: str) -> m.Base:
    with Session(db) as session:
        row = session.get(model, key if len(key) > 1 else key[0])
        assert row is not None
        return row


def stage_of(db: Engine, app_id: str = "a1") -> str | None:
    row = mirror(db, m.Application, app_id)
    assert isinstance(row, m.Application)
    return row.stage_id


# --- stage moves -----------------------------------------------------------------------


def test_stage_move_delivered_after_a_later_move_leaves_the_later_stage(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-review", updated=1)])
    pipeline.ingest_now([application(stage="s-onsite", updated=20)])

    pipeline.ingest_now([application(stage="s-phone", updated=10)])  # delayed webhook

    assert stage_of(pipeline.db) == "s-onsite"
    found = tasks(pipeline.db, "ready_to_schedule")
    assert [(t.stage_id, t.status) for t in found] == [("s-onsite", "open")]


def test_stale_stage_move_in_the_same_delivery_opens_no_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-review", updated=1)])

    pipeline.ingest_now(
        [application(stage="s-offer", updated=20), application(stage="s-phone", updated=10)]
    )

    assert stage_of(pipeline.db) == "s-offer"
    assert tasks(pipeline.db, "ready_to_schedule") == []


def test_stale_move_after_rejection_neither_reopens_nor_opens(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-review", updated=1)])
    pipeline.ingest_now(
        [application(stage="s-review", status=sn.ApplicationStatus.REJECTED, updated=20)]
    )

    pipeline.ingest_now([application(stage="s-phone", updated=10)])

    row = mirror(pipeline.db, m.Application, "a1")
    assert isinstance(row, m.Application)
    assert (row.stage_id, row.status) == ("s-review", "rejected")
    assert tasks(pipeline.db, "ready_to_schedule") == []


def test_stale_move_does_not_close_the_task_of_the_current_stage(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(stage="s-phone", updated=10)])

    pipeline.ingest_now([application(stage="s-review", updated=5)])

    assert [t.stage_id for t in open_tasks(pipeline.db, "ready_to_schedule")] == ["s-phone"]


# --- older snapshots never overwrite newer ones ----------------------------------------


def test_older_job_snapshot_never_overwrites_a_newer_one(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(name="Staff Engineer", coordinator=SAM, updated=20)])
    first = open_tasks(pipeline.db, "new_job")[0]

    pipeline.ingest_now([job(name="Software Engineer", coordinator=CORA, updated=10)])

    row = mirror(pipeline.db, m.Job, "j1")
    assert isinstance(row, m.Job)
    assert (row.name, row.coordinator_email, row.updated_at) == (
        "Staff Engineer",
        SAM,
        job(updated=20).updated_at,
    )
    assert open_tasks(pipeline.db, "new_job")[0].assignee == first.assignee == SAM


def test_older_open_job_snapshot_does_not_reopen_a_closed_job(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(updated=1)])
    pipeline.ingest_now([job(status=sn.JobStatus.CLOSED, updated=20)])

    pipeline.ingest_now([job(status=sn.JobStatus.OPEN, updated=10)])

    row = mirror(pipeline.db, m.Job, "j1")
    assert isinstance(row, m.Job)
    assert row.status == "closed"
    assert open_tasks(pipeline.db) == []


def test_older_snapshot_after_a_newer_identical_one_is_ignored(pipeline: Pipeline) -> None:
    # The coordinator changes to Sam at 10 and back to Cora at 20. The poll at 20 says
    # the same as the first snapshot; the delayed webhook from 10 must not win over it.
    pipeline.ingest_now([job(coordinator=CORA, updated=1)])
    pipeline.ingest_now([job(coordinator=CORA, updated=20)])

    pipeline.ingest_now([job(coordinator=SAM, updated=10)])

    row = mirror(pipeline.db, m.Job, "j1")
    assert isinstance(row, m.Job)
    assert row.coordinator_email == CORA
    assert open_tasks(pipeline.db, "new_job")[0].assignee == CORA


def test_older_application_snapshot_never_overwrites_a_newer_one(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate()])
    pipeline.ingest_now(
        [application(status=sn.ApplicationStatus.HIRED, stage="s-offer", updated=20)]
    )

    pipeline.ingest_now([application(stage="s-phone", updated=10)])

    row = mirror(pipeline.db, m.Application, "a1")
    assert isinstance(row, m.Application)
    assert (row.status, row.stage_id) == ("hired", "s-offer")
    assert tasks(pipeline.db, "ready_to_schedule") == []


def test_older_candidate_snapshot_keeps_the_newer_coordinator(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(coordinator=CARL, updated=20), application()])

    pipeline.ingest_now([candidate(coordinator=None, updated=10)])

    assert open_tasks(pipeline.db, "ready_to_schedule")[0].assignee == CARL


def test_older_calendar_event_snapshot_never_overwrites_a_newer_one(pipeline: Pipeline) -> None:
    pipeline.ingest_now(scheduled_world())
    pipeline.ingest_now([interview_event(updated=20, interviewer_response=DECLINED)])

    pipeline.ingest_now([interview_event(updated=10, interviewer_response=ACCEPTED)])

    row = mirror(pipeline.db, m.CalendarAttendee, "google", IVAN, "ev1", IVAN)
    assert isinstance(row, m.CalendarAttendee)
    assert row.response == "declined"
    assert [t.status for t in tasks(pipeline.db, "interviewer_declined")] == ["open"]


def test_older_schedule_snapshot_does_not_undo_a_cancellation(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule(updated=2)])
    pipeline.ingest_now([schedule(status=sn.ScheduleStatus.CANCELLED, updated=20)])

    pipeline.ingest_now([schedule(status=sn.ScheduleStatus.SCHEDULED, updated=10)])

    assert [t.status for t in tasks(pipeline.db, "schedule_cancelled")] == ["open"]


def test_older_draft_scorecard_does_not_unsubmit(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(), schedule()])
    pipeline.ingest_now([scorecard(submitted=True, updated=20)])

    pipeline.ingest_now([scorecard(submitted=False, updated=10)])

    row = mirror(pipeline.db, m.Scorecard, "sc1")
    assert isinstance(row, m.Scorecard)
    assert row.submitted


def test_snapshot_for_a_deleted_application_is_ignored(pipeline: Pipeline) -> None:
    pipeline.ingest_now([job(), candidate(), application(updated=1)])
    pipeline.ingest_now(
        [sn.Deletion(sn.EntityKind.APPLICATION, "a1", application(updated=10).updated_at)]
    )

    pipeline.ingest_now([application(stage="s-onsite", updated=20)])

    assert open_tasks(pipeline.db, "ready_to_schedule") == []


# --- duplicates emit nothing ---------------------------------------------------------------

WORLD = [*scheduled_world(), scorecard(submitted=False, updated=4)]


@pytest.mark.parametrize("snapshot", WORLD, ids=lambda s: type(s).__name__)
def test_duplicate_snapshot_emits_no_event(pipeline: Pipeline, snapshot: sn.Snapshot) -> None:
    pipeline.ingest_now(WORLD)

    with transaction(pipeline.db) as session:
        again = pipeline.normalizer.apply(session, [snapshot])
        later = pipeline.normalizer.apply(
            session,
            [replace(snapshot, updated_at=snapshot.updated_at.replace(year=2027))],  # type: ignore[union-attr]
        )

    assert again == []
    assert later == []  # a later poll that reads the same state


def test_redelivering_a_whole_batch_changes_no_task(pipeline: Pipeline) -> None:
    pipeline.ingest_now(WORLD)
    pipeline.ingest_now([interview_event(updated=10, room_response=DECLINED)])
    before = [(t.id, t.status, t.assignee, t.updated_at) for t in tasks(pipeline.db)]
    entries = {t.id: history(pipeline.db, t.id) for t in tasks(pipeline.db)}

    result = pipeline.ingest_now([*WORLD, interview_event(updated=10, room_response=DECLINED)])

    assert (result.opened, result.closed, result.reassigned) == ([], [], 0)
    assert [(t.id, t.status, t.assignee, t.updated_at) for t in tasks(pipeline.db)] == before
    assert {t.id: history(pipeline.db, t.id) for t in tasks(pipeline.db)} == entries


def test_duplicate_calendar_events_from_two_calendars_open_one_decline(
    pipeline: Pipeline,
) -> None:
    # The interviewer's and the room's calendars both report the same declined event.
    pipeline.ingest_now(scheduled_world())
    on_ivan = interview_event(updated=10, room_response=DECLINED)

    pipeline.ingest_now(
        [on_ivan, replace(on_ivan, calendar_id="room-berlin-1@resource.calendar.google.com")]
    )

    assert len(tasks(pipeline.db, "room_declined")) == 1


def test_schedule_arriving_before_its_application_leaves_nothing_to_schedule(
    pipeline: Pipeline,
) -> None:
    # Interviews and applications come from different poll partitions.
    pipeline.ingest_now([job(), candidate()])
    pipeline.ingest_now([schedule(updated=5)])

    pipeline.ingest_now([application(stage="s-phone", updated=3)])

    # Already scheduled in the stage it enters: never waiting, so never opened.
    assert tasks(pipeline.db, "ready_to_schedule") == []


def test_declines_recorded_before_the_application_arrived_open_on_its_arrival(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([job(), candidate()])
    declined = (sn.InterviewerSnapshot(IVAN, DECLINED, "Ivan"),)
    pipeline.ingest_now(
        [
            schedule(updated=5, interviewers=declined),
            interview_event(updated=6, room_response=DECLINED),
        ]
    )
    assert open_tasks(pipeline.db, "interviewer_declined") == []

    pipeline.ingest_now([application(stage="s-phone", updated=3)])

    assert [t.attendee for t in open_tasks(pipeline.db, "interviewer_declined")] == [IVAN]
    assert len(open_tasks(pipeline.db, "room_declined")) == 1


def test_application_arriving_before_its_job_is_ready_to_schedule_when_the_job_arrives(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([candidate(), application(stage="s-phone")])
    assert tasks(pipeline.db, "ready_to_schedule") == []  # Phone Screen is not known yet

    pipeline.ingest_now([job()])

    (task,) = open_tasks(pipeline.db, "ready_to_schedule")
    assert (task.stage_id, task.assignee) == ("s-phone", CORA)
    assert task.title == "Schedule Giuseppe Hurley for Phone Screen (Software Engineer)"


def test_application_in_a_stage_without_scheduling_waits_for_nothing_when_its_job_arrives(
    pipeline: Pipeline,
) -> None:
    pipeline.ingest_now([candidate(), application(stage="s-review")])

    pipeline.ingest_now([job()])

    assert tasks(pipeline.db, "ready_to_schedule") == []


def test_mirror_keeps_one_row_per_entity(pipeline: Pipeline) -> None:
    for _ in range(3):
        pipeline.ingest_now(WORLD)
    with Session(pipeline.db) as session:
        counts = {
            model.__tablename__: len(list(session.scalars(select(model))))
            for model in (m.Job, m.Candidate, m.Application, m.Schedule, m.CalendarEvent)
        }
    assert counts == {
        "jobs": 1,
        "candidates": 1,
        "applications": 1,
        "schedules": 1,
        "calendar_events": 1,
    }


class _NothingNew:
    """A connector whose poll finds no change."""

    name = "google"

    def poll(self, cursors: dict[str, str], **_: object) -> Iterator[PollPage]:
        return iter(())


def test_a_schedule_and_its_event_stored_at_the_same_moment_are_linked_by_the_next_sync(
    db_url: str, db: Engine, pipeline: Pipeline, clock: FrozenClock
) -> None:
    """Found by the fault soak (tests/reliability): an ATS poll stores the interview while a
    calendar poll stores its event, neither sees the other's uncommitted row, and the event
    stayed unlinked, so the interviewer's decline on it opened nothing."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite queues writers: two transactions cannot cross")
    pipeline.ingest_now(applied_world())
    with transaction(db) as ats_poll:
        pipeline.ingest(ats_poll, [schedule()])
        ats_poll.flush()
        pipeline.ingest_now([interview_event(updated=10, interviewer_response=DECLINED)])
    with transaction(db, read_only=True) as session:
        event = session.scalars(select(m.CalendarEvent)).one()
        assert event.schedule_id is None  # crossed
    assert open_tasks(db, "interviewer_declined") == []

    runner = SyncRunner(db=db, pipeline=pipeline, connectors=lambda _name: _NothingNew(),
                        kinds={"google": "google_calendar"}, intervals={}, owner="t", clock=clock)
    runner.ensure_sources()
    assert runner.claim("google", force=True)
    assert runner.sync("google").ok

    with transaction(db, read_only=True) as session:
        assert session.scalars(select(m.CalendarEvent)).one().schedule_id == "i1"
    [declined] = open_tasks(db, "interviewer_declined")
    assert declined.attendee == IVAN
    runner.claim("google", force=True)
    runner.sync("google")
    assert len(tasks(db, "interviewer_declined")) == 1


def test_a_poll_page_colliding_with_a_webhook_that_stored_the_same_new_record_is_stored_again(
    db_url: str, db: Engine, pipeline: Pipeline, clock: FrozenClock
) -> None:
    """Found by the fault soak (tests/reliability): the inbox stored a webhook's new
    application while a poll page carried the same one; the page's insert hit the primary key
    and the poll was logged as crashed (a bug) instead of storing the page again."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite queues writers: the webhook's insert commits before the page's")
    pipeline.ingest_now([job(), candidate()])
    stored = threading.Event()

    def webhook() -> None:
        with transaction(db) as session:
            pipeline.ingest(session, [application(updated=1, stage="s-review")])
            session.flush()
            stored.set()
            time.sleep(1.0)  # the page's insert waits for this row, then collides

    class OnePage:
        name = "greenhouse"

        def poll(self, cursors: dict[str, str], **_: object) -> Iterator[PollPage]:
            assert stored.wait(10)
            yield PollPage("applications", [application(updated=5, stage="s-phone")])

    inbox = threading.Thread(target=webhook)
    inbox.start()
    runner = SyncRunner(db=db, pipeline=pipeline, connectors=lambda _name: OnePage(),
                        kinds={"greenhouse": "greenhouse"}, intervals={}, owner="t", clock=clock)
    runner.ensure_sources()
    assert runner.claim("greenhouse", force=True)
    with capture_logs() as logs:
        report = runner.sync("greenhouse")
    inbox.join()

    assert report.ok, report.error
    events = {entry["event"] for entry in logs}
    assert "page_conflict_retried" in events and "sync_crashed" not in events
    stored_app = mirror(db, m.Application, "a1")
    assert (stored_app.stage_id, stored_app.updated_at) == ("s-phone", at(5))  # type: ignore[attr-defined]
    assert [t.key for t in open_tasks(db, "ready_to_schedule")] == ["ready_to_schedule:a1:s-phone"]
