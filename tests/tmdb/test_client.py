"""parse_movie on odd bodies, and the TMDB client's endpoints against the sandbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import tmdbsimple
from pydantic import SecretStr

from reelset.config import Credentials, Settings, settings_from_dict
from reelset.errors import ConfigError
from reelset.sandbox import Catalog, Sandbox, synthetic_movie
from reelset.tmdb.client import TmdbClient, parse_movie
from reelset.transport.errors import NotFoundError


def test_parse_movie_full_body() -> None:
    body = synthetic_movie(7, 11, append_to_response=("keywords", "external_ids"))
    record = parse_movie(body)
    assert record.tmdb_id == body["id"]
    assert record.title == body["title"]
    assert record.genre_ids == tuple(g["id"] for g in body["genres"])
    assert record.keywords == tuple(k["name"] for k in body["keywords"]["keywords"])
    assert record.imdb_id == body["imdb_id"]
    assert record.poster_path == body["poster_path"]


def test_parse_movie_odd_fields() -> None:
    record = parse_movie(
        {
            "id": 5,
            "title": "",
            "original_title": "Fallback\x00 Title",
            "release_date": "",
            "runtime": None,
            "popularity": "NaN",
            "vote_average": "7.5",
            "vote_count": -3,
            "adult": "yes",
            "imdb_id": "",
            "external_ids": {"imdb_id": "tt0111161"},
            "genres": [{"id": 18, "name": "Drama"}, {"id": 18}, {"name": "no id"}, "junk"],
            "overview": "   ",
            "poster_path": None,
        }
    )
    assert record.title == "Fallback Title"
    assert record.release_date is None and record.year is None
    assert record.runtime is None
    assert record.popularity is None and record.vote_average == 7.5
    assert record.vote_count is None
    assert record.adult is False
    assert record.imdb_id == "tt0111161"
    assert record.genre_ids == (18,)
    assert record.overview is None
    assert record.keywords is None


def test_parse_movie_minimal_and_bad_bodies() -> None:
    assert parse_movie({"id": 9}).title == ""
    assert parse_movie({"id": 9, "release_date": "1999-13-45"}).release_date is None
    assert parse_movie({"id": 9, "release_date": "2001-02-03"}).year == 2001
    assert parse_movie({"id": 9, "runtime": 0}).runtime is None
    assert parse_movie({"id": 9, "imdb_id": "nm123"}).imdb_id is None
    assert parse_movie({"id": 9, "genre_ids": [28, 12]}).genre_ids == (28, 12)
    for bad in ({}, {"id": "x"}, {"id": 0}, [1, 2]):
        with pytest.raises(ValueError):
            parse_movie(bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(catalog=Catalog.bundled()) as sb:
        yield sb


def settings_for(sb: Sandbox, tmp_path: Path, **tmdb: object) -> Settings:
    return settings_from_dict(
        {
            "tmdb": {
                "api_base_url": sb.api_base_url,
                "exports_base_url": sb.exports_base_url,
                "rate_limit": "1000/1s",
                **tmdb,
            }
        },
        base_dir=tmp_path,
    )


def creds(sb: Sandbox) -> Credentials:
    return Credentials(api_key=SecretStr(sb.api_key))


def test_client_endpoints(sandbox: Sandbox, tmp_path: Path) -> None:
    with TmdbClient(settings_for(sandbox, tmp_path, append_keywords=True), creds(sandbox)) as c:
        movie_id = sandbox.catalog.ids()[0]
        body = c.movie(movie_id)
        assert body["id"] == movie_id and "external_ids" in body and "keywords" in body
        assert c.movie_record(movie_id).tmdb_id == movie_id
        genres = c.genres()
        assert {g.origin for g in genres} == {"tmdb"} and len(genres) == 19
        assert c.image_base_url() == sandbox.image_base_url
        assert c.image_base_url() == sandbox.image_base_url  # cached
        assert sandbox.counters.requests_by_endpoint.get("/3/configuration") == 1
        record = sandbox.catalog.record(movie_id)
        assert record is not None and record["imdb_id"]
        assert movie_id in c.find_imdb(record["imdb_id"])
        assert c.find_imdb("tt0000000") == []
        assert len(c.popular(1)["results"]) == 20
        page = c.discover(release_from=dt.date(1900, 1, 1), release_to=dt.date(2100, 1, 1))
        assert page["total_results"] > 0
        assert c.changes(dt.date.today() - dt.timedelta(days=3), dt.date.today())["page"] == 1
        with pytest.raises(NotFoundError):
            c.movie(999_999_999)
        assert c.counters["requests"] >= 10
    # tmdbsimple's module globals were never touched.
    assert tmdbsimple.REQUESTS_SESSION is None
    assert tmdbsimple.API_KEY in (None, "")


def test_image_base_url_setting_wins(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = settings_for(sandbox, tmp_path, image_base_url="https://img.example/t/p")
    with TmdbClient(settings, creds(sandbox)) as c:
        assert c.image_base_url() == "https://img.example/t/p/"


def test_two_clients_in_one_process_do_not_share_keys(sandbox: Sandbox, tmp_path: Path) -> None:
    good = TmdbClient(settings_for(sandbox, tmp_path), creds(sandbox))
    bad = TmdbClient(
        settings_for(sandbox, tmp_path), Credentials(api_key=SecretStr("wrong-key-xyz"))
    )
    with good, bad:
        assert good.genres()
        with pytest.raises(Exception, match="401"):
            bad.genres()
        assert good.genres()


def test_missing_credentials_is_a_config_error(tmp_path: Path, sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError, match="TMDB_API_KEY"):
        TmdbClient(settings_for(sandbox, tmp_path), Credentials())
