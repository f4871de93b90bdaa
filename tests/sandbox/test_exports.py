"""Daily ID exports: file names, gzip JSON lines, which days exist, trying back."""

from __future__ import annotations

import gzip
import json
from datetime import date, timedelta

import requests

from reelset.sandbox import Catalog, export_file_name, movie_record, parse_export_name

from .conftest import MakeApi

DAY = date(2024, 5, 10)


def _fetch(exports_base_url: str, name: str) -> requests.Response:
    return requests.get(f"{exports_base_url}/{name}", timeout=30)


def test_export_lines_cover_the_catalog(make_api: MakeApi) -> None:
    api = make_api(today=DAY)
    response = _fetch(api.sandbox.exports_base_url, "movie_ids_05_10_2024.json.gz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/gzip"
    lines = gzip.decompress(response.content).decode("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == api.sandbox.catalog.ids()
    assert list(rows[0]) == ["adult", "id", "original_title", "popularity", "video"]
    assert all(r["adult"] is False and r["video"] is False for r in rows)
    first = api.json(f"/movie/{rows[0]['id']}")
    assert rows[0]["original_title"] == first["original_title"]
    assert rows[0]["popularity"] == first["popularity"]
    assert lines[0] == json.dumps(rows[0], ensure_ascii=False, separators=(",", ":"))


def test_previous_days_exist_and_older_ones_do_not(make_api: MakeApi) -> None:
    api = make_api(today=DAY, exports_available_days=3)
    base = api.sandbox.exports_base_url
    for back, status in ((0, 200), (1, 200), (2, 200), (3, 404), (-1, 404)):
        name = export_file_name(DAY - timedelta(days=back))
        assert _fetch(base, name).status_code == status, back


def test_missing_today_means_trying_yesterday(make_api: MakeApi) -> None:
    api = make_api(today=DAY, exports_missing_dates={DAY})
    sb = api.sandbox
    assert sb.export_dates() == [DAY - timedelta(days=1), DAY - timedelta(days=2)]
    missing = _fetch(sb.exports_base_url, export_file_name(DAY))
    assert missing.status_code == 404 and missing.text == "Not Found"
    assert _fetch(sb.exports_base_url, export_file_name(DAY - timedelta(days=1))).ok
    sb.set_export_missing(DAY, missing=False)
    assert _fetch(sb.exports_base_url, export_file_name(DAY)).status_code == 200
    sb.set_export_missing(DAY - timedelta(days=1))
    assert _fetch(sb.exports_base_url, export_file_name(DAY - timedelta(days=1))).status_code == 404


def test_bad_export_names_are_404(make_api: MakeApi) -> None:
    api = make_api(today=DAY)
    for name in ("movie_ids_13_40_2024.json.gz", "tv_series_ids_05_10_2024.json.gz",
                 "movie_ids_05_10_2024.json", "../catalog.json.gz", ""):
        assert _fetch(api.sandbox.exports_base_url, name).status_code == 404, name


def test_adult_export_and_changes_are_reflected(make_api: MakeApi) -> None:
    catalog = Catalog.from_movies([
        movie_record(3, "Kept", popularity=2.5),
        movie_record(4, "Adult", adult=True),
        movie_record(5, "Going", original_title="Partant"),
    ])
    api = make_api(catalog, today=DAY)
    base = api.sandbox.exports_base_url

    def ids(name: str) -> list[int]:
        body = gzip.decompress(_fetch(base, name).content).decode()
        return [json.loads(line)["id"] for line in body.splitlines()]

    assert ids("movie_ids_05_10_2024.json.gz") == [3, 5]
    assert ids("adult_movie_ids_05_10_2024.json.gz") == [4]
    catalog.remove_movie(5)
    catalog.add_movie(movie_record(6, "Arrived"))
    assert ids("movie_ids_05_10_2024.json.gz") == [3, 6]


def test_export_names_parse() -> None:
    assert export_file_name(DAY) == "movie_ids_05_10_2024.json.gz"
    assert export_file_name(DAY, adult=True) == "adult_movie_ids_05_10_2024.json.gz"
    parsed = parse_export_name("adult_movie_ids_05_10_2024.json.gz")
    assert parsed is not None and parsed.day == DAY and parsed.adult
    assert parse_export_name("movie_ids_02_30_2024.json.gz") is None


def test_default_today_is_the_utc_date(make_api: MakeApi) -> None:
    api = make_api()
    sb = api.sandbox
    assert _fetch(sb.exports_base_url, export_file_name(sb.today())).status_code == 200
