"""``reelset failures`` and ``reelset runs`` (text and JSON), and the poster side of the
failure lifecycle, against the sandbox over real sockets (in-process CLI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelset.sandbox import FaultSpec, PathFault
from tests.cli_env import CliResult, Env

RunCli = Callable[..., CliResult]
MakeEnv = Callable[..., Env]

FAST_POSTERS = {
    "enabled": False,  # `reelset posters` only, not the scrape's poster phase
    "max_workers": 4,
    "rate_limit": "100000/1s",
    "max_retries": 0,
}
ABANDON_AT_TWO = {"max_attempts": 2, "min_age_days": 0}


def table_rows(out: str) -> list[list[str]]:
    """The data rows of a text table printed under a title line and a header line."""
    return [line.split() for line in out.splitlines()[2:]]


def test_an_empty_store_has_no_failures_and_no_runs(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env()
    text = run_cli(env, "failures")
    assert (text.code, text.out) == (0, "no failures (open 0, abandoned 0)\n")
    data = run_cli(env, "failures", "--state", "all", "--json").json()
    assert data["failures"] == [] and data["shown"] == 0
    assert data["counts"] == {"open": 0, "abandoned": 0, "resolved": 0}
    assert run_cli(env, "runs").out == "no runs yet\n"
    assert run_cli(env, "runs", "--json").json() == {"runs": []}


def _scrape_with_failures(env: Env, run_cli: RunCli, tmp_path: Path) -> tuple[list[int], str]:
    """Run 1 fails two movies and one IMDb lookup; run 2 resolves one movie and abandons
    the other two failures. Returns the catalog ids and the IMDb id."""
    ids = env.sandbox.catalog.ids()
    imdb = env.sandbox.catalog.record(ids[5])["imdb_id"]
    assert isinstance(imdb, str)
    path = tmp_path / "ids.txt"
    path.write_text(f"{ids[0]}\n{ids[1]}\n{ids[2]}\n{imdb}\n")
    env.sandbox.faults = FaultSpec(
        always_fail_ids={ids[1]: "500", ids[2]: "reset"},
        per_path={f"/3/find/{imdb}": PathFault("502", None)},
    )
    first = run_cli(env, "scrape", "--strategy", "ids", "--from", str(path), "--json")
    assert first.code == 1 and first.json()["movies"]["failed"] == 3
    env.sandbox.faults = FaultSpec(
        always_fail_ids={ids[1]: "500"},
        per_path={f"/3/find/{imdb}": PathFault("502", None)},
    )
    second = run_cli(env, "scrape", "--retry-failures", "--json")
    assert second.code == 0, second.err
    movies = second.json()["movies"]
    assert (movies["failures_resolved"], movies["failures_abandoned"]) == (1, 2)
    return ids, imdb


def test_failures_shows_the_ledger_with_filters(
    make_env: MakeEnv, run_cli: RunCli, tmp_path: Path
) -> None:
    env = make_env(extra={"failures": ABANDON_AT_TWO})
    ids, imdb = _scrape_with_failures(env, run_cli, tmp_path)

    # Default: what is not resolved (open and abandoned), newest first.
    text = run_cli(env, "failures")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "failures: 2 shown (open 0, abandoned 2)"
    assert lines[1].split() == [
        "id", "kind", "key", "state", "attempts", "first", "failed", "last", "failed", "http",
        "error",
    ]  # fmt: skip
    rows = table_rows(text.out)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("find", imdb, "abandoned", "2"),
        ("movie", str(ids[1]), "abandoned", "2"),
    ]
    assert rows[1][7] == "500" and "HTTP 500" in text.out

    everything = run_cli(env, "failures", "--state", "all", "--json")
    assert everything.code == 0, everything.err
    data: dict[str, Any] = everything.json()
    assert data["counts"] == {"open": 0, "abandoned": 2, "resolved": 1}
    assert data["states"] == ["open", "abandoned", "resolved"] and data["kinds"] is None
    by_key = {f["key"]: f for f in data["failures"]}
    assert set(by_key) == {imdb, str(ids[1]), str(ids[2])}
    resolved = by_key[str(ids[2])]
    assert resolved["state"] == "resolved" and resolved["resolved_at"].endswith("Z")
    assert resolved["abandoned_at"] is None and resolved["attempts"] == 1
    abandoned = by_key[str(ids[1])]
    assert abandoned["abandoned_at"] is not None and abandoned["http_status"] == 500
    assert env.sandbox.api_key not in everything.out

    # imdb is the stored kind find; filters combine; --limit shows the newest.
    imdb_only = run_cli(env, "failures", "--kind", "imdb", "--json").json()
    assert [(f["kind"], f["key"]) for f in imdb_only["failures"]] == [("find", imdb)]
    assert imdb_only["kinds"] == ["find"]
    resolved_movies = run_cli(env, "failures", "--kind", "movie", "--state", "resolved")
    assert [r[2] for r in table_rows(resolved_movies.out)] == [str(ids[2])]
    assert resolved_movies.out.startswith("failures: 1 shown (resolved 1)")
    limited = run_cli(env, "failures", "--state", "all", "--limit", "1")
    assert limited.out.startswith("failures: 1 of 3 shown")
    open_only = run_cli(env, "failures", "--state", "open")
    assert open_only.out == "no failures (open 0)\n"

    bad = run_cli(env, "failures", "--state", "closed")
    assert bad.code == 2 and bad.out == ""
    assert bad.err.startswith("reelset: error:") and len(bad.err.strip().splitlines()) == 1


def test_runs_shows_the_run_history_newest_first(
    make_env: MakeEnv, run_cli: RunCli, tmp_path: Path
) -> None:
    env = make_env(extra={"failures": ABANDON_AT_TWO})
    _scrape_with_failures(env, run_cli, tmp_path)

    text = run_cli(env, "runs")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "runs: 2 newest"
    assert lines[1].split() == ["run", "command", "status", "started", "duration", "counts"]
    rows = table_rows(text.out)
    assert [r[:3] for r in rows] == [["2", "scrape", "succeeded"], ["1", "scrape", "partial"]]
    assert "failed=3" in lines[3] and "failures_abandoned=2" in lines[2]

    data = run_cli(env, "runs", "--limit", "1", "--json")
    assert data.code == 0, data.err
    (run,) = data.json()["runs"]
    assert (run["run_id"], run["command"], run["status"]) == (2, "scrape", "succeeded")
    assert run["counts"]["failures_abandoned"] == 2 and run["params"]["retry_failures"] is True
    assert run["started_at"].endswith("Z") and run["duration_s"] >= 0
    assert run["error"] is None and run["pid"] > 0

    bad = run_cli(env, "runs", "--limit", "0")
    assert bad.code == 2 and bad.err.startswith("reelset: error:")


def test_a_poster_failing_every_time_is_abandoned_then_retried_on_request(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env(extra={"posters": FAST_POSTERS, "failures": ABANDON_AT_TWO})
    assert run_cli(env, "scrape", "--limit", "6").code == 0
    tmdb_id, poster_path = env.rows(
        "SELECT tmdb_id, poster_path FROM movies WHERE poster_path IS NOT NULL "
        "ORDER BY tmdb_id LIMIT 1"
    )[0]
    env.sandbox.faults = FaultSpec(per_path={f"/t/p/w500{poster_path}": PathFault("500", None)})

    first = run_cli(env, "posters", "--json")  # a new failure: exit 1
    assert first.code == 1 and (first.json()["failed"], first.json()["abandoned"]) == (1, 0)
    assert env.last_run()["status"] == "partial"

    second = run_cli(env, "posters", "--json")  # the second attempt: abandoned, exit 0
    assert second.code == 0, second.err
    summary = second.json()
    assert (summary["movies"], summary["failed"], summary["abandoned"]) == (1, 1, 1)
    assert env.last_run()["status"] == "succeeded"
    listed = run_cli(env, "failures", "--kind", "poster", "--json").json()["failures"]
    assert [(f["key"], f["state"]) for f in listed] == [(str(tmdb_id), "abandoned")]

    third = run_cli(env, "posters", "--json")  # not retried any more
    assert third.code == 0 and third.json()["movies"] == 0

    env.sandbox.faults = None
    fixed = run_cli(env, "posters", "--retry-abandoned", "--json")
    assert fixed.code == 0, fixed.err
    assert (fixed.json()["movies"], fixed.json()["ok"]) == (1, 1)
    assert env.rows("SELECT state FROM fetch_failures WHERE kind = 'poster'") == [("resolved",)]
    assert env.last_run()["params"]["retry_abandoned"] is True
