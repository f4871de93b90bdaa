"""``reelset imdb import``: tables, view, coverage, idempotency, bad input (SQLite and PG)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from reelset.cli import main
from reelset.imdb.tsv import BASICS_COLUMNS, ImdbFileError
from reelset.storage import MovieRecord, Store
from reelset.storage import schema as s

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imdb"
BASICS = FIXTURES / "title.basics.tsv"
RATINGS = FIXTURES / "title.ratings.tsv"
MOVIES = [
    MovieRecord(tmdb_id=1, title="Miss Jerry", imdb_id="tt0000009"),
    MovieRecord(tmdb_id=2, title="Explosion", imdb_id="tt0014447"),
    MovieRecord(tmdb_id=3, title="Julius Caesar", imdb_id="tt0030298"),
    MovieRecord(tmdb_id=4, title="Carmencita", imdb_id="tt0000001"),  # a short: not kept
    MovieRecord(tmdb_id=5, title="No IMDb id"),
    MovieRecord(tmdb_id=6, title="Unknown to IMDb", imdb_id="tt7777777"),
    MovieRecord(tmdb_id=7, title="Miss Jerry (duplicate)", imdb_id="tt0000009"),
]


def write_config(tmp_path: Path, url: str, batch_size: int = 4) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[storage]\nurl = "{url}"\n[imdb]\nbatch_size = {batch_size}\n')
    return cfg


def gz_dir(folder: Path, basics: str | None = None, ratings: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    b = basics if basics is not None else BASICS.read_text(encoding="utf-8")
    r = ratings if ratings is not None else RATINGS.read_text(encoding="utf-8")
    (folder / "title.basics.tsv.gz").write_bytes(gzip.compress(b.encode("utf-8")))
    (folder / "title.ratings.tsv.gz").write_bytes(gzip.compress(r.encode("utf-8")))
    return folder


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, Any, str]:
    code = main(["--config", str(cfg), "-q", "imdb", *args])
    out, err = capsys.readouterr()
    data = json.loads(out) if code == 0 and "--json" in args else out
    return code, data, err


def snapshot(store: Store, *, stamps: bool = True) -> tuple[list[tuple], list[tuple]]:
    t, g = s.imdb_titles, s.imdb_title_genres
    cols = [c for c in t.c if stamps or c.name != "imported_at"]
    with store.read() as conn:
        titles = [tuple(r) for r in conn.execute(select(*cols).order_by(t.c.imdb_id))]
        genres = [tuple(r) for r in conn.execute(select(g).order_by(g.c.imdb_id, g.c.genre))]
    return titles, genres


def test_import_fills_tables_view_and_coverage(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.movies.upsert(MOVIES)
    cfg = write_config(tmp_path, store.url)
    code, summary, err = cli(capsys, cfg, "import", str(gz_dir(tmp_path / "dl")), "--json")
    assert code == 0, err
    assert summary["titles_new"] == 14 and summary["titles_updated"] == 0
    assert summary["basics_rows"] == 23 and summary["basics_kept"] == 14
    assert summary["ratings_rows"] == 15 and summary["titles_with_rating"] == 10
    assert summary["malformed_rows"] == 5
    assert "title.basics.tsv.gz:19: 8 columns, expected 9" in summary["malformed_samples"]
    assert "title.ratings.tsv.gz:15: 2 columns, expected 3" in summary["malformed_samples"]
    assert summary["coverage"] == {
        "tmdb_movies_with_imdb_id": 6,
        "matched": 4,
        "unmatched": 2,
        "coverage_pct": 66.67,
    }

    t = s.imdb_titles
    with store.read() as conn:
        jerry = conn.execute(select(t).where(t.c.imdb_id == "tt0000009")).mappings().one()
        untitled = conn.execute(select(t).where(t.c.imdb_id == "tt9000010")).mappings().one()
        view = conn.execute(
            text(
                "SELECT tmdb_id, imdb_id, title, imdb_genres, average_rating, num_votes "
                "FROM movie_imdb ORDER BY tmdb_id"
            )
        ).all()
    assert {k: v for k, v in jerry.items() if k != "imported_at"} == {
        "imdb_id": "tt0000009",
        "title_type": "movie",
        "primary_title": "Miss Jerry",
        "original_title": "Miss Jerry",
        "is_adult": False,
        "start_year": 1894,
        "runtime_minutes": 45,
        "average_rating": 5.4,
        "num_votes": 222,
    }
    assert jerry["imported_at"].tzinfo is not None
    assert (untitled["start_year"], untitled["runtime_minutes"], untitled["average_rating"]) == (
        None,
        None,
        None,
    )
    assert [tuple(r) for r in view] == [
        (1, "tt0000009", "Miss Jerry", "Romance", 5.4, 222),
        (2, "tt0014447", "Explosion", "Action, Drama", 6.5, 89),
        (3, "tt0030298", "Julius Caesar", "Drama, History", 7.2, 12),
        (7, "tt0000009", "Miss Jerry (duplicate)", "Romance", 5.4, 222),
    ]
    _titles, genres = snapshot(store)
    assert [g for i, g in genres if i == "tt0004532"] == ["Drama", "History", "Romance"]
    assert not [g for i, g in genres if i == "tt0007237"]  # \N genres: none

    run = store.runs.last("imdb import")
    assert run is not None and run["status"] == "succeeded"
    assert run["counts"]["titles_new"] == 14 and run["counts"]["malformed_rows"] == 5
    assert store.locks.holder("imdb") is None

    code, cov, _ = cli(capsys, cfg, "coverage", "--json")
    assert code == 0 and cov["imdb_titles"] == 14 and cov["matched"] == 4


def test_reimport_changes_nothing_and_updates_only_changed_titles(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, store.url)
    folder = gz_dir(tmp_path / "dl")
    assert cli(capsys, cfg, "import", str(folder), "--json")[0] == 0
    first = snapshot(store)

    code, again, _ = cli(capsys, cfg, "import", str(folder), "--json")
    assert code == 0
    assert (again["titles_new"], again["titles_updated"], again["titles_unchanged"]) == (0, 0, 14)
    assert again["genre_rows_written"] == 0
    assert snapshot(store) == first  # imported_at included: nothing was touched

    basics = BASICS.read_text(encoding="utf-8")
    basics = basics.replace(
        "Schlagende Wetter\t0\t1923\t\\N\t65\tAction,Drama",
        ("Schlagende Wetter\t0\t1923\t\\N\t65\tDrama"),
    )  # a genre removed
    basics = basics.replace("Julius Caesar\tJulius Caesar", "Julius Caesar\tIulius Caesar")
    ratings = RATINGS.read_text(encoding="utf-8").replace(
        "tt0000009\t5.4\t222", "tt0000009\t5.4\t230"
    )
    changed = gz_dir(tmp_path / "dl2", basics, ratings)
    code, third, _ = cli(capsys, cfg, "import", str(changed), "--json")
    assert code == 0
    assert (third["titles_new"], third["titles_updated"], third["titles_unchanged"]) == (0, 3, 11)
    titles, genres = snapshot(store)
    stamp = {row[0]: row[-1] for row in titles}
    old_stamp = {row[0]: row[-1] for row in first[0]}
    touched = sorted(i for i in stamp if stamp[i] != old_stamp[i])
    assert touched == ["tt0000009", "tt0014447", "tt0030298"]
    assert [g for i, g in genres if i == "tt0014447"] == ["Drama"]
    assert {r[0]: r[8] for r in titles}["tt0000009"] == 230


def test_basics_alone_keeps_stored_ratings(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, sqlite_store.url)
    assert cli(capsys, cfg, "import", str(gz_dir(tmp_path / "dl")))[0] == 0
    before = snapshot(sqlite_store)
    code, summary, _ = cli(capsys, cfg, "import", "--basics", str(BASICS), "--json")
    assert code == 0 and summary["ratings_file"] == "-"
    assert summary["titles_unchanged"] == 14
    assert snapshot(sqlite_store) == before


def test_plain_files_import_like_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = []
    for name, args in (
        ("plain", ["--basics", str(BASICS), "--ratings", str(RATINGS)]),
        ("gz", [str(gz_dir(tmp_path / "dl"))]),
    ):
        url = f"sqlite:///{tmp_path / name / 'store.db'}"
        (tmp_path / name).mkdir(exist_ok=True)
        cfg = write_config(tmp_path / name, url, batch_size=5000)
        assert cli(capsys, cfg, "import", *args)[0] == 0
        with Store(url) as st:
            results.append(snapshot(st, stamps=False))
    assert results[0] == results[1] and len(results[0][0]) == 14


def test_wrong_header_is_refused_before_anything_is_written(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, sqlite_store.url)
    # Good basics, ratings with a header of another file.
    bad_ratings = "tconst\tdirectors\twriters\ntt0000009\tnm1\tnm2\n"
    folder = gz_dir(tmp_path / "dl", ratings=bad_ratings)
    code, _, err = cli(capsys, cfg, "import", str(folder))
    assert code == 2
    assert err.count("\n") == 1 and "not an IMDb title.ratings file" in err
    # A basics file that is really a ratings file.
    code, _, err = cli(capsys, cfg, "import", "--basics", str(RATINGS))
    assert code == 2 and err.count("\n") == 1 and "title.basics" in err
    assert snapshot(sqlite_store) == ([], [])
    assert sqlite_store.runs.last("imdb import") is None


def test_truncated_basics_fails_cleanly(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, sqlite_store.url, batch_size=2)
    data = gzip.compress(BASICS.read_bytes())
    path = tmp_path / "title.basics.tsv.gz"
    path.write_bytes(data[:-12])  # the gzip trailer and the end of the data are missing
    code, _, err = cli(capsys, cfg, "import", "--basics", str(path))
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "truncated" in line] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("reelset: error: ")
    run = sqlite_store.runs.last("imdb import")
    assert run is not None and run["status"] == "failed"
    assert sqlite_store.locks.holder("imdb") is None
    # A rerun with the whole file converges to the clean import.
    shutil.copy(BASICS, tmp_path / "whole.tsv")
    assert cli(capsys, cfg, "import", "--basics", str(tmp_path / "whole.tsv"))[0] == 0
    assert len(snapshot(sqlite_store)[0]) == 14


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name a folder"),
        (["DIR", "--basics", "B"], "not both"),
        (["NOPE"], "not a folder"),
        (["EMPTY"], "no title.basics.tsv.gz"),
        (["--basics", "NOPE"], "no such file"),
        (["--from-cinemagoer", "DIR"], "--from-cinemagoer takes no folder"),
    ],
)
def test_usage_errors_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    (tmp_path / "EMPTY").mkdir()
    paths = {
        "DIR": str(FIXTURES),
        "B": str(BASICS),
        "NOPE": str(tmp_path / "nope"),
        "EMPTY": str(tmp_path / "EMPTY"),
    }
    code, _, err = cli(capsys, cfg, "import", *[paths.get(a, a) for a in args])
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_interrupted_import_keeps_finished_batches(
    sqlite_store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reelset.imdb.importer as importer

    real = importer.iter_basics_columns

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        # Ctrl-C after 9 rows were read (the file is one chunk: its first 9 rows, then stop).
        for columns in real(*args, **kwargs):
            yield type(columns)._make(column[:9] for column in columns)
            raise KeyboardInterrupt

    monkeypatch.setattr(importer, "iter_basics_columns", interrupted)
    cfg = write_config(tmp_path, sqlite_store.url, batch_size=4)
    code, _, err = cli(capsys, cfg, "import", "--basics", str(BASICS))
    assert code == 130 and "interrupted" in err.splitlines()[-1]
    run = sqlite_store.runs.last("imdb import")
    assert run is not None and run["status"] == "interrupted"
    assert sqlite_store.locks.holder("imdb") is None
    # Two whole batches of 4 were handed over before Ctrl-C; each is its own transaction.
    assert len(snapshot(sqlite_store)[0]) in (0, 4, 8)
    monkeypatch.setattr(importer, "iter_basics_columns", real)
    assert cli(capsys, cfg, "import", "--basics", str(BASICS))[0] == 0
    assert len(snapshot(sqlite_store)[0]) == 14


# --- Bad or partial files never cost stored data (issue 10) ----------------------------

BASICS_HEADER = "\t".join(BASICS_COLUMNS) + "\n"
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"
AVERAGE, VOTES, STAMP = 7, 8, 9  # columns of a snapshot row


def write_files(folder: Path, basics: bytes, ratings: bytes | None, *, gz: bool = True) -> Path:
    """Write a basics (and ratings) file into ``folder``, gzipped or plain; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".tsv.gz" if gz else ".tsv"
    for name, data in (("title.basics", basics), ("title.ratings", ratings)):
        if data is not None:
            (folder / (name + suffix)).write_bytes(gzip.compress(data) if gz else data)
    return folder


def by_id(store: Store) -> dict[str, tuple]:
    return {row[0]: row for row in snapshot(store)[0]}


def imported(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Import the fixture files (gzipped) into ``store``; returns the config."""
    cfg = write_config(tmp_path, store.url)
    code, _, err = cli(capsys, cfg, "import", str(gz_dir(tmp_path / "first")))
    assert code == 0, err
    return cfg


@pytest.mark.parametrize(
    ("ratings", "note"),
    [
        (RATINGS_HEADER, "title.ratings.tsv.gz has no data rows: no stored rating was changed"),
        (
            "\ufeff" + RATINGS_HEADER.replace("\n", "\r\n"),
            "title.ratings.tsv.gz has no data rows: no stored rating was changed",
        ),
        (
            RATINGS_HEADER + "tt0000009\t11.0\t222\ntt0000502\n",
            "title.ratings.tsv.gz has no usable rows (2 data rows, 2 malformed): "
            "no stored rating was changed",
        ),
    ],
    ids=["header-only", "bom-crlf-header-only", "only-malformed-rows"],
)
def test_ratings_file_without_data_rows_changes_no_rating(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ratings: str,
    note: str,
) -> None:
    cfg = imported(store, tmp_path, capsys)
    before = snapshot(store)
    assert sum(row[AVERAGE] is not None for row in before[0]) == 10

    code, summary, err = cli(
        capsys, cfg, "import", str(gz_dir(tmp_path / "dl", ratings=ratings)), "--json"
    )
    assert code == 0, err
    assert summary["ratings_kept"] == 0 and summary["titles_with_rating"] == 0
    assert (summary["titles_new"], summary["titles_updated"], summary["titles_unchanged"]) == (
        0,
        0,
        14,
    )
    assert summary["notes"] == [note]
    assert note in err  # said on stderr too, as a warning
    assert snapshot(store) == before  # imported_at included
    run = store.runs.last("imdb import")
    assert run is not None and run["status"] == "succeeded"


def test_out_of_range_rating_is_malformed_and_other_titles_update(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = imported(store, tmp_path, capsys)
    before = by_id(store)
    ratings = (
        RATINGS.read_text(encoding="utf-8")
        .replace("tt0000009\t5.4\t222", "tt0000009\t11.0\t230")  # line 4
        .replace("tt0030301\t6.2\t46", "tt0030301\t6.3\t-46")  # line 10
        .replace("tt0014447\t6.5\t89", "tt0014447\t6.6\t90")  # line 7: a good change
    )
    code, summary, err = cli(
        capsys, cfg, "import", str(gz_dir(tmp_path / "dl", ratings=ratings)), "--json"
    )
    assert code == 0, err
    assert summary["ratings_rows"] == 15 and summary["ratings_kept"] == 11
    assert summary["malformed_rows"] == 3 + 4  # basics 3; ratings: the fixture's 2 and these 2
    samples = summary["malformed_samples"]
    assert "title.ratings.tsv.gz:4: averageRating '11.0' is not between 0 and 10" in samples
    assert "title.ratings.tsv.gz:10: numVotes is not a whole number: '-46'" in samples
    assert (summary["titles_updated"], summary["titles_unchanged"]) == (1, 13)
    assert summary["notes"] == []
    after = by_id(store)
    assert after["tt0014447"][AVERAGE : VOTES + 1] == (6.6, 90)
    assert after["tt0014447"][STAMP] > before["tt0014447"][STAMP]
    for kept in ("tt0000009", "tt0030301"):  # the malformed rows' titles keep everything
        assert after[kept] == before[kept]
    assert after["tt0000009"][AVERAGE : VOTES + 1] == (5.4, 222)


def test_title_absent_from_ratings_file_keeps_its_rating(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # First a ratings file that rates tt9000004 (the fixture's row for it is malformed).
    ratings = RATINGS.read_text(encoding="utf-8").replace(
        "tt9000004\tx.y\t10", "tt9000004\t6.1\t10"
    )
    cfg = write_config(tmp_path, store.url)
    assert cli(capsys, cfg, "import", str(gz_dir(tmp_path / "first", ratings=ratings)))[0] == 0
    before = by_id(store)
    assert before["tt9000004"][AVERAGE : VOTES + 1] == (6.1, 10)

    # Then one without tt0030298 and tt0000502, and with tt9000004's row malformed again.
    partial = "".join(
        line
        for line in RATINGS.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith(("tt0030298", "tt0000502"))
    ).replace("tt0000009\t5.4\t222", "tt0000009\t5.5\t240")
    code, summary, err = cli(
        capsys, cfg, "import", str(gz_dir(tmp_path / "dl", ratings=partial)), "--json"
    )
    assert code == 0, err
    assert (summary["titles_new"], summary["titles_updated"], summary["titles_unchanged"]) == (
        0,
        1,
        13,
    )
    after = by_id(store)
    assert after["tt0000009"][AVERAGE : VOTES + 1] == (5.5, 240)
    for kept in ("tt0030298", "tt0000502", "tt9000004"):
        assert after[kept] == before[kept]  # rating, votes and imported_at
    assert after["tt0007237"][AVERAGE] is None  # never rated: still none


def test_bad_values_never_reach_the_database(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Absurd numbers, over-long ids and names, control characters: on both backends."""
    huge = "9" * 4301  # int() of more than 4,300 digits raises ValueError
    rows = [
        # line 2: NUL and an ANSI escape in the titles: stripped
        b"tt0000101\tmovie\tMiss\x00 Jerry\tMiss Jerry\x1b[0m\t0\t1894\t\\N\t45\tRomance",
        # line 3: a C1 control (U+0085), DEL and a carriage return inside a field: stripped
        "tt0000102\tmovie\tNext\u0085Line\tcafé\x7f\t0\t1999\t\\N\t90\tDra\rma".encode(),
        b"tt0000103\tmovie\tYear 99999\tY\t0\t99999\t\\N\t90\tDrama",  # line 4
        b"tt0000104\tmovie\tYear 0\tY\t0\t0\t\\N\t90\tDrama",  # line 5
        b"tt0000105\tmovie\tRuntime\tR\t0\t2000\t\\N\t99999999999999999999\tDrama",  # 6
        f"tt0000106\tmovie\tRuntime\tR\t0\t2000\t\\N\t{huge}\tDrama".encode(),  # 7
        f"tt0000107\tmovie\tYear\tY\t0\t{huge}\t\\N\t90\tDrama".encode(),  # 8
        b"tt000000000000108\tmovie\tLong id\tL\t0\t2000\t\\N\t90\tDrama",  # 9: 15 digits
        f"tt{huge}\tmovie\tHuge id\tH\t0\t2000\t\\N\t90\tDrama".encode(),  # 10
        b"tt0000111\tmovie\tLong genre\tL\t0\t2000\t\\N\t90\tDrama," + b"X" * 33,  # 11
        b"tt0000112\tmovie\tLong runtime\tL\t0\t2000\t\\N\t1000000\tDrama",  # 12: kept
    ]
    basics = BASICS_HEADER.encode() + b"\n".join(rows) + b"\n"
    ratings = RATINGS_HEADER.encode() + b"".join(
        [
            b"tt0000101\t5.4\t222\n",  # 2
            b"tt0000102\t7.0\t99999999999\n",  # 3: more votes than an INTEGER holds
            b"tt0000112\t7.5\t1\x00\n",  # 4: NUL
            f"tt{huge}\t5.0\t1\n".encode(),  # 5
            b"tt0000112\t-1.0\t5\n",  # 6
            b"tt0000112\tinf\t5\n",  # 7
            b"tt0000112\t1e1\t5\n",  # 8
            b"tt0000112\t 7.5\t5\n",  # 9
            f"tt0000112\t7.5\t{huge}\n".encode(),  # 10
            b"tt0000112\t10.0\t2147483647\n",  # 11: the largest allowed
        ]
    )
    cfg = write_config(tmp_path, store.url)
    folder = write_files(tmp_path / "dl", basics, ratings)
    code, summary, err = cli(capsys, cfg, "import", str(folder), "--json")
    assert code == 0, err
    assert "internal error" not in err
    assert summary["basics_rows"] == 11 and summary["basics_kept"] == 3
    assert summary["basics_rows_cleaned"] == 2
    assert summary["ratings_rows"] == 10 and summary["ratings_kept"] == 2
    assert summary["malformed_rows"] == 8 + 8
    titles = by_id(store)
    assert sorted(titles) == ["tt0000101", "tt0000102", "tt0000112"]
    assert titles["tt0000101"][2:4] == ("Miss Jerry", "Miss Jerry[0m")
    assert titles["tt0000101"][AVERAGE : VOTES + 1] == (5.4, 222)
    assert titles["tt0000102"][2:4] == ("NextLine", "café")
    assert titles["tt0000102"][AVERAGE] is None
    assert titles["tt0000112"][6:9] == (1_000_000, 10.0, 2147483647)
    genres = snapshot(store)[1]
    assert ("tt0000102", "Drama") in genres
    samples = "\n".join(summary["malformed_samples"])
    assert "title.basics.tsv.gz:4: startYear '99999' is not between 1800 and 2200" in samples
    assert "title.basics.tsv.gz:5: startYear '0' is not between 1800 and 2200" in samples


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_byte_order_mark_on_both_files_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gz: bool
) -> None:
    results = []
    for name, bom in (("without", b""), ("with", b"\xef\xbb\xbf")):
        url = f"sqlite:///{tmp_path / name / 'store.db'}"
        folder = write_files(
            tmp_path / name, bom + BASICS.read_bytes(), bom + RATINGS.read_bytes(), gz=gz
        )
        cfg = write_config(tmp_path / name, url)
        code, summary, err = cli(capsys, cfg, "import", str(folder), "--json")
        assert code == 0, err
        assert summary["titles_new"] == 14 and summary["titles_with_rating"] == 10
        assert summary["malformed_rows"] == 5
        with Store(url) as st:
            results.append(snapshot(st, stamps=False))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("basics", "note"),
    [
        (BASICS_HEADER, "title.basics.tsv.gz has no data rows: no title was changed"),
        (
            BASICS_HEADER + "tt0000001\tshort\tCarmencita\tCarmencita\t0\t1894\t\\N\t1\tShort\n",
            "title.basics.tsv.gz has no usable rows of the title types movie, tvMovie "
            "(1 data row, 0 malformed): no title was changed",
        ),
    ],
    ids=["header-only", "no-rows-of-the-title-types"],
)
def test_basics_file_without_usable_rows_changes_nothing(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    basics: str,
    note: str,
) -> None:
    cfg = imported(store, tmp_path, capsys)
    before = snapshot(store)
    changed_ratings = RATINGS.read_text(encoding="utf-8").replace("5.4\t222", "5.5\t230")
    folder = gz_dir(tmp_path / "dl", basics=basics, ratings=changed_ratings)
    code, summary, err = cli(capsys, cfg, "import", str(folder), "--json")
    assert code == 0, err
    assert summary["basics_kept"] == 0
    assert (summary["titles_new"], summary["titles_updated"]) == (0, 0)
    assert summary["notes"] == [note]
    assert snapshot(store) == before


@pytest.mark.parametrize("which", ["basics", "ratings"])
def test_empty_file_is_refused_in_one_line(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    cfg = imported(sqlite_store, tmp_path, capsys)
    before = snapshot(sqlite_store)
    runs = sqlite_store.runs.last("imdb import")
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    args = ["--basics", str(empty if which == "basics" else BASICS)]
    if which == "ratings":
        args += ["--ratings", str(empty)]
    code, _, err = cli(capsys, cfg, "import", *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("reelset: error: ")
    assert f"not an IMDb title.{which} file: the file is empty" in err
    assert snapshot(sqlite_store) == before
    assert sqlite_store.runs.last("imdb import") == runs  # refused before a run started


@pytest.mark.parametrize("enabled", [True, False])
def test_import_runs_without_cyclic_gc_and_restores_the_collector(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    import gc

    from reelset.imdb import importer

    seen: list[bool] = []
    upsert = importer.upsert_imdb_titles

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return upsert(*args, **kwargs)

    monkeypatch.setattr(importer, "upsert_imdb_titles", watched)
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        importer.import_tsv(sqlite_store, BASICS, RATINGS, title_types=["movie"], batch_size=2)
        assert seen and not any(seen)
        assert gc.isenabled() is enabled
        # An import that fails inside its run (a truncated gzip) restores it too.
        truncated = tmp_path / "title.basics.tsv.gz"
        truncated.write_bytes(gzip.compress(BASICS.read_bytes())[:-30])
        with pytest.raises(ImdbFileError, match="truncated"):
            importer.import_tsv(sqlite_store, truncated, None, title_types=["movie"], batch_size=2)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
