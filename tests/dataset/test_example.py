"""examples/train_baseline.py runs on a built dataset and reproduces its manifest baseline."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from tests.dataset.conftest import Crafted, build
from tests.dataset.test_baseline import worded_movies

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_baseline.py"


def run_example(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    return int(done.value.code or 0)


def test_example_trains_tunes_and_reports(
    crafted: Crafted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crafted.add(worded_movies(300, seed=21))
    result = build(crafted, images="reference")
    manifest_test = json.loads((result.path / "manifest.json").read_text())["baseline"]["test"]
    out_dir = str(crafted.tmp_path / "out")
    assert run_example(monkeypatch, "--name", "genres", "--output-dir", out_dir) == 0
    out = capsys.readouterr().out
    assert "training movies (seed 42)" in out
    assert (f"test ({result.rows['test']:,} movies): "
            f"micro F1 {manifest_test['micro_f1']:.3f}, macro F1 {manifest_test['macro_f1']:.3f}, "
            f"weighted F1 {manifest_test['weighted_f1']:.3f}, "
            f"samples F1 {manifest_test['samples_f1']:.3f}") in out
    assert "same test scores as manifest.json baseline: yes" in out
    assert "  Comedy " in out  # the per-label table

    # Another seed: another training sample, not the manifest's numbers.
    args = ("--name", "genres", "--output-dir", out_dir, "--seed", "5", "--max-samples", "100")
    assert run_example(monkeypatch, *args) == 0
    out = capsys.readouterr().out
    assert "100 training movies (seed 5)" in out
    assert "same test scores as manifest.json baseline: no" in out
