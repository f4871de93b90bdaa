"""Reference mode's poster checks (``PosterReader.check_references``): the vectorised name
check and the ``os.stat``-ed files give exactly what the per-row check gives (``sizes``
over ``poster_refs``): the same sizes, the same problems in the same order, the same error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from reelset.dataset.images import PosterReader, PosterRef, poster_refs
from reelset.errors import StoreError
from reelset.posters.filestore import is_valid_relpath
from tests.dataset.conftest import Crafted, build, poster_row, random_movies

SHA = hashlib.sha256(b"a poster").hexdigest()
OTHER = hashlib.sha256(b"another poster").hexdigest()


def _name(sha: str, tail: str = ".jpg") -> str:
    return f"{sha[:2]}/{sha}{tail}"


def _adversarial() -> list[str | None]:
    """Names the file store makes and names it never makes, some close to valid."""
    good = _name(SHA)
    return [
        good,
        _name(SHA, ".png"),
        _name(SHA, ".r384.jpg"),
        _name(SHA, ".r99999.jpg"),
        _name(OTHER, ".webp"),  # valid but absent
        None,
        good + "\n",  # Python's ``$`` matches before a final newline: valid for re
        good + "\n\n",
        "\n" + good,
        good + " ",
        good.upper(),
        good.replace(".jpg", ".JPG"),
        f"{SHA[2:4]}/{SHA}.jpg",  # the shard is not the sha's first two characters
        f"{SHA[:2]}/{SHA[:-1]}.jpg",  # 63 characters
        f"{SHA[:2]}/{SHA}0.jpg",  # 65
        f"{SHA[:2]}/{SHA}.jpeg12",  # an extension of 6
        f"{SHA[:2]}/{SHA}.",
        f"{SHA[:2]}/{SHA}",
        _name(SHA, ".r0.jpg"),
        _name(SHA, ".r123456.jpg"),
        _name(SHA, ".r01.jpg"),
        f"./{good}",
        f"../{good}",
        f"/{good}",
        f"{SHA[:2]}//{SHA}.jpg",
        f"{SHA[:2]}\\{SHA}.jpg",
        f"{SHA[:2]}/../{SHA[:2]}/{SHA}.jpg",
        good.replace("/", "/\x00"),
        good + "\x00",
        "",
        "/",
        SHA[:2] + "/",
        "٠١/" + SHA + ".jpg",  # Arabic-Indic digits are not [0-9]
        good.replace(SHA[0], "ｆ", 1),  # a fullwidth letter
        good.replace(".jpg", ".jpé"),
        "x" * 300,
        _name(SHA, ".dir"),  # a folder of that name: not a regular file
        _name(SHA, ".lnk"),  # a symbolic link to a poster: its target counts
        _name(SHA, ".dead"),  # a dangling link
        good,  # the same file twice
    ]


@pytest.fixture
def posters(tmp_path: Path) -> Path:
    root = tmp_path / "posters"
    shard = root / SHA[:2]
    shard.mkdir(parents=True)
    for tail, size in ((".jpg", 1000), (".png", 17), (".r384.jpg", 5), (".r99999.jpg", 0)):
        (root / _name(SHA, tail)).write_bytes(b"x" * size)
    (root / (_name(SHA) + "\n")).write_bytes(b"y" * 33)
    (root / _name(SHA, ".dir")).mkdir()
    (root / _name(SHA, ".lnk")).symlink_to(root / _name(SHA, ".png"))
    (root / _name(SHA, ".dead")).symlink_to(root / "nowhere")
    return root


def _columns(names: list[str | None], chunks: int = 3) -> tuple[pa.ChunkedArray, ...]:
    """tmdb_id, poster_file, poster_sha256 columns in ``chunks`` chunks (as a table read
    in parts has them)."""
    ids = list(range(100, 100 + len(names)))
    shas = [None if name is None else SHA for name in names]
    step = max(len(names) // chunks, 1)
    return tuple(
        pa.chunked_array([values[i:i + step] for i in range(0, len(values), step)], kind)
        for values, kind in ((ids, pa.int64()), (names, pa.string()), (shas, pa.string()))
    )


def _per_row(root: Path, columns: tuple[pa.ChunkedArray, ...]) -> tuple[tuple[int, int], ...]:
    """What the per-row check gives: (found, bytes), missing refs, corrupt refs."""
    with PosterReader(root, max_side=0, quality=90) as reader:
        sizes = list(reader.sizes(poster_refs(*(c.to_pylist() for c in columns))))
        found = (sum(s is not None for s in sizes), sum(s or 0 for s in sizes))
        return found, reader.problems.missing, reader.problems.corrupt  # type: ignore[return-value]


def _vectorised(root: Path, columns: tuple[pa.ChunkedArray, ...]) -> tuple[object, ...]:
    with PosterReader(root, max_side=0, quality=90) as reader:
        found = reader.check_references(*columns)
        return found, reader.problems.missing, reader.problems.corrupt


def test_adversarial_names_give_what_the_per_row_check_gives(posters: Path) -> None:
    names = _adversarial()
    expected = _per_row(posters, _columns(names))
    assert expected[0] == (7, 1000 + 17 + 5 + 0 + 33 + 17 + 1000)  # the check is real
    assert len(expected[2]) > 20 and len(expected[1]) == 3  # absent, a folder, dead link
    assert _vectorised(posters, _columns(names)) == expected
    for chunks in (1, 7, len(names)):
        assert _vectorised(posters, _columns(names, chunks)) == expected
    # Each name alone too, and in reverse order: the problems keep the rows' order.
    for name in names:
        assert _vectorised(posters, _columns([name])) == _per_row(posters, _columns([name]))
    backwards = _columns(names[::-1])
    assert _vectorised(posters, backwards) == _per_row(posters, backwards)


def test_the_python_fallback_is_taken_for_names_re2_rejects(posters: Path) -> None:
    """A valid name only Python's ``re`` accepts (a final newline) is still stat-ed."""
    name = _name(SHA) + "\n"
    assert is_valid_relpath(name)
    found, missing, corrupt = _vectorised(posters, _columns([None, name, _name(OTHER)]))
    assert found == (1, 33)
    assert missing == [PosterRef(102, _name(OTHER), SHA)] and corrupt == []


def test_a_file_without_sha256_is_the_same_error(posters: Path) -> None:
    ids, files, shas = _columns([_name(SHA), "../x", _name(OTHER), _name(SHA)])
    shas = pa.chunked_array([[SHA, SHA, None, None]])
    with pytest.raises(StoreError) as per_row:
        _per_row(posters, (ids, files, shas))
    with pytest.raises(StoreError) as vectorised:
        _vectorised(posters, (ids, files, shas))
    assert str(vectorised.value) == str(per_row.value)
    assert str(per_row.value) == f"movie 102 has a poster file {_name(OTHER)} without a sha256"


def test_a_missing_posters_folder_makes_every_poster_missing(tmp_path: Path) -> None:
    names = [_name(SHA), None, _name(OTHER), "../x"]
    for root in (tmp_path / "none", tmp_path / "a-file"):
        if root.name == "a-file":
            root.write_bytes(b"")
        expected = _per_row(root, _columns(names))
        assert expected[0] == (0, 0) and len(expected[1]) == 2 and len(expected[2]) == 1
        assert _vectorised(root, _columns(names)) == expected


def test_without_dir_fd_the_full_paths_are_stat_ed(
    posters: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = _adversarial()
    expected = _per_row(posters, _columns(names))
    monkeypatch.setattr(os, "supports_dir_fd", set())
    assert _vectorised(posters, _columns(names)) == expected


def test_empty_splits(posters: Path) -> None:
    for names in ([], [None, None]):
        assert _vectorised(posters, _columns(names)) == ((0, 0), [], [])


def test_reference_build_counts_the_files_bytes(crafted: Crafted) -> None:
    crafted.add(random_movies(30, seed=5))
    crafted.posters(poster_row(i) for i in range(1, 26))
    result = build(crafted, images="reference")
    manifest = json.loads((result.path / "manifest.json").read_text())
    images = manifest["images"]
    assert sum(images["with_image"].values()) == 25
    assert sum(images["bytes"].values()) == sum(
        p.stat().st_size for p in crafted.posters_dir.rglob("*") if p.is_file())
