"""Structured logging for the daemon: JSON lines for log collectors, readable lines for people.

One structlog configuration also formats the standard library's records (uvicorn,
APScheduler, alembic), and a last processor masks anything that looks like a credential.
Tracebacks are plain text, masked like the rest and never with local variables (those hold
the configuration).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")

# A key naming one of these holds a credential: its value is never printed.
_SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "credential",
    "cookie",
    "private_key",
)
# user:password@ in URLs (database URLs, SMTP URLs) wherever they appear in a message.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# ?api_key=…, &access_token=…, "client_secret": "…" and the like inside a message.
_KEY_VALUE = re.compile(
    r"(?i)\b([a-z_]*(?:secret|password|passwd|token|api_?key|credential)[a-z_]*)"
    r"(\"?\s*[=:]\s*\"?)[^\s&\"',;]+"
)


def mask_secrets(text: str) -> str:
    """A message with passwords in URLs, bearer tokens and key=value credentials masked (for
    errors people see on the page or in an email)."""
    text = _BEARER.sub(r"\1 ***", _URL_PASSWORD.sub(r"\1***@", text))
    return _KEY_VALUE.sub(r"\1\2***", text)


# Libraries that say too much for a daemon that ticks every second (APScheduler warns each
# time a tick finds the previous run of a job still busy, which is how the daemon works).
_CHATTY = {
    "apscheduler": logging.ERROR,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
    "googleapiclient": logging.WARNING,
}


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values under secret-looking keys and passwords or bearer tokens inside strings."""
    for key, value in list(event_dict.items()):
        if not isinstance(value, str):
            continue
        if key != "event" and any(part in key.lower() for part in _SECRET_KEY_PARTS):
            event_dict[key] = "***"
            continue
        cleaned = _BEARER.sub(r"\1 ***", _URL_PASSWORD.sub(r"\1***@", value))
        if cleaned is not value:
            event_dict[key] = cleaned
    return event_dict


class _Stderr:
    """Whatever ``sys.stderr`` is at the moment of writing (a test runner swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_current: tuple[str, bool] = ("info", False)


def current_settings() -> tuple[str, bool]:
    """The level and format (JSON or not) last configured, for a worker process to match."""
    return _current


def configure_logging(
    level: str = "info", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Send structlog and standard-library logging to ``stream`` (stderr) at ``level``.

    ``json`` defaults to "stderr is not a terminal": containers and systemd get one JSON
    object per line, a person at a terminal gets the console renderer.
    """
    out: TextIO | _Stderr = stream or _Stderr()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    as_json = not out.isatty() if json is None else json
    global _current
    _current = (level, as_json)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        redact_secrets,
    ]
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        # structlog's default console traceback (rich) prints every frame's local variables.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    # The traceback becomes text before the renderer, so the mask applies to it too.
    final: list[Any] = [structlog.processors.format_exc_info, redact_secrets, renderer]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in _CHATTY.items():
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else quiet)
