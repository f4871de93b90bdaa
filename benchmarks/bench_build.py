"""Benchmark: ``reelset build`` on a synthetic store of 1,000,000 movies, against the floor.

    .venv/bin/python benchmarks/bench_build.py [--movies 1000000] [--seed 7]

The store is made once from the sandbox's synthetic generator (``synthetic_movie``),
turned into ``MovieRecord`` s by the scraper's ``parse_movie`` and written through the
Store API, with posters rows (about 2% of them byte-identical and 1% near-identical to
another movie's) and IMDb genres (mostly the TMDB ones, with some noise) added by SQL.
It is cached under ``benchmarks/.cache/`` between runs (delete the file to remake it).

Then, in one run, side by side, each in its own subprocess (so wall time and peak RSS are
the child's alone, from ``os.wait4``'s resource usage of that child):

- the floor: reading the columns the builder reads from the store into Arrow tables, in
  the same chunks, and nothing else;
- ``reelset build`` itself (a fresh output folder, so a real build, not ``unchanged``).

Targets on the 2-core machine: <= 120 s and <= 4 GiB for 1M movies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from reelset.sandbox.genres import FOREIGN_GENRE_ID, FOREIGN_GENRE_NAME, MOVIE_GENRES
from reelset.sandbox.synthetic import synthetic_movie
from reelset.storage import Store, schema
from reelset.storage.records import Genre, MovieRecord
from reelset.tmdb.client import parse_movie

CACHE = Path(__file__).resolve().parent / ".cache"
STORE_FORMAT = 2  # bump when the generated store changes shape
TARGET_S = 120.0
TARGET_RSS = 4 * 1024**3
CHUNK = 5000

def _make_chunk(args: tuple[int, int, int]) -> list[MovieRecord]:
    seed, start, stop = args
    return [parse_movie(synthetic_movie(seed, i)) for i in range(start, stop)]


def _chunks(n: int, seed: int) -> Iterator[tuple[int, int, int]]:
    for start in range(0, n, CHUNK):
        yield seed, start, min(n, start + CHUNK)


def _hex64(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def _extra_rows(
    records: list[MovieRecord], seed: int, previous: list[tuple[int, str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """posters, imdb_titles and imdb_title_genres rows for one chunk of records."""
    posters: list[dict[str, Any]] = []
    titles: list[dict[str, Any]] = []
    genres: list[dict[str, Any]] = []
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    imdb_names = {v: k for k, v in _IMDB_MAP.items()}
    for r in records:
        rng = random.Random(seed * 1_000_003 + r.tmdb_id)
        if r.poster_path:
            sha = hashlib.sha256(r.poster_path.encode()).hexdigest()
            phash = _hex64(rng)
            roll = rng.random()
            if previous and roll < 0.02:  # byte-identical to an earlier movie's poster
                _, sha, phash = previous[rng.randrange(len(previous))]
            elif previous and roll < 0.03:  # near-identical: flip 1-3 bits
                _, _, base = previous[rng.randrange(len(previous))]
                value = int(base, 16)
                for _ in range(rng.randint(1, 3)):
                    value ^= 1 << rng.randrange(64)
                phash = f"{value:016x}"
            if len(previous) < 20_000:
                previous.append((r.tmdb_id, sha, phash))
            else:
                previous[rng.randrange(len(previous))] = (r.tmdb_id, sha, phash)
            posters.append(
                {
                    "tmdb_id": r.tmdb_id,
                    "status": "ok" if rng.random() < 0.97 else "failed",
                    "sha256": sha,
                    "file_path": f"{sha[:2]}/{sha}.jpg",
                    "width": 500,
                    "height": 750,
                    "format": "JPEG",
                    "phash": phash,
                    "poster_path": r.poster_path,
                    "attempts": 1,
                }
            )
        if r.imdb_id and not any(t["imdb_id"] == r.imdb_id for t in titles[-2:]):
            titles.append(
                {
                    "imdb_id": r.imdb_id,
                    "title_type": "movie",
                    "primary_title": r.title,
                    "is_adult": r.adult,
                    "start_year": r.year,
                    "imported_at": now,
                }
            )
            names = {imdb_names[g] for g in r.genre_ids if g in imdb_names}
            if rng.random() < 0.2:
                names.add(rng.choice(["Biography", "Sport", "Drama", "Comedy", "Film-Noir"]))
            if names and rng.random() < 0.1:
                names.discard(sorted(names)[0])
            genres.extend({"imdb_id": r.imdb_id, "genre": g} for g in sorted(names))
    return posters, titles, genres


_IMDB_MAP = {
    "Action": 28, "Adventure": 12, "Animation": 16, "Comedy": 35, "Crime": 80,
    "Documentary": 99, "Drama": 18, "Family": 10751, "Fantasy": 14, "History": 36,
    "Horror": 27, "Music": 10402, "Mystery": 9648, "Romance": 10749, "Sci-Fi": 878,
    "Thriller": 53, "War": 10752, "Western": 37,
}  # fmt: skip


def ensure_store(n: int, seed: int) -> Path:
    """The cached synthetic store for (n, seed), made on first use."""
    path = CACHE / f"store-{n}-{seed}-f{STORE_FORMAT}.db"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    for p in CACHE.glob(tmp.name + "*"):
        p.unlink()
    print(f"making the synthetic store of {n:,} movies (cached in {path}) ...", flush=True)
    started = time.perf_counter()
    store = Store(f"sqlite:///{tmp}", batch_size=CHUNK)
    store.upgrade()
    store.movies.upsert_genres(
        [Genre(i, name) for i, name in MOVIE_GENRES]
        + [Genre(FOREIGN_GENRE_ID, FOREIGN_GENRE_NAME, "patched")]
    )
    previous: list[tuple[int, str, str]] = []
    done = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for records in pool.imap(_make_chunk, _chunks(n, seed), chunksize=1):
            store.movies.upsert(records)
            posters, titles, genres = _extra_rows(records, seed, previous)
            with store.write() as conn:
                if posters:
                    conn.execute(schema.posters.insert(), posters)
                if titles:
                    conn.execute(
                        schema.imdb_titles.insert().prefix_with("OR IGNORE"), titles
                    )
                if genres:
                    conn.execute(
                        schema.imdb_title_genres.insert().prefix_with("OR IGNORE"), genres
                    )
            done += len(records)
            if done % 100_000 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"  {done:,} movies ({rate:,.0f}/s)", flush=True)
    with store.write() as conn:
        conn.execute(text("ANALYZE"))
    store.close()
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    print(f"store made in {time.perf_counter() - started:.0f}s", flush=True)
    return path


def _run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a child process; its wall time, its own peak RSS (bytes) and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage alone
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            sys.stderr.write(stdout + err.read())
            raise SystemExit(f"child failed ({proc.returncode}): {' '.join(argv)}")
    return wall, usage.ru_maxrss * 1024, stdout  # ru_maxrss is in KiB on Linux


FLOOR_CODE = """
import sys, time
from reelset.config import load_settings
from reelset.dataset.read import read_store_arrow
from reelset.storage import Store
settings = load_settings()
store = Store(settings.database_url)
tables = read_store_arrow(store)
print(sum(t.num_rows for t in tables.values()))
"""


def main() -> int:
    """Make (or reuse) the store, then measure the floor and the build side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the built dataset")
    args = parser.parse_args()

    db = ensure_store(args.movies, args.seed)
    work = Path(tempfile.mkdtemp(prefix="reelset-bench-"))
    try:
        config = work / "config.toml"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{db}"\n\n[build]\noutput_dir = "{work / "out"}"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "REELSET_CONFIG": str(config), "REELSET_PROGRESS_INTERVAL": "30"}
        py = sys.executable

        floor_s, floor_rss, floor_out = _run_child([py, "-c", FLOOR_CODE], env)
        build_s, build_rss, build_out = _run_child(
            [py, "-m", "reelset.cli", "build", "--json"], env
        )
        summary = json.loads(build_out)
        rows = summary.get("rows", {})
        print(f"movies in store:        {args.movies:,}")
        print(f"rows in dataset:        {rows}")
        print(f"removed per rule:       {summary.get('removed')}")
        print(f"poster duplicates:      {summary.get('poster_duplicates')}")
        print(f"floor (read to Arrow):  {floor_s:7.1f} s   peak RSS {floor_rss / 2**20:7.0f} MiB"
              f"   ({int(floor_out.strip() or 0):,} rows read)")
        print(f"reelset build:          {build_s:7.1f} s   peak RSS {build_rss / 2**20:7.0f} MiB")
        print(f"ratio build / floor:    {build_s / floor_s:7.2f} x time, "
              f"{build_rss / max(floor_rss, 1):.2f} x memory")
        scale = 1_000_000 / args.movies
        ok_time = build_s * scale <= TARGET_S
        ok_rss = build_rss <= TARGET_RSS
        print(f"targets (1M movies):    time {'OK' if ok_time else 'MISSED'} "
              f"(<= {TARGET_S:.0f} s), memory {'OK' if ok_rss else 'MISSED'} (<= 4 GiB)")
        if args.keep:
            print(f"dataset kept in {work / 'out'}")
        return 0 if ok_time and ok_rss else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
