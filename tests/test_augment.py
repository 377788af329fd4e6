"""Tests for attnlab.data.augment: random shifts and flips, per image, seeded, padding kept."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.config import AugmentConfig
from attnlab.data.augment import Augment, warp
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


# --- rotations and zooms (bilinear)


def affine_reference(img: torch.Tensor, dy: float, dx: float, flip: bool, angle: float, zoom: float) -> torch.Tensor:
    """Reference for one full-size (C, H, W) image: the forward map as one 3x3 matrix in pixel
    coordinates (row, col, 1), inverted numerically, sampled with torch's grid_sample."""
    c, h, w = img.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def m(rows: list[list[float]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float64)

    mirror = m([[1, 0, 0], [0, -1 if flip else 1, (w - 1) if flip else 0], [0, 0, 1]])
    centre, back = m([[1, 0, -cy], [0, 1, -cx], [0, 0, 1]]), m([[1, 0, cy], [0, 1, cx], [0, 0, 1]])
    cos, sin = math.cos(angle), math.sin(angle)
    turn = m([[zoom * cos, -zoom * sin, 0], [zoom * sin, zoom * cos, 0], [0, 0, 1]])  # counter-clockwise on screen
    move = m([[1, 0, dy], [0, 1, dx], [0, 0, 1]])
    inverse = torch.linalg.inv(move @ back @ turn @ centre @ mirror)
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    src = inverse @ torch.stack([rr.flatten(), cc.flatten(), torch.ones(h * w, dtype=torch.float64)])  # (3, H*W)
    grid = torch.stack([src[1] / (w - 1) * 2 - 1, src[0] / (h - 1) * 2 - 1], -1).reshape(1, h, w, 2)
    return F.grid_sample(img[None].double(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].float()


def test_bad_rotation_or_zoom_is_a_user_error():
    with pytest.raises(UserError, match="rotate"):
        Augment(rotate=-5)
    with pytest.raises(UserError, match="scale"):
        Augment(scale=1.0)
    augment = Augment.from_config(AugmentConfig(rotate=10, scale=0.1))
    assert augment.enabled and augment.affine and not Augment(shift=1).affine


def test_warp_without_rotation_or_zoom_is_the_whole_pixel_path():
    images = [torch.rand(2, 5, 7) + 0.1, torch.rand(2, 7, 3) + 0.1, torch.rand(2, 6, 6) + 0.1]
    batch, sizes = collate(images)
    g = gen(5)
    dy, dx = torch.randint(-2, 3, (2, 3), generator=g)
    flip = torch.tensor([True, False, True])
    fast = Augment._move(batch, sizes, dy, dx, flip)
    slow = warp(batch, sizes, dy, dx, flip, torch.zeros(3), torch.ones(3))
    assert torch.equal(fast, slow)


def test_warp_by_a_quarter_turn_is_rot90():
    x = torch.rand(3, 1, 6, 6)
    zeros = torch.zeros(3)
    out = warp(x, full_sizes(x), zeros, zeros, torch.zeros(3, dtype=torch.bool), torch.full((3,), math.pi / 2), torch.ones(3))
    assert torch.allclose(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)


@pytest.mark.parametrize("flip", [False, True])
def test_warp_matches_the_matrix_reference(flip):
    g = gen(11)
    x = torch.rand(6, 2, 8, 9)
    dy, dx = torch.randint(-1, 2, (2, 6), generator=g)
    angle = (torch.rand(6, generator=g) * 2 - 1) * 0.6
    zoom = 0.8 + 0.4 * torch.rand(6, generator=g)
    flips = torch.full((6,), flip)
    out = warp(x, full_sizes(x), dy, dx, flips, angle, zoom)
    for i in range(6):
        ref = affine_reference(x[i], float(dy[i]), float(dx[i]), flip, float(angle[i]), float(zoom[i]))
        assert torch.allclose(out[i], ref, atol=1e-5)


def test_warp_in_a_mixed_size_batch_is_each_image_warped_alone():
    images = [torch.rand(1, 8, 8) + 0.1, torch.rand(1, 5, 7) + 0.1, torch.rand(1, 7, 4) + 0.1]
    batch, sizes = collate(images)  # (3, 1, 8, 8): the centre of each is its own, not the padded grid's
    dy, dx = torch.tensor([1, 0, -1]), torch.tensor([0, -1, 1])
    flip, angle, zoom = torch.tensor([False, True, False]), torch.tensor([0.2, -0.3, 0.1]), torch.tensor([1.1, 0.9, 1.0])
    together = warp(batch, sizes, dy, dx, flip, angle, zoom)
    for i, img in enumerate(images):
        alone = warp(img[None], torch.tensor([img.shape[1:]]), dy[i : i + 1], dx[i : i + 1], flip[i : i + 1],
                     angle[i : i + 1], zoom[i : i + 1])[0]
        h, w = img.shape[1:]
        assert torch.allclose(together[i, :, :h, :w], alone, atol=1e-6)


def test_rotations_are_seeded_differ_per_image_and_keep_padding():
    augment = Augment(shift=1, rotate=15, scale=0.1)
    images = [torch.rand(1, 8, 8) + 0.1, torch.rand(1, 5, 7) + 0.1] * 4
    batch, sizes = collate(images)
    a, b = augment(batch, sizes, gen(2)), augment(batch, sizes, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, augment(batch, sizes, gen(3)))
    for res, (h, w) in zip(a, sizes.tolist()):
        assert res[:, h:, :].abs().sum() == 0 and res[:, :, w:].abs().sum() == 0
    assert not torch.equal(a[0], a[2])  # the same image, two different draws
    assert float(a.min()) >= 0 and float(a.max()) <= float(batch.max()) + 1e-6  # bilinear: no overshoot
