"""``reelset datasets list|show|diff``: what analysts ask about built datasets.

List every dataset with its versions, show one version's counts, labels and removals,
diff two versions (movies added, removed, relabelled, split moves). Reads only the
version folders (manifest, labels.json, split files), never the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import (
    dataset_names,
    latest,
    parse_ref,
    read_labels,
    read_manifest,
    resolve,
    versions,
)
from reelset.errors import UsageError, error_line

EXAMPLES = 10


def list_datasets(output_dir: Path) -> list[dict[str, Any]]:
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


def show(output_dir: Path, ref: str) -> dict[str, Any]:
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
    name: str, version: str, folder: Path, m: dict[str, Any], labels: dict[str, Any]
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
    }


def _version_table(folder: Path) -> pa.Table:
    parts = []
    for split in SPLITS:
        path = folder / "data" / f"{split}.parquet"
        try:
            t = pq.read_table(path, columns=["tmdb_id", "genres"])
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"cannot read {path}: {error_line(exc, limit=160)}") from None
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


def diff(output_dir: Path, ref_a: str, ref_b: str) -> dict[str, Any]:
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
    }


def _names(folder: Path) -> list[str]:
    return [lab["name"] for lab in read_labels(folder)["labels"]]
