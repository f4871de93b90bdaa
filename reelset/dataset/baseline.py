"""The text baseline of a dataset version: TF-IDF + one-vs-rest logistic regression.

Pure: overviews and multi-hot label matrices in, a JSON-ready dict out (``manifest.json``
``baseline``). Nothing is read or written here.

1. Train on ``train`` (at most ``max_samples`` rows: a seeded sample, so big builds stay
   quick): TF-IDF of the overviews (sublinear tf, words seen in at least 2 overviews, at
   most 50,000), then one logistic regression per label (liblinear, C=4,
   ``class_weight="balanced"``, fixed ``random_state``).
   A label with a single class in the training rows gets a constant score instead.
2. Tune one decision threshold per label on ``validation``: the threshold of
   :data:`THRESHOLD_GRID` that maximises that label's F1 (the middle of the best
   thresholds when several tie); a label without positives in validation, or whose best
   F1 is 0, keeps :data:`DEFAULT_THRESHOLD`.
3. Score validation and test with these thresholds: micro, macro, weighted and samples
   F1 (macro: the mean over the labels with at least one positive in the split), and
   precision/recall of each movie's top 3 labels (:func:`top_k_precision_recall`).

Validation and test are also capped at ``max_samples`` rows each (seeded samples drawn
independently of the training sample, not stratified); ``validation_samples`` and
``test_samples`` say how many rows the thresholds and scores were computed on. A split
no larger than the cap is used whole, so small datasets get exactly the numbers of
every row.

Floats are rounded to 4 decimals; with the same data and seed the dict is identical.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

# scikit-learn is imported where it is used (about a second of CPU): a build imports it
# while the store is read (:data:`HEAVY_MODULES`), not before.
HEAVY_MODULES = ("sklearn.feature_extraction.text", "sklearn.linear_model")

log = logging.getLogger(__name__)

MODEL = "tfidf+ovr-logistic-regression"
DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.round(np.arange(1, 100) / 100, 2)
TOP_K = 3
METRICS = ("micro_f1", "macro_f1", "weighted_f1", "samples_f1", "precision_at_3", "recall_at_3")
DIGITS = 4

Matrix = npt.NDArray[np.int8]
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BaselineParams:
    """The baseline's hyperparameters (recorded in the manifest under ``params``).

    Measured on the 4,771 usable movies of the real TMDB 5000 data set (5 split seeds):
    bigrams, C from 1 to 10, min_df 1 and no class weights all land within 0.01 of these
    defaults' median macro F1, and unigrams fit 2-3 times faster than bigrams.
    """

    ngram_max: int = 1
    min_df: int = 2
    max_features: int = 50_000
    c: float = 4.0
    class_weight: str | None = "balanced"

    def as_dict(self) -> dict[str, Any]:
        """The parameters as recorded in the manifest."""
        return {
            "tfidf": {
                "ngram_range": [1, self.ngram_max],
                "min_df": self.min_df,
                "max_features": self.max_features,
                "sublinear_tf": True,
            },
            "logistic_regression": {
                "solver": "liblinear",
                "C": self.c,
                "class_weight": self.class_weight,
            },
            "threshold_grid": [float(THRESHOLD_GRID[0]), float(THRESHOLD_GRID[-1]), 0.01],
            "default_threshold": DEFAULT_THRESHOLD,
        }


@dataclass(frozen=True)
class SplitData:
    """The overviews of one split and their multi-hot labels (rows x labels)."""

    texts: Sequence[str]
    y: Matrix


class TextModel:
    """A fitted TF-IDF + per-label logistic regression scorer."""

    def __init__(self, params: BaselineParams, seed: int) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.params = params
        self.seed = seed
        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            ngram_range=(1, params.ngram_max),
            min_df=params.min_df,
            max_features=params.max_features,
            strip_accents="unicode",
            dtype=np.float64,
        )
        # One regression per label rather than sklearn's OneVsRestClassifier: that one
        # treats a single-label matrix as a binary problem (2 output columns) and warns
        # on constant labels; here a constant label simply gets a constant score.
        self.models: list[LogisticRegression | float] = []

    def fit(self, texts: Sequence[str], y: Matrix) -> TextModel:
        """Fit on ``texts`` and the multi-hot ``y``; ValueError if no word is kept."""
        return self.fit_vectors(self.vectorizer.fit_transform(texts), y)

    def fit_vectors(self, x: Any, y: Matrix) -> TextModel:
        """Fit the regressions on TF-IDF rows ``x`` (of the fitted vectorizer) and ``y``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        self.models = []
        for j in range(y.shape[1]):
            column = y[:, j]
            if column.min() == column.max():
                self.models.append(float(column[0]) if len(column) else 0.0)
                continue
            model = LogisticRegression(
                solver="liblinear",
                C=self.params.c,
                class_weight=self.params.class_weight,
                random_state=self.seed,
                max_iter=1000,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, column)
            self.models.append(model)
        return self

    def scores(self, texts: Sequence[str]) -> Scores:
        """P(label) for each text and label (rows x labels)."""
        return self.vector_scores(self.vectorizer.transform(texts))

    def vector_scores(self, x: Any) -> Scores:
        """P(label) for each TF-IDF row of ``x`` and label (rows x labels)."""
        out = np.empty((x.shape[0], len(self.models)), dtype=np.float64)
        for j, model in enumerate(self.models):
            if isinstance(model, float):
                out[:, j] = model
            else:
                out[:, j] = model.predict_proba(x)[:, 1]
        return out


def sample_rows(
    n: int, limit: int, seed: int, stream: int | None = None
) -> npt.NDArray[np.int64]:
    """Row positions of a seeded sample of at most ``limit`` of ``n`` rows, sorted.

    ``stream`` (validation 1, test 2; None for train) draws an independent sample from
    the same seed.
    """
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed if stream is None else [seed, stream])
    return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)


def texts_at(texts: Sequence[str], rows: npt.NDArray[np.int64]) -> list[str]:
    """The texts at these positions (one ``take`` when ``texts`` has one, e.g. a column)."""
    take = getattr(texts, "take", None)
    if callable(take):
        return list(take(rows))
    return [texts[i] for i in rows.tolist()]


def _sampled(split: SplitData, limit: int, seed: int, stream: int) -> SplitData:
    """``split`` itself when it has at most ``limit`` rows, else a seeded sample of it."""
    rows = sample_rows(len(split.texts), limit, seed, stream)
    if len(rows) == len(split.texts):
        return SplitData(texts_at(split.texts, rows), split.y)
    return SplitData(texts_at(split.texts, rows), split.y[rows])


def tune_thresholds(y: Matrix, scores: Scores) -> npt.NDArray[np.float64]:
    """Per label, the grid threshold with the best F1 on ``y`` (see the module doc)."""
    thresholds = np.full(y.shape[1], DEFAULT_THRESHOLD)
    for j in range(y.shape[1]):
        truth = y[:, j].astype(bool)
        positives = int(truth.sum())
        if not positives:
            continue
        predicted = scores[:, j][:, None] >= THRESHOLD_GRID[None, :]
        tp = (predicted & truth[:, None]).sum(axis=0)
        f1 = 2 * tp / (predicted.sum(axis=0) + positives)
        best = f1.max()
        if best <= 0:
            continue
        ties = np.flatnonzero(f1 == best)
        thresholds[j] = THRESHOLD_GRID[ties[len(ties) // 2]]
    return thresholds


def top_k_precision_recall(y: Matrix, scores: Scores, k: int = TOP_K) -> tuple[float, float]:
    """Precision and recall of each movie's ``k`` highest-scoring labels, averaged.

    precision@k = mean over movies of hits / k; recall@k = mean over movies with at least
    one true label of hits / |true labels|. ``k`` is capped at the number of labels.
    """
    if not len(y) or not y.shape[1]:
        return 0.0, 0.0
    k = min(k, y.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum(axis=1)
    relevant = y.sum(axis=1)
    has = relevant > 0
    recall = float(np.mean(hits[has] / relevant[has])) if has.any() else 0.0
    return float(np.mean(hits / k)), recall


def _ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """num / den, 0 where den is 0."""
    out = np.zeros(np.shape(num), dtype=np.float64)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def label_f1(y: Matrix, predicted: Matrix) -> npt.NDArray[np.float64]:
    """F1 of each label (0 when it has neither positives nor predictions)."""
    tp = (y & predicted).sum(axis=0)
    return _ratio(2 * tp, y.sum(axis=0) + predicted.sum(axis=0))


def evaluate(y: Matrix, scores: Scores, thresholds: npt.NDArray[np.float64]) -> dict[str, float]:
    """The :data:`METRICS` of ``scores`` against ``y`` at ``thresholds``.

    The F1 averages are sklearn's (``f1_score`` with ``zero_division=0``), computed here
    because sklearn takes a one-label matrix for a binary problem; macro F1 is the mean
    over the labels with at least one positive in ``y``.
    """
    predicted = (scores >= thresholds[None, :]).astype(np.int8)
    support = y.sum(axis=0)
    per_label = label_f1(y, predicted)
    tp = (y & predicted).sum()
    present = support > 0
    row_f1 = _ratio(2 * (y & predicted).sum(axis=1), y.sum(axis=1) + predicted.sum(axis=1))
    precision, recall = top_k_precision_recall(y, scores)
    values = {
        "micro_f1": float(_ratio(np.array(2 * tp), np.array(y.sum() + predicted.sum()))),
        "macro_f1": float(per_label[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((per_label * support).sum() / support.sum()) if present.any()
        else 0.0,
        "samples_f1": float(row_f1.mean()) if len(y) else 0.0,
        "precision_at_3": precision,
        "recall_at_3": recall,
    }
    return {name: round(values[name], DIGITS) for name in METRICS}


def _skip_reason(train: SplitData, validation: SplitData, test: SplitData) -> str | None:
    if not train.y.shape[1]:
        return "no labels"
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if not len(split.texts):
            return f"no {name} movies"
    if not train.y.any():
        return "no label has a positive training movie"
    return None


def train_baseline(
    train: SplitData,
    validation: SplitData,
    test: SplitData,
    label_names: Sequence[str],
    *,
    seed: int,
    max_samples: int,
    params: BaselineParams | None = None,
) -> dict[str, Any]:
    """Train, tune and score the baseline: the dict of ``manifest.json`` ``baseline``.

    When there is too little data to say anything (no train, validation or test movies,
    no labels, no vocabulary), the dict is ``{"model": ..., "skipped": reason}``.
    """
    run = BaselineRun(
        train, validation, test, label_names, seed=seed, max_samples=max_samples, params=params
    )
    run.vectorize()
    run.fit()
    return run.result()


class BaselineRun:
    """:func:`train_baseline` in three steps, so a caller can overlap them with other work.

    :meth:`vectorize` (sampling and TF-IDF: Python, holding the GIL), :meth:`fit` (the
    regressions and the scores: mostly liblinear and sparse products, which release the
    GIL; may run in another thread), :meth:`result` (thresholds and metrics). Together
    they give exactly what :func:`train_baseline` returns.
    """

    def __init__(
        self,
        train: SplitData,
        validation: SplitData,
        test: SplitData,
        label_names: Sequence[str],
        *,
        seed: int,
        max_samples: int,
        params: BaselineParams | None = None,
    ) -> None:
        self.params = params or BaselineParams()
        self.seed = seed
        self.max_samples = max_samples
        self.names = list(label_names)
        self.train, self.validation, self.test = train, validation, test
        self.reason = _skip_reason(train, validation, test)
        self.rows = sample_rows(len(train.texts), max_samples, seed)
        self.model = TextModel(self.params, seed)
        self._x: tuple[Any, Any, Any] | None = None
        self._scores: tuple[Scores, Scores] | None = None

    def vectorize(self) -> None:
        """Sample the splits and turn the overviews into TF-IDF rows."""
        if self.reason is not None:
            return
        try:
            x_train = self.model.vectorizer.fit_transform(texts_at(self.train.texts, self.rows))
        except ValueError as exc:  # e.g. every word below min_df: an empty vocabulary
            self.reason = f"no vocabulary ({exc})"
            return
        self.train_movies = len(self.train.texts)
        self.train = SplitData([], self.train.y[self.rows])
        self.validation = _sampled(self.validation, self.max_samples, self.seed, 1)
        self.test = _sampled(self.test, self.max_samples, self.seed, 2)
        transform = self.model.vectorizer.transform
        self._x = (x_train, transform(self.validation.texts), transform(self.test.texts))

    def fit(self) -> None:
        """Fit one regression per label and score validation and test."""
        if self._x is None:
            return
        x_train, x_val, x_test = self._x
        try:
            self.model.fit_vectors(x_train, self.train.y)
        except ValueError as exc:  # as train_baseline has always reported it
            self.reason, self._x = f"no vocabulary ({exc})", None
            return
        self._scores = (self.model.vector_scores(x_val), self.model.vector_scores(x_test))
        self._x = None

    def result(self) -> dict[str, Any]:
        """Tune the thresholds, score: the dict of ``manifest.json`` ``baseline``."""
        head: dict[str, Any] = {
            "model": MODEL, "params": self.params.as_dict(), "seed": self.seed,
            "max_samples": self.max_samples,
        }
        if self.reason is not None or self._scores is None:
            reason = self.reason or "not trained"
            log.info("baseline skipped: %s", reason)
            return {**head, "skipped": reason}
        validation, test, names = self.validation, self.test, self.names
        val_scores, test_scores = self._scores
        thresholds = tune_thresholds(validation.y, val_scores)
        test_metrics = evaluate(test.y, test_scores, thresholds)
        predicted = (test_scores >= thresholds[None, :]).astype(np.int8)
        per_label_f1 = label_f1(test.y, predicted)
        support = test.y.sum(axis=0)
        result = {
            **head,
            "train_samples": len(self.rows),
            "train_movies": self.train_movies,
            "validation_samples": len(validation.texts),
            "test_samples": len(test.texts),
            "thresholds": {
                n: round(float(t), DIGITS) for n, t in zip(names, thresholds, strict=True)
            },
            "test": test_metrics,
            "validation": evaluate(validation.y, val_scores, thresholds),
            "per_label": {
                n: {
                    "f1": round(float(per_label_f1[j]), DIGITS),
                    "threshold": round(float(thresholds[j]), DIGITS),
                    "support": int(support[j]),
                }
                for j, n in enumerate(names)
            },
        }
        log.info(
            "baseline (%s, %d training movies): test %s",
            MODEL, len(self.rows),
            ", ".join(f"{k} {v:.3f}" for k, v in test_metrics.items()),
        )
        return result
