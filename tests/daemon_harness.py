"""Start ``taskplanner`` daemons as subprocesses for tests, and always stop them again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command(*args: str) -> list[str]:
    """The installed console script, else the module from this work tree."""
    script = shutil.which("taskplanner", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "taskplanner.cli", *args]


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKPLANNER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    out_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (stderr is not a terminal, so every line is one object)."""
        out = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_until_serving(self, timeout: float = 30.0, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    f"daemon exited with {self.process.returncode}:\n{self.logs()[-4000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"daemon not serving {path} after {timeout}s:\n{self.logs()[-4000:]}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.alive():
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@contextlib.contextmanager
def daemon_process(
    args: list[str],
    *,
    port: int,
    workdir: Path,
    name: str = "daemon",
    env: Mapping[str, str] | None = None,
) -> Iterator[DaemonProcess]:
    """Run ``taskplanner <args>``; killed on the way out if the test left it running."""
    log_path, out_path = workdir / f"{name}.stderr.log", workdir / f"{name}.stdout.log"
    with log_path.open("wb") as stderr, out_path.open("wb") as stdout:
        process = subprocess.Popen(
            cli_command(*args),
            cwd=workdir,
            env=cli_env(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    handle = DaemonProcess(process, port, log_path, out_path)
    try:
        yield handle
    finally:
        handle.kill()


# --------------------------------------------------------------------------- in-process daemons


@contextlib.contextmanager
def running_daemon(config: Any, options: Any = None) -> Iterator[Any]:
    """A `Daemon` serving on a free loopback port from a thread; stopped on the way out."""
    import threading

    from taskplanner.daemon import Daemon, open_daemon_runtime

    runtime = open_daemon_runtime(config, migrate=True)
    started = threading.Event()
    daemon = Daemon(runtime, options=options, port=0, on_started=lambda _: started.set())
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["code"] = daemon.run(install_signal_handlers=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            outcome["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="test-daemon", daemon=True)
    thread.start()
    started.wait(60)
    if "error" in outcome:
        raise outcome["error"]
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(30)
        assert not thread.is_alive(), "the daemon did not stop"


# --------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "taskplanner_daemon") -> Iterator[str]:
    """An empty PostgreSQL database of its own (the daemons under test migrate it)."""
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN_URL, _pg_dsn

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_dsn(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TcpProxy:
    """A loopback TCP proxy that a test can cut (refuse and drop everything) and restore.

    Stands between the daemon and the shared PostgreSQL server, which a test cannot stop.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        import threading

        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and break the open ones, like a database that went away."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = set(self._sockets), set()
        if listener is not None:
            # shutdown first: a bare close() leaves the accept() blocked in _accept holding the
            # socket, and the next connection would still get through.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    restore = start

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)
