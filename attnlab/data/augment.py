"""Training-time image augmentation: random shifts with zero fill, horizontal flips, and small
random rotations and zooms (the affine distortions of Simard et al. 2003, "Best practices for
convolutional neural networks applied to visual document analysis", sec. 2).

All are applied per image on a whole padded batch in one vectorised step. Shifts and flips move
whole pixels: every output pixel reads one source pixel through a single ``gather``. Rotations and
zooms read between pixels: every output pixel mixes its source's four neighbours (bilinear), and a
source outside the image counts as 0. The bilinear path with no rotation and no zoom gives exactly
the shift-and-flip path's pixels (tested), so it is that path's slow reference too. Each image is
transformed inside its own (H, W) from ``sizes``, so the zero padding of a mixed-size batch stays
zero and no content moves into it. Randomness comes only from the
``torch.Generator`` passed in, so a seed gives the same augmented batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.config import AugmentConfig
from attnlab.errors import UserError


@dataclass(frozen=True)
class Augment:
    """Random shift by up to ``shift`` pixels (each axis, zero fill); if ``hflip``, a random
    horizontal flip with probability 1/2; a random rotation by up to ``rotate`` degrees and a random
    zoom by a factor in [1 - ``scale``, 1 + ``scale``], both about the image's centre. With every
    value 0 (the default) it is the identity and draws no random numbers."""

    shift: int = 0
    hflip: bool = False
    rotate: float = 0.0
    scale: float = 0.0

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise UserError(f"data.augment.shift={self.shift} must be >= 0 (0 = no shifts)")
        if not 0 <= self.rotate <= 180:
            raise UserError(f"data.augment.rotate={self.rotate} must be in [0, 180] degrees (0 = no rotations)")
        if not 0 <= self.scale < 1:
            raise UserError(f"data.augment.scale={self.scale} must be in [0, 1) (0.1 = zoom by 0.9 to 1.1; 0 = none)")

    @classmethod
    def from_config(cls, cfg: AugmentConfig) -> Augment:
        return cls(shift=int(cfg.shift), hflip=bool(cfg.hflip), rotate=float(cfg.rotate), scale=float(cfg.scale))

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.hflip or self.affine

    @property
    def affine(self) -> bool:
        """Whether images are resampled between pixels (rotations or zooms)."""
        return self.rotate > 0 or self.scale > 0

    def __call__(self, images: Tensor, sizes: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a training batch.

        Args:
            images: (B, C, H, W), each image at the top-left of its zero padding.
            sizes: (B, 2) long, each image's (h, w) (as :func:`attnlab.data.images.collate` gives).
            generator: the source of randomness (on any device; draws are moved to ``images``).
        Returns:
            (B, C, H, W) new tensor (``images`` itself when disabled).
        """
        if not self.enabled:
            return images
        b = images.shape[0]
        dy, dx, flip = self._draw(b, generator, images.device)
        if self.affine:
            on = generator.device
            unit = torch.rand(2, b, generator=generator, device=on).to(images.device) * 2 - 1  # (2, B) in [-1, 1)
            angle = unit[0] * math.radians(self.rotate)
            zoom = 1 + unit[1] * self.scale
            return warp(images, sizes, dy, dx, flip, angle, zoom)
        return self._move(images, sizes, dy, dx, flip)

    @staticmethod
    def _move(images: Tensor, sizes: Tensor, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """Whole-pixel shifts and flips: one ``gather``."""
        b, c, height, width = images.shape
        h, w = sizes[:, 0:1].to(images.device), sizes[:, 1:2].to(images.device)  # (B, 1) each
        rows = torch.arange(height, device=images.device)[None, :]  # (1, H) output rows
        cols = torch.arange(width, device=images.device)[None, :]  # (1, W) output columns
        src_rows = rows - dy[:, None]  # (B, H)
        shifted = cols - dx[:, None]  # (B, W)
        src_cols = torch.where(flip[:, None], w - 1 - shifted, shifted)  # (B, W)
        ok_rows = (src_rows >= 0) & (src_rows < h) & (rows < h)  # (B, H) inside the image, both ends
        ok_cols = (src_cols >= 0) & (src_cols < w) & (cols < w)  # (B, W)
        source = src_rows.clamp(0, height - 1)[:, :, None] * width + src_cols.clamp(0, width - 1)[:, None, :]
        source = source.reshape(b, 1, height * width).expand(b, c, -1)  # (B, C, H*W) flat source pixel
        out = images.reshape(b, c, height * width).gather(2, source).reshape(b, c, height, width)
        keep = ok_rows[:, None, :, None] & ok_cols[:, None, None, :]  # (B, 1, H, W)
        return torch.where(keep, out, torch.zeros((), dtype=images.dtype, device=images.device))

    def _draw(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-image row shift, column shift (each in [-shift, shift]) and flip flag, each (B,)."""
        on = generator.device
        shifts = torch.randint(-self.shift, self.shift + 1, (2, batch), generator=generator, device=on)
        if self.hflip:
            flip = torch.rand(batch, generator=generator, device=on) < 0.5
        else:
            flip = torch.zeros(batch, dtype=torch.bool, device=on)
        return shifts[0].to(device), shifts[1].to(device), flip.to(device)


def warp(
    images: Tensor, sizes: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, angle: Tensor, zoom: Tensor
) -> Tensor:
    """Each image flipped (if ``flip``), rotated by ``angle`` radians (counter-clockwise as
    displayed) and zoomed by ``zoom`` about its centre, then shifted by (``dy``, ``dx``) pixels;
    read bilinearly, zero outside the image's own (h, w).

    Args:
        images: (B, C, H, W), each image at the top-left of its zero padding.
        sizes: (B, 2) long, each image's (h, w).
        dy, dx, angle, zoom: (B,) float or long; flip: (B,) bool.
    Returns:
        (B, C, H, W) new tensor.
    """
    b, c, height, width = images.shape
    dev, dtype = images.device, images.dtype
    h = sizes[:, 0].to(dev, dtype)[:, None, None]  # (B, 1, 1)
    w = sizes[:, 1].to(dev, dtype)[:, None, None]
    rows = torch.arange(height, device=dev, dtype=dtype)[None, :, None]  # (1, H, 1)
    cols = torch.arange(width, device=dev, dtype=dtype)[None, None, :]  # (1, 1, W)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    # each output pixel's source: undo the shift, then the zoom and rotation about the centre
    y = rows - dy.to(dtype)[:, None, None] - cy  # (B, H, 1)
    x = cols - dx.to(dtype)[:, None, None] - cx  # (B, 1, W)
    cos = torch.cos(angle).to(dtype)[:, None, None]  # (B, 1, 1)
    sin = torch.sin(angle).to(dtype)[:, None, None]  # (B, 1, 1)
    inv = 1 / zoom.to(dtype)[:, None, None]  # (B, 1, 1)
    src_y = (cos * y + sin * x) * inv + cy  # (B, H, W)
    src_x = (cos * x - sin * y) * inv + cx  # (B, H, W)
    src_x = torch.where(flip[:, None, None], w - 1 - src_x, src_x)
    y0, x0 = src_y.floor(), src_x.floor()
    fy, fx = src_y - y0, src_x - x0
    flat = images.reshape(b, c, height * width)
    out = torch.zeros_like(images)
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + oy, x0 + ox  # (B, H, W) one of the four neighbours
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            source = yy.clamp(0, height - 1) * width + xx.clamp(0, width - 1)
            source = source.long().reshape(b, 1, height * width).expand(b, c, -1)  # (B, C, H*W)
            pixels = flat.gather(2, source).reshape(b, c, height, width)
            out = out + (wy * wx * inside)[:, None] * pixels
    keep = (rows < h) & (cols < w)  # (B, H, W) the image's own area: padding stays zero
    return torch.where(keep[:, None], out, torch.zeros((), dtype=dtype, device=dev))
