"""The one atomic write (reelset.files): all or nothing under the final name, durably."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelset import files
from reelset.files import (
    TEMP_PREFIX,
    TempFile,
    atomic_path,
    fsync_dir,
    temp_file,
    temp_is_stale,
    temp_path,
    write_bytes,
    write_text,
)

DEAD_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_replace_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    write_bytes(target, b"first version, rather long")
    write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    write_text(tmp_path / "b.txt", "Genres: Drame, Comédie\n")
    assert (tmp_path / "b.txt").read_bytes() == "Genres: Drame, Comédie\n".encode()
    assert names(tmp_path) == ["a.bin", "b.txt"]  # no temp file left


def test_a_large_write_is_complete(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    write_bytes(tmp_path / "big", data)
    assert (tmp_path / "big").read_bytes() == data


def test_atomic_path_serves_writers_that_want_a_path(tmp_path: Path) -> None:
    table = pa.table({"tmdb_id": pa.array([3, 1, 2], pa.int64())})
    with atomic_path(tmp_path / "t.parquet") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(TEMP_PREFIX)
        assert tmp.name.endswith("-t.parquet")
        pq.write_table(table, tmp)
        assert not (tmp_path / "t.parquet").exists()  # nothing under the name before the end
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    assert names(tmp_path) == ["t.parquet"]


@pytest.mark.parametrize("existing", [None, b"the old content"])
def test_a_writer_that_raises_midway_leaves_the_final_name_alone(
    tmp_path: Path, existing: bytes | None
) -> None:
    target = tmp_path / "out.bin"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"half of the new con")
        raise RuntimeError("disk on fire")
    if existing is None:
        assert names(tmp_path) == []
    else:
        assert names(tmp_path) == ["out.bin"] and target.read_bytes() == existing


def test_a_write_that_fails_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "poster.jpg"
    target.write_bytes(b"old")
    real_write = os.write
    calls = 0

    def short_then_full_disk(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[:10]))  # a short write, then
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_bytes(target, b"x" * 100)
    assert calls == 2
    assert names(tmp_path) == ["poster.jpg"] and target.read_bytes() == b"old"


def test_a_failed_fsync_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_text(tmp_path / "LATEST", "v0002\n")
    with pytest.raises(OSError), atomic_path(tmp_path / "x.parquet") as tmp:
        tmp.write_bytes(b"PAR1")
    assert names(tmp_path) == []


def test_file_is_synced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shard"
    folder.mkdir()
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        here = os.stat(folder)
        is_folder = (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)
        events.append("fsync folder" if is_folder else "fsync file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_bytes(folder / "a.jpg", b"jpeg bytes")
    assert events == ["fsync file", "rename", "fsync folder"]
    events.clear()
    with atomic_path(folder / "b.png") as tmp:
        tmp.write_bytes(b"png bytes")
    assert events == ["fsync file", "rename", "fsync folder"]
    events.clear()
    fsync_dir(folder)
    assert events == ["fsync folder"]


def test_fsync_dir_tolerates_only_file_systems_that_cannot_sync_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = OSError(errno.EINVAL, "Invalid argument")

    def fsync(_fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", fsync)
    fsync_dir(tmp_path)
    failure = OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError):
        fsync_dir(tmp_path)


def test_temp_files_are_named_recognised_and_judged(tmp_path: Path) -> None:
    made = temp_path(tmp_path / "abc.jpg")
    assert made.parent == tmp_path
    assert made.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-") and made.name.endswith("-abc.jpg")
    assert temp_path(tmp_path / "abc.jpg") != made  # fresh each time
    made.write_bytes(b"x")
    mine = temp_file(made)
    assert mine is not None and mine.pid == os.getpid() and not temp_is_stale(mine)
    assert temp_file(tmp_path / "abc.jpg") is None
    left = temp_file(tmp_path / f"{TEMP_PREFIX}{DEAD_PID}-0a0b-abc.jpg")  # absent: age 0
    assert left is not None and left.pid == DEAD_PID and temp_is_stale(left)
    old = TempFile(made, pid=os.getpid(), age_s=files.TEMP_STALE_AFTER_S + 1)
    assert temp_is_stale(old)


def test_install_syncs_the_file_then_renames_then_syncs_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, final = tmp_path / "x.tsv.gz.part", tmp_path / "x.tsv.gz"
    source.write_bytes(b"new")
    final.write_bytes(b"old")
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.install(source, final)
    assert calls == ["file", "rename", "dir"]
    assert final.read_bytes() == b"new" and not source.exists()
