"""``reelset posters --worker``: worker processes sharing a PostgreSQL store, one killed.

Real processes, a real PostgreSQL store and the sandbox's image server (slow, so a kill
lands mid-batch); the server's per-path request counts show what was fetched twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from reelset.cli import main
from reelset.sandbox import Catalog, Sandbox
from reelset.storage import Store, schema
from tests.cli_env import write_config
from tests.posters.support import poster_rows, store_movies

MOVIES = 80
LEASE_S = 8.0  # long enough that the plain run below still meets the dead claims on a busy machine
DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.synthetic(MOVIES, seed=3)


@pytest.fixture
def sandbox(catalog: Catalog) -> Iterator[Sandbox]:
    with Sandbox(catalog=catalog, rate=None, image_latency_ms=120) as sb:
        yield sb


def config(tmp_path: Path, url: str, sb: Sandbox) -> Path:
    return write_config(
        tmp_path / "config.toml",
        {
            "storage": {"url": url, "posters_dir": str(tmp_path / "posters")},
            "tmdb": {"image_base_url": sb.image_base_url},
            "posters": {
                "max_workers": 2,
                "rate_limit": "100000/1s",
                "timeout_s": 10.0,
                "verify_processes": 0,
                "claim_batch": 6,
                "lease_seconds": LEASE_S,
            },
        },
    )


def start_worker(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reelset", "--config", str(cfg), "posters", "--worker", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def claims_of(store: Store, worker: str) -> set[int]:
    c = schema.poster_claims
    with store.read() as conn:
        return set(conn.execute(select(c.c.tmdb_id).where(c.c.worker == worker)).scalars())


def fetches_by_movie(sb: Sandbox, paths: dict[int, str]) -> dict[int, int]:
    """Image requests the server received per movie (its poster's path)."""
    attempts = sb.counters.attempts
    return {
        tmdb_id: sum(n for key, n in attempts.items() if key.endswith(path))
        for tmdb_id, path in paths.items()
    }


def wait_for(condition: Any, what: str, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, (what, proc.communicate())
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_three_workers_one_killed_mid_batch(
    pg_url: str,
    sandbox: Sandbox,
    catalog: Catalog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store(pg_url)
    store.upgrade()
    ids = store_movies(store, catalog, catalog.ids())
    paths = {i: catalog.record(i)["poster_path"] for i in ids}  # type: ignore[index]
    wanted = {i: p for i, p in paths.items() if p}
    assert len(wanted) >= 70
    cfg = config(tmp_path, pg_url, sandbox)

    workers = [start_worker(cfg) for _ in range(3)]
    victim = workers[0]
    victim_name = f"{socket.gethostname()}:{victim.pid}"
    try:
        # Mid-batch: the victim holds claims and the server is answering images.
        wait_for(
            lambda: len(claims_of(store, victim_name)) > 0
            and sandbox.counters.images_served >= 12,
            "the victim to work on a batch",
            workers,
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        orphaned = claims_of(store, victim_name)  # what it died holding
        assert orphaned, "the kill did not land mid-batch"

        # Its live claims keep a plain run out (until they lapse).
        capsys.readouterr()  # only what the plain run prints
        assert main(["--config", str(cfg), "posters"]) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("reelset: error: poster workers are running")

        summaries = []
        for proc in workers[1:]:
            out, err_text = proc.communicate(timeout=DEADLINE_S)
            assert proc.returncode == 0, err_text
            summaries.append(json.loads(out))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # Every obtainable poster ends ok, the ones without a poster missing.
    rows = poster_rows(store)
    assert set(rows) == set(ids)
    assert {i for i, r in rows.items() if r["status"] == "ok"} == set(wanted)
    assert all(rows[i]["status"] == "missing" for i in set(ids) - set(wanted))
    # Fetched once each, but for the killed worker's batch, claimed again once its lease
    # lapsed (fetched at most twice: by the victim and by the worker that took it over).
    fetches = fetches_by_movie(sandbox, wanted)
    assert {i for i, n in fetches.items() if n != 1} <= orphaned, fetches
    assert all(1 <= fetches[i] <= 2 for i in orphaned & set(wanted))
    assert sum(s["ok"] for s in summaries) >= len(orphaned & set(wanted))
    assert all(s["failed"] == 0 and s["rejected"] == 0 for s in summaries)

    with store.read() as conn:
        live = conn.execute(text("SELECT count(*) FROM poster_claims WHERE lease_until > now()"))
        assert live.scalar_one() == 0
        runs = conn.execute(
            select(schema.scrape_runs.c.status, schema.scrape_runs.c.params)
            .where(schema.scrape_runs.c.command == "posters")
            .order_by(schema.scrape_runs.c.run_id)
        ).all()
    by_worker = {r.params["worker"]: r.status for r in runs}
    assert len(by_worker) == 3
    # Closed by the next posters run starting on this host (a worker slow to start, or
    # the plain run below).
    assert by_worker.pop(victim_name) in ("running", "interrupted")
    assert set(by_worker.values()) == {"succeeded"}

    # The rows and files agree; a plain run finds nothing left and closes the dead run.
    # The SIGKILL may land mid-write: at most a temporary file per thread is left, never a
    # partial file under a final name, and --repair removes it.
    code = main(["--config", str(cfg), "posters", "verify", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["problems_found"] == report["stale_temp"] <= 8, report
    assert code == (1 if report["stale_temp"] else 0)
    if report["stale_temp"]:
        assert main(["--config", str(cfg), "posters", "verify", "--repair", "--json"]) == 0
        capsys.readouterr()
        assert main(["--config", str(cfg), "posters", "verify", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
    assert report["problems_found"] == 0, report
    assert report["rows_checked"] == len(wanted)
    assert report["files_ok"] == len({r["sha256"] for r in rows.values() if r["sha256"]})
    assert main(["--config", str(cfg), "posters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["movies"] == 0
    with store.read() as conn:
        status = conn.execute(
            text("SELECT status FROM scrape_runs WHERE params->>'worker' = :w"), {"w": victim_name}
        ).scalar_one()
    assert status == "interrupted"
    store.close()


def test_sqlite_store_refuses_workers(
    sqlite_store: Store,
    sqlite_url: str,
    catalog: Catalog,
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_movies(sqlite_store, catalog, catalog.ids()[:5])
    cfg = config(tmp_path, sqlite_url, sandbox)
    assert main(["--config", str(cfg), "posters", "--worker"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "reelset: error: poster workers need a PostgreSQL store; a sqlite store runs one "
        "poster download at a time: run `reelset posters` without --worker"
    ]
    assert sandbox.counters.images_served == 0
    assert poster_rows(sqlite_store) == {}
    with sqlite_store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM scrape_runs")).scalar_one() == 0
