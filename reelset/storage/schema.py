"""The store's tables and views: the analysts' contract.

Table and column names here are a public interface (analysts, Datasette, pandas and
downstream tools query them). Columns may be added; the documented ones are never
renamed or removed without a migration and a major version.

Timestamps are UTC. On SQLite they are ISO 8601 text (``2026-11-21T12:34:56.123456Z``),
so they sort and compare as text; on PostgreSQL they are ``timestamp with time zone``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.types import TypeEngine

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def sqlite_timestamp(value: dt.datetime) -> str:
    """How SQLite stores an aware datetime: UTC ISO 8601 text with ``Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes: ISO 8601 text with ``Z`` on SQLite, timestamptz elsewhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return sqlite_timestamp(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


movies = Table(
    "movies",
    metadata,
    Column("tmdb_id", Integer, primary_key=True, autoincrement=False),
    Column("imdb_id", String(16), index=True),  # not unique: TMDB has entries sharing one
    Column("title", Text, nullable=False),
    Column("original_title", Text),
    Column("original_language", String(16)),
    Column("overview", Text),
    Column("tagline", Text),
    Column("release_date", Date),
    Column("year", Integer, index=True),
    Column("runtime", Integer),
    Column("popularity", Float),
    Column("vote_average", Float),
    Column("vote_count", Integer),
    Column("adult", Boolean, nullable=False, server_default=text("false")),
    Column("poster_path", Text),  # TMDB's poster path, as TMDB sent it (untrusted)
    Column("keywords", JSON),  # TMDB keyword names when fetched, else NULL
    # active, or gone when TMDB answered 404
    Column("status", String(16), nullable=False, server_default="active"),
    # hash of the stored fields and genres; an unchanged hash means no write
    Column("content_hash", String(32), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
)

movie_fetches = Table(
    "movie_fetches",
    metadata,
    Column("tmdb_id", Integer, primary_key=True, autoincrement=False),
    # last time the scraper fetched the movie, changed or not
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("run_id", Integer),  # the scrape run that fetched it
)

genres = Table(
    "genres",
    metadata,
    Column("genre_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("origin", String(16), nullable=False),  # tmdb, patched or unknown
)

movie_genres = Table(
    "movie_genres",
    metadata,
    Column("tmdb_id", Integer, ForeignKey("movies.tmdb_id", ondelete="CASCADE"), primary_key=True),
    Column("genre_id", Integer, ForeignKey("genres.genre_id"), primary_key=True),
    Index("ix_movie_genres_genre_id", "genre_id"),
    sqlite_with_rowid=False,  # the composite key is the row: one B-tree, not two
)

posters = Table(
    "posters",
    metadata,
    Column(
        "tmdb_id",
        Integer,
        ForeignKey("movies.tmdb_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("status", String(16), nullable=False),  # ok, failed, rejected or missing
    Column("sha256", String(64), index=True),
    Column("file_path", Text),  # relative to storage.posters_dir
    Column("width", Integer),
    Column("height", Integer),
    Column("format", String(16)),
    Column("mode", String(16)),
    Column("bytes", Integer),
    Column("phash", String(32)),  # perceptual hash (imagehash.phash), hex
    Column("poster_path", Text),  # the movie's poster_path this row was fetched for
    Column("source_url", Text),  # where it came from (never with credentials)
    Column("resized_file_path", Text),  # training copy relative to posters_dir, if made
    Column("resized_width", Integer),
    Column("resized_height", Integer),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("downloaded_at", UTCDateTime),
    Index("ix_posters_status", "status"),
)

scrape_runs = Table(
    "scrape_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("command", Text, nullable=False),
    Column("params", JSON, nullable=False),  # options of the run, without secrets
    # running, succeeded, partial, failed or interrupted
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("counts", JSON),  # movies new/updated/unchanged/failed, requests, 429s, retries
    Column("pid", Integer),
    Column("hostname", Text),
    Column("error", Text),
    Index("ix_scrape_runs_command_status", "command", "status"),
)

fetch_failures = Table(
    "fetch_failures",
    metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("scrape_runs.run_id"), index=True),
    Column("kind", String(16), nullable=False),  # movie, poster, find, ...
    Column("key", Text, nullable=False),  # what failed: a TMDB id, an IMDb id, a URL
    Column("http_status", Integer),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index(
        "uq_fetch_failures_open",
        "kind",
        "key",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

run_lock = Table(
    "run_lock",
    metadata,
    Column("name", String(32), primary_key=True),  # one row per held lock, e.g. 'scrape'
    Column("run_id", Integer),
    Column("pid", Integer, nullable=False),
    Column("hostname", Text, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", Text, primary_key=True),  # e.g. 'scrape:export:2026-11-21'
    Column("run_id", Integer),
    Column("value", JSON, nullable=False),  # the cursor to resume from
    Column("updated_at", UTCDateTime, nullable=False),
)

imdb_titles = Table(
    "imdb_titles",
    metadata,
    Column("imdb_id", String(16), primary_key=True),
    Column("title_type", String(32), nullable=False),
    Column("primary_title", Text),
    Column("original_title", Text),
    Column("is_adult", Boolean),
    Column("start_year", Integer),
    Column("runtime_minutes", Integer),
    Column("average_rating", Float),
    Column("num_votes", Integer),
    Column("imported_at", UTCDateTime, nullable=False),
)

imdb_title_genres = Table(
    "imdb_title_genres",
    metadata,
    Column(
        "imdb_id",
        String(16),
        ForeignKey("imdb_titles.imdb_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("genre", String(32), primary_key=True),
    Index("ix_imdb_title_genres_genre", "genre"),
)

__all__ = [
    "checkpoints",
    "fetch_failures",
    "genres",
    "imdb_title_genres",
    "imdb_titles",
    "metadata",
    "movie_fetches",
    "movie_genres",
    "movies",
    "posters",
    "run_lock",
    "scrape_runs",
    "utcnow",
]


def view_definitions(dialect: str) -> dict[str, str]:
    """``CREATE VIEW`` bodies per view name for a dialect (``sqlite`` or ``postgresql``)."""
    if dialect == "postgresql":
        genre_names = """
            SELECT m.tmdb_id, m.title, m.year,
                   string_agg(g.name, ', ' ORDER BY g.name) AS genres
            FROM movies m
            LEFT JOIN movie_genres mg ON mg.tmdb_id = m.tmdb_id
            LEFT JOIN genres g ON g.genre_id = mg.genre_id
            GROUP BY m.tmdb_id, m.title, m.year"""
        imdb_genres = """
            SELECT imdb_id, string_agg(genre, ', ' ORDER BY genre) AS genres
            FROM imdb_title_genres GROUP BY imdb_id"""
    else:
        # SQLite's group_concat takes no ORDER BY before 3.44: order in a subquery.
        genre_names = """
            SELECT m.tmdb_id, m.title, m.year,
                   (SELECT group_concat(name, ', ') FROM
                      (SELECT g.name FROM movie_genres mg JOIN genres g ON g.genre_id = mg.genre_id
                       WHERE mg.tmdb_id = m.tmdb_id ORDER BY g.name)) AS genres
            FROM movies m"""
        imdb_genres = """
            SELECT imdb_id, group_concat(genre, ', ') AS genres
            FROM (SELECT imdb_id, genre FROM imdb_title_genres ORDER BY imdb_id, genre)
            GROUP BY imdb_id"""
    movie_imdb = f"""
        SELECT m.tmdb_id, m.imdb_id, m.title, ig.genres AS imdb_genres,
               t.average_rating, t.num_votes
        FROM movies m
        JOIN imdb_titles t ON t.imdb_id = m.imdb_id
        LEFT JOIN ({imdb_genres}) ig ON ig.imdb_id = m.imdb_id"""
    return {"movie_genre_names": genre_names, "movie_imdb": movie_imdb}


VIEW_NAMES = ("movie_genre_names", "movie_imdb")
CONTRACT_TABLES: dict[str, tuple[str, ...]] = {
    "movies": (
        "tmdb_id",
        "imdb_id",
        "title",
        "original_title",
        "original_language",
        "overview",
        "tagline",
        "release_date",
        "year",
        "runtime",
        "popularity",
        "vote_average",
        "vote_count",
        "adult",
        "poster_path",
        "first_seen_at",
        "updated_at",
    ),
    "genres": ("genre_id", "name", "origin"),
    "movie_genres": ("tmdb_id", "genre_id"),
    "posters": (
        "tmdb_id",
        "status",
        "sha256",
        "file_path",
        "width",
        "height",
        "format",
        "bytes",
        "phash",
        "source_url",
        "error",
        "downloaded_at",
    ),
    "scrape_runs": ("run_id", "command", "params", "status", "started_at", "finished_at", "counts"),
    "fetch_failures": (
        "failure_id",
        "run_id",
        "kind",
        "key",
        "http_status",
        "error",
        "attempts",
        "first_failed_at",
        "last_failed_at",
        "resolved_at",
    ),
    "imdb_titles": (
        "imdb_id",
        "title_type",
        "primary_title",
        "original_title",
        "is_adult",
        "start_year",
        "runtime_minutes",
        "average_rating",
        "num_votes",
        "imported_at",
    ),
    "imdb_title_genres": ("imdb_id", "genre"),
    "movie_genre_names": ("tmdb_id", "title", "year", "genres"),
    "movie_imdb": ("tmdb_id", "imdb_id", "title", "imdb_genres", "average_rating", "num_votes"),
}
"""The documented names analysts rely on (tables and views), checked by the tests."""
