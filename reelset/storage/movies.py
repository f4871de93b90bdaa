"""Movie writes: genres, batch upserts of movies with their genres, gone marks, fetch times.

Every write is idempotent: a movie whose content hash is unchanged is not written at all
(``updated_at`` stays), so a rerun after any crash converges to the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, select, update

from reelset.storage import schema
from reelset.storage.records import Genre, MovieRecord, UpsertResult

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from reelset.storage.store import Store

RECORD_COLUMNS = schema.column_names(
    schema.movies, without=("content_hash", "first_seen_at", "updated_at")
)
"""The ``movies`` columns a :class:`MovieRecord` fills, each from its attribute of that name.

The others are the content hash and the two timestamps the write itself sets.
"""
GENRE_COLUMNS = schema.column_names(schema.genres)
"""The ``genres`` columns, each a :class:`Genre` attribute of that name."""


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
        with self._store.write() as conn:
            existing = {
                row.genre_id: (row.name, row.origin) for row in conn.execute(select(schema.genres))
            }
            changed = [g for g in items if existing.get(g.genre_id) != (g.name, g.origin)]
            self._store.bulk_insert(
                conn,
                schema.genres,
                [(g,) for g in changed],
                fields=GENRE_COLUMNS,
                conflict=("genre_id",),
            )
        self._known_genres.update(g.genre_id for g in items)
        return len(changed)

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
            self._store.bulk_insert(
                conn,
                schema.genres,
                [(Genre(i, f"Unknown ({i})", "unknown"),) for i in sorted(absent)],
                fields=GENRE_COLUMNS,
                conflict=("genre_id",),
                update=(),
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

        new: list[tuple[MovieRecord, str]] = []  # with their content hashes
        changed: list[tuple[MovieRecord, str]] = []
        for tmdb_id, record in latest.items():
            digest = record.content_hash()
            old = existing.get(tmdb_id)
            if old != digest:
                (new if old is None else changed).append((record, digest))

        store = self._store
        # (record, content hash) pairs: the record fills RECORD_COLUMNS, the rest is ours.
        store.bulk_insert(
            conn, m, new, fields=RECORD_COLUMNS, constants={"first_seen_at": now, "updated_at": now}
        )
        new_ids = [r.tmdb_id for r, _ in new]
        updated_ids = [r.tmdb_id for r, _ in changed]
        if changed:
            store.bulk_update(
                conn,
                m,
                changed,
                key=("tmdb_id",),
                fields=RECORD_COLUMNS,
                columns=("content_hash",),
                constants={"updated_at": now},
            )
            mg = schema.movie_genres
            conn.execute(delete(mg).where(mg.c.tmdb_id.in_(updated_ids)))
        store.bulk_insert(
            conn,
            schema.movie_genres,
            [(r.tmdb_id, g) for r, _ in (*new, *changed) for g in sorted(set(r.genre_ids))],
        )
        store.bulk_insert(
            conn,
            schema.movie_fetches,
            [(i,) for i in ids],
            columns=("tmdb_id",),
            constants={"fetched_at": now, "run_id": run_id},
            conflict=("tmdb_id",),
        )
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
