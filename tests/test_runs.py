"""The run lifecycle (``reelset.runs``): locks, run rows, heartbeat, signals; and the
Python API (``download_posters``, ``import_tsv``) locked and recorded like the commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelset.cli import main
from reelset.dataset.publish import build_lock
from reelset.errors import Interrupted, LockedError
from reelset.imdb import importer
from reelset.imdb.importer import import_tsv
from reelset.posters import download
from reelset.posters.download import download_posters
from reelset.redaction import register_secrets
from reelset.runs import recorded_run
from reelset.sandbox import Catalog, Sandbox, poster_fault_catalog
from reelset.storage import Store, schema
from tests.posters.support import normal_ids, poster_settings, store_movies

DEAD_PID = 2**22 + 4321  # above the default pid_max: no such process
DEADLINE_S = 60.0
BASICS = Path(__file__).parent / "fixtures" / "imdb" / "title.basics.tsv"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def hold_lock(store: Store, name: str, *, pid: int, host: str, run_id: int | None = 7) -> None:
    with store.write() as conn:
        conn.execute(
            schema.run_lock.insert().values(
                name=name, run_id=run_id, pid=pid, hostname=host,
                acquired_at=schema.utcnow(), heartbeat_at=schema.utcnow(),
            )
        )


def last(store: Store, command: str) -> dict[str, Any]:
    run = store.runs.last(command)
    assert run is not None
    return run


# -- in this process ---------------------------------------------------------------------


def test_a_lock_held_by_a_live_run_is_refused_naming_it(sqlite_store: Store) -> None:
    hold_lock(sqlite_store, "job", pid=1, host=socket.gethostname())  # pid 1 is alive
    with pytest.raises(LockedError) as info, recorded_run(sqlite_store, "job", {}, locks=("job",)):
        pytest.fail("the body ran without the lock")
    assert info.value.exit_code == 3
    assert f"locked by run 7 (pid 1 on {socket.gethostname()}, started " in str(info.value)
    assert sqlite_store.runs.last("job") is None  # refused before anything is recorded


def test_a_dead_process_leaves_its_lock_and_run_to_the_next(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    host = socket.gethostname()
    dead_run = sqlite_store.runs.start("job", {})
    with sqlite_store.write() as conn:
        conn.execute(schema.scrape_runs.update().values(pid=DEAD_PID))
    hold_lock(sqlite_store, "job", pid=DEAD_PID, host=host, run_id=dead_run)
    with recorded_run(sqlite_store, "job", {}, locks=("job",)) as run:
        holder = sqlite_store.locks.holder("job")
        assert holder is not None and (holder.pid, holder.run_id) == (os.getpid(), run.run_id)
    assert "taking over the job lock" in caplog.text
    with sqlite_store.read() as conn:
        rows = dict(conn.execute(schema.scrape_runs.select().with_only_columns(
            schema.scrape_runs.c.run_id, schema.scrape_runs.c.status)).all())
    assert rows == {dead_run: "interrupted", run.run_id: "succeeded"}


def test_how_the_body_ends_decides_the_status(sqlite_store: Store) -> None:
    with recorded_run(sqlite_store, "job", {"n": 1}, locks=("job", "other")) as run:
        run.counts = {"done": 2}
    assert (last(sqlite_store, "job")["status"], last(sqlite_store, "job")["counts"]) == (
        "succeeded", {"done": 2},
    )
    assert last(sqlite_store, "job")["params"] == {"n": 1}

    with recorded_run(sqlite_store, "job", {}) as run:
        run.status = "partial"
    assert last(sqlite_store, "job")["status"] == "partial"

    register_secrets(["runs-test-s3cr3t"])
    with pytest.raises(ValueError), recorded_run(sqlite_store, "job", {}) as run:
        run.counts = {"done": 1}
        raise ValueError("token runs-test-s3cr3t refused\nsecond line")
    failed = last(sqlite_store, "job")
    assert (failed["status"], failed["error"], failed["counts"]) == (
        "failed", "token *** refused", {"done": 1},
    )
    assert failed["finished_at"] is not None

    with pytest.raises(Interrupted), recorded_run(sqlite_store, "job", {}):
        raise KeyboardInterrupt  # raised again as Interrupted: exit 130
    assert last(sqlite_store, "job")["status"] == "interrupted"

    # Stopped, and the body did not say how it ended: interrupted, and raised as such.
    with pytest.raises(Interrupted) as info, recorded_run(sqlite_store, "job", {}) as run:
        run.stop.set()
    assert info.value.exit_code == 130
    assert last(sqlite_store, "job")["status"] == "interrupted"

    # A body that reports its own interruption (a scrape returns its summary) is believed.
    with recorded_run(sqlite_store, "job", {}) as run:
        run.stop.set()
        run.status = "interrupted"
    assert last(sqlite_store, "job")["status"] == "interrupted"
    assert sqlite_store.locks.holder("job") is None and sqlite_store.locks.holder("other") is None


def test_a_given_stop_event_is_the_runs(sqlite_store: Store) -> None:
    stop = threading.Event()
    with recorded_run(sqlite_store, "job", {}, stop=stop) as run:
        assert run.stop is stop
        run.raise_if_stopped()  # not stopped: nothing happens
    with pytest.raises(ValueError), recorded_run(sqlite_store, "job", {}, stop=stop):
        raise ValueError("boom")
    assert stop.is_set()  # a failing run stops the threads still working for it


def test_the_heartbeat_keeps_locks_alive_and_saves_counts(sqlite_store: Store) -> None:
    with recorded_run(
        sqlite_store, "job", {}, locks=("job",), lock_heartbeat_s=0.05, counts_every_s=0.05
    ) as run:
        holder = sqlite_store.locks.holder("job")
        assert holder is not None
        run.counts = {"done": 5}
        wait_for(lambda: last(sqlite_store, "job")["counts"] == {"done": 5}, "counts saved")
        assert last(sqlite_store, "job")["status"] == "running"
        wait_for(
            lambda: sqlite_store.locks.holder("job").heartbeat_at  # type: ignore[union-attr]
            > holder.heartbeat_at,
            "a lock heartbeat",
        )
        run.counts = {"done": 6}
    assert last(sqlite_store, "job")["counts"] == {"done": 6}


def test_signal_handlers_are_the_runs_only_in_the_main_thread(sqlite_store: Store) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with recorded_run(sqlite_store, "job", {}):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before

    seen: list[object] = []

    def elsewhere() -> None:
        with recorded_run(sqlite_store, "job", {}):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [before]


# -- signals, in a process of its own -----------------------------------------------------

_CHILD = """
import signal, sys, time
from reelset.errors import ReelsetError
from reelset.runs import recorded_run
from reelset.storage import Store

url, mode = sys.argv[1], sys.argv[2]
before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
code = 0
try:
    with Store(url) as store, recorded_run(
        store, "job", {"mode": mode}, locks=("job",), at_once=mode == "at_once"
    ) as run:
        print("running", flush=True)
        steps, told = 0, False
        while mode != "cooperative" or not run.stop.is_set():
            steps += 1
            run.counts = {"steps": steps}
            if run.stop.is_set() and not told:
                print("stop seen", flush=True)
                told = True
            time.sleep(0.01)
        run.counts = {"steps": steps, "step_in_flight_finished": True}
except ReelsetError as exc:
    print(f"{type(exc).__name__}: {exc}", flush=True)
    code = exc.exit_code
after = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
print("handlers restored" if after == before else "handlers NOT restored", flush=True)
sys.exit(code)
"""


@pytest.fixture
def child(sqlite_store: Store) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, sqlite_store.url, mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running", proc.stderr
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def interrupted(store: Store, proc: subprocess.Popen[str]) -> tuple[str, dict[str, Any]]:
    """Wait for the child: exit 130, its handlers restored, its run and lock closed."""
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, err
    assert "handlers restored" in out
    run = last(store, "job")
    assert run["status"] == "interrupted" and store.locks.holder("job") is None
    return out, run


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_after_the_work_in_flight(
    sqlite_store: Store, child: Callable[[str], subprocess.Popen[str]], signum: int
) -> None:
    proc = child("cooperative")
    holder = sqlite_store.locks.holder("job")
    assert holder is not None and holder.pid == proc.pid
    proc.send_signal(signum)
    out, run = interrupted(sqlite_store, proc)
    assert "Interrupted: interrupted; the work written so far is kept" in out
    assert run["counts"]["step_in_flight_finished"] is True


def test_a_second_sigint_interrupts_at_once(
    sqlite_store: Store, child: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = child("ignores_stop")
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "stop seen"
    proc.send_signal(signal.SIGINT)
    _, run = interrupted(sqlite_store, proc)
    assert run["counts"]["steps"] > 0 and "step_in_flight_finished" not in run["counts"]


def test_at_once_work_is_interrupted_by_the_first_signal(
    sqlite_store: Store, child: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = child("at_once")
    proc.send_signal(signal.SIGTERM)
    out, _ = interrupted(sqlite_store, proc)
    assert "interrupted by SIGTERM; the unfinished work was discarded" in out


# -- the Python API is a run like the command --------------------------------------------

_POSTERS_CHILD = """
import sys
from reelset.config import load_settings
from reelset.errors import ReelsetError
from reelset.posters.download import download_posters
from reelset.storage import Store

settings = load_settings(sys.argv[1])
with Store.open(settings) as store:
    try:
        download_posters(store, settings, show_progress=False)
    except ReelsetError as exc:
        sys.exit(exc.exit_code)
"""


def test_download_posters_from_python_is_a_locked_recorded_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty = poster_fault_catalog(Catalog.bundled(), per_kind=1)
    settings = poster_settings(tmp_path, max_workers=2)
    store = Store(settings.database_url)
    store.upgrade()
    ids = store_movies(store, faulty.catalog, normal_ids(faulty.catalog, faulty.faulty_ids, 30))
    sb = Sandbox(catalog=faulty.catalog, image_latency_ms=250).start()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\nurl = "{settings.database_url}"\nposters_dir = "{settings.posters_dir}"\n'
        f'[tmdb]\nimage_base_url = "{sb.image_base_url}"\n'
        '[posters]\nmax_workers = 2\nrate_limit = "1000/1s"\n'
    )
    try:
        proc = subprocess.Popen([sys.executable, "-c", _POSTERS_CHILD, str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: any(settings.posters_dir.glob("*/*.jpg")), "a poster file")
        running = last(store, "posters")
        assert running["status"] == "running" and running["pid"] == proc.pid
        # The command sees the Python call's lock exactly as another command's.
        assert main(["--config", str(config), "posters"]) == 3
        err = capsys.readouterr().err
        assert f"locked by run {running['run_id']} (pid {proc.pid} on " in err
        proc.send_signal(signal.SIGTERM)
        _, child_err = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 130, child_err
        stopped = last(store, "posters")
        assert stopped["run_id"] == running["run_id"] and stopped["status"] == "interrupted"
        assert 0 < stopped["counts"]["ok"] < len(ids) and stopped["counts"]["interrupted"]
        assert store.locks.holder("posters") is None

        # In this process: the lock is held with the run's id while rows are written.
        seen = []
        real = download.upsert_poster_rows

        def watching(*args: Any, **kwargs: Any) -> None:
            seen.append(store.locks.holder("posters"))
            real(*args, **kwargs)

        monkeypatch.setattr(download, "upsert_poster_rows", watching)
        sb.image_latency_ms = 0
        summary = download_posters(store, settings, image_base_url=sb.image_base_url,
                                   show_progress=False)
        done = last(store, "posters")
        assert (done["status"], done["counts"]) == ("succeeded", summary.as_dict())
        assert seen and all(h is not None and h.run_id == done["run_id"] for h in seen)
        assert store.locks.holder("posters") is None
    finally:
        sb.stop()
        store.close()


def test_import_tsv_from_python_is_a_locked_recorded_run(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    real = importer.upsert_imdb_titles

    def watching(*args: Any, **kwargs: Any) -> Any:
        seen.append((sqlite_store.locks.holder("imdb"), last(sqlite_store, "imdb import")))
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "upsert_imdb_titles", watching)
    report = import_tsv(sqlite_store, BASICS, None, title_types=["movie"], batch_size=2)
    run = last(sqlite_store, "imdb import")
    assert run["run_id"] == report.run_id and run["status"] == "succeeded"
    assert run["counts"] == report.counts() and run["counts"]["titles_new"] > 0
    assert len(seen) >= 2
    for holder, during in seen:
        assert holder is not None and (holder.pid, holder.run_id) == (os.getpid(), run["run_id"])
        assert during["status"] == "running"
    assert sqlite_store.locks.holder("imdb") is None

    hold_lock(sqlite_store, "imdb", pid=1, host=socket.gethostname())
    with pytest.raises(LockedError, match="locked by run 7"):
        import_tsv(sqlite_store, BASICS, None, title_types=["movie"], batch_size=2)


def test_a_build_is_a_recorded_run_and_a_dry_run_is_not(
    make_env: Callable[..., Any], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "datasets"
    env = make_env(extra={"build": {"output_dir": str(out)}})
    assert run_cli(env, "scrape", "--no-posters").code == 0
    assert run_cli(env, "build", "--dry-run").code == 0
    assert env.last_run()["params"].get("strategy") == "export"  # the scrape's: none added

    with build_lock(out / "genres", "genres"):  # another build of the dataset: exit 3
        assert run_cli(env, "build").code == 3
    assert env.rows("SELECT count(*) FROM scrape_runs WHERE command = 'build'") == [(0,)]

    assert run_cli(env, "build").code == 0
    built = env.last_run()
    assert built["params"] == {"name": "genres"} and built["status"] == "succeeded"
    assert built["counts"]["result"] == "built" and built["counts"]["version"] == "v0001"
    assert run_cli(env, "build").code == 0
    assert env.last_run()["counts"]["result"] == "unchanged"
