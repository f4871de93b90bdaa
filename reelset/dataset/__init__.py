"""Versioned training datasets built from the store (``reelset build``), and their loaders.

Training code::

    from reelset.dataset import load, load_examples, load_labels
    train = load("genres", split="train")          # latest version, pandas DataFrame
    labels = load_labels("genres")                  # multi-hot order
    posters = load_examples("genres", image_size=64)  # map-style dataset (torch DataLoader)

Builds: :func:`build_dataset` (what ``reelset build`` runs). Data flows one way through
the modules: ``read`` (the store, one snapshot) -> ``select`` (dedupe, filters),
``poster_duplicates``, ``labels``, ``splits``, ``cooccurrence`` -> ``plan`` (the version in
memory) -> ``publish`` (the files, atomically) -> ``versions`` (folders and ``LATEST``);
``build`` runs them, ``load``, ``examples`` and ``inspect`` read what they wrote. The
on-disk format is defined and documented once, in :mod:`reelset.dataset.format`
(:func:`format_doc`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reelset.dataset.examples import GenreExamples, load_examples
from reelset.dataset.load import dataset_dir, load, load_arrow, load_labels, load_manifest

if TYPE_CHECKING:
    from reelset.dataset.build import BuildResult, build_dataset

__all__ = [
    "BuildResult",
    "GenreExamples",
    "build_dataset",
    "dataset_dir",
    "load",
    "load_arrow",
    "load_examples",
    "load_labels",
    "load_manifest",
]


def __getattr__(name: str) -> Any:
    # The builder pulls in the store and scikit-learn: import it only when asked for.
    if name in ("build_dataset", "BuildResult"):
        from reelset.dataset import build

        return getattr(build, name)
    raise AttributeError(f"module 'reelset.dataset' has no attribute {name!r}")
