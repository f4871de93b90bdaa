"""Reading IMDb's TSV format: headers, \\N, gzip or plain, malformed rows, ratings."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from reelset.imdb.tsv import (
    BASICS_COLUMNS,
    MAX_ID_DIGITS,
    MAX_NAME_CHARS,
    MAX_VOTES,
    RATINGS_COLUMNS,
    ImdbFileError,
    MalformedRow,
    ParseStats,
    check_header,
    clean_text,
    iter_basics,
    parse_basics_line,
    read_ratings,
    strip_controls,
    verify_dataset_file,
)
from reelset.storage import schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imdb"
BASICS = FIXTURES / "title.basics.tsv"
RATINGS = FIXTURES / "title.ratings.tsv"
KEPT_IDS = [
    "tt0000009",
    "tt0000502",
    "tt0004532",
    "tt0007237",
    "tt0014447",
    "tt0019478",
    "tt0022184",
    "tt0026762",
    "tt0030298",
    "tt0030301",
    "tt9000001",
    "tt9000004",
    "tt9000010",
    "tt9000011",
]


def gz(src: Path, dest: Path) -> Path:
    dest.write_bytes(gzip.compress(src.read_bytes()))
    return dest


def read_all(path: Path, **kw: int) -> tuple[list, ParseStats]:
    stats = ParseStats(path.name)
    rows = list(iter_basics(path, ["movie", "tvMovie"], stats, **kw))
    return rows, stats


def test_basics_keeps_title_types_and_handles_nulls_and_quotes() -> None:
    rows, stats = read_all(BASICS)
    by_id = {r.imdb_id: r for r in rows}
    assert sorted(by_id) == KEPT_IDS
    assert stats.rows == 23 and stats.kept == 14
    untitled = by_id["tt9000010"]
    assert (untitled.start_year, untitled.runtime_minutes, untitled.genres) == (None, None, ())
    assert by_id["tt0000502"].genres == () and by_id["tt0000502"].runtime_minutes == 100
    quoted = by_id["tt9000001"]
    assert quoted.primary_title == '"Quoted" Title, with a comma'  # quotes are literal
    assert quoted.genres == ("Comedy", "Sci-Fi")
    assert by_id["tt0014447"].original_title == "Schlagende Wetter"
    assert by_id["tt9000011"].original_title == "東京物語"
    assert by_id["tt9000011"].title_type == "tvMovie"
    assert by_id["tt9000004"].is_adult is True and by_id["tt0000009"].is_adult is False
    assert by_id["tt0000009"].number == 9


def test_malformed_kept_rows_are_counted_with_line_numbers() -> None:
    _rows, stats = read_all(BASICS)
    assert stats.malformed == 3
    assert stats.samples == [
        "title.basics.tsv:19: 8 columns, expected 9",
        "title.basics.tsv:20: startYear is not a whole number: 'abcd'",
        "title.basics.tsv:21: isAdult is '2014', expected 0 or 1",
    ]


def test_gzip_plain_and_tiny_chunks_read_the_same(tmp_path: Path) -> None:
    plain, plain_stats = read_all(BASICS)
    packed, packed_stats = read_all(gz(BASICS, tmp_path / "title.basics.tsv.gz"))
    # Chunks smaller than a row: rows and line numbers must survive chunk boundaries.
    tiny, tiny_stats = read_all(BASICS, chunk_bytes=7)
    assert plain == packed == tiny
    assert plain_stats.samples == tiny_stats.samples
    assert [s.split(":", 1)[1] for s in packed_stats.samples] == [
        s.split(":", 1)[1] for s in plain_stats.samples
    ]


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    text = BASICS.read_text(encoding="utf-8").replace("\n", "\r\n").rstrip("\r\n")
    path = tmp_path / "title.basics.tsv"
    path.write_bytes(text.encode("utf-8"))
    rows, stats = read_all(path)
    assert sorted(r.imdb_id for r in rows) == KEPT_IDS
    assert rows[-1].genres == ("Drama", "Family")  # the last line, without "\n"
    assert stats.malformed == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"tt1\tmovie\tA\tA\t0\t1999\t\\N\t-5\tDrama", "not a whole number"),
        (b"nm1\tmovie\tA\tA\t0\t1999\t\\N\t5\tDrama", "not an IMDb title id"),
        (b"tt1\tmovie\tA\t\xff\t0\t1999\t\\N\t5\tDrama", "not valid UTF-8"),
        (b"tt1\tmovie\tA\tA\t0\t\xc2\xb2\t\\N\t5\tDrama", "not a whole number"),
        (b"tt1\tmovie\tA\tA\t0\t99999\t\\N\t5\tDrama", "startYear '99999' is not between"),
        (b"tt1\tmovie\tA\tA\t0\t1799\t\\N\t5\tDrama", "startYear '1799' is not between"),
        (b"tt1\tmovie\tA\tA\t0\t" + b"1" * 5000 + b"\t\\N\t5\tDrama", "startYear"),
        (b"tt1\tmovie\tA\tA\t0\t1999\t\\N\t1000001\tDrama", "runtimeMinutes '1000001'"),
        (b"tt1\tmovie\tA\tA\t0\t1999\t\\N\t" + b"9" * 5000 + b"\tDrama", "runtimeMinutes"),
        (b"tt" + b"1" * 15 + b"\tmovie\tA\tA\t0\t1999\t\\N\t5\tDrama", "not an IMDb title id"),
        (b"tt" + b"1" * 5000 + b"\tmovie\tA\tA\t0\t1999\t\\N\t5\tDrama", "not an IMDb title"),
        (b"tt\tmovie\tA\tA\t0\t1999\t\\N\t5\tDrama", "not an IMDb title id"),
        (b"tt1\tmovie\tA\tA\t0\t1999\t\\N\t5\tDrama," + b"X" * 33, "genre 'XXX"),
        (b"tt1\t" + b"m" * 33 + b"\tA\tA\t0\t1999\t\\N\t5\tDrama", "titleType"),
        (b"tt1\tmovie\tA\tA\t0\t19\xc2\x8599\t\\N\t5\t\\N", None),  # stripped: 1999
    ],
)
def test_bad_values_are_malformed(line: bytes, reason: str | None) -> None:
    if reason is None:
        assert parse_basics_line(line).start_year == 1999
        return
    with pytest.raises(MalformedRow, match=reason):
        parse_basics_line(line)


def test_values_at_the_limits_are_kept() -> None:
    row = parse_basics_line(
        b"tt"
        + b"9" * MAX_ID_DIGITS
        + b"\tmovie\tA\tA\t0\t2200\t\\N\t1000000\t"
        + b"G" * MAX_NAME_CHARS
    )
    assert (row.start_year, row.runtime_minutes, row.genres) == (2200, 1_000_000, ("G" * 32,))
    assert row.number == int("9" * MAX_ID_DIGITS)
    assert parse_basics_line(b"tt1\tmovie\tA\tA\t0\t1800\t\\N\t0\tDrama").start_year == 1800


def test_limits_fit_the_store_columns() -> None:
    assert schema.imdb_titles.c.imdb_id.type.length == 2 + MAX_ID_DIGITS
    assert schema.imdb_titles.c.title_type.type.length == MAX_NAME_CHARS
    assert schema.imdb_title_genres.c.genre.type.length == MAX_NAME_CHARS
    assert MAX_VOTES == 2**31 - 1  # num_votes is an INTEGER (32 bits on PostgreSQL)


def test_control_characters_in_basics_are_stripped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "title.basics.tsv"
    rows = [
        b"tt1\tmovie\tNUL\x00 in\tESC\x1b[1m\t0\t1999\t\\N\t90\tDrama",
        "tt2\tmovie\tC1\u0085 \u009f\tDEL\x7f café\t0\t1999\t\\N\t90\tDra\rma".encode(),
        "tt3\tmovie\tPlain é ü 東京\tP\t0\t1999\t\\N\t90\tDrama\r".encode(),  # CRLF
    ]
    path.write_bytes(("\t".join(BASICS_COLUMNS) + "\n").encode() + b"\n".join(rows) + b"\n")
    got, stats = read_all(path)
    assert [(r.primary_title, r.original_title, r.genres) for r in got] == [
        ("NUL in", "ESC[1m", ("Drama",)),
        ("C1 ", "DEL café", ("Drama",)),
        ("Plain é ü 東京", "P", ("Drama",)),
    ]
    assert (stats.kept, stats.cleaned, stats.malformed) == (3, 2, 0)
    assert strip_controls(b"plain \xc3\xa9") is None
    assert strip_controls(b"a\x00b\xc2\x9fc\td") == b"abc\td"
    assert clean_text("a\x00b\u0085c\u00e9\td") == "abc\u00e9\td"


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_byte_order_mark_before_the_header_is_accepted(tmp_path: Path, packed: bool) -> None:
    bom = b"\xef\xbb\xbf"
    basics = tmp_path / "title.basics.tsv"
    basics.write_bytes(bom + BASICS.read_bytes())
    ratings = tmp_path / "title.ratings.tsv"
    ratings.write_bytes(bom + RATINGS.read_bytes())
    if packed:
        basics, ratings = gz(basics, tmp_path / "b.tsv.gz"), gz(ratings, tmp_path / "r.tsv.gz")
    check_header(basics, BASICS_COLUMNS)
    check_header(ratings, RATINGS_COLUMNS)
    rows, stats = read_all(basics)
    assert rows == read_all(BASICS)[0] and stats.rows == 23 and stats.malformed == 3
    table = read_ratings(ratings, ParseStats(ratings.name))
    assert len(table) == 13 and table.lookup([1]) == [(5.7, 2150)]
    # A mark anywhere else is no header.
    later = tmp_path / "later.tsv"
    later.write_bytes(b"\n" + bom + RATINGS.read_bytes())
    with pytest.raises(ImdbFileError, match=r"not an IMDb title\.ratings file"):
        check_header(later, RATINGS_COLUMNS)


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_empty_and_header_only_files(tmp_path: Path, packed: bool) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    basics = tmp_path / "title.basics.tsv"
    basics.write_bytes(("\t".join(BASICS_COLUMNS) + "\n").encode())
    ratings = tmp_path / "title.ratings.tsv"
    ratings.write_bytes(("\t".join(RATINGS_COLUMNS) + "\r\n").encode())
    if packed:
        empty, basics = gz(empty, tmp_path / "e.gz"), gz(basics, tmp_path / "b.gz")
        ratings = gz(ratings, tmp_path / "r.gz")
    with pytest.raises(ImdbFileError, match=r"title\.basics file: the file is empty"):
        check_header(empty, BASICS_COLUMNS)
    with pytest.raises(ImdbFileError, match=r"title\.ratings file: the file is empty"):
        read_ratings(empty, ParseStats(empty.name))
    rows, stats = read_all(basics)
    assert rows == [] and (stats.rows, stats.kept, stats.malformed) == (0, 0, 0)
    stats = ParseStats(ratings.name)
    assert len(read_ratings(ratings, stats)) == 0 and stats.rows == 0


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImdbFileError, match=r"not an IMDb title\.basics file"):
        check_header(RATINGS, BASICS_COLUMNS)
    csv = tmp_path / "title.basics.tsv"
    csv.write_text("tconst,titleType,primaryTitle\ntt1,movie,A\n", encoding="utf-8")
    with pytest.raises(ImdbFileError, match="header is 'tconst,titleType,primaryTitle'"):
        list(iter_basics(csv, ["movie"], ParseStats(csv.name)))
    check_header(gz(RATINGS, tmp_path / "r.tsv.gz"), RATINGS_COLUMNS)


def test_truncated_gzip_is_an_error(tmp_path: Path) -> None:
    data = gzip.compress(BASICS.read_bytes() * 40)
    cut = tmp_path / "title.basics.tsv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImdbFileError, match="truncated"):
        read_all(cut)
    with pytest.raises(ImdbFileError, match="truncated"):
        verify_dataset_file(cut, BASICS_COLUMNS)
    whole = tmp_path / "whole.tsv.gz"
    whole.write_bytes(data)
    assert verify_dataset_file(whole, BASICS_COLUMNS) == len(BASICS.read_bytes()) * 40
    with pytest.raises(ImdbFileError, match="not a gzip file"):
        verify_dataset_file(BASICS, BASICS_COLUMNS)


def test_ratings_unsorted_duplicates_and_malformed(tmp_path: Path) -> None:
    path = tmp_path / "title.ratings.tsv"
    path.write_text(
        RATINGS.read_text(encoding="utf-8") + "tt0000009\t9.9\t7\ntt5\tnan\t3\n", encoding="utf-8"
    )
    stats = ParseStats(path.name)
    ratings = read_ratings(path, stats, chunk_bytes=5)
    assert stats.rows == 17 and stats.malformed == 3
    assert stats.samples == [
        "title.ratings.tsv:14: averageRating is not a number: 'x.y'",
        "title.ratings.tsv:15: 2 columns, expected 3",
        "title.ratings.tsv:18: averageRating is not a number: 'nan'",
    ]
    assert ratings.duplicates == 1
    assert ratings.lookup([29270, 9, 9000004, 30301, 1]) == [
        (4.9, 13),
        (9.9, 7),  # the later of two rows wins
        None,
        (6.2, 46),
        (5.7, 2150),
    ]
    assert ratings.lookup([]) == []


def test_ratings_rows_out_of_range_or_malformed_are_counted_and_skipped(tmp_path: Path) -> None:
    huge = b"9" * 5000  # int() of more than 4,300 digits raises ValueError
    lines = [
        (b"tt0000001\t11.0\t10", "averageRating '11.0' is not between 0 and 10"),
        (b"tt0000002\t10.1\t10", "averageRating '10.1' is not between 0 and 10"),
        (b"tt0000003\t-1.0\t10", "averageRating is not a number: '-1.0'"),
        (b"tt0000004\tinf\t10", "averageRating is not a number: 'inf'"),
        (b"tt0000005\t1e1\t10", "averageRating is not a number: '1e1'"),
        (b"tt0000006\t 5.0\t10", "averageRating is not a number: ' 5.0'"),
        (b"tt0000007\t1_0\t10", "averageRating is not a number: '1_0'"),
        (b"tt0000008\t" + b"9" * 400 + b"\t10", "is not between 0 and 10"),
        (b"tt0000009\t5.0\t-3", "numVotes is not a whole number: '-3'"),
        (b"tt0000010\t5.0\t2147483648", "numVotes '2147483648' is not between 0 and"),
        (b"tt0000011\t5.0\t" + huge, "numVotes '99999"),
        (b"tt" + huge + b"\t5.0\t10", "not an IMDb title id"),
        (b"tt" + b"1" * 15 + b"\t5.0\t10", "not an IMDb title id"),
        (b"tt0000012\t5.0\x00\t10", "averageRating is not a number: '5.0\\x00'"),
        (b"tt0000013\t5.0\t1\x1f", "numVotes is not a whole number"),
        (b"\x00tt0000014\t5.0\t10", "not an IMDb title id"),
        (b"tt0000015\t5.0\t\xc2\xb2", "numVotes is not a whole number"),  # superscript 2
        (b"tt0000016\t5.0", "2 columns, expected 3"),
    ]
    good = [b"tt0000020\t10.0\t2147483647", b"tt0000021\t0.0\t0", b"tt0000022\t7\t5\r"]
    path = tmp_path / "title.ratings.tsv"
    path.write_bytes(
        b"tconst\taverageRating\tnumVotes\n"
        + b"\n".join([*good, *(line for line, _ in lines)])
        + b"\n"
    )
    stats = ParseStats(path.name)
    table = read_ratings(path, stats)
    assert (stats.rows, stats.kept, stats.malformed) == (len(good) + len(lines), 3, len(lines))
    assert table.lookup([20, 21, 22, 1, 9]) == [(10.0, 2147483647), (0.0, 0), (7.0, 5), None, None]
    for number, (_line, reason) in enumerate(lines[:5]):  # the first five are sampled
        assert stats.samples[number].startswith(f"title.ratings.tsv:{number + 5}: ")
        assert reason in stats.samples[number]
    # Every reason, not only the sampled ones.
    for line, reason in lines:
        one = tmp_path / "one.tsv"
        one.write_bytes(b"tconst\taverageRating\tnumVotes\n" + line + b"\n")
        one_stats = ParseStats(one.name)
        assert len(read_ratings(one, one_stats)) == 0
        assert one_stats.malformed == 1 and reason in one_stats.samples[0], one_stats.samples


@pytest.mark.parametrize("ending", [b"", b"\n", b"\n\n", b"\r\n"])
@pytest.mark.parametrize("chunk_bytes", [1, 3, 16, 1 << 20])
def test_line_buffers_and_iter_chunks_give_whole_lines(ending: bytes, chunk_bytes: int) -> None:
    # The basics reader searches one buffer per chunk (a line feed, then whole lines) up
    # to `end`, and counts its lines with numpy: the same lines, counted the same way.
    import io
    import random

    from reelset.imdb import tsv

    rng = random.Random(chunk_bytes)
    body = b"\n".join(
        b"x" * rng.choice([0, 1, 5, 40]) + rng.choice([b"", b"\t", b"\r"]) for _ in range(300)
    )
    data = body + ending
    path = Path("title.basics.tsv")
    expected = list(tsv.iter_chunks(io.BytesIO(data), path, chunk_bytes))
    # Every chunk but the last ends at a line end, and together they are the data.
    assert b"".join(expected) == data
    assert all(c.endswith(b"\n") and c for c in expected[:-1])
    raw = io.BytesIO(data)
    got = list(tsv._line_buffers(raw, raw, path, chunk_bytes))
    assert all(buf[:1] == b"\n" for buf, _end, _at in got)
    assert [buf[1:end] for buf, end, _at in got] == expected
    assert [tsv._count_lines(buf, end) for buf, end, _at in got] == [
        c.count(b"\n") + (not c.endswith(b"\n")) for c in expected
    ]
    assert sum(tsv._count_lines(buf, end) for buf, end, _at in got) == len(data.split(b"\n")) - (
        data.endswith(b"\n")
    )
    assert not list(tsv._line_buffers(io.BytesIO(b""), raw, path, chunk_bytes))
