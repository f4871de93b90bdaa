"""``reelset scrape`` end to end against the sandbox over real sockets (in-process CLI)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from reelset.sandbox import Catalog, FaultSpec, unknown_genre_catalog
from reelset.sandbox.movie_shapes import movie_record
from tests.cli_env import CliResult, Env

RunCli = Callable[..., CliResult]
MakeEnv = Callable[..., Env]


def non_adult(catalog: Catalog) -> list[int]:
    return [i for i in catalog.ids() if not catalog.record(i)["adult"]]


def test_export_scrapes_every_movie_once(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env()
    result = run_cli(env, "scrape", "--strategy", "export", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    expected = non_adult(env.sandbox.catalog)
    assert summary["status"] == "succeeded"
    assert summary["movies"]["new"] == len(expected)
    assert [r[0] for r in env.rows("SELECT tmdb_id FROM movies ORDER BY tmdb_id")] == expected
    # One request per movie: genres + the export + one per movie.
    assert env.sandbox.counters.requests_by_endpoint["/3/movie/{id}"] == len(expected)
    assert summary["requests"] == len(expected) + 2
    # Genres, IMDb ids and posters paths came with that one request.
    movie_id = expected[0]
    record = env.sandbox.catalog.record(movie_id)
    stored = env.rows(f"SELECT imdb_id, poster_path FROM movies WHERE tmdb_id = {movie_id}")
    assert stored == [(record["imdb_id"], record["poster_path"])]
    genre_rows = env.rows(f"SELECT genre_id FROM movie_genres WHERE tmdb_id = {movie_id}")
    assert sorted(g for (g,) in genre_rows) == sorted({g["id"] for g in record["genres"]})
    run = env.last_run()
    assert run["status"] == "succeeded" and run["counts"]["new"] == len(expected)
    assert run["params"]["strategy"] == "export"
    assert env.rows("SELECT count(*) FROM checkpoints WHERE name LIKE 'scrape:export:%'") == [(0,)]

    # A second run skips what was just fetched; --refresh fetches again, nothing changed.
    again = run_cli(env, "scrape", "--strategy", "export", "--json").json()
    assert again["movies"]["skipped"] == len(expected) and again["movies"]["fetched"] == 0
    refreshed = run_cli(env, "scrape", "--strategy", "export", "--refresh", "--json").json()
    assert refreshed["movies"]["unchanged"] == len(expected)


def test_text_summary_and_progress_lines(
    make_env: MakeEnv, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(latency_ms=5)
    monkeypatch.setenv("REELSET_PROGRESS_INTERVAL", "0")  # a progress line per movie
    result = run_cli(env, "scrape", "--strategy", "popular", "--limit", "45")
    assert result.code == 0, result.err
    assert result.out.startswith("scrape run 1: succeeded")
    assert "requests_per_movie" in result.out
    assert env.rows("SELECT count(*) FROM movies") == [(45,)]
    progress = [line for line in result.err.splitlines() if "scraping TMDB: " in line]
    assert progress and "movies/s" in progress[-1]
    assert "45/45 movies" in result.err


def test_popular_and_discover_strategies(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env(tmdb={"discover_start_date": "1900-01-01"})
    popular = run_cli(env, "scrape", "--strategy", "popular", "--json")
    assert popular.code == 0, popular.err
    assert popular.json()["movies"]["new"] == len(non_adult(env.sandbox.catalog))
    discover = run_cli(env, "scrape", "--strategy", "discover", "--refresh", "--json")
    assert discover.code == 0, discover.err
    dated = [
        i for i in non_adult(env.sandbox.catalog)
        if env.sandbox.catalog.record(i)["release_date"]
    ]
    assert discover.json()["movies"]["unchanged"] == len(dated)


def test_min_popularity_and_limit(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env()
    result = run_cli(env, "scrape", "--min-popularity", "30", "--limit", "5", "--json")
    assert result.code == 0, result.err
    pops = [p for (p,) in env.rows("SELECT popularity FROM movies")]
    assert len(pops) == 5 and all(p >= 30 for p in pops)


def test_ids_strategy_with_imdb_ids(make_env: MakeEnv, run_cli: RunCli, tmp_path: Path) -> None:
    env = make_env()
    catalog = env.sandbox.catalog
    ids = catalog.ids()
    imdb = catalog.record(ids[5])["imdb_id"]
    path = tmp_path / "ids.txt"
    path.write_text(f"{ids[0]}\n{ids[1]}\n# comment\n{imdb}\ntt9999990\n999999999\n")
    result = run_cli(env, "scrape", "--strategy", "ids", "--from", str(path), "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["movies"]["imdb_unresolved"] == 1
    assert summary["movies"]["gone"] == 1  # 999999999 answers 404
    stored = {i for (i,) in env.rows("SELECT tmdb_id FROM movies")}
    assert stored == {ids[0], ids[1], ids[5]}


def test_ids_file_with_a_bad_line_is_a_usage_error(
    make_env: MakeEnv, run_cli: RunCli, tmp_path: Path
) -> None:
    env = make_env()
    path = tmp_path / "ids.txt"
    path.write_text("603\n\n604\nnot-an-id\n")
    result = run_cli(env, "scrape", "--strategy", "ids", "--from", str(path))
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"reelset: error: {path}:4: not a TMDB id or an IMDb id (tt...): 'not-an-id'"
    ]
    assert env.sandbox.counters.requests == 0
    assert run_cli(env, "scrape", "--strategy", "ids").code == 2


def test_foreign_is_patched_and_unknown_ids_are_named(
    make_env: MakeEnv, run_cli: RunCli, caplog: pytest.LogCaptureFixture
) -> None:
    catalog, changed = unknown_genre_catalog(genre_id=99999, count=3)
    foreign = [
        movie_record(900_001, "Foreign One", genre_ids=[18, 10769], release_date="1990-01-01"),
        movie_record(900_002, "Foreign Two", genre_ids=[10769], release_date="1991-01-01"),
    ]
    for movie in foreign:
        catalog.add_movie(movie)
    env = make_env(catalog=catalog)
    result = run_cli(env, "scrape", "--json")
    assert result.code == 0, result.err
    genres = {g: (n, o) for g, n, o in env.rows("SELECT genre_id, name, origin FROM genres")}
    assert genres[10769] == ("Foreign", "patched")
    assert genres[99999] == ("Unknown (99999)", "unknown")
    assert genres[18] == ("Drama", "tmdb")
    carriers = {t for (t,) in env.rows("SELECT tmdb_id FROM movie_genres WHERE genre_id = 99999")}
    assert carriers == set(changed)
    warnings = [line for line in result.err.splitlines() if "99999" in line]
    assert len(warnings) == 1  # one warning per unknown id, not per movie
    assert result.json()["unknown_genre_ids"] == [99999]


def test_a_patch_names_another_retired_id(make_env: MakeEnv, run_cli: RunCli) -> None:
    catalog, _ = unknown_genre_catalog(genre_id=10999, count=1)
    env = make_env(catalog=catalog, extra={"genres.patch": {"10999": "Retired"}})
    assert run_cli(env, "scrape").code == 0
    assert env.rows("SELECT name, origin FROM genres WHERE genre_id = 10999") == [
        ("Retired", "patched")
    ]


def test_a_matching_limit_provokes_no_429(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env(rate="40/0.5s", latency_ms=5, tmdb={"rate_limit": "40/0.5s"})
    result = run_cli(env, "scrape", "--limit", "160", "--json")
    assert result.code == 0, result.err
    assert env.sandbox.counters.rate_limited == 0
    assert result.json()["throttled_429"] == 0


def test_a_429_storm_from_a_stricter_server_loses_nothing(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env(rate="30/1s", tmdb={"rate_limit": "1000/1s", "max_retries": 0})
    result = run_cli(env, "scrape", "--limit", "90", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert env.sandbox.counters.rate_limited > 0
    assert summary["throttled_429"] == env.sandbox.counters.rate_limited
    assert summary["movies"]["new"] == 90 and summary["movies"]["failed"] == 0
    assert env.rows("SELECT count(*) FROM movies") == [(90,)]


def test_transient_faults_of_every_kind_end_with_complete_data(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    clean = make_env()
    assert run_cli(clean, "scrape").code == 0
    faults = FaultSpec(
        rate=0.35,
        # (429s pause every worker for Retry-After: 1 s; they have tests of their own.)
        kinds=("500", "502", "503", "reset", "slow", "truncated", "malformed"),
        attempts=2,
        seed=11,
        slow_s=1.0,
        targets=("api", "exports"),
    )
    env = make_env(faults=faults, tmdb={"timeout_s": 0.4})
    result = run_cli(env, "scrape", "--json")
    assert result.code == 0, result.err
    injected = env.sandbox.counters.faults_injected
    assert {"500", "reset", "slow", "truncated", "malformed"} <= set(injected)
    assert result.json()["retries"] >= sum(injected.values())
    assert env.snapshot() == clean.snapshot()


def test_permanent_failures_are_recorded_then_resolved(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env()
    ids = non_adult(env.sandbox.catalog)
    broken = {ids[3]: "500", ids[10]: "reset"}
    env.sandbox.faults = FaultSpec(always_fail_ids=broken)
    first = run_cli(env, "scrape", "--json")
    assert first.code == 1
    assert first.json()["status"] == "partial"
    assert first.json()["movies"]["failed"] == 2
    rows = env.rows(
        "SELECT key, http_status, error, resolved_at FROM fetch_failures ORDER BY key"
    )
    assert {r[0] for r in rows} == {str(i) for i in broken}
    statuses = {r[0]: r[1] for r in rows}
    assert statuses[str(ids[3])] == 500 and statuses[str(ids[10])] is None
    assert all(r[3] is None for r in rows)
    assert all(env.sandbox.api_key not in r[2] and "api_key" not in r[2] for r in rows)
    assert env.last_run()["status"] == "partial"

    # Still failing: --retry-failures tries only those, and counts another attempt.
    again = run_cli(env, "scrape", "--retry-failures", "--json")
    assert again.code == 1 and again.json()["movies"]["failures_retried"] == 2
    assert env.rows("SELECT attempts FROM fetch_failures") == [(2,), (2,)]

    env.sandbox.faults = None
    fixed = run_cli(env, "scrape", "--json")
    assert fixed.code == 0, fixed.err
    assert fixed.json()["movies"]["failures_resolved"] == 2
    assert env.rows("SELECT count(*) FROM fetch_failures WHERE resolved_at IS NULL") == [(0,)]
    assert env.rows("SELECT count(*) FROM movies") == [(len(ids),)]


def test_gone_movies_are_marked(make_env: MakeEnv, run_cli: RunCli, tmp_path: Path) -> None:
    env = make_env()
    ids = non_adult(env.sandbox.catalog)
    assert run_cli(env, "scrape").code == 0
    env.sandbox.catalog.remove_movie(ids[0])
    path = tmp_path / "ids.txt"
    path.write_text(f"{ids[0]}\n{ids[1]}\n")
    result = run_cli(env, "scrape", "--strategy", "ids", "--from", str(path), "--refresh",
                     "--json")
    assert result.code == 0 and result.json()["movies"]["gone"] == 1
    assert env.rows(f"SELECT status FROM movies WHERE tmdb_id = {ids[0]}") == [("gone",)]


def test_changes_updates_exactly_the_changed_movies(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env()
    catalog = env.sandbox.catalog
    assert run_cli(env, "scrape").code == 0
    first = run_cli(env, "scrape", "--strategy", "changes", "--json")
    assert first.code == 0 and first.json()["movies"]["discovered"] == 0
    assert env.rows("SELECT name FROM checkpoints WHERE name = 'scrape:changes:since'")
    before = env.snapshot()
    ids = non_adult(catalog)
    changed = [ids[2], ids[7], ids[42]]
    catalog.update_movie(changed[0], title="A New Title")
    catalog.update_movie(changed[1], overview="A brand new overview for this film.")
    catalog.update_movie(changed[2], genre_ids=[27, 35])
    result = run_cli(env, "scrape", "--strategy", "changes", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["movies"]["updated"] == 3 and summary["movies"]["new"] == 0
    after = env.snapshot()
    differ = {
        a[0] for a, b in zip(before["movies"], after["movies"], strict=True) if a != b
    }
    assert differ == set(changed)
    assert env.rows(f"SELECT title FROM movies WHERE tmdb_id = {changed[0]}") == [
        ("A New Title",)
    ]
    genres = env.rows(f"SELECT genre_id FROM movie_genres WHERE tmdb_id = {changed[2]}")
    assert sorted(g for (g,) in genres) == [27, 35]


def test_first_changes_run_looks_back_changes_first_days(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env(tmdb={"changes_first_days": 5})
    ids = non_adult(env.sandbox.catalog)
    today = dt.datetime.now(dt.UTC).date()
    env.sandbox.catalog.update_movie(ids[0], title="Recent", changed_at=today)
    env.sandbox.catalog.update_movie(ids[1], title="Old", changed_at=today - dt.timedelta(20))
    result = run_cli(env, "scrape", "--strategy", "changes", "--json")
    assert result.code == 0
    assert {i for (i,) in env.rows("SELECT tmdb_id FROM movies")} == {ids[0]}


def test_wrong_key_exits_4_and_never_shows_the_key(
    make_env: MakeEnv, run_cli: RunCli, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-key-5f3a9c1e7d"
    env = make_env(api_key=secret)
    with caplog.at_level(logging.DEBUG):
        result = run_cli(env, "-v", "scrape", "--json")
    assert result.code == 4
    assert "TMDB refused the credentials" in result.err
    for text in (result.out, result.err, caplog.text):
        assert secret not in text
    dump = json.dumps(env.rows("SELECT * FROM scrape_runs"), default=str)
    dump += json.dumps(env.rows("SELECT * FROM fetch_failures"), default=str)
    assert secret not in dump
    assert env.last_run()["status"] == "failed"


def test_unreachable_api_reports_no_url_with_the_key(
    make_env: MakeEnv, run_cli: RunCli, tmp_path: Path
) -> None:
    env = make_env(tmdb={"max_retries": 1})
    secret = env.sandbox.api_key
    port = env.sandbox.port
    env.sandbox.stop()  # nothing listens there any more
    result = run_cli(env, "scrape")
    assert result.code == 1
    assert "connection refused" in result.err
    assert secret not in result.out + result.err
    assert f"127.0.0.1:{port}" not in result.err  # no URL at all in the one-line error
    assert secret not in json.dumps(env.rows("SELECT * FROM scrape_runs"), default=str)


def test_posters_run_at_the_end(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env(posters=True)
    result = run_cli(env, "scrape", "--limit", "12", "--json")
    assert result.code == 0, result.err
    posters = result.json()["posters"]
    assert posters["movies"] >= 1
    assert posters["ok"] + posters.get("missing", 0) == posters["movies"]
    skipped = run_cli(env, "scrape", "--limit", "12", "--no-posters", "--json")
    assert "posters" not in skipped.json()


def movie_attempts(env: Env, tmdb_id: int) -> int:
    """Requests for ``/3/movie/{tmdb_id}`` that reached the sandbox."""
    attempts = env.sandbox.counters.attempts
    return sum(n for key, n in attempts.items() if key.split("?")[0] == f"/3/movie/{tmdb_id}")


def test_a_movie_failing_every_time_is_abandoned_then_retried_on_request(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env(extra={"failures": {"max_attempts": 2, "min_age_days": 0}})
    ids = non_adult(env.sandbox.catalog)
    broken = ids[5]
    env.sandbox.faults = FaultSpec(always_fail_ids={broken: "500"})

    first = run_cli(env, "scrape", "--json")  # a new failure: exit 1
    assert first.code == 1 and first.json()["status"] == "partial"
    assert first.json()["movies"]["failed"] == 1
    assert env.rows("SELECT key, state, attempts FROM fetch_failures") == [(str(broken), "open", 1)]

    # The second attempt reaches max_attempts (over min_age_days = 0): abandoned, exit 0.
    second = run_cli(env, "scrape", "--json")
    assert second.code == 0, second.err
    movies = second.json()["movies"]
    assert (movies["failures_retried"], movies["failed"], movies["failures_abandoned"]) == (1, 1, 1)
    assert second.json()["status"] == "succeeded" and env.last_run()["status"] == "succeeded"
    assert f"movie {broken} abandoned after 2 attempts" in second.err
    listed = run_cli(env, "failures", "--state", "abandoned", "--json").json()
    assert [(f["key"], f["state"], f["attempts"]) for f in listed["failures"]] == [
        (str(broken), "abandoned", 2)
    ]

    # Later runs neither retry it nor fetch it when discovery lists it again: exit 0.
    before = movie_attempts(env, broken)
    third = run_cli(env, "scrape", "--json")
    assert third.code == 0, third.err
    movies = third.json()["movies"]
    assert (movies["failures_retried"], movies["failed"], movies["abandoned_skipped"]) == (0, 0, 1)
    assert movie_attempts(env, broken) == before
    assert env.rows("SELECT state, attempts FROM fetch_failures") == [("abandoned", 2)]

    # --retry-abandoned tries it: still failing, it stays abandoned (exit 0, one more attempt).
    retried = run_cli(env, "scrape", "--retry-failures", "--retry-abandoned", "--json")
    assert retried.code == 0, retried.err
    assert retried.json()["movies"]["failures_retried"] == 1
    assert movie_attempts(env, broken) > before
    assert env.rows("SELECT state, attempts FROM fetch_failures") == [("abandoned", 3)]
    assert env.last_run()["params"]["retry_abandoned"] is True

    # Once the movie can be had, --retry-abandoned resolves it.
    env.sandbox.faults = None
    fixed = run_cli(env, "scrape", "--retry-abandoned", "--json")
    assert fixed.code == 0, fixed.err
    assert fixed.json()["movies"]["failures_resolved"] == 1
    assert env.rows(f"SELECT count(*) FROM movies WHERE tmdb_id = {broken}") == [(1,)]
    row = env.rows(
        "SELECT state, resolved_at IS NOT NULL, abandoned_at IS NOT NULL FROM fetch_failures"
    )
    assert row == [("resolved", 1, 1)]


def test_open_failures_keep_a_run_partial_until_abandoned(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    # The defaults (5 attempts over at least 3 days) keep a failure open within a test.
    env = make_env()
    broken = non_adult(env.sandbox.catalog)[2]
    env.sandbox.faults = FaultSpec(always_fail_ids={broken: "reset"})
    first = run_cli(env, "scrape", "--json")
    assert first.code == 1 and first.json()["movies"]["failed"] == 1
    for _ in range(5):
        again = run_cli(env, "scrape", "--retry-failures", "--json")
        assert again.code == 1 and again.json()["status"] == "partial"
        assert again.json()["movies"]["failures_abandoned"] == 0
    assert env.rows("SELECT state, attempts FROM fetch_failures") == [("open", 6)]


def posters_dir(env: Env) -> Path:
    return Path(tomllib.loads(env.config.read_text())["storage"]["posters_dir"])


def test_poster_write_failures_make_a_scrape_partial(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env(posters=True)
    folder = posters_dir(env)
    folder.mkdir()
    for value in range(256):  # a file where each shard folder should be: every write fails
        (folder / f"{value:02x}").write_bytes(b"")
    result = run_cli(env, "scrape", "--limit", "12", "--json")
    assert result.code == 1, result.err
    summary = result.json()
    posters = summary["posters"]
    assert posters["failed"] == posters["movies"] - posters["missing"] >= 5
    assert posters["failed_by_reason"] == {"write_error": posters["failed"]}
    assert summary["status"] == "partial" and env.last_run()["status"] == "partial"
    assert summary["movies"]["failed"] == 0  # the movies themselves are fine
    failures = env.rows("SELECT count(*) FROM fetch_failures WHERE kind = 'poster'")
    assert failures == [(posters["failed"],)]

    # Once the folder is usable, the next poster run downloads exactly those.
    for value in range(256):
        (folder / f"{value:02x}").unlink()
    again = run_cli(env, "posters", "--json")
    assert again.code == 0, again.err
    assert (again.json()["movies"], again.json()["ok"]) == (posters["failed"], posters["failed"])


def test_an_unusable_posters_folder_makes_a_scrape_partial(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env(posters=True)
    posters_dir(env).write_text("not a folder")
    result = run_cli(env, "scrape", "--limit", "5", "--json")
    assert result.code == 1, result.err
    summary = result.json()
    assert summary["status"] == "partial" and summary["movies"]["new"] == 5
    error = summary["posters"]["error"]
    assert error.startswith(f"cannot use the posters folder {posters_dir(env)}: ")

