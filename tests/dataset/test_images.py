"""Posters inside dataset versions: embed shards, resizing, reference mode, bad files, memory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import reelset.dataset.publish as publish
import reelset.dataset.shards as shards
from reelset.cli import main
from reelset.dataset import load, load_arrow
from reelset.dataset.build import build_dataset
from reelset.dataset.images import PosterReader, PosterRef
from reelset.dataset.splits import SPLITS
from reelset.errors import StoreError
from reelset.posters.verify import training_copy
from tests.dataset.conftest import (
    FIXED_NOW,
    Crafted,
    build,
    movie,
    poster_jpeg,
    poster_row,
    random_movies,
)

MIB = 1024 * 1024
SHARD_NAME = re.compile(r"^data/(?P<split>[a-z]+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.parquet$")


def _png_rgba(width: int, height: int) -> bytes:
    image = Image.new("RGBA", (width, height), (200, 30, 30, 128))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def with_posters(crafted: Crafted) -> Crafted:
    """60 movies with 200x300 noise posters (~55 KB each), movie 61 with one over 1 MiB,
    movies 62-64 without a poster."""
    crafted.add(random_movies(64, seed=3))
    rows = [poster_row(i, data=poster_jpeg(f"big {i}", 200, 300)) for i in range(1, 61)]
    rows.append(poster_row(61, data=poster_jpeg("huge", 1150, 1150)))
    crafted.posters(rows)
    return crafted


def _posters_of(crafted: Crafted) -> dict[int, bytes]:
    """tmdb_id -> the poster file's bytes, from the store's rows and the posters folder."""
    with crafted.store.read() as conn:
        rows = conn.exec_driver_sql("SELECT tmdb_id, file_path FROM posters").all()
    return {i: (crafted.posters_dir / f).read_bytes() for i, f in rows}


def test_embed_shards_hold_the_posters_bytes(with_posters: Crafted) -> None:
    result = build(with_posters, shard_max_bytes=MIB, row_group_size=100)
    manifest = json.loads((result.path / "manifest.json").read_text())
    posters = _posters_of(with_posters)
    on_disk = sorted(p.relative_to(result.path).as_posix()
                     for p in (result.path / "data").iterdir())
    assert on_disk == sorted(f for s in SPLITS for f in manifest["data_files"][s])
    assert not any(p.startswith("data/.") for p in on_disk)
    for split in SPLITS:
        files = manifest["data_files"][split]
        for index, rel in enumerate(files):
            match = SHARD_NAME.match(rel)
            assert match and match["split"] == split, rel
            assert (int(match["i"]), int(match["n"])) == (index, len(files))
            rows = pq.ParquetFile(result.path / rel).metadata.num_rows
            size = (result.path / rel).stat().st_size
            assert size <= MIB or rows == 1, (rel, size, rows)
    assert len(manifest["data_files"]["train"]) >= 3  # ~2.7 MB of posters in train
    everything = load_arrow(path=result.path, split="all")
    assert everything.num_rows == 64
    for split in SPLITS:
        ids = load_arrow(path=result.path, split=split, columns=["tmdb_id"])
        assert ids.column("tmdb_id").to_pylist() == sorted(ids.column("tmdb_id").to_pylist())
    assert everything.schema.field("image").type == pa.struct(
        [pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    for row in everything.select(["tmdb_id", "poster_sha256", "image"]).to_pylist():
        if row["tmdb_id"] in posters:
            data = row["image"]["bytes"]
            assert data == posters[row["tmdb_id"]]
            assert hashlib.sha256(data).hexdigest() == row["poster_sha256"]
            assert row["image"]["path"] == f"{row['tmdb_id']}.jpg"
        else:
            assert row["image"] is None
    images = manifest["images"]
    assert images["mode"] == "embed" and images["encoding"] == "as stored"
    assert sum(images["with_image"].values()) == 61
    assert sum(images["bytes"].values()) == sum(len(b) for b in posters.values())
    # The one oversize movie has a shard of its own.
    alone = [rel for s in SPLITS for rel in manifest["data_files"][s]
             if pq.read_table(result.path / rel, columns=["tmdb_id"]).column(0).to_pylist()
             == [61]]
    assert len(alone) == 1


def test_embedded_images_decode_with_hugging_face_datasets(
    with_posters: Crafted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    result = build(with_posters, shard_max_bytes=MIB)
    manifest = json.loads((result.path / "manifest.json").read_text())
    files = {s: [str(result.path / f) for f in manifest["data_files"][s]] for s in SPLITS}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c"))
    train = loaded["train"].cast_column("image", datasets.Image())
    row = next(r for r in train if r["poster_file"] is not None)
    assert isinstance(row["image"], Image.Image)
    assert (row["image"].width, row["image"].height) == (row["poster_width"],
                                                         row["poster_height"])


def test_rebuild_with_resizing_is_byte_identical(with_posters: Crafted) -> None:
    one = build(with_posters, "out1", image_max_side=64, shard_max_bytes=MIB)
    two = build(with_posters, "out2", image_max_side=64, shard_max_bytes=MIB)
    files_one = json.loads((one.path / "manifest.json").read_text())["files"]
    files_two = json.loads((two.path / "manifest.json").read_text())["files"]
    assert files_one == files_two
    on_disk = {p.relative_to(one.path).as_posix() for p in one.path.rglob("*") if p.is_file()}
    assert on_disk == {*files_one, "manifest.json"}
    for rel in files_one:
        assert (one.path / rel).read_bytes() == (two.path / rel).read_bytes(), rel


def test_resized_images_are_rgb_jpegs_never_upscaled(crafted: Crafted) -> None:
    crafted.add(movie(i, genre_ids=(18,)) for i in (1, 2, 3, 4))
    crafted.posters([
        poster_row(1, data=poster_jpeg("tall", 200, 300)),
        poster_row(2, data=poster_jpeg("small", 30, 20)),
        poster_row(3, data=_png_rgba(90, 45)),
    ])
    result = build(crafted, image_max_side=60, image_quality=80)
    table = load_arrow(path=result.path, split="all").sort_by("tmdb_id")
    images = {r["tmdb_id"]: r["image"] for r in table.select(["tmdb_id", "image"]).to_pylist()}
    sizes = {}
    for tmdb_id in (1, 2, 3):
        assert images[tmdb_id]["path"] == f"{tmdb_id}.jpg"
        with Image.open(io.BytesIO(images[tmdb_id]["bytes"])) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert "exif" not in im.info and "icc_profile" not in im.info
            sizes[tmdb_id] = im.size
    assert sizes == {1: (40, 60), 2: (30, 20), 3: (60, 30)}
    assert images[4] is None
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["images"]["encoding"] == "jpeg" and manifest["images"]["max_side"] == 60
    # The posters folder is untouched: poster_file still names the original.
    assert table.column("poster_file").to_pylist()[2].endswith(".png")


def test_resizing_runs_in_worker_processes_in_order(crafted: Crafted) -> None:
    folder = crafted.posters_dir
    refs = []
    expected = []
    for i in range(40):
        data = poster_jpeg(f"w{i}", 50 + i, 80)
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}.jpg"
        (folder / sha[:2]).mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        refs.append(PosterRef(i, rel, sha))
        expected.append(training_copy(data, max_side=32, quality=85)[0])
        if i % 7 == 0:
            refs.append(PosterRef(1000 + i, None, None))
            expected.append(None)
    with PosterReader(folder, max_side=32, quality=85, workers=2) as reader:
        got = [None if image is None else image.data for image in reader.images(refs)]
    assert got == expected
    assert reader.worker_pids and os.getpid() not in reader.worker_pids
    assert not reader.problems.missing and not reader.problems.corrupt



def _write_poster(folder: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    rel = f"{sha[:2]}/{sha}.jpg"
    (folder / sha[:2]).mkdir(parents=True, exist_ok=True)
    (folder / rel).write_bytes(data)
    return rel


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("reelset-posters")]


def test_as_is_posters_are_read_ahead_in_threads_in_order(crafted: Crafted) -> None:
    """Many chunks (so the read-ahead window fills and drains), rows without a poster,
    a missing and a corrupt file among them: the bytes come back as stored, in row order,
    the problems are recorded where they are, and no worker process is involved."""
    folder = crafted.posters_dir
    refs: list[PosterRef] = []
    expected: list[bytes | None] = []
    for i in range(300):
        data = poster_jpeg(f"a{i}", 20 + i % 7, 30)
        rel = _write_poster(folder, data)
        sha = hashlib.sha256(data).hexdigest()
        if i == 97:
            (folder / rel).unlink()
        elif i == 203:
            (folder / rel).write_bytes(b"not the stored bytes")
        refs.append(PosterRef(i, rel, sha))
        expected.append(None if i in (97, 203) else data)
        if i % 11 == 0:
            refs.append(PosterRef(1000 + i, None, None))
            expected.append(None)
    with PosterReader(folder, max_side=0, quality=85, workers=2) as reader:
        images = list(reader.images(refs))
    assert [None if image is None else image.data for image in images] == expected
    assert [image.name for image in images if image is not None][:2] == ["0.jpg", "1.jpg"]
    assert [ref.tmdb_id for ref in reader.problems.missing] == [97]
    assert [ref.tmdb_id for ref in reader.problems.corrupt] == [203]
    assert not reader.worker_pids
    assert not _reader_threads()


def test_abandoned_as_is_reading_stops_its_threads(crafted: Crafted) -> None:
    """A consumer that stops early (a failed shard write, Ctrl-C) leaves no thread behind."""
    folder = crafted.posters_dir
    data = poster_jpeg("shared", 20, 30)
    rel = _write_poster(folder, data)
    refs = [PosterRef(i, rel, hashlib.sha256(data).hexdigest()) for i in range(2000)]
    with PosterReader(folder, max_side=0, quality=85) as reader:
        images = reader.images(refs)
        assert next(images) is not None
        assert _reader_threads()
        images.close()
        assert not _reader_threads()


def test_reference_mode_and_loading_a_copied_version(with_posters: Crafted,
                                                     tmp_path: Path) -> None:
    result = build(with_posters, images="reference")
    manifest_text = (result.path / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert sorted(p.name for p in (result.path / "data").iterdir()) == [
        f"{s}.parquet" for s in sorted(SPLITS)]
    assert manifest["data_files"] == {s: [f"data/{s}.parquet"] for s in SPLITS}
    relative = manifest["images"]["posters_dir"]
    assert not Path(relative).is_absolute()
    assert (result.path / relative).resolve() == with_posters.posters_dir.resolve()
    for name in ("manifest.json", "README.md", "croissant.json"):
        assert str(tmp_path) not in (result.path / name).read_text(), name
    assert "image" not in pq.read_schema(result.path / "data" / "train.parquet").names
    # In place, the manifest's relative folder gives absolute poster paths.
    frame = load(path=result.path, split="all")
    with_file = frame[frame["poster_file"].notna()]
    assert len(with_file) == 61
    for path, sha in zip(with_file["poster_path"], with_file["poster_sha256"], strict=True):
        assert Path(path).is_absolute()
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    assert frame.loc[frame["poster_file"].isna(), "poster_path"].isna().all()
    # A copy elsewhere loads with no config or store; its posters from posters_dir=.
    copy = tmp_path / "elsewhere" / "genres-v1"
    shutil.copytree(result.path, copy)
    plain = load(path=copy, split="test")
    assert "poster_path" not in plain.columns  # the relative folder is not there
    assert plain["tmdb_id"].tolist() == load(path=result.path, split="test")["tmdb_id"].tolist()
    moved = tmp_path / "moved-posters"
    shutil.copytree(with_posters.posters_dir, moved)
    given = load(path=copy, split="all", posters_dir=moved)
    paths = given["poster_path"].dropna()
    assert len(paths) == 61 and all(p.startswith(str(moved.resolve())) for p in paths)
    assert all(Path(p).is_file() for p in paths)


def test_copied_embed_version_loads_without_config(with_posters: Crafted,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result = build(with_posters, shard_max_bytes=MIB)
    copy = tmp_path / "copy" / "v1"
    shutil.copytree(result.path, copy)
    shutil.rmtree(with_posters.tmp_path / "out")
    monkeypatch.setenv("REELSET_CONFIG", str(tmp_path / "no-such-config.toml"))
    table = load_arrow(path=copy, split="all")
    assert table.num_rows == 64 and table.column("image").null_count == 3
    from reelset.dataset.load import load_labels, load_manifest

    assert load_manifest(path=copy)["version"] == "v0001"
    assert [lab["name"] for lab in load_labels(path=copy)] == result.labels
    from reelset.errors import UsageError

    with pytest.raises(UsageError, match="not a dataset version folder"):
        load(path=tmp_path / "copy")


def test_missing_or_corrupt_poster_fails_the_build(
    with_posters: Crafted, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with with_posters.store.read() as conn:
        files = dict(conn.exec_driver_sql(
            "SELECT tmdb_id, file_path FROM posters ORDER BY tmdb_id").all())
    (with_posters.posters_dir / files[5]).unlink()
    (with_posters.posters_dir / files[9]).write_bytes(poster_jpeg("another", 20, 30))
    (with_posters.posters_dir / files[12]).unlink()
    root = with_posters.tmp_path / "out" / "genres"
    for images, max_side in (("embed", 0), ("embed", 32), ("webdataset", 0)):
        with pytest.raises(StoreError) as caught:
            build_dataset(with_posters.settings(images=images, image_max_side=max_side),
                          now=FIXED_NOW)
        message = str(caught.value)
        assert "\n" not in message
        assert "2 missing and 1 corrupt" in message, message
        assert files[5] in message and "reelset posters verify --repair" in message
        assert [p.name for p in root.iterdir()] == [".lock"], images
    # Reference mode checks that the files exist.
    with pytest.raises(StoreError, match="2 missing"):
        build(with_posters, images="reference")
    # The command line: one line, exit 2, no version.
    monkeypatch.setenv("REELSET_CONFIG", str(with_posters.config_file(images="embed")))
    capsys.readouterr()
    assert main(["--quiet", "build"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reelset: error: 2 missing and 1 corrupt")
    assert [p.name for p in root.iterdir()] == [".lock"]


def test_images_are_streamed_not_held(crafted: Crafted, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few thousand posters: while the splits are written, the peak of Python
    allocations stays far below the total of the image bytes (row groups of at most
    256 KiB of images). Measured around the split writing only: the heatmap's matplotlib
    has a fixed cost of its own."""
    crafted.add(random_movies(2500, seed=11))
    crafted.posters(poster_row(i, data=poster_jpeg(f"m{i}", 100, 150)) for i in range(1, 2501))
    total = sum(p.stat().st_size for p in crafted.posters_dir.rglob("*.jpg"))
    assert total > 30 * MIB
    monkeypatch.setattr(shards, "ROW_GROUP_MAX_BYTES", 256 * 1024)
    write_splits = publish.write_splits
    peaks: list[int] = []

    def traced(*args: Any, **kwargs: Any) -> Any:
        tracemalloc.start()
        try:
            return write_splits(*args, **kwargs)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setattr(publish, "write_splits", traced)
    result = build_dataset(crafted.settings(baseline=False, shard_max_bytes=8 * MIB),
                           now=FIXED_NOW)
    assert result.status == "built"
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert sum(manifest["images"]["bytes"].values()) == total
    assert len(manifest["data_files"]["train"]) >= 3
    assert peaks and peaks[0] < total / 3, (peaks, total)
    meta = pq.ParquetFile(result.path / manifest["data_files"]["train"][0]).metadata
    assert meta.num_row_groups > 1
