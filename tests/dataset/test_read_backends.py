"""The two store readers (ADBC, SQLAlchemy) and the two backends give the same builds."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from reelset.config import settings_from_dict
from reelset.dataset import read_child
from reelset.dataset.build import build_dataset
from reelset.dataset.read import (
    _snapshot_connection,
    adbc_snapshot,
    choose_reader,
    read_in_child,
    read_store,
    read_store_arrow,
    sqlite_child_request,
)
from reelset.errors import Interrupted, StoreError
from reelset.runs import stop_on_signals
from reelset.storage import Genre, Store, schema
from tests.dataset.conftest import (
    FIXED_NOW,
    POSTER_BYTES,
    TMDB_GENRES,
    movie,
    poster_row,
    random_movies,
)


def _fill(store: Store, posters_dir: Path | None = None) -> None:
    """Movies whose nullable columns are NULL for a long first stretch, then filled.

    ADBC's SQLite driver infers column types from the first batch; these rows make a
    naive read fail (or read strings as int64) at the tiny chunk sizes used below.
    """
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    bare = [
        movie(i, imdb_id=None, original_language=None, overview=None, release_date=None,
              popularity=None, vote_count=None, runtime=None, poster_path=None)
        for i in range(1, 8)
    ]
    store.movies.upsert(
        [
            *bare,
            *random_movies(60, seed=3, start_id=100),
            movie(200, title="Léon: The Professional",
                  overview="  Ein   Killer\tund ein Mädchen. "),
            movie(201, title="léon the professional", overview="Ein Killer und ein Mädchen.",
                  imdb_id="TT0000201 "),
            movie(202, imdb_id="tt0000100", genre_ids=(18, 35), popularity=99.5),
            movie(203, adult=True, original_language="FR"),
            movie(204, genre_ids=()),
            movie(205, overview="No overview found."),
        ]
    )
    store.movies.mark_gone([104, 150])
    posters = [poster_row(i) for i in range(100, 160)]
    posters[5] = poster_row(105, sha="shared")
    posters[6] = poster_row(106, sha="shared")
    posters[7] = poster_row(107, status="failed")
    posters[8] = {**poster_row(108), "phash": None}
    posters[9] = poster_row(109, phash=f"{int(posters[10]['phash'], 16) ^ 3:016x}")
    for row in posters if posters_dir is not None else []:
        if row["file_path"] is not None:
            target = posters_dir / row["file_path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(POSTER_BYTES[row["sha256"]])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    imdb = {"tt0000100": ["Drama", "Biography"], "tt0000101": ["Comedy", "Film-Noir"],
            "tt0000201": ["Crime"], "tt0009999": ["Western"]}
    with store.write() as conn:
        conn.execute(schema.posters.insert(), posters)
        conn.execute(
            schema.imdb_titles.insert(),
            [{"imdb_id": i, "title_type": "movie", "imported_at": now} for i in imdb],
        )
        conn.execute(
            schema.imdb_title_genres.insert(),
            [{"imdb_id": i, "genre": g} for i, gs in imdb.items() for g in gs],
        )


def _tables(snapshot: object) -> dict[str, pa.Table]:
    names = ("movies", "movie_genres", "genres", "posters", "imdb_genres", "inactive")
    return {name: getattr(snapshot, name) for name in names}


@pytest.mark.parametrize("chunk_rows", [1, 3, 50_000])
def test_adbc_and_sqlalchemy_snapshots_are_identical(store: Store, chunk_rows: int) -> None:
    _fill(store)
    adbc = read_store(store, chunk_rows=chunk_rows, reader="adbc")
    plain = read_store(store, chunk_rows=chunk_rows, reader="sqlalchemy")
    for name, table in _tables(adbc).items():
        other = _tables(plain)[name]
        assert table.schema.equals(other.schema, check_metadata=True), name
        assert table.equals(other), name
    assert adbc.store == plain.store
    movies = adbc.movies.to_pydict()
    assert movies["imdb_id"][:7] == [None] * 7
    assert movies["overview"][:7] == [None] * 7
    assert movies["popularity"][:7] == [None] * 7
    assert movies["adult"][movies["tmdb_id"].index(203)] is True
    assert 104 not in movies["tmdb_id"]
    assert adbc.inactive.column("tmdb_id").to_pylist() == [104, 150]
    assert adbc.posters.column("phash").null_count == 1


def _settings(url: str, tmp_path: Path, folder: str) -> object:
    return settings_from_dict(
        {
            "storage": {"url": url, "posters_dir": str(tmp_path / "posters")},
            "build": {"output_dir": str(tmp_path / folder), "min_genre_count": 1,
                      "images": "reference", "label_source": "union"},
        },
        base_dir=tmp_path,
    )


@pytest.mark.postgres
def test_sqlite_and_postgresql_builds_are_identical(
    sqlite_url: str, pg_url: str, tmp_path: Path
) -> None:
    results = {}
    files = {}
    for backend, url in (("sqlite", sqlite_url), ("postgresql", pg_url)):
        store = Store(url)
        store.upgrade()
        _fill(store, tmp_path / "posters")
        store.close()
        result = build_dataset(_settings(url, tmp_path, backend), now=FIXED_NOW)  # type: ignore[arg-type]
        assert result.status == "built"
        results[backend] = result
        assert result.path is not None
        files[backend] = {
            p.relative_to(result.path).as_posix(): p.read_bytes()
            for p in sorted(result.path.rglob("*.parquet"))
        }
    assert results["sqlite"].fingerprint == results["postgresql"].fingerprint
    assert results["sqlite"].rows == results["postgresql"].rows
    assert results["sqlite"].removed == results["postgresql"].removed
    assert files["sqlite"].keys() == files["postgresql"].keys()
    assert "data/train.parquet" in files["sqlite"]
    for name, content in files["sqlite"].items():
        assert content == files["postgresql"][name], name


@pytest.mark.postgres
def test_the_adbc_snapshot_does_not_see_later_writes(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        store.upgrade()
        store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
        store.movies.upsert([movie(1)])
        with adbc_snapshot(store) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM movies")
                assert cursor.fetchone()[0] == 1
            store.movies.upsert([movie(2), movie(3)])  # committed by another connection
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM movies")
                assert cursor.fetchone()[0] == 1
        with adbc_snapshot(store) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM movies")
            assert cursor.fetchone()[0] == 3
    finally:
        store.close()


def test_the_sqlalchemy_snapshot_does_not_see_later_writes(store: Store) -> None:
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    store.movies.upsert([movie(1)])
    with _snapshot_connection(store) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM movies").scalar_one() == 1
        store.movies.upsert([movie(2)])
        assert conn.exec_driver_sql("SELECT count(*) FROM movies").scalar_one() == 1


def test_reader_choice(sqlite_store: Store) -> None:
    assert choose_reader(sqlite_store) == "adbc"  # in a child process: see read_child
    assert choose_reader(sqlite_store, "adbc") == "adbc"
    assert choose_reader(sqlite_store, "sqlalchemy") == "sqlalchemy"
    with pytest.raises(ValueError, match="unknown reader"):
        choose_reader(sqlite_store, "odbc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PostgreSQL"):
        adbc_snapshot(sqlite_store).__enter__()  # never a second SQLite in this process
    memory = Store("sqlite:///:memory:")
    try:
        assert choose_reader(memory) == "sqlalchemy"
        with pytest.raises(StoreError, match="adbc reader needs"):
            choose_reader(memory, "adbc")
    finally:
        memory.close()


@pytest.mark.postgres
def test_adbc_errors_are_one_line_without_the_password(pg_url: str) -> None:
    url = make_url(pg_url).set(password="s3cret-pass", database="reelset_no_such_db")
    store = Store(url.render_as_string(hide_password=False))
    try:
        assert choose_reader(store) == "adbc"  # the default on PostgreSQL
        with pytest.raises(StoreError) as caught, adbc_snapshot(store):
            pass
    finally:
        store.close()
    message = str(caught.value)
    assert "s3cret-pass" not in message
    assert "\n" not in message
    assert message.startswith("store postgresql+psycopg://")


def test_an_adbc_read_leaves_the_stores_own_connections_working(sqlite_url: str) -> None:
    # ADBC's SQLite is a second SQLite library in the process: had it been able to write,
    # closing it would have checkpointed and deleted the WAL under these connections.
    writer, builder = Store(sqlite_url), Store(sqlite_url)
    try:
        writer.upgrade()
        writer.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
        for tmdb_id in (1, 2, 3):
            writer.movies.upsert([movie(tmdb_id)])  # its pooled connection stays open
            snapshot = read_store(builder, reader="adbc")
            assert snapshot.movies.num_rows == tmdb_id
            with builder.write() as conn:
                conn.exec_driver_sql("UPDATE movies SET popularity = 2.0")
    finally:
        writer.close()
        builder.close()


# --- the SQLite read through ADBC, in a child process -----------------------------------


ROOT = Path(__file__).resolve().parents[2]


def _reading_child() -> int:
    """The pid of this process's reading child (see reelset.dataset.read_child)."""
    for _ in range(500):  # a process just started shows its command line a moment later
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                if b"read_child.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        time.sleep(0.01)
    raise AssertionError("no reading child")


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie no one reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _wait_gone(pid: int) -> bool:
    for _ in range(200):
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_child_reads_one_snapshot_while_another_process_writes(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    n = 300
    try:
        store.upgrade()
        store.movies.upsert_genres(Genre(i, name) for i, name in TMDB_GENRES.items())
        store.movies.upsert([movie(i) for i in range(1, n + 1)])
        # Another process marks movies 1, 2, 3, ... gone, one committed write at a time.
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, sqlite_url, str(n)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "1"  # it has started writing
        overlapped = 0
        while writer.poll() is None:
            before = _gone_count(store)
            tables = read_store_arrow(store, chunk_rows=1, reader="adbc")
            overlapped += _gone_count(store) > before
            # movies are read first and inactive last: one snapshot has every movie in
            # exactly one of them, and the writer's order (1..m gone, the rest active).
            active = tables["movies"].column("tmdb_id").to_pylist()
            inactive = tables["inactive"].column("tmdb_id").to_pylist()
            m = len(inactive)
            assert inactive == list(range(1, m + 1))
            assert active == list(range(m + 1, n + 1))
            assert set(tables["movie_genres"].column("tmdb_id").to_pylist()) == set(active)
        _, errors = writer.communicate()
        assert writer.returncode == 0, errors
        assert overlapped  # some writes were committed while a read ran
        with store.write() as conn:  # the store's own connections still work
            conn.exec_driver_sql("UPDATE movies SET popularity = 2.0")
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    finally:
        store.close()


WRITER = """
import sys, time
from sqlalchemy import text
from reelset.storage import Store
store = Store(sys.argv[1])
for tmdb_id in range(1, int(sys.argv[2]) + 1):
    with store.write() as conn:
        conn.execute(text("UPDATE movies SET status = 'gone' WHERE tmdb_id = :i"),
                     {"i": tmdb_id})
    print(tmdb_id, flush=True)
    time.sleep(0.01)
store.close()
"""


def _gone_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM movies WHERE status != 'active'").scalar_one())


@pytest.mark.parametrize("case", ["missing", "corrupt", "locked"])
def test_child_errors_are_one_line_store_errors(
    sqlite_store: Store, tmp_path: Path, case: str
) -> None:
    request = sqlite_child_request(sqlite_store)
    expected = {"missing": "no such file", "corrupt": "file is not a database",
                "locked": "database is locked"}[case]
    if case == "missing":
        request["database"] = str(tmp_path / "nowhere" / "reelset.db")
    elif case == "corrupt":
        (tmp_path / "corrupt.db").write_bytes(b"not a SQLite file" * 500)
        request["database"] = str(tmp_path / "corrupt.db")
    else:  # another connection holds the store's file exclusively
        sqlite_store.close()
        holder = sqlite3.connect(request["database"], isolation_level=None)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM genres")
        holder.execute("COMMIT")
        request["busy_timeout_ms"] = 50
    tables: dict[str, pa.Table] = {}
    with pytest.raises(StoreError) as caught:
        read_in_child(request, "sqlite:///store.db", tables, lambda: None)
    message = str(caught.value)
    assert message.startswith("store sqlite:///store.db: ")
    assert expected in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert not tables


# The tests below read a store big enough that its child, one row a batch, fills the pipe
# and waits: it is still running whenever the test looks for it.


def test_a_killed_child_is_a_one_line_store_error(big_store_url: str) -> None:
    killed = []

    def kill_child() -> None:
        killed.append(_reading_child())
        os.kill(killed[0], signal.SIGKILL)

    store = Store(big_store_url)
    try:
        with pytest.raises(StoreError, match="the reading process was killed by SIGKILL"):
            read_store_arrow(store, chunk_rows=1, while_reading=kill_child)
    finally:
        store.close()
    assert _gone(killed[0])


def test_a_signal_stops_the_read_and_its_child_at_once(big_store_url: str) -> None:
    child: list[int] = []
    reading = threading.Event()

    def interrupt_later() -> None:
        time.sleep(0.3)
        if reading.is_set():  # still inside the read: the child is stopped
            os.kill(os.getpid(), signal.SIGTERM)

    def stop_child() -> None:
        child.append(_reading_child())
        os.kill(child[0], signal.SIGSTOP)  # the read cannot end by itself now
        threading.Thread(target=interrupt_later).start()

    store = Store(big_store_url)
    reading.set()
    try:
        with pytest.raises(Interrupted), stop_on_signals(threading.Event(), at_once=True):
            read_store_arrow(store, chunk_rows=1, while_reading=stop_child)
    finally:
        reading.clear()
        store.close()
    assert _gone(child[0])  # killed and reaped before the error left the read


def _child_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store big enough that its child, read one row a batch, fills the pipe."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'reelset.db'}"
    store = Store(url)
    store.upgrade()
    store.movies.upsert_genres(Genre(i, name) for i, name in TMDB_GENRES.items())
    store.movies.upsert(random_movies(3000, seed=5))
    store.close()
    return url


@pytest.fixture(scope="module")
def big_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _child_store(tmp_path_factory)


HOLDER = """
import sys, time
from reelset.dataset.read import read_store_arrow
from reelset.storage import Store
from tests.dataset.test_read_backends import _reading_child

def hold():  # tell the test the child's pid, then never read what it sends
    print(_reading_child(), flush=True)
    time.sleep(120)

read_store_arrow(Store(sys.argv[1]), chunk_rows=1, while_reading=hold)
"""


def test_the_child_dies_with_a_killed_parent(big_store_url: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", HOLDER, big_store_url],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(1.0)
        assert not _gone(child)  # blocked on the full pipe
        parent.kill()
        parent.wait()
        assert _wait_gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_child_exits_when_its_stdin_ends(big_store_url: str) -> None:
    # Where the kernel cannot kill the child with its parent, the end of stdin does.
    store = Store(big_store_url)
    try:
        request = sqlite_child_request(store, chunk_rows=1)
    finally:
        store.close()
    child = subprocess.Popen([sys.executable, "-P", read_child.__file__],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(request).encode() + b"\n")
        child.stdin.flush()
        assert child.stdout.read(1000)  # it reads and writes; the pipe then fills
        time.sleep(0.5)
        assert child.poll() is None
        child.stdin.close()
        assert child.wait(30) == read_child.EXIT_STORE
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_without_the_driver_in_the_child_the_read_falls_back(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fill(sqlite_store)
    fake = tmp_path / "no_driver"
    fake.mkdir()
    (fake / "adbc_driver_sqlite.py").write_text("raise ImportError('no driver here')\n")
    expected = read_store_arrow(sqlite_store, reader="sqlalchemy")
    monkeypatch.setenv("PYTHONPATH", str(fake))  # the child's, not this process's path
    tables = read_store_arrow(sqlite_store)
    for name, table in expected.items():
        assert tables[name].equals(table), name
    assert "the ADBC SQLite driver cannot be loaded: no driver here" in caplog.text


def test_a_build_process_never_loads_a_second_sqlite(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.upgrade()
    _fill(store)
    store.close()
    code = (
        "import sys\n"
        "from reelset.dataset.read import read_store\n"
        "from reelset.storage import Store\n"
        "snapshot = read_store(Store(sys.argv[1]))\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(snapshot.movies.num_rows, 'adbc_driver_sqlite' in sys.modules,"
        " 'libadbc_driver_sqlite' in maps)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, sqlite_url], capture_output=True,
                         text=True, check=True).stdout.split()
    assert int(out[0]) > 60 and out[1:] == ["False", "False"]
