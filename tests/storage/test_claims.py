"""Poster claims on PostgreSQL: disjoint concurrent batches, leases, the posters lock."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from reelset.errors import LockedError, UsageError
from reelset.runs import POSTERS_LOCK
from reelset.storage import MovieRecord, Store, schema
from reelset.storage.claims import (
    PosterClaims,
    live_claims,
    refuse_while_workers,
    require_postgresql,
)
from reelset.storage.posters import PosterRow, upsert_poster_rows
from reelset.storage.schema import utcnow

pytestmark = pytest.mark.postgres

MOVIES = 40


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url)
    store.upgrade()
    store.movies.upsert(
        [
            MovieRecord(tmdb_id=i, title=f"Movie {i}", poster_path=f"/p{i}.jpg")
            for i in range(1, MOVIES + 1)
        ]
    )
    yield store
    store.close()


def claims(store: Store, worker: str, *, batch: int = 8, lease_s: float = 60.0) -> PosterClaims:
    return PosterClaims(
        store, worker, run_id=None, lease_s=lease_s, batch=batch,
        since=utcnow() - dt.timedelta(seconds=1),
    )


def claim_rows(store: Store) -> dict[int, str]:
    c = schema.poster_claims
    with store.read() as conn:
        return {int(i): str(w) for i, w in conn.execute(select(c.c.tmdb_id, c.c.worker))}


def ids(targets: list) -> list[int]:  # type: ignore[type-arg]
    return [t.tmdb_id for t in targets]


def test_two_open_claim_transactions_get_disjoint_batches(pg_store: Store, pg_url: str) -> None:
    other = Store(pg_url)
    try:
        a, b = claims(pg_store, "host-a:1"), claims(other, "host-b:2")
        with pg_store.write() as conn_a:
            got_a = ids(a.claim_in(conn_a))
            # A's transaction is still open: its rows are locked, B skips them.
            with other.write() as conn_b:
                got_b = ids(b.claim_in(conn_b))
        assert got_a == list(range(1, 9))
        assert got_b == list(range(9, 17))
        rows = claim_rows(pg_store)
        assert {i for i, w in rows.items() if w == "host-a:1"} == set(got_a)
        assert {i for i, w in rows.items() if w == "host-b:2"} == set(got_b)
    finally:
        other.close()


def test_concurrent_claimers_split_every_target_once(pg_store: Store, pg_url: str) -> None:
    stores = [Store(pg_url) for _ in range(4)]
    got: dict[str, list[int]] = {}
    start = threading.Barrier(len(stores))

    def work(n: int) -> None:
        mine = claims(stores[n], f"host:{n}", batch=3)
        start.wait()
        taken: list[int] = []
        while batch := mine.claim():
            taken.extend(ids(batch))
        got[f"host:{n}"] = taken

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    everything = [i for taken in got.values() for i in taken]
    assert sorted(everything) == list(range(1, MOVIES + 1))  # each exactly once
    assert claim_rows(pg_store) == {i: w for w, taken in got.items() for i in taken}


def test_a_live_lease_holds_and_an_expired_one_is_claimed_again(pg_store: Store) -> None:
    first = claims(pg_store, "dead:1", batch=5)
    assert ids(first.claim()) == [1, 2, 3, 4, 5]
    second = claims(pg_store, "alive:2", batch=5)
    assert ids(second.claim()) == [6, 7, 8, 9, 10]  # 1-5 are held
    assert second.held_elsewhere() == 5 and live_claims(pg_store) == 10

    c = schema.poster_claims
    with pg_store.write() as conn:  # the first worker died: its leases lapse
        conn.execute(
            update(c)
            .where(c.c.worker == "dead:1")
            .values(lease_until=utcnow() - dt.timedelta(seconds=1))
        )
    assert second.held_elsewhere() == 0
    assert ids(second.claim()) == [1, 2, 3, 4, 5]
    assert set(claim_rows(pg_store)) == set(range(1, 11))
    assert set(claim_rows(pg_store).values()) == {"alive:2"}
    # The dead worker cannot renew or release what it no longer holds.
    assert first.renew() == 0
    first.release_all()
    assert len(claim_rows(pg_store)) == 10
    assert second.renew() == 10


def test_recorded_posters_are_not_claimed_and_released_claims_are_gone(pg_store: Store) -> None:
    worker = claims(pg_store, "w:1", batch=4)
    assert ids(worker.claim()) == [1, 2, 3, 4]
    upsert_poster_rows(pg_store, [PosterRow(i, "ok", poster_path=f"/p{i}.jpg") for i in (1, 2)])
    worker.release([1, 2])
    assert set(claim_rows(pg_store)) == {3, 4}
    worker.release_all()
    assert claim_rows(pg_store) == {}
    assert ids(worker.claim()) == [3, 4, 5, 6]  # 1 and 2 need no poster any more


def test_movies_without_a_poster_path_are_claimed_too(pg_store: Store) -> None:
    pg_store.movies.upsert([MovieRecord(tmdb_id=i, title="No poster") for i in (1, 41)])
    assert ids(claims(pg_store, "w:1", batch=3).claim()) == [1, 2, 3]
    assert ids(claims(pg_store, "w:2", batch=100).claim())[-1] == 41


def test_a_failure_since_the_worker_started_waits_for_a_later_run(pg_store: Store) -> None:
    late = claims(pg_store, "w:1", batch=2)
    upsert_poster_rows(pg_store, [PosterRow(1, "failed", poster_path="/p1.jpg", error="x")])
    upsert_poster_rows(pg_store, [PosterRow(2, "failed", poster_path="/p2.jpg", error="x")])
    pg_store.failures.record("poster", "1", run_id=None, error="timeout")
    with pg_store.write() as conn:  # movie 2 failed long before this worker started
        f = schema.fetch_failures
        pg_store.failures.record("poster", "2", run_id=None, error="timeout")
        conn.execute(
            update(f)
            .where(f.c.key == "2")
            .values(last_failed_at=utcnow() - dt.timedelta(days=1))
        )
    assert ids(late.claim()) == [2, 3]


def test_workers_and_the_posters_lock_exclude_each_other(pg_store: Store) -> None:
    worker = claims(pg_store, "w:1", batch=2)
    refuse_while_workers(pg_store)  # nothing claimed: a plain run may start
    assert ids(worker.claim()) == [1, 2]
    with pytest.raises(LockedError, match=r"poster workers are running \(2 poster\(s\) claimed"):
        refuse_while_workers(pg_store)
    worker.release_all()
    refuse_while_workers(pg_store)

    pg_store.locks.acquire(POSTERS_LOCK, run_id=7)
    try:
        with pytest.raises(LockedError, match="the posters lock is held by run 7"):
            worker.claim()
    finally:
        pg_store.locks.release(POSTERS_LOCK)
    assert ids(worker.claim()) == [1, 2]  # released unrecorded: claimable again


def test_a_dead_holders_posters_lock_does_not_stop_workers(pg_store: Store) -> None:
    now = utcnow() - dt.timedelta(hours=1)
    with pg_store.write() as conn:  # left behind by a run that died an hour ago
        conn.execute(
            schema.run_lock.insert().values(
                name=POSTERS_LOCK, run_id=3, pid=1, hostname="elsewhere",
                acquired_at=now, heartbeat_at=now,
            )
        )
    assert ids(claims(pg_store, "w:1", batch=1).claim()) == [1]


def test_sqlite_stores_have_no_workers(sqlite_store: Store) -> None:
    with pytest.raises(UsageError, match="poster workers need a PostgreSQL store"):
        require_postgresql(sqlite_store)
    with pytest.raises(UsageError):
        claims(sqlite_store, "w:1")
    refuse_while_workers(sqlite_store)  # nothing to refuse
    assert live_claims(sqlite_store) == 0
