"""One store for the explore tests: scraped from the sandbox (with broken posters and failing
movies), IMDb data imported from TSV files made for its movies, one movie gone."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from reelset.cli import main as cli_main
from reelset.config import load_settings
from reelset.sandbox import Catalog, FaultSpec, Sandbox, poster_fault_catalog
from tests.cli_env import FAST_TMDB, write_config
from tests.explore.expected import Facts

SCRAPED = 60
"""Movies the scrape discovers (popular pages), the failing ones included."""


@dataclass(frozen=True)
class Scraped:
    """The store's file, a config for it, and what the tests know about it."""

    config: Path
    db_path: Path
    gone_id: int
    failing_ids: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def facts(self) -> Facts:
        return Facts.load(self.url)


def _sql(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _imdb_files(url: str, folder: Path) -> Path:
    """title.basics/ratings for the store's movies: most agree with TMDB, some not at all."""
    to_imdb = {"Science Fiction": "Sci-Fi"}
    movies = _sql(url, """
        SELECT m.tmdb_id, m.imdb_id, m.title, m.year, g.name
        FROM movies m LEFT JOIN movie_genres mg ON mg.tmdb_id = m.tmdb_id
        LEFT JOIN genres g ON g.genre_id = mg.genre_id
        WHERE m.imdb_id IS NOT NULL ORDER BY m.tmdb_id, g.name""")
    genres: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for tmdb_id, imdb_id, _, _, name in movies:
        assert isinstance(imdb_id, str) and isinstance(tmdb_id, int)
        seen.setdefault(imdb_id, tmdb_id)
        listed = genres.setdefault(imdb_id, [])
        if name is not None and name != "TV Movie":
            listed.append(to_imdb.get(str(name), str(name)))
    basics = ["tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear"
              "\truntimeMinutes\tgenres"]
    ratings = ["tconst\taverageRating\tnumVotes"]
    for imdb_id, tmdb_id in seen.items():
        if tmdb_id % 7 == 0:
            continue  # not in IMDb's dump
        names = genres[imdb_id]
        if tmdb_id % 3 == 0 and names:
            names = names[1:]  # IMDb lists a genre fewer
        if tmdb_id % 4 == 0:
            names = sorted({*names, "Drama", "Biography"})  # one mapped extra, one unmapped
        if tmdb_id % 11 == 0:
            names = ["Biography"]  # only an IMDb genre without a TMDB counterpart
        basics.append(f"{imdb_id}\tmovie\tTitle {tmdb_id}\tTitle {tmdb_id}\t0\t2000\t\\N\t90\t"
                      f"{','.join(names[:3]) or chr(92) + 'N'}")
        ratings.append(f"{imdb_id}\t{5 + tmdb_id % 5}.5\t{100 + tmdb_id}")
    folder.mkdir()
    (folder / "title.basics.tsv.gz").write_bytes(gzip.compress("\n".join(basics).encode()))
    (folder / "title.ratings.tsv.gz").write_bytes(gzip.compress("\n".join(ratings).encode()))
    return folder


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """The store (shared by a module's tests, which only read it)."""
    tmp = tmp_path_factory.mktemp("explore")
    faulty = poster_fault_catalog(Catalog.bundled(), per_kind=1)
    popular = [int(r["id"]) for r in faulty.catalog.popular(1, per_page=SCRAPED).records]
    failing = tuple(i for i in popular if i not in faulty.faulty_ids)[3:5]
    with Sandbox(catalog=faulty.catalog) as sb, pytest.MonkeyPatch.context() as env:
        sb.faults = FaultSpec(always_fail_ids={i: "500" for i in failing})
        db_path = tmp / "store" / "reelset.db"
        config = write_config(tmp / "config.toml", {
            "storage": {"url": f"sqlite:///{db_path}", "posters_dir": str(tmp / "posters")},
            "tmdb": {"api_base_url": sb.api_base_url, "exports_base_url": sb.exports_base_url,
                     **FAST_TMDB, "max_retries": 0},
            "posters": {"enabled": True, "max_workers": 4, "rate_limit": "100000/1s",
                        "max_retries": 0},
        })
        env.setenv("TMDB_API_KEY", sb.api_key)
        args = ["--config", str(config), "-q"]
        code = cli_main([*args, "scrape", "--strategy", "popular", "--limit", str(SCRAPED)])
        assert code == 1  # the failing movies
        url = f"sqlite:///{db_path}"
        assert cli_main([*args, "imdb", "import", str(_imdb_files(url, tmp / "imdb"))]) == 0
        # A movie TMDB no longer has: every query leaves it out.
        gone = _sql(url, """
            SELECT m.tmdb_id FROM movies m JOIN posters p ON p.tmdb_id = m.tmdb_id
            WHERE p.status = 'ok' AND m.year IS NOT NULL
              AND EXISTS (SELECT 1 FROM movie_genres mg WHERE mg.tmdb_id = m.tmdb_id)
            ORDER BY m.tmdb_id LIMIT 1""")[0][0]
        assert isinstance(gone, int)
        _sql(url, f"UPDATE movies SET status = 'gone' WHERE tmdb_id = {gone}")
    yield Scraped(config=config, db_path=db_path, gone_id=gone, failing_ids=failing)


@pytest.fixture(scope="module")
def seed(scraped: Scraped) -> int:
    """The builder's seed in the store's config (the heatmap's co-clustering)."""
    return load_settings(scraped.config).build.seed
