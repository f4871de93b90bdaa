"""The column-wise fast path of ``title.basics`` parsing agrees with the row parser.

``iter_basics_columns`` parses a chunk's kept rows a whole column at a time when every
row is plain, and falls back to :func:`parse_basics_line` row by row otherwise. Each
row below goes through both: a row the column path takes must come out exactly as the
row parser gives it, and a row the row parser refuses (or cleans) must make the column
path give up on its chunk.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from reelset.imdb import tsv
from reelset.imdb.tsv import (
    BASICS_COLUMNS,
    MAX_ID_DIGITS,
    MAX_NAME_CHARS,
    BasicsRow,
    MalformedRow,
    ParseStats,
    iter_basics,
    parse_basics_line,
)

from .odd_rows import BAD_IDS, with_odd_rows

PLAIN = b"tt0000001\tmovie\tA title\tAnother\t0\t1999\t\\N\t90\tDrama,Comedy"

# Valid rows at every edge the column checks draw: the column path must take them.
TAKEN = [
    PLAIN,
    b"tt" + b"9" * MAX_ID_DIGITS + b"\tmovie\tA\tA\t1\t2200\t\\N\t999999\t" + b"G" * 32,
    b"tt1\ttvMovie\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
    b"tt0000002\tmovie\t\t\t0\t1800\t2000\t0\t",
    b"tt0000003\tmovie\t\"Quoted\t'x'\t0\t2000\t\\N\t080\t,Drama,,Crime,",
    b"tt0000004\tmovie\t\xe6\x9d\xb1\xe4\xba\xac \xc3\xa9\tX\t0\t2199\t\\N\t5\tDrama,Drama",
    b"tt0000005\tmovie\tback\\slash\tX\t0\t1874\t\\N\t5\tG,H",
    b"tt0000029\tmovie\tA\tX\t0\t\\N\t\\N\t000000\tDrama",
]

# Rows the column path must leave to the row parser (malformed, cleaned, or valid but
# in a shape the column checks do not cover, like a zero-padded year).
LEFT = [
    b"tt0000006\tmovie\tCRLF\tX\t0\t1999\t\\N\t5\tDrama\r",
    b"tt0000007\tmovie\tNUL\x00\tX\t0\t1999\t\\N\t5\tDrama",
    b"tt0000008\tmovie\tC1\xc2\x85\tX\t0\t1999\t\\N\t5\tDrama",
    b"tt0000009\tmovie\tLatin-1 \xe9\tX\t0\t1999\t\\N\t5\tDrama",
    b"tt0000010\tmovie\tTab\tin\ttitle\t0\t1999\t\\N\t5\tDrama",
    b"tt0000011\tmovie\tShort\tX\t0\t1999\t\\N\t5",
    *[bad + b"\tmovie\tA\tX\t0\t1999\t\\N\t5\tDrama" for bad in BAD_IDS],
    b"tt0000013\tmovie\tA\tX\t2\t1999\t\\N\t5\tDrama",
    b"tt0000014\tmovie\tA\tX\t0\t1799\t\\N\t5\tDrama",
    b"tt0000015\tmovie\tA\tX\t0\t2201\t\\N\t5\tDrama",
    b"tt0000016\tmovie\tA\tX\t0\t01999\t\\N\t5\tDrama",  # valid: 1999
    b"tt0000017\tmovie\tA\tX\t0\t19x9\t\\N\t5\tDrama",
    b"tt0000018\tmovie\tA\tX\t0\t1999\t\\N\t1000000\tDrama",  # valid: the limit
    b"tt0000019\tmovie\tA\tX\t0\t1999\t\\N\t1000001\tDrama",
    b"tt0000020\tmovie\tA\tX\t0\t1999\t\\N\t-5\tDrama",
    b"tt0000021\tmovie\tA\tX\t0\t1999\t\\N\t5\tDrama," + b"X" * (MAX_NAME_CHARS + 1),
    b"tt0000022\tmovie\tA\tX\t0\t1999\t\\N\t5\tDrama," + b"X" * 20 + b"," + b"Y" * 20,  # valid
    # Years and runtimes are checked once per distinct value: each odd one alone.
    b"tt0000023\tmovie\tA\tX\t0\t\t\\N\t5\tDrama",
    b"tt0000024\tmovie\tA\tX\t0\t1999\t\\N\t\tDrama",
    b"tt0000025\tmovie\tA\tX\t0\t\\N\\N\t\\N\t5\tDrama",
    b"tt0000026\tmovie\tA\tX\t0\t1999\t\\N\t\xd9\xa5\tDrama",  # an Arabic-Indic 5
    b"tt0000027\tmovie\tA\tX\t0\t1999 \t\\N\t5\tDrama",
    b"tt0000028\tmovie\tA\tX\t0\t1999\t\\N\t0000000\tDrama",  # valid: 7 digits
]


def row_parser(lines: list[bytes]) -> list[BasicsRow] | None:
    """The rows as the row parser gives them; ``None`` if it refuses or cleans one."""
    stats = ParseStats("x")
    try:
        rows = [parse_basics_line(line, stats) for line in lines]
    except MalformedRow:
        return None
    return None if stats.cleaned else rows


def column_path(lines: list[bytes]) -> list[BasicsRow] | None:
    columns = tsv._clean_columns(lines)
    return None if columns is None else list(map(BasicsRow._make, zip(*columns, strict=True)))


@pytest.mark.parametrize("line", TAKEN)
def test_plain_rows_take_the_column_path_and_parse_the_same(line: bytes) -> None:
    got = column_path([PLAIN, line])
    assert got is not None and got == row_parser([PLAIN, line])
    assert [type(v) for v in got[1]] == [type(v) for v in parse_basics_line(line)]


@pytest.mark.parametrize("line", LEFT)
def test_unusual_rows_leave_the_chunk_to_the_row_parser(line: bytes) -> None:
    assert column_path([PLAIN, line, PLAIN]) is None
    # Whatever the row parser makes of the row, the chunk still parses (see below).
    parsed = row_parser([line])
    if parsed is not None:
        assert parsed[0].imdb_id.startswith("tt")


def basics_bytes(seed: int) -> bytes:
    """A title.basics of plain rows with every unusual row of ``LEFT`` among them."""
    rng = random.Random(seed)

    def row(number: int) -> bytes:
        kind = rng.choice([b"movie", b"tvMovie", b"tvEpisode", b"short"])
        year = rng.choice([b"\\N", str(rng.randint(1874, 2030)).encode()])
        title = rng.choice(["Night", "Café", "東京", '"x"']).encode()
        genres = rng.choice([b"\\N", b"Drama", b"Comedy,Romance", b""])
        fields = [f"tt{number:07d}".encode(), kind, title, title, b"0", year, b"\\N", b"9"]
        return b"\t".join([*fields, genres])

    lines = with_odd_rows(
        BASICS_COLUMNS, map(row, range(1, 4000)), LEFT + TAKEN, every=97, plain=PLAIN
    )
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("chunk_bytes", [512, 4096, 1 << 20])
def test_chunks_give_the_rows_and_line_numbers_of_a_line_by_line_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    data = basics_bytes(seed=chunk_bytes)
    path = tmp_path / "title.basics.tsv.gz"
    path.write_bytes(gzip.compress(data))
    taken = []

    def counted(lines: list[bytes]) -> tsv.BasicsColumns | None:
        columns = clean(lines)
        taken.append(columns is not None)
        return columns

    clean = tsv._clean_columns
    monkeypatch.setattr(tsv, "_clean_columns", counted)
    stats = ParseStats(path.name)
    rows = list(iter_basics(path, ["movie", "tvMovie"], stats, chunk_bytes=chunk_bytes))

    expected, bad, cleaned = [], [], 0
    for number, line in enumerate(data.split(b"\n")[1:-1], start=2):
        fields = line.split(b"\t")
        if len(fields) < 3 or fields[1] not in (b"movie", b"tvMovie"):
            continue
        one = ParseStats("x")
        try:
            expected.append(parse_basics_line(line, one))
        except MalformedRow as exc:
            bad.append(f"{path.name}:{number}: {exc}")
        cleaned += one.cleaned
    assert rows == expected
    assert (stats.malformed, stats.samples, stats.cleaned) == (len(bad), bad[:5], cleaned)
    assert (stats.kept, stats.rows) == (len(expected), data.count(b"\n") - 1)
    if chunk_bytes < 1 << 20:  # the column path was taken for some chunks, not for others
        assert any(taken) and not all(taken)
    else:  # one chunk, with unusual rows in it
        assert taken == [False]
