"""One poster downloader per store: ``reelset posters`` and a scrape's poster phase, in
two real processes against one sandbox and one SQLite store."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.cli_env import CliResult, Env, cli_subprocess

RunCli = Callable[..., CliResult]
MakeEnv = Callable[..., Env]

DEADLINE_S = 90.0
MOVIES = 40


def slow_images_env(make_env: MakeEnv) -> Env:
    """Posters on, 2 poster workers and 250 ms per image: 40 posters take ~5 s."""
    return make_env(
        sandbox_kwargs={"image_latency_ms": 250},
        extra={"posters": {"enabled": True, "max_workers": 2, "rate_limit": "100000/1s"}},
    )


def posters_lock(env: Env) -> tuple[Any, ...] | None:
    """The ``posters`` lock row (run_id, pid), or None."""
    try:
        rows = env.rows("SELECT run_id, pid FROM run_lock WHERE name = 'posters'")
    except Exception:  # the store may not exist yet
        return None
    return rows[0] if rows else None


def wait_for_posters_lock(env: Env, proc: subprocess.Popen[str]) -> tuple[Any, ...]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        row = posters_lock(env)
        if row is not None and row[1] == proc.pid and row[0] is not None:
            return row
        time.sleep(0.02)
    raise AssertionError("the child never held the posters lock")


def poster_downloads(env: Env) -> int:
    return env.sandbox.counters.requests_by_endpoint.get("images", 0)


def posters_wanted(env: Env) -> int:
    return int(env.rows("SELECT count(*) FROM movies WHERE poster_path IS NOT NULL")[0][0])


def test_posters_exits_3_naming_a_scrape_whose_poster_phase_runs(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = slow_images_env(make_env)
    scrape = cli_subprocess(env, "scrape", "--strategy", "popular", "--limit", str(MOVIES))
    run_id, pid = wait_for_posters_lock(env, scrape)
    assert env.rows(f"SELECT command, status FROM scrape_runs WHERE run_id = {run_id}") == [
        ("scrape", "running")
    ]

    result = run_cli(env, "posters")
    assert result.code == 3, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reelset: error: ")
    assert f"locked by run {run_id} (pid {pid} " in lines[0]
    assert env.rows("SELECT count(*) FROM scrape_runs WHERE command = 'posters'") == [(0,)]

    _out, err = scrape.communicate(timeout=DEADLINE_S)
    assert scrape.returncode == 0, err
    assert posters_lock(env) is None  # released with the poster phase
    assert poster_downloads(env) == posters_wanted(env)  # each poster downloaded once
    assert env.rows("SELECT count(*) FROM posters WHERE status = 'ok'") == [
        (posters_wanted(env),)
    ]


def test_a_scrape_skips_its_posters_while_reelset_posters_runs(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = slow_images_env(make_env)
    first = run_cli(env, "scrape", "--strategy", "popular", "--limit", str(MOVIES), "--no-posters")
    assert first.code == 0, first.err
    wanted = posters_wanted(env)

    posters = cli_subprocess(env, "posters")
    run_id, pid = wait_for_posters_lock(env, posters)
    scrape = run_cli(
        env, "scrape", "--strategy", "popular", "--limit", str(MOVIES), "--refresh", "--json"
    )
    assert posters.poll() is None, "the poster run ended before the scrape's poster phase"
    # The scrape itself succeeds; its poster phase was skipped with a warning.
    assert scrape.code == 0, scrape.err
    summary = scrape.json()
    assert summary["status"] == "succeeded" and summary["movies"]["unchanged"] == MOVIES
    assert f"locked by run {run_id} (pid {pid} " in summary["posters"]["skipped"]
    assert "posters skipped (another poster download is running)" in scrape.err
    assert env.last_run()["status"] == "succeeded"

    _out, err = posters.communicate(timeout=DEADLINE_S)
    assert posters.returncode == 0, err
    assert poster_downloads(env) == wanted  # nothing downloaded twice
    assert env.rows("SELECT count(*) FROM posters WHERE status = 'ok'") == [(wanted,)]
    assert posters_lock(env) is None
