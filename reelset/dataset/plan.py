"""Planning a dataset version: a store snapshot and the settings -> a :class:`Plan`.

Pure and in memory: nothing here reads the store or writes a file. The steps, all
vectorized:

1. dedupe (status, IMDb id, title + year + overview, overview) and 2. filters
   (:mod:`reelset.dataset.select`), then poster duplicates
   (:mod:`reelset.dataset.poster_duplicates`);
3. labels (:mod:`reelset.dataset.labels`): the label source, rare genres dropped;
4. splits (:mod:`reelset.dataset.splits`): stratified, stable across versions (the
   previous version's split ledger is an input);
5. the text baseline (:mod:`reelset.dataset.baseline`, ``[build] baseline``): its scores
   go into the manifest; they follow from the content and settings the fingerprint
   covers, so they are not part of it. It is computed only when the manifest is asked
   for (:attr:`Plan.manifest`): a build whose fingerprint equals the latest version's
   never trains it, and publishing starts it in a background thread
   (:meth:`Plan.start_baseline`) while the files are written.

The output tables are built by column name from the schemas of
:mod:`reelset.dataset.format`; the plan's fingerprint decides whether a build writes
anything.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelset import __version__
from reelset.config import Settings
from reelset.dataset import cooccurrence
from reelset.dataset.baseline import BaselineRun, SplitData
from reelset.dataset.format import (
    FORMAT,
    LEDGER_FILE,
    LEDGER_SCHEMA,
    REMOVED_SCHEMA,
    data_schema,
    fingerprint,
)
from reelset.dataset.labels import (
    LabelSet,
    agreement,
    build_label_set,
    genre_counts_per_movie,
    genre_sources,
    label_lists,
    multi_hot,
)
from reelset.dataset.portable import portable_config
from reelset.dataset.poster_duplicates import find_poster_duplicates
from reelset.dataset.read import StoreSnapshot
from reelset.dataset.select import DEDUPE_RULES, RULES, select_movies
from reelset.dataset.splits import SPLITS, assign_splits
from reelset.errors import UsageError

log = logging.getLogger(__name__)

LIBRARIES = (
    "pyarrow",
    "pandas",
    "numpy",
    "scikit-learn",
    "iterative-stratification",
    "matplotlib",
    "sqlalchemy",
)

# Data columns that come from the posters table, and their names there; every other
# data column not computed by the plan is the movies column of the same name.
POSTER_COLUMNS = {
    "poster_file": "file_path",
    "poster_sha256": "sha256",
    "poster_width": "width",
    "poster_height": "height",
}


class StageClock:
    """Debug log lines with the wall and CPU seconds of each stage of a build (what
    ``benchmarks/bench_build.py`` breaks its time down by)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        """Log the time since the last lap as ``stage``."""
        wall, cpu = time.perf_counter(), time.process_time()
        log.debug("%s stage %s: %.2f s wall, %.2f s CPU", self.what, stage,
                  wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu


class BaselineJob:
    """The text baseline of a plan: computed on first use, or started early.

    :meth:`start` vectorizes the overviews in the calling thread (Python, holding the
    GIL) and fits the regressions in a background thread (liblinear releases the GIL,
    so on two CPUs they run beside the writing of the files); :meth:`result` waits for
    it. The thread is a daemon: a build that fails or is interrupted while writing does
    not wait for it.
    """

    def __init__(self, make: Callable[[], BaselineRun]) -> None:
        self._make: Callable[[], BaselineRun] | None = make
        self._run: BaselineRun | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Vectorize now and fit in a background thread (once)."""
        if self._make is None:
            return
        self._run = run = self._make()
        self._make = None
        run.vectorize()
        self._thread = threading.Thread(
            target=self._fit, args=(run,), name="reelset-baseline", daemon=True
        )
        self._thread.start()

    def _fit(self, run: BaselineRun) -> None:
        try:
            run.fit()
        except BaseException as exc:  # re-raised by result(), in the caller's thread
            self._error = exc

    def result(self) -> dict[str, Any]:
        """The baseline's dict (computed here unless started; errors re-raised)."""
        if self._make is not None:
            self._run = run = self._make()
            self._make = None
            run.vectorize()
            run.fit()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        assert self._run is not None
        return self._run.result()


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
    content: dict[str, Any]
    """The manifest as far as it is known without the baseline (``baseline`` is None
    until :attr:`manifest` fills it in)."""
    fingerprint: str
    baseline: BaselineJob | None = None

    def start_baseline(self) -> None:
        """Start training the baseline in a background thread (see :class:`BaselineJob`)."""
        if self.baseline is not None:
            self.baseline.start()

    @property
    def manifest(self) -> dict[str, Any]:
        """The version's manifest, with the baseline (waited for, or computed now)."""
        if self.baseline is not None:
            self.content["baseline"] = self.baseline.result()
            self.baseline = None
        return self.content


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


def _table(schema: pa.Schema, columns: dict[str, Any]) -> pa.Table:
    """A table of ``schema`` from its columns by name (exactly the schema's names)."""
    if sorted(columns) != sorted(schema.names):
        raise ValueError(f"columns {sorted(columns)} do not match the schema {schema.names}")
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


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
    clock = StageClock("plan")
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

    clock.lap("genre sources")

    # 1 + 2: dedupe and filters.
    selection = select_movies(
        movies,
        cfg,
        source_genre_counts=source_counts,
        has_poster=has_poster,
        inactive_ids=snapshot.inactive.column("tmdb_id").combine_chunks(),
    )
    _release_unused()  # the normalized texts of dedupe are gone
    removals = selection.removals
    rows = np.flatnonzero(selection.keep)
    log.info("dedupe and filters kept %d of %d active movies", len(rows), len(ids))

    clock.lap("dedupe and filters")

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

    clock.lap("poster duplicates")

    # 3: labels.
    agree = agreement(sources, ids[rows])
    kept_pairs = pairs[pairs["tmdb_id"].isin(ids[rows])]
    label_set = build_label_set(kept_pairs, sources, cfg.label_source, cfg.min_genre_count)
    y = multi_hot(ids[rows], kept_pairs, label_set)
    del sources, pairs, kept_pairs  # millions of (movie, genre) pairs, no longer needed
    lost = (source_counts[rows] > 0) & (y.sum(axis=1) == 0)
    removals.add("no_label", ids[rows[lost]])
    rows, y = rows[~lost], y[~lost]
    final_ids = ids[rows]
    if not label_set.labels:
        raise UsageError(
            f"nothing to build: none of the {len(ids) + snapshot.inactive.num_rows} movies in "
            "the store passes the dedupe, the filters and the label rules of [build]"
        )

    clock.lap("labels")

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

    clock.lap("splits")

    # Tables.
    genre_ids, genre_names = label_lists(y, label_set)
    n_labels = len(label_set.labels)
    schema = data_schema(n_labels)
    computed: dict[str, pa.Array] = {
        "tmdb_id": pa.array(final_ids, type=pa.int64()),
        "genre_ids": genre_ids,
        "genres": genre_names,
        "labels": pa.FixedSizeListArray.from_arrays(
            pa.array(y.reshape(-1), type=pa.int8()), n_labels
        ),
        **{
            name: _take(posters.column(source), poster_pos[rows], keep_poster[rows])
            for name, source in POSTER_COLUMNS.items()
        },
    }
    # Each split taken straight from the snapshot: no table of every kept movie first
    # (a second copy of every overview at a million movies).
    split_tables = {}
    for i, split in enumerate(SPLITS):
        in_split = np.flatnonzero(codes == i)
        at_split, at_rows = pa.array(in_split), pa.array(rows[in_split])
        split_tables[split] = _table(
            schema,
            {
                name: computed[name].take(at_split) if name in computed
                else movies.column(name).take(at_rows).combine_chunks()
                for name in schema.names
            },
        )
    del computed
    _release_unused()
    clock.lap("split tables")
    removed = _removed_table(removals.table(), snapshot)
    baseline = (
        BaselineJob(
            functools.partial(_baseline_run, split_tables, y, codes, label_set, settings)
        )
        if cfg.baseline else None
    )
    new_ledger = _next_ledger(ledger, final_ids, codes, version)

    cooc, scopes = cooccurrence.cooccurrence_table(
        y, codes, SPLITS, label_set.ids, label_set.names
    )
    rows_per_split = {s: split_tables[s].num_rows for s in SPLITS}
    labels_doc = _labels_doc(label_set, y, codes, cfg.label_source, cfg.min_genre_count)
    clock.lap("ledger, co-occurrence, labels.json")
    fp = fingerprint(
        {**split_tables, "removed": removed, "poster_duplicates": dups.table},
        {
            "settings": content_settings(settings),
            "labels": [lab.as_dict() for lab in label_set.labels],
        },
    )
    clock.lap("fingerprint")
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
        "config": portable_config(settings),
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
        "baseline": None,  # filled in by Plan.manifest
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
        content=manifest,
        fingerprint=fp,
        baseline=baseline,
    )


def _release_unused() -> None:
    """Hand memory Arrow freed back to the system, so the next step's peak does not add
    to this one's (the allocator keeps freed pages for reuse otherwise)."""
    pa.default_memory_pool().release_unused()


def _baseline_run(
    split_tables: dict[str, pa.Table],
    y: npt.NDArray[np.int8],
    codes: npt.NDArray[np.int8],
    label_set: LabelSet,
    settings: Settings,
) -> BaselineRun:
    """The text baseline of the version, ready to run (:mod:`reelset.dataset.baseline`)."""
    # The baseline uses samples of each split (baseline_max_samples): their texts are
    # read by position, not turned into a million Python strings first.
    data = {
        split: SplitData(_Texts(split_tables[split].column("overview")), y[codes == i])
        for i, split in enumerate(SPLITS)
    }
    return BaselineRun(
        data["train"], data["validation"], data["test"], label_set.names,
        seed=settings.build.seed, max_samples=settings.build.baseline_max_samples,
    )


class _Texts(Sequence[str]):
    """A string column as a read-only sequence of str, each converted when asked for."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._column = column

    def __len__(self) -> int:
        return len(self._column)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        text: str = self._column[index].as_py()
        return text

    def take(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """The strings at these positions, taken in one go."""
        texts: list[str] = self._column.take(pa.array(rows, type=pa.int64())).to_pylist()
        return texts


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

    def every_movie(name: str) -> pa.ChunkedArray:
        return pa.chunked_array(
            [t.column(name).combine_chunks() for t in (snapshot.movies, snapshot.inactive)]
        )

    ids, imdb, title = every_movie("tmdb_id"), every_movie("imdb_id"), every_movie("title")
    all_ids = np.asarray(ids.to_numpy(), dtype=np.int64)
    order = np.argsort(all_ids, kind="stable")
    wanted = np.asarray(removed.column("tmdb_id").to_numpy(), dtype=np.int64)
    pos, found = _lookup(all_ids[order], wanted)
    at = order[pos]
    return _table(
        REMOVED_SCHEMA,
        {
            "tmdb_id": removed.column("tmdb_id").combine_chunks(),
            "imdb_id": _take(imdb, at, found),
            "title": _take(title, at, found),
            "rule": removed.column("rule").combine_chunks(),
            "duplicate_of": removed.column("duplicate_of").combine_chunks(),
        },
    )


def _next_ledger(
    ledger: pa.Table, ids: npt.NDArray[np.int64], codes: npt.NDArray[np.int8], version: str
) -> pa.Table:
    """The ledger plus this version's newly placed movies, sorted by tmdb_id."""
    known = np.asarray(ledger.column("tmdb_id").to_numpy(), dtype=np.int64)
    new = ~np.isin(ids, known)
    added = _table(
        LEDGER_SCHEMA,
        {
            "tmdb_id": pa.array(ids[new], type=pa.int64()),
            "split": pa.array(np.array(SPLITS, dtype=object)[codes[new]], type=pa.string()),
            "assigned_in": pa.array([version] * int(new.sum()), type=pa.string()),
        },
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
