"""Source x target attention heatmaps (as in Bahdanau et al. 2015, fig. 3), and grids of them
for multi-head models (one row per layer: the mean over heads, then each head; Vaswani et al.
2017, figs. 3-5, show such heads).

Row t shows alpha_t, the attention weights of output step t over the source subwords. Drawn
with matplotlib's object API on an Agg canvas, so it works without a display and never touches
pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import torch
from torch import Tensor


def plot_attention(
    weights: Tensor,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """Save a heatmap of ``weights`` (T, S): rows = ``tgt_tokens`` (T), columns = ``src_tokens`` (S)."""
    T, S = weights.shape
    if (T, S) != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(f"weights {tuple(weights.shape)} do not match {len(tgt_tokens)} x {len(src_tokens)} tokens")
    fig = Figure(figsize=(max(4.0, 1.5 + 0.4 * S), max(3.0, 1.5 + 0.35 * T)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(weights.detach().float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(S), labels=list(src_tokens), rotation=90, fontsize=8)
    ax.set_yticks(range(T), labels=list(tgt_tokens), fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    fig.colorbar(image, ax=ax, fraction=0.05)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_attention_grid(
    weights: Sequence[Tensor],
    row_tokens: Sequence[str],
    col_tokens: Sequence[str],
    path: Path,
    title: str = "",
    rows: str = "query",
    cols: str = "key",
) -> Path:
    """Save a grid of heatmaps: one row per layer, the mean over heads first, then each head.

    ``weights``: one (H, R, C) tensor per layer, rows = ``row_tokens`` (R), columns =
    ``col_tokens`` (C); ``rows``/``cols`` name the axes (e.g. "output"/"source")."""
    if not weights:
        raise ValueError("no layers to draw")
    heads, R, C = weights[0].shape
    if (R, C) != (len(row_tokens), len(col_tokens)):
        raise ValueError(f"weights {(R, C)} do not match {len(row_tokens)} x {len(col_tokens)} tokens")
    layers = len(weights)
    # Fixed margins in inches (no layout engine: constrained layout takes seconds on 15+ panels).
    left, right, bottom, top = 1.0, 0.7, 1.0, 0.8
    width = (heads + 1) * (1.0 + 0.22 * C) + left + right
    height = layers * (0.8 + 0.2 * R) + bottom + top
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=0.12, hspace=0.45)
    axes = fig.subplots(layers, heads + 1, squeeze=False)
    for layer, w in enumerate(weights):
        w = w.detach().float().cpu()
        panels = torch.cat([w.mean(dim=0, keepdim=True), w])  # (H + 1, R, C): mean, then each head
        for column, panel in enumerate(panels):
            ax = axes[layer, column]
            image = ax.imshow(panel.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_title(f"layer {layer + 1}, " + ("mean of heads" if column == 0 else f"head {column}"), fontsize=8)
            last_row, first_column = layer == layers - 1, column == 0
            # tokens on the outer panels only (ticks on every panel cost a second per picture)
            if last_row:
                ax.set_xticks(range(C), labels=list(col_tokens), rotation=90, fontsize=6)
                ax.set_xlabel(cols, fontsize=8)
            else:
                ax.set_xticks([])
            if first_column:
                ax.set_yticks(range(R), labels=list(row_tokens), fontsize=6)
                ax.set_ylabel(rows, fontsize=8)
            else:
                ax.set_yticks([])
    fig.colorbar(image, cax=fig.add_axes((1 - 0.45 / width, bottom / height, 0.12 / width, 1 - (bottom + top) / height)))
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
