"""A tiny poster CNN on a built dataset: embedded images -> multi-hot genres, with torch.

    .venv/bin/python examples/train_posters.py [--name genres] [--version latest]
                                               [--output-dir DIR] [--image-size 64]
                                               [--epochs 1] [--workers 2]

Reads the splits through :func:`reelset.dataset.load_examples` (images converted to RGB
and padded to a square of ``--image-size`` pixels) and ``torch.utils.data.DataLoader``,
trains two convolutions and a linear layer with a per-label sigmoid (binary cross-entropy)
for ``--epochs`` on ``train``, then prints micro and macro F1 at a 0.5 threshold on
validation and test. Movies without a poster get a black image. Seeded: two runs on one
machine print the same scores. A baseline to beat, not a model: expect it well below the
text baseline (examples/train_baseline.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader

from reelset.dataset import GenreExamples, load_examples
from reelset.errors import ReelsetError, error_line


class ToTensors:
    """The transform: a (3, size, size) float image in [0, 1] and float labels."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, example: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        image = example["image"]
        if image is None:
            pixels = torch.zeros(3, self.size, self.size)
        else:
            pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return pixels, torch.from_numpy(example["labels"].astype(np.float32))


class PosterCNN(nn.Module):
    """Two 3x3 convolutions with pooling, global average pooling, one linear layer."""

    def __init__(self, n_labels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.head = nn.Linear(32, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, one per label."""
        return self.head(self.features(x).flatten(1))


def evaluate(model: nn.Module, loader: DataLoader[Any]) -> tuple[float, float]:
    """Micro and macro F1 at a 0.5 threshold."""
    model.eval()
    truth, predicted = [], []
    with torch.no_grad():
        for pixels, labels in loader:
            truth.append(labels.numpy())
            predicted.append((torch.sigmoid(model(pixels)) >= 0.5).numpy())
    y_true = np.concatenate(truth).astype(np.int8)
    y_pred = np.concatenate(predicted).astype(np.int8)
    return (
        float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    )


def main() -> int:
    """Train, evaluate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="dataset name (default: [build] name)")
    parser.add_argument("--version", default="latest", help="e.g. v0003 (default: latest)")
    parser.add_argument("--output-dir", default=None, help="default: [build] output_dir")
    parser.add_argument("--image-size", type=int, default=64, help="square side (default 64)")
    parser.add_argument("--epochs", type=int, default=1, help="default 1")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    args = parser.parse_args()
    torch.manual_seed(0)

    def split(name: str) -> GenreExamples:
        return load_examples(args.name, args.version, name, output_dir=args.output_dir,
                             image_size=args.image_size, transform=ToTensors(args.image_size))

    def loader(examples: GenreExamples, order: list[int] | None = None) -> DataLoader[Any]:
        # An explicit order (the sampler) shuffles by row group: see shuffled_indices.
        return DataLoader(examples, batch_size=args.batch_size, sampler=order,
                          num_workers=args.workers)

    try:
        train = split("train")
        evaluated = {name: split(name) for name in ("validation", "test")}
    except ReelsetError as exc:
        print(f"reelset: error: {error_line(exc)}", file=sys.stderr)
        return exc.exit_code
    print(f"{len(train):,} training movies, {len(train.label_names)} labels, "
          f"images {args.image_size}x{args.image_size}")
    model = PosterCNN(len(train.label_names))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.BCEWithLogitsLoss()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for pixels, labels in loader(train, train.shuffled_indices(seed=epoch)):
            optimizer.zero_grad()
            loss = loss_function(model(pixels), labels)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        print(f"epoch {epoch}: mean training loss {total / max(batches, 1):.4f}")

    for name, examples in evaluated.items():
        if not len(examples):
            print(f"{name}: no movies")
            continue
        micro, macro = evaluate(model, loader(examples))
        print(f"{name} ({len(examples):,} movies): micro F1 {micro:.3f}, macro F1 {macro:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
