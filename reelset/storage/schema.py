"""The store's tables and views: the analysts' contract.

Table and column names here are a public interface (analysts, Datasette, pandas and
downstream tools query them). Columns may be added; the documented ones are never
renamed or removed without a migration and a major version.

Timestamps are UTC. On SQLite they are ISO 8601 text (``2026-11-21T12:34:56.123456Z``),
so they sort and compare as text; on PostgreSQL they are ``timestamp with time zone``.

This module is the one column list: a documented column is marked where it is defined
(``info=documented()``), :data:`CONTRACT_TABLES` is read from those marks, and the writers
(:mod:`.movies`, :mod:`.posters`, :mod:`.imdb`) build their rows from ``Table.c``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
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


CONTRACT = "contract"
"""The ``Column.info`` key marking a column of the analysts' contract."""


def documented() -> dict[str, Any]:
    """``Column.info`` of a documented column: analysts rely on it; never renamed or removed."""
    return {CONTRACT: True}


def column_names(table: Table, *, without: Iterable[str] = ()) -> tuple[str, ...]:
    """The names of ``table``'s columns in definition order, less those in ``without``."""
    skip = set(without)
    unknown = skip - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    return tuple(c.name for c in table.c if c.name not in skip)


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
        value = _as_utc(value)
        if value is not None and dialect.name == "sqlite":
            return sqlite_timestamp(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return _as_utc(value)


def _as_utc(value: dt.datetime | str | None) -> dt.datetime | None:
    """An aware UTC datetime from a datetime or ISO 8601 text (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _movie_key() -> Column[int]:
    """``tmdb_id`` keying rows that belong to a movie (and go with it)."""
    return Column(
        "tmdb_id",
        Integer,
        ForeignKey("movies.tmdb_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
        info=documented(),
    )


movies = Table(
    "movies",
    metadata,
    Column("tmdb_id", Integer, primary_key=True, autoincrement=False, info=documented()),
    # not unique: TMDB has entries sharing one
    Column("imdb_id", String(16), index=True, info=documented()),
    Column("title", Text, nullable=False, info=documented()),
    Column("original_title", Text, info=documented()),
    Column("original_language", String(16), info=documented()),
    Column("overview", Text, info=documented()),
    Column("tagline", Text, info=documented()),
    Column("release_date", Date, info=documented()),
    Column("year", Integer, index=True, info=documented()),
    Column("runtime", Integer, info=documented()),
    Column("popularity", Float, info=documented()),
    Column("vote_average", Float, info=documented()),
    Column("vote_count", Integer, info=documented()),
    Column("adult", Boolean, nullable=False, server_default=text("false"), info=documented()),
    # TMDB's poster path, as TMDB sent it (untrusted)
    Column("poster_path", Text, info=documented()),
    Column("keywords", JSON),  # TMDB keyword names when fetched, else NULL
    # active, or gone when TMDB answered 404
    Column("status", String(16), nullable=False, server_default="active"),
    # hash of the stored fields and genres; an unchanged hash means no write
    Column("content_hash", String(32), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False, info=documented()),
    Column("updated_at", UTCDateTime, nullable=False, index=True, info=documented()),
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
    Column("genre_id", Integer, primary_key=True, autoincrement=False, info=documented()),
    Column("name", Text, nullable=False, info=documented()),
    Column("origin", String(16), nullable=False, info=documented()),  # tmdb, patched or unknown
)

movie_genres = Table(
    "movie_genres",
    metadata,
    _movie_key(),
    Column("genre_id", Integer, ForeignKey("genres.genre_id"), primary_key=True, info=documented()),
    Index("ix_movie_genres_genre_id", "genre_id"),
    sqlite_with_rowid=False,  # the composite key is the row: one B-tree, not two
)

posters = Table(
    "posters",
    metadata,
    _movie_key(),
    # ok, failed, rejected or missing
    Column("status", String(16), nullable=False, info=documented()),
    Column("sha256", String(64), index=True, info=documented()),
    Column("file_path", Text, info=documented()),  # relative to storage.posters_dir
    Column("width", Integer, info=documented()),
    Column("height", Integer, info=documented()),
    Column("format", String(16), info=documented()),
    Column("mode", String(16)),
    Column("bytes", Integer, info=documented()),
    Column("phash", String(32), info=documented()),  # perceptual hash (imagehash.phash), hex
    Column("poster_path", Text),  # the movie's poster_path this row was fetched for
    Column("source_url", Text, info=documented()),  # where it came from (never with credentials)
    Column("resized_file_path", Text),  # training copy relative to posters_dir, if made
    Column("resized_width", Integer),
    Column("resized_height", Integer),
    Column("error", Text, info=documented()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("downloaded_at", UTCDateTime, info=documented()),
    Index("ix_posters_status", "status"),
)

scrape_runs = Table(
    "scrape_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True, info=documented()),
    Column("command", Text, nullable=False, info=documented()),
    # options of the run, without secrets
    Column("params", JSON, nullable=False, info=documented()),
    # running, succeeded, partial, failed or interrupted
    Column("status", String(16), nullable=False, info=documented()),
    Column("started_at", UTCDateTime, nullable=False, info=documented()),
    Column("finished_at", UTCDateTime, info=documented()),
    # movies new/updated/unchanged/failed, requests, 429s, retries
    Column("counts", JSON, info=documented()),
    Column("pid", Integer),
    Column("hostname", Text),
    Column("error", Text),
    Index("ix_scrape_runs_command_status", "command", "status"),
)

fetch_failures = Table(
    "fetch_failures",
    metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True, info=documented()),
    Column("run_id", Integer, ForeignKey("scrape_runs.run_id"), index=True, info=documented()),
    Column("kind", String(16), nullable=False, info=documented()),  # movie, poster, find, ...
    # what failed: a TMDB id, an IMDb id, a URL
    Column("key", Text, nullable=False, info=documented()),
    Column("http_status", Integer, info=documented()),
    Column("error", Text, info=documented()),
    Column("attempts", Integer, nullable=False, server_default="1", info=documented()),
    Column("first_failed_at", UTCDateTime, nullable=False, info=documented()),
    Column("last_failed_at", UTCDateTime, nullable=False, info=documented()),
    Column("resolved_at", UTCDateTime, info=documented()),
    # open (retried by later runs), abandoned (failed [failures] max_attempts times over
    # min_age_days: no longer retried automatically) or resolved (resolved_at is set)
    Column("state", String(16), nullable=False, server_default="open", info=documented()),
    # when it was abandoned; kept once resolved
    Column("abandoned_at", UTCDateTime, info=documented()),
    Index(
        "uq_fetch_failures_open",
        "kind",
        "key",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
    Index("ix_fetch_failures_state_kind", "state", "kind"),
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
    Column("imdb_id", String(16), primary_key=True, info=documented()),
    Column("title_type", String(32), nullable=False, info=documented()),
    Column("primary_title", Text, info=documented()),
    Column("original_title", Text, info=documented()),
    Column("is_adult", Boolean, info=documented()),
    Column("start_year", Integer, info=documented()),
    Column("runtime_minutes", Integer, info=documented()),
    Column("average_rating", Float, info=documented()),
    Column("num_votes", Integer, info=documented()),
    Column("imported_at", UTCDateTime, nullable=False, info=documented()),
)

imdb_title_genres = Table(
    "imdb_title_genres",
    metadata,
    Column(
        "imdb_id",
        String(16),
        ForeignKey("imdb_titles.imdb_id", ondelete="CASCADE"),
        primary_key=True,
        info=documented(),
    ),
    Column("genre", String(32), primary_key=True, info=documented()),
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
    **{
        table.name: names
        for table in metadata.tables.values()
        if (names := tuple(c.name for c in table.c if c.info.get(CONTRACT)))
    },
    "movie_genre_names": ("tmdb_id", "title", "year", "genres"),
    "movie_imdb": ("tmdb_id", "imdb_id", "title", "imdb_genres", "average_rating", "num_votes"),
}
"""The documented names analysts rely on: per table its columns marked ``documented()``
(in definition order), per view its columns in order. Checked by the tests."""
