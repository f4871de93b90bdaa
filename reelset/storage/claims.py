"""Poster claims: how ``reelset posters --worker`` processes share the downloads (PostgreSQL).

Any number of worker processes, on any number of machines, share one PostgreSQL store.
Each claims a batch of poster targets at a time in one short transaction:

1. ``SELECT`` the movies whose poster is needed (:func:`~.posters.target_query`), that no
   live claim holds and that no worker has tried since this one started, ``ORDER BY
   tmdb_id LIMIT n FOR NO KEY UPDATE OF movies SKIP LOCKED``: concurrent claimers skip
   each other's candidates instead of queueing on them;
2. ``INSERT`` them into ``poster_claims`` with ``lease_until = now() + lease``, ``ON
   CONFLICT`` taking over only a claim whose lease has lapsed (``RETURNING`` the ids
   really claimed: the primary key is the arbiter, so a movie is never claimed twice
   while a lease holds, whatever the timing);
3. commit.

The worker renews its leases while it works (:meth:`PosterClaims.renew`) and deletes the
claims once their rows are recorded (:meth:`PosterClaims.release`). A worker killed
mid-batch leaves its claims behind: they lapse ``lease_seconds`` after its last renewal,
and another worker claims those posters again. Times are the database's (``now()``), so
the machines' clocks need not agree.

A plain ``reelset posters`` run (and a scrape's poster phase) holds the ``posters`` run
lock instead, and the two exclude each other: a worker does not claim while a live run
holds that lock (:class:`~reelset.errors.LockedError`), and a lock holder refuses to
start while live claims exist (:func:`refuse_while_workers`). Both checks take a
transaction-level advisory lock (shared by claimers, exclusive for the check), so a
worker claiming and a run starting cannot both pass.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Interval,
    Text,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from reelset.errors import LockedError, UsageError
from reelset.runs import POSTERS_LOCK
from reelset.storage import schema
from reelset.storage.bookkeeping import LOCK_STALE_AFTER
from reelset.storage.posters import (
    POSTER_FAILURE_KIND,
    PosterTarget,
    Recheck,
    target_from_row,
    target_query,
)
from reelset.storage.records import LockHolder
from reelset.storage.store import Store

ADVISORY_KEY = 0x7265_656C_7365_7450
"""The PostgreSQL advisory lock (transaction level) serialising claims against the start
of a run holding the ``posters`` lock ("reelsetP" in ASCII)."""


def worker_name() -> str:
    """This process as a claimer: ``<host>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def require_postgresql(store: Store) -> None:
    """Raise :class:`~reelset.errors.UsageError` unless the store is on PostgreSQL."""
    if store.dialect != "postgresql":
        raise UsageError(
            f"poster workers need a PostgreSQL store; a {store.dialect} store runs one poster "
            "download at a time: run `reelset posters` without --worker"
        )


def _holder_is_live(holder: LockHolder, now: dt.datetime) -> bool:
    """Whether a ``run_lock`` holder counts (as :class:`~.bookkeeping.Locks` judges it)."""
    if now - holder.heartbeat_at > LOCK_STALE_AFTER:
        return False
    if holder.hostname == socket.gethostname():
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _lock_message(holder: LockHolder) -> str:
    run = f"run {holder.run_id}" if holder.run_id is not None else "a run"
    started = holder.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"the posters lock is held by {run} (pid {holder.pid} on {holder.hostname}, started "
        f"{started}): poster workers wait for it to finish"
    )


def posters_lock_holder(conn: Connection) -> LockHolder | None:
    """The live holder of the ``posters`` run lock, if any (read in ``conn``'s transaction)."""
    lk = schema.run_lock
    row = conn.execute(select(lk).where(lk.c.name == POSTERS_LOCK)).mappings().first()
    if row is None:
        return None
    holder = LockHolder(**row)
    return holder if _holder_is_live(holder, schema.utcnow()) else None


def refuse_while_locked(store: Store) -> None:
    """Raise :class:`~reelset.errors.LockedError` while a live run holds the ``posters``
    lock (a worker's check before it starts; every claim checks again)."""
    with store.read() as conn:
        holder = posters_lock_holder(conn)
    if holder is not None:
        raise LockedError(_lock_message(holder))


def refuse_while_workers(store: Store) -> None:
    """Raise :class:`~reelset.errors.LockedError` while poster workers hold live claims.

    What a run taking the ``posters`` lock calls (after taking it, to be race-free): no
    worker claims once the lock is held, and this waits for the claims in progress.
    Nothing to check on SQLite (no workers there).
    """
    if store.dialect != "postgresql":
        return
    c = schema.poster_claims
    with store.write() as conn:
        conn.execute(select(func.pg_advisory_xact_lock(ADVISORY_KEY)))
        count, worker, until = conn.execute(
            select(func.count(), func.min(c.c.worker), func.max(c.c.lease_until)).where(
                c.c.lease_until > func.now()
            )
        ).one()
    if count:
        until_text = until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise LockedError(
            f"poster workers are running ({count} poster(s) claimed, e.g. by {worker}; "
            f"leases until {until_text}); wait for them to finish"
        )


def live_claims(store: Store) -> int:
    """How many claims hold a live lease (0 on SQLite)."""
    if store.dialect != "postgresql":
        return 0
    c = schema.poster_claims
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(c).where(c.c.lease_until > func.now())
            ).scalar_one()
        )


@dataclass
class PosterClaims:
    """One worker's claims: ``worker`` (``<host>:<pid>``) in run ``run_id``.

    ``since``: when the worker started. A poster that failed (or was rejected after a
    download) since then is not claimed again: it waits for a later run, as a plain run
    tries each poster once. ``ids``, ``retry_rejected``, ``retry_abandoned`` and
    ``recheck`` select the targets as :func:`~.posters.iter_poster_targets` does.
    """

    store: Store
    worker: str
    run_id: int | None
    lease_s: float
    batch: int
    since: dt.datetime
    ids: Sequence[int] | None = None
    retry_rejected: bool = False
    retry_abandoned: bool = False
    recheck: Recheck | None = None

    def __post_init__(self) -> None:
        require_postgresql(self.store)

    def _lease_until(self) -> ColumnElement[Any]:
        return func.now() + literal(dt.timedelta(seconds=self.lease_s), Interval())

    def _mine(self) -> ColumnElement[bool]:
        c = schema.poster_claims
        return and_(c.c.worker == self.worker, c.c.run_id == self.run_id)

    def _candidates(self) -> Any:
        """The claimable targets, row-locked (``SKIP LOCKED``), ``batch`` at most."""
        m, p, c, f = schema.movies, schema.posters, schema.poster_claims, schema.fetch_failures
        stmt = target_query(
            retry_rejected=self.retry_rejected,
            force=False,
            ids=self.ids,
            after=None,
            retry_abandoned=self.retry_abandoned,
            recheck=self.recheck,
        )
        held = exists().where(c.c.tmdb_id == m.c.tmdb_id, c.c.lease_until > func.now())
        failed_since = exists().where(
            f.c.kind == POSTER_FAILURE_KIND,
            f.c.key == cast(m.c.tmdb_id, Text),
            f.c.resolved_at.is_(None),
            f.c.last_failed_at >= self.since,
        )
        # A rejection without a download (an invalid poster_path) has no date: it is
        # final until the path changes, or --retry-rejected would claim it over and over.
        rejected_since = and_(
            p.c.tmdb_id.is_not(None),  # no row: NULLs must not make the NOT below NULL
            p.c.status == "rejected",
            p.c.poster_path.is_not_distinct_from(m.c.poster_path),
            or_(p.c.downloaded_at.is_(None), p.c.downloaded_at >= self.since),
        )
        return (
            stmt.where(~held, ~failed_since, ~rejected_since)
            .limit(self.batch)
            .with_for_update(of=m, key_share=True, skip_locked=True)
        )

    def claim_in(self, conn: Connection) -> list[PosterTarget]:
        """Claim the next batch within ``conn``'s transaction (committed by the caller).

        Raises :class:`~reelset.errors.LockedError` while a live run holds the ``posters``
        lock. Returns the targets claimed, in ``tmdb_id`` order (empty: none left).
        """
        conn.execute(select(func.pg_advisory_xact_lock_shared(ADVISORY_KEY)))
        holder = posters_lock_holder(conn)
        if holder is not None:
            raise LockedError(_lock_message(holder))
        rows = conn.execute(self._candidates()).all()
        if not rows:
            return []
        c = schema.poster_claims
        now = func.now()
        insert = pg_insert(c).values(
            [
                {
                    "tmdb_id": row.tmdb_id,
                    "worker": self.worker,
                    "run_id": self.run_id,
                    "claimed_at": now,
                    "lease_until": self._lease_until(),
                }
                for row in rows
            ]
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[c.c.tmdb_id],
            set_={
                "worker": insert.excluded.worker,
                "run_id": insert.excluded.run_id,
                "claimed_at": insert.excluded.claimed_at,
                "lease_until": insert.excluded.lease_until,
            },
            where=c.c.lease_until <= func.now(),
        ).returning(c.c.tmdb_id)
        won = set(conn.execute(upsert).scalars())
        return [target_from_row(row) for row in rows if row.tmdb_id in won]

    def claim(self) -> list[PosterTarget]:
        """Claim the next batch in a transaction of its own (see :meth:`claim_in`)."""
        with self.store.write() as conn:
            return self.claim_in(conn)

    def renew(self) -> int:
        """Extend the lease of every claim this worker holds; returns how many."""
        c = schema.poster_claims
        with self.store.write() as conn:
            result = conn.execute(
                update(c).where(self._mine()).values(lease_until=self._lease_until())
            )
        return int(result.rowcount)

    def release(self, ids: Sequence[int]) -> None:
        """Delete this worker's claims of ``ids`` (their rows are recorded)."""
        if not ids:
            return
        c = schema.poster_claims
        with self.store.write() as conn:
            conn.execute(delete(c).where(self._mine(), c.c.tmdb_id.in_(list(ids))))

    def release_all(self) -> None:
        """Delete every claim this worker holds (recorded, or given up when stopping)."""
        c = schema.poster_claims
        with self.store.write() as conn:
            conn.execute(delete(c).where(self._mine()))

    def held_elsewhere(self) -> int:
        """Claims of other workers whose lease is live (they may yet come back)."""
        c = schema.poster_claims
        with self.store.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(c)
                    .where(c.c.lease_until > func.now(), ~self._mine())
                ).scalar_one()
            )
