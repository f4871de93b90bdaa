"""The dataset card (README.md) and what a version says about where it was built."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from reelset.config import settings_from_dict
from reelset.dataset.card import TMDB_NOTICE, dataset_card
from reelset.dataset.portable import describe_database, portable_config
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import read_manifest
from tests.dataset.conftest import Crafted, build, plan_for, poster_row, random_movies
from tests.dataset.test_portable import write_poster

IMDB_NOTICE_START = "Information courtesy of IMDb"


def card_of(manifest: dict[str, Any], labels: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(front matter as data, body) of the card of a manifest."""
    text = dataset_card({**manifest, "created_at": "2026-11-21T12:00:00Z"}, labels)
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.fixture
def planned(crafted: Crafted) -> Any:
    crafted.add(random_movies(50, seed=3))
    crafted.posters(poster_row(i) for i in range(1, 30))
    return plan_for(crafted)


def test_features_type_every_column_in_label_order(planned: Any) -> None:
    manifest = {**planned.manifest, "images": {"mode": "reference"}}
    front, _ = card_of(manifest, planned.labels_doc)
    info = front["dataset_info"]
    names = [f["name"] for f in info["features"]]
    assert names == planned.splits["train"].schema.names
    features = datasets.Features._from_yaml_list(info["features"])
    genres = features["genres"].feature
    assert isinstance(genres, datasets.ClassLabel)
    assert genres.names == [lab["name"] for lab in planned.labels_doc["labels"]]
    assert features["labels"].length == len(planned.labels_doc["labels"])
    assert features["labels"].feature.dtype == "int8"
    assert features["tmdb_id"].dtype == "int64" and features["popularity"].dtype == "float64"
    assert features["genre_ids"].feature.dtype == "int32"
    (config,) = front["configs"]
    assert {d["split"]: d["path"] for d in config["data_files"]} == {
        s: [f"data/{s}.parquet"] for s in SPLITS
    }
    assert front["license"] == "other" and front["license_name"] == "tmdb-api-terms"
    assert front["language"] == ["en"]


def test_embed_and_webdataset_modes(planned: Any) -> None:
    shards = {s: [f"data/{s}-00000-of-00002.parquet", f"data/{s}-00001-of-00002.parquet"]
              for s in SPLITS}
    embed = {**planned.manifest, "images": {"mode": "embed"}, "data_files": shards}
    front, body = card_of(embed, planned.labels_doc)
    features = {f["name"]: f for f in front["dataset_info"]["features"]}
    assert features["image"] == {"name": "image", "dtype": "image"}
    assert front["configs"][0]["data_files"][0]["path"] == shards["train"]
    assert "`image` column" in body

    tars = {s: [f"data/{s}-000000.tar"] for s in SPLITS}
    web = {**planned.manifest, "images": {"mode": "webdataset"}, "webdataset_files": tars}
    front, body = card_of(web, planned.labels_doc)
    assert "image" not in [f["name"] for f in front["dataset_info"]["features"]]
    assert [c["config_name"] for c in front["configs"]] == ["default"]
    assert '"test": ["data/test-000000.tar"]' in body


def test_imdb_notice_only_when_imdb_data_is_used(crafted: Crafted) -> None:
    crafted.add(random_movies(50, seed=5))
    tmdb_only = plan_for(crafted)
    front, body = card_of(tmdb_only.manifest, tmdb_only.labels_doc)
    assert TMDB_NOTICE in body and IMDB_NOTICE_START not in body

    crafted.imdb({f"tt{i:07d}": ["Drama", "Biography"] for i in range(1, 51)})
    union = plan_for(crafted, label_source="union")
    front, body = card_of(union.manifest, union.labels_doc)
    assert TMDB_NOTICE in body and IMDB_NOTICE_START in body
    assert front["license_name"] == "tmdb-api-terms-and-imdb-non-commercial"
    assert "imdb:Biography" in front["dataset_info"]["features"][6]["sequence"]["class_label"][
        "names"].values()


def test_baseline_table_when_present(planned: Any) -> None:
    manifest = copy.deepcopy(planned.manifest)
    manifest.pop("baseline", None)
    _, body = card_of(manifest, planned.labels_doc)
    assert "## Baseline" not in body
    scores = {"micro_f1": 0.61234, "macro_f1": 0.4, "weighted_f1": 0.5, "samples_f1": 0.55,
              "precision_at_3": 0.3, "recall_at_3": 0.7}
    manifest["baseline"] = {
        "model": "tfidf+logreg", "train_samples": 40, "thresholds": {},
        "test": scores, "validation": {**scores, "micro_f1": 0.5},
        "per_label": {},
    }
    _, body = card_of(manifest, planned.labels_doc)
    assert "## Baseline" in body and "`tfidf+logreg`" in body
    assert "| micro_f1 | 0.5000 | 0.6123 |" in body


def test_databases_are_described_without_secrets_or_folders(tmp_path: Path) -> None:
    assert describe_database(f"sqlite:///{tmp_path}/store/reelset.db") == {
        "backend": "sqlite", "database": "reelset.db"}
    assert describe_database(
        "postgresql+psycopg://bob:s3cret@db.example:5432/films?sslrootcert=/home/bob/ca.pem"
    ) == {"backend": "postgresql", "database": "films",
          "url": "postgresql+psycopg://db.example:5432/films"}
    settings = settings_from_dict({
        "storage": {"url": "postgresql://bob:s3cret@db/films",
                    "posters_dir": str(tmp_path / "posters")},
        "build": {"output_dir": str(tmp_path / "out")},
        "imdb": {"cinemagoer_uri": f"sqlite:///{tmp_path}/imdb.db"},
    }, base_dir=tmp_path)
    config = portable_config(settings)
    text = repr(config)
    assert str(tmp_path) not in text and "s3cret" not in text and "bob" not in text
    assert config["storage"]["database"]["url"] == "postgresql://db/films"
    assert config["imdb"]["cinemagoer_uri"] == {"backend": "sqlite", "database": "imdb.db"}
    assert "output_dir" not in config["build"] and "posters_dir" not in config["storage"]


@pytest.mark.parametrize("images", ["embed", "webdataset", "reference"])
def test_no_file_of_a_version_names_a_local_folder(crafted: Crafted, images: str) -> None:
    crafted.add(random_movies(60, seed=8))
    crafted.posters(write_poster(crafted.tmp_path / "posters", i) for i in range(1, 40))
    one = build(crafted, "out1", images=images).path
    two = build(crafted, "out2", images=images).path
    local = str(crafted.tmp_path).encode()
    files = sorted(p for p in one.rglob("*") if p.is_file())
    assert {"manifest.json", "README.md", "labels.json"} <= {p.name for p in files}
    for path in files:
        assert local not in path.read_bytes(), path.name
        if path.suffix == ".parquet":
            assert local not in repr(pq.read_table(path).to_pylist()).encode(), path.name
    manifest = read_manifest(one)
    assert manifest["store"]["database"] == "reelset.db"
    # Nothing in the description depends on where the version was written (the store's
    # row counts may change: a build is a recorded run).
    for name in ("README.md", "croissant.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    first, second = manifest, read_manifest(two)
    for described in (first, second):
        described["store"].pop("row_counts")
    assert first == second
