"""The shape every ATS poll shares: partitions in order, one time cursor each, held-back pages.

A connector names its partitions and, for each, a producer of snapshot batches changed since a
moment (``None``: everything). `poll_partitions` turns that into the `PollPage` stream the sync
runner stores: the last page of a partition carries the new cursor (the poll's start, so changes
made during the poll are read again next time) and, for a complete listing, ``present_ids``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import PollPage, PollProgress, ProgressCallback
from taskplanner.domain.snapshots import EntityKind, Snapshot


@dataclass
class Presence:
    """Ids seen in a listing that covers a whole kind (a full sync, or a sweep of ids).

    A producer may replace ``ids`` and set ``complete`` when it swept a kind on an
    incremental poll (Greenhouse lists every interview id to notice hard deletes).
    """

    ids: dict[EntityKind, set[str]] = field(default_factory=dict)
    complete: bool = False
    # A sweep narrowed to schedules ending at or after this moment (see PollPage.present_from).
    ends_from: datetime | None = None

    def add(self, kind: EntityKind, entity_id: str) -> None:
        self.ids.setdefault(kind, set()).add(entity_id)


# since (None: list everything), presence to fill -> batches of snapshots
Producer = Callable[[datetime | None, Presence], Iterator[list[Snapshot]]]


@dataclass(frozen=True)
class Partition:
    """One cursor's worth of a poll: its name, what a complete listing vouches for, its producer."""

    name: str
    kinds: tuple[EntityKind, ...]
    produce: Producer


def format_cursor(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, rounded down so a ``>=`` filter never skips a row."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_cursor(value: str | None) -> datetime | None:
    """A stored cursor back to a moment; None (list everything) when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def poll_partitions(
    connector: str,
    partitions: Sequence[Partition],
    cursors: Mapping[str, str],
    *,
    started_at: datetime,
    full: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[PollPage]:
    """Yield every partition's pages in order; each partition's last page carries its cursor."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    new_cursor = format_cursor(started_at)
    for done, partition in enumerate(partitions):
        since = None if full else parse_cursor(cursors.get(partition.name))
        presence = Presence(ids={kind: set() for kind in partition.kinds}, complete=since is None)
        counter = _ProgressCounter(connector, partition.name, progress, len(partitions), done)
        yield from _pages_with_cursor(
            partition.name, partition.produce(since, presence), new_cursor, presence, counter
        )


class _ProgressCounter:
    def __init__(
        self,
        connector: str,
        partition: str,
        callback: ProgressCallback | None,
        total: int,
        done: int,
    ) -> None:
        self.connector = connector
        self.partition = partition
        self.callback = callback
        self.total = total
        self.done = done
        self.pages = 0
        self.records = 0

    def page(self, records: int) -> None:
        self.pages += 1
        self.records += records
        if self.callback is not None:
            self.callback(
                PollProgress(
                    self.connector, self.partition, self.pages, self.records, self.total, self.done
                )
            )


def _pages_with_cursor(
    partition: str,
    pages: Iterator[list[Snapshot]],
    cursor: str,
    presence: Presence,
    counter: _ProgressCounter,
) -> Iterator[PollPage]:
    """Hold one page back so the last one can carry the cursor (and present_ids)."""
    held: list[Snapshot] | None = None
    for snapshots in pages:
        if held is not None:
            counter.page(len(held))
            yield PollPage(partition, held)
        held = snapshots
    final = held or []
    present = {kind: set(ids) for kind, ids in presence.ids.items()} if presence.complete else None
    counter.page(len(final))
    yield PollPage(
        partition,
        final,
        cursor=cursor,
        present_ids=present,
        present_from=presence.ends_from if present is not None else None,
    )
