"""Publishing a planned version: its files, the dataset card, ``LATEST``, and the lock.

The splits are written as ``[build] images`` says (:func:`write_splits`), their posters
streamed from the posters folder (:mod:`reelset.dataset.images`) into the shard writers
(:mod:`reelset.dataset.shards`); then the other tables, the card (which reads the
manifest's ``data_files``/``webdataset_files``/``images``), ``croissant.json`` (with the
digests of every file under ``data/``) and, last, ``manifest.json``.

Every file is written with :mod:`reelset.files` (temp file, fsync, rename, fsync the
folder), parquet with the pinned options of :mod:`reelset.dataset.format`. The version
folder itself is published the same way one level up: everything is written into
``<output_dir>/<name>/.staging-<version>-<pid>/``, which is renamed to ``<version>`` at the
end; then ``LATEST`` moves. A version folder is therefore complete or absent. One build per
dataset name at a time (:func:`build_lock`); leftovers of killed builds are removed under
the lock (:func:`clean_staging`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reelset.config import Settings
from reelset.dataset import cooccurrence
from reelset.dataset.card import dataset_card
from reelset.dataset.croissant import croissant_document
from reelset.dataset.format import LEDGER_FILE, PARQUET_OPTIONS
from reelset.dataset.images import PosterReader, poster_refs, poster_source
from reelset.dataset.plan import Plan, StageClock
from reelset.dataset.shards import SplitFiles, write_parquet_shards, write_tar_shards
from reelset.dataset.versions import LABELS_FILE, MANIFEST_FILE, write_latest
from reelset.errors import LockedError, ReelsetError, StoreError, UsageError, error_line
from reelset.files import TEMP_PREFIX, atomic_path, fsync_dir, write_text

log = logging.getLogger(__name__)

CROISSANT_FILE = "croissant.json"
TABLE_WRITERS = 1
"""Threads writing the parquet tables while the posters of the splits are checked or
streamed: pyarrow encodes and compresses without the GIL."""


def write_parquet(table: pa.Table, path: Path, *, row_group_size: int) -> None:
    """Write ``table`` atomically with the pinned options."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, **PARQUET_OPTIONS)


def dump_json(data: Any) -> str:
    """Stable, readable JSON (the same data gives the same text)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def file_digest(path: Path) -> dict[str, Any]:
    """sha256 and size in bytes of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


@contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the dataset's build lock (one build per dataset name at a time)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        error = ReelsetError if exc.errno == errno.ENOSPC else UsageError
        raise error(f"cannot use the dataset folder {root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(f"another build of dataset {name!r} is running") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def clean_staging(root: Path) -> None:
    """Remove what killed builds left (only called under the build lock)."""
    for leftover in root.glob(".staging-*"):
        log.warning("removing %s, left by an interrupted build", leftover.name)
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in root.glob(f"{TEMP_PREFIX}*"):  # a LATEST that was being replaced
        leftover.unlink(missing_ok=True)


def write_plan(plan: Plan, root: Path, settings: Settings, *, now: dt.datetime) -> Path:
    """Write a planned version into a staging folder, move it into place, point LATEST at it."""
    cfg = settings.build
    staging = root / f".staging-{plan.version}-{os.getpid()}"
    final = root / plan.version
    if final.exists():
        raise StoreError(f"{final} exists already; refusing to overwrite a version")
    shutil.rmtree(staging, ignore_errors=True)
    moved = False
    try:
        clock = StageClock("write")
        (staging / "data").mkdir(parents=True)
        tables = {
            **{
                f"data/{split}.parquet": table
                for split, table in plan.splits.items()
                if cfg.images != "embed"
            },
            "removed.parquet": plan.removed,
            "poster_duplicates.parquet": plan.poster_duplicates,
            LEDGER_FILE: plan.ledger,
            "cooccurrence.parquet": plan.cooccurrence,
        }
        heatmap = _has_matplotlib()
        # Three things at once, each mostly outside the GIL while the others need it: the
        # tables are encoded and compressed by pyarrow in a thread, the baseline's
        # regressions fit (liblinear) in another, while this thread draws the heatmap and
        # checks or streams the posters. Python-heavy work is kept in this one thread: two
        # threads that both need the GIL only take turns (and slow down syscalls).
        with ThreadPoolExecutor(TABLE_WRITERS, thread_name_prefix="reelset-write") as pool:
            jobs: list[Future[None]] = [
                pool.submit(
                    write_parquet, table, staging / relpath, row_group_size=cfg.row_group_size
                )
                for relpath, table in tables.items()
            ]
            plan.start_baseline()
            clock.lap("baseline vectorized")
            if heatmap:
                cooccurrence.draw_heatmap(
                    plan.counts_all, plan.label_set.names, staging / "cooccurrence.png",
                    seed=cfg.seed,
                    title=f"{plan.content['name']} {plan.version}: P(column genre | row genre)",
                )
                clock.lap("heatmap")
            # When this fails, leaving the block still waits for the tables (their folder
            # is then removed whole); otherwise their first error is raised here.
            written = write_splits(plan, staging / "data", settings)
            clock.lap("splits' posters")
            for job in jobs:
                job.result()
            clock.lap("waiting for the tables")
        write_text(staging / LABELS_FILE, dump_json(plan.labels_doc))
        if not heatmap:
            log.warning(
                "matplotlib is not installed: cooccurrence.png skipped (the matrices are in "
                "cooccurrence.parquet; pip install 'reelset[plot]' for the heatmap)"
            )
        manifest = dict(plan.manifest)
        clock.lap("waiting for the baseline")
        manifest["heatmap"] = "cooccurrence.png" if heatmap else None
        manifest["created_at"] = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest.update(
            files_manifest(
                written, settings,
                posters_rel=_relative(settings.posters_dir, final)
                if settings.build.images == "reference" else "",
            )
        )
        write_text(staging / "README.md", dataset_card(manifest, plan.labels_doc))
        # Each file is hashed once: the data files for croissant.json, then the others.
        data_digests = _digests(staging, staging / "data", {})
        write_text(
            staging / CROISSANT_FILE,
            dump_json(croissant_document(manifest, plan.labels_doc, data_digests)),
        )
        manifest["files"] = _digests(staging, staging, data_digests)
        # Each write above synced its own folder; the manifest's syncs the staging folder.
        write_text(staging / MANIFEST_FILE, dump_json(manifest))
        clock.lap("card, croissant, digests, manifest")
        os.rename(staging, final)
        moved = True
        fsync_dir(root)
        write_latest(root, plan.version)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if moved:  # LATEST never pointed at it: the version was never published
            shutil.rmtree(final, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, a read-only or vanished folder
            why = _os_error_text(exc)
            raise ReelsetError(
                f"cannot write {plan.content['name']} {plan.version} under {root}: {why}; "
                "no version was published"
            ) from None
        raise
    return final


def write_splits(plan: Plan, data_dir: Path, settings: Settings) -> dict[str, SplitFiles]:
    """Write each split's files as ``[build] images`` says, streaming the posters.

    ``embed``: parquet shards with an ``image`` column; ``webdataset``: tar shards (the
    metadata-only ``data/<split>.parquet`` is written with the other tables);
    ``reference``: nothing here, the poster files are only checked to exist. Every split
    is read before a missing or corrupt poster fails the build (one line with the count).
    """
    cfg = settings.build
    if cfg.images == "reference" and settings.posters_url is not None:
        raise UsageError(
            '[build] images = "reference" needs a local [storage] posters_dir (the posters '
            f'are in {settings.posters_url}): use "embed" or "webdataset"'
        )
    written: dict[str, SplitFiles] = {}
    with PosterReader(
        poster_source(settings), max_side=cfg.image_max_side, quality=cfg.image_quality
    ) as reader:
        for split, table in plan.splits.items():
            if cfg.images == "reference":
                with_image, image_bytes = reader.check_references(
                    table.column("tmdb_id"), table.column("poster_file"),
                    table.column("poster_sha256"),
                )
                written[split] = SplitFiles(
                    parquet=[f"data/{split}.parquet"],
                    with_image=with_image, image_bytes=image_bytes,
                )
                log.info("%s: %d rows, %d with a poster (%d bytes)", split, table.num_rows,
                         with_image, image_bytes)
                continue
            refs = poster_refs(
                table.column("tmdb_id").to_pylist(),
                table.column("poster_file").to_pylist(),
                table.column("poster_sha256").to_pylist(),
            )
            if cfg.images == "webdataset":
                written[split] = write_tar_shards(
                    table, reader.images(refs), data_dir, split,
                    shard_max_bytes=cfg.shard_max_bytes,
                )
                written[split].parquet = [f"data/{split}.parquet"]
            else:
                written[split] = write_parquet_shards(
                    table, reader.images(refs), data_dir, split,
                    shard_max_bytes=cfg.shard_max_bytes, row_group_size=cfg.row_group_size,
                )
            log.info("%s: %d rows, %d with a poster (%d bytes)", split, table.num_rows,
                     written[split].with_image, written[split].image_bytes)
        if reader.worker_pids:
            log.info("posters resized in %d worker processes", len(reader.worker_pids))
        reader.problems.raise_if_any()
    return written


def files_manifest(
    written: dict[str, SplitFiles], settings: Settings, *, posters_rel: str
) -> dict[str, Any]:
    """The manifest's ``data_files``, ``webdataset_files`` and ``images`` entries."""
    cfg = settings.build
    images: dict[str, Any] = {
        "mode": cfg.images,
        "max_side": cfg.image_max_side,
        "quality": cfg.image_quality,
        "encoding": "jpeg" if cfg.image_max_side else "as stored",
        "with_image": {split: files.with_image for split, files in written.items()},
        "bytes": {split: files.image_bytes for split, files in written.items()},
    }
    entries: dict[str, Any] = {
        "data_files": {split: files.parquet for split, files in written.items()},
    }
    if cfg.images == "webdataset":
        entries["webdataset_files"] = {split: files.tars for split, files in written.items()}
    if cfg.images == "reference":
        images["posters_dir"] = posters_rel
    entries["images"] = images
    return entries


def _digests(
    staging: Path, folder: Path, known: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """relpath -> :func:`file_digest` of every file under ``folder``, in path order
    (``known`` digests are reused)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(staging).as_posix()
            found[rel] = known[rel] if rel in known else file_digest(path)
    return found


def _relative(target: Path, version_folder: Path) -> str:
    """``target`` relative to the version folder, POSIX (never an absolute path)."""
    return Path(
        os.path.relpath(target.resolve(), version_folder.parent.resolve() / version_folder.name)
    ).as_posix()


def _has_matplotlib() -> bool:
    """Whether the ``plot`` extra (matplotlib) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _os_error_text(exc: OSError) -> str:
    """``No space left on device`` and the like, also from pyarrow's OSErrors (which carry
    the errno only in their text)."""
    code = exc.errno
    if code is None:
        found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    return os.strerror(code) if code else error_line(exc, limit=200)
