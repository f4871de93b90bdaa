"""``croissant.json``: the Croissant 1.0 (MLCommons, JSON-LD) description of a version.

What it holds:

- ``distribution``: one ``cr:FileObject`` per data file (path relative to the version
  folder, sha256, size, encoding format), and one ``cr:FileSet`` per split naming that
  split's parquet files (one or several shards);
- ``recordSet``: ``genre_labels`` (the label set, inline: index, id, name, in label
  order) and one record set per split with every column typed (``sc:Integer``,
  ``sc:Text``, ``sc:Float``, ``sc:Boolean``; lists as ``repeated`` fields); the poster,
  when embedded, is ``sc:ImageObject`` read from the ``bytes`` of the parquet ``image``
  column (as the Hugging Face Croissant endpoint does);
- licence, citation, and the responsible-AI fields ``rai:dataCollection``,
  ``rai:dataBiases`` (with the measured TMDB/IMDb genre agreement) and
  ``rai:dataLimitations``.

``mlcroissant.Dataset(jsonld="croissant.json")`` loads it from the version folder.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from reelset.dataset.card import (
    IMDB_NOTICE,
    IMDB_TERMS,
    TMDB_NOTICE,
    TMDB_TERMS,
    data_files,
    data_schema,
    images_mode,
    text_language,
    uses_imdb,
)
from reelset.dataset.splits import SPLITS

CROISSANT_FILE = "croissant.json"

# The standard Croissant 1.0 @context (https://docs.mlcommons.org/croissant/docs/croissant-spec.html).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

ENCODINGS = {".parquet": "application/x-parquet", ".tar": "application/x-tar"}


def _data_type(kind: pa.DataType) -> str:
    """The Croissant data type of an Arrow (value) type."""
    if pa.types.is_boolean(kind):
        return "sc:Boolean"
    if pa.types.is_integer(kind):
        return "sc:Integer"
    if pa.types.is_floating(kind):
        return "sc:Float"
    return "sc:Text"


def _field(split: str, column: pa.Field, mode: str) -> dict[str, Any]:
    """The ``cr:Field`` of one parquet column in a split's record set."""
    source: dict[str, Any] = {
        "fileSet": {"@id": f"{split}-parquet"},
        "extract": {"column": column.name},
    }
    field: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{split}/{column.name}",
        "name": column.name,
    }
    kind = column.type
    if column.name == "image" and mode == "embed":
        field["dataType"] = "sc:ImageObject"
        source["transform"] = {"jsonPath": "bytes"}
        field["description"] = "The poster image (encoded bytes); null when there is none."
    elif pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        field["dataType"] = _data_type(kind.value_type)
        field["repeated"] = True
    else:
        field["dataType"] = _data_type(kind)
    if column.name == "genres":
        field["description"] = (
            "The movie's label names, in label order; each is a `name` of the genre_labels "
            "record set."
        )
    elif column.name == "labels":
        field["description"] = (
            "Multi-hot target: labels[i] = 1 iff the movie has the label at index i of the "
            "genre_labels record set."
        )
    field["source"] = source
    return field


def _labels_record_set(labels: dict[str, Any]) -> dict[str, Any]:
    """The label set, inline: which label each multi-hot position and genre name is."""
    columns = (("index", "sc:Integer"), ("id", "sc:Integer"), ("name", "sc:Text"))
    return {
        "@type": "cr:RecordSet",
        "@id": "genre_labels",
        "name": "genre_labels",
        "description": (
            "The labels in multi-hot order: index (position in `labels`), id (TMDB genre id, "
            "negative for IMDb-only genres) and name (as in `genres`)."
        ),
        "key": {"@id": "genre_labels/index"},
        "field": [
            {"@type": "cr:Field", "@id": f"genre_labels/{name}", "name": name, "dataType": kind}
            for name, kind in columns
        ],
        "data": [
            {f"genre_labels/{name}": lab[name] for name, _ in columns}
            for lab in labels["labels"]
        ],
    }


def _biases(manifest: dict[str, Any]) -> str:
    agreement = manifest.get("label_agreement") or {}
    parts = [
        "Genres are the labels TMDB's contributors (and, when used, IMDb) assigned: they are "
        "subjective and the two sources disagree."
    ]
    if agreement.get("movies_compared"):
        parts.append(
            f"On the {int(agreement['movies_compared']):,} movies of this version with genres "
            f"from both sources, the micro Jaccard index of their genre sets is "
            f"{agreement['micro_jaccard']} (1 = identical)."
        )
    parts.append(
        "The catalogue over-represents popular, recent, English-language and US productions "
        "(TMDB's coverage; only movies with an overview in the scrape's language are kept); "
        "the label distribution is long-tailed (Drama and Comedy dominate), and genres below "
        "the minimum count are dropped."
    )
    return " ".join(parts)


def croissant_document(
    manifest: dict[str, Any], labels: dict[str, Any], files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The Croissant JSON-LD document of a version.

    ``files`` maps each data file's path relative to the version folder to its
    ``{"sha256", "bytes"}``.
    """
    mode = images_mode(manifest)
    imdb = uses_imdb(manifest, labels)
    distribution: list[dict[str, Any]] = []
    for path in sorted(files):
        suffix = path[path.rfind(".") :]
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": path,
                "name": path,
                "contentUrl": path,
                "encodingFormat": ENCODINGS.get(suffix, "application/octet-stream"),
                "sha256": files[path]["sha256"],
                "contentSize": f"{int(files[path]['bytes'])} B",
            }
        )
    shards = data_files(manifest)
    for split in SPLITS:
        distribution.append(
            {
                "@type": "cr:FileSet",
                "@id": f"{split}-parquet",
                "name": f"{split}-parquet",
                "description": f"The parquet files of the {split} split.",
                "encodingFormat": "application/x-parquet",
                "includes": shards[split],
            }
        )
    schema = data_schema(manifest)
    record_sets = [_labels_record_set(labels)]
    for split in SPLITS:
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": split,
                "name": split,
                "description": f"The {split} split: one record per movie, sorted by tmdb_id.",
                "key": {"@id": f"{split}/tmdb_id"},
                "field": [_field(split, column, mode) for column in schema],
            }
        )
    version = manifest["version"]
    number = int(version[1:]) if version[1:].isdigit() else 0
    licences = [TMDB_TERMS, *([IMDB_TERMS] if imdb else [])]
    notices = " ".join([TMDB_NOTICE, *([IMDB_NOTICE] if imdb else [])])
    title = f"{manifest['name']} {version}"
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": f"{manifest['name']}-{version}",
        "description": (
            f"{title}: multi-label movie genre classification from the overview text and the "
            f"poster image, {int(manifest['rows']['total']):,} movies from TMDB"
            + (" with IMDb genres" if labels["label_source"] != "tmdb" else "")
            + f" (label source: {labels['label_source']}), built by reelset. {notices}"
        ),
        "version": f"{number}.0.0",
        "datePublished": manifest.get("created_at"),
        "inLanguage": text_language(manifest),
        "license": licences,
        "creditText": notices,
        "citeAs": (
            f"@misc{{{manifest['name']}_{version}, title = {{{title}: movie genres from TMDB"
            f"{' and IMDb' if imdb else ''}}}, note = {{Built with reelset "
            f"{manifest.get('reelset_version', '')}; fingerprint {manifest['fingerprint']}. "
            f"{notices}}}}}"
        ),
        "keywords": ["movies", "genres", "multi-label classification", "multimodal"],
        "isAccessibleForFree": True,
        "rai:dataCollection": (
            "Movies, overviews, genres and posters were scraped from the TMDB API (daily ID "
            "exports, discover and changes endpoints) into a local store"
            + (", IMDb genres imported from the IMDb non-commercial datasets" if imdb else "")
            + "; the builder deduplicates them (status, IMDb id, title + year + overview, "
            "overview), filters them (placeholder or short overviews, adult titles, missing "
            "genres) and splits them by iterative stratification, keeping every movie's split "
            "across versions."
        ),
        "rai:dataBiases": _biases(manifest),
        "rai:dataLimitations": (
            "Genres are per movie, not per poster or overview; rare genres are not labels. "
            "Popularity and vote counts are snapshots from the scrape. Posters are the "
            "rights holders' property: not for commercial use."
        ),
        "distribution": distribution,
        "recordSet": record_sets,
    }
