"""The dataset format ``reelset-dataset/1``: what a version folder holds, defined once.

Every file of a version is documented in :data:`FILES` and every column of
``data/<split>.parquet`` in :data:`DATA_COLUMNS` (name, Arrow type, nullability and
meaning, one entry each); :func:`data_schema` and :func:`format_doc` both derive from them.

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

FILES: tuple[tuple[str, str], ...] = (
    (
        "`data/train.parquet`, `data/validation.parquet`, `data/test.parquet`",
        "The movies of each split (columns below); zstd, rows sorted by `tmdb_id`, row "
        "groups of `[build] row_group_size` rows. No movie is in two splits.",
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
        "time), config (secrets removed), store (masked URL, schema version, row counts), "
        "rules, removed per rule, rows per split, genre counts per split, label agreement "
        "TMDB/IMDb per genre, poster duplicates, splits, sha256 and size of every other "
        "file, library versions.",
    ),
    (
        "`README.md`",
        "The dataset card: Hugging Face YAML front matter (`configs` -> `data_files` per "
        "split), these statistics and the heatmap.",
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

Columns of `data/<split>.parquet`:

| column | type and meaning |
| --- | --- |
{columns}
"""


def format_doc() -> str:
    """The documentation of every file and column of a dataset version (Markdown)."""
    files = "\n".join(f"| {name} | {text} |" for name, text in FILES)
    rows = "\n".join(f"| `{column.name}` | {column.doc} |" for column in DATA_COLUMNS)
    return FORMAT_DOC.replace("{files}", files).replace("{columns}", rows)


def data_schema(n_labels: int) -> pa.Schema:
    """The Arrow schema of ``data/<split>.parquet`` for ``n_labels`` labels."""
    return pa.schema(
        [
            pa.field(
                column.name,
                column.type if column.type is not None else pa.list_(pa.int8(), n_labels),
                nullable=column.nullable,
            )
            for column in DATA_COLUMNS
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
