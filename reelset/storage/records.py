"""Plain typed records the store accepts and returns (no ORM objects cross stages)."""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
from dataclasses import dataclass, field, fields
from typing import Self


@dataclass(frozen=True)
class Genre:
    """A genre id with its name and where the name came from (tmdb, patched, unknown)."""

    genre_id: int
    name: str
    origin: str = "tmdb"


@dataclass(frozen=True)
class MovieRecord:
    """One movie as the scraper hands it to the store."""

    tmdb_id: int
    title: str
    imdb_id: str | None = None
    original_title: str | None = None
    original_language: str | None = None
    overview: str | None = None
    tagline: str | None = None
    release_date: dt.date | None = None
    runtime: int | None = None
    popularity: float | None = None
    vote_average: float | None = None
    vote_count: int | None = None
    adult: bool = False
    poster_path: str | None = None
    genre_ids: tuple[int, ...] = ()
    keywords: tuple[str, ...] | None = None
    status: str = "active"

    @property
    def year(self) -> int | None:
        """The release year, from ``release_date``."""
        return self.release_date.year if self.release_date else None

    def content_hash(self) -> str:
        """A hash of every stored field and the genre set: equal hashes mean nothing changed."""
        payload = (
            self.tmdb_id,
            self.title,
            self.imdb_id,
            self.original_title,
            self.original_language,
            self.overview,
            self.tagline,
            self.release_date,
            self.runtime,
            self.popularity,
            self.vote_average,
            self.vote_count,
            bool(self.adult),
            self.poster_path,
            tuple(sorted(set(self.genre_ids))),
            tuple(self.keywords) if self.keywords is not None else None,
            self.status,
        )
        # repr of str/int/float/date/None/tuple is stable across runs and platforms, and fast.
        return hashlib.blake2b(repr(payload).encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class UpsertCounts:
    """How batches of upserts went: rows new, updated, and unchanged (so not written).

    Results of several batches add up with ``+=``, field by field (numbers add, lists
    are concatenated), subclasses' fields included.
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: Self) -> Self:
        for f in fields(self):
            setattr(self, f.name, operator.iadd(getattr(self, f.name), getattr(other, f.name)))
        return self


@dataclass
class UpsertResult(UpsertCounts):
    """How a batch of movie upserts went, with the ids of the movies written."""

    new_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run lock."""

    name: str
    run_id: int | None
    pid: int
    hostname: str
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime


@dataclass(frozen=True)
class Failure:
    """An open (unresolved) fetch failure."""

    failure_id: int
    kind: str
    key: str
    http_status: int | None
    error: str | None
    attempts: int
