"""Lever Data API v1 over HTTP: Basic auth with the API key, offset pagination, and Lever's rate
limit kept on our side. Hands back raw records, no snapshots.

Docs: https://hire.lever.co/developer/documentation ("Authentication > Basic Auth",
"Pagination", "Rate Limits", "Responses and Errors").
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import structlog

from connectors.base import MalformedPayloadError
from connectors.http import ProviderHTTP, RequestStats, RetryPolicy

log = structlog.get_logger("connectors.lever")

Record = dict[str, Any]
# Query parameters as Lever takes them: a list value is the parameter repeated
# (``expand=applications&expand=owner``), never comma-joined ("Customizing the Response").
Params = Sequence[tuple[str, str]]

MAX_LIMIT = 100  # "The limit can range between 1 and 100 items" ("Pagination")
# "Rate Limits": a token bucket per API key, "a steady state number of 10 requests/second",
# "bursts of requests up to 20 requests/second". Our bucket holds one second's worth, so any
# one-second window sees at most twice the steady rate (20), and the steady rate holds beyond.
DOCUMENTED_RATE = 10.0


class RateLimiter:
    """A token bucket: ``rate`` requests per second, holding at most ``rate`` tokens.

    Shared by every client of one API key in this process (see `limiter_for`), because Lever
    counts per key. ``acquire`` sleeps until a token is there; thread-safe.
    """

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._at = monotonic()
        self._lock = threading.Lock()
        self.waits = 0  # how often a request had to wait (for metrics and the bench)

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self.rate
                self.waits += 1
            self._sleep(wait)


_LIMITERS: dict[tuple[str, float], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, api_key: str, rate: float) -> RateLimiter:
    """The process-wide bucket of one API key at one base URL (keyed by a digest, not the key)."""
    digest = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get((digest, rate))
        if limiter is None:
            limiter = _LIMITERS[(digest, rate)] = RateLimiter(rate)
        return limiter


def basic_auth(api_key: str) -> str:
    """``Authorization`` for "an API key as the username and leaving the password blank"."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


class LeverClient:
    """One connector's Lever session: every request waits for the shared rate limiter, then
    goes through the shared retry policy (429 and 5xx back off; 401/403 are fatal)."""

    def __init__(
        self,
        connector: str,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        limit: int = MAX_LIMIT,
        requests_per_second: float = DOCUMENTED_RATE,
        limiter: RateLimiter | None = None,
    ) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        self.connector = connector
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or limiter_for(base_url.rstrip("/"), api_key, requests_per_second)
        self._limit = limit
        authorization = basic_auth(api_key)
        self._http = ProviderHTTP(
            connector,
            base_url.rstrip("/"),
            auth_headers=lambda: {"Authorization": authorization},
            timeout=timeout,
            policy=self.policy,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        # Every request, retries included, waits for a token first. A request hook rather than
        # a transport wrapper keeps httpx's own transport (and its proxy settings).
        self._http.client.event_hooks["request"].append(self._take_token)

    @property
    def stats(self) -> RequestStats:
        return self._http.stats

    def close(self) -> None:
        self._http.close()

    def _take_token(self, _request: httpx.Request) -> None:
        self.limiter.acquire()

    def get(self, path: str, params: Params = ()) -> Record:
        """One object (``{"data": {...}}``); ProviderRequestError 404 when Lever has none."""
        body = self._body(path, params)
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedPayloadError(self.connector, f"GET {path} returned no data object")
        return data

    def pages(self, path: str, params: Params = ()) -> Iterator[list[Record]]:
        """Every page of a list: ``limit`` and the filters on every request, plus the ``offset``
        token of the previous answer while it says ``hasNext`` ("Pagination": "You can only
        pass in an offset that was returned to you via a previously paginated request")."""
        query: list[tuple[str, str]] = [*params, ("limit", str(self._limit))]
        offset: str | None = None
        while True:
            body = self._body(path, [*query, ("offset", offset)] if offset else query)
            data = body.get("data")
            if not isinstance(data, list):
                raise MalformedPayloadError(self.connector, f"GET {path} returned no data list")
            yield [row for row in data if isinstance(row, dict)]
            following = body.get("next")
            if not body.get("hasNext") or not isinstance(following, str) or not following:
                return
            offset = following

    def list_all(self, path: str, params: Params = ()) -> list[Record]:
        return [row for rows in self.pages(path, params) for row in rows]

    def _body(self, path: str, params: Params) -> Record:
        body, response = self._http.get_json(path, params=list(params))
        if not isinstance(body, dict):
            raise MalformedPayloadError(
                self.connector,
                f"GET {path} did not return a JSON object",
                status=response.status_code,
            )
        return body
