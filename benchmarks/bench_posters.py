"""Benchmark: 2,000 w500 posters from the sandbox image server (20 ms latency per image).

Measured side by side in one run, against the same server and the same URLs:

  * reelset: ``download_posters`` = stream + verify completely with Pillow + sha256 +
    perceptual hash + atomic content-addressed write (fsync) + posters rows in SQLite;
  * img2dataset (the standard bulk image downloader), installed in its own virtual
    environment ``benchmarks/.venv-img2dataset`` (created here on first use with
    ``python -m venv`` and ``pip install img2dataset``; never a reelset dependency),
    configured to do comparable work: ``resize_mode="no"``, ``skip_reencode=True`` (each
    image is decoded with OpenCV and its original bytes kept), ``compute_hash="sha256"``,
    ``output_format="files"``, no EXIF extraction.

Both get the same concurrency budget: ``--concurrency`` simultaneous downloads (default
16). reelset runs them as threads of one process (``[posters] max_workers``, politeness
limit lifted), decoding and hashing in its verifier processes (``verify_processes``: auto,
one per CPU but one, at least one); img2dataset in each configuration of
``--i2d-processes`` (default ``1,2``: 1 process x 16 threads and 2 processes x 8 threads,
one per core here), ``processes`` x ``concurrency / processes`` threads. The server runs
in its own process with every picture rendered and cached before the clock starts, so
neither tool pays for rendering.

Each tool runs ``--rounds`` times (default 3), interleaved, each time into a fresh folder
(and store), as the machine may be shared. Reported per tool: images/s (wall time of the
download call, without interpreter start-up) and CPU/img (user+system CPU time of the
tool's processes during the download, per image; the server's is not included), each as
median (range), and peak RSS (sum over the tool's process tree, sampled every 20 ms).
The image server's own CPU per image served is printed too: it shares the machine's
cores with the tool it serves (a real CDN would not), so when the machine is CPU-bound
the images/s ratio is squeezed toward 1 by the server's share.
img2dataset's best configuration is the one with the highest median images/s; both
ratios to it (images/s and CPU per image) are taken round by round, reelset against that
configuration's run of the same round, and reported as median (range). Target: reelset
>= 1.5 x img2dataset's best configuration in images/s, with verification complete, and
at most 0.6 x its CPU per image (CPU per image is the robust figure on a shared machine).
The load average before and after is printed too.

Usage: ``.venv/bin/python benchmarks/bench_posters.py [--posters 2000] [--latency-ms 20]
[--concurrency 16] [--i2d-processes 1,2] [--rounds 3] [--skip-img2dataset]``

The workers case (``--case workers``) measures how poster throughput scales with
``reelset posters --worker`` processes sharing one PostgreSQL store (claims with ``FOR
UPDATE SKIP LOCKED`` under leases): 1, 2 and 4 workers (``--workers 1,2,4``), each with
``--worker-threads`` download threads (default 2) and its decoding in those threads,
against the same image server process (20 ms per image). Each round uses a fresh
PostgreSQL database (``$REELSET_BENCH_POSTGRES_URL``, else ``$REELSET_TEST_POSTGRES_URL``,
else ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; an admin URL: a database
is created and dropped per run) and a fresh posters folder, or with ``--s3`` a fresh
prefix of a bucket on a local moto S3 server (``python -m moto.server``). Reported:
posters/s per worker count (all posters over the span from the first worker's run start
to the last one's end, as recorded in ``scrape_runs``: interpreter start-up aside),
median and range over ``--rounds``, and the scaling ratio to one worker. Target: 2
workers at least 1.7 times one worker on a 2-core machine. Every run checks that each
poster was claimed and recorded exactly once.

``.venv/bin/python benchmarks/bench_posters.py --case workers [--posters 1000]
[--workers 1,2,4] [--worker-threads 2] [--rounds 3] [--s3]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
I2D_VENV = HERE / ".venv-img2dataset"

SERVER = r"""
import sys
from reelset.sandbox import Catalog, Sandbox
from reelset.sandbox.poster_render import PictureCache

n, latency_ms = int(sys.argv[1]), float(sys.argv[2])
catalog = Catalog.synthetic(n, seed=7)
sb = Sandbox(catalog=catalog, rate=None, latency_ms=0, image_latency_ms=latency_ms)
sb._pictures = PictureCache(max_bytes=1 << 30)  # hold every picture: no re-rendering
sb.start()
paths = [catalog.record(i)["poster_path"] for i in catalog.ids()]
print(sb.image_base_url, flush=True)
for path in paths:
    if path:
        print(path, flush=True)
print("END", flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
sb.stop()
"""

REELSET = r"""
import json, os, sys, time
from pathlib import Path
from reelset.config import settings_from_dict
from reelset.posters.download import download_posters, verify_processes_for
from reelset.storage import MovieRecord, Store

work, base, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
paths = Path(sys.argv[4]).read_text().split()
store = Store(f"sqlite:///{work / 'reelset.db'}")
store.upgrade()
store.movies.upsert(
    [MovieRecord(tmdb_id=i + 1, title=f"m{i}", poster_path=p) for i, p in enumerate(paths)]
)
settings = settings_from_dict(
    {
        "storage": {"posters_dir": str(work / "posters")},
        "tmdb": {"poster_size": "w500"},
        "posters": {"max_workers": workers, "rate_limit": "1000000/1s"},
    },
    base_dir=work,
)
cpu0, started = os.times(), time.perf_counter()
summary = download_posters(store, settings, image_base_url=base, show_progress=False)
elapsed, cpu1 = time.perf_counter() - started, os.times()
cpu = sum(cpu1[:4]) - sum(cpu0[:4])
processes = verify_processes_for(settings, len(paths))
print(json.dumps({"elapsed": elapsed, "ok": summary.ok, "cpu": cpu, "processes": processes}))
"""

IMG2DATASET = r"""
import json, math, os, sys, time
from pathlib import Path
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
from img2dataset import download

urls, out, processes, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
n = sum(1 for _ in open(urls))
cpu0, started = os.times(), time.perf_counter()
download(
    url_list=urls, input_format="txt", output_folder=out, output_format="files",
    processes_count=processes, thread_count=threads,
    number_sample_per_shard=math.ceil(n / processes), resize_mode="no", skip_reencode=True,
    encode_format="jpg", compute_hash="sha256", extract_exif=False, timeout=20, retries=3,
    distributor="multiprocessing", enable_wandb=False,
)
elapsed, cpu1 = time.perf_counter() - started, os.times()
cpu = sum(cpu1[:4]) - sum(cpu0[:4])  # user + system, of this process and its children
ok = sum(json.loads(p.read_text())["successes"] for p in Path(out).glob("*_stats.json"))
print(json.dumps({"elapsed": elapsed, "ok": ok, "cpu": cpu}))
"""


WORKER_TIMEOUT_S = 900


@dataclass(frozen=True)
class WorkerRun:
    """One measured run of ``workers`` poster worker processes."""

    workers: int
    posters: int
    span_s: float
    wall_s: float


def _pg_admin_url() -> str:
    return os.environ.get(
        "REELSET_BENCH_POSTGRES_URL",
        os.environ.get(
            "REELSET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )


def _toml_value(value: object) -> str:
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _toml(sections: dict[str, dict[str, object]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


class _MotoServer:
    """A local S3 server (moto) in a child process, with dummy credentials."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "bench-key",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(f"{self.endpoint}/bench", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def workers_run(
    workers: int, *, base: str, paths: list[str], work: Path, threads: int, moto: _MotoServer | None
) -> WorkerRun:
    """Run ``workers`` worker processes on a fresh PostgreSQL store until every poster is
    recorded; returns the measurement (and checks nothing was claimed twice)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from reelset.storage import MovieRecord, Store

    admin_url = _pg_admin_url()
    name = f"reelset_bench_{os.getpid()}_{time.monotonic_ns()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    run_dir = work / name
    run_dir.mkdir()
    env = dict(os.environ)
    storage: dict[str, object] = {"url": url, "posters_dir": str(run_dir / "posters")}
    if moto is not None:
        storage["posters_dir"] = f"s3://bench/{name}"
        storage["storage_options"] = {"endpoint_url": moto.endpoint}
        env.update(moto.env)
    cfg = run_dir / "config.toml"
    cfg.write_text(
        _toml(
            {
                "storage": storage,
                "tmdb": {"image_base_url": base, "poster_size": "w500"},
                "posters": {
                    "max_workers": threads,
                    "rate_limit": "1000000/1s",
                    "verify_processes": 0,
                    "claim_batch": 64,
                    "lease_seconds": 300.0,
                },
            }
        )
    )
    try:
        with Store(url) as store:
            store.upgrade()
            store.movies.upsert(
                [MovieRecord(tmdb_id=i + 1, title=f"m{i}", poster_path=p)
                 for i, p in enumerate(paths)]
            )
        cmd = [sys.executable, "-m", "reelset", "--config", str(cfg), "posters", "--worker",
               "--json"]
        started = time.perf_counter()
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for _ in range(workers)
        ]
        outputs = [p.communicate(timeout=WORKER_TIMEOUT_S) for p in procs]
        wall = time.perf_counter() - started
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            if proc.returncode != 0:
                sys.stderr.write(err.decode(errors="replace")[-3000:])
                raise SystemExit(f"a poster worker failed with exit code {proc.returncode}")
        summaries = [json.loads(out) for out, _err in outputs]
        claimed = sum(s["movies"] for s in summaries)
        ok = sum(s["ok"] for s in summaries)
        if claimed != len(paths) or ok != len(paths):
            raise SystemExit(f"{workers} workers: claimed {claimed}, ok {ok} of {len(paths)}")
        with Store(url) as store, store.read() as conn:
            first, last, count = conn.execute(
                text(
                    "SELECT min(started_at), max(finished_at), count(*) FROM scrape_runs "
                    "WHERE command = 'posters' AND status = 'succeeded'"
                )
            ).one()
            recorded = conn.execute(
                text("SELECT count(*) FROM posters WHERE status = 'ok'")
            ).scalar_one()
        if count != workers or recorded != len(paths):
            raise SystemExit(f"{workers} workers: {count} runs, {recorded} posters recorded")
        return WorkerRun(workers, ok, (last - first).total_seconds(), wall)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def workers_case(args: argparse.Namespace, base: str, paths: list[str]) -> None:
    """The workers case: interleaved rounds of 1, 2, 4... workers; medians and ranges."""
    counts = [int(n) for n in args.workers.split(",")]
    moto = _MotoServer() if args.s3 else None
    results: list[WorkerRun] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            for _ in range(args.rounds):
                for n in counts:
                    run = workers_run(n, base=base, paths=paths, work=Path(tmp),
                                      threads=args.worker_threads, moto=moto)
                    print(f"  {n} worker(s): {run.posters / run.span_s:.1f} posters/s "
                          f"(span {run.span_s:.2f} s, wall {run.wall_s:.2f} s)", flush=True)
                    results.append(run)
    finally:
        if moto is not None:
            moto.stop()
    where = "a local moto S3 server" if args.s3 else "a local folder"
    print(
        f"\n{len(paths)} posters (w500), image latency {args.latency_ms:g} ms, "
        f"{args.worker_threads} download threads per worker, PostgreSQL store, files to "
        f"{where}, {os.cpu_count()} CPUs, {args.rounds} rounds\n"
    )
    print(f"{'workers':>7} {'posters/s: median (range)':>28} {'scaling: median (range)':>26}")
    one = [r.posters / r.span_s for r in results if r.workers == counts[0]]
    for n in counts:
        rates = [r.posters / r.span_s for r in results if r.workers == n]
        ratios = [rate / base_rate for rate, base_rate in zip(rates, one, strict=True)]
        print(
            f"{n:>7} {statistics.median(rates):>12.1f} ({min(rates):.1f}-{max(rates):.1f})"
            f"{statistics.median(ratios):>17.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    if 2 in counts and counts[0] == 1:
        two = [r.posters / r.span_s for r in results if r.workers == 2]
        ratio = statistics.median(two) / statistics.median(one)
        print(f"\n2 workers / 1 worker (medians): {ratio:.2f} (target >= 1.7)")


@dataclass(frozen=True)
class Run:
    """One measured run of a tool."""

    label: str
    elapsed: float
    ok: int
    peak: int
    cpu: float
    server_cpu: float


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_img2dataset() -> Path:
    """The img2dataset virtual environment's python, created on first use."""
    python = I2D_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {I2D_VENV} and installing img2dataset (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(I2D_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "img2dataset"], check=True)
    return python


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, int]:
    """Run ``cmd`` (which prints one JSON line last); returns its result and peak tree RSS."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1]), peak


def warm_up(urls: list[str], workers: int) -> None:
    """Fetch every URL once, so the server has rendered and cached every picture."""

    def get(url: str) -> int:
        with urllib.request.urlopen(url, timeout=60) as r:
            return len(r.read())

    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(get, urls))
    print(f"warm-up: {len(sizes)} posters, {sum(sizes) / len(sizes) / 1024:.1f} KiB on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posters", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--i2d-processes", default="1,2",
        help="img2dataset configurations: process counts, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per tool")
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument(
        "--case", choices=("compare", "workers"), default="compare",
        help="compare: reelset vs img2dataset; workers: PostgreSQL poster workers scaling",
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts (workers case)")
    parser.add_argument("--worker-threads", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="workers case: posters to moto S3")
    args = parser.parse_args()
    workers = args.case == "workers"
    i2d_processes = [int(n) for n in args.i2d_processes.split(",") if n.strip()]
    load_before = os.getloadavg()
    i2d_python = None if args.skip_img2dataset or workers else ensure_img2dataset()

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(int(args.posters * 1.05) + 50), str(args.latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        paths = []
        for line in server.stdout:
            if line.strip() == "END":
                break
            paths.append(line.strip())
        paths = paths[: args.posters]
        assert len(paths) == args.posters, "catalog too small"
        urls = [f"{base}w500{p}" for p in paths]
        warm_up(urls, args.concurrency)
        if workers:
            workers_case(args, base, paths)
            return
        with tempfile.TemporaryDirectory(prefix="bench-posters-") as tmp:
            work = Path(tmp)
            (work / "paths.txt").write_text("\n".join(paths) + "\n")
            (work / "urls.txt").write_text("\n".join(urls) + "\n")
            results: list[Run] = []

            def reelset_run() -> None:
                run_dir = work / f"reelset{len(results)}"
                run_dir.mkdir()
                server_cpu = _process_cpu(server.pid)
                res, peak = run_measured(
                    [sys.executable, "-c", REELSET, str(run_dir), base,
                     str(args.concurrency), str(work / "paths.txt")]
                )
                label = (
                    f"reelset ({args.concurrency} threads + {res['processes']} verifier proc, "
                    "verify+phash+fsync+SQLite)"
                )
                server_cpu = _process_cpu(server.pid) - server_cpu
                results.append(
                    Run(label, res["elapsed"], res["ok"], peak, res["cpu"], server_cpu)
                )

            def i2d_run(processes: int) -> None:
                assert i2d_python is not None
                out = work / f"i2d-{processes}-{len(results)}"
                threads = max(1, args.concurrency // processes)
                env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
                server_cpu = _process_cpu(server.pid)
                res, peak = run_measured(
                    [str(i2d_python), "-c", IMG2DATASET, str(work / "urls.txt"), str(out),
                     str(processes), str(threads)],
                    env=env,
                )
                server_cpu = _process_cpu(server.pid) - server_cpu
                label = f"img2dataset ({processes} proc x {threads} threads, decode+sha256)"
                results.append(
                    Run(label, res["elapsed"], res["ok"], peak, res["cpu"], server_cpu)
                )

            # Interleaved rounds: the machine's other load hits every tool alike.
            for _ in range(args.rounds):
                reelset_run()
                if i2d_python is not None:
                    for processes in i2d_processes:
                        i2d_run(processes)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)

    report(results, args, load_before)


def _span(values: list[float], fmt: str) -> str:
    """``median (min-max)`` of ``values``."""
    return (
        f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
    )


def report(results: list[Run], args: argparse.Namespace, load_before: tuple[float, ...]) -> None:
    """Print each tool's figures and reelset's ratios to img2dataset's best configuration."""
    load_after = os.getloadavg()
    print(
        f"\n{args.posters} posters (w500, 500x750 JPEG), image latency {args.latency_ms:g} ms, "
        f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, {args.rounds} rounds; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n"
    )
    print(
        f"{'tool':<66} {'images/s: median (range)':>25} {'ok':>5} "
        f"{'CPU ms/img: median (range)':>27} {'peak RSS':>9}"
    )
    by_label: dict[str, list[Run]] = {}
    for r in results:
        by_label.setdefault(r.label, []).append(r)
    rates = {label: [r.ok / r.elapsed for r in runs] for label, runs in by_label.items()}
    cpus = {
        label: [1000 * r.cpu / max(r.ok, 1) for r in runs] for label, runs in by_label.items()
    }
    for label, runs in by_label.items():
        print(
            f"{label:<66} {_span(rates[label], '.1f'):>25} {min(r.ok for r in runs):5d} "
            f"{_span(cpus[label], '.2f'):>27} {max(r.peak for r in runs) / 2**20:6.0f} MB"
        )
    # The image server shares the machine's CPUs with the tool it serves (a real CDN
    # would not): shown so that a CPU-bound run can be told from a tool-bound one.
    print("\nimage server's CPU per image served (not in the figures above):")
    for label, runs in by_label.items():
        server = [1000 * r.server_cpu / max(r.ok, 1) for r in runs]
        print(f"  {label:<64} {_span(server, '.2f')} ms")
    ours = next(label for label in by_label if label.startswith("reelset"))
    theirs = [label for label in by_label if label.startswith("img2dataset")]
    if not theirs:
        return
    best = max(theirs, key=lambda label: statistics.median(rates[label]))
    # Round by round: each reelset run against the best configuration's run of its round.
    speed = [a / b for a, b in zip(rates[ours], rates[best], strict=True)]
    cpu = [a / b for a, b in zip(cpus[ours], cpus[best], strict=True)]
    print(f"\nbest img2dataset configuration (median images/s): {best}")
    print(f"images/s, reelset / that configuration, per round: {_span(speed, '.2f')} "
          "(target >= 1.5)")
    print(f"CPU per image, reelset / that configuration, per round: {_span(cpu, '.2f')} "
          "(target <= 0.6)")


if __name__ == "__main__":
    main()
