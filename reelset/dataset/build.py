"""``reelset build``: the store -> a versioned dataset, in four steps, all vectorized.

1. dedupe (status, IMDb id, title + year + overview, overview) and 2. filters
   (:mod:`reelset.dataset.select`), then poster duplicates
   (:mod:`reelset.dataset.poster_duplicates`);
3. labels (:mod:`reelset.dataset.labels`): the label source, rare genres dropped;
4. splits (:mod:`reelset.dataset.splits`): stratified, stable across versions.

The whole plan is computed in memory first; its fingerprint decides whether anything is
written (``unchanged`` when it equals the latest version's). Writing goes to a staging
folder beside the versions, renamed into place at the end, then ``LATEST`` moves. One
build per dataset name at a time (a lock file in the dataset folder).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import importlib.metadata
import logging
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelset import __version__
from reelset.config import Settings
from reelset.dataset import cooccurrence
from reelset.dataset.labels import (
    LabelSet,
    agreement,
    build_label_set,
    genre_counts_per_movie,
    genre_sources,
    label_lists,
    multi_hot,
)
from reelset.dataset.poster_duplicates import find_poster_duplicates
from reelset.dataset.publish import (
    FORMAT,
    data_schema,
    dataset_card,
    dump_json,
    file_digest,
    fingerprint,
    write_parquet,
    write_text,
)
from reelset.dataset.read import StoreSnapshot, read_store
from reelset.dataset.select import DEDUPE_RULES, RULES, select_movies
from reelset.dataset.splits import SPLITS, assign_splits
from reelset.dataset.versions import (
    MANIFEST_FILE,
    check_name,
    fsync_dir,
    latest,
    next_version,
    versions,
    write_latest,
)
from reelset.errors import LockedError, StoreError, UsageError
from reelset.storage import Store

log = logging.getLogger(__name__)

LEDGER_FILE = "split_assignments.parquet"
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("tmdb_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("assigned_in", pa.string(), nullable=False),
    ]
)
REMOVED_SCHEMA = pa.schema(
    [
        pa.field("tmdb_id", pa.int64(), nullable=False),
        pa.field("imdb_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.int64()),
    ]
)
LIBRARIES = (
    "pyarrow",
    "pandas",
    "numpy",
    "scikit-learn",
    "iterative-stratification",
    "matplotlib",
    "sqlalchemy",
)


@dataclass
class Plan:
    """A dataset version computed in memory, before anything is written."""

    version: str
    parent: str | None
    splits: dict[str, pa.Table]
    removed: pa.Table
    poster_duplicates: pa.Table
    ledger: pa.Table
    cooccurrence: pa.Table
    counts_all: npt.NDArray[np.int64]
    label_set: LabelSet
    labels_doc: dict[str, Any]
    manifest: dict[str, Any]
    fingerprint: str


@dataclass
class BuildResult:
    """What a build did: ``built``, ``unchanged`` or ``dry-run``."""

    name: str
    status: str
    version: str | None
    parent_version: str | None
    path: Path | None
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


# -- the plan -------------------------------------------------------------------------------


def _lookup(sorted_ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.bool_]
]:
    """Positions of ``wanted`` in ``sorted_ids`` and whether each was found."""
    if not len(sorted_ids):
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
    return pos.astype(np.int64), sorted_ids[pos] == wanted


def _take(column: pa.ChunkedArray, positions: npt.NDArray[np.int64], found: Any) -> pa.Array:
    """``column`` at ``positions``, null where not ``found``."""
    index = pa.array(positions, type=pa.int64(), mask=~np.asarray(found, dtype=bool))
    return column.take(index).combine_chunks() if len(positions) else pa.nulls(0, column.type)


def read_ledger(folder: Path | None) -> pa.Table:
    """The split ledger of a version (empty when there is none)."""
    if folder is None or not (folder / LEDGER_FILE).is_file():
        return LEDGER_SCHEMA.empty_table()
    return pq.read_table(folder / LEDGER_FILE).cast(LEDGER_SCHEMA)


def content_settings(settings: Settings) -> dict[str, Any]:
    """The settings that shape a dataset's content (what its fingerprint covers)."""
    data = settings.public_dict()
    build = dict(data["build"])
    build.pop("output_dir", None)
    build.pop("name", None)
    return {"build": build, "genres": data["genres"]}


def plan_build(
    snapshot: StoreSnapshot,
    settings: Settings,
    *,
    name: str,
    version: str,
    parent: str | None,
    ledger: pa.Table,
) -> Plan:
    """Compute a dataset version in memory from a store snapshot."""
    cfg = settings.build
    movies = snapshot.movies
    ids = np.asarray(movies.column("tmdb_id").to_numpy(), dtype=np.int64)

    sources = genre_sources(
        movies, snapshot.movie_genres, snapshot.genres, snapshot.imdb_genres,
        settings.genres.imdb_to_tmdb,
    )
    pairs = sources.pairs(cfg.label_source)
    source_counts = genre_counts_per_movie(ids, pairs)
    poster_ids = np.asarray(snapshot.posters.column("tmdb_id").to_numpy(), dtype=np.int64)
    poster_pos, has_poster = _lookup(poster_ids, ids)

    # 1 + 2: dedupe and filters.
    selection = select_movies(
        movies,
        cfg,
        source_genre_counts=source_counts,
        has_poster=has_poster,
        inactive_ids=snapshot.inactive.column("tmdb_id").combine_chunks(),
    )
    removals = selection.removals
    rows = np.flatnonzero(selection.keep)
    log.info("dedupe and filters kept %d of %d active movies", len(rows), len(ids))

    # Poster duplicates among the movies left.
    with_poster = rows[has_poster[rows]]
    posters = snapshot.posters
    dups = find_poster_duplicates(
        ids[with_poster],
        posters.column("sha256").take(pa.array(poster_pos[with_poster])),
        posters.column("phash").take(pa.array(poster_pos[with_poster])),
        cfg.poster_phash_distance,
    )
    keep_poster = has_poster.copy()
    dropped_refs = 0
    if cfg.drop_poster_duplicates and len(dups.tmdb_ids):
        dup_rows = np.flatnonzero(np.isin(ids, dups.tmdb_ids))
        keep_poster[dup_rows] = False
        dropped_refs = len(dup_rows)
        if cfg.require_poster:
            removals.add("poster_duplicate", ids[dup_rows])
            rows = rows[~np.isin(rows, dup_rows)]

    # 3: labels.
    agree = agreement(sources, ids[rows])
    kept_pairs = pairs[pairs["tmdb_id"].isin(ids[rows])]
    label_set = build_label_set(kept_pairs, sources, cfg.label_source, cfg.min_genre_count)
    y = multi_hot(ids[rows], kept_pairs, label_set)
    lost = (source_counts[rows] > 0) & (y.sum(axis=1) == 0)
    removals.add("no_label", ids[rows[lost]])
    rows, y = rows[~lost], y[~lost]
    final_ids = ids[rows]
    if not label_set.labels:
        raise UsageError(
            f"nothing to build: none of the {len(ids) + snapshot.inactive.num_rows} movies in "
            "the store passes the dedupe, the filters and the label rules of [build]"
        )

    # 4: splits.
    ledger_ids = np.asarray(ledger.column("tmdb_id").to_numpy(), dtype=np.int64)
    ledger_codes = pd.Series(ledger.column("split").to_pylist(), dtype=object).map(
        {s: i for i, s in enumerate(SPLITS)}
    )
    valid = ledger_codes.notna().to_numpy()
    known = dict(
        zip(ledger_ids[valid].tolist(), ledger_codes[valid].astype(int).tolist(), strict=True)
    )
    aliases = _dedupe_aliases(removals.table(), known)
    fractions = (cfg.splits.train, cfg.splits.validation, cfg.splits.test)
    assignment = assign_splits(final_ids, y, fractions, cfg.seed, known, aliases)
    codes = assignment.codes

    # Tables.
    genre_ids, genre_names = label_lists(y, label_set)
    n_labels = len(label_set.labels)
    full = pa.Table.from_arrays(
        [
            pa.array(final_ids, type=pa.int64()),
            movies.column("imdb_id").take(pa.array(rows)).combine_chunks(),
            movies.column("title").take(pa.array(rows)).combine_chunks(),
            movies.column("year").take(pa.array(rows)).combine_chunks(),
            movies.column("overview").take(pa.array(rows)).combine_chunks(),
            genre_ids,
            genre_names,
            pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1), type=pa.int8()), n_labels),
            _take(posters.column("file_path"), poster_pos[rows], keep_poster[rows]),
            _take(posters.column("sha256"), poster_pos[rows], keep_poster[rows]),
            _take(posters.column("width"), poster_pos[rows], keep_poster[rows]),
            _take(posters.column("height"), poster_pos[rows], keep_poster[rows]),
            movies.column("original_language").take(pa.array(rows)).combine_chunks(),
            movies.column("popularity").take(pa.array(rows)).combine_chunks(),
            movies.column("vote_count").take(pa.array(rows)).combine_chunks(),
        ],
        schema=data_schema(n_labels),
    )
    split_tables = {
        split: full.filter(pa.array(codes == i)) for i, split in enumerate(SPLITS)
    }
    removed = _removed_table(removals.table(), snapshot)
    new_ledger = _next_ledger(ledger, final_ids, codes, version)

    cooc, scopes = cooccurrence.cooccurrence_table(
        y, codes, SPLITS, label_set.ids, label_set.names
    )
    rows_per_split = {s: split_tables[s].num_rows for s in SPLITS}
    labels_doc = _labels_doc(label_set, y, codes, cfg.label_source, cfg.min_genre_count)
    fp = fingerprint(
        {**split_tables, "removed": removed, "poster_duplicates": dups.table},
        {
            "settings": content_settings(settings),
            "labels": [lab.as_dict() for lab in label_set.labels],
        },
    )
    removed_counts = removals.counts()
    n_inactive = snapshot.inactive.num_rows
    accounted = sum(removed_counts.values()) + len(final_ids)
    if accounted != len(ids) + n_inactive:  # every movie is either kept or removed once
        raise AssertionError(f"{accounted} movies accounted for, {len(ids) + n_inactive} read")
    manifest = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "created_at": None,
        "parent_version": parent,
        "fingerprint": fp,
        "reelset_version": __version__,
        "config": settings.public_dict(),
        "store": snapshot.store,
        "rules": dict(RULES),
        "removed": removed_counts,
        "rows": {
            "store_movies": len(ids) + n_inactive,
            "active": len(ids),
            **rows_per_split,
            "total": len(final_ids),
        },
        "genre_counts": {
            scope: {lab["name"]: lab["counts"][scope] for lab in labels_doc["labels"]}
            for scope in ("all", *SPLITS)
        },
        "labels": {
            "source": cfg.label_source,
            "count": n_labels,
            "names": label_set.names,
            "dropped": label_set.dropped,
        },
        "label_agreement": agree,
        "poster_duplicates": {
            **dups.counts(),
            "max_distance": cfg.poster_phash_distance,
            "references_dropped": dropped_refs,
            "movies_removed": removed_counts["poster_duplicate"],
        },
        "splits": {
            "method": "iterative stratification (Sechidis et al. 2011), stable ledger",
            "fractions": dict(zip(SPLITS, fractions, strict=True)),
            "seed": cfg.seed,
            "kept_from_ledger": assignment.kept,
            "inherited_from_duplicates": assignment.inherited,
            "newly_assigned": assignment.assigned,
            "ledger_size": new_ledger.num_rows,
        },
        "files": {},
        "libraries": library_versions(),
    }
    return Plan(
        version=version,
        parent=parent,
        splits=split_tables,
        removed=removed,
        poster_duplicates=dups.table,
        ledger=new_ledger,
        cooccurrence=cooc,
        counts_all=scopes["all"],
        label_set=label_set,
        labels_doc=labels_doc,
        manifest=manifest,
        fingerprint=fp,
    )


def _dedupe_aliases(removed: pa.Table, known: dict[int, int]) -> dict[int, int]:
    """kept movie -> the smallest of its dedupe duplicates that has a split already."""
    if not known or not removed.num_rows:
        return {}
    frame = removed.select(["tmdb_id", "rule", "duplicate_of"]).to_pandas()
    frame = frame[frame["rule"].isin(DEDUPE_RULES) & frame["duplicate_of"].notna()]
    frame = frame[frame["tmdb_id"].isin(pd.Index(list(known)))]
    if frame.empty:
        return {}
    best = frame.groupby("duplicate_of")["tmdb_id"].min()
    return {int(k): int(v) for k, v in best.items()}


def _removed_table(removed: pa.Table, snapshot: StoreSnapshot) -> pa.Table:
    """The removals with each movie's imdb_id and title."""
    inactive = snapshot.inactive
    ids = pa.chunked_array(
        [snapshot.movies.column("tmdb_id").combine_chunks(),
         inactive.column("tmdb_id").combine_chunks()]
    )
    imdb = pa.chunked_array(
        [snapshot.movies.column("imdb_id").combine_chunks(),
         inactive.column("imdb_id").combine_chunks()]
    )
    title = pa.chunked_array(
        [snapshot.movies.column("title").combine_chunks(),
         inactive.column("title").combine_chunks()]
    )
    all_ids = np.asarray(ids.to_numpy(), dtype=np.int64)
    order = np.argsort(all_ids, kind="stable")
    wanted = np.asarray(removed.column("tmdb_id").to_numpy(), dtype=np.int64)
    pos, found = _lookup(all_ids[order], wanted)
    at = order[pos]
    return pa.Table.from_arrays(
        [
            removed.column("tmdb_id").combine_chunks(),
            _take(imdb, at, found),
            _take(title, at, found),
            removed.column("rule").combine_chunks(),
            removed.column("duplicate_of").combine_chunks(),
        ],
        schema=REMOVED_SCHEMA,
    )


def _next_ledger(
    ledger: pa.Table, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.int8], version: str
) -> pa.Table:
    """The ledger plus this version's newly placed movies, sorted by tmdb_id."""
    known = np.asarray(ledger.column("tmdb_id").to_numpy(), dtype=np.int64)
    new = ~np.isin(ids, known)
    added = pa.Table.from_arrays(
        [
            pa.array(ids[new], type=pa.int64()),
            pa.array(np.array(SPLITS, dtype=object)[codes[new]], type=pa.string()),
            pa.array([version] * int(new.sum()), type=pa.string()),
        ],
        schema=LEDGER_SCHEMA,
    )
    merged = pa.concat_tables([ledger.cast(LEDGER_SCHEMA), added])
    return merged.take(pc.sort_indices(merged, [("tmdb_id", "ascending")]))


def _labels_doc(
    label_set: LabelSet,
    y: npt.NDArray[np.int8],
    codes: npt.NDArray[np.int8],
    source: str,
    min_count: int,
) -> dict[str, Any]:
    """The content of labels.json."""
    counts = {"all": y.sum(axis=0)}
    for i, split in enumerate(SPLITS):
        counts[split] = y[codes == i].sum(axis=0)
    labels = []
    for lab in label_set.labels:
        entry = lab.as_dict()
        entry["counts"] = {scope: int(c[lab.index]) for scope, c in counts.items()}
        labels.append(entry)
    return {
        "format": FORMAT,
        "label_source": source,
        "min_genre_count": min_count,
        "labels": labels,
        "dropped": label_set.dropped,
    }


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the output."""
    found = {"python": platform.python_version(), "reelset": __version__}
    for dist in LIBRARIES:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


# -- writing ---------------------------------------------------------------------------------


@contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the dataset's build lock (one build per dataset name at a time)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
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


def _clean_staging(root: Path) -> None:
    """Remove what killed builds left (only called under the build lock)."""
    for leftover in root.glob(".staging-*"):
        log.warning("removing %s, left by an interrupted build", leftover.name)
        shutil.rmtree(leftover, ignore_errors=True)


def write_plan(plan: Plan, root: Path, settings: Settings, *, now: dt.datetime) -> Path:
    """Write a planned version into a staging folder and move it into place."""
    cfg = settings.build
    staging = root / f".staging-{plan.version}-{os.getpid()}"
    final = root / plan.version
    if final.exists():
        raise StoreError(f"{final} exists already; refusing to overwrite a version")
    shutil.rmtree(staging, ignore_errors=True)
    moved = False
    try:
        staging.mkdir(parents=True)
        for split, table in plan.splits.items():
            write_parquet(table, staging / "data" / f"{split}.parquet",
                          row_group_size=cfg.row_group_size)
        write_parquet(plan.removed, staging / "removed.parquet", row_group_size=cfg.row_group_size)
        write_parquet(plan.poster_duplicates, staging / "poster_duplicates.parquet",
                      row_group_size=cfg.row_group_size)
        write_parquet(plan.ledger, staging / LEDGER_FILE, row_group_size=cfg.row_group_size)
        write_parquet(plan.cooccurrence, staging / "cooccurrence.parquet",
                      row_group_size=cfg.row_group_size)
        write_text(staging / "labels.json", dump_json(plan.labels_doc))
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
        write_text(staging / MANIFEST_FILE, dump_json(manifest))
        fsync_dir(staging / "data")
        fsync_dir(staging)
        os.rename(staging, final)
        moved = True
        fsync_dir(root)
        write_latest(root, plan.version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if moved:  # LATEST never pointed at it: the version was never published
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def _read_manifest(folder: Path) -> dict[str, Any]:
    import json

    with open(folder / MANIFEST_FILE, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def build_dataset(
    settings: Settings,
    *,
    name: str | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> BuildResult:
    """Build the next version of a dataset from the store (see the module docstring)."""
    name = check_name(name or settings.build.name)
    root = settings.output_dir / name
    if dry_run:
        return _build(settings, name, root, dry_run=True, now=now)
    with build_lock(root, name):
        _clean_staging(root)
        newest = versions(root)
        if newest and latest(root) != newest[-1]:
            write_latest(root, newest[-1])  # a build died between rename and pointer
        return _build(settings, name, root, dry_run=False, now=now)


def _build(
    settings: Settings, name: str, root: Path, *, dry_run: bool, now: dt.datetime | None
) -> BuildResult:
    parent = latest(root)
    parent_folder = root / parent if parent else None
    version: str | None = next_version(root)
    assert version is not None
    store = Store.open(settings, upgrade=False, check=False)  # read_store checks the version
    try:
        snapshot = read_store(store)
    finally:
        store.close()
    plan = plan_build(
        snapshot, settings, name=name, version=str(version), parent=parent,
        ledger=read_ledger(parent_folder),
    )
    status = "dry-run" if dry_run else "built"
    path: Path | None = None
    if parent_folder is not None and _read_manifest(parent_folder).get("fingerprint") == (
        plan.fingerprint
    ):
        status, version, path = "unchanged", parent, parent_folder
        log.info("dataset %s unchanged since %s", name, parent)
    elif not dry_run:
        path = write_plan(plan, root, settings, now=now or dt.datetime.now(dt.UTC))
        log.info("dataset %s %s written to %s", name, version, path)
    m = plan.manifest
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
