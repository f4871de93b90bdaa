"""The dataset format ``reelset-dataset/1``: what a version folder holds, defined once.

Every file of a version is documented in :data:`FILES` and every column of the split
files in :data:`DATA_COLUMNS` (name, Arrow type, nullability and meaning, one entry each),
plus :data:`IMAGE_COLUMN` in ``embed`` mode; :func:`data_schema` and :func:`format_doc` both
derive from them. The ``[build] images`` mode decides where the posters go
(:data:`IMAGE_MODES`): inside the parquet shards, in WebDataset tar shards, or nowhere
(the version refers to the posters folder).

Parquet files are written with pinned writer options (:data:`PARQUET_OPTIONS`) from
Arrow tables built with explicit schemas, so the same content gives the same bytes: no
timestamps or pandas metadata, zstd level 3, statistics on, dictionary encoding on,
row groups of ``[build] row_group_size`` rows.

The content fingerprint (``manifest.json`` ``fingerprint``, :func:`fingerprint`) is a
sha256 over the Arrow IPC stream of every data table (the splits, removed movies, poster
duplicates), the label set and the settings that shape the content (``[build]`` without
``output_dir`` and ``name``, and ``[genres]``). It does not cover created_at, file paths
or library versions, so a rebuild from the same store and settings has the same
fingerprint, and the builder then says ``unchanged`` instead of making a new version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

FORMAT = "reelset-dataset/1"

IMAGE_MODES = ("embed", "webdataset", "reference")
"""``[build] images``: posters in the parquet shards, in WebDataset tars, or left outside."""

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "data_page_size": 1024 * 1024,
    "write_page_index": False,
    "store_schema": True,
    "use_compliant_nested_type": True,
}


@dataclass(frozen=True)
class DataColumn:
    """One column of ``data/<split>.parquet``."""

    name: str
    type: pa.DataType | None
    """The Arrow type; None for ``labels``, whose list size is the number of labels."""
    doc: str
    nullable: bool = True


DATA_COLUMNS: tuple[DataColumn, ...] = (
    DataColumn(
        "tmdb_id",
        pa.int64(),
        "int64. TMDB movie id; unique across the three splits; rows are sorted by it.",
        nullable=False,
    ),
    DataColumn("imdb_id", pa.string(), "string, nullable. IMDb id (tt...), as TMDB gave it."),
    DataColumn("title", pa.string(), "string. TMDB title.", nullable=False),
    DataColumn("year", pa.int32(), "int32, nullable. Release year."),
    DataColumn(
        "overview",
        pa.string(),
        "string. TMDB overview (the text input), never empty (see the filters).",
        nullable=False,
    ),
    DataColumn(
        "genre_ids",
        pa.list_(pa.int32()),
        "list<int32>. The movie's label ids, in label order (labels.json): TMDB genre ids, "
        "negative for IMDb-only labels. Only genres in the label set appear.",
        nullable=False,
    ),
    DataColumn(
        "genres",
        pa.list_(pa.string()),
        "list<string>. The names of genre_ids, same order (e.g. imdb:Biography).",
        nullable=False,
    ),
    DataColumn(
        "labels",
        None,
        "fixed_size_list<int8>[N]. Multi-hot target: labels[i] = 1 iff the movie has the "
        "label at index i of labels.json (N = number of labels).",
        nullable=False,
    ),
    DataColumn(
        "poster_file",
        pa.string(),
        "string, nullable. The poster image, as a path relative to [storage] posters_dir "
        "(<sha256[:2]>/<sha256>.<ext>); null when there is no poster with status ok, or "
        "when drop_poster_duplicates removed a duplicate's reference.",
    ),
    DataColumn(
        "poster_sha256", pa.string(), "string, nullable. sha256 of the poster file's bytes."
    ),
    DataColumn("poster_width", pa.int32(), "int32, nullable. Poster width in pixels."),
    DataColumn("poster_height", pa.int32(), "int32, nullable. Poster height in pixels."),
    DataColumn(
        "original_language",
        pa.string(),
        "string, nullable. ISO 639-1 code of the original language.",
    ),
    DataColumn("popularity", pa.float64(), "float64, nullable. TMDB popularity when last scraped."),
    DataColumn("vote_count", pa.int64(), "int64, nullable. TMDB vote count when last scraped."),
)

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
"""The Arrow layout of a Hugging Face ``datasets.Image`` value."""

IMAGE_COLUMN = DataColumn(
    "image",
    IMAGE_TYPE,
    "struct<bytes: binary, path: string>, nullable; embed mode only, the last column. The "
    "poster in Hugging Face's Image layout: `bytes` = the poster file's bytes as stored "
    "(`image_max_side = 0`) or an RGB JPEG whose longest side is at most `image_max_side`; "
    "`path` = `<tmdb_id>.<ext>` (e.g. `603.jpg`); null when `poster_file` is null.",
)
"""The poster column of ``data/<split>-NNNNN-of-NNNNN.parquet`` (``embed`` mode only)."""

FILES: tuple[tuple[str, str], ...] = (
    (
        "`data/<split>-00000-of-0000N.parquet` (`images = \"embed\"`, the default)",
        "The movies of each split (`train`, `validation`, `test`; columns below, with "
        "`image`) in Hugging Face-style shards of at most `[build] shard_max_bytes` (a "
        "single movie larger than that gets a shard of its own; a split that fits is one "
        "shard `-00000-of-00001`); the shards of a split, in order, are "
        "`manifest.json` `data_files`. zstd (image bytes stored uncompressed), rows "
        "sorted by `tmdb_id` across the shards, row groups of at most `[build] "
        "row_group_size` rows and about 64 MiB of images. No movie is in two splits.",
    ),
    (
        "`data/<split>.parquet` (`images = \"webdataset\"` or `\"reference\"`)",
        "The movies of each split (columns below, no `image`), one file per split; zstd, "
        "rows sorted by `tmdb_id`, row groups of `[build] row_group_size` rows.",
    ),
    (
        "`data/<split>-000000.tar` (`images = \"webdataset\"`)",
        "WebDataset shards of each split (`manifest.json` `webdataset_files`), at most "
        "`[build] shard_max_bytes` each: per movie, in `tmdb_id` order, `<tmdb_id>.json` "
        "(the row's columns) and, when it has a poster, `<tmdb_id>.<ext>` (the image bytes, "
        "`jpg` when resized). Plain ustar, members sorted, mtime 0, owner 0, no user names.",
    ),
    (
        "`labels.json`",
        "The label order of the multi-hot vectors: `labels` = list of `{index, id, name, "
        "source, imdb_genres, counts: {all, train, validation, test}}`; `dropped` = genres "
        "below `min_genre_count` with their counts; `label_source`; `min_genre_count`.",
    ),
    (
        "`cooccurrence.parquet`",
        "Genre co-occurrence matrices, wide: `scope` (all, train, validation, test), "
        "`matrix` (`count`, `p_col_given_row`, `jaccard`), `row_genre_id` (int32), "
        "`row_genre` (string), then one float64 column per label, named by the label name, "
        "in label order. `count` is symmetric and its diagonal is each genre's movie count; "
        "`p_col_given_row` = count / the row's diagonal (NaN if 0); `jaccard` = count / "
        "movies with either genre (NaN if 0).",
    ),
    (
        "`cooccurrence.png`",
        "Heatmap of P(column genre \\| row genre) over the whole dataset, genres ordered by "
        "spectral co-clustering (seeded).",
    ),
    (
        "`removed.parquet`",
        "Every movie of the store that is not in the dataset: `tmdb_id` (int64), `imdb_id`, "
        "`title`, `rule` (the first rule that removed it; meanings in `manifest.json` "
        "`rules`), `duplicate_of` (int64: the kept movie, for the dedupe rules; else null); "
        "sorted by `tmdb_id`.",
    ),
    (
        "`poster_duplicates.parquet`",
        "Movies of the dataset whose poster duplicates the poster of a movie with a smaller "
        "`tmdb_id`: `tmdb_id`, `duplicate_of` (the earliest such movie), `match` (`sha256`: "
        "byte-identical; `phash`: perceptual hashes within `poster_phash_distance` bits), "
        "`distance` (int8: differing phash bits, 0 for sha256).",
    ),
    (
        "`split_assignments.parquet`",
        "The split ledger: every movie ever given a split under this dataset name, also "
        "those no longer in it: `tmdb_id` (int64), `split`, `assigned_in` (the version that "
        "first placed it). A movie keeps its split in every later version.",
    ),
    (
        "`manifest.json`",
        "name, version, created_at, parent_version, fingerprint (content + settings, not "
        "time), config (no secrets, no local folders: `storage.database` instead of the "
        "URL), store (backend, database file name or server URL without credentials, "
        "schema version, row counts), baseline (the text baseline's thresholds and "
        "scores, or why it was skipped), "
        "rules, removed per rule, rows per split, genre counts per split, label agreement "
        "TMDB/IMDb per genre, poster duplicates, splits, `data_files` (the parquet files "
        "of each split, in order), `webdataset_files` (webdataset mode), `images` (`mode`, "
        "`max_side`, `quality`, `encoding` `as stored` or `jpeg`, `with_image` and `bytes` "
        "per split, and in reference mode `posters_dir`: the posters folder relative to "
        "the version folder), sha256 and size of every other file, library versions.",
    ),
    (
        "`croissant.json`",
        "The Croissant (MLCommons) JSON-LD description of the version, with the sha256 of "
        "every file under `data/`.",
    ),
    (
        "`README.md`",
        "The dataset card: Hugging Face YAML front matter (`configs` -> `data_files` per "
        "split, `dataset_info.features`: the poster as `Image`, genres as `ClassLabel` "
        "names; licence), these statistics, the heatmap, the baseline scores, licence and "
        "attribution.",
    ),
)

FORMAT_DOC = """\
### Dataset format (`reelset-dataset/1`)

`<output_dir>/<name>/` holds one folder per version (`v0001`, `v0002`, ...) and `LATEST`
(one line naming the newest version, replaced atomically). A version folder is complete
or absent: it is written beside it under a dot-name and renamed at the end.

| file | what it holds |
| --- | --- |
{files}

Posters (`[build] images`): `embed` puts them in the parquet shards (`image` column,
Hugging Face Image layout); `webdataset` in tar shards beside metadata-only parquet;
`reference` leaves them in `[storage] posters_dir`, which the version only names (relative
to the version folder in `manifest.json`): such a version is not portable. In every mode
the bytes are the store's verified poster files, or, with `image_max_side` N > 0, RGB JPEGs
at `image_quality` whose longest side is at most N (never upscaled, metadata stripped).

Columns of the split files:

| column | type and meaning |
| --- | --- |
{columns}
"""


def format_doc() -> str:
    """The documentation of every file and column of a dataset version (Markdown)."""
    files = "\n".join(f"| {name} | {text} |" for name, text in FILES)
    rows = "\n".join(
        f"| `{column.name}` | {column.doc} |" for column in (*DATA_COLUMNS, IMAGE_COLUMN)
    )
    return FORMAT_DOC.replace("{files}", files).replace("{columns}", rows)


def data_schema(n_labels: int, *, images: str = "reference") -> pa.Schema:
    """The Arrow schema of a split's files for ``n_labels`` labels: the :data:`DATA_COLUMNS`,
    and :data:`IMAGE_COLUMN` last when ``images`` is ``"embed"``."""
    if images not in IMAGE_MODES:
        raise ValueError(f"unknown images mode {images!r}")
    columns = (*DATA_COLUMNS, IMAGE_COLUMN) if images == "embed" else DATA_COLUMNS
    return pa.schema(
        [
            pa.field(
                column.name,
                column.type if column.type is not None else pa.list_(pa.int8(), n_labels),
                nullable=column.nullable,
            )
            for column in columns
        ]
    )


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


class _HashSink:
    """A write-only file object that only hashes what is written to it."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fingerprint(tables: dict[str, pa.Table], meta: Any) -> str:
    """sha256 over the IPC stream of each table (in name order) and canonical ``meta``."""
    digest = hashlib.sha256()
    digest.update(FORMAT.encode())
    digest.update(json.dumps(meta, sort_keys=True, separators=(",", ":"), default=str).encode())
    for name in sorted(tables):
        table = tables[name]
        digest.update(f"\0{name}\0".encode())
        sink = pa.PythonFile(_HashSink(digest), mode="w")
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.combine_chunks().to_batches(max_chunksize=65536):
                writer.write_batch(batch)
    return digest.hexdigest()
