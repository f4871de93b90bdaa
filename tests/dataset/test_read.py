"""Reading the store for a build, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

from reelset.config import settings_from_dict
from reelset.dataset.read import CONTENT_TABLES, read_store
from reelset.storage import Genre, Store, schema
from tests.dataset.conftest import TMDB_GENRES, first_plan, movie, poster_row


def test_snapshot_and_plan_on_each_backend(store: Store, store_url: str) -> None:
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    store.movies.upsert(
        [
            movie(1, genre_ids=(18, 35), tagline="A tagline."),
            movie(2, adult=True, genre_ids=(28,)),
            movie(3, imdb_id="tt0000001", genre_ids=(18,)),  # same film as 1, less complete
            movie(4, genre_ids=(18,), release_date=None, runtime=None),
            movie(5, genre_ids=(35,)),
        ]
    )
    store.movies.mark_gone([5])
    with store.write() as conn:
        conn.execute(schema.posters.insert(), [poster_row(1), poster_row(2, status="failed")])
        conn.execute(
            schema.imdb_titles.insert(),
            [{"imdb_id": "tt0000001", "title_type": "movie",
              "imported_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}],
        )
        conn.execute(schema.imdb_title_genres.insert(), [{"imdb_id": "tt0000001",
                                                          "genre": "Biography"}])
    snapshot = read_store(store, chunk_rows=2)
    movies = snapshot.movies.to_pydict()
    assert movies["tmdb_id"] == [1, 2, 3, 4]
    assert movies["adult"] == [False, True, False, False]
    assert movies["year"] == [2001, 2002, 2003, None]
    assert movies["completeness"] == [9, 8, 8, 6]
    assert snapshot.inactive.column("tmdb_id").to_pylist() == [5]
    assert snapshot.posters.column("tmdb_id").to_pylist() == [1]  # status ok only
    assert snapshot.movie_genres.num_rows == 5  # of active movies only
    assert snapshot.imdb_genres.to_pylist() == [{"imdb_id": "tt0000001", "genre": "Biography"}]
    assert snapshot.store["backend"] == store.dialect
    assert snapshot.store["row_counts"]["movies"] == 5
    assert set(snapshot.store["row_counts"]) <= set(CONTENT_TABLES)
    assert "scrape_runs" not in snapshot.store["row_counts"]

    settings = settings_from_dict(
        {"storage": {"url": store_url}, "build": {"min_genre_count": 1, "label_source": "union"}}
    )
    plan = first_plan(snapshot, settings)
    assert plan.manifest["removed"]["duplicate_imdb_id"] == 1
    assert plan.manifest["removed"]["adult"] == 1
    assert plan.manifest["removed"]["status_gone"] == 1
    assert plan.manifest["rows"]["total"] == 2
    assert plan.label_set.names == ["Drama", "Comedy", "imdb:Biography"]
