"""``images = "webdataset"``: tar shards beside metadata-only parquet, read back by the
``webdataset`` package and by Hugging Face ``datasets``."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reelset.dataset import load_arrow
from reelset.dataset.splits import SPLITS
from tests.dataset.conftest import Crafted, build, poster_jpeg, poster_row, random_movies

MIB = 1024 * 1024


@pytest.fixture
def built(crafted: Crafted) -> tuple[Crafted, Path, dict]:
    """100 movies with ~55 KB posters, except the last (so that no split starts without
    one), in tar shards of at most 1 MiB."""
    crafted.add(random_movies(100, seed=4))
    crafted.posters(poster_row(i, data=poster_jpeg(f"wds {i}", 200, 300)) for i in range(1, 100))
    result = build(crafted, images="webdataset", shard_max_bytes=MIB)
    manifest = json.loads((result.path / "manifest.json").read_text())
    return crafted, result.path, manifest


def test_layout_and_deterministic_tars(built: tuple[Crafted, Path, dict]) -> None:
    crafted, folder, manifest = built
    assert manifest["data_files"] == {s: [f"data/{s}.parquet"] for s in SPLITS}
    tars = manifest["webdataset_files"]
    assert tars["train"] == [f"data/train-{i:06d}.tar" for i in range(len(tars["train"]))]
    assert len(tars["train"]) >= 4  # ~4.4 MB of posters
    on_disk = sorted(p.relative_to(folder).as_posix() for p in (folder / "data").iterdir())
    assert on_disk == sorted([*(f for s in SPLITS for f in tars[s]),
                              *(f"data/{s}.parquet" for s in SPLITS)])
    metadata = pq.read_table(folder / "data" / "train.parquet")
    assert "image" not in metadata.column_names
    keys = []
    for rel in tars["train"]:
        assert (folder / rel).stat().st_size <= MIB
        with tarfile.open(folder / rel) as archive:
            for member in archive.getmembers():
                assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
                    0, 0, 0, "", "")
                assert member.isfile() and member.mode == 0o644
                keys.append(member.name)
    ids = metadata.column("tmdb_id").to_pylist()
    with_poster = set(range(1, 100))
    assert keys == [name for i in ids for name in (
        ([f"{i}.jpg"] if i in with_poster else []) + [f"{i}.json"])]
    images = manifest["images"]
    assert images["mode"] == "webdataset"
    assert sum(images["with_image"].values()) == 99
    # The same store and config give the same bytes.
    again = build(crafted, "out2", images="webdataset", shard_max_bytes=MIB)
    for split in SPLITS:
        for rel in tars[split]:
            assert (folder / rel).read_bytes() == (again.path / rel).read_bytes(), rel


def test_read_back_with_the_webdataset_package(built: tuple[Crafted, Path, dict]) -> None:
    wds = pytest.importorskip("webdataset")
    _, folder, manifest = built
    table = load_arrow(path=folder, split="all")
    rows = {r["tmdb_id"]: r for r in table.to_pylist()}
    seen = []
    for split in SPLITS:
        urls = [str(folder / rel) for rel in manifest["webdataset_files"][split]]
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            record = json.loads(sample["json"])
            row = rows[int(sample["__key__"])]
            assert record == {k: v for k, v in row.items() if k != "split"}
            assert row["split"] == split
            if row["poster_sha256"] is None:
                assert "jpg" not in sample
            else:
                assert hashlib.sha256(sample["jpg"]).hexdigest() == row["poster_sha256"]
            seen.append(record["tmdb_id"])
    assert sorted(seen) == sorted(rows)


def test_read_back_with_hugging_face_datasets(
    built: tuple[Crafted, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    _, folder, manifest = built
    files = {s: [str(folder / rel) for rel in manifest["webdataset_files"][s]] for s in SPLITS}
    loaded = datasets.load_dataset("webdataset", data_files=files,
                                   cache_dir=str(tmp_path / "cache"))
    for split in SPLITS:
        part = loaded[split]
        assert part.num_rows == manifest["rows"][split]
        assert isinstance(part.features["jpg"], datasets.Image)
        for example in part:
            record = example["json"]
            assert example["__key__"] == str(record["tmdb_id"])
            if record["poster_sha256"] is None:
                assert example["jpg"] is None
            else:
                assert example["jpg"].size == (record["poster_width"], record["poster_height"])
