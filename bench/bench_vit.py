"""Training speed of attnlab's ViT against the same ViT written with torch.nn.TransformerEncoder.

Both models have identical dimensions (patch size, width, depth, heads, MLP width, GELU, pre-norm,
CLS token, learned positions, final LayerNorm, linear head) and train on the same random batches in
the same process, with AdamW, forward + backward + step. Runs alternate between the models
(A B A B ...) so that load from other processes on a shared machine hits both alike; the table
reports the median images/s of the rounds and the ratio to the torch reference.

    python bench/bench_vit.py --quick                     # about a minute on a laptop CPU
    python bench/bench_vit.py --image 28 --patch 4 --dim 128 --depth 6 --heads 4 --threads 2

Rows: ``attnlab (fused)`` is what training runs (torch's scaled_dot_product_attention inside the
shared attention core); ``attnlab (math)`` is the readable path that returns the weights
(``attention.fused=false``); ``torch TransformerEncoder`` is the reference. ``--stem-layers 1 2``
adds the fused model with a convolutional stem of that many layers (``model.stem_layers``), to
price the stem against the same reference:

    python bench/bench_vit.py --quick --threads 1 --mlp-ratio 4 --stem-layers 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn

from attnlab.runlog import machine_summary
from attnlab.config import AttentionConfig
from attnlab.models.vit import ViT


class TorchViT(nn.Module):
    """The reference: a plain ViT on nn.TransformerEncoder (norm_first=True, batch_first=True)."""

    def __init__(self, *, num_classes: int, channels: int, image: int, patch: int, dim: int, depth: int,
                 heads: int, mlp_ratio: float) -> None:
        super().__init__()
        n = (image // patch) ** 2
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)  # = flatten + linear
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        z = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos  # (B, D, h, w) -> (B, N, D)
        z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1), z], dim=1)  # (B, 1 + N, D)
        return self.head(self.norm(self.encoder(z))[:, 0])


def train_rate(model: nn.Module, step_fn: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor,
               steps: int) -> float:
    """Images per second over ``steps`` training steps (forward, backward, AdamW)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(step_fn(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * images.shape[0] / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=int, default=8, help="square image side (default: 8, the digits)")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp-ratio", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=40, help="training steps per round and model")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--stem-layers", type=int, nargs="*", default=[], help="also the fused model with these stems")
    p.add_argument("--quick", action="store_true", help="fewer steps and rounds (about a minute)")
    args = p.parse_args()
    if args.quick:
        args.steps, args.rounds = 20, 3
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.image % args.patch:
        p.error("--image must be a multiple of --patch (the reference has no padding)")

    torch.manual_seed(0)
    dims = dict(num_classes=10, channels=args.channels, patch_size=args.patch, dim=args.dim, depth=args.depth,
                heads=args.heads, mlp_ratio=args.mlp_ratio)
    models: dict[str, tuple[nn.Module, Callable[[Tensor], Tensor]]] = {}
    variants = [("attnlab (fused)", True, 0), ("attnlab (math)", False, 0)] + [
        (f"attnlab (fused), stem of {n} conv layer{'s' if n > 1 else ''}", True, n) for n in args.stem_layers
    ]
    for name, fused, stem_layers in variants:
        vit = ViT(image_size=(args.image, args.image), posenc="learned", attention=AttentionConfig(fused=fused),
                  stem_layers=stem_layers, **dims)
        models[name] = (vit, vit)
    ref = TorchViT(num_classes=10, channels=args.channels, image=args.image, patch=args.patch, dim=args.dim,
                   depth=args.depth, heads=args.heads, mlp_ratio=args.mlp_ratio)
    models["torch TransformerEncoder"] = (ref, ref)
    images = torch.rand(args.batch, args.channels, args.image, args.image)
    labels = torch.randint(0, 10, (args.batch,))

    rates: dict[str, list[float]] = {name: [] for name in models}
    for name, (model, fn) in models.items():  # warm-up: allocator, kernels, first-step costs
        train_rate(model, fn, images, labels, 3)
    for _ in range(args.rounds):
        for name, (model, fn) in models.items():
            rates[name].append(train_rate(model, fn, images, labels, args.steps))

    ref_rate = statistics.median(rates["torch TransformerEncoder"])
    tokens = (args.image // args.patch) ** 2 + 1
    print(f"ViT training speed: {args.image}x{args.image}x{args.channels} images, patch {args.patch} "
          f"({tokens} tokens), dim {args.dim}, depth {args.depth}, heads {args.heads}, mlp x{args.mlp_ratio}, "
          f"batch {args.batch}; {args.rounds} rounds of {args.steps} steps, median")
    print(f"machine: {machine_summary()}\n")
    print("| model | parameters | train images/s | vs torch |")
    print("|---|---:|---:|---:|")
    for name, (model, _) in models.items():
        rate = statistics.median(rates[name])
        params = sum(p.numel() for p in model.parameters())
        spread = f" (min {min(rates[name]):,.0f}, max {max(rates[name]):,.0f})"
        print(f"| {name} | {params:,} | {rate:,.0f}{spread} | {rate / ref_rate:.2f} |")


if __name__ == "__main__":
    main()
