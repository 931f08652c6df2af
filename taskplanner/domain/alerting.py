"""Which task openings cannot wait for tomorrow's email, and on which channels they alert.

Pure rules: the engine asks `AlertPolicy.channels_for` for each task it opens and queues one
message per channel (``[notifications.slack]``, ``[notifications.email]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from taskplanner.domain.categories import DUE_AT_INTERVIEW_START

SLACK = "slack"
EMAIL = "email"
CHANNELS = (SLACK, EMAIL)

# A broken integration and the three declines: things that go wrong before tomorrow morning.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "broken_integration",
    "interviewer_declined",
    "room_declined",
    "candidate_declined",
)
DEFAULT_DECLINE_WITHIN = timedelta(hours=48)


@dataclass(frozen=True)
class AlertRoute:
    """One channel: the categories it alerts on, and how close a declined interview must be."""

    channel: str
    categories: frozenset[str]
    decline_within: timedelta = DEFAULT_DECLINE_WITHIN

    def wants(self, category: str, due_at: datetime | None, now: datetime) -> bool:
        if category not in self.categories:
            return False
        if category in DUE_AT_INTERVIEW_START:
            # A decline is due when its interview starts: one next month can wait.
            return due_at is not None and due_at - now <= self.decline_within
        return True


@dataclass(frozen=True)
class AlertPolicy:
    routes: tuple[AlertRoute, ...] = ()

    def channels_for(self, category: str, due_at: datetime | None, now: datetime) -> list[str]:
        return [r.channel for r in self.routes if r.wants(category, due_at, now)]

    def __bool__(self) -> bool:
        return bool(self.routes)


NO_ALERTS = AlertPolicy()
