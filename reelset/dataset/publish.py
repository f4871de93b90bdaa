"""Publishing a planned version: its files, the dataset card, ``LATEST``, and the lock.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reelset.config import Settings
from reelset.dataset import cooccurrence
from reelset.dataset.card import dataset_card
from reelset.dataset.format import LEDGER_FILE, PARQUET_OPTIONS
from reelset.dataset.plan import Plan
from reelset.dataset.versions import LABELS_FILE, MANIFEST_FILE, write_latest
from reelset.errors import LockedError, ReelsetError, StoreError, UsageError, error_line
from reelset.files import TEMP_PREFIX, atomic_path, fsync_dir, write_text

log = logging.getLogger(__name__)


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
        (staging / "data").mkdir(parents=True)
        tables = {
            **{f"data/{split}.parquet": table for split, table in plan.splits.items()},
            "removed.parquet": plan.removed,
            "poster_duplicates.parquet": plan.poster_duplicates,
            LEDGER_FILE: plan.ledger,
            "cooccurrence.parquet": plan.cooccurrence,
        }
        for relpath, table in tables.items():
            write_parquet(table, staging / relpath, row_group_size=cfg.row_group_size)
        write_text(staging / LABELS_FILE, dump_json(plan.labels_doc))
        cooccurrence.draw_heatmap(
            plan.counts_all, plan.label_set.names, staging / "cooccurrence.png",
            seed=cfg.seed,
            title=f"{plan.manifest['name']} {plan.version}: P(column genre | row genre)",
        )
        manifest = dict(plan.manifest)
        manifest["created_at"] = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_text(staging / "README.md", dataset_card(manifest, plan.labels_doc))
        manifest["files"] = {
            path.relative_to(staging).as_posix(): file_digest(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        # Each write above synced its own folder; the manifest's syncs the staging folder.
        write_text(staging / MANIFEST_FILE, dump_json(manifest))
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
                f"cannot write {plan.manifest['name']} {plan.version} under {root}: {why}; "
                "no version was published"
            ) from None
        raise
    return final


def _os_error_text(exc: OSError) -> str:
    """``No space left on device`` and the like, also from pyarrow's OSErrors (which carry
    the errno only in their text)."""
    code = exc.errno
    if code is None:
        found = re.search(r"\[errno (\d+)\]", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    return os.strerror(code) if code else error_line(exc, limit=200)
