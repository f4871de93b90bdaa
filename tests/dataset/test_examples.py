"""reelset.dataset.load_examples: a built split as a map-style dataset, in the three
image modes, through torch's DataLoader, and examples/train_posters.py on top of it."""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reelset.dataset import GenreExamples, load_examples
from reelset.dataset.versions import read_labels, split_files
from reelset.errors import UsageError
from reelset.storage import Genre, Store
from tests.dataset.conftest import TMDB_GENRES, Crafted, build, poster_row, random_movies

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_posters.py"
MODES = ("embed", "webdataset", "reference")
MOVIES = 120


def poster_color(tmdb_id: int) -> tuple[int, int, int]:
    """A distinct, bright (never black) colour per movie."""
    return (64 + tmdb_id * 37 % 192, 64 + tmdb_id * 71 % 192, 64 + tmdb_id * 13 % 192)


def add_movies_with_posters(crafted: Crafted, n: int = MOVIES) -> None:
    """``n`` movies; every fifth has no poster, the others a real JPEG file of one colour
    (portrait, 40x60, except every seventh: landscape, 60x40)."""
    movies = random_movies(n, seed=11)
    crafted.add(movies)
    rows = []
    for record in movies:
        if record.tmdb_id % 5 == 0:
            continue
        size = (60, 40) if record.tmdb_id % 7 == 0 else (40, 60)
        buffer = io.BytesIO()
        Image.new("RGB", size, poster_color(record.tmdb_id)).save(buffer, "JPEG", quality=95)
        rows.append(poster_row(record.tmdb_id, data=buffer.getvalue()))
    crafted.posters(rows)  # writes the files too


def make_version(crafted: Crafted, mode: str = "embed", movies: int = MOVIES,
                 **settings: Any) -> Path:
    """The folder of a version built in images ``mode`` from a store with real posters."""
    add_movies_with_posters(crafted, movies)
    result = build(crafted, images=mode, baseline=False, **settings)
    assert result.path is not None
    return Path(result.path)


@pytest.fixture(params=MODES)
def version(request: pytest.FixtureRequest, crafted: Crafted) -> Path:
    """A version built in each images mode."""
    return make_version(crafted, request.param)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A version with embedded images (the default mode), shared by the tests that only
    read it."""
    tmp = tmp_path_factory.mktemp("embedded")
    url = f"sqlite:///{tmp / 'store' / 'reelset.db'}"
    store = Store(url)
    store.upgrade()
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    yield make_version(Crafted(store=store, tmp_path=tmp, url=url))
    store.close()


def split_table(folder: Path, split: str) -> pa.Table:
    """The split's rows as the parquet files hold them."""
    return pa.concat_tables([pq.read_table(p) for p in split_files(folder, split)])


def to_tensors(example: dict[str, Any]) -> dict[str, Any]:
    """A DataLoader-ready example (module level, so that spawned workers can unpickle it)."""
    import torch

    image = example["image"]
    pixels = (
        torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        if image is not None
        else torch.zeros(3, 16, 16)
    )
    return {
        "image": pixels,
        "labels": torch.from_numpy(example["labels"]),
        "tmdb_id": example["tmdb_id"],
    }


def pair(example: dict[str, Any]) -> tuple[int, str]:
    """A transform: (tmdb_id, overview)."""
    return example["tmdb_id"], example["overview"]


def test_items_are_the_rows_of_the_split(version: Path) -> None:
    labels = [lab["name"] for lab in read_labels(version)["labels"]]
    for split in ("train", "validation", "test"):
        table = split_table(version, split)
        examples = load_examples(path=version, split=split)
        assert isinstance(examples, GenreExamples)
        assert examples.label_names == labels
        assert len(examples) == table.num_rows > 0
        assert examples.tmdb_ids.tolist() == table.column("tmdb_id").to_pylist()
        for i, row in enumerate(table.to_pylist()):
            item = examples[i]
            assert set(item) == {"image", "overview", "labels", "genres", "tmdb_id"}
            assert item["tmdb_id"] == row["tmdb_id"] and type(item["tmdb_id"]) is int
            assert item["overview"] == row["overview"]
            assert item["genres"] == row["genres"]
            assert item["labels"].dtype == np.int8
            assert item["labels"].tolist() == row["labels"]
            if row["poster_sha256"] is None:
                assert item["image"] is None
                assert examples.image_bytes(i) is None
                continue
            data = examples.image_bytes(i)
            assert data is not None and hashlib.sha256(data).hexdigest() == row["poster_sha256"]
            image = item["image"]
            assert isinstance(image, Image.Image)
            assert image.size == (row["poster_width"], row["poster_height"])
            assert _close(image.convert("RGB").getpixel((10, 10)), poster_color(row["tmdb_id"]))
        assert examples[-1]["tmdb_id"] == table.column("tmdb_id")[-1].as_py()
        with pytest.raises(IndexError):
            examples[len(examples)]


def test_an_empty_split_has_no_items(crafted: Crafted) -> None:
    folder = make_version(crafted, movies=3)
    assert split_table(folder, "test").num_rows == 0
    empty = load_examples(path=folder, split="test", image_size=8)
    assert len(empty) == 0 and empty.shuffled_indices(seed=0) == []
    with pytest.raises(IndexError):
        empty[0]


def test_every_mode_has_movies_without_posters(version: Path) -> None:
    without = sum(
        split_table(version, s).column("poster_sha256").null_count
        for s in ("train", "validation", "test")
    )
    assert without == MOVIES // 5  # what the items test checks for None images


def _close(got: Any, want: tuple[int, int, int], tolerance: int = 6) -> bool:
    """Pixel equality up to JPEG's rounding."""
    return all(abs(int(g) - w) <= tolerance for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_image_size_gives_rgb_images_of_that_size(embedded: Path, fit: str) -> None:
    square = load_examples(path=embedded, image_size=32, fit=fit)  # type: ignore[arg-type]
    wide = load_examples(path=embedded, image_size=(24, 16), fit=fit)  # type: ignore[arg-type]
    table = split_table(embedded, "train")
    checked = 0
    for i, row in enumerate(table.select(["tmdb_id", "poster_width"]).to_pylist()):
        image = square[i]["image"]
        if image is None:
            continue
        checked += 1
        assert image.mode == "RGB" and image.size == (32, 32)
        assert wide[i]["image"].size == (24, 16)
        color = poster_color(row["tmdb_id"])
        assert _close(image.getpixel((16, 16)), color)
        portrait = row["poster_width"] == 40
        # A 2:3 poster padded into a square has black bars left and right (a 3:2 one
        # above and below); cropped or stretched, it fills the square.
        edge = image.getpixel((0, 16) if portrait else (16, 0))
        if fit == "pad":
            assert _close(edge, (0, 0, 0))
        else:
            assert _close(edge, color)
    assert checked > 10


def test_transform_makes_the_item(embedded: Path) -> None:
    plain = load_examples(path=embedded, split="test")
    paired = load_examples(path=embedded, split="test", transform=pair)
    assert len(paired) == len(plain)
    for i in range(len(plain)):
        assert paired[i] == (plain[i]["tmdb_id"], plain[i]["overview"])


def test_by_name_and_version(embedded: Path) -> None:
    out = embedded.parent.parent
    by_name = load_examples("genres", "v1", "validation", output_dir=out)
    assert by_name.folder == embedded
    assert by_name.tmdb_ids.tolist() == split_table(embedded, "validation").column(
        "tmdb_id").to_pylist()
    with pytest.raises(UsageError, match="no version v0002"):
        load_examples("genres", "v2", output_dir=out)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"split": "dev"}, "unknown split 'dev'"),
        ({"split": "all"}, "unknown split 'all'"),
        ({"image_size": 0}, "image_size must be a positive int"),
        ({"image_size": -64}, "image_size must be a positive int"),
        ({"image_size": (64, 0)}, "image_size must be a positive int"),
        ({"image_size": (64, 64, 3)}, "image_size must be a positive int"),
        ({"image_size": [64]}, "image_size must be a positive int"),
        ({"image_size": "64"}, "image_size must be a positive int"),
        ({"image_size": 6.4}, "image_size must be a positive int"),
        ({"image_size": True}, "image_size must be a positive int"),
        ({"fit": "zoom"}, "unknown fit 'zoom'"),
        ({"transform": 3}, "transform must be a callable"),
        ({"cache_row_groups": 0}, "cache_row_groups must be a positive int"),
    ],
)
def test_bad_arguments_are_usage_errors(
    embedded: Path, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        load_examples(path=embedded, **arguments)


def test_a_folder_that_is_no_version_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a dataset version folder"):
        load_examples(path=tmp_path / "nowhere")
    with pytest.raises(UsageError, match=r"manifest\.json is missing"):
        load_examples(path=tmp_path)


def test_reference_mode_takes_another_posters_folder(crafted: Crafted) -> None:
    folder = make_version(crafted, "reference")
    moved = crafted.tmp_path / "elsewhere"
    (crafted.tmp_path / "posters").rename(moved)
    with pytest.raises(UsageError, match="posters folder"):
        load_examples(path=folder)
    examples = load_examples(path=folder, posters_dir=moved, image_size=8)
    images = [examples[i]["image"] for i in range(len(examples))]
    assert sum(image is not None for image in images) > 10
    with pytest.raises(UsageError, match="posters folder"):
        load_examples(path=folder, posters_dir=crafted.tmp_path / "missing")


@pytest.fixture
def grouped(crafted: Crafted) -> Path:
    """An embedded version whose train split has several image row groups."""
    folder = make_version(crafted, movies=330, row_group_size=100)
    groups = sum(pq.ParquetFile(p).num_row_groups for p in split_files(folder, "train"))
    assert groups >= 3
    return folder


def _group_of_each_row(folder: Path, split: str) -> list[int]:
    """The (global) row group number of each row of a split."""
    groups: list[int] = []
    number = 0
    for path in split_files(folder, split):
        meta = pq.read_metadata(path)
        for g in range(meta.num_row_groups):
            groups.extend([number] * meta.row_group(g).num_rows)
            number += 1
    return groups


def test_a_small_cache_reads_row_groups_again(grouped: Path) -> None:
    whole = load_examples(path=grouped)
    small = load_examples(path=grouped, cache_row_groups=1)
    table = split_table(grouped, "train")
    for i in np.random.default_rng(3).permutation(len(whole)).tolist():
        data = small.image_bytes(i)
        assert data == whole.image_bytes(i)
        sha = table.column("poster_sha256")[i].as_py()
        assert (hashlib.sha256(data).hexdigest() if data is not None else None) == sha
        assert len(small._cache) <= 1
    assert len(whole._cache) == 2


def test_shuffled_indices_shuffle_by_row_group(grouped: Path) -> None:
    examples = load_examples(path=grouped)
    group_of = _group_of_each_row(grouped, "train")
    order = examples.shuffled_indices(seed=1)
    assert sorted(order) == list(range(len(examples)))
    assert order == examples.shuffled_indices(seed=1)
    assert order != examples.shuffled_indices(seed=2)
    assert order != sorted(order)
    # Each row group's rows come in one run: a pass reads every group once.
    runs = [g for k, g in enumerate(group_of[i] for i in order)
            if k == 0 or g != group_of[order[k - 1]]]
    assert sorted(runs) == sorted(set(group_of))
    whole = load_examples(path=grouped, split="test")
    assert sorted(whole.shuffled_indices(seed=0)) == list(range(len(whole)))


def test_a_pickled_copy_opens_its_own_files(embedded: Path) -> None:
    examples = load_examples(path=embedded, image_size=16, transform=to_tensors_free)
    first = examples[0]  # opens a shard and fills the cache
    state = pickle.dumps(examples)
    assert b"ParquetFile" not in state
    copy = pickle.loads(state)
    assert copy._cache == {} and copy._parquet == {}
    assert copy.label_names == examples.label_names and len(copy) == len(examples)
    again = copy[0]
    assert again["tmdb_id"] == first["tmdb_id"]
    assert np.array_equal(again["pixels"], first["pixels"])


def to_tensors_free(example: dict[str, Any]) -> dict[str, Any]:
    """A picklable transform without torch: pixels as a uint8 array."""
    image = example["image"]
    return {
        "tmdb_id": example["tmdb_id"],
        "pixels": np.asarray(image) if image is not None else np.zeros((16, 16, 3), np.uint8),
    }


@pytest.mark.parametrize("mode", MODES)
def test_dataloader_with_two_workers_sees_every_row_once(crafted: Crafted, mode: str) -> None:
    torch = pytest.importorskip("torch", reason="torch is a test dependency (torch==2.13.0)")
    folder = make_version(crafted, mode)
    examples = load_examples(path=folder, image_size=16, transform=to_tensors)
    examples[len(examples) - 1]  # the parent has open files and a cache before the fork
    table = split_table(folder, "train")
    want = dict(zip(table.column("tmdb_id").to_pylist(), table.column("labels").to_pylist(),
                    strict=True))
    loader = torch.utils.data.DataLoader(examples, batch_size=4, num_workers=2, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen: list[int] = []
    for batch in loader:
        assert batch["image"].dtype == torch.float32
        assert batch["image"].shape[1:] == (3, 16, 16) and batch["image"].shape[0] <= 4
        assert batch["labels"].dtype == torch.int8
        for tmdb_id, labels in zip(batch["tmdb_id"].tolist(), batch["labels"].tolist(),
                                   strict=True):
            assert labels == want[tmdb_id]
            seen.append(tmdb_id)
    assert sorted(seen) == sorted(want)


def test_using_the_dataset_imports_neither_torch_nor_pil_early(embedded: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        import reelset.dataset
        assert "PIL" not in sys.modules, "import reelset.dataset imported PIL"
        from reelset.dataset import load_examples
        examples = load_examples(path={str(embedded)!r}, image_size=8)
        images = [examples[i]["image"] for i in range(len(examples))]
        assert any(image is not None for image in images)
        assert "torch" not in sys.modules, "the dataset imported torch"
        print("ok", len(images))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")


def test_train_posters_example_runs(crafted: Crafted) -> None:
    pytest.importorskip("torch", reason="torch is a test dependency (torch==2.13.0)")
    make_version(crafted)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--name", "genres",
         "--output-dir", str(crafted.tmp_path / "out"), "--image-size", "32",
         "--workers", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    out = done.stdout
    assert "training movies" in out
    assert "test (" in out and "micro F1" in out and "macro F1" in out
    line = next(x for x in out.splitlines() if x.startswith("test ("))
    micro = float(line.split("micro F1 ")[1].split(",")[0])
    assert 0.0 <= micro <= 1.0


def test_train_posters_example_refuses_a_missing_dataset(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--name", "genres", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("reelset: error: no dataset named 'genres'")
    assert "Traceback" not in done.stderr
