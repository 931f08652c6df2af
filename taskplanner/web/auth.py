"""Who is asking: bearer tokens for the JSON API; a signed session cookie or a trusted
reverse-proxy header for the page, with CSRF tokens tied to the session.

Without any API token configured the server answers loopback clients only (a laptop or a
sidecar), so an unconfigured install never exposes the task list to the network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response, status

from taskplanner.config import ServerConfig

SESSION_COOKIE = "taskplanner_session"
SESSION_MAX_AGE = 14 * 24 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Deliberately simple, like the config's: catches typos, not RFC 5322.
# No control characters either (PostgreSQL refuses NUL in text).
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")


def is_loopback(request: Request) -> bool:
    """True when the TCP peer is 127.0.0.0/8 or ::1 (a test client's fake host is not)."""
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def valid_email(value: str) -> str | None:
    value = value.strip().lower()
    return value if EMAIL.fullmatch(value) and len(value) <= 254 else None


class GuessLimiter:
    """Slows down token guessing: after ``limit`` wrong tokens from one client within
    ``window`` seconds, that client is refused (429) until the window has passed.

    Refusing everything meanwhile, right tokens included, keeps a locked-out guesser from
    learning that a guess was right. Kept per process: enough to make guessing hopeless.
    """

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            if len(recent) < self.limit:
                return None
            return max(1, int(self.window - (now - recent[0])) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class ApiClient:
    """A caller of the JSON API; ``actor`` is what history records when it acts."""

    actor: str


@dataclass(frozen=True)
class PageUser:
    email: str
    session_id: str
    via: str  # "session" | "proxy"
    new_cookie: str | None = None  # set on the response when the session was just made


class Authenticator:
    """Checks tokens and signs session cookies for one app.

    The signing key is derived from the configured API tokens, so sessions survive restarts
    and work across replicas, and rotating the tokens signs everyone out. Without tokens
    (loopback only) a key per process is enough.
    """

    def __init__(self, server: ServerConfig) -> None:
        self._tokens = [t.encode("utf-8") for t in server.api_tokens()]
        self.proxy_header = (server.trusted_user_header or "").strip().lower() or None
        self.secure_cookies = (server.public_url or "").lower().startswith("https://")
        public = urlsplit(server.public_url) if server.public_url else None
        self._public_origin = f"{public.scheme}://{public.netloc}".lower() if public else None
        self.guesses = GuessLimiter()
        if self._tokens:
            material = b"\n".join(sorted(self._tokens))
            self._key = hmac.new(b"taskplanner-session-v1", material, hashlib.sha256).digest()
        else:
            self._key = secrets.token_bytes(32)

    @property
    def tokens_configured(self) -> bool:
        return bool(self._tokens)

    @property
    def loopback_only(self) -> bool:
        """Nothing identifies remote callers: serve loopback clients only."""
        return not self._tokens and self.proxy_header is None

    def token_matches(self, presented: str) -> bool:
        candidate = presented.strip().encode("utf-8")
        matched = False
        for token in self._tokens:  # no early exit: every token costs the same to check
            matched |= hmac.compare_digest(candidate, token)
        return matched

    # --- the JSON API ---------------------------------------------------------------------

    def api_client(self, request: Request) -> ApiClient:
        if not self._tokens:
            if is_loopback(request):
                return ApiClient(actor="local")
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "no API tokens are configured (server.api_tokens_env): "
                "only loopback clients are served",
            )
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        self.refuse_if_guessing(request)
        if scheme.lower() != "bearer" or not self.token_matches(credentials):
            if credentials:
                self.guesses.failed(client_of(request))
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="taskplanner"'},
            )
        return ApiClient(actor="api")

    def refuse_if_guessing(self, request: Request) -> None:
        """429 for a client that has presented too many wrong tokens lately."""
        wait = self.guesses.retry_after(client_of(request))
        if wait is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many wrong tokens; try again later",
                headers={"Retry-After": str(wait)},
            )

    # --- the page ---------------------------------------------------------------------------

    def may_use_page(self, request: Request) -> bool:
        return not self.loopback_only or is_loopback(request)

    def may_sign_in_with_form(self, request: Request) -> bool:
        """Email + token when tokens exist; email alone only from the machine itself."""
        return self.tokens_configured or is_loopback(request)

    def page_user(self, request: Request) -> PageUser | None:
        if not self.may_use_page(request):
            return None
        session = self._read_session(request)
        if self.proxy_header is not None:
            email = valid_email(request.headers.get(self.proxy_header, ""))
            if email is not None:
                if session is not None and session.email == email:
                    return PageUser(email, session.session_id, "proxy")
                return self.start_session(email, via="proxy")
        return session

    def start_session(self, email: str, *, via: str = "session") -> PageUser:
        session_id = secrets.token_urlsafe(18)
        payload = {"e": email, "s": session_id, "t": int(time.time())}
        return PageUser(email, session_id, via, new_cookie=self._sign(payload))

    def _read_session(self, request: Request) -> PageUser | None:
        payload = self._unsign(request.cookies.get(SESSION_COOKIE, ""))
        if payload is None:
            return None
        email, session_id, issued = payload.get("e"), payload.get("s"), payload.get("t")
        if not isinstance(email, str) or not isinstance(session_id, str):
            return None
        if not isinstance(issued, int) or time.time() - issued > SESSION_MAX_AGE:
            return None
        return PageUser(email, session_id, "session")

    def set_cookie(self, response: Response, user: PageUser, request: Request) -> None:
        if user.new_cookie is None:
            return
        response.set_cookie(
            SESSION_COOKIE,
            user.new_cookie,
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=self.secure_cookies or request.url.scheme == "https",
            path="/",
        )

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    # --- CSRF -------------------------------------------------------------------------------

    def csrf_token(self, user: PageUser) -> str:
        message = f"csrf:{user.session_id}:{user.email}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request, user: PageUser, submitted: str | None) -> None:
        """Reject a state-changing page request without this session's token, or from
        another site's page (Origin, when the browser sends it, must be ours)."""
        origin = request.headers.get("origin")
        if origin and not self._same_origin(request, origin):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
        token = submitted or request.headers.get(CSRF_HEADER) or ""
        if not hmac.compare_digest(token.encode(), self.csrf_token(user).encode()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "the form has expired: reload the page and try again"
            )

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin and not self._same_origin(request, origin):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")

    def _same_origin(self, request: Request, origin: str) -> bool:
        origin = origin.lower()
        if origin == self._public_origin:
            return True
        host = request.headers.get("host", "").lower()
        return bool(host) and urlsplit(origin).netloc == host

    # --- signing ----------------------------------------------------------------------------

    def _sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def _unsign(self, value: str) -> dict[str, Any] | None:
        body, _, mac = value.partition(".")
        if not body or not mac:
            return None
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
