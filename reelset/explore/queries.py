"""The canned queries analysts start from: Datasette serves them, the report shows them.

Each is plain SQL over the store's tables and analyst views (:mod:`reelset.storage.schema`),
the same text on SQLite and PostgreSQL unless a query gives a dialect its own. Every
query orders its rows completely, so a result is the same each time for the same store.
Like the analyst views, they leave out movies whose ``status`` is not ``active``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from reelset.storage import Store


@dataclass(frozen=True)
class CannedQuery:
    """One named query: its SQL, a title and a description for Datasette and the report."""

    name: str
    title: str
    description: str
    sql: str
    dialect_sql: dict[str, str] = field(default_factory=dict)
    """SQL for a dialect (``sqlite``, ``postgresql``) where the common text does not run."""

    def sql_for(self, dialect: str) -> str:
        """The SQL to run on ``dialect``."""
        return _clean(self.dialect_sql.get(dialect, self.sql))


def _clean(sql: str) -> str:
    """SQL without the indentation of its Python source (Datasette shows the text)."""
    return "\n".join(line.strip() for line in sql.strip().splitlines())


_REASON = {
    # A rejected poster's error is "<reason>: <detail>" (reelset.storage.posters).
    "sqlite": "CASE WHEN instr(error, ':') > 0 THEN substr(error, 1, instr(error, ':') - 1) "
    "ELSE coalesce(error, '') END",
    "postgresql": "split_part(coalesce(error, ''), ':', 1)",
}
_REJECTED_BY_REASON = """
    SELECT {reason} AS reason, count(*) AS posters, min(tmdb_id) AS example_tmdb_id
    FROM posters
    WHERE status = 'rejected'
      AND tmdb_id IN (SELECT tmdb_id FROM movies WHERE status = 'active')
    GROUP BY 1
    ORDER BY posters DESC, reason
"""
_POSTER_STATUS = "coalesce(p.status, 'not downloaded')"

QUERIES: tuple[CannedQuery, ...] = (
    CannedQuery(
        "movies_per_year",
        "Movies per year",
        "Active movies per release year (year empty: no release date).",
        """
        SELECT year, count(*) AS movies
        FROM movies
        WHERE status = 'active'
        GROUP BY year
        ORDER BY year IS NULL, year
        """,
    ),
    CannedQuery(
        "genre_frequencies",
        "Genre frequencies",
        "Active movies per TMDB genre, most frequent first.",
        """
        SELECT genre_id, genre, count(*) AS movies
        FROM movie_genres_named
        GROUP BY genre_id, genre
        ORDER BY movies DESC, genre_id
        """,
    ),
    CannedQuery(
        "genre_counts_per_year",
        "Genre counts per year",
        "Active movies per release year and TMDB genre (movies without a year left out).",
        """
        SELECT year, genre, count(*) AS movies
        FROM movie_genres_named
        WHERE year IS NOT NULL
        GROUP BY year, genre_id, genre
        ORDER BY year, movies DESC, genre
        """,
    ),
    CannedQuery(
        "genre_pairs",
        "Most frequent genre pairs",
        "The 50 pairs of TMDB genres that most often go together on one movie.",
        """
        SELECT a.genre AS genre_a, b.genre AS genre_b, count(*) AS movies
        FROM movie_genres_named a
        JOIN movie_genres_named b ON b.tmdb_id = a.tmdb_id AND b.genre_id > a.genre_id
        GROUP BY a.genre_id, a.genre, b.genre_id, b.genre
        ORDER BY movies DESC, a.genre_id, b.genre_id
        LIMIT 50
        """,
    ),
    CannedQuery(
        "poster_status",
        "Poster status",
        "Active movies by the status of their poster: ok, rejected, failed, missing "
        "(TMDB has none) or not downloaded (no poster row yet).",
        f"""
        SELECT {_POSTER_STATUS} AS poster_status, count(*) AS movies
        FROM movies m
        LEFT JOIN posters p ON p.tmdb_id = m.tmdb_id
        WHERE m.status = 'active'
        GROUP BY 1
        ORDER BY movies DESC, poster_status
        """,
    ),
    CannedQuery(
        "movies_without_usable_poster",
        "Movies without a usable poster",
        "Active movies whose poster is not ok, and why: the poster status and its error.",
        f"""
        SELECT m.tmdb_id, m.title, m.year, {_POSTER_STATUS} AS poster_status,
               p.error AS reason, m.poster_path
        FROM movies m
        LEFT JOIN posters p ON p.tmdb_id = m.tmdb_id
        WHERE m.status = 'active' AND (p.status IS NULL OR p.status <> 'ok')
        ORDER BY poster_status, m.tmdb_id
        """,
    ),
    CannedQuery(
        "rejected_posters_by_reason",
        "Rejected posters by reason",
        "Posters downloaded but not kept, per reason (the error's text before its colon).",
        _REJECTED_BY_REASON.format(reason=_REASON["sqlite"]),
        {d: _REJECTED_BY_REASON.format(reason=r) for d, r in _REASON.items()},
    ),
    CannedQuery(
        "imdb_coverage",
        "IMDb coverage",
        "Active movies, those with an IMDb id, those whose IMDb title is in the store, and "
        "those with IMDb genres.",
        """
        SELECT count(*) AS movies,
               count(m.imdb_id) AS with_imdb_id,
               count(t.imdb_id) AS with_imdb_title,
               coalesce(sum(CASE WHEN EXISTS (SELECT 1 FROM imdb_title_genres g
                                              WHERE g.imdb_id = m.imdb_id)
                                 THEN 1 ELSE 0 END), 0) AS with_imdb_genres
        FROM movies m
        LEFT JOIN imdb_titles t ON t.imdb_id = m.imdb_id
        WHERE m.status = 'active'
        """,
    ),
    CannedQuery(
        "genre_disagreement",
        "TMDB vs IMDb disagreement per genre",
        "Per TMDB genre, over movies with genres from both sources (IMDb's mapped through "
        "genre_map): movies with it on TMDB, on IMDb, on both, on one only, and the Jaccard "
        "index (both / either); the most disagreement first.",
        """
        SELECT genre_id, genre, tmdb, imdb, "both",
               tmdb - "both" AS tmdb_only, imdb - "both" AS imdb_only, jaccard
        FROM genre_agreement
        ORDER BY jaccard IS NULL, jaccard, genre_id
        """,
    ),
    CannedQuery(
        "run_history",
        "Scrape run history",
        "Every run (scrape, posters, IMDb import, build), newest first, with its counts.",
        """
        SELECT *
        FROM run_summary
        ORDER BY run_id DESC
        """,
    ),
    CannedQuery(
        "open_failures",
        "Open failures",
        "Failures later runs retry (state open), newest first.",
        """
        SELECT *
        FROM open_failures
        ORDER BY failure_id DESC
        """,
    ),
)
"""The canned queries, in the order Datasette and the report list them."""

BY_NAME = {q.name: q for q in QUERIES}


@dataclass(frozen=True)
class Result:
    """The rows of a query and their column names."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}``."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_query(conn: Connection, query: CannedQuery) -> Result:
    """Run a canned query on an open connection of the store."""
    cursor = conn.execute(text(query.sql_for(conn.dialect.name)))
    return Result(tuple(cursor.keys()), [tuple(row) for row in cursor])


def run_queries(store: Store, names: tuple[str, ...] | None = None) -> dict[str, Result]:
    """Run canned queries (default: all) in one read transaction; results by name."""
    chosen = QUERIES if names is None else tuple(BY_NAME[n] for n in names)
    with store.read() as conn:
        return {q.name: run_query(conn, q) for q in chosen}
