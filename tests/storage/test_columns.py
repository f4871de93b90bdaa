"""One column list: rows, the contract and the content hash all follow ``storage/schema.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text

from reelset.storage import Genre, LockHolder, MovieRecord, Store, UpsertResult, schema
from reelset.storage.imdb import ImdbTitle, ImdbUpsertResult
from reelset.storage.movies import GENRE_COLUMNS, RECORD_COLUMNS
from reelset.storage.posters import POSTER_COLUMNS, PosterRow
from reelset.storage.schema import CONTRACT_TABLES, VIEW_NAMES

DOCUMENTED_IN_V1: dict[str, tuple[str, ...]] = {
    "movies": (
        "tmdb_id",
        "imdb_id",
        "title",
        "original_title",
        "original_language",
        "overview",
        "tagline",
        "release_date",
        "year",
        "runtime",
        "popularity",
        "vote_average",
        "vote_count",
        "adult",
        "poster_path",
        "first_seen_at",
        "updated_at",
    ),
    "genres": ("genre_id", "name", "origin"),
    "movie_genres": ("tmdb_id", "genre_id"),
    "posters": (
        "tmdb_id",
        "status",
        "sha256",
        "file_path",
        "width",
        "height",
        "format",
        "bytes",
        "phash",
        "source_url",
        "error",
        "downloaded_at",
    ),
    "scrape_runs": ("run_id", "command", "params", "status", "started_at", "finished_at", "counts"),
    "fetch_failures": (
        "failure_id",
        "run_id",
        "kind",
        "key",
        "http_status",
        "error",
        "attempts",
        "first_failed_at",
        "last_failed_at",
        "resolved_at",
    ),
    "imdb_titles": (
        "imdb_id",
        "title_type",
        "primary_title",
        "original_title",
        "is_adult",
        "start_year",
        "runtime_minutes",
        "average_rating",
        "num_votes",
        "imported_at",
    ),
    "imdb_title_genres": ("imdb_id", "genre"),
    "movie_genre_names": ("tmdb_id", "title", "year", "genres"),
    "movie_imdb": ("tmdb_id", "imdb_id", "title", "imdb_genres", "average_rating", "num_votes"),
}
"""The contract as first published: a name may be added to it, never dropped or renamed."""


def full_record(tmdb_id: int = 603, **changes: Any) -> MovieRecord:
    """A movie with every field set (none left at its default)."""
    record = MovieRecord(
        tmdb_id=tmdb_id,
        title="The Matrix",
        imdb_id="tt0133093",
        original_title="The Matrix",
        original_language="en",
        overview="A hacker learns the truth.",
        tagline="Welcome to the Real World.",
        release_date=dt.date(1999, 3, 30),
        runtime=136,
        popularity=83.5,
        vote_average=8.2,
        vote_count=26000,
        adult=False,
        poster_path="/f89U3ADr1oiB1s9GkdPOEpXUk5H.jpg",
        genre_ids=(878, 28),
        keywords=("hacker", "simulated reality"),
        status="active",
    )
    return dataclasses.replace(record, **changes)


def test_the_documented_names_are_kept() -> None:
    for name, columns in DOCUMENTED_IN_V1.items():
        assert name in CONTRACT_TABLES, name
        missing = set(columns) - set(CONTRACT_TABLES[name])
        assert not missing, (name, missing)
    assert set(VIEW_NAMES) <= set(CONTRACT_TABLES)


def test_the_contract_is_read_from_the_column_marks() -> None:
    for name, table in schema.metadata.tables.items():
        marked = tuple(c.name for c in table.c if c.info.get(schema.CONTRACT))
        assert CONTRACT_TABLES.get(name, ()) == marked, name
    assert "content_hash" not in CONTRACT_TABLES["movies"]  # internal columns stay out


def test_column_names_follow_the_table_and_refuse_unknown_names() -> None:
    assert schema.column_names(schema.genres) == ("genre_id", "name", "origin")
    assert schema.column_names(schema.genres, without=("origin",)) == ("genre_id", "name")
    with pytest.raises(ValueError, match="genres has no column nope"):
        schema.column_names(schema.genres, without=("nope",))


def test_records_carry_the_columns_they_fill() -> None:
    def attributes(cls: type) -> set[str]:
        properties = {n for n, v in vars(cls).items() if isinstance(v, property)}
        return {f.name for f in dataclasses.fields(cls)} | properties

    movie_columns = set(schema.movies.c.keys())
    assert set(RECORD_COLUMNS) <= attributes(MovieRecord)
    assert movie_columns - set(RECORD_COLUMNS) == {"content_hash", "first_seen_at", "updated_at"}
    assert set(GENRE_COLUMNS) == attributes(Genre)
    assert set(POSTER_COLUMNS) == attributes(PosterRow) == set(schema.posters.c.keys())
    assert set(schema.run_lock.c.keys()) == attributes(LockHolder)
    assert set(schema.imdb_titles.c.keys()) - {"imported_at"} <= attributes(ImdbTitle)


def test_content_hash_values_are_pinned() -> None:
    # Stores compare these with the hashes they hold: a changed value would rewrite every
    # movie on the next scrape. The payload must stay exactly as it is.
    assert full_record().content_hash() == "4ba89faa690a4cadf139f5c1b3d3fea8"
    assert MovieRecord(tmdb_id=1, title="x").content_hash() == "d486921320aa786c308d109662a9c6e8"
    amelie = MovieRecord(
        tmdb_id=2, title="Amélie", genre_ids=(35, 10749, 35), keywords=(), status="gone"
    )
    assert amelie.content_hash() == "6a98b330e04c438ed861debe651c0857"


def _other(value: Any) -> Any:
    """A different value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "!"
    if isinstance(value, dt.date):
        return value + dt.timedelta(days=1)
    if isinstance(value, tuple):
        return (*value, value[0] + value[0])
    raise AssertionError(f"no other value for {value!r}")


def test_content_hash_covers_every_field() -> None:
    base = full_record()
    for field in dataclasses.fields(MovieRecord):
        changed = dataclasses.replace(base, **{field.name: _other(getattr(base, field.name))})
        assert changed.content_hash() != base.content_hash(), field.name
    # The genre set is what counts, not its order or repeats.
    same = dataclasses.replace(base, genre_ids=(28, 878, 28))
    assert same.content_hash() == base.content_hash()
    assert full_record(keywords=None).content_hash() != full_record(keywords=()).content_hash()


def _stored(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def test_every_movie_column_is_written_from_the_record(store: Store) -> None:
    inserted = [
        full_record(1, keywords=("café", "東京")),
        full_record(2, adult=True, keywords=None),
    ]
    store.movies.upsert(inserted)
    with store.read() as conn:
        rows = {r.tmdb_id: r._mapping for r in conn.execute(select(schema.movies))}
    for record in inserted:
        for name in RECORD_COLUMNS:
            assert rows[record.tmdb_id][name] == _stored(getattr(record, name)), name
        assert rows[record.tmdb_id]["content_hash"] == record.content_hash()

    # Written by an update instead: the same values, stored the same way.
    store.movies.upsert([full_record(3, title="old"), full_record(4, title="old")])
    result = store.movies.upsert(
        [full_record(3, keywords=("café", "東京")), full_record(4, adult=True, keywords=None)]
    )
    assert result.updated_ids == [3, 4]
    columns = ", ".join(c for c in RECORD_COLUMNS if c != "tmdb_id")
    with store.read() as conn:
        raw = {
            r[0]: tuple(r[1:]) for r in conn.execute(text(f"SELECT tmdb_id, {columns} FROM movies"))
        }
        keywords_null = conn.execute(
            text("SELECT tmdb_id FROM movies WHERE keywords IS NULL ORDER BY tmdb_id")
        ).scalars()
        assert list(keywords_null) == [2, 4]  # SQL NULL, not JSON null, both ways
    assert raw[3] == raw[1] and raw[4] == raw[2]


def test_bulk_insert_inserts_and_upserts(store: Store) -> None:
    g = schema.genres
    with store.write() as conn:
        store.bulk_insert(conn, g, [(1, "A", "tmdb"), (2, "B", "tmdb")])
        store.bulk_insert(conn, g, [(1, "A2", "patched")], conflict=("genre_id",))
        store.bulk_insert(conn, g, [(2, "B2", "patched")], conflict=("genre_id",), update=("name",))
        store.bulk_insert(
            conn,
            g,
            [(Genre(2, "B3", "unknown"),), (Genre(3, "C"),)],
            fields=GENRE_COLUMNS,
            conflict=("genre_id",),
            update=(),
        )
        store.bulk_insert(conn, g, [])
    with store.read() as conn:
        rows = [tuple(r) for r in conn.execute(select(g).order_by(g.c.genre_id))]
    assert rows == [(1, "A2", "patched"), (2, "B2", "tmdb"), (3, "C", "tmdb")]


def test_bulk_update_converts_like_bulk_insert(store: Store) -> None:
    c = schema.checkpoints
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(hours=1)
    with store.write() as conn:
        store.bulk_insert(
            conn,
            c,
            [("a", None, {"x": "é"}), ("b", 7, [1])],
            columns=("name", "run_id", "value"),
            constants={"updated_at": t0},
        )
        store.bulk_update(
            conn,
            c,
            [([1, 2], "a")],
            key=("name",),
            columns=("value", "name"),
            constants={"updated_at": t1},
        )
    with store.read() as conn:
        rows = {r.name: r for r in conn.execute(select(c))}
    assert (rows["a"].value, rows["a"].run_id, rows["a"].updated_at) == ([1, 2], None, t1)
    assert (rows["b"].value, rows["b"].run_id, rows["b"].updated_at) == ([1], 7, t0)


def test_write_helpers_refuse_bad_column_lists(sqlite_store: Store) -> None:
    g = schema.genres
    with pytest.raises(ValueError, match="genres"):
        sqlite_store.driver_rows(g, [], columns=("genre_id", "nope"))
    with pytest.raises(ValueError, match="genres"):
        sqlite_store.driver_rows(g, [], columns=("genre_id", "name"), constants={"name": "x"})
    with sqlite_store.write() as conn, pytest.raises(ValueError, match="key"):
        sqlite_store.bulk_update(conn, g, [("x",)], key=("genre_id",), columns=("name",))
    with pytest.raises(ValueError, match="no value"):
        sqlite_store.checkpoints.set("x", None)


def test_driver_rows_convert_only_what_the_driver_cannot_take(sqlite_store: Store) -> None:
    now = dt.datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=dt.UTC)
    record = full_record(keywords=("é",))
    names, rows = sqlite_store.driver_rows(
        schema.movies,
        [(record, "hash")],
        fields=RECORD_COLUMNS,
        constants={"first_seen_at": now, "updated_at": now},
    )
    assert names == (*RECORD_COLUMNS, "content_hash", "first_seen_at", "updated_at")
    row = dict(zip(names, rows[0], strict=True))
    assert row["release_date"] == "1999-03-30" and row["keywords"] == '["é"]'
    assert row["updated_at"] == "2026-02-03T04:05:06.000789Z"
    assert row["title"] == "The Matrix" and row["content_hash"] == "hash"


def test_upsert_counts_add_up_field_by_field() -> None:
    result = UpsertResult(new=1, new_ids=[1])
    ids = result.new_ids
    result += UpsertResult(new=2, updated=1, unchanged=4, new_ids=[2, 3], updated_ids=[9])
    assert result == UpsertResult(new=3, updated=1, unchanged=4, new_ids=[1, 2, 3], updated_ids=[9])
    assert result.new_ids is ids
    imdb = ImdbUpsertResult(new=1, genre_rows=2)
    imdb += ImdbUpsertResult(unchanged=5, genre_rows=1)
    assert imdb == ImdbUpsertResult(new=1, updated=0, unchanged=5, genre_rows=3)
