"""A loopback fake of the two Slack Web API methods taskplanner calls, answering as Slack
documents them, with switches to make it fail (5xx, ``ratelimited``) or hang.

- ``users.lookupByEmail``: ``{"ok": true, "user": {"id": …}}`` or ``{"ok": false, "error":
  "users_not_found"}`` (https://docs.slack.dev/reference/methods/users.lookupByEmail).
- ``chat.postMessage``: ``{"ok": true, "channel": …, "ts": …, "message": {…}}``; a user id
  as ``channel`` posts to the app's DM with them, answered with the DM's ``D…`` id
  (https://docs.slack.dev/reference/methods/chat.postMessage).
- Rate limits: HTTP 429, ``Retry-After`` in seconds and ``{"ok": false, "error":
  "ratelimited"}`` (https://docs.slack.dev/apis/web-api/rate-limits).
- A token in the ``Authorization: Bearer`` header; a wrong one is ``invalid_auth``, a
  missing one ``not_authed``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOKEN = "xoxb-fake-0000-slack-test-token"  # noqa: S105 - the fake's own token


@dataclass(frozen=True)
class Failure:
    """One answer instead of the real one: an HTTP status with a body and headers."""

    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def server_error(status: int = 503) -> Failure:
    html = "<html><body>Service Unavailable</body></html>"
    return Failure(status, html, (("Content-Type", "text/html"),))


def rate_limited(retry_after: int = 30) -> Failure:
    body = json.dumps({"ok": False, "error": "ratelimited"})
    return Failure(
        429, body, (("Content-Type", "application/json"), ("Retry-After", str(retry_after)))
    )


@dataclass(frozen=True)
class Posted:
    channel: str  # as asked: a user id or a channel id
    text: str
    user: str | None  # the user whose DM it went to


@dataclass
class FakeSlack:
    token: str = DEFAULT_TOKEN
    users: dict[str, str] = field(default_factory=dict)  # email -> user id
    posted: list[Posted] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # method names, in order
    # Answers used up one by one before the real ones, per method ("*" for any).
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    # While cleared, every request waits (a Slack that does not answer).
    answering: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    # Methods whose requests wait until `let_go()` (a call that reaches Slack, then stalls).
    held: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answering.set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- set-up

    def add_user(self, email: str) -> str:
        user_id = f"U{next(self._ids):08d}"
        self.users[email.lower()] = user_id
        return user_id

    def fail_next(self, method: str, *failures: Failure) -> None:
        self.failures.setdefault(method, deque()).extend(failures)

    def hold(self, method: str) -> None:
        self.released.clear()
        self.held.add(method)

    def let_go(self) -> None:
        self.held.clear()
        self.released.set()

    def dms_to(self, email: str) -> list[Posted]:
        user = self.users.get(email.lower())
        return [p for p in self.posted if user is not None and p.user == user]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"  # noqa: S101
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # --- serving

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                self._handle(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = {k: [v] for k, v in json.loads(raw or "{}").items()}
                else:
                    args = parse_qs(raw)
                args.update(parse_qs(urlsplit(self.path).query))
                self._handle(args)

            def _handle(self, args: dict[str, list[Any]]) -> None:
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                status, body, headers = fake.answer(
                    method, {k: v[0] for k, v in args.items()}, self.headers.get("Authorization")
                )
                data = body.encode()
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.answering.set()
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(
        self, method: str, args: dict[str, Any], authorization: str | None
    ) -> tuple[int, str, tuple[tuple[str, str], ...]]:
        with self._lock:
            self.requests.append(method)
        self.waiting.release()
        self.answering.wait()
        if method in self.held:
            self.released.wait(30)
        json_type = (("Content-Type", "application/json; charset=utf-8"),)
        with self._lock:
            for key in (method, "*"):
                queue = self.failures.get(key)
                if queue:
                    failure = queue.popleft()
                    return failure.status, failure.body, failure.headers
            result = self._result(method, args, authorization)
        return 200, json.dumps(result), json_type

    def _result(
        self, method: str, args: dict[str, Any], authorization: str | None
    ) -> dict[str, Any]:
        if not authorization:
            return {"ok": False, "error": "not_authed"}
        if authorization != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        if method == "users.lookupByEmail":
            email = str(args.get("email") or "").lower()
            if not email:
                return {"ok": False, "error": "invalid_arguments"}
            user_id = self.users.get(email)
            if user_id is None:
                return {"ok": False, "error": "users_not_found"}
            return {
                "ok": True,
                "user": {
                    "id": user_id,
                    "team_id": "T00000001",
                    "name": email.split("@")[0],
                    "deleted": False,
                    "profile": {"email": email},
                },
            }
        if method == "chat.postMessage":
            channel, text = str(args.get("channel") or ""), str(args.get("text") or "")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if not text and not args.get("blocks"):
                return {"ok": False, "error": "no_text"}
            is_user = channel in self.users.values()
            self.posted.append(Posted(channel, text, channel if is_user else None))
            answered = "D" + channel[1:] if is_user else channel
            ts = f"1700000000.{len(self.posted):06d}"
            return {
                "ok": True,
                "channel": answered,
                "ts": ts,
                "message": {"type": "message", "text": text, "ts": ts, "bot_id": "B00000001"},
            }
        return {"ok": False, "error": "unknown_method"}
