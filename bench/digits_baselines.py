"""Baselines without attention on the shipped 8x8 digits: what the ViT's accuracy should be read against.

On attnlab's own fixed splits (``data=digits``: 1294 train / 144 valid / 359 test), with the
ViT's input scaling (pixel counts / 16):

- 1-nearest neighbour in pixel space (no training, no randomness);
- a one-hidden-layer MLP (64 -> 256 -> 10, GELU; AdamW lr 1e-3, weight decay 0.01, label
  smoothing 0.1, batches of 64, 300 epochs, no augmentation), seeds 0, 1, 2.

Nothing here is tuned: the settings were written down once and not changed after a score was
seen. Validation and test accuracy of each, and the mean over seeds.

    python bench/digits_baselines.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from attnlab.config import ImageDataConfig
from attnlab.data.image_readers import load_images
from attnlab.runlog import machine_summary


def flat(images) -> torch.Tensor:
    return images.stacked.reshape(len(images), -1)  # (N, 1, 8, 8) -> (N, 64)


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return (predicted == labels).float().mean().item()


def nearest_neighbour(train_x: torch.Tensor, train_y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return train_y[torch.cdist(x, train_x).argmin(dim=1)]


def mlp(train_x: torch.Tensor, train_y: torch.Tensor, seed: int, epochs: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        for idx in torch.randperm(len(train_y)).split(64):
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    data = load_images(ImageDataConfig(name="digits"))
    (tx, ty), (vx, vy), (sx, sy) = [(flat(s), s.labels) for s in (data.train, data.valid, data.test)]
    print(f"digits: {len(ty)} train / {len(vy)} valid / {len(sy)} test images")
    print(f"machine: {machine_summary()}\n")
    print("| baseline | validation accuracy | test accuracy |")
    print("|---|---|---|")
    print(f"| 1-nearest neighbour | {accuracy(nearest_neighbour(tx, ty, vx), vy):.2%} | "
          f"{accuracy(nearest_neighbour(tx, ty, sx), sy):.2%} |")
    valid, test = [], []
    for seed in range(3):
        model = mlp(tx, ty, seed, args.epochs)
        with torch.no_grad():
            valid.append(accuracy(model(vx).argmax(1), vy))
            test.append(accuracy(model(sx).argmax(1), sy))
    print(f"| MLP 64-256-10, seeds 0 / 1 / 2 | {' / '.join(f'{v:.2%}' for v in valid)} "
          f"(mean {statistics.mean(valid):.2%}) | {' / '.join(f'{t:.2%}' for t in test)} (mean {statistics.mean(test):.2%}) |")


if __name__ == "__main__":
    main()
