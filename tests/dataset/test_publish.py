"""The written dataset: determinism, versions, co-occurrence, loaders, interrupted builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from reelset.dataset import load, load_arrow, load_labels
from reelset.dataset.build import build_dataset
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import latest
from reelset.files import TEMP_PREFIX
from tests.dataset.conftest import Crafted, build, movie, poster_row, random_movies

SHARDS = {s: f"data/{s}-00000-of-00001.parquet" for s in SPLITS}  # small posters: one each
DATA_FILES = [
    *SHARDS.values(),
    "removed.parquet",
    "poster_duplicates.parquet",
    "split_assignments.parquet",
    "cooccurrence.parquet",
    "labels.json",
    "cooccurrence.png",
]


@pytest.fixture
def filled(crafted: Crafted) -> Crafted:
    crafted.add(random_movies(400, seed=9))
    crafted.add([movie(1000, overview="Too short."), movie(1001, adult=True)])
    crafted.posters(poster_row(i) for i in range(1, 300))
    return crafted


def test_rebuild_is_byte_identical(filled: Crafted) -> None:
    one = build(filled, "out1", row_group_size=100)
    two = build(filled, "out2", row_group_size=100)
    assert one.fingerprint == two.fingerprint
    files = json.loads((one.path / "manifest.json").read_text())["files"]
    assert set(files) >= set(DATA_FILES)
    assert files == json.loads((two.path / "manifest.json").read_text())["files"]
    for name in files:  # the card and croissant.json too, posters included
        assert (one.path / name).read_bytes() == (two.path / name).read_bytes(), name
    meta = pq.ParquetFile(one.path / SHARDS["train"]).metadata
    assert meta.num_row_groups == -(-one.rows["train"] // 100)
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert set(meta.metadata or {}) == {b"ARROW:schema"}  # no pandas metadata, no times


def test_unchanged_build_makes_no_version(filled: Crafted) -> None:
    first = build(filled)
    again = build(filled)
    assert (first.status, again.status, again.version) == ("built", "unchanged", "v0001")
    root = filled.tmp_path / "out" / "genres"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "LATEST", "v0001"]
    dry = build_dataset(filled.settings(), dry_run=True)
    assert dry.status == "unchanged"
    # A change in the store, or in a setting that shapes the content, makes a version.
    filled.add([movie(2000, genre_ids=(35,))])
    changed = build(filled)
    assert (changed.status, changed.version, changed.parent_version) == (
        "built", "v0002", "v0001")
    assert (root / "LATEST").read_text() == "v0002\n"
    assert build(filled, min_overview_words=3).version == "v0003"


def test_dry_run_writes_nothing(filled: Crafted) -> None:
    result = build_dataset(filled.settings(), dry_run=True)
    assert result.status == "dry-run" and result.version == "v0001" and result.path is None
    assert not (filled.tmp_path / "out").exists()


def test_manifest_and_card(filled: Crafted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", "sekrit-api-key-1234")
    result = build(filled)
    raw = (result.path / "manifest.json").read_text()
    assert "sekrit-api-key-1234" not in raw
    manifest = json.loads(raw)
    assert manifest["name"] == "genres" and manifest["version"] == "v0001"
    assert manifest["created_at"] == "2026-11-21T12:00:00Z"
    assert manifest["parent_version"] is None
    assert manifest["store"]["schema_version"] and manifest["store"]["row_counts"]["movies"] == 402
    assert manifest["removed"]["overview_too_short"] == 1 and manifest["removed"]["adult"] == 1
    assert manifest["rows"]["total"] == 400
    assert sum(manifest["rows"][s] for s in SPLITS) == 400
    assert set(manifest["libraries"]) >= {"pyarrow", "pandas", "numpy", "scikit-learn",
                                          "iterative-stratification"}
    for name, entry in manifest["files"].items():
        import hashlib

        data = (result.path / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert set(manifest["files"]) == {*DATA_FILES, "README.md", "croissant.json"}
    assert manifest["data_files"] == {s: [SHARDS[s]] for s in SPLITS}
    assert manifest["images"]["mode"] == "embed"
    assert sum(manifest["images"]["with_image"].values()) == len(
        load("genres", split="all", output_dir=result.path.parent.parent,
             columns=["poster_file"])["poster_file"].dropna())
    card = (result.path / "README.md").read_text()
    assert card.startswith("---\n") and SHARDS["validation"] in card
    assert "cooccurrence.png" in card and "| `labels` |" in card


def test_cooccurrence_invariants(filled: Crafted) -> None:
    result = build(filled)
    table = pq.read_table(result.path / "cooccurrence.parquet").to_pandas()
    labels = load_labels("genres", output_dir=filled.tmp_path / "out")
    names = [lab["name"] for lab in labels]
    assert list(table.columns[4:]) == names

    def matrix(scope: str, kind: str) -> np.ndarray:
        part = table[(table["scope"] == scope) & (table["matrix"] == kind)]
        assert list(part["row_genre"]) == names
        return part[names].to_numpy()

    counts = {s: matrix(s, "count") for s in ("all", *SPLITS)}
    for scope, c in counts.items():
        assert (c == c.T).all()
        assert list(np.diag(c)) == [lab["counts"][scope] for lab in labels]
    assert (counts["all"] == sum(counts[s] for s in SPLITS)).all()
    # Totals against the store itself.
    ids = load("genres", split="all", output_dir=filled.tmp_path / "out")["tmdb_id"].tolist()
    in_list = ",".join(str(i) for i in ids)
    with filled.store.read() as conn:
        per_genre: dict[int, int] = dict(conn.execute(text(
            f"SELECT genre_id, count(*) FROM movie_genres WHERE tmdb_id IN ({in_list}) "
            "GROUP BY genre_id")).all())
        pair = conn.execute(text(
            f"SELECT count(*) FROM movie_genres a JOIN movie_genres b ON a.tmdb_id = b.tmdb_id "
            f"WHERE a.genre_id = 18 AND b.genre_id = 35 AND a.tmdb_id IN ({in_list})")).scalar()
    for i, lab in enumerate(labels):
        assert counts["all"][i, i] == per_genre[lab["id"]]
    drama, comedy = names.index("Drama"), names.index("Comedy")
    assert counts["all"][drama, comedy] == pair
    p = matrix("all", "p_col_given_row")
    assert p[drama, comedy] == pytest.approx(pair / per_genre[18])
    j = matrix("all", "jaccard")
    assert j[drama, comedy] == pytest.approx(pair / (per_genre[18] + per_genre[35] - pair))
    assert (result.path / "cooccurrence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_files_load_with_pandas_pyarrow_and_loaders(filled: Crafted) -> None:
    result = build(filled)
    out = filled.tmp_path / "out"
    frame = pd.read_parquet(result.path / SHARDS["train"])
    assert frame["tmdb_id"].is_monotonic_increasing and len(frame) == result.rows["train"]
    y = np.stack(frame["labels"].to_numpy())
    assert y.shape == (len(frame), len(result.labels)) and y.dtype == np.int8
    assert (y.sum(axis=1) == frame["genre_ids"].map(len)).all()
    arrow = load_arrow("genres", "v1", "test", output_dir=out)
    assert arrow.num_rows == result.rows["test"]
    assert arrow.schema.field("labels").type.list_size == len(result.labels)
    both = load("genres", 1, "all", output_dir=out, columns=["tmdb_id"])
    assert len(both) == result.rows["total"] and set(both["split"]) == set(SPLITS)
    from reelset.errors import UsageError

    with pytest.raises(UsageError):
        load("genres", "v7", output_dir=out)
    with pytest.raises(UsageError):
        load("genres", split="dev", output_dir=out)


def test_loads_with_hugging_face_datasets(
    filled: Crafted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # nothing in the real home
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    result = build(filled)
    cache = str(tmp_path / "hf-cache")
    by_builder = datasets.load_dataset("parquet", data_dir=str(result.path), cache_dir=cache)
    by_card = datasets.load_dataset(str(result.path), cache_dir=cache)
    for loaded in (by_builder, by_card):
        assert {s: loaded[s].num_rows for s in SPLITS} == {s: result.rows[s] for s in SPLITS}
        assert loaded["train"].features["labels"].length == len(result.labels)


def test_failure_in_the_last_step_leaves_no_version(
    filled: Crafted, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reelset.dataset.publish as publish

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    def half_written(table: object, where: str | Path, **kwargs: object) -> None:
        Path(where).write_bytes(b"PAR1 and then the disk")
        raise RuntimeError("disk on fire")

    root = filled.tmp_path / "out" / "genres"
    real_write_table = publish.pq.ParquetWriter.write_table

    def half_a_shard(self: object, table: object, **kwargs: object) -> None:
        real_write_table(self, table, **kwargs)
        raise RuntimeError("disk on fire")

    targets = ("write_latest", "dataset_card", "croissant_document", "pq.write_table",
               "ParquetWriter.write_table")
    for target in targets:
        with monkeypatch.context() as patch:
            if target == "pq.write_table":
                patch.setattr(publish.pq, "write_table", half_written)
            elif target == "ParquetWriter.write_table":  # a poster shard, half written
                patch.setattr(publish.pq.ParquetWriter, "write_table", half_a_shard)
            else:
                patch.setattr(publish, target, broken)
            with pytest.raises(RuntimeError):
                build(filled)
        assert [p.name for p in root.iterdir()] == [".lock"], target
    assert build(filled).version == "v0001"


def test_a_build_removes_temp_files_that_killed_builds_left(filled: Crafted) -> None:
    root = filled.tmp_path / "out" / "genres"
    root.mkdir(parents=True)
    left = root / f"{TEMP_PREFIX}{2**22 + 12345}-0a0b-LATEST"
    left.write_text("v0007\n")
    assert build(filled).version == "v0001"
    assert not left.exists() and latest(root) == "v0001"


_KILLED_BUILD = """
import os, signal, sys
import reelset.dataset.cooccurrence as cooccurrence
from reelset.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    import time; time.sleep(5)

cooccurrence.draw_heatmap = die
sys.exit(main(["build"]))
"""


@pytest.mark.parametrize("signal_name, code", [("SIGKILL", -9), ("SIGTERM", 130)])
def test_killed_build_leaves_no_version(filled: Crafted, signal_name: str, code: int) -> None:
    env = {**os.environ, "REELSET_CONFIG": str(filled.config_file())}
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD, signal_name], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    root = filled.tmp_path / "out" / "genres"
    assert not any(p.name.startswith("v0") for p in root.iterdir())
    assert latest(root) is None
    staging = [p for p in root.iterdir() if p.name.startswith(".staging-")]
    assert len(staging) == (1 if signal_name == "SIGKILL" else 0)
    # The next build cleans up and publishes v0001.
    assert build(filled).version == "v0001"
    assert not any(p.name.startswith(".staging-") for p in root.iterdir())


_WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # the `plot` extra is not installed
from reelset.cli import main
sys.exit(main(["build", "--json"]))
"""


def test_a_build_without_matplotlib_skips_only_the_heatmap(filled: Crafted) -> None:
    env = {**os.environ, "REELSET_CONFIG": str(filled.config_file())}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_MATPLOTLIB], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cooccurrence.png skipped" in proc.stderr and "reelset[plot]" in proc.stderr
    folder = filled.tmp_path / "out" / "genres" / "v0001"
    assert not (folder / "cooccurrence.png").exists()
    assert (folder / "cooccurrence.parquet").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["heatmap"] is None and "cooccurrence.png" not in manifest["files"]
    card = (folder / "README.md").read_text()
    assert "cooccurrence.png" not in card.split("## Format")[0]
    assert "no heatmap: matplotlib was not installed" in card
    again = build(filled, "out2")  # with matplotlib
    assert again.path is not None and (again.path / "cooccurrence.png").is_file()
