"""Alerts that cannot wait, against a loopback fake Slack Web API (taskplanner.sandbox.fake_slack,
modelled on Slack's documented answers) and a real SMTP server (aiosmtpd), on SQLite and
PostgreSQL: a DM per configured category, the decline window, the channel fallback, one
message per opening whatever retries or replicas do, and a failing Slack that never holds up
the tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlmodel import col
from structlog.testing import capture_logs

from taskplanner import alerts
from taskplanner.alerts import AlertDispatcher, SlackSender
from taskplanner.clock import FrozenClock
from taskplanner.config import ConfigError, parse_config
from taskplanner.daemon import DaemonOptions
from taskplanner.domain import events as ev
from taskplanner.domain import snapshots as sn
from taskplanner.runtime import Runtime
from taskplanner.sandbox.fake_slack import DEFAULT_TOKEN, FakeSlack, rate_limited, server_error
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests import factories as f
from tests.daemon_harness import running_daemon
from tests.test_digest import Mailbox, text_of
from tests.webapp import free_port, make_runtime

DECLINED = sn.Response.DECLINED
CHANNEL = "C0ALERTS01"
PAGE = "https://tasks.acme.example/"
DECLINES = ("interviewer_declined", "room_declined", "candidate_declined")
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# --- the world ---------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user(f.CORA)
        fake.add_user(f.ADA)
        yield fake


def slack_section(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {"bot_token_env": "TEST_SLACK_BOT_TOKEN", "base_url": slack.base_url, **extra}


def open_runtime(
    db_url: str, clock: FrozenClock, notifications: dict[str, Any], **kwargs: Any
) -> Runtime:
    runtime = make_runtime(
        db_url, clock, notifications=notifications, public_url=PAGE, **kwargs
    )
    if runtime.config.notifications.slack is not None:
        runtime.config.notifications.slack.set_secret("bot_token", DEFAULT_TOKEN)
    return runtime


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock, slack: FakeSlack) -> Iterator[Runtime]:
    runtime = open_runtime(db_url, clock, {"slack": slack_section(slack, channel=CHANNEL)})
    yield runtime
    runtime.close()


def dispatcher(runtime: Runtime, owner: str = "replica-a", **kwargs: Any) -> AlertDispatcher:
    return runtime.alert_dispatcher(owner, **kwargs)  # type: ignore[no-any-return]


def interview_in(clock: FrozenClock, hours: float) -> list[sn.Snapshot]:
    """Job j1 (coordinated by Cora) with an interview of candidate c1 ``hours`` from now."""
    return f.scheduled_world(starts=clock() + timedelta(hours=hours))


def everyone_declines(clock: FrozenClock, hours: float, updated: float = 10) -> sn.Snapshot:
    return f.interview_event(
        updated=updated,
        starts=clock() + timedelta(hours=hours),
        interviewer_response=DECLINED,
        room_response=DECLINED,
        candidate_response=DECLINED,
    )


def break_integration(runtime: Runtime, clock: FrozenClock, name: str = "greenhouse") -> None:
    with transaction(runtime.db) as session:
        failed = ev.IntegrationFailed(at=clock(), integration=name, error="HTTP 401")
        runtime.pipeline.handle(session, [failed])


def outbox(runtime: Runtime) -> list[m.AlertOutbox]:
    with transaction(runtime.db, read_only=True) as session:
        rows = session.scalars(select(m.AlertOutbox).order_by(col(m.AlertOutbox.id)))
        return list(rows)


def open_tasks(runtime: Runtime, category: str) -> list[m.Task]:
    with transaction(runtime.db, read_only=True) as session:
        query = select(m.Task).where(
            col(m.Task.category) == category, col(m.Task.status) == "open"
        )
        return list(session.scalars(query))


# --- what is sent to whom ------------------------------------------------------------------


def test_each_configured_category_sends_its_assignee_one_direct_message(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime.pipeline.ingest_now(interview_in(clock, hours=20))
    runtime.pipeline.ingest_now([everyone_declines(clock, hours=20)])
    break_integration(runtime, clock)

    run = dispatcher(runtime).run_once()

    assert len(run.sent) == 4 and run.retrying == run.failed == []
    cora = slack.dms_to(f.CORA)
    assert len(cora) == 3  # the three declines go to the coordinator for the candidate
    texts = "\n".join(p.text for p in cora)
    assert texts.count("declined Phone Screen") == 3
    assert "Interviewer declined" in texts and "Room declined" in texts
    assert "Candidate declined" in texts
    [ada] = slack.dms_to(f.ADA)  # the account owner gets broken_integration
    assert ada.text.startswith("*The greenhouse integration cannot sync*")
    assert "Fix the integration's credentials" in ada.text
    assert f"<{PAGE}?assignee=ada%40acme.example|Your task list>" in ada.text
    # new_job and ready_to_schedule are not configured: no message, not even a lookup.
    assert slack.requests.count("chat.postMessage") == 4
    assert [row.status for row in outbox(runtime)] == ["sent"] * 4
    assert dispatcher(runtime).run_once().sent == []
    assert len(slack.posted) == 4


def test_no_message_for_a_decline_further_out_than_decline_within(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime.pipeline.ingest_now(interview_in(clock, hours=49))
    runtime.pipeline.ingest_now([everyone_declines(clock, hours=49)])
    assert {t.category for t in open_tasks(runtime, "interviewer_declined")} == {
        "interviewer_declined"
    }  # the task is on the list; tomorrow's digest tells about it

    assert dispatcher(runtime).run_once().sent == []
    assert outbox(runtime) == [] and slack.requests == []


@sqlite_only
def test_decline_within_and_categories_are_the_configured_ones(
    db_url: str, clock: FrozenClock, slack: FakeSlack
) -> None:
    section = slack_section(slack, decline_within="3d", categories=["room_declined"])
    runtime = open_runtime(db_url, clock, {"slack": section})
    try:
        runtime.pipeline.ingest_now(interview_in(clock, hours=60))
        runtime.pipeline.ingest_now([everyone_declines(clock, hours=60)])
        break_integration(runtime, clock)
        assert len(dispatcher(runtime).run_once().sent) == 1
        [message] = slack.posted
        assert "Room declined" in message.text and message.user == slack.users[f.CORA]
    finally:
        runtime.close()


def test_someone_without_a_slack_account_is_alerted_in_the_channel(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    del slack.users[f.ADA]  # users.lookupByEmail answers users_not_found
    break_integration(runtime, clock)

    assert len(dispatcher(runtime).run_once().sent) == 1

    [message] = slack.posted
    assert message.channel == CHANNEL and message.user is None
    assert "The greenhouse integration cannot sync" in message.text
    [row] = outbox(runtime)
    assert (row.status, row.sent_to) == ("sent", CHANNEL)


@sqlite_only
def test_without_a_channel_someone_without_slack_is_logged_and_nothing_is_posted(
    db_url: str, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime = open_runtime(db_url, clock, {"slack": slack_section(slack)})
    try:
        del slack.users[f.ADA]
        break_integration(runtime, clock)
        with capture_logs() as logs:
            run = dispatcher(runtime).run_once()
    finally:
        runtime.close()
    assert len(run.failed) == 1 and slack.posted == []
    [line] = [entry for entry in logs if entry["event"] == "alert.not_sent"]
    assert line["assignee"] == f.ADA
    assert "no Slack user for ada@acme.example and no channel" in line["error"]


def test_the_go_live_backlog_alerts_nobody(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    world = [*interview_in(clock, hours=20)[:-1], everyone_declines(clock, hours=20)]
    runtime.pipeline.ingest_now(world, baseline=True)  # a source's first sync

    assert len(open_tasks(runtime, "interviewer_declined")) == 1
    assert outbox(runtime) == []


def test_a_task_done_before_its_alert_went_out_alerts_nobody(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime.pipeline.ingest_now(interview_in(clock, hours=20))
    starts = clock() + timedelta(hours=20)
    runtime.pipeline.ingest_now(
        [f.interview_event(updated=10, starts=starts, interviewer_response=DECLINED)]
    )
    runtime.pipeline.ingest_now([f.interview_event(updated=20, starts=starts)])  # accepts again

    assert dispatcher(runtime).run_once().sent == []
    assert slack.requests == [] and [r.status for r in outbox(runtime)] == ["skipped"]


def test_the_daemon_sends_alerts_while_it_processes_tasks(
    tmp_path: Path, slack: FakeSlack
) -> None:
    config = parse_config(
        {
            **BASE,
            "database": {"url": f"sqlite:///{tmp_path / 'tp.db'}"},
            "daemon": {"lease": "10s", "shutdown_timeout": "5s"},
            "notifications": {"slack": slack_section(slack)},
        },
        environ=ENV | {"TEST_SLACK_BOT_TOKEN": DEFAULT_TOKEN},
    )
    options = DaemonOptions(alerts_every=0.2)
    with running_daemon(config, options) as daemon:
        slack.answering.clear()  # Slack hangs…
        break_integration(daemon.runtime, daemon.runtime.clock, name="greenhouse")
        assert slack.waiting.acquire(timeout=30)  # …while the daemon's sender waits on it,
        break_integration(daemon.runtime, daemon.runtime.clock, name="lever")  # tasks go on
        assert len(open_tasks(daemon.runtime, "broken_integration")) == 2
        slack.answering.set()
        for _ in range(300):
            if len(slack.posted) == 2:
                break
            threading.Event().wait(0.1)
    assert sorted(p.text.split("*")[1] for p in slack.posted) == [
        "The greenhouse integration cannot sync",
        "The lever integration cannot sync",
    ]
    assert {p.user for p in slack.posted} == {slack.users[f.ADA]}


# --- one message per opening ---------------------------------------------------------------


def test_a_replayed_opening_queues_no_second_message(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime.pipeline.ingest_now(interview_in(clock, hours=20))
    decline = f.interview_event(
        updated=10, starts=clock() + timedelta(hours=20), interviewer_response=DECLINED
    )
    runtime.pipeline.ingest_now([decline])
    runtime.pipeline.ingest_now([decline])  # a webhook delivered twice, a poll overlapping
    break_integration(runtime, clock)
    break_integration(runtime, clock)  # the same failure seen again

    assert len(outbox(runtime)) == 2
    assert len(dispatcher(runtime).run_once().sent) == 2
    assert dispatcher(runtime).run_once().sent == []
    assert len(slack.posted) == 2


def test_two_replicas_sending_at_once_send_each_message_once(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    for n in range(12):
        break_integration(runtime, clock, name=f"source-{n}")
    replicas = [dispatcher(runtime, owner) for owner in ("replica-a", "replica-b")]
    start = threading.Barrier(2)
    runs: dict[str, alerts.AlertRun] = {}

    def send(replica: AlertDispatcher) -> None:
        start.wait()
        runs[replica.owner] = replica.run_once()

    threads = [threading.Thread(target=send, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    sent = runs["replica-a"].sent + runs["replica-b"].sent
    assert sorted(sent) == sorted(row.id for row in outbox(runtime))
    assert len(slack.posted) == 12
    assert len({p.text for p in slack.posted}) == 12


def test_a_post_that_may_have_gone_through_is_never_sent_again(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    break_integration(runtime, clock)
    assert runtime.config.notifications.slack is not None
    impatient = SlackSender(runtime.config.notifications.slack, timeout=1)
    slack.hold("chat.postMessage")  # Slack takes the post and answers after our timeout

    with capture_logs() as logs:
        run = dispatcher(runtime, senders={"slack": impatient}).run_once()
    slack.let_go()

    assert len(run.unknown) == 1
    [row] = outbox(runtime)
    assert row.status == "unknown" and row.last_error == "chat.postMessage: TimeoutError"
    assert any(entry["event"] == "alert.outcome_unknown" for entry in logs)
    clock.advance(timedelta(hours=2))
    assert dispatcher(runtime).run_once().sent == []
    assert slack.requests.count("chat.postMessage") == 1


def test_a_replica_that_died_while_posting_leaves_the_message_alone(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    break_integration(runtime, clock)
    stuck = threading.Event()

    class DiesWhilePosting:
        """A replica's sender that stops for good once it has begun the post."""

        def send(self, alert: alerts.Alert, posting: Any) -> alerts.Delivered:
            posting()
            stuck.wait(30)
            raise alerts.SendFailed("stopped")

    gone = dispatcher(runtime, "replica-gone", senders={"slack": DiesWhilePosting()})
    thread = threading.Thread(target=gone.run_once)
    thread.start()
    try:
        for _ in range(500):
            if [r.status for r in outbox(runtime)] == ["posting"]:
                break
            threading.Event().wait(0.01)
        assert [r.status for r in outbox(runtime)] == ["posting"]
        clock.advance(timedelta(minutes=5))  # its lease runs out

        run = dispatcher(runtime, "replica-b").run_once()
    finally:
        stuck.set()
        thread.join(30)

    assert run.sent == [] and len(run.unknown) == 1
    assert slack.posted == []  # the other replica did not post it again
    assert [r.status for r in outbox(runtime)] == ["unknown"]


# --- a failing Slack ----------------------------------------------------------------------


def test_slack_down_holds_no_task_and_loses_no_message(
    runtime: Runtime, clock: FrozenClock, slack: FakeSlack
) -> None:
    break_integration(runtime, clock)
    slack.answering.clear()  # Slack does not answer
    sending = threading.Thread(target=dispatcher(runtime).run_once)
    sending.start()
    try:
        assert slack.waiting.acquire(timeout=30)  # the sender is waiting on Slack

        # Meanwhile the tasks go on: a decline opens, and queues its own messages.
        runtime.pipeline.ingest_now(interview_in(clock, hours=20))
        runtime.pipeline.ingest_now([everyone_declines(clock, hours=20)])
        assert len(open_tasks(runtime, "interviewer_declined")) == 1

        slack.fail_next("*", server_error(503))  # …and then answers 503
    finally:
        slack.answering.set()
        sending.join(30)
    # The 503 waits for its retry; the declines queued meanwhile went out in the same run.
    assert len(slack.dms_to(f.CORA)) == 3 and slack.dms_to(f.ADA) == []
    first = outbox(runtime)[0]
    assert (first.status, first.next_attempt_at) == ("pending", clock() + timedelta(seconds=30))
    assert first.last_error == "users.lookupByEmail: HTTP 503"

    clock.advance(timedelta(seconds=31))
    slack.fail_next("users.lookupByEmail", rate_limited(retry_after=120))
    run = dispatcher(runtime).run_once()
    assert run.retrying == [first.id] and run.sent == []
    assert outbox(runtime)[0].next_attempt_at == clock() + timedelta(seconds=120)

    clock.advance(timedelta(seconds=60))
    assert dispatcher(runtime).run_once().sent == []  # Retry-After is honoured
    clock.advance(timedelta(seconds=61))
    assert dispatcher(runtime).run_once().sent == [first.id]
    assert len(slack.dms_to(f.ADA)) == 1 and len(slack.dms_to(f.CORA)) == 3


@sqlite_only
def test_the_bot_token_never_reaches_logs_or_errors(
    db_url: str, clock: FrozenClock, slack: FakeSlack
) -> None:
    runtime = open_runtime(db_url, clock, {"slack": slack_section(slack)})
    try:
        break_integration(runtime, clock)
        slack.token = "xoxb-another-workspace"  # noqa: S105 - ours is now refused
        with capture_logs() as logs:
            run = dispatcher(runtime).run_once()
        slack.token = DEFAULT_TOKEN
        slack.fail_next("*", server_error(502))
        break_integration(runtime, clock, name="lever")
        with capture_logs() as more:
            dispatcher(runtime).run_once()
    finally:
        runtime.close()
    assert len(run.failed) == 1
    rows = outbox(runtime)
    assert rows[0].last_error == "users.lookupByEmail: HTTP 200 invalid_auth"
    assert rows[1].last_error == "users.lookupByEmail: HTTP 502"
    everything = repr(logs + more) + repr([r.last_error for r in rows])
    assert DEFAULT_TOKEN not in everything and "xoxb" not in everything


# --- email at once ------------------------------------------------------------------------


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def test_email_categories_are_mailed_at_once_through_the_digest_settings(
    db_url: str, clock: FrozenClock, mailbox: tuple[Mailbox, str]
) -> None:
    box, url = mailbox
    digest = {"send_at": "08:00", "from": "taskplanner@acme.example"}
    notifications = {"email": {"categories": ["ready_to_schedule", "broken_integration"]}}
    runtime = open_runtime(db_url, clock, notifications, digest=digest)
    assert runtime.config.digest is not None
    runtime.config.digest.set_secret("smtp_url", url)
    try:
        runtime.pipeline.ingest_now(
            [f.job("j1", name="Software Engineer"), f.candidate("c1", name="Ada <Lovelace>"),
             f.application("a1")]
        )  # new_job (not configured) and ready_to_schedule for Cora
        run = dispatcher(runtime).run_once()
        again = dispatcher(runtime).run_once()
    finally:
        runtime.close()

    assert len(run.sent) == 1 and again.sent == []
    [(recipients, message)] = box.received
    assert recipients == [f.CORA]
    assert message["From"] == "taskplanner@acme.example"
    assert message["Subject"] == (
        "Acme taskplanner: Schedule Ada <Lovelace> for Phone Screen (Software Engineer)"
    )
    text = text_of(message)
    assert "Ready to schedule: " in text
    assert "Ada <Lovelace> · Software Engineer" in text
    assert f"Your task list: {PAGE}?assignee=cora%40acme.example" in text


@sqlite_only
def test_a_refusing_mail_server_gets_the_email_again_later(
    db_url: str, clock: FrozenClock, mailbox: tuple[Mailbox, str]
) -> None:
    box, url = mailbox
    box.refuse_first = 1  # 451: try again later
    digest = {"send_at": "08:00", "from": "taskplanner@acme.example"}
    runtime = open_runtime(db_url, clock, {"email": {}}, digest=digest)
    assert runtime.config.digest is not None
    runtime.config.digest.set_secret("smtp_url", url)
    try:
        break_integration(runtime, clock)
        assert len(dispatcher(runtime).run_once().retrying) == 1
        clock.advance(timedelta(seconds=30))
        assert len(dispatcher(runtime).run_once().sent) == 1
    finally:
        runtime.close()
    assert [rcpts for rcpts, _ in box.received] == [[f.ADA]]



# --- configuration --------------------------------------------------------------------------

BASE = {"organisation": {"name": "Acme", "account_owner": f.ADA}}
DIGEST_SECTION = {"smtp_url_env": "TEST_SMTP_URL", "from": "taskplanner@acme.example"}
ENV = {"TEST_SLACK_BOT_TOKEN": "xoxb-SECRET-4242", "TEST_SMTP_URL": "smtp://127.0.0.1:25"}


def config_problems(notifications: Any, env: dict[str, str] | None = None, **extra: Any) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config({**BASE, "notifications": notifications, **extra}, environ=env or ENV)
    return str(error.value)


def test_slack_section_defaults() -> None:
    config = parse_config(
        {**BASE, "notifications": {"slack": {"bot_token_env": "TEST_SLACK_BOT_TOKEN"}}},
        environ=ENV,
    )
    slack = config.notifications.slack
    assert slack is not None
    assert slack.base_url == "https://slack.com/api/"
    assert slack.categories == [
        "broken_integration", "interviewer_declined", "room_declined", "candidate_declined"
    ]
    assert slack.decline_within == timedelta(hours=48) and slack.channel is None
    assert slack.bot_token() == "xoxb-SECRET-4242"
    assert "SECRET" not in repr(config)


def test_slack_and_email_keys_are_checked_like_the_rest() -> None:
    problems = config_problems(
        {
            "slack": {
                "bot_token_env": "TEST_SLACK_BOT_TOKEN",
                "categorys": ["room_declined"],
                "decline_within": "two days",
                "base_url": "ftp://slack.example",
            },
            "email": {"categories": ["broken_integraton"]},
        },
        digest=DIGEST_SECTION,
    ).splitlines()
    assert problems[0] == (
        "notifications.slack.categorys: unknown key (did you mean 'categories'?) (<memory>)"
    )
    assert any(
        line.startswith("notifications.email.categories[0]: unknown task category "
                        "'broken_integraton' (did you mean 'broken_integration'?)")
        for line in problems
    )
    assert any(line.startswith("notifications.slack.decline_within: invalid duration")
               for line in problems)
    assert any(line.startswith("notifications.slack.base_url: expected the Slack Web API")
               for line in problems)


def test_a_bot_token_typed_into_the_file_is_refused_without_echoing_it() -> None:
    problems = config_problems({"slack": {"bot_token": "xoxb-SECRET-9999"}})
    assert "notifications.slack.bot_token: unknown key (secrets never go in this file: set " \
        "bot_token_env to the environment variable holding it)" in problems
    assert "SECRET" not in problems


def test_a_missing_bot_token_variable_is_named() -> None:
    problems = config_problems({"slack": {"bot_token_env": "NOT_SET_ANYWHERE"}})
    assert problems == (
        "notifications.slack.bot_token_env: environment variable NOT_SET_ANYWHERE is not set "
        "(<memory>)"
    )
    wrong = config_problems(
        {"slack": {"bot_token_env": "TEST_SMTP_URL"}}  # a value that is not a Slack token
    )
    assert "not a Slack token" in wrong and "127.0.0.1" not in wrong


def test_email_alerts_need_the_digest_mail_settings() -> None:
    problems = config_problems({"email": {"categories": ["room_declined"]}})
    assert problems == (
        "notifications.email: sends through the mail settings of [digest] (smtp_url_env, "
        "from): add a [digest] section (<memory>)"
    )
