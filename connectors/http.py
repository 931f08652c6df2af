"""The one HTTP layer every httpx-based connector shares: timeouts, retries, error classes.

Retry policy (one for all providers, run by tenacity): connection errors, timeouts, 429 and
5xx are retried with jittered exponential backoff, honouring ``Retry-After``; 400/401/403/404
and other definite answers are not. 401/403 become FatalConnectorError (after one credential
refresh when the caller gives a way to refresh).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import httpx
import structlog
import tenacity
from tenacity.wait import WaitBaseT

from connectors.base import FatalConnectorError, ProviderRequestError, RetriableConnectorError

log = structlog.get_logger(__name__)

RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403})

T = TypeVar("T")


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds a provider asks us to wait (``Retry-After`` as seconds or an HTTP date)."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class wait_equal_jitter(tenacity.wait_exponential):  # named like tenacity's own waits
    """Exponential backoff with "equal jitter": a wait between half the ceiling and the ceiling.

    Unlike full jitter (``wait_random_exponential``) every wait is at least half its ceiling, so
    successive waits grow: a provider that is down is asked less and less often.
    """

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        ceiling = super().__call__(retry_state)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class RetryableAnswer(Exception):
    """A transient failure of one attempt: worth asking again.

    Raised inside an attempt that :meth:`RetryPolicy.call` runs; it never escapes the call,
    which turns the last one into a :class:`RetriableConnectorError` when it gives up.
    ``throttled`` marks "slow down" answers (429, Google's rate-limit 403s).
    """

    def __init__(
        self,
        what: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        throttled: bool = False,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.status = status
        self.retry_after = retry_after
        self.throttled = throttled


@dataclass
class RetryPolicy:
    """When to try again and how long to wait, as tenacity stop/wait/retry strategies.

    Stop after ``max_attempts`` attempts, or at once when ``Retry-After`` asks for longer than
    ``max_retry_after``. Wait what ``Retry-After`` says when the answer has one; otherwise
    ``throttled_wait`` for a throttled answer when given, else exponential backoff with jitter
    (between half and all of ``base_delay`` doubling per attempt, capped at ``max_delay``).
    With ``throttled_patience``, throttled answers are retried until that many seconds were
    spent waiting, however many attempts that takes. ``sleep`` is injectable so tests never
    really wait.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    # Never wait longer than this for one Retry-After; a longer ask fails the call.
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    # A provider's own wait for a throttled answer that carries no Retry-After
    # (any tenacity wait, e.g. ``wait_fixed(10) + wait_random(0, 1)``).
    throttled_wait: WaitBaseT | None = None
    # Seconds of waiting on throttled answers before giving up (None: ``max_attempts`` rules).
    throttled_patience: float | None = None

    def call(
        self,
        attempt: Callable[[], T],
        *,
        connector: str,
        on_retry: Callable[[], None] | None = None,
        on_give_up: Callable[[], None] | None = None,
    ) -> T:
        """Run ``attempt`` until it returns, raises something else than RetryableAnswer, or
        the policy gives up (one log line, then RetriableConnectorError)."""

        def before_sleep(_state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                on_retry()

        def give_up(state: tenacity.RetryCallState) -> NoReturn:
            answer = _answer(state)
            if on_give_up is not None:
                on_give_up()
            log.info(
                "http.gave_up",
                connector=connector,
                what=answer.what,
                attempts=state.attempt_number,
                status=answer.status,
                waited=round(state.idle_for, 3),
            )
            raise RetriableConnectorError(
                connector,
                f"{answer.what}: gave up after {state.attempt_number} attempts",
                status=answer.status,
            ) from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableAnswer),
            stop=self._stop,
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        return retrying(attempt)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        answer = _answer(state)
        if answer.retry_after is not None and answer.retry_after > self.max_retry_after:
            return True
        if answer.throttled and self.throttled_patience is not None:
            return state.idle_for >= self.throttled_patience
        return tenacity.stop_after_attempt(self.max_attempts)(state)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        answer = _answer(state)
        if answer.retry_after is not None:
            return answer.retry_after
        if answer.throttled and self.throttled_wait is not None:
            return self.throttled_wait(state)
        return wait_equal_jitter(multiplier=self.base_delay, max=self.max_delay)(state)


def _answer(state: tenacity.RetryCallState) -> RetryableAnswer:
    """The RetryableAnswer the last attempt raised (the only outcome tenacity retries)."""
    assert state.outcome is not None  # noqa: S101 - tenacity sets it before stop and wait
    exc = state.outcome.exception()
    assert isinstance(exc, RetryableAnswer)  # noqa: S101 - the retry predicate ensures it
    return exc


@dataclass
class RequestStats:
    """Counters the daemon exports as metrics; one per connector."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    errors: int = 0


class ProviderHTTP:
    """An httpx client bound to one connector with the shared retry policy.

    ``auth_headers`` is called before every attempt (so a refreshed token is used);
    ``refresh_auth`` is called once after a 401 before giving up with a fatal error.
    """

    def __init__(
        self,
        connector: str,
        base_url: str,
        *,
        auth_headers: Callable[[], Mapping[str, str]] | None = None,
        refresh_auth: Callable[[], None] | None = None,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.connector = connector
        self.policy = policy or RetryPolicy()
        self.stats = RequestStats()
        self._auth_headers = auth_headers
        self._refresh_auth = refresh_auth
        self.client = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers=dict(headers or {}),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return a 2xx/3xx response or raise a ConnectorError subclass."""
        what = f"{method} {_path(url)}"
        headers = dict(kwargs.pop("headers", None) or {})
        refreshed = False

        def send() -> httpx.Response:
            sent = dict(headers)
            if self._auth_headers is not None:
                sent.update(self._auth_headers())
            self.stats.requests += 1
            try:
                return self.client.request(method, url, headers=sent, **kwargs)
            except httpx.TransportError as exc:
                # Covers timeouts, refused connections and bodies cut off mid-stream.
                raise RetryableAnswer(f"{type(exc).__name__} calling {what}") from exc

        def attempt() -> httpx.Response:
            nonlocal refreshed
            response = send()
            if response.status_code == 401 and self._refresh_auth is not None and not refreshed:
                refreshed = True  # the token may have been revoked or expired early
                self._refresh_auth()
                response = send()
            return self._checked(response, what)

        return self._call(attempt)

    def get_json(self, url: str, **kwargs: Any) -> tuple[Any, httpx.Response]:
        """GET and decode JSON; a body that is not JSON is retried like a cut connection."""

        def attempt() -> tuple[Any, httpx.Response]:
            response = self.request("GET", url, **kwargs)
            try:
                return response.json(), response
            except ValueError:
                raise RetryableAnswer(f"GET {_path(url)} returned invalid JSON") from None

        return self._call(attempt)

    def _call(self, attempt: Callable[[], T]) -> T:
        return self.policy.call(
            attempt,
            connector=self.connector,
            on_retry=self._count_retry,
            on_give_up=self._count_error,
        )

    def _count_retry(self) -> None:
        self.stats.retries += 1

    def _count_error(self) -> None:
        self.stats.errors += 1

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        """The response when it succeeded; else the error its status means."""
        status = response.status_code
        if status < 400:
            return response
        if status in FATAL_STATUSES:
            self.stats.errors += 1
            raise FatalConnectorError(
                self.connector, f"credentials rejected for {what}", status=status
            )
        if status in RETRIABLE_STATUSES:
            if status == 429:
                self.stats.throttled += 1
            raise RetryableAnswer(
                what,
                status=status,
                retry_after=retry_after_seconds(response.headers),
                throttled=status == 429,
            )
        self.stats.errors += 1
        raise ProviderRequestError(
            self.connector, f"{what} failed", status=status, body=response.text
        )


def _path(url: str) -> str:
    """The URL without its query string, which may hold cursors or filters (never secrets)."""
    return url.split("?", 1)[0]
