"""Two daemons on one PostgreSQL database, with Slack alerts on for ``ready_to_schedule``:
webhook deliveries spread over both open hundreds of tasks, and each opening's direct message
reaches the loopback fake Slack once, whichever replica processed it or sent it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskplanner.sandbox.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.daemon_harness import daemon_process, free_port
from tests.test_replicas import (  # noqa: F401 - fixtures
    ENV,
    Providers,
    Sender,
    fresh_database,
    make_deliveries,
    providers,
    query,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_two_replicas_send_one_message_per_opening(
    tmp_path: Path, fresh_database: str, providers: Providers, slack: FakeSlack  # noqa: F811
) -> None:
    slack.add_user("rick@acme.example")  # the account owner
    ports = [free_port(), free_port()]
    configs = []
    for i, port in enumerate(ports):
        path = write_config(
            tmp_path / f"replica{i}.toml", database_url=fresh_database, port=port,
            providers=providers,
        )
        with path.open("a", encoding="utf-8") as file:
            file.write(
                "\n[notifications.slack]\n"
                'bot_token_env = "TEST_SLACK_BOT_TOKEN"\n'
                f'base_url = "{slack.base_url}"\n'
                'categories = ["ready_to_schedule"]\n'
                'channel = "C0REPLICAS"\n'  # whoever the fake's jobs name, on Slack or not
            )
        configs.append(path)
    env = {**ENV, "TEST_SLACK_BOT_TOKEN": DEFAULT_TOKEN}
    with (
        daemon_process(["run", "--config", str(configs[0])], port=ports[0], workdir=tmp_path,
                       name="replica0", env=env) as first,
        daemon_process(["run", "--config", str(configs[1])], port=ports[1], workdir=tmp_path,
                       name="replica1", env=env) as second,
    ):
        replicas = [first, second]
        for replica in replicas:
            replica.wait_until_serving(timeout=60, path="/readyz")
        # 100 candidates apply and move on twice: about 300 openings, each alerting.
        deliveries = make_deliveries(providers)[:300]
        Sender(replicas).send_all(list(enumerate(deliveries)))
        wait_for(
            "every delivery to be processed",
            lambda: query(fresh_database, "SELECT count(*) FROM inbox WHERE status <> 'done'")[0][0]
            == 0,
            timeout=180,
        )
        wait_for(
            "every alert to be sent or skipped",
            lambda: query(
                fresh_database,
                "SELECT count(*) FROM alert_outbox WHERE status IN ('pending', 'sending', "
                "'posting')",
            )[0][0] == 0,
            timeout=180,
            explain=lambda: query(
                fresh_database, "SELECT status, count(*) FROM alert_outbox GROUP BY 1"
            ),
        )
        sent_by = {
            e["task_id"]: r.pid for r in replicas for e in r.events()
            if e.get("event") == "alert.sent"
        }

    rows = query(fresh_database, "SELECT task_id, status FROM alert_outbox")
    seeded = ", ".join(f"'{a}'" for a in providers.seeded_applications)
    opened = query(  # by the deliveries; the go-live backlog (seeded) alerts nobody
        fresh_database,
        "SELECT id FROM tasks WHERE category = 'ready_to_schedule' "
        f"AND application_id NOT IN ({seeded})",
    )
    statuses = [status for _, status in rows]
    assert sorted(task for task, _ in rows) == sorted(task for (task,) in opened)
    assert set(statuses) <= {"sent", "skipped"}, statuses
    # Every message went out once: as many posts as rows marked sent, no more.
    assert slack.requests.count("chat.postMessage") == statuses.count("sent") > 0
    assert len(slack.posted) == statuses.count("sent") == len(sent_by)
