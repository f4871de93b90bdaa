"""Benchmark: 100,000 movies (3 genres on average) into a fresh SQLite store.

Measured side by side in one run:
  * through the storage API (``Store.upsert_movies``: change detection, genres, fetch log),
  * the floor: a plain ``sqlite3`` ``executemany`` of the same rows into identical tables.

Prints movies/s for both and their ratio. Targets: >= 20,000 movies/s through the API and
a ratio >= 0.5.  Usage: ``python benchmarks/bench_store.py [--movies N]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from reelset.storage import Genre, MovieRecord, Store
from reelset.storage.schema import utcnow

BATCH = 5000  # movies per transaction, the same for both sides
GENRES = [
    28,
    12,
    16,
    35,
    80,
    99,
    18,
    10751,
    14,
    36,
    27,
    10402,
    9648,
    10749,
    878,
    10770,
    53,
    10752,
    37,
]


def make_records(n: int, seed: int = 1) -> list[MovieRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(1, n + 1):
        k = rng.choice((1, 2, 3, 3, 4, 5))  # mean 3
        records.append(
            MovieRecord(
                tmdb_id=i,
                title=f"Movie {i}",
                imdb_id=f"tt{i:07d}",
                original_title=f"Movie {i}",
                original_language="en",
                overview="A story of people and places " * 4,
                tagline="Tagline",
                release_date=dt.date(1950 + i % 70, 1 + i % 12, 1 + i % 28),
                runtime=90 + i % 60,
                popularity=rng.random() * 100,
                vote_average=rng.random() * 10,
                vote_count=rng.randrange(10_000),
                adult=False,
                poster_path=f"/p{i}.jpg",
                genre_ids=tuple(rng.sample(GENRES, k)),
            )
        )
    return records


def bench_api(url: str, records: list[MovieRecord]) -> float:
    store = Store(url, batch_size=BATCH)
    store.upgrade()
    store.movies.upsert_genres([Genre(g, f"G{g}") for g in GENRES])
    start = time.perf_counter()
    result = store.movies.upsert(records)
    elapsed = time.perf_counter() - start
    assert result.new == len(records)
    store.close()
    return elapsed


def bench_floor(path: Path, records: list[MovieRecord]) -> float:
    store = Store(f"sqlite:///{path}")  # identical tables, created by the same migrations
    store.upgrade()
    store.movies.upsert_genres([Genre(g, f"G{g}") for g in GENRES])
    store.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA foreign_keys = ON")
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    start = time.perf_counter()
    for b in range(0, len(records), BATCH):
        batch = records[b : b + BATCH]
        con.executemany(
            "INSERT INTO movies (tmdb_id, imdb_id, title, original_title, original_language, "
            "overview, tagline, release_date, year, runtime, popularity, vote_average, vote_count,"
            " adult, poster_path, status, content_hash, first_seen_at, updated_at) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.tmdb_id,
                    r.imdb_id,
                    r.title,
                    r.original_title,
                    r.original_language,
                    r.overview,
                    r.tagline,
                    r.release_date.isoformat() if r.release_date else None,
                    r.year,
                    r.runtime,
                    r.popularity,
                    r.vote_average,
                    r.vote_count,
                    r.adult,
                    r.poster_path,
                    "active",
                    "",
                    now,
                    now,
                )
                for r in batch
            ],
        )
        con.executemany(
            "INSERT INTO movie_genres (tmdb_id, genre_id) VALUES (?, ?)",
            [(r.tmdb_id, g) for r in batch for g in r.genre_ids],
        )
        con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=100_000)
    args = parser.parse_args()
    records = make_records(args.movies)
    genres = sum(len(r.genre_ids) for r in records)
    with tempfile.TemporaryDirectory() as tmp:
        api_s = bench_api(f"sqlite:///{Path(tmp) / 'api.db'}", records)
        floor_s = bench_floor(Path(tmp) / "floor.db", records)
    api_rate, floor_rate = args.movies / api_s, args.movies / floor_s
    print(f"movies: {args.movies:,} with {genres:,} genre links ({genres / args.movies:.2f} each)")
    print(f"storage API (upsert_movies):  {api_s:6.2f} s  {api_rate:10,.0f} movies/s")
    print(f"plain executemany (floor):    {floor_s:6.2f} s  {floor_rate:10,.0f} movies/s")
    print(f"ratio API / floor: {api_rate / floor_rate:.2f}  (targets: >= 20,000 movies/s, >= 0.5)")


if __name__ == "__main__":
    main()
