"""The Greenhouse end-to-end rig: `tests.ats_env` on the fake Greenhouse, plus what only
Greenhouse has (its ``Signature``/``Greenhouse-Event-ID`` headers, the connector's own
constructor options). Used by ``tests/test_greenhouse_e2e.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from connectors.greenhouse import GreenhouseConnector
from connectors.http import RetryPolicy
from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse, sign
from tests.ats_env import WEBHOOK_SECRET, ATSEnv, SleepRecorder, ats_env

GREENHOUSE = "greenhouse"


@dataclass
class GreenhouseEnv(ATSEnv):
    @property
    def greenhouse(self) -> FakeGreenhouse:
        """The fake, with everything FakeGreenhouse offers beyond the FakeATS protocol."""
        return cast(FakeGreenhouse, self.fake)

    def signed_headers(self, body: bytes, event_id: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Signature": sign(body, self.secret),
            "Greenhouse-Event-ID": event_id,
        }


@contextmanager
def greenhouse_env(
    db_url: str, *, secret: str = WEBHOOK_SECRET, **rules: Any
) -> Iterator[GreenhouseEnv]:
    """The fake Greenhouse (webhooks not yet connected), a runtime on ``db_url``, the app."""
    with ats_env(db_url, GREENHOUSE, secret=secret, **rules) as env:
        yield GreenhouseEnv(**vars(env))


def make_connector(
    fake: FakeGreenhouse,
    *,
    secret: str = WEBHOOK_SECRET,
    sleeps: SleepRecorder | None = None,
    **options: Any,
) -> GreenhouseConnector:
    """A connector on the fake, with Greenhouse's own options, whose retries never sleep."""
    return GreenhouseConnector(
        GREENHOUSE,
        base_url=fake.base_url,
        auth_url=fake.auth_url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        webhook_secret=secret,
        policy=RetryPolicy(sleep=sleeps or SleepRecorder(), base_delay=0.05),
        **options,
    )
