"""The CLI: version, help, db commands, JSON summaries, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from reelset import __version__
from reelset.cli import main
from reelset.storage import Store


def write_config(tmp_path: Path, url: str | None = None) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[storage]\nurl = "{url or "sqlite:///store.db"}"\n')
    return cfg


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("db", "scrape", "posters", "build", "datasets", "imdb", "sandbox"):
        assert name in out


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "nosuch"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_db_init_upgrade_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "db", "init", "--json"]) == 0
    init = json.loads(capsys.readouterr().out)
    assert init["backend"] == "sqlite" and init["schema_version"]
    assert (tmp_path / "store.db").exists()
    assert main(["--config", str(cfg), "db", "init"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "db", "upgrade", "--json"]) == 0
    up = json.loads(capsys.readouterr().out)
    assert up["from_version"] == up["to_version"] == init["schema_version"]
    assert main(["--config", str(cfg), "db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tables"]["movies"] == 0 and info["schema_version"] == init["schema_version"]
    assert main(["--config", str(cfg), "db", "info"]) == 0
    assert "movies: 0" in capsys.readouterr().out


def test_db_info_masks_password(
    pg_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_database.replace("postgres@", "postgres:hunter2secret@", 1)
    cfg = write_config(tmp_path, url)
    code = main(["--config", str(cfg), "db", "info", "--json"])
    out, err = capsys.readouterr()
    assert "hunter2secret" not in out + err
    assert code == 0, err
    assert json.loads(out)["url"].count("***") == 1


def test_newer_store_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "db", "init"]) == 0
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as s, s.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    capsys.readouterr()
    assert main(["--config", str(cfg), "db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer than this reelset" in err


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tmdb]\nmax_workers = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reelset.cli", "--config", str(bad), "db", "info"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "[tmdb] max_workers" in proc.stderr
