"""The text baseline on a built dataset: TF-IDF + one-vs-rest logistic regression.

    .venv/bin/python examples/train_baseline.py [--name genres] [--version latest]
                                                [--output-dir DIR] [--seed N]
                                                [--max-samples N]

Trains on ``train`` (overviews -> multi-hot ``labels``), tunes one decision threshold per
label on ``validation`` (the one with the label's best F1), then prints, for validation
and test: micro, macro, weighted and samples F1 at those thresholds, precision and recall
of each movie's top 3 labels, and the test F1 of each label.

It reads only the published files (``reelset.dataset.load``, ``load_labels``) and runs
the builder's own baseline (:func:`reelset.dataset.baseline.train_baseline`), so with the
build's seed and sample cap (the defaults) it reproduces ``manifest.json`` ``baseline``,
and says so.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from reelset.dataset import load, load_labels, load_manifest
from reelset.dataset.baseline import SplitData, train_baseline


def main() -> int:
    """Train, tune, evaluate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="dataset name (default: [build] name)")
    parser.add_argument("--version", default="latest", help="e.g. v0003 (default: latest)")
    parser.add_argument("--output-dir", default=None, help="default: [build] output_dir")
    parser.add_argument("--seed", type=int, default=None,
                        help="default: the build's [build] seed")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="training rows (default: the build's baseline_max_samples)")
    args = parser.parse_args()

    manifest = load_manifest(args.name, args.version, output_dir=args.output_dir)
    # The build's choices: from its baseline, else its [build] settings, else the defaults.
    recorded = manifest.get("baseline") or {}
    build_cfg = manifest.get("config", {}).get("build", {})
    seed = next(v for v in (args.seed, recorded.get("seed"), build_cfg.get("seed"), 42)
                if v is not None)
    max_samples = next(v for v in (args.max_samples, recorded.get("max_samples"),
                                   build_cfg.get("baseline_max_samples"), 20_000)
                       if v is not None)
    names = [lab["name"] for lab in load_labels(args.name, args.version,
                                                output_dir=args.output_dir)]

    def split(name: str) -> SplitData:
        frame = load(args.name, args.version, name, output_dir=args.output_dir,
                     columns=["overview", "labels"])
        y = (np.stack(list(frame["labels"])).astype(np.int8) if len(frame)
             else np.zeros((0, len(names)), np.int8))
        return SplitData(frame["overview"].tolist(), y)

    result = train_baseline(split("train"), split("validation"), split("test"), names,
                            seed=seed, max_samples=max_samples)
    if "skipped" in result:
        print(f"baseline skipped: {result['skipped']}")
        return 0
    print(f"{result['train_samples']:,} training movies (seed {seed}), {len(names)} labels")
    for name in ("validation", "test"):
        m = result[name]
        print(f"{name} ({result[f'{name}_samples']:,} movies): micro F1 {m['micro_f1']:.3f}, "
              f"macro F1 {m['macro_f1']:.3f}, weighted F1 {m['weighted_f1']:.3f}, "
              f"samples F1 {m['samples_f1']:.3f}, top-3 precision {m['precision_at_3']:.3f}, "
              f"recall {m['recall_at_3']:.3f}")
    print("per label (test): F1, tuned threshold, test movies")
    for label, entry in result["per_label"].items():
        print(f"  {label:<16} {entry['f1']:.3f}  {entry['threshold']:.2f}  {entry['support']:,}")
    if "test" in recorded:
        same = recorded["test"] == result["test"]
        print(f"same test scores as manifest.json baseline: {'yes' if same else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
