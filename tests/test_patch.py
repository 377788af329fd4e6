"""Patch embedding: split + flatten + linear, any image size, padding-only patch masks."""

import pytest
import torch
from torch import nn

from attnlab.errors import UserError
from attnlab.layers.patch import PatchEmbedding, grid_size, partly_padded, patch_layout, patchify


def test_flatten_and_linear_equal_a_strided_conv_with_the_same_weights():
    torch.manual_seed(0)
    embed = PatchEmbedding(channels=3, patch=4, dim=8)
    conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)
    with torch.no_grad():
        # Linear weight (D, P*P*C) in (row, col, channel) order -> conv weight (D, C, P, P)
        conv.weight.copy_(embed.proj.weight.view(8, 4, 4, 3).permute(0, 3, 1, 2))
        conv.bias.copy_(embed.proj.bias)
    images = torch.randn(2, 3, 12, 16)
    z, layout = embed(images)
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, D, 3, 4) -> (B, 12, D) row-major
    assert layout.grid == (3, 4) and layout.real is None
    assert torch.allclose(z, expected, atol=1e-5)


def test_a_patch_is_the_flattened_crop():
    images = torch.arange(2 * 6 * 9, dtype=torch.float32).view(1, 2, 6, 9)
    patches, grid = patchify(images, 3)
    assert grid == (2, 3) and patches.shape == (1, 6, 3 * 3 * 2)
    crop = images[0, :, 3:6, 3:6]  # grid row 1, col 1 -> patch index 1 * 3 + 1
    assert torch.equal(patches[0, 4], crop.permute(1, 2, 0).flatten())


@pytest.mark.parametrize(
    "size, patch, grid",
    [((8, 8), 3, (3, 3)), ((7, 5), 2, (4, 3)), ((5, 12), 4, (2, 3)), ((13, 13), 13, (1, 1)), ((9, 4), 4, (3, 1))],
)
def test_patch_counts_for_odd_and_non_square_sizes(size, patch, grid):
    assert grid_size(*size, patch) == grid
    z, layout = PatchEmbedding(1, patch, 4)(torch.rand(2, 1, *size))
    assert z.shape == (2, grid[0] * grid[1], 4) and layout.grid == grid


def test_padding_is_zeros_at_the_bottom_right():
    images = torch.ones(1, 1, 5, 5)
    patches, grid = patchify(images, 2)  # padded to 6x6, 3x3 grid
    last = patches[0, -1]  # bottom-right patch: only its top-left pixel is real
    assert grid == (3, 3) and last.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_mask_marks_exactly_the_padding_only_patches():
    sizes = torch.tensor([[8, 12], [5, 4], [8, 9]])  # a mixed batch padded to 8 x 12
    layout = patch_layout(sizes, grid_size(8, 12, 4), 4)
    assert layout.grid == (2, 3)
    assert layout.grids.tolist() == [[2, 3], [2, 1], [2, 3]]  # 5 rows -> 2 patch rows (one partly real)
    real = layout.real.view(3, 2, 3)
    assert real[0].all() and real[2].all()
    assert real[1].tolist() == [[True, False, False], [True, False, False]]


def test_uniform_batch_needs_no_mask():
    layout = patch_layout(torch.tensor([[7, 7], [7, 7]]), grid_size(7, 7, 2), 2)
    assert layout.real is None


def test_pixels_beyond_an_image_do_not_reach_its_patches():
    torch.manual_seed(0)
    embed = PatchEmbedding(1, 2, 4)
    small = torch.rand(1, 1, 3, 3)
    padded = torch.randn(1, 1, 6, 6) * 100  # garbage around the image
    padded[:, :, :3, :3] = small
    z_alone, _ = embed(small)
    z_padded, layout = embed(padded, torch.tensor([[3, 3]]))
    real = layout.real[0]
    assert real.sum() == 4  # the 2x2 grid of a 3x3 image
    assert torch.allclose(z_padded[0][real], z_alone[0], atol=1e-6)


def test_patch_larger_than_the_image_is_a_user_error():
    with pytest.raises(UserError, match=r"patch_size=9 is larger than an image of 8x8 pixels") as err:
        PatchEmbedding(1, 9, 4)(torch.rand(1, 1, 8, 8))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="4x10"):  # one small image in a mixed batch
        PatchEmbedding(1, 5, 4)(torch.rand(2, 1, 10, 10), torch.tensor([[10, 10], [4, 10]]))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((6, 6), [[0, 0, 0], [0, 0, 0], [0, 0, 0]]),  # multiples of 3 (top-left 2x2 of the 3x3 grid)
        ((7, 6), [[0, 0, 0], [0, 0, 0], [1, 1, 0]]),  # a ragged last row
        ((6, 8), [[0, 0, 1], [0, 0, 1], [0, 0, 0]]),  # a ragged last column
        ((8, 8), [[0, 0, 1], [0, 0, 1], [1, 1, 1]]),  # both
    ],
)
def test_partly_padded_patches_are_the_ragged_last_row_and_column(size, expected):
    got = partly_padded(torch.tensor([list(size), [9, 9]]), (3, 3), 3)  # a 9x9 image fills the grid
    assert got[0].view(3, 3).int().tolist() == expected and not got[1].any()
