"""Cost of training-time augmentation against one training step of the digits ViT, same process.

Times, per 64-image batch of 8x8 digits: whole-pixel shifts (``data.augment.shift=1``, the recipe),
the same with rotations and zooms (bilinear, ``rotate=10 scale=0.1``), and one forward + backward +
AdamW step of the recipe's ViT. Rounds alternate between the three so that load from other
processes hits them alike; the table reports medians and each cost as a share of the step.

    python bench/bench_augment.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from attnlab.api import compose_config
from attnlab.data.augment import Augment
from attnlab.models import build_model
from attnlab.runlog import machine_summary


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=50, help="calls per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, labels = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    sizes = torch.tensor([[8, 8]]).repeat(64, 1)
    generator = torch.Generator().manual_seed(0)
    cfg = compose_config(["task=vision"])  # the recipe's model, as python -m attnlab task=vision builds it
    vit = build_model(cfg, num_classes=10, channels=1, image_size=(8, 8), mean=[0.3], std=[0.4])
    optimizer = torch.optim.AdamW(vit.parameters(), lr=float(cfg.trainer.lr), weight_decay=float(cfg.trainer.weight_decay))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(vit(images, sizes), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    shifts, affine = Augment(shift=1), Augment(shift=1, rotate=10, scale=0.1)
    timed = {
        "shifts (shift=1)": lambda: shifts(images, sizes, generator),
        "shifts, rotations, zooms (shift=1 rotate=10 scale=0.1)": lambda: affine(images, sizes, generator),
        "ViT training step (the recipe's model)": step,
    }
    for fn in timed.values():  # warm-up
        per_call_ms(fn, 3)
    ms: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name, fn in timed.items():
            ms[name].append(per_call_ms(fn, args.calls))
    step_ms = statistics.median(ms["ViT training step (the recipe's model)"])
    print(f"augmentation cost, 64 images of 8x8 per batch; {args.rounds} rounds of {args.calls} calls, median")
    print(f"machine: {machine_summary()}\n")
    print("| per batch | ms | share of a training step |")
    print("|---|---:|---:|")
    for name, values in ms.items():
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / step_ms:.1%} |")


if __name__ == "__main__":
    main()
