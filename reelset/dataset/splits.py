"""Train/validation/test splits: iterative stratification, stable across versions.

The algorithm is Sechidis, Tsoumakas and Vlahavas (2011), "On the Stratification of
Multi-Label Data", exactly as the iterative-stratification package implements it
(``iterstrat.ml_stratifiers.IterativeStratification``): take the label with the fewest
unassigned movies, give each of its movies to the split that most lacks that label
(ties: the split that most lacks movies, then random), repeat.

Why not call the package's function directly: it derives the desired counts from the
proportions alone (``r * n`` movies and ``outer(r, label totals)`` labels per split), a
rank-one target. Assigning only the *new* movies of a version "against the counts
already there" needs per-split, per-label targets ``r_s * total_l - already_s,l``, which
that signature cannot express. :func:`iterative_stratification` is the same algorithm
with explicit targets; with nothing already assigned it returns exactly what the
package returns for the same labels and random state (a test checks this), and it runs
its inner loop in plain Python over one label column instead of per-row numpy, which
makes a million movies take seconds.

Stability: every version keeps a ledger (``split_assignments.parquet``) of every movie
ever assigned under the dataset name. A movie in the ledger keeps its split forever
(even if it left the dataset for a while and came back); a new movie whose dedupe
duplicate is in the ledger inherits that split (so the same film cannot move from
train to test because another TMDB id of it became the kept one); only the other new
movies are stratified, against the counts the pinned movies already put in each split.
New movies are taken in an order fixed by a hash of (seed, tmdb_id), so a movie's place
in that order does not depend on which other movies exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SPLITS: tuple[str, ...] = ("train", "validation", "test")

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def iterative_stratification(
    labels: npt.NDArray[np.bool_],
    desired_rows: npt.NDArray[np.float64],
    desired_labels: npt.NDArray[np.float64],
    random_state: np.random.RandomState,
) -> npt.NDArray[np.int64]:
    """Assign each row of ``labels`` to a fold, towards the desired counts.

    ``desired_rows[f]`` is how many more rows fold ``f`` should get and
    ``desired_labels[f, l]`` how many more rows with label ``l``. The same float
    arithmetic and the same random draws as ``iterstrat``'s ``IterativeStratification``
    (which calls this with ``desired_rows = r * n`` and ``desired_labels = outer(r, sums)``).
    """
    labels = np.asarray(labels, dtype=bool)
    n = labels.shape[0]
    n_folds = len(desired_rows)
    folds = np.zeros(n, dtype=np.int64)
    c_rows = [float(x) for x in desired_rows]
    c_labels = [[float(x) for x in row] for row in np.asarray(desired_labels, dtype=np.float64)]
    remaining = labels.sum(axis=0).astype(np.int64)
    unassigned = np.ones(n, dtype=bool)
    fold_range = range(n_folds)

    while unassigned.any():
        if remaining.sum() == 0:
            # Only rows without labels are left: spread them by rows still wanted.
            for row in np.flatnonzero(unassigned).tolist():
                top = max(c_rows)
                best = [f for f in fold_range if c_rows[f] == top]
                fold = best[random_state.choice(len(best))] if len(best) > 1 else best[0]
                folds[row] = fold
                c_rows[fold] -= 1
            break

        positive = remaining[remaining > 0]
        fewest = np.flatnonzero(remaining == positive.min())
        label = int(fewest[random_state.choice(len(fewest))] if len(fewest) > 1 else fewest[0])
        rows = np.flatnonzero(labels[:, label] & unassigned)

        wanted = [c_labels[f][label] for f in fold_range]
        picks: list[int] = []
        for _ in range(len(rows)):
            top = max(wanted)
            if wanted.count(top) == 1:
                fold = wanted.index(top)
            else:
                best = [f for f in fold_range if wanted[f] == top]
                top_rows = max(c_rows[f] for f in best)
                tied = [f for f in best if c_rows[f] == top_rows]
                fold = tied[random_state.choice(len(tied))] if len(tied) > 1 else tied[0]
            picks.append(fold)
            wanted[fold] -= 1
            c_rows[fold] -= 1
        chosen = np.array(picks, dtype=np.int64)

        folds[rows] = chosen
        unassigned[rows] = False
        taken = labels[rows]
        remaining -= taken.sum(axis=0)
        for fold in fold_range:
            c_labels[fold][label] = wanted[fold]
            per_label = taken[chosen == fold].sum(axis=0)
            per_label[label] = 0
            fold_wants = c_labels[fold]
            for other in np.flatnonzero(per_label).tolist():
                # One subtraction per row, as the row-at-a-time original does (the
                # rounding of x - 1 - 1 ... can differ from x - k once x < 0).
                value = fold_wants[other]
                for _ in range(int(per_label[other])):
                    value -= 1
                fold_wants[other] = value
    return folds


def order_key(tmdb_ids: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.uint64]:
    """A pseudo-random sort key per movie from (seed, tmdb_id) only (splitmix64)."""
    with np.errstate(over="ignore"):
        x = np.asarray(tmdb_ids, dtype=np.int64).view(np.uint64) ^ np.uint64(
            (seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        )
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


@dataclass
class SplitAssignment:
    """Each movie's split code (index into :data:`SPLITS`) and how it was decided."""

    codes: npt.NDArray[np.int8]
    kept: int
    """Movies whose split came from the ledger."""
    inherited: int
    """New movies that took the split of a dedupe duplicate in the ledger."""
    assigned: int
    """New movies stratified in this build."""


def assign_splits(
    tmdb_ids: npt.NDArray[np.int64],
    y: npt.NDArray[np.int8],
    fractions: tuple[float, float, float],
    seed: int,
    ledger: dict[int, int],
    aliases: dict[int, int] | None = None,
) -> SplitAssignment:
    """Split codes for these movies (rows of ``y``), honouring the ledger.

    ``ledger`` maps tmdb_id -> split code of every movie assigned in earlier versions;
    ``aliases`` maps a movie -> the ledger movie whose split it inherits (dedupe
    duplicates). Splits with fraction 0 get no new movies.
    """
    n = len(tmdb_ids)
    codes = np.full(n, -1, dtype=np.int8)
    ids = np.asarray(tmdb_ids, dtype=np.int64)
    if ledger:
        known_ids = np.fromiter(ledger.keys(), dtype=np.int64, count=len(ledger))
        known_codes = np.fromiter(ledger.values(), dtype=np.int8, count=len(ledger))
        order = np.argsort(known_ids)
        known_ids, known_codes = known_ids[order], known_codes[order]
        pos = np.clip(np.searchsorted(known_ids, ids), 0, len(known_ids) - 1)
        hit = known_ids[pos] == ids
        codes[hit] = known_codes[pos[hit]]
    kept = int((codes >= 0).sum())
    inherited = 0
    for row in np.flatnonzero(codes < 0).tolist() if aliases else []:
        source = aliases.get(int(ids[row])) if aliases else None
        if source is not None and source in ledger:
            codes[row] = ledger[source]
            inherited += 1

    new = np.flatnonzero(codes < 0)
    active = [i for i, f in enumerate(fractions) if f > 0]
    if len(new):
        order = new[np.argsort(order_key(ids[new], seed), kind="stable")]
        r = np.array([fractions[i] for i in active], dtype=np.float64)
        label_totals = y.sum(axis=0).astype(np.int64)
        have_rows = np.array([(codes == i).sum() for i in active], dtype=np.int64)
        have_labels = np.array(
            [y[codes == i].sum(axis=0) for i in active], dtype=np.int64
        ).reshape(len(active), y.shape[1])
        # With nothing pinned these are exactly iterstrat's r * n and outer(r, totals).
        desired_rows = np.asarray(r * n - have_rows, dtype=np.float64)
        desired_labels = np.asarray(np.outer(r, label_totals) - have_labels, dtype=np.float64)
        folds = iterative_stratification(
            y[order].astype(bool), desired_rows, desired_labels, np.random.RandomState(seed)
        )
        codes[order] = np.array(active, dtype=np.int8)[folds]
    return SplitAssignment(codes=codes, kept=kept, inherited=inherited, assigned=len(new))
