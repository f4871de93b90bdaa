"""What training code calls: a built dataset split as a DataFrame or an Arrow table.

    from reelset.dataset import load, load_labels
    train = load("genres", split="train")            # latest version
    test = load("genres", "v0003", split="test")
    y = numpy.stack(train["labels"])                 # (movies, labels) int8 multi-hot
    names = [lab["name"] for lab in load_labels("genres", "v0003")]

``output_dir`` defaults to the configured ``[build] output_dir`` (``config.toml`` /
``$REELSET_CONFIG``); ``name`` defaults to ``[build] name``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import read_labels, read_manifest, resolve
from reelset.errors import UsageError

ALL = "all"


def _defaults(name: str | None, output_dir: str | Path | None) -> tuple[str, Path]:
    if name is not None and output_dir is not None:
        return name, Path(output_dir)
    from reelset.config import load_settings

    settings = load_settings()
    return (
        name if name is not None else settings.build.name,
        Path(output_dir) if output_dir is not None else settings.output_dir,
    )


def dataset_dir(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
) -> Path:
    """The folder of a dataset version (``version``: "latest", "v3", "v0003" or 3)."""
    name, out = _defaults(name, output_dir)
    _, folder = resolve(out, name, None if version == "latest" else str(version))
    return folder


def load_arrow(
    name: str | None = None,
    version: str | int = "latest",
    split: str = "train",
    *,
    output_dir: str | Path | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """One split (or ``"all"``, with a ``split`` column added) as an Arrow table."""
    folder = dataset_dir(name, version, output_dir=output_dir)
    wanted = list(columns) if columns is not None else None
    if split == ALL:
        parts = []
        for s in SPLITS:
            table = pq.read_table(folder / "data" / f"{s}.parquet", columns=wanted)
            parts.append(table.append_column("split", pa.array([s] * table.num_rows)))
        return pa.concat_tables(parts)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}: use train, validation, test or all")
    return pq.read_table(folder / "data" / f"{split}.parquet", columns=wanted)


def load(
    name: str | None = None,
    version: str | int = "latest",
    split: str = "train",
    *,
    output_dir: str | Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One split (or ``"all"``) as a pandas DataFrame; ``labels`` holds int8 arrays."""
    return load_arrow(name, version, split, output_dir=output_dir, columns=columns).to_pandas()


def load_labels(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The labels of a version, in multi-hot order (``labels.json`` ``labels``)."""
    labels: list[dict[str, Any]] = read_labels(
        dataset_dir(name, version, output_dir=output_dir)
    )["labels"]
    return labels


def load_manifest(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The ``manifest.json`` of a version."""
    return read_manifest(dataset_dir(name, version, output_dir=output_dir))
