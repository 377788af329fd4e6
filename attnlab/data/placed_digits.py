"""Placed digits: the attention gym's images, where the answer's place is known (``data=placed_digits``).

Each of the shipped 8x8 digits (:mod:`attnlab.data.digits`) is pasted at a random place on a black ``data.canvas`` x
``data.canvas`` canvas, with ``data.clutter`` fragments (``data.fragment`` x ``data.fragment``
crops of other digits of the same split) pasted at random places that do not touch the digit's
box; the digit's corner lies on multiples of ``data.grid`` pixels (the default 4 = the ViT's patch
grid in the gym's recipe, so the digit covers 2x2 patches and the model need not learn the 16
ways an 8x8 digit can straddle 4x4 patches; 1 = anywhere), so a model must find the digit among digit-like strokes. The box (y0, x0, y1, x1, end
exclusive) of every image is kept in :attr:`attnlab.data.images.ImageSet.boxes`; the gym's
pointing game and deletion curve (:mod:`attnlab.tasks.gym_vision`) score attention maps
against it.

The digits' train/test split is the ``digits`` dataset's (fixed, stratified); valid is carved from
the train digits **before** placing, so no digit appears in two splits. Each training digit is
placed ``data.copies`` times (different places and clutter), each valid and test digit once.
Everything is drawn from ``data.seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from attnlab.data.image_readers import DATASETS, _load_digits
from attnlab.data.images import ImageSet, _Splits, split_off
from attnlab.errors import UserError

DIGIT = 8  # the shipped digits are 8x8


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Two boxes (y0, x0, y1, x1), end exclusive, share a pixel or touch along an edge."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def place(digits: Tensor, labels: Tensor, copies: int, canvas: int, clutter: int, fragment: int,
          rng: np.random.Generator, grid: int = 1) -> ImageSet:
    """Every digit (N, 1, 8, 8) ``copies`` times on its own canvas with clutter from the others;
    the digit's corner at multiples of ``grid`` pixels (the clutter anywhere)."""
    src = digits.numpy()
    n = len(src)
    out = np.zeros((n * copies, 1, canvas, canvas), dtype=np.float32)
    boxes = np.zeros((n * copies, 4), dtype=np.int64)
    for k in range(n * copies):
        i = k % n
        y, x = (grid * int(v) for v in rng.integers(0, (canvas - DIGIT) // grid + 1, size=2))
        box = (y, x, y + DIGIT, x + DIGIT)
        for _ in range(clutter):
            for _try in range(20):  # a free place for the fragment (one exists on any sane canvas)
                fy, fx = (int(v) for v in rng.integers(0, canvas - fragment + 1, size=2))
                if not _overlaps(box, (fy, fx, fy + fragment, fx + fragment)):
                    break
            else:
                continue
            j = int(rng.integers(0, n - 1))
            j += j >= i  # another digit
            cy, cx = (int(v) for v in rng.integers(0, DIGIT - fragment + 1, size=2))
            region = out[k, :, fy : fy + fragment, fx : fx + fragment]
            np.maximum(region, src[j, :, cy : cy + fragment, cx : cx + fragment], out=region)
        out[k, :, y : y + DIGIT, x : x + DIGIT] = src[i]
        boxes[k] = box
    return ImageSet.from_tensor(torch.from_numpy(out), labels.repeat(copies), torch.from_numpy(boxes))


@DATASETS.register("placed_digits")
def load_placed_digits(cfg) -> _Splits:  # cfg: PlacedDigitsConfig
    """Train (``copies`` placements per digit), valid and test sets; see the module docstring."""
    if cfg.canvas < DIGIT:
        raise UserError(f"data.canvas={cfg.canvas} must be at least {DIGIT} (the digits are 8x8), e.g. data.canvas=32")
    if not 1 <= cfg.fragment <= DIGIT or cfg.clutter < 0 or cfg.copies < 1:
        raise UserError(f"data.fragment must be in 1..{DIGIT}, data.clutter >= 0 and data.copies >= 1 "
                        f"(got {cfg.fragment}, {cfg.clutter}, {cfg.copies})")
    digits = _load_digits(cfg)  # the same train/test split as data=digits
    train, test = digits.train, digits.test
    train, valid = split_off(train, round(cfg.valid_fraction * len(train)))
    rng = np.random.default_rng(int(cfg.seed))
    if not 1 <= cfg.grid <= cfg.canvas - DIGIT + 1:
        raise UserError(f"data.grid={cfg.grid} must be in 1..{cfg.canvas - DIGIT + 1} (1 = any place)")
    args = (int(cfg.canvas), int(cfg.clutter), int(cfg.fragment), rng, int(cfg.grid))
    return _Splits(
        place(train.stacked, train.labels, int(cfg.copies), *args),
        place(test.stacked, test.labels, 1, *args),
        [str(d) for d in range(10)],
        channels=1,
        valid=place(valid.stacked, valid.labels, 1, *args),
    )


def patches_inside(boxes: Tensor, grid: tuple[int, int], patch: int) -> Tensor:
    """(B, 4) boxes -> (B, rows * cols) bool: the patches (row-major) that overlap each box."""
    rows, cols = grid
    r = torch.arange(rows)
    c = torch.arange(cols)
    y0, x0, y1, x1 = (boxes[:, i : i + 1] for i in range(4))  # each (B, 1)
    in_rows = (r * patch < y1) & ((r + 1) * patch > y0)  # (B, rows)
    in_cols = (c * patch < x1) & ((c + 1) * patch > x0)  # (B, cols)
    return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).reshape(len(boxes), rows * cols)
