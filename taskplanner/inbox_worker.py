"""The inbox drained by a process of its own, beside the daemon's web server.

In one process, acknowledging webhooks and processing them take turns on one interpreter
lock, so during a burst the sender waits for its 2xx while deliveries are processed, and
deliveries wait while senders are answered. A worker process processes on another core
while the server answers; on SQLite an acknowledgement waits at most for the worker's
current short transaction (writers queue on a file lock, see ``store.database``). It
shares with the daemon only what it must:

- the wake-up event a stored delivery sets;
- a stop flag, and a queue of reports (deliveries processed per connector and result,
  rounds that failed or recovered) that the daemon turns into metrics and health.

The worker claims deliveries under the daemon's replica id, so the daemon's heartbeat
extends its leases and the daemon's shutdown releases them. It leaves when asked, and by
itself when the daemon is gone (``PR_SET_PDEATHSIG`` on Linux, a check of its parent
everywhere), so a daemon killed with SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from taskplanner.config import Config

log = structlog.get_logger("taskplanner.inbox")

_CONTEXT = multiprocessing.get_context("spawn")  # no fork: the daemon runs threads


class WorkerLink:
    """What one worker process and the daemon share: two one-way pipes and a stop flag.

    Plain pipes, not ``multiprocessing.Event`` or ``Queue``: their locks and semaphores are
    shared with the worker, and a worker that dies holding or waiting on one (killed by the
    OOM killer, say) can leave the daemon blocked for good in ``Event.set()``. A pipe only
    ever reports that the other end is gone.
    """

    def __init__(self) -> None:
        self._bell_in, self._bell_out = _CONTEXT.Pipe(duplex=False)  # daemon -> worker
        self.reports_in, self._reports_out = _CONTEXT.Pipe(duplex=False)  # worker -> daemon
        self.stopping = _CONTEXT.RawValue("b", 0)  # no lock to be left holding
        os.set_blocking(self._bell_out.fileno(), False)

    def __getstate__(self) -> dict[str, Any]:
        """The worker gets its own ends only (pickled for the new process)."""
        return {
            "_bell_in": self._bell_in,
            "_reports_out": self._reports_out,
            "stopping": self.stopping,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- the daemon's side

    def ring(self) -> None:
        """Wake the worker (a stored delivery, or stop). Never blocks."""
        with contextlib.suppress(OSError):  # full: it will wake anyway; broken: it is gone
            os.write(self._bell_out.fileno(), b"\0")

    def stop(self) -> None:
        self.stopping.value = 1
        self.ring()

    def started(self) -> None:
        """The worker has its copies now: the daemon's copies of the worker's ends go, so
        the daemon sees end-of-file when the worker dies."""
        self._reports_out.close()
        self._bell_in.close()

    def close(self) -> None:
        for end in (self._bell_out, self.reports_in):
            with contextlib.suppress(OSError):
                end.close()

    # --- the worker's side

    def wait(self, timeout: float) -> None:
        """Sleep until rung or ``timeout``; swallow the rings that came meanwhile."""
        if self._bell_in.poll(timeout):
            os.set_blocking(self._bell_in.fileno(), False)
            with contextlib.suppress(BlockingIOError):
                os.read(self._bell_in.fileno(), 65536)

    def report(self, report: Any) -> None:
        self._reports_out.send(report)

    def should_stop(self) -> bool:
        return bool(self.stopping.value)


class _Doorbell:
    """What the web server sets when it stores a delivery (``app.state.inbox_wakeup``):
    rings whichever worker process is current."""

    def __init__(self, worker: InboxWorker) -> None:
        self._worker = worker

    def set(self) -> None:
        link = self._worker.link
        if link is not None:
            link.ring()


@dataclass(frozen=True)
class WorkerSpec:
    config: Config
    owner: str
    lease: timedelta
    batch: int
    idle: float
    log_level: str
    log_json: bool


@dataclass(frozen=True)
class RoundFailed:
    """A failure told across processes: the exception itself does not travel."""

    error: str  # one line, type and message
    database: bool  # the database is away: expected, no traceback worth logging
    trace: str

    @classmethod
    def of(cls, exc: BaseException) -> RoundFailed:
        """Call while handling ``exc`` (the traceback is the one being handled)."""
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return cls(error, isinstance(exc, SQLAlchemyError), traceback.format_exc())


def run_worker(spec: WorkerSpec, link: WorkerLink) -> None:
    """The worker process: drain the inbox until told to stop or the daemon is gone."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the daemon, which decides
    from taskplanner.logsetup import configure_logging
    from taskplanner.runtime import Runtime

    configure_logging(spec.log_level, json=spec.log_json)
    parent = multiprocessing.parent_process()

    def stop() -> bool:
        return link.should_stop() or (parent is not None and not parent.is_alive())

    processed: Counter[tuple[str, str]] = Counter()

    def count(connector: str, result: str) -> None:
        processed[(connector, result)] += 1

    runtime = Runtime.from_config(spec.config, migrate=False)
    processor = runtime.inbox_processor(
        spec.owner,
        lease=spec.lease,
        on_processed=count,
    )
    try:
        while not stop():
            claimed = 0
            try:
                claimed = processor.drain_round(spec.batch, stop=stop)
            except Exception as exc:  # noqa: BLE001 - reported; the next round tries again
                link.report(RoundFailed.of(exc))
            else:
                link.report(dict(processed))
                processed.clear()
            if claimed == 0:
                link.wait(spec.idle)
    except (BrokenPipeError, EOFError):  # the daemon is gone
        pass
    finally:
        runtime.close()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the daemon dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class InboxWorker:
    """The daemon's handle on its worker process: start, watch, report, stop."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        on_processed: Callable[[str, str, int], None],
        on_round: Callable[[RoundFailed | None], None],
    ) -> None:
        self.spec = spec
        self.link: WorkerLink | None = None
        self.wakeup = _Doorbell(self)  # for app.state.inbox_wakeup
        self.on_processed = on_processed
        self.on_round = on_round
        self.process: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._started_at = 0.0
        self._died_at: float | None = None
        self._backoff = 0.0

    def start(self) -> None:
        """Start a worker process (each with a link of its own) and read its reports."""
        if self.link is not None:
            self.link.close()
        link = self.link = WorkerLink()
        self._started_at = time.monotonic()
        self.process = _CONTEXT.Process(
            target=run_worker, args=(self.spec, link), name="taskplanner-inbox", daemon=True
        )
        self.process.start()
        link.started()
        self._reader = threading.Thread(
            target=self._read, args=(link,), name="inbox-reports", daemon=True
        )
        self._reader.start()
        log.info("inbox_worker_started", pid=self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def restart_if_dead(self) -> bool:
        """Start a new worker when the last one died unasked; True when it did.

        A worker that keeps dying young is restarted after 1 s, 2 s, 4 s ... at most a
        minute, not in a tight loop.
        """
        if self.process is None or self.alive() or self._stopping:
            return False
        if self._died_at is None:
            self._died_at = time.monotonic()
            lived = self._died_at - self._started_at
            self._backoff = 0.0 if lived > 60 else min(60.0, max(1.0, self._backoff * 2))
            log.error(
                "inbox_worker_died",
                exit_code=self.process.exitcode,
                restart_in_seconds=self._backoff,
            )
        if time.monotonic() - self._died_at < self._backoff:
            return False
        self._died_at = None
        self.start()
        return True

    def request_stop(self) -> None:
        """Tell the worker to take no new work, finish its transaction in hand and leave."""
        self._stopping = True
        if self.link is not None:
            self.link.stop()

    def stop(self, timeout: float) -> bool:
        """Stop the worker and wait for it; False if it had to be killed after ``timeout``."""
        self.request_stop()
        clean = True
        if self.process is not None:
            self.process.join(max(0.0, timeout))
            if self.process.is_alive():
                clean = False
                self.process.kill()
                self.process.join(5)
        if self._reader is not None:
            self._reader.join(5)  # it reads the last reports, then sees end-of-file
        if self.link is not None:
            self.link.close()
        return clean

    def _read(self, link: WorkerLink) -> None:
        """Turn one worker's reports into metrics and health until its pipe closes."""
        while True:
            try:
                report = link.reports_in.recv()
            except (EOFError, OSError):  # the worker is gone (or the link closed)
                return
            self._handle(report)

    def _handle(self, report: Any) -> None:
        if isinstance(report, RoundFailed):
            self.on_round(report)
            return
        for (connector, result), n in report.items():
            self.on_processed(connector, result, n)
        self.on_round(None)
