"""Opening the database: SQLite (WAL, busy timeout) by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

import fcntl
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")
READ_ONLY = "taskplanner_read_only"


def describe_error(exc: SQLAlchemyError) -> str:
    """The driver's own first line (e.g. "Connection refused") and its type, for one-line errors.

    ``str()`` of a SQLAlchemy error appends the statement and its parameters; the driver's
    message alone says what an operator can act on. A password in a URL is masked.
    """
    cause: BaseException = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    first = _URL_PASSWORD.sub(r"\1***@", lines[0].strip()) if lines else ""
    if not first or first.startswith("(") or len(first) > 300:
        return type(cause).__name__
    return f"{first} ({type(cause).__name__})"


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and route them to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    # A failing statement's error (logged, shown by `taskplanner` commands) would otherwise
    # carry its bound values: candidates' names and emails, webhook bodies.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        # Pooled: opening a SQLite connection and setting its pragmas costs more than a
        # small transaction, and every webhook acknowledgement is one.
        kwargs.setdefault("pool_size", 8)
        kwargs.setdefault("max_overflow", 16)
        connect_args: dict[str, Any] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            connect_args["factory"] = _queued_writers(f"{database}-writer.lock")
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Fail fast when the server is away, so /readyz answers 503 instead of hanging.
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _begin_immediate); pysqlite's own implicit
    # transactions would start too late to take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # Writing transactions take the write lock at BEGIN, so two writers queue on the busy
    # timeout instead of failing with "database is locked" when a reader upgrades.
    # Read-only work (the API's lists) opts out and runs beside writers under WAL.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, _QueuedWriter):
        dbapi_connection.wait_for_turn()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(dbapi_connection, _QueuedWriter):
            dbapi_connection.end_turn()
        raise


class _QueuedWriter(sqlite3.Connection):
    """A SQLite connection whose writing transactions queue on a file lock first.

    SQLite's own busy handler polls with sleeps of 1, 2, 5, 10 ... ms, so a writer that
    finds the database locked sleeps through most of the moment it frees, and under load
    (webhook acknowledgements beside the inbox worker process) that wasted time is most of
    the wait. Every taskplanner process writing the file first takes an exclusive ``flock``
    on ``<file>-writer.lock``: the kernel wakes the next writer as soon as one commits. The
    lock is held from BEGIN IMMEDIATE to COMMIT or ROLLBACK; a closed connection drops it.
    """

    lock_path: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_file: Any = None
        self._holding = False

    def wait_for_turn(self) -> None:
        if self._lock_file is None:
            self._lock_file = open(self.lock_path, "a+b")  # noqa: SIM115 - lives with self
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        self._holding = True

    def end_turn(self) -> None:
        if self._holding:
            self._holding = False
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_turn()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None


def _queued_writers(lock_path: str) -> type[sqlite3.Connection]:
    return type("QueuedWriter", (_QueuedWriter,), {"lock_path": lock_path})


@event.listens_for(Session, "loaded_as_persistent")
@event.listens_for(Session, "pending_to_persistent")
def _hold_for_the_transaction(session: Session, instance: object) -> None:
    # The identity map holds rows weakly, so a job or stage read for one delivery would be
    # read again for the next one in the same transaction; holding them makes repeated
    # lookups free. Sessions here live for one transaction, so this cannot grow unbounded.
    session.info.setdefault("held", []).append(instance)


@contextmanager
def transaction(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
