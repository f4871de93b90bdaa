"""What a dataset version may say about the machine that built it: nothing local.

A version is meant to be copied, published and loaded elsewhere, so its files never hold
an absolute local path, a password or a user name. The store is described by its
backend, its database file *name* (SQLite) or its server URL without credentials
(PostgreSQL); the configuration loses the folders it was read from and written to.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from reelset.config import Settings


def describe_database(url: str) -> dict[str, Any]:
    """A database URL as ``{"backend", "database"[, "url"]}``, with nothing local or secret.

    SQLite: the database file's name only (``reelset.db``), never its folder. A server
    (PostgreSQL): host, port and database name, as a URL without user, password or query
    (query parameters may name certificate files or carry a password).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        scheme = url.split(":", 1)[0] if "://" in url else ""
        return {"backend": scheme.split("+", 1)[0] or "unknown", "database": None}
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite":
        if database in ("", ":memory:"):
            return {"backend": backend, "database": ":memory:"}
        return {"backend": backend, "database": PurePosixPath(database).name}
    server = URL.create(
        parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database
    )
    return {
        "backend": backend,
        "database": database or None,
        "url": server.render_as_string(hide_password=False),
    }


def portable_config(settings: Settings) -> dict[str, Any]:
    """The settings as recorded in ``manifest.json``: no secret and no local path.

    ``storage.url`` becomes ``storage.database`` (:func:`describe_database`); the local
    folders ``storage.posters_dir`` and ``build.output_dir`` and the machine's
    ``storage.storage_options`` are left out: where a version
    was written and where its posters were read from say nothing about its content (a
    ``reference`` build records its posters folder relative to the version, under
    ``images``). ``imdb.cinemagoer_uri``, a database URL too, is described the same way.
    """
    data = settings.public_dict()
    machine_only = ("url", "posters_dir", "storage_options")
    storage = {key: value for key, value in data["storage"].items() if key not in machine_only}
    data["storage"] = {"database": describe_database(settings.storage.url), **storage}
    data["build"].pop("output_dir", None)
    if settings.imdb.cinemagoer_uri:
        data["imdb"]["cinemagoer_uri"] = describe_database(settings.imdb.cinemagoer_uri)
    return data
