"""``genre_map``: the IMDb -> TMDB genre mapping of ``[genres] imdb_to_tmdb``, in the store.

The builder maps IMDb genres with the settings (:mod:`reelset.dataset.labels`); analysts
(the ``genre_agreement`` view, Datasette) read the same mapping from this table. Every run
that uses the mapping writes it (``imdb import``, ``build``): the mapped genres, and every
IMDb genre stored that maps to no TMDB genre (an IMDb-only label) with NULLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from reelset.storage import schema

if TYPE_CHECKING:
    from reelset.storage.store import Store


def unknown_genre_name(genre_id: int) -> str:
    """The name of a TMDB genre id the store has no name for (as the builder names it)."""
    return f"Unknown ({genre_id})"


class GenreMap:
    """``store.genre_map``: write and read the ``genre_map`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def sync(self, mapping: Mapping[str, int] | None = None) -> int:
        """Rewrite ``genre_map`` from ``mapping`` and the stored IMDb genres; returns its rows.

        ``mapping``: IMDb genre name -> TMDB genre id; default: ``[genres] imdb_to_tmdb`` of
        the settings the store was opened with.
        """
        wanted = dict(self._store.imdb_to_tmdb if mapping is None else mapping)
        g, ig = schema.genres, schema.imdb_title_genres
        with self._store.write() as conn:
            names = {int(i): str(n) for i, n in conn.execute(select(g.c.genre_id, g.c.name))}
            stored = conn.execute(select(ig.c.genre).distinct()).scalars().all()
            rows: dict[str, tuple[str, int | None, str | None]] = {
                genre: (genre, int(i), names.get(int(i), unknown_genre_name(int(i))))
                for genre, i in wanted.items()
            }
            for genre in stored:
                rows.setdefault(genre, (genre, None, None))
            conn.execute(delete(schema.genre_map))
            self._store.bulk_insert(conn, schema.genre_map, [rows[k] for k in sorted(rows)])
        return len(rows)

    def read(self) -> dict[str, int | None]:
        """IMDb genre -> TMDB genre id (None: IMDb-only), as stored."""
        gm = schema.genre_map
        with self._store.read() as conn:
            return {
                str(genre): None if tmdb_id is None else int(tmdb_id)
                for genre, tmdb_id in conn.execute(
                    select(gm.c.imdb_genre, gm.c.tmdb_genre_id).order_by(gm.c.imdb_genre)
                )
            }
