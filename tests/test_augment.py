"""Tests for attnlab.data.augment: random shifts and flips, per image, seeded, padding kept."""

from __future__ import annotations

import time

import pytest
import torch

from attnlab.config import AugmentConfig
from attnlab.data.augment import Augment
from attnlab.data.images import collate
from attnlab.errors import UserError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def full_sizes(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(x.shape[2:]).repeat(len(x), 1)  # (B, 2)


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference: (C, H, W) moved down by dy and right by dx, zero fill."""
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_default_is_off_and_the_identity():
    augment = Augment.from_config(AugmentConfig())
    x = torch.rand(4, 1, 8, 8)
    g = gen()
    state = g.get_state()
    assert not augment.enabled and augment(x, full_sizes(x), g) is x
    assert torch.equal(g.get_state(), state)  # no random numbers drawn


def test_negative_shift_is_a_user_error():
    with pytest.raises(UserError, match="shift"):
        Augment(shift=-1)


def test_same_seed_same_batch_and_shapes_kept():
    augment = Augment(shift=2, hflip=True)
    x = torch.rand(16, 3, 8, 8)
    a, b = augment(x, full_sizes(x), gen(7)), augment(x, full_sizes(x), gen(7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, full_sizes(x), gen(8)))


def test_each_image_is_shifted_with_zero_fill():
    augment = Augment(shift=1)
    x = torch.rand(32, 2, 5, 6) + 0.1  # no zero pixels, so the fill is visible
    out = augment(x, full_sizes(x), gen(3))
    seen = set()
    for img, res in zip(x, out):
        moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        matches = [(dy, dx) for dy, dx in moves if torch.equal(shifted(img, dy, dx), res)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 3  # the shifts differ between images


def test_hflip_flips_about_half_of_the_images():
    augment = Augment(hflip=True)
    x = torch.rand(200, 1, 4, 4)
    out = augment(x, full_sizes(x), gen(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ same).all())
    assert 70 < int(flipped.sum()) < 130


def test_mixed_sizes_stay_inside_their_own_area():
    images = [torch.rand(1, 3, 4) + 0.1, torch.rand(1, 6, 2) + 0.1]
    batch, sizes = collate(images)  # (2, 1, 6, 4)
    out = Augment(shift=1, hflip=True)(batch, sizes, gen(1))
    for res, img, (h, w) in zip(out, images, sizes.tolist()):
        assert res[:, h:, :].abs().sum() == 0 and res[:, :, w:].abs().sum() == 0  # padding stays zero
        moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        candidates = [shifted(c, dy, dx) for c in (img, img.flip(-1)) for dy, dx in moves]
        assert any(torch.equal(res[:, :h, :w], c) for c in candidates)


def test_fast_on_digit_sized_batches():
    augment = Augment(shift=1, hflip=True)
    x = torch.rand(64, 1, 8, 8)
    sizes, g = full_sizes(x), gen()
    start = time.perf_counter()
    for _ in range(100):
        augment(x, sizes, g)
    assert (time.perf_counter() - start) / 100 < 0.01  # about 0.4 ms here; well under a training step
