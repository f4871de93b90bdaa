"""A version is self-contained: copied where there is no store, no config and no posters
folder, it loads with reelset, pandas, pyarrow, Hugging Face datasets and mlcroissant."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import datasets
import mlcroissant as mlc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reelset.dataset import load
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import read_labels, read_manifest
from tests.dataset.conftest import Crafted, build, poster_row, random_movies


def write_poster(posters_dir: Path, tmdb_id: int) -> dict[str, Any]:
    """A real JPEG poster in the store's layout and its ``posters`` row."""
    size = (40 + tmdb_id % 9, 60 + tmdb_id % 4)
    out = io.BytesIO()
    Image.new("RGB", size, (tmdb_id * 5 % 256, 90, 30)).save(out, format="JPEG", quality=85)
    data = out.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = posters_dir / sha[:2] / f"{sha}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {**poster_row(tmdb_id, sha=sha), "width": size[0], "height": size[1]}


@pytest.fixture
def copied(crafted: Crafted, tmp_path_factory: pytest.TempPathFactory,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[int, bytes]]:
    """A built version (default settings: posters embedded) copied to a bare folder, with
    the store, the posters and the original output gone; the poster bytes by tmdb_id."""
    crafted.add(random_movies(45, seed=11))
    posters_dir = crafted.tmp_path / "posters"
    rows = [write_poster(posters_dir, i) for i in range(1, 46) if i % 4]
    crafted.posters(rows)
    posters = {
        row["tmdb_id"]: (posters_dir / row["file_path"]).read_bytes() for row in rows
    }
    built = build(crafted).path
    fresh = tmp_path_factory.mktemp("elsewhere")
    target = fresh / "genres-v0001"
    shutil.copytree(built, target)
    for leftover in ("out", "posters", "store"):
        shutil.rmtree(crafted.tmp_path / leftover)
    monkeypatch.delenv("REELSET_CONFIG", raising=False)
    monkeypatch.chdir(fresh)
    return target, posters


def test_loads_with_reelset_pandas_and_pyarrow(copied: tuple[Path, dict[int, bytes]]) -> None:
    folder, posters = copied
    manifest = read_manifest(folder)
    n_labels = manifest["labels"]["count"]
    for split in SPLITS:
        files = [folder / rel for rel in manifest["data_files"][split]]
        assert all(f.name.startswith(f"{split}-") for f in files)
        frame = load(path=folder, split=split)
        assert len(frame) == manifest["rows"][split]
        assert np.stack(frame["labels"].to_list()).shape == (len(frame), n_labels)
        direct = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        assert direct["tmdb_id"].tolist() == frame["tmdb_id"].tolist()
        table = pq.ParquetDataset(files).read()
        assert table.column("tmdb_id").to_pylist() == frame["tmdb_id"].tolist()
        for tmdb_id, image in zip(
            table.column("tmdb_id").to_pylist(), table.column("image").to_pylist(), strict=True
        ):
            if tmdb_id in posters:
                assert image["bytes"] == posters[tmdb_id]
            else:
                assert image is None


def test_loads_with_hugging_face_datasets(
    copied: tuple[Path, dict[int, bytes]], tmp_path: Path
) -> None:
    folder, posters = copied
    label_names = [lab["name"] for lab in read_labels(folder)["labels"]]
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
    assert sorted(loaded) == sorted(SPLITS)
    train = loaded["train"]
    assert train.features["genres"].feature.names == label_names
    assert isinstance(train.features["image"], datasets.Image)
    raw = train.cast_column("image", datasets.Image(decode=False))
    seen = 0
    for row, undecoded in zip(train, raw, strict=True):
        names = train.features["genres"].feature.int2str(row["genres"])
        assert all(name in label_names for name in names) and names
        assert len(row["labels"]) == len(label_names)
        assert [label_names[i] for i, v in enumerate(row["labels"]) if v] == names
        if row["tmdb_id"] in posters:
            original = Image.open(io.BytesIO(posters[row["tmdb_id"]]))
            assert row["image"].size == original.size
            assert hashlib.sha256(undecoded["image"]["bytes"]).hexdigest() == (
                hashlib.sha256(posters[row["tmdb_id"]]).hexdigest()
            )
            seen += 1
        else:
            assert row["image"] is None
    assert seen


def test_loads_with_mlcroissant(copied: tuple[Path, dict[int, bytes]]) -> None:
    folder, posters = copied
    manifest = read_manifest(folder)
    dataset = mlc.Dataset(jsonld=str(folder / "croissant.json"))
    for split in SPLITS:
        table = pq.ParquetDataset([folder / r for r in manifest["data_files"][split]]).read()
        records = list(dataset.records(record_set=split))
        assert [r[f"{split}/tmdb_id"] for r in records] == table.column("tmdb_id").to_pylist()
    with_poster = 0
    for record in dataset.records(record_set="train"):
        tmdb_id = record["train/tmdb_id"]
        if tmdb_id not in posters:
            assert record["train/image"] is None
            continue
        original = Image.open(io.BytesIO(posters[tmdb_id]))
        assert record["train/image"].size == original.size
        assert record["train/image"].tobytes() == original.tobytes()
        with_poster += 1
    assert with_poster
