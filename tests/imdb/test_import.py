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
        view = conn.execute(text("SELECT * FROM movie_imdb ORDER BY tmdb_id")).all()
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

    real = importer.iter_basics

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        for n, row in enumerate(real(*args, **kwargs)):
            if n == 9:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(importer, "iter_basics", interrupted)
    cfg = write_config(tmp_path, sqlite_store.url, batch_size=4)
    code, _, err = cli(capsys, cfg, "import", "--basics", str(BASICS))
    assert code == 130 and "interrupted" in err.splitlines()[-1]
    run = sqlite_store.runs.last("imdb import")
    assert run is not None and run["status"] == "interrupted"
    assert sqlite_store.locks.holder("imdb") is None
    # Two whole batches of 4 were handed over before Ctrl-C; each is its own transaction.
    assert len(snapshot(sqlite_store)[0]) in (0, 4, 8)
    monkeypatch.setattr(importer, "iter_basics", real)
    assert cli(capsys, cfg, "import", "--basics", str(BASICS))[0] == 0
    assert len(snapshot(sqlite_store)[0]) == 14
