"""Patch embedding for images of any size: the first three steps of the seed's ViT.

Dosovitskiy et al. 2021, eq. 1:

    z_0 = [x_class; x_p^1 E; x_p^2 E; ...; x_p^N E] + E_pos,   E in R^{(P^2 C) x D}

with x_p^i the i-th flattened P x P patch. :class:`PatchEmbedding` does the part in brackets
except the class token (the model adds it, and the positions):

1. **split** an image (C, H, W) into a grid of non-overlapping P x P patches. When H or W is not a
   multiple of P the image is padded with zeros at the bottom/right, so the grid is
   ceil(H / P) x ceil(W / P) patches (:func:`grid_size`);
2. **flatten** each patch into x_i of size P * P * C, in (row, column, channel) order, as the
   paper's reference code does (:func:`patchify`);
3. **embed**: z_i = W x_i + b, one ``nn.Linear(P * P * C, D)`` shared by all patches. (This equals
   a Conv2d with kernel = stride = P; a test checks it with the same weights.)

Batches of mixed sizes (from :func:`attnlab.data.images.collate`) come as one zero-padded tensor
plus each image's (H, W). Each image keeps its own grid at the top-left of the batch's grid; the
pixels outside an image are set to zero before patching, so whatever lies there cannot leak into
a partly covered patch, and the patches that hold no pixel of their image are reported in
:attr:`PatchLayout.real` so that the model masks them out of attention as keys (and out of mean
pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.errors import UserError


def grid_size(height: int, width: int, patch: int) -> tuple[int, int]:
    """(rows, cols) of the patch grid of an H x W image: ceil(H / P), ceil(W / P)."""
    return -(-height // patch), -(-width // patch)


def check_patch_fits(sizes: Tensor, patch: int) -> None:
    """UserError when the patch is larger than the smallest image side (there would be no patch)."""
    smallest = int(sizes.min())
    if patch > smallest:
        h, w = (int(v) for v in sizes[sizes.min(dim=1).values.argmin()])
        raise UserError(
            f"model.patch_size={patch} is larger than an image of {h}x{w} pixels; "
            f"choose model.patch_size <= {smallest}"
        )


def full_sizes(images: Tensor, sizes: Tensor | None) -> Tensor:
    """Each image's (H, W) as (B, 2) on the images' device: ``sizes``, or the batch's size for all."""
    if sizes is None:
        b, _, height, width = images.shape
        return torch.tensor([height, width], device=images.device).repeat(b, 1)  # (B, 2)
    return sizes.to(images.device)


def check_channels(got: int, expected: int) -> None:
    """UserError when the images have another number of channels than the model was built for."""
    if got != expected:
        raise UserError(f"the model expects {expected}-channel images, got {got} channels")


@dataclass
class PatchLayout:
    """Where the patches of a batch are.

    Attributes:
        grid: (rows, cols) of the batch's padded grid; N = rows * cols patches per image.
        grids: (B, 2) long, each image's own (rows, cols), at the top-left of ``grid``.
        real: (B, N) bool, True at patches holding at least one pixel of their image; None when
            every image fills the whole grid (no patch is padding-only, no mask needed).
    """

    grid: tuple[int, int]
    grids: Tensor
    real: Tensor | None

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]


def patch_layout(sizes: Tensor, grid: tuple[int, int], patch: int) -> PatchLayout:
    """The :class:`PatchLayout` of images of ``sizes`` (B, 2) on a padded ``grid``."""
    grids = torch.div(sizes + patch - 1, patch, rounding_mode="floor")  # (B, 2): ceil(size / P)
    rows, cols = grid
    if bool((grids[:, 0] == rows).all() and (grids[:, 1] == cols).all()):
        return PatchLayout(grid, grids, None)
    row_ok = torch.arange(rows, device=sizes.device)[None, :] < grids[:, 0:1]  # (B, rows)
    col_ok = torch.arange(cols, device=sizes.device)[None, :] < grids[:, 1:2]  # (B, cols)
    real = (row_ok[:, :, None] & col_ok[:, None, :]).flatten(1)  # (B, rows, cols) -> (B, N) row-major
    return PatchLayout(grid, grids, real)


def partly_padded(sizes: Tensor, grid: tuple[int, int], patch: int) -> Tensor:
    """(B, N) bool, row-major: True at the patches of an image that hold pixels of it and zero
    padding, i.e. its last patch row when H is not a multiple of P, its last column likewise."""
    grids = torch.div(sizes + patch - 1, patch, rounding_mode="floor")  # (B, 2): ceil(size / P)
    rows, cols = grid
    ragged = sizes % patch != 0  # (B, 2): H, W not a multiple of P
    last_row = torch.arange(rows, device=sizes.device)[None, :] == grids[:, 0:1] - 1  # (B, rows)
    last_col = torch.arange(cols, device=sizes.device)[None, :] == grids[:, 1:2] - 1  # (B, cols)
    inside = (torch.arange(rows, device=sizes.device)[None, :] < grids[:, 0:1])[:, :, None] & (
        torch.arange(cols, device=sizes.device)[None, :] < grids[:, 1:2]
    )[:, None, :]  # (B, rows, cols)
    edge = (last_row & ragged[:, 0:1])[:, :, None] | (last_col & ragged[:, 1:2])[:, None, :]  # (B, rows, cols)
    return (edge & inside).flatten(1)  # (B, rows, cols) -> (B, N)


def zero_outside(images: Tensor, sizes: Tensor) -> Tensor:
    """Set the pixels beyond each image's (H, W) to zero. images (B, C, Hmax, Wmax), sizes (B, 2)."""
    _, _, height, width = images.shape
    if bool((sizes[:, 0] == height).all() and (sizes[:, 1] == width).all()):
        return images
    rows = torch.arange(height, device=images.device)[None, :] < sizes[:, 0:1].to(images.device)  # (B, H)
    cols = torch.arange(width, device=images.device)[None, :] < sizes[:, 1:2].to(images.device)  # (B, W)
    inside = rows[:, None, :, None] & cols[:, None, None, :]  # (B, 1, H, W)
    return images * inside


def patchify(images: Tensor, patch: int) -> tuple[Tensor, tuple[int, int]]:
    """Seed steps 1-2: split into P x P patches and flatten each one.

    Args:
        images: (B, C, H, W); H and W need not be multiples of ``patch`` (zero padding is added).
    Returns:
        patches (B, N, P * P * C) in row-major grid order, and the grid (rows, cols), N = rows * cols.
    """
    b, c, height, width = images.shape
    rows, cols = grid_size(height, width, patch)
    pad_h, pad_w = rows * patch - height, cols * patch - width
    if pad_h or pad_w:
        images = nn.functional.pad(images, (0, pad_w, 0, pad_h))  # zeros right, then bottom
    x = images.reshape(b, c, rows, patch, cols, patch)  # (B, C, rows, P, cols, P)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, rows, cols, P, P, C): one patch per (row, col)
    return x.reshape(b, rows * cols, patch * patch * c), (rows, cols)  # (B, N, P*P*C)


class PatchEmbedding(nn.Module):
    """z_i = W x_i + b for every flattened patch x_i (Dosovitskiy et al. 2021, eq. 1, x_p^i E).

    Args:
        channels: C of the images.
        patch: side P of the square patches.
        dim: D, the embedding width.
    """

    def __init__(self, channels: int, patch: int, dim: int) -> None:
        super().__init__()
        if patch <= 0:
            raise UserError(f"model.patch_size={patch} must be a positive number of pixels")
        self.channels, self.patch, self.dim = channels, patch, dim
        self.proj = nn.Linear(patch * patch * channels, dim)  # seed step 3: W (D x P*P*C), b (D)

    def forward(self, images: Tensor, sizes: Tensor | None = None) -> tuple[Tensor, PatchLayout]:
        """images (B, C, H, W), sizes (B, 2) each image's (H, W) (None: all full size).

        Returns the patch embeddings (B, N, D) and their :class:`PatchLayout`.
        """
        check_channels(images.shape[1], self.channels)
        sizes = full_sizes(images, sizes)
        check_patch_fits(sizes, self.patch)
        x, grid = patchify(zero_outside(images, sizes), self.patch)  # (B, N, P*P*C)
        return self.proj(x), patch_layout(sizes, grid, self.patch)  # (B, N, D)
