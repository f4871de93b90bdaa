"""Discovery strategies against the sandbox: complete listings, page caps, exports, ids."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from reelset.config import Credentials, settings_from_dict
from reelset.errors import UsageError
from reelset.sandbox import Catalog, Sandbox
from reelset.tmdb import discovery
from reelset.tmdb.client import TmdbClient
from reelset.tmdb.discovery import (
    DiscoveryOptions,
    ExportStrategy,
    Strategy,
    make_strategy,
    read_ids_file,
    sorted_unique,
)
from reelset.transport.errors import FetchError
from tests.transport.scripted_server import Reply, routed_server


def client_for(sb: Sandbox, tmp_path: Path, **tmdb: Any) -> TmdbClient:
    settings = settings_from_dict(
        {
            "storage": {"batch_size": 100},
            "tmdb": {
                "api_base_url": sb.api_base_url,
                "exports_base_url": sb.exports_base_url,
                "rate_limit": "100000/1s",
                **tmdb,
            },
        },
        base_dir=tmp_path,
    )
    return TmdbClient(settings, Credentials(api_key=SecretStr(sb.api_key)))


def listed(strategy: Strategy, cursor: dict[str, Any] | None = None) -> list[int]:
    out: list[int] = []
    for page in strategy.pages(cursor if cursor is not None else strategy.fresh_cursor()):
        out.extend(c.tmdb_id for c in page.candidates if c.tmdb_id is not None)
    return out


def dated_ids(catalog: Catalog) -> set[int]:
    out = set()
    for tmdb_id in catalog.ids():
        record = catalog.record(tmdb_id)
        assert record is not None
        if record["release_date"] and not record["adult"]:
            out.add(tmdb_id)
    return out


@pytest.fixture(scope="module")
def bundled() -> Iterator[Sandbox]:
    with Sandbox(catalog=Catalog.bundled()) as sb:
        yield sb


def test_discover_splits_windows_past_the_page_cap(bundled: Sandbox, tmp_path: Path) -> None:
    with client_for(bundled, tmp_path, discover_start_date="1900-01-01") as client:
        # A cap of 2 pages (40 movies) forces many splits on a 300-movie catalog.
        options = DiscoveryOptions("discover", page_cap=2, today=dt.date(2030, 1, 1))
        strategy = make_strategy(client, client.settings, options)
        ids = listed(strategy)
    assert sorted(ids) == sorted(dated_ids(bundled.catalog))
    assert len(ids) == len(set(ids))


def test_discover_resumes_from_any_cursor(bundled: Sandbox, tmp_path: Path) -> None:
    with client_for(bundled, tmp_path, discover_start_date="1900-01-01") as client:
        options = DiscoveryOptions("discover", page_cap=2, today=dt.date(2030, 1, 1))
        strategy = make_strategy(client, client.settings, options)
        pages = list(strategy.pages(strategy.fresh_cursor()))
        middle = len(pages) // 2
        before = [c.tmdb_id for p in pages[: middle + 1] for c in p.candidates]
        after = listed(make_strategy(client, client.settings, options), pages[middle].cursor)
    assert sorted(before + after) == sorted(dated_ids(bundled.catalog))


@pytest.mark.slow
def test_discover_reaches_a_catalog_past_tmdbs_500_page_cap(tmp_path: Path) -> None:
    catalog = Catalog.synthetic(10_500, seed=3)
    expected = dated_ids(catalog)
    assert len(expected) > 500 * 20  # one window over everything would be cut at page 500
    with Sandbox(catalog=catalog) as sb, client_for(
        sb, tmp_path, discover_start_date="1900-01-01"
    ) as client:
        strategy = make_strategy(
            client, client.settings, DiscoveryOptions("discover", today=dt.date(2027, 1, 1))
        )
        ids = listed(strategy)
        assert sb.counters.responses_by_status.get(400, 0) == 0  # never asked past page 500
    assert set(ids) == expected


def test_popular_lists_every_page(bundled: Sandbox, tmp_path: Path) -> None:
    with client_for(bundled, tmp_path) as client:
        ids = listed(make_strategy(client, client.settings, DiscoveryOptions("popular")))
    non_adult = {i for i in bundled.catalog.ids() if not bundled.catalog.record(i)["adult"]}
    assert set(ids) == non_adult


def test_export_takes_the_newest_existing_file(tmp_path: Path) -> None:
    today = dt.date(2026, 3, 10)
    catalog = Catalog.bundled()
    with Sandbox(
        catalog=catalog,
        today=today,
        exports_available_days=5,
        exports_missing_dates={today, today - dt.timedelta(days=1)},
    ) as sb, client_for(sb, tmp_path) as client:
        strategy = make_strategy(
            client, client.settings, DiscoveryOptions("export", today=today)
        )
        ids = listed(strategy)
        assert strategy.describe()["export_file"] == "movie_ids_03_08_2026.json.gz"
        assert ids == sorted(i for i in catalog.ids() if not catalog.record(i)["adult"])
        resumed = listed(strategy, {"after_id": ids[99]})
        assert resumed == ids[100:]

        too_old = make_strategy(
            client,
            client.settings.model_copy(
                update={"tmdb": client.settings.tmdb.model_copy(
                    update={"export_lookback_days": 1}
                )}
            ),
            DiscoveryOptions("export", today=today),
        )
        with pytest.raises(FetchError, match="no TMDB daily export"):
            listed(too_old)


@pytest.mark.parametrize("numpy_from", [1, discovery.NUMPY_FROM_IDS])
def test_an_export_lists_the_same_ids_sorted_with_or_without_numpy(
    numpy_from: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small exports are sorted in plain Python, large ones with numpy: the same listing."""
    monkeypatch.setattr(discovery, "NUMPY_FROM_IDS", numpy_from)
    today = dt.date(2026, 3, 10)
    ids = [40, 7, 40, 3, 2_147_483_647, 7, 12, 1]  # unsorted, repeated
    lines = [f'{{"id": {i}, "adult": false}}' for i in ids]
    body = gzip.compress("\n".join(lines).encode(), mtime=0)
    name = f"/p/exports/movie_ids_{today:%m_%d_%Y}.json.gz"
    with routed_server({name: Reply(body=body)}) as server:
        urls = {"api_base_url": f"{server.url}/3", "exports_base_url": f"{server.url}/p/exports"}
        config = {"tmdb": urls, "storage": {"batch_size": 2}}
        settings = settings_from_dict(config, base_dir=tmp_path)
        with TmdbClient(settings, Credentials(api_key=SecretStr("export-test-key"))) as client:
            strategy = make_strategy(client, settings, DiscoveryOptions("export", today=today))
            assert listed(strategy) == [1, 3, 7, 12, 40, 2_147_483_647]
            assert listed(strategy, {"after_id": 7}) == [12, 40, 2_147_483_647]
            assert listed(strategy, {"after_id": 6}) == [7, 12, 40, 2_147_483_647]
            assert listed(strategy, {"after_id": 2_147_483_647}) == []
            assert strategy.total_hint == 0


def test_sorted_unique_is_the_same_list_either_way() -> None:
    from array import array

    raw = array("q", [5, 3, 5, 9, 1, 3, 2**40])
    small = sorted_unique(raw, numpy_from=len(raw) + 1)
    large = sorted_unique(raw, numpy_from=1)
    assert isinstance(small, list)
    assert small == [int(i) for i in large] == [1, 3, 5, 9, 2**40]
    assert list(sorted_unique(array("q"), numpy_from=1)) == []
    assert sorted_unique(array("q")) == []


def test_export_min_popularity(bundled: Sandbox, tmp_path: Path) -> None:
    with client_for(bundled, tmp_path) as client:
        strategy = make_strategy(
            client, client.settings, DiscoveryOptions("export", min_popularity=20.0)
        )
        ids = listed(strategy)
    catalog = bundled.catalog
    expected = [
        i for i in catalog.ids()
        if not catalog.record(i)["adult"] and catalog.record(i)["popularity"] >= 20.0
    ]
    assert ids == expected and 0 < len(expected) < len(catalog.ids())


def test_changes_windows_stay_within_tmdbs_limit(bundled: Sandbox, tmp_path: Path) -> None:
    today = dt.date.today()
    ids = bundled.catalog.ids()
    bundled.catalog.update_movie(ids[0], title="A", changed_at=today - dt.timedelta(days=40))
    bundled.catalog.update_movie(ids[1], title="B", changed_at=today - dt.timedelta(days=3))
    with client_for(bundled, tmp_path, changes_first_days=60) as client:
        strategy = make_strategy(client, client.settings, DiscoveryOptions("changes", today=today))
        found = listed(strategy)
        assert bundled.counters.responses_by_status.get(422, 0) == 0
        assert {ids[0], ids[1]} <= set(found)
        recent = make_strategy(
            client,
            client.settings,
            DiscoveryOptions("changes", today=today),
            changes_since=today - dt.timedelta(days=5),
        )
        found_recent = listed(recent)
        assert ids[1] in found_recent and ids[0] not in found_recent


def test_ids_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# my list\n603\n\ntt0133093  # The Matrix\n603\n", encoding="utf-8")
    parsed = read_ids_file(path)
    assert [(c.tmdb_id, c.imdb_id) for c in parsed.entries] == [(603, None), (None, "tt0133093")]
    path.write_text("603\nthe matrix\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"ids\.txt:2: not a TMDB id or an IMDb id"):
        read_ids_file(path)
    with pytest.raises(UsageError, match="cannot read"):
        read_ids_file(tmp_path / "missing.txt")


def test_export_lines_the_store_cannot_hold_are_skipped_not_a_crash(tmp_path: Path) -> None:
    today = dt.date(2026, 3, 10)
    lines = [
        '{"id": 5, "adult": false}',
        '{"id": 1180591620717411303424}',  # 2^70: no 64-bit array (nor the store) holds it
        '{"id": 2147483648}',  # 2^31
        "[" * 100_000,  # nested past Python's recursion limit
        '{"id": true}',
        '{"id": -3}',
        '"just text"',
        '{"id": 7}',
    ]
    body = gzip.compress("\n".join(lines).encode(), mtime=0)
    name = f"/p/exports/movie_ids_{today:%m_%d_%Y}.json.gz"
    with routed_server({name: Reply(body=body)}) as server:
        urls = {"api_base_url": f"{server.url}/3", "exports_base_url": f"{server.url}/p/exports"}
        settings = settings_from_dict({"tmdb": urls}, base_dir=tmp_path)
        with TmdbClient(settings, Credentials(api_key=SecretStr("export-test-key"))) as client:
            strategy = make_strategy(client, settings, DiscoveryOptions("export", today=today))
            assert listed(strategy) == [5, 7]
    assert isinstance(strategy, ExportStrategy) and strategy.bad_lines == 6
