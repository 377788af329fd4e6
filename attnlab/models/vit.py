"""Vision Transformer for image classification (Dosovitskiy et al. 2021, "An image is worth 16x16
words"), for images of any height and width, on attnlab's shared attention core.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos           (eq. 1)  patches, CLS, positions
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                        (eq. 2)  pre-norm EncoderLayer
    z_l  = MLP(LN(z'_l)) + z'_l                              (eq. 3)
    y    = LN(z_L^0)                                         (eq. 4)  then a linear head

Pieces, in the order of the seed text:

- normalisation with the training set's per-channel mean/std (kept as buffers, so they travel with
  the weights);
- ``model.stem_layers`` > 0: a :class:`~attnlab.layers.stem.ConvStem` of 3x3 convolutions first
  (Xiao et al. 2021), whose feature map is then patched instead of the pixels;
- :class:`~attnlab.layers.patch.PatchEmbedding`: split, flatten, z_i = W x_i + b (eq. 1);
- a positional encoding from the registry (``model.posenc``: none, sinusoidal, learned, sincos2d).
  Codes are computed for each image's **own** patch grid and placed at the top-left of the batch's
  grid, so an image gets the same codes alone or in a padded mixed-size batch; ``learned`` holds a
  table for the training grid and is resampled bicubically for another one;
- ``model.pool=cls``: the seed's CLS token, a learned z_0 prepended to the patches, whose final
  state is the image vector (eq. 4); ``pool=mean``: the mean of the final states of the real
  (not padding-only) patches, no CLS token;
- ``depth`` pre-norm :class:`~attnlab.layers.transformer.EncoderLayer` blocks with the attention
  spec (``attention.*``: any score, 2-D positions inside attention -- axial RoPE, ALiBi over the
  patch distance, a (dy, dx) relative table --, a 2-D window, kv_heads, backend), dropout and
  drop-path (stochastic depth); padding-only patches are masked out as keys. The batch's grid
  is passed to the attention as a :class:`~attnlab.attention.Layout` (CLS first, then the
  patches row by row); an image placed at the top-left of a larger padded grid keeps its
  patches' (row, col), so its (dy, dx) are those of its own grid;
- a final LayerNorm and a linear head (zero-initialised, as in the paper's fine-tuning).

``forward`` runs the fused attention path (when the score allows it); ``attention_weights`` runs the
readable math path and returns each layer's weights, for the pictures in :mod:`attnlab.viz.vision`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from attnlab.attention import Layout, as_spec
from attnlab.layers.patch import PatchEmbedding, PatchLayout, check_patch_fits, grid_size, patch_layout
from attnlab.layers.positional import make_posenc
from attnlab.layers.stem import ConvStem
from attnlab.layers.transformer import EncoderLayer


class ViT(nn.Module):
    """A ViT classifier; see the module docstring. Inputs are images in [0, 1], (B, C, H, W)."""

    def __init__(
        self,
        *,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 2.0,
        stem_layers: int = 0,
        stem_channels: int = 32,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        posenc: str = "sincos2d",
        pool: str = "cls",
        attention=None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.stem = ConvStem(channels, stem_channels, stem_layers) if stem_layers != 0 else None
        self.patch_embed = PatchEmbedding(stem_channels if self.stem is not None else channels, patch_size, dim)
        check_patch_fits(torch.tensor([list(image_size)]), patch_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.pool = str(pool)
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be cls or mean, got {pool}")
        self.register_buffer("mean", torch.tensor(list(mean) if mean is not None else [0.0] * channels).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std) if std is not None else [1.0] * channels).view(-1, 1, 1))
        self.posenc = make_posenc(str(posenc), dim, grid=grid_size(*self.image_size, patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if self.pool == "cls" else None  # the seed's z_0
        self.dropout = nn.Dropout(dropout)
        rates = torch.linspace(0.0, drop_path, depth).tolist() if depth > 1 else [drop_path] * depth
        self.layers = nn.ModuleList(
            EncoderLayer(
                dim,
                heads,
                int(dim * mlp_ratio),
                spec=as_spec(attention),
                dropout=dropout,
                norm="pre",
                drop_path=rate,  # stochastic depth grows linearly with depth (Huang et al. 2016)
                activation="gelu",
                grid=True,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.apply(_init_weights)
        # the patch projection: LeCun normal, std 1/sqrt(P*P*C), so that the image, not the
        # positional code, dominates z_0 from the first step (as the reference Flax ViT)
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=self.patch_embed.proj.in_features**-0.5)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    @property
    def has_cls(self) -> bool:
        return self.cls_token is not None

    @property
    def patch_size(self) -> int:
        return self.patch_embed.patch

    # ------------------------------------------------------------------ pieces
    def add_positions(self, z: Tensor, layout: PatchLayout) -> Tensor:
        """z (B, N, D) plus the codes of each image's own grid (padding-only patches get none)."""
        if layout.real is None:  # every image fills the grid: one set of codes for all
            return self.posenc(z, layout.grid)
        b, n, d = z.shape
        rows, cols = layout.grid
        codes = z.new_zeros(b, rows, cols, d)
        for h, w in torch.unique(layout.grids, dim=0).tolist():
            own = self.posenc(z.new_zeros(1, h * w, d), (h, w)).view(h, w, d)  # codes of an h x w grid
            same = (layout.grids[:, 0] == h) & (layout.grids[:, 1] == w)  # (B,)
            codes[same, :h, :w] = own
        return z + codes.view(b, n, d)  # (B, rows, cols, D) -> (B, N, D)

    def key_mask(self, layout: PatchLayout) -> Tensor | None:
        """(B, 1, T) attention mask, True at real tokens (the CLS token always is); None if no padding."""
        if layout.real is None:
            return None
        real = layout.real
        if self.has_cls:
            real = torch.cat([real.new_ones(real.shape[0], 1), real], dim=1)  # (B, 1 + N)
        return real.unsqueeze(1)  # (B, T) -> (B, 1, T): the same keys for every query

    def encode(
        self, images: Tensor, sizes: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, PatchLayout, list[Tensor]]:
        """images (B, C, H, W) in [0, 1] -> final states (B, T, D), layout, per-layer weights.

        T = 1 + N with a CLS token (at index 0), else N. The weights are (B, heads, T, T) per layer
        when ``need_weights`` (math path), else an empty list.
        """
        x = (images - self.mean) / self.std  # (B, C, H, W), per-channel standardisation
        if self.stem is not None:
            x = self.stem(x, sizes)  # (B, C, H, W) -> (B, stem_channels, H, W)
        z, layout = self.patch_embed(x, sizes)  # (B, N, D)
        z = self.add_positions(z, layout)
        if self.cls_token is not None:
            z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1), z], dim=1)  # (B, 1 + N, D)
        z = self.dropout(z)
        mask = self.key_mask(layout)
        where = Layout(grid=tuple(layout.grid), prefix=1 if self.has_cls else 0)  # tokens for positions/windows
        weights: list[Tensor] = []
        for layer in self.layers:
            z, w = layer(z, mask, need_weights=need_weights, layout=where)
            if w is not None:
                weights.append(w)
        return self.norm(z), layout, weights

    def pooled(self, states: Tensor, layout: PatchLayout) -> Tensor:
        """The image vectors (B, D): the CLS state, or the mean over real patches."""
        if self.has_cls:
            return states[:, 0]
        if layout.real is None:
            return states.mean(dim=1)
        real = layout.real.unsqueeze(-1).to(states.dtype)  # (B, N, 1)
        return (states * real).sum(dim=1) / real.sum(dim=1)

    # ------------------------------------------------------------------ API
    def forward(self, images: Tensor, sizes: Tensor | None = None) -> Tensor:
        """images (B, C, H, W) in [0, 1], sizes (B, 2) each image's (H, W) -> logits (B, classes)."""
        states, layout, _ = self.encode(images, sizes)
        return self.head(self.pooled(states, layout))

    def attention_weights(self, images: Tensor, sizes: Tensor | None = None) -> list[Tensor]:
        """Each layer's attention weights (B, heads, T, T), from the math path (T = [1 +] N);
        the models' common protocol: the inputs of ``forward``, the weights of the math path."""
        return self.encode(images, sizes, need_weights=True)[2]

    def layout(self, images: Tensor, sizes: Tensor | None = None) -> PatchLayout:
        """The patch layout of a batch (grid, each image's grid, real patches), without the model."""
        b, _, height, width = images.shape
        if sizes is None:
            sizes = torch.tensor([height, width]).repeat(b, 1)
        return patch_layout(sizes, grid_size(height, width, self.patch_size), self.patch_size)


def _init_weights(module: nn.Module) -> None:
    """Xavier-uniform linear weights, zero biases, unit LayerNorms (as the reference Flax ViT)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build(
    cfg: DictConfig,
    *,
    num_classes: int,
    channels: int,
    image_size: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **_: object,
) -> ViT:
    """Build the ViT of ``cfg.model`` with the attention spec ``cfg.attention`` for a dataset's facts."""
    m, a = cfg.model, cfg.attention
    return ViT(
        num_classes=num_classes,
        channels=channels,
        image_size=(int(image_size[0]), int(image_size[1])),
        patch_size=int(m.patch_size),
        dim=int(m.dim),
        depth=int(m.depth),
        heads=int(m.heads),
        mlp_ratio=float(m.mlp_ratio),
        stem_layers=int(m.stem_layers),
        stem_channels=int(m.stem_channels),
        dropout=float(m.dropout),
        drop_path=float(m.drop_path),
        posenc=str(m.posenc),
        pool=str(m.pool),
        attention=a,
        mean=mean,
        std=std,
    )
