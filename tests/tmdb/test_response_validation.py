"""A TMDB answer the scraper cannot use never overwrites a stored movie (CLI, real sockets).

A movie is scraped from the sandbox first; then ``reelset scrape --strategy ids
--refresh`` runs against a hostile TMDB look-alike that answers ``/movie/{id}`` with an
incomplete or mistyped body. The run must retry, record the failure, end ``partial``
(exit 1) and leave the store exactly as it was.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelset.cli import main as cli_main
from reelset.sandbox import Catalog
from tests.cli_env import CliResult, Env, write_config
from tests.transport.scripted_server import Reply, Routes, json_reply, routed_server

RunCli = Callable[..., CliResult]
MakeEnv = Callable[..., Env]


@pytest.fixture(scope="module")
def movie_id() -> int:
    catalog = Catalog.bundled()
    wanted = ("genres", "imdb_id", "overview", "release_date")
    for tmdb_id in catalog.ids():
        record = catalog.record(tmdb_id) or {}
        if not record.get("adult") and all(record.get(name) for name in wanted):
            return tmdb_id
    raise AssertionError("the bundled catalog has no complete movie")


@pytest.fixture
def scraped(make_env: MakeEnv, run_cli: RunCli, movie_id: int, tmp_path: Path) -> Env:
    """A store holding ``movie_id``, fully scraped from the sandbox."""
    env = make_env()
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{movie_id}\n", encoding="utf-8")
    result = run_cli(env, "scrape", "--strategy", "ids", "--from", str(ids))
    assert result.code == 0, result.err
    title, overview, imdb_id, date = env.rows(
        f"SELECT title, overview, imdb_id, release_date FROM movies WHERE tmdb_id = {movie_id}"
    )[0]
    assert title and overview and imdb_id and date
    assert env.rows(f"SELECT count(*) FROM movie_genres WHERE tmdb_id = {movie_id}")[0][0] > 0
    return env


@pytest.fixture
def hostile_tmdb(scraped: Env, movie_id: int) -> Iterator[Callable[[Reply], tuple[Path, Routes]]]:
    """``serve(reply)``: a config pointing at a TMDB that answers /movie/{id} with ``reply``."""
    genres = {"genres": [{"id": 18, "name": "Drama"}, {"id": 28, "name": "Action"}]}
    routes: dict[str, Reply] = {"/3/genre/movie/list": json_reply(genres)}
    with routed_server(routes) as server:

        def serve(reply: Reply) -> tuple[Path, Routes]:
            routes[f"/3/movie/{movie_id}"] = reply
            server.routes.update(routes)
            sections: dict[str, dict[str, Any]] = tomllib.loads(
                scraped.config.read_text(encoding="utf-8")
            )
            sections["tmdb"]["api_base_url"] = f"{server.url}/3"
            return write_config(scraped.tmp / "hostile.toml", sections), server

        yield serve


def _movie(movie_id: int, **changes: Any) -> dict[str, Any]:
    body = {
        "id": movie_id,
        "title": "Replaced",
        "overview": "Replaced.",
        "genres": [{"id": 18, "name": "Drama"}],
        "release_date": "2001-01-01",
        "imdb_id": "tt0000001",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


BAD_BODIES: dict[str, Callable[[int], Reply]] = {
    "only-id": lambda i: json_reply({"id": i}),
    "no-title": lambda i: json_reply(_movie(i, title=...)),
    "title-a-list": lambda i: json_reply(_movie(i, title=["not", "a", "string"])),
    "no-overview": lambda i: json_reply(_movie(i, overview=...)),
    "no-genres": lambda i: json_reply(_movie(i, genres=...)),
    "genres-a-string": lambda i: json_reply(_movie(i, genres="Drama")),
    "genre-id-2-70": lambda i: json_reply(_movie(i, genres=[{"id": 2**70, "name": "Huge"}])),
    "no-release-date": lambda i: json_reply(_movie(i, release_date=...)),
    "no-imdb-id": lambda i: json_reply(_movie(i, imdb_id=...)),
    "another-movie": lambda i: json_reply(_movie(i + 1)),
    "a-json-list": lambda i: json_reply([1, 2, 3]),
    "cut-json": lambda i: Reply(body=b'{"id": 3', headers={"Content-Type": "application/json"}),
    "html": lambda i: Reply(body=b"<html>busy</html>", headers={"Content-Type": "text/html"}),
    "deep-json": lambda i: Reply(body=b"[" * 100_000),
    "bad-redirect": lambda i: Reply(302, b"", {"Location": "http://[::1"}),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_movie_body_never_overwrites_the_stored_movie(
    case: str,
    scraped: Env,
    hostile_tmdb: Callable[[Reply], tuple[Path, Routes]],
    movie_id: int,
    run_cli: RunCli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = scraped.snapshot()
    config, server = hostile_tmdb(BAD_BODIES[case](movie_id))
    ids = scraped.tmp / "ids.txt"
    capsys.readouterr()
    args = ["scrape", "--strategy", "ids", "--from", str(ids), "--refresh", "--no-posters"]
    code = cli_main(["--config", str(config), *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    summary = json.loads(out)
    assert summary["status"] == "partial"
    assert summary["movies"]["failed"] == 1 and summary["movies"]["fetched"] == 0
    assert scraped.snapshot() == before
    run = scraped.last_run()
    assert run["status"] == "partial"
    [(error,)] = scraped.rows(
        f"SELECT error FROM fetch_failures WHERE kind = 'movie' AND key = '{movie_id}'"
    )
    assert "internal error" not in err and "Traceback" not in err
    if case == "bad-redirect":
        assert "redirected to an invalid URL" in error
        assert server.count(f"/3/movie/{movie_id}") == 1  # not retried
    else:
        assert error.startswith(("unusable response body", "unparsable response body"))
        assert server.count(f"/3/movie/{movie_id}") == 5  # retried (max_retries 4)
