"""``upsert_imdb_titles``: an unrated title keeps its stored rating; idempotent stamps."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from reelset.storage import Store
from reelset.storage import schema as s
from reelset.storage.imdb import ImdbTitle, upsert_imdb_titles

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def rows(store: Store) -> dict[str, tuple]:
    t = s.imdb_titles
    cols = (t.c.imdb_id, t.c.primary_title, t.c.average_rating, t.c.num_votes, t.c.imported_at)
    with store.read() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(select(*cols))}


def test_unrated_title_keeps_its_stored_rating(store: Store) -> None:
    rated = ImdbTitle("tt1", "movie", "A", average_rating=7.5, num_votes=100, genres=("Drama",))
    other = ImdbTitle("tt2", "movie", "B", average_rating=6.0, num_votes=10)
    assert upsert_imdb_titles(store, [rated, other], now=T0).new == 2

    # Not rated this time (absent from the ratings file), otherwise the same: not written.
    unrated = ImdbTitle("tt1", "movie", "A", genres=("Drama",))
    result = upsert_imdb_titles(store, [unrated, other], now=T1)
    assert (result.new, result.updated, result.unchanged) == (0, 0, 2)
    assert rows(store)["tt1"] == ("A", 7.5, 100, T0)

    # Not rated and retitled: the title changes, the rating stays.
    retitled = ImdbTitle("tt1", "movie", "A2", genres=("Drama",))
    result = upsert_imdb_titles(store, [retitled], now=T2)
    assert (result.updated, result.genre_rows) == (1, 1)
    assert rows(store)["tt1"] == ("A2", 7.5, 100, T2)

    # A new rating replaces the stored one; a new unrated title gets none.
    rerated = ImdbTitle("tt1", "movie", "A2", average_rating=8.0, num_votes=120, genres=("Drama",))
    upsert_imdb_titles(store, [rerated, ImdbTitle("tt3", "movie", "C")], now=T2)
    got = rows(store)
    assert got["tt1"][1:3] == (8.0, 120) and got["tt3"][1:3] == (None, None)
    assert got["tt2"] == ("B", 6.0, 10, T0)


def test_without_ratings_the_stored_ones_are_not_compared(store: Store) -> None:
    upsert_imdb_titles(store, [ImdbTitle("tt1", "movie", "A", average_rating=5.0, num_votes=3)])
    result = upsert_imdb_titles(
        store,
        [ImdbTitle("tt1", "movie", "A", average_rating=9.0, num_votes=9)],
        with_ratings=False,
    )
    assert result.unchanged == 1 and rows(store)["tt1"][1:3] == (5.0, 3)


@pytest.mark.parametrize("count", [1, 255, 256, 257, 3277, 7000])
def test_batches_of_any_size_store_every_title_and_genre_once(store: Store, count: int) -> None:
    # SQLite gets them as multi-row inserts in groups padded to a multiple of 256 rows:
    # the padding must not show, nor the group boundaries (3276 rows of 10 columns).
    genres = [(), ("Drama",), ("Drama", "Comedy", "Drama"), ("A", "", "B")]
    titles = [
        ImdbTitle(f"tt{n}", "movie", f"T{n}", is_adult=n % 2 == 0, genres=genres[n % 4])
        for n in range(count)
    ]
    result = upsert_imdb_titles(store, titles, now=T0)
    expected_genres = {(t.imdb_id, g) for t in titles for g in t.genres}
    assert (result.new, result.genre_rows) == (count, len(expected_genres))
    got = rows(store)
    assert len(got) == count and got[f"tt{count - 1}"] == (f"T{count - 1}", None, None, T0)
    g = s.imdb_title_genres
    with store.read() as conn:
        stored_genres = [tuple(r) for r in conn.execute(select(g.c.imdb_id, g.c.genre))]
        adult = dict(conn.execute(select(s.imdb_titles.c.imdb_id, s.imdb_titles.c.is_adult)).all())
    assert sorted(stored_genres) == sorted(expected_genres)
    assert adult["tt0"] is True and (count == 1 or adult["tt1"] is False)
    again = upsert_imdb_titles(store, titles, now=T1)
    assert (again.new, again.updated, again.unchanged) == (0, 0, count)
