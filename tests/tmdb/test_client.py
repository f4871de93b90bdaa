"""parse_movie on odd bodies, and the TMDB client's endpoints against the sandbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tmdbsimple
from pydantic import SecretStr

from reelset.config import Credentials, Settings, settings_from_dict
from reelset.errors import ConfigError
from reelset.sandbox import Catalog, Sandbox, synthetic_movie
from reelset.tmdb.client import TmdbClient, parse_movie
from reelset.tmdb.responses import (
    movie_validator,
    validate_configuration,
    validate_find,
    validate_genres,
    validate_page,
)
from reelset.transport.errors import NotFoundError, TransientError
from tests.transport.scripted_server import json_reply, routed_server


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


# -- response models: what the scraper needs from each body -------------------------------

GOOD_MOVIE = {
    "id": 7,
    "title": "Seven",
    "overview": None,
    "genres": [{"id": 18, "name": "Drama"}],
    "release_date": "",
    "imdb_id": None,
}


def test_a_full_sandbox_body_and_a_minimal_complete_one_are_valid() -> None:
    body = synthetic_movie(7, 11, append_to_response=("keywords", "external_ids"))
    movie_validator(body["id"])(body)
    movie_validator(7)(GOOD_MOVIE)
    nested = {k: v for k, v in GOOD_MOVIE.items() if k != "imdb_id"}
    movie_validator(7)({**nested, "external_ids": {"imdb_id": "tt0000007"}})
    # Odd optional fields stay parse_movie's business.
    movie_validator(7)({**GOOD_MOVIE, "runtime": None, "release_date": "1999-13-45"})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"id": 7}, "title: Field required"),
        ({**GOOD_MOVIE, "id": 8}, "id is 8, not the 7 asked for"),
        ({**GOOD_MOVIE, "id": "7"}, "id: Input should be a valid integer"),
        ({**GOOD_MOVIE, "id": True}, "id: Input should be a valid integer"),
        ({**GOOD_MOVIE, "title": ["not", "a", "string"]}, "title: Input should be a valid string"),
        ({k: v for k, v in GOOD_MOVIE.items() if k != "overview"}, "overview: Field required"),
        ({**GOOD_MOVIE, "overview": 5}, "overview: Input should be a valid string"),
        ({**GOOD_MOVIE, "genres": "Drama"}, "genres: Input should be a valid list"),
        ({**GOOD_MOVIE, "genres": [{"id": 2**70, "name": "Huge"}]}, "genres.0.id: Input should be"),
        ({**GOOD_MOVIE, "genres": [{"id": 0}]}, "genres.0.id: Input should be greater"),
        ({**GOOD_MOVIE, "genres": ["Drama"]}, "genres.0: Input should be a valid dictionary"),
        ({**GOOD_MOVIE, "genres": [{"name": "no id"}]}, "genres.0.id: Field required"),
        ({k: v for k, v in GOOD_MOVIE.items() if k != "release_date"}, "release_date: Field"),
        ({k: v for k, v in GOOD_MOVIE.items() if k != "imdb_id"}, "imdb_id missing"),
        ([1, 2, 3], "not a JSON object"),
        ("text", "not a JSON object"),
        (None, "not a JSON object"),
    ],
)
def test_movie_bodies_the_scraper_cannot_use_are_refused(body: object, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        movie_validator(7)(body)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("check", "body", "problem"),
    [
        (validate_page, [], "not a JSON object"),
        (validate_page, {"results": {"id": 1}}, "results: Input should be a valid list"),
        (validate_page, {"page": 1}, "results: Field required"),
        (validate_page, {"results": [{"id": 2**40}]}, "results.0.id"),
        (validate_page, {"results": ["x"]}, "results.0"),
        (validate_page, {"results": [], "total_pages": "many"}, "total_pages"),
        (validate_page, {"results": [], "total_pages": -1}, "total_pages"),
        (validate_find, {"tv_results": []}, "movie_results: Field required"),
        (validate_find, {"movie_results": [{"id": None}]}, "movie_results.0.id"),
        (validate_genres, {"genres": [{"id": 2**70, "name": "Huge"}]}, "genres.0.id"),
        (validate_genres, {"genres": [{"id": 18}]}, "genres.0.name: Field required"),
        (validate_genres, {}, "genres: Field required"),
        (validate_configuration, {"images": []}, "images: Input should be a valid dictionary"),
        (validate_configuration, {"images": {"secure_base_url": 5}}, "secure_base_url"),
        (validate_configuration, "x", "not a JSON object"),
    ],
)
def test_other_bodies_are_checked_at_the_same_boundary(
    check: Callable[[object], None], body: object, problem: str
) -> None:
    with pytest.raises(ValueError) as info:
        check(body)
    assert problem in str(info.value)


def test_valid_list_find_genre_and_configuration_bodies_pass() -> None:
    validate_page({"page": 1, "results": [{"id": 5, "adult": None}], "total_pages": 0})
    validate_find({"movie_results": [], "tv_results": [{"id": "x"}]})
    validate_genres({"genres": [{"id": 18, "name": "Drama"}]})
    validate_configuration({"images": {"secure_base_url": None}})
    validate_configuration({})


def test_parse_movie_keeps_numbers_the_store_can_hold_and_text_it_can_encode() -> None:
    record = parse_movie(
        {
            "id": 9,
            "vote_count": 10**30,
            "runtime": 2**40,
            "title": "a\ud800b",
            "genre_ids": [2**70, 5],
        }
    )
    assert record.vote_count is None and record.runtime is None
    assert record.title == "a?b"
    assert record.genre_ids == (5,)
    assert parse_movie({"id": 9, "runtime": "9" * 5000}).runtime is None


def hostile_settings(url: str, tmp_path: Path) -> Settings:
    return settings_from_dict(
        {
            "tmdb": {
                "api_base_url": url + "/3",
                "rate_limit": "1000/1s",
                "max_retries": 2,
                "backoff_initial_s": 0.01,
                "backoff_max_s": 0.02,
            }
        },
        base_dir=tmp_path,
    )


def test_an_incomplete_movie_body_is_retried_then_fails_over_real_sockets(tmp_path: Path) -> None:
    routes = {
        "/3/movie/7": json_reply({"id": 7}),
        "/3/movie/8": json_reply({**GOOD_MOVIE, "id": 8, "genres": [{"id": 2**70}]}),
        "/3/movie/popular": json_reply({"results": {"id": 1}}),
        "/3/genre/movie/list": json_reply({"genres": "Drama"}),
    }
    key = Credentials(api_key=SecretStr("hostile-test-key"))
    with routed_server(routes) as server, TmdbClient(
        hostile_settings(server.url, tmp_path), key
    ) as client:
        with pytest.raises(TransientError) as info:
            client.movie(7)
        assert info.value.reason == "invalid_body"
        assert str(info.value).startswith("unusable response body from /3/movie/7 (title: Field")
        assert server.count("/3/movie/7") == 3  # the first attempt and 2 retries
        with pytest.raises(TransientError, match=r"genres\.0\.id"):
            client.movie_record(8)
        with pytest.raises(TransientError, match="results: Input should be a valid list"):
            client.popular(1)
        with pytest.raises(TransientError, match="genres: Input should be a valid list"):
            client.genres()


def test_a_bad_body_then_a_good_one_is_a_success(tmp_path: Path) -> None:
    answers = iter([json_reply({"id": 7}), json_reply(GOOD_MOVIE)])
    key = Credentials(api_key=SecretStr("hostile-test-key"))
    with routed_server({"/3/movie/7": lambda _p, _s: next(answers)}) as server, TmdbClient(
        hostile_settings(server.url, tmp_path), key
    ) as client:
        assert client.movie_record(7).title == "Seven"
        assert client.counters["retries"] == 1
