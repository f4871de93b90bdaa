"""Logging: ``--log-format text|json`` and ``--log-file``, secrets redacted in both formats."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelset.cli import main
from reelset.console import setup_logging
from reelset.redaction import register_secrets

SECRET = "k3y-0f-the-l0g-tests"

log = logging.getLogger("reelset.tests")


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    register_secrets([SECRET])
    yield
    setup_logging(0)  # closes a test's log file; back to stderr


def _json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_json_lines_carry_the_fields_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "reelset.log"
    setup_logging(0, log_format="json", log_file=path)
    log.info("fetched %d movies", 3, extra={"run_id": 42, "endpoint": "/movie"})
    log.debug("not at the default level")
    (entry,) = _json_lines(path)
    assert entry == {
        "ts": entry["ts"],
        "level": "INFO",
        "logger": "reelset.tests",
        "message": "fetched 3 movies",
        "run_id": 42,
        "endpoint": "/movie",
    }
    stamp = dt.datetime.fromisoformat(str(entry["ts"]))
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 3600


def test_secrets_are_redacted_in_json(tmp_path: Path) -> None:
    path = tmp_path / "reelset.log"
    setup_logging(1, log_format="json", log_file=path)
    log.warning("bad key %s", SECRET, extra={"url": f"https://x/?api_key={SECRET}"})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        log.exception("request failed")
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    warning, failure = _json_lines(path)
    assert warning["message"] == "bad key ***"
    assert warning["url"] == "https://x/?api_key=***"
    assert failure["message"] == "request failed"
    assert "RuntimeError: refused ***" in str(failure["exc_info"])


def test_text_log_file_is_appended_and_redacted(tmp_path: Path) -> None:
    path = tmp_path / "reelset.log"
    setup_logging(0, log_file=path)
    log.info("first %s", SECRET)
    setup_logging(0, log_file=path)
    log.warning("second")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" INFO reelset.tests: first ***")
    assert lines[1].endswith(" WARNING reelset.tests: second")


def test_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, quiet=True, log_format="json")
    log.info("hidden by --quiet")
    log.warning("shown %s", SECRET)
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "shown ***"


def test_the_cli_options_before_and_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[storage]\nurl = "sqlite:///store.db"\n')
    path = tmp_path / "logs" / "reelset.log"
    path.parent.mkdir()
    assert main(["--log-format", "json", "--config", str(cfg), "db", "init"]) == 0
    assert json.loads(capsys.readouterr().err.splitlines()[0])["logger"].startswith("reelset")
    (tmp_path / "store.db").unlink()
    args = ["db", "init", "--config", str(cfg), "--log-file", str(path), "--log-format=json"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # the log went to the file
    (entry,) = _json_lines(path)
    assert entry["level"] == "INFO" and "schema upgraded" in str(entry["message"])


def test_a_log_file_that_cannot_be_opened_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir.log"
    assert main(["--log-file", str(missing), "db", "info"]) == 2
    err = capsys.readouterr().err
    assert err == f"reelset: error: --log-file: cannot open {missing}: No such file or directory\n"


def test_a_bad_log_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "info", "--log-format", "xml"]) == 2
    assert "Invalid value for '--log-format'" in capsys.readouterr().err


def test_text_logs_follow_a_swapped_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from reelset.console import setup_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(0)
    logging.getLogger("reelset.test").info("one")
    first.close()  # e.g. a test runner's capture of the previous test
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("reelset.test").info("two")
    lines = second.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("reelset.test: two"), lines
