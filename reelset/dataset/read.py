"""Reading the store for a build: a few queries, straight into Arrow tables.

Everything a build needs comes from here, in one read transaction (one consistent
snapshot, even while a scrape writes), and nothing else in the builder touches the store
or the network. Only active movies are read in full; the others are counted so the
``status_gone`` rule can report them.

Two readers give identical tables:

- ``adbc`` (the default wherever its driver is installed: ``adbc-driver-sqlite``, a base
  dependency, and ``adbc-driver-postgresql``, the ``postgres`` extra): the database driver
  builds the Arrow batches itself, in C, with no Python object per value. One ADBC
  connection, one transaction (on SQLite a read-only ``BEGIN`` snapshot of the WAL; on
  PostgreSQL ``REPEATABLE READ``);
- ``sqlalchemy``: DB-API rows fetched in chunks through the store's engine and turned
  into Arrow chunk by chunk (an in-memory SQLite store; SQLite when the driver does not
  load).

On SQLite the ADBC read runs in a child process (:mod:`reelset.dataset.read_child`),
never in this one: the driver carries its own copy of the SQLite library, and two copies
of SQLite in one process do not share their bookkeeping of POSIX locks (closing one
copy's file handles drops the locks the other copy holds: SQLite's "How To Corrupt"
notes, 2.2.1), so a concurrent scrape could write under the build's own connection. A
child has locks of its own. It streams the tables back as Arrow IPC over a pipe; this
process counts the rows for the manifest while the child starts, and narrows each table
as it arrives while the child reads the next. The child dies with this process (a
signal, an error, ``kill -9``). About 3x faster than ``sqlalchemy`` in CPU time.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal, NoReturn

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Connection, Integer, Select, case, cast, func, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from reelset.config import mask_url
from reelset.console import progress
from reelset.dataset import read_child
from reelset.dataset.portable import describe_database
from reelset.dataset.read_child import NULL_MASK, from_wire
from reelset.errors import StoreError, error_line
from reelset.garbage import no_cyclic_gc
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


_NARROWED = {
    "movie_genres": ("tmdb_id", [("tmdb_id", "ascending"), ("genre_id", "ascending")]),
    "posters": ("tmdb_id", [("tmdb_id", "ascending")]),
    "imdb_genres": ("imdb_id", [("imdb_id", "ascending"), ("genre", "ascending")]),
}
"""The relation tables narrowed to active movies: the column matched, the sort keys."""


class _Narrowing:
    """Narrows each relation table to the active ``movies``' rows (and their IMDb ids),
    sorted; one table at a time, so a table can be narrowed as soon as it is read."""

    def __init__(self, movies: pa.Table) -> None:
        self._movies = movies
        self._imdb_ids: pa.Array | None = None

    def __call__(self, name: str, table: pa.Table) -> pa.Table:
        if name not in _NARROWED:
            return table
        column, keys = _NARROWED[name]
        if column == "tmdb_id":
            values = self._movies.column("tmdb_id")
        else:
            if self._imdb_ids is None:
                self._imdb_ids = pc.unique(self._movies.column("imdb_id").drop_null())
            values = self._imdb_ids
        return _sorted(_kept(table, column, values), keys)


def _narrow(tables: dict[str, pa.Table]) -> None:
    """Keep only the relation rows of active movies (and their IMDb ids), sorted."""
    narrowing = _Narrowing(tables["movies"])
    for name in _NARROWED:
        tables[name] = narrowing(name, tables[name])


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


def _sqlite_file(store: Store) -> str | None:
    """The SQLite store's file name, or ``None`` for an in-memory or ``file:`` URI store."""
    database = make_url(store.url).database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


def adbc_reader_available(store: Store) -> bool:
    """Whether the ADBC reader can read this store: its driver installed, and on SQLite a
    file database and a Python interpreter to run the reading child process with."""
    module = _ADBC_MODULES.get(store.dialect)
    if module is None or importlib.util.find_spec(module) is None:
        return False
    if store.dialect == "sqlite":
        return _sqlite_file(store) is not None and bool(sys.executable)
    return True


def choose_reader(store: Store, reader: Reader = "auto") -> str:
    """The reader a build uses: ``auto`` means ``adbc`` where its driver is installed (on
    SQLite in a child process, see the module docstring), else ``sqlalchemy``."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}: one of {', '.join(READERS)}")
    if reader == "auto":
        return "adbc" if adbc_reader_available(store) else "sqlalchemy"
    if reader == "adbc" and not adbc_reader_available(store):
        module = _ADBC_MODULES.get(store.dialect, "an ADBC driver")
        raise StoreError(f"store {store.masked_url}: the adbc reader needs {module} and a file")
    return reader


def read_store_arrow(
    store: Store,
    *,
    chunk_rows: int = CHUNK_ROWS,
    reader: Reader = "auto",
    while_reading: Callable[[], None] | None = None,
) -> dict[str, pa.Table]:
    """Run every build query in one read transaction; Arrow tables by name.

    ``movie_genres`` and ``posters`` are narrowed to active movies and ``imdb_genres`` to
    the IMDb ids of active movies. ``reader``: see the module docstring. ``while_reading``
    is called once, while a child process reads (SQLite through ADBC), else before the read.
    """
    tables: dict[str, pa.Table] = {}
    chosen = choose_reader(store, reader)
    if chosen == "adbc" and store.dialect == "sqlite":
        # Narrowed as they arrive. False: the driver does not load in the child.
        if _read_sqlite_child(store, tables, chunk_rows, while_reading):
            return tables
        chosen = "sqlalchemy"
    elif while_reading is not None:
        while_reading()
    if chosen == "adbc":
        _read_adbc(store, tables, chunk_rows)
    elif chosen == "sqlalchemy":
        # Millions of short-lived row tuples would trigger the cyclic GC over and over
        # (a third of the read time); nothing here makes reference cycles.
        with no_cyclic_gc():
            _read_sqlalchemy(store, tables, chunk_rows)
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


# --- SQLite through ADBC, in a child process ------------------------------------------

_CHILD_ORDER = ("movies", "imdb_genres", "movie_genres", "posters", "genres", "inactive")
"""The order the child reads in: the tables that take longest to narrow come early, so
this process narrows them while the child reads the rest."""
_PIPE_BYTES = 1 << 20
"""The pipe from the child is grown to this (Linux's default limit for a user): fewer
switches between the two processes per batch."""
_SECRET_ENV = ("TMDB_API_KEY", "TMDB_READ_ACCESS_TOKEN")


def count_rows(store: Store, names: tuple[str, ...] = CONTENT_TABLES) -> dict[str, int]:
    """Rows per table of ``names``, in one read transaction.

    On SQLite with a small page cache for the counting: the counts walk whole indexes,
    and the store's connections keep a page cache of up to 64 MiB each for as long as
    they live (through the whole build), where counting needs none.
    """
    tables = schema.metadata.tables
    with store.read() as conn:
        sqlite = store.dialect == "sqlite"
        if sqlite:
            cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
            conn.exec_driver_sql("PRAGMA cache_size = -1024")
        try:
            return {
                name: int(conn.execute(select(func.count()).select_from(tables[name]))
                          .scalar_one())
                for name in names
            }
        finally:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")


def _busy_timeout_ms(store: Store) -> int:
    """The store's busy timeout (set on each of its connections), for the child's."""
    with store.read() as conn:
        return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


def sqlite_child_request(store: Store, chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """What the reading child is asked for (see :mod:`reelset.dataset.read_child`)."""
    database = _sqlite_file(store)
    if database is None:
        raise StoreError(f"store {store.masked_url}: the adbc reader needs a file")
    dialect = store.engine.dialect
    specs = queries()
    return {
        "database": os.path.abspath(database),
        "busy_timeout_ms": _busy_timeout_ms(store),
        "batch_rows": max(1, chunk_rows),
        "parent": os.getpid(),
        "queries": [
            [name, _adbc_sql(specs[name][0], specs[name][1], dialect),
             base64.b64encode(specs[name][1].serialize().to_pybytes()).decode("ascii")]
            for name in _CHILD_ORDER
        ],
    }


def _read_sqlite_child(
    store: Store,
    tables: dict[str, pa.Table],
    chunk_rows: int,
    while_reading: Callable[[], None] | None,
) -> bool:
    """Read a SQLite store through ADBC in a child process, into ``tables``, narrowed.

    While the child starts, this process runs ``while_reading``. False when the child
    cannot load the driver (nothing was read; ``while_reading`` ran).
    """

    def meanwhile() -> int:
        if while_reading is not None:
            while_reading()
        # The bar counts the active and the other movies, which add up to this.
        return count_rows(store, ("movies",))["movies"]

    return read_in_child(sqlite_child_request(store, chunk_rows), store.masked_url, tables,
                         meanwhile)


def read_in_child(
    request: dict[str, Any],
    masked_url: str,
    tables: dict[str, pa.Table],
    meanwhile: Callable[[], int | None],
) -> bool:
    """Run the reading child on ``request`` (:func:`sqlite_child_request`); its tables,
    narrowed, into ``tables``.

    The child streams each query's rows back as Arrow IPC over a pipe, batch by batch; a
    thread here turns the batches into tables as they are (no second copy), and this
    thread narrows each table as it comes (:class:`_Narrowing`). ``meanwhile`` runs while
    the child starts, and returns the progress bar's total. Whatever happens here (an
    error, a signal), the child is killed before this returns. Its errors become one-line
    :class:`StoreError` s naming ``masked_url``. False when the child cannot load the
    driver (nothing was read; ``meanwhile`` ran).
    """
    payload = json.dumps(request).encode() + b"\n"
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    with tempfile.TemporaryFile() as errors:
        # -P: the script's folder (reelset/dataset, which holds a select.py) stays off
        # sys.path. Its own session: a Ctrl-C on the terminal reaches this process only.
        child = subprocess.Popen(
            [sys.executable, "-P", read_child.__file__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env,
            start_new_session=True,
        )
        drain: threading.Thread | None = None
        try:
            assert child.stdin is not None and child.stdout is not None
            _grow_pipe(child.stdout)
            with contextlib.suppress(BrokenPipeError):  # it died at once: its output says why
                child.stdin.write(payload)
                child.stdin.flush()
            total = meanwhile()
            streams = [
                (name, pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded))))
                for name, _, encoded in request["queries"]
            ]
            with progress("reading the store", total, unit="movies") as bar:
                arrived: queue.SimpleQueue[tuple[str, pa.Table] | BaseException] = (
                    queue.SimpleQueue()
                )
                drain = threading.Thread(
                    target=_drain, args=(child.stdout, streams, arrived, bar.advance),
                    name="reelset-read-child", daemon=True,
                )
                drain.start()
                narrowing: _Narrowing | None = None
                for _ in streams:
                    item = arrived.get()
                    if isinstance(item, (pa.ArrowInvalid, OSError)):  # the stream broke off
                        status = _wait(child)
                        if status == read_child.EXIT_UNAVAILABLE:
                            log.warning("%s; reading the store in this process",
                                        _child_error(errors, status, item))
                            tables.clear()
                            return False
                        _raise_child_error(masked_url, errors, status, item)
                    if isinstance(item, BaseException):
                        raise item
                    name, table = item
                    if name == "movies":  # the first
                        narrowing = _Narrowing(table)
                    assert narrowing is not None
                    tables[name] = narrowing(name, table)
            status = _wait(child)
            if status != 0:
                _raise_child_error(masked_url, errors, status, None)
            return True
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if drain is not None:
                drain.join(10.0)  # the child is gone: its stream ends
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # a stdin the dead child left full
                        pipe.close()


def _drain(
    source: IO[bytes],
    streams: list[tuple[str, pa.Schema]],
    arrived: queue.SimpleQueue[tuple[str, pa.Table] | BaseException],
    advance: Callable[[int], None],
) -> None:
    """Read the child's streams into tables, in order; put each (or the error that
    stopped the reading) in ``arrived``."""
    try:
        for name, arrow_schema in streams:
            counted = advance if name in ("movies", "inactive") else None
            arrived.put((name, _read_stream(source, arrow_schema, counted)))
    except BaseException as exc:  # handed to the reading thread, which raises it
        arrived.put(exc)


def _grow_pipe(pipe: IO[bytes]) -> None:
    import fcntl

    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        # A lower limit for this user: the default pipe works, only slower.
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), setpipe, _PIPE_BYTES)


def _read_stream(
    source: IO[bytes], arrow_schema: pa.Schema, advance: Callable[[int], None] | None = None
) -> pa.Table:
    """One query's IPC stream from the child, as a table of ``arrow_schema``."""
    reader = pa.ipc.open_stream(source)
    if not reader.schema.equals(arrow_schema):
        raise RuntimeError(f"the reading process sent {reader.schema}, not {arrow_schema}")
    batches = []
    for batch in reader:
        batches.append(batch)
        if advance is not None:
            advance(batch.num_rows)
    return pa.Table.from_batches(batches, schema=arrow_schema)


def _wait(child: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """The child's exit status once it has ended (killed if it does not within the time)."""
    try:
        return child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _child_error(errors: IO[bytes], status: int, exc: BaseException | None) -> str:
    """One line saying why the child failed: its own last line, or how it ended."""
    errors.seek(0)
    lines = [line.strip() for line in errors.read().decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if lines:
        return error_line(RuntimeError(lines[-1]))
    if status < 0:
        return f"the reading process was killed by {signal.Signals(-status).name}"
    detail = f": {error_line(exc)}" if exc is not None else ""
    return f"the reading process ended with status {status}{detail}"


def _raise_child_error(
    masked_url: str, errors: IO[bytes], status: int, exc: BaseException | None
) -> NoReturn:
    line = _child_error(errors, status, exc)
    if status == read_child.EXIT_INTERNAL:
        raise RuntimeError(f"the store's reading process failed: {line}")
    raise StoreError(f"store {masked_url}: {line}") from None


# --- PostgreSQL through ADBC, in this process -----------------------------------------


@contextmanager
def adbc_snapshot(store: Store) -> Iterator[Any]:
    """An ADBC DB-API connection to a PostgreSQL store, inside one read transaction.

    REPEATABLE READ, so every query sees the snapshot of the first. Rolled back at the end
    (nothing is written); driver errors become :class:`StoreError`. SQLite stores are
    read through ADBC in a child process only (see the module docstring).
    """
    if store.dialect != "postgresql":
        raise ValueError("adbc_snapshot is for PostgreSQL stores (SQLite: read_store)")
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi

    url = make_url(store.url)
    try:
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
    """The query as ADBC runs it; on SQLite, nullable text and real columns are filled.

    ADBC's SQLite driver infers each column's type from the values of its first batch
    (all NULL reads as int64) and fails on a later batch that disagrees. So a nullable
    text or real column is read as ``COALESCE(col, <filler of its type>)``, and one more
    column holds a bit per such column saying where it is NULL (see
    :data:`reelset.dataset.read_child.NULL_MASK`); the nulls are put back in Arrow. Integer
    columns need neither: int64 is what an all-NULL batch reads as anyway.
    """
    if dialect.name == "sqlite":
        columns: list[Any] = []
        flagged: list[tuple[str, Any]] = []
        for expr, field in zip(stmt.selected_columns, arrow_schema, strict=True):
            if (
                isinstance(expr, Column)
                and expr.nullable
                and not pa.types.is_integer(field.type)
            ):
                columns.append(func.coalesce(expr, _filler(field.type)).label(field.name))
                flagged.append((field.name, expr))
            else:
                columns.append(expr.label(field.name))
        if flagged:
            mask = sum(
                (case((expr.is_(None), 1 << i), else_=0) for i, (_, expr) in enumerate(flagged)),
                start=literal(0),
            )
            columns.append(mask.label(NULL_MASK + ",".join(name for name, _ in flagged)))
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


def _read_adbc(store: Store, tables: dict[str, pa.Table], chunk_rows: int) -> None:
    dialect = store.engine.dialect
    with adbc_snapshot(store) as conn:
        with conn.cursor() as cursor:
            cursor.execute(_sql(_active_count(), dialect))
            total = int(cursor.fetchone()[0])
        with progress("reading the store", total, unit="movies") as bar:
            for name, (stmt, arrow_schema) in queries().items():
                with conn.cursor() as cursor:
                    cursor.execute(_adbc_sql(stmt, arrow_schema, dialect))
                    batches = []
                    for batch in cursor.fetch_record_batch():
                        batches.append(from_wire(batch, arrow_schema))
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
    counts: dict[str, int] = {}

    def count() -> None:
        # The data's tables only: the bookkeeping (runs, locks, failures) says nothing
        # about the content, and differs between builds of the same content.
        counts.update(count_rows(store, CONTENT_TABLES))

    tables = read_store_arrow(store, chunk_rows=chunk_rows, reader=reader, while_reading=count)
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
