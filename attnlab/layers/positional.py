"""Positional encodings, one registry for sequences (Transformer) and patch grids (ViT).

Attention is blind to order, so each token (or patch) gets a code for its position added to its
embedding. Every encoding takes the embeddings ``x`` (B, N, D) and either a sequence offset (the
tokens are positions offset..offset+N-1) or a patch ``grid`` (h, w) (the N = h * w patches in
row-major order) and returns ``x`` plus the codes.

- ``none``:       no position information at all (a bag of tokens / patches).
- ``sinusoidal``: fixed sin/cos of the 1-D index (Vaswani et al. 2017, sec. 3.5); on a grid the
                  index is row * w + col, so a patch's code depends on the image width.
- ``learned``:    a trained table (Gehring et al. 2017; ViT, Dosovitskiy et al. 2021, sec. 3.1).
                  On a grid it is a 2-D table, resampled bicubically to a new grid size
                  (Dosovitskiy et al. 2021, sec. 3.2, "fine-tuning at higher resolution").
- ``sincos2d``:   fixed sin/cos of the row in half the channels and of the column in the other
                  half (as in MoCo v3 and MAE); a patch's code depends only on (row, col).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import UserError
from attnlab.registry import Registry

POSENC: Registry[type["PositionalEncoding"]] = Registry("positional encoding")


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """(N,) positions -> (N, dim) codes: sin on even channels, cos on odd ones (Vaswani eq. in 3.5).

    PE(pos, 2i) = sin(pos / 10000^(2i/dim)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/dim)).
    """
    if dim % 2:
        raise UserError(f"sinusoidal positional codes need an even width, got {dim}")
    freqs = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) * (-math.log(10000.0) / dim))
    angles = positions.float().unsqueeze(1) * freqs.unsqueeze(0)  # (N, 1) * (1, dim/2) -> (N, dim/2)
    codes = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (N, dim/2, 2)
    return codes.flatten(1)  # interleave -> (N, dim)


def grid_positions(grid: tuple[int, int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Row and column of each patch of an (h, w) grid in row-major order: two (h*w,) tensors."""
    h, w = grid
    rows = torch.arange(h, device=device).repeat_interleave(w)  # 0 0 0 1 1 1 ...
    cols = torch.arange(w, device=device).repeat(h)  # 0 1 2 0 1 2 ...
    return rows, cols


class PositionalEncoding(nn.Module):
    """Base class: ``forward(x, grid=None, offset=0)`` returns ``x`` plus position codes."""

    def __init__(self, dim: int, max_len: int = 1024, grid: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.dim, self.max_len, self.grid = dim, max_len, grid

    def codes(self, n: int, grid: tuple[int, int] | None, offset: int, device: torch.device) -> Tensor:
        """(N, D) codes for N tokens starting at ``offset``, or for the patches of ``grid``."""
        raise NotImplementedError

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None, offset: int = 0) -> Tensor:
        n = x.shape[1]
        if grid is not None and grid[0] * grid[1] != n:
            raise ValueError(f"grid {grid} has {grid[0] * grid[1]} patches but x has {n} positions")
        return x + self.codes(n, grid, offset, x.device).to(x.dtype).unsqueeze(0)  # (1, N, D) broadcast


@POSENC.register("none")
class NoPositionalEncoding(PositionalEncoding):
    def forward(self, x: Tensor, grid: tuple[int, int] | None = None, offset: int = 0) -> Tensor:
        return x


@POSENC.register("sinusoidal")
class SinusoidalEncoding(PositionalEncoding):
    def codes(self, n, grid, offset, device):
        return sinusoid(torch.arange(offset, offset + n, device=device), self.dim)


@POSENC.register("sincos2d")
class SinCos2DEncoding(PositionalEncoding):
    def __init__(self, dim: int, max_len: int = 1024, grid: tuple[int, int] | None = None) -> None:
        super().__init__(dim, max_len, grid)
        if dim % 4:
            raise UserError(f"sincos2d positional codes need a width divisible by 4, got {dim}")

    def codes(self, n, grid, offset, device):
        if grid is None:
            raise UserError("posenc=sincos2d is for image patches; use sinusoidal or learned for text")
        rows, cols = grid_positions(grid, device)
        half = self.dim // 2
        return torch.cat([sinusoid(rows, half), sinusoid(cols, half)], dim=1)  # (N, D/2) + (N, D/2)


@POSENC.register("learned")
class LearnedEncoding(PositionalEncoding):
    """A trained table: 1-D (max_len, D) for sequences, 2-D (h, w, D) when built with a grid."""

    def __init__(self, dim: int, max_len: int = 1024, grid: tuple[int, int] | None = None) -> None:
        super().__init__(dim, max_len, grid)
        shape = (*grid, dim) if grid is not None else (max_len, dim)
        self.table = nn.Parameter(torch.randn(shape) * 0.02)

    def codes(self, n, grid, offset, device):
        if grid is None:
            if self.grid is not None:
                raise UserError("this learned positional table is 2-D (patches); it cannot encode a sequence")
            if offset + n > self.max_len:
                raise UserError(
                    f"sequence of {offset + n} tokens exceeds the learned positional table ({self.max_len}); "
                    "use posenc=sinusoidal or a larger max length"
                )
            return self.table[offset : offset + n]
        if self.grid is None:
            raise UserError("this learned positional table is 1-D (sequences); build it with a grid for patches")
        table = self.table
        if tuple(grid) != tuple(self.grid):
            # (h0, w0, D) -> (1, D, h0, w0) -> resample -> (1, D, h, w)
            resized = F.interpolate(table.permute(2, 0, 1).unsqueeze(0), size=tuple(grid), mode="bicubic", align_corners=False)
            table = resized.squeeze(0).permute(1, 2, 0)  # (h, w, D)
        return table.reshape(-1, self.dim)  # (h, w, D) -> (h*w, D), row-major


def make_posenc(name: str, dim: int, max_len: int = 1024, grid: tuple[int, int] | None = None) -> PositionalEncoding:
    """Build a positional encoding by name; an unknown name lists the valid ones."""
    return POSENC.get(name)(dim, max_len=max_len, grid=grid)
