"""The label set: where genres come from, which ones become labels, and multi-hot vectors.

Label identity (stable across versions and datasets):

- a TMDB genre is the label ``id`` = its TMDB genre id, ``name`` = its name in the store's
  ``genres`` table (``Unknown (<id>)`` if the store has none), ``source`` = ``"tmdb"``;
- an IMDb genre mapped by ``[genres.imdb_to_tmdb]`` *is* that TMDB genre (same id, same
  name; "Music" and "Musical" both become TMDB 10402 "Music");
- an IMDb genre with no mapping stays an IMDb-only label: ``name`` = ``"imdb:<Genre>"``
  (e.g. ``imdb:Biography``), ``source`` = ``"imdb"``, and ``id`` = a negative number
  derived from the IMDb name only: ``-(crc32(utf8(name)) & 0x7FFFFFFF) - 1``
  (see :func:`imdb_label_id`), so it is the same in every build and never collides with a
  TMDB id.

Label order (``labels.json``, the columns of the multi-hot ``labels`` vector): TMDB-id
labels by ascending id, then IMDb-only labels by name. It only changes when the label
set changes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

IMDB_PREFIX = "imdb:"


def imdb_label_id(imdb_genre: str) -> int:
    """The (negative, stable) label id of an IMDb genre that maps to no TMDB genre."""
    return -(zlib.crc32(imdb_genre.encode("utf-8")) & 0x7FFFFFFF) - 1


@dataclass(frozen=True)
class Label:
    """One label: its column in the multi-hot vector, id, name and source."""

    index: int
    id: int
    name: str
    source: str
    imdb_genres: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``labels.json``)."""
        return {
            "index": self.index,
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "imdb_genres": list(self.imdb_genres),
        }


@dataclass
class GenreSources:
    """Each movie's genres per source as (tmdb_id, label id) pairs, and the label names."""

    tmdb: pd.DataFrame
    """(tmdb_id, label_id) from movie_genres."""
    imdb: pd.DataFrame
    """(tmdb_id, label_id) from IMDb genres (mapped ids, or negative IMDb-only ids)."""
    names: dict[int, str]
    imdb_names: dict[int, tuple[str, ...]]
    """Per label id, the IMDb genre names that map onto it."""

    def pairs(self, source: str) -> pd.DataFrame:
        """The (tmdb_id, label_id) pairs of a label source (tmdb, imdb or union)."""
        if source == "tmdb":
            return self.tmdb
        if source == "imdb":
            return self.imdb
        return pairs_frame(
            np.concatenate([self.tmdb["tmdb_id"].to_numpy(), self.imdb["tmdb_id"].to_numpy()]),
            np.concatenate([self.tmdb["label_id"].to_numpy(), self.imdb["label_id"].to_numpy()]),
        )


def pair_keys(tmdb_ids: npt.NDArray[np.int64], label_ids: npt.NDArray[np.int64]) -> Any:
    """One int64 per (movie, label): tmdb_id in the high 32 bits, the label id's in the low."""
    return (np.asarray(tmdb_ids, dtype=np.int64) << 32) | (
        np.asarray(label_ids, dtype=np.int64) & 0xFFFFFFFF
    )


def _unkey(keys: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    low = (keys & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)
    return keys >> 32, low


def distinct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sorted distinct values (sort-based: numpy 2's hash-based ``np.unique`` is far slower
    on millions of int64)."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def pairs_frame(tmdb_ids: npt.NDArray[np.int64], label_ids: npt.NDArray[np.int64]) -> pd.DataFrame:
    """Distinct (tmdb_id, label_id) pairs, sorted."""
    movies, labels = _unkey(distinct(pair_keys(tmdb_ids, label_ids)))
    return pd.DataFrame({"tmdb_id": movies, "label_id": labels})


def imdb_numbers(values: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    """IMDb ids as numbers (``tt0000123`` -> 123, case and spaces ignored); -1 if not one."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    valid = pc.fill_null(pc.match_substring_regex(text, r"^tt\d{1,15}$"), False)
    digits = pc.if_else(valid, pc.utf8_slice_codeunits(text, 2), pa.scalar("-1"))
    return np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def genre_sources(
    movies: pa.Table,
    movie_genres: pa.Table,
    genres: pa.Table,
    imdb_genres: pa.Table,
    imdb_to_tmdb: dict[str, int],
) -> GenreSources:
    """Both sources' genres for the movies of ``movies`` (tmdb_id, imdb_id columns)."""
    names: dict[int, str] = {
        int(i): str(n)
        for i, n in zip(
            genres.column("genre_id").to_pylist(), genres.column("name").to_pylist(), strict=True
        )
    }
    tmdb = pairs_frame(
        np.asarray(movie_genres.column("tmdb_id").to_numpy(), dtype=np.int64),
        np.asarray(movie_genres.column("genre_id").to_numpy(), dtype=np.int64),
    )
    imdb_names: dict[int, set[str]] = {}
    imdb = pairs_frame(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if imdb_genres.num_rows:
        genre_col = imdb_genres.column("genre").combine_chunks()
        encoded = pc.dictionary_encode(genre_col)
        label_of_code = []
        for genre in encoded.dictionary.to_pylist():
            if genre in imdb_to_tmdb:
                label = int(imdb_to_tmdb[genre])
            else:
                label = imdb_label_id(genre)
                names[label] = IMDB_PREFIX + genre
            label_of_code.append(label)
            imdb_names.setdefault(label, set()).add(genre)
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
        lookup = np.array([*label_of_code, 0], dtype=np.int64)
        rows = pd.DataFrame(
            {"number": imdb_numbers(imdb_genres.column("imdb_id")), "label_id": lookup[codes]}
        )
        rows = rows[(rows["number"] >= 0) & (codes >= 0)]
        ids = pd.DataFrame(
            {
                "number": imdb_numbers(movies.column("imdb_id")),
                "tmdb_id": np.asarray(movies.column("tmdb_id").to_numpy(), dtype=np.int64),
            }
        )
        merged = ids[ids["number"] >= 0].merge(rows, on="number", how="inner")
        imdb = pairs_frame(merged["tmdb_id"].to_numpy(), merged["label_id"].to_numpy())
    for label in set(tmdb["label_id"].unique()) | set(imdb["label_id"].unique()):
        names.setdefault(int(label), f"Unknown ({int(label)})")
    return GenreSources(
        tmdb=tmdb,
        imdb=imdb,
        names=names,
        imdb_names={k: tuple(sorted(v)) for k, v in imdb_names.items()},
    )


def genre_counts_per_movie(
    tmdb_ids: npt.NDArray[np.int64], pairs: pd.DataFrame
) -> npt.NDArray[np.int64]:
    """How many genres of ``pairs`` each of these movies (sorted ids) has."""
    pos, found = _positions(tmdb_ids, pairs["tmdb_id"].to_numpy())
    return np.bincount(pos[found], minlength=len(tmdb_ids)).astype(np.int64)


def _positions(
    sorted_ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    if not len(sorted_ids):
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
    return pos.astype(np.int64), sorted_ids[pos] == wanted


@dataclass
class LabelSet:
    """The labels of a dataset, in order, and the genres left out for being rare."""

    labels: list[Label]
    dropped: list[dict[str, Any]]
    counts: dict[int, int]
    """Movies per genre id before pruning (kept and dropped)."""

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """Label ids in label order."""
        return np.array([lab.id for lab in self.labels], dtype=np.int64)

    @property
    def names(self) -> list[str]:
        """Label names in label order."""
        return [lab.name for lab in self.labels]


def build_label_set(
    pairs: pd.DataFrame, sources: GenreSources, source: str, min_count: int
) -> LabelSet:
    """Keep the genres with at least ``min_count`` movies; fix their order and names."""
    counts = pairs["label_id"].value_counts()  # pairs are distinct
    count_of = dict(zip(counts.index.astype(int).tolist(), counts.tolist(), strict=True))
    kept = sorted(k for k, v in count_of.items() if v >= min_count)
    rare = sorted(
        (k for k, v in count_of.items() if v < min_count),
        key=lambda k: (k < 0, k if k >= 0 else 0, sources.names[k]),
    )
    dropped: list[dict[str, Any]] = [
        {
            "id": k,
            "name": sources.names[k],
            "source": "imdb" if k < 0 else "tmdb",
            "count": count_of[k],
        }
        for k in rare
    ]
    ordered = [k for k in kept if k >= 0] + sorted(
        (k for k in kept if k < 0), key=lambda k: sources.names[k]
    )
    names = _unique_names([sources.names[k] for k in ordered], ordered)
    labels = [
        Label(
            index=i,
            id=k,
            name=names[i],
            source="imdb" if k < 0 else "tmdb",
            imdb_genres=sources.imdb_names.get(k, ()) if source != "tmdb" else (),
        )
        for i, k in enumerate(ordered)
    ]
    return LabelSet(labels=labels, dropped=dropped, counts=count_of)


def _unique_names(names: list[str], ids: list[int]) -> list[str]:
    """Names made unique by appending the id where two labels share one."""
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [f"{n} ({i})" if seen[n] > 1 else n for n, i in zip(names, ids, strict=True)]


def multi_hot(
    tmdb_ids: npt.NDArray[np.int64], pairs: pd.DataFrame, label_set: LabelSet
) -> npt.NDArray[np.int8]:
    """The (movies x labels) 0/1 matrix of these movies (sorted ids, rows in their order)."""
    y = np.zeros((len(tmdb_ids), len(label_set.labels)), dtype=np.int8)
    if not len(pairs) or not len(label_set.labels):
        return y
    rows, row_ok = _positions(tmdb_ids, pairs["tmdb_id"].to_numpy())
    order = np.argsort(label_set.ids)
    cols, col_ok = _positions(label_set.ids[order], pairs["label_id"].to_numpy())
    ok = row_ok & col_ok
    y[rows[ok], order[cols[ok]]] = 1
    return y


def label_lists(y: npt.NDArray[np.int8], label_set: LabelSet) -> tuple[pa.Array, pa.Array]:
    """``genre_ids`` (list<int32>) and ``genres`` (list<string>) of each row, in label order."""
    rows, cols = np.nonzero(y)  # row-major: per row, columns ascending
    offsets = np.zeros(len(y) + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=len(y)), out=offsets[1:])
    ids = pa.array(label_set.ids.astype(np.int32)[cols], type=pa.int32())
    names = pa.array(np.array(label_set.names, dtype=object)[cols], type=pa.string())
    off = pa.array(offsets, type=pa.int32())
    return pa.ListArray.from_arrays(off, ids), pa.ListArray.from_arrays(off, names)


def agreement(sources: GenreSources, tmdb_ids: npt.NDArray[np.int64]) -> dict[str, Any]:
    """How TMDB and (mapped) IMDb genres agree, per genre, on movies that have both.

    Per TMDB genre: movies with it from TMDB, from IMDb, from both, and the Jaccard index
    (both / either). IMDb genres without a TMDB mapping have no counterpart and are left
    out (they are listed under ``imdb_only_genres``).
    """
    tmdb = sources.tmdb[sources.tmdb["tmdb_id"].isin(tmdb_ids)]
    imdb = sources.imdb[sources.imdb["tmdb_id"].isin(tmdb_ids)]
    both_movies = np.intersect1d(
        distinct(tmdb["tmdb_id"].to_numpy()), distinct(imdb["tmdb_id"].to_numpy()),
        assume_unique=True,
    )
    tmdb = tmdb[tmdb["tmdb_id"].isin(both_movies)]
    imdb_all = imdb[imdb["tmdb_id"].isin(both_movies)]
    imdb = imdb_all[imdb_all["label_id"] >= 0]
    t_keys = pair_keys(tmdb["tmdb_id"].to_numpy(), tmdb["label_id"].to_numpy())
    i_keys = pair_keys(imdb["tmdb_id"].to_numpy(), imdb["label_id"].to_numpy())
    _, both_labels = _unkey(np.intersect1d(t_keys, i_keys, assume_unique=True))
    n_tmdb = tmdb["label_id"].value_counts()
    n_imdb = imdb["label_id"].value_counts()
    n_both = pd.Series(both_labels).value_counts()
    rows = []
    for gid in sorted(set(n_tmdb.index) | set(n_imdb.index)):
        t, i, b = int(n_tmdb.get(gid, 0)), int(n_imdb.get(gid, 0)), int(n_both.get(gid, 0))
        union = t + i - b
        rows.append(
            {
                "id": int(gid),
                "name": sources.names.get(int(gid), str(gid)),
                "imdb_genres": list(sources.imdb_names.get(int(gid), ())),
                "tmdb": t,
                "imdb": i,
                "both": b,
                "jaccard": round(b / union, 6) if union else None,
            }
        )
    total_both = len(both_labels)
    total_union = len(t_keys) + len(i_keys) - total_both
    only = sorted(sources.names[int(g)] for g in imdb_all["label_id"].unique() if int(g) < 0)
    return {
        "movies_compared": len(both_movies),
        "micro_jaccard": round(total_both / total_union, 6) if total_union else None,
        "genres": rows,
        "imdb_only_genres": only,
    }
