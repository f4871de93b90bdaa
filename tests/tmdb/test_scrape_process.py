"""The run lock, SIGTERM and ``kill -9`` with the scraper in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.cli_env import CliResult, Env, cli_subprocess

RunCli = Callable[..., CliResult]
MakeEnv = Callable[..., Env]

DEADLINE_S = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def movies_written(env: Env) -> int:
    try:
        return int(env.rows("SELECT count(*) FROM movies")[0][0])
    except Exception:  # the store may not exist yet
        return 0


def running_run(env: Env) -> bool:
    try:
        return bool(env.rows("SELECT run_id FROM scrape_runs WHERE status = 'running'"))
    except Exception:
        return False


def lock_has_run(env: Env) -> bool:
    return bool(env.rows("SELECT run_id FROM run_lock WHERE run_id IS NOT NULL"))


def slow_env(make_env: MakeEnv) -> Env:
    # ~100 movies a second: long enough to interrupt, short enough for CI.
    return make_env(rate="100/1s", tmdb={"rate_limit": "100/1s"}, storage={"batch_size": 25})


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=DEADLINE_S)
    return proc.returncode, out, err


def test_second_run_exits_3_naming_the_holder(make_env: MakeEnv, run_cli: RunCli) -> None:
    env = make_env(rate="20/1s", tmdb={"rate_limit": "20/1s"})
    proc = cli_subprocess(env, "scrape", "--no-posters")
    try:
        wait_for(lambda: running_run(env) and lock_has_run(env), "the first run to start")
        run_id = env.rows("SELECT run_id FROM scrape_runs WHERE status = 'running'")[0][0]
        second = run_cli(env, "scrape")
        assert second.code == 3
        assert f"locked by run {run_id} (pid {proc.pid}" in second.err
        assert "started " in second.err
        assert len(second.err.strip().splitlines()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc)


def test_a_lock_left_by_a_dead_process_is_taken_over(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = make_env()
    code = (
        "import sys; from reelset.storage import Store; "
        "s = Store(sys.argv[1]); s.upgrade(); s.locks.acquire('scrape'); print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, env.db_url], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "ok"
    assert env.rows("SELECT count(*) FROM run_lock") == [(1,)]
    result = run_cli(env, "scrape", "--limit", "5")
    assert result.code == 0, result.err
    assert "taking over" in result.err
    assert env.rows("SELECT count(*) FROM run_lock") == [(0,)]


def test_sigterm_finishes_writes_and_records_interrupted(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    env = slow_env(make_env)
    proc = cli_subprocess(env, "scrape", "--no-posters", "--json")
    wait_for(lambda: movies_written(env) >= 50, "some movies to be written")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 130, err
    assert '"status": "interrupted"' in out
    assert env.last_run()["status"] == "interrupted"
    assert env.rows("SELECT count(*) FROM run_lock") == [(0,)]
    written = movies_written(env)
    # The next run resumes from the checkpoint and completes.
    result = run_cli(env, "scrape", "--no-posters", "--json")
    assert result.code == 0, result.err
    assert result.json()["movies"]["discovered"] < 300 - written + 50


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_then_rerun_equals_an_uninterrupted_run(
    make_env: MakeEnv, run_cli: RunCli
) -> None:
    clean = make_env()
    assert run_cli(clean, "scrape").code == 0

    env = slow_env(make_env)
    proc = cli_subprocess(env, "scrape", "--no-posters")
    wait_for(lambda: movies_written(env) >= 120, "some movies to be written")
    os.kill(proc.pid, signal.SIGKILL)
    finish(proc)
    assert proc.returncode == -signal.SIGKILL
    written = movies_written(env)
    assert 0 < written < len(clean.snapshot()["movies"])
    checkpoint = env.rows("SELECT value FROM checkpoints WHERE name LIKE 'scrape:export:%'")
    assert checkpoint, "a checkpoint was saved before the kill"

    result = run_cli(env, "scrape", "--no-posters", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    # Resumed: it did not list (and skip) everything again.
    assert summary["movies"]["discovered"] < len(clean.snapshot()["movies"])
    assert env.snapshot() == clean.snapshot()
    statuses = [s for (s,) in env.rows("SELECT status FROM scrape_runs ORDER BY run_id")]
    assert statuses == ["interrupted", "succeeded"]
