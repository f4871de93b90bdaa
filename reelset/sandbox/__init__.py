"""A TMDB API v3 sandbox: a real HTTP server on loopback that behaves like TMDB.

It serves what a scraper uses (configuration, genres, popular, discover, movie details
with appends, changes, find by IMDb id, daily ID exports and poster images) with TMDB's
JSON shapes, status codes and error bodies, plus a rate limit, latency and deterministic,
transient faults on demand. For tests::

    from reelset.sandbox import Catalog, FaultSpec, Sandbox

    with Sandbox(catalog=Catalog.bundled(), rate="40/10s") as sb:
        requests.get(f"{sb.api_base_url}/movie/popular", params={"api_key": sb.api_key})

From a shell: ``python -m reelset.sandbox serve`` (or ``reelset sandbox serve``).
"""

from reelset.sandbox.catalog import Catalog, ImageTarget, ResultPage, write_catalog_file
from reelset.sandbox.counters import CountersSnapshot
from reelset.sandbox.daily_exports import export_file_name, parse_export_name
from reelset.sandbox.fault_catalogs import (
    PosterFaultCatalog,
    poster_fault_catalog,
    unknown_genre_catalog,
)
from reelset.sandbox.fault_spec import FAULT_KINDS, FaultSpec, PathFault, parse_fault_spec
from reelset.sandbox.genres import MOVIE_GENRES
from reelset.sandbox.movie_shapes import movie_record
from reelset.sandbox.poster_faults import IMAGE_FAULT_KINDS, ImageFault
from reelset.sandbox.server import SANDBOX_API_KEY, SANDBOX_READ_ACCESS_TOKEN, Sandbox
from reelset.sandbox.synthetic import synthetic_movie, synthetic_movies

__all__ = [
    "FAULT_KINDS",
    "IMAGE_FAULT_KINDS",
    "MOVIE_GENRES",
    "SANDBOX_API_KEY",
    "SANDBOX_READ_ACCESS_TOKEN",
    "Catalog",
    "CountersSnapshot",
    "FaultSpec",
    "ImageFault",
    "ImageTarget",
    "PathFault",
    "PosterFaultCatalog",
    "ResultPage",
    "Sandbox",
    "export_file_name",
    "movie_record",
    "parse_export_name",
    "parse_fault_spec",
    "poster_fault_catalog",
    "synthetic_movie",
    "synthetic_movies",
    "unknown_genre_catalog",
    "write_catalog_file",
]
