"""Genre names: TMDB's list, the configured patches (10769 "Foreign"), and unknown ids.

Movies carry genre ids that ``/genre/movie/list`` no longer has (TMDB retired 10769
"Foreign" but old movies still carry it). :class:`GenreNamer` names every id a movie
carries: from the list (origin ``tmdb``), else from ``[genres.patch]`` (origin
``patched``), else ``Unknown (<id>)`` (origin ``unknown``) with one warning per id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from reelset.storage.records import Genre

log = logging.getLogger(__name__)


def unknown_genre(genre_id: int) -> Genre:
    """The placeholder for a genre id no list or patch names."""
    return Genre(genre_id, f"Unknown ({genre_id})", "unknown")


class GenreNamer:
    """Names genre ids; remembers which ones the store already has. Thread-safe."""

    def __init__(self, listed: Iterable[Genre], patch: Mapping[int, str]) -> None:
        self.listed: dict[int, Genre] = {g.genre_id: g for g in listed}
        self.patch = dict(patch)
        self._stored: set[int] = set()
        self._warned: set[int] = set()
        self._lock = threading.Lock()

    def initial(self) -> list[Genre]:
        """The genres to store before any movie: TMDB's list."""
        return list(self.listed.values())

    def name(self, genre_id: int) -> Genre:
        """The genre for ``genre_id``: listed, patched, or unknown (warned once per id)."""
        listed = self.listed.get(genre_id)
        if listed is not None:
            return listed
        patched = self.patch.get(genre_id)
        if patched:
            return Genre(genre_id, patched, "patched")
        with self._lock:
            first = genre_id not in self._warned
            self._warned.add(genre_id)
        if first:
            log.warning(
                "genre id %d is neither in TMDB's genre list nor in [genres.patch]; "
                "stored as 'Unknown (%d)' (name it in [genres.patch])",
                genre_id,
                genre_id,
            )
        return unknown_genre(genre_id)

    def mark_stored(self, genre_ids: Iterable[int]) -> None:
        """Remember that these ids have rows in the store."""
        with self._lock:
            self._stored.update(genre_ids)

    def missing(self, genre_ids: Iterable[int]) -> list[Genre]:
        """Genres for the ids not stored yet (to upsert before the movies carrying them)."""
        with self._lock:
            new = sorted(set(genre_ids) - self._stored)
        return [self.name(g) for g in new]

    @property
    def unknown_ids(self) -> list[int]:
        """Ids stored as unknown so far in this run."""
        with self._lock:
            return sorted(self._warned)
