"""The store's bookkeeping: runs (``scrape_runs``), failures, run locks and checkpoints."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    delete,
    select,
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
    from reelset.storage.store import Store

LOCK_STALE_AFTER = dt.timedelta(minutes=15)


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
    """The ``fetch_failures`` ledger: one open row per (kind, key)."""

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
    ) -> None:
        """Record (or count again) an open failure for ``kind``/``key``."""
        f = schema.fetch_failures
        now = schema.utcnow()
        with self._store.write() as conn:
            open_row = conn.execute(
                select(f.c.failure_id).where(
                    f.c.kind == kind, f.c.key == key, f.c.resolved_at.is_(None)
                )
            ).first()
            if open_row:
                conn.execute(
                    update(f)
                    .where(f.c.failure_id == open_row.failure_id)
                    .values(
                        attempts=f.c.attempts + 1,
                        last_failed_at=now,
                        error=error[:2000],
                        http_status=http_status,
                        run_id=run_id,
                    )
                )
            else:
                conn.execute(
                    f.insert().values(
                        run_id=run_id,
                        kind=kind,
                        key=key,
                        http_status=http_status,
                        error=error[:2000],
                        attempts=1,
                        first_failed_at=now,
                        last_failed_at=now,
                    )
                )

    def resolve(self, kind: str, keys: Iterable[str]) -> int:
        """Mark open failures of these keys as resolved; returns how many."""
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
                    .values(resolved_at=schema.utcnow())
                )
                count += res.rowcount or 0
        return count

    def open(self, kind: str) -> list[Failure]:
        """The unresolved failures of a kind, oldest first."""
        f = schema.fetch_failures
        with self._store.read() as conn:
            rows = conn.execute(
                select(f)
                .where(f.c.kind == kind, f.c.resolved_at.is_(None))
                .order_by(f.c.failure_id)
            ).all()
        return [
            Failure(r.failure_id, r.kind, r.key, r.http_status, r.error, r.attempts) for r in rows
        ]


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
