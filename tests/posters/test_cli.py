"""``reelset posters`` and ``reelset posters verify``: exit codes, summaries, locks, kills."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelset.cli import main
from reelset.config import Settings
from reelset.posters.audit import audit_posters
from reelset.posters.filestore import POSTER_NAME_RE
from reelset.sandbox import Catalog, PosterFaultCatalog, Sandbox, poster_fault_catalog
from reelset.storage import Store, schema
from reelset.storage.schema import utcnow
from tests.posters.support import (
    check_folder,
    normal_ids,
    poster_rows,
    poster_settings,
    store_movies,
)

CLI = [sys.executable, "-c", "import sys; from reelset.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def faulty() -> PosterFaultCatalog:
    return poster_fault_catalog(Catalog.bundled(), per_kind=1)


def write_config(tmp_path: Path, sb: Sandbox, **posters: object) -> Path:
    section = {
        "rate_limit": '"1000/1s"',
        "max_workers": 4,
        "timeout_s": 5.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        **{k: (f'"{v}"' if isinstance(v, str) else v) for k, v in posters.items()},
    }
    lines = [
        "[storage]",
        'url = "sqlite:///store/reelset.db"',
        'posters_dir = "posters"',
        "[tmdb]",
        f'image_base_url = "{sb.image_base_url}"',
        "[posters]",
        *(f"{k} = {v}" for k, v in section.items()),
    ]
    cfg = tmp_path / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@pytest.fixture
def small(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> Iterator[tuple[Store, Sandbox, Path, list[int]]]:
    catalog = faulty.catalog
    ids = normal_ids(catalog, faulty.faulty_ids, 4) + faulty.ids_by_kind["not_found"]
    store_movies(sqlite_store, catalog, ids)
    with Sandbox(catalog=catalog) as sb:
        yield sqlite_store, sb, write_config(tmp_path, sb), ids


def test_posters_command_summary_and_exit_codes(
    small: tuple[Store, Sandbox, Path, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _sb, cfg, ids = small
    assert main(["--config", str(cfg), "posters", "--json"]) == 1  # the 404 failed
    summary = json.loads(capsys.readouterr().out)
    assert (summary["movies"], summary["ok"], summary["failed"]) == (5, 4, 1)
    assert summary["failed_by_reason"] == {"http_404": 1} and summary["bytes"] > 0
    run = store.runs.last("posters")
    assert run is not None and run["status"] == "partial" and run["counts"]["ok"] == 4
    assert store.locks.holder("posters") is None

    assert main(["--config", str(cfg), "posters", "--id", str(ids[0])]) == 0  # nothing to do
    out = capsys.readouterr().out
    assert out.startswith("posters\n") and "movies: 0" in out

    assert main(["--config", str(cfg), "posters", "verify"]) == 0
    assert "problems_remaining: 0" in capsys.readouterr().out


def test_verify_exit_codes_and_repair(
    small: tuple[Store, Sandbox, Path, list[int]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    store, _sb, cfg, ids = small
    main(["--config", str(cfg), "posters"])
    row = poster_rows(store)[ids[1]]
    (tmp_path / "posters" / row["file_path"]).unlink()
    capsys.readouterr()
    assert main(["--config", str(cfg), "posters", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["missing"] == 1 and report["examples"]["missing"] == [row["file_path"]]
    assert main(["--config", str(cfg), "posters", "verify", "--repair"]) == 0
    assert "problems_remaining: 0" in capsys.readouterr().out
    assert (tmp_path / "posters" / row["file_path"]).is_file()
    run = store.runs.last("posters-verify")
    assert run is not None and run["status"] == "succeeded"
    assert main(["--config", str(cfg), "posters", "verify"]) == 0


def test_a_held_lock_is_exit_3(
    small: tuple[Store, Sandbox, Path, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _sb, cfg, _ids = small
    now = utcnow()
    with store.write() as conn:  # pid 1 is alive: the lock is not stale
        conn.execute(
            schema.run_lock.insert().values(
                name="posters", run_id=None, pid=1, hostname=socket.gethostname(),
                acquired_at=now, heartbeat_at=now,
            )
        )
    assert main(["--config", str(cfg), "posters"]) == 3
    assert "locked" in capsys.readouterr().err
    assert main(["--config", str(cfg), "posters", "verify", "--repair"]) == 3
    assert main(["--config", str(cfg), "posters", "verify"]) == 0  # read-only: no lock


def _start_slow_run(
    tmp_path: Path, faulty: PosterFaultCatalog, count: int, workers: int, processes: int = 0
) -> tuple[Store, Settings, Sandbox, Path, list[int]]:
    store = Store(f"sqlite:///{tmp_path / 'store' / 'reelset.db'}")
    store.upgrade()
    ids = normal_ids(faulty.catalog, faulty.faulty_ids, count)
    store_movies(store, faulty.catalog, ids)
    sb = Sandbox(catalog=faulty.catalog, image_latency_ms=150).start()
    cfg = write_config(tmp_path, sb, max_workers=workers, verify_processes=processes)
    return store, poster_settings(tmp_path), sb, cfg, ids


def _wait_for_files(proc: subprocess.Popen[bytes], root: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be stopped"
        if root.is_dir():
            names = [p.name for p in root.glob("*/*")]
            if sum(1 for n in names if POSTER_NAME_RE.match(n)) >= count:
                return
        time.sleep(0.02)
    raise AssertionError("no poster files appeared")


def test_sigkill_mid_download_leaves_store_and_folder_consistent(
    tmp_path: Path, faulty: PosterFaultCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    store, settings, sb, cfg, ids = _start_slow_run(tmp_path, faulty, 30, 4, processes=2)
    try:
        proc = subprocess.Popen([*CLI, "--config", str(cfg), "posters"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_files(proc, settings.posters_dir, 3)
        verifiers = _children(proc.pid)
        assert len(verifiers) >= 2  # the verifier processes
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        _wait_gone(verifiers)  # they notice their parent is gone and exit

        # No partial file under a final name, no ok row without its complete file.
        report = audit_posters(store, settings, show_progress=False)
        assert (report.corrupt, report.missing, report.bad_rows) == ([], [], [])
        rows = poster_rows(store)
        assert len(rows) < len(ids)

        # A rerun takes over the dead run's lock and completes.
        sb.image_latency_ms = 0
        assert main(["--config", str(cfg), "posters"]) == 0
        rows = poster_rows(store)
        assert len(rows) == len(ids) and {r["status"] for r in rows.values()} == {"ok"}
        killed = [r for r in _runs(store) if r["status"] == "interrupted"]
        assert len(killed) == 1  # the killed run was closed as abandoned
        assert main(["--config", str(cfg), "posters", "verify", "--repair"]) == 0
        capsys.readouterr()
        assert audit_posters(store, settings, show_progress=False).problems == 0
        check_folder(settings.posters_dir, tmp_path)
    finally:
        sb.stop()
        store.close()


def test_sigterm_records_the_work_in_flight(
    tmp_path: Path, faulty: PosterFaultCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    store, settings, sb, cfg, ids = _start_slow_run(tmp_path, faulty, 30, 2)
    try:
        proc = subprocess.Popen([*CLI, "--config", str(cfg), "posters", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_files(proc, settings.posters_dir, 3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        summary = json.loads(out)
        assert summary["interrupted"] is True and 3 <= summary["ok"] < len(ids)
        assert store.runs.last("posters")["status"] == "interrupted"  # type: ignore[index]
        # Every file written has its row: nothing orphaned, nothing partial.
        report = audit_posters(store, settings, show_progress=False)
        assert report.problems == 0, report.as_dict()
        assert len(poster_rows(store)) == summary["ok"]
        sb.image_latency_ms = 0
        assert main(["--config", str(cfg), "posters"]) == 0
        capsys.readouterr()
        assert len(poster_rows(store)) == len(ids)
    finally:
        sb.stop()
        store.close()


def _runs(store: Store) -> list[dict[str, object]]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(schema.scrape_runs.select()).mappings()]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"verifier processes left behind: {alive}")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
