"""``reelset datasets list|show|diff``: what analysts ask about built datasets.

List every dataset with its versions, show one version's counts, labels and removals,
diff two versions (movies added, removed, relabelled, split moves). Reads only the
version folders (manifest, labels.json, split files), never the store; ``output_dir``
is a local folder or a location in object storage
(:class:`~reelset.dataset.remote.RemotePath`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelset.dataset.load import read_parquet
from reelset.dataset.remote import Folder
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import (
    dataset_names,
    latest,
    parse_ref,
    read_labels,
    read_manifest,
    resolve,
    split_files,
    versions,
)
from reelset.errors import UsageError, error_line

EXAMPLES = 10


def list_datasets(output_dir: Folder) -> list[dict[str, Any]]:
    """Every dataset name with its versions, latest version, rows and creation time."""
    out = []
    for name in dataset_names(output_dir):
        root = output_dir / name
        newest = latest(root)
        manifest = read_manifest(root / newest) if newest else {}
        out.append(
            {
                "name": name,
                "latest": newest,
                "versions": versions(root),
                "rows": manifest.get("rows", {}).get("total"),
                "labels": manifest.get("labels", {}).get("count"),
                "created_at": manifest.get("created_at"),
            }
        )
    return out


def show(output_dir: Folder, ref: str) -> dict[str, Any]:
    """Counts, labels and removals of ``NAME[@vN]``."""
    name, version = parse_ref(ref)
    version, folder = resolve(output_dir, name, version)
    m = read_manifest(folder)
    labels = read_labels(folder)
    try:
        return _summary(name, version, folder, m, labels)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{folder}: manifest.json or labels.json is not of this format "
            f"({type(exc).__name__}: {error_line(exc, limit=80)})"
        ) from None


def _summary(
    name: str, version: str, folder: Folder, m: dict[str, Any], labels: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "path": str(folder),
        "created_at": m["created_at"],
        "parent_version": m["parent_version"],
        "fingerprint": m["fingerprint"],
        "rows": m["rows"],
        "label_source": labels["label_source"],
        "labels": {lab["name"]: lab["counts"] for lab in labels["labels"]},
        "dropped_genres": {d["name"]: d["count"] for d in labels["dropped"]},
        "removed": {rule: n for rule, n in m["removed"].items() if n},
        "poster_duplicates": m["poster_duplicates"],
        "splits": m["splits"],
        "baseline": _baseline_summary(m.get("baseline")),
    }


def _baseline_summary(baseline: Any) -> dict[str, Any] | str:
    """The baseline's test scores and sample counts, or why there are none."""
    if baseline is None:
        return "none (disabled or built before baselines)"
    if not isinstance(baseline, dict):
        raise TypeError("baseline is not an object")
    if "skipped" in baseline:
        return f"skipped: {baseline['skipped']}"
    return {
        "model": baseline["model"],
        "train_samples": baseline["train_samples"],
        "test_samples": baseline["test_samples"],
        "test": baseline["test"],
    }


def _version_table(folder: Folder) -> pa.Table:
    """tmdb_id, genres (joined with "|") and split of every movie of a version.

    Reads only those two columns of each split file, never the image bytes.
    """
    parts = []
    for split in SPLITS:
        pieces = []
        for path in split_files(folder, split):
            pieces.append(read_parquet(path, ["tmdb_id", "genres"]))
        t = pa.concat_tables(pieces)
        key = pc.binary_join(t.column("genres"), "|")
        parts.append(
            pa.table(
                {
                    "tmdb_id": t.column("tmdb_id"),
                    "genres": key,
                    "split": pa.array([split] * t.num_rows, pa.string()),
                }
            )
        )
    return pa.concat_tables(parts)


def diff(output_dir: Folder, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Movies added, removed and relabelled from ``ref_a`` to ``ref_b``, and split moves.

    Relabelled: the movie's label names differ. Split moves must be zero (the splits are
    stable); any are reported with examples.
    """
    name_a, version_a = parse_ref(ref_a)
    name_b, version_b = parse_ref(ref_b)
    version_a, folder_a = resolve(output_dir, name_a, version_a)
    version_b, folder_b = resolve(output_dir, name_b, version_b)
    a = _version_table(folder_a).to_pandas().set_index("tmdb_id")
    b = _version_table(folder_b).to_pandas().set_index("tmdb_id")
    added = b.index.difference(a.index)
    removed = a.index.difference(b.index)
    common = a.index.intersection(b.index)
    a_c, b_c = a.loc[common], b.loc[common]
    relabelled = common[(a_c["genres"].to_numpy() != b_c["genres"].to_numpy())]
    moved_mask = a_c["split"].to_numpy() != b_c["split"].to_numpy()
    moved = common[moved_mask]

    def sample(ids: Any) -> list[int]:
        return [int(i) for i in np.sort(np.asarray(ids))[:EXAMPLES]]

    return {
        "from": f"{name_a}@{version_a}",
        "to": f"{name_b}@{version_b}",
        "rows": {"from": len(a), "to": len(b)},
        "added": len(added),
        "removed": len(removed),
        "relabelled": len(relabelled),
        "split_moves": len(moved),
        "examples": {
            "added": sample(added),
            "removed": sample(removed),
            "relabelled": sample(relabelled),
            "split_moves": [
                {"tmdb_id": int(i), "from": a.loc[i, "split"], "to": b.loc[i, "split"]}
                for i in sample(moved)
            ],
        },
        "labels_added": sorted(set(_names(folder_b)) - set(_names(folder_a))),
        "labels_removed": sorted(set(_names(folder_a)) - set(_names(folder_b))),
        "baseline": baseline_change(read_manifest(folder_a), read_manifest(folder_b)),
    }


def baseline_scores(manifest: dict[str, Any]) -> dict[str, float] | None:
    """The baseline's test scores in a manifest; None when it has none (disabled, skipped,
    or a version built before baselines)."""
    baseline = manifest.get("baseline")
    if not isinstance(baseline, dict) or not isinstance(baseline.get("test"), dict):
        return None
    return {
        k: float(v) for k, v in baseline["test"].items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def baseline_change(
    manifest_a: dict[str, Any], manifest_b: dict[str, Any]
) -> dict[str, dict[str, float | None]]:
    """Each baseline test score of two versions: {metric: {"from", "to", "change"}}.

    A metric missing on one side has None there and as its change; {} when neither
    version has baseline scores.
    """
    a, b = baseline_scores(manifest_a) or {}, baseline_scores(manifest_b) or {}
    out: dict[str, dict[str, float | None]] = {}
    for metric in [*a, *(k for k in b if k not in a)]:
        before, after = a.get(metric), b.get(metric)
        change = None
        if before is not None and after is not None:
            change = round(after - before, 4) + 0.0  # + 0.0: no "-0.0000"
        out[metric] = {"from": before, "to": after, "change": change}
    return out


def _names(folder: Folder) -> list[str]:
    return [lab["name"] for lab in read_labels(folder)["labels"]]
