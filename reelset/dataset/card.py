"""The dataset card: a version's ``README.md``, with Hugging Face YAML front matter."""

from __future__ import annotations

from typing import Any

from reelset.dataset.format import format_doc


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
