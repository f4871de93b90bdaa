"""The store's tables and views: the analysts' contract.

Table and column names here are a public interface (analysts, Datasette, pandas and
downstream tools query them). Columns may be added; the documented ones are never
renamed or removed without a migration and a major version.

Timestamps are UTC. On SQLite they are ISO 8601 text (``2026-11-21T12:34:56.123456Z``),
so they sort and compare as text; on PostgreSQL they are ``timestamp with time zone``.

This module is the one column list: a documented column is marked where it is defined
(``info=documented(description)``), :data:`CONTRACT_TABLES` is read from those marks, and
the writers (:mod:`.movies`, :mod:`.posters`, :mod:`.imdb`) build their rows from
``Table.c``. It is also the one source of descriptions: every table, column and view
carries its own, and :func:`describe`/:func:`schema_doc` give them to the README, Datasette
and ``reelset db info --schema``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
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

DOC = "doc"
"""The ``Column.info``/``Table.info`` key of a description (the one source of every
description: the README's schema section, Datasette's metadata and ``reelset db info
--schema`` are generated from it by :func:`describe` and :func:`schema_doc`)."""


def documented(description: str) -> dict[str, Any]:
    """``Column.info`` of a documented column: analysts rely on it; never renamed or removed."""
    return {CONTRACT: True, DOC: description}


def internal(description: str) -> dict[str, Any]:
    """``Column.info`` of reelset's own column: described, but free to change."""
    return {DOC: description}


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


def _movie_key(description: str) -> Column[int]:
    """``tmdb_id`` keying rows that belong to a movie (and go with it)."""
    return Column(
        "tmdb_id",
        Integer,
        ForeignKey("movies.tmdb_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
        info=documented(description),
    )


movies = Table(
    "movies",
    metadata,
    Column(
        "tmdb_id",
        Integer,
        primary_key=True,
        autoincrement=False,
        info=documented("TMDB's movie id (primary key)"),
    ),
    # not unique: TMDB has entries sharing one
    Column(
        "imdb_id",
        String(16),
        index=True,
        info=documented(
            "IMDb id (`tt…`) TMDB lists for the movie, or NULL; indexed but not unique: "
            "distinct TMDB entries can share one"
        ),
    ),
    Column("title", Text, nullable=False, info=documented("title (in [tmdb] language)")),
    Column("original_title", Text, info=documented("title in the original language")),
    Column(
        "original_language",
        String(16),
        info=documented("ISO 639-1 code of the original language, e.g. `en`"),
    ),
    Column("overview", Text, info=documented("plot summary (in [tmdb] language), or NULL")),
    Column("tagline", Text, info=documented("tagline, or NULL")),
    Column("release_date", Date, info=documented("release date, or NULL")),
    Column("year", Integer, index=True, info=documented("release year, or NULL")),
    Column("runtime", Integer, info=documented("runtime in minutes")),
    Column("popularity", Float, info=documented("TMDB's popularity score")),
    Column("vote_average", Float, info=documented("TMDB's average vote, 0-10")),
    Column("vote_count", Integer, info=documented("number of TMDB votes")),
    Column(
        "adult",
        Boolean,
        nullable=False,
        server_default=text("false"),
        info=documented("TMDB's adult flag"),
    ),
    # TMDB's poster path, as TMDB sent it (untrusted)
    Column(
        "poster_path",
        Text,
        info=documented("TMDB's poster path as TMDB sent it (untrusted), or NULL"),
    ),
    Column("keywords", JSON, info=internal("TMDB keyword names (JSON list) when fetched, or NULL")),
    Column(
        "status",
        String(16),
        nullable=False,
        server_default="active",
        info=internal(
            "`active`, or `gone` once TMDB answered 404 (the analyst views leave gone movies out)"
        ),
    ),
    # hash of the stored fields and genres; an unchanged hash means no write
    Column(
        "content_hash",
        String(32),
        nullable=False,
        info=internal("hash of the stored fields and genres: an unchanged hash means no write"),
    ),
    Column("first_seen_at", UTCDateTime, nullable=False, info=documented("first stored (UTC)")),
    Column(
        "updated_at",
        UTCDateTime,
        nullable=False,
        index=True,
        info=documented("last change of a stored field or of the genre set (UTC)"),
    ),
    info={DOC: "TMDB movies, one row per TMDB id"},
)

movie_fetches = Table(
    "movie_fetches",
    metadata,
    Column(
        "tmdb_id",
        Integer,
        primary_key=True,
        autoincrement=False,
        info=internal("TMDB movie id"),
    ),
    Column(
        "fetched_at",
        UTCDateTime,
        nullable=False,
        info=internal("last time the scraper fetched the movie, changed or not (UTC)"),
    ),
    Column("run_id", Integer, info=internal("the scrape run that fetched it")),
    info={
        DOC: "when the scraper last fetched each movie, changed or not "
        "(drives [tmdb] refresh_after_days)"
    },
)

genres = Table(
    "genres",
    metadata,
    Column(
        "genre_id",
        Integer,
        primary_key=True,
        autoincrement=False,
        info=documented("TMDB genre id (primary key)"),
    ),
    Column("name", Text, nullable=False, info=documented("genre name")),
    Column(
        "origin",
        String(16),
        nullable=False,
        info=documented(
            "`tmdb` (TMDB's genre list), `patched` (from [genres.patch], e.g. 10769 Foreign) "
            "or `unknown` (named `Unknown (<id>)`)"
        ),
    ),
    info={DOC: "TMDB's genres, and the ids movies carry that TMDB's list lacks"},
)

movie_genres = Table(
    "movie_genres",
    metadata,
    _movie_key("the movie (`movies.tmdb_id`)"),
    Column(
        "genre_id",
        Integer,
        ForeignKey("genres.genre_id"),
        primary_key=True,
        info=documented("the genre (`genres.genre_id`)"),
    ),
    Index("ix_movie_genres_genre_id", "genre_id"),
    sqlite_with_rowid=False,  # the composite key is the row: one B-tree, not two
    info={DOC: "TMDB genres per movie: one row per (movie, genre)"},
)

posters = Table(
    "posters",
    metadata,
    _movie_key("the movie (`movies.tmdb_id`)"),
    Column(
        "status",
        String(16),
        nullable=False,
        info=documented("`ok`, `failed`, `rejected` or `missing`"),
    ),
    Column("sha256", String(64), index=True, info=documented("SHA-256 of the stored file")),
    Column(
        "file_path",
        Text,
        info=documented("the stored file, relative to [storage] posters_dir"),
    ),
    Column("width", Integer, info=documented("width in pixels")),
    Column("height", Integer, info=documented("height in pixels")),
    Column("format", String(16), info=documented("image format, e.g. `JPEG`")),
    Column("mode", String(16), info=internal("Pillow image mode, e.g. `RGB`")),
    Column("bytes", Integer, info=documented("file size in bytes")),
    Column(
        "phash",
        String(32),
        info=documented("perceptual hash (imagehash.phash), hex"),
    ),
    Column(
        "poster_path",
        Text,
        info=internal("the movie's poster_path this row was fetched for"),
    ),
    Column(
        "source_url",
        Text,
        info=documented("where it was downloaded from (never with credentials)"),
    ),
    Column(
        "resized_file_path",
        Text,
        info=internal("training copy relative to [storage] posters_dir, if made"),
    ),
    Column("resized_width", Integer, info=internal("width of the training copy")),
    Column("resized_height", Integer, info=internal("height of the training copy")),
    Column("error", Text, info=documented("why it failed or was rejected")),
    Column(
        "attempts",
        Integer,
        nullable=False,
        server_default="0",
        info=internal("download attempts"),
    ),
    Column("downloaded_at", UTCDateTime, info=documented("when it was downloaded (UTC)")),
    Index("ix_posters_status", "status"),
    info={DOC: "each movie's poster: the downloaded, verified file or why there is none"},
)

scrape_runs = Table(
    "scrape_runs",
    metadata,
    Column(
        "run_id",
        Integer,
        primary_key=True,
        autoincrement=True,
        info=documented("run id (primary key)"),
    ),
    Column(
        "command",
        Text,
        nullable=False,
        info=documented("`scrape`, `posters`, `posters-verify`, `imdb import` or `build`"),
    ),
    Column(
        "params", JSON, nullable=False, info=documented("options of the run (JSON, no secrets)")
    ),
    Column(
        "status",
        String(16),
        nullable=False,
        info=documented("`running`, `succeeded`, `partial`, `failed` or `interrupted`"),
    ),
    Column("started_at", UTCDateTime, nullable=False, info=documented("start (UTC)")),
    Column("finished_at", UTCDateTime, info=documented("end (UTC), NULL while running")),
    Column(
        "counts",
        JSON,
        info=documented("what the run did (JSON; the view `run_summary` spreads it into columns)"),
    ),
    Column("pid", Integer, info=internal("process id of the run")),
    Column("hostname", Text, info=internal("host of the run")),
    Column("error", Text, info=internal("why the run failed, if it did")),
    Index("ix_scrape_runs_command_status", "command", "status"),
    info={DOC: "every recorded run of a command, one row per run"},
)

fetch_failures = Table(
    "fetch_failures",
    metadata,
    Column(
        "failure_id",
        Integer,
        primary_key=True,
        autoincrement=True,
        info=documented("failure id (primary key)"),
    ),
    Column(
        "run_id",
        Integer,
        ForeignKey("scrape_runs.run_id"),
        index=True,
        info=documented("the last run that failed it"),
    ),
    Column(
        "kind",
        String(16),
        nullable=False,
        info=documented("`movie`, `poster` or `find` (an IMDb id looked up on TMDB)"),
    ),
    Column(
        "key",
        Text,
        nullable=False,
        info=documented("what failed: a TMDB id (movie, poster) or an IMDb id (find)"),
    ),
    Column("http_status", Integer, info=documented("HTTP status of the last failure, if any")),
    Column("error", Text, info=documented("the last error")),
    Column(
        "attempts",
        Integer,
        nullable=False,
        server_default="1",
        info=documented("failed attempts so far"),
    ),
    Column("first_failed_at", UTCDateTime, nullable=False, info=documented("first failure (UTC)")),
    Column("last_failed_at", UTCDateTime, nullable=False, info=documented("last failure (UTC)")),
    Column(
        "resolved_at",
        UTCDateTime,
        info=documented("when a later run succeeded (UTC), NULL while unresolved"),
    ),
    Column(
        "state",
        String(16),
        nullable=False,
        server_default="open",
        info=documented(
            "`open` (retried by later runs), `abandoned` (failed [failures] max_attempts times "
            "over min_age_days: no longer retried automatically) or `resolved`"
        ),
    ),
    Column(
        "abandoned_at",
        UTCDateTime,
        info=documented("when it was abandoned (UTC); kept once resolved"),
    ),
    Index(
        "uq_fetch_failures_open",
        "kind",
        "key",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
    Index("ix_fetch_failures_state_kind", "state", "kind"),
    info={
        DOC: "the failure ledger: one unresolved (open or abandoned) row per (kind, key), "
        "kept once resolved"
    },
)

run_lock = Table(
    "run_lock",
    metadata,
    Column("name", String(32), primary_key=True, info=internal("lock name, e.g. `scrape`")),
    Column("run_id", Integer, info=internal("the run holding it")),
    Column("pid", Integer, nullable=False, info=internal("process id of the holder")),
    Column("hostname", Text, nullable=False, info=internal("host of the holder")),
    Column("acquired_at", UTCDateTime, nullable=False, info=internal("when it was taken (UTC)")),
    Column("heartbeat_at", UTCDateTime, nullable=False, info=internal("last heartbeat (UTC)")),
    info={
        DOC: "reelset's own bookkeeping: the run locks (`scrape`, `posters`, `imdb`; "
        "`posters verify --repair` holds `scrape` and `posters`)"
    },
)

poster_claims = Table(
    "poster_claims",
    metadata,
    Column(
        "tmdb_id",
        Integer,
        ForeignKey("movies.tmdb_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
        info=internal("the movie whose poster is claimed (`movies.tmdb_id`)"),
    ),
    Column("worker", Text, nullable=False, info=internal("the claiming worker, `<host>:<pid>`")),
    Column("run_id", Integer, info=internal("the worker's run (`scrape_runs.run_id`)")),
    Column("claimed_at", UTCDateTime, nullable=False, info=internal("when it was claimed (UTC)")),
    Column(
        "lease_until",
        UTCDateTime,
        nullable=False,
        index=True,
        info=internal(
            "the claim lapses then unless renewed (UTC): a dead worker's posters are "
            "claimed again"
        ),
    ),
    info={
        DOC: "reelset's own bookkeeping: the posters `reelset posters --worker` processes "
        "are downloading (PostgreSQL), one row per claimed movie, deleted once recorded"
    },
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", Text, primary_key=True, info=internal("e.g. `scrape:export:2026-11-21`")),
    Column("run_id", Integer, info=internal("the run that wrote it")),
    Column("value", JSON, nullable=False, info=internal("the cursor to resume from (JSON)")),
    Column("updated_at", UTCDateTime, nullable=False, info=internal("last write (UTC)")),
    info={DOC: "reelset's own bookkeeping: the cursors interrupted runs resume from"},
)

imdb_titles = Table(
    "imdb_titles",
    metadata,
    Column("imdb_id", String(16), primary_key=True, info=documented("IMDb id (primary key)")),
    Column(
        "title_type",
        String(32),
        nullable=False,
        info=documented("IMDb title type, e.g. `movie`, `tvMovie`"),
    ),
    Column("primary_title", Text, info=documented("IMDb's primary title")),
    Column("original_title", Text, info=documented("IMDb's original title")),
    Column("is_adult", Boolean, info=documented("IMDb's adult flag")),
    Column("start_year", Integer, info=documented("release year")),
    Column("runtime_minutes", Integer, info=documented("runtime in minutes")),
    Column("average_rating", Float, info=documented("IMDb's weighted average rating, 1-10")),
    Column("num_votes", Integer, info=documented("number of IMDb votes")),
    Column("imported_at", UTCDateTime, nullable=False, info=documented("last import (UTC)")),
    info={DOC: "IMDb titles from IMDb's official datasets (or a cinemagoer database)"},
)

imdb_title_genres = Table(
    "imdb_title_genres",
    metadata,
    Column(
        "imdb_id",
        String(16),
        ForeignKey("imdb_titles.imdb_id", ondelete="CASCADE"),
        primary_key=True,
        info=documented("the title (`imdb_titles.imdb_id`)"),
    ),
    Column("genre", String(32), primary_key=True, info=documented("IMDb's genre name")),
    Index("ix_imdb_title_genres_genre", "genre"),
    info={DOC: "IMDb genres per title: one row per (title, genre)"},
)

genre_map = Table(
    "genre_map",
    metadata,
    Column("imdb_genre", Text, primary_key=True, info=documented("IMDb's genre name")),
    Column(
        "tmdb_genre_id",
        Integer,
        info=documented("the TMDB genre it is, or NULL: an IMDb-only genre"),
    ),
    Column(
        "tmdb_genre",
        Text,
        info=documented("that TMDB genre's name (`Unknown (<id>)` if unknown), or NULL"),
    ),
    info={
        DOC: "IMDb genre -> TMDB genre as [genres] imdb_to_tmdb says, plus every stored IMDb "
        "genre it does not map (NULL); rewritten by every `imdb import` and `build`"
    },
)

__all__ = [
    "checkpoints",
    "fetch_failures",
    "genre_map",
    "genres",
    "imdb_title_genres",
    "imdb_titles",
    "metadata",
    "movie_fetches",
    "movie_genres",
    "movies",
    "poster_claims",
    "posters",
    "run_lock",
    "scrape_runs",
    "utcnow",
]


# -- the analysts' views ----------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """An analyst view: its name, description and columns (in order) with theirs.

    Its SQL per dialect is :func:`view_sql`'s; migration 0003 creates the views from it
    (a migration that changes a view later copies the old SQL into 0003 first).
    """

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(name for name, _ in self.columns)


ACTIVE_ONLY = "active movies only (`movies.status = 'active'`): gone movies are left out"

VIEWS: tuple[View, ...] = (
    View(
        "movie_genre_names",
        f"each movie with its TMDB genre names; {ACTIVE_ONLY}",
        (
            ("tmdb_id", "TMDB movie id"),
            ("title", "title"),
            ("year", "release year"),
            ("genres", "TMDB genre names joined with `, `, sorted; NULL when none"),
            (
                "genres_json",
                'the same as a JSON array, e.g. `["Action","Drama"]` (`[]` when none; '
                "for Datasette's `_facet_array`)",
            ),
        ),
    ),
    View(
        "movie_genres_named",
        f"one row per movie and TMDB genre, with names; {ACTIVE_ONLY}",
        (
            ("tmdb_id", "TMDB movie id"),
            ("title", "title"),
            ("year", "release year"),
            ("genre_id", "TMDB genre id"),
            ("genre", "genre name"),
        ),
    ),
    View(
        "movie_imdb",
        f"movies with their IMDb title: genres, rating, votes; {ACTIVE_ONLY}",
        (
            ("tmdb_id", "TMDB movie id"),
            ("imdb_id", "IMDb id"),
            ("title", "title (TMDB's)"),
            ("imdb_genres", "IMDb genre names joined with `, `, sorted; NULL when none"),
            ("average_rating", "IMDb rating"),
            ("num_votes", "IMDb votes"),
            ("imdb_genres_json", "IMDb genre names as a JSON array (`[]` when none)"),
        ),
    ),
    View(
        "genre_agreement",
        "per TMDB genre, how TMDB and IMDb agree on the active movies with genres from both "
        "sources (IMDb genres mapped through `genre_map`; IMDb-only genres left out): the "
        "numbers of a dataset manifest's `label_agreement.genres` for the same movies",
        (
            ("genre_id", "TMDB genre id"),
            ("genre", "genre name"),
            ("tmdb", "movies with it from TMDB"),
            ("imdb", "movies with it from IMDb (mapped)"),
            ("both", "movies with it from both (a reserved word on PostgreSQL: quote it)"),
            ("jaccard", "both / movies with it from either, rounded to 6 places"),
        ),
    ),
    View(
        "run_summary",
        "one row per recorded run, its `counts` spread into columns (NULL where the command "
        "does not count it)",
        (
            ("run_id", "run id"),
            ("command", "the command"),
            ("status", "`running`, `succeeded`, `partial`, `failed` or `interrupted`"),
            ("started_at", "start (UTC)"),
            ("finished_at", "end (UTC), NULL while running"),
            ("duration_s", "finished_at - started_at in seconds"),
            ("movies_discovered", "scrape: movies discovery listed"),
            ("movies_fetched", "scrape: movies fetched from TMDB"),
            ("movies_new", "scrape: new movies stored"),
            ("movies_updated", "scrape: movies that changed"),
            ("movies_unchanged", "scrape: movies fetched unchanged"),
            ("movies_failed", "scrape: movies that failed"),
            ("movies_gone", "scrape: movies TMDB answered 404 for"),
            ("posters_ok", "posters (and scrape --posters): posters stored"),
            ("posters_rejected", "posters: posters rejected (not a valid image)"),
            ("posters_failed", "posters: downloads that failed"),
            ("posters_missing", "posters: movies without a poster on TMDB"),
            ("imdb_titles_new", "imdb import: new titles"),
            ("imdb_titles_updated", "imdb import: changed titles"),
            ("imdb_titles_unchanged", "imdb import: unchanged titles"),
            ("requests", "scrape: TMDB API requests; posters: image requests"),
            ("throttled_429", "scrape: answers 429 (rate limited)"),
            ("retries", "scrape, posters: requests retried"),
            ("dataset_version", "build: the version built (or unchanged)"),
            ("dataset_rows", "build: rows of the dataset"),
            ("error", "why the run failed, if it did"),
            ("counts", "the whole counts JSON"),
        ),
    ),
    View(
        "open_failures",
        "the failure ledger's open failures (`fetch_failures.state = 'open'`: retried by "
        "later runs), with the movie's title",
        (
            ("failure_id", "failure id"),
            ("kind", "`movie`, `poster` or `find`"),
            ("key", "a TMDB id (movie, poster) or an IMDb id (find)"),
            ("tmdb_id", "the movie of a movie or poster failure, if stored"),
            ("title", "its title"),
            (
                "movie_status",
                "its `movies.status` (`active` or `gone`); NULL when the store has no such movie",
            ),
            ("run_id", "the last run that failed it"),
            ("http_status", "HTTP status of the last failure, if any"),
            ("error", "the last error"),
            ("attempts", "failed attempts so far"),
            ("first_failed_at", "first failure (UTC)"),
            ("last_failed_at", "last failure (UTC)"),
        ),
    ),
)
VIEW_NAMES = tuple(v.name for v in VIEWS)


def _sorted_genres(dialect: str) -> tuple[str, str]:
    """(names joined, JSON array) aggregates of a genre ``name`` column, sorted bytewise."""
    if dialect == "postgresql":
        # COLLATE "C": the order SQLite's BINARY collation gives, whatever the database's.
        return (
            """string_agg(name, ', ' ORDER BY name COLLATE "C")""",
            """COALESCE(array_to_json(array_agg(name ORDER BY name COLLATE "C")
                     FILTER (WHERE name IS NOT NULL))::text, '[]')""",
        )
    # SQLite's aggregates take no ORDER BY before 3.44: callers order in a subquery.
    return "group_concat(name, ', ')", "json_group_array(name)"


def _count(dialect: str, path: str) -> str:
    """A value of ``scrape_runs.counts`` (a JSON object) at a dotted ``path``."""
    if dialect == "postgresql":
        *parents, leaf = path.split(".")
        reach = "".join(f" -> '{p}'" for p in parents)
        return f"CAST(r.counts{reach} ->> '{leaf}' AS bigint)"
    return f"json_extract(r.counts, '$.{path}')"


def _text_count(dialect: str, key: str) -> str:
    """A text value of ``scrape_runs.counts`` at a top-level ``key``."""
    if dialect == "postgresql":
        return f"(r.counts ->> '{key}')"
    return f"json_extract(r.counts, '$.{key}')"


def view_sql(dialect: str) -> dict[str, str]:
    """The ``CREATE VIEW`` body of every view in :data:`VIEWS` for a dialect."""
    pg = dialect == "postgresql"
    joined, as_json = _sorted_genres(dialect)
    if pg:
        genre_names = f"""
            SELECT m.tmdb_id, m.title, m.year,
                   {joined} AS genres,
                   {as_json} AS genres_json
            FROM movies m
            LEFT JOIN (SELECT mg.tmdb_id, g.name FROM movie_genres mg
                       JOIN genres g ON g.genre_id = mg.genre_id) n ON n.tmdb_id = m.tmdb_id
            WHERE m.status = 'active'
            GROUP BY m.tmdb_id, m.title, m.year"""
        imdb_genres = f"""
            SELECT imdb_id, {joined} AS genres, {as_json} AS genres_json
            FROM (SELECT imdb_id, genre AS name FROM imdb_title_genres) ig
            GROUP BY imdb_id"""
        duration = (
            "CAST(ROUND(CAST(EXTRACT(EPOCH FROM r.finished_at - r.started_at) AS numeric), 3)"
            " AS double precision)"
        )
        jaccard = "CAST(ROUND(CAST(sum(in_both) AS numeric) / count(*), 6) AS double precision)"
        failure_movie = "CASE WHEN f.key ~ '^[0-9]{1,9}$' THEN CAST(f.key AS integer) END"
    else:
        per_movie = """(SELECT {agg} FROM
                      (SELECT g.name FROM movie_genres mg JOIN genres g ON g.genre_id = mg.genre_id
                       WHERE mg.tmdb_id = m.tmdb_id ORDER BY g.name))"""
        genre_names = f"""
            SELECT m.tmdb_id, m.title, m.year,
                   {per_movie.format(agg=joined)} AS genres,
                   {per_movie.format(agg=as_json)} AS genres_json
            FROM movies m
            WHERE m.status = 'active'"""
        imdb_genres = f"""
            SELECT imdb_id, {joined} AS genres, {as_json} AS genres_json
            FROM (SELECT imdb_id, genre AS name FROM imdb_title_genres ORDER BY imdb_id, genre)
            GROUP BY imdb_id"""
        duration = "ROUND((julianday(r.finished_at) - julianday(r.started_at)) * 86400.0, 3)"
        jaccard = "ROUND(CAST(sum(in_both) AS REAL) / count(*), 6)"
        failure_movie = "CAST(f.key AS INTEGER)"

    genres_named = """
        SELECT m.tmdb_id, m.title, m.year, g.genre_id, g.name AS genre
        FROM movies m
        JOIN movie_genres mg ON mg.tmdb_id = m.tmdb_id
        JOIN genres g ON g.genre_id = mg.genre_id
        WHERE m.status = 'active'"""
    movie_imdb = f"""
        SELECT m.tmdb_id, m.imdb_id, m.title, ig.genres AS imdb_genres,
               t.average_rating, t.num_votes, COALESCE(ig.genres_json, '[]') AS imdb_genres_json
        FROM movies m
        JOIN imdb_titles t ON t.imdb_id = m.imdb_id
        LEFT JOIN ({imdb_genres}) ig ON ig.imdb_id = m.imdb_id
        WHERE m.status = 'active'"""
    # The movies compared are those with a genre from each source (mapped or not), as
    # reelset.dataset.labels.agreement counts them; a (movie, genre) pair counts once
    # however many IMDb genres map onto the genre.
    agreement = f"""
        WITH compared AS (
            SELECT m.tmdb_id, m.imdb_id FROM movies m
            WHERE m.status = 'active'
              AND EXISTS (SELECT 1 FROM movie_genres mg WHERE mg.tmdb_id = m.tmdb_id)
              AND EXISTS (SELECT 1 FROM imdb_title_genres ig WHERE ig.imdb_id = m.imdb_id)
        ),
        pairs AS (
            SELECT c.tmdb_id, mg.genre_id, 1 AS from_tmdb, 0 AS from_imdb
            FROM compared c JOIN movie_genres mg ON mg.tmdb_id = c.tmdb_id
            UNION ALL
            SELECT c.tmdb_id, gm.tmdb_genre_id, 0, 1
            FROM compared c
            JOIN imdb_title_genres ig ON ig.imdb_id = c.imdb_id
            JOIN genre_map gm ON gm.imdb_genre = ig.genre
            WHERE gm.tmdb_genre_id IS NOT NULL
        ),
        per_movie AS (
            SELECT tmdb_id, genre_id, max(from_tmdb) AS in_tmdb, max(from_imdb) AS in_imdb,
                   max(from_tmdb) * max(from_imdb) AS in_both
            FROM pairs GROUP BY tmdb_id, genre_id
        )
        SELECT p.genre_id,
               COALESCE(g.name, 'Unknown (' || CAST(p.genre_id AS TEXT) || ')') AS genre,
               sum(in_tmdb) AS tmdb, sum(in_imdb) AS imdb, sum(in_both) AS "both",
               {jaccard} AS jaccard
        FROM per_movie p LEFT JOIN genres g ON g.genre_id = p.genre_id
        GROUP BY p.genre_id, g.name"""
    scrape, posters = "r.command = 'scrape'", "r.command = 'posters'"
    fetching = "r.command IN ('scrape', 'posters')"
    posters_ok = (
        f"CASE r.command WHEN 'posters' THEN {_count(dialect, 'ok')} "
        f"WHEN 'scrape' THEN {_count(dialect, 'posters.ok')} END"
    )
    spread = {
        "movies_discovered": _when(scrape, _count(dialect, "discovered")),
        "movies_fetched": _when(scrape, _count(dialect, "fetched")),
        "movies_new": _when(scrape, _count(dialect, "new")),
        "movies_updated": _when(scrape, _count(dialect, "updated")),
        "movies_unchanged": _when(scrape, _count(dialect, "unchanged")),
        "movies_failed": _when(scrape, _count(dialect, "failed")),
        "movies_gone": _when(scrape, _count(dialect, "gone")),
        "posters_ok": posters_ok,
        "posters_rejected": _when(posters, _count(dialect, "rejected")),
        "posters_failed": _when(posters, _count(dialect, "failed")),
        "posters_missing": _when(posters, _count(dialect, "missing")),
        "imdb_titles_new": _when("r.command = 'imdb import'", _count(dialect, "titles_new")),
        "imdb_titles_updated": _when(
            "r.command = 'imdb import'", _count(dialect, "titles_updated")
        ),
        "imdb_titles_unchanged": _when(
            "r.command = 'imdb import'", _count(dialect, "titles_unchanged")
        ),
        "requests": _when(fetching, _count(dialect, "requests")),
        "throttled_429": _when(scrape, _count(dialect, "throttled_429")),
        "retries": _when(fetching, _count(dialect, "retries")),
        "dataset_version": _when("r.command = 'build'", _text_count(dialect, "version")),
        "dataset_rows": _when("r.command = 'build'", _count(dialect, "rows.total")),
    }
    spread_columns = ",\n               ".join(f"{expr} AS {name}" for name, expr in spread.items())
    run_summary = f"""
        SELECT r.run_id, r.command, r.status, r.started_at, r.finished_at,
               {duration} AS duration_s,
               {spread_columns},
               r.error, r.counts
        FROM scrape_runs r"""
    open_failures = f"""
        SELECT f.failure_id, f.kind, f.key, m.tmdb_id, m.title, m.status AS movie_status,
               f.run_id, f.http_status, f.error, f.attempts, f.first_failed_at,
               f.last_failed_at
        FROM fetch_failures f
        LEFT JOIN movies m ON f.kind IN ('movie', 'poster') AND m.tmdb_id = {failure_movie}
        WHERE f.state = 'open'"""
    return {
        "movie_genre_names": genre_names,
        "movie_genres_named": genres_named,
        "movie_imdb": movie_imdb,
        "genre_agreement": agreement,
        "run_summary": run_summary,
        "open_failures": open_failures,
    }


def _when(condition: str, expr: str) -> str:
    """``expr`` where ``condition`` holds, else NULL."""
    return f"CASE WHEN {condition} THEN {expr} END"


def view_definitions(dialect: str) -> dict[str, str]:
    """The views as schema 0001 created them (its migration reads them here; frozen).

    The current views are :func:`view_sql`'s: a migration must create the views of its
    own time, not those of a later schema (tables they read may not exist yet).
    """
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


# -- full-text search (SQLite) ---------------------------------------------------------------

FTS_TABLE = "movies_fts"
"""The FTS5 index of ``movies`` titles and overviews (SQLite only)."""
FTS_COLUMNS = ("title", "overview")
FTS_DESCRIPTION = (
    "SQLite only: full-text index (FTS5, external content on `movies`, rowid = `tmdb_id`) of "
    "every movie's title and overview, diacritics folded, kept in step by triggers; "
    "`SELECT m.* FROM movies_fts JOIN movies m ON m.tmdb_id = movies_fts.rowid "
    "WHERE movies_fts MATCH 'heist' ORDER BY rank`"
)


def fts_statements() -> list[str]:
    """The SQLite DDL of :data:`FTS_TABLE` and the triggers that keep it in step."""
    cols = ", ".join(FTS_COLUMNS)
    new = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
    add = f"INSERT INTO {FTS_TABLE}(rowid, {cols}) VALUES (new.tmdb_id, {new});"
    remove = (
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {cols}) "
        f"VALUES ('delete', old.tmdb_id, {old});"
    )
    return [
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({cols}, content='movies', "
        "content_rowid='tmdb_id', tokenize='unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {FTS_TABLE}_insert AFTER INSERT ON movies BEGIN {add} END",
        f"CREATE TRIGGER {FTS_TABLE}_delete AFTER DELETE ON movies BEGIN {remove} END",
        # Only a change of what is indexed touches the index (not mark_gone, say).
        f"CREATE TRIGGER {FTS_TABLE}_update AFTER UPDATE OF tmdb_id, {cols} ON movies "
        f"BEGIN {remove} {add} END",
    ]


FTS_REBUILD = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"
"""Rebuild the FTS index from ``movies`` (an older store, or a repaired one)."""


def is_fts_name(name: str) -> bool:
    """Whether a table name is the FTS index or one of its shadow tables (not in metadata)."""
    return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")


# -- the contract and its descriptions ---------------------------------------------------------

CONTRACT_TABLES: dict[str, tuple[str, ...]] = {
    **{
        table.name: names
        for table in metadata.tables.values()
        if (names := tuple(c.name for c in table.c if c.info.get(CONTRACT)))
    },
    **{view.name: view.column_names for view in VIEWS},
}
"""The documented names analysts rely on: per table its columns marked ``documented()``
(in definition order), per view its columns in order. Checked by the tests."""


def describe() -> dict[str, dict[str, Any]]:
    """Every table and view with its description and its columns' (the one source).

    ``{name: {"kind": "table" | "view" | "fts", "description": str, "columns": {column:
    description}, "internal": [columns outside the contract]}}``: tables in definition
    order, then the views, then the SQLite full-text index.
    """
    out: dict[str, dict[str, Any]] = {}
    for table in metadata.tables.values():
        out[table.name] = {
            "kind": "table",
            "description": table.info.get(DOC),
            "columns": {c.name: c.info.get(DOC) for c in table.c},
            "internal": [c.name for c in table.c if not c.info.get(CONTRACT)],
        }
    for view in VIEWS:
        out[view.name] = {
            "kind": "view",
            "description": view.description,
            "columns": dict(view.columns),
            "internal": [],
        }
    out[FTS_TABLE] = {
        "kind": "fts",
        "description": FTS_DESCRIPTION,
        "columns": {
            "title": "`movies.title`, indexed",
            "overview": "`movies.overview`, indexed",
        },
        "internal": [],
    }
    return out


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def schema_doc() -> str:
    """The README's description of the tables and views, in Markdown (from :func:`describe`)."""
    described = describe()
    lines = [
        "The tables, views and columns below are a public interface: columns may be added, "
        "these names stay. Columns marked *internal* are reelset's own and may change. "
        "The analyst views leave out movies TMDB no longer has (`movies.status = 'gone'`).",
    ]
    for kind, heading in (("table", "Tables"), ("view", "Views"), ("fts", "Full-text search")):
        lines += ["", f"### {heading}"]
        for name, entry in described.items():
            if entry["kind"] != kind:
                continue
            lines += ["", f"`{name}`: {entry['description']}.", "", "| column | description |"]
            lines.append("|---|---|")
            for column, text_ in entry["columns"].items():
                mark = " *(internal)*" if column in entry["internal"] else ""
                lines.append(f"| `{column}` | {_cell(text_)}{mark} |")
    return "\n".join(lines) + "\n"
