"""``reelset imdb import --from-cinemagoer``: a real cinemagoer s3 database, built here.

The database is made by cinemagoer's own s32cinemagoer machinery
(``imdb.parser.s3.importer.import_dir``, what ``s32cinemagoer.py`` runs) from the small
fixture TSVs, and read through ``Cinemagoer('s3', uri=...)``. The titles it yields must
equal what the TSV import stores for the same ids.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from imdb.parser.s3.importer import import_dir
from sqlalchemy import select

from reelset.cli import main
from reelset.imdb.cinemagoer import imdb_genre, title_from_movie
from reelset.storage import MovieRecord, Store
from reelset.storage import schema as s

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imdb"
IDS = {
    "tt0000009": "movie with crew, principals and akas",
    "tt0014447": "original title differs",
    "tt0030298": "tvMovie",
    "tt9000001": "quotes, Sci-Fi",
    "tt9000011": "non-ASCII, tvMovie",
    "tt0007237": "no runtime, no genres, no rating",
    "tt9000010": "no year either",
    "tt0000001": "a short: other title type",
    "tt9000002": "a tvEpisode: other title type",
    "tt7777777": "not in the database",
    "nm0000001": "not a title id",
}


def dataset_dir(folder: Path, *, complete: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sources = [FIXTURES / "title.basics.tsv", FIXTURES / "title.ratings.tsv"]
    if complete:
        sources += sorted((FIXTURES / "cinemagoer").glob("*.tsv"))
    for src in sources:
        (folder / (src.name + ".gz")).write_bytes(gzip.compress(src.read_bytes()))
    return folder


@pytest.fixture(scope="module")
def cinemagoer_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite cinemagoer database built from all fixture files."""
    tmp = tmp_path_factory.mktemp("cinemagoer")
    uri = f"sqlite:///{tmp / 'imdb.db'}"
    import_dir(str(dataset_dir(tmp / "tsv")), uri)
    return uri


def write_config(tmp_path: Path, store_url: str, cinemagoer_uri: str) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[storage]\nurl = "{store_url}"\n[imdb]\ncinemagoer_uri = "{cinemagoer_uri}"\n'
        "batch_size = 3\n"
    )
    return cfg


def movies() -> list[MovieRecord]:
    return [
        MovieRecord(tmdb_id=i, title=why, imdb_id=imdb_id)
        for i, (imdb_id, why) in enumerate(IDS.items(), start=1)
    ]


def titles(store: Store) -> dict[str, tuple]:
    t, g = s.imdb_titles, s.imdb_title_genres
    cols = [c for c in t.c if c.name != "imported_at"]
    with store.read() as conn:
        rows = {r[0]: tuple(r) for r in conn.execute(select(*cols))}
        genres: dict[str, list[str]] = {}
        for imdb_id, genre in conn.execute(select(g).order_by(g.c.genre)):
            genres.setdefault(imdb_id, []).append(genre)
    return {i: (*row, genres.get(i, [])) for i, row in rows.items()}


def run_cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg), "-q", "imdb", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cinemagoer_import_equals_tsv_import(
    store: Store, cinemagoer_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.movies.upsert(movies())
    cfg = write_config(tmp_path, store.url, cinemagoer_uri)
    code, out, err = run_cli(capsys, cfg, "--from-cinemagoer", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["store_imdb_ids"] == 11 and summary["invalid_ids"] == 1
    assert summary["not_in_cinemagoer"] == 1 and summary["other_title_types"] == 2
    assert summary["titles_new"] == 7 and summary["titles_with_rating"] == 5
    assert summary["coverage"]["matched"] == 7
    run = store.runs.last("imdb import")
    assert run is not None and run["status"] == "succeeded"

    # The same ids through the TSV import, into another store: identical rows.
    reference_url = f"sqlite:///{tmp_path / 'tsv' / 'store.db'}"
    (tmp_path / "tsv").mkdir()
    ref_cfg = write_config(tmp_path / "tsv", reference_url, "")
    assert run_cli(capsys, ref_cfg, str(dataset_dir(tmp_path / "dl", complete=False)))[0] == 0
    with Store(reference_url) as reference:
        expected = {i: row for i, row in titles(reference).items() if i in IDS}
    got = titles(store)
    assert got == expected
    assert got["tt9000001"][-1] == ["Comedy", "Sci-Fi"]  # cinemagoer lower-cases genres
    assert got["tt9000011"][2:4] == ("東京 Story", "東京物語")

    again = json.loads(run_cli(capsys, cfg, "--from-cinemagoer", "--json")[1])
    assert (again["titles_new"], again["titles_updated"], again["titles_unchanged"]) == (0, 0, 7)


@pytest.mark.postgres
def test_cinemagoer_database_on_postgresql(
    pg_url: str, sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cinemagoer's SQLAlchemy path (any non-SQLite URI) works with SQLAlchemy 2."""
    import_dir(str(dataset_dir(tmp_path / "tsv")), pg_url)
    sqlite_store.movies.upsert(movies())
    cfg = write_config(tmp_path, sqlite_store.url, pg_url)
    code, out, err = run_cli(capsys, cfg, "--from-cinemagoer", "--json")
    assert code == 0, err
    assert json.loads(out)["titles_new"] == 7
    assert titles(sqlite_store)["tt0000009"][1:] == (
        "movie",
        "Miss Jerry",
        "Miss Jerry",
        False,
        1894,
        45,
        5.4,
        222,
        ["Romance"],
    )


def test_incomplete_database_is_refused_in_one_line(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'partial.db'}"
    import_dir(str(dataset_dir(tmp_path / "tsv", complete=False)), uri)  # basics + ratings only
    sqlite_store.movies.upsert(movies())
    cfg = write_config(tmp_path, sqlite_store.url, uri)
    code, _, err = run_cli(capsys, cfg, "--from-cinemagoer")
    assert code == 2 and "Traceback" not in err and "CRITICAL" not in err
    assert err.count("\n") == 1 and "no such table: title_crew" in err
    assert titles(sqlite_store) == {}


def test_missing_database_or_uri(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope" / "imdb.db"
    cfg = write_config(tmp_path, sqlite_store.url, f"sqlite:///{missing}")
    code, _, err = run_cli(capsys, cfg, "--from-cinemagoer")
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    assert not missing.exists()  # not created as an empty database
    cfg = write_config(tmp_path, sqlite_store.url, "")
    code, _, err = run_cli(capsys, cfg, "--from-cinemagoer")
    assert code == 2 and "set [imdb] cinemagoer_uri" in err


def test_genre_spelling_and_unknown_movie() -> None:
    assert [imdb_genre(g) for g in ("sci-fi", "film-noir", "reality-tv", "talk-show")] == [
        "Sci-Fi",
        "Film-Noir",
        "Reality-TV",
        "Talk-Show",
    ]
    assert imdb_genre("space-opera") == "Space-Opera"
    assert title_from_movie("tt1", {"genres": [""]}) is None
    episode = title_from_movie("tt2", {"kind": "episode", "year": "2001-2003", "adult": 0})
    assert episode is not None
    assert (episode.title_type, episode.start_year, episode.is_adult) == ("tvEpisode", 2001, False)


def test_damaged_values_are_dropped_not_stored() -> None:
    """A damaged database cannot give values the TSV import would refuse."""
    movie = {
        "kind": "movie",
        "title": "NUL\x00 and ESC\x1b[0m",
        "original title": "\x00",
        "year": "99999",
        "runtimes": ["9" * 5000],
        "rating": float("nan"),
        "votes": 2**70,
        "genres": ["drama", "x" * 33, "sci-fi\x00"],
        "adult": 0,
    }
    title = title_from_movie("tt1", movie)
    assert title is not None
    assert (title.primary_title, title.original_title) == ("NUL and ESC[0m", None)
    assert (title.start_year, title.runtime_minutes) == (None, None)
    assert (title.average_rating, title.num_votes) == (None, None)
    assert title.genres == ("Drama", "Sci-Fi")
    more = title_from_movie(
        "tt2", {"kind": "movie", "year": 2200, "runtimes": [90], "rating": 10**400, "votes": -1}
    )
    assert more is not None
    assert (more.start_year, more.runtime_minutes, more.average_rating, more.num_votes) == (
        2200,
        90,
        None,
        None,
    )
    rated = title_from_movie("tt3", {"kind": "movie", "rating": 10, "votes": "2147483647"})
    assert rated is not None and (rated.average_rating, rated.num_votes) == (10.0, 2147483647)
    for year in ("20001", "1799", "2201-2203"):
        dated = title_from_movie("tt6", {"kind": "movie", "year": year, "rating": 11.0})
        assert dated is not None and (dated.start_year, dated.average_rating) == (None, None)
    assert title_from_movie("tt4", {"kind": "x" * 33}) is None
    assert title_from_movie("tt5", {"kind": "\x00"}) is None
