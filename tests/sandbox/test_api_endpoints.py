"""Each API endpoint: TMDB's shapes, status codes and error bodies."""

from __future__ import annotations

from datetime import date

import pytest

from reelset.sandbox import MOVIE_GENRES, Catalog, movie_record
from reelset.sandbox.movie_shapes import DETAIL_FIELDS, LIST_ITEM_FIELDS

from .conftest import Api, MakeApi

PAGE_ERROR = {
    "status_code": 22,
    "status_message": (
        "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer."
    ),
    "success": False,
}
NOT_FOUND = {
    "status_code": 34,
    "status_message": "The resource you requested could not be found.",
    "success": False,
}


def test_configuration_points_images_at_the_sandbox(api: Api) -> None:
    body = api.json("/configuration")
    images = body["images"]
    assert images["base_url"] == images["secure_base_url"] == api.sandbox.image_base_url
    assert images["poster_sizes"] == ["w92", "w154", "w185", "w342", "w500", "w780", "original"]
    assert "original" in images["backdrop_sizes"] and "change_keys" in body
    assert api.sandbox.image_base_url.endswith("/t/p/")


def test_genre_list_is_tmdbs_19_without_foreign(api: Api) -> None:
    genres = api.json("/genre/movie/list")["genres"]
    assert len(genres) == 19
    assert {g["id"]: g["name"] for g in genres}[878] == "Science Fiction"
    assert [(g["id"], g["name"]) for g in genres] == list(MOVIE_GENRES)
    assert 10769 not in {g["id"] for g in genres}


def test_popular_pages_sorted_and_shaped(api: Api) -> None:
    first = api.json("/movie/popular")
    second = api.json("/movie/popular", page=2)
    assert first["page"] == 1 and second["page"] == 2
    assert first["total_results"] == 300 and first["total_pages"] == 15
    assert len(first["results"]) == 20
    pops = [m["popularity"] for m in first["results"] + second["results"]]
    assert pops == sorted(pops, reverse=True)
    assert list(first["results"][0]) == list(LIST_ITEM_FIELDS)
    last = api.json("/movie/popular", page=15)
    assert len(last["results"]) == 20
    assert api.json("/movie/popular", page=16)["results"] == []


@pytest.mark.parametrize("page", ["0", "501", "abc", "-1", "1.5"])
def test_bad_pages_are_refused_with_code_22(api: Api, page: str) -> None:
    for path in ("/movie/popular", "/discover/movie", "/movie/changes"):
        response = api.get(path, page=page)
        assert response.status_code == 400
        assert response.json() == PAGE_ERROR


def test_page_500_is_the_last_allowed(make_api: MakeApi) -> None:
    api = make_api(Catalog.synthetic(20_000, seed=1))
    body = api.json("/movie/popular", page=500)
    assert body["page"] == 500 and len(body["results"]) == 20
    assert body["total_pages"] > 500  # the true count, but pages past 500 are refused
    assert api.get("/movie/popular", page=501).status_code == 400


def test_movie_details_shape_and_appends(api: Api) -> None:
    body = api.json("/movie/9588", append_to_response="external_ids,keywords")
    assert list(body)[: len(DETAIL_FIELDS)] == list(DETAIL_FIELDS)
    assert body["id"] == 9588 and body["imdb_id"] == "tt0102744"
    assert body["external_ids"]["imdb_id"] == "tt0102744" and body["external_ids"]["id"] == 9588
    assert isinstance(body["keywords"]["keywords"], list)
    assert all(set(k) == {"id", "name"} for k in body["keywords"]["keywords"])
    assert all(set(g) == {"id", "name"} for g in body["genres"])
    assert body["poster_path"].startswith("/") and body["poster_path"].endswith(".jpg")
    plain = api.json("/movie/9588")
    assert "external_ids" not in plain and "keywords" not in plain
    assert api.json("/movie/9588/external_ids")["imdb_id"] == "tt0102744"
    assert api.json("/movie/9588/keywords")["id"] == 9588


@pytest.mark.parametrize("movie_id", ["1", "abc", "12abc", "99999999999999"])
def test_unknown_or_non_numeric_movie_is_404_code_34(api: Api, movie_id: str) -> None:
    response = api.get(f"/movie/{movie_id}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_unknown_endpoint_is_404_code_34(api: Api) -> None:
    response = api.get("/tv/on_the_air")
    assert response.status_code == 404 and response.json()["status_code"] == 34


def test_too_many_appends_is_refused(api: Api) -> None:
    appends = ",".join(f"x{i}" for i in range(21))
    response = api.get("/movie/9588", append_to_response=appends)
    assert response.status_code == 400 and response.json()["status_code"] == 27


def test_foreign_genre_is_in_details_and_list_items(api: Api) -> None:
    catalog = Catalog.bundled()
    foreign = [i for i in catalog.ids() if 10769 in _genre_ids(catalog, i)]
    assert len(foreign) >= 5
    details = api.json(f"/movie/{foreign[0]}")
    assert {"id": 10769, "name": "Foreign"} in details["genres"]
    languages = {api.json(f"/movie/{i}")["original_language"] for i in foreign}
    assert languages - {"en"}
    listed = [m for p in range(1, 16) for m in api.json("/movie/popular", page=p)["results"]]
    assert {m["id"] for m in listed if 10769 in m["genre_ids"]} == set(foreign)


def _genre_ids(catalog: Catalog, tmdb_id: int) -> list[int]:
    record = catalog.record(tmdb_id)
    assert record is not None
    return [g["id"] for g in record["genres"]]


def test_discover_date_window_counts_and_sorts(api: Api) -> None:
    catalog = Catalog.bundled()
    in_2000s = [
        i for i in catalog.ids()
        if "2000-01-01" <= (catalog.record(i) or {})["release_date"] <= "2009-12-31"
    ]
    body = api.json(
        "/discover/movie",
        {"primary_release_date.gte": "2000-01-01", "primary_release_date.lte": "2009-12-31",
         "sort_by": "primary_release_date.asc"},
    )
    assert body["total_results"] == len(in_2000s)
    assert body["total_pages"] == -(-len(in_2000s) // 20)
    dates = [m["release_date"] for m in body["results"]]
    assert dates == sorted(dates) and dates[0] >= "2000-01-01"
    collected = []
    for page in range(1, body["total_pages"] + 1):
        collected += [m["id"] for m in api.json(
            "/discover/movie",
            {"release_date.gte": "2000-01-01", "release_date.lte": "2009-12-31"},
            page=page,
        )["results"]]
    assert sorted(collected) == sorted(in_2000s)


def test_discover_sort_orders(api: Api) -> None:
    for sort_by, key, reverse in (
        ("popularity.desc", "popularity", True),
        ("popularity.asc", "popularity", False),
        ("vote_count.desc", "vote_count", True),
        ("primary_release_date.desc", "release_date", True),
    ):
        results = api.json("/discover/movie", sort_by=sort_by)["results"]
        values = [m[key] for m in results]
        assert values == sorted(values, reverse=reverse), sort_by
    assert api.get("/discover/movie", sort_by="nonsense.desc").status_code == 400


def test_discover_refuses_bad_dates(api: Api) -> None:
    response = api.get("/discover/movie", {"primary_release_date.gte": "01/02/2003"})
    assert response.status_code == 400 and response.json()["status_code"] == 23


def test_discover_pages_past_500_refused_but_total_is_true(make_api: MakeApi) -> None:
    api = make_api(Catalog.synthetic(30_000, seed=2))
    body = api.json("/discover/movie")
    assert body["total_results"] > 500 * 20
    assert api.get("/discover/movie", page=501).status_code == 400
    narrow = api.json(
        "/discover/movie",
        {"primary_release_date.gte": "2019-01-01", "primary_release_date.lte": "2019-01-31"},
    )
    assert 0 < narrow["total_results"] < body["total_results"]


def test_discover_adult_only_with_include_adult(make_api: MakeApi) -> None:
    adult = movie_record(5, "Adult Film", adult=True, popularity=99.0, release_date="2001-01-01")
    plain = movie_record(6, "Plain Film", popularity=1.0, release_date="2001-01-01")
    api = make_api(Catalog.from_movies([adult, plain]))
    assert [m["id"] for m in api.json("/discover/movie")["results"]] == [6]
    with_adult = api.json("/discover/movie", include_adult="true")["results"]
    assert [m["id"] for m in with_adult] == [5, 6]
    assert [m["id"] for m in api.json("/movie/popular")["results"]] == [6]


def test_find_by_imdb_id(api: Api) -> None:
    body = api.json("/find/tt0102744", external_source="imdb_id")
    assert [m["id"] for m in body["movie_results"]] == [9588]
    item = body["movie_results"][0]
    assert set(LIST_ITEM_FIELDS) <= set(item) and item["media_type"] == "movie"
    for key in ("person_results", "tv_results", "tv_episode_results", "tv_season_results"):
        assert body[key] == []
    empty = api.json("/find/tt0000000", external_source="imdb_id")
    assert empty["movie_results"] == []
    assert api.get("/find/tt0102744").status_code == 400


def test_bundled_catalog_has_a_shared_imdb_id(api: Api) -> None:
    catalog = Catalog.bundled()
    seen: dict[str, list[int]] = {}
    for tmdb_id in catalog.ids():
        record = catalog.record(tmdb_id)
        assert record is not None
        if record["imdb_id"]:
            seen.setdefault(record["imdb_id"], []).append(tmdb_id)
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    assert len(shared) == 1
    imdb_id, ids = next(iter(shared.items()))
    found = api.json(f"/find/{imdb_id}", external_source="imdb_id")["movie_results"]
    assert sorted(m["id"] for m in found) == sorted(ids)


def test_changes_window_limit(api: Api) -> None:
    ok = api.json("/movie/changes", start_date="2024-01-01", end_date="2024-01-15")
    assert set(ok) == {"results", "page", "total_pages", "total_results"}
    response = api.get("/movie/changes", start_date="2024-01-01", end_date="2024-01-16")
    assert response.status_code == 422
    assert response.json() == {
        "status_code": 20,
        "status_message": "Invalid date range: Should be a range no longer than 14 days.",
        "success": False,
    }
    bad = api.get("/movie/changes", start_date="yesterday")
    assert bad.status_code == 400 and bad.json()["status_code"] == 23


def test_update_and_remove_show_up_in_changes(make_api: MakeApi) -> None:
    api = make_api()
    catalog = api.sandbox.catalog
    catalog.update_movie(9588, title="Renamed", changed_at=date(2024, 3, 5))
    catalog.remove_movie(672, changed_at=date(2024, 3, 7))
    catalog.update_movie(1123, popularity=0.5)  # today
    window = api.json("/movie/changes", start_date="2024-03-01", end_date="2024-03-10")
    assert window["results"] == [{"id": 672, "adult": False}, {"id": 9588, "adult": False}]
    assert window["total_results"] == 2
    assert api.json("/movie/changes", start_date="2024-03-06", end_date="2024-03-10")[
        "results"] == [{"id": 672, "adult": False}]
    recent = api.json("/movie/changes")  # default: the last day
    assert [r["id"] for r in recent["results"]] == [1123]
    assert api.json("/movie/9588")["title"] == "Renamed"
    assert api.get("/movie/672").status_code == 404
    assert api.json("/find/tt0295297", external_source="imdb_id")["movie_results"] == []
    popular_ids = {m["id"] for p in range(1, 16) for m in api.json("/movie/popular", page=p)[
        "results"]}
    assert 672 not in popular_ids and len(popular_ids) == 299


def test_update_rejects_unknown_fields_and_movies() -> None:
    catalog = Catalog.bundled()
    with pytest.raises(ValueError, match="unknown movie field"):
        catalog.update_movie(9588, colour="red")
    with pytest.raises(KeyError):
        catalog.update_movie(1, title="x")


def test_add_movie_is_served_and_reported(make_api: MakeApi) -> None:
    api = make_api(Catalog.from_movies([movie_record(10, "Old")]))
    api.sandbox.catalog.add_movie(
        movie_record(11, "New", imdb_id="tt7654321", genre_ids=[18, 99999], popularity=5.0),
        changed_at=date(2024, 5, 1),
    )
    assert api.json("/movie/11")["genres"] == [
        {"id": 18, "name": "Drama"}, {"id": 99999, "name": "Unknown"}]
    assert [m["id"] for m in api.json("/movie/popular")["results"]] == [11, 10]
    assert api.json("/find/tt7654321", external_source="imdb_id")["movie_results"][0]["id"] == 11
    changes = api.json("/movie/changes", start_date="2024-04-30", end_date="2024-05-02")
    assert changes["results"] == [{"id": 11, "adult": False}]
