"""The movies a sandbox serves: a bundled sample, a file, a list, or a synthetic generator.

A :class:`Catalog` answers everything the server needs (details by id, popularity order,
discover queries, IMDb look-ups, change history, export lines, which picture a file name
is) and can be changed while a server runs (:meth:`Catalog.update_movie`,
:meth:`Catalog.remove_movie`, :meth:`Catalog.add_movie`); each change is recorded with a
time so ``/3/movie/changes`` reports it.

Catalog file format (:meth:`Catalog.from_file`, :func:`write_catalog_file`): UTF-8 text, one
JSON object per line, gzip-compressed when the file starts with the gzip magic bytes. Each
object is a movie as TMDB returns it for ``/3/movie/{id}?append_to_response=keywords``
(movie-details fields plus ``"keywords": {"keywords": [{"id", "name"}]}``); missing fields
get TMDB-like defaults and ``genre_ids`` may stand in for ``genres``. The optional key
``"_sandbox_poster_file"`` names a JPEG in the posters directory (by default ``posters/``
beside the file) whose bytes are served for that movie's ``poster_path``.

Sorting and filtering use compact numpy columns (id, popularity, release day, adult,
votes), so a synthetic catalog of a million movies never materializes its movies: a movie
is generated when it is asked for.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from reelset.sandbox.movie_shapes import (
    POSTER_FILE_KEY,
    Movie,
    apply_fields,
    normalize_record,
)
from reelset.sandbox.poster_faults import ImageFault
from reelset.sandbox.synthetic import (
    MISSING_DAY,
    MovieColumns,
    index_for_image,
    indexes_for_imdb_id,
    iso_to_day,
    synthetic_columns,
    synthetic_record,
    synthetic_title,
)

if TYPE_CHECKING:
    from reelset.sandbox.fault_catalogs import PosterFaultCatalog

PAGE_SIZE = 20

SORT_KEYS: tuple[str, ...] = (
    "popularity.desc",
    "popularity.asc",
    "primary_release_date.desc",
    "primary_release_date.asc",
    "release_date.desc",
    "release_date.asc",
    "vote_count.desc",
    "vote_count.asc",
    "vote_average.desc",
    "vote_average.asc",
)

_QUERY_CACHE_SIZE = 16
_NO_DATE_LAST = np.iinfo(np.int64).max


class _Source(Protocol):
    """Where a catalog's original movies come from (never changed after creation)."""

    def size(self) -> int: ...

    def columns(self) -> MovieColumns: ...

    def record(self, row: int) -> Movie: ...

    def export_fields(self, row: int) -> tuple[str, bool]: ...

    def rows_for_imdb(self, imdb_id: str) -> list[int]: ...

    def row_for_image(self, file_name: str) -> int | None: ...


def _column_values(record: Mapping[str, Any]) -> tuple[int, float, int, bool, int, float]:
    return (
        int(record["id"]),
        float(record["popularity"]),
        iso_to_day(record["release_date"] or ""),
        bool(record["adult"]),
        int(record["vote_count"]),
        float(record["vote_average"]),
    )


class _ListSource:
    """Movies held as records in memory (bundled sample, files, explicit lists)."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        normalized = sorted((normalize_record(r) for r in records), key=lambda r: r["id"])
        for before, after in pairwise(normalized):
            if before["id"] == after["id"]:
                raise ValueError(f"duplicate movie id {after['id']} in catalog")
        self._records = normalized
        self._by_imdb: dict[str, list[int]] = {}
        self._by_image: dict[str, int] = {}
        for row, record in enumerate(normalized):
            if record["imdb_id"]:
                self._by_imdb.setdefault(record["imdb_id"], []).append(row)
            for key in ("poster_path", "backdrop_path"):
                if record[key]:
                    self._by_image.setdefault(record[key].lstrip("/"), row)

    def size(self) -> int:
        return len(self._records)

    def columns(self) -> MovieColumns:
        values = [_column_values(r) for r in self._records]
        return MovieColumns(
            np.array([v[0] for v in values], dtype=np.int64),
            np.array([v[1] for v in values], dtype=np.float64),
            np.array([v[2] for v in values], dtype=np.int64),
            np.array([v[3] for v in values], dtype=np.bool_),
            np.array([v[4] for v in values], dtype=np.int64),
            np.array([v[5] for v in values], dtype=np.float64),
        )

    def record(self, row: int) -> Movie:
        return self._records[row]

    def export_fields(self, row: int) -> tuple[str, bool]:
        record = self._records[row]
        return str(record["original_title"]), bool(record["video"])

    def rows_for_imdb(self, imdb_id: str) -> list[int]:
        return list(self._by_imdb.get(imdb_id, ()))

    def row_for_image(self, file_name: str) -> int | None:
        return self._by_image.get(file_name)


class _SyntheticSource:
    """Movies generated on demand from ``(seed, index)``."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 0:
            raise ValueError("a synthetic catalog needs n >= 0 movies")
        self.n = n
        self.seed = seed

    def size(self) -> int:
        return self.n

    def columns(self) -> MovieColumns:
        return synthetic_columns(self.seed, self.n)

    def record(self, row: int) -> Movie:
        return synthetic_record(self.seed, row)

    def export_fields(self, row: int) -> tuple[str, bool]:
        return synthetic_title(self.seed, row), False

    def rows_for_imdb(self, imdb_id: str) -> list[int]:
        return indexes_for_imdb_id(self.seed, self.n, imdb_id)

    def row_for_image(self, file_name: str) -> int | None:
        return index_for_image(self.seed, self.n, file_name)


@dataclass(frozen=True)
class ImageTarget:
    """What a poster/backdrop file name stands for.

    ``kind`` is ``"real"`` (``data`` holds a loader of the real JPEG bytes), ``"synthetic"``
    (render a picture for ``title``; ``backdrop`` tells the aspect) or ``"fault"``.
    """

    kind: str
    file_name: str
    title: str = ""
    backdrop: bool = False
    data: Callable[[], bytes] | None = None
    fault: ImageFault | None = None


@dataclass(frozen=True)
class ResultPage:
    """One page of a list query: the movie records on it and the total count."""

    records: list[Movie]
    total_results: int


def _to_datetime(when: datetime | date | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


def _read_lines(raw: bytes) -> Iterator[Movie]:
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"catalog line {number} is not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"catalog line {number} is not a JSON object")
        yield obj


def write_catalog_file(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write movie records in the catalog file format (gzip when ``path`` ends in .gz).

    The output is byte-for-byte reproducible (sorted keys, no gzip timestamp).
    """
    text = "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
        for r in records
    )
    data = text.encode("utf-8")
    target = Path(path)
    if target.suffix == ".gz":
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as gz:
            gz.write(data)
        data = buffer.getvalue()
    target.write_bytes(data)


class Catalog:
    """A mutable, thread-safe set of movies served by a :class:`~reelset.sandbox.Sandbox`.

    Make one with :meth:`bundled`, :meth:`from_file`, :meth:`from_movies` or
    :meth:`synthetic`.
    """

    def __init__(self, source: _Source, description: str) -> None:
        self._source = source
        self.description = description
        self._lock = threading.RLock()
        self._cols = source.columns()
        self._n_base = source.size()
        self._present = np.ones(self._n_base, dtype=np.bool_)
        self._overrides: dict[int, Movie] = {}
        self._added_rows: dict[int, int] = {}
        self._imdb_overlay: dict[str, set[int]] = {}
        self._image_overlay: dict[str, int] = {}
        self._changes: list[tuple[datetime, int]] = []
        self._version = 0
        self._orders: dict[tuple[str, int], npt.NDArray[np.int64]] = {}
        self._queries: OrderedDict[tuple[Any, ...], npt.NDArray[np.int64]] = OrderedDict()
        self._image_faults: dict[str, ImageFault] = {}
        self._real_images: dict[str, Callable[[], bytes]] = {}

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def bundled(cls) -> Catalog:
        """The bundled sample of 300 real movies (TMDB 5000 data, 20 with real posters)."""
        data_dir = resources.files("reelset.sandbox").joinpath("data")
        raw = data_dir.joinpath("catalog.json.gz").read_bytes()
        catalog = cls(_ListSource(_read_lines(raw)), "bundled sample")
        catalog._register_poster_files(data_dir.joinpath("posters"))
        return catalog

    @classmethod
    def from_file(cls, path: str | Path, posters_dir: str | Path | None = None) -> Catalog:
        """Load a catalog file (see the module docstring for the format)."""
        source_path = Path(path)
        try:
            raw = source_path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read catalog {source_path}: {exc.strerror}") from None
        try:
            catalog = cls(_ListSource(_read_lines(raw)), f"catalog file {source_path.name}")
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"catalog {source_path} has a malformed movie: {exc!r}") from None
        folder = Path(posters_dir) if posters_dir else source_path.parent / "posters"
        catalog._register_poster_files(folder)
        return catalog

    @classmethod
    def from_movies(cls, movies: Iterable[Mapping[str, Any]]) -> Catalog:
        """A catalog of the given movie records (see :func:`movie_record`)."""
        return cls(_ListSource(movies), "movie list")

    @classmethod
    def synthetic(cls, n: int, seed: int = 0) -> Catalog:
        """``n`` deterministic synthetic movies, generated lazily (a million is fine)."""
        return cls(_SyntheticSource(n, seed), f"synthetic catalog of {n} movies (seed {seed})")

    def _register_poster_files(self, folder: Traversable) -> None:
        for row in range(self._n_base):
            record = self._source.record(row)
            file_name = record.get(POSTER_FILE_KEY)
            if file_name and record["poster_path"]:
                path = folder.joinpath(file_name)
                if not path.is_file():
                    raise ValueError(
                        f"poster file {file_name!r} of movie {record['id']} not found in {folder}"
                    )
                self._real_images[record["poster_path"].lstrip("/")] = path.read_bytes

    def copy(self) -> Catalog:
        """An independent copy (shares only the immutable original movies)."""
        with self._lock:
            other = Catalog.__new__(Catalog)
            other.__dict__.update(self.__dict__)
            other._lock = threading.RLock()
            other._cols = self._cols.copy()
            other._present = self._present.copy()
            other._overrides = copy.deepcopy(self._overrides)
            other._added_rows = dict(self._added_rows)
            other._imdb_overlay = {k: set(v) for k, v in self._imdb_overlay.items()}
            other._image_overlay = dict(self._image_overlay)
            other._changes = list(self._changes)
            other._orders = {}
            other._queries = OrderedDict()
            other._image_faults = dict(self._image_faults)
            other._real_images = dict(self._real_images)
            return other

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return int(self._present.sum())

    def __contains__(self, tmdb_id: object) -> bool:
        return isinstance(tmdb_id, int) and self._row(tmdb_id) is not None

    @property
    def version(self) -> int:
        """Increases with every change; cached answers are keyed by it."""
        return self._version

    def _row(self, tmdb_id: int, *, include_removed: bool = False) -> int | None:
        with self._lock:
            row = self._added_rows.get(tmdb_id)
            if row is None:
                base_ids = self._cols.ids[: self._n_base]
                pos = int(np.searchsorted(base_ids, tmdb_id))
                if pos >= self._n_base or int(base_ids[pos]) != tmdb_id:
                    return None
                row = pos
            if not include_removed and not self._present[row]:
                return None
            return row

    def _record(self, row: int) -> Movie:
        override = self._overrides.get(row)
        return override if override is not None else self._source.record(row)

    def record(self, tmdb_id: int) -> Movie | None:
        """The stored record of a movie (details plus keywords), or None if absent.

        The returned dict must not be modified; use :meth:`get_movie` for a private copy.
        """
        with self._lock:
            row = self._row(tmdb_id)
            return None if row is None else self._record(row)

    def get_movie(self, tmdb_id: int) -> Movie | None:
        """A copy of a movie's record, or None if the catalog has no such movie."""
        record = self.record(tmdb_id)
        return None if record is None else copy.deepcopy(record)

    def ids(self) -> list[int]:
        """The ids of all present movies, ascending."""
        with self._lock:
            ids = self._cols.ids[self._present]
            return [int(x) for x in np.sort(ids)]

    def find_by_imdb_id(self, imdb_id: str) -> list[Movie]:
        """Records of the present movies carrying ``imdb_id`` (TMDB has a few duplicates)."""
        with self._lock:
            rows = set(self._source.rows_for_imdb(imdb_id))
            rows.update(self._imdb_overlay.get(imdb_id, ()))
            found = []
            for row in sorted(rows):
                if row < len(self._present) and self._present[row]:
                    record = self._record(row)
                    if record["imdb_id"] == imdb_id:
                        found.append(record)
            return found

    # -- list queries ------------------------------------------------------------------

    def _order(self, sort_by: str) -> npt.NDArray[np.int64]:
        key = (sort_by, self._version)
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        cols = self._cols
        field, _, direction = sort_by.rpartition(".")
        sign = -1 if direction == "desc" else 1
        if field == "popularity":
            primary: npt.NDArray[Any] = sign * cols.popularity
        elif field in ("primary_release_date", "release_date"):
            primary = np.where(
                cols.release_days == MISSING_DAY, _NO_DATE_LAST, sign * cols.release_days
            )
        elif field == "vote_count":
            primary = sign * cols.vote_count
        elif field == "vote_average":
            primary = sign * cols.vote_average
        else:
            raise ValueError(f"unsupported sort_by: {sort_by!r}")
        order = np.lexsort((cols.ids, primary)).astype(np.int64)
        self._orders = {k: v for k, v in self._orders.items() if k[1] == self._version}
        self._orders[key] = order
        return order

    def _query(
        self, key: tuple[Any, ...], build: Callable[[], npt.NDArray[np.int64]]
    ) -> npt.NDArray[np.int64]:
        full_key = (*key, self._version)
        rows = self._queries.get(full_key)
        if rows is None:
            rows = build()
            self._queries[full_key] = rows
            while len(self._queries) > _QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(full_key)
        return rows

    def _page(self, rows: npt.NDArray[np.int64], page: int, per_page: int) -> ResultPage:
        start = (page - 1) * per_page
        records = [self._record(int(row)) for row in rows[start : start + per_page]]
        return ResultPage(records, len(rows))

    def popular(self, page: int, per_page: int = PAGE_SIZE) -> ResultPage:
        """Page ``page`` (from 1) of non-adult movies by popularity, most popular first."""
        with self._lock:

            def build() -> npt.NDArray[np.int64]:
                order = self._order("popularity.desc")
                keep = self._present & ~self._cols.adult
                return order[keep[order]]

            return self._page(self._query(("popular",), build), page, per_page)

    def discover(
        self,
        *,
        page: int = 1,
        sort_by: str = "popularity.desc",
        release_gte: date | None = None,
        release_lte: date | None = None,
        include_adult: bool = False,
        per_page: int = PAGE_SIZE,
    ) -> ResultPage:
        """Page ``page`` of movies released in ``[release_gte, release_lte]``, sorted.

        With a date bound, movies without a release date are left out (as on TMDB).
        """
        if sort_by not in SORT_KEYS:
            raise ValueError(f"unsupported sort_by: {sort_by!r}")
        epoch = date(1970, 1, 1)
        gte = None if release_gte is None else (release_gte - epoch).days
        lte = None if release_lte is None else (release_lte - epoch).days
        with self._lock:

            def build() -> npt.NDArray[np.int64]:
                order = self._order(sort_by)
                days = self._cols.release_days
                keep = self._present.copy()
                if not include_adult:
                    keep &= ~self._cols.adult
                if gte is not None or lte is not None:
                    keep &= days != MISSING_DAY
                if gte is not None:
                    keep &= days >= gte
                if lte is not None:
                    keep &= days <= lte
                return order[keep[order]]

            key = ("discover", sort_by, gte, lte, include_adult)
            return self._page(self._query(key, build), page, per_page)

    # -- changes -----------------------------------------------------------------------

    def changes(self, start: date, end: date) -> list[tuple[int, bool]]:
        """``(tmdb_id, adult)`` of movies changed on a day in ``[start, end]``, by id."""
        with self._lock:
            changed = {tmdb_id for when, tmdb_id in self._changes if start <= when.date() <= end}
            result = []
            for tmdb_id in sorted(changed):
                record = self.record(tmdb_id)
                result.append((tmdb_id, bool(record["adult"]) if record else False))
            return result

    def record_change(self, tmdb_id: int, changed_at: datetime | date | None = None) -> None:
        """Record that a movie changed (without changing it), at ``changed_at`` or now."""
        with self._lock:
            self._changes.append((_to_datetime(changed_at), int(tmdb_id)))
            self._version += 1

    def update_movie(
        self,
        tmdb_id: int,
        *,
        changed_at: datetime | date | None = None,
        record_change: bool = True,
        **fields: Any,
    ) -> None:
        """Change fields of a present movie and record the change (at ``changed_at``/now).

        Fields are movie-details fields (``title="..."``, ``popularity=3.2``,
        ``release_date="2001-02-03"``, ...), ``genre_ids=[...]`` or ``keywords=[...]``.
        ``record_change=False`` edits silently (for setting a catalog up).
        Raises ``KeyError`` for an unknown movie and ``ValueError`` for an unknown field.
        """
        with self._lock:
            row = self._row(tmdb_id)
            if row is None:
                raise KeyError(tmdb_id)
            self._set_fields(row, fields)
            if record_change:
                self.record_change(tmdb_id, changed_at)

    def _set_fields(self, row: int, fields: Mapping[str, Any]) -> None:
        record = copy.deepcopy(self._record(row))
        apply_fields(record, fields)
        values = _column_values(record)
        self._overrides[row] = record
        cols = self._cols
        cols.popularity[row], cols.release_days[row], cols.adult[row] = values[1:4]
        cols.vote_count[row], cols.vote_average[row] = values[4:6]
        if record["imdb_id"]:
            self._imdb_overlay.setdefault(record["imdb_id"], set()).add(row)
        for key in ("poster_path", "backdrop_path"):
            if record[key]:
                self._image_overlay[record[key].lstrip("/")] = row
        self._version += 1

    def remove_movie(self, tmdb_id: int, *, changed_at: datetime | date | None = None) -> None:
        """Delete a movie (its details then answer 404) and record the change."""
        with self._lock:
            row = self._row(tmdb_id)
            if row is None:
                raise KeyError(tmdb_id)
            self._present[row] = False
            self.record_change(tmdb_id, changed_at)

    def add_movie(
        self, movie: Mapping[str, Any], *, changed_at: datetime | date | None = None
    ) -> None:
        """Add a movie record (e.g. from :func:`movie_record`) and record the change."""
        record = normalize_record(movie)
        tmdb_id = record["id"]
        with self._lock:
            if self._row(tmdb_id) is not None:
                raise ValueError(f"movie {tmdb_id} is already in the catalog")
            row = self._row(tmdb_id, include_removed=True)
            if row is None:
                row = len(self._present)
                values = _column_values(record)
                cols = self._cols
                cols.ids = np.append(cols.ids, values[0])
                cols.popularity = np.append(cols.popularity, values[1])
                cols.release_days = np.append(cols.release_days, values[2])
                cols.adult = np.append(cols.adult, values[3])
                cols.vote_count = np.append(cols.vote_count, values[4])
                cols.vote_average = np.append(cols.vote_average, values[5])
                self._present = np.append(self._present, True)
                self._added_rows[tmdb_id] = row
                self._overrides[row] = record
            self._present[row] = True
            self._set_fields(row, record)
            self.record_change(tmdb_id, changed_at)

    # -- images ------------------------------------------------------------------------

    def add_image(self, file_name: str, data: bytes) -> None:
        """Serve ``data`` for image file ``file_name`` (given without the leading ``/``)."""
        with self._lock:
            self._real_images[file_name] = lambda: data

    def set_image_fault(self, tmdb_id: int, fault: ImageFault, file_name: str | None = None) -> str:
        """Give a movie a poster file that misbehaves as ``fault`` describes.

        The movie's ``poster_path`` becomes ``"/" + file_name`` (a generated name when none
        is given); no change is recorded. Returns the file name.
        """
        with self._lock:
            row = self._row(tmdb_id)
            if row is None:
                raise KeyError(tmdb_id)
            name = file_name or f"sandbox-fault-{fault.kind}-{tmdb_id}.jpg"
            self._set_fields(row, {"poster_path": "/" + name})
            self._image_faults[name] = fault
            return name

    def with_image_faults(self, per_kind: int = 2, attempts: int = 2) -> PosterFaultCatalog:
        """A copy of this catalog where some movies have broken posters of every kind.

        See :func:`reelset.sandbox.fault_catalogs.poster_fault_catalog`.
        """
        from reelset.sandbox.fault_catalogs import poster_fault_catalog

        return poster_fault_catalog(self, per_kind=per_kind, attempts=attempts)

    def image_faults(self) -> dict[str, ImageFault]:
        """Poster file names that misbehave, with their fault."""
        with self._lock:
            return dict(self._image_faults)

    def resolve_image(self, file_name: str) -> ImageTarget | None:
        """What the image file ``file_name`` (no leading ``/``) is, or None if unknown."""
        with self._lock:
            fault = self._image_faults.get(file_name)
            if fault is not None:
                return ImageTarget("fault", file_name, fault=fault)
            loader = self._real_images.get(file_name)
            if loader is not None:
                return ImageTarget("real", file_name, data=loader)
            row = self._image_overlay.get(file_name)
            if row is None:
                row = self._source.row_for_image(file_name)
            if row is None:
                return None
            record = self._record(row)
            backdrop = (record["backdrop_path"] or "").lstrip("/") == file_name
            return ImageTarget("synthetic", file_name, title=record["title"], backdrop=backdrop)

    # -- daily export ------------------------------------------------------------------

    def export_lines(self, *, adult: bool = False) -> Iterator[str]:
        """Lines of TMDB's daily ID export (adult or non-adult movies), by id.

        Each line is ``{"adult":..,"id":..,"original_title":..,"popularity":..,"video":..}``.
        The catalog is read under its lock in chunks, so this may interleave with changes.
        """
        with self._lock:
            rows = np.argsort(self._cols.ids, kind="stable")
            rows = rows[self._present[rows] & (self._cols.adult[rows] == adult)]
        adult_text = "true" if adult else "false"
        chunk = 5000
        for start in range(0, len(rows), chunk):
            with self._lock:
                lines = []
                for row in (int(r) for r in rows[start : start + chunk]):
                    override = self._overrides.get(row)
                    if override is not None:
                        title, video = override["original_title"], bool(override["video"])
                    else:
                        title, video = self._source.export_fields(row)
                    lines.append(
                        f'{{"adult":{adult_text},"id":{int(self._cols.ids[row])},'
                        f'"original_title":{json.dumps(title, ensure_ascii=False)},'
                        f'"popularity":{float(self._cols.popularity[row])!r},'
                        f'"video":{"true" if video else "false"}}}'
                    )
            yield from lines
