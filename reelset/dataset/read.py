"""Reading the store for a build: a few queries, straight into Arrow tables.

Everything a build needs comes from here, in one read transaction (one consistent
snapshot, even while a scrape writes), and nothing else in the builder touches the store
or the network. Only active movies are read in full; the others are counted so the
``status_gone`` rule can report them.

Two readers give identical tables:

- ``adbc`` (the default for PostgreSQL when ``adbc-driver-postgresql`` is installed; for
  a SQLite file only when asked for, with ``adbc-driver-sqlite``): the database driver
  builds the Arrow batches itself, in C, with no Python object per value. One ADBC
  connection, one transaction (on SQLite a read-only ``BEGIN`` snapshot of the WAL; on
  PostgreSQL ``REPEATABLE READ``);
- ``sqlalchemy``: DB-API rows fetched in chunks through the store's engine and turned
  into Arrow chunk by chunk (the default for SQLite).

Why not ADBC by default on SQLite: its driver carries its own copy of the SQLite library.
Two copies of SQLite in one process do not share their bookkeeping of POSIX locks, and
closing one copy's file handles drops the locks the other copy holds (SQLite's "How To
Corrupt" notes, 2.2.1): while a build records its run through the store's own
connection, a concurrent scrape could then write under it. The read is about 3x faster
through ADBC; a build that is the only process on its store may ask for it.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Connection, Integer, Select, case, cast, func, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from reelset.config import mask_url
from reelset.console import progress
from reelset.dataset.portable import describe_database
from reelset.errors import StoreError, error_line
from reelset.storage import Store, schema

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
CONTENT_TABLES = (
    "movies", "genres", "movie_genres", "posters", "imdb_titles", "imdb_title_genres",
)
"""The store tables whose row counts a version's manifest records."""

Reader = Literal["auto", "adbc", "sqlalchemy"]
READERS: tuple[str, ...] = ("auto", "adbc", "sqlalchemy")
_ADBC_MODULES = {"sqlite": "adbc_driver_sqlite", "postgresql": "adbc_driver_postgresql"}
_NULL_SUFFIX = "__is_null"

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
        "movie_genres": (
            select(mg.c.tmdb_id, mg.c.genre_id).order_by(mg.c.tmdb_id, mg.c.genre_id),
            MOVIE_GENRES_SCHEMA,
        ),
        "genres": (select(g.c.genre_id, g.c.name).order_by(g.c.genre_id), GENRES_SCHEMA),
        "posters": (
            select(p.c.tmdb_id, p.c.sha256, p.c.file_path, p.c.width, p.c.height, p.c.phash)
            .where(p.c.status == "ok")
            .order_by(p.c.tmdb_id),
            POSTERS_SCHEMA,
        ),
        "imdb_genres": (
            select(ig.c.imdb_id, ig.c.genre).order_by(ig.c.imdb_id, ig.c.genre),
            IMDB_GENRES_SCHEMA,
        ),
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
    sql = _sql(stmt, conn.dialect)
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
        keys = [("tmdb_id", "ascending")] + (
            [("genre_id", "ascending")] if name == "movie_genres" else []
        )
        tables[name] = _sorted(_kept(tables[name], "tmdb_id", active_ids), keys)
    imdb_ids = pc.unique(tables["movies"].column("imdb_id").drop_null())
    tables["imdb_genres"] = _sorted(
        _kept(tables["imdb_genres"], "imdb_id", imdb_ids),
        [("imdb_id", "ascending"), ("genre", "ascending")],
    )


def _kept(table: pa.Table, column: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The rows whose ``column`` is in ``values`` (the table itself when all are)."""
    mask = pc.is_in(table.column(column), value_set=values)
    return table if pc.all(mask).as_py() in (True, None) else table.filter(mask)


def _sorted(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    """``table`` sorted by ``keys`` (ascending, byte order), not copied when it already is.

    The queries ask for this order already, which SQLite reads from the primary key for
    free; PostgreSQL may order text by a locale, so the order is checked here anyway.
    """
    if table.num_rows < 2:
        return table
    if any(table.column(name).null_count for name, _ in keys):
        return table.sort_by(keys)
    ordered = None
    for name, _ in reversed(keys):  # lexicographic: key 1, ties broken by key 2, ...
        column = table.column(name)
        head, tail = column.slice(0, len(column) - 1), column.slice(1)
        less, equal = pc.less(head, tail), pc.equal(head, tail)
        ordered = pc.less_equal(head, tail) if ordered is None else pc.or_(
            less, pc.and_(equal, ordered)
        )
    assert ordered is not None
    if pc.all(ordered).as_py() is True:
        return table
    return table.sort_by(keys)


def adbc_reader_available(store: Store) -> bool:
    """Whether the ADBC reader can read this store (its driver installed, a file database)."""
    module = _ADBC_MODULES.get(store.dialect)
    if module is None or importlib.util.find_spec(module) is None:
        return False
    if store.dialect == "sqlite":
        database = make_url(store.url).database or ""
        return database not in ("", ":memory:") and not database.startswith("file:")
    return True


def choose_reader(store: Store, reader: Reader = "auto") -> str:
    """The reader a build uses: ``auto`` means ``adbc`` on PostgreSQL where its driver is
    installed, else ``sqlalchemy`` (see the module docstring for SQLite)."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}: one of {', '.join(READERS)}")
    if reader == "auto":
        usable = store.dialect == "postgresql" and adbc_reader_available(store)
        return "adbc" if usable else "sqlalchemy"
    if reader == "adbc" and not adbc_reader_available(store):
        module = _ADBC_MODULES.get(store.dialect, "an ADBC driver")
        raise StoreError(f"store {store.masked_url}: the adbc reader needs {module} and a file")
    return reader


def read_store_arrow(
    store: Store, *, chunk_rows: int = CHUNK_ROWS, reader: Reader = "auto"
) -> dict[str, pa.Table]:
    """Run every build query in one read transaction; Arrow tables by name.

    ``movie_genres`` and ``posters`` are narrowed to active movies and ``imdb_genres`` to
    the IMDb ids of active movies. ``reader``: see the module docstring.
    """
    tables: dict[str, pa.Table] = {}
    if choose_reader(store, reader) == "adbc":
        _read_adbc(store, tables, chunk_rows)
    else:
        # Millions of short-lived row tuples would trigger the cyclic GC over and over
        # (a third of the read time); nothing here makes reference cycles.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            _read_sqlalchemy(store, tables, chunk_rows)
        finally:
            if was_enabled:
                gc.enable()
    _narrow(tables)
    return tables


def _active_count() -> Select[Any]:
    m = schema.movies
    return select(func.count()).select_from(m).where(m.c.status == literal("active"))


@contextmanager
def _snapshot_connection(store: Store) -> Iterator[Connection]:
    """One read transaction on the store's engine; REPEATABLE READ on PostgreSQL."""
    try:
        with store.engine.connect() as conn:
            if store.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except DatabaseError as exc:
        raise StoreError(f"store {store.masked_url}: {error_line(exc)}") from None


def _read_sqlalchemy(store: Store, tables: dict[str, pa.Table], chunk_rows: int) -> None:
    with _snapshot_connection(store) as conn:
        total = int(conn.execute(_active_count()).scalar_one())
        with progress("reading the store", total, unit="movies") as bar:
            for name, (stmt, arrow_schema) in queries().items():
                advance = bar.advance if name == "movies" else None
                tables[name] = _stream(conn, stmt, arrow_schema, chunk_rows, advance)


@contextmanager
def adbc_snapshot(store: Store, *, busy_timeout_ms: int = 30_000) -> Iterator[Any]:
    """An ADBC DB-API connection to the store, inside one read transaction.

    SQLite: the driver opens a transaction (autocommit off) and the first read pins the
    WAL snapshot every later query of the connection sees. PostgreSQL: REPEATABLE READ,
    so every query sees the snapshot of the first. Rolled back at the end (nothing is
    written); driver errors become :class:`StoreError`.
    """
    import adbc_driver_manager

    url = make_url(store.url)
    try:
        if store.dialect == "sqlite":
            import adbc_driver_sqlite.dbapi

            # Read-only: ADBC brings its own SQLite library, which does not know about
            # the connections of Python's. A connection that can write would, as the
            # last one *it* knows of, checkpoint and delete the WAL and its -shm on close
            # under the feet of the store's own open connections ("disk I/O error").
            path = Path(str(url.database)).resolve()
            conn = adbc_driver_sqlite.dbapi.connect(f"file:{quote(str(path))}?mode=ro")
            with conn.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        else:
            import adbc_driver_postgresql.dbapi

            # libpq takes the URL without SQLAlchemy's "+driver" suffix.
            uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = adbc_driver_postgresql.dbapi.connect(uri)
            conn.adbc_connection.set_options(
                **{
                    "adbc.connection.transaction.isolation_level":
                        "adbc.connection.transaction.isolation.repeatable_read"
                }
            )
    except adbc_driver_manager.Error as exc:
        raise StoreError(f"store {store.masked_url}: {_adbc_error(exc, store)}") from None
    try:
        yield conn
        conn.rollback()
    except adbc_driver_manager.Error as exc:
        raise StoreError(f"store {store.masked_url}: {_adbc_error(exc, store)}") from None
    finally:
        conn.close()


def _adbc_error(exc: Exception, store: Store) -> str:
    """One line of an ADBC error, with the store's credentials masked."""
    line = error_line(exc)
    return line.replace(store.url, mask_url(store.url))


def _adbc_sql(stmt: Select[Any], arrow_schema: pa.Schema, dialect: Any) -> str:
    """The query as ADBC runs it; on SQLite, nullable columns come with a null flag.

    ADBC's SQLite driver infers each column's type from the values of its first batch
    (all NULL reads as int64) and fails on a later batch that disagrees. So a nullable
    column is read as ``COALESCE(col, <filler of its type>)`` plus ``col IS NULL``, and
    the nulls are put back in Arrow: every column has a value of its type in every row.
    """
    if dialect.name == "sqlite":
        columns: list[Any] = []
        for expr, field in zip(stmt.selected_columns, arrow_schema, strict=True):
            if isinstance(expr, Column) and expr.nullable:
                filler = _filler(field.type)
                columns.append(func.coalesce(expr, filler).label(field.name))
                columns.append(expr.is_(None).label(field.name + _NULL_SUFFIX))
            else:
                columns.append(expr.label(field.name))
        stmt = stmt.with_only_columns(*columns)
    return _sql(stmt, dialect)


def _sql(stmt: Select[Any], dialect: Any) -> str:
    """A statement as SQL text with its (constant) parameters inlined."""
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _filler(arrow_type: pa.DataType) -> Any:
    if pa.types.is_string(arrow_type):
        return literal("")
    if pa.types.is_floating(arrow_type):
        return literal(0.0)
    return literal(0)


def _from_wire(batch: pa.RecordBatch, arrow_schema: pa.Schema) -> pa.RecordBatch:
    """A batch as ADBC returned it -> a batch of ``arrow_schema`` (nulls restored, cast).

    Every column ends up in Arrow's own memory pool, exactly sized: the driver's buffers
    grow by doubling, and keeping them would hold up to twice the data for the build.
    """
    names = batch.schema.names
    arrays = []
    for field in arrow_schema:
        values = batch.column(names.index(field.name))
        copied = False
        if field.name + _NULL_SUFFIX in names:
            is_null = pc.cast(batch.column(names.index(field.name + _NULL_SUFFIX)), pa.bool_())
            values = pc.if_else(is_null, pa.scalar(None, values.type), values)
            copied = True
        if values.type != field.type:
            values = pc.cast(values, field.type)
            copied = True
        arrays.append(values if copied else pa.concat_arrays([values]))
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _read_adbc(store: Store, tables: dict[str, pa.Table], chunk_rows: int) -> None:
    dialect = store.engine.dialect
    with adbc_snapshot(store) as conn:
        with conn.cursor() as cursor:
            cursor.execute(_sql(_active_count(), dialect))
            total = int(cursor.fetchone()[0])
        with progress("reading the store", total, unit="movies") as bar:
            for name, (stmt, arrow_schema) in queries().items():
                with conn.cursor() as cursor:
                    if store.dialect == "sqlite":
                        cursor.adbc_statement.set_options(
                            **{"adbc.sqlite.query.batch_rows": str(max(1, chunk_rows))}
                        )
                    cursor.execute(_adbc_sql(stmt, arrow_schema, dialect))
                    batches = []
                    for batch in cursor.fetch_record_batch():
                        batches.append(_from_wire(batch, arrow_schema))
                        if name == "movies":
                            bar.advance(batch.num_rows)
                tables[name] = pa.Table.from_batches(batches, schema=arrow_schema)


def read_store(
    store: Store, *, chunk_rows: int = CHUNK_ROWS, reader: Reader = "auto"
) -> StoreSnapshot:
    """Everything a build needs from the store, as one consistent snapshot.

    From here on Arrow allocates from the system allocator, the one numpy and pandas use:
    memory one step of the build frees is then reused by the next whatever library
    allocates it, where two allocators would each keep their own high-water mark (about
    200 MB more at a million movies).
    """
    pa.set_memory_pool(pa.system_memory_pool())
    version = store.check_version()
    # The data's tables only: the bookkeeping (runs, locks, failures) says nothing about
    # the content, and differs between builds of the same content.
    counts = {t: n for t, n in store.row_counts().items() if t in CONTENT_TABLES}
    tables = read_store_arrow(store, chunk_rows=chunk_rows, reader=reader)
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
