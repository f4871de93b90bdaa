"""Crafted stores for the dataset builder's tests, written through the Store API.

Movies go in with ``Store.upsert_genres``/``upsert_movies``; posters and IMDb tables, which
other stages own, by plain SQL inserts.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import random
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelset.config import Settings, settings_from_dict
from reelset.storage import Genre, MovieRecord, Store, schema

TMDB_GENRES = {
    28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime",
    99: "Documentary", 18: "Drama", 10751: "Family", 14: "Fantasy", 36: "History",
    27: "Horror", 10402: "Music", 9648: "Mystery", 10749: "Romance",
    878: "Science Fiction", 10770: "TV Movie", 53: "Thriller", 10752: "War", 37: "Western",
}  # fmt: skip

_WORDS = [
    "river", "lantern", "orchard", "signal", "harbor", "mirror", "canyon", "voyage",
    "saint", "echo", "frontier", "kingdom", "promise", "witness", "garden", "storm",
]  # fmt: skip


def overview_for(tmdb_id: int) -> str:
    """A distinct, long enough overview for a movie."""
    rng = random.Random(tmdb_id)
    words = " ".join(rng.choice(_WORDS) for _ in range(8))
    return f"Story number {tmdb_id}: {words}."


def movie(tmdb_id: int, **fields: Any) -> MovieRecord:
    """A movie that passes every default filter unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "title": f"Movie {tmdb_id}",
        "imdb_id": f"tt{tmdb_id:07d}",
        "original_title": f"Movie {tmdb_id}",
        "original_language": "en",
        "overview": overview_for(tmdb_id),
        "release_date": dt.date(2000 + tmdb_id % 20, 1, 1),
        "runtime": 100,
        "popularity": 1.0,
        "vote_count": 10,
        "genre_ids": (18,),
        "poster_path": f"/p{tmdb_id}.jpg",
    }
    values.update(fields)
    return MovieRecord(tmdb_id=tmdb_id, **values)


@functools.lru_cache(maxsize=4096)
def poster_jpeg(seed: str, width: int = 20, height: int = 30) -> bytes:
    """A small, real JPEG whose pixels derive from ``seed`` (distinct seeds, distinct bytes)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


POSTER_BYTES: dict[str, bytes] = {}
"""sha256 -> bytes of every poster :func:`poster_row` made; :meth:`Crafted.posters` writes
them into the posters folder."""


def poster_row(tmdb_id: int, *, sha: str | None = None, phash: str | None = None,
               status: str = "ok", data: bytes | None = None) -> dict[str, Any]:
    """A posters row with a real poster file's bytes behind it (written by
    :meth:`Crafted.posters`): ``data``, else a small JPEG made from ``sha`` (rows given the
    same ``sha`` get byte-identical posters) or from the id. The row's ``sha256`` is the
    bytes' real hash; phash derives from the id unless given."""
    ok = status == "ok"
    if ok:
        content = data if data is not None else poster_jpeg(sha or f"poster {tmdb_id}")
        digest = hashlib.sha256(content).hexdigest()
        POSTER_BYTES[digest] = content
        with Image.open(io.BytesIO(content)) as image:
            width, height, fmt = image.width, image.height, image.format
    return {
        "tmdb_id": tmdb_id,
        "status": status,
        "sha256": digest if ok else None,
        "file_path": f"{digest[:2]}/{digest}.{'jpg' if fmt == 'JPEG' else str(fmt).lower()}"
        if ok else None,
        "width": width if ok else None,
        "height": height if ok else None,
        "format": fmt if ok else None,
        "phash": phash or (f"{random.Random(tmdb_id).getrandbits(64):016x}" if ok else None),
        "attempts": 1,
    }


@dataclass
class Crafted:
    """A crafted store and the settings of a build from it."""

    store: Store
    tmp_path: Path
    url: str

    def settings(self, output: str = "out", **build: Any) -> Settings:
        """Settings reading this store and writing to ``tmp_path/output``."""
        data = {
            "storage": {"url": self.url, "posters_dir": str(self.posters_dir)},
            "build": {"output_dir": str(self.tmp_path / output), "min_genre_count": 1, **build},
        }
        return settings_from_dict(data, base_dir=self.tmp_path)

    def config_file(self, images: str = "reference", output_dir: str | None = None) -> Path:
        """A config.toml for the command line, with the settings of :meth:`settings`.

        ``images`` defaults to ``reference``: the command-line tests edit and read
        ``data/<split>.parquet`` and are not about posters (``test_images`` passes
        ``embed``). ``output_dir`` (a folder or URL) defaults to ``out`` in ``tmp_path``.
        """
        path = self.tmp_path / "config.toml"
        path.write_text(textwrap.dedent(f"""
            [storage]
            url = "{self.url}"
            posters_dir = "{self.posters_dir}"
            [build]
            output_dir = "{output_dir or self.tmp_path / 'out'}"
            min_genre_count = 1
            images = "{images}"
        """))
        return path

    def add(self, records: Iterable[MovieRecord]) -> None:
        """Write movies through the Store API."""
        self.store.movies.upsert(list(records))

    @property
    def posters_dir(self) -> Path:
        """The posters folder of :meth:`settings`."""
        return self.tmp_path / "posters"

    def posters(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert or replace posters rows, writing their files content-addressed like the
        file store (``<sha[:2]>/<sha>.<ext>``)."""
        rows = list(rows)
        for row in rows:
            if row["file_path"] is not None and row["sha256"] in POSTER_BYTES:
                target = self.posters_dir / row["file_path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(POSTER_BYTES[row["sha256"]])
        with self.store.write() as conn:
            conn.execute(
                schema.posters.delete().where(
                    schema.posters.c.tmdb_id.in_([r["tmdb_id"] for r in rows])
                )
            )
            conn.execute(schema.posters.insert(), rows)

    def imdb(self, genres: dict[str, list[str]]) -> None:
        """Insert IMDb titles with their genres."""
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        with self.store.write() as conn:
            conn.execute(
                schema.imdb_titles.insert(),
                [{"imdb_id": i, "title_type": "movie", "imported_at": now} for i in genres],
            )
            rows = [{"imdb_id": i, "genre": g} for i, gs in genres.items() for g in gs]
            if rows:
                conn.execute(schema.imdb_title_genres.insert(), rows)


@pytest.fixture
def crafted(tmp_path: Path) -> Iterator[Crafted]:
    """An empty SQLite store with TMDB's genres."""
    url = f"sqlite:///{tmp_path / 'store' / 'reelset.db'}"
    store = Store(url)
    store.upgrade()
    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    yield Crafted(store=store, tmp_path=tmp_path, url=url)
    store.close()


def random_movies(n: int, seed: int, start_id: int = 1) -> list[MovieRecord]:
    """``n`` movies with 1-4 genres drawn with TMDB-like skew."""
    rng = random.Random(seed)
    weights = {18: 45, 35: 30, 53: 20, 28: 17, 10749: 13, 27: 12, 99: 10, 80: 10, 12: 8,
               10751: 6, 878: 6, 14: 5, 9648: 5, 16: 5}
    ids, w = list(weights), list(weights.values())
    out = []
    for k in range(n):
        tmdb_id = start_id + k
        count = rng.choice((1, 1, 2, 2, 3, 4))
        genres: set[int] = set()
        while len(genres) < count:
            genres.add(rng.choices(ids, w)[0])
        out.append(movie(tmdb_id, genre_ids=tuple(sorted(genres)),
                         popularity=rng.random() * 10))
    return out


FIXED_NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def first_plan(snapshot: Any, settings: Settings, *, name: str = "genres") -> Any:
    """The in-memory plan of a first version: no parent, an empty split ledger."""
    from reelset.dataset.format import LEDGER_SCHEMA
    from reelset.dataset.plan import plan_build

    return plan_build(
        snapshot, settings, name=name, version="v0001", parent=None,
        ledger=LEDGER_SCHEMA.empty_table(),
    )


def plan_for(crafted: Crafted, *, name: str = "genres", **build: Any) -> Any:
    """The in-memory plan of a first version from the crafted store (nothing written)."""
    from reelset.dataset.read import read_store

    return first_plan(read_store(crafted.store), crafted.settings(**build), name=name)


def build(crafted: Crafted, output: str = "out", **build: Any) -> Any:
    """Build a version from the crafted store; the BuildResult."""
    from reelset.dataset.build import build_dataset

    return build_dataset(crafted.settings(output, **build), now=FIXED_NOW)


def removed_rules(plan: Any) -> dict[int, str]:
    """tmdb_id -> rule of a plan's removed movies."""
    table = plan.removed
    return dict(zip(table.column("tmdb_id").to_pylist(), table.column("rule").to_pylist(),
                    strict=True))


def kept_ids(plan: Any) -> set[int]:
    """tmdb_ids in any split of a plan."""
    return {i for t in plan.splits.values() for i in t.column("tmdb_id").to_pylist()}
