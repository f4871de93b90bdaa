"""Benchmark: 100,000 movies (3 genres on average) into a fresh SQLite store.

Measured side by side in one run:
  * through the storage API (``store.movies.upsert``: change detection, genres, fetch log),
  * the floor: a plain ``sqlite3`` ``executemany`` of the same rows into identical tables
    (rows made by the store's own ``Store.driver_rows``, columns read from ``schema``).

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

from reelset.storage import Genre, MovieRecord, Store, schema
from reelset.storage.movies import RECORD_COLUMNS

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


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def bench_floor(path: Path, records: list[MovieRecord]) -> float:
    store = Store(f"sqlite:///{path}")  # identical tables, created by the same migrations
    store.upgrade()
    store.movies.upsert_genres([Genre(g, f"G{g}") for g in GENRES])
    store.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA foreign_keys = ON")
    now = schema.utcnow()
    stamps = {"first_seen_at": now, "updated_at": now}
    genre_sql = _insert_sql("movie_genres", schema.column_names(schema.movie_genres))
    start = time.perf_counter()
    for b in range(0, len(records), BATCH):
        batch = records[b : b + BATCH]
        # The same rows as the API writes (no change detection: an empty content hash).
        columns, rows = store.driver_rows(
            schema.movies, [(r, "") for r in batch], fields=RECORD_COLUMNS, constants=stamps
        )
        con.executemany(_insert_sql("movies", columns), rows)
        con.executemany(genre_sql, [(r.tmdb_id, g) for r in batch for g in r.genre_ids])
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
    print(f"storage API (movies.upsert):  {api_s:6.2f} s  {api_rate:10,.0f} movies/s")
    print(f"plain executemany (floor):    {floor_s:6.2f} s  {floor_rate:10,.0f} movies/s")
    print(f"ratio API / floor: {api_rate / floor_rate:.2f}  (targets: >= 20,000 movies/s, >= 0.5)")


if __name__ == "__main__":
    main()
