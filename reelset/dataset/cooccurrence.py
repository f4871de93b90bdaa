"""Genre co-occurrence: count, P(column | row) and Jaccard matrices, and the heatmap.

``cooccurrence.parquet`` is *wide*: one row per (scope, matrix, row genre), one float64
column per label (named by the label's name, in label order):

- ``scope`` (string): ``all``, ``train``, ``validation`` or ``test``;
- ``matrix`` (string): ``count`` (movies with both genres; symmetric; the diagonal is
  each genre's movie count; whole numbers stored as float64), ``p_col_given_row``
  (count / diagonal of the row: the share of the row genre's movies that also have the
  column genre; NaN when the row genre has no movie in that scope) or ``jaccard``
  (count / movies with either; NaN when neither has a movie);
- ``row_genre_id`` (int32) and ``row_genre`` (string): the row's label id and name.

``cooccurrence.png`` draws P(column | row) for the whole dataset, genres ordered by
spectral co-clustering of the count matrix (sklearn's ``SpectralCoclustering``, seeded),
clusters by size and genres within a cluster by count.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from reelset.dataset.poster_duplicates import popcount
from reelset.files import atomic_path

MATRICES = ("count", "p_col_given_row", "jaccard")
RESERVED = ("scope", "matrix", "row_genre_id", "row_genre")


def count_matrix(y: npt.NDArray[np.int8]) -> npt.NDArray[np.int64]:
    """Y^T Y: movies having both genres, exactly.

    Bit-packed columns ANDed and popcounted: a million movies take milliseconds, with no
    BLAS (whose spinning threads are slow on a busy two-core machine) and no rounding.
    """
    n, n_labels = y.shape
    counts = np.zeros((n_labels, n_labels), dtype=np.int64)
    if n == 0 or n_labels == 0:
        return counts
    packed = np.packbits(np.asarray(y, dtype=bool), axis=0)  # (ceil(n / 8), labels)
    padded = np.zeros((n_labels, -(-packed.shape[0] // 8) * 8), dtype=np.uint8)
    padded[:, : packed.shape[0]] = packed.T
    words = padded.view(np.uint64)  # (labels, words)
    for i in range(n_labels):
        both = popcount((words[i] & words[i:]).reshape(-1)).reshape(n_labels - i, -1).sum(axis=1)
        counts[i, i:] = both
        counts[i:, i] = both
    return counts


def derived(counts: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.float64]]:
    """The three matrices of one scope from its count matrix."""
    diag = np.diag(counts).astype(np.float64)
    c = counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.where(diag[:, None] > 0, c / diag[:, None], np.nan)
        union = diag[:, None] + diag[None, :] - c
        jaccard = np.where(union > 0, c / union, np.nan)
    return {"count": c, "p_col_given_row": conditional, "jaccard": jaccard}


def cooccurrence_table(
    y: npt.NDArray[np.int8],
    split_codes: npt.NDArray[np.int8],
    split_names: tuple[str, ...],
    label_ids: npt.NDArray[np.int64],
    label_names: list[str],
) -> tuple[pa.Table, dict[str, npt.NDArray[np.int64]]]:
    """The wide co-occurrence table and the count matrix per scope."""
    clash = set(RESERVED) & set(label_names)
    if clash:
        raise ValueError(f"a label is named like a co-occurrence column: {sorted(clash)}")
    scopes = {"all": count_matrix(y)}
    for code, name in enumerate(split_names):
        scopes[name] = count_matrix(y[split_codes == code])
    n_labels = len(label_names)
    columns: dict[str, list[object]] = {name: [] for name in RESERVED}
    values: list[npt.NDArray[np.float64]] = []
    for scope, counts in scopes.items():
        for matrix, m in derived(counts).items():
            columns["scope"] += [scope] * n_labels
            columns["matrix"] += [matrix] * n_labels
            columns["row_genre_id"] += [int(i) for i in label_ids]
            columns["row_genre"] += list(label_names)
            values.append(m)
    stacked = np.vstack(values) if values else np.zeros((0, n_labels))
    fields = [
        pa.field("scope", pa.string()),
        pa.field("matrix", pa.string()),
        pa.field("row_genre_id", pa.int32()),
        pa.field("row_genre", pa.string()),
    ] + [pa.field(name, pa.float64()) for name in label_names]
    arrays = [
        pa.array(columns["scope"], pa.string()),
        pa.array(columns["matrix"], pa.string()),
        pa.array(columns["row_genre_id"], pa.int32()),
        pa.array(columns["row_genre"], pa.string()),
    ] + [pa.array(stacked[:, j], pa.float64()) for j in range(n_labels)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), scopes


def cluster_order(counts: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.int64]:
    """Label indices ordered by spectral co-clustering of the count matrix."""
    n = len(counts)
    diag = np.diag(counts)
    by_count = np.argsort(-diag, kind="stable")
    if n < 3:
        return by_count.astype(np.int64)
    from sklearn.cluster import SpectralCoclustering

    n_clusters = int(min(n - 1, max(2, round(np.sqrt(n)))))
    model = SpectralCoclustering(n_clusters=n_clusters, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(counts.astype(np.float64) + 1.0)  # +1: no all-zero rows or columns
    clusters = np.asarray(model.row_labels_)
    size = {c: int(diag[clusters == c].sum()) for c in np.unique(clusters)}
    return np.array(
        sorted(range(n), key=lambda i: (-size[int(clusters[i])], int(clusters[i]), -diag[i], i)),
        dtype=np.int64,
    )


def draw_heatmap(
    counts: npt.NDArray[np.int64], label_names: list[str], path: Path, *, seed: int, title: str
) -> list[str]:
    """Write the P(column | row) heatmap PNG; returns the genre order used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = cluster_order(counts, seed)
    names = [label_names[i] for i in order]
    conditional = derived(counts)["p_col_given_row"][np.ix_(order, order)]
    n = len(names)
    size = max(4.0, 0.42 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=100)
    try:
        image = ax.imshow(np.nan_to_num(conditional), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        diag = np.diag(counts)[order]
        ax.set_yticks(range(n), [f"{nm} ({int(c):,})" for nm, c in zip(names, diag, strict=True)],
                      fontsize=8)
        if n <= 30:
            for i in range(n):
                for j in range(n):
                    v = conditional[i, j]
                    if np.isfinite(v) and i != j:
                        ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if v < 0.6 else "black")
        ax.set_xlabel("column genre")
        ax.set_ylabel("row genre (movies)")
        ax.set_title(title, fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="P(column | row)")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return names
