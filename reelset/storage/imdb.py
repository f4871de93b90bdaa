"""Store-side IMDb: idempotent batch upserts of IMDb titles and genres, and coverage.

``imported_at`` records when a title's stored content last changed: a title whose fields
and genre set are unchanged is not written at all, so re-importing the same dump leaves
every row (``imported_at`` included) as it was.

On SQLite a batch's stored titles are read with one query through the driver's cursor,
each title's genres as one JSON array, and new rows are written with multi-row inserts.
A batch handed over column by column (:class:`ImdbTitleColumns`, as the importer does) is
compared column by column first (an unchanged batch costs no Python per title), and a
batch of new titles goes into the inserts' parameters a column at a time.

A title handed over without a rating (``average_rating`` and ``num_votes`` both
``None``) keeps the rating it has stored: IMDb's ratings file lists only rated titles, so
a title missing from it (a malformed row, a partial or header-only file) says nothing
about its rating and must not erase it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, delete, func, select

from reelset.storage import schema
from reelset.storage.records import UpsertCounts
from reelset.storage.store import Store

_RATING_FIELDS = ("average_rating", "num_votes")
"""The ``imdb_titles`` columns that come from the ratings file."""
_TITLE_FIELDS = schema.column_names(
    schema.imdb_titles, without=("imdb_id", *_RATING_FIELDS, "imported_at")
)
"""The ``imdb_titles`` columns that come from the basics file (each an :class:`ImdbTitle` field)."""
_IN_CHUNK = 10_000  # ids per lookup query


@dataclass(frozen=True, slots=True)
class ImdbTitle:
    """One IMDb title as the importer hands it to the store (``imdb_id`` like ``tt0000009``)."""

    imdb_id: str
    title_type: str
    primary_title: str | None = None
    original_title: str | None = None
    is_adult: bool | None = None
    start_year: int | None = None
    runtime_minutes: int | None = None
    average_rating: float | None = None
    num_votes: int | None = None
    genres: tuple[str, ...] = ()


class ImdbTitleRow(NamedTuple):
    """An :class:`ImdbTitle` as a named tuple (the same fields, in the same order).

    For bulk imports: a tuple is made several times faster than a frozen dataclass, and
    an import makes one per title.
    """

    imdb_id: str
    title_type: str
    primary_title: str | None = None
    original_title: str | None = None
    is_adult: bool | None = None
    start_year: int | None = None
    runtime_minutes: int | None = None
    average_rating: float | None = None
    num_votes: int | None = None
    genres: tuple[str, ...] = ()


_POSITION = {name: i for i, name in enumerate(ImdbTitleRow._fields)}
"""Where each field sits in an :class:`ImdbTitleRow`."""
_RATING_AT = _POSITION["average_rating"]
# A row's head is imdb_id and the compared fields, in the order _stored() reads them.
_HEAD = ("imdb_id", *_TITLE_FIELDS, *_RATING_FIELDS)
assert ImdbTitleRow._fields[: len(_HEAD)] == _HEAD and ImdbTitleRow._fields[-1] == "genres"


@dataclass
class ImdbUpsertResult(UpsertCounts):
    """How a batch of IMDb title upserts went, with the genre rows written."""

    genre_rows: int = 0


@dataclass(frozen=True)
class ImdbCoverage:
    """How many TMDB movies with an IMDb id have a matching IMDb title in the store."""

    movies_with_imdb_id: int
    matched: int

    @property
    def unmatched(self) -> int:
        """Movies with an IMDb id that no stored IMDb title has."""
        return self.movies_with_imdb_id - self.matched

    @property
    def ratio(self) -> float | None:
        """``matched / movies_with_imdb_id``, or ``None`` when no movie has an IMDb id."""
        return self.matched / self.movies_with_imdb_id if self.movies_with_imdb_id else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for summaries."""
        return {
            "tmdb_movies_with_imdb_id": self.movies_with_imdb_id,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "coverage_pct": round(100 * self.ratio, 2) if self.ratio is not None else None,
        }


def _stored(
    conn: Connection, ids: list[str], fields: Sequence[str]
) -> tuple[dict[str, tuple[Any, ...]], dict[str, set[str]]]:
    """The stored values (in ``fields`` order) and genre sets of those of ``ids`` present."""
    # One array parameter instead of SQLAlchemy's expanding IN (...): compiling thousands of
    # placeholders per batch would cost more than the lookup itself.
    if conn.dialect.name == "postgresql":
        where, param = "imdb_id = ANY(%s)", lambda chunk: (chunk,)
    else:
        where, param = (
            "imdb_id IN (SELECT value FROM json_each(?))",
            lambda chunk: (json.dumps(chunk),),
        )
    titles_sql = f"SELECT imdb_id, {', '.join(fields)} FROM imdb_titles WHERE {where}"
    genres_sql = f"SELECT imdb_id, genre FROM imdb_title_genres WHERE {where}"
    stored: dict[str, tuple[Any, ...]] = {}
    stored_genres: dict[str, set[str]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for rec in conn.exec_driver_sql(titles_sql, param(chunk)):
            # Booleans come back as 0/1 from SQLite: equal to False/True, so compares hold.
            stored[rec[0]] = tuple(rec[1:])
        for imdb_id, genre in conn.exec_driver_sql(genres_sql, param(chunk)):
            stored_genres.setdefault(imdb_id, set()).add(genre)
    return stored, stored_genres


def _stored_sqlite(
    driver: sqlite3.Connection, ids: list[str], fields: Sequence[str]
) -> list[tuple[Any, ...]]:
    """SQLite: of those of ``ids`` present, ``(imdb_id, *values in fields order, genres)``.

    The genres of a title come as one JSON array. One query through the driver's own
    cursor: a re-import reads a row per title, which SQLAlchemy's result rows would make
    several times as costly. The rows come in the order of ``ids`` as SQLite reads them
    (the ids' JSON array first); :func:`_all_unchanged` checks that before relying on it.
    """
    # The genres of a title as one JSON text: equal texts are equal lists (the caller
    # compares a set only when the texts differ, so the order SQLite gives does not matter).
    sql = (
        f"SELECT t.imdb_id, {', '.join('t.' + f for f in fields)}, "
        "(SELECT json_group_array(g.genre) FROM imdb_title_genres g "
        "WHERE g.imdb_id = t.imdb_id) "
        "FROM json_each(?) j JOIN imdb_titles t ON t.imdb_id = j.value"
    )
    stored: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = json.dumps(ids[start : start + _IN_CHUNK])
        stored += driver.execute(sql, (chunk,)).fetchall()
    return stored


def _all_unchanged(
    stored: list[tuple[Any, ...]], batch: ImdbTitleColumns, as_json: dict[tuple[str, ...], str]
) -> bool:
    """Whether ``stored`` (from :func:`_stored_sqlite`) is every title of ``batch``, unchanged.

    Column by column, so an unchanged batch (a re-import of the same file) costs no Python
    per title. Only ``True`` when every stored value equals the given one and every genre
    array the given one's: what :func:`upsert_imdb_titles` finds title by title then.
    ``False`` leaves the batch to that comparison (also for ratings it keeps).
    """
    ids = batch.columns[0]
    if len(stored) != len(ids):
        return False
    # Booleans come back as 0/1 from SQLite: equal to False/True.
    columns = list(zip(*stored, strict=True))
    if columns[0] != tuple(ids):
        return False
    for was, given in zip(columns[1:-1], batch.columns[1:], strict=True):
        if was != tuple(given):
            return False
    return columns[-1] == tuple(map(as_json.__getitem__, batch.genres))


def _json_list(values: list[str]) -> str:
    """``values`` as SQLite's ``json_group_array`` writes them (no spaces, UTF-8 as it is)."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


# A title's genre list is one of a few thousand (IMDb gives at most three of about 30
# genres): each is made distinct and sorted, and written as JSON, once per process
# instead of once per batch (json.dumps with options costs microseconds a call).
@functools.lru_cache(maxsize=1 << 16)
def _genre_set(names: tuple[str, ...]) -> list[str]:
    """The distinct genres of ``names``, sorted (shared: never changed by callers)."""
    return sorted(set(names))


@functools.lru_cache(maxsize=1 << 16)
def _genre_json(names: tuple[str, ...]) -> str:
    """:func:`_genre_set` of ``names`` as :func:`_json_list` writes it."""
    return _json_list(_genre_set(names))


def _row_of(title: ImdbTitle | ImdbTitleRow) -> ImdbTitleRow:
    if isinstance(title, tuple):
        return title
    return ImdbTitleRow(*(getattr(title, name) for name in ImdbTitleRow._fields))


_ROWS_STEP = 256
"""Multi-row inserts come in sizes rounded up to this many rows (see below)."""


def _insert_many_sqlite(
    driver: sqlite3.Connection,
    table: str,
    names: Sequence[str],
    flat: list[Any],
    stamp: Any,
    null_number: Sequence[str] = (),
) -> None:
    """Insert new rows (``flat``: their values of ``names``, row after row) into ``table``.

    Each row also gets ``imported_at = stamp`` (unless ``None``); in the columns named in
    ``null_number``, ``-1`` is written as NULL (see :func:`_insert_new_sqlite`). Many
    rows per ``INSERT ... VALUES (...), (...)``, not an ``executemany``: that releases and
    retakes the GIL for every row, so while another thread parses, it waits up to a switch
    interval (5 ms) per row and writing no longer overlaps parsing; here the GIL is
    released once per statement. The driver keeps its compiled statements (megabytes
    each at this size), so the sizes are few: the rows are split into equal groups of as
    many as SQLite takes parameters, rounded up to a multiple of ``_ROWS_STEP`` by
    repeating the last row, which ``ON CONFLICT DO NOTHING`` then skips.
    """
    width = len(names)
    count = len(flat) // width
    if not count:
        return
    most = max(1, (driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1) // width)
    groups = -(-count // most)
    per_group = -(-count // groups)  # ceiling divisions
    size = min(most, -(-per_group // _ROWS_STEP) * _ROWS_STEP)
    head = "?1, " if stamp is not None else ""  # the stamp: parameter 1 in every row
    null = f"NULLIF(?, {_NULL_NUMBER})"
    marks = ", ".join(null if name in null_number else "?" for name in names)
    values = ", ".join(["(" + head + marks + ")"] * size)
    columns = ("imported_at, " if stamp is not None else "") + ", ".join(names)
    sql = f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING"
    first = [stamp] if stamp is not None else []
    step = size * width
    for start in range(0, len(flat), step):
        group = first + flat[start : start + step]
        missing = step - (len(group) - len(first))
        if missing:
            group += group[-width:] * (missing // width)
        driver.execute(sql, group)


@dataclass(frozen=True, slots=True)
class ImdbTitleBatch:
    """A batch of titles column-split as a bulk import makes them (see ``upsert_imdb_titles``).

    ``heads[i]`` is title i's ``imdb_id`` and the fields of :class:`ImdbTitleRow` up to
    ``runtime_minutes``, followed by ``average_rating`` and ``num_votes`` when written
    ``with_ratings``; ``genres[i]`` its genre names.
    """

    heads: list[tuple[Any, ...]]
    genres: list[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ImdbTitleColumns:
    """An :class:`ImdbTitleBatch` column by column: ``columns[j][i]`` is ``heads[i][j]``.

    How a bulk import hands its titles over: a first import's titles then go into the
    insert's parameters a whole column at a time, with no tuple made per title. Numbers
    as the TSV parser gives them: none negative (a first import writes -1 as NULL).
    """

    columns: list[list[Any]]
    genres: list[tuple[str, ...]]

    def as_batch(self) -> ImdbTitleBatch:
        """The same titles as an :class:`ImdbTitleBatch` (a tuple per title)."""
        return ImdbTitleBatch(list(zip(*self.columns, strict=True)), self.genres)


def _interleaved(columns: Sequence[list[Any]]) -> list[Any]:
    """The values of ``columns`` row after row, in one flat list (a slice copy per column)."""
    width = len(columns)
    flat: list[Any] = [None] * (width * len(columns[0]))
    for at, column in enumerate(columns):
        flat[at::width] = column
    return flat


def _genre_pairs(ids: list[str], lists: list[list[str]]) -> list[str]:
    """``(id, genre)`` for each genre of each title, flat: id, genre, id, genre, ..."""
    # Each title's id once per genre, beside its genres.
    repeated = list(chain.from_iterable(map(repeat, ids, map(len, lists))))
    return _interleaved((repeated, list(chain.from_iterable(lists))))


_NUMERIC_FIELDS = frozenset(
    ("is_adult", "start_year", "runtime_minutes", "average_rating", "num_votes")
)
"""The ``imdb_titles`` columns of numbers (and a flag): none negative (the parser's limits)."""
_NULL_NUMBER = -1
"""Stands for NULL in a column of :data:`_NUMERIC_FIELDS` (see :func:`_insert_new_sqlite`)."""
_NUMBER_PARAMS: dict[Any, Any] = {None: _NULL_NUMBER}
_FLAG_PARAMS: dict[Any, Any] = {None: _NULL_NUMBER, False: 0, True: 1}  # is_adult's bools


def _insert_new_sqlite(
    store: Store, batch: ImdbTitleColumns, fields: tuple[str, ...], now: dt.datetime
) -> ImdbUpsertResult:
    """SQLite: insert a batch of titles none of which is stored, and their genres.

    The rows and statements :func:`upsert_imdb_titles` writes for such a batch, the
    parameters made column by column before the transaction starts.
    """
    columns = ("imdb_id", *fields)
    # The driver binds an int, a float or a str directly, but a None or a bool only after
    # looking for an adapter (two failed attribute lookups, 0.2 us each: half a second in
    # a full-size import). So a bool goes as 0 or 1 (what SQLite stores for it) and a
    # None among numbers as -1, which the statement turns into NULL.
    numeric = [name for name in columns if name in _NUMERIC_FIELDS]
    for name, column in zip(columns, batch.columns, strict=True):
        # A real -1 would be stored as NULL: refused (never from IMDb's files, whose
        # numbers the parser only takes as digits).
        if name in _NUMERIC_FIELDS and _NULL_NUMBER in column:
            raise ValueError(f"{name} {_NULL_NUMBER} in an ImdbTitleColumns: not a valid value")
    flat = _interleaved(
        [
            list(map((_FLAG_PARAMS if name == "is_adult" else _NUMBER_PARAMS).get, column, column))
            if name in _NUMERIC_FIELDS
            else column
            for name, column in zip(columns, batch.columns, strict=True)
        ]
    )
    names = {key: _genre_set(key) for key in set(batch.genres)}
    pairs = _genre_pairs(batch.columns[0], list(map(names.__getitem__, batch.genres)))
    with store.write(bulk=True) as conn:
        driver = cast(sqlite3.Connection, conn.connection.driver_connection)
        time_of = schema.imdb_titles.c.imported_at.type.bind_processor(conn.dialect)
        at = time_of(now) if time_of else now
        _insert_many_sqlite(driver, "imdb_titles", columns, flat, at, null_number=numeric)
        _insert_many_sqlite(driver, "imdb_title_genres", ("imdb_id", "genre"), pairs, None)
    return ImdbUpsertResult(new=len(batch.genres), genre_rows=len(pairs) // 2)


def _deduplicated(batch: ImdbTitleBatch) -> ImdbTitleBatch:
    """The batch with the last of duplicate ids only, where the first of them stood."""
    heads, genres = batch.heads, batch.genres
    last = dict(zip(map(itemgetter(0), heads), range(len(heads)), strict=True))
    if len(last) == len(heads):
        return batch
    keep = list(last.values())
    return ImdbTitleBatch([heads[i] for i in keep], [genres[i] for i in keep])


def _batch_of(titles: Sequence[ImdbTitle] | Sequence[ImdbTitleRow], width: int) -> ImdbTitleBatch:
    rows = list(map(_row_of, titles))
    return ImdbTitleBatch([row[:width] for row in rows], [row[-1] for row in rows])


def upsert_imdb_titles(
    store: Store,
    titles: Sequence[ImdbTitle] | Sequence[ImdbTitleRow] | ImdbTitleBatch | ImdbTitleColumns,
    *,
    with_ratings: bool = True,
    now: dt.datetime | None = None,
    all_new: bool = False,
) -> ImdbUpsertResult:
    """Write one batch of IMDb titles with their genres in one transaction, idempotently.

    A title whose fields and genre set equal the stored ones is not written (its
    ``imported_at`` stays); a changed one is updated, its genres replaced and its
    ``imported_at`` set to ``now``; a new one is inserted. A stored title given without
    a rating (both rating fields ``None``) keeps its stored rating and vote count. With
    ``with_ratings=False`` (no ratings file given) the stored ``average_rating``/
    ``num_votes`` are neither compared nor changed, and new titles get none. The last of
    duplicate ids wins. Titles may be given as :class:`ImdbTitle` or :class:`ImdbTitleRow`
    (or plain tuples in :class:`ImdbTitleRow`'s field order), or as an
    :class:`ImdbTitleBatch` (heads as wide as ``with_ratings`` says) or
    :class:`ImdbTitleColumns`. ``all_new``: the caller knows that no title of the batch is
    stored (a first import), so the store is not asked.
    """
    fields = _TITLE_FIELDS + _RATING_FIELDS if with_ratings else _TITLE_FIELDS
    width = 1 + len(fields)  # imdb_id and the compared fields: the head of a row
    given: ImdbTitleColumns | None = None
    if isinstance(titles, ImdbTitleColumns):
        if len(titles.columns) != width:
            raise ValueError(f"ImdbTitleColumns with_ratings={with_ratings} has {width} columns")
        ids = titles.columns[0]
        if store.dialect == "sqlite" and ids and len(set(ids)) == len(ids):
            if all_new:
                return _insert_new_sqlite(store, titles, fields, now or schema.utcnow())
            given = titles  # checked column by column first (see _all_unchanged)
        titles = titles.as_batch()  # and title by title
    if isinstance(titles, ImdbTitleBatch):
        if titles.heads and len(titles.heads[0]) != width:
            raise ValueError(f"an ImdbTitleBatch with_ratings={with_ratings} has {width} heads")
        batch = titles if given is not None else _deduplicated(titles)  # given: ids distinct
    else:
        batch = _deduplicated(_batch_of(titles, width))
    heads, genres = batch.heads, batch.genres
    if not heads:
        return ImdbUpsertResult()
    now = now or schema.utcnow()
    t, g = schema.imdb_titles, schema.imdb_title_genres
    columns = ("imdb_id", *fields)
    stamp = {"imported_at": now}
    names = {names: _genre_set(names) for names in set(genres)}
    sqlite = store.dialect == "sqlite"
    with store.write(bulk=True) as conn:
        driver = cast(sqlite3.Connection, conn.connection.driver_connection) if sqlite else None
        new: list[int] = []  # positions in the batch
        changed: list[int] = []
        changed_rows: list[tuple[Any, ...]] = []
        if all_new:
            new = list(range(len(heads)))  # a first import: every title is new
        else:
            rated_at = len(_TITLE_FIELDS)  # the rating fields come last
            ids = list(map(itemgetter(0), heads))
            stored_sets: dict[str, set[str]] = {}
            compared = heads
            if driver is not None:
                records = _stored_sqlite(driver, ids, fields)
                as_json = {key: _genre_json(key) for key in names}
                if given is not None and _all_unchanged(records, given, as_json):
                    records, compared = [], []  # every title unchanged: none to compare
                stored = {rec[0]: rec[1:] for rec in records}
            else:
                stored, stored_sets = _stored(conn, ids, fields)
            for i, head in enumerate(compared):
                old = stored.get(head[0])
                if old is None:
                    new.append(i)
                    continue
                values = head[1:]
                if (
                    with_ratings
                    and head[_RATING_AT] is None
                    and head[_RATING_AT + 1] is None
                    and (old[rated_at] is not None or old[rated_at + 1] is not None)
                ):
                    values = values[:rated_at] + old[rated_at : rated_at + 2]  # keep stored
                if driver is not None:
                    same = old[:-1] == values and (
                        old[-1] == as_json[genres[i]] or set(json.loads(old[-1])) == set(genres[i])
                    )
                else:
                    same = old == values and stored_sets.get(head[0], set()) == set(genres[i])
                if not same:
                    changed.append(i)
                    changed_rows.append((head[0], *values))

        if driver is not None:
            time_of = t.c.imported_at.type.bind_processor(conn.dialect)
            at = time_of(now) if time_of else now
            new_heads = heads if len(new) == len(heads) else [heads[i] for i in new]
            flat = list(chain.from_iterable(new_heads))
            _insert_many_sqlite(driver, "imdb_titles", columns, flat, at)
        else:
            new_rows = [heads[i] for i in new]
            store.bulk_insert(conn, t, new_rows, columns=columns, constants=stamp)
        store.bulk_update(conn, t, changed_rows, key=("imdb_id",), columns=columns, constants=stamp)
        changed_ids = [row[0] for row in changed_rows]
        for start in range(0, len(changed_ids), _IN_CHUNK):
            conn.execute(delete(g).where(g.c.imdb_id.in_(changed_ids[start : start + _IN_CHUNK])))
        # The titles whose genres are written: the new ones, then the changed ones.
        written = new + changed
        if len(written) == len(heads):
            ids_of, lists = list(map(itemgetter(0), heads)), list(map(names.__getitem__, genres))
        else:
            ids_of = [heads[i][0] for i in written]
            lists = [names[genres[i]] for i in written]
        pairs = _genre_pairs(ids_of, lists)
        if driver is not None:
            _insert_many_sqlite(driver, "imdb_title_genres", ("imdb_id", "genre"), pairs, None)
        else:
            store.bulk_insert(conn, g, list(zip(pairs[::2], pairs[1::2], strict=True)))
    return ImdbUpsertResult(
        new=len(new),
        updated=len(changed_rows),
        unchanged=len(heads) - len(new) - len(changed_rows),
        genre_rows=len(pairs) // 2,
    )


def imdb_coverage(store: Store) -> ImdbCoverage:
    """Count the TMDB movies with an IMDb id, and those whose id has a stored IMDb title."""
    m, t = schema.movies, schema.imdb_titles
    stmt = (
        select(func.count(), func.count(t.c.imdb_id))
        .select_from(m.outerjoin(t, t.c.imdb_id == m.c.imdb_id))
        .where(m.c.imdb_id.is_not(None), m.c.imdb_id != "")
    )
    with store.read() as conn:
        total, matched = conn.execute(stmt).one()
    return ImdbCoverage(movies_with_imdb_id=int(total), matched=int(matched))


def movie_imdb_ids(store: Store) -> list[str]:
    """The distinct IMDb ids TMDB movies in the store link to, sorted."""
    m = schema.movies
    stmt = (
        select(m.c.imdb_id)
        .where(m.c.imdb_id.is_not(None), m.c.imdb_id != "")
        .distinct()
        .order_by(m.c.imdb_id)
    )
    with store.read() as conn:
        return [str(v) for v in conn.execute(stmt).scalars()]


def imdb_title_count(store: Store) -> int:
    """How many IMDb titles the store holds."""
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.imdb_titles)).scalar_one())
