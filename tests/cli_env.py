"""CLI test environments: a sandbox per test, configs pointing at it, CLI runs (fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from reelset.cli import main as cli_main
from reelset.sandbox import Catalog, Sandbox

FAST_TMDB = {
    "rate_limit": "100000/1s",
    "max_workers": 4,
    "timeout_s": 2.0,
    "max_retries": 4,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML config of ``{section: {key: value}}``."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass
class Env:
    """One test's sandbox, config file and store."""

    sandbox: Sandbox
    config: Path
    db_path: Path
    tmp: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """movies, genres and movie_genres without timestamps, sorted."""
        columns = (
            "tmdb_id, imdb_id, title, original_title, original_language, overview, tagline, "
            "release_date, year, runtime, popularity, vote_average, vote_count, adult, "
            "poster_path, keywords, status, content_hash"
        )
        return {
            "movies": self.rows(f"SELECT {columns} FROM movies ORDER BY tmdb_id"),
            "genres": self.rows("SELECT genre_id, name, origin FROM genres ORDER BY genre_id"),
            "movie_genres": self.rows(
                "SELECT tmdb_id, genre_id FROM movie_genres ORDER BY tmdb_id, genre_id"
            ),
        }

    def last_run(self) -> dict[str, Any]:
        row = self.rows(
            "SELECT run_id, status, counts, params, error FROM scrape_runs "
            "ORDER BY run_id DESC LIMIT 1"
        )[0]
        return {
            "run_id": row[0],
            "status": row[1],
            "counts": json.loads(row[2]) if isinstance(row[2], str) else row[2],
            "params": json.loads(row[3]) if isinstance(row[3], str) else row[3],
            "error": row[4],
        }


@pytest.fixture
def make_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Env]]:
    """``make_env(catalog=..., rate=..., tmdb={...}, posters=False, ...)`` -> :class:`Env`."""
    started: list[Sandbox] = []
    counter = iter(range(1000))

    def make(
        catalog: Catalog | None = None,
        *,
        rate: str | None = None,
        latency_ms: float = 0,
        faults: Any = None,
        tmdb: dict[str, Any] | None = None,
        storage: dict[str, Any] | None = None,
        posters: bool = False,
        extra: dict[str, dict[str, Any]] | None = None,
        api_key: str | None = None,
        sandbox_kwargs: dict[str, Any] | None = None,
    ) -> Env:
        sb = Sandbox(
            catalog=catalog if catalog is not None else Catalog.bundled(),
            rate=rate,
            latency_ms=latency_ms,
            faults=faults,
            **(sandbox_kwargs or {}),
        ).start()
        started.append(sb)
        n = next(counter)
        db_path = tmp_path / f"store{n}" / "reelset.db"
        sections: dict[str, dict[str, Any]] = {
            "storage": {
                "url": f"sqlite:///{db_path}",
                "posters_dir": str(tmp_path / f"posters{n}"),
                "batch_size": 50,
                **(storage or {}),
            },
            "tmdb": {
                "api_base_url": sb.api_base_url,
                "exports_base_url": sb.exports_base_url,
                **FAST_TMDB,
                **(tmdb or {}),
            },
            "posters": {"enabled": posters, "max_workers": 4, "rate_limit": "100000/1s"},
            **(extra or {}),
        }
        config = write_config(tmp_path / f"config{n}.toml", sections)
        monkeypatch.setenv("TMDB_API_KEY", api_key or sb.api_key)
        monkeypatch.setenv("REELSET_PROGRESS_INTERVAL", "0.2")
        return Env(sb, config, db_path, tmp_path)

    yield make
    for sb in started:
        sb.stop()


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.out)  # type: ignore[no-any-return]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``reelset --config CONFIG ARGS...`` in-process; returns code, stdout, stderr."""

    def run(env: Env, *args: str) -> CliResult:
        capsys.readouterr()
        code = cli_main(["--config", str(env.config), *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def cli_subprocess(env: Env, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``python -m reelset.cli --config CONFIG ARGS...`` as a child process."""
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "reelset.cli", "--config", str(env.config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
        **kwargs,
    )
