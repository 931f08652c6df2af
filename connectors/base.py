"""The contract every provider connector implements, and its error tree.

A connector turns one provider's API into canonical snapshots. It never touches the
database: the sync runner stores each ``PollPage`` together with the cursor it advances in
one transaction, so a crash never advances a cursor past data that was not stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from taskplanner.domain.snapshots import EntityKind, Snapshot


class ConnectorError(Exception):
    """Something went wrong talking to a provider. ``str()`` never contains a secret."""

    def __init__(self, connector: str, message: str, *, status: int | None = None) -> None:
        self.connector = connector
        self.status = status
        self.message = message
        suffix = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{connector}: {message}{suffix}")


class FatalConnectorError(ConnectorError):
    """Retrying will not help: rejected credentials, revoked access, bad configuration."""


class RetriableConnectorError(ConnectorError):
    """Transient: timeouts, connection errors, 429, 5xx. Back off and try again."""


class ProviderRequestError(ConnectorError):
    """A definite answer that is neither success nor transient (400, 404, 409, 410, ...).

    Callers decide what it means, e.g. 410 on a Google sync token means "full resync".
    """

    def __init__(self, connector: str, message: str, *, status: int, body: str = "") -> None:
        super().__init__(connector, message, status=status)
        self.body = body[:500]


class PartitionUnreadable(ConnectorError):
    """One partition (a calendar) cannot be read while the credentials work: access refused
    for that mailbox or calendar, or its user is gone. Only that partition fails."""


class PartitionsFailed(ConnectorError):
    """Some partitions failed while the rest were stored: names each one and its error.

    ``needs_admin`` when every failure is `PartitionUnreadable` (retrying will not help: an
    administrator must grant access or take the calendar out of the configuration).
    """

    def __init__(self, connector: str, failures: Mapping[str, ConnectorError]) -> None:
        self.failures = dict(failures)
        self.needs_admin = all(isinstance(e, PartitionUnreadable) for e in failures.values())
        listed = "; ".join(
            f"{partition}: {error.message}"
            + (f" (HTTP {error.status})" if error.status is not None else "")
            for partition, error in sorted(self.failures.items())
        )
        count = len(self.failures)
        what = "calendar cannot" if count == 1 else "calendars cannot"
        super().__init__(connector, f"{count} {what} be read, the others sync: {listed}")


class WebhookRejected(ConnectorError):  # noqa: N818 - reads as what happened
    """The delivery's signature or shape is wrong; nothing is stored (answer 401)."""


class UnknownEventError(ConnectorError):
    """A well-formed delivery of an event type we do not handle (stored, marked, skipped)."""


class MalformedPayloadError(ConnectorError):
    """The body is not the JSON the provider documents (stored, marked, skipped)."""


def load_json(body: bytes) -> Any:
    """A delivery's body decoded; ValueError saying what is wrong with it otherwise ("body is
    not JSON", or nested too deeply for the decoder: a RecursionError must not escape a
    parser, where it would answer a webhook with 500)."""
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise ValueError("body is not JSON") from None
    except RecursionError:
        raise ValueError("body is JSON nested too deeply") from None


@dataclass
class PollPage:
    """One page of a poll, stored atomically with the cursor it advances.

    ``partition`` names the cursor (e.g. ``"applications"`` or a calendar address).
    ``cursor`` is set on the page after which the partition's cursor may advance.
    ``present_ids``, set on the last page of a *full* listing, lists every id the provider
    still has for those kinds in this partition; the runner deletes the rest from the
    mirror (what was deleted upstream while no webhook told us).
    """

    partition: str
    snapshots: list[Snapshot] = field(default_factory=list)
    cursor: str | None = None
    present_ids: dict[EntityKind, set[str]] | None = None
    # When set, ``present_ids`` vouches only for schedules ending at or after this moment (a
    # sweep of the interviews that can still matter); older ones are left alone.
    present_from: datetime | None = None


@dataclass(frozen=True)
class PollProgress:
    connector: str
    partition: str
    pages: int
    records: int
    total_partitions: int | None = None
    done_partitions: int = 0


ProgressCallback = Callable[[PollProgress], None]


@dataclass(frozen=True)
class ParsedDelivery:
    """What a verified webhook delivery says, in canonical terms."""

    event_type: str
    snapshots: list[Snapshot]
    is_ping: bool = False


@runtime_checkable
class Connector(Protocol):
    """One provider. Implementations: GreenhouseConnector, GoogleCalendarConnector, ...

    Each is named in ``taskplanner.providers`` and built by its classmethod
    ``from_config(name, cfg, **options)`` (options ``policy`` and ``clock`` replace defaults).
    """

    name: str  # the config key, e.g. "greenhouse"
    kind: str  # the config type, e.g. "greenhouse"

    def authenticate(self) -> None:
        """Obtain or refresh credentials; raise FatalConnectorError when they are rejected."""

    def poll(
        self,
        cursors: Mapping[str, str],
        *,
        started_at: datetime,
        full: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Iterator[PollPage]:
        """Yield pages of snapshots changed since ``cursors`` (all of them when ``full``).

        Time-based cursors must be capped at ``started_at`` so changes made during the poll
        are fetched again next time.
        """
        ...

    def close(self) -> None:
        """Release HTTP clients and threads."""


@runtime_checkable
class WebhookSource(Protocol):
    """A connector that accepts webhook deliveries (the ATS ones)."""

    name: str

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected unless the signature over the raw bytes is right."""

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The provider's unique id for this delivery, used to drop re-deliveries."""

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ParsedDelivery:
        """Map a verified delivery to snapshots; raise UnknownEventError/MalformedPayloadError.

        A connector may read the provider here (Lever's deliveries carry ids only); any other
        ConnectorError it raises leaves the delivery in the inbox, to be tried again later.
        """
        ...
