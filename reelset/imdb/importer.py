"""IMDb import: IMDb's official TSV datasets (or a cinemagoer ``s3`` database) into the store.

IMDb's web pages cannot be scraped any more, so IMDb reaches reelset only through its
non-commercial datasets: genres, ratings and vote counts per title (no plots, no
posters). :func:`import_tsv` streams ``title.basics`` (keeping the configured title
types) joined with ``title.ratings`` into ``imdb_titles``/``imdb_title_genres`` in
batches, one transaction each; it is idempotent (see :mod:`reelset.storage.imdb`).

Bad input never costs stored data: a malformed row of either file is counted, sampled
and skipped, so its title keeps what the store has; a title absent from the ratings
file keeps its stored rating; a file with no data rows changes nothing, and the summary
says so in ``notes``.

Every import is one recorded run (command ``imdb import``, :mod:`reelset.runs`) holding
the store's ``imdb`` lock, so two imports never interleave. SIGINT/SIGTERM stop it after
the batch being written; the batches written are kept and a rerun converges.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from reelset.console import progress
from reelset.errors import UsageError
from reelset.garbage import no_cyclic_gc
from reelset.imdb.tsv import (
    BASICS_COLUMNS,
    RATINGS_COLUMNS,
    BasicsColumns,
    ParseStats,
    Ratings,
    check_header,
    iter_basics_columns,
    read_ratings,
)
from reelset.runs import IMDB_LOCK, recorded_run
from reelset.storage import Store
from reelset.storage.imdb import (
    ImdbTitleColumns,
    ImdbUpsertResult,
    imdb_coverage,
    imdb_title_count,
    upsert_imdb_titles,
)

log = logging.getLogger(__name__)

RUN_COMMAND = "imdb import"
BASICS_NAMES = ("title.basics.tsv.gz", "title.basics.tsv")
RATINGS_NAMES = ("title.ratings.tsv.gz", "title.ratings.tsv")


@dataclass
class ImportReport:
    """What an import did: rows read, titles written, malformed rows, coverage."""

    source: dict[str, str]
    title_types: list[str]
    notes: list[str] = field(default_factory=list)
    written: ImdbUpsertResult = field(default_factory=ImdbUpsertResult)
    basics: ParseStats | None = None
    ratings: ParseStats | None = None
    with_rating: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    run_id: int | None = None

    @property
    def malformed(self) -> int:
        """Malformed rows skipped, over all files."""
        return sum(s.malformed for s in (self.basics, self.ratings) if s is not None)

    def counts(self) -> dict[str, Any]:
        """The figures of the run (for ``scrape_runs.counts`` and the summary)."""
        data: dict[str, Any] = {
            "titles_new": self.written.new,
            "titles_updated": self.written.updated,
            "titles_unchanged": self.written.unchanged,
            "genre_rows_written": self.written.genre_rows,
            "titles_with_rating": self.with_rating,
        }
        if self.basics is not None:
            data["basics_rows"] = self.basics.rows
            data["basics_kept"] = self.basics.kept
            data["basics_rows_cleaned"] = self.basics.cleaned
        if self.ratings is not None:
            data["ratings_rows"] = self.ratings.rows
            data["ratings_kept"] = self.ratings.kept
        data.update(self.extra)
        data["malformed_rows"] = self.malformed
        return data

    def note(self, text: str) -> None:
        """Record something the operator should know (in the summary; logged as a warning)."""
        log.warning("%s", text)
        self.notes.append(text)

    def summary(self) -> dict[str, Any]:
        """Everything for ``print_summary``."""
        samples = [s for st in (self.basics, self.ratings) if st is not None for s in st.samples]
        return {
            "run_id": self.run_id,
            **self.source,
            "title_types": self.title_types,
            **self.counts(),
            "notes": self.notes,
            "malformed_samples": samples,
            "coverage": self.coverage,
            "elapsed_s": round(self.elapsed_s, 1),
        }


def _find(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def resolve_import_files(
    directory: Path | None, basics: Path | None, ratings: Path | None
) -> tuple[Path, Path | None]:
    """The basics and (optional) ratings files of an import, from a folder or options."""
    if directory is not None:
        if basics is not None or ratings is not None:
            raise UsageError("give either a folder or --basics/--ratings, not both")
        if not directory.is_dir():
            raise UsageError(f"{directory}: not a folder")
        found = _find(directory, BASICS_NAMES)
        if found is None:
            raise UsageError(f"{directory}: no {' or '.join(BASICS_NAMES)} in this folder")
        return found, _find(directory, RATINGS_NAMES)
    if basics is None:
        raise UsageError("name a folder of IMDb dataset files, or --basics FILE")
    for path in (basics, ratings):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: no such file")
    return basics, ratings


def _nothing_in(stats: ParseStats, consequence: str, *, of: str = "") -> str:
    """The note for a file that gave no usable row: why, and what it means."""
    if not stats.rows:
        return f"{stats.file} has no data rows: {consequence}"
    what = f"rows of the title types {of}" if of else "rows"
    rows = f"{stats.rows:,} data row{'' if stats.rows == 1 else 's'}"
    bad = f"{stats.malformed:,} malformed"
    return f"{stats.file} has no usable {what} ({rows}, {bad}): {consequence}"


def _titles(columns: BasicsColumns, ratings: Ratings | None) -> tuple[ImdbTitleColumns, int]:
    """The batch's titles with their ratings (if a ratings file is read), and how many are rated."""
    numbers, ids, types, primary, original, adult, year, runtime, genres = columns
    # Column by column: a first import writes them without a tuple per title.
    heads: list[list[Any]] = [ids, types, primary, original, adult, year, runtime]
    if ratings is None:
        return ImdbTitleColumns(heads, genres), 0
    rating, votes, rated = ratings.lookup_columns(numbers)
    return ImdbTitleColumns([*heads, rating, votes], genres), rated


def import_tsv(
    store: Store,
    basics: Path,
    ratings: Path | None,
    *,
    title_types: list[str],
    batch_size: int,
) -> ImportReport:
    """Import ``title.basics`` (+ ``title.ratings``) into the store; returns the report.

    Both headers are checked before anything is written (an empty file is refused). A
    title the ratings file does not list, or lists in a malformed row, keeps its stored
    rating; without a ratings file, or with one without usable rows, no stored rating
    changes. A file without usable rows is named in ``report.notes``. Titles are written
    ``batch_size`` per transaction; an interrupted import keeps its finished batches and
    a rerun converges. The import is a recorded run under the ``imdb`` lock (see the
    module docstring; :class:`~reelset.errors.LockedError` while another import runs).
    """
    started = time.monotonic()
    check_header(basics, BASICS_COLUMNS)
    if ratings is not None:
        check_header(ratings, RATINGS_COLUMNS)
    source = {"basics_file": str(basics), "ratings_file": str(ratings) if ratings else "-"}
    report = ImportReport(source=source, title_types=list(title_types))
    params = {**source, "title_types": list(title_types), "batch_size": batch_size}
    # Millions of short-lived containers and no cycles: the cyclic GC cost 2.0 s of CPU
    # in a full-size first import and 2.9 s in a re-import (measured with gc.callbacks).
    with (
        no_cyclic_gc(),
        recorded_run(store, RUN_COMMAND, params, locks=(IMDB_LOCK,)) as run,
    ):
        report.run_id = run.run_id
        table: Ratings | None = None
        if ratings is not None:
            report.ratings = ParseStats(ratings.name)
            with progress(
                f"reading {ratings.name}", ratings.stat().st_size, unit="B", bytes_=True
            ) as bar:
                table = read_ratings(ratings, report.ratings, on_bytes=bar.advance)
            if table.duplicates:
                report.extra["ratings_duplicate_ids"] = table.duplicates
            if not len(table):
                report.note(_nothing_in(report.ratings, "no stored rating was changed"))
                table = None  # the same as no ratings file: stored ratings stay
            run.raise_if_stopped()
        else:
            report.note("no title.ratings file: stored ratings and vote counts stay as they are")
        report.basics = ParseStats(basics.name)

        # Into an empty store, a batch whose ids all follow those of the batches before
        # (IMDb's file is sorted by id) holds no stored title: the store is not asked.
        highest = -1 if imdb_title_count(store) == 0 else None

        def write(batch: tuple[BasicsColumns, bool]) -> None:
            columns, all_new = batch
            titles, rated = _titles(columns, table)
            report.written += upsert_imdb_titles(
                store, titles, with_ratings=table is not None, all_new=all_new
            )
            report.with_rating += rated
            run.counts = report.counts()

        def fresh(columns: BasicsColumns) -> tuple[BasicsColumns, bool]:
            nonlocal highest
            if highest is None:
                return columns, False
            all_new = min(columns.number) > highest
            highest = max(columns.number) if all_new else None
            return columns, all_new

        with (
            progress(
                f"importing {basics.name}", basics.stat().st_size, unit="B", bytes_=True
            ) as bar,
            BackgroundWriter(write) as writer,
        ):
            batch: list[list[Any]] = [[] for _ in BasicsColumns._fields]  # column by column
            for columns in iter_basics_columns(
                basics, title_types, report.basics, on_bytes=bar.advance
            ):
                for column, more in zip(batch, cast(tuple[list[Any], ...], columns), strict=True):
                    column.extend(more)
                while len(batch[0]) >= batch_size:
                    # Stopping drops the queued batches; the one being written finishes.
                    run.raise_if_stopped()
                    writer.submit(fresh(BasicsColumns._make(c[:batch_size] for c in batch)))
                    for column in batch:
                        del column[:batch_size]
            run.raise_if_stopped()
            if batch[0]:
                writer.submit(fresh(BasicsColumns._make(batch)))
        store.genre_map.sync()  # [genres] imdb_to_tmdb and the IMDb genres stored now
        if not report.basics.kept:
            report.note(
                _nothing_in(report.basics, "no title was changed", of=", ".join(title_types))
            )
        report.coverage = imdb_coverage(store).as_dict()
        report.elapsed_s = time.monotonic() - started
        run.counts = report.counts()
    return report


_Batch = TypeVar("_Batch")


class BackgroundWriter(Generic[_Batch]):
    """Writes batches in a thread while the caller parses the next ones.

    The database drivers release the GIL while SQLite or PostgreSQL work, so writing and
    parsing overlap. At most ``depth`` batches wait. An error in the writer is raised in
    the caller at its next :meth:`submit` (or on leaving the ``with``); when the caller
    fails or is interrupted, batches not yet started are dropped and the one being
    written finishes its transaction.
    """

    def __init__(self, write: Callable[[_Batch], None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[_Batch] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imdb-write", daemon=True)

    def __enter__(self) -> BackgroundWriter[_Batch]:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._abort.set()
        self._queue.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise()

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            if self._error is not None or self._abort.is_set():
                continue  # drain, so submit() never blocks on a dead writer
            try:
                self._write(entry[0])
            except BaseException as exc:
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, batch: _Batch) -> None:
        """Queue a batch (waits while ``depth`` batches are queued)."""
        self._raise()
        self._queue.put((batch,))
