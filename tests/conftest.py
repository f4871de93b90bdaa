"""Shared fixtures: a fresh SQLite store per test, and a fresh PostgreSQL database.

PostgreSQL: ``$REELSET_TEST_POSTGRES_URL`` (an admin URL; ``.ci/run`` sets it) or
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``. Each test session creates its
own database there and drops it at the end. When no server answers, PostgreSQL tests
skip with the reason (visible in pytest's summary, ``-ra``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reelset.storage import Store

pytest_plugins = ["tests.cli_env", "tests.object_store"]

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's TMDB credentials or config file."""
    for name in ("TMDB_API_KEY", "TMDB_READ_ACCESS_TOKEN", "REELSET_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a fresh SQLite file store."""
    return f"sqlite:///{tmp_path / 'store' / 'reelset.db'}"


def _initialised(url: str) -> Iterator[Store]:
    """A store at ``url`` brought to the newest schema, closed afterwards."""
    store = Store(url)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """A fresh, initialised SQLite store."""
    yield from _initialised(sqlite_url)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (its URL), dropped afterwards."""
    admin_url = os.environ.get("REELSET_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # no server, no driver, no permission: all mean "skip"
        pytest.skip(
            f"PostgreSQL tests skipped: no server at {make_url(admin_url).render_as_string()}"
            f" ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})"
        )
    name = f"reelset_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied before each test."""
    engine = create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL on each backend (PostgreSQL skips loudly when unavailable)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh, initialised store on each backend."""
    yield from _initialised(store_url)
