"""The two store readers (ADBC, SQLAlchemy) and the two backends give the same builds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from reelset.config import settings_from_dict
from reelset.dataset.build import build_dataset
from reelset.dataset.read import (
    _snapshot_connection,
    adbc_snapshot,
    choose_reader,
    read_store,
)
from reelset.errors import StoreError
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


def test_the_adbc_snapshot_does_not_see_later_writes(store: Store) -> None:
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


def test_the_sqlalchemy_snapshot_does_not_see_later_writes(store: Store) -> None:
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    store.movies.upsert([movie(1)])
    with _snapshot_connection(store) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM movies").scalar_one() == 1
        store.movies.upsert([movie(2)])
        assert conn.exec_driver_sql("SELECT count(*) FROM movies").scalar_one() == 1


def test_reader_choice(sqlite_store: Store) -> None:
    assert choose_reader(sqlite_store) == "sqlalchemy"  # two SQLite copies share no locks
    assert choose_reader(sqlite_store, "adbc") == "adbc"
    assert choose_reader(sqlite_store, "sqlalchemy") == "sqlalchemy"
    with pytest.raises(ValueError, match="unknown reader"):
        choose_reader(sqlite_store, "odbc")  # type: ignore[arg-type]
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
