"""The store: schema contract, migrations, idempotent upserts, runs, failures, the lock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from reelset.errors import Interrupted, LockedError, StoreError
from reelset.runs import recorded_run
from reelset.storage import Genre, LockHolder, MovieRecord, Store, head_version, schema
from reelset.storage.schema import CONTRACT_TABLES, VIEW_NAMES


def movie(tmdb_id: int, **kw: object) -> MovieRecord:
    base: dict[str, object] = {
        "title": f"Movie {tmdb_id}",
        "imdb_id": f"tt{tmdb_id:07d}",
        "overview": "A film about things that happen to people.",
        "release_date": dt.date(2001, 2, 3),
        "popularity": 1.5,
        "genre_ids": (18, 53),
    }
    base.update(kw)
    return MovieRecord(tmdb_id=tmdb_id, **base)  # type: ignore[arg-type]


def hold_lock(
    store: Store, name: str, *, run_id: int, pid: int = 1, hostname: str = "another-host"
) -> None:
    """Write a ``run_lock`` row as another process holding ``name`` would."""
    now = schema.utcnow()
    holder = LockHolder(name, run_id, pid, hostname, acquired_at=now, heartbeat_at=now)
    with store.write() as conn:
        conn.execute(schema.run_lock.insert().values(dataclasses.asdict(holder)))


def table_rows(store: Store, table: str, order: str) -> list[tuple[object, ...]]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]


def test_schema_contract(store: Store) -> None:
    insp = inspect(store.engine)
    tables = set(insp.get_table_names())
    views = set(insp.get_view_names())
    assert set(VIEW_NAMES) <= views
    for name, columns in CONTRACT_TABLES.items():
        if name in VIEW_NAMES:
            with store.read() as conn:
                got = list(conn.execute(text(f"SELECT * FROM {name} LIMIT 0")).keys())
            assert got == list(columns), name
        else:
            assert name in tables
            got_cols = {c["name"] for c in insp.get_columns(name)}
            assert set(columns) <= got_cols, (name, set(columns) - got_cols)
    assert insp.get_pk_constraint("movie_genres")["constrained_columns"] == ["tmdb_id", "genre_id"]
    fks = {fk["referred_table"] for fk in insp.get_foreign_keys("movie_genres")}
    assert fks == {"movies", "genres"}
    assert any(
        ix["column_names"] == ["imdb_id"] and not ix["unique"] for ix in insp.get_indexes("movies")
    )


def test_migrations_match_schema_module(store: Store) -> None:
    def include_name(name: str | None, type_: str, _parents: object) -> bool:
        # The FTS5 index and its shadow tables are SQLite's, not SQLAlchemy tables.
        return not (type_ == "table" and name is not None and schema.is_fts_name(name))

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def test_init_and_upgrade_are_idempotent(store_url: str) -> None:
    with Store(store_url) as s:
        assert s.upgrade() == (None, head_version())
        assert s.upgrade() == (head_version(), head_version())
        assert s.check_version() == head_version()


def test_newer_store_is_refused(store: Store) -> None:
    with store.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this reelset"):
        store.upgrade()
    with pytest.raises(StoreError, match="newer than this reelset"):
        store.check_version()


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE movies (x int)")
    con.commit()
    con.close()
    with Store(f"sqlite:///{path}") as s, pytest.raises(StoreError, match="no reelset schema"):
        s.upgrade()


def test_sqlite_pragmas(sqlite_store: Store) -> None:
    with sqlite_store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_upsert_is_idempotent_and_detects_changes(store: Store) -> None:
    store.movies.upsert_genres([Genre(18, "Drama"), Genre(53, "Thriller"), Genre(35, "Comedy")])
    first = store.movies.upsert([movie(1), movie(2), movie(3)])
    assert (first.new, first.updated, first.unchanged) == (3, 0, 0)
    snapshot = table_rows(store, "movies", "tmdb_id")
    genres_before = table_rows(store, "movie_genres", "tmdb_id, genre_id")

    again = store.movies.upsert([movie(1), movie(2), movie(3)])
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    assert table_rows(store, "movies", "tmdb_id") == snapshot  # not even updated_at moved
    assert table_rows(store, "movie_genres", "tmdb_id, genre_id") == genres_before

    changed = store.movies.upsert(
        [movie(1, title="New title"), movie(2, genre_ids=(35,)), movie(3)]
    )
    assert (changed.new, changed.updated, changed.unchanged) == (0, 2, 1)
    assert sorted(changed.updated_ids) == [1, 2]
    after = {r[0]: r for r in table_rows(store, "movies", "tmdb_id")}
    before = {r[0]: r for r in snapshot}
    assert after[3] == before[3]
    with store.read() as conn:
        m = schema.movies
        row1 = conn.execute(select(m).where(m.c.tmdb_id == 1)).one()
        assert row1.title == "New title"
        assert (
            row1.first_seen_at
            == conn.execute(select(m.c.first_seen_at).where(m.c.tmdb_id == 3)).scalar()
        )
        assert row1.updated_at > row1.first_seen_at
        genres2 = (
            conn.execute(
                select(schema.movie_genres.c.genre_id).where(schema.movie_genres.c.tmdb_id == 2)
            )
            .scalars()
            .all()
        )
        assert genres2 == [35]
        assert conn.execute(select(m.c.year).where(m.c.tmdb_id == 3)).scalar() == 2001


def test_upsert_in_batches_and_duplicates_within_a_batch(store: Store) -> None:
    store.batch_size = 7
    records = [movie(i) for i in range(1, 51)] + [movie(5, title="last wins")]
    result = store.movies.upsert(records)
    assert result.new == 50
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM movies")).scalar() == 50
        assert (
            conn.execute(text("SELECT title FROM movies WHERE tmdb_id = 5")).scalar() == "last wins"
        )
        assert conn.execute(text("SELECT count(*) FROM movie_genres")).scalar() == 100


def test_unknown_genre_ids_get_a_placeholder(store: Store) -> None:
    store.movies.upsert_genres([Genre(18, "Drama")])
    store.movies.upsert([movie(1, genre_ids=(18, 4242))])
    with store.read() as conn:
        row = conn.execute(text("SELECT name, origin FROM genres WHERE genre_id = 4242")).one()
        assert tuple(row) == ("Unknown (4242)", "unknown")
        names = conn.execute(
            text("SELECT genres FROM movie_genre_names WHERE tmdb_id = 1")
        ).scalar()
        assert names == "Drama, Unknown (4242)"
    # a later genre list that knows the id renames it
    store.movies.upsert_genres([Genre(4242, "Foreign", "patched")])
    with store.read() as conn:
        assert (
            conn.execute(text("SELECT origin FROM genres WHERE genre_id = 4242")).scalar()
            == "patched"
        )


def test_shared_imdb_ids_are_allowed(store: Store) -> None:
    store.movies.upsert([movie(1, imdb_id="tt0000001"), movie(2, imdb_id="tt0000001")])
    with store.read() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM movies WHERE imdb_id = 'tt0000001'")).scalar()
            == 2
        )


def test_mark_gone_and_fetched_since(store: Store) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    store.movies.upsert([movie(1), movie(2)], now=t0)
    store.movies.upsert([movie(2)], now=t0 + dt.timedelta(days=10))
    assert store.movies.fetched_since([1, 2, 3], t0 + dt.timedelta(days=5)) == {2}
    assert store.movies.mark_gone([1]) == 1
    assert store.movies.mark_gone([1]) == 0
    with store.read() as conn:
        assert conn.execute(text("SELECT status FROM movies WHERE tmdb_id = 1")).scalar() == "gone"
    # a movie that comes back is active again
    assert store.movies.upsert([movie(1)]).updated == 1


def test_runs_and_failures(store: Store) -> None:
    run = store.runs.start("scrape", {"strategy": "export"})
    store.failures.record("movie", "7", run_id=run, error="HTTP 500", http_status=500)
    store.failures.record("movie", "7", run_id=run, error="HTTP 502", http_status=502)
    store.failures.record("movie", "8", run_id=run, error="timeout")
    failures = store.failures.open("movie")
    assert [(f.key, f.attempts, f.http_status) for f in failures] == [("7", 2, 502), ("8", 1, None)]
    assert store.failures.resolve("movie", ["7"]) == 1
    assert [f.key for f in store.failures.open("movie")] == ["8"]
    store.failures.record("movie", "7", run_id=run, error="again")  # a new open failure
    assert [f.key for f in store.failures.open("movie")] == ["8", "7"]
    store.runs.finish(run, "partial", counts={"failed": 2})
    last = store.runs.last("scrape")
    assert last is not None and last["status"] == "partial" and last["counts"] == {"failed": 2}
    assert last["finished_at"] is not None and last["params"] == {"strategy": "export"}


def test_lock_is_exclusive_and_stale_locks_are_taken_over(store: Store) -> None:
    store.locks.acquire("scrape", run_id=1)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            from reelset.storage import Store
            from reelset.errors import LockedError
            s = Store({store.url!r})
            try:
                s.locks.acquire("scrape")
            except LockedError as e:
                print(e)
                raise SystemExit(3)
        """),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 3, other.stderr
    assert "locked by run 1" in other.stdout and f"pid {os.getpid()}" in other.stdout
    store.locks.release("scrape")
    assert store.locks.holder("scrape") is None

    # a lock held by a process that no longer exists is taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    hold_lock(store, "scrape", run_id=99, pid=int(dead.stdout), hostname=os.uname().nodename)
    store.locks.acquire("scrape", run_id=100)
    holder = store.locks.holder("scrape")
    assert holder is not None and holder.run_id == 100 and holder.pid == os.getpid()


def test_lock_held_elsewhere_recently_blocks(store: Store) -> None:
    hold_lock(store, "scrape", run_id=5)
    with pytest.raises(LockedError, match=r"run 5 \(pid 1 on another-host"):
        store.locks.acquire("scrape")
    with store.write() as conn:
        conn.execute(
            schema.run_lock.update().values(heartbeat_at=schema.utcnow() - dt.timedelta(hours=1))
        )
    store.locks.acquire("scrape")


def test_checkpoints(store: Store) -> None:
    assert store.checkpoints.get("x") is None
    store.checkpoints.set("x", {"page": 3, "ids": [1, 2]}, run_id=1)
    store.checkpoints.set("x", {"page": 4, "ids": [1, 2]}, run_id=1)
    assert store.checkpoints.get("x") == {"page": 4, "ids": [1, 2]}
    store.checkpoints.delete("x")
    assert store.checkpoints.get("x") is None


def test_timestamps_are_utc_iso_text_on_sqlite(sqlite_store: Store, sqlite_url: str) -> None:
    sqlite_store.movies.upsert([movie(1)])
    path = sqlite_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    (value,) = con.execute("SELECT updated_at FROM movies").fetchone()
    con.close()
    assert value.endswith("Z") and "T" in value
    assert dt.datetime.fromisoformat(value).tzinfo is not None


WRITER = textwrap.dedent("""
    import sys
    from reelset.storage import MovieRecord, Store, Genre
    url, start = sys.argv[1], int(sys.argv[2])
    s = Store(url, batch_size=50)
    s.upgrade()
    s.movies.upsert_genres([Genre(18, "Drama")])
    for i in range(start, start + 2000, 100):
        s.movies.upsert([MovieRecord(tmdb_id=j, title=f"m{j}", genre_ids=(18,))
                         for j in range(i, i + 100)])
    s.movies.upsert([MovieRecord(tmdb_id=j, title=f"shared {j}", genre_ids=(18,))
                     for j in range(10**6, 10**6 + 300)])
    print("ok")
""")


def test_two_processes_write_one_sqlite_store(sqlite_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, sqlite_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in (1, 100_001)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    with Store(sqlite_url) as s, s.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM movies")).scalar() == 4300
        assert conn.execute(text("SELECT count(*) FROM movie_genres")).scalar() == 4300


def _connect_when_all_are_ready(
    store: Store, start: threading.Barrier, errors: list[BaseException]
) -> None:
    start.wait()
    try:
        with store.engine.connect() as conn:
            assert str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()).lower() == "wal"
    except BaseException as exc:  # collected: a thread's failure fails the test
        errors.append(exc)


def test_connections_to_a_new_sqlite_file_at_once_all_switch_it_to_wal(tmp_path: Path) -> None:
    """Switching a new file to WAL at the same moment: SQLite tells one of them
    "database is locked" at once, busy timeout or not; the store waits its turn."""
    for attempt in range(100):
        url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        stores = [Store(url, busy_timeout_s=10) for _ in range(8)]
        start = threading.Barrier(len(stores))
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_connect_when_all_are_ready, args=(store, start, errors))
            for store in stores
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for store in stores:
            store.close()
        assert not errors, errors[0]


def test_recorded_run_records_every_ending_and_releases_locks(store: Store) -> None:
    with recorded_run(store, "job", {"a": 1}, locks=("job", "other")) as run:
        holder = store.locks.holder("job")
        assert holder is not None and holder.run_id == run.run_id
        run.counts, run.status = {"done": 3}, "partial"
    last = store.runs.last("job")
    assert last is not None and (last["status"], last["counts"]) == ("partial", {"done": 3})
    assert store.locks.holder("job") is None and store.locks.holder("other") is None

    with pytest.raises(ValueError), recorded_run(store, "job", {}, locks=("job",)) as run:
        run.counts = {"done": 1}
        raise ValueError("bad row")
    last = store.runs.last("job")
    assert last is not None and (last["status"], last["error"]) == ("failed", "bad row")
    assert last["counts"] == {"done": 1}

    with pytest.raises(Interrupted), recorded_run(store, "job", {}, locks=("job",)):
        raise KeyboardInterrupt
    last = store.runs.last("job")
    assert last is not None and last["status"] == "interrupted"
    assert store.locks.holder("job") is None

    hold_lock(store, "job", run_id=7)  # by a live run elsewhere: refused before it is recorded
    runs_before = store.row_counts()["scrape_runs"]
    with pytest.raises(LockedError), recorded_run(store, "job", {}, locks=("job",)):
        pass
    assert store.row_counts()["scrape_runs"] == runs_before


def test_the_migration_chain_read_without_alembic_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from reelset.storage.store import _alembic_config, _revisions

    script = ScriptDirectory.from_config(_alembic_config())
    assert _revisions() == {rev.revision: rev.down_revision for rev in script.walk_revisions()}
    assert head_version() == script.get_current_head()


def test_opening_a_store_at_the_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reelset.db'}"
    Store(url).upgrade()
    code = (
        "import sys; from reelset.storage import Store; s = Store(sys.argv[1]); "
        "assert s.upgrade()[0] == s.check_version(); "
        "assert 'alembic' not in sys.modules, 'alembic imported'"
    )
    subprocess.run([sys.executable, "-c", code, url], check=True, timeout=120)
