"""Movie writes: genres, batch upserts of movies with their genres, gone marks, fetch times.

Every write is idempotent: a movie whose content hash is unchanged is not written at all
(``updated_at`` stays), so a rerun after any crash converges to the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    select,
    update,
)

from reelset.storage import schema
from reelset.storage.records import (
    Genre,
    MovieRecord,
    UpsertResult,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from reelset.storage.store import Store

_INSERT_COLUMNS = tuple(c.name for c in schema.movies.c)
"""Every column of ``movies``, in table order."""
_MOVIE_FIELDS = tuple(
    c for c in _INSERT_COLUMNS if c not in ("tmdb_id", "first_seen_at", "updated_at")
)
"""The columns a movie write sets (all but the key and the two timestamps)."""

def _movie_row(record: MovieRecord, content_hash: str) -> dict[str, Any]:
    return {
        "tmdb_id": record.tmdb_id,
        "imdb_id": record.imdb_id,
        "title": record.title,
        "original_title": record.original_title,
        "original_language": record.original_language,
        "overview": record.overview,
        "tagline": record.tagline,
        "release_date": record.release_date,
        "year": record.year,
        "runtime": record.runtime,
        "popularity": record.popularity,
        "vote_average": record.vote_average,
        "vote_count": record.vote_count,
        "adult": bool(record.adult),
        "poster_path": record.poster_path,
        "keywords": list(record.keywords) if record.keywords is not None else None,
        "status": record.status,
        "content_hash": content_hash,
    }




class Movies:
    """The ``movies``, ``genres``, ``movie_genres`` and ``movie_fetches`` writes of a store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known_genres: set[int] = set()

    def upsert_genres(self, items: Iterable[Genre]) -> int:
        """Insert or rename genres; returns how many rows changed."""
        items = list(items)
        if not items:
            return 0
        changed = 0
        with self._store.write() as conn:
            existing = {
                row.genre_id: (row.name, row.origin) for row in conn.execute(select(schema.genres))
            }
            for g in items:
                if existing.get(g.genre_id) == (g.name, g.origin):
                    continue
                stmt = self._store.insert(schema.genres).values(
                    genre_id=g.genre_id, name=g.name, origin=g.origin
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["genre_id"], set_={"name": g.name, "origin": g.origin}
                    )
                )
                changed += 1
        self._known_genres.update(g.genre_id for g in items)
        return changed

    def _ensure_genres(self, conn: Connection, genre_ids: set[int]) -> None:
        missing = genre_ids - self._known_genres
        if not missing:
            return
        present = set(
            conn.execute(
                select(schema.genres.c.genre_id).where(schema.genres.c.genre_id.in_(missing))
            ).scalars()
        )
        absent = missing - present
        if absent:
            log.warning("genre ids with no known name stored as unknown: %s", sorted(absent))
            conn.execute(
                self._store.insert(schema.genres).on_conflict_do_nothing(index_elements=["genre_id"]),
                [{"genre_id": i, "name": f"Unknown ({i})", "origin": "unknown"} for i in absent],
            )
        self._known_genres.update(missing)

    def upsert(
        self,
        records: Sequence[MovieRecord],
        *,
        run_id: int | None = None,
        now: dt.datetime | None = None,
    ) -> UpsertResult:
        """Write movies with their genres in batches, idempotently.

        A movie whose stored fields and genres are unchanged is not written (its
        ``updated_at`` stays); a changed one is updated with its genres replaced; a new one
        is inserted with ``first_seen_at``. Every movie's fetch is recorded in
        ``movie_fetches``. Genre ids without a row get ``Unknown (<id>)``, origin unknown.
        """
        result = UpsertResult()
        now = now or schema.utcnow()
        for start in range(0, len(records), self._store.batch_size):
            batch = records[start : start + self._store.batch_size]
            with self._store.write() as conn:
                result += self._upsert_batch(conn, batch, run_id, now)
        return result

    def _upsert_batch(
        self, conn: Connection, batch: Sequence[MovieRecord], run_id: int | None, now: dt.datetime
    ) -> UpsertResult:
        latest: dict[int, MovieRecord] = {r.tmdb_id: r for r in batch}  # last one wins
        ids = list(latest)
        m = schema.movies
        existing = dict(
            conn.execute(select(m.c.tmdb_id, m.c.content_hash).where(m.c.tmdb_id.in_(ids))).all()
        )
        self._ensure_genres(conn, {g for r in latest.values() for g in r.genre_ids})

        new: list[tuple[MovieRecord, str]] = []
        changed_rows: list[dict[str, Any]] = []
        for tmdb_id, record in latest.items():
            digest = record.content_hash()
            old = existing.get(tmdb_id)
            if old == digest:
                continue
            if old is None:
                new.append((record, digest))
            else:
                row = _movie_row(record, digest)
                row["updated_at"] = now
                changed_rows.append(row)

        if new:
            db_now = self._store.driver_value(now)
            value = self._store.driver_value
            sqlite_dates = self._store.dialect == "sqlite"  # SQLite stores dates as ISO text
            self._store.bulk_insert(
                conn,
                "movies",
                _INSERT_COLUMNS,
                [
                    (
                        r.tmdb_id,
                        r.imdb_id,
                        r.title,
                        r.original_title,
                        r.original_language,
                        r.overview,
                        r.tagline,
                        (r.release_date.isoformat() if sqlite_dates else r.release_date)
                        if r.release_date is not None
                        else None,
                        r.year,
                        r.runtime,
                        r.popularity,
                        r.vote_average,
                        r.vote_count,
                        bool(r.adult),
                        r.poster_path,
                        value(list(r.keywords)) if r.keywords is not None else None,
                        r.status,
                        digest,
                        db_now,
                        db_now,
                    )
                    for r, digest in new
                ],
            )
        if changed_rows:
            params = [{**row, "b_tmdb_id": row["tmdb_id"]} for row in changed_rows]
            for p in params:
                del p["tmdb_id"]
            stmt = (
                update(m)
                .where(m.c.tmdb_id == bindparam("b_tmdb_id"))
                .values({name: bindparam(name) for name in (*_MOVIE_FIELDS, "updated_at")})
            )
            conn.execute(stmt, params)
            conn.execute(
                delete(schema.movie_genres).where(
                    schema.movie_genres.c.tmdb_id.in_([r["tmdb_id"] for r in changed_rows])
                )
            )
        written = [r for r, _ in new] + [latest[row["tmdb_id"]] for row in changed_rows]
        genre_rows = [
            {"tmdb_id": r.tmdb_id, "genre_id": g} for r in written for g in sorted(set(r.genre_ids))
        ]
        if genre_rows:
            self._store.bulk_insert(
                conn,
                "movie_genres",
                ("tmdb_id", "genre_id"),
                [(g["tmdb_id"], g["genre_id"]) for g in genre_rows],
            )
        db_now = self._store.driver_value(now)
        self._store.bulk_insert(
            conn,
            "movie_fetches",
            ("tmdb_id", "fetched_at", "run_id"),
            [(i, db_now, run_id) for i in ids],
            upsert_key="tmdb_id",
        )
        new_ids = [r.tmdb_id for r, _ in new]
        updated_ids = [r["tmdb_id"] for r in changed_rows]
        return UpsertResult(
            new=len(new_ids),
            updated=len(updated_ids),
            unchanged=len(ids) - len(new_ids) - len(updated_ids),
            new_ids=new_ids,
            updated_ids=updated_ids,
        )

    def mark_gone(self, tmdb_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
        """Mark movies TMDB answers 404 for as ``gone`` (rows are kept); returns how many."""
        ids = list(tmdb_ids)
        if not ids:
            return 0
        now = now or schema.utcnow()
        m = schema.movies
        with self._store.write() as conn:
            res = conn.execute(
                update(m)
                .where(m.c.tmdb_id.in_(ids), m.c.status != "gone")
                .values(status="gone", updated_at=now, content_hash="gone")
            )
            return res.rowcount or 0

    def fetched_since(self, tmdb_ids: Iterable[int], since: dt.datetime) -> set[int]:
        """Which of these movies were fetched at or after ``since``."""
        ids = list(tmdb_ids)
        found: set[int] = set()
        f = schema.movie_fetches
        with self._store.read() as conn:
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                found.update(
                    conn.execute(
                        select(f.c.tmdb_id).where(f.c.tmdb_id.in_(chunk), f.c.fetched_at >= since)
                    ).scalars()
                )
        return found

