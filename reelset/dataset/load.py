"""What training code calls: a built dataset split as a DataFrame or an Arrow table.

    from reelset.dataset import load, load_labels
    train = load("genres", split="train")            # latest version
    test = load("genres", "v0003", split="test")
    y = numpy.stack(train["labels"])                 # (movies, labels) int8 multi-hot
    names = [lab["name"] for lab in load_labels("genres", "v0003")]
    copy = load(path="/mnt/usb/genres-v0003", split="test")   # a copied version folder
    posters = load("genres", posters_dir="data/posters")      # + absolute poster_path
    remote = load(path="s3://bucket/datasets/genres/v0003", storage_options={...})
    remote = load("genres", output_dir="s3://bucket/datasets", storage_options={...})

``output_dir`` defaults to the configured ``[build] output_dir`` (``config.toml`` /
``$REELSET_CONFIG``, with ``[storage] storage_options`` for a URL); ``name`` defaults to
``[build] name``. ``output_dir`` and ``path`` may be fsspec URLs (``s3://...``):
``storage_options`` are then the backend's options (``endpoint_url``...); credentials
come from the backend's own environment (for S3 the ``AWS_*`` variables or a profile).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelset.dataset.remote import Folder, RemotePath, location, parquet_source
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import (
    read_labels,
    read_manifest,
    resolve,
    split_files,
    version_folder,
)
from reelset.errors import UsageError, error_line

ALL = "all"


def _defaults(
    name: str | None,
    output_dir: str | Path | None,
    storage_options: dict[str, Any] | None,
) -> tuple[str, Folder]:
    if name is not None and output_dir is not None:
        return name, location(output_dir, storage_options)
    from reelset.config import load_settings

    settings = load_settings()
    return (
        name if name is not None else settings.build.name,
        location(output_dir, storage_options) if output_dir is not None
        else settings.output_dir,
    )


def dataset_dir(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
    path: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Folder:
    """The folder of a dataset version (``version``: "latest", "v3", "v0003" or 3).

    With ``path`` (a version folder, e.g. a copy elsewhere, with no config or store) that
    folder; ``name``, ``version`` and ``output_dir`` are then ignored. ``path`` and
    ``output_dir`` may be fsspec URLs, read with ``storage_options`` (a
    :class:`~reelset.dataset.remote.RemotePath` is returned then).
    """
    if path is not None:
        return version_folder(path, storage_options)
    name, out = _defaults(name, output_dir, storage_options)
    _, folder = resolve(out, name, None if version == "latest" else str(version))
    return folder


def read_parquet(path: Folder, columns: list[str] | None = None) -> pa.Table:
    """One parquet file of a version (local or in object storage); an unreadable one is a
    :class:`UsageError` naming it."""
    source, fs = parquet_source(path)
    try:
        return pq.read_table(source, columns=columns, filesystem=fs)
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"cannot read {path}: {error_line(exc, limit=160)}") from None


def _read_split(folder: Folder, split: str, columns: list[str] | None) -> pa.Table:
    """Every parquet file of a split (all its shards, in order) as one table."""
    parts = [read_parquet(path, columns) for path in split_files(folder, split)]
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def posters_folder(folder: Folder, posters_dir: str | Path | None = None) -> Path | None:
    """The absolute posters folder for a version: ``posters_dir`` when given, else the
    folder a reference-mode manifest names (relative to the version folder) if it exists
    there (local versions only); None when unknown."""
    if posters_dir is not None:
        return Path(posters_dir).expanduser().resolve()
    relative = read_manifest(folder).get("images", {}).get("posters_dir")
    if relative and not isinstance(folder, RemotePath):
        found = (folder / relative).resolve()
        if found.is_dir():
            return found
    return None


def load_arrow(
    name: str | None = None,
    version: str | int = "latest",
    split: str = "train",
    *,
    output_dir: str | Path | None = None,
    columns: Sequence[str] | None = None,
    path: str | Path | None = None,
    posters_dir: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """One split (or ``"all"``, with a ``split`` column added) as an Arrow table.

    Every shard of the split is read (``manifest.json`` ``data_files``); in embed mode the
    ``image`` column comes as stored (``struct<bytes, path>``; leave it out with
    ``columns`` to read only the metadata). ``path`` loads a version folder directly (see
    :func:`dataset_dir`). When the posters folder is known (``posters_dir``, else the one a
    reference-mode version names, if it exists) and ``poster_file`` is loaded, a
    ``poster_path`` column holds each poster's absolute path (null without a poster).
    ``storage_options``: for an ``output_dir`` or ``path`` URL (see the module doc).
    """
    folder = dataset_dir(
        name, version, output_dir=output_dir, path=path, storage_options=storage_options
    )
    wanted = list(columns) if columns is not None else None
    if split == ALL:
        parts = []
        for s in SPLITS:
            table = _read_split(folder, s, wanted)
            parts.append(
                table.append_column("split", pa.array([s] * table.num_rows, pa.string()))
            )
        table = pa.concat_tables(parts)
    elif split in SPLITS:
        table = _read_split(folder, split, wanted)
    else:
        raise UsageError(f"unknown split {split!r}: use train, validation, test or all")
    root = posters_folder(folder, posters_dir)
    if root is not None and "poster_file" in table.column_names:
        table = table.append_column(
            "poster_path",
            pc.binary_join_element_wise(str(root), table.column("poster_file"), os.sep),
        )
    return table


def load(
    name: str | None = None,
    version: str | int = "latest",
    split: str = "train",
    *,
    output_dir: str | Path | None = None,
    columns: Sequence[str] | None = None,
    path: str | Path | None = None,
    posters_dir: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One split (or ``"all"``) as a pandas DataFrame; ``labels`` holds int8 arrays (see
    :func:`load_arrow` for ``path``, ``posters_dir``, ``storage_options`` and the
    ``image`` column)."""
    return load_arrow(
        name, version, split, output_dir=output_dir, columns=columns, path=path,
        posters_dir=posters_dir, storage_options=storage_options,
    ).to_pandas()


def load_labels(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
    path: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The labels of a version, in multi-hot order (``labels.json`` ``labels``)."""
    labels: list[dict[str, Any]] = read_labels(
        dataset_dir(
            name, version, output_dir=output_dir, path=path, storage_options=storage_options
        )
    )["labels"]
    return labels


def load_manifest(
    name: str | None = None,
    version: str | int = "latest",
    *,
    output_dir: str | Path | None = None,
    path: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``manifest.json`` of a version."""
    return read_manifest(
        dataset_dir(
            name, version, output_dir=output_dir, path=path, storage_options=storage_options
        )
    )
