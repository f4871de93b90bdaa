"""The ``posters`` table: one row per movie, written by the poster downloader.

Store-side functions taking a :class:`~reelset.storage.store.Store`: which movies need a
poster download, batch upserts of poster rows, and the rows ``reelset posters verify``
checks. Statuses: ``ok`` (a verified file), ``failed`` (could not be downloaded; retried
by the next ``reelset posters`` until its ``poster`` failure is abandoned), ``rejected``
(downloaded but not kept, or an invalid ``poster_path``; ``error`` starts with the
reason, as ``<reason>: <detail>``; downloaded again when a :class:`Recheck` names it)
and ``missing`` (TMDB has no poster).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, exists, func, or_, select

from reelset.storage import schema
from reelset.storage.store import Store

POSTER_STATUSES = ("ok", "failed", "rejected", "missing")
POSTER_FAILURE_KIND = "poster"
"""The ``fetch_failures.kind`` of failed poster downloads (key: the tmdb_id)."""
_ID_CHUNK = 5000


@dataclass(frozen=True)
class PosterTarget:
    """A movie whose poster should be downloaded, with what its row says so far."""

    tmdb_id: int
    poster_path: str | None
    previous_status: str | None = None
    previous_poster_path: str | None = None
    previous_attempts: int = 0


@dataclass(frozen=True)
class Recheck:
    """Which ``rejected`` posters a run downloads again on its own.

    Those rejected for one of ``reasons`` (the code their ``error`` starts with, e.g.
    ``truncated``) whose rejection (``downloaded_at``) is at or before ``before``.
    """

    reasons: tuple[str, ...]
    before: dt.datetime


@dataclass(frozen=True)
class PosterRow:
    """One row of the ``posters`` table."""

    tmdb_id: int
    status: str
    poster_path: str | None = None
    sha256: str | None = None
    file_path: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    bytes: int | None = None
    phash: str | None = None
    source_url: str | None = None
    resized_file_path: str | None = None
    resized_width: int | None = None
    resized_height: int | None = None
    error: str | None = None
    attempts: int = 0
    downloaded_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.status not in POSTER_STATUSES:
            raise ValueError(f"unknown poster status {self.status!r}")


POSTER_COLUMNS = schema.column_names(schema.posters)
"""The ``posters`` columns, each a :class:`PosterRow` field of that name."""


def _needs_fetch(
    retry_rejected: bool, retry_abandoned: bool = False, recheck: Recheck | None = None
) -> ColumnElement[bool]:
    m, p = schema.movies, schema.posters
    statuses = ["failed", "rejected"] if retry_rejected else ["failed"]
    return or_(
        p.c.tmdb_id.is_(None),
        and_(p.c.status.in_(statuses), *([] if retry_abandoned else [~_abandoned_failure()])),
        p.c.poster_path.is_distinct_from(m.c.poster_path),
        *([_due_for_recheck(recheck)] if recheck is not None and recheck.reasons else []),
    )


def _due_for_recheck(recheck: Recheck) -> ColumnElement[bool]:
    """The row is ``rejected`` for one of the recheck's reasons, long enough ago."""
    p = schema.posters
    return and_(
        p.c.status == "rejected",
        p.c.downloaded_at <= recheck.before,
        or_(*(p.c.error.startswith(f"{r}:", autoescape=True) for r in recheck.reasons)),
    )


def _abandoned_failure() -> ColumnElement[bool]:
    """The movie's ``poster`` failure is abandoned: no longer retried automatically."""
    m, f = schema.movies, schema.fetch_failures
    return exists().where(
        f.c.kind == POSTER_FAILURE_KIND,
        f.c.key == cast(m.c.tmdb_id, Text),
        f.c.resolved_at.is_(None),
        f.c.state == "abandoned",
    )


def target_query(
    *,
    retry_rejected: bool,
    force: bool,
    ids: Sequence[int] | None,
    after: int | None,
    retry_abandoned: bool = False,
    recheck: Recheck | None = None,
) -> Any:
    """The select of the movies whose poster needs downloading (see
    :func:`iter_poster_targets`), in ``tmdb_id`` order, after ``after`` when given."""
    m, p = schema.movies, schema.posters
    stmt = (
        select(
            m.c.tmdb_id,
            m.c.poster_path,
            p.c.status,
            p.c.poster_path.label("prev_path"),
            p.c.attempts,
        )
        .select_from(m.outerjoin(p, p.c.tmdb_id == m.c.tmdb_id))
        .where(m.c.status != "gone")
    )
    if not force:
        stmt = stmt.where(_needs_fetch(retry_rejected, retry_abandoned, recheck))
    if ids is not None:
        stmt = stmt.where(m.c.tmdb_id.in_(ids))
    if after is not None:
        stmt = stmt.where(m.c.tmdb_id > after)
    return stmt.order_by(m.c.tmdb_id)


def target_from_row(row: Any) -> PosterTarget:
    """The :class:`PosterTarget` of a row of :func:`target_query`."""
    return PosterTarget(
        tmdb_id=int(row.tmdb_id),
        poster_path=row.poster_path,
        previous_status=row.status,
        previous_poster_path=row.prev_path,
        previous_attempts=int(row.attempts or 0),
    )


def count_poster_targets(
    store: Store,
    tmdb_ids: Iterable[int] | None = None,
    *,
    retry_rejected: bool = False,
    force: bool = False,
    retry_abandoned: bool = False,
    recheck: Recheck | None = None,
) -> int:
    """How many movies :func:`iter_poster_targets` would yield."""
    ids = sorted(set(tmdb_ids)) if tmdb_ids is not None else None
    query = functools.partial(
        target_query, retry_rejected=retry_rejected, force=force,
        retry_abandoned=retry_abandoned, recheck=recheck,
    )
    total = 0
    with store.read() as conn:
        for chunk in _chunks(ids):
            stmt = query(ids=chunk, after=None)
            total += int(
                conn.execute(
                    select(func.count()).select_from(stmt.order_by(None).subquery())
                ).scalar_one()
            )
    return total


def iter_poster_targets(
    store: Store,
    tmdb_ids: Iterable[int] | None = None,
    *,
    retry_rejected: bool = False,
    force: bool = False,
    page_size: int = 2000,
    retry_abandoned: bool = False,
    recheck: Recheck | None = None,
) -> Iterator[PosterTarget]:
    """Movies (not ``gone``) whose poster needs downloading, in ``tmdb_id`` order.

    That is: no poster row yet, status ``failed`` (and ``rejected`` with
    ``retry_rejected``) unless its ``poster`` failure is abandoned (those too with
    ``retry_abandoned``), a ``rejected`` row that ``recheck`` names, or a
    ``movies.poster_path`` different from the one the row was made for. ``force`` yields
    every movie. ``tmdb_ids`` restricts the movies considered.
    Pages are read lazily (keyset pagination), so rows written meanwhile are fine.
    """
    ids = sorted(set(tmdb_ids)) if tmdb_ids is not None else None
    query = functools.partial(
        target_query, retry_rejected=retry_rejected, force=force,
        retry_abandoned=retry_abandoned, recheck=recheck,
    )
    for chunk in _chunks(ids):
        after: int | None = None
        while True:
            with store.read() as conn:
                rows = conn.execute(query(ids=chunk, after=after).limit(page_size)).all()
            if not rows:
                break
            for row in rows:
                yield target_from_row(row)
            after = int(rows[-1].tmdb_id)
            if len(rows) < page_size:
                break


def _chunks(ids: list[int] | None) -> Iterator[list[int] | None]:
    if ids is None:
        yield None
        return
    for start in range(0, len(ids), _ID_CHUNK):
        yield ids[start : start + _ID_CHUNK]


def upsert_poster_rows(store: Store, rows: Sequence[PosterRow]) -> int:
    """Insert or replace poster rows (one transaction per batch); returns how many."""
    latest = list({r.tmdb_id: r for r in rows}.values())  # last one wins
    m = schema.movies
    for start in range(0, len(latest), store.batch_size):
        batch = latest[start : start + store.batch_size]
        with store.write() as conn:
            # Rows of movies deleted meanwhile would violate the foreign key: skip them.
            present = set(
                conn.execute(
                    select(m.c.tmdb_id).where(m.c.tmdb_id.in_([r.tmdb_id for r in batch]))
                ).scalars()
            )
            store.bulk_insert(
                conn,
                schema.posters,
                [(r,) for r in batch if r.tmdb_id in present],
                fields=POSTER_COLUMNS,
                conflict=("tmdb_id",),
            )
    return len(latest)


def iter_ok_rows(store: Store, *, page_size: int = 5000) -> Iterator[PosterRow]:
    """Every ``ok`` poster row, in ``tmdb_id`` order, read page by page."""
    p = schema.posters
    after: int | None = None  # not a sentinel number: PostgreSQL's integer is 32-bit
    while True:
        stmt = select(p).where(p.c.status == "ok")
        if after is not None:
            stmt = stmt.where(p.c.tmdb_id > after)
        with store.read() as conn:
            rows = conn.execute(stmt.order_by(p.c.tmdb_id).limit(page_size)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield PosterRow(**dict(row))
        after = int(rows[-1]["tmdb_id"])
