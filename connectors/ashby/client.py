"""Ashby's RPC-style API over HTTP: basic auth with the API key, ``success: false`` answers,
cursor pagination and syncToken incremental reads. Hands back raw records, no snapshots.

Docs (developers.ashbyhq.com):
- /reference/introduction: every endpoint is ``POST /<category>.<method>`` with a JSON body and
  ``Content-Type: application/json``; HTTP Basic with the API key as the username and a blank
  password.
- /reference/authentication: a missing key is 401, a wrong or deactivated key 403, a key
  without the endpoint's permission 403 ``missing_endpoint_permission``.
- /docs/responses: ``{"success": true, "results": ...}``; what would be 4XX errors come back
  as HTTP 200 with ``success: false`` and ``errorInfo`` (``code``, ``message``).
- /docs/pagination-and-incremental-sync (+ changelog 2026-05-14 "Reject Deep Pagination on
  Incremental Sync", 2026-08-04 "Actionable Pagination Error Messages"): ``limit`` (max 100),
  ``moreDataAvailable`` / ``nextCursor`` -> ``cursor``, a ``syncToken`` on the last page of a
  pass; ``sync_token_expired``, ``sync_token_invalid``, ``incremental_sync_too_large`` mean
  "discard the syncToken and run a full sync", ``next_cursor_expired`` /
  ``invalid_next_cursor`` "restart the listing without a cursor".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from connectors.base import FatalConnectorError, MalformedPayloadError, ProviderRequestError
from connectors.http import ProviderHTTP, RequestStats, RetryableAnswer, RetryPolicy

log = structlog.get_logger("connectors.ashby")

Record = dict[str, Any]

MAX_LIMIT = 100  # "The maximum and default value is 100." (list endpoints' ``limit``)
# Drop the token and list everything again.
RESYNC_CODES = frozenset({"sync_token_expired", "sync_token_invalid", "incremental_sync_too_large"})
# Start the same listing again (same syncToken, no cursor).
RESTART_CODES = frozenset({"next_cursor_expired", "invalid_next_cursor"})
MAX_LISTING_RESTARTS = 3


class _AshbyHTTP(ProviderHTTP):
    """ProviderHTTP that keeps Ashby's own words for a rejected key (401/403): ``errorInfo``
    says whether the key is missing, wrong or deactivated, or lacks the endpoint's permission
    (``missing_endpoint_permission``), which is what an admin has to fix."""

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code in (401, 403):
            code, message = error_info(response)
            self.stats.errors += 1
            raise FatalConnectorError(
                self.connector, f"{what}: {code}: {message}", status=response.status_code
            )
        return super()._checked(response, what)


def error_info(response: httpx.Response) -> tuple[str, str]:
    """``errorInfo.code`` and ``.message`` of an error answer (cut short; never a secret:
    Ashby's messages describe the key, they do not repeat it)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    info = body.get("errorInfo") if isinstance(body, dict) else None
    info = info if isinstance(info, dict) else {}
    errors = body.get("errors") if isinstance(body, dict) else None
    code = info.get("code") or (errors[0] if isinstance(errors, list) and errors else None)
    message = info.get("message") or "no message"
    return str(code or "unknown_error")[:80], str(message)[:200]


class AshbyUnsuccessful(ProviderRequestError):  # noqa: N818 - reads as what Ashby answered
    """HTTP 200 with ``success: false``: the request failed; its ``errorInfo`` says why.

    Never read as an empty result: the caller's poll fails and the mirror stays as it was.
    """

    def __init__(self, connector: str, endpoint: str, code: str, message: str) -> None:
        super().__init__(
            connector, f"{endpoint} failed: {code}: {message}", status=200, body=message
        )
        self.endpoint = endpoint
        self.code = code


@dataclass
class Listing:
    """What a finished `AshbyClient.pages` pass leaves: the token for the next pass and whether
    this pass listed everything (no syncToken was used: a full listing)."""

    sync_token: str | None = None
    full: bool = False
    resync_reason: str | None = None  # the error code that forced a full listing
    restarts: int = 0


class AshbyClient:
    """One connector's Ashby session: JSON POSTs with basic auth, every page of a list."""

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
    ) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError("limit must be between 1 and 100")
        self.connector = connector
        self.limit = limit
        self.resyncs = 0  # full listings forced by a rejected syncToken
        self.restarts = 0  # listings restarted after a rejected cursor
        self._http = _AshbyHTTP(
            connector,
            base_url.rstrip("/"),
            policy=policy,
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json; version=1"},
        )
        self._auth = httpx.BasicAuth(api_key, "")

    @property
    def policy(self) -> RetryPolicy:
        return self._http.policy

    @property
    def stats(self) -> RequestStats:
        return self._http.stats

    def close(self) -> None:
        self._http.close()

    def call(self, endpoint: str, body: Mapping[str, Any] | None = None) -> Record:
        """POST ``/<endpoint>`` and return the whole answer of a successful call.

        ``success: false`` raises `AshbyUnsuccessful` with Ashby's code and message; an answer
        that is not JSON is retried like a cut connection, then given up on.
        """
        path = f"/{endpoint}"

        def attempt() -> tuple[Record, httpx.Response]:
            response = self._http.request("POST", path, json=dict(body or {}), auth=self._auth)
            try:
                answer = response.json()
            except ValueError:
                raise RetryableAnswer(f"POST {path} returned invalid JSON") from None
            if not isinstance(answer, dict):
                raise MalformedPayloadError(self.connector, f"POST {path}: not a JSON object")
            return answer, response

        answer, response = self.policy.call(attempt, connector=self.connector)
        if answer.get("success") is not True:
            code, message = error_info(response)
            raise AshbyUnsuccessful(self.connector, endpoint, code, message)
        return answer

    def pages(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        *,
        sync_token: str | None,
        listing: Listing,
    ) -> Iterator[list[Record]]:
        """Every page of a list endpoint, incrementally from ``sync_token`` when given.

        Later pages repeat the request with ``cursor`` added (and the same ``syncToken``, as
        Ashby's own integrations do). A rejected syncToken restarts the pass without one (a full
        listing, ``listing.full``); a rejected cursor restarts the pass as it began. Pages
        already yielded are yielded again by a restart: snapshots are idempotent.
        """
        token = sync_token
        while True:
            cursor: str | None = None
            try:
                while True:
                    body: dict[str, Any] = {**params, "limit": self.limit}
                    if token is not None:
                        body["syncToken"] = token
                    if cursor is not None:
                        body["cursor"] = cursor
                    answer = self.call(endpoint, body)
                    results = answer.get("results")
                    if not isinstance(results, list):
                        raise MalformedPayloadError(
                            self.connector, f"{endpoint}: results is not a list", status=200
                        )
                    yield [row for row in results if isinstance(row, dict)]
                    if answer.get("moreDataAvailable") is True:
                        cursor = answer.get("nextCursor")
                        if not isinstance(cursor, str) or not cursor:
                            raise MalformedPayloadError(
                                self.connector,
                                f"{endpoint}: moreDataAvailable without a nextCursor",
                                status=200,
                            )
                        continue
                    new_token = answer.get("syncToken")
                    listing.sync_token = new_token if isinstance(new_token, str) else None
                    listing.full = token is None
                    return
            except AshbyUnsuccessful as exc:
                if exc.code in RESYNC_CODES and token is not None:
                    log.info(
                        "ashby.full_resync",
                        connector=self.connector,
                        endpoint=endpoint,
                        code=exc.code,
                    )
                    self.resyncs += 1
                    listing.resync_reason = exc.code
                    token = None
                    continue
                if exc.code in RESTART_CODES and listing.restarts < MAX_LISTING_RESTARTS:
                    log.info(
                        "ashby.listing_restarted",
                        connector=self.connector,
                        endpoint=endpoint,
                        code=exc.code,
                    )
                    self.restarts += 1
                    listing.restarts += 1
                    continue
                raise
