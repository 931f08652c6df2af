"""A short fault soak (see ``tests/reliability/soak_rig.py``; ``bench/soak.py`` runs long ones).

The real daemon, as a subprocess on PostgreSQL, follows a scripted organisation in the fake
Greenhouse and the fake Google Calendar while every fault kind strikes at least once: 429
storms with and without Retry-After, 5xx bursts, connection resets, truncated JSON, expired
sync tokens, a revoked credential, duplicated and reordered webhooks, the database taken away
and ``kill -9`` of the daemon. Answers slower than the 30 s HTTP timeout are left to
``bench/soak.py`` (each one costs half a minute).

Afterwards the mirror, the open tasks and every closed task equal those of a clean run of the
same script, every acknowledged webhook was processed, and no configured secret (API token,
client secret, webhook secret, database password, the Google key, access tokens the fakes
issued) is in the daemon's log.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from taskplanner.store import models as m
from taskplanner.store.database import transaction
from tests.reliability.soak_rig import (
    API_TOKEN,
    FAULT_KINDS,
    RunResult,
    SoakRun,
    StepGate,
    compare,
    leaked_secrets,
    run_pair,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_under_faults_the_daemon_ends_where_a_clean_run_ends(tmp_path: Path) -> None:
    clean, faulted = run_pair(tmp_path, seed=16, steps=4, changes_per_step=15, applications=40,
                              slow=False, faults_per_step=4, extra_faults=0.0)

    injected = {kind for kind, count in faulted.faults.items() if count}
    assert injected == {kind for kind in FAULT_KINDS if "slow" not in kind}
    assert faulted.daemon_starts > 1  # killed and started again
    assert faulted.deliveries["redelivered"] > 0
    assert sum(faulted.changes.values()) >= 50
    assert faulted.daemon_crashes == 0
    assert faulted.crashed_polls == clean.crashed_polls == 0
    assert compare(clean, faulted) == []
    assert faulted.lost_deliveries == [] and clean.lost_deliveries == []
    assert faulted.open_tasks, "the script leaves tasks open"
    assert any(status != "open" for _, _, _, status, _ in faulted.tasks), "and closes some"
    assert faulted.leaked_secrets == [] and clean.leaked_secrets == []


def test_the_log_grep_finds_a_secret_and_names_only_its_start() -> None:
    log = '{"event": "request", "authorization": "Bearer ' + API_TOKEN + '"}'
    assert leaked_secrets(log, [API_TOKEN, "absent-secret"]) == ["soak..."]
    assert leaked_secrets("nothing here", [API_TOKEN]) == []


def test_the_comparison_names_every_row_and_task_that_differs() -> None:
    def result(stage: str, task_status: str) -> RunResult:
        return RunResult(
            mirror={"applications": [("a1", stage)]},
            open_tasks=[("ready_to_schedule", "k1", "cora@acme.example")]
            if task_status == "open" else [],
            tasks=Counter({("ready_to_schedule", "k1", "cora@acme.example", task_status, None): 1}),
            deliveries=Counter(), faults=Counter(), lost_deliveries=[], changes=Counter(),
            leaked_secrets=[], crashed_polls=0, steps=1, unsettled_steps=0, daemon_starts=1,
            daemon_crashes=0, seconds=0.0,
        )

    assert compare(result("s1", "open"), result("s1", "open")) == []
    lines = compare(result("s1", "open"), result("s2", "completed"))
    assert lines == [
        "applications: only in the clean run: ('a1', 's1')",
        "applications: only in the faulted run: ('a1', 's2')",
        "open task only in the clean run: ('ready_to_schedule', 'k1', 'cora@acme.example')",
        "task only in the clean run: "
        "('ready_to_schedule', 'k1', 'cora@acme.example', 'open', None)",
        "task only in the faulted run: "
        "('ready_to_schedule', 'k1', 'cora@acme.example', 'completed', None)",
    ]


def test_a_run_that_has_not_caught_up_names_what_it_waits_for(db: Engine, tmp_path: Path) -> None:
    """The final wait fails with these phrases ("did not settle ... pending: ...") instead of
    comparing a run half caught up."""
    mark = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    run = SoakRun(tmp_path, seed=1, base=mark, gate=StepGate(1, None), changes_per_step=1,
                  applications=1)
    run.db = db
    assert run._pending(mark) == [  # noqa: SLF001 - the rig's own reading
        "greenhouse: no poll started since 09:00:00 (last started never)",
        "google: no poll started since 09:00:00 (last started never)",
    ]

    later = mark + timedelta(seconds=5)
    with transaction(db) as session:
        for name in ("greenhouse", "google"):
            session.add(m.SyncSource(connector=name, last_started_at=later))
        session.add(m.IntegrationHealth(connector="greenhouse", last_success_at=later,
                                        changed_at=later))
        session.add(m.IntegrationHealth(connector="google", state="failing", last_success_at=mark,
                                        last_error="google: HTTP 503", changed_at=later))
        session.add(m.InboxDelivery(connector="greenhouse", delivery_id="d1", headers="{}",
                                    body=b"{}", received_at=later, next_attempt_at=later))
    assert run._pending(mark) == [  # noqa: SLF001
        "google: the poll started at 09:00:05 has not succeeded (last success 09:00:00)",
        "google: health failing (google: HTTP 503)",
        "inbox: 1 webhook deliveries pending",
    ]
    assert not run._caught_up(mark)  # noqa: SLF001

    with transaction(db) as session:
        google = session.get(m.IntegrationHealth, "google")
        assert google is not None
        google.state, google.last_success_at = "ok", later
        delivery = session.get(m.InboxDelivery, 1)
        assert delivery is not None
        delivery.status = "done"
    assert run._caught_up(mark)  # noqa: SLF001
