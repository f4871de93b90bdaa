"""The store: engine setup per backend, migrations, batch upserts, runs, failures, locks.

This module is the only writer of the database. Every write is idempotent, so a rerun
after any crash converges to the same state. On SQLite every write transaction starts
with ``BEGIN IMMEDIATE`` (so two processes writing at once queue on the busy timeout
instead of failing on a lock upgrade); reads use ordinary deferred transactions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
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
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from reelset.config import Settings, mask_url
from reelset.errors import Interrupted, LockedError, StoreError
from reelset.storage import schema
from reelset.storage.records import (
    Failure,
    Genre,
    LockHolder,
    MovieRecord,
    RunHandle,
    UpsertResult,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MOVIE_FIELDS = (
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
    "keywords",
    "status",
    "content_hash",
)
_INSERT_COLUMNS = ("tmdb_id", *_MOVIE_FIELDS, "first_seen_at", "updated_at")
LOCK_STALE_AFTER = dt.timedelta(minutes=15)


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _movie_row(record: MovieRecord, content_hash: str) -> dict[str, Any]:
    return {
        "tmdb_id": record.tmdb_id,
        "imdb_id": record.imdb_id,
        "title": record.title,
        "original_title": record.original_title,
        "original_language": record.original_language,
        "overview": record.overview,
        "tagline": record.tagline,
        "release_date": record.release_date,
        "year": record.year,
        "runtime": record.runtime,
        "popularity": record.popularity,
        "vote_average": record.vote_average,
        "vote_count": record.vote_count,
        "adult": bool(record.adult),
        "poster_path": record.poster_path,
        "keywords": list(record.keywords) if record.keywords is not None else None,
        "status": record.status,
        "content_hash": content_hash,
    }


class Store:
    """A reelset store on SQLite or PostgreSQL.

    Open it with :meth:`open` (which upgrades an older schema) or construct it and call
    :meth:`upgrade` yourself. All methods are safe to call from several threads.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, batch_size: int = 500) -> None:
        self.url = url
        self.batch_size = batch_size
        self._known_genres: set[int] = set()
        try:
            self.engine: Engine = self._create_engine(url, busy_timeout_s)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {mask_url(url)}: {exc}") from None
        self.dialect = self.engine.dialect.name

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
    def open(cls, settings: Settings, *, upgrade: bool = True) -> Store:
        """Open the configured store, upgrading an older schema (or refusing a newer one)."""
        store = cls(
            settings.database_url,
            busy_timeout_s=settings.storage.busy_timeout_s,
            batch_size=settings.storage.batch_size,
        )
        if upgrade:
            store.upgrade()
        else:
            store.check_version()
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
            raise StoreError(f"store {self.masked_url}: {_short(exc)}") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise StoreError(f"store {self.masked_url}: {_short(exc)}") from None

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
            raise StoreError(f"cannot upgrade store {self.masked_url}: {_short(exc)}") from None
        assert after is not None
        if before != after:
            log.info("store schema upgraded from %s to %s", before or "empty", after)
        return before, after

    # -- genres and movies ---------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def upsert_genres(self, items: Iterable[Genre]) -> int:
        """Insert or rename genres; returns how many rows changed."""
        items = list(items)
        if not items:
            return 0
        changed = 0
        with self.write() as conn:
            existing = {
                row.genre_id: (row.name, row.origin) for row in conn.execute(select(schema.genres))
            }
            for g in items:
                if existing.get(g.genre_id) == (g.name, g.origin):
                    continue
                stmt = self._insert(schema.genres).values(
                    genre_id=g.genre_id, name=g.name, origin=g.origin
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["genre_id"], set_={"name": g.name, "origin": g.origin}
                    )
                )
                changed += 1
        self._known_genres.update(g.genre_id for g in items)
        return changed

    def _ensure_genres(self, conn: Connection, genre_ids: set[int]) -> None:
        missing = genre_ids - self._known_genres
        if not missing:
            return
        present = set(
            conn.execute(
                select(schema.genres.c.genre_id).where(schema.genres.c.genre_id.in_(missing))
            ).scalars()
        )
        absent = missing - present
        if absent:
            log.warning("genre ids with no known name stored as unknown: %s", sorted(absent))
            conn.execute(
                self._insert(schema.genres).on_conflict_do_nothing(index_elements=["genre_id"]),
                [{"genre_id": i, "name": f"Unknown ({i})", "origin": "unknown"} for i in absent],
            )
        self._known_genres.update(missing)

    def upsert_movies(
        self,
        records: Sequence[MovieRecord],
        *,
        run_id: int | None = None,
        now: dt.datetime | None = None,
    ) -> UpsertResult:
        """Write movies with their genres in batches, idempotently.

        A movie whose stored fields and genres are unchanged is not written (its
        ``updated_at`` stays); a changed one is updated with its genres replaced; a new one
        is inserted with ``first_seen_at``. Every movie's fetch is recorded in
        ``movie_fetches``. Genre ids without a row get ``Unknown (<id>)``, origin unknown.
        """
        result = UpsertResult()
        now = now or schema.utcnow()
        for start in range(0, len(records), self.batch_size):
            batch = records[start : start + self.batch_size]
            with self.write() as conn:
                result += self._upsert_batch(conn, batch, run_id, now)
        return result

    def _upsert_batch(
        self, conn: Connection, batch: Sequence[MovieRecord], run_id: int | None, now: dt.datetime
    ) -> UpsertResult:
        latest: dict[int, MovieRecord] = {r.tmdb_id: r for r in batch}  # last one wins
        ids = list(latest)
        m = schema.movies
        existing = dict(
            conn.execute(select(m.c.tmdb_id, m.c.content_hash).where(m.c.tmdb_id.in_(ids))).all()
        )
        self._ensure_genres(conn, {g for r in latest.values() for g in r.genre_ids})

        new: list[tuple[MovieRecord, str]] = []
        changed_rows: list[dict[str, Any]] = []
        for tmdb_id, record in latest.items():
            digest = record.content_hash()
            old = existing.get(tmdb_id)
            if old == digest:
                continue
            if old is None:
                new.append((record, digest))
            else:
                row = _movie_row(record, digest)
                row["updated_at"] = now
                changed_rows.append(row)

        if new:
            db_now = self._driver_value(now)
            value = self._driver_value
            sqlite_dates = self.dialect == "sqlite"  # SQLite stores dates as ISO text
            self._bulk_insert(
                conn,
                "movies",
                _INSERT_COLUMNS,
                [
                    (
                        r.tmdb_id,
                        r.imdb_id,
                        r.title,
                        r.original_title,
                        r.original_language,
                        r.overview,
                        r.tagline,
                        (r.release_date.isoformat() if sqlite_dates else r.release_date)
                        if r.release_date is not None
                        else None,
                        r.year,
                        r.runtime,
                        r.popularity,
                        r.vote_average,
                        r.vote_count,
                        bool(r.adult),
                        r.poster_path,
                        value(list(r.keywords)) if r.keywords is not None else None,
                        r.status,
                        digest,
                        db_now,
                        db_now,
                    )
                    for r, digest in new
                ],
            )
        if changed_rows:
            params = [{**row, "b_tmdb_id": row["tmdb_id"]} for row in changed_rows]
            for p in params:
                del p["tmdb_id"]
            stmt = (
                update(m)
                .where(m.c.tmdb_id == bindparam("b_tmdb_id"))
                .values({name: bindparam(name) for name in (*_MOVIE_FIELDS, "updated_at")})
            )
            conn.execute(stmt, params)
            conn.execute(
                delete(schema.movie_genres).where(
                    schema.movie_genres.c.tmdb_id.in_([r["tmdb_id"] for r in changed_rows])
                )
            )
        written = [r for r, _ in new] + [latest[row["tmdb_id"]] for row in changed_rows]
        genre_rows = [
            {"tmdb_id": r.tmdb_id, "genre_id": g} for r in written for g in sorted(set(r.genre_ids))
        ]
        if genre_rows:
            self._bulk_insert(
                conn,
                "movie_genres",
                ("tmdb_id", "genre_id"),
                [(g["tmdb_id"], g["genre_id"]) for g in genre_rows],
            )
        db_now = self._driver_value(now)
        self._bulk_insert(
            conn,
            "movie_fetches",
            ("tmdb_id", "fetched_at", "run_id"),
            [(i, db_now, run_id) for i in ids],
            upsert_key="tmdb_id",
        )
        new_ids = [r.tmdb_id for r, _ in new]
        updated_ids = [r["tmdb_id"] for r in changed_rows]
        return UpsertResult(
            new=len(new_ids),
            updated=len(updated_ids),
            unchanged=len(ids) - len(new_ids) - len(updated_ids),
            new_ids=new_ids,
            updated_ids=updated_ids,
        )

    def _bulk_insert(
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

    def _driver_value(self, value: Any) -> Any:
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

    def mark_gone(self, tmdb_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
        """Mark movies TMDB answers 404 for as ``gone`` (rows are kept); returns how many."""
        ids = list(tmdb_ids)
        if not ids:
            return 0
        now = now or schema.utcnow()
        m = schema.movies
        with self.write() as conn:
            res = conn.execute(
                update(m)
                .where(m.c.tmdb_id.in_(ids), m.c.status != "gone")
                .values(status="gone", updated_at=now, content_hash="gone")
            )
            return res.rowcount or 0

    def fetched_since(self, tmdb_ids: Iterable[int], since: dt.datetime) -> set[int]:
        """Which of these movies were fetched at or after ``since``."""
        ids = list(tmdb_ids)
        found: set[int] = set()
        f = schema.movie_fetches
        with self.read() as conn:
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                found.update(
                    conn.execute(
                        select(f.c.tmdb_id).where(f.c.tmdb_id.in_(chunk), f.c.fetched_at >= since)
                    ).scalars()
                )
        return found

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, command_name: str, params: dict[str, Any]) -> int:
        """Record a new run with status ``running``; returns its id."""
        with self.write() as conn:
            res = conn.execute(
                schema.scrape_runs.insert().values(
                    command=command_name,
                    params=params,
                    status="running",
                    started_at=schema.utcnow(),
                    pid=os.getpid(),
                    hostname=socket.gethostname(),
                    counts={},
                )
            )
            run_id = res.inserted_primary_key[0] if res.inserted_primary_key else None
        assert run_id is not None
        return int(run_id)

    def update_run(self, run_id: int, *, counts: dict[str, Any]) -> None:
        """Save a running run's counts so far."""
        with self.write() as conn:
            conn.execute(
                update(schema.scrape_runs)
                .where(schema.scrape_runs.c.run_id == run_id)
                .values(counts=counts)
            )

    def finish_run(
        self, run_id: int, status: str, *, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Close a run with its final status (succeeded, partial, failed, interrupted)."""
        with self.write() as conn:
            conn.execute(
                update(schema.scrape_runs)
                .where(schema.scrape_runs.c.run_id == run_id)
                .values(status=status, counts=counts, error=error, finished_at=schema.utcnow())
            )

    def last_run(self, command_name: str, *, status: str | None = None) -> dict[str, Any] | None:
        """The newest run of a command (optionally with a given status), as a dict."""
        r = schema.scrape_runs
        stmt = select(r).where(r.c.command == command_name)
        if status is not None:
            stmt = stmt.where(r.c.status == status)
        with self.read() as conn:
            row = conn.execute(stmt.order_by(r.c.run_id.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    @contextmanager
    def recorded_run(
        self, command_name: str, params: dict[str, Any], *, locks: Sequence[str] = ()
    ) -> Iterator[RunHandle]:
        """Hold ``locks`` and record a run in ``scrape_runs`` for the body's duration.

        The run ends ``handle.status`` (default ``succeeded``) with ``handle.counts``; an
        exception ends it ``failed``, Ctrl-C or :class:`Interrupted` ``interrupted`` (Ctrl-C is
        raised again as :class:`Interrupted`, exit 130). Locks are released in any case.
        """
        self.close_abandoned_runs(command_name)
        held: list[str] = []
        try:
            for name in locks:
                self.acquire_lock(name)
                held.append(name)
            handle = RunHandle(self.start_run(command_name, params))
            for name in held:
                self.set_lock_run(name, handle.run_id)
            try:
                yield handle
            except (KeyboardInterrupt, Interrupted) as exc:
                self.finish_run(handle.run_id, "interrupted", counts=handle.counts)
                if isinstance(exc, KeyboardInterrupt):
                    raise Interrupted("interrupted; the work written so far is kept") from None
                raise
            except BaseException as exc:
                error = str(exc)[:2000] or exc.__class__.__name__
                self.finish_run(handle.run_id, "failed", counts=handle.counts, error=error)
                raise
            self.finish_run(handle.run_id, handle.status, counts=handle.counts)
        finally:
            for name in reversed(held):
                self.release_lock(name)

    def close_abandoned_runs(self, command_name: str) -> int:
        """Mark ``running`` runs of a command whose process is gone as ``interrupted``."""
        r = schema.scrape_runs
        host = socket.gethostname()
        with self.write() as conn:
            rows = conn.execute(
                select(r.c.run_id, r.c.pid, r.c.hostname).where(
                    r.c.command == command_name, r.c.status == "running"
                )
            ).all()
            dead = [
                row.run_id
                for row in rows
                if row.hostname == host and (row.pid is None or not _pid_alive(row.pid))
            ]
            if dead:
                conn.execute(
                    update(r)
                    .where(r.c.run_id.in_(dead))
                    .values(
                        status="interrupted",
                        finished_at=schema.utcnow(),
                        error="the process ended without closing the run",
                    )
                )
        return len(dead)

    # -- failures -------------------------------------------------------------------------------

    def record_failure(
        self,
        kind: str,
        key: str,
        *,
        run_id: int | None,
        error: str,
        http_status: int | None = None,
    ) -> None:
        """Record (or count again) an open failure for ``kind``/``key``."""
        f = schema.fetch_failures
        now = schema.utcnow()
        with self.write() as conn:
            open_row = conn.execute(
                select(f.c.failure_id).where(
                    f.c.kind == kind, f.c.key == key, f.c.resolved_at.is_(None)
                )
            ).first()
            if open_row:
                conn.execute(
                    update(f)
                    .where(f.c.failure_id == open_row.failure_id)
                    .values(
                        attempts=f.c.attempts + 1,
                        last_failed_at=now,
                        error=error[:2000],
                        http_status=http_status,
                        run_id=run_id,
                    )
                )
            else:
                conn.execute(
                    f.insert().values(
                        run_id=run_id,
                        kind=kind,
                        key=key,
                        http_status=http_status,
                        error=error[:2000],
                        attempts=1,
                        first_failed_at=now,
                        last_failed_at=now,
                    )
                )

    def resolve_failures(self, kind: str, keys: Iterable[str]) -> int:
        """Mark open failures of these keys as resolved; returns how many."""
        keys = [str(k) for k in keys]
        if not keys:
            return 0
        f = schema.fetch_failures
        count = 0
        with self.write() as conn:
            for start in range(0, len(keys), 5000):
                res = conn.execute(
                    update(f)
                    .where(
                        f.c.kind == kind,
                        f.c.key.in_(keys[start : start + 5000]),
                        f.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=schema.utcnow())
                )
                count += res.rowcount or 0
        return count

    def open_failures(self, kind: str) -> list[Failure]:
        """The unresolved failures of a kind, oldest first."""
        f = schema.fetch_failures
        with self.read() as conn:
            rows = conn.execute(
                select(f)
                .where(f.c.kind == kind, f.c.resolved_at.is_(None))
                .order_by(f.c.failure_id)
            ).all()
        return [
            Failure(r.failure_id, r.kind, r.key, r.http_status, r.error, r.attempts) for r in rows
        ]

    # -- the run lock -------------------------------------------------------------------------

    def acquire_lock(self, name: str, *, run_id: int | None = None) -> None:
        """Take the named lock for this process, or raise :class:`LockedError`.

        A lock whose holder is dead (same host, process gone) or silent for longer than
        15 minutes (no :meth:`heartbeat`) is taken over.
        """
        lk = schema.run_lock
        now = schema.utcnow()
        host = socket.gethostname()
        try:
            with self.write() as conn:
                stmt = select(lk).where(lk.c.name == name)
                if self.dialect == "postgresql":
                    stmt = stmt.with_for_update()
                row = conn.execute(stmt).first()
                if row is not None:
                    holder = LockHolder(
                        row.name,
                        row.run_id,
                        row.pid,
                        row.hostname,
                        row.acquired_at,
                        row.heartbeat_at,
                    )
                    if not self._lock_is_stale(holder, now):
                        raise LockedError(_locked_message(holder))
                    log.warning(
                        "taking over the %s lock of run %s (pid %s on %s), whose process is gone",
                        name,
                        holder.run_id,
                        holder.pid,
                        holder.hostname,
                    )
                    conn.execute(delete(lk).where(lk.c.name == name))
                conn.execute(
                    lk.insert().values(
                        name=name,
                        run_id=run_id,
                        pid=os.getpid(),
                        hostname=host,
                        acquired_at=now,
                        heartbeat_at=now,
                    )
                )
        except IntegrityError:
            holder_now = self.lock_holder(name)
            if holder_now is None:
                raise LockedError(f"the {name} lock is being taken by another process") from None
            raise LockedError(_locked_message(holder_now)) from None

    @staticmethod
    def _lock_is_stale(holder: LockHolder, now: dt.datetime) -> bool:
        if holder.pid == os.getpid() and holder.hostname == socket.gethostname():
            return True
        if holder.hostname == socket.gethostname() and not _pid_alive(holder.pid):
            return True
        return now - holder.heartbeat_at > LOCK_STALE_AFTER

    def lock_holder(self, name: str) -> LockHolder | None:
        """Who holds the named lock, if anyone."""
        lk = schema.run_lock
        with self.read() as conn:
            row = conn.execute(select(lk).where(lk.c.name == name)).first()
        if row is None:
            return None
        return LockHolder(
            row.name, row.run_id, row.pid, row.hostname, row.acquired_at, row.heartbeat_at
        )

    def set_lock_run(self, name: str, run_id: int) -> None:
        """Attach the run id to a lock this process holds."""
        lk = schema.run_lock
        with self.write() as conn:
            conn.execute(
                update(lk).where(lk.c.name == name, lk.c.pid == os.getpid()).values(run_id=run_id)
            )

    def heartbeat(self, name: str) -> None:
        """Tell other processes the lock's holder is alive."""
        lk = schema.run_lock
        with self.write() as conn:
            conn.execute(
                update(lk)
                .where(lk.c.name == name, lk.c.pid == os.getpid())
                .values(heartbeat_at=schema.utcnow())
            )

    def release_lock(self, name: str) -> None:
        """Release a lock this process holds (no-op otherwise)."""
        lk = schema.run_lock
        with self.write() as conn:
            conn.execute(delete(lk).where(lk.c.name == name, lk.c.pid == os.getpid()))

    # -- checkpoints ----------------------------------------------------------------------------

    def get_checkpoint(self, name: str) -> Any:
        """The saved value of a checkpoint, or ``None``."""
        c = schema.checkpoints
        with self.read() as conn:
            return conn.execute(select(c.c.value).where(c.c.name == name)).scalar()

    def set_checkpoint(self, name: str, value: Any, *, run_id: int | None = None) -> None:
        """Save a checkpoint (JSON-serialisable value)."""
        c = schema.checkpoints
        stmt = self._insert(c).values(
            name=name, value=value, run_id=run_id, updated_at=schema.utcnow()
        )
        with self.write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "value": stmt.excluded.value,
                        "run_id": stmt.excluded.run_id,
                        "updated_at": stmt.excluded.updated_at,
                    },
                )
            )

    def delete_checkpoint(self, name: str) -> None:
        """Forget a checkpoint."""
        with self.write() as conn:
            conn.execute(delete(schema.checkpoints).where(schema.checkpoints.c.name == name))

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


def _locked_message(holder: LockHolder) -> str:
    started = holder.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = f"run {holder.run_id}" if holder.run_id is not None else "a run"
    return (
        f"the store is locked by {run} (pid {holder.pid} on {holder.hostname}, "
        f"started {started}); wait for it to finish"
    )


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
