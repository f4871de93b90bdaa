"""``upsert_imdb_titles``: an unrated title keeps its stored rating; idempotent stamps.

Titles handed over column by column (a bulk import's batches) store what the same titles
handed over one by one store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from reelset.storage import Store, imdb
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


def everything(store: Store) -> tuple[list[tuple], list[tuple]]:
    """Every stored IMDb title (all columns) and genre row, sorted."""
    t, g = s.imdb_titles, s.imdb_title_genres
    with store.read() as conn:
        titles = sorted(tuple(r) for r in conn.execute(select(t)))
        genres = sorted(tuple(r) for r in conn.execute(select(g)))
    return titles, genres


COLUMN_TITLES = [
    ImdbTitle("tt10", "movie", "A", "A", False, 1999, 90, 7.5, 100, ("Drama", "Comedy")),
    ImdbTitle("tt9", "tvMovie", None, None, None, None, None, None, None, ()),
    ImdbTitle("tt11", "movie", "Café 東京", "O'Brien", True, 2200, 0, 10.0, 0, ("Drama",) * 3),
    ImdbTitle("tt12", "movie", "B", "B", False, 1800, 1_000_000, None, None, ("Z", "A", "M")),
]


def as_columns(titles: list[ImdbTitle], *, with_ratings: bool) -> imdb.ImdbTitleColumns:
    names = ("imdb_id", *imdb._TITLE_FIELDS, *(imdb._RATING_FIELDS if with_ratings else ()))
    return imdb.ImdbTitleColumns(
        [[getattr(title, name) for title in titles] for name in names],
        [title.genres for title in titles],
    )


@pytest.mark.parametrize("with_ratings", [True, False])
@pytest.mark.parametrize("duplicate", [False, True])
def test_columns_of_new_titles_store_what_the_titles_one_by_one_store(
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_ratings: bool,
    duplicate: bool,
) -> None:
    titles = list(COLUMN_TITLES)
    if duplicate:  # the last of an id wins: not the column-wise insert
        titles.append(ImdbTitle("tt9", "movie", "later", genres=("Horror",)))
    reference = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.upgrade()
        expected = upsert_imdb_titles(reference, titles, with_ratings=with_ratings, now=T0)
        stored = everything(reference)
    finally:
        reference.close()
    taken: list[int] = []
    column_wise = imdb._insert_new_sqlite
    monkeypatch.setattr(imdb, "_insert_new_sqlite", lambda *a: taken.append(1) or column_wise(*a))
    batch = as_columns(titles, with_ratings=with_ratings)
    got = upsert_imdb_titles(store, batch, with_ratings=with_ratings, now=T0, all_new=True)
    assert got == expected and everything(store) == stored
    assert len(taken) == (store.dialect == "sqlite" and not duplicate)
    # Stored now: the same columns again are compared title by title, and unchanged.
    again = upsert_imdb_titles(store, batch, with_ratings=with_ratings, now=T1)
    assert (again.new, again.updated, again.unchanged) == (0, 0, len(stored[0]))
    assert everything(store) == stored and len(taken) == (
        store.dialect == "sqlite" and not duplicate
    )


def test_columns_as_wide_as_with_ratings_says(store: Store) -> None:
    narrow = as_columns(COLUMN_TITLES, with_ratings=False)
    with pytest.raises(ValueError, match="columns"):
        upsert_imdb_titles(store, narrow, with_ratings=True, all_new=True)
    empty = imdb.ImdbTitleColumns([[] for _ in narrow.columns], [])
    assert upsert_imdb_titles(store, empty, with_ratings=False, all_new=True).new == 0
    assert everything(store) == ([], [])


@pytest.mark.parametrize("field", ["start_year", "runtime_minutes", "num_votes", "average_rating"])
def test_columns_refuse_the_number_that_stands_for_null(store: Store, field: str) -> None:
    titles = [replace(COLUMN_TITLES[0], **{field: -1})]
    batch = as_columns(titles, with_ratings=True)
    if store.dialect != "sqlite":  # title by title there: stored as given
        upsert_imdb_titles(store, batch, with_ratings=True, all_new=True)
        return
    with pytest.raises(ValueError, match=field):
        upsert_imdb_titles(store, batch, with_ratings=True, all_new=True)
    assert everything(store) == ([], [])


CHANGES = [
    {},  # nothing: every title unchanged, seen column by column
    {"title_type": "tvMovie"},
    {"primary_title": "A2"},
    {"original_title": None},
    {"is_adult": True},
    {"start_year": 2000},
    {"runtime_minutes": None},
    {"average_rating": 7.6},
    {"num_votes": 101},
    {"average_rating": None, "num_votes": None},  # unrated now: keeps the stored rating
    {"genres": ("Comedy", "Drama", "Drama")},  # the same set in another order: unchanged
    {"genres": ("Drama",)},
]


@pytest.mark.parametrize("change", CHANGES)
def test_stored_columns_are_compared_as_title_by_title(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict
) -> None:
    later = [replace(COLUMN_TITLES[0], **change), *COLUMN_TITLES[1:]]
    reference = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.upgrade()
        upsert_imdb_titles(reference, COLUMN_TITLES, now=T0)
        expected = upsert_imdb_titles(reference, later, now=T1)
        stored = everything(reference)
    finally:
        reference.close()
    seen: list[bool] = []
    check = imdb._all_unchanged
    monkeypatch.setattr(imdb, "_all_unchanged", lambda *a: seen.append(check(*a)) or seen[-1])
    upsert_imdb_titles(store, as_columns(COLUMN_TITLES, with_ratings=True), now=T0, all_new=True)
    got = upsert_imdb_titles(store, as_columns(later, with_ratings=True), now=T1)
    assert got == expected and everything(store) == stored
    if store.dialect == "sqlite":  # only a batch of equal values passes the column check
        assert seen == [change in ({}, {"genres": ("Comedy", "Drama", "Drama")})]
