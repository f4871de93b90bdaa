"""Posters shared by different movies: byte-identical (sha256) or near-identical (phash).

For every movie whose poster duplicates the poster of a movie with a smaller tmdb_id
(the earlier one on TMDB), this finds the earliest such movie. Byte-identical wins over
near-identical. Near-identical means perceptual hashes (``posters.phash``, the hex string
of ``imagehash.phash``, 64 bits) within ``poster_phash_distance`` differing bits.

Near-duplicate search is vectorized multi-index hashing (Norouzi et al., 2012): split
the 64 bits into ``m`` blocks; two hashes within ``k`` bits agree within ``k // m`` bits
on at least one block, so candidates are found by looking up each block value, and its
variants with up to ``k // m`` bits flipped, in a direct-address table of that block
(blocks of at most 24 bits), then checked with a popcount. Equal hashes are collapsed
first, so a thousand movies sharing one blank poster cost one lookup, not a million pairs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

HASH_BITS = 64
MAX_BLOCK_BITS = 24
MAX_CANDIDATES_PER_STEP = 4_000_000

DUPLICATES_SCHEMA = pa.schema(
    [
        ("tmdb_id", pa.int64()),
        ("duplicate_of", pa.int64()),
        ("match", pa.string()),
        ("distance", pa.int8()),
    ]
)


def popcount(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Set bits per 64-bit value."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(values), dtype=np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)  # pragma: no cover
    return table[values.view(np.uint8).reshape(-1, 8)].sum(axis=1)  # pragma: no cover


def parse_phashes(
    values: pa.Array | pa.ChunkedArray,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Hex perceptual hashes as uint64, and which were valid (what ``int(text, 16)``
    parses, at most 16 characters).

    Plain hex (1-16 digits, what imagehash writes) is decoded vectorized; anything else
    that is not null goes through ``int(text, 16)`` one by one, so both agree exactly.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.cast(values, pa.string())
    n = len(values)
    out = np.zeros(n, dtype=np.uint64)
    valid = np.zeros(n, dtype=bool)
    plain = np.asarray(
        pc.fill_null(pc.match_substring_regex(values, r"^[0-9a-fA-F]{1,16}$"), False)
        .to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    rows = np.flatnonzero(plain)
    if len(rows):
        out[rows] = _decode_hex16(pc.utf8_lpad(values.take(pa.array(rows)), 16, "0"))
        valid[rows] = True
    others = np.flatnonzero(~plain & np.asarray(values.is_valid().to_numpy(zero_copy_only=False)))
    for i, text in zip(others.tolist(), values.take(pa.array(others, type=pa.int64()))
                       .to_pylist(), strict=True):
        if text and len(text) <= 16:
            try:
                out[i] = int(text, 16)
            except ValueError:
                continue
            valid[i] = True
    return out, valid


_HEX_VALUE = np.zeros(256, dtype=np.uint64)
for _digit in "0123456789abcdefABCDEF":
    _HEX_VALUE[ord(_digit)] = int(_digit, 16)


def _decode_hex16(texts: pa.Array) -> npt.NDArray[np.uint64]:
    """Strings of exactly 16 ASCII hex digits -> their uint64 values."""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[
        texts.offset : texts.offset + len(texts) + 1
    ]
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    nibbles = _HEX_VALUE[data.reshape(-1, 16)]
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    return np.bitwise_or.reduce(nibbles << shifts, axis=1)


def _plan(n: int, k: int) -> tuple[int, int]:
    """(blocks, bits flipped per block) with the fewest expected lookups and candidates."""
    best: tuple[float, int, int] | None = None
    for m in range(1, HASH_BITS + 1):
        bits = math.ceil(HASH_BITS / m)
        if bits > MAX_BLOCK_BITS:
            continue
        d = k // m
        variants = sum(math.comb(bits, i) for i in range(d + 1))
        cost = m * n * variants * (1.0 + n / 2.0**bits)
        if best is None or cost < best[0]:
            best = (cost, m, d)
        if d == 0:
            break
    assert best is not None
    return best[1], best[2]


def earliest_within(
    values: npt.NDArray[np.uint64], payload: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.int64]:
    """For each distinct hash, the smallest payload among hashes within ``k`` bits of it.

    ``values`` must be distinct. The hash itself counts (distance 0).
    """
    n = len(values)
    best = payload.copy()
    if n < 2 or k <= 0:
        return best
    m, d = _plan(n, k)
    bounds = np.linspace(0, HASH_BITS, m + 1).round().astype(int)
    for lo_bit, hi_bit in itertools.pairwise(bounds):
        width = int(hi_bit - lo_bit)
        block = ((values >> np.uint64(lo_bit)) & np.uint64((1 << width) - 1)).astype(np.int64)
        # Everything below works on the hashes sorted by this block's value: a query
        # block with a few bits flipped is then nearly sorted too, so the table lookups
        # and the candidates' reads go through memory in order, not at random.
        members = np.argsort(block, kind="stable")
        table = _Sorted(block[members], values[members], payload[members], members)
        starts = np.zeros((1 << width) + 1, dtype=np.int64)
        np.cumsum(np.bincount(block, minlength=1 << width), out=starts[1:])
        ends = starts[1:]
        for flipped in range(d + 1):
            for bits in itertools.combinations(range(width), flipped):
                query = table.block ^ sum(1 << b for b in bits)
                first = starts[query]
                _match(table, best, k, first, ends[query] - first)
    return best


@dataclass
class _Sorted:
    """One block's view of the hashes: all sorted by the block's value."""

    block: npt.NDArray[np.int64]
    values: npt.NDArray[np.uint64]
    payload: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    """Position of each sorted hash in the caller's arrays."""


def _match(
    table: _Sorted,
    best: npt.NDArray[np.int64],
    k: int,
    first: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
) -> None:
    """Check the candidates of one lookup (sorted hash i: the ``count[i]`` sorted hashes
    from ``first[i]``), in slices of bounded size, updating ``best``."""
    has = np.flatnonzero(count)
    if not len(has):
        return
    cum = np.cumsum(count[has])
    step = MAX_CANDIDATES_PER_STEP
    cuts = np.searchsorted(cum, np.arange(step, cum[-1], step))
    for part in np.split(has, cuts):
        c = count[part]
        total = int(c.sum())
        query = np.repeat(part, c)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        other = np.repeat(first[part], c) + offset
        close = popcount(table.values[query] ^ table.values[other]) <= k
        np.minimum.at(best, table.rows[query[close]], table.payload[other[close]])


@dataclass
class PosterDuplicates:
    """Movies whose poster duplicates an earlier movie's (see the module docstring)."""

    table: pa.Table

    def counts(self) -> dict[str, int]:
        """Duplicates by kind of match."""
        matches = self.table.column("match").to_pylist()
        return {"sha256": matches.count("sha256"), "phash": matches.count("phash")}

    @property
    def tmdb_ids(self) -> npt.NDArray[np.int64]:
        """The later movies (those whose poster duplicates an earlier one)."""
        return np.asarray(self.table.column("tmdb_id").to_numpy(), dtype=np.int64)


def find_poster_duplicates(
    tmdb_ids: npt.NDArray[np.int64],
    sha256: pa.Array | pa.ChunkedArray,
    phash: pa.Array | pa.ChunkedArray,
    max_distance: int,
) -> PosterDuplicates:
    """Find the poster duplicates among these movies' posters (one row per movie).

    ``tmdb_ids`` must be distinct; null sha256/phash values never match.
    """
    ids = np.asarray(tmdb_ids, dtype=np.int64)
    n = len(ids)
    dup_of = np.full(n, -1, dtype=np.int64)
    match = np.full(n, "", dtype=object)
    distance = np.zeros(n, dtype=np.int64)
    if n == 0:
        return PosterDuplicates(DUPLICATES_SCHEMA.empty_table())

    # Byte-identical: the same sha256.
    sha = pc.fill_null(pc.cast(sha256, pa.string()), "")
    if isinstance(sha, pa.ChunkedArray):
        sha = sha.combine_chunks()
    codes = np.asarray(pc.dictionary_encode(sha).indices.to_numpy(), dtype=np.int64)
    sha_ok = np.asarray(pc.not_equal(sha, "").to_numpy(zero_copy_only=False), dtype=bool)
    earliest = np.full(int(codes.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(earliest, codes[sha_ok], ids[sha_ok])
    same = sha_ok & (earliest[codes] < ids)
    dup_of[same] = earliest[codes[same]]
    match[same] = "sha256"

    # Near-identical: perceptual hashes within max_distance bits.
    hashes, valid = parse_phashes(phash)
    if valid.any():
        rows = np.flatnonzero(valid)
        uniq, inverse = np.unique(hashes[rows], return_inverse=True)
        first_id = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_id, inverse, ids[rows])
        near = earliest_within(uniq, first_id, max_distance)
        candidate = near[inverse]
        hit = (candidate < ids[rows]) & (dup_of[rows] < 0)
        hit_rows = rows[hit]
        dup_of[hit_rows] = candidate[hit]
        match[hit_rows] = "phash"
        # The distance to the movie it duplicates (its own hash, by tmdb_id).
        by_id = np.argsort(ids[rows])
        other = rows[by_id[np.searchsorted(ids[rows][by_id], candidate[hit])]]
        distance[hit_rows] = popcount(hashes[hit_rows] ^ hashes[other])

    found = np.flatnonzero(dup_of >= 0)
    found = found[np.argsort(ids[found], kind="stable")]
    table = pa.table(
        {
            "tmdb_id": pa.array(ids[found], type=pa.int64()),
            "duplicate_of": pa.array(dup_of[found], type=pa.int64()),
            "match": pa.array(match[found].tolist(), type=pa.string()),
            "distance": pa.array(distance[found], type=pa.int8()),
        },
        schema=DUPLICATES_SCHEMA,
    )
    return PosterDuplicates(table)
