"""Reading IMDb's TSV format: headers, \\N, gzip or plain, malformed rows, ratings."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from reelset.imdb.tsv import (
    BASICS_COLUMNS,
    RATINGS_COLUMNS,
    ImdbFileError,
    MalformedRow,
    ParseStats,
    check_header,
    iter_basics,
    parse_basics_line,
    read_ratings,
    verify_dataset_file,
)

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
    ],
)
def test_bad_values_are_malformed(line: bytes, reason: str) -> None:
    with pytest.raises(MalformedRow, match=reason):
        parse_basics_line(line)


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
        "title.ratings.tsv:14: averageRating is b'x.y'",
        "title.ratings.tsv:15: 2 columns, expected 3",
        "title.ratings.tsv:18: averageRating b'nan' is not between 0 and 10",
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
