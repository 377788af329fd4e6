"""Source x target attention heatmaps (as in Bahdanau et al. 2015, fig. 3).

Row t shows alpha_t, the attention weights of output step t over the source subwords. Drawn
with matplotlib's object API on an Agg canvas, so it works without a display and never touches
pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
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
