"""Helpers shared by the poster tests (no tests here): stores, settings, invariants."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from reelset.config import Settings, settings_from_dict
from reelset.posters.filestore import TEMP_PREFIX
from reelset.sandbox import Catalog
from reelset.storage import MovieRecord, Store, schema

FIXTURES = Path(__file__).parent.parent / "fixtures" / "posters"


def poster_settings(tmp_path: Path, **posters: Any) -> Settings:
    """Settings for poster tests: files under ``tmp_path/posters``, fast retries."""
    section: dict[str, Any] = {
        "rate_limit": "1000/1s",
        "max_workers": 4,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    section.update(posters)
    return settings_from_dict(
        {"storage": {"posters_dir": "posters"}, "posters": section}, base_dir=tmp_path
    )


def store_movies(store: Store, catalog: Catalog, ids: Iterable[int]) -> list[int]:
    """Store these catalog movies (title and poster_path as the catalog has them)."""
    records = []
    for tmdb_id in ids:
        record = catalog.record(tmdb_id)
        assert record is not None, tmdb_id
        records.append(
            MovieRecord(tmdb_id=tmdb_id, title=record["title"], poster_path=record["poster_path"])
        )
    store.movies.upsert(records)
    return [r.tmdb_id for r in records]


def normal_ids(catalog: Catalog, exclude: Iterable[int], count: int) -> list[int]:
    """``count`` catalog movies with an ordinary poster, not in ``exclude``."""
    skip = set(exclude)
    found = []
    for tmdb_id in catalog.ids():
        record = catalog.record(tmdb_id)
        if tmdb_id in skip or record is None or not record["poster_path"]:
            continue
        target = catalog.resolve_image(record["poster_path"][1:])
        if target is not None and target.kind != "fault":
            found.append(tmdb_id)
        if len(found) == count:
            break
    return found


def poster_rows(store: Store) -> dict[int, dict[str, Any]]:
    """Every posters row by tmdb_id, as dicts."""
    with store.read() as conn:
        return {
            int(r["tmdb_id"]): dict(r)
            for r in conn.execute(select(schema.posters)).mappings().all()
        }


def open_failures(store: Store) -> dict[str, Any]:
    """Open ``poster`` failures by key."""
    return {f.key: f for f in store.failures.open("poster")}


def check_folder(root: Path, tmp_path: Path) -> dict[str, str]:
    """Assert the folder invariants; returns ``{relative path: sha256}`` of the files.

    Every file is ``<sha[:2]>/<sha>.<ext>`` (or a training copy) and holds exactly the bytes
    its name says; no temporary file is left; nothing was written outside ``root`` except
    the store.
    """
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            assert path.parent == root and len(path.name) == 2, path
            continue
        rel = path.relative_to(root).as_posix()
        assert not path.name.startswith(TEMP_PREFIX), f"temp file left: {rel}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        stem = path.name.split(".")[0]
        if ".r" not in path.name:
            assert stem == digest, f"{rel} does not hold the bytes its name says"
        assert rel.startswith(stem[:2] + "/"), rel
        files[rel] = digest
    for path in tmp_path.rglob("*"):
        if path.is_file() and root not in path.parents:
            top = path.relative_to(tmp_path).parts[0]
            assert top == "store" or path.suffix == ".toml", f"file outside posters_dir: {path}"
    return files
