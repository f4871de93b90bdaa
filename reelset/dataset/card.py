"""The dataset card: a version's ``README.md``, with Hugging Face YAML front matter.

The front matter follows the Hugging Face dataset card metadata: ``configs`` (the data
files of each split), ``dataset_info.features`` (every column typed: the poster as
``Image``, the genres as ``Sequence(ClassLabel)`` in label order, the multi-hot
``labels`` as a fixed-length ``int8`` sequence), the licence and the language.
(``dataset_info.splits`` is left out: ``datasets`` ignores it without ``num_bytes``, the
size of its own Arrow cache, which reelset cannot know.) It is written
by hand, not with a YAML library: every scalar is a JSON string (valid YAML), so the
same manifest always gives the same bytes.

The body: provenance (never a local path: see :mod:`reelset.dataset.portable`), the
licence and attribution TMDB and IMDb require, statistics, the baseline scores when the
build trained one, and the format.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from reelset.dataset import format as data_format
from reelset.dataset.splits import SPLITS

TMDB_NOTICE = "This product uses the TMDB API but is not endorsed or certified by TMDB."
TMDB_TERMS = "https://www.themoviedb.org/api-terms-of-use"
IMDB_NOTICE = "Information courtesy of IMDb (https://www.imdb.com). Used with permission."
IMDB_TERMS = "https://developer.imdb.com/non-commercial-datasets/"

BASELINE_METRICS = (
    "micro_f1",
    "macro_f1",
    "weighted_f1",
    "samples_f1",
    "precision_at_3",
    "recall_at_3",
)

# Arrow -> the `dtype` of a Hugging Face `Value` feature.
_HF_VALUE_TYPES = {
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
}


def _q(text: str) -> str:
    """A YAML scalar: a JSON string is valid YAML and needs no escaping rules of its own."""
    return json.dumps(text, ensure_ascii=False)


def images_mode(manifest: dict[str, Any]) -> str:
    """How the version holds its posters: ``embed``, ``webdataset`` or ``reference``.

    Versions written before images were embedded have no ``images`` entry: references.
    """
    images = manifest.get("images") or {}
    return str(images.get("mode", "reference"))


def data_files(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """The parquet files of each split, relative to the version folder."""
    listed = manifest.get("data_files") or {}
    return {split: list(listed.get(split) or [f"data/{split}.parquet"]) for split in SPLITS}


def data_schema(manifest: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of the version's split files (the image column in embed mode)."""
    return data_format.data_schema(int(manifest["labels"]["count"]), images=images_mode(manifest))


def _is_image(field: pa.Field) -> bool:
    return (
        pa.types.is_struct(field.type)
        and sorted(field.type.field(i).name for i in range(field.type.num_fields))
        == ["bytes", "path"]
    )


def feature_yaml(field: pa.Field, label_names: list[str]) -> list[str]:
    """The ``dataset_info.features`` entry of one column (YAML lines, list item first).

    ``genres`` becomes ``Sequence(ClassLabel(names=label_names))``: the parquet keeps the
    names (list<string>) and ``datasets`` casts them to class ids on load.
    """
    head = f"  - name: {_q(field.name)}"
    if _is_image(field):
        return [head, "    dtype: image"]
    if field.name == "genres":
        names = [f"          {_q(str(i))}: {_q(name)}" for i, name in enumerate(label_names)]
        return [head, "    sequence:", "      class_label:", "        names:", *names]
    kind = field.type
    if pa.types.is_fixed_size_list(kind):
        return [
            head,
            f"    sequence: {_HF_VALUE_TYPES[kind.value_type]}",
            f"    length: {kind.list_size}",
        ]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [head, f"    sequence: {_HF_VALUE_TYPES[kind.value_type]}"]
    return [head, f"    dtype: {_HF_VALUE_TYPES[kind]}"]


def uses_imdb(manifest: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether IMDb data shaped the version (its labels, or the agreement figures)."""
    agreement = manifest.get("label_agreement") or {}
    return labels["label_source"] != "tmdb" or bool(agreement.get("movies_compared"))


def text_language(manifest: dict[str, Any]) -> str:
    """The language of the text (overviews, titles): TMDB's request language, ``en-US``
    -> ``en``. (``[build] languages`` filters the movies' *original* language, not this.)"""
    tmdb = (manifest.get("config") or {}).get("tmdb") or {}
    return str(tmdb.get("language") or "en").split("-")[0].lower() or "en"


def _size_category(total: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if total < limit:
            return name
    return "10M<n<100M"


def front_matter(manifest: dict[str, Any], labels: dict[str, Any]) -> list[str]:
    """The YAML front matter (lines, with the ``---`` fences)."""
    rows = manifest["rows"]
    imdb = uses_imdb(manifest, labels)
    files = data_files(manifest)
    names = [lab["name"] for lab in labels["labels"]]
    lines = [
        "---",
        f"pretty_name: {_q(manifest['name'] + ' ' + manifest['version'])}",
        "license: other",
        "license_name: " + ("tmdb-api-terms-and-imdb-non-commercial" if imdb else "tmdb-api-terms"),
        f"license_link: {_q('README.md' if imdb else TMDB_TERMS)}",
        "language:",
        f"- {text_language(manifest)}",
        "task_categories:",
        "- text-classification",
        "- image-classification",
        "task_ids:",
        "- multi-label-classification",
        "- multi-label-image-classification",
        "tags:",
        "- movies",
        "- genres",
        "- multimodal",
        "- tmdb",
        *(["- imdb"] if imdb else []),
        "size_categories:",
        f"- {_size_category(int(rows['total']))}",
        "configs:",
        "- config_name: default",
        "  default: true",
        "  data_files:",
    ]
    for split in SPLITS:
        lines += [f"  - split: {split}", "    path:", *[f"    - {_q(p)}" for p in files[split]]]
    # No second config for WebDataset tars: `datasets` picks one loader for every config
    # of a folder (parquet here), so the card shows the explicit call instead.
    lines += ["dataset_info:", "  config_name: default", "  features:"]
    for field in data_schema(manifest):
        lines += ["  " + line for line in feature_yaml(field, names)]
    lines.append("---")
    return lines


def _store_line(store: dict[str, Any]) -> str:
    where = store.get("url") or store.get("database") or "unknown"
    movies = (store.get("row_counts") or {}).get("movies")
    counted = f", {movies:,} movies" if isinstance(movies, int) else ""
    return (
        f"- store: {store.get('backend', 'unknown')} database `{where}` "
        f"(schema {store.get('schema_version')}{counted})"
    )


def licence_section(manifest: dict[str, Any], labels: dict[str, Any]) -> list[str]:
    """Sources, terms and the notices TMDB (always) and IMDb (when used) require."""
    lines = [
        "## Licence and attribution",
        "",
        f"{TMDB_NOTICE}",
        "",
        "Titles, overviews, genres, popularity figures and posters come from "
        f"[The Movie Database (TMDB)](https://www.themoviedb.org) under the [TMDB API terms of "
        f"use]({TMDB_TERMS}); posters remain the property of their rights holders.",
    ]
    if uses_imdb(manifest, labels):
        lines += [
            "",
            f"{IMDB_NOTICE}",
            "",
            "IMDb genres (labels and/or the TMDB/IMDb agreement figures) come from the [IMDb "
            f"non-commercial datasets]({IMDB_TERMS}): personal and non-commercial use only.",
        ]
    lines += [
        "",
        "The dataset is therefore not under an open licence (`license: other`): use it for "
        "research and other non-commercial purposes, keep these notices, and check the "
        "terms above before redistributing it.",
        "",
    ]
    return lines


def baseline_section(baseline: dict[str, Any] | None) -> list[str]:
    """The baseline's scores (a short table), or nothing when the build trained none."""
    if not baseline:
        return []
    splits = [s for s in ("validation", "test") if isinstance(baseline.get(s), dict)]
    if baseline.get("skipped") or not splits:
        why = baseline.get("skipped") or "no scores"
        return ["## Baseline", "", f"No text baseline was trained: {why}.", ""]
    lines = [
        "## Baseline",
        "",
        f"`{baseline.get('model', 'baseline')}`, trained on "
        f"{int(baseline.get('train_samples', 0)):,} training movies, per-label thresholds "
        "tuned on validation:",
        "",
        "| metric | " + " | ".join(splits) + " |",
        "| --- | " + " | ".join("---:" for _ in splits) + " |",
    ]
    for metric in BASELINE_METRICS:
        cells = []
        for split in splits:
            value = baseline[split].get(metric)
            cells.append(f"{value:.4f}" if isinstance(value, int | float) else "-")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _loading_section(manifest: dict[str, Any]) -> list[str]:
    mode = images_mode(manifest)
    lines = [
        "## Loading",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("<this folder>")  # the features come from this card',
        'ds["train"].features["genres"].feature.names  # the label names, in label order',
        "",
        "from reelset.dataset import load",
        'train = load(path="<this folder>", split="train")  # pandas',
        "```",
        "",
        "The data files are plain parquet (pandas, pyarrow, DuckDB read them as they are) and "
        "`croissant.json` describes them in [Croissant](https://mlcommons.org/croissant/) "
        "(`mlcroissant.Dataset(jsonld=\"croissant.json\")`).",
        "",
    ]
    if mode == "embed":
        lines += [
            "Posters are embedded: the `image` column holds each poster's encoded bytes "
            "(`{bytes, path}`, the Hugging Face `Image` layout; null when the movie has none).",
            "",
        ]
    elif mode == "webdataset":
        tars = manifest.get("webdataset_files") or {}
        files = ", ".join(
            f'"{split}": {json.dumps(tars.get(split) or [f"data/{split}-*.tar"])}'
            for split in SPLITS
        )
        lines += [
            "Posters are in WebDataset tar shards (per movie `<tmdb_id>.json` and the poster, "
            "e.g. `<tmdb_id>.jpg`); the "
            "parquet files hold the other columns. With Hugging Face `datasets`, from this "
            "folder:",
            "",
            "```python",
            f'datasets.load_dataset("webdataset", data_files={{{files}}})',
            "```",
            "",
        ]
    else:
        lines += [
            "Posters are not included: `poster_file` names each poster's file relative to "
            "the posters folder of the store that built the version.",
            "",
        ]
    return lines


def dataset_card(manifest: dict[str, Any], labels: dict[str, Any]) -> str:
    """README.md: Hugging Face front matter, provenance, licence, statistics and format."""
    rows = manifest["rows"]
    total = int(rows["total"])
    lines = [
        *front_matter(manifest, labels),
        "",
        f"# {manifest['name']} {manifest['version']}",
        "",
        "Multi-label genre classification of movies from TMDB"
        + (" and IMDb" if labels["label_source"] != "tmdb" else "")
        + " (overview text and poster image), built by reelset from its store (label "
        f"source: `{labels['label_source']}`).",
        "",
        f"- created: {manifest['created_at']}",
        f"- parent version: {manifest['parent_version'] or 'none'}",
        f"- fingerprint: `{manifest['fingerprint']}`",
        _store_line(manifest["store"]),
        "",
        *_loading_section(manifest),
        *licence_section(manifest, labels),
        "## Rows",
        "",
        "| split | movies |",
        "| --- | ---: |",
        *[f"| {s} | {rows[s]:,} |" for s in SPLITS],
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
    lines += baseline_section(manifest.get("baseline"))
    lines += [
        "## Genre co-occurrence",
        "",
        "![P(column | row), genres ordered by spectral co-clustering](cooccurrence.png)"
        if manifest.get("heatmap", "cooccurrence.png")
        else "The matrices are in `cooccurrence.parquet` (no heatmap: matplotlib was not "
        "installed when this version was built).",
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
        data_format.format_doc().replace("### Dataset format", "## Format"),
    ]
    return "\n".join(lines)
