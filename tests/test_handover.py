"""Hand-over that lasts (SPEC §3): [[people]] handover_to / away_until, ``taskplanner reassign``
(--until, --clear) and out-of-office events on synced Google and Microsoft calendars.

While a hand-over holds, every task that would go to the person goes to their stand-in and
their open tasks move there (not those placed by hand); when it ends, the tasks that moved
because of it go back, and their history says why. Time is the injected clock and the sweep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from taskplanner.cli import app
from taskplanner.clock import FrozenClock
from taskplanner.config import ConfigError, load_config, parse_config
from taskplanner.domain import snapshots as sn
from taskplanner.domain.assignment import Absence
from taskplanner.pipeline import Pipeline
from taskplanner.runtime import Runtime, rules_from_config
from taskplanner.store.database import create_db_engine
from taskplanner.sync import SyncRunner
from taskplanner.web.app import create_app
from tests.calendar_env import CalendarProvider, events, run, unique
from tests.factories import (
    ADA,
    CORA,
    PIA,
    SAM,
    application,
    candidate,
    job,
    rules,
)
from tests.taskflow import (
    Entry,
    assign_by_hand,
    end_hand_over,
    hand_over,
    history,
    open_tasks,
)
from tests.webapp import TOKEN, make_runtime

OLGA = "olga@acme.example"


def held(db: Engine) -> dict[str, tuple[str, str | None]]:
    """application (or category) -> (assignee, handed over from) of every open task."""
    return {
        t.application_id or t.category: (t.assignee, t.handed_over_from) for t in open_tasks(db)
    }


def waiting(app_id: str, *, updated: float = 1) -> list[sn.Snapshot]:
    return [
        candidate(f"c-{app_id}", name=f"Pat {app_id}", email=f"{app_id}@example.com"),
        application(app_id, candidate_id=f"c-{app_id}", stage="s-phone", updated=updated),
    ]


# --- [[people]] handover_to / away_until --------------------------------------------------


def test_configured_hand_over_takes_new_and_open_tasks_until_the_day_they_are_back(
    db_url: str, clock: FrozenClock
) -> None:
    # Monday 2 March 2026, 09:00 UTC. Olga coordinates j1 and is away until Wednesday.
    before = make_runtime(db_url, clock, jobs=[{"ats_job_id": "j1", "coordinator": OLGA}])
    before.pipeline.ingest_now([job(published=True), *waiting("a1"), *waiting("a2")])
    a2 = next(t for t in open_tasks(before.db) if t.application_id == "a2")
    assign_by_hand(before.pipeline, a2.id, to=OLGA, by=ADA)
    before.close()

    runtime = make_runtime(
        db_url,
        clock,
        people=[
            {"email": OLGA, "role": "coordinator", "handover_to": SAM, "away_until": "2026-03-04"}
        ],
        jobs=[{"ats_job_id": "j1", "coordinator": OLGA}],
    )
    try:
        runtime.pipeline.sweep_now()  # the daemon's sweep (and its start) apply the configuration
        assert held(runtime.db) == {
            "a1": (SAM, OLGA),
            "a2": (OLGA, None),  # placed by hand: stays
            "new_job": (SAM, OLGA),
        }
        runtime.pipeline.ingest_now(waiting("a3", updated=2))
        assert held(runtime.db)["a3"] == (SAM, OLGA)
        a1 = next(t for t in open_tasks(runtime.db) if t.application_id == "a1")
        # Back on Wednesday: midnight in Europe/Berlin is 23:00 UTC on Tuesday.
        assert history(runtime.db, a1.id)[-1] == Entry(
            "reassigned",
            "taskplanner",
            f"{OLGA} → {SAM} (hand-over from {OLGA} until 2026-03-03 23:00 UTC)",
        )

        clock.now = datetime(2026, 3, 3, 22, 59, tzinfo=UTC)
        runtime.pipeline.sweep_now()
        assert held(runtime.db)["a1"] == (SAM, OLGA)

        clock.now = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
        runtime.pipeline.sweep_now()
        assert held(runtime.db) == {
            "a1": (OLGA, None),
            "a2": (OLGA, None),
            "a3": (OLGA, None),
            "new_job": (OLGA, None),
        }
        assert history(runtime.db, a1.id)[-1] == Entry(
            "reassigned", "taskplanner", f"{SAM} → {OLGA} (hand-over from {OLGA} ended)"
        )
    finally:
        runtime.close()


def test_hand_over_chains_are_followed(db: Engine, clock: FrozenClock) -> None:
    org = rules(
        handovers={
            CORA: Absence(CORA, SAM, "config"),
            SAM: Absence(SAM, PIA, "config"),
        }
    )
    Pipeline(db, org, clock).ingest_now([job(), *waiting("a1")])

    assert held(db)["a1"] == (PIA, CORA)


def test_a_person_who_left_for_good_hands_everything_over(db: Engine, clock: FrozenClock) -> None:
    pipeline = Pipeline(db, rules(handovers={CORA: Absence(CORA, SAM, "config")}), clock)
    pipeline.ingest_now([job(), *waiting("a1")])
    clock.advance(timedelta(days=3650))
    pipeline.sweep_now()

    assert held(db)["a1"] == (SAM, CORA)


def test_away_until_is_the_day_they_are_back_in_the_organisations_time_zone() -> None:
    config = parse_config(
        {
            "organisation": {"name": "Acme", "account_owner": ADA, "timezone": "Europe/Berlin"},
            "people": [
                {
                    "email": CORA,
                    "role": "coordinator",
                    "handover_to": SAM,
                    "away_until": date(2027, 1, 4),
                },
                {"email": PIA, "role": "coordinator", "handover_to": SAM},
                {"email": OLGA, "role": "coordinator", "away_until": "2027-01-04T12:00:00+00:00"},
            ],
        }
    )

    handovers = rules_from_config(config).handovers

    assert handovers[CORA] == Absence(
        CORA, SAM, "config", until=datetime(2027, 1, 3, 23, 0, tzinfo=UTC)
    )
    assert handovers[PIA] == Absence(PIA, SAM, "config", until=None)  # for good
    assert handovers[OLGA].stand_in is None  # next in line
    assert handovers[OLGA].until == datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


def person(email: str, handover_to: str) -> dict[str, str]:
    return {"email": email, "role": "coordinator", "handover_to": handover_to}


@pytest.mark.parametrize(
    ("people", "key", "problem"),
    [
        (
            [person(CORA, SAM), person(SAM, CORA)],
            "people[0].handover_to",
            f"hand-over cycle {CORA} → {SAM} → {CORA}",
        ),
        ([person(CORA, CORA)], "people[0].handover_to", f"hand-over cycle {CORA} → {CORA}"),
        ([person(CORA, "sam at acme")], "people[0].handover_to", "not an email address"),
    ],
)
def test_configuration_refuses_a_hand_over_cycle_or_a_bad_address(
    people: list[dict[str, str]], key: str, problem: str
) -> None:
    data = {"organisation": {"name": "Acme", "account_owner": ADA}, "people": people}

    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="taskplanner.toml")

    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).endswith("(taskplanner.toml)")


# --- taskplanner reassign, through the engine ----------------------------------------------


def test_reassign_until_a_date_moves_tasks_back_when_it_comes(
    db: Engine, clock: FrozenClock
) -> None:
    pipeline = Pipeline(db, rules(), clock)
    pipeline.ingest_now([job(), *waiting("a1")])

    moved = hand_over(pipeline, from_=CORA, to=SAM, by=ADA, until=clock() + timedelta(days=2))
    pipeline.ingest_now(waiting("a2", updated=2))

    assert moved == 2  # a1 and new_job
    assert held(db) == {"a1": (SAM, CORA), "a2": (SAM, CORA), "new_job": (SAM, CORA)}

    clock.advance(timedelta(days=2))
    pipeline.sweep_now()

    assert held(db) == {"a1": (CORA, None), "a2": (CORA, None), "new_job": (CORA, None)}


def test_clearing_a_hand_over_moves_back_only_what_it_moved(db: Engine, clock: FrozenClock) -> None:
    pipeline = Pipeline(db, rules(), clock)
    pipeline.ingest_now([job(), *waiting("a1"), *waiting("a2")])
    hand_over(pipeline, from_=CORA, to=SAM, by=ADA)
    a2 = next(t for t in open_tasks(db) if t.application_id == "a2")
    assign_by_hand(pipeline, a2.id, to=SAM, by=SAM)  # Sam keeps this one deliberately

    assert end_hand_over(pipeline, CORA, by=ADA) == 2

    assert held(db) == {"a1": (CORA, None), "a2": (SAM, None), "new_job": (CORA, None)}
    assert end_hand_over(pipeline, CORA, by=ADA) is None  # nothing recorded any more


# --- taskplanner reassign, the command ------------------------------------------------------


@pytest.fixture
def cli_org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Runtime]]:
    """A configuration file and its SQLite database with Cora's job and two candidates."""
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)
    db = tmp_path / "tp.db"
    path = tmp_path / "taskplanner.toml"
    path.write_text(
        f"""
[organisation]
name = "Acme"
account_owner = "{ADA}"

[database]
url = "sqlite:///{db}"

[rules]
scheduling_stages = ["Phone Screen"]

[[people]]
email = "{CORA}"
role = "coordinator"

[[people]]
email = "{SAM}"
role = "recruiter"
"""
    )
    runtime = Runtime.from_config(load_config(path))
    runtime.pipeline.ingest_now([job(), *waiting("a1"), *waiting("a2")])
    yield path, runtime
    runtime.close()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", CORA, "--to", "not an email"], "--to: not an email address: 'not an email'"),
        (["--from", "cora", "--to", SAM], "--from: not an email address: 'cora'"),
        (["--from", CORA, "--to", CORA], f"--to: {CORA} cannot stand in for themselves"),
        (["--from", CORA], "--to: missing (who stands in), or --clear to end the hand-over"),
        (
            ["--from", CORA, "--to", SAM, "--until", "soon"],
            "--until: expected a date like 2027-01-04, got 'soon'",
        ),
        (
            ["--from", CORA, "--to", SAM, "--until", "2020-01-01"],
            "--until: 2020-01-01 has begun already",
        ),
        (
            ["--from", CORA, "--clear", "--to", SAM],
            "--clear ends a hand-over: give it with --from only",
        ),
        (["--from", CORA, "--to", SAM, "--by", "me"], "--by: not an email address: 'me'"),
    ],
)
def test_reassign_refuses_bad_input_with_one_line_and_exit_2(
    cli_org: tuple[Path, Runtime], args: list[str], message: str
) -> None:
    path, runtime = cli_org

    code, out, err = invoke("reassign", *args, "--config", str(path))

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(message), err
    assert {a for a, (who, _) in held(runtime.db).items() if who != CORA} == set()


def test_reassign_from_someone_taskplanner_does_not_know_is_refused(
    cli_org: tuple[Path, Runtime],
) -> None:
    path, _ = cli_org

    code, _, err = invoke(
        "reassign", "--from", "nobody@acme.example", "--to", SAM, "--config", str(path)
    )

    assert code == 2
    assert err.strip() == (
        "--from: taskplanner knows nobody called nobody@acme.example (not in [[people]], "
        f"the ATS's users or any task) ({path})"
    )


def test_reassign_records_a_hand_over_that_lasts_until_cleared(
    cli_org: tuple[Path, Runtime],
) -> None:
    path, runtime = cli_org
    back = (date.today() + timedelta(days=10)).isoformat()

    code, out, err = invoke(
        "reassign", "--from", CORA, "--to", SAM, "--until", back, "--config", str(path)
    )

    assert code == 0, err
    assert out.strip() == (
        f"moved 3 open task(s) from {CORA} to {SAM} (3 follow the hand-over, 0 had been placed "
        f"by hand); new tasks go to {SAM} until {back}"
    )
    runtime.pipeline.ingest_now(waiting("a3", updated=2))  # the next task goes to Sam too
    assert {who for who, _ in held(runtime.db).values()} == {SAM}
    _, status, _ = invoke("status", "--config", str(path))
    assert "hand-overs in force:" in status
    assert re.search(
        rf"  {CORA} → {SAM}, until {back} \d\d:\d\d UTC \(taskplanner reassign\)", status
    )

    # The reverse would be a cycle.
    code, _, err = invoke("reassign", "--from", SAM, "--to", CORA, "--config", str(path))
    assert code == 2
    assert (
        err.strip() == f"--to: hand-over cycle {SAM} → {CORA} → {SAM}: someone must keep the tasks"
    )

    code, out, _ = invoke("reassign", "--from", CORA, "--clear", "--config", str(path))

    assert code == 0
    assert out.strip() == f"{CORA}'s hand-over ended: 4 open task(s) went back to them"
    assert {who for who, _ in held(runtime.db).values()} == {CORA}
    _, status, _ = invoke("status", "--config", str(path))
    assert "hand-overs in force" not in status


def test_completing_by_an_invalid_address_is_refused(cli_org: tuple[Path, Runtime]) -> None:
    path, runtime = cli_org
    task = open_tasks(runtime.db)[0]

    code, out, err = invoke(
        "tasks", "complete", str(task.id), "--by", "cora at acme", "--config", str(path)
    )

    assert (code, out) == (2, "")
    assert err.strip() == "--by: not an email address: 'cora at acme'"
    assert open_tasks(runtime.db)[0].status == "open"


# --- out-of-office events on synced calendars -------------------------------------------------


@pytest.fixture
def ooo_clock() -> FrozenClock:
    # The fakes stamp events with real time; "now" is judged against this clock.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.mark.parametrize("stand_in", [PIA, None], ids=["handover_to", "next-in-line"])
def test_out_of_office_hands_tasks_over_for_its_span_and_back_after(
    db_url: str, provider: CalendarProvider, ooo_clock: FrozenClock, stand_in: str | None
) -> None:
    person = unique("olga@acme.example")  # the coordinator, whose calendar is synced
    named = {person: Absence(person, stand_in, "config", until=ooo_clock() - timedelta(days=30))}
    org = rules(follow_out_of_office=True, handovers=named if stand_in else {})
    db = create_db_engine(db_url)
    pipeline = Pipeline(db, org, ooo_clock)
    connector = provider.connector([person])
    runner = SyncRunner(
        db=db,
        pipeline=pipeline,
        connectors=lambda _name: connector,
        kinds={provider.connector_name: provider.kind},
        intervals={},
        owner="ooo-test",
        clock=ooo_clock,
    )
    runner.ensure_sources()

    def sync() -> None:
        assert runner.claim(provider.connector_name, force=True)
        report = runner.sync(provider.connector_name)
        assert report.ok, report.error

    try:
        provider.open_calendar(person)
        pipeline.ingest_now([job(coordinator=person), *waiting("a1")])
        sync()
        assert held(db)["a1"] == (person, None)

        start = ooo_clock() - timedelta(hours=1)
        ooo = provider.out_of_office(person, start=start, end=start + timedelta(days=2))
        sync()

        covering = stand_in or SAM  # without a handover_to: the job's recruiter is next
        assert held(db) == {"a1": (covering, person), "new_job": (covering, person)}
        pipeline.ingest_now(waiting("a2", updated=2))
        assert held(db)["a2"] == (covering, person)
        a1 = next(t for t in open_tasks(db) if t.application_id == "a1")
        assert f"({person} is out of office until" in history(db, a1.id)[-1].detail

        ooo_clock.advance(timedelta(days=2))
        pipeline.sweep_now()

        assert held(db) == {"a1": (person, None), "a2": (person, None), "new_job": (person, None)}
        assert history(db, a1.id)[-1] == Entry(
            "reassigned", "taskplanner", f"{covering} → {person} (hand-over from {person} ended)"
        )
        assert ooo.calendar == person
    finally:
        connector.close()
        db.dispose()


def test_out_of_office_events_map_to_the_snapshot_flag(provider: CalendarProvider) -> None:
    person = unique("olga@acme.example")
    now = datetime.now(UTC)
    ooo = provider.out_of_office(person, start=now, end=now + timedelta(days=1))
    ordinary = provider.book(person, start=now, end=now + timedelta(hours=1), invitees=[])
    connector = provider.connector([person])
    try:
        found = events(run(connector, {}))
    finally:
        connector.close()

    assert found[ooo.event_id].out_of_office is True
    assert found[ordinary.event_id].out_of_office is False


def test_cancelling_the_out_of_office_event_brings_tasks_back_at_once(
    db_url: str, provider: CalendarProvider, ooo_clock: FrozenClock
) -> None:
    person = unique("olga@acme.example")
    db = create_db_engine(db_url)
    pipeline = Pipeline(db, rules(follow_out_of_office=True), ooo_clock)
    connector = provider.connector([person])
    runner = SyncRunner(
        db=db,
        pipeline=pipeline,
        connectors=lambda _name: connector,
        kinds={provider.connector_name: provider.kind},
        intervals={},
        owner="ooo-test",
        clock=ooo_clock,
    )
    runner.ensure_sources()

    def sync() -> None:
        assert runner.claim(provider.connector_name, force=True)
        assert runner.sync(provider.connector_name).ok

    try:
        pipeline.ingest_now([job(coordinator=person), *waiting("a1")])
        start = ooo_clock() - timedelta(hours=1)
        ooo = provider.out_of_office(person, start=start, end=start + timedelta(days=5))
        sync()
        assert held(db)["a1"] == (SAM, person)

        provider.delete(ooo)
        sync()

        assert held(db)["a1"] == (person, None)
    finally:
        connector.close()
        db.dispose()


def test_out_of_office_is_ignored_unless_the_rule_is_on(
    db_url: str, provider: CalendarProvider, ooo_clock: FrozenClock
) -> None:
    person = unique("olga@acme.example")
    db = create_db_engine(db_url)
    pipeline = Pipeline(db, rules(), ooo_clock)
    connector = provider.connector([person])
    runner = SyncRunner(
        db=db,
        pipeline=pipeline,
        connectors=lambda _name: connector,
        kinds={provider.connector_name: provider.kind},
        intervals={},
        owner="ooo-test",
        clock=ooo_clock,
    )
    runner.ensure_sources()
    try:
        pipeline.ingest_now([job(coordinator=person), *waiting("a1")])
        start = ooo_clock() - timedelta(hours=1)
        provider.out_of_office(person, start=start, end=start + timedelta(days=5))
        assert runner.claim(provider.connector_name, force=True)
        assert runner.sync(provider.connector_name).ok
        pipeline.sweep_now()

        assert held(db)["a1"] == (person, None)
    finally:
        connector.close()
        db.dispose()


def test_the_task_list_page_lists_the_hand_overs_in_force(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(
        db_url,
        clock,
        tokens=[TOKEN],
        people=[
            {"email": OLGA, "role": "coordinator", "handover_to": SAM, "away_until": "2026-03-04"}
        ],
    )
    try:
        with TestClient(create_app(runtime)) as browser:
            signed_in = browser.post(
                "/signin",
                data={"email": CORA, "token": TOKEN, "next": "/"},
                follow_redirects=False,
            )
            assert signed_in.status_code == 303
            page = browser.get("/").text
            clock.now = datetime(2026, 3, 4, tzinfo=UTC)
            later = browser.get("/").text
    finally:
        runtime.close()

    assert "Hand-overs in force" in page
    assert f"{OLGA} → <strong>{SAM}</strong>, until Wed 04 Mar 2026, 00:00" in page
    assert "Hand-overs in force" not in later
