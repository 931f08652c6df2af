"""Time: always timezone-aware UTC inside; a clock is injected so rules are testable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def span_text(delta: timedelta) -> str:
    """A length of time as people say it: "under a minute", "5 minutes", "1 day"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "under a minute"
    for unit, size, up_to in (("minute", 60, 3600), ("hour", 3600, 48 * 3600)):
        if seconds < up_to:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''}"


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now
