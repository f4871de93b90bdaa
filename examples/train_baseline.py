"""The notebooks' baseline on a built dataset: TF-IDF + one-vs-rest logistic regression.

    .venv/bin/python examples/train_baseline.py [--name genres] [--version latest]
                                                [--output-dir DIR]

Trains on ``train`` (overviews -> multi-hot ``labels``), then prints, for validation and
test: micro and macro F1 at a 0.5 threshold, and precision and recall of each movie's
top 3 predicted genres (averaged over movies). Everything it needs comes from
``reelset.dataset.load`` and ``load_labels``: the label order is the dataset's.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier

from reelset.dataset import load, load_labels

TOP_K = 3


def top_k_precision_recall(
    y_true: npt.NDArray[np.int8], scores: npt.NDArray[np.float64], k: int = TOP_K
) -> tuple[float, float]:
    """Mean precision and recall of each row's k highest-scoring labels."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(y_true, top, axis=1).sum(axis=1)
    relevant = y_true.sum(axis=1)
    precision = float(np.mean(hits / k))
    has = relevant > 0
    recall = float(np.mean(hits[has] / relevant[has])) if has.any() else 0.0
    return precision, recall


def main() -> int:
    """Train, evaluate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="dataset name (default: [build] name)")
    parser.add_argument("--version", default="latest", help="e.g. v0003 (default: latest)")
    parser.add_argument("--output-dir", default=None, help="default: [build] output_dir")
    args = parser.parse_args()

    def split(name: str) -> tuple[list[str], npt.NDArray[np.int8]]:
        frame = load(args.name, args.version, name, output_dir=args.output_dir,
                     columns=["overview", "labels"])
        y = np.stack(frame["labels"].to_numpy()) if len(frame) else np.zeros((0, 0), np.int8)
        return frame["overview"].tolist(), y

    names = [lab["name"] for lab in load_labels(args.name, args.version,
                                                output_dir=args.output_dir)]
    x_train, y_train = split("train")
    print(f"{len(x_train):,} training movies, {len(names)} labels")
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2,
                                 max_features=200_000, strip_accents="unicode")
    model = OneVsRestClassifier(LogisticRegression(max_iter=1000, solver="liblinear"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels absent from train: constant predictors
        model.fit(vectorizer.fit_transform(x_train), y_train)

    for name in ("validation", "test"):
        texts, y_true = split(name)
        if not texts:
            print(f"{name}: no movies")
            continue
        scores = model.predict_proba(vectorizer.transform(texts))
        predicted = (scores >= 0.5).astype(np.int8)
        micro = f1_score(y_true, predicted, average="micro", zero_division=0)
        macro = f1_score(y_true, predicted, average="macro", zero_division=0)
        precision, recall = top_k_precision_recall(y_true, scores)
        print(f"{name} ({len(texts):,} movies): micro F1 {micro:.3f}, macro F1 {macro:.3f}, "
              f"top-{TOP_K} precision {precision:.3f}, recall {recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
