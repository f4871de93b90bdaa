"""Benchmark: the scraper against a TMDB sandbox with 50 ms latency and a 50/1s limit,
and its pace after a 429 storm against a stricter server.

Measured side by side in one run, against the same sandbox (in its own process, started
with ``python -m reelset.sandbox serve --synthetic N --rate 50/1s --latency-ms 50``):

  * reelset: ``reelset scrape --strategy export`` (in-process ``run_scrape``) of every
    movie of the daily export (~2,000), ``[tmdb] rate_limit = "50/1s"``, 8 workers, a fresh
    SQLite store, no posters. Reported: the achieved request rate / the limit (target
    >= 0.95), requests per movie (target <= 1.05), 429s received (target 0), movies/s.
  * the notebooks' way: ``tmdbsimple`` sequentially, per movie a look-up (``/find`` by
    IMDb id: the sandbox has no ``/search``, and it is the same one request) plus the
    details, then ``time.sleep(1)``; 100 movies. Reported: movies/s.

The in-run rate is the rate-limited requests (genres + movies + retries) over the wall
time of the scrape (store opening and the export download included).

The whole process (``--process-runs``, repeated, median and range printed): the same
scrape as the command ``reelset --config FILE scrape --strategy export --no-posters
--json`` in its own process, against a sandbox in this process (same catalog, latency and
limit, a fresh one per run) whose counters count the API requests. Reported per run: the
API requests the sandbox received over the time from ``subprocess.Popen`` to the exit of
the command (interpreter start-up, imports, configuration, store creation, genre list,
export file, every movie, the last write and the interpreter's exit), / the limit (target
>= 0.97 for the median), the 429s (target 0), and that every movie was stored; with the
load average of the machine before each run (it is shared: compare with the load).

The storm case (``--storm-runs``, repeated, median and range printed): the server allows
10/1s while the client is configured 50/1s, and 20 % of the movie keys fail twice with an
injected 429 or 503 (half each: ``--faults rate=0.2,kinds=429+503,attempts=2``), 20 ms
latency, 8 workers, ``--storm-movies`` movies by ``export``. Every 429 looks the same to
the client, so the sandbox runs in this process here: its counters tell the rate-limit
429s from the injected ones. Reported per run: the *admitted* rate (requests the server's
limiter let through, injected faults included, over the scrape's wall time) / the
server's limit (target >= 0.8), the request rate (every request sent, what the client
paced) / the limit, the 429s of each kind, and that nothing was lost (every movie
stored, no failure).

The child keeps its compiled bytecode in a temporary ``PYTHONPYCACHEPREFIX`` (warmed by
one small scrape first), as an installed reelset has its ``.pyc`` files; in an environment
with ``PYTHONDONTWRITEBYTECODE=1`` and an editable install, every start would otherwise
compile reelset's modules again (about 0.15 s of CPU). ``--no-bytecode-cache`` measures
that way. Per run it also prints the start-up (process start to the first API request),
the paced phase (first to last API request), the tail (last API request to exit) and the
child's CPU time. The scrape creates its store (the schema through alembic: about a
third of the start-up); ``--existing-store`` makes it beforehand with ``reelset db init``,
as every scheduled run but the first finds it.

Usage: ``.venv/bin/python benchmarks/bench_scrape.py [--movies 2000] [--baseline 100]
[--process-runs 3] [--storm-movies 600] [--storm-runs 3] [--only rate|process|storm]
[--no-bytecode-cache] [--existing-store]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RATE = "50/1s"
LATENCY_MS = 50

STORM_SERVER_RATE = "10/1s"
STORM_SERVER_LIMIT = 10.0  # requests per second
STORM_CLIENT_RATE = "50/1s"
STORM_FAULTS = "rate=0.2,kinds=429+503,attempts=2,seed={seed}"
STORM_LATENCY_MS = 20
STORM_TARGET = 0.8
PROCESS_TARGET = 0.97


def start_sandbox(movies: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The sandbox in its own process; returns it and the URLs/key it prints."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "reelset.sandbox", "serve",
            "--synthetic", str(movies), "--seed", "0",
            "--rate", RATE, "--latency-ms", str(LATENCY_MS), "--port", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    info: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.match(r"^(API base URL|Exports base URL|API key):\s+(\S+)", line)
        if match:
            info[match.group(1)] = match.group(2)
        if line.startswith("Serving"):
            break
    if len(info) != 3:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {info}")
    # Keep draining its output so it never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, info


def scrape_settings(work: Path, api_base_url: str, exports_base_url: str, rate: str) -> Any:
    """reelset's settings for a scrape of the sandbox into ``work`` (8 workers, no posters)."""
    from reelset.config import settings_from_dict

    tmdb = {
        "api_base_url": api_base_url,
        "exports_base_url": exports_base_url,
        "rate_limit": rate,
        "max_workers": 8,
    }
    return settings_from_dict(
        {
            "storage": {"url": f"sqlite:///{work / 'reelset.db'}"},
            "tmdb": tmdb,
            "posters": {"enabled": False},
        },
        base_dir=work,
    )


def run_reelset(info: dict[str, str], work: Path) -> dict[str, float]:
    from reelset.tmdb.scrape import ScrapeOptions, run_scrape

    os.environ["TMDB_API_KEY"] = info["API key"]
    settings = scrape_settings(work, info["API base URL"], info["Exports base URL"], RATE)
    result = run_scrape(settings, ScrapeOptions(strategy="export", posters=False))
    summary = result.summary
    movies = summary["movies"]["fetched"] + summary["movies"]["gone"]
    limited = summary["requests"] - 1  # the export file is not an API request
    seconds = summary["scrape_s"]
    return {
        "status_ok": float(result.status == "succeeded"),
        "movies": movies,
        "requests": summary["requests"],
        "seconds": seconds,
        "rate": limited / seconds,
        "requests_per_movie": summary["requests"] / movies,
        "throttled": summary["throttled_429"],
        "movies_per_s": movies / seconds,
    }


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment of a ``reelset`` child: with ``pycache``, Python keeps compiled
    bytecode there (``PYTHONPYCACHEPREFIX``) even when ``PYTHONDONTWRITEBYTECODE`` is
    set, as an installed reelset has it; without, as this environment says."""
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_process(
    movies: int, pycache: Path | None = None, *, existing_store: bool = False
) -> dict[str, float]:
    """One ``reelset scrape`` in its own process (see the module docstring); with
    ``existing_store``, the store is made (``reelset db init``) before the clock starts."""
    from reelset.sandbox import Catalog, Sandbox

    reelset = Path(sys.executable).with_name("reelset")
    command = [str(reelset)] if reelset.exists() else [sys.executable, "-m", "reelset"]
    load = os.getloadavg()[0]
    with Sandbox(
        catalog=Catalog.synthetic(movies, 0), rate=RATE, latency_ms=LATENCY_MS
    ) as sandbox, tempfile.TemporaryDirectory(prefix="reelset-bench-process-") as tmp:
        # When each API request arrived (the sandbox's counters have no times): for the
        # phases printed, start-up, paced and tail.
        arrivals: list[float] = []
        counters_ = sandbox._counters
        count_request = counters_.request

        def timed(endpoint: str) -> None:
            if endpoint.startswith("/3/"):
                arrivals.append(time.perf_counter())
            count_request(endpoint)

        counters_.request = timed  # type: ignore[method-assign]
        work = Path(tmp)
        config = work / "config.toml"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{work / "reelset.db"}"\n'
            f'[tmdb]\napi_base_url = "{sandbox.api_base_url}"\n'
            f'exports_base_url = "{sandbox.exports_base_url}"\n'
            f'rate_limit = "{RATE}"\nmax_workers = 8\n'
            "[posters]\nenabled = false\n"
        )
        env = {**child_env(pycache), "TMDB_API_KEY": sandbox.api_key}
        if existing_store:
            subprocess.run(
                [*command, "--config", str(config), "-q", "db", "init"],
                cwd=work, env=env, check=True, stdout=subprocess.DEVNULL,
            )
        cpu_before = os.times()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*command, "--config", str(config), "-q", "scrape", "--strategy", "export",
             "--no-posters", "--json"],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = proc.communicate()
        ended = time.perf_counter()
        seconds = ended - started
        cpu_after = os.times()
        counters = sandbox.counters
        catalog = sandbox.catalog
        listed = sum(1 for i in catalog.ids() if not (catalog.record(i) or {}).get("adult"))
    if proc.returncode != 0:
        raise SystemExit(f"reelset scrape exited {proc.returncode}: {err[-2000:]}")
    summary = json.loads(out)
    api = sum(n for endpoint, n in counters.requests_by_endpoint.items()
              if endpoint.startswith("/3/"))
    stored = summary["movies"]["fetched"] + summary["movies"]["gone"]
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    return {
        "ratio": api / seconds / float(RATE.split("/")[0]),
        "seconds": seconds,
        "requests": api,
        "throttled": counters.rate_limited,
        "lost": float(listed - stored),
        "status_ok": float(summary["status"] == "succeeded"),
        "load": load,
        "cpu": cpu,
        "first_request": arrivals[0] - started if arrivals else seconds,
        "paced": arrivals[-1] - arrivals[0] if arrivals else 0.0,
        "tail": ended - arrivals[-1] if arrivals else 0.0,
    }


def warm_bytecode_cache(pycache: Path) -> None:
    """One small scrape, not measured: compiles what a scrape imports into ``pycache``."""
    run_process(20, pycache)


def report_process(runs: list[dict[str, float]], *, existing_store: bool = False) -> bool:
    """Print the whole-process runs, their median and range; whether the targets were met."""
    store = "an existing empty store" if existing_store else "a new store"
    print(
        f"reelset scrape in its own process (start to exit), {RATE}, {LATENCY_MS} ms "
        f"latency, into {store}"
    )
    for number, run in enumerate(runs, start=1):
        print(
            f"  run {number}: {run['requests']:.0f} API requests in {run['seconds']:.2f} s = "
            f"{run['ratio']:.3f} of the limit, {run['throttled']:.0f} × 429, lost "
            f"{run['lost']:.0f}; first API request at {run['first_request']:.2f} s, paced "
            f"{run['paced']:.2f} s, last request to exit {run['tail']:.2f} s; "
            f"{run['cpu']:.2f} s CPU (load average before: {run['load']:.2f})"
        )
    ratios = [run["ratio"] for run in runs]
    print(
        f"  whole process rate / limit: median {statistics.median(ratios):.3f}, range "
        f"{min(ratios):.3f}-{max(ratios):.3f}   (target >= {PROCESS_TARGET})"
    )
    for key, what in (("first_request", "start to first API request"),
                      ("tail", "last API request to exit"), ("cpu", "CPU time")):
        values = [run[key] for run in runs]
        print(
            f"  {what}: median {statistics.median(values):.2f} s, range "
            f"{min(values):.2f}-{max(values):.2f} s"
        )
    return (
        statistics.median(ratios) >= PROCESS_TARGET
        and all(run["throttled"] == 0 and run["lost"] == 0 for run in runs)
        and all(run["status_ok"] == 1.0 for run in runs)
    )


def run_notebook_way(info: dict[str, str], count: int) -> dict[str, float]:
    """tmdbsimple as the notebooks use it: sequential, look-up + details, sleep(1)."""
    import tmdbsimple as tmdb

    from reelset.sandbox.synthetic import synthetic_imdb_id, synthetic_record

    tmdb.API_KEY = info["API key"]
    base = info["API base URL"]
    started = time.perf_counter()
    done = 0
    requests_sent = 0
    for index in range(count):
        imdb_id = synthetic_imdb_id(0, index)
        if imdb_id:
            find = tmdb.Find(imdb_id)
            find.base_uri = base
            results = find.info(external_source="imdb_id")["movie_results"]
            requests_sent += 1
            tmdb_id = results[0]["id"] if results else synthetic_record(0, index)["id"]
        else:
            tmdb_id = synthetic_record(0, index)["id"]
        movie = tmdb.Movies(tmdb_id)
        movie.base_uri = base
        movie.info()
        requests_sent += 1
        done += 1
        time.sleep(1)
    seconds = time.perf_counter() - started
    return {"movies": done, "requests": requests_sent, "seconds": seconds,
            "movies_per_s": done / seconds}


def run_storm(movies: int, seed: int) -> dict[str, float]:
    """One scrape through a 429 storm (see the module docstring); its rates and losses."""
    from reelset.sandbox import Catalog, Sandbox, parse_fault_spec
    from reelset.tmdb.scrape import ScrapeOptions, run_scrape

    with Sandbox(
        catalog=Catalog.synthetic(movies, 0),
        rate=STORM_SERVER_RATE,
        latency_ms=STORM_LATENCY_MS,
        faults=parse_fault_spec(STORM_FAULTS.format(seed=seed)),
    ) as sandbox, tempfile.TemporaryDirectory(prefix="reelset-bench-storm-") as tmp:
        os.environ["TMDB_API_KEY"] = sandbox.api_key
        work = Path(tmp)
        settings = scrape_settings(
            work, sandbox.api_base_url, sandbox.exports_base_url, STORM_CLIENT_RATE
        )
        result = run_scrape(settings, ScrapeOptions(strategy="export", posters=False))
        counters = sandbox.counters
    summary = result.summary
    seconds = summary["scrape_s"]
    api_requests = summary["requests"] - 1  # the export file is not an API request
    limited = counters.rate_limited  # 429s of the server's limiter (not injected ones)
    catalog = Catalog.synthetic(movies, 0)
    listed = sum(1 for i in catalog.ids() if not (catalog.record(i) or {}).get("adult"))
    stored = summary["movies"]["fetched"] + summary["movies"]["gone"]
    return {
        "admitted_ratio": (api_requests - limited) / seconds / STORM_SERVER_LIMIT,
        "request_ratio": api_requests / seconds / STORM_SERVER_LIMIT,
        "seconds": seconds,
        "requests": summary["requests"],
        "limited_429": limited,
        "injected_429": counters.faults_injected.get("429", 0),
        "injected_503": counters.faults_injected.get("503", 0),
        "lost": float(listed - stored + summary["movies"]["failed"]),
        "status_ok": float(result.status == "succeeded"),
    }


def report_storm(runs: list[dict[str, float]]) -> bool:
    """Print the storm runs, their median and range; whether the targets were met."""
    print(
        f"429 storm: server {STORM_SERVER_RATE}, client {STORM_CLIENT_RATE}, faults "
        f"{STORM_FAULTS.format(seed='<run>')}, {STORM_LATENCY_MS} ms latency, 8 workers"
    )
    for number, run in enumerate(runs, start=1):
        print(
            f"  run {number}: admitted rate / limit {run['admitted_ratio']:.3f}, "
            f"request rate / limit {run['request_ratio']:.3f}, {run['requests']:.0f} requests "
            f"in {run['seconds']:.1f} s, 429s: {run['limited_429']:.0f} rate-limit + "
            f"{run['injected_429']:.0f} injected, {run['injected_503']:.0f} injected 503s, "
            f"lost {run['lost']:.0f}"
        )
    admitted = [run["admitted_ratio"] for run in runs]
    requested = [run["request_ratio"] for run in runs]
    print(
        f"  admitted rate / limit: median {statistics.median(admitted):.3f}, range "
        f"{min(admitted):.3f}-{max(admitted):.3f}   (target >= {STORM_TARGET})"
    )
    print(
        f"  request rate / limit:  median {statistics.median(requested):.3f}, range "
        f"{min(requested):.3f}-{max(requested):.3f}"
    )
    lost = sum(run["lost"] for run in runs)
    print(f"  movies lost: {lost:.0f}   (target 0)")
    return (
        statistics.median(admitted) >= STORM_TARGET
        and lost == 0
        and all(run["status_ok"] == 1.0 for run in runs)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=2000, help="catalog size (export)")
    parser.add_argument("--baseline", type=int, default=100, help="movies, notebooks' way")
    parser.add_argument("--process-runs", type=int, default=3, help="whole-process repetitions")
    parser.add_argument("--storm-movies", type=int, default=600, help="catalog, 429 storm")
    parser.add_argument("--storm-runs", type=int, default=3, help="429 storm repetitions")
    parser.add_argument(
        "--only", choices=("rate", "process", "storm"), help="run one case only"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="whole process: leave PYTHONDONTWRITEBYTECODE as it is (reelset's modules "
        "are then compiled at every start, unlike in an installed reelset)",
    )
    parser.add_argument(
        "--existing-store",
        action="store_true",
        help="whole process: make the store (reelset db init) before the clock starts, as "
        "for every scheduled run but the first (by default the scrape creates it)",
    )
    args = parser.parse_args()
    ok = True
    if args.only in (None, "rate"):
        ok = rate_case(args.movies, args.baseline) and ok
    if args.only in (None, "process"):
        with tempfile.TemporaryDirectory(prefix="reelset-bench-pycache-") as cache:
            pycache = None if args.no_bytecode_cache else Path(cache)
            if pycache is not None:
                warm_bytecode_cache(pycache)
                print("bytecode: cached (PYTHONPYCACHEPREFIX, warmed by one small scrape)")
            else:
                print(
                    "bytecode: as the environment says "
                    f"(PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})"
                )
            runs = [
                run_process(args.movies, pycache, existing_store=args.existing_store)
                for _ in range(args.process_runs)
            ]
        ok = report_process(runs, existing_store=args.existing_store) and ok
    if args.only in (None, "storm"):
        runs = [run_storm(args.storm_movies, seed) for seed in range(1, args.storm_runs + 1)]
        ok = report_storm(runs) and ok
    print("targets met" if ok else "TARGETS NOT MET")
    return 0 if ok else 1


def rate_case(movies: int, baseline: int) -> bool:
    """The 50/1s case against the notebooks' way; whether its targets were met."""
    proc, info = start_sandbox(movies)
    try:
        with tempfile.TemporaryDirectory(prefix="reelset-bench-scrape-") as tmp:
            ours = run_reelset(info, Path(tmp))
        time.sleep(1.1)  # let the sandbox's sliding window empty
        base = run_notebook_way(info, baseline)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    limit = 50.0
    print(f"sandbox: {LATENCY_MS} ms latency, rate limit {RATE}, synthetic catalog")
    print(
        f"reelset scrape --strategy export: {ours['movies']:.0f} movies, "
        f"{ours['requests']:.0f} requests in {ours['seconds']:.1f} s"
    )
    print(f"  achieved rate / limit:   {ours['rate']:.2f} / {limit:.0f} = "
          f"{ours['rate'] / limit:.3f}   (target >= 0.95)")
    print(f"  requests per movie:      {ours['requests_per_movie']:.3f}   (target <= 1.05)")
    print(f"  429s received:           {ours['throttled']:.0f}   (target 0)")
    print(f"  movies/s:                {ours['movies_per_s']:.2f}")
    print(
        f"notebooks' way (tmdbsimple, sequential, look-up + details + sleep(1)): "
        f"{base['movies']:.0f} movies in {base['seconds']:.1f} s"
    )
    print(f"  movies/s:                {base['movies_per_s']:.3f}")
    speedup = ours["movies_per_s"] / base["movies_per_s"]
    print(f"speed-up (movies/s, reelset / notebooks): {speedup:.1f}x")
    return (
        ours["rate"] / limit >= 0.95
        and ours["requests_per_movie"] <= 1.05
        and ours["throttled"] == 0
        and ours["status_ok"] == 1.0
    )


if __name__ == "__main__":
    sys.exit(main())
