"""The one HTTP layer every httpx-based connector shares: timeouts, retries, error classes.

Retry policy (one for all providers): connection errors, timeouts, 429 and 5xx are retried
with exponential backoff and jitter, honouring ``Retry-After``; 400/401/403/404 and other
definite answers are not. 401/403 become FatalConnectorError (after one credential refresh
when the caller gives a way to refresh).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.base import FatalConnectorError, ProviderRequestError, RetriableConnectorError

RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403})


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


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0
    # Never wait longer than this for one Retry-After; a longer ask fails the attempt.
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given (1-based) attempt."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)


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
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = dict(kwargs.pop("headers", None) or {})
            if self._auth_headers is not None:
                headers.update(self._auth_headers())
            self.stats.requests += 1
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                # Covers timeouts, refused connections and bodies cut off mid-stream.
                self._wait_or_raise(
                    attempt, None, f"{type(exc).__name__} calling {method} {_path(url)}"
                )
                kwargs["headers"] = headers
                continue
            kwargs["headers"] = headers
            status = response.status_code
            if status < 400:
                return response
            if status == 401 and self._refresh_auth is not None and not refreshed:
                refreshed = True
                self._refresh_auth()
                continue
            if status in FATAL_STATUSES:
                self.stats.errors += 1
                raise FatalConnectorError(
                    self.connector,
                    f"credentials rejected for {method} {_path(url)}",
                    status=status,
                )
            if status in RETRIABLE_STATUSES:
                if status == 429:
                    self.stats.throttled += 1
                wait = retry_after_seconds(response.headers)
                self._wait_or_raise(attempt, wait, f"{method} {_path(url)}", status=status)
                continue
            self.stats.errors += 1
            raise ProviderRequestError(
                self.connector,
                f"{method} {_path(url)} failed",
                status=status,
                body=response.text,
            )

    def get_json(self, url: str, **kwargs: Any) -> tuple[Any, httpx.Response]:
        """GET and decode JSON; a body that is not JSON is retried like a cut connection."""
        attempt = 0
        while True:
            attempt += 1
            response = self.request("GET", url, **kwargs)
            try:
                return response.json(), response
            except ValueError:
                self._wait_or_raise(attempt, None, f"GET {_path(url)} returned invalid JSON")

    def _wait_or_raise(
        self, attempt: int, retry_after: float | None, what: str, *, status: int | None = None
    ) -> None:
        policy = self.policy
        if attempt >= policy.max_attempts or (
            retry_after is not None and retry_after > policy.max_retry_after
        ):
            self.stats.errors += 1
            raise RetriableConnectorError(
                self.connector, f"{what}: gave up after {attempt} attempts", status=status
            )
        self.stats.retries += 1
        delay = retry_after if retry_after is not None else policy.backoff(attempt)
        policy.sleep(delay)


def _path(url: str) -> str:
    """The URL without its query string, which may hold cursors or filters (never secrets)."""
    return url.split("?", 1)[0]
