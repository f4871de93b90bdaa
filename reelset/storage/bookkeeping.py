"""The store's bookkeeping: runs (``scrape_runs``), failures, run locks and checkpoints.

The failure ledger (``fetch_failures``) gives each failure a lifecycle: ``open`` (retried
by later runs), ``abandoned`` (it failed ``[failures] max_attempts`` times over at least
``min_age_days``: still listed and counted, no longer retried automatically) and
``resolved`` (a later attempt succeeded). :meth:`Failures.entries` and
:meth:`Runs.recent` are what ``reelset failures`` and ``reelset runs`` show.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from reelset.errors import LockedError
from reelset.storage import schema
from reelset.storage.records import (
    Failure,
    LockHolder,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from reelset.config import FailureSettings
    from reelset.storage.store import Store

LOCK_STALE_AFTER = dt.timedelta(minutes=15)

FAILURE_STATES = ("open", "abandoned", "resolved")
"""The states of a ``fetch_failures`` row (its ``state`` column)."""


def _iso(value: dt.datetime | None) -> str | None:
    """A timestamp as ISO 8601 UTC text with ``Z`` (for JSON output)."""
    return schema.sqlite_timestamp(value) if value is not None else None


@dataclass(frozen=True)
class FailureEntry:
    """One row of the ``fetch_failures`` ledger, as ``reelset failures`` shows it."""

    failure_id: int
    run_id: int | None
    kind: str
    key: str
    state: str
    attempts: int
    http_status: int | None
    error: str | None
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime
    abandoned_at: dt.datetime | None
    resolved_at: dt.datetime | None

    @property
    def pending(self) -> bool:
        """Whether the failure is new or still retried by later runs (not resolved).

        A run exits 1 for the failures it records that are pending; one abandoned by
        this attempt (or retried on request and still abandoned) does not count, unless
        it is new.
        """
        return self.state == "open" or (self.state == "abandoned" and self.attempts == 1)

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-able data (timestamps as ISO 8601 UTC text)."""
        return {
            "failure_id": self.failure_id,
            "kind": self.kind,
            "key": self.key,
            "state": self.state,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "error": self.error,
            "first_failed_at": _iso(self.first_failed_at),
            "last_failed_at": _iso(self.last_failed_at),
            "abandoned_at": _iso(self.abandoned_at),
            "resolved_at": _iso(self.resolved_at),
            "run_id": self.run_id,
        }

    @classmethod
    def from_row(cls, row: Any) -> FailureEntry:
        """An entry from a ``fetch_failures`` row (a mapping of its columns)."""
        return cls(
            failure_id=int(row["failure_id"]),
            run_id=row["run_id"],
            kind=row["kind"],
            key=row["key"],
            state=row["state"],
            attempts=int(row["attempts"]),
            http_status=row["http_status"],
            error=row["error"],
            first_failed_at=row["first_failed_at"],
            last_failed_at=row["last_failed_at"],
            abandoned_at=row["abandoned_at"],
            resolved_at=row["resolved_at"],
        )


@dataclass(frozen=True)
class RunEntry:
    """One row of ``scrape_runs``, as ``reelset runs`` shows it."""

    run_id: int
    command: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    params: dict[str, Any]
    counts: dict[str, Any]
    pid: int | None
    hostname: str | None
    error: str | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (``None`` while running)."""
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-able data (timestamps as ISO 8601 UTC text)."""
        return {
            "run_id": self.run_id,
            "command": self.command,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": self.duration_s,
            "params": self.params,
            "counts": self.counts,
            "pid": self.pid,
            "hostname": self.hostname,
            "error": self.error,
        }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Runs:
    """The ``scrape_runs`` table: one row per run of any command."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def start(self, command_name: str, params: dict[str, Any]) -> int:
        """Record a new run with status ``running``; returns its id."""
        with self._store.write() as conn:
            res = conn.execute(
                schema.scrape_runs.insert().values(
                    command=command_name,
                    params=params,
                    status="running",
                    started_at=schema.utcnow(),
                    pid=os.getpid(),
                    hostname=socket.gethostname(),
                    counts={},
                )
            )
            run_id = res.inserted_primary_key[0] if res.inserted_primary_key else None
        assert run_id is not None
        return int(run_id)

    def update(self, run_id: int, *, counts: dict[str, Any]) -> None:
        """Save a running run's counts so far."""
        with self._store.write() as conn:
            conn.execute(
                update(schema.scrape_runs)
                .where(schema.scrape_runs.c.run_id == run_id)
                .values(counts=counts)
            )

    def finish(
        self, run_id: int, status: str, *, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Close a run with its final status (succeeded, partial, failed, interrupted)."""
        with self._store.write() as conn:
            conn.execute(
                update(schema.scrape_runs)
                .where(schema.scrape_runs.c.run_id == run_id)
                .values(status=status, counts=counts, error=error, finished_at=schema.utcnow())
            )

    def last(self, command_name: str, *, status: str | None = None) -> dict[str, Any] | None:
        """The newest run of a command (optionally with a given status), as a dict."""
        r = schema.scrape_runs
        stmt = select(r).where(r.c.command == command_name)
        if status is not None:
            stmt = stmt.where(r.c.status == status)
        with self._store.read() as conn:
            row = conn.execute(stmt.order_by(r.c.run_id.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def recent(self, *, limit: int = 20, command: str | None = None) -> list[RunEntry]:
        """The newest runs first (of one command, if given), at most ``limit``."""
        r = schema.scrape_runs
        stmt = select(r).order_by(r.c.run_id.desc()).limit(limit)
        if command is not None:
            stmt = stmt.where(r.c.command == command)
        with self._store.read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            RunEntry(
                run_id=int(row["run_id"]),
                command=row["command"],
                status=row["status"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                params=row["params"] or {},
                counts=row["counts"] or {},
                pid=row["pid"],
                hostname=row["hostname"],
                error=row["error"],
            )
            for row in rows
        ]

    def close_abandoned(self, command_name: str) -> int:
        """Mark ``running`` runs of a command whose process is gone as ``interrupted``."""
        r = schema.scrape_runs
        host = socket.gethostname()
        with self._store.write() as conn:
            rows = conn.execute(
                select(r.c.run_id, r.c.pid, r.c.hostname).where(
                    r.c.command == command_name, r.c.status == "running"
                )
            ).all()
            dead = [
                row.run_id
                for row in rows
                if row.hostname == host and (row.pid is None or not _pid_alive(row.pid))
            ]
            if dead:
                conn.execute(
                    update(r)
                    .where(r.c.run_id.in_(dead))
                    .values(
                        status="interrupted",
                        finished_at=schema.utcnow(),
                        error="the process ended without closing the run",
                    )
                )
        return len(dead)


class Failures:
    """The ``fetch_failures`` ledger: one unresolved (open or abandoned) row per (kind, key)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self,
        kind: str,
        key: str,
        *,
        run_id: int | None,
        error: str,
        http_status: int | None = None,
        lifecycle: FailureSettings | None = None,
    ) -> FailureEntry:
        """Record a failure of ``kind``/``key`` (a new row, or one more attempt of the
        unresolved one); returns the row as written.

        With ``lifecycle`` (``[failures]``), an open failure that has now failed
        ``max_attempts`` times over at least ``min_age_days`` becomes ``abandoned``.
        Without it nothing is abandoned. An abandoned failure stays abandoned until it is
        resolved.
        """
        f = schema.fetch_failures
        now = schema.utcnow()
        with self._store.write() as conn:
            stmt = select(f).where(f.c.kind == kind, f.c.key == key, f.c.resolved_at.is_(None))
            if self._store.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).mappings().first()
            if row is None:
                attempts, first, state, abandoned_at = 1, now, "open", None
            else:
                attempts = int(row["attempts"]) + 1
                first, state = row["first_failed_at"], row["state"]
                abandoned_at = row["abandoned_at"]
            if state == "open" and _exhausted(attempts, now - first, lifecycle):
                state, abandoned_at = "abandoned", now
            values: dict[str, Any] = {
                "run_id": run_id,
                "http_status": http_status,
                "error": error[:2000],
                "attempts": attempts,
                "last_failed_at": now,
                "state": state,
                "abandoned_at": abandoned_at,
            }
            if row is None:
                res = conn.execute(
                    f.insert().values(kind=kind, key=key, first_failed_at=now, **values)
                )
                assert res.inserted_primary_key is not None
                failure_id = int(res.inserted_primary_key[0])
            else:
                failure_id = int(row["failure_id"])
                conn.execute(update(f).where(f.c.failure_id == failure_id).values(**values))
        return FailureEntry.from_row(
            {
                **values,
                "failure_id": failure_id,
                "kind": kind,
                "key": key,
                "first_failed_at": first,
                "resolved_at": None,
            }
        )

    def resolve(self, kind: str, keys: Iterable[str]) -> int:
        """Mark unresolved (open or abandoned) failures of these keys as resolved; returns
        how many."""
        keys = [str(k) for k in keys]
        if not keys:
            return 0
        f = schema.fetch_failures
        count = 0
        with self._store.write() as conn:
            for start in range(0, len(keys), 5000):
                res = conn.execute(
                    update(f)
                    .where(
                        f.c.kind == kind,
                        f.c.key.in_(keys[start : start + 5000]),
                        f.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=schema.utcnow(), state="resolved")
                )
                count += res.rowcount or 0
        return count

    def open(self, kind: str, *, include_abandoned: bool = False) -> list[Failure]:
        """The failures of a kind that later runs retry, oldest first: the ``open`` ones,
        and with ``include_abandoned`` (``--retry-abandoned``) the abandoned ones too."""
        f = schema.fetch_failures
        states = ["open", "abandoned"] if include_abandoned else ["open"]
        with self._store.read() as conn:
            rows = conn.execute(
                select(f)
                .where(f.c.kind == kind, f.c.resolved_at.is_(None), f.c.state.in_(states))
                .order_by(f.c.failure_id)
            ).all()
        return [
            Failure(r.failure_id, r.kind, r.key, r.http_status, r.error, r.attempts) for r in rows
        ]

    def abandoned_keys(self, kind: str) -> set[str]:
        """The keys of a kind whose failure is abandoned (not retried automatically)."""
        f = schema.fetch_failures
        with self._store.read() as conn:
            return set(
                conn.execute(
                    select(f.c.key).where(
                        f.c.kind == kind, f.c.resolved_at.is_(None), f.c.state == "abandoned"
                    )
                ).scalars()
            )

    def entries(
        self,
        *,
        kinds: Collection[str] | None = None,
        states: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[FailureEntry]:
        """Ledger rows, newest first, optionally of these kinds and states only."""
        f = schema.fetch_failures
        stmt = select(f).where(_failure_filter(kinds, states)).order_by(f.c.failure_id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._store.read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [FailureEntry.from_row(row) for row in rows]

    def count_by_state(
        self, *, kinds: Collection[str] | None = None, states: Collection[str] | None = None
    ) -> dict[str, int]:
        """How many ledger rows (of these kinds and states) are in each state; every state
        asked for (default: all) is listed, zero or not."""
        f = schema.fetch_failures
        counts = dict.fromkeys(states if states is not None else FAILURE_STATES, 0)
        with self._store.read() as conn:
            rows = conn.execute(
                select(f.c.state, func.count())
                .where(_failure_filter(kinds, states))
                .group_by(f.c.state)
            ).all()
        for state, count in rows:
            counts[str(state)] = int(count)
        return counts


def _exhausted(attempts: int, spread: dt.timedelta, lifecycle: FailureSettings | None) -> bool:
    """Whether a failure with ``attempts`` spread over ``spread`` is to be abandoned."""
    if lifecycle is None:
        return False
    return attempts >= lifecycle.max_attempts and spread >= dt.timedelta(
        days=lifecycle.min_age_days
    )


def _failure_filter(
    kinds: Collection[str] | None, states: Collection[str] | None
) -> ColumnElement[bool]:
    f = schema.fetch_failures
    clause: ColumnElement[bool] = true()
    if kinds is not None:
        clause = clause & f.c.kind.in_(list(kinds))
    if states is not None:
        unknown = set(states) - set(FAILURE_STATES)
        if unknown:
            raise ValueError(f"unknown failure state(s): {', '.join(sorted(unknown))}")
        clause = clause & f.c.state.in_(list(states))
    return clause


class Locks:
    """Named run locks (``run_lock``): one holder per name, taken over from the dead."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def acquire(self, name: str, *, run_id: int | None = None) -> None:
        """Take the named lock for this process, or raise :class:`LockedError`.

        A lock whose holder is dead (same host, process gone) or silent for longer than
        15 minutes (no :meth:`heartbeat`) is taken over.
        """
        lk = schema.run_lock
        now = schema.utcnow()
        host = socket.gethostname()
        try:
            with self._store.write() as conn:
                stmt = select(lk).where(lk.c.name == name)
                if self._store.dialect == "postgresql":
                    stmt = stmt.with_for_update()
                row = conn.execute(stmt).mappings().first()
                if row is not None:
                    holder = LockHolder(**row)
                    if not self._lock_is_stale(holder, now):
                        raise LockedError(_locked_message(holder))
                    log.warning(
                        "taking over the %s lock of run %s (pid %s on %s), whose process is gone",
                        name,
                        holder.run_id,
                        holder.pid,
                        holder.hostname,
                    )
                    conn.execute(delete(lk).where(lk.c.name == name))
                conn.execute(
                    lk.insert().values(
                        name=name,
                        run_id=run_id,
                        pid=os.getpid(),
                        hostname=host,
                        acquired_at=now,
                        heartbeat_at=now,
                    )
                )
        except IntegrityError:
            holder_now = self.holder(name)
            if holder_now is None:
                raise LockedError(f"the {name} lock is being taken by another process") from None
            raise LockedError(_locked_message(holder_now)) from None

    @staticmethod
    def _lock_is_stale(holder: LockHolder, now: dt.datetime) -> bool:
        if holder.pid == os.getpid() and holder.hostname == socket.gethostname():
            return True
        if holder.hostname == socket.gethostname() and not _pid_alive(holder.pid):
            return True
        return now - holder.heartbeat_at > LOCK_STALE_AFTER

    def holder(self, name: str) -> LockHolder | None:
        """Who holds the named lock, if anyone."""
        lk = schema.run_lock
        with self._store.read() as conn:
            row = conn.execute(select(lk).where(lk.c.name == name)).mappings().first()
        return LockHolder(**row) if row is not None else None

    def set_run(self, name: str, run_id: int) -> None:
        """Attach the run id to a lock this process holds."""
        lk = schema.run_lock
        with self._store.write() as conn:
            conn.execute(
                update(lk).where(lk.c.name == name, lk.c.pid == os.getpid()).values(run_id=run_id)
            )

    def heartbeat(self, name: str) -> None:
        """Tell other processes the lock's holder is alive."""
        lk = schema.run_lock
        with self._store.write() as conn:
            conn.execute(
                update(lk)
                .where(lk.c.name == name, lk.c.pid == os.getpid())
                .values(heartbeat_at=schema.utcnow())
            )

    def release(self, name: str) -> None:
        """Release a lock this process holds (no-op otherwise)."""
        lk = schema.run_lock
        with self._store.write() as conn:
            conn.execute(delete(lk).where(lk.c.name == name, lk.c.pid == os.getpid()))


class Checkpoints:
    """Resume cursors (``checkpoints``), JSON values by name."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, name: str) -> Any:
        """The saved value of a checkpoint, or ``None``."""
        c = schema.checkpoints
        with self._store.read() as conn:
            return conn.execute(select(c.c.value).where(c.c.name == name)).scalar()

    def set(self, name: str, value: Any, *, run_id: int | None = None) -> None:
        """Save a checkpoint (a JSON-serialisable value, not ``None``)."""
        if value is None:
            raise ValueError(f"checkpoint {name!r}: no value to save (use delete to forget it)")
        with self._store.write() as conn:
            self._store.bulk_insert(
                conn,
                schema.checkpoints,
                [(name, run_id, value)],
                columns=("name", "run_id", "value"),
                constants={"updated_at": schema.utcnow()},
                conflict=("name",),
            )

    def delete(self, name: str) -> None:
        """Forget a checkpoint."""
        with self._store.write() as conn:
            conn.execute(delete(schema.checkpoints).where(schema.checkpoints.c.name == name))


def _locked_message(holder: LockHolder) -> str:
    started = holder.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = f"run {holder.run_id}" if holder.run_id is not None else "a run"
    return (
        f"the store is locked by {run} (pid {holder.pid} on {holder.hostname}, "
        f"started {started}); wait for it to finish"
    )
