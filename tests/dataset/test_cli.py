"""``reelset build`` and ``reelset datasets``: exit codes, --json, dry runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelset.cli import main
from reelset.dataset.publish import build_lock
from tests.dataset.conftest import Crafted, movie, random_movies


@pytest.fixture
def cli(crafted: Crafted, monkeypatch: pytest.MonkeyPatch) -> Crafted:
    crafted.add(random_movies(200, seed=11))
    monkeypatch.setenv("REELSET_CONFIG", str(crafted.config_file()))
    return crafted


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_json_then_unchanged(cli: Crafted, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "built" and summary["version"] == "v0001"
    assert summary["rows"]["total"] == 200 and "removed" in summary
    code, out, _ = run(capsys, "build")
    assert code == 0 and "unchanged (still v0001)" in out


def test_dry_run_writes_nothing(cli: Crafted, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["status"] == "dry-run"
    assert not (cli.tmp_path / "out").exists()


def test_bad_input_is_one_line_and_exit_2(
    cli: Crafted, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "build", "--name", "no spaces allowed")
    assert code == 2 and err.count("\n") == 1 and "invalid dataset name" in err
    assert run(capsys, "build")[0] == 0
    for argv in (
        ("datasets", "show", "genres@v9"),
        ("datasets", "show", "missing"),
        ("datasets", "show", "genres@vx"),
        ("datasets", "diff", "genres@v1", "genres@v2"),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.startswith("reelset: error:") and err.count("\n") == 1, argv
    empty = tmp_path / "empty.db"
    empty.touch()
    (tmp_path / "other.toml").write_text(f'[storage]\nurl = "sqlite:///{empty}"\n')
    code, _, err = run(capsys, "--config", str(tmp_path / "other.toml"), "build")
    assert code == 2 and "not initialised" in err
    from reelset.storage import Store

    Store(f"sqlite:///{empty}").upgrade()
    code, _, err = run(capsys, "--config", str(tmp_path / "other.toml"), "build")
    assert code == 2 and "nothing to build" in err


def test_list_show_diff(cli: Crafted, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0 and "no datasets" in out
    run(capsys, "build")
    cli.add([movie(9000, genre_ids=(18,))])
    run(capsys, "build")
    run(capsys, "build", "--name", "other")
    code, out, _ = run(capsys, "datasets", "list", "--json")
    found = {d["name"]: d for d in json.loads(out)["datasets"]}
    assert code == 0 and found["genres"]["versions"] == ["v0001", "v0002"]
    assert found["other"]["latest"] == "v0001"
    code, out, _ = run(capsys, "datasets", "show", "genres@v1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["version"] == "v0001" and shown["rows"]["total"] == 200
    assert "Drama" in shown["labels"]
    code, out, _ = run(capsys, "datasets", "show", "genres")
    assert code == 0 and "dataset genres v0002" in out
    code, out, _ = run(capsys, "datasets", "diff", "genres@v1", "genres@latest", "--json")
    changes = json.loads(out)
    assert code == 0 and changes["added"] == 1 and changes["split_moves"] == 0
    assert changes["examples"]["added"] == [9000]


def test_diff_reports_split_moves(cli: Crafted, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "build")
    cli.add([movie(9000)])
    run(capsys, "build")
    # Break the guarantee by hand: move one movie from train to test in v0002.
    data = cli.tmp_path / "out" / "genres" / "v0002" / "data"
    train = pq.read_table(data / "train.parquet")
    test = pq.read_table(data / "test.parquet")
    pq.write_table(train.slice(1), data / "train.parquet")
    pq.write_table(pa.concat_tables([test, train.slice(0, 1)]), data / "test.parquet")
    code, out, err = run(capsys, "datasets", "diff", "genres@v1", "genres@v2", "--json")
    moves = json.loads(out)
    assert code == 1 and moves["split_moves"] == 1
    assert moves["examples"]["split_moves"][0]["to"] == "test"
    assert "changed split" in err


def test_second_build_of_same_name_is_refused(
    cli: Crafted, capsys: pytest.CaptureFixture[str]
) -> None:
    with build_lock(cli.tmp_path / "out" / "genres", "genres"):
        code, _, err = run(capsys, "build")
    assert code == 3 and "another build" in err
    assert run(capsys, "build", "--name", "free")[0] == 0


def test_demo_build_builds_and_shows(cli: Crafted, capsys: pytest.CaptureFixture[str]) -> None:
    from reelset.commands.build import demo_build

    assert demo_build(cli.settings()) == 0
    out = capsys.readouterr().out
    assert "dataset genres v0001 built" in out and "dataset genres v0001\n" in out
    assert "Drama:" in out and "(train " in out


def test_diff_and_show_print_the_baseline(
    cli: Crafted, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "build")[0] == 0
    cli.add(random_movies(100, seed=12, start_id=5000))
    assert run(capsys, "build")[0] == 0
    code, out, _ = run(capsys, "datasets", "diff", "genres@v1", "genres@v2", "--json")
    moved = json.loads(out)["baseline"]
    assert code == 0 and set(moved) >= {"micro_f1", "macro_f1", "precision_at_3"}
    code, out, _ = run(capsys, "datasets", "diff", "genres@v1", "genres@v2")
    m = moved["macro_f1"]
    assert code == 0 and "  baseline:\n" in out
    assert f"    macro_f1: {m['from']:.4f} -> {m['to']:.4f} ({m['change']:+.4f})\n" in out
    code, out, _ = run(capsys, "datasets", "show", "genres@v2")
    assert code == 0 and f"    test macro_f1: {m['to']:.4f}\n" in out
