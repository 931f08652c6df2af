"""The shared retry policy (connectors/http.py): when it waits, how long, and when it gives up.

Attempts here are plain functions raising what ProviderHTTP raises for a transient answer, so
the policy is tested without a server; the connectors' tests drive it over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tenacity
from structlog.testing import capture_logs

from connectors.base import FatalConnectorError, RetriableConnectorError
from connectors.http import RetryableAnswer, RetryPolicy


def answers(*outcomes: RetryableAnswer | Exception | str) -> Callable[[], str]:
    """An attempt that raises (or returns) the given outcomes in turn."""
    pending = list(outcomes)

    def attempt() -> str:
        outcome = pending.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt


def throttled(retry_after: float | None = None) -> RetryableAnswer:
    return RetryableAnswer("GET /v3/jobs", status=429, retry_after=retry_after, throttled=True)


def unavailable() -> RetryableAnswer:
    return RetryableAnswer("GET /v3/jobs", status=503)


def test_retry_after_is_waited_exactly_and_the_answer_returned() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append)

    result = policy.call(answers(throttled(7), throttled(7), "ok"), connector="greenhouse")

    assert result == "ok"
    assert sleeps == [7.0, 7.0]


def test_backoff_without_retry_after_is_jittered_and_capped() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, max_attempts=50, base_delay=0.5, max_delay=4.0)

    policy.call(answers(*[unavailable()] * 40, "ok"), connector="greenhouse")

    ceilings = [min(4.0, 0.5 * 2**n) for n in range(40)]
    assert all(c / 2 <= wait <= c for wait, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) > 30  # jittered, not a fixed schedule


def test_a_retry_after_longer_than_the_cap_gives_up_at_once() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, max_retry_after=120)

    with pytest.raises(RetriableConnectorError, match="gave up after 1 attempts") as error:
        policy.call(answers(throttled(3600), "ok"), connector="greenhouse")

    assert error.value.status == 429
    assert sleeps == []


def test_definite_answers_are_not_retried() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append)
    fatal = FatalConnectorError("greenhouse", "credentials rejected", status=401)

    with pytest.raises(FatalConnectorError):
        policy.call(answers(fatal, "ok"), connector="greenhouse")

    assert sleeps == []


def test_giving_up_logs_one_line_and_none_per_attempt() -> None:
    policy = RetryPolicy(sleep=lambda _: None, max_attempts=4)
    retries: list[None] = []

    with capture_logs() as logs, pytest.raises(RetriableConnectorError) as error:
        policy.call(
            answers(*[unavailable()] * 4),
            connector="greenhouse",
            on_retry=lambda: retries.append(None),
        )

    assert str(error.value) == "greenhouse: GET /v3/jobs: gave up after 4 attempts (HTTP 503)"
    assert len(retries) == 3
    assert [(log["event"], log["attempts"], log["status"]) for log in logs] == [
        ("http.gave_up", 4, 503)
    ]


def test_a_provider_wait_applies_to_throttled_answers_without_retry_after() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, throttled_wait=tenacity.wait_fixed(10))

    policy.call(answers(throttled(), unavailable(), throttled(2), "ok"), connector="greenhouse")

    assert sleeps[0] == 10.0  # throttled, no Retry-After: the provider's wait
    assert 0.5 <= sleeps[1] <= 1.0  # not throttled: the backoff (second wait, ceiling 1 s)
    assert sleeps[2] == 2.0  # Retry-After still wins


def test_throttling_patience_outlasts_max_attempts_and_then_gives_up() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(
        sleep=sleeps.append,
        max_attempts=2,
        throttled_wait=tenacity.wait_fixed(3),
        throttled_patience=10,
    )

    with pytest.raises(RetriableConnectorError, match="gave up after 5 attempts"):
        policy.call(answers(*[throttled()] * 6), connector="greenhouse")

    assert sleeps == [3.0, 3.0, 3.0, 3.0]  # gave up once 10 s of throttling were waited out
