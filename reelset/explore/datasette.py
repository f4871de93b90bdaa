"""Datasette over the SQLite store: reelset's metadata, generated, and the server.

The metadata is built from the schema's own descriptions (:func:`reelset.storage.schema.
describe`) and :data:`reelset.explore.queries.QUERIES`, never copied by hand: titles,
licence and source notes, a description per table, view and column, facets, full-text
search on ``movies`` and the canned queries. Datasette (``pip install 'reelset[browse]'``)
is imported only by :func:`serve`.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

from reelset import __version__
from reelset.errors import UsageError
from reelset.explore.queries import QUERIES
from reelset.storage import schema

INSTALL_HINT = "pip install 'reelset[browse]'"
TMDB_NOTICE = "This product uses the TMDB API but is not endorsed or certified by TMDB."
IMDB_NOTICE = (
    "Information courtesy of IMDb (https://www.imdb.com). Used with permission. IMDb's "
    "datasets are for personal and non-commercial use only."
)
TMDB_TERMS_URL = "https://www.themoviedb.org/api-terms-of-use"
IMDB_TERMS_URL = "https://developer.imdb.com/non-commercial-datasets/"

FACETS: dict[str, list[str | dict[str, str]]] = {
    "movies": ["status", "year", "original_language"],
    "genres": ["origin"],
    "posters": ["status", "format"],
    "scrape_runs": ["command", "status"],
    "fetch_failures": ["kind", "state"],
    "imdb_titles": ["title_type"],
    "imdb_title_genres": ["genre"],
    "movie_genre_names": [{"array": "genres_json"}, "year"],
    "movie_genres_named": ["genre", "year"],
    "movie_imdb": [{"array": "imdb_genres_json"}],
    "run_summary": ["command", "status"],
    "open_failures": ["kind"],
}
"""Facets Datasette shows on a table or view; a column the store lacks is left out."""
SORT_DESC = {"scrape_runs": "run_id", "fetch_failures": "failure_id", "run_summary": "run_id"}
"""Tables shown newest first by default."""
LABEL_COLUMNS = {"genres": "name"}
"""What Datasette shows for a foreign key to these tables."""
HIDDEN = ("alembic_version", "run_lock", "checkpoints")
"""reelset's own bookkeeping, hidden from the table lists (still reachable by URL)."""
FTS = {"movies": {"fts_table": "movies_fts", "fts_pk": "tmdb_id", "searchmode": "escaped"}}
"""Full-text search: ``movies_fts`` indexes ``movies`` titles and overviews (rowid = tmdb_id)."""

SETTINGS = {"sql_time_limit_ms": 10_000, "facet_time_limit_ms": 1_000}
"""Datasette settings: canned queries over a big store need more than Datasette's 1 s."""


def database_name(db_path: Path) -> str:
    """The name Datasette gives a database file (its stem): the key of its metadata."""
    return db_path.stem


def _facets(name: str, columns: set[str]) -> list[str | dict[str, str]]:
    """The facets of one table or view that exist in it."""
    kept: list[str | dict[str, str]] = []
    for facet in FACETS.get(name, []):
        column = facet if isinstance(facet, str) else next(iter(facet.values()))
        if column in columns:
            kept.append(facet)
    return kept


def _table_columns(name: str, described: dict[str, str]) -> set[str]:
    """Every column of a table or view that the schema knows (documented or not)."""
    columns = set(described)
    table = schema.metadata.tables.get(name)
    if table is not None:
        columns.update(table.c.keys())
    return columns


def table_metadata(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Datasette's per-table metadata from :func:`schema.describe`'s tables and views."""
    tables: dict[str, dict[str, Any]] = {}
    for name, entry in description.items():
        columns: dict[str, str] = dict(entry.get("columns", {}))
        meta: dict[str, Any] = {"description": entry["description"], "columns": columns}
        facets = _facets(name, _table_columns(name, columns))
        if facets:
            meta["facets"] = facets
        if name in SORT_DESC:
            meta["sort_desc"] = SORT_DESC[name]
        if name in LABEL_COLUMNS:
            meta["label_column"] = LABEL_COLUMNS[name]
        meta.update(FTS.get(name, {}))
        tables[name] = meta
    for name in HIDDEN:
        tables.setdefault(name, {})["hidden"] = True
    return tables


def build_metadata(db_name: str) -> dict[str, Any]:
    """Datasette's metadata for the store served as database ``db_name``.

    Deterministic: the same reelset gives the same metadata (no paths, no dates).
    """
    queries = {
        q.name: {"title": q.title, "description": q.description, "sql": q.sql_for("sqlite")}
        for q in QUERIES
    }
    notices = f"{TMDB_NOTICE} {IMDB_NOTICE}"
    return {
        "title": "reelset store",
        "description": (
            "Movies from TMDB with their genres, overviews and posters, and IMDb's titles, "
            f"genres and ratings, collected by reelset {__version__}. {notices}"
        ),
        "license": "TMDB terms of use; IMDb non-commercial datasets",
        "license_url": TMDB_TERMS_URL,
        "source": "TMDB (themoviedb.org) and IMDb's non-commercial datasets",
        "source_url": IMDB_TERMS_URL,
        "databases": {
            db_name: {
                "description": (
                    "The reelset store: tables and analyst views (views leave out movies "
                    "TMDB no longer has). Canned queries answer the common questions."
                ),
                "tables": table_metadata(schema.describe()),
                "queries": queries,
            }
        },
    }


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`UsageError` when ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port)"
            ) from None


def datasette_app(db_path: Path, metadata: dict[str, Any]) -> Any:
    """Datasette's ASGI app serving ``db_path`` with ``metadata``, its startup hooks run.

    Raises :class:`UsageError` when Datasette is not installed.
    """
    try:
        from datasette.app import Datasette
    except ImportError:
        raise UsageError(f"reelset browse needs Datasette: {INSTALL_HINT}") from None
    import asyncio

    datasette = Datasette([str(db_path)], metadata=metadata, settings=SETTINGS)
    asyncio.run(datasette.invoke_startup())
    return datasette.app()


def run_server(app: Any, *, host: str, port: int) -> None:
    """Serve an ASGI app on ``host:port`` until interrupted (Ctrl-C returns normally)."""
    import uvicorn  # installed with Datasette

    # uvicorn stops gracefully on SIGINT, then raises the signal again.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")
