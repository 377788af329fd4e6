"""The convolutional stem: equal to a pixel-by-pixel reference, padding-invariant, clear errors."""

import pytest
import torch
from torch import nn

from attnlab.errors import UserError
from attnlab.layers.stem import ConvStem


def reference(stem: ConvStem, image: torch.Tensor) -> torch.Tensor:
    """The stem on one image (C, H, W), one output pixel at a time: sum over the 3x3 window of
    in-image pixels (outside ones count as zero), plus the bias, then GELU."""
    x = image
    for conv in stem.convs:
        c_out = conv.weight.shape[0]
        _, height, width = x.shape
        out = torch.zeros(c_out, height, width)
        for i in range(height):
            for j in range(width):
                total = conv.bias.clone()
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        if 0 <= i + di < height and 0 <= j + dj < width:
                            total += conv.weight[:, :, di + 1, dj + 1] @ x[:, i + di, j + dj]
                out[:, i, j] = total
        x = nn.functional.gelu(out)
    return x


def test_stem_equals_the_pixel_by_pixel_reference():
    torch.manual_seed(0)
    stem = ConvStem(in_channels=2, channels=5, layers=2)
    images = torch.randn(2, 2, 5, 7)
    out = stem(images)
    assert out.shape == (2, 5, 5, 7)
    for b in range(2):
        assert torch.allclose(out[b], reference(stem, images[b]), atol=1e-5)


def test_an_image_gets_the_same_features_alone_and_in_a_padded_batch():
    torch.manual_seed(0)
    stem = ConvStem(in_channels=1, channels=4, layers=3)
    image = torch.randn(1, 1, 5, 6)
    batch = torch.randn(2, 1, 9, 11) * 50  # garbage beyond the image ...
    batch[0, :, :5, :6] = image[0]
    padded = stem(batch, torch.tensor([[5, 6], [9, 11]]))
    assert torch.allclose(padded[0, :, :5, :6], stem(image)[0], atol=1e-5)
    unmasked = stem(batch)  # ... which does leak in when the sizes are not given
    assert not torch.allclose(unmasked[0, :, :5, :6], stem(image)[0], atol=1e-2)


@pytest.mark.parametrize("layers, channels", [(0, 8), (-1, 8), (2, 0)])
def test_a_stem_without_layers_or_channels_is_a_user_error(layers, channels):
    with pytest.raises(UserError, match="stem_layers"):
        ConvStem(1, channels, layers)


def test_wrong_channel_count_is_a_user_error():
    with pytest.raises(UserError, match="3-channel images, got 1"):
        ConvStem(3, 4, 1)(torch.rand(1, 1, 8, 8))
