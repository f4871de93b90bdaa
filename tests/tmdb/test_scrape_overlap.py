"""The start of a scrape overlaps its waits: the export file is read in the background
while the store opens and the genre list is fetched, never an API request before the
run's lock, the genre list asked for along with the first movies (and stored before
them), and no import of numpy on the way to the first request (nor for a small export).
Its end is short: a batch is written in parts as its movies arrive.

Ordering is shown with servers that hold an answer back until another request arrived
(no timing thresholds; ``GUARD_S`` only ends a wait that would otherwise never end).
"""

from __future__ import annotations

import datetime as dt
import gc
import gzip
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from reelset.config import Settings, settings_from_dict
from reelset.errors import LockedError
from reelset.runs import SCRAPE_LOCK
from reelset.storage import Store, schema
from reelset.tmdb.scrape import WRITE_PART, ScrapeOptions, run_scrape
from reelset.transport.errors import FetchError
from tests.cli_env import CliResult, Env, cli_subprocess
from tests.transport.scripted_server import Reply, Route, Routes, Seen, json_reply, routed_server

GUARD_S = 30.0
TODAY = dt.date(2026, 3, 10)
EXPORT_PATH = f"/p/exports/movie_ids_{TODAY:%m_%d_%Y}.json.gz"
GENRES_PATH = "/3/genre/movie/list"
IDS = (30, 10, 20)

MakeEnv = Callable[..., Env]
RunCli = Callable[..., CliResult]


def movie_body(tmdb_id: int) -> dict[str, Any]:
    return {
        "id": tmdb_id,
        "title": f"Movie {tmdb_id}",
        "overview": "An overview.",
        "genres": [{"id": 28, "name": "Action"}],
        "release_date": "2020-01-01",
        "imdb_id": f"tt{tmdb_id:07d}",
    }


def export_body() -> bytes:
    lines = [json.dumps({"id": i, "adult": False, "popularity": 1.0}) for i in IDS]
    return gzip.compress("\n".join(lines).encode(), mtime=0)


def tmdb_routes(**overrides: Route) -> dict[str, Route]:
    routes: dict[str, Route] = {
        GENRES_PATH: json_reply({"genres": [{"id": 28, "name": "Action"}]}),
        EXPORT_PATH: Reply(body=export_body()),
        **{f"/3/movie/{i}": json_reply(movie_body(i)) for i in IDS},
    }
    routes.update(overrides)
    return routes


def settings_for(routing: Routes, tmp_path: Path) -> Settings:
    return settings_from_dict(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'store' / 'reelset.db'}"},
            "tmdb": {
                "api_base_url": f"{routing.url}/3",
                "exports_base_url": f"{routing.url}/p/exports",
                "rate_limit": "100000/1s",
                "max_workers": 2,
            },
            "posters": {"enabled": False},
        },
        base_dir=tmp_path,
    )


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TMDB_API_KEY", "overlap-test-key")
    yield


def api_requests(routing: Routes) -> list[str]:
    """The paths (without query) of the API requests the server saw, in order."""
    paths = [urlsplit(s.path).path for s in routing.seen]
    return [p for p in paths if p.startswith("/3/")]


def stored_ids(settings: Settings) -> list[int]:
    with Store.open(settings) as store, store.engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(text("SELECT tmdb_id FROM movies")))


@pytest.mark.usefixtures("api_key")
def test_the_genre_list_is_fetched_while_the_export_downloads(tmp_path: Path) -> None:
    export_asked = threading.Event()
    genres_answered = threading.Event()
    seen_by: dict[str, bool] = {}

    def genres(_path: str, _seen: Seen) -> Reply:
        # A scrape that asks for the export only after the genre list waits here in vain.
        seen_by["genres: the export was asked for"] = export_asked.wait(GUARD_S)
        genres_answered.set()
        return json_reply({"genres": [{"id": 28, "name": "Action"}]})

    def export(_path: str, _seen: Seen) -> Reply:
        export_asked.set()
        # The export's answer is held back until the genre list was answered.
        seen_by["export: the genre list was answered"] = genres_answered.wait(GUARD_S)
        return Reply(body=export_body())

    with routed_server(tmdb_routes(**{GENRES_PATH: genres, EXPORT_PATH: export})) as routing:
        settings = settings_for(routing, tmp_path)
        result = run_scrape(settings, ScrapeOptions(strategy="export", posters=False, today=TODAY))
    stored = stored_ids(settings)

    assert seen_by == {
        "genres: the export was asked for": True,
        "export: the genre list was answered": True,
    }
    assert result.status == "succeeded"
    assert stored == sorted(IDS)
    # Nothing more was asked: one export, one genre list, one request per movie.
    assert routing.count(EXPORT_PATH) == 1
    assert sorted(api_requests(routing)) == sorted([GENRES_PATH] + [f"/3/movie/{i}" for i in IDS])


@pytest.mark.usefixtures("api_key")
def test_a_locked_store_gets_no_api_request_and_the_export_read_ends(tmp_path: Path) -> None:
    with routed_server(tmdb_routes()) as routing:
        settings = settings_for(routing, tmp_path)
        with Store.open(settings) as store, store.write() as conn:
            # The scrape lock as another live process holds it (pid 1 is always alive).
            now = schema.utcnow()
            conn.execute(
                schema.run_lock.insert().values(
                    name=SCRAPE_LOCK, run_id=7, pid=1, hostname=socket.gethostname(),
                    acquired_at=now, heartbeat_at=now,
                )
            )
        with pytest.raises(LockedError, match="run 7"):
            run_scrape(settings, ScrapeOptions(strategy="export", posters=False, today=TODAY))
    # The export (a file, not an API request) was being read before the lock was tried;
    # the API heard nothing, and the reading thread is gone with the run.
    assert routing.count(EXPORT_PATH) == 1
    assert api_requests(routing) == []
    assert not [t.name for t in threading.enumerate() if t.name.startswith("reelset-export")]


@pytest.mark.usefixtures("api_key")
def test_retrying_failures_only_reads_no_export(tmp_path: Path) -> None:
    with routed_server(tmdb_routes()) as routing:
        settings = settings_for(routing, tmp_path)
        options = ScrapeOptions(
            strategy="export", posters=False, today=TODAY, retry_failures=True
        )
        result = run_scrape(settings, options)
    assert result.status == "succeeded"
    assert routing.count(EXPORT_PATH) == 0
    assert api_requests(routing) == [GENRES_PATH]


def test_the_scraper_imports_no_numpy_before_the_export_is_read() -> None:
    code = (
        "import sys\n"
        "import reelset.commands.scrape, reelset.tmdb.scrape, reelset.tmdb.discovery\n"
        "print('numpy' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


def test_a_scrape_process_exits_with_its_log_and_store_complete(make_env: MakeEnv) -> None:
    # The command leaves its objects to the OS at exit (gc.freeze): what it wrote must
    # still be complete after the process ended.
    env = make_env()
    log_file = env.tmp / "scrape.log"
    proc = cli_subprocess(
        env, "--log-file", str(log_file), "-v", "scrape", "--no-posters", "--json"
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["status"] == "succeeded"
    stored = env.rows("SELECT count(*) FROM movies")[0][0]
    assert stored == summary["movies"]["fetched"] > 0
    log = log_file.read_text()
    assert f"scrape run {summary['run_id']}: strategy export" in log
    assert "movies to consider" in log


@pytest.mark.usefixtures("api_key")
def test_a_batch_is_written_in_parts_as_its_movies_arrive(tmp_path: Path) -> None:
    # One batch of WRITE_PART + 5 movies; the last one is answered only once the first
    # part is in the store. A scrape that writes the batch whole waits here in vain.
    ids = tuple(range(1, WRITE_PART + 6))
    last = ids[-1]
    seen_by: dict[str, bool] = {}
    db = tmp_path / "store" / "reelset.db"

    def part_written() -> bool:
        try:
            with sqlite3.connect(db) as conn:
                return int(conn.execute("SELECT count(*) FROM movies").fetchone()[0]) >= WRITE_PART
        except sqlite3.Error:
            return False

    def last_movie(_path: str, _seen: Seen) -> Reply:
        deadline = time.monotonic() + GUARD_S
        while not part_written() and time.monotonic() < deadline:
            time.sleep(0.02)
        seen_by["last movie: the first part was written"] = part_written()
        return json_reply(movie_body(last))

    lines = [json.dumps({"id": i, "adult": False}) for i in ids]
    routes = tmdb_routes(
        **{EXPORT_PATH: Reply(body=gzip.compress("\n".join(lines).encode(), mtime=0))},
        **{f"/3/movie/{i}": json_reply(movie_body(i)) for i in ids[:-1]},
        **{f"/3/movie/{last}": last_movie},
    )
    with routed_server(routes) as routing:
        settings = settings_for(routing, tmp_path)
        result = run_scrape(settings, ScrapeOptions(strategy="export", posters=False, today=TODAY))
    assert seen_by == {"last movie: the first part was written": True}
    assert result.status == "succeeded"
    assert result.summary["movies"]["new"] == len(ids)
    assert stored_ids(settings) == list(ids)


@pytest.mark.usefixtures("api_key")
def test_started_is_called_once_when_the_first_movies_are_requested(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    with routed_server(tmdb_routes()) as routing:
        settings = settings_for(routing, tmp_path)
        result = run_scrape(
            settings,
            ScrapeOptions(strategy="export", posters=False, today=TODAY),
            started=lambda: calls.append(api_requests(routing)),
        )
    assert result.status == "succeeded"
    # Called once, after the lock, before all the movies were asked for.
    assert len(calls) == 1
    assert len(calls[0]) < 1 + len(IDS)


@pytest.mark.usefixtures("api_key")
def test_started_is_called_once_when_no_movie_is_fetched(tmp_path: Path) -> None:
    calls: list[str] = []
    with routed_server(tmdb_routes()) as routing:
        settings = settings_for(routing, tmp_path)
        options = ScrapeOptions(
            strategy="export", posters=False, today=TODAY, retry_failures=True
        )
        result = run_scrape(settings, options, started=lambda: calls.append("started"))
    assert result.status == "succeeded"
    assert calls == ["started"]


def test_the_command_collects_no_garbage_during_start_up(
    make_env: MakeEnv, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up runs without the garbage collector; the scrape itself with it, over the
    frozen start-up objects; afterwards the collector is as it was."""
    import reelset.tmdb.scrape as scrape_module

    real = scrape_module.run_scrape
    seen: dict[str, object] = {}

    def watched(*args: Any, started: Callable[[], None], **kwargs: Any) -> Any:
        seen["collecting at the start"] = gc.isenabled()

        def hook() -> None:
            started()
            seen["collecting after start-up"] = gc.isenabled()
            seen["start-up frozen"] = gc.get_freeze_count() > 0

        return real(*args, started=hook, **kwargs)

    monkeypatch.setattr(scrape_module, "run_scrape", watched)
    env = make_env()
    assert gc.isenabled()
    result = run_cli(env, "scrape", "--no-posters", "--json")
    assert result.code == 0, result.err
    assert seen == {
        "collecting at the start": False,
        "collecting after start-up": True,
        "start-up frozen": True,
    }
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.usefixtures("api_key")
def test_the_genre_list_is_asked_for_along_with_the_first_movies(tmp_path: Path) -> None:
    movie_asked = threading.Event()
    seen_by: dict[str, bool] = {}

    def genres(_path: str, _seen: Seen) -> Reply:
        # A scrape that asks for movies only after the genre list waits here in vain.
        seen_by["genres: a movie was asked for"] = movie_asked.wait(GUARD_S)
        return json_reply({"genres": [{"id": 28, "name": "Action"}]})

    def movie(path: str, _seen: Seen) -> Reply:
        movie_asked.set()
        return json_reply(movie_body(int(path.rsplit("/", 1)[1].split("?")[0])))

    routes = tmdb_routes(**{GENRES_PATH: genres}, **{f"/3/movie/{i}": movie for i in IDS})
    with routed_server(routes) as routing:
        settings = settings_for(routing, tmp_path)
        result = run_scrape(settings, ScrapeOptions(strategy="export", posters=False, today=TODAY))
    assert seen_by == {"genres: a movie was asked for": True}
    assert result.status == "succeeded"
    assert stored_ids(settings) == sorted(IDS)
    with Store.open(settings) as store, store.engine.connect() as conn:
        names = conn.execute(text("SELECT genre_id, name, origin FROM genres")).all()
    assert [tuple(row) for row in names] == [(28, "Action", "tmdb")]


@pytest.mark.usefixtures("api_key")
def test_a_failed_genre_list_fails_the_run_before_anything_is_written(tmp_path: Path) -> None:
    broken = Reply(status=500, body=b'{"status_message": "down"}')
    with routed_server(tmdb_routes(**{GENRES_PATH: broken})) as routing:
        settings = settings_for(routing, tmp_path)
        settings = settings.model_copy(
            update={"tmdb": settings.tmdb.model_copy(
                update={"max_retries": 1, "backoff_initial_s": 0.01, "backoff_max_s": 0.01}
            )}
        )
        with pytest.raises(FetchError, match="HTTP 500"):
            run_scrape(settings, ScrapeOptions(strategy="export", posters=False, today=TODAY))
    with Store.open(settings) as store, store.engine.connect() as conn:
        counts = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("movies", "genres", "fetch_failures")
        }
        runs = conn.execute(text("SELECT status FROM scrape_runs")).scalars().all()
    assert counts == {"movies": 0, "genres": 0, "fetch_failures": 0}
    assert runs == ["failed"]
