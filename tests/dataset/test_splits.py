"""Splits: the iterative stratification itself, its quality, and stability across versions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from iterstrat.ml_stratifiers import IterativeStratification

from reelset.dataset import load_arrow
from reelset.dataset.inspect import diff
from reelset.dataset.splits import SPLITS, assign_splits, iterative_stratification
from tests.dataset.conftest import Crafted, build, movie, plan_for, random_movies


@pytest.mark.parametrize("seed", range(12))
def test_same_assignment_as_the_maintained_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(1, 300)), int(rng.integers(1, 7))
    labels = rng.random((n, n_labels)) < rng.random(n_labels) * 0.6
    labels[rng.random(n) < 0.1] = False  # some rows without labels
    r = np.array([0.8, 0.1, 0.1]) if seed % 2 else np.array([0.5, 0.3, 0.2])
    expected = IterativeStratification(labels=labels, r=r, random_state=np.random.RandomState(7))
    ours = iterative_stratification(
        labels, r * n, np.outer(r, labels.sum(axis=0)), np.random.RandomState(7)
    )
    assert ours.tolist() == expected.tolist()


def test_pinned_movies_count_towards_the_targets() -> None:
    # 100 movies with label 0 already sit in train: new label-0 movies go elsewhere first.
    y = np.zeros((200, 2), dtype=np.int8)
    y[:150, 0] = 1
    y[150:, 1] = 1
    ids = np.arange(1, 201, dtype=np.int64)
    ledger = {int(i): 0 for i in ids[:100]}
    result = assign_splits(ids, y, (0.5, 0.25, 0.25), 3, ledger)
    codes = result.codes
    assert (codes[:100] == 0).all()
    new_label0 = codes[100:150]
    # Label 0 has 150 movies: 75 belong in train, which holds 100 already.
    assert (new_label0 == 0).sum() == 0
    assert result.kept == 100 and result.assigned == 100


def _split_of(path: object) -> dict[int, str]:
    out = {}
    for split in SPLITS:
        table = load_arrow(path=path, split=split, columns=["tmdb_id"])
        for i in table.column("tmdb_id").to_pylist():
            assert i not in out, f"movie {i} in two splits"
            out[i] = split
    return out


def test_stratification_quality(crafted: Crafted) -> None:
    crafted.add(random_movies(3000, seed=5))
    plan = plan_for(crafted)
    table = pa.concat_tables(
        t.append_column("split", pa.array([s] * t.num_rows)) for s, t in plan.splits.items()
    )
    y = np.stack(table.column("labels").to_numpy(zero_copy_only=False))
    split = np.array(table.column("split").to_pylist())
    shares = {s: (split == s).mean() for s in SPLITS}
    assert shares["train"] == pytest.approx(0.8, abs=0.01)
    assert shares["validation"] == pytest.approx(0.1, abs=0.01)
    overall = y.mean(axis=0)
    for j in np.flatnonzero(y.sum(axis=0) >= 100):
        for s in SPLITS:
            within = y[split == s, j].mean()
            # Each label's share within a split stays within 10% (relative) of its
            # share overall, for labels with at least 100 movies.
            assert abs(within - overall[j]) <= 0.1 * overall[j], (j, s)


def test_splits_stable_across_versions(crafted: Crafted) -> None:
    crafted.add(random_movies(1000, seed=1))
    first = build(crafted)
    v1 = _split_of(first.path)
    # Next version: 100 movies gone, 300 new, 50 relabelled.
    crafted.store.movies.mark_gone(range(1, 101))
    crafted.add(random_movies(300, seed=2, start_id=2001))
    crafted.add(movie(i, genre_ids=(99, 36)) for i in range(500, 550))
    second = build(crafted)
    assert (first.version, second.version) == ("v0001", "v0002")
    assert second.parent_version == "v0001"
    v2 = _split_of(second.path)
    common = set(v1) & set(v2)
    assert len(common) == 900
    assert all(v1[i] == v2[i] for i in common)
    new = [v2[i] for i in range(2001, 2301)]
    assert new.count("train") == pytest.approx(240, abs=15)
    assert second.splits == {"kept_from_ledger": 900, "inherited_from_duplicates": 0,
                              "newly_assigned": 300}
    changes = diff(crafted.tmp_path / "out", "genres@v1", "genres@v2")
    assert (changes["added"], changes["removed"], changes["split_moves"]) == (300, 100, 0)
    assert changes["relabelled"] == 50
    # A movie that comes back gets its old split from the ledger, not a new one.
    crafted.add(random_movies(100, seed=1)[:100])  # ids 1-100, active again
    third = build(crafted)
    v3 = _split_of(third.path)
    assert all(v3[i] == v1[i] for i in range(1, 101))
    assert third.splits["newly_assigned"] == 0


def test_kept_duplicate_inherits_the_split(crafted: Crafted) -> None:
    crafted.add(random_movies(200, seed=3))
    first = build(crafted)
    before = _split_of(first.path)[50]
    # Movie 5000 is the same film as 50 (same IMDb id) and more complete: it is kept now.
    crafted.add([movie(5000, imdb_id="tt0000050", tagline="New tagline.", popularity=99.0)])
    second = build(crafted)
    after = _split_of(second.path)
    assert 50 not in after and after[5000] == before
    assert second.splits["inherited_from_duplicates"] == 1


def test_zero_fraction_split_stays_empty(crafted: Crafted) -> None:
    crafted.add(random_movies(300, seed=4))
    plan = plan_for(crafted, splits={"train": 0.7, "validation": 0.0, "test": 0.3})
    assert plan.splits["validation"].num_rows == 0
    assert plan.splits["test"].num_rows == pytest.approx(90, abs=10)
