"""Polls many partitions (calendars) of one connector at once, with bounded concurrency.

Each partition is synced by one worker thread at a time, so per-mailbox / per-user
provider limits see at most one request in flight per calendar. Pages flow back through
a bounded queue to the caller's thread, which is the only one that yields them; memory
stays bounded however many calendars there are.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass

import structlog

from connectors.base import (
    ConnectorError,
    FatalConnectorError,
    PartitionsFailed,
    PartitionUnreadable,
    PollPage,
    PollProgress,
    ProgressCallback,
)

log = structlog.get_logger(__name__)

PartitionSync = Callable[[str], Generator[PollPage, None, None]]


@dataclass
class _Done:
    partition: str
    error: BaseException | None = None


class PartitionPool:
    """A persistent worker pool (threads keep their per-thread HTTP clients across polls)."""

    def __init__(self, connector: str, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.connector = connector
        self.max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix=f"{self.connector}-sync"
                )
            return self._executor

    def run(
        self,
        partitions: Sequence[str],
        sync: PartitionSync,
        *,
        progress: ProgressCallback | None = None,
    ) -> Iterator[PollPage]:
        """Yield every partition's pages as workers produce them.

        A FatalConnectorError from any partition stops the poll at once (credentials are
        shared, so the other partitions would fail the same way). Any other error fails only
        its partition: the others finish, then the first such error is raised so the runner
        still sees the integration as failing; when a calendar cannot be read
        (`PartitionUnreadable`), `PartitionsFailed` names every failed partition and its error.
        """
        if not partitions:
            return
        out: queue.Queue[PollPage | _Done] = queue.Queue(maxsize=self.max_workers * 4)
        stop = threading.Event()

        def put(item: PollPage | _Done) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work(partition: str) -> None:
            if stop.is_set():
                return
            error: BaseException | None = None
            pages = sync(partition)
            try:
                for page in pages:
                    if not put(page):
                        return
            except BaseException as exc:  # handed to the polling thread, which re-raises it
                error = exc
            finally:
                pages.close()
            put(_Done(partition, error))

        executor = self._pool()
        futures: list[Future[None]] = [executor.submit(work, p) for p in partitions]
        total = len(partitions)
        done = pages_seen = records = 0
        failures: dict[str, BaseException] = {}
        try:
            while done < total:
                item = out.get()
                if isinstance(item, _Done):
                    done += 1
                    if item.error is None:
                        continue
                    if isinstance(item.error, FatalConnectorError):
                        raise item.error
                    failures[item.partition] = item.error
                    # ConnectorError messages are written to be safe to log; others may
                    # carry payload fragments, so only their type is logged.
                    error = item.error
                    log.warning(
                        "partition sync failed",
                        connector=self.connector,
                        partition=item.partition,
                        error=str(error)
                        if isinstance(error, ConnectorError)
                        else type(error).__name__,
                    )
                    continue
                pages_seen += 1
                records += len(item.snapshots)
                if progress is not None:
                    progress(
                        PollProgress(
                            connector=self.connector,
                            partition=item.partition,
                            pages=pages_seen,
                            records=records,
                            total_partitions=total,
                            done_partitions=done,
                        )
                    )
                yield item
            if failures:
                known = {p: e for p, e in failures.items() if isinstance(e, ConnectorError)}
                if len(known) == len(failures) and any(
                    isinstance(e, PartitionUnreadable) for e in known.values()
                ):
                    raise PartitionsFailed(self.connector, known)
                # A transient failure (or a bug) is the integration's: raised as it is.
                raise next(iter(failures.values()))
        finally:
            stop.set()
            for future in futures:
                future.cancel()
            # Unblock workers waiting on a full queue, then let running ones finish.
            while True:
                try:
                    out.get_nowait()
                except queue.Empty:
                    break
            wait_futures(futures)
