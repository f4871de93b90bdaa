"""The store: engine setup per backend, transactions, migrations, the shared bulk writes.

``Store`` holds the engine; its jobs live beside it: ``store.movies`` (:mod:`.movies`),
``store.runs``, ``store.failures``, ``store.locks`` and ``store.checkpoints``
(:mod:`.bookkeeping`), ``store.genre_map`` (:mod:`.genre_map`). Movie, genre, poster,
IMDb and checkpoint rows (:mod:`.movies`, :mod:`.posters`, :mod:`.imdb`) are all written
by the one insert/upsert helper (:meth:`Store.bulk_insert`) and its update twin
(:meth:`Store.bulk_update`).

This module is the only writer of the database. Every write is idempotent, so a rerun
after any crash converges to the same state. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` (so two processes writing at once queue on the busy timeout
instead of failing on a lock upgrade); reads use ordinary deferred transactions.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import keyword
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    Engine,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, SQLAlchemyError

from reelset.config import GenreSettings, Settings, mask_url
from reelset.errors import StoreError, error_line
from reelset.storage import schema
from reelset.storage.bookkeeping import Checkpoints, Failures, Locks, Runs
from reelset.storage.genre_map import GenreMap
from reelset.storage.movies import Movies

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BULK_CACHE_KIB = 262_144
"""SQLite page cache of a bulk write transaction (``Store.write(bulk=True)``), in KiB."""


if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*(?:None|[\"'](\w+)[\"'])", re.M)


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    # Alembic (and mako, pygments) is imported only when a schema really changes.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _revisions() -> dict[str, str | None]:
    """revision -> down_revision of every migration, read from the migration files.

    The same chain Alembic's ``ScriptDirectory`` walks (a test checks it), without
    importing Alembic: most commands only need to know that the store is at the head.
    """
    chain: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("[0-9]*.py")):
        found = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(path.read_text())}
        revision = found.get("revision")
        if revision is None:
            raise StoreError(f"migration {path.name} names no revision")
        chain[revision] = found.get("down_revision")
    return chain


def head_version() -> str:
    """The newest schema version this reelset knows."""
    chain = _revisions()
    heads = set(chain) - {down for down in chain.values() if down is not None}
    if len(heads) != 1:
        raise StoreError(f"the migrations have {len(heads)} heads, not one: {sorted(heads)}")
    return heads.pop()


def _known_versions() -> set[str]:
    return set(_revisions())


def _current_revision(conn: Connection) -> str | None:
    """The store's schema version (Alembic's ``alembic_version`` table), None when empty."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise StoreError(f"the store has several schema versions: {sorted(versions)}")
    return versions[0] if versions else None



def _use_wal(cursor: sqlite3.Cursor, timeout_s: float) -> None:
    """Put the SQLite database in WAL mode (it stays so: the mode is kept in the file).

    Switching a new database needs an exclusive lock, and when two processes switch it at
    the same moment SQLite answers one of them "database is locked" at once, without
    waiting for its busy timeout (two cron jobs starting on a fresh store did). So the
    switch is tried again until the busy timeout has passed; a database already in WAL
    mode is left as it is, without asking for that lock at all.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)

class Store:
    """A reelset store on SQLite or PostgreSQL.

    Open it with :meth:`open` (which upgrades an older schema) or construct it and call
    :meth:`upgrade` yourself. All methods are safe to call from several threads.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_s: float = 30.0,
        batch_size: int = 500,
        imdb_to_tmdb: Mapping[str, int] | None = None,
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        # What store.genre_map.sync() writes by default: [genres] imdb_to_tmdb.
        self.imdb_to_tmdb: dict[str, int] = dict(
            GenreSettings().imdb_to_tmdb if imdb_to_tmdb is None else imdb_to_tmdb
        )
        try:
            self.engine: Engine = self._create_engine(url, busy_timeout_s)
        except ImportError as exc:  # the PostgreSQL driver is an extra
            hint = " (pip install 'reelset[postgres]')" if url.startswith("postgresql") else ""
            raise StoreError(f"cannot open store {mask_url(url)}: {exc}{hint}") from None
        except (ArgumentError, ValueError) as exc:
            raise StoreError(f"cannot open store {mask_url(url)}: {exc}") from None
        except OSError as exc:  # the store's folder cannot be created
            where = f" ({exc.filename})" if exc.filename else ""
            raise StoreError(
                f"cannot open store {mask_url(url)}: {exc.strerror or exc}{where}"
            ) from None
        self.dialect = self.engine.dialect.name
        self._row_makers: dict[tuple[Any, ...], Callable[..., list[tuple[Any, ...]]]] = {}
        self.movies = Movies(self)
        self.runs = Runs(self)
        self.failures = Failures(self)
        self.locks = Locks(self)
        self.checkpoints = Checkpoints(self)
        self.genre_map = GenreMap(self)

    # -- setup -------------------------------------------------------------------------

    @staticmethod
    def _create_engine(url: str, busy_timeout_s: float) -> Engine:
        if url.startswith("sqlite"):
            database = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
            timeout_ms = int(busy_timeout_s * 1000)

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's own is too late).
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
                _use_wal(cursor, busy_timeout_s)
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.execute("PRAGMA synchronous = NORMAL")
                # 64 MiB page cache: batch upserts touch several indexes per row.
                cursor.execute("PRAGMA cache_size = -65536")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                immediate = conn.get_execution_options().get("reelset_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return create_engine(url, pool_pre_ping=True)

    @classmethod
    def open(cls, settings: Settings, *, upgrade: bool = True, check: bool = True) -> Store:
        """The one way to open the configured store.

        ``upgrade``: create the schema or upgrade an older one (a newer one is refused).
        Without it, ``check`` refuses a store not at this reelset's schema version; with
        neither, the store is opened as it is (``db info``, ``db upgrade``).
        """
        store = cls(
            settings.database_url,
            busy_timeout_s=settings.storage.busy_timeout_s,
            batch_size=settings.storage.batch_size,
            imdb_to_tmdb=settings.genres.imdb_to_tmdb,
        )
        try:
            if upgrade:
                store.upgrade()
            elif check:
                store.check_version()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def masked_url(self) -> str:
        """The store URL with any password masked."""
        return mask_url(self.url)

    @contextmanager
    def write(self, *, bulk: bool = False) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success.

        ``bulk``: the transaction writes a great many rows (an IMDb import batch). On
        SQLite it gets a big page cache, so primary keys and indexes stay in memory.
        """
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(reelset_write=True)
                with conn.begin():
                    if bulk and self.dialect == "sqlite":
                        conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
                    yield conn
        except IntegrityError:
            raise  # a constraint: the caller decides (e.g. a lock taken meanwhile)
        except DatabaseError as exc:  # locked, full, read-only, not a database, corrupt
            raise StoreError(f"store {self.masked_url}: {error_line(exc)}") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except DatabaseError as exc:
            raise StoreError(f"store {self.masked_url}: {error_line(exc)}") from None

    # -- schema versions -------------------------------------------------------------

    def schema_version(self) -> str | None:
        """The store's schema version, or ``None`` for an empty database."""
        with self.read() as conn:
            return _current_revision(conn)

    def check_version(self) -> str:
        """Raise :class:`StoreError` unless the store is at this reelset's schema version."""
        current = self.schema_version()
        head = head_version()
        if current is None:
            raise StoreError(f"store {self.masked_url} is not initialised: run `reelset db init`")
        if current not in _known_versions():
            raise StoreError(
                f"store {self.masked_url} has schema version {current}, newer than this "
                f"reelset knows (up to {head}); upgrade reelset to use it"
            )
        if current != head:
            raise StoreError(
                f"store {self.masked_url} has schema version {current}; run `reelset db upgrade`"
            )
        return current

    def upgrade(self) -> tuple[str | None, str]:
        """Create or upgrade the schema to the newest version; returns (before, after)."""
        known = _known_versions()
        try:
            with self.write() as conn:
                before = _current_revision(conn)
                if before is not None and before not in known:
                    raise StoreError(
                        f"store {self.masked_url} has schema version {before}, newer than this "
                        f"reelset knows (up to {head_version()}); upgrade reelset to use it"
                    )
                if before is None:
                    existing = set(inspect(conn).get_table_names())
                    if existing & set(schema.metadata.tables):
                        raise StoreError(
                            f"{self.masked_url} holds tables but no reelset schema version; "
                            "refusing to touch it"
                        )
                if before != head_version():
                    from alembic import command

                    command.upgrade(_alembic_config(conn), "head")
                after = _current_revision(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot upgrade store {self.masked_url}: {error_line(exc)}") from None
        assert after is not None
        if before != after:
            log.info("store schema upgraded from %s to %s", before or "empty", after)
        return before, after

    # -- the shared write helpers ---------------------------------------------------------
    #
    # The hot path of every scrape and import: straight to the driver's executemany,
    # converting only the values the driver cannot take as they are (dates and timestamps
    # on SQLite, JSON), because SQLAlchemy's per-row parameter processing costs more than
    # SQLite's own insert work. Rows are made by a list comprehension compiled once per
    # column list (as ``dataclasses`` compiles ``__init__``): as fast as one written out by
    # hand, where ``attrgetter`` and a per-row conversion loop cost 2-3x as much.

    def bulk_insert(
        self,
        conn: Connection,
        table: Table,
        rows: Iterable[Sequence[Any]],
        *,
        fields: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        constants: Mapping[str, Any] | None = None,
        conflict: Sequence[str] = (),
        update: Sequence[str] | None = None,
    ) -> None:
        """Insert rows into ``table`` with one executemany; rows as :meth:`driver_rows` takes.

        With ``conflict`` (the columns of a unique key) it is an upsert: a row whose key is
        taken sets the ``update`` columns of the stored row (default: every other column
        written); with ``update=()`` the stored row stays as it is.
        """
        names, params = self.driver_rows(
            table, rows, fields=fields, columns=columns, constants=constants
        )
        if not params:
            return
        quote = self.engine.dialect.identifier_preparer.quote
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join(self._mark for _ in names)})"
        )
        if conflict:
            updates = [n for n in (names if update is None else update) if n not in conflict]
            action = (
                "DO UPDATE SET " + ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in updates)
                if updates
                else "DO NOTHING"
            )
            sql += f" ON CONFLICT ({', '.join(quote(n) for n in conflict)}) {action}"
        conn.exec_driver_sql(sql, params)

    def bulk_update(
        self,
        conn: Connection,
        table: Table,
        rows: Iterable[Sequence[Any]],
        *,
        key: Sequence[str],
        fields: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        """Update stored rows of ``table`` by ``key`` with one executemany.

        Rows as :meth:`driver_rows` takes them, the ``key`` columns among their columns;
        every other column given is set.
        """
        names = self._names(table, fields, columns, constants)
        sets = tuple(n for n in names if n not in key)
        if not sets or not set(key) <= set(names):
            raise ValueError(f"an update of {table.name} needs its key {key} and a column to set")
        params = self._compiled_rows(table, fields, names, constants, (*sets, *key))(rows)
        if not params:
            return
        quote = self.engine.dialect.identifier_preparer.quote
        sql = (
            f"UPDATE {quote(table.name)} SET "
            + ", ".join(f"{quote(n)} = {self._mark}" for n in sets)
            + " WHERE "
            + " AND ".join(f"{quote(k)} = {self._mark}" for k in key)
        )
        conn.exec_driver_sql(sql, params)

    def driver_rows(
        self,
        table: Table,
        rows: Iterable[Sequence[Any]],
        *,
        fields: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The column names and the rows of ``table`` as the driver takes them.

        A row holds the values of ``columns`` (default: every column of ``table`` not in
        ``fields`` or ``constants``, in ``Table.c`` order). With ``fields`` a row is
        ``(record, *values)``, and those columns are read from the record's attributes
        of the same names (a :class:`MovieRecord`, a ``PosterRow``). ``constants`` give
        columns one value for every row. The columns come in that order: ``fields``,
        ``columns``, ``constants``. A value is converted only where its column's type
        needs it on this backend; ``None`` is NULL.
        """
        names = self._names(table, fields, columns, constants)
        return names, self._compiled_rows(table, fields, names, constants, names)(rows)

    @staticmethod
    def _names(
        table: Table,
        fields: Sequence[str],
        columns: Sequence[str] | None,
        constants: Mapping[str, Any] | None,
    ) -> tuple[str, ...]:
        fixed = tuple(constants or ())
        if columns is None:
            columns = schema.column_names(table, without=(*fields, *fixed))
        names = (*fields, *columns, *fixed)
        if len(set(names)) != len(names) or not set(names) <= set(table.c.keys()):
            raise ValueError(f"not distinct columns of {table.name}: {names}")
        return names

    def _compiled_rows(
        self,
        table: Table,
        fields: Sequence[str],
        names: tuple[str, ...],
        constants: Mapping[str, Any] | None,
        order: tuple[str, ...],
    ) -> Callable[[Iterable[Sequence[Any]]], list[tuple[Any, ...]]]:
        """``rows -> driver rows`` with the columns in ``order`` (see :meth:`driver_rows`)."""
        constants = constants or {}
        key = (table.name, tuple(fields), names, tuple(constants), order)
        make = self._row_makers.get(key)
        if make is None:
            make = self._row_maker(table, tuple(fields), names, tuple(constants), order)
            self._row_makers[key] = make
        tail = tuple(self._to_driver(table.c[n], v) for n, v in constants.items())
        return functools.partial(make, tail=tail)

    def _row_maker(
        self,
        table: Table,
        fields: tuple[str, ...],
        names: tuple[str, ...],
        constants: tuple[str, ...],
        order: tuple[str, ...],
    ) -> Callable[..., list[tuple[Any, ...]]]:
        """Compile ``make(rows, tail) -> [driver row, ...]`` for one column list.

        For ``fields=("tmdb_id", "release_date")``, ``names`` with ``"content_hash"`` and
        a constant ``updated_at`` on SQLite, ``make`` is::

            lambda rows, tail: [
                (record.tmdb_id, (convert1(x) if (x := record.release_date) is not None
                 else None), v0, tail[0]) for (record, v0) in rows
            ]
        """
        for name in fields:  # the only names that reach the source
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"{table.name}.{name} cannot be read as an attribute")
        values = names[len(fields) : len(names) - len(constants)]
        source = {n: f"record.{n}" for n in fields}
        source.update({n: f"v{i}" for i, n in enumerate(values)})
        source.update({n: f"tail[{i}]" for i, n in enumerate(constants)})
        env: dict[str, Any] = {"__builtins__": {}}
        items = []
        for i, name in enumerate(order):
            convert = None if name in constants else self._driver_converter(table.c[name])
            if convert is None:
                items.append(source[name])
            else:
                env[f"convert{i}"] = convert
                items.append(f"(convert{i}(x) if (x := {source[name]}) is not None else None)")
        target = ["record"] * bool(fields) + [f"v{i}" for i in range(len(values))]
        code = f"lambda rows, tail: [({', '.join(items)},) for ({', '.join(target)},) in rows]"
        make: Callable[..., list[tuple[Any, ...]]] = eval(code, env)
        return make

    @property
    def _mark(self) -> str:
        """The driver's positional parameter marker."""
        return "?" if self.engine.dialect.paramstyle == "qmark" else "%s"

    def _to_driver(self, column: Column[Any], value: Any) -> Any:
        convert = self._driver_converter(column)
        return convert(value) if convert is not None and value is not None else value

    def _driver_converter(self, column: Column[Any]) -> Callable[[Any], Any] | None:
        """How the driver takes a value of ``column``; ``None`` when as it is."""
        kind = column.type
        if isinstance(kind, schema.UTCDateTime):
            return kind.bind_processor(self.engine.dialect)
        if isinstance(kind, JSON):
            if self.dialect == "postgresql":
                from psycopg.types.json import Json

                return Json
            return functools.partial(json.dumps, ensure_ascii=False)
        if self.dialect == "sqlite" and isinstance(kind, Date):
            return dt.date.isoformat  # SQLite stores dates as ISO 8601 text
        return None

    # -- information ------------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per table."""
        counts: dict[str, int] = {}
        with self.read() as conn:
            for name, table in schema.metadata.tables.items():
                counts[name] = int(
                    conn.execute(select(func.count()).select_from(table)).scalar_one()
                )
        return counts

    def info(self) -> dict[str, Any]:
        """Backend, masked URL, schema version and row counts (for ``reelset db info``)."""
        version = self.schema_version()
        return {
            "backend": self.dialect,
            "url": self.masked_url,
            "schema_version": version,
            "schema_head": head_version(),
            "tables": self.row_counts() if version is not None else {},
        }
