"""``reelset posters verify``: check the poster files against the ``posters`` table, and repair.

The audit lists the posters folder (or object-storage prefix, see
:class:`~reelset.posters.filestore.PosterStore`) once, then checks every file an ``ok``
row points at: missing from the listing, a size other than the row's ``bytes``, or
bytes whose SHA-256 is not the row's ``sha256`` (re-hashed) make it missing or corrupt;
each training copy must exist and decode. The listing also gives the files no row
references (*orphans*), temporary files left by killed processes on a local disk (*stale
temp files*) and anything else (*unknown*, reported but never touched).

Repair (``--repair``) removes orphans and stale temp files, deletes corrupt files and
downloads again the posters of every movie whose file is missing or corrupt (with the
movie's current ``poster_path``), and remakes missing or corrupt training copies from
their verified originals. It must not run while another process downloads posters, or
a file written just before its row would look like an orphan: a repair is one recorded
run (command ``posters-verify``) holding both the ``scrape`` and the ``posters`` lock
(:mod:`reelset.runs`). The check alone only reads, and takes no lock.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from reelset.config import Settings
from reelset.console import progress
from reelset.errors import ReelsetError
from reelset.posters.download import ImageBaseUrlSource, PosterSummary, download_posters
from reelset.posters.filestore import (
    POSTER_NAME_RE,
    PosterStore,
    StoredFile,
    is_valid_relpath,
    temp_is_stale,
)
from reelset.posters.verify import PosterRejected, training_copy, verify_image
from reelset.runs import POSTERS_LOCK, SCRAPE_LOCK, Run, recorded_run
from reelset.storage import Store
from reelset.storage.claims import refuse_while_workers
from reelset.storage.posters import iter_ok_rows

log = logging.getLogger(__name__)

REPAIR_COMMAND = "posters-verify"
_CHECK_CHUNK = 4096
SAMPLE_LIMIT = 50
"""How many paths of each kind of problem the report lists (all are counted)."""


@dataclass
class _Expected:
    sha256: str
    tmdb_ids: list[int] = field(default_factory=list)
    resized_of: str | None = None  # for a training copy: the original's relative path
    size: int | None = None  # the row's ``bytes`` (originals only)


@dataclass
class AuditReport:
    """What ``verify`` found (and, with repair, did). ``problems`` is what is left."""

    rows: int = 0
    files_checked: int = 0
    files_ok: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    bad_rows: list[int] = field(default_factory=list)
    resized_missing: list[str] = field(default_factory=list)
    resized_corrupt: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale_temp: list[str] = field(default_factory=list)
    temp_in_progress: int = 0
    unknown: list[str] = field(default_factory=list)
    affected_movies: set[int] = field(default_factory=set)
    repaired: bool = False
    removed_orphans: int = 0
    removed_temp: int = 0
    removed_corrupt: int = 0
    resized_remade: int = 0
    redownload: PosterSummary | None = None
    unrepaired: int = 0

    @property
    def found(self) -> int:
        """Problems found by the check (before any repair)."""
        return (
            len(self.missing)
            + len(self.corrupt)
            + len(self.bad_rows)
            + len(self.resized_missing)
            + len(self.resized_corrupt)
            + len(self.orphans)
            + len(self.stale_temp)
        )

    @property
    def problems(self) -> int:
        """Problems that remain: all found ones without repair, the unrepaired ones with it."""
        return self.unrepaired if self.repaired else self.found

    def as_dict(self) -> dict[str, Any]:
        """Counts and (up to :data:`SAMPLE_LIMIT`) example paths of each kind of problem."""

        def sample(items: list[Any]) -> list[Any]:
            return sorted(items)[:SAMPLE_LIMIT]

        data: dict[str, Any] = {
            "rows_checked": self.rows,
            "files_checked": self.files_checked,
            "files_ok": self.files_ok,
            "missing": len(self.missing),
            "corrupt": len(self.corrupt),
            "bad_rows": len(self.bad_rows),
            "resized_missing": len(self.resized_missing),
            "resized_corrupt": len(self.resized_corrupt),
            "orphans": len(self.orphans),
            "stale_temp": len(self.stale_temp),
            "temp_in_progress": self.temp_in_progress,
            "unknown_files": len(self.unknown),
            "problems_found": self.found,
        }
        if self.repaired:
            data["repair"] = {
                "removed_orphans": self.removed_orphans,
                "removed_temp": self.removed_temp,
                "removed_corrupt": self.removed_corrupt,
                "resized_remade": self.resized_remade,
                "redownloaded": self.redownload.as_dict() if self.redownload else None,
                "unrepaired": self.unrepaired,
            }
        data["problems_remaining"] = self.problems
        data["examples"] = {
            "missing": sample(self.missing),
            "corrupt": sample(self.corrupt),
            "bad_rows": sample(self.bad_rows),
            "resized_missing": sample(self.resized_missing),
            "resized_corrupt": sample(self.resized_corrupt),
            "orphans": sample(self.orphans),
            "stale_temp": sample(self.stale_temp),
            "unknown_files": sample(self.unknown),
        }
        return data

    def counts(self) -> dict[str, Any]:
        """:meth:`as_dict` without the example paths: a repair run's counts."""
        data = self.as_dict()
        del data["examples"]
        return data


def _collect_expected(store: Store, report: AuditReport) -> dict[str, _Expected]:
    expected: dict[str, _Expected] = {}
    for row in iter_ok_rows(store):
        report.rows += 1
        rel = row.file_path or ""
        sha = row.sha256 or ""
        if not is_valid_relpath(rel) or not rel.split("/")[1].startswith(sha) or len(sha) != 64:
            # A row the downloader cannot have written (edited by hand?): never follow it.
            report.bad_rows.append(row.tmdb_id)
            report.affected_movies.add(row.tmdb_id)
            continue
        entry = expected.setdefault(rel, _Expected(sha, size=row.bytes))
        entry.tmdb_ids.append(row.tmdb_id)
        resized = row.resized_file_path
        if resized:
            if not is_valid_relpath(resized) or not resized.split("/")[1].startswith(sha):
                report.bad_rows.append(row.tmdb_id)
                report.affected_movies.add(row.tmdb_id)
                continue
            copy = expected.setdefault(resized, _Expected(sha, resized_of=rel))
            copy.tmdb_ids.append(row.tmdb_id)
    return expected


def _check_file(
    files: PosterStore, rel: str, entry: _Expected, listed: StoredFile | None
) -> str:
    """``ok``, ``missing`` or ``corrupt`` for one expected file (``listed``: its entry in
    the listing). A storage failure raises :class:`OSError`."""
    if listed is None:
        return "missing"
    if entry.resized_of is None:
        if listed.is_file and entry.size is not None and listed.size != entry.size:
            return "corrupt"  # no need to read it
        try:
            return "ok" if files.sha256(rel) == entry.sha256 else "corrupt"
        except FileNotFoundError:
            return "missing"
        except IsADirectoryError:
            return "corrupt"
    try:
        data = files.get(rel)
    except (FileNotFoundError, IsADirectoryError):
        return "missing"
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
            im.load()
    except (OSError, SyntaxError, ValueError):
        return "corrupt"
    return "ok"


def _list(files: PosterStore) -> dict[str, StoredFile]:
    """Everything under the root by relative path (one listing)."""
    try:
        return {entry.rel: entry for entry in files.entries()}
    except OSError as exc:
        raise ReelsetError(f"cannot list the posters in {files.location}: {exc}") from None


def _scan(
    listing: dict[str, StoredFile], expected: dict[str, _Expected], report: AuditReport
) -> None:
    for rel, entry in listing.items():
        temp = entry.temp
        if temp is not None:
            if temp_is_stale(temp):
                report.stale_temp.append(rel)
            else:
                report.temp_in_progress += 1
            continue
        if rel in expected:
            continue
        parts = rel.split("/")
        match = POSTER_NAME_RE.match(parts[-1]) if len(parts) == 2 else None
        if match and is_valid_relpath(rel) and entry.is_file:
            report.orphans.append(rel)
        else:
            report.unknown.append(rel)


def audit_posters(
    store: Store,
    settings: Settings,
    *,
    repair: bool = False,
    client: ImageBaseUrlSource | None = None,
    image_base_url: str | None = None,
    show_progress: bool = True,
) -> AuditReport:
    """Check (and with ``repair``, fix) the poster files against the ``posters`` table.

    The check only reads. A repair is one recorded run (command ``posters-verify``)
    holding the ``scrape`` and ``posters`` locks (:class:`~reelset.errors.LockedError`
    while a scrape or poster run works), ending ``partial`` when problems remain.
    SIGINT/SIGTERM stop it before the repair, or after the downloads in flight.
    ``client``/``image_base_url`` are for downloading posters again (see
    :func:`~reelset.posters.download.download_posters`).
    """
    if not repair:
        return _check(store, settings, None, show_progress)[0]
    locks = (SCRAPE_LOCK, POSTERS_LOCK)
    with recorded_run(store, REPAIR_COMMAND, {"repair": True}, locks=locks) as run:
        # Files that running workers just wrote would look like orphans until recorded.
        refuse_while_workers(store)
        report, files, expected, results = _check(store, settings, run, show_progress)
        run.counts = report.counts()
        run.raise_if_stopped()
        _repair(store, settings, files, expected, results, report, client=client,
                image_base_url=image_base_url, run=run, show_progress=show_progress)
        run.counts = report.counts()
        run.status = "partial" if report.problems else "succeeded"
    return report


def _check(
    store: Store, settings: Settings, run: Run | None, show_progress: bool
) -> tuple[AuditReport, PosterStore, dict[str, _Expected], dict[str, str]]:
    """The report of the check, with the files, what was expected and what was found."""
    files = PosterStore.for_settings(settings)
    report = AuditReport()
    expected = _collect_expected(store, report)
    # Listed after the rows: a file is written before its row, so every row read has its
    # file in the listing unless the file is really gone.
    listing = _list(files)
    workers = max(2, settings.posters.max_workers)
    results: dict[str, str] = {}
    items = list(expected.items())
    with (
        _maybe_progress("verifying posters", len(items), show_progress) as advance,
        ThreadPoolExecutor(workers, thread_name_prefix="reelset-verify") as pool,
    ):
        for start in range(0, len(items), _CHECK_CHUNK):  # a bounded number of futures
            if run is not None:
                run.raise_if_stopped()
            chunk = items[start : start + _CHECK_CHUNK]
            checked = pool.map(
                lambda kv: _check_file(files, kv[0], kv[1], listing.get(kv[0])), chunk
            )
            try:
                for (rel, _entry), result in zip(chunk, checked, strict=True):
                    results[rel] = result
                    advance()
            except OSError as exc:
                raise ReelsetError(f"cannot check the posters in {files.location}: {exc}") from None
    for rel, result in results.items():
        entry = expected[rel]
        report.files_checked += 1
        if result == "ok":
            report.files_ok += 1
            continue
        resized = entry.resized_of is not None
        if resized:
            (report.resized_missing if result == "missing" else report.resized_corrupt).append(rel)
            if results.get(entry.resized_of or "") != "ok":
                report.affected_movies.update(entry.tmdb_ids)
        else:
            (report.missing if result == "missing" else report.corrupt).append(rel)
            report.affected_movies.update(entry.tmdb_ids)
    _scan(listing, expected, report)
    if report.found:
        log.warning("posters verify: %d problem(s) found", report.found)
    return report, files, expected, results


def _remove(files: PosterStore, rel: str) -> bool:
    """Delete ``rel`` (gone already counts as done); ``False`` with a warning on failure."""
    try:
        files.delete(rel)
    except OSError as exc:
        log.warning("cannot remove %s/%s: %s", files.location, rel, exc.strerror or exc)
        return False
    return True


def _repair(
    store: Store,
    settings: Settings,
    files: PosterStore,
    expected: dict[str, _Expected],
    results: dict[str, str],
    report: AuditReport,
    *,
    client: ImageBaseUrlSource | None,
    image_base_url: str | None,
    run: Run,
    show_progress: bool,
) -> None:
    report.repaired = True
    unrepaired = 0
    for rel in report.orphans:
        if _remove(files, rel):
            report.removed_orphans += 1
        else:
            unrepaired += 1
    for rel in report.stale_temp:
        if _remove(files, rel):
            report.removed_temp += 1
        else:
            unrepaired += 1
    for rel in report.corrupt:
        if _remove(files, rel):
            report.removed_corrupt += 1
    # Training copies whose original is fine are remade locally, no download needed.
    for rel in (*report.resized_missing, *report.resized_corrupt):
        entry = expected[rel]
        original = entry.resized_of or ""
        if results.get(original) != "ok":
            continue  # the movie is downloaded again below, which makes a new copy
        if _remake_copy(files, settings, rel, original, entry):
            report.resized_remade += 1
            continue
        unrepaired += 1
    if report.affected_movies:
        summary = download_posters(
            store,
            settings,
            client=client,
            image_base_url=image_base_url,
            tmdb_ids=sorted(report.affected_movies),
            force=True,
            run=run,
            show_progress=show_progress,
        )
        report.redownload = summary
        unrepaired += summary.failed + summary.rejected
        # Files of movies that could not be had again (e.g. their training copies) and
        # files replaced by new content are referenced by no row now.
        referenced: set[str] = set()
        for row in iter_ok_rows(store):
            referenced.update(p for p in (row.file_path, row.resized_file_path) if p)
        leftovers = AuditReport()
        _scan(_list(files), {rel: _Expected("") for rel in referenced}, leftovers)
        for rel in leftovers.orphans:
            if _remove(files, rel):
                report.removed_orphans += 1
            else:
                unrepaired += 1
    report.unrepaired = unrepaired


def _remake_copy(
    files: PosterStore, settings: Settings, rel: str, original: str, entry: _Expected
) -> bool:
    match = POSTER_NAME_RE.match(rel.split("/")[1])
    side = int(match.group("side")) if match and match.group("side") else 0
    if side <= 0:
        return False
    try:
        data = files.get(original)
        verify_image(
            data,
            allowed_formats=settings.posters.allowed_formats,
            max_pixels=settings.posters.max_pixels,
        )
        jpeg, _width, _height = training_copy(
            data, max_side=side, quality=settings.posters.resize_quality
        )
        files.put(rel, jpeg)
    except (OSError, PosterRejected) as exc:
        log.warning("cannot remake training copy %s: %s", rel, exc)
        return False
    return True


@contextmanager
def _maybe_progress(description: str, total: int, show: bool) -> Iterator[Callable[[], None]]:
    if not show:
        yield lambda: None
        return
    with progress(description, total, unit="files") as bar:
        lock = threading.Lock()

        def advance() -> None:
            with lock:
                bar.advance()

        yield advance
