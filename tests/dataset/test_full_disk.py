"""A full disk under the dataset folder: one line naming the folder, exit 1, no version.

The folder is a real, small tmpfs (mounting needs root, which the project's machines and CI
have); where it cannot be mounted the test skips with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelset.cli import main
from tests.dataset.conftest import Crafted, poster_jpeg, poster_row, random_movies


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Write a filler file so that only about ``leave`` bytes stay free."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(free - leave, 0))


@pytest.mark.parametrize("images", ["embed", "webdataset", "reference"])
def test_full_disk_is_one_line_exit_1_and_no_version(
    crafted: Crafted,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    images: str,
) -> None:
    crafted.add(random_movies(3000, seed=5))
    # Posters (~20 KB each) that do not fit: the disk fills up inside the shard writers.
    crafted.posters(poster_row(i, data=poster_jpeg(f"disk {i}", 120, 180)) for i in range(1, 31))
    out = small_disk / "datasets"
    config = crafted.config_file(images=images)
    config.write_text(config.read_text().replace(str(crafted.tmp_path / "out"), str(out)))
    monkeypatch.setenv("REELSET_CONFIG", str(config))
    _fill(small_disk, leave=64 * 1024)

    code = main(["--quiet", "build"])
    _, err = capsys.readouterr()

    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("reelset: error:"), lines
    assert str(out / "genres") in lines[0] and "no space left" in lines[0].lower()
    root = out / "genres"
    assert not list(root.glob("v*")), "a partial version was left"
    assert not list(root.glob(".staging-*")), "a staging folder was left"
    assert not (root / "LATEST").exists()

    # With room again, the same build succeeds as the first version.
    (small_disk / "filler").unlink()
    assert main(["build"]) == 0
    assert (root / "LATEST").read_text().strip() == "v0001"
    if images != "reference":  # the posters did not fit before: they are in the version now
        manifest = json.loads((root / "v0001" / "manifest.json").read_text())
        assert sum(manifest["images"]["with_image"].values()) == 30
