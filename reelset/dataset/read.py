"""Reading the store for a build: a few queries streamed in chunks into Arrow tables.

Everything a build needs comes from here, in one read transaction (one consistent
snapshot, even while a scrape writes), and nothing else in the builder touches the store
or the network. Only active movies are read in full; the others are counted so the
``status_gone`` rule can report them.
"""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Integer, Select, case, cast, func, literal, select

from reelset.console import progress
from reelset.dataset.portable import describe_database
from reelset.storage import Store, schema

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000

MOVIES_SCHEMA = pa.schema(
    [
        ("tmdb_id", pa.int64()),
        ("imdb_id", pa.string()),
        ("title", pa.string()),
        ("original_language", pa.string()),
        ("overview", pa.string()),
        ("year", pa.int32()),
        ("popularity", pa.float64()),
        ("vote_count", pa.int64()),
        ("adult", pa.bool_()),
        ("status", pa.string()),
        ("completeness", pa.int8()),
    ]
)
MOVIE_GENRES_SCHEMA = pa.schema([("tmdb_id", pa.int64()), ("genre_id", pa.int64())])
GENRES_SCHEMA = pa.schema([("genre_id", pa.int64()), ("name", pa.string())])
POSTERS_SCHEMA = pa.schema(
    [
        ("tmdb_id", pa.int64()),
        ("sha256", pa.string()),
        ("file_path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("phash", pa.string()),
    ]
)
IMDB_GENRES_SCHEMA = pa.schema([("imdb_id", pa.string()), ("genre", pa.string())])
INACTIVE_SCHEMA = pa.schema(
    [("tmdb_id", pa.int64()), ("imdb_id", pa.string()), ("title", pa.string())]
)


@dataclass
class StoreSnapshot:
    """What a build reads from the store (Arrow tables) and where it came from."""

    movies: pa.Table
    """Active movies, sorted by tmdb_id (see :data:`MOVIES_SCHEMA`)."""
    movie_genres: pa.Table
    """(tmdb_id, genre_id) of active movies."""
    genres: pa.Table
    """(genre_id, name) of every known genre."""
    posters: pa.Table
    """Posters with status ok of active movies."""
    imdb_genres: pa.Table
    """(imdb_id, genre) of the IMDb titles active movies point to."""
    store: dict[str, Any]
    """Backend, database (file name, or server URL without credentials), schema version
    and row counts (:func:`reelset.dataset.portable.describe_database`)."""
    inactive: pa.Table
    """(tmdb_id, imdb_id, title) of movies whose status is not 'active' (``status_gone``)."""


def _filled(expr: Any) -> Any:
    return case((expr, 1), else_=0)


def _completeness() -> Any:
    """How many of a movie's optional fields are filled (the dedupe's 'most complete')."""
    m = schema.movies
    return cast(
        _filled(func.coalesce(func.length(func.trim(m.c.imdb_id)), 0) > 0)
        + _filled(m.c.original_title.is_not(None))
        + _filled(m.c.original_language.is_not(None))
        + _filled(func.coalesce(func.length(func.trim(m.c.overview)), 0) > 0)
        + _filled(func.coalesce(func.length(func.trim(m.c.tagline)), 0) > 0)
        + _filled(m.c.release_date.is_not(None))
        + _filled(func.coalesce(m.c.runtime, 0) > 0)
        + _filled(func.coalesce(m.c.vote_count, 0) > 0)
        + _filled(m.c.poster_path.is_not(None)),
        Integer,
    )


def _movies_query() -> Select[Any]:
    m = schema.movies
    return (
        select(
            m.c.tmdb_id,
            m.c.imdb_id,
            m.c.title,
            m.c.original_language,
            m.c.overview,
            m.c.year,
            m.c.popularity,
            m.c.vote_count,
            m.c.adult,
            m.c.status,
            _completeness().label("completeness"),
        )
        .where(m.c.status == "active")
        .order_by(m.c.tmdb_id)
    )


def queries() -> dict[str, tuple[Select[Any], pa.Schema]]:
    """The queries a build runs, by table name, with the Arrow schema of their rows.

    The relation tables are read whole (cheap integer/short-text rows) and narrowed to
    the active movies in Arrow, which is faster than an ``IN (subquery)`` in SQLite.
    """
    mg, g, p, ig, m = (
        schema.movie_genres,
        schema.genres,
        schema.posters,
        schema.imdb_title_genres,
        schema.movies,
    )
    return {
        "movies": (_movies_query(), MOVIES_SCHEMA),
        "movie_genres": (select(mg.c.tmdb_id, mg.c.genre_id), MOVIE_GENRES_SCHEMA),
        "genres": (select(g.c.genre_id, g.c.name).order_by(g.c.genre_id), GENRES_SCHEMA),
        "posters": (
            select(p.c.tmdb_id, p.c.sha256, p.c.file_path, p.c.width, p.c.height, p.c.phash)
            .where(p.c.status == "ok")
            .order_by(p.c.tmdb_id),
            POSTERS_SCHEMA,
        ),
        "imdb_genres": (select(ig.c.imdb_id, ig.c.genre), IMDB_GENRES_SCHEMA),
        "inactive": (
            select(m.c.tmdb_id, m.c.imdb_id, m.c.title)
            .where(m.c.status != "active")
            .order_by(m.c.tmdb_id),
            INACTIVE_SCHEMA,
        ),
    }


def _wire_type(arrow_schema: pa.Schema, dialect: str) -> pa.StructType:
    """The struct type DB-API rows convert to (SQLite hands booleans over as 0/1)."""
    fields = [
        pa.field(f.name, pa.int8()) if f.type == pa.bool_() and dialect == "sqlite" else f
        for f in arrow_schema
    ]
    return pa.struct(fields)


def _stream(
    conn: Connection,
    stmt: Select[Any],
    arrow_schema: pa.Schema,
    chunk_rows: int,
    advance: Callable[[int], None] | None = None,
) -> pa.Table:
    """Run a query and collect its rows chunk by chunk into one Arrow table.

    Rows come from the DB-API cursor itself (a server-side cursor on PostgreSQL), inside
    the caller's read transaction, and each chunk of row tuples becomes Arrow in one C++
    call: SQLAlchemy's row objects and per-column Python lists cost several times more.
    """
    dialect = conn.dialect.name
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw: Any = conn.connection.driver_connection
    if dialect == "postgresql":
        cursor = raw.cursor(name=f"reelset_build_{uuid.uuid4().hex[:8]}")
    else:
        cursor = raw.cursor()
    wire = _wire_type(arrow_schema, dialect)
    batches: list[pa.RecordBatch] = []
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(chunk_rows):
            arrays = [
                child if child.type == field.type else child.cast(field.type)
                for child, field in zip(
                    pa.array(rows, type=wire).flatten(), arrow_schema, strict=True
                )
            ]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=arrow_schema))
            if advance is not None:
                advance(len(rows))
    finally:
        cursor.close()
    return pa.Table.from_batches(batches, schema=arrow_schema)


def _narrow(tables: dict[str, pa.Table]) -> None:
    """Keep only the relation rows of active movies (and their IMDb ids), sorted."""
    active_ids = tables["movies"].column("tmdb_id")
    for name in ("movie_genres", "posters"):
        table = tables[name]
        table = table.filter(pc.is_in(table.column("tmdb_id"), value_set=active_ids))
        keys = [("tmdb_id", "ascending")] + (
            [("genre_id", "ascending")] if name == "movie_genres" else []
        )
        tables[name] = table.sort_by(keys)
    imdb_ids = pc.unique(tables["movies"].column("imdb_id").drop_null())
    table = tables["imdb_genres"]
    table = table.filter(pc.is_in(table.column("imdb_id"), value_set=imdb_ids))
    tables["imdb_genres"] = table.sort_by([("imdb_id", "ascending"), ("genre", "ascending")])


def read_store_arrow(store: Store, *, chunk_rows: int = CHUNK_ROWS) -> dict[str, pa.Table]:
    """Run every build query in one read transaction; Arrow tables by name (the floor).

    ``movie_genres`` and ``posters`` are narrowed to active movies and ``imdb_genres`` to
    the IMDb ids of active movies.
    """
    tables: dict[str, pa.Table] = {}
    # Millions of short-lived row tuples would trigger the cyclic GC over and over
    # (a third of the read time); nothing here makes reference cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _read_all(store, tables, chunk_rows)
    finally:
        if was_enabled:
            gc.enable()
    _narrow(tables)
    return tables


def _read_all(store: Store, tables: dict[str, pa.Table], chunk_rows: int) -> None:
    with store.read() as conn:
        total = int(
            conn.execute(
                select(func.count()).select_from(schema.movies).where(
                    schema.movies.c.status == literal("active")
                )
            ).scalar_one()
        )
        with progress("reading the store", total, unit="movies") as bar:
            for name, (stmt, arrow_schema) in queries().items():
                advance = bar.advance if name == "movies" else None
                tables[name] = _stream(conn, stmt, arrow_schema, chunk_rows, advance)


def read_store(store: Store, *, chunk_rows: int = CHUNK_ROWS) -> StoreSnapshot:
    """Everything a build needs from the store, as one consistent snapshot."""
    version = store.check_version()
    counts = store.row_counts()
    tables = read_store_arrow(store, chunk_rows=chunk_rows)
    # Described, not named: a version never records a local path or a credential.
    info = {**describe_database(store.url), "schema_version": version, "row_counts": counts}
    log.info(
        "read %d active movies, %d genre rows, %d ok posters, %d IMDb genre rows",
        tables["movies"].num_rows,
        tables["movie_genres"].num_rows,
        tables["posters"].num_rows,
        tables["imdb_genres"].num_rows,
    )
    return StoreSnapshot(
        movies=tables["movies"],
        movie_genres=tables["movie_genres"],
        genres=tables["genres"],
        posters=tables["posters"],
        imdb_genres=tables["imdb_genres"],
        store=info,
        inactive=tables["inactive"],
    )
