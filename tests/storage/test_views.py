"""The analyst views and ``genre_map`` on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text, update

from reelset.config import settings_from_dict
from reelset.dataset.build import build_dataset
from reelset.dataset.versions import read_manifest
from reelset.storage import Genre, MovieRecord, Store, head_version, schema
from reelset.storage.schema import VIEW_NAMES, VIEWS, view_sql
from reelset.storage.store import _alembic_config

GENRES = {28: "Action", 18: "Drama", 35: "Comedy", 10402: "Music", 878: "Science Fiction",
          10770: "TV Movie", 53: "Thriller"}  # fmt: skip
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def movie(tmdb_id: int, genre_ids: tuple[int, ...] = (18,), **kw: Any) -> MovieRecord:
    base: dict[str, Any] = {
        "title": f"Movie {tmdb_id}",
        "imdb_id": f"tt{tmdb_id:07d}",
        "overview": f"Story number {tmdb_id} about a river and a lantern.",
        "release_date": dt.date(2001, 2, 3),
        "genre_ids": genre_ids,
    }
    base.update(kw)
    return MovieRecord(tmdb_id=tmdb_id, **base)


def add_imdb(store: Store, genres: dict[str, list[str]]) -> None:
    """IMDb titles with their genres, as an import writes them."""
    with store.write() as conn:
        conn.execute(
            schema.imdb_titles.insert(),
            [
                {"imdb_id": i, "title_type": "movie", "imported_at": T0, "average_rating": 7.5,
                 "num_votes": 100}
                for i in genres
            ],
        )  # fmt: skip
        rows = [{"imdb_id": i, "genre": g} for i, gs in genres.items() for g in gs]
        if rows:
            conn.execute(schema.imdb_title_genres.insert(), rows)


def rows(store: Store, sql: str, **params: Any) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


@pytest.fixture
def filled(store: Store) -> Store:
    """Active movies with TMDB and IMDb genres, one without genres, and a gone one."""
    store.movies.upsert_genres(Genre(i, n) for i, n in GENRES.items())
    store.movies.upsert(
        [
            movie(1, (28, 18)),
            movie(2, (), imdb_id="tt0000002"),
            movie(3, (10770, 878, 53)),  # "TV Movie" sorts after "Thriller" bytewise
            movie(4, (35,)),  # gone below
        ]
    )
    store.movies.mark_gone([4])
    add_imdb(store, {"tt0000001": ["Drama", "Biography"], "tt0000002": [], "tt0000004": ["Comedy"]})
    return store


def test_views_have_exactly_their_documented_columns(store: Store) -> None:
    assert set(VIEW_NAMES) <= set(inspect(store.engine).get_view_names())
    for view in VIEWS:
        got = list(rows_keys(store, view.name))
        assert got == list(view.column_names), view.name


def rows_keys(store: Store, name: str) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(text(f"SELECT * FROM {name} LIMIT 0")).keys())


def test_the_stored_views_are_the_schema_modules(sqlite_store: Store) -> None:
    stored = dict(
        rows_as_pairs(sqlite_store, "SELECT name, sql FROM sqlite_master WHERE type = 'view'")
    )
    assert stored == {
        name: f"CREATE VIEW {name} AS {body}" for name, body in view_sql("sqlite").items()
    }


def rows_as_pairs(store: Store, sql: str) -> list[tuple[Any, Any]]:
    with store.read() as conn:
        return [(r[0], r[1]) for r in conn.execute(text(sql))]


def test_genre_names_and_json_arrays(filled: Store) -> None:
    got = rows(filled, "SELECT * FROM movie_genre_names ORDER BY tmdb_id")
    assert [(r["tmdb_id"], r["genres"], r["genres_json"]) for r in got] == [
        (1, "Action, Drama", '["Action","Drama"]'),
        (2, None, "[]"),
        (3, "Science Fiction, TV Movie, Thriller", '["Science Fiction","TV Movie","Thriller"]'),
    ]
    named = rows(filled, "SELECT * FROM movie_genres_named ORDER BY tmdb_id, genre_id")
    assert [(r["tmdb_id"], r["genre_id"], r["genre"], r["year"]) for r in named] == [
        (1, 18, "Drama", 2001),
        (1, 28, "Action", 2001),
        (3, 53, "Thriller", 2001),
        (3, 878, "Science Fiction", 2001),
        (3, 10770, "TV Movie", 2001),
    ]
    imdb = rows(filled, "SELECT * FROM movie_imdb ORDER BY tmdb_id")
    assert [
        (r["tmdb_id"], r["imdb_genres"], r["imdb_genres_json"], r["num_votes"]) for r in imdb
    ] == [
        (1, "Biography, Drama", '["Biography","Drama"]', 100),
        (2, None, "[]", 100),
    ]


def test_gone_movies_are_absent_from_the_analyst_views(filled: Store) -> None:
    for name in ("movie_genre_names", "movie_genres_named", "movie_imdb"):
        ids = {r["tmdb_id"] for r in rows(filled, f"SELECT tmdb_id FROM {name}")}
        assert 4 not in ids and 1 in ids, name
    filled.genre_map.sync()
    agreement = rows(filled, "SELECT * FROM genre_agreement")
    assert 35 not in {r["genre_id"] for r in agreement}  # Comedy: only the gone movie had it
    # Back on TMDB: back in the views.
    filled.movies.upsert([movie(4, (35,))])
    assert {r["tmdb_id"] for r in rows(filled, "SELECT tmdb_id FROM movie_imdb")} == {1, 2, 4}
    agreement = rows(filled, "SELECT * FROM genre_agreement WHERE genre_id = 35")
    assert [(r["tmdb"], r["imdb"], r["both"], r["jaccard"]) for r in agreement] == [(1, 1, 1, 1.0)]


def test_genre_map_sync_writes_the_mapping_and_the_unmapped_stored_genres(filled: Store) -> None:
    assert filled.genre_map.sync({"Drama": 18, "Sport": 99999, "Music": 10402}) == 5
    got = rows(filled, "SELECT * FROM genre_map ORDER BY imdb_genre")
    assert [(r["imdb_genre"], r["tmdb_genre_id"], r["tmdb_genre"]) for r in got] == [
        ("Biography", None, None),
        ("Comedy", None, None),
        ("Drama", 18, "Drama"),
        ("Music", 10402, "Music"),
        ("Sport", 99999, "Unknown (99999)"),
    ]
    # A rewrite, not a merge: what the mapping no longer says is gone.
    filled.genre_map.sync({"Comedy": 35})
    assert filled.genre_map.read() == {"Biography": None, "Comedy": 35, "Drama": None}
    # Default: the mapping of the settings the store was opened with.
    filled.genre_map.sync()
    assert filled.genre_map.read()["Drama"] == 18 and filled.genre_map.read()["Biography"] is None


def test_run_summary_spreads_the_counts(store: Store) -> None:
    runs = store.runs
    scrape = runs.start("scrape", {})
    runs.finish(scrape, "partial", counts={"discovered": 9, "fetched": 8, "new": 5, "updated": 1,
                                           "unchanged": 1, "failed": 1, "gone": 1, "requests": 12,
                                           "throttled_429": 2, "retries": 3,
                                           "posters": {"ok": 4, "failed": 1}})  # fmt: skip
    posters = runs.start("posters", {})
    runs.finish(posters, "succeeded", counts={"ok": 6, "rejected": 1, "failed": 2, "missing": 3,
                                              "requests": 9, "retries": 1})  # fmt: skip
    imdb = runs.start("imdb import", {})
    runs.finish(imdb, "succeeded", counts={"titles_new": 10, "titles_updated": 2,
                                           "titles_unchanged": 3})  # fmt: skip
    build = runs.start("build", {})
    runs.finish(build, "succeeded", counts={"result": "built", "version": "v0002",
                                            "rows": {"total": 42, "train": 30}})  # fmt: skip
    running = runs.start("scrape", {})
    with store.write() as conn:
        conn.execute(
            update(schema.scrape_runs)
            .where(schema.scrape_runs.c.run_id == scrape)
            .values(started_at=T0, finished_at=T0 + dt.timedelta(seconds=90, milliseconds=500))
        )
    got = {r["run_id"]: r for r in rows(store, "SELECT * FROM run_summary")}
    assert got[scrape]["duration_s"] == 90.5
    assert got[running]["duration_s"] is None and got[running]["status"] == "running"
    spread = [
        "movies_discovered", "movies_fetched", "movies_new", "movies_updated",
        "movies_unchanged", "movies_failed", "movies_gone", "posters_ok", "posters_rejected",
        "posters_failed", "posters_missing", "imdb_titles_new", "imdb_titles_updated",
        "imdb_titles_unchanged", "requests", "throttled_429", "retries", "dataset_version",
        "dataset_rows",
    ]  # fmt: skip
    assert {k: got[scrape][k] for k in spread} == {
        "movies_discovered": 9, "movies_fetched": 8, "movies_new": 5, "movies_updated": 1,
        "movies_unchanged": 1, "movies_failed": 1, "movies_gone": 1, "posters_ok": 4,
        "posters_rejected": None, "posters_failed": None, "posters_missing": None,
        "imdb_titles_new": None, "imdb_titles_updated": None, "imdb_titles_unchanged": None,
        "requests": 12, "throttled_429": 2, "retries": 3, "dataset_version": None,
        "dataset_rows": None,
    }  # fmt: skip
    posters_keys = ("posters_ok", "posters_rejected", "posters_failed", "posters_missing")
    more = ("requests", "retries", "movies_failed")
    assert [got[posters][k] for k in (*posters_keys, *more)] == [6, 1, 2, 3, 9, 1, None]
    imdb_keys = ("imdb_titles_new", "imdb_titles_updated", "imdb_titles_unchanged", "requests")
    assert [got[imdb][k] for k in imdb_keys] == [10, 2, 3, None]
    assert (got[build]["dataset_version"], got[build]["dataset_rows"]) == ("v0002", 42)
    assert got[running]["movies_fetched"] is None  # counts {} so far


def test_open_failures_name_the_movie(filled: Store) -> None:
    failures = filled.failures
    failures.record("movie", "1", run_id=None, error="HTTP 500", http_status=500)
    failures.record("poster", "4", run_id=None, error="http_503", http_status=503)
    failures.record("movie", "777", run_id=None, error="timeout")
    failures.record("find", "tt0000001", run_id=None, error="HTTP 502", http_status=502)
    failures.record("movie", "3", run_id=None, error="HTTP 500")
    failures.resolve("movie", ["3"])
    with filled.write() as conn:  # abandoned: not open
        conn.execute(
            update(schema.fetch_failures)
            .where(schema.fetch_failures.c.key == "777")
            .values(state="abandoned", abandoned_at=T0)
        )
    failures.record("movie", "2", run_id=None, error="HTTP 500")
    got = rows(filled, "SELECT * FROM open_failures ORDER BY kind, key")
    assert [(r["kind"], r["key"], r["tmdb_id"], r["title"], r["movie_status"]) for r in got] == [
        ("find", "tt0000001", None, None, None),
        ("movie", "1", 1, "Movie 1", "active"),
        ("movie", "2", 2, "Movie 2", "active"),
        ("poster", "4", 4, "Movie 4", "gone"),
    ]
    assert got[0]["http_status"] == 502 and got[1]["attempts"] == 1


def test_genre_agreement_equals_the_builders_manifest(store_url: str, tmp_path: Path) -> None:
    mapping = {"Action": 28, "Drama": 18, "Comedy": 35, "Music": 10402, "Musical": 10402,
               "Sci-Fi": 878, "Thriller": 53, "Sport": 99999}  # fmt: skip
    settings = settings_from_dict(
        {
            "storage": {"url": store_url, "posters_dir": str(tmp_path / "posters")},
            "genres": {"imdb_to_tmdb": mapping},
            "build": {
                "output_dir": str(tmp_path / "out"), "min_genre_count": 0,
                "dedupe_imdb_id": False, "dedupe_title_year_overview": False,
                "dedupe_overview": False, "placeholder_overviews": [], "min_overview_words": 0,
                "drop_adult": False, "require_genres": False, "require_poster": False,
                "baseline": False, "images": "reference",
            },
        },
        base_dir=tmp_path,
    )  # fmt: skip
    with Store.open(settings) as store:
        store.movies.upsert_genres(Genre(i, n) for i, n in GENRES.items())
        tmdb = {1: (28, 18), 2: (35,), 3: (10402, 18), 4: (878, 53), 5: (18,), 6: (28,),
                7: (), 8: (35, 18), 9: (53,), 10: (28, 35)}  # fmt: skip
        imdb = {
            1: ["Action", "Drama", "Biography"],
            2: ["Drama"],
            3: ["Music", "Musical"],  # both map to 10402: one pair
            4: ["Sci-Fi", "Sport"],  # Sport: a TMDB id the store does not know
            5: ["Biography"],  # compared, with no mapped genre
            7: ["Drama"],  # no TMDB genre: not compared
            8: ["Comedy", "Romance"],
            9: ["Thriller"],  # gone below
            10: ["Action"],
        }
        store.movies.upsert(
            [
                movie(i, g, adult=i == 6, original_language="fr" if i == 2 else "en")
                for i, g in tmdb.items()
            ]
        )
        store.movies.upsert([movie(11, (18,), imdb_id="tt0000003")])  # shares 3's IMDb title
        store.movies.mark_gone([9])
        add_imdb(store, {f"tt{i:07d}": g for i, g in imdb.items()})

    result = build_dataset(settings)
    assert result.status == "built" and result.path is not None
    assert result.rows["total"] == 10  # every active movie: the filters are off
    manifest = read_manifest(result.path)["label_agreement"]
    expected = [
        {k: g[k] for k in ("id", "name", "tmdb", "imdb", "both", "jaccard")}
        for g in manifest["genres"]
    ]
    with Store.open(settings) as store:
        got = rows(
            store,
            'SELECT genre_id, genre, tmdb, imdb, "both", jaccard FROM genre_agreement '
            "ORDER BY genre_id",
        )
        assert store.genre_map.read()["Sport"] == 99999  # written by the build
    assert [
        {"id": r["genre_id"], "name": r["genre"], "tmdb": r["tmdb"], "imdb": r["imdb"],
         "both": r["both"], "jaccard": r["jaccard"]}
        for r in got
    ] == expected  # fmt: skip
    assert {g["id"] for g in expected} >= {18, 28, 35, 10402, 99999}
    assert any(0 < (g["jaccard"] or 0) < 1 for g in expected)  # not only all-or-nothing
    assert manifest["movies_compared"] == 8  # 1-5, 8, 10, 11 (6: no IMDb; 7: no TMDB; 9: gone)


def test_an_old_store_gets_the_views_on_upgrade(store_url: str) -> None:
    with Store(store_url) as store:
        with store.write() as conn:
            command.upgrade(_alembic_config(conn), "0002")
        store.movies.upsert_genres([Genre(18, "Drama")])
        store.movies.upsert([movie(1), movie(2)])
        store.movies.mark_gone([2])
        assert rows(store, "SELECT tmdb_id FROM movie_genre_names ORDER BY tmdb_id") == [
            {"tmdb_id": 1}, {"tmdb_id": 2}  # 0002's view: gone movies too
        ]  # fmt: skip

        assert store.upgrade() == ("0002", head_version())
        assert set(VIEW_NAMES) <= set(inspect(store.engine).get_view_names())
        got = rows(store, "SELECT tmdb_id, genres_json FROM movie_genre_names")
        assert got == [{"tmdb_id": 1, "genres_json": '["Drama"]'}]
        if store.dialect == "sqlite":
            found = rows(store, "SELECT rowid FROM movies_fts WHERE movies_fts MATCH 'lantern' "
                                "ORDER BY rowid")  # fmt: skip
            assert found == [{"rowid": 1}, {"rowid": 2}]  # the index was rebuilt

        # And back: 0002's views again, no genre_map, no FTS index.
        with store.write() as conn:
            command.downgrade(_alembic_config(conn), "0002")
        names = set(inspect(store.engine).get_table_names())
        assert "genre_map" not in names and not any(schema.is_fts_name(n) for n in names)
        assert set(inspect(store.engine).get_view_names()) == {"movie_genre_names", "movie_imdb"}
        store.upgrade()
        assert rows_keys(store, "movie_imdb") == list(schema.CONTRACT_TABLES["movie_imdb"])
