"""Full-text search on SQLite: ``movies_fts`` stays in step with every write to ``movies``."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from reelset.errors import StoreError
from reelset.storage import MovieRecord, Store, schema


def movie(tmdb_id: int, overview: str | None, title: str | None = None) -> MovieRecord:
    return MovieRecord(
        tmdb_id=tmdb_id, title=title or f"Movie {tmdb_id}", overview=overview, genre_ids=(18,)
    )


def search(store: Store, query: str) -> list[int]:
    """The tmdb_ids whose title or overview match ``query`` (FTS5 syntax)."""
    with store.read() as conn:
        found = conn.execute(
            text(
                "SELECT m.tmdb_id FROM movies_fts JOIN movies m ON m.tmdb_id = movies_fts.rowid "
                "WHERE movies_fts MATCH :q ORDER BY m.tmdb_id"
            ),
            {"q": query},
        )
        return list(found.scalars())


def check_index(store: Store) -> None:
    """FTS5's own check that the index holds exactly the content table's text."""
    with store.write() as conn:
        conn.execute(text(f"INSERT INTO {schema.FTS_TABLE}({schema.FTS_TABLE}, rank) "
                          "VALUES ('integrity-check', 1)"))  # fmt: skip


def test_search_follows_upsert_update_and_delete(sqlite_store: Store) -> None:
    store = sqlite_store
    store.movies.upsert(
        [
            movie(1, "A crew plans a heist in Paris."),
            movie(2, "Two sisters tend a quiet garden.", title="Amélie's Garden"),
            movie(3, None, title="Heist Night"),
        ]
    )
    assert search(store, "heist") == [1, 3]
    assert search(store, "amelie") == [2]  # diacritics folded
    assert search(store, "overview:garden") == [2]
    check_index(store)

    # A changed overview: found by its new words, not its old ones.
    store.movies.upsert([movie(1, "A lighthouse keeper waits for a storm.")])
    assert search(store, "heist") == [3]
    assert search(store, "lighthouse") == [1]
    # An unchanged movie is not rewritten; marking one gone leaves the text as it is.
    store.movies.upsert([movie(1, "A lighthouse keeper waits for a storm.")])
    store.movies.mark_gone([2])
    assert search(store, "garden") == [2]
    check_index(store)

    with store.write() as conn:
        conn.execute(schema.movies.delete().where(schema.movies.c.tmdb_id == 3))
    assert search(store, "heist") == []
    assert search(store, "lighthouse OR garden") == [1, 2]
    check_index(store)


def test_a_stale_index_is_caught_and_rebuilt(sqlite_store: Store, sqlite_url: str) -> None:
    # What check_index relies on: an index out of step with movies fails the check.
    sqlite_store.movies.upsert([movie(1, "A heist."), movie(2, "A garden.")])
    raw = sqlite3.connect(sqlite_url.split("///", 1)[1])
    raw.execute("DROP TRIGGER movies_fts_update")
    raw.execute("UPDATE movies SET overview = 'A storm.' WHERE tmdb_id = 1")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="malformed"):
        check_index(sqlite_store)
    with sqlite_store.write() as conn:
        conn.execute(text(schema.FTS_REBUILD))
    check_index(sqlite_store)
    assert search(sqlite_store, "storm") == [1] and search(sqlite_store, "heist") == []


@pytest.mark.postgres
def test_postgresql_has_no_fts_table(pg_url: str) -> None:
    with Store(pg_url) as store:
        store.upgrade()
        with store.read() as conn:
            found = conn.execute(text("SELECT to_regclass('movies_fts')")).scalar()
    assert found is None
