"""ViT attention pictures: CLS attention per layer and head, rollout, overlays on the images.

What each picture shows, per image (cropped to the image's own size, padding never drawn):

- ``rollout.png``: one row per image: the input (true and predicted class), the attention rollout
  (:mod:`attnlab.viz.rollout`) over it, and the last layer's attention of the CLS token (head mean);
- ``layers_heads_<i>.png``: a layers x heads grid of the CLS token's attention over image ``i``.

Without a CLS token (``model.pool=mean``) the "CLS attention" is the mean attention of the real
patches (what the mean-pooled vector draws from), as in :func:`~attnlab.viz.rollout.patch_relevance`.
Maps are per patch, drawn as P x P blocks (nearest upsampling), with a colour scale per panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from attnlab.layers.patch import PatchLayout  # noqa: E402
from attnlab.viz.rollout import patch_relevance, rollout  # noqa: E402


class AttentionModel(Protocol):
    """What the pictures need from a model (:class:`attnlab.models.vit.ViT` has it)."""

    has_cls: bool
    patch_size: int

    def attention_weights(self, images: Tensor, sizes: Tensor | None = None) -> list[Tensor]: ...

    def layout(self, images: Tensor, sizes: Tensor | None = None) -> PatchLayout: ...


def cls_attention(weights: Sequence[Tensor], has_cls: bool, real: Tensor | None = None) -> Tensor:
    """(layers, B, heads, N): each layer's and head's attention from CLS (or real patches) to patches."""
    per_layer = []
    for w in weights:  # (B, H, T, T)
        b, h, t, _ = w.shape
        flat = w.reshape(b * h, t, t)  # heads as batch rows
        mask = None if real is None else real.repeat_interleave(h, dim=0)  # (B*H, N)
        per_layer.append(patch_relevance(flat, has_cls, mask).view(b, h, -1))  # (B, H, N)
    return torch.stack(per_layer)


def image_map(values: Tensor, layout: PatchLayout, index: int, patch: int, size: Sequence[int]) -> Tensor:
    """One image's per-patch values (N,) -> a pixel map (H, W) of its own size (P x P blocks)."""
    rows, cols = layout.grid
    own_rows, own_cols = (int(v) for v in layout.grids[index])
    grid = values.view(rows, cols)[:own_rows, :own_cols]  # (rows, cols) -> the image's own grid
    pixels = grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)  # (rows*P, cols*P)
    return pixels[: int(size[0]), : int(size[1])]


def _show_image(ax: Axes, image: Tensor) -> None:
    """image (C, H, W) in [0, 1]: grey or RGB."""
    image = image.detach().float().clamp(0, 1).cpu()
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image[:3].permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax: Axes, image: Tensor, heat: Tensor, title: str = "") -> None:
    _show_image(ax, image)
    ax.imshow(heat.detach().float().cpu().numpy(), cmap="inferno", alpha=0.55, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=8)


def save_attention_pictures(
    out_dir: Path,
    model: AttentionModel,
    images: Tensor,
    sizes: Tensor,
    titles: Sequence[str],
    fusion: str = "mean",
) -> list[Path]:
    """Write ``rollout.png`` and one ``layers_heads_<i>.png`` per image to ``out_dir``.

    Args:
        images: (B, C, H, W) in [0, 1], zero-padded; sizes (B, 2) each image's (H, W).
        titles: one caption per image (e.g. "true 3, predicted 3 (0.98)").
        fusion: how rollout fuses the heads (mean, max, min).
    Returns:
        the paths written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        weights = model.attention_weights(images, sizes)
    layout = model.layout(images, sizes)
    patch = model.patch_size
    rolled = patch_relevance(rollout(weights, fusion), model.has_cls, layout.real)  # (B, N)
    per_head = cls_attention(weights, model.has_cls, layout.real)  # (L, B, H, N)
    last = per_head[-1].mean(dim=1)  # (B, N): last layer, heads averaged
    n = images.shape[0]
    paths = []

    fig = _figure(figsize=(6.6, 2.3 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        h, w = (int(v) for v in sizes[i])
        image = images[i, :, :h, :w]
        _show_image(axes[i, 0], image)
        axes[i, 0].set_title(titles[i], fontsize=8)
        _overlay(axes[i, 1], image, image_map(rolled[i], layout, i, patch, (h, w)), f"rollout ({fusion} of heads)")
        token = "CLS" if model.has_cls else "patches (mean)"
        _overlay(axes[i, 2], image, image_map(last[i], layout, i, patch, (h, w)), f"last layer, {token}")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "rollout.png"))

    layers, _, heads, _ = per_head.shape
    for i in range(n):
        h, w = (int(v) for v in sizes[i])
        image = images[i, :, :h, :w]
        fig = _figure(figsize=(1.6 * heads + 0.4, 1.6 * layers + 0.4))
        axes = fig.subplots(layers, heads, squeeze=False)
        for layer in range(layers):
            for head in range(heads):
                heat = image_map(per_head[layer, i, head], layout, i, patch, (h, w))
                _overlay(axes[layer, head], image, heat, f"layer {layer + 1} head {head + 1}")
        fig.suptitle(titles[i], fontsize=9)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / f"layers_heads_{i}.png"))
    return paths


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on an Agg canvas: files only, and the caller's (notebook's) backend is untouched."""
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def save_weights(
    path: Path, model: AttentionModel, images: Tensor, sizes: Tensor, labels: Tensor, probs: Tensor, classes: Sequence[str]
) -> Path:
    """The raw attention of the example images as ``.npz`` (``numpy.load`` reads it without
    pickle): ``weights`` (images, layers, heads, T, T) with T = [1 +] N tokens (CLS first when
    ``has_cls``; N patches row-major over ``grid``), ``images`` (B, C, H, W) zero-padded with
    their ``sizes`` (B, 2), ``labels``, ``probs`` (B, classes), ``classes``, ``patch_size``."""
    weights = torch.stack(model.attention_weights(images, sizes), dim=1)  # L x (B, H, T, T) -> (B, L, H, T, T)
    layout = model.layout(images, sizes)
    np.savez_compressed(
        path, weights=weights.float().cpu().numpy(), images=images.float().cpu().numpy(), sizes=sizes.cpu().numpy(),
        labels=labels.cpu().numpy(), probs=probs.numpy(), classes=np.array([str(c) for c in classes]),
        grid=np.array(layout.grid), patch_size=np.array(model.patch_size), has_cls=np.array(model.has_cls),
    )
    return path
