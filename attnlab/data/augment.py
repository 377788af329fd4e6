"""Training-time image augmentation: random shifts with zero fill and horizontal flips.

Both are applied per image on a whole padded batch in one vectorised step: every output pixel reads
one source pixel through a single ``gather``, and pixels whose source falls outside the image
become 0. Each image is transformed inside its own (H, W) from ``sizes``, so the zero padding of a
mixed-size batch stays zero and no content moves into it. Randomness comes only from the
``torch.Generator`` passed in, so a seed gives the same augmented batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.config import AugmentConfig
from attnlab.errors import UserError


@dataclass(frozen=True)
class Augment:
    """Random shift by up to ``shift`` pixels (each axis, zero fill) and, if ``hflip``, a random
    horizontal flip with probability 1/2. With ``shift=0, hflip=False`` (the default) it is the
    identity and draws no random numbers."""

    shift: int = 0
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise UserError(f"data.augment.shift={self.shift} must be >= 0 (0 = no shifts)")

    @classmethod
    def from_config(cls, cfg: AugmentConfig) -> Augment:
        return cls(shift=int(cfg.shift), hflip=bool(cfg.hflip))

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.hflip

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
        b, c, height, width = images.shape
        dy, dx, flip = self._draw(b, generator, images.device)
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
