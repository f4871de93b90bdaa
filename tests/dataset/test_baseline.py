"""The text baseline of a version: scores, tuned thresholds, determinism, degenerate data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

from reelset.dataset.baseline import (
    DEFAULT_THRESHOLD,
    METRICS,
    SplitData,
    evaluate,
    sample_rows,
    top_k_precision_recall,
    train_baseline,
    tune_thresholds,
)
from reelset.dataset.inspect import diff, show
from tests.dataset.conftest import Crafted, build, movie, plan_for, random_movies

# Genre id -> the word that marks it in the crafted overviews.
GENRE_WORDS = {
    28: "explosion", 35: "joke", 27: "ghost", 10749: "kiss", 878: "spaceship",
    99: "interview", 80: "detective", 16: "cartoon", 37: "cowboy", 10402: "guitar",
}  # fmt: skip
_FILLER = [f"{a}{b}" for a in ("bra", "cle", "dro", "fen", "gal", "hur") for b in
           ("mon", "tis", "vek", "lor", "paz", "quin", "rud", "sol")]


def worded_movies(n: int, seed: int, *, shuffle_labels: bool = False) -> list:
    """Movies whose overviews name their genres' words among filler words (1-2 genres).

    With ``shuffle_labels`` the genre sets are permuted across the movies, so the words
    say nothing about the genres any more.
    """
    rng = random.Random(seed)
    genre_sets, overviews = [], []
    for k in range(n):
        genres = rng.sample(sorted(GENRE_WORDS), rng.choice((1, 1, 2)))
        words = [GENRE_WORDS[g] for g in genres] + rng.sample(_FILLER, 6)
        rng.shuffle(words)
        genre_sets.append(tuple(sorted(genres)))
        overviews.append(f"Film {k}: " + " ".join(words) + ".")
    if shuffle_labels:
        rng.shuffle(genre_sets)
    return [movie(k + 1, overview=o, genre_ids=g)
            for k, (o, g) in enumerate(zip(overviews, genre_sets, strict=True))]


def test_words_that_decide_the_genres_give_high_scores(crafted: Crafted) -> None:
    crafted.add(worded_movies(400, seed=1))
    baseline = plan_for(crafted, images="reference").manifest["baseline"]
    assert baseline["model"] == "tfidf+ovr-logistic-regression"
    assert baseline["test"]["macro_f1"] > 0.8 and baseline["test"]["micro_f1"] > 0.8
    assert baseline["validation"]["samples_f1"] > 0.8
    assert baseline["test"]["recall_at_3"] > 0.9
    assert set(baseline["test"]) == set(METRICS) == set(baseline["validation"])
    assert set(baseline["thresholds"]) == set(baseline["per_label"]) == {
        "Action", "Comedy", "Horror", "Romance", "Science Fiction", "Documentary", "Crime",
        "Animation", "Western", "Music",
    }
    rows = plan_for(crafted, images="reference").manifest["rows"]
    assert baseline["train_samples"] == rows["train"]
    assert baseline["test_samples"] == rows["test"]
    assert baseline["validation_samples"] == rows["validation"]
    assert sum(e["support"] for e in baseline["per_label"].values()) > rows["test"]


def test_shuffled_labels_give_low_scores(crafted: Crafted) -> None:
    crafted.add(worded_movies(400, seed=1, shuffle_labels=True))
    baseline = plan_for(crafted, images="reference").manifest["baseline"]
    assert baseline["test"]["macro_f1"] < 0.45
    assert baseline["test"]["micro_f1"] < 0.45


def _imbalanced(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Two labels: a common one and a rare (4%) one, each hinted by a noisy word."""
    rng = np.random.default_rng(seed)
    common = rng.random(n) < 0.4
    rare = rng.random(n) < 0.04
    texts = []
    for c, r in zip(common, rare, strict=True):
        words = list(rng.choice(_FILLER, 5))
        if rng.random() < (0.7 if c else 0.15):
            words.append("harbor")
        if rng.random() < (0.6 if r else 0.05):
            words.append("lantern")
        texts.append(" ".join(words))
    return texts, np.stack([common, rare], axis=1).astype(np.int8)


def test_thresholds_are_tuned_on_validation() -> None:
    texts, y = _imbalanced(3000, seed=5)
    train, val, test = (SplitData(texts[a:b], y[a:b]) for a, b in
                        ((0, 2000), (2000, 2500), (2500, 3000)))
    result = train_baseline(train, val, test, ["common", "rare"], seed=3, max_samples=20_000)
    tuned = np.array([result["thresholds"]["common"], result["thresholds"]["rare"]])
    assert (tuned != DEFAULT_THRESHOLD).any()
    assert result["per_label"]["rare"]["threshold"] == result["thresholds"]["rare"]
    assert result["per_label"]["rare"]["support"] == int(test.y[:, 1].sum())

    # Tuned beats the default threshold on the validation split it was tuned on.
    from reelset.dataset.baseline import BaselineParams, TextModel

    model = TextModel(BaselineParams(), seed=3).fit(train.texts, train.y)
    scores = model.scores(val.texts)
    at_default = evaluate(val.y, scores, np.full(2, DEFAULT_THRESHOLD))
    at_tuned = evaluate(val.y, scores, tuned)
    assert at_tuned == result["validation"]
    assert at_tuned["macro_f1"] > at_default["macro_f1"]
    # ... and on test, which it never saw.
    test_default = evaluate(test.y, model.scores(test.texts), np.full(2, DEFAULT_THRESHOLD))
    assert result["test"]["macro_f1"] > test_default["macro_f1"]


def test_tune_thresholds_picks_the_middle_of_the_best() -> None:
    y = np.array([[0, 0], [1, 0], [1, 0], [1, 0]], dtype=np.int8)
    scores = np.array([[0.2, 0.9], [0.3, 0.1], [0.6, 0.2], [0.7, 0.3]])
    # Label 0: F1 is 1 for thresholds 0.21 ... 0.30; label 1 has no positives.
    assert tune_thresholds(y, scores).tolist() == [0.26, DEFAULT_THRESHOLD]


def test_top_k_precision_recall() -> None:
    y = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.int8)
    scores = np.array([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    precision, recall = top_k_precision_recall(y, scores)
    assert precision == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert recall == pytest.approx((1.0 + 1.0) / 2)
    # k is capped at the number of labels: 2 labels, both true -> precision 1.
    assert top_k_precision_recall(np.ones((2, 2), np.int8), np.zeros((2, 2))) == (1.0, 1.0)


def test_f1_averages_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < 0.3).astype(np.int8)
    y[:, 4] = 0  # a label without positives: left out of the macro average
    y[y.sum(axis=1) == 0, 0] = 1
    scores = rng.random((60, 5))
    thresholds = np.array([0.3, 0.5, 0.7, 0.4, 0.6])
    got = evaluate(y, scores, thresholds)
    predicted = (scores >= thresholds).astype(np.int8)
    for average in ("micro", "weighted", "samples"):
        want = f1_score(y, predicted, average=average, zero_division=0)
        assert got[f"{average}_f1"] == pytest.approx(want, abs=1e-4), average
    want = f1_score(y, predicted, average="macro", labels=[0, 1, 2, 3], zero_division=0)
    assert got["macro_f1"] == pytest.approx(want, abs=1e-4)


def test_sample_rows_is_seeded_and_capped() -> None:
    assert sample_rows(5, 10, seed=1).tolist() == [0, 1, 2, 3, 4]
    first = sample_rows(1000, 100, seed=1)
    assert len(first) == len(set(first.tolist())) == 100 and (np.diff(first) > 0).all()
    assert first.tolist() == sample_rows(1000, 100, seed=1).tolist()
    assert first.tolist() != sample_rows(1000, 100, seed=2).tolist()


def test_max_samples_caps_the_training_rows(crafted: Crafted) -> None:
    crafted.add(worded_movies(300, seed=2))
    baseline = plan_for(crafted, images="reference", baseline_max_samples=100).manifest[
        "baseline"
    ]
    assert baseline["train_samples"] == 100 and baseline["train_movies"] > 100
    assert baseline["test"]["macro_f1"] > 0.5


def test_same_data_same_numbers_and_disabled_is_none(crafted: Crafted) -> None:
    crafted.add(worded_movies(200, seed=3))
    first = build(crafted, "out1", images="reference")
    second = build(crafted, "out2", images="reference")
    a = json.loads((first.path / "manifest.json").read_text())["baseline"]
    b = json.loads((second.path / "manifest.json").read_text())["baseline"]
    assert a == b and a["test"]["micro_f1"] > 0.5
    assert plan_for(crafted, images="reference", baseline=False).manifest["baseline"] is None
    other_seed = plan_for(crafted, images="reference", seed=7).manifest["baseline"]
    assert other_seed["seed"] == 7 and other_seed != a


def test_a_label_absent_from_train_and_a_single_label() -> None:
    texts = [f"story {w} of the {w}s" for w in _FILLER] * 3
    y = np.zeros((len(texts), 3), np.int8)
    y[: len(texts) // 2, 0] = 1
    y[:, 1] = 1  # every movie: a constant label
    n = len(_FILLER)
    y_val = y[n: 2 * n].copy()
    y_val[:3, 2] = 1  # label 2 never in train, present in validation and test
    y_test = y[2 * n:].copy()
    y_test[:2, 2] = 1
    result = train_baseline(
        SplitData(texts[:n], y[:n]), SplitData(texts[n: 2 * n], y_val),
        SplitData(texts[2 * n:], y_test), ["a", "b", "c"], seed=1, max_samples=100,
    )
    assert "skipped" not in result
    assert result["per_label"]["c"]["f1"] == 0.0 and result["per_label"]["c"]["support"] == 2
    assert result["per_label"]["b"]["f1"] == 1.0

    one = train_baseline(
        SplitData(texts[:n], y[:n, :1]), SplitData(texts[n: 2 * n], y[n: 2 * n, :1]),
        SplitData(texts[2 * n:], y[2 * n:, :1]), ["a"], seed=1, max_samples=100,
    )
    assert set(one["per_label"]) == {"a"} and set(one["test"]) == set(METRICS)


@pytest.mark.parametrize(
    ("sizes", "reason"),
    [((0, 5, 5), "no train movies"), ((5, 0, 5), "no validation movies"),
     ((5, 5, 0), "no test movies")],
)
def test_empty_splits_are_skipped(sizes: tuple[int, int, int], reason: str) -> None:
    train, val, test = (
        SplitData(["a good story here"] * n, np.ones((n, 2), np.int8)) for n in sizes
    )
    result = train_baseline(train, val, test, ["a", "b"], seed=1, max_samples=100)
    assert result["skipped"] == reason and "test" not in result


def test_no_vocabulary_is_skipped() -> None:
    # Every word occurs in one overview only: below min_df, nothing to learn from.
    train = SplitData([f"w{i}x" for i in range(6)], np.array([[1], [0]] * 3, np.int8))
    other = SplitData(["w1x"], np.array([[1]], np.int8))
    result = train_baseline(train, other, other, ["a"], seed=1, max_samples=100)
    assert result["skipped"].startswith("no vocabulary")


def test_tiny_store_builds(crafted: Crafted) -> None:
    crafted.add(random_movies(4, seed=9))
    baseline = plan_for(crafted, images="reference").manifest["baseline"]
    assert baseline is not None and ("skipped" in baseline or "test" in baseline)


def test_diff_and_show_report_the_baseline(crafted: Crafted) -> None:
    crafted.add(worded_movies(200, seed=4))
    build(crafted, images="reference", baseline=False)
    build(crafted, images="reference")
    crafted.add(worded_movies(300, seed=4)[200:])
    build(crafted, images="reference")
    out = crafted.tmp_path / "out"
    moved = diff(out, "genres@v2", "genres@v3")["baseline"]
    assert set(moved) == set(METRICS)
    for metric, m in moved.items():
        assert m["change"] == pytest.approx(m["to"] - m["from"], abs=1e-4), metric
    assert any(m["change"] != 0 for m in moved.values())
    from_none = diff(out, "genres@v1", "genres@v2")["baseline"]
    assert all(m["from"] is None and m["change"] is None for m in from_none.values())
    assert from_none["micro_f1"]["to"] == moved["micro_f1"]["from"]
    assert diff(out, "genres@v1", "genres@v1")["baseline"] == {}
    assert show(out, "genres@v1")["baseline"].startswith("none")
    assert show(out, "genres@v3")["baseline"]["test"] == {k: m["to"] for k, m in moved.items()}


def test_max_samples_caps_validation_and_test_too() -> None:
    rng = np.random.default_rng(5)
    words = ["explosion", "joke", "ghost", "kiss"]

    def split(n: int) -> SplitData:
        y = rng.integers(0, 2, size=(n, 4)).astype(np.int8)
        texts = [" ".join([w for w, on in zip(words, row, strict=True) if on]
                          + rng.choice(_FILLER, 5).tolist()) for row in y]
        return SplitData(texts, y)

    train, val, test = split(300), split(250), split(220)
    capped = train_baseline(train, val, test, words, seed=4, max_samples=120)
    assert capped["train_samples"] == capped["validation_samples"] == 120
    assert capped["test_samples"] == 120 and capped["train_movies"] == 300
    assert sum(lab["support"] for lab in capped["per_label"].values()) == int(
        test.y[sample_rows(220, 120, 4, 2)].sum()
    )
    # The same as scoring the seeded samples whole: validation and test draw their own.
    val_rows, test_rows = sample_rows(250, 120, 4, 1), sample_rows(220, 120, 4, 2)
    assert val_rows.tolist() != test_rows[: len(val_rows)].tolist()
    by_hand = train_baseline(
        SplitData([train.texts[i] for i in sample_rows(300, 120, 4)],
                  train.y[sample_rows(300, 120, 4)]),
        SplitData([val.texts[i] for i in val_rows], val.y[val_rows]),
        SplitData([test.texts[i] for i in test_rows], test.y[test_rows]),
        words, seed=4, max_samples=120,
    )
    assert {k: v for k, v in by_hand.items() if k != "train_movies"} == {
        k: v for k, v in capped.items() if k != "train_movies"
    }
    # Splits no larger than the cap are used whole: the numbers of every row.
    whole = train_baseline(train, val, test, words, seed=4, max_samples=300)
    larger = train_baseline(train, val, test, words, seed=4, max_samples=10_000)
    assert whole["validation_samples"] == 250 and whole["test_samples"] == 220
    assert {k: v for k, v in whole.items() if k != "max_samples"} == {
        k: v for k, v in larger.items() if k != "max_samples"
    }


def test_the_written_baseline_is_the_planned_one_and_unchanged_builds_skip_it(
    crafted: Crafted, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    crafted.add(worded_movies(200, seed=6))
    planned = plan_for(crafted, images="reference").manifest["baseline"]
    with caplog.at_level(logging.INFO, logger="reelset.dataset.baseline"):
        first = build(crafted, images="reference")  # trained beside the writing
        assert sum("baseline (" in r.getMessage() for r in caplog.records) == 1
        caplog.clear()
        again = build(crafted, images="reference")
    written = json.loads((first.path / "manifest.json").read_text())["baseline"]
    assert written == planned
    assert again.status == "unchanged"
    assert not [r for r in caplog.records if "baseline" in r.getMessage()]
