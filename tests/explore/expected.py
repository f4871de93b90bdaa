"""What each canned query must answer, computed independently: base tables read with plain
SQL, the numbers worked out in Python (never through the analyst views)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text

from reelset.config import Settings


@dataclass
class Facts:
    """The base tables of a store, as plain Python values."""

    movies: dict[int, dict[str, Any]]  # active movies only
    genres: dict[int, str]
    movie_genres: dict[int, set[int]]  # active movies -> TMDB genre ids
    posters: dict[int, tuple[str, str | None]]  # tmdb_id -> (status, error)
    imdb_titles: set[str]
    imdb_genres: dict[str, set[str]]
    run_ids: list[int]
    open_failure_ids: list[int]
    rejected_errors: list[tuple[int, str]]

    @classmethod
    def load(cls, url: str) -> Facts:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                def rows(sql: str) -> list[Any]:
                    return list(conn.execute(text(sql)))

                movies = {
                    r.tmdb_id: r._asdict()
                    for r in rows("SELECT tmdb_id, title, year, imdb_id, poster_path FROM movies "
                                  "WHERE status = 'active'")
                }
                movie_genres: dict[int, set[int]] = {}
                for tmdb_id, genre_id in rows("SELECT tmdb_id, genre_id FROM movie_genres"):
                    if tmdb_id in movies:
                        movie_genres.setdefault(tmdb_id, set()).add(genre_id)
                imdb_genres: dict[str, set[str]] = {}
                for imdb_id, genre in rows("SELECT imdb_id, genre FROM imdb_title_genres"):
                    imdb_genres.setdefault(imdb_id, set()).add(genre)
                posters = {r[0]: (r[1], r[2]) for r in
                           rows("SELECT tmdb_id, status, error FROM posters")}
                return cls(
                    movies=movies,
                    genres=dict(rows("SELECT genre_id, name FROM genres")),
                    movie_genres=movie_genres,
                    posters=posters,
                    imdb_titles={r[0] for r in rows("SELECT imdb_id FROM imdb_titles")},
                    imdb_genres=imdb_genres,
                    run_ids=[r[0] for r in rows("SELECT run_id FROM scrape_runs")],
                    open_failure_ids=[r[0] for r in rows(
                        "SELECT failure_id FROM fetch_failures WHERE state = 'open'")],
                    rejected_errors=[(t, e or "") for t, (s, e) in posters.items()
                                     if s == "rejected" and t in movies],
                )
        finally:
            engine.dispose()

    # -- one method per canned query: its rows, as the query orders them ------------------

    def movies_per_year(self) -> list[tuple[Any, ...]]:
        counts = Counter(m["year"] for m in self.movies.values())
        return sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))

    def genre_frequencies(self) -> list[tuple[Any, ...]]:
        counts = Counter(g for gs in self.movie_genres.values() for g in gs)
        return sorted(((g, self.genres[g], n) for g, n in counts.items()),
                      key=lambda r: (-r[2], r[0]))

    def genre_counts_per_year(self) -> list[tuple[Any, ...]]:
        counts = Counter(
            (self.movies[t]["year"], self.genres[g])
            for t, gs in self.movie_genres.items() for g in gs
            if self.movies[t]["year"] is not None
        )
        return sorted(((y, g, n) for (y, g), n in counts.items()),
                      key=lambda r: (r[0], -r[2], r[1]))

    def pair_counts(self) -> Counter[tuple[int, int]]:
        return Counter(p for gs in self.movie_genres.values()
                       for p in itertools.combinations(sorted(gs), 2))

    def genre_pairs(self) -> list[tuple[Any, ...]]:
        ranked = sorted(self.pair_counts().items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        return [(self.genres[a], self.genres[b], n) for (a, b), n in ranked]

    def poster_label(self, tmdb_id: int) -> str:
        return self.posters[tmdb_id][0] if tmdb_id in self.posters else "not downloaded"

    def poster_status(self) -> list[tuple[Any, ...]]:
        counts = Counter(self.poster_label(t) for t in self.movies)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def movies_without_usable_poster(self) -> list[tuple[Any, ...]]:
        rows = [(t, self.poster_label(t)) for t in self.movies if self.poster_label(t) != "ok"]
        return sorted(rows, key=lambda r: (r[1], r[0]))

    def rejected_posters_by_reason(self) -> list[tuple[Any, ...]]:
        by_reason: dict[str, list[int]] = {}
        for tmdb_id, error in self.rejected_errors:
            by_reason.setdefault(error.split(":", 1)[0], []).append(tmdb_id)
        return sorted(((r, len(ids), min(ids)) for r, ids in by_reason.items()),
                      key=lambda r: (-r[1], r[0]))

    def imdb_coverage(self) -> list[tuple[Any, ...]]:
        ids = [m["imdb_id"] for m in self.movies.values()]
        return [(
            len(ids),
            sum(i is not None for i in ids),
            sum(i in self.imdb_titles for i in ids),
            sum(i in self.imdb_genres for i in ids),
        )]

    def agreement(self, settings: Settings) -> dict[int, tuple[int, int, int]]:
        """Per TMDB genre (tmdb, imdb, both) over movies with genres from both sources."""
        mapping = settings.genres.imdb_to_tmdb
        tmdb: Counter[int] = Counter()
        imdb: Counter[int] = Counter()
        both: Counter[int] = Counter()
        for tmdb_id, movie in self.movies.items():
            mine = self.movie_genres.get(tmdb_id, set())
            raw = self.imdb_genres.get(movie["imdb_id"], set())
            if not mine or not raw:  # as the builder: any IMDb genre, mapped or not
                continue
            theirs = {mapping[g] for g in raw if g in mapping}
            tmdb.update(mine)
            imdb.update(theirs)
            both.update(mine & theirs)
        return {g: (tmdb[g], imdb[g], both[g]) for g in set(tmdb) | set(imdb)}
