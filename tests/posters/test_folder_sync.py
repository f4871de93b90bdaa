"""Deferred folder fsyncs: one per shard and batch, always before a row points at a file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reelset.files
from reelset.errors import ReelsetError
from reelset.posters import download, filestore
from reelset.posters.download import download_posters, verify_processes_for
from reelset.posters.filestore import TEMP_PREFIX, PosterFiles, poster_relpath
from reelset.sandbox import Catalog, Sandbox
from reelset.storage import Store
from reelset.storage.posters import PosterRow
from tests.posters.support import (
    check_folder,
    normal_ids,
    poster_rows,
    poster_settings,
    store_movies,
)


def _rel(data: bytes) -> str:
    return poster_relpath(hashlib.sha256(data).hexdigest(), "jpg")


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders the poster files fsync, in order (the real fsync still runs)."""
    calls: list[str] = []
    real = filestore.fsync_dir

    def recording(path: Path) -> None:
        real(path)
        calls.append(path.name)

    monkeypatch.setattr(filestore, "fsync_dir", recording)
    monkeypatch.setattr(reelset.files, "fsync_dir", recording)  # write_bytes' own
    return calls


def _payloads(shards: dict[str, int]) -> list[bytes]:
    """Distinct byte strings whose sha256 starts with each shard, that many times."""
    found: list[bytes] = []
    left = dict(shards)
    n = 0
    while any(left.values()):
        data = f"poster {n}".encode()
        n += 1
        shard = hashlib.sha256(data).hexdigest()[:2]
        if left.get(shard):
            left[shard] -= 1
            found.append(data)
    return found


def test_without_deferral_each_put_syncs_its_folder(tmp_path: Path, synced: list[str]) -> None:
    files = PosterFiles(tmp_path / "posters")
    files.prepare()
    synced.clear()
    data = _payloads({"0a": 1})[0]
    files.put(_rel(data), data)
    assert synced == ["0a"]
    files.sync()  # nothing deferred: nothing to do
    assert synced == ["0a"]


def test_deferred_puts_are_complete_at_once_and_synced_once_per_shard(
    tmp_path: Path, synced: list[str]
) -> None:
    files = PosterFiles(tmp_path / "posters")
    files.prepare()
    files.defer_folder_syncs()
    synced.clear()
    payloads = _payloads({"0a": 2, "ff": 1})
    for data in payloads:
        files.put(_rel(data), data)

    assert synced == []  # renamed, file contents fsynced, folders not yet
    for data in payloads:
        assert (tmp_path / "posters" / _rel(data)).read_bytes() == data
    leftovers = [p for p in (tmp_path / "posters").rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []

    files.sync()
    assert synced == ["0a", "ff"]
    files.sync()
    assert synced == ["0a", "ff"]  # each folder once per batch


def test_a_failed_sync_is_tried_again(
    tmp_path: Path, synced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = PosterFiles(tmp_path / "posters")
    files.prepare()
    files.defer_folder_syncs()
    for data in _payloads({"0a": 1, "ff": 1}):
        files.put(_rel(data), data)
    recording = filestore.fsync_dir

    def failing(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(filestore, "fsync_dir", failing)
    with pytest.raises(OSError):
        files.sync()
    monkeypatch.setattr(filestore, "fsync_dir", recording)
    synced.clear()
    files.sync()
    assert synced == ["0a", "ff"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(catalog=Catalog.bundled()) as sb:
        yield sb


def test_rows_are_written_only_after_the_folders_of_their_files_are_synced(
    sqlite_store: Store,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[tuple[str, str]] = []  # ("put", rel) / ("sync", shard), in order
    real_put, real_sync = PosterFiles.put, filestore.fsync_dir
    late: list[str] = []

    def put(self: PosterFiles, rel: str, data: bytes) -> None:
        real_put(self, rel, data)
        events.append(("put", rel))

    def fsync_dir(path: Path) -> None:
        real_sync(path)
        events.append(("sync", path.name))

    def upsert(store: Store, rows: list[PosterRow]) -> Any:
        for row in rows:
            if row.file_path is None:
                continue
            for rel in (row.file_path, row.resized_file_path):
                if rel is None:
                    continue
                put_at = max(i for i, e in enumerate(events) if e == ("put", rel))
                if ("sync", rel.split("/")[0]) not in events[put_at:]:
                    late.append(rel)
        return real_upsert(store, rows)

    real_upsert = download.upsert_poster_rows
    monkeypatch.setattr(PosterFiles, "put", put)
    monkeypatch.setattr(filestore, "fsync_dir", fsync_dir)
    monkeypatch.setattr(download, "upsert_poster_rows", upsert)
    catalog = Catalog.bundled()
    ids = store_movies(sqlite_store, catalog, normal_ids(catalog, [], 12))
    settings = poster_settings(tmp_path, verify_processes=0, resize_max_side=64)

    summary = download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)

    assert summary.ok == len(ids) and summary.new_files > 0
    assert late == []
    puts = [rel for kind, rel in events if kind == "put"]
    assert len(puts) == summary.new_files + summary.resized
    rows = poster_rows(sqlite_store)
    files = check_folder(settings.posters_dir, tmp_path)
    for row in rows.values():
        assert files[row["file_path"]] == row["sha256"]


def test_a_folder_that_cannot_be_synced_stops_the_run_in_one_line(
    sqlite_store: Store,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(self: PosterFiles) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(PosterFiles, "sync", failing)
    catalog = Catalog.bundled()
    store_movies(sqlite_store, catalog, normal_ids(catalog, [], 3))
    settings = poster_settings(tmp_path, verify_processes=0)

    with pytest.raises(ReelsetError, match="cannot make the new poster files durable"):
        download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)
    assert not any(r["status"] == "ok" for r in poster_rows(sqlite_store).values())


@pytest.mark.parametrize(
    ("cpus", "max_workers", "expected"), [(2, 16, 1), (1, 16, 1), (8, 16, 7), (8, 4, 4)]
)
def test_automatic_verifier_processes_leave_one_cpu_to_the_downloads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cpus: int,
    max_workers: int,
    expected: int,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(download, "spawn_is_safe", lambda: True)
    settings = poster_settings(tmp_path, max_workers=max_workers)
    assert settings.posters.verify_processes == -1
    assert verify_processes_for(settings, 1000) == expected
    assert verify_processes_for(settings, 10) == 0
