"""Transformer blocks built on the shared multi-head attention (Vaswani et al. 2017, sec. 3.1).

Each sub-layer (attention or feed-forward) is wrapped in a residual connection with LayerNorm,
either after the residual sum (``post``, the paper's ``LayerNorm(x + Sublayer(x))``) or before the
sub-layer (``pre``, ``x + Sublayer(LayerNorm(x))``, Xiong et al. 2020, which trains without
warm-up tricks and is what ViT uses). The same :class:`EncoderLayer` serves the translation
Transformer and the ViT.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.attention import SEQUENCE, Layout, MultiHeadAttention
from attnlab.errors import UserError


class FeedForward(nn.Module):
    """FFN(x) = W_2 act(W_1 x + b_1) + b_2 (Vaswani et al. 2017, eq. 2)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "gelu": nn.GELU}[activation]
        self.net = nn.Sequential(nn.Linear(dim, hidden), act(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per example (Huang et al. 2016)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:  # every branch dropped (the rescaling below would divide by zero)
            return torch.zeros_like(x)
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1.0 - self.p)  # (B, 1, 1)
        return x * keep / (1.0 - self.p)


class Residual(nn.Module):
    """Residual connection around a sub-layer with pre- or post-LayerNorm, dropout, drop-path."""

    def __init__(self, dim: int, norm: str = "pre", dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if str(norm) not in ("pre", "post"):
            raise UserError(f"unknown norm placement '{norm}'; valid choices: post, pre")
        self.pre = str(norm) == "pre"
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, sublayer) -> tuple[Tensor, Tensor | None]:
        """``sublayer(h) -> (output, extra)``; returns the new x and the extra (attention weights)."""
        if self.pre:
            out, extra = sublayer(self.norm(x))
            return x + self.drop_path(self.dropout(out)), extra
        out, extra = sublayer(x)
        return self.norm(x + self.drop_path(self.dropout(out))), extra


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each in a :class:`Residual`.

    ``spec`` is the attention spec (:class:`attnlab.config.AttentionConfig`, or a score name),
    handed whole to the attention; ``grid`` = True for image patches (2-D positions and windows).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        spec=None,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        norm: str = "pre",
        drop_path: float = 0.0,
        activation: str = "relu",
        grid: bool = False,
    ) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, spec, dropout=attn_dropout, grid=grid)
        self.ff = FeedForward(dim, ff_dim, dropout, activation)
        self.attn_block = Residual(dim, norm, dropout, drop_path)
        self.ff_block = Residual(dim, norm, dropout, drop_path)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False, layout: Layout = SEQUENCE
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D), mask broadcastable to (B, T, T) -> (B, T, D), weights (B, H, T, T) or None."""
        x, weights = self.attn_block(
            x, lambda h: self.attn(h, mask=mask, need_weights=need_weights, layout=layout)
        )
        x, _ = self.ff_block(x, lambda h: (self.ff(h), None))
        return x, weights


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, feed-forward.

    The spec's positions and window act in the self-attention; the cross-attention takes its
    score, heads and backend only (rule in :mod:`attnlab.attention.positions`).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        spec=None,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        norm: str = "pre",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, spec, dropout=attn_dropout, causal=True)
        self.cross_attn = MultiHeadAttention(dim, heads, spec, dropout=attn_dropout, cross=True)
        self.ff = FeedForward(dim, ff_dim, dropout, activation)
        self.self_block = Residual(dim, norm, dropout)
        self.cross_block = Residual(dim, norm, dropout)
        self.ff_block = Residual(dim, norm, dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        self_mask: Tensor | None = None,
        need_weights: bool = False,
        cache: dict[str, dict[str, Tensor]] | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """x (B, T, D) target prefix, memory (B, S, D) -> (B, T, D), self and cross weights.

        With ``cache`` (incremental decoding), x holds only the new position(s): earlier keys and
        values of the self-attention come from the cache, the memory's from its first step.
        """
        self_cache = None if cache is None else cache.setdefault("self", {})
        cross_cache = None if cache is None else cache.setdefault("cross", {})
        x, self_w = self.self_block(
            x, lambda h: self.self_attn(h, mask=self_mask, causal=True, need_weights=need_weights, cache=self_cache)
        )
        x, cross_w = self.cross_block(
            x,
            lambda h: self.cross_attn(
                h, memory, mask=memory_mask, need_weights=need_weights, cache=cross_cache, static_kv=True
            ),
        )
        x, _ = self.ff_block(x, lambda h: (self.ff(h), None))
        return x, self_w, cross_w
