"""The import's fast paths give what the reference row parsers give, row for row.

``title.ratings`` chunks are parsed by numpy when every row is plain, else row
by row; a re-import on SQLite compares a title's genres as the JSON array SQLite makes.
Each is checked against the plain row parser (or the generic comparison) on IMDb's real
sample files and on adversarial lines: same values, same malformed rows with the same
line numbers, same stored rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from reelset.imdb import tsv
from reelset.imdb.importer import import_tsv
from reelset.imdb.tsv import (
    MAX_ID_DIGITS,
    MAX_VOTES,
    RATINGS_COLUMNS,
    MalformedRow,
    ParseStats,
    read_ratings,
)
from reelset.storage import Store
from reelset.storage import schema as s
from reelset.storage.imdb import ImdbTitle, upsert_imdb_titles

from .odd_rows import BAD_IDS, with_odd_rows
from .test_reference import reference_import, stored

SAMPLES = Path(os.environ.get("REELSET_IMDB_SAMPLES", "/work/shared/data/imdb"))
"""IMDb's real sample files (title.basics.tsv, title.ratings.tsv; see the data's SOURCES.md)."""

needs_samples = pytest.mark.skipif(
    not (SAMPLES / "title.ratings.tsv").is_file(), reason=f"no IMDb samples in {SAMPLES}"
)

PLAIN = b"tt0000001\t5.7\t2150"

# Ratings rows the fast path must take, at every edge its checks draw.
TAKEN = [
    PLAIN,
    b"tt" + b"9" * MAX_ID_DIGITS + b"\t10\t" + str(MAX_VOTES).encode(),
    b"tt1\t0\t0",
    b"tt0000002\t5.\t1",
    b"tt0000003\t.5\t1",
    b"tt0000004\t007.50\t000123",
    b"tt0000005\t10.000\t" + b"0" * 18,
    b"tt0000006\t3.14159265358979323846\t7",
    b"tt0000034\t1.23456789012345\t7",  # 15 digits: the last ones a division gets exact
    b"tt0000035\t1.234567890123456\t7",  # 16 digits: read by float()
    b"tt0000036\t10.0000000000000001\t7",  # float() makes it 10.0: in range
    b"tt0000037\t0.30000000000000004\t7",
    b"tt0000038\t" + b"0" * 40 + b"9.5\t7",
]

# Rows the row parser refuses, or that the fast path leaves to it (CR, byte order mark).
LEFT = [
    b"",  # an empty line
    b"tt0000007\t5.0\t1\r",  # CRLF: valid to the row parser, left to it
    b"tt0000008\t5.0\r1",
    b"\xef\xbb\xbftt0000009\t5.0\t1",  # a byte order mark: malformed
    b"tt0000010\t5.0",
    b"tt0000011\t5.0\t1\t",
    b"tt0000012\t5.0\t1\t9",
    *[bad + b"\t5.0\t1" for bad in BAD_IDS],
    b"tt0000014\t10.1\t1",
    b"tt0000015\t-1\t1",
    b"tt0000016\t+1\t1",
    b"tt0000017\t1e1\t1",
    b"tt0000018\tnan\t1",
    b"tt0000019\tinf\t1",
    b"tt0000020\t1.2.3\t1",
    b"tt0000021\t.\t1",
    b"tt0000022\t\t1",
    b"tt0000023\t5.0\t",
    b"tt0000024\t5.0\t-1",
    b"tt0000025\t5.0\t1.0",
    b"tt0000026\t5.0\t" + str(MAX_VOTES + 1).encode(),
    b"tt0000027\t5.0\t" + b"9" * 19,
    b"tt0000028\t5.0\t1 ",
    b"tt0000029\t5\xc2\xa0\t1",
    b"tt0000030\t5.0\t\xff",  # not UTF-8
    b"tt0000031\t5.0\x00\t1",
    b'"tt0000032"\t5.0\t1',
    b"tt0000033\t\\N\t1",
    b"tt0000039\t10.000000000001\t1",  # 15 digits, just over 10
    b"tt0000040\t10.00000000000001\t1",  # 16 digits, just over 10 (float() keeps it)
]


def row_parser(lines: list[bytes]) -> tuple[list[int], list[float], list[int]] | None:
    """The rows as the row parser gives them; ``None`` if it refuses one."""
    try:
        parsed = [tsv._parse_rating(line) for line in lines]
    except MalformedRow:
        return None
    return [p[0] for p in parsed], [p[1] for p in parsed], [p[2] for p in parsed]


def fast_path(lines: list[bytes]) -> tuple[list[int], list[float], list[int]] | None:
    got = tsv._plain_ratings(b"\n".join(lines) + b"\n")
    if got is None:
        return None
    numbers, ratings, votes = got
    assert (numbers.dtype, ratings.dtype, votes.dtype) == (np.int64, np.float64, np.int64)
    return numbers.tolist(), ratings.tolist(), votes.tolist()


@pytest.mark.parametrize("line", TAKEN)
def test_plain_ratings_take_the_fast_path_and_parse_the_same(line: bytes) -> None:
    got = fast_path([PLAIN, line, PLAIN])
    assert got is not None and got == row_parser([PLAIN, line, PLAIN])


@pytest.mark.parametrize("line", LEFT)
def test_unusual_ratings_leave_the_chunk_to_the_row_parser(line: bytes) -> None:
    assert fast_path([PLAIN, line, PLAIN]) is None


@pytest.mark.parametrize("line", LEFT)
def test_unusual_ratings_first_in_a_chunk_leave_it_to_the_row_parser(line: bytes) -> None:
    # A byte order mark at the start of a chunk is part of a malformed row, never skipped.
    assert fast_path([line, PLAIN]) is None


def test_an_empty_last_line_leaves_the_chunk_to_the_row_parser() -> None:
    assert tsv._plain_ratings(PLAIN + b"\n\n") is None


def test_a_last_line_without_a_line_end_takes_the_fast_path() -> None:
    got = tsv._plain_ratings(PLAIN + b"\n" + b"tt2\t1.5\t3")
    assert got is not None and [a.tolist() for a in got] == [[1, 2], [5.7, 1.5], [2150, 3]]


def random_rating(rng: random.Random) -> str:
    """A rating the row parser reads: leading zeros, few or many decimals, "5.", ".5", > 10."""
    whole = "0" * rng.choice([0, 0, 0, 1, 3]) + (
        str(rng.randint(0, 11)) if rng.random() < 0.9 else ""
    )
    decimals = "".join(rng.choices("0123456789", k=rng.choice([0, 1, 1, 2, 5, 13, 14, 15, 17])))
    dot = "." if decimals or not whole or rng.random() < 0.2 else ""
    return whole + dot + (decimals or ("" if whole else "5"))


def test_random_plain_ratings_parse_as_the_row_parser_parses_them() -> None:
    rng = random.Random(14)
    taken = 0
    for _ in range(300):
        lines = [
            "tt{:0{}d}\t{}\t{}{}".format(
                rng.choice([1, rng.randint(1, 10**8), 10**MAX_ID_DIGITS - 1]),
                rng.randint(1, 9),
                random_rating(rng),
                "0" * rng.choice([0, 0, 2]),
                rng.choice([0, rng.randint(0, 10**6), MAX_VOTES]),
            ).encode()
            for _ in range(rng.randint(1, 8))
        ]
        got = fast_path(lines)
        assert got == row_parser(lines), lines  # a rating over 10: both None
        taken += got is not None
    assert 100 < taken < 300


def read_both(path: Path, **kw: int) -> tuple[tsv.Ratings, ParseStats, tsv.Ratings, ParseStats]:
    """``read_ratings`` as it is, and with the fast path turned off (the reference)."""
    fast_stats, ref_stats = ParseStats(path.name), ParseStats(path.name)
    fast = read_ratings(path, fast_stats, **kw)
    real = tsv._plain_ratings
    try:
        tsv._plain_ratings = lambda chunk: None  # type: ignore[assignment]
        reference = read_ratings(path, ref_stats, **kw)
    finally:
        tsv._plain_ratings = real  # type: ignore[assignment]
    return fast, fast_stats, reference, ref_stats


def same(a: tsv.Ratings, b: tsv.Ratings) -> bool:
    return (
        all(
            np.array_equal(getattr(a, name), getattr(b, name))
            and getattr(a, name).dtype == getattr(b, name).dtype
            for name in ("numbers", "ratings", "votes")
        )
        and a.duplicates == b.duplicates
    )


@needs_samples
def test_the_real_ratings_sample_reads_the_same_both_ways(tmp_path: Path) -> None:
    plain = SAMPLES / "title.ratings.tsv"
    packed = tmp_path / "title.ratings.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        fast, fast_stats, reference, ref_stats = read_both(path, chunk_bytes=1 << 16)
        assert same(fast, reference) and fast_stats == ref_stats
        assert len(fast) == fast_stats.rows == 132_011 and not fast_stats.malformed


@pytest.mark.parametrize("chunk_bytes", [64, 4096, 1 << 20])
def test_chunks_of_mixed_rows_give_the_row_parsers_values_and_line_numbers(
    tmp_path: Path, chunk_bytes: int
) -> None:
    rng = random.Random(chunk_bytes)
    rows = (
        f"tt{number * 3:07d}\t{rng.randint(0, 100) / 10}\t{rng.randint(0, 9999)}".encode()
        for number in range(1, 3000)
    )
    lines = with_odd_rows(RATINGS_COLUMNS, rows, LEFT + TAKEN, every=83, plain=PLAIN)
    path = tmp_path / "title.ratings.tsv"
    path.write_bytes(b"\n".join(lines))  # the last line without a line end
    fast, fast_stats, reference, ref_stats = read_both(path, chunk_bytes=chunk_bytes)
    assert same(fast, reference)
    assert fast_stats == ref_stats and fast_stats.malformed > 20
    assert fast_stats.rows == len(lines) - 1


@needs_samples
@pytest.mark.parametrize("types", [["movie", "tvMovie"], ["short"]])
def test_the_real_basics_sample_stores_what_a_line_by_line_parse_stores(
    sqlite_store: Store, tmp_path: Path, types: list[str]
) -> None:
    basics, ratings = SAMPLES / "title.basics.tsv", SAMPLES / "title.ratings.tsv"
    report = import_tsv(sqlite_store, basics, ratings, title_types=types, batch_size=500)
    reference = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.upgrade()
        malformed, _lines = reference_import(reference, basics.read_bytes(), ratings, types)
        expected = stored(reference)
    finally:
        reference.close()
    assert stored(sqlite_store) == expected and len(expected[0]) > 100
    assert report.basics is not None and report.basics.malformed == malformed
    # The re-import finds every title unchanged.
    again = import_tsv(sqlite_store, basics, ratings, title_types=types, batch_size=500)
    assert (again.written.new, again.written.updated) == (0, 0)
    assert again.written.unchanged == len(expected[0])


T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)

GENRE_LISTS = [
    (),
    ("Drama",),
    ("Drama", "Comedy"),
    ("Comedy", "Drama", "Comedy"),
    ("Café", "東京"),
    ('Say "x"', "back\\slash", "tab\tin", "new\nline"),
    ("Sci-Fi", "sci-fi", "Sci-Fi "),
    (
        "\u2028",
        "\x7f",
        "\u00e9",
        "e\u0301",
    ),  # a line separator, DEL, a precomposed and a combined é
    ("z", "a", "m", "b", "y"),
]


def stamps(store: Store) -> dict[str, object]:
    t = s.imdb_titles
    with store.read() as conn:
        return dict(conn.execute(select(t.c.imdb_id, t.c.imported_at)).all())


def genre_rows(store: Store) -> list[tuple[object, ...]]:
    g = s.imdb_title_genres
    with store.read() as conn:
        return sorted(tuple(r) for r in conn.execute(select(g.c.imdb_id, g.c.genre)))


def test_reupserting_titles_finds_their_genre_sets_unchanged(store: Store) -> None:
    titles = [
        ImdbTitle(f"tt{n}", "movie", f"T{n}", genres=genres) for n, genres in enumerate(GENRE_LISTS)
    ]
    assert upsert_imdb_titles(store, titles, now=T0).new == len(titles)
    before = genre_rows(store)
    # The same sets in other orders, with repeats: unchanged, nothing written.
    shuffled = [
        ImdbTitle(t.imdb_id, "movie", t.primary_title, genres=(*reversed(t.genres), *t.genres))
        for t in titles
    ]
    again = upsert_imdb_titles(store, shuffled, now=T1)
    assert (again.new, again.updated, again.unchanged) == (0, 0, len(titles))
    assert set(stamps(store).values()) == {T0} and genre_rows(store) == before

    # Every kind of change to a set is seen: one genre more, one less, one other.
    changed = {
        "tt0": ("Drama",),
        "tt1": (),
        "tt4": ("Café",),
        "tt5": ('Say "x"', "back\\slash", "tab\tin", "new\nline", "new"),
        "tt6": ("Sci-Fi", "sci-fi", "Sci-Fi"),
        "tt7": ("\u2028", "\x7f", "\u00e9"),
    }
    third = [
        ImdbTitle(t.imdb_id, "movie", t.primary_title, genres=changed.get(t.imdb_id, t.genres))
        for t in titles
    ]
    result = upsert_imdb_titles(store, third, now=T1)
    assert (result.new, result.updated) == (0, len(changed))
    got = stamps(store)
    assert {i for i, at in got.items() if at == T1} == set(changed)
    assert genre_rows(store) == sorted({(t.imdb_id, genre) for t in third for genre in t.genres})


@pytest.mark.parametrize("wanted", [[], [5], [1], [1, 2, 3, 4, 5, 6], [3, 3, 0, 7, 10**15]])
def test_ratings_looked_up_by_column_are_those_looked_up_by_title(wanted: list[int]) -> None:
    table = tsv.Ratings(
        np.array([1, 3, 5], dtype=np.int64),
        np.array([7.5, 10.0, 0.0], dtype=np.float64),
        np.array([100, 0, 2**31 - 1], dtype=np.int64),
    )
    ratings, votes, found = table.lookup_columns(wanted)
    expected = table.lookup(wanted)
    assert list(zip(ratings, votes, strict=True)) == [e or (None, None) for e in expected]
    assert found == sum(e is not None for e in expected)
    assert {type(x) for x in ratings} <= {float, type(None)}
    assert {type(x) for x in votes} <= {int, type(None)}
    assert type(ratings) is list and type(votes) is list
