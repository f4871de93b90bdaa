"""examples/train_baseline.py runs on a built dataset and its top-k metric is right."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.dataset.conftest import Crafted, build, random_movies

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_baseline.py"


def test_top_k_precision_recall() -> None:
    module = runpy.run_path(str(EXAMPLE), run_name="example")
    y = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.int8)
    scores = np.array([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    precision, recall = module["top_k_precision_recall"](y, scores, 3)
    assert precision == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert recall == pytest.approx((1.0 + 1.0) / 2)


def test_example_trains_and_reports(
    crafted: Crafted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crafted.add(random_movies(300, seed=21))
    build(crafted)
    argv = [str(EXAMPLE), "--name", "genres", "--output-dir", str(crafted.tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "training movies" in out
    assert "test (" in out and "micro F1" in out and "top-3 precision" in out
