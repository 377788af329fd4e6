"""Multi-head attention on any score and position variant (Vaswani et al. 2017, sec. 3.2.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W^O,
    head_i = Attention(Q W_i^Q, K W_g(i)^K, V W_g(i)^V)

"Attention" is :func:`attnlab.attention.attend` with the spec's score, positions, window and
backend, so a Transformer or a ViT runs with ``general``, ``additive``, ``cosine`` or ``linear``
scoring as well as the paper's ``scaled_dot``. With ``kv_heads`` = Hk < H, query head i reads key
and value head g(i) = i // (H / Hk): multi-query attention for Hk = 1 (Shazeer 2019), grouped-query
for 1 < Hk < H (Ainslie et al. 2023); the KV cache holds Hk heads, H / Hk times less.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.attend import attend
from attnlab.attention.factory import as_spec, make_position_for, make_score_for
from attnlab.attention.positions import SEQUENCE, Layout, window_allows
from attnlab.errors import UserError

KVCache = dict[str, Tensor]


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with H = ``heads`` query heads of width Dh = ``dim // heads``.

    Args:
        dim: model width D (queries and output).
        heads: number of query heads H; must divide ``dim``.
        spec: the attention spec (:class:`attnlab.config.AttentionConfig`), or a score name.
        kv_dim: width of the keys/values input when it differs from ``dim`` (cross-attention).
        dropout: dropout on the attention weights.
        cross: cross-attention: positions and windows do not apply (module
            :mod:`attnlab.attention.positions`, "rule for cross-attention").
        causal: built for causal self-attention (relative buckets then cover past offsets only);
            the mask itself is asked per call (``forward(causal=True)``).
        grid: the tokens are image patches (2-D positions and windows), laid out per call.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        spec=None,
        *,
        kv_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        cross: bool = False,
        causal: bool = False,
        grid: bool = False,
    ) -> None:
        super().__init__()
        spec = as_spec(spec)
        if heads <= 0 or dim % heads:
            raise UserError(f"attention heads ({heads}) must be a positive divisor of the width ({dim})")
        kv_heads = int(spec.kv_heads) or heads
        if kv_heads < 0 or heads % kv_heads:
            raise UserError(f"attention.kv_heads={spec.kv_heads} must divide the number of heads ({heads})")
        kv_dim = dim if kv_dim is None else kv_dim
        self.dim, self.heads, self.kv_heads, self.head_dim = dim, heads, kv_heads, dim // heads
        self.dropout, self.cross = dropout, cross
        self.backend, self.fused = str(spec.backend), bool(spec.fused)
        self.window = 0 if cross else int(spec.window)
        kv_width = kv_heads * self.head_dim
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, kv_width, bias=bias)
        self.v_proj = nn.Linear(kv_dim, kv_width, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        self.score = make_score_for(spec, self.head_dim, self.head_dim, heads=heads)
        self.position = make_position_for(spec, heads, self.head_dim, cross=cross, grid=grid, causal=causal)
        self.packable = kv_dim == dim  # Q, K, V of self-attention can share one matrix product

    def _split(self, x: Tensor, heads: int) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.head_dim).transpose(1, 2)  # (B, T, heads*Dh) -> (B, heads, T, Dh)

    def _project(
        self, query: Tensor, key: Tensor | None, value: Tensor | None, cache: KVCache | None, static_kv: bool,
        layout: Layout,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries (B, H, Tq, Dh), keys and values (B, Hk, Tk, Dh), rotated (RoPE) and with the
        cache read and updated."""
        if key is None and value is None and self.packable:
            # Self-attention: one matrix product for Q, K and V (as torch.nn.MultiheadAttention).
            weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            bias = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            kv_width = self.kv_heads * self.head_dim
            q, k, v = F.linear(query, weight, bias).split([self.dim, kv_width, kv_width], dim=-1)
            q, k, v = self._split(q, self.heads), self._split(k, self.kv_heads), self._split(v, self.kv_heads)
        else:
            key = query if key is None else key
            value = key if value is None else value
            q = self._split(self.q_proj(query), self.heads)
            if cache is not None and static_kv and "k" in cache:
                return q, cache["k"], cache["v"]  # cross-attention: memory projected once
            k = self._split(self.k_proj(key), self.kv_heads)
            v = self._split(self.v_proj(value), self.kv_heads)
        if not self.cross:
            # positions of the new tokens: after the cached ones (decoding) or 0..T-1
            past = 0 if cache is None or static_kv or "k" not in cache else cache["k"].shape[2]
            pos = torch.arange(past, past + q.shape[2], device=q.device)  # (Tq,)
            q, k = self.position.rotate(q, pos, layout), self.position.rotate(k, pos, layout)
        if cache is not None:
            if not static_kv and "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)  # append the new steps along time
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        return q, k, v

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        causal: bool = False,
        need_weights: bool = False,
        cache: KVCache | None = None,
        static_kv: bool = False,
        layout: Layout = SEQUENCE,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` (B, Tq, D) to ``key``/``value`` (B, Tk, Dkv) (default: ``query``).

        Args:
            mask: boolean, broadcastable to (B, Tq, Tk); True = may attend.
            causal: no look-ahead (decoder self-attention).
            need_weights: also return the weights (B, H, Tq, Tk) (math path).
            cache: incremental decoding state, updated in place. Self-attention appends the new
                keys/values to it; with ``static_kv`` (cross-attention) they are computed once.
            layout: where the tokens sit (a sequence, or CLS + a patch grid) for positions and
                windows of self-attention.
        Returns:
            output (B, Tq, D) and weights (B, H, Tq, Tk) or None.
        """
        q, k, v = self._project(query, key, value, cache, static_kv, layout)
        context, weights = attend(
            q,
            k,
            v,
            self.score,
            None if mask is None else mask.unsqueeze(1),  # (B, Tq, Tk) -> (B, 1, Tq, Tk): all heads
            causal=causal,
            need_weights=need_weights,
            dropout_p=self.dropout if self.training else 0.0,
            fused=self.fused,
            backend=self.backend,
            bias=None if self.cross else self.position.bias(layout),
            allow=window_allows(self.window, layout) if self.window > 0 else None,
        )
        b, _, t, _ = context.shape
        context = context.transpose(1, 2).reshape(b, t, self.dim)  # (B, H, Tq, Dh) -> (B, Tq, D)
        return self.out_proj(context), weights


def reorder_cache(cache: KVCache, index: Tensor) -> None:
    """Select batch rows of a cache in place (beam search keeps the surviving hypotheses)."""
    for name, tensor in cache.items():
        cache[name] = tensor.index_select(0, index)
