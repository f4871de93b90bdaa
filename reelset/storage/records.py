"""Plain typed records the store accepts and returns (no ORM objects cross stages)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any


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
class UpsertResult:
    """How a batch of movie upserts went."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    new_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.new_ids.extend(other.new_ids)
        self.updated_ids.extend(other.updated_ids)
        return self


@dataclass
class RunHandle:
    """A recorded run in progress: the body sets ``counts`` (and may set ``status``)."""

    run_id: int
    counts: dict[str, Any] = field(default_factory=dict)
    status: str = "succeeded"


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
