"""A poll the database walks away from is a warning, not a bug report (found by the fault soak:
every database outage during a poll logged ``sync_crashed`` with a traceback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from connectors.base import PollPage
from taskplanner.clock import FrozenClock
from taskplanner.pipeline import Pipeline
from taskplanner.store.database import create_db_engine
from taskplanner.sync import SyncRunner
from tests.daemon_harness import TcpProxy
from tests.factories import rules

pytestmark = pytest.mark.postgres


class CutMidPoll:
    """Two pages; the database goes away between them."""

    name = "google"

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    def poll(self, cursors: dict[str, str], **_: object) -> Iterator[PollPage]:
        yield PollPage(partition="cora@acme.example")
        self.proxy.cut()
        yield PollPage(partition="sam@acme.example")


def test_a_database_outage_mid_poll_is_logged_as_an_interruption_without_traceback(
    pg_database: str, clock: FrozenClock
) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    db = create_db_engine(pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    runner = SyncRunner(db=db, pipeline=Pipeline(db, rules(), clock),
                        connectors=lambda _name: CutMidPoll(proxy),
                        kinds={"google": "google_calendar"}, intervals={}, owner="t", clock=clock)
    try:
        runner.ensure_sources()
        assert runner.claim("google", force=True)
        with capture_logs() as logs, pytest.raises(OperationalError):
            runner.sync("google")
    finally:
        proxy.cut()
        db.dispose()

    events = [(entry["event"], entry["log_level"]) for entry in logs]
    assert ("sync_interrupted", "warning") in events
    assert "sync_crashed" not in {event for event, _ in events}
    interrupted = next(entry for entry in logs if entry["event"] == "sync_interrupted")
    assert interrupted["error"] == "database unavailable (OperationalError)"
    assert "exc_info" not in interrupted
