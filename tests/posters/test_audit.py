"""``posters verify``: finding corrupt, missing and orphaned files, and repairing them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from reelset.config import Settings
from reelset.posters.audit import audit_posters
from reelset.posters.download import download_posters
from reelset.posters.filestore import TEMP_PREFIX
from reelset.sandbox import Catalog, ImageFault, PosterFaultCatalog, Sandbox, poster_fault_catalog
from reelset.storage import Store, schema
from tests.posters.support import (
    check_folder,
    normal_ids,
    open_failures,
    poster_rows,
    poster_settings,
    store_movies,
)

DEAD_PID = 2**22 + 4321  # above the default pid_max: no such process


@pytest.fixture(scope="module")
def faulty() -> PosterFaultCatalog:
    return poster_fault_catalog(Catalog.bundled(), per_kind=1)


@pytest.fixture
def world(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> Iterator[tuple[Store, Settings, Sandbox, list[int]]]:
    """Six movies with ordinary posters plus a duplicate group, all downloaded."""
    catalog = faulty.catalog.copy()
    ids = normal_ids(catalog, faulty.faulty_ids, 6) + faulty.ids_by_kind["duplicate"]
    store_movies(sqlite_store, catalog, ids)
    settings = poster_settings(tmp_path, resize_max_side=64)
    with Sandbox(catalog=catalog) as sb:
        summary = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        assert summary.ok == len(ids)
        yield sqlite_store, settings, sb, ids


def _audit(store: Store, settings: Settings, sb: Sandbox, repair: bool = False):  # type: ignore[no-untyped-def]
    return audit_posters(
        store, settings, repair=repair, image_base_url=sb.image_base_url, show_progress=False
    )


def test_a_clean_folder_has_no_problems(
    world: tuple[Store, Settings, Sandbox, list[int]],
) -> None:
    store, settings, sb, ids = world
    report = _audit(store, settings, sb)
    assert report.problems == 0 and report.rows == len(ids)
    shas = {r["sha256"] for r in poster_rows(store).values()}
    assert report.files_checked == report.files_ok == 2 * len(shas)  # originals and copies


def test_damage_is_found_and_repaired(
    world: tuple[Store, Settings, Sandbox, list[int]], tmp_path: Path
) -> None:
    store, settings, sb, ids = world
    rows = poster_rows(store)
    root = settings.posters_dir
    corrupt_rel = rows[ids[0]]["file_path"]
    deleted_rel = rows[ids[1]]["file_path"]
    copy_rel = rows[ids[2]]["resized_file_path"]
    shared_rel = rows[ids[-1]]["file_path"]  # the duplicate group's one file
    good = {rel: (root / rel).read_bytes() for rel in (corrupt_rel, deleted_rel, shared_rel)}

    data = bytearray((root / corrupt_rel).read_bytes())
    data[len(data) // 2] ^= 0x55
    (root / corrupt_rel).write_bytes(bytes(data))
    (root / deleted_rel).unlink()
    (root / shared_rel).unlink()
    (root / copy_rel).unlink()
    orphan_bytes = b"not referenced by any row"
    orphan_sha = hashlib.sha256(orphan_bytes).hexdigest()
    orphan_rel = f"{orphan_sha[:2]}/{orphan_sha}.jpg"
    (root / orphan_rel).parent.mkdir(exist_ok=True)
    (root / orphan_rel).write_bytes(orphan_bytes)
    stale = root / corrupt_rel.split("/")[0] / f"{TEMP_PREFIX}{DEAD_PID}-0a0b-{orphan_sha}.jpg"
    stale.write_bytes(b"half a poster")
    live = root / corrupt_rel.split("/")[0] / f"{TEMP_PREFIX}{os.getpid()}-0c0d-x.jpg"
    live.write_bytes(b"being written")
    (root / "notes.txt").write_text("the user's own file")

    report = _audit(store, settings, sb)
    assert report.corrupt == [corrupt_rel]
    assert sorted(report.missing) == sorted([deleted_rel, shared_rel])
    assert report.resized_missing == [copy_rel]
    assert report.orphans == [orphan_rel]
    assert report.stale_temp == [stale.relative_to(root).as_posix()]
    assert report.temp_in_progress == 1 and report.unknown == ["notes.txt"]
    assert report.problems == 6
    dup_ids = [i for i in ids if rows[i]["file_path"] == shared_rel]
    assert report.affected_movies == {ids[0], ids[1], *dup_ids}

    served = sb.counters.images_served
    repaired = _audit(store, settings, sb, repair=True)
    assert repaired.problems == 0
    assert (repaired.removed_orphans, repaired.removed_temp, repaired.removed_corrupt) == (1, 1, 1)
    assert repaired.resized_remade == 1
    assert repaired.redownload is not None and repaired.redownload.ok == 2 + len(dup_ids)
    assert sb.counters.images_served - served == 2 + len(dup_ids)  # the copy was remade locally
    for rel, content in good.items():
        assert (root / rel).read_bytes() == content
    assert (root / copy_rel).is_file()
    assert not (root / orphan_rel).exists() and not stale.exists()
    assert live.exists() and (root / "notes.txt").exists()  # not ours to remove
    live.unlink()
    (root / "notes.txt").unlink()
    assert _audit(store, settings, sb).problems == 0
    check_folder(root, tmp_path)
    assert poster_rows(store) == {
        i: {
            **rows[i],
            "downloaded_at": poster_rows(store)[i]["downloaded_at"],
            "attempts": poster_rows(store)[i]["attempts"],
        }
        for i in ids
    }


def test_rows_pointing_outside_the_folder_are_never_followed(
    world: tuple[Store, Settings, Sandbox, list[int]], tmp_path: Path
) -> None:
    store, settings, sb, ids = world
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"precious")
    with store.write() as conn:
        conn.execute(
            update(schema.posters)
            .where(schema.posters.c.tmdb_id == ids[0])
            .values(file_path="../outside.jpg")
        )
    report = _audit(store, settings, sb)
    assert report.bad_rows == [ids[0]] and report.problems >= 1
    repaired = _audit(store, settings, sb, repair=True)
    assert repaired.problems == 0
    assert outside.read_bytes() == b"precious"
    row = poster_rows(store)[ids[0]]
    assert row["status"] == "ok" and row["file_path"].startswith(row["sha256"][:2] + "/")
    assert _audit(store, settings, sb).problems == 0


def test_a_repair_that_cannot_download_leaves_problems_and_a_consistent_store(
    world: tuple[Store, Settings, Sandbox, list[int]],
) -> None:
    store, settings, sb, ids = world
    row = poster_rows(store)[ids[3]]
    (settings.posters_dir / row["file_path"]).unlink()
    sb.catalog.set_image_fault(ids[3], ImageFault("not_found"), row["poster_path"][1:])
    repaired = _audit(store, settings, sb, repair=True)
    assert repaired.problems == 1
    after = poster_rows(store)[ids[3]]
    assert after["status"] == "failed" and after["file_path"] is None
    assert str(ids[3]) in open_failures(store)
    assert _audit(store, settings, sb).problems == 0  # no ok row points at a missing file
