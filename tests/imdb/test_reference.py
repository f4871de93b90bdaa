"""The streaming import stores exactly what a straightforward line-by-line parse would.

The import selects rows by title type with a regular expression over chunks, parses
them in one thread and writes batches (built column-wise, as named tuples) in another.
The reference here reads the whole file, splits it into lines and fields, and parses
and stores every wanted row one at a time. Both must give the same stored rows and the
same malformed rows (with their line numbers) on a file full of awkward rows.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from sqlalchemy import select

from reelset.imdb.importer import import_tsv
from reelset.imdb.tsv import (
    BASICS_COLUMNS,
    RATINGS_COLUMNS,
    MalformedRow,
    ParseStats,
    parse_basics_line,
    read_ratings,
)
from reelset.storage import Store
from reelset.storage import schema as s
from reelset.storage.imdb import ImdbTitle, upsert_imdb_titles

TYPES = ["movie", "tvMovie"]

NASTY = [
    b'tt0000101\tmovie\t"Quoted" Title\t"Unbalanced\t0\t1999\t\\N\t90\tDrama,Comedy',
    b'tt0000102\tmovie\t"\t"""\t1\t2001\t\\N\t\\N\t\\N',  # only quotes: literal
    b"tt0000103\ttvMovie\tTab\tin\ttitle\t0\t1999\t\\N\t90\tDrama",  # 11 columns
    b"tt0000104\tmovie\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",  # every value null
    b"tt0000105\tmovie\tCRLF row\tCRLF row\t0\t1950\t\\N\t80\tWestern\r",
    b"tt0000106\tmovie\tLatin-1 \xe9t\xe9\tX\t0\t1950\t\\N\t80\tDrama",  # not UTF-8
    b"tt0000107\tmovie\tNUL\x00 and C1\xc2\x85\tX\t0\t1950\t\\N\t80\tDrama",  # cleaned
    b"tt0000108\tshort\tA short\tA short\t0\t1950\t\\N\t5\tShort",  # not kept
    b"tt0000109\tmovie\tBad year\tX\t0\t19x9\t\\N\t80\tDrama",
    b"tt0000110\tmovie\tEmpty genres\tX\t0\t1999\t\\N\t080\t,Drama,,Crime,",
    b"tt0000111\tmovie\tLong genre\tX\t0\t1999\t\\N\t80\t" + b"G" * 33,
    b"tt0000112\tMovie\tCase differs\tX\t0\t1999\t\\N\t80\tDrama",  # not kept
    b"tt0000101\tmovie\tDuplicate, later wins\tX\t0\t2000\t\\N\t91\tHorror",
    b"tt0000113\tmovie\tLeading zeros\tX\t0\t01999\t\\N\t0\t",
    b"tt0000114\tmovie",  # too short to be selected: not kept, not malformed
    b"tt0000115\tmovie\t\t\t\t\t\t\t",  # empty values
    b"tt0000116\ttvMovie\t\xe6\x9d\xb1\xe4\xba\xac\tX\t1\t2200\t\\N\t1000000\tDrama",
    b"xx0000117\tmovie\tNot an id\tX\t0\t1999\t\\N\t80\tDrama",
    b"",  # an empty line
]


def basics_file(path: Path, seed: int) -> bytes:
    """A gzipped ``title.basics`` of ordinary rows with the nasty ones spread among them."""
    rng = random.Random(seed)
    words = ["Night", '"Day"', "l'amour", "Café", "東京", "O'Brien", "#1.1", ",", "\\"]
    lines = [b"\t".join(c.encode() for c in BASICS_COLUMNS)]
    nasty = iter(NASTY)
    for number in range(1, 3000):
        if number % 150 == 0:
            lines.append(next(nasty, b"tt9\tmovie\tspare\tX\t0\t1999\t\\N\t1\tDrama"))
        title = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        kind = rng.choice(["movie", "tvMovie", "tvEpisode", "short", "movie"])
        year = rng.choice(["\\N", str(rng.randint(1874, 2030))])
        genres = rng.choice(["\\N", "Drama", "Comedy,Romance", "Action,Crime,Drama"])
        adult = rng.choice(["0", "1", "\\N"])
        values = [f"tt{number * 7:07d}", kind, title, title, adult, year, "\\N", str(number)]
        lines.append("\t".join([*values, genres]).encode())
    # The last line: long, with no newline after it.
    lines.append(b"tt0000199\tmovie\t" + b"L" * 200_000 + b"\tX\t0\t1999\t\\N\t80\tDrama")
    data = b"\n".join(lines)
    path.write_bytes(gzip.compress(data))
    return data


def ratings_file(path: Path) -> None:
    rows = ["\t".join(RATINGS_COLUMNS)]
    rows += [f"tt{n * 7:07d}\t{(n % 100) / 10:.1f}\t{n}" for n in range(1, 3000, 3)]
    rows += ["tt0000101\t7.7\t77", "tt0000101\t8.8\t88", "tt0000104\tbad\t1"]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))


def reference_import(
    store: Store, data: bytes, ratings: Path, types: list[str] = TYPES
) -> tuple[int, list[str]]:
    """Parse and store the wanted rows one by one; returns (malformed, sample lines)."""
    table = read_ratings(ratings, ParseStats(ratings.name))
    titles: list[ImdbTitle] = []
    malformed, lines = 0, []
    for number, line in enumerate(data.split(b"\n")[1:], start=2):
        fields = line.split(b"\t")
        if len(fields) < 3 or fields[1].decode("utf-8", "replace") not in types:
            continue
        try:
            row = parse_basics_line(line)
        except MalformedRow:
            malformed += 1
            lines.append(str(number))
            continue
        found = table.lookup([row.number])[0]
        titles.append(
            ImdbTitle(
                row.imdb_id,
                row.title_type,
                row.primary_title,
                row.original_title,
                row.is_adult,
                row.start_year,
                row.runtime_minutes,
                found[0] if found else None,
                found[1] if found else None,
                row.genres,
            )
        )
    upsert_imdb_titles(store, titles)
    return malformed, lines


def stored(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    t, g = s.imdb_titles, s.imdb_title_genres
    cols = [c for c in t.c if c.name != "imported_at"]
    with store.read() as conn:
        titles = [tuple(r) for r in conn.execute(select(*cols).order_by(t.c.imdb_id))]
        genres = [tuple(r) for r in conn.execute(select(g).order_by(g.c.imdb_id, g.c.genre))]
    return titles, genres


def test_import_stores_what_a_line_by_line_parse_stores(
    sqlite_store: Store, tmp_path: Path
) -> None:
    basics, ratings = tmp_path / "title.basics.tsv.gz", tmp_path / "title.ratings.tsv.gz"
    data = basics_file(basics, seed=14)
    ratings_file(ratings)
    report = import_tsv(sqlite_store, basics, ratings, title_types=TYPES, batch_size=7)

    reference = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference.upgrade()
        malformed, lines = reference_import(reference, data, ratings)
        expected = stored(reference)
    finally:
        reference.close()

    assert stored(sqlite_store) == expected
    titles, genres = expected
    by_id = {row[0]: row for row in titles}
    # The awkward rows really are in the file, and came through as the row parser says.
    assert by_id["tt0000101"][2] == "Duplicate, later wins" and by_id["tt0000101"][7] == 8.8
    assert by_id["tt0000102"][2:4] == ('"', '"""')
    assert by_id["tt0000105"][2] == "CRLF row"
    assert by_id["tt0000107"][2] == "NUL and C1"
    assert by_id["tt0000110"][6] == 80
    assert {g for i, g in genres if i == "tt0000110"} == {"Drama", "Crime"}
    assert by_id["tt0000104"][2:] == (None,) * 7  # its rating row is malformed too
    assert by_id["tt0000199"][2] == "L" * 200_000
    assert "tt0000108" not in by_id and "tt0000112" not in by_id
    assert len(titles) > 1000

    stats = report.basics
    assert stats is not None
    assert stats.malformed == malformed == 6
    assert stats.cleaned == 1
    assert [sample.split(":")[1] for sample in stats.samples] == lines[:5]
    assert stats.rows == len(data.split(b"\n")) - 1
