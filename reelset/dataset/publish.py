"""Writing a dataset version: parquet files, labels.json, manifest, dataset card.

Parquet files are written with pinned writer options (:data:`PARQUET_OPTIONS`) from
Arrow tables built with explicit schemas, so the same content gives the same bytes: no
timestamps or pandas metadata, zstd level 3, statistics on, dictionary encoding on,
row groups of ``[build] row_group_size`` rows.

The content fingerprint (``manifest.json`` ``fingerprint``) is a sha256 over the Arrow
IPC stream of every data table (the splits, removed movies, poster duplicates), the
label set and the settings that shape the content (``[build]`` without ``output_dir``
and ``name``, and ``[genres]``). It does not cover created_at, file paths or library
versions, so a rebuild from the same store and settings has the same fingerprint, and
the builder then says ``unchanged`` instead of making a new version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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

DATA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tmdb_id", "int64. TMDB movie id; unique across the three splits; rows are sorted by it."),
    ("imdb_id", "string, nullable. IMDb id (tt...), as TMDB gave it."),
    ("title", "string. TMDB title."),
    ("year", "int32, nullable. Release year."),
    ("overview", "string. TMDB overview (the text input), never empty (see the filters)."),
    (
        "genre_ids",
        "list<int32>. The movie's label ids, in label order (labels.json): TMDB genre ids, "
        "negative for IMDb-only labels. Only genres in the label set appear.",
    ),
    ("genres", "list<string>. The names of genre_ids, same order (e.g. imdb:Biography)."),
    (
        "labels",
        "fixed_size_list<int8>[N]. Multi-hot target: labels[i] = 1 iff the movie has the "
        "label at index i of labels.json (N = number of labels).",
    ),
    (
        "poster_file",
        "string, nullable. The poster image, as a path relative to [storage] posters_dir "
        "(<sha256[:2]>/<sha256>.<ext>); null when there is no poster with status ok, or "
        "when drop_poster_duplicates removed a duplicate's reference.",
    ),
    ("poster_sha256", "string, nullable. sha256 of the poster file's bytes."),
    ("poster_width", "int32, nullable. Poster width in pixels."),
    ("poster_height", "int32, nullable. Poster height in pixels."),
    ("original_language", "string, nullable. ISO 639-1 code of the original language."),
    ("popularity", "float64, nullable. TMDB popularity when last scraped."),
    ("vote_count", "int64, nullable. TMDB vote count when last scraped."),
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
    rows = "\n".join(f"| `{name}` | {text} |" for name, text in DATA_COLUMNS)
    return FORMAT_DOC.replace("{files}", files).replace("{columns}", rows)


def data_schema(n_labels: int) -> pa.Schema:
    """The Arrow schema of ``data/<split>.parquet`` for ``n_labels`` labels."""
    types: dict[str, pa.DataType] = {
        "tmdb_id": pa.int64(),
        "imdb_id": pa.string(),
        "title": pa.string(),
        "year": pa.int32(),
        "overview": pa.string(),
        "genre_ids": pa.list_(pa.int32()),
        "genres": pa.list_(pa.string()),
        "labels": pa.list_(pa.int8(), n_labels),
        "poster_file": pa.string(),
        "poster_sha256": pa.string(),
        "poster_width": pa.int32(),
        "poster_height": pa.int32(),
        "original_language": pa.string(),
        "popularity": pa.float64(),
        "vote_count": pa.int64(),
    }
    nullable = {"tmdb_id": False, "title": False, "overview": False, "genre_ids": False,
                "genres": False, "labels": False}
    return pa.schema(
        [pa.field(name, types[name], nullable=nullable.get(name, True)) for name, _ in DATA_COLUMNS]
    )


def write_parquet(table: pa.Table, path: Path, *, row_group_size: int) -> None:
    """Write ``table`` with the pinned options, then fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size, **PARQUET_OPTIONS)
    _fsync(path)


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    _fsync(path)


def dump_json(data: Any) -> str:
    """Stable, readable JSON (the same data gives the same text)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> dict[str, Any]:
    """sha256 and size in bytes of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


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


def dataset_card(manifest: dict[str, Any], labels: dict[str, Any]) -> str:
    """README.md: Hugging Face front matter, statistics, heatmap and the format."""
    rows = manifest["rows"]
    total = int(rows["total"])
    size = (
        "n<1K" if total < 1_000 else "1K<n<10K" if total < 10_000
        else "10K<n<100K" if total < 100_000 else "100K<n<1M" if total < 1_000_000
        else "1M<n<10M"
    )
    splits = [s for s in ("train", "validation", "test")]
    front = [
        "---",
        f"pretty_name: {manifest['name']} {manifest['version']}",
        "task_categories:",
        "- text-classification",
        "- image-classification",
        "task_ids:",
        "- multi-label-classification",
        "size_categories:",
        f"- {size}",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split in splits:
        front += [f"  - split: {split}", f"    path: data/{split}.parquet"]
    front.append("---")

    lines = [
        *front,
        "",
        f"# {manifest['name']} {manifest['version']}",
        "",
        "Multi-label genre classification of movies from TMDB"
        + (" and IMDb" if labels["label_source"] != "tmdb" else "")
        + f", built by reelset from its store (label source: `{labels['label_source']}`).",
        "",
        f"- created: {manifest['created_at']}",
        f"- parent version: {manifest['parent_version'] or 'none'}",
        f"- fingerprint: `{manifest['fingerprint']}`",
        f"- store: `{manifest['store']['url']}` (schema {manifest['store']['schema_version']})",
        "",
        "Load it with `reelset.dataset.load(name, version, split)`, with pandas/pyarrow "
        "(`data/<split>.parquet`), or with `datasets.load_dataset(\"parquet\", "
        "data_dir=<this folder>)`.",
        "",
        "## Rows",
        "",
        "| split | movies |",
        "| --- | ---: |",
        *[f"| {s} | {rows[s]:,} |" for s in splits],
        f"| total | {total:,} |",
        "",
        "## Labels",
        "",
        "| index | id | label | all | train | validation | test |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {lab['index']} | {lab['id']} | {lab['name']} | {lab['counts']['all']:,} | "
            f"{lab['counts']['train']:,} | {lab['counts']['validation']:,} | "
            f"{lab['counts']['test']:,} |"
            for lab in labels["labels"]
        ],
        "",
    ]
    if labels["dropped"]:
        dropped = ", ".join(f"{d['name']} ({d['count']})" for d in labels["dropped"])
        lines += [
            f"Genres with fewer than {labels['min_genre_count']} movies are not labels: "
            f"{dropped}.",
            "",
        ]
    lines += [
        "## Genre co-occurrence",
        "",
        "![P(column | row), genres ordered by spectral co-clustering](cooccurrence.png)",
        "",
        "## Removed movies",
        "",
        "| rule | movies | meaning |",
        "| --- | ---: | --- |",
        *[
            f"| {rule} | {count:,} | {manifest['rules'][rule]} |"
            for rule, count in manifest["removed"].items()
        ],
        "",
    ]
    agreement = manifest["label_agreement"]
    if agreement["movies_compared"]:
        lines += [
            "## TMDB / IMDb genre agreement",
            "",
            f"On the {agreement['movies_compared']:,} movies with genres from both sources "
            f"(micro Jaccard {agreement['micro_jaccard']}):",
            "",
            "| genre | TMDB | IMDb | both | Jaccard |",
            "| --- | ---: | ---: | ---: | ---: |",
            *[
                f"| {g['name']} | {g['tmdb']:,} | {g['imdb']:,} | {g['both']:,} | "
                f"{g['jaccard'] if g['jaccard'] is not None else '-'} |"
                for g in agreement["genres"]
            ],
            "",
        ]
    dups = manifest["poster_duplicates"]
    lines += [
        "## Posters",
        "",
        f"Poster duplicates among the dataset's movies: {dups['sha256']:,} byte-identical, "
        f"{dups['phash']:,} near-identical (phash within {dups['max_distance']} bits); "
        f"references dropped: {dups['references_dropped']:,}.",
        "",
        format_doc().replace("### Dataset format", "## Format"),
    ]
    return "\n".join(lines)
