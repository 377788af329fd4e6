"""A convolutional stem before the patch embedding: locality the ViT need not learn from data.

Xiao et al. 2021, "Early Convolutions Help Transformers See Better", sec. 3: replacing the ViT's
patchify (one non-overlapping P x P linear map, Dosovitskiy et al. 2021, eq. 1) with a few 3 x 3
convolutions makes training more stable and more accurate, the more so with little data.

:class:`ConvStem` is ``layers`` blocks of

    x <- GELU(Conv3x3(x))          stride 1, one pixel of zero padding, ``channels`` out

after which the usual :class:`~attnlab.layers.patch.PatchEmbedding` splits the feature map into
P x P patches. Two departures from the paper, both to keep the rest of attnlab unchanged:

- **stride 1** (the paper strides by 2 until it reaches P): the patch grid stays the one of
  ``model.patch_size``, so layouts, attention maps, the gym's box scores and the pictures do not
  change; a token now also sees ``layers`` pixels beyond its own patch on every side;
- **no BatchNorm** between the convolutions: an image's features must not depend on the other
  images of its batch (the ViT's padding-invariance promise, tested).

Mixed-size batches: before every convolution the pixels beyond each image's (H, W) are set to
zero, which is what a 3 x 3 convolution's own zero padding gives an image alone, so an image gets
the same features alone or at the top-left of a larger padded batch.
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.errors import UserError
from attnlab.layers.patch import check_channels, full_sizes, zero_outside


class ConvStem(nn.Module):
    """``layers`` x [3x3 conv (stride 1, padding 1), GELU]: (B, C, H, W) -> (B, channels, H, W).

    Args:
        in_channels: C of the (standardised) images.
        channels: width of every convolution's output.
        layers: number of convolutions (at least 1; the ViT uses no stem for 0).
    """

    def __init__(self, in_channels: int, channels: int, layers: int) -> None:
        super().__init__()
        if layers < 1 or channels < 1:
            raise UserError(
                f"model.stem_layers={layers} with model.stem_channels={channels}: a convolutional stem needs "
                "stem_layers >= 1 and stem_channels >= 1 (model.stem_layers=0 turns it off)"
            )
        self.in_channels, self.channels = in_channels, channels
        widths = [in_channels] + [channels] * layers
        self.convs = nn.ModuleList(nn.Conv2d(a, b, kernel_size=3, padding=1) for a, b in zip(widths, widths[1:]))

    def forward(self, images: Tensor, sizes: Tensor | None = None) -> Tensor:
        """images (B, C, H, W), sizes (B, 2) each image's (H, W) (None: all full size) -> (B, channels, H, W)."""
        check_channels(images.shape[1], self.in_channels)
        sizes = full_sizes(images, sizes)
        x = images
        for conv in self.convs:
            x = nn.functional.gelu(conv(zero_outside(x, sizes)))  # (B, channels, H, W)
        return x
