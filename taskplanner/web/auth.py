"""Who is asking: bearer tokens (bare or named) for the JSON API; for the page, a session
cookie backed by a database row (signed in through the identity provider, or with the shared
token form) or a trusted reverse-proxy header, with CSRF tokens tied to the session.

Without API tokens, an identity provider or a proxy header the server answers loopback
clients only (a laptop or a sidecar), so an unconfigured install never exposes the task list
to the network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response, status
from sqlalchemy import Engine

from taskplanner.clock import Clock
from taskplanner.config import ServerConfig
from taskplanner.web.oidc import IdentityProvider
from taskplanner.web.sessions import SIGN_IN_WINDOW, SessionStore

SESSION_COOKIE = "taskplanner_session"
# Binds a sign-in at the identity provider to the browser that started it (login CSRF).
SIGN_IN_COOKIE = "taskplanner_sign_in"
OIDC_CALLBACK_PATH = "/signin/oidc/callback"
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
class ApiToken:
    secret: bytes = field(repr=False)
    name: str | None = None  # recorded as who acted when a request names nobody


# A token's name: what history shows, so printable and short.
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


def parse_api_tokens(entries: list[str]) -> list[ApiToken]:
    """``name=token`` entries are named, anything else is a bare token.

    Base64 padding is not a name separator: ``dGVzdA==`` stays one bare token.
    """
    tokens = []
    for entry in entries:
        name, separator, secret = (part.strip() for part in entry.partition("="))
        if separator and TOKEN_NAME.fullmatch(name) and secret.strip("="):
            tokens.append(ApiToken(secret.encode("utf-8"), name))
        else:
            tokens.append(ApiToken(entry.encode("utf-8"), None))
    return tokens


@dataclass(frozen=True)
class ApiClient:
    """A caller of the JSON API; ``actor`` is what history records when it acts."""

    actor: str


@dataclass(frozen=True)
class PageUser:
    email: str
    session_id: str
    via: str  # "oidc" | "token" | "local" (a session) | "proxy" (the header, no session)
    new_cookie: str | None = None  # set on the response when the session was just made

    @property
    def has_session(self) -> bool:
        return self.via != "proxy"

    @property
    def self_asserted(self) -> bool:
        """Signed in with a typed email: nothing but their word says who they are."""
        return self.via in ("token", "local")


class Authenticator:
    """Checks tokens, keeps page sessions and signs cookies for one app.

    The cookie-signing key comes from ``server.session_key_env``/``_file``, else from the
    database (made once, shared by every replica), mixed with the API tokens so that
    rotating the tokens still signs everyone out.
    """

    def __init__(self, server: ServerConfig, db: Engine, clock: Clock) -> None:
        self._tokens = parse_api_tokens(server.api_tokens())
        self.proxy_header = (server.trusted_user_header or "").strip().lower() or None
        self.secure_cookies = (server.public_url or "").lower().startswith("https://")
        public = urlsplit(server.public_url) if server.public_url else None
        self._public_origin = f"{public.scheme}://{public.netloc}".lower() if public else None
        self._public_url = server.public_url.rstrip("/") if server.public_url else None
        self.guesses = GuessLimiter()
        self.oidc = IdentityProvider(server.oidc) if server.oidc is not None else None
        self.sessions = SessionStore(db, clock, server.session_lifetime)
        configured = server.optional_secret("session_key")
        base = configured.strip().encode() if configured else self.sessions.shared_key()
        material = b"\n".join(sorted(t.secret for t in self._tokens))
        self._key = hmac.new(base, b"taskplanner-session-v2\n" + material, hashlib.sha256).digest()

    @property
    def tokens_configured(self) -> bool:
        return bool(self._tokens)

    @property
    def loopback_only(self) -> bool:
        """Nothing identifies remote callers: serve loopback clients only."""
        return not self._tokens and self.proxy_header is None and self.oidc is None

    def matching_token(self, presented: str) -> ApiToken | None:
        candidate = presented.strip().encode("utf-8")
        found = None
        for token in self._tokens:  # no early exit: every token costs the same to check
            if hmac.compare_digest(candidate, token.secret) and found is None:
                found = token
        return found

    def token_matches(self, presented: str) -> bool:
        return self.matching_token(presented) is not None

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
        token = self.matching_token(credentials) if scheme.lower() == "bearer" else None
        if token is None:
            if credentials:
                self.guesses.failed(client_of(request))
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="taskplanner"'},
            )
        return ApiClient(actor=token.name or "api")

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
        """Email + token when tokens exist; email alone only from the machine itself; never
        when the identity provider says who people are."""
        if self.oidc is not None:
            return False
        return self.tokens_configured or is_loopback(request)

    def page_user(self, request: Request) -> PageUser | None:
        """Who is on the page (reads the database: call it from a worker thread)."""
        if not self.may_use_page(request):
            return None
        if self.proxy_header is not None:
            email = valid_email(request.headers.get(self.proxy_header, ""))
            if email is not None:
                # The proxy vouches for every request; the CSRF token needs no session.
                proxy_id = hmac.new(self._key, f"proxy:{email}".encode(), hashlib.sha256)
                return PageUser(email, proxy_id.hexdigest(), "proxy")
        return self._read_session(request)

    def start_session(self, email: str, *, via: str) -> PageUser:
        session = self.sessions.start(email, via)
        cookie = self._sign({"s": session.secret})
        return PageUser(email, session.secret, via, new_cookie=cookie)

    def end_session(self, request: Request) -> None:
        """Sign-out: the session's row goes, so the cookie (and any copy of it) is dead."""
        payload = self._unsign(request.cookies.get(SESSION_COOKIE, ""))
        secret = payload.get("s") if payload else None
        if isinstance(secret, str):
            self.sessions.end(secret)

    def _read_session(self, request: Request) -> PageUser | None:
        payload = self._unsign(request.cookies.get(SESSION_COOKIE, ""))
        secret = payload.get("s") if payload else None
        if not isinstance(secret, str):
            return None
        session = self.sessions.find(secret)
        if session is None:
            return None
        if self.oidc is not None and session.via != "oidc":
            return None  # typed-email sessions end once the identity provider is set up
        return PageUser(session.email, secret, session.via)

    def set_cookie(self, response: Response, user: PageUser, request: Request) -> None:
        if user.new_cookie is None:
            return
        response.set_cookie(
            SESSION_COOKIE,
            user.new_cookie,
            max_age=int(self.sessions.lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
            path="/",
        )

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    def _secure(self, request: Request) -> bool:
        return self.secure_cookies or request.url.scheme == "https"

    # --- sign-in at the identity provider -------------------------------------------------

    def oidc_redirect_uri(self, request: Request) -> str:
        """The callback registered at the provider: under ``server.public_url`` when set
        (behind a proxy the request's own URL may not be what browsers see)."""
        base = self._public_url or str(request.base_url).rstrip("/")
        return base + OIDC_CALLBACK_PATH

    def bind_sign_in(self, response: Response, state: str, request: Request) -> None:
        """Remember in this browser which sign-in it started; the callback must match it."""
        response.set_cookie(
            SIGN_IN_COOKIE,
            self._sign({"st": state}),
            max_age=int(SIGN_IN_WINDOW.total_seconds()),
            httponly=True,
            # Lax: sent on the provider's top-level redirect back to the callback.
            samesite="lax",
            secure=self._secure(request),
            path=OIDC_CALLBACK_PATH,
        )

    def sign_in_bound_to(self, request: Request, state: str) -> bool:
        payload = self._unsign(request.cookies.get(SIGN_IN_COOKIE, ""))
        bound = payload.get("st") if payload else None
        return isinstance(bound, str) and hmac.compare_digest(bound.encode(), state.encode())

    @staticmethod
    def clear_sign_in(response: Response) -> None:
        response.delete_cookie(SIGN_IN_COOKIE, path=OIDC_CALLBACK_PATH)

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
