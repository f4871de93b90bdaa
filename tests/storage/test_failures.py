"""The failure ledger's lifecycle (open -> abandoned -> resolved), its listing, the run
history, and the migration that added the lifecycle, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import inspect, text, update
from sqlalchemy.exc import IntegrityError

from reelset.config import FailureSettings
from reelset.storage import MovieRecord, Store, head_version, schema
from reelset.storage.bookkeeping import FailureEntry
from reelset.storage.posters import (
    PosterRow,
    count_poster_targets,
    iter_poster_targets,
    upsert_poster_rows,
)
from reelset.storage.store import _alembic_config

LIFECYCLE = FailureSettings(max_attempts=3, min_age_days=2)


def age(store: Store, kind: str, key: str, days: float) -> None:
    """Move the unresolved failure's first failure ``days`` into the past."""
    f = schema.fetch_failures
    with store.write() as conn:
        conn.execute(
            update(f)
            .where(f.c.kind == kind, f.c.key == key, f.c.resolved_at.is_(None))
            .values(first_failed_at=schema.utcnow() - dt.timedelta(days=days))
        )


def fail(store: Store, key: str, kind: str = "movie", **kw: object) -> FailureEntry:
    return store.failures.record(
        kind, key, run_id=None, error="HTTP 500", http_status=500, lifecycle=LIFECYCLE, **kw
    )


def test_a_failure_is_abandoned_after_max_attempts_over_min_age(store: Store) -> None:
    first = fail(store, "7")
    assert (first.state, first.attempts, first.pending) == ("open", 1, True)
    assert fail(store, "7").state == "open"
    # Three attempts, but all within a moment: not yet spread over min_age_days.
    third = fail(store, "7")
    assert (third.state, third.attempts, third.pending) == ("open", 3, True)
    assert [f.key for f in store.failures.open("movie")] == ["7"]

    age(store, "movie", "7", days=2.5)
    fourth = fail(store, "7")
    assert (fourth.state, fourth.attempts, fourth.pending) == ("abandoned", 4, False)
    assert fourth.abandoned_at is not None and fourth.failure_id == first.failure_id
    # Abandoned: not retried, but listed and counted.
    assert store.failures.open("movie") == []
    assert [f.key for f in store.failures.open("movie", include_abandoned=True)] == ["7"]
    assert store.failures.abandoned_keys("movie") == {"7"}
    assert store.failures.count_by_state() == {"open": 0, "abandoned": 1, "resolved": 0}

    # Retried on request and failing again, it stays abandoned (since the same moment).
    again = fail(store, "7")
    assert (again.state, again.attempts, again.abandoned_at) == (
        "abandoned",
        5,
        fourth.abandoned_at,
    )
    stored = store.failures.entries()[0]
    assert stored == again

    # Resolved, it keeps the record of having been abandoned; a new failure starts over.
    assert store.failures.resolve("movie", ["7"]) == 1
    resolved = store.failures.entries(states=["resolved"])[0]
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    assert resolved.abandoned_at == fourth.abandoned_at
    assert store.failures.abandoned_keys("movie") == set()
    new = fail(store, "7")
    assert (new.state, new.attempts) == ("open", 1) and new.failure_id != first.failure_id


def test_the_limits_are_both_needed_and_none_means_never(store: Store) -> None:
    for _ in range(2):
        fail(store, "old")
    age(store, "movie", "old", days=30)  # old, but not enough attempts yet
    assert fail(store, "old").state == "abandoned"  # the third attempt
    for _ in range(10):
        entry = store.failures.record("movie", "kept", run_id=None, error="x")
    assert (entry.state, entry.attempts) == ("open", 10)


def test_a_new_failure_abandoned_at_once_still_counts_against_its_run(store: Store) -> None:
    at_once = FailureSettings(max_attempts=1, min_age_days=0)
    entry = store.failures.record("poster", "3", run_id=None, error="x", lifecycle=at_once)
    assert entry.state == "abandoned" and entry.pending  # new: the run exits 1 for it
    again = store.failures.record("poster", "3", run_id=None, error="x", lifecycle=at_once)
    assert again.state == "abandoned" and not again.pending


def test_entries_filter_order_and_limit(store: Store) -> None:
    run = store.runs.start("scrape", {})
    for key in ("1", "2", "3"):
        store.failures.record("movie", key, run_id=run, error=f"e{key}")
    store.failures.record("find", "tt0000001", run_id=run, error="e", http_status=502)
    store.failures.record("poster", "9", run_id=run, error="write_error: disk full")
    store.failures.resolve("movie", ["2"])
    age(store, "movie", "3", days=10)
    for _ in range(4):
        fail(store, "3")

    everything = store.failures.entries()
    assert [(e.kind, e.key) for e in everything] == [
        ("poster", "9"),
        ("find", "tt0000001"),
        ("movie", "3"),
        ("movie", "2"),
        ("movie", "1"),
    ]
    assert [e.key for e in store.failures.entries(kinds=["movie"], states=["open"])] == ["1"]
    assert [e.key for e in store.failures.entries(states=["abandoned"])] == ["3"]
    assert [e.key for e in store.failures.entries(limit=2)] == ["9", "tt0000001"]
    assert store.failures.count_by_state() == {"open": 3, "abandoned": 1, "resolved": 1}
    assert store.failures.count_by_state(kinds=["movie"], states=["open", "resolved"]) == {
        "open": 1,
        "resolved": 1,
    }
    data = everything[1].as_dict()
    assert data["kind"] == "find" and data["http_status"] == 502 and data["run_id"] == run
    assert data["first_failed_at"].endswith("Z") and data["resolved_at"] is None
    with pytest.raises(ValueError, match="unknown failure state"):
        store.failures.entries(states=["closed"])


def test_recent_runs_newest_first(store: Store) -> None:
    first = store.runs.start("scrape", {"strategy": "export"})
    store.runs.finish(first, "partial", counts={"failed": 1}, error=None)
    second = store.runs.start("posters", {})
    runs = store.runs.recent()
    assert [(r.run_id, r.command, r.status) for r in runs] == [
        (second, "posters", "running"),
        (first, "scrape", "partial"),
    ]
    assert runs[0].duration_s is None and runs[1].duration_s is not None
    assert runs[1].counts == {"failed": 1} and runs[1].params == {"strategy": "export"}
    assert [r.run_id for r in store.runs.recent(limit=1)] == [second]
    assert [r.run_id for r in store.runs.recent(command="scrape")] == [first]
    data = runs[1].as_dict()
    assert data["started_at"].endswith("Z") and data["finished_at"].endswith("Z")


def test_abandoned_poster_failures_are_not_download_targets(store: Store) -> None:
    store.movies.upsert(
        [MovieRecord(tmdb_id=i, title=f"m{i}", poster_path=f"/p{i}.jpg") for i in (1, 2, 3)]
    )
    upsert_poster_rows(
        store, [PosterRow(i, "failed", poster_path=f"/p{i}.jpg", attempts=4) for i in (1, 2, 3)]
    )
    for key in ("1", "2", "3"):
        store.failures.record("poster", key, run_id=None, error="http_500")
    age(store, "poster", "2", days=5)
    age(store, "poster", "3", days=5)
    for key in ("2", "3"):
        for _ in range(2):
            fail(store, key, kind="poster")
    assert store.failures.abandoned_keys("poster") == {"2", "3"}
    # 3's poster_path changed since: a new poster, fetched whatever its old failure.
    store.movies.upsert([MovieRecord(tmdb_id=3, title="m3", poster_path="/new3.jpg")])

    assert [t.tmdb_id for t in iter_poster_targets(store)] == [1, 3]
    assert count_poster_targets(store) == 2
    assert [t.tmdb_id for t in iter_poster_targets(store, retry_abandoned=True)] == [1, 2, 3]
    assert count_poster_targets(store, retry_abandoned=True) == 3
    assert [t.tmdb_id for t in iter_poster_targets(store, [2], force=True)] == [2]


def test_migration_from_0001_keeps_existing_failures(store_url: str) -> None:
    with Store(store_url) as store:
        with store.write() as conn:
            command.upgrade(_alembic_config(conn), "0001")
        assert store.schema_version() == "0001"
        with store.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO fetch_failures (kind, key, error, attempts, first_failed_at, "
                    "last_failed_at, resolved_at) VALUES "
                    "('movie', '1', 'HTTP 500', 9, :old, :now, NULL), "
                    "('movie', '2', 'timeout', 1, :old, :now, :now), "
                    "('poster', '3', 'http_503', 2, :now, :now, NULL)"
                ),
                _timestamps(store),
            )

        assert store.upgrade() == ("0001", head_version())
        columns = {c["name"] for c in inspect(store.engine).get_columns("fetch_failures")}
        assert {"state", "abandoned_at"} <= columns
        states = {
            e.key: (e.state, e.attempts, e.abandoned_at)
            for e in store.failures.entries(states=["open", "abandoned", "resolved"])
        }
        assert states == {
            "1": ("open", 9, None),
            "2": ("resolved", 1, None),
            "3": ("open", 2, None),
        }
        # An open failure already past the limits is abandoned at its next failure.
        assert fail(store, "1").state == "abandoned"
        assert fail(store, "3", kind="poster").state == "open"
        # The one-unresolved-row-per-key rule still holds, abandoned rows included.
        with pytest.raises(IntegrityError), store.write() as conn:
            conn.execute(
                schema.fetch_failures.insert().values(
                    kind="movie",
                    key="1",
                    attempts=1,
                    first_failed_at=schema.utcnow(),
                    last_failed_at=schema.utcnow(),
                )
            )

        # And back: 0001 reads abandoned failures as unresolved ones.
        with store.write() as conn:
            command.downgrade(_alembic_config(conn), "0001")
        columns = {c["name"] for c in inspect(store.engine).get_columns("fetch_failures")}
        assert "state" not in columns and "abandoned_at" not in columns
        with store.read() as conn:
            unresolved = conn.execute(
                text("SELECT key FROM fetch_failures WHERE resolved_at IS NULL ORDER BY key")
            ).scalars()
            assert list(unresolved) == ["1", "3"]
        store.upgrade()
        assert store.failures.abandoned_keys("movie") == set()
        assert [f.key for f in store.failures.open("movie")] == ["1"]


def _timestamps(store: Store) -> dict[str, object]:
    now = schema.utcnow()
    old = now - dt.timedelta(days=20)
    if store.dialect == "sqlite":
        return {"now": schema.sqlite_timestamp(now), "old": schema.sqlite_timestamp(old)}
    return {"now": now, "old": old}
