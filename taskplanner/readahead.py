"""Read-ahead: the mirror rows and tasks a batch of snapshots will touch, in a few queries.

The normalizer and the engine look rows up one snapshot at a time; for a batch (a claimed
chunk of webhook deliveries, a poll page) that is a dozen small queries per snapshot. Read
ahead, the same lookups are answered from the session: one ``IN (...)`` query per table
loads the rows (locked on PostgreSQL, as the per-row lookups lock them) and notes which ones
do not exist, so asking again costs nothing.

Everything here is kept in ``session.info`` and so lives exactly as long as the transaction
(sessions here serve one transaction). What is noted is only ever answered while it is still
true: rows added later in the transaction are seen through the session (flushed or not), and
the sets of "who has applications / schedules" only grow, so at worst a lookup asks the
database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session
from sqlmodel import col

from taskplanner.domain import snapshots as sn
from taskplanner.store import models as m

_Row = TypeVar("_Row", bound=m.Base)
_INFO_KEY = "read_ahead"
_CHUNK = 500  # ids per IN list: well inside every backend's parameter limit


@dataclass
class ReadAhead:
    """What this transaction already knows without asking the database again."""

    # One writer at a time (SQLite's BEGIN IMMEDIATE): every row read in the transaction is
    # current, locked or not.
    serialised: bool
    locked: set[Any] = field(default_factory=set)  # identity keys read under lock
    absent: set[Any] = field(default_factory=set)  # identity keys known not to exist
    # candidate id -> has at least one application; only ids read ahead are answered.
    applications_of: dict[str, bool] = field(default_factory=dict)
    # application id -> has schedules; only ids read ahead are answered.
    schedules_of: dict[str, bool] = field(default_factory=dict)
    # application id -> its tasks (open and completed), for ids read ahead.
    tasks_of: dict[str, list[m.Task]] = field(default_factory=dict)
    # Rows added in this transaction and not flushed yet, by identity key.
    added: dict[Any, Any] = field(default_factory=dict)


def identity_key(model: type[m.Base], key: Any) -> tuple[Any, ...]:
    """The session's identity-map key of a row (``sqlalchemy.orm.util.identity_key``, fast:
    these models have no inheritance, so the class is the identity class)."""
    return (model, key if isinstance(key, tuple) else (key,), None)


def read_ahead(session: Session) -> ReadAhead:
    known: ReadAhead | None = session.info.get(_INFO_KEY)
    if known is None:
        known = ReadAhead(serialised=session.get_bind().dialect.name == "sqlite")
        session.info[_INFO_KEY] = known
    return known


def forget(session: Session) -> None:
    """Drop what was read ahead (after a rollback to a savepoint made it stale)."""
    session.info.pop(_INFO_KEY, None)
    session.info.pop("stage_setup", None)


def locked(session: Session, model: type[_Row], key: Any) -> _Row | None:
    """The row about to be diffed, locked until commit (FOR UPDATE on PostgreSQL).

    Two replicas ingesting the same entity at once (a webhook here, a poll there) then take
    turns instead of both diffing the same old state and losing one change. A row this
    transaction already holds under lock (or any row, on SQLite, which serialises writers)
    is returned as it is; else it is read again with the lock, and that read wins over a
    copy read before.
    """
    known = read_ahead(session)
    ident = identity_key(model, key)
    if (added := _unflushed(known, ident)) is not None:
        return added  # type: ignore[no-any-return]
    held: Any = session.identity_map.get(ident)
    if held is not None and (known.serialised or ident in known.locked):
        return held  # type: ignore[no-any-return]
    if held is None and ident in known.absent:
        return None
    row = session.get(model, key, with_for_update=True, populate_existing=True)
    if row is not None:
        known.locked.add(ident)
    return row


def get(session: Session, model: type[_Row], key: Any) -> _Row | None:
    """``session.get`` that also remembers a row read ahead as missing."""
    known = read_ahead(session)
    ident = identity_key(model, key)
    if (added := _unflushed(known, ident)) is not None:
        return added  # type: ignore[no-any-return]
    if ident in known.absent and session.identity_map.get(ident) is None:
        return None
    return session.get(model, key)


def _unflushed(known: ReadAhead, ident: Any) -> Any:
    """The row added in this transaction under ``ident``, while it is not flushed yet."""
    added = known.added.get(ident)
    return added if added is not None and inspect(added).pending else None


@event.listens_for(Session, "transient_to_pending")
def _note_added(session: Session, instance: object) -> None:
    """Remember a new row by its key, so lookups find it before it is flushed."""
    known: ReadAhead | None = session.info.get(_INFO_KEY)
    if known is None:
        return
    ident = inspect(instance).mapper.identity_key_from_instance(instance)
    if all(part is not None for part in ident[1]):
        known.added[ident] = instance


def _chunks(ids: Iterable[Any]) -> Iterator[list[Any]]:
    ordered = sorted(ids)  # one lock order for every replica
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def load_rows(session: Session, model: type[_Row], keys: Iterable[Any], *, lock: bool) -> None:
    """Load rows by primary key into the session; note the missing ones."""
    known = read_ahead(session)
    wanted: set[Any] = set()
    for k in keys:
        if k is None:
            continue
        ident = identity_key(model, k)
        if ident in known.absent:
            continue
        held = session.identity_map.get(ident) is not None
        if held and (known.serialised or not lock or ident in known.locked):
            continue  # the session's copy is current
        wanted.add(k)
    if not wanted:
        return
    (column,) = inspect(model).primary_key
    name = str(column.key)
    attribute = getattr(model, name)
    for part in _chunks(wanted):
        query = select(model).where(attribute.in_(part))
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        found = {getattr(row, name) for row in session.scalars(query)}
        for k in part:
            ident = identity_key(model, k)
            if k in found:
                if lock:
                    known.locked.add(ident)
            else:
                known.absent.add(ident)


def mirror(session: Session, snapshots: Iterable[sn.Snapshot]) -> set[str]:
    """Read ahead the mirror rows these snapshots touch; returns their application ids."""
    own: dict[type[m.Base], set[Any]] = {}  # rows the snapshots diff: locked
    refs: dict[type[m.Base], set[Any]] = {}  # rows they only refer to

    def add(table: dict[type[m.Base], set[Any]], model: type[m.Base], key: Any) -> None:
        if key is not None:
            table.setdefault(model, set()).add(key)

    applications: set[str] = set()
    for s in snapshots:
        match s:
            case sn.ApplicationSnapshot():
                add(own, m.Application, s.id)
                if s.candidate is not None:
                    add(own, m.Candidate, s.candidate.id)
                add(refs, m.Candidate, s.candidate_id)
                add(refs, m.Job, s.job_id)
                add(refs, m.Stage, s.stage_id)
                applications.add(s.id)
            case sn.CandidateSnapshot():
                add(own, m.Candidate, s.id)
            case sn.ScheduleSnapshot():
                add(own, m.Schedule, s.id)
                add(refs, m.Application, s.application_id)
                applications.add(s.application_id)
            case sn.ScorecardSnapshot():
                add(own, m.Scorecard, s.id)
                add(refs, m.Application, s.application_id)
                applications.add(s.application_id)
            case sn.JobSnapshot():
                add(own, m.Job, s.id)
    if not own:
        return applications
    session.flush()  # locked reads refresh rows: nothing unwritten may be overwritten
    # One table order for every replica, as the rows within a table are locked in id order.
    for model in sorted(own, key=lambda model: model.__table__.name):
        load_rows(session, model, own[model], lock=True)
    for model, keys in refs.items():
        load_rows(session, model, keys - own.get(model, set()), lock=False)
    known = read_ahead(session)
    _stage_setups(session, refs.get(m.Stage, set()))
    new_candidates = {
        k for k in own.get(m.Candidate, set()) if identity_key(m.Candidate, k) in known.absent
    }
    _note_existence(session, known.applications_of, col(m.Application.candidate_id), new_candidates)
    new_applications = {
        k for k in own.get(m.Application, set()) if identity_key(m.Application, k) in known.absent
    }
    _note_existence(session, known.schedules_of, col(m.Schedule.application_id), new_applications)
    return applications


def _stage_setups(session: Session, stage_ids: set[str]) -> None:
    known: dict[str, m.StageSetup | None] = session.info.setdefault("stage_setup", {})
    wanted = [k for k in stage_ids if k not in known]
    for part in _chunks(wanted):
        found = {
            row.stage_id: row
            for row in session.scalars(
                select(m.StageSetup).where(col(m.StageSetup.stage_id).in_(part))
            )
        }
        for k in part:
            known[k] = found.get(k)


def _note_existence(session: Session, table: dict[str, bool], column: Any, ids: set[str]) -> None:
    wanted = [k for k in ids if k not in table]
    for part in _chunks(wanted):
        found = set(session.scalars(select(column).where(column.in_(part)).distinct()))
        for k in part:
            table[k] = k in found


def tasks(session: Session, application_ids: Iterable[str]) -> None:
    """Read ahead every task of these applications (locked on PostgreSQL, as closing locks)."""
    known = read_ahead(session)
    wanted = [k for k in set(application_ids) if k is not None and k not in known.tasks_of]
    for part in _chunks(wanted):
        for k in part:
            known.tasks_of[k] = []
        query = select(m.Task).where(col(m.Task.application_id).in_(part)).order_by(col(m.Task.id))
        if not known.serialised:
            query = query.with_for_update().execution_options(populate_existing=True)
        for task in session.scalars(query):
            assert task.application_id is not None  # noqa: S101 - selected by it
            known.tasks_of[task.application_id].append(task)
