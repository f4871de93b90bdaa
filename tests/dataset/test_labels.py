"""Label sources (tmdb, imdb, union) end to end, the agreement table, label identity."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from reelset.dataset import load_arrow
from reelset.dataset.build import BuildResult
from reelset.dataset.labels import imdb_label_id
from reelset.dataset.versions import read_labels, read_manifest
from tests.dataset.conftest import Crafted, build, movie

BIOGRAPHY = imdb_label_id("Biography")


@pytest.fixture
def sources(crafted: Crafted) -> Crafted:
    crafted.add(
        [
            movie(1, genre_ids=(18, 35)),
            movie(2, genre_ids=(28,)),
            movie(3, genre_ids=(878,)),
            movie(4, genre_ids=(18,)),  # no IMDb genres
            movie(5, genre_ids=()),  # IMDb genres only
            movie(6, genre_ids=(35,), imdb_id=None),
            movie(7, genre_ids=(10402,)),
        ]
    )
    crafted.imdb(
        {
            "tt0000001": ["Biography", "Drama"],
            "tt0000002": ["Action", "Sci-Fi"],
            "tt0000003": ["Sci-Fi"],
            "tt0000005": ["Musical"],
            "tt0000007": ["Music", "Musical"],
        }
    )
    return crafted


def _rows(result: BuildResult) -> dict[int, dict[str, Any]]:
    assert result.path is not None
    table = load_arrow(path=result.path, split="all").drop_columns(["split"])
    return {r["tmdb_id"]: r for r in table.to_pylist()}


def _labels(result: BuildResult) -> dict[str, Any]:
    assert result.path is not None
    return read_labels(result.path)


def test_imdb_only_label_identity() -> None:
    assert -(zlib.crc32(b"Biography") & 0x7FFFFFFF) - 1 == BIOGRAPHY
    assert BIOGRAPHY < 0 and imdb_label_id("Biography") == BIOGRAPHY
    assert imdb_label_id("Sport") != BIOGRAPHY


def test_tmdb_source(sources: Crafted) -> None:
    result = build(sources, label_source="tmdb")
    rows = _rows(result)
    assert sorted(rows) == [1, 2, 3, 4, 6, 7]
    assert result.removed["no_genres"] == 1
    labels = _labels(result)
    assert [(lab["id"], lab["name"]) for lab in labels["labels"]] == [
        (18, "Drama"), (28, "Action"), (35, "Comedy"), (878, "Science Fiction"), (10402, "Music"),
    ]
    assert rows[1]["genre_ids"] == [18, 35]
    assert rows[1]["genres"] == ["Drama", "Comedy"]
    assert rows[1]["labels"] == [1, 0, 1, 0, 0]


def test_imdb_source_maps_names_and_keeps_unmapped(sources: Crafted) -> None:
    result = build(sources, label_source="imdb")
    rows = _rows(result)
    assert sorted(rows) == [1, 2, 3, 5, 7]
    labels = _labels(result)
    assert [(lab["id"], lab["name"], lab["source"]) for lab in labels["labels"]] == [
        (18, "Drama", "tmdb"),
        (28, "Action", "tmdb"),
        (878, "Science Fiction", "tmdb"),
        (10402, "Music", "tmdb"),
        (BIOGRAPHY, "imdb:Biography", "imdb"),
    ]
    music = next(lab for lab in labels["labels"] if lab["id"] == 10402)
    assert music["imdb_genres"] == ["Music", "Musical"]
    assert rows[7]["genre_ids"] == [10402]  # Music and Musical are one label
    assert rows[5]["genres"] == ["Music"]
    assert rows[1]["genre_ids"] == [18, BIOGRAPHY]
    assert rows[1]["labels"] == [1, 0, 0, 0, 1]


def test_union_source_and_agreement_table(sources: Crafted) -> None:
    result = build(sources, label_source="union")
    rows = _rows(result)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    assert rows[1]["genres"] == ["Drama", "Comedy", "imdb:Biography"]
    assert rows[2]["genre_ids"] == [28, 878]
    manifest = read_manifest(result.path)
    agreement = manifest["label_agreement"]
    assert agreement["movies_compared"] == 4  # 1, 2, 3 and 7 have both
    table = {g["name"]: (g["tmdb"], g["imdb"], g["both"], g["jaccard"])
             for g in agreement["genres"]}
    assert table == {
        "Drama": (1, 1, 1, 1.0),
        "Comedy": (1, 0, 0, 0.0),
        "Action": (1, 1, 1, 1.0),
        "Science Fiction": (1, 2, 1, 0.5),
        "Music": (1, 1, 1, 1.0),
    }
    assert agreement["imdb_only_genres"] == ["imdb:Biography"]
    assert agreement["micro_jaccard"] == pytest.approx(4 / 6)
    assert "TMDB / IMDb genre agreement" in (result.path / "README.md").read_text()
