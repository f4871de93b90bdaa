"""Shard writers for a split with its posters: Hub-style parquet shards and WebDataset tars.

Both take the split's metadata table (small, in memory) and an iterator of its images in
row order (:class:`reelset.dataset.images.PosterReader`), and stream: rows are gathered
into batches bounded in rows and in image bytes, each batch is written and dropped, so at
most one batch of images is held at a time. Where a shard or a row group ends is decided by
a fixed rule on the row sizes (never on timing), so the same input gives the same files.

Parquet shards are written as ``data/.partial-<split>-NNNNN.parquet`` and renamed to
``data/<split>-NNNNN-of-MMMMM.parquet`` once the split is done and their count known.
Tar shards are ``data/<split>-NNNNNN.tar`` (the WebDataset convention, no count needed).
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reelset.dataset.format import IMAGE_COLUMN, IMAGE_TYPE, PARQUET_OPTIONS
from reelset.dataset.images import LoadedImage
from reelset.files import fsync_dir, fsync_file

ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
"""A row group ends once its images reach this many bytes (or ``row_group_size`` rows)."""
IMAGE_ROW_GROUP_ROWS = 100
"""...or this many rows: small row groups keep random access cheap for map-style training
readers (the row-group size Hugging Face ``datasets`` uses for image datasets)."""
SHARD_RESERVE = 64 * 1024
"""Bytes of a parquet shard kept for its footer and schema."""
ROW_GROUP_RESERVE = 32 * 1024
"""Bytes of a parquet shard counted per row group (column chunk metadata, statistics)."""
VALUE_OVERHEAD = 16
"""Bytes counted per image value (length prefix, page share)."""
TAR_BLOCK = 512
TAR_TAIL = 2 * tarfile.RECORDSIZE
"""The end-of-archive blocks and the padding to a whole record, at most."""
JSON_BATCH = 1024
"""Rows turned into Python objects at a time for the tar records."""


@dataclass
class SplitFiles:
    """What the writers wrote for one split: file paths relative to the version folder."""

    parquet: list[str] = field(default_factory=list)
    tars: list[str] = field(default_factory=list)
    with_image: int = 0
    image_bytes: int = 0


def _leaf_paths(schema: pa.Schema) -> list[str]:
    """The parquet column paths of ``schema`` (``image.bytes``, ``genres.list.element``)."""
    sink = pa.BufferOutputStream()
    pq.ParquetWriter(sink, schema, use_compliant_nested_type=True).close()
    parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    return [parquet_schema.column(i).path for i in range(len(parquet_schema))]


def shard_options(schema: pa.Schema) -> dict[str, Any]:
    """The pinned parquet options, except for the image bytes: no dictionary, no
    statistics and no compression (JPEG and PNG bytes do not compress)."""
    image_bytes = f"{IMAGE_COLUMN.name}.bytes"
    paths = _leaf_paths(schema)
    others = [p for p in paths if p != image_bytes]
    codec = PARQUET_OPTIONS["compression"]
    return {
        **PARQUET_OPTIONS,
        "use_dictionary": others,
        "write_statistics": others,
        "compression": {p: ("none" if p == image_bytes else codec) for p in paths},
        "compression_level": {p: PARQUET_OPTIONS["compression_level"] for p in others},
    }


def _row_cost(table: pa.Table) -> int:
    """The metadata bytes counted per row: the split's uncompressed average, rounded up."""
    return math.ceil(table.nbytes / table.num_rows) if table.num_rows else 0


def write_parquet_shards(
    table: pa.Table,
    images: Iterator[LoadedImage | None],
    data_dir: Path,
    split: str,
    *,
    shard_max_bytes: int,
    row_group_size: int,
    row_group_max_bytes: int | None = None,
) -> SplitFiles:
    """Write ``table`` plus an ``image`` column (one value per row from ``images``) as
    ``data/<split>-NNNNN-of-MMMMM.parquet`` shards of at most ``shard_max_bytes``."""
    group_bytes_cap = row_group_max_bytes or ROW_GROUP_MAX_BYTES
    schema = table.schema.append(
        pa.field(IMAGE_COLUMN.name, IMAGE_TYPE, nullable=IMAGE_COLUMN.nullable)
    )
    options = shard_options(schema)
    budget = max(shard_max_bytes - SHARD_RESERVE, 1)
    meta = _row_cost(table)
    out = SplitFiles()
    partials: list[Path] = []
    writer: pq.ParquetWriter | None = None
    batch: list[LoadedImage | None] = []
    batch_start = batch_bytes = shard_bytes = 0

    def open_shard() -> pq.ParquetWriter:
        partials.append(data_dir / f".partial-{split}-{len(partials):05d}.parquet")
        return pq.ParquetWriter(partials[-1], schema, **options)

    def close_shard(done: pq.ParquetWriter) -> None:
        done.close()
        fsync_file(partials[-1])

    def flush() -> None:
        nonlocal batch, batch_start, batch_bytes
        if writer is None or not batch:
            return
        column = pa.array(
            [None if image is None else {"bytes": image.data, "path": image.name}
             for image in batch],
            type=IMAGE_TYPE,
        )
        part = table.slice(batch_start, len(batch)).append_column(schema.field(-1), column)
        writer.write_table(part, row_group_size=len(batch))
        batch_start += len(batch)
        batch, batch_bytes = [], 0

    try:
        for image in images:
            size = len(image.data) if image is not None else 0
            cost = meta + size + VALUE_OVERHEAD
            # An open shard holds at least one row; a row that does not fit starts the next.
            if writer is not None and shard_bytes + cost + (
                0 if batch else ROW_GROUP_RESERVE
            ) > budget:
                flush()
                close_shard(writer)
                writer, shard_bytes = None, 0
            if writer is None:
                writer = open_shard()
            cost += 0 if batch else ROW_GROUP_RESERVE
            batch.append(image)
            batch_bytes += size
            shard_bytes += cost
            if image is not None:
                out.with_image += 1
                out.image_bytes += size
            if len(batch) >= min(row_group_size, IMAGE_ROW_GROUP_ROWS) or (
                batch_bytes >= group_bytes_cap
            ):
                flush()
        if batch_start + len(batch) != table.num_rows:
            raise AssertionError(f"{batch_start + len(batch)} images for {table.num_rows} rows")
        if writer is None:  # an empty split still has its one (empty) shard
            writer = open_shard()
        flush()
        close_shard(writer)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    count = len(partials)
    for index, partial in enumerate(partials):
        name = f"{split}-{index:05d}-of-{count:05d}.parquet"
        os.replace(partial, data_dir / name)
        out.parquet.append(f"{data_dir.name}/{name}")
    fsync_dir(data_dir)
    return out


def _tar_member(name: str, size: int) -> tarfile.TarInfo:
    """A member header with nothing of the machine or the time in it."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _tar_size(size: int) -> int:
    """Bytes a member of ``size`` bytes takes in a tar: header plus padded data."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def _records(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The rows of ``table`` as dicts, a batch at a time."""
    for start in range(0, table.num_rows, JSON_BATCH):
        yield from table.slice(start, JSON_BATCH).to_pylist()


def record_json(row: dict[str, Any]) -> bytes:
    """A row as the compact UTF-8 JSON of its ``<key>.json`` member."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write_tar_shards(
    table: pa.Table,
    images: Iterator[LoadedImage | None],
    data_dir: Path,
    split: str,
    *,
    shard_max_bytes: int,
) -> SplitFiles:
    """Write ``data/<split>-NNNNNN.tar`` WebDataset shards of at most ``shard_max_bytes``:
    per row ``<tmdb_id>.<ext>`` (when it has an image) then ``<tmdb_id>.json``.

    The files get their final names at once: they are written inside the staging folder,
    which is published or removed whole.
    """
    out = SplitFiles()
    budget = max(shard_max_bytes - TAR_TAIL, 1)
    archive: tarfile.TarFile | None = None
    used = 0

    def open_shard() -> tarfile.TarFile:
        name = f"{split}-{len(out.tars):06d}.tar"
        out.tars.append(f"{data_dir.name}/{name}")
        return tarfile.open(data_dir / name, "w", format=tarfile.USTAR_FORMAT)

    def close_shard(done: tarfile.TarFile) -> None:
        done.close()
        fsync_file(data_dir / Path(out.tars[-1]).name)

    try:
        for row, image in zip(_records(table), images, strict=True):
            key = str(row["tmdb_id"])
            members = [(f"{key}.{image.ext}", image.data)] if image is not None else []
            members.append((f"{key}.json", record_json(row)))
            cost = sum(_tar_size(len(data)) for _, data in members)
            if archive is not None and used + cost > budget:
                close_shard(archive)
                archive = None
            if archive is None:
                archive, used = open_shard(), 0
            for member, data in members:
                archive.addfile(_tar_member(member, len(data)), io.BytesIO(data))
            used += cost
            if image is not None:
                out.with_image += 1
                out.image_bytes += len(image.data)
        if archive is None:  # an empty split: one empty archive, so every split has a shard
            archive = open_shard()
        close_shard(archive)
    except BaseException:
        if archive is not None:
            archive.close()
        raise
    fsync_dir(data_dir)
    return out
