"""``reelset build``: the store -> the next version of a dataset.

Orchestration only. Under the dataset's build lock (a dry run takes none): read the
store in one consistent snapshot (:mod:`reelset.dataset.read`), compute the whole
version in memory (:mod:`reelset.dataset.plan`), and when its fingerprint differs from
the latest version's, publish it (:mod:`reelset.dataset.publish`: a staging folder
renamed into place, then ``LATEST`` moves); when it equals it, the build is
``unchanged`` and writes nothing.

For an object-storage ``output_dir`` (:mod:`reelset.dataset.remote`) the version is
written into a local temporary folder the same way, then uploaded with
``manifest.json`` last, then ``LATEST`` moves. The build lock is then the store's run
lock for the dataset's URL (a local file lock cannot exclude other machines).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from reelset.config import Settings
from reelset.dataset.baseline import HEAVY_MODULES
from reelset.dataset.format import LEDGER_FILE, LEDGER_SCHEMA
from reelset.dataset.load import read_parquet
from reelset.dataset.plan import Plan, plan_build, read_ledger
from reelset.dataset.publish import build_lock, clean_staging, write_plan
from reelset.dataset.read import read_store
from reelset.dataset.remote import (
    Folder,
    RemotePath,
    clean_leftovers,
    lock_name,
    publish_version,
)
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import (
    VERSION_RE,
    check_name,
    latest,
    next_version,
    read_manifest,
    versions,
    write_latest,
)
from reelset.errors import LockedError, UsageError
from reelset.runs import Run, recorded_run, stop_on_signals
from reelset.storage import Store

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """What a build did: ``built``, ``unchanged`` or ``dry-run``."""

    name: str
    status: str
    version: str | None
    parent_version: str | None
    path: Folder | None
    fingerprint: str
    rows: dict[str, int]
    removed: dict[str, int]
    labels: list[str]
    dropped_genres: list[str]
    poster_duplicates: dict[str, int]
    splits: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The summary the CLI prints (text or JSON)."""
        return {
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "parent_version": self.parent_version,
            "path": str(self.path) if self.path else None,
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "removed": self.removed,
            "labels": self.labels,
            "dropped_genres": self.dropped_genres,
            "poster_duplicates": self.poster_duplicates,
            "splits": self.splits,
        }


def build_dataset(
    settings: Settings,
    *,
    name: str | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> BuildResult:
    """Build the next version of a dataset from the store (see the module docstring).

    A build (not a dry run) is a recorded run, command ``build`` (:mod:`reelset.runs`),
    beside its dataset's build lock. SIGINT/SIGTERM interrupt a build at once: what is
    half-written is thrown away whole (no version is left behind), exit 130.
    """
    name = check_name(name or settings.build.name)
    root = settings.output_dir / name
    if isinstance(root, RemotePath) and settings.build.images == "reference":
        raise UsageError(
            'images = "reference" needs a local output_dir (a version in object storage '
            'cannot point at a posters folder): use "embed" or "webdataset"'
        )
    if dry_run:
        with (
            stop_on_signals(threading.Event(), at_once=True),
            Store.open(settings, upgrade=False) as store,
        ):
            return _build(store, settings, name, root, dry_run=True, now=now)
    locks = (lock_name(root),) if isinstance(root, RemotePath) else ()
    try:
        with (
            build_lock(root, name) if isinstance(root, Path) else contextlib.nullcontext(),
            Store.open(settings, upgrade=False) as store,
            recorded_run(store, "build", {"name": name}, locks=locks, at_once=True) as run,
        ):
            return _locked_build(store, run, settings, name, root, now=now)
    except LockedError as exc:
        if not locks:
            raise
        raise LockedError(
            f"another build of dataset {name!r} to {root} is running ({exc})"
        ) from None


def _locked_build(
    store: Store, run: Run, settings: Settings, name: str, root: Folder, *,
    now: dt.datetime | None,
) -> BuildResult:
    """The build under its lock, as a recorded run."""
    store.genre_map.sync(settings.genres.imdb_to_tmdb)  # for the genre_agreement view
    if isinstance(root, RemotePath):
        clean_leftovers(root, VERSION_RE)
    else:
        clean_staging(root)
    newest = versions(root)
    if newest and latest(root) != newest[-1]:
        write_latest(root, newest[-1])  # a build died between rename and pointer
    result = _build(store, settings, name, root, dry_run=False, now=now)
    run.counts = {"result": result.status, "version": result.version, "rows": result.rows}
    return result


def _build(
    store: Store,
    settings: Settings,
    name: str,
    root: Folder,
    *,
    dry_run: bool,
    now: dt.datetime | None,
) -> BuildResult:
    parent = latest(root)
    parent_folder = root / parent if parent else None
    version: str | None = next_version(root)
    assert version is not None
    # Modules the plan and the writing need later, imported meanwhile: while the store
    # is read (a child process on SQLite) this process mostly waits.
    threading.Thread(target=_import_heavy_modules, name="reelset-imports", daemon=True).start()
    snapshot = read_store(store)
    plan = plan_build(
        snapshot, settings, name=name, version=str(version), parent=parent,
        ledger=_ledger(parent_folder),
    )
    # The plan holds its own copies of what it writes: the store's tables can go before
    # the writing starts, which then has their memory for its buffers.
    del snapshot
    pa.default_memory_pool().release_unused()
    status = "dry-run" if dry_run else "built"
    path: Folder | None = None
    if parent_folder is not None and read_manifest(parent_folder).get("fingerprint") == (
        plan.fingerprint
    ):
        # The baseline is never trained for an unchanged build: nothing would show it.
        status, version, path = "unchanged", parent, parent_folder
        log.info("dataset %s unchanged since %s", name, parent)
    elif dry_run:
        plan.manifest  # noqa: B018  (a dry run runs every step: the baseline too)
    else:
        when = now or dt.datetime.now(dt.UTC)
        if isinstance(root, RemotePath):
            path = _publish_remote(plan, root, settings, now=when)
        else:
            path = write_plan(plan, root, settings, now=when)
        log.info("dataset %s %s written to %s", name, version, path)
    m = plan.content
    return BuildResult(
        name=name,
        status=status,
        version=version,
        parent_version=plan.parent if status != "unchanged" else None,
        path=path,
        fingerprint=plan.fingerprint,
        rows={k: m["rows"][k] for k in ("store_movies", "active", *SPLITS, "total")},
        removed=m["removed"],
        labels=plan.label_set.names,
        dropped_genres=[d["name"] for d in plan.label_set.dropped],
        poster_duplicates={k: m["poster_duplicates"][k] for k in
                           ("sha256", "phash", "references_dropped")},
        splits={k: m["splits"][k] for k in
                ("kept_from_ledger", "inherited_from_duplicates", "newly_assigned")},
    )


def _import_heavy_modules() -> None:
    """Import scikit-learn and matplotlib (Agg, as the heatmap uses it), when installed."""
    for name in (*HEAVY_MODULES, "sklearn.cluster", "matplotlib"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if name == "matplotlib":
            module.use("Agg")
            importlib.import_module("matplotlib.pyplot")


def _ledger(parent_folder: Folder | None) -> pa.Table:
    """The parent version's split ledger (empty without a parent)."""
    if not isinstance(parent_folder, RemotePath):
        return read_ledger(parent_folder)
    ledger = parent_folder / LEDGER_FILE
    if not ledger.is_file():
        return LEDGER_SCHEMA.empty_table()
    return read_parquet(ledger).cast(LEDGER_SCHEMA)


def _publish_remote(
    plan: Plan, root: RemotePath, settings: Settings, *, now: dt.datetime
) -> RemotePath:
    """Write the version into a local temporary folder (the same bytes as a local build),
    upload it with ``manifest.json`` last, then move ``LATEST``."""
    target = root / plan.version
    with tempfile.TemporaryDirectory(prefix="reelset-build-") as tmp:
        local = write_plan(plan, Path(tmp), settings, now=now)
        publish_version(local, target)
    write_latest(root, plan.version)
    return target
