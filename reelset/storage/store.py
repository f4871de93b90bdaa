"""The store: engine setup per backend, transactions, migrations, the shared bulk writes.

``Store`` holds the engine; its jobs live beside it: ``store.movies`` (:mod:`.movies`),
``store.runs``, ``store.failures``, ``store.locks`` and ``store.checkpoints``
(:mod:`.bookkeeping`). Poster and IMDb rows (:mod:`.posters`, :mod:`.imdb`) use the same
transactions and bulk-insert helper.

This module is the only writer of the database. Every write is idempotent, so a rerun
after any crash converges to the same state. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` (so two processes writing at once queue on the busy timeout
instead of failing on a lock upgrade); reads use ordinary deferred transactions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from reelset.config import Settings, mask_url
from reelset.errors import StoreError, error_line
from reelset.storage import schema
from reelset.storage.bookkeeping import Checkpoints, Failures, Locks, Runs
from reelset.storage.movies import Movies

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_version() -> str:
    """The newest schema version this reelset knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_versions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


class Store:
    """A reelset store on SQLite or PostgreSQL.

    Open it with :meth:`open` (which upgrades an older schema) or construct it and call
    :meth:`upgrade` yourself. All methods are safe to call from several threads.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, batch_size: int = 500) -> None:
        self.url = url
        self.batch_size = batch_size
        try:
            self.engine: Engine = self._create_engine(url, busy_timeout_s)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {mask_url(url)}: {exc}") from None
        self.dialect = self.engine.dialect.name
        self.movies = Movies(self)
        self.runs = Runs(self)
        self.failures = Failures(self)
        self.locks = Locks(self)
        self.checkpoints = Checkpoints(self)

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
                cursor.execute("PRAGMA journal_mode = WAL")
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
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(reelset_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreError(f"store {self.masked_url}: {error_line(exc)}") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise StoreError(f"store {self.masked_url}: {error_line(exc)}") from None

    # -- schema versions -------------------------------------------------------------

    def schema_version(self) -> str | None:
        """The store's schema version, or ``None`` for an empty database."""
        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

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
                before = MigrationContext.configure(conn).get_current_revision()
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
                    command.upgrade(_alembic_config(conn), "head")
                after = MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot upgrade store {self.masked_url}: {error_line(exc)}") from None
        assert after is not None
        if before != after:
            log.info("store schema upgraded from %s to %s", before or "empty", after)
        return before, after

    # -- the shared write helpers ---------------------------------------------------------

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT for ``table`` (with ``on_conflict_do_update/nothing``)."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def bulk_insert(
        self,
        conn: Connection,
        table: str,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        upsert_key: str | None = None,
    ) -> None:
        """Insert rows of values already converted with :meth:`_driver_value`."""
        # The hot path of every scrape and import: straight to the driver's executemany,
        # converting values once, because SQLAlchemy's per-row parameter processing
        # costs more than SQLite's own insert work.
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(mark for _ in columns)})"
        )
        if upsert_key is not None:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != upsert_key)
            sql += f" ON CONFLICT ({upsert_key}) DO UPDATE SET {updates}"
        conn.exec_driver_sql(sql, list(rows))

    def driver_value(self, value: Any) -> Any:
        """``value`` as the driver takes it (SQLite: ISO text, 0/1; JSON for lists and dicts)."""
        if self.dialect == "sqlite":
            if isinstance(value, dt.datetime):
                return schema.sqlite_timestamp(value)
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, bool):
                return int(value)
        if isinstance(value, (list, dict)):
            if self.dialect == "postgresql":
                from psycopg.types.json import Json

                return Json(value)
            return json.dumps(value, ensure_ascii=False)
        return value

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


