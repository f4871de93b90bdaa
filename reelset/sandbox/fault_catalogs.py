"""Catalogs prepared for tests: movies with broken posters, movies with unknown genres.

:func:`poster_fault_catalog` gives some movies a poster file of every kind in
:data:`~reelset.sandbox.poster_faults.IMAGE_FAULT_KINDS` and tells which movies got which
kind, so a poster downloader can be tested against all of them::

    faulty = poster_fault_catalog(Catalog.bundled())
    with Sandbox(catalog=faulty.catalog) as sb:
        for tmdb_id in faulty.ids_by_kind["truncated_jpeg"]:
            ...  # the downloader must reject these posters

The movies chosen are the most popular ones without a real poster, so they show up on the
first pages of ``/3/movie/popular``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reelset.sandbox.catalog import Catalog
from reelset.sandbox.poster_faults import (
    IMAGE_FAULT_KINDS,
    ImageFault,
    decompression_bomb_png,
    hostile_name,
)

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class PosterFaultCatalog:
    """A catalog with broken posters, and which movies (and file names) have which kind."""

    catalog: Catalog
    ids_by_kind: dict[str, list[int]]
    files_by_kind: dict[str, list[str]]

    def kind_of(self, tmdb_id: int) -> str | None:
        """The poster fault kind of a movie, or None if its poster is fine."""
        for kind, ids in self.ids_by_kind.items():
            if tmdb_id in ids:
                return kind
        return None

    @property
    def faulty_ids(self) -> set[int]:
        """Every movie with a broken poster."""
        return {i for ids in self.ids_by_kind.values() for i in ids}


def _plain_token(kind: str, tmdb_id: int) -> str:
    value = int.from_bytes(hashlib.sha256(f"{kind}:{tmdb_id}".encode()).digest(), "big")
    chars = []
    for _ in range(27):
        value, digit = divmod(value, 62)
        chars.append(_B62[digit])
    return "".join(chars) + ".jpg"


def poster_fault_catalog(
    base: Catalog | None = None, *, per_kind: int = 2, attempts: int = 2
) -> PosterFaultCatalog:
    """A copy of ``base`` (default: the bundled sample) with broken posters of every kind.

    Each kind goes to ``per_kind`` movies; ``duplicate`` goes to one group of
    ``max(3, per_kind)`` movies whose different file names serve identical bytes;
    ``transient_500`` posters fail their first ``attempts`` requests, ``truncated_once`` and
    ``html_once`` posters their first request only. File names look like
    ordinary TMDB poster names except for the ``hostile_*`` kinds.
    """
    if per_kind < 1:
        raise ValueError("per_kind must be >= 1")
    catalog = (base if base is not None else Catalog.bundled()).copy()
    wanted = {kind: (max(3, per_kind) if kind == "duplicate" else per_kind)
              for kind in IMAGE_FAULT_KINDS}
    candidates: list[int] = []
    page = 1
    while len(candidates) < sum(wanted.values()):
        result = catalog.popular(page, per_page=100)
        if not result.records:
            raise ValueError("catalog has too few movies for poster faults")
        for record in result.records:
            poster = (record["poster_path"] or "").lstrip("/")
            target = catalog.resolve_image(poster) if poster else None
            if target is None or target.kind == "synthetic":
                candidates.append(int(record["id"]))
        page += 1
    ids_by_kind: dict[str, list[int]] = {}
    files_by_kind: dict[str, list[str]] = {}
    next_candidate = iter(candidates)
    for kind, count in wanted.items():
        for _ in range(count):
            tmdb_id = next(next_candidate)
            if kind.startswith("hostile_"):
                name = hostile_name(kind, tmdb_id)
            else:
                name = _plain_token(kind, tmdb_id)
            fault = ImageFault(
                kind,
                attempts=1 if kind.endswith("_once") else attempts,
                group="0" if kind == "duplicate" else "",
            )
            catalog.set_image_fault(tmdb_id, fault, name)
            ids_by_kind.setdefault(kind, []).append(tmdb_id)
            files_by_kind.setdefault(kind, []).append(name)
    # The bomb's bytes take about a second of CPU to make: make them now, so that serving
    # one never costs a client's request timeout on a loaded machine.
    decompression_bomb_png()
    return PosterFaultCatalog(catalog, ids_by_kind, files_by_kind)


def unknown_genre_catalog(
    base: Catalog | None = None, *, genre_id: int = 99999, count: int = 2
) -> tuple[Catalog, list[int]]:
    """A copy of ``base`` where ``count`` movies also carry a genre no genre list knows.

    TMDB's genre list is not a closed set from a client's point of view (see genre 10769);
    this makes the case explicit. Returns the catalog and the ids of the changed movies.
    """
    catalog = (base if base is not None else Catalog.bundled()).copy()
    changed = []
    for tmdb_id in catalog.ids()[:count]:
        record = catalog.record(tmdb_id)
        assert record is not None
        genre_ids = [g["id"] for g in record["genres"]] + [genre_id]
        catalog.update_movie(tmdb_id, record_change=False, genre_ids=genre_ids)
        changed.append(tmdb_id)
    return catalog, changed
