"""Poster duplicates: byte-identical and near-identical posters across movies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reelset.dataset.poster_duplicates import earliest_within, find_poster_duplicates, popcount
from tests.dataset.conftest import Crafted, build, movie, plan_for, poster_row


def brute_force(values: np.ndarray, payload: np.ndarray, k: int) -> np.ndarray:
    dist = popcount((values[:, None] ^ values[None, :]).reshape(-1)).reshape(len(values), -1)
    return np.where(dist <= k, payload[None, :], np.iinfo(np.int64).max).min(axis=1)


@pytest.mark.parametrize("k", [0, 1, 2, 4, 7])
def test_near_search_equals_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    base = rng.integers(0, 2**63, size=150, dtype=np.int64).astype(np.uint64)
    # Clusters: copies of some hashes with 1..k+2 random bits flipped.
    near = []
    for value in base[:60]:
        for _ in range(3):
            v = int(value)
            for bit in rng.choice(64, size=int(rng.integers(1, k + 3)), replace=False):
                v ^= 1 << int(bit)
            near.append(v)
    values = np.unique(np.concatenate([base, np.array(near, dtype=np.uint64)]))
    payload = rng.permutation(len(values)).astype(np.int64)
    assert (earliest_within(values, payload, k) == brute_force(values, payload, k)).all()


def test_find_marks_later_movies_with_earliest_match() -> None:
    ids = np.array([5, 3, 9, 12, 20, 30], dtype=np.int64)
    sha = pa.array(["a", "b", "a", "c", None, "d"])
    phash = pa.array(["00000000000000ff", "ffff000000000000", "00000000000000ff",
                      "00000000000000fe", "00000000000000f0", "not hex"])
    found = find_poster_duplicates(ids, sha, phash, 4)
    rows = found.table.to_pylist()
    assert rows == [
        {"tmdb_id": 9, "duplicate_of": 5, "match": "sha256", "distance": 0},
        {"tmdb_id": 12, "duplicate_of": 5, "match": "phash", "distance": 1},
        {"tmdb_id": 20, "duplicate_of": 5, "match": "phash", "distance": 4},
    ]
    assert found.counts() == {"sha256": 1, "phash": 2}
    assert find_poster_duplicates(ids, sha, phash, 0).counts() == {"sha256": 1, "phash": 0}


@pytest.fixture
def posters(crafted: Crafted) -> Crafted:
    crafted.add(movie(i) for i in (1, 2, 3, 4, 5))
    same = "ab" * 32
    crafted.posters(
        [
            poster_row(1, sha=same, phash="0123456789abcdef"),
            poster_row(2, sha=same, phash="0123456789abcdef"),  # byte-identical to 1
            poster_row(3, phash="0123456789abcdee"),  # 1 bit from 1
            poster_row(4, phash="fedcba9876543210"),  # unrelated
            poster_row(5, status="failed"),
        ]
    )
    return crafted


def test_duplicates_are_reported_and_kept_by_default(posters: Crafted) -> None:
    plan = plan_for(posters)
    assert plan.poster_duplicates.column("tmdb_id").to_pylist() == [2, 3]
    assert plan.manifest["poster_duplicates"]["sha256"] == 1
    assert plan.manifest["poster_duplicates"]["phash"] == 1
    files = {
        i: f
        for t in plan.splits.values()
        for i, f in zip(t.column("tmdb_id").to_pylist(), t.column("poster_file").to_pylist(),
                        strict=True)
    }
    assert files[2] is not None and files[3] is not None and files[5] is None


def test_drop_poster_duplicates_removes_later_references(posters: Crafted) -> None:
    plan = plan_for(posters, drop_poster_duplicates=True)
    table = pa.concat_tables(plan.splits.values()).sort_by("tmdb_id")
    assert table.column("poster_file").to_pylist()[:4] == [
        table.column("poster_file")[0].as_py(), None, None,
        table.column("poster_file")[3].as_py(),
    ]
    assert table.column("poster_sha256").to_pylist()[1:3] == [None, None]
    assert plan.manifest["poster_duplicates"]["references_dropped"] == 2
    # With require_poster too, the movies that lost their poster leave the dataset.
    strict = plan_for(posters, drop_poster_duplicates=True, require_poster=True)
    assert strict.manifest["removed"]["poster_duplicate"] == 2
    assert strict.manifest["removed"]["no_poster"] == 1
    assert strict.manifest["rows"]["total"] == 2


def test_poster_duplicates_file(posters: Crafted) -> None:
    import pyarrow.parquet as pq

    result = build(posters, poster_phash_distance=0)
    table = pq.read_table(result.path / "poster_duplicates.parquet")
    assert table.to_pylist() == [{"tmdb_id": 2, "duplicate_of": 1, "match": "sha256",
                                  "distance": 0}]
