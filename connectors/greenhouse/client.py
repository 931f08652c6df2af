"""Harvest v3 over HTTP: OAuth client-credentials tokens, Link-header cursor pagination, the
rate limit, and listings filtered by id in chunks of 50. Hands back raw records, no snapshots.

Docs: https://harvestdocs.greenhouse.io/docs/authentication, .../docs/pagination and the v3
reference pages; ``shared/fixtures/providers/greenhouse/HARVEST_V3.md`` marks what is unconfirmed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import structlog
import tenacity

from connectors.base import (
    FatalConnectorError,
    MalformedPayloadError,
    ProviderRequestError,
    RetriableConnectorError,
)
from connectors.greenhouse.mapping import Record, parse_time
from connectors.http import ProviderHTTP, RequestStats, RetryPolicy, retry_after_seconds

log = structlog.get_logger("connectors.greenhouse")

Clock = Callable[[], datetime]

MAX_IDS_PER_REQUEST = 50  # every *_ids filter: "length <= 50" (v3 reference pages)
MAX_PER_PAGE = 500  # per_page: "integer 1 to 500" (v3 reference pages)
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
# The token response format is UNCONFIRMED for client credentials (HARVEST_V3.md §1); the partner
# guide gives access tokens a one-hour TTL, so that is the fallback.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=1)
# Greenhouse's rate limit is a rolling 10-second window (about 50 requests); when
# X-RateLimit-Remaining hits 0 without saying when it resets, wait out a whole window.
RATE_LIMIT_WINDOW_SECONDS = 10.0
# "API requests are limited to the amount specified in the returned X-RateLimit-Limit header
# (per 10 seconds) ... the HTTP 429 response will exclude the X-RateLimit-Limit and
# X-RateLimit-Remaining headers" (github.com/grnhse/greenhouse-api-docs
# source/includes/harvest/_introduction.md, "Throttling"): a 429 without Retry-After waits a
# whole window plus jitter (so replicas do not return together), and is retried for
# THROTTLED_PATIENCE seconds of waiting before the poll fails (it resumes from its cursors).
THROTTLED_WAIT = tenacity.wait_fixed(RATE_LIMIT_WINDOW_SECONDS) + tenacity.wait_random(0, 2)
THROTTLED_PATIENCE = 300.0

_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


@dataclass
class _Token:
    value: str
    expires_at: datetime


class HarvestClient:
    """One connector's Harvest v3 session: a token (refreshed before it expires and once after
    a 401) and every page of a list endpoint."""

    def __init__(
        self,
        connector: str,
        *,
        base_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str,
        user_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
        per_page: int = MAX_PER_PAGE,
    ) -> None:
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError("per_page must be between 1 and 500")
        self.connector = connector
        self.policy = greenhouse_policy(policy or RetryPolicy())
        self.rate_limit_pauses = 0
        self._client_id = client_id
        self._client_secret = client_secret
        self._user_id = user_id
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._per_page = per_page
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._auth_http = ProviderHTTP(
            connector,
            auth_url.rstrip("/"),
            timeout=timeout,
            policy=self.policy,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._http = ProviderHTTP(
            connector,
            base_url.rstrip("/"),
            auth_headers=self._auth_headers,
            refresh_auth=self._refresh_after_401,
            timeout=timeout,
            policy=self.policy,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @property
    def stats(self) -> RequestStats:
        """Request counters of the Harvest client (for metrics)."""
        return self._http.stats

    def close(self) -> None:
        self._http.close()
        self._auth_http.close()

    # ------------------------------------------------------------------ authentication

    def authenticate(self) -> None:
        """Get a fresh access token; FatalConnectorError when the credentials are rejected."""
        with self._token_lock:
            self._fetch_token()

    def _auth_headers(self) -> Mapping[str, str]:
        with self._token_lock:
            token = self._token
            if token is None or self._clock() >= token.expires_at - TOKEN_REFRESH_MARGIN:
                token = self._fetch_token()
            return {"Authorization": f"Bearer {token.value}"}

    def _refresh_after_401(self) -> None:
        # ProviderHTTP calls this once after a 401: the token may have been revoked or expired
        # early. A second 401 (or a refused token request) is fatal.
        with self._token_lock:
            self._fetch_token()

    def _fetch_token(self) -> _Token:
        # OAuth client credentials: POST {auth_url}/token with HTTP Basic client_id:client_secret
        # and grant_type=client_credentials (+ sub=<user id> to act as that user)
        # (https://harvestdocs.greenhouse.io/docs/authentication).
        form = {"grant_type": "client_credentials"}
        if self._user_id:
            form["sub"] = str(self._user_id)
        try:
            response = self._auth_http.request(
                "POST", "/token", data=form, auth=(self._client_id, self._client_secret)
            )
        except ProviderRequestError as exc:
            # 400 invalid_request/invalid_grant: a bad user_id or a credential of the wrong kind.
            raise FatalConnectorError(
                self.connector,
                "token request refused (check client id, secret and user_id)",
                status=exc.status,
            ) from None
        try:
            body = response.json()
            value = body["access_token"]
            if not isinstance(value, str) or not value:
                raise ValueError("empty access token")
        except (ValueError, KeyError, TypeError):
            raise RetriableConnectorError(
                self.connector,
                "token endpoint returned no access token",
                status=response.status_code,
            ) from None
        self._token = _Token(value, self._token_expiry(body))
        log.debug(
            "greenhouse.token_refreshed",
            connector=self.connector,
            expires_at=self._token.expires_at.isoformat(),
        )
        return self._token

    def _token_expiry(self, body: Mapping[str, Any]) -> datetime:
        # Third-party clients disagree: {"expires_in": 3600} or {"expires_at": "<ISO>"}.
        now = self._clock()
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return now + timedelta(seconds=float(expires_in))
        expires_at = body.get("expires_at")
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
            return datetime.fromtimestamp(float(expires_at), UTC)
        if isinstance(expires_at, str):
            parsed = parse_time(expires_at)
            if parsed is not None:
                return parsed
        return now + DEFAULT_TOKEN_LIFETIME

    # ------------------------------------------------------------------ listing

    def pages(self, resource: str, params: Mapping[str, str]) -> Iterator[list[Record]]:
        """Every page of a v3 list; filters and per_page go on the first request only.

        The next page comes only from ``Link: <...?cursor=...>; rel="next"`` and a request
        carrying ``cursor`` must carry nothing else (https://harvestdocs.greenhouse.io/docs/pagination).
        We re-issue the cursor against our own base URL so the token never follows a link to
        another host.
        """
        path = f"/v3/{resource}"
        query: dict[str, str] = {**params, "per_page": str(self._per_page)}
        while True:
            body, response = self._http.get_json(path, params=query)
            self._respect_rate_limit(response)
            if not isinstance(body, list):
                raise MalformedPayloadError(
                    self.connector,
                    f"GET {path} did not return a JSON array",
                    status=response.status_code,
                )
            yield [row for row in body if isinstance(row, dict)]
            cursor = next_cursor(self.connector, response.headers.get("link"))
            if cursor is None:
                return
            query = {"cursor": cursor}

    def list_all(self, resource: str, params: Mapping[str, str]) -> list[Record]:
        return [row for rows in self.pages(resource, params) for row in rows]

    def list_by_ids(
        self,
        resource: str,
        filter_name: str,
        ids: Iterable[int],
        extra: Mapping[str, str] | None = None,
    ) -> list[Record]:
        """Every record whose ``filter_name`` is one of ``ids``, 50 ids per request."""
        rows: list[Record] = []
        for batch in chunks(sorted(set(ids))):
            rows.extend(self.list_all(resource, {filter_name: join_ids(batch), **(extra or {})}))
        return rows

    def _respect_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is None or remaining.strip() != "0":
            return
        wait = (
            retry_after_seconds(response.headers)
            or reset_seconds(response.headers.get("x-ratelimit-reset"), self._clock())
            or RATE_LIMIT_WINDOW_SECONDS
        )
        self.rate_limit_pauses += 1
        log.info("greenhouse.rate_limit_pause", connector=self.connector, seconds=wait)
        self.policy.sleep(min(wait, self.policy.max_delay))


def greenhouse_policy(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` with Greenhouse's own wait for a 429 that says nothing (unless it has one)."""
    if policy.throttled_wait is not None:
        return policy
    return replace(
        policy,
        throttled_wait=THROTTLED_WAIT,
        throttled_patience=policy.throttled_patience or THROTTLED_PATIENCE,
    )


def next_cursor(connector: str, link: str | None) -> str | None:
    """The ``cursor`` of the ``rel="next"`` link, None on the last page."""
    if not link:
        return None
    match = _LINK_NEXT.search(link)
    if match is None:
        return None
    cursor = parse_qs(urlsplit(match.group(1)).query).get("cursor")
    if not cursor or not cursor[0]:
        raise ProviderRequestError(connector, "Link rel=next without a cursor", status=200)
    return cursor[0]


def reset_seconds(value: str | None, now: datetime) -> float | None:
    # X-RateLimit-Reset's unit is UNCONFIRMED for v3: accept seconds-to-wait or an epoch time.
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number > 1_000_000_000:
        return max(0.0, number - now.timestamp())
    return max(0.0, number)


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
        yield ids[start : start + MAX_IDS_PER_REQUEST]


def join_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)
