"""Which movies go into a dataset: dedupe and filters, every removal counted by rule.

Everything here is vectorized over whole columns (pyarrow compute, numpy, pandas): no
per-movie Python. A removed movie is counted once, under the first rule that removed it,
in the order of :data:`RULES`.

Normalized text (how overviews and titles are compared): Unicode NFKC, lower case,
whitespace runs collapsed to one space, trimmed. Titles additionally turn every run of
characters that are neither letters nor digits into one space (so "Alien³" and "Alien 3"
differ, but "Léon: The Professional" equals "léon the professional").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reelset.config import BuildSettings

RULES: dict[str, str] = {
    "status_gone": "dedupe: status is not 'active' (TMDB answered 404 for it)",
    "duplicate_imdb_id": "dedupe: the same IMDb id as a kept movie (under another TMDB id)",
    "duplicate_title_year_overview": (
        "dedupe: the same normalized title, year and overview as a kept movie"
    ),
    "duplicate_overview": "dedupe: the same normalized overview as a kept movie",
    "overview_empty": "filter: no overview, or only whitespace",
    "overview_placeholder": "filter: the overview is a placeholder ([build] placeholder_overviews)",
    "overview_too_short": "filter: fewer words than [build] min_overview_words",
    "no_genres": "filter: no genre from the label source ([build] require_genres)",
    "adult": "filter: an adult movie ([build] drop_adult)",
    "language": "filter: original_language not in [build] languages",
    "no_poster": "filter: no poster with status ok ([build] require_poster)",
    "poster_duplicate": (
        "posters: lost its duplicate poster while [build] require_poster is on "
        "(drop_poster_duplicates)"
    ),
    "no_label": "labels: none of its genres is in the label set (all below min_genre_count)",
}
"""Every removal rule, in the order they apply, with what it means."""

DEDUPE_RULES = ("duplicate_imdb_id", "duplicate_title_year_overview", "duplicate_overview")

_WS = r"\s{2,}|[\t\n\f\r]"  # = \s+ -> " " (single spaces are left alone: far faster)
_NON_ALNUM = r"[^\p{L}\p{N}]+"


def normalize_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """NFKC, lower case, whitespace collapsed and trimmed (nulls stay null)."""
    return _by_chunk(values, _WS)


def normalize_title(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """:func:`normalize_text`, with every run of non-letters/digits turned into one space."""
    return _by_chunk(values, _NON_ALNUM)


def _by_chunk(values: pa.ChunkedArray | pa.Array, pattern: str) -> pa.ChunkedArray | pa.Array:
    """NFKC, lower case, ``pattern`` -> one space, trimmed; a chunked array chunk by chunk
    (each step copies every string: one chunk's copies at a time, not the column's)."""
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array(
            [_normalized(chunk, pattern) for chunk in values.chunks], type=values.type
        )
    return _normalized(values, pattern)


def _normalized(values: pa.Array, pattern: str) -> pa.Array:
    text = pc.utf8_lower(pc.utf8_normalize(values, "NFKC"))
    # Most overviews have no run of whitespace to collapse: only the texts the pattern
    # matches are rewritten (a match costs about half a replacement). Most titles do
    # have something to replace: those are rewritten whole.
    hit = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    hits = pc.sum(hit).as_py() or 0
    if hits > len(text) // 2:
        text = pc.replace_substring_regex(text, pattern, " ")
    elif hits:
        replaced = pc.replace_substring_regex(text.filter(hit), pattern, " ")
        text = pc.replace_with_mask(text, hit, replaced)
    return pc.utf8_trim_whitespace(text)


def word_counts(normalized: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    """Words per :func:`normalize_text` output (spaces + 1; 0 for empty or null)."""
    spaces = pc.fill_null(pc.count_substring(normalized, " "), -1)
    empty = pc.fill_null(pc.equal(normalized, ""), True)
    counts = pc.if_else(empty, 0, pc.add(spaces, 1))
    return np.asarray(counts.to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass
class Removals:
    """Removed movies, by rule, in the order the rules ran."""

    parts: list[tuple[str, npt.NDArray[np.int64], npt.NDArray[np.int64] | None]] = field(
        default_factory=list
    )

    def add(
        self,
        rule: str,
        tmdb_ids: npt.NDArray[np.int64],
        duplicate_of: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Record that these movies were removed by ``rule``."""
        assert rule in RULES, rule
        self.parts.append((rule, np.asarray(tmdb_ids, dtype=np.int64), duplicate_of))

    def counts(self) -> dict[str, int]:
        """Movies removed per rule (every rule listed, zero when it removed none)."""
        out = dict.fromkeys(RULES, 0)
        for rule, ids, _ in self.parts:
            out[rule] += len(ids)
        return out

    def table(self) -> pa.Table:
        """tmdb_id, rule, duplicate_of (the kept movie, for dedupe rules), by tmdb_id."""
        ids = [p[1] for p in self.parts]
        rules = [np.full(len(p[1]), p[0], dtype=object) for p in self.parts]
        dups = [
            p[2] if p[2] is not None else np.full(len(p[1]), -1, dtype=np.int64)
            for p in self.parts
        ]
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_rules = np.concatenate(rules) if rules else np.zeros(0, dtype=object)
        all_dups = np.concatenate(dups) if dups else np.zeros(0, dtype=np.int64)
        order = np.argsort(all_ids, kind="stable")
        dup = all_dups[order]
        return pa.table(
            {
                "tmdb_id": pa.array(all_ids[order], type=pa.int64()),
                "rule": pa.array(all_rules[order], type=pa.string()),
                "duplicate_of": pa.array(dup, type=pa.int64(), mask=dup < 0),
            }
        )


def rank_order(movies: pd.DataFrame) -> npt.NDArray[np.int64]:
    """Row positions best-first: most complete, most popular, most votes, lowest tmdb_id."""
    completeness = movies["completeness"].to_numpy(dtype=np.float64, na_value=0.0)
    popularity = movies["popularity"].to_numpy(dtype=np.float64, na_value=-1.0)
    votes = movies["vote_count"].to_numpy(dtype=np.float64, na_value=-1.0)
    ids = movies["tmdb_id"].to_numpy(dtype=np.int64)
    # np.lexsort sorts by the last key first.
    return np.lexsort((ids, -votes, -popularity, -completeness)).astype(np.int64)


def _dedupe_by(
    codes_all: npt.NDArray[np.int64],
    alive: npt.NDArray[np.bool_],
    order: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row positions of duplicates, tmdb_id of the kept movie of each) among ``alive``.

    ``codes_all`` gives each row's key as a non-negative integer (-1: never a duplicate).
    """
    ranked = order[alive[order]]  # alive rows, best first
    codes = codes_all[ranked]
    valid = codes >= 0
    if not valid.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # The first row of each key in rank order is the keeper.
    uniq, first = np.unique(codes[valid], return_index=True)
    valid_pos = np.flatnonzero(valid)
    keeper_pos = valid_pos[first]  # position in `ranked` of each key's keeper
    is_dup = valid.copy()
    is_dup[keeper_pos] = False
    dup_pos = np.flatnonzero(is_dup)
    keeper = keeper_pos[np.searchsorted(uniq, codes[dup_pos])]
    return ranked[dup_pos], ids[ranked[keeper]]


@dataclass
class Selection:
    """The outcome of dedupe and filters over the active movies."""

    keep: npt.NDArray[np.bool_]
    """Per input row: still in the dataset."""
    removals: Removals


def select_movies(
    movies: pa.Table,
    cfg: BuildSettings,
    *,
    source_genre_counts: npt.NDArray[np.int64],
    has_poster: npt.NDArray[np.bool_],
    inactive_ids: pa.Array | None = None,
) -> Selection:
    """Apply the dedupe rules and the filters of ``cfg`` to the active movies.

    ``movies`` has the columns of :data:`reelset.dataset.read.MOVIES_SCHEMA`;
    ``source_genre_counts`` is each row's number of genres in the label source and
    ``has_poster`` whether it has a poster with status ok.
    """
    removals = Removals()
    if inactive_ids is not None and len(inactive_ids):
        removals.add("status_gone", np.asarray(inactive_ids.to_numpy(zero_copy_only=False)))
    n = movies.num_rows
    ids = np.asarray(movies.column("tmdb_id").to_numpy(), dtype=np.int64)
    alive = np.ones(n, dtype=bool)

    overview_norm = normalize_text(movies.column("overview"))
    placeholders = normalize_text(pa.array(list(cfg.placeholder_overviews), type=pa.string()))
    empty = np.asarray(
        pc.fill_null(pc.equal(overview_norm, ""), True).to_numpy(zero_copy_only=False)
    )
    placeholder = np.asarray(
        pc.is_in(overview_norm, value_set=placeholders).to_numpy(zero_copy_only=False)
    ) & ~empty
    short = (word_counts(overview_norm) < cfg.min_overview_words) & ~empty & ~placeholder
    substantive = ~(empty | placeholder | short)

    frame = pd.DataFrame(
        {
            "tmdb_id": ids,
            "completeness": movies.column("completeness").to_numpy(zero_copy_only=False),
            "popularity": movies.column("popularity").to_numpy(zero_copy_only=False),
            "vote_count": movies.column("vote_count").to_numpy(zero_copy_only=False),
        }
    )
    order = rank_order(frame)
    overview_codes = _codes(overview_norm)
    overview_codes[~substantive] = -1
    del overview_norm  # a normalized copy of every overview: no longer needed

    for rule, enabled in (
        ("duplicate_imdb_id", cfg.dedupe_imdb_id),
        ("duplicate_title_year_overview", cfg.dedupe_title_year_overview),
        ("duplicate_overview", cfg.dedupe_overview),
    ):
        if not enabled:
            continue
        codes = _dedupe_codes(rule, movies, overview_codes)
        dup_rows, kept_ids = _dedupe_by(codes, alive, order, ids)
        alive[dup_rows] = False
        removals.add(rule, ids[dup_rows], kept_ids)

    def drop(rule: str, mask: npt.NDArray[np.bool_]) -> None:
        hit = mask & alive
        alive[hit] = False
        removals.add(rule, ids[hit])

    drop("overview_empty", empty)
    drop("overview_placeholder", placeholder)
    drop("overview_too_short", short)
    if cfg.require_genres:
        drop("no_genres", source_genre_counts == 0)
    if cfg.drop_adult:
        adult = movies.column("adult").to_numpy(zero_copy_only=False)
        drop("adult", np.asarray(pd.Series(adult).fillna(False), dtype=bool))
    if cfg.languages:
        allowed = pa.array(sorted({code.strip().lower() for code in cfg.languages}))
        language = pc.utf8_lower(pc.utf8_trim_whitespace(movies.column("original_language")))
        ok = np.asarray(
            pc.is_in(language, value_set=allowed).to_numpy(zero_copy_only=False), dtype=bool
        )
        drop("language", ~ok)
    if cfg.require_poster:
        drop("no_poster", ~has_poster)
    return Selection(keep=alive, removals=removals)


def _codes(values: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    """A dense integer code per distinct value (-1 for null)."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        # One memo table across the chunks: the same codes as encoding them as one array,
        # without first copying every string into one (and no 2 GiB limit).
        chunks = [pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False)
                  for c in encoded.chunks]
        return np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, np.int64)
    codes = pc.fill_null(encoded.indices, -1)
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)


def _dedupe_codes(
    rule: str, movies: pa.Table, overview_codes: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per row, an integer key that makes two movies duplicates under ``rule``.

    Equal keys mean duplicates; -1 means never a duplicate. The overview rules only
    compare substantive overviews (``overview_codes`` is -1 for the others: not empty,
    not a placeholder, not too short): two different movies both saying "No overview
    found." are not duplicates; the filters remove them instead.
    """
    if rule == "duplicate_imdb_id":
        imdb = pc.utf8_lower(pc.utf8_trim_whitespace(movies.column("imdb_id")))
        return _codes(pc.if_else(pc.equal(imdb, ""), pa.scalar(None, pa.string()), imdb))
    if rule == "duplicate_overview":
        return overview_codes
    # Title, year and overview as one int64 (fits for fewer than 2**31 movies).
    title = _codes(normalize_title(movies.column("title")))
    year = pc.fill_null(movies.column("year"), -1).to_numpy(zero_copy_only=False)
    year = np.clip(np.asarray(year, dtype=np.int64) + 1, 0, (1 << 17) - 1)
    title_year = np.asarray(pd.factorize((title << 17) | year)[0], dtype=np.int64)
    key = (title_year << 31) | np.maximum(overview_codes, 0)
    key[overview_codes < 0] = -1
    return key
