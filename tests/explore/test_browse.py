"""``reelset browse``: Datasette over a scraped store, every canned query through its JSON API
checked against our own numbers, search, the generated metadata, and the one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reelset.cli import main as cli_main
from reelset.config import load_settings
from reelset.explore.datasette import IMDB_NOTICE, TMDB_NOTICE
from reelset.explore.queries import QUERIES
from reelset.storage import schema
from tests.explore.conftest import Scraped

DB = "reelset"  # Datasette names a database by its file's stem


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reelset(config: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reelset.cli", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs,
    )


@pytest.fixture(scope="module")
def server(scraped: Scraped) -> Iterator[str]:
    """``reelset browse`` running on a free loopback port: its base URL."""
    port = free_port()
    child = reelset(scraped.config, "browse", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert child.poll() is None, child.communicate()
        try:
            if requests.get(f"{base}/-/versions.json", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "Datasette did not start"
        time.sleep(0.2)
    yield base
    if child.poll() is None:
        child.kill()
        child.communicate()


def get(base: str, path: str, **params: str) -> Any:
    response = requests.get(f"{base}/{DB}/{path}", params={"_shape": "array", **params},
                            timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def rows(data: list[dict[str, Any]], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row[c] for c in columns) for row in data]


def test_every_canned_query_answers_our_numbers(
    server: str, scraped: Scraped
) -> None:
    facts = scraped.facts()
    assert scraped.gone_id not in facts.movies
    answers = {q.name: get(server, f"{q.name}.json") for q in QUERIES}

    assert rows(answers["movies_per_year"], "year", "movies") == facts.movies_per_year()
    assert rows(answers["genre_frequencies"], "genre_id", "genre", "movies") == (
        facts.genre_frequencies()
    )
    assert rows(answers["genre_counts_per_year"], "year", "genre", "movies") == (
        facts.genre_counts_per_year()
    )
    assert rows(answers["genre_pairs"], "genre_a", "genre_b", "movies") == facts.genre_pairs()
    assert rows(answers["poster_status"], "poster_status", "movies") == facts.poster_status()
    assert rows(answers["movies_without_usable_poster"], "tmdb_id", "poster_status") == (
        facts.movies_without_usable_poster()
    )
    assert rows(answers["rejected_posters_by_reason"], "reason", "posters",
                "example_tmdb_id") == facts.rejected_posters_by_reason()
    assert rows(answers["imdb_coverage"], "movies", "with_imdb_id", "with_imdb_title",
                "with_imdb_genres") == facts.imdb_coverage()

    expected = facts.agreement(load_settings(scraped.config))
    got = {r["genre_id"]: (r["tmdb"], r["imdb"], r["both"]) for r in answers["genre_disagreement"]}
    assert got == expected
    for row in answers["genre_disagreement"]:
        assert row["tmdb_only"] == row["tmdb"] - row["both"]
        assert row["imdb_only"] == row["imdb"] - row["both"]
        union = row["tmdb"] + row["imdb"] - row["both"]
        assert row["jaccard"] == pytest.approx(round(row["both"] / union, 6))
    jaccards = [r["jaccard"] for r in answers["genre_disagreement"]]
    assert jaccards == sorted(jaccards)  # the most disagreement first

    assert [r["run_id"] for r in answers["run_history"]] == sorted(facts.run_ids, reverse=True)
    assert [r["failure_id"] for r in answers["open_failures"]] == (
        sorted(facts.open_failure_ids, reverse=True)
    )
    failed_keys = {r["key"] for r in answers["open_failures"] if r["kind"] == "movie"}
    assert failed_keys == {str(i) for i in scraped.failing_ids}

    # The store is one that exercises every query.
    for name in ("rejected_posters_by_reason", "movies_without_usable_poster", "genre_pairs",
                 "genre_disagreement", "open_failures"):
        assert answers[name], name
    assert any(r["tmdb"] != r["both"] or r["imdb"] != r["both"]
               for r in answers["genre_disagreement"])


def _words(text: str | None) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", (text or "").lower()))


def test_search_finds_titles_and_overviews(server: str, scraped: Scraped) -> None:
    movies = get(server, "movies.json", _size="max")
    assert len(movies) >= 50
    word = "love"
    expected = sorted(m["tmdb_id"] for m in movies
                      if word in _words(m["title"]) | _words(m["overview"]))
    assert expected, "the catalog has movies about love"
    found = get(server, "movies.json", _search=word, _size="max")
    assert sorted(m["tmdb_id"] for m in found) == expected
    title_word = sorted(_words(movies[0]["title"]), key=len)[-1]
    hits = get(server, "movies.json", _search=title_word, _size="max")
    assert movies[0]["tmdb_id"] in {m["tmdb_id"] for m in hits}


def test_facets_from_the_metadata_work(server: str) -> None:
    response = requests.get(f"{server}/{DB}/movie_genre_names.json", timeout=30)
    assert response.status_code == 200
    facets = response.json()["facet_results"]
    assert {"genres_json", "year"} <= set(facets)
    assert facets["genres_json"]["type"] == "array" and facets["genres_json"]["results"]


def test_ctrl_c_stops_the_server_cleanly(scraped: Scraped) -> None:
    port = free_port()
    child = reelset(scraped.config, "browse", "--port", str(port))
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith(f"serving reelset.db with Datasette at http://127.0.0.1:{port}/")
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/-/versions.json", timeout=5)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "Traceback" not in err and "stopped" in out


def metadata(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cli_main(["--config", str(config), "browse", "--print-metadata"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_metadata_is_generated_from_the_schema(
    scraped: Scraped, capsys: pytest.CaptureFixture[str]
) -> None:
    data = metadata(scraped.config, capsys)
    assert metadata(scraped.config, capsys) == data  # deterministic
    text = json.dumps(data)
    assert TMDB_NOTICE in data["description"] and IMDB_NOTICE in data["description"]
    assert "non-commercial" in data["license"] and data["license_url"].startswith("https://")
    assert str(scraped.db_path.parent) not in text  # no local paths
    db = data["databases"][DB]
    described = schema.describe()
    for name, entry in described.items():
        table = db["tables"][name]
        assert table["description"] == entry["description"]
        assert table["columns"] == entry["columns"]
        assert all(table["columns"].values()), name  # every column has a description
    movies = db["tables"]["movies"]
    assert (movies["fts_table"], movies["fts_pk"]) == ("movies_fts", "tmdb_id")
    assert movies["searchmode"] in ("escaped", "raw")
    assert {"array": "genres_json"} in db["tables"]["movie_genre_names"]["facets"]
    assert {"array": "imdb_genres_json"} in db["tables"]["movie_imdb"]["facets"]
    assert db["queries"] == {
        q.name: {"title": q.title, "description": q.description, "sql": q.sql_for("sqlite")}
        for q in QUERIES
    }


def test_browse_refuses_a_postgresql_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[storage]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    assert cli_main(["--config", str(config), "browse"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reelset: error: reelset browse serves SQLite stores only")
    assert err.count("\n") == 1


def test_browse_without_datasette_says_how_to_install_it(scraped: Scraped) -> None:
    code = (
        "import sys; sys.modules['datasette'] = None; from reelset.cli import main; "
        f"sys.exit(main(['--config', {str(scraped.config)!r}, 'browse', '--port', "
        f"'{free_port()}']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr == (
        "reelset: error: reelset browse needs Datasette: pip install 'reelset[browse]'\n"
    )


def test_browse_on_a_port_in_use_is_a_usage_error(
    scraped: Scraped, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli_main(["--config", str(scraped.config), "browse", "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reelset: error: cannot listen on 127.0.0.1:{port}")
    assert err.count("\n") == 1

