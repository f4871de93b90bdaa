"""Benchmark: ``reelset build`` on a synthetic store of 1,000,000 movies, against the floor.

    .venv/bin/python benchmarks/bench_build.py [--movies 1000000] [--seed 7]
    .venv/bin/python benchmarks/bench_build.py --images [--image-movies 10000,50000]

``--images`` runs the images case instead (posters embedded in the build: see
:func:`images_main`).

The store is made once from the sandbox's synthetic generator (``synthetic_movie``),
turned into ``MovieRecord`` s by the scraper's ``parse_movie`` and written through the
Store API, with posters rows (about 2% of them byte-identical and 1% near-identical to
another movie's) and IMDb genres (mostly the TMDB ones, with some noise) added by SQL.
It is cached under ``benchmarks/.cache/`` between runs (delete the file to remake it).

The build is a metadata build (``images = "reference"``): the poster files are only
checked to exist, so the posters folder holds an empty placeholder file per poster row
(made once, cached beside the store).

Then, ``--repeat`` rounds (default 3), each running side by side, each in its own
subprocess (so wall time and peak RSS are the child's alone, from ``os.wait4``'s resource
usage of that child):

- the floor: a plain ``sqlite3`` read of the columns the builder reads (the same SQL) into
  Arrow tables, in chunks of 50,000 rows, in one transaction, and nothing else;
- ``reelset build`` itself (a fresh output folder, so a real build, not ``unchanged``).

It prints medians with [min-max] ranges of wall time, CPU time (user + system, which
depends far less on the machine's load than wall time) and peak RSS, the ratios to the
floor, the load average (the machine may be shared), and the build's time per stage
(from its debug log lines ``plan stage ...`` and ``write stage ...``; "before the plan"
is start-up, the store and the read). Targets on the 2-core machine: the build's median
time at most 0.8 x the floor's, and its peak RSS at most 1.5 GiB, for 1M movies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import random
import re
import shutil
import statistics
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
TARGET_RATIO = 0.8  # build time / floor time, medians
TARGET_RSS = 1.5 * 1024**3
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


def _new_store(path: Path, batch_size: int, what: str) -> tuple[Path, Store, float]:
    """A fresh store at a temporary name beside ``path``, with TMDB's genres."""
    tmp = path.with_suffix(".tmp")
    for p in CACHE.glob(tmp.name + "*"):
        p.unlink()
    print(f"making {what} (cached in {path}) ...", flush=True)
    started = time.perf_counter()
    store = Store(f"sqlite:///{tmp}", batch_size=batch_size)
    store.upgrade()
    store.movies.upsert_genres(
        [Genre(i, name) for i, name in MOVIE_GENRES]
        + [Genre(FOREIGN_GENRE_ID, FOREIGN_GENRE_NAME, "patched")]
    )
    return tmp, store, started


def _finish_store(store: Store, tmp: Path, path: Path, started: float) -> None:
    """Close the store made by :func:`_new_store` and move it to ``path``."""
    store.close()
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    print(f"store made in {time.perf_counter() - started:.0f}s", flush=True)


def ensure_store(n: int, seed: int) -> Path:
    """The cached synthetic store for (n, seed), made on first use."""
    path = CACHE / f"store-{n}-{seed}-f{STORE_FORMAT}.db"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp, store, started = _new_store(path, CHUNK, f"the synthetic store of {n:,} movies")
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
    _finish_store(store, tmp, path, started)
    return path


def ensure_poster_files(db: Path, n: int, seed: int) -> Path:
    """A posters folder with an empty placeholder file for every ok poster row of ``db``.

    A metadata build (``images = "reference"``) only checks that each poster file exists;
    the store's rows point at files that were never downloaded. Made once, cached.
    """
    import sqlite3

    folder = CACHE / f"posters-{n}-{seed}-f{STORE_FORMAT}"
    done = folder / ".complete"
    if done.exists():
        return folder
    print(f"making {folder.name} (empty poster files) ...", flush=True)
    with sqlite3.connect(db) as conn:
        files = [f for (f,) in conn.execute(
            "SELECT DISTINCT file_path FROM posters WHERE status = 'ok' AND file_path IS NOT NULL")]
    for sub in {f.rsplit("/", 1)[0] for f in files if "/" in f}:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for f in files:
        os.close(os.open(folder / f, os.O_CREAT | os.O_WRONLY, 0o644))
    done.touch()
    return folder


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
import gc, pickle, sqlite3, sys
import pyarrow as pa
db, queries = sys.argv[1], pickle.load(open(sys.argv[2], "rb"))
gc.disable()
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("BEGIN")
rows_read = 0
for name, (sql, wire, chunk) in queries.items():
    cursor = conn.execute(sql)
    batches = []
    while rows := cursor.fetchmany(chunk):
        batches.append(pa.RecordBatch.from_struct_array(pa.array(rows, type=wire)))
    rows_read += sum(b.num_rows for b in batches)
conn.execute("ROLLBACK")
print(rows_read)
"""


def floor_queries() -> dict[str, tuple[str, Any, int]]:
    """The floor's queries: the SQL text of the columns a build reads (the SQLAlchemy
    reader's queries, compiled for SQLite), the DB-API row type, and the chunk size.

    The floor is a plain ``sqlite3`` read of these into Arrow, chunk by chunk, in one
    transaction, and nothing else: no SQLAlchemy, no ADBC, no narrowing, no imports of
    reelset in the child. So it stays what it measured before the builder changed.
    """
    import pyarrow as pa
    from sqlalchemy.dialects import sqlite

    from reelset.dataset.read import CHUNK_ROWS, queries

    dialect = sqlite.dialect()
    out = {}
    for name, (stmt, arrow_schema) in queries().items():
        sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        wire = pa.struct([pa.field(f.name, pa.int8()) if f.type == pa.bool_() else f
                          for f in arrow_schema])
        out[name] = (sql, wire, CHUNK_ROWS)
    return out


# --- the images case (issue 11): posters embedded in a build --------------------------------
#
#     .venv/bin/python benchmarks/bench_build.py --images [--image-movies 10000,50000]
#
# A store of N movies, each with a distinct synthetic w500 JPEG poster in a posters folder
# shared by every N (content-addressed, so the first 10,000 movies of the 50,000 store have
# the same files as the 10,000 store), cached under benchmarks/.cache/. Then, per round,
# each in its own subprocess: the floor (every poster file of the dataset's movies appended
# to one file by plain Python), `reelset build` with images = "embed" as-is
# (image_max_side = 0) and with image_max_side = 384.

IMAGES_FORMAT = 1  # bump when the generated posters or store change
IMAGE_CASES = (("reference", "reference", 0), ("as-is", "embed", 0),
               ("max_side 384", "embed", 384))
"""(label, [build] images, image_max_side): "reference" writes no images, so its wall
time is the build's fixed cost (imports, store, plan, baseline, card)."""
TARGET_IMAGES_RATIO = 0.5  # as-is rate / floor rate
TARGET_RESIZED_RATE = 250.0  # images/s with image_max_side = 384
TARGET_IMAGES_RSS = 1.5 * 1024**3
POSTER_CHUNK = 500
POSTER_POOL = 10_000  # movies with posters of their own pixels


def synthetic_poster(seed: int, tmdb_id: int, width: int = 500, height: int = 750) -> bytes:
    """A distinct w500 JPEG (40-90 KB) that compresses like a real poster: a four-colour
    gradient, flat shapes, and a blend of coarse grain (film grain, printed texture)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, tmdb_id])
    corners = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
    image = Image.fromarray(corners, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 16))):
        x0, y0 = int(rng.integers(-100, width)), int(rng.integers(-100, height))
        box = (x0, y0, x0 + int(rng.integers(20, 300)), y0 + int(rng.integers(20, 300)))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    grain = rng.integers(0, 256, (height // 2, width // 2), dtype=np.uint8)
    noise = Image.fromarray(grain, "L").resize((width, height), Image.Resampling.BILINEAR)
    image = Image.blend(image, Image.merge("RGB", (noise, noise, noise)),
                        float(rng.uniform(0.05, 0.2)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


_POOL_FILES: dict[int, str] = {}
"""Pixel pool for the store being made: tmdb_id -> poster file (inherited by fork)."""


def _with_comment(jpeg: bytes, comment: bytes) -> bytes:
    """``jpeg`` with a COM segment after SOI: other bytes, same pixels."""
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def _poster_bytes(seed: int, index: int, tmdb_id: int, posters_dir: Path) -> bytes:
    """Movie ``index``'s poster: drawn for the first POSTER_POOL movies; beyond, the pool
    poster of movie ``index % POSTER_POOL`` with a COM segment naming this movie."""
    if index < POSTER_POOL:
        if tmdb_id in _POOL_FILES:  # drawn for the pool store already
            return (posters_dir / _POOL_FILES[tmdb_id]).read_bytes()
    else:
        base = parse_movie(synthetic_movie(seed, index % POSTER_POOL)).tmdb_id
        if base in _POOL_FILES:
            data = (posters_dir / _POOL_FILES[base]).read_bytes()
            return _with_comment(data, f"reelset bench poster {tmdb_id}".encode())
    return synthetic_poster(seed, tmdb_id)


def _poster_chunk(
    args: tuple[int, int, int, Path],
) -> tuple[list[MovieRecord], list[dict[str, Any]]]:
    """Worker: one chunk's movies, with each poster file written (unless already there)."""
    seed, start, stop, posters_dir = args
    records = [parse_movie(synthetic_movie(seed, i)) for i in range(start, stop)]
    rows: list[dict[str, Any]] = []
    for index, r in enumerate(records, start):
        if not r.poster_path:
            continue
        data = _poster_bytes(seed, index, r.tmdb_id, posters_dir)
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}.jpg"
        path = posters_dir / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        rng = random.Random(seed * 1_000_003 + r.tmdb_id)
        rows.append({
            "tmdb_id": r.tmdb_id, "status": "ok", "sha256": sha, "file_path": rel,
            "width": 500, "height": 750, "format": "JPEG", "mode": "RGB", "bytes": len(data),
            "phash": _hex64(rng), "poster_path": r.poster_path, "attempts": 1,
        })
    return records, rows


def ensure_images_store(n: int, seed: int) -> tuple[Path, Path]:
    """The cached store of ``n`` movies with real poster files, and the posters folder.

    Drawing a poster takes ~20 ms of CPU, so only the first POSTER_POOL movies get their
    own pixels; the others get byte-distinct copies of those (a distinct sha256 and file
    each, which is all the builder can tell: it caches nothing across posters).
    """
    posters_dir = CACHE / f"posters-{seed}-i{IMAGES_FORMAT}"
    path = CACHE / f"images-store-{n}-{seed}-i{IMAGES_FORMAT}.db"
    if path.exists():
        return path, posters_dir
    _POOL_FILES.clear()
    if n > POSTER_POOL:
        import sqlite3

        pool_db, _ = ensure_images_store(POSTER_POOL, seed)
        with sqlite3.connect(pool_db) as conn:
            _POOL_FILES.update(conn.execute(
                "SELECT tmdb_id, file_path FROM posters WHERE status = 'ok'"))
    posters_dir.mkdir(parents=True, exist_ok=True)
    tmp, store, started = _new_store(
        path, POSTER_CHUNK, f"the store of {n:,} movies with posters"
    )
    tasks = [(seed, start, min(n, start + POSTER_CHUNK), posters_dir)
             for start in range(0, n, POSTER_CHUNK)]
    done = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for records, rows in pool.imap(_poster_chunk, tasks, chunksize=1):
            store.movies.upsert(records)
            if rows:
                with store.write() as conn:
                    conn.execute(schema.posters.insert(), rows)
            done += len(records)
            if done % 10_000 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"  {done:,} movies ({rate:,.0f}/s)", flush=True)
    _finish_store(store, tmp, path, started)
    return path, posters_dir


FLOOR_IMAGES_CODE = """
import sys
root, listing, target = sys.argv[1:4]
count = 0
with open(listing, encoding="utf-8") as names, open(target, "wb") as out:
    for name in names:
        with open(root + "/" + name.rstrip("\\n"), "rb") as poster:
            out.write(poster.read())
        count += 1
print(count)
"""


LAUNCHER_CODE = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write(f"{wall} {usage.ru_maxrss * 1024} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(
    argv: list[str], env: dict[str, str], work: Path
) -> tuple[float, int, float, str]:
    """:func:`_run_child` through a small launcher process: a child's ``ru_maxrss`` starts
    at its parent's resident size (fork copies it, exec keeps the high-water mark), so the
    launcher, not this benchmark with its Arrow tables, must be the parent. Peak RSS is the
    largest of the child and its worker processes, not their sum; CPU seconds (user +
    system) are their sum, which unlike wall time hardly depends on the machine's load."""
    stats = work / "rusage.txt"
    _, _, stdout = _run_child([sys.executable, "-c", LAUNCHER_CODE, str(stats), *argv], env)
    wall, rss, cpu = stats.read_text(encoding="utf-8").split()
    return float(wall), int(rss), float(cpu), stdout


def _dataset_poster_files(version: Path, db: Path) -> list[str]:
    """The poster files of the movies in a built version, in its row order."""
    import sqlite3

    import pyarrow.parquet as pq

    ids = [tmdb_id for shard in sorted((version / "data").glob("*.parquet"))
           for tmdb_id in pq.read_table(shard, columns=["tmdb_id"]).column(0).to_pylist()]
    with sqlite3.connect(db) as conn:
        files = dict(conn.execute("SELECT tmdb_id, file_path FROM posters WHERE status = 'ok'"))
    return [files[i] for i in ids if i in files]


def _data_bytes(version: Path) -> int:
    return sum(p.stat().st_size for p in (version / "data").iterdir() if p.is_file())


def _median_range(values: list[float], fmt: str) -> str:
    text_ = format(statistics.median(values), fmt)
    if len(values) > 1:
        text_ += f" [{format(min(values), fmt)}-{format(max(values), fmt)}]"
    return text_


def images_main(movie_counts: list[int], seed: int, repeat: int) -> int:
    """The images case: floor, as-is and resized builds, ``repeat`` rounds per size."""
    ok = True
    peaks: dict[str, dict[int, float]] = {}
    for n in movie_counts:
        db, posters_dir = ensure_images_store(n, seed)
        work = Path(tempfile.mkdtemp(prefix="reelset-bench-images-"))
        try:
            py = sys.executable
            results: dict[str, list[tuple[float, int, int, int, float]]] = {}
            listing = work / "posters.txt"
            loads: list[float] = []
            for round_ in range(repeat):
                for label, mode, max_side in IMAGE_CASES:
                    out = work / "out"
                    config = work / "config.toml"
                    config.write_text(
                        f'[storage]\nurl = "sqlite:///{db}"\nposters_dir = "{posters_dir}"\n\n'
                        f'[build]\noutput_dir = "{out}"\nimages = "{mode}"\n'
                        f"image_max_side = {max_side}\n",
                        encoding="utf-8",
                    )
                    env = {**os.environ, "REELSET_CONFIG": str(config),
                           "REELSET_PROGRESS_INTERVAL": "600"}
                    loads.append(os.getloadavg()[0])
                    wall, rss, cpu, stdout = _run_measured(
                        [py, "-m", "reelset.cli", "build", "--json"], env, work)
                    version = Path(json.loads(stdout)["path"])
                    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
                    images = sum(manifest["images"]["with_image"].values())
                    if not listing.exists():
                        listing.write_text(
                            "".join(f"{f}\n" for f in _dataset_poster_files(version, db)),
                            encoding="utf-8")
                    results.setdefault(label, []).append(
                        (wall, rss, images, _data_bytes(version), cpu))
                    shutil.rmtree(out)
                loads.append(os.getloadavg()[0])
                target = work / "floor.bin"
                wall, rss, cpu, stdout = _run_measured(
                    [py, "-c", FLOOR_IMAGES_CODE, str(posters_dir), str(listing), str(target)],
                    dict(os.environ), work)
                results.setdefault("floor", []).append(
                    (wall, rss, int(stdout), target.stat().st_size, cpu))
                target.unlink()
                print(f"  round {round_ + 1}/{repeat} of {n:,} movies done", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

        print(f"\nimages case: {n:,} movies in store, {results['floor'][0][2]:,} posters "
              f"in the dataset, {repeat} round(s), 1-min load average while running "
              f"{_median_range(loads, '.2f')} on {os.cpu_count()} CPUs")
        print("                  wall s               images/s              MB/s written"
              "        peak RSS MiB   CPU s")
        for label in ("floor", *(case[0] for case in IMAGE_CASES)):
            rows = results[label]
            print(f"  {label:<14}"
                  f"{_median_range([r[0] for r in rows], '.1f'):<21}"
                  f"{_median_range([r[2] / r[0] for r in rows], '.0f'):<22}"
                  f"{_median_range([r[3] / r[0] / 1e6 for r in rows], '.1f'):<20}"
                  f"{_median_range([r[1] / 2**20 for r in rows], '.0f'):<15}"
                  f"{_median_range([r[4] for r in rows], '.1f')}")
            peaks.setdefault(label, {})[n] = max(r[1] for r in rows)
        rate = {label: statistics.median(r[2] / r[0] for r in rows)
                for label, rows in results.items()}
        # The images part alone: this case minus the same round's reference build, in
        # CPU seconds (load-independent) and wall seconds (rounds where it is positive).
        for label in ("as-is", "max_side 384"):
            pairs = list(zip(results[label], results["reference"], strict=True))
            cpu_ms = [(r[4] - ref[4]) / r[2] * 1000 for r, ref in pairs]
            walls = [r[2] / (r[0] - ref[0]) for r, ref in pairs if r[0] > ref[0]]
            print(f"  {label}, images part (minus the reference build): "
                  f"{_median_range(cpu_ms, '.2f')} CPU ms/image (so at most "
                  f"{(os.cpu_count() or 1) * 1000 / statistics.median(cpu_ms):.0f} images/s "
                  f"on {os.cpu_count()} idle CPUs), "
                  f"{_median_range(walls, '.0f') if walls else 'n/a'} images/s wall")
        ratio = rate["as-is"] / rate["floor"]
        resized = rate["max_side 384"]
        rss_max = max(r[1] for case in IMAGE_CASES for r in results[case[0]])
        ok_ratio = ratio >= TARGET_IMAGES_RATIO
        ok_rate = resized >= TARGET_RESIZED_RATE
        ok_rss = rss_max < TARGET_IMAGES_RSS
        ok = ok and ok_ratio and ok_rate and ok_rss
        print(f"  as-is / floor rate: {ratio:.2f} ({'OK' if ok_ratio else 'MISSED'}, >= "
              f"{TARGET_IMAGES_RATIO}); resized: {resized:.0f} images/s "
              f"({'OK' if ok_rate else 'MISSED'}, >= {TARGET_RESIZED_RATE:.0f}); peak RSS "
              f"{rss_max / 2**20:.0f} MiB ({'OK' if ok_rss else 'MISSED'}, < 1.5 GiB)")
    if len(movie_counts) > 1:
        for label, by_n in peaks.items():
            sizes = ", ".join(f"{n:,}: {rss / 2**20:.0f} MiB" for n, rss in by_n.items())
            print(f"peak RSS by store size, {label}: {sizes}")
    return 0 if ok else 1


STAGE_RE = re.compile(r"^(plan|write) stage (.+): ([0-9.]+) s wall, ([0-9.]+) s CPU$")


def build_stages(log_file: Path) -> dict[str, tuple[float, float]]:
    """``"<plan|write>: <stage>"`` -> (wall s, CPU s), from a build's JSON debug log."""
    stages: dict[str, tuple[float, float]] = {}
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            message = json.loads(line).get("message", "")
        except ValueError:
            continue
        found = STAGE_RE.match(message)
        if found:
            stages[f"{found[1]}: {found[2]}"] = (float(found[3]), float(found[4]))
    return stages


def print_stages(builds: list[tuple[float, int, float, dict[str, tuple[float, float]]]]) -> None:
    """The build's time per stage, median [min-max] over the rounds."""
    names = list(dict.fromkeys(name for b in builds for name in b[3]))
    if not names:
        return
    print("build stages (median [min-max] over the rounds):       wall s             CPU s")
    before = [b[0] - sum(w for w, _ in b[3].values()) for b in builds]
    print(f"  {'before the plan (start-up, store, read)':<52}"
          f"{_median_range(before, '.2f'):<19}")
    for name in names:
        walls = [b[3][name][0] for b in builds if name in b[3]]
        cpus = [b[3][name][1] for b in builds if name in b[3]]
        print(f"  {name:<52}{_median_range(walls, '.2f'):<19}{_median_range(cpus, '.2f')}")


def main() -> int:
    """Make (or reuse) the store, then measure the floor and the build side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the built dataset")
    parser.add_argument("--images", action="store_true",
                        help="run the images case (posters embedded) instead")
    parser.add_argument("--image-movies", default="10000,50000",
                        help="store sizes of the images case, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (of either case)")
    args = parser.parse_args()
    if args.images:
        counts = [int(v.replace("_", "")) for v in args.image_movies.split(",") if v.strip()]
        return images_main(counts, args.seed, max(args.repeat, 1))

    db = ensure_store(args.movies, args.seed)
    posters_dir = ensure_poster_files(db, args.movies, args.seed)
    work = Path(tempfile.mkdtemp(prefix="reelset-bench-"))
    try:
        config = work / "config.toml"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{db}"\nposters_dir = "{posters_dir}"\n\n'
            f'[build]\noutput_dir = "{work / "out"}"\nimages = "reference"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "REELSET_CONFIG": str(config), "REELSET_PROGRESS_INTERVAL": "600"}
        py = sys.executable
        queries_file = work / "floor-queries.pickle"
        queries_file.write_bytes(pickle.dumps(floor_queries()))

        floors: list[tuple[float, int, float]] = []
        builds: list[tuple[float, int, float, dict[str, tuple[float, float]]]] = []
        loads: list[float] = []
        summary: dict[str, Any] = {}
        floor_rows = 0
        log_file = work / "build-log.json"
        build_argv = [py, "-m", "reelset.cli", "-v", "--log-format", "json",
                      "--log-file", str(log_file), "build", "--json"]
        for round_ in range(max(args.repeat, 1)):
            loads.append(os.getloadavg()[0])
            wall, rss, cpu, out = _run_measured(
                [py, "-c", FLOOR_CODE, str(db), str(queries_file)], env, work)
            floors.append((wall, rss, cpu))
            floor_rows = int(out.strip() or 0)
            loads.append(os.getloadavg()[0])
            log_file.unlink(missing_ok=True)
            wall, rss, cpu, out = _run_measured(build_argv, env, work)
            builds.append((wall, rss, cpu, build_stages(log_file)))
            summary = json.loads(out)
            if not args.keep or round_ + 1 < max(args.repeat, 1):
                shutil.rmtree(work / "out")
            print(f"  round {round_ + 1}: floor {floors[-1][0]:.1f} s ({floors[-1][2]:.1f} s "
                  f"CPU), build {wall:.1f} s ({cpu:.1f} s CPU)", flush=True)
        loads.append(os.getloadavg()[0])

        rows = summary.get("rows", {})
        print(f"movies in store:        {args.movies:,}")
        print(f"rows in dataset:        {rows}")
        print(f"removed per rule:       {summary.get('removed')}")
        print(f"poster duplicates:      {summary.get('poster_duplicates')}")
        print(f"rounds: {len(builds)}, 1-min load average while running "
              f"{_median_range(loads, '.2f')} on {os.cpu_count()} CPUs (median [min-max])")
        print(f"floor (sqlite3 -> Arrow): {_median_range([f[0] for f in floors], '.1f')} s, "
              f"CPU {_median_range([f[2] for f in floors], '.1f')} s, "
              f"peak RSS {_median_range([f[1] / 2**20 for f in floors], '.0f')} MiB "
              f"({floor_rows:,} rows read)")
        print(f"reelset build:            {_median_range([b[0] for b in builds], '.1f')} s, "
              f"CPU {_median_range([b[2] for b in builds], '.1f')} s, "
              f"peak RSS {_median_range([b[1] / 2**20 for b in builds], '.0f')} MiB")
        ratios = [b[0] / f[0] for b, f in zip(builds, floors, strict=True)]
        cpu_ratios = [b[2] / f[2] for b, f in zip(builds, floors, strict=True)]
        ratio = statistics.median(b[0] for b in builds) / statistics.median(f[0] for f in floors)
        rss_max = max(b[1] for b in builds)
        print(f"build / floor time:       {ratio:.2f} (per round {_median_range(ratios, '.2f')}); "
              f"CPU time {_median_range(cpu_ratios, '.2f')}")
        print_stages(builds)
        ok_time = ratio <= TARGET_RATIO
        ok_rss = rss_max <= TARGET_RSS
        print(f"targets:                  time {'OK' if ok_time else 'MISSED'} "
              f"(<= {TARGET_RATIO} x the floor), memory {'OK' if ok_rss else 'MISSED'} "
              f"(peak {rss_max / 2**20:.0f} MiB <= {TARGET_RSS / 2**30:.1f} GiB)")
        if args.keep:
            print(f"dataset kept in {work / 'out'}")
        return 0 if ok_time and ok_rss else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
