"""Multi-head attention on any score function (Vaswani et al. 2017, sec. 3.2.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

"Attention" here is :func:`attnlab.attention.attend` with the configured score, so a Transformer
or a ViT can run with ``general`` or ``additive`` scoring as well as the paper's ``scaled_dot``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.attend import attend
from attnlab.attention.scores import make_score
from attnlab.errors import UserError

KVCache = dict[str, Tensor]


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with ``heads`` heads of size ``dim // heads``.

    Args:
        dim: model width (queries and output).
        heads: number of heads; must divide ``dim``.
        score: score name (dot, scaled_dot, general, additive).
        kv_dim: width of the keys/values input when it differs from ``dim`` (cross-attention).
        dropout: dropout on the attention weights.
        additive_dim: hidden size of the additive score per head (0 = head size).
        fused: allow torch's fused kernel when the score permits and no weights are asked for.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        score: str = "scaled_dot",
        kv_dim: int | None = None,
        dropout: float = 0.0,
        additive_dim: int = 0,
        fused: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if heads <= 0 or dim % heads:
            raise UserError(f"attention heads ({heads}) must be a positive divisor of the width ({dim})")
        kv_dim = dim if kv_dim is None else kv_dim
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout, self.fused = dropout, fused
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, dim, bias=bias)
        self.v_proj = nn.Linear(kv_dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        self.score = make_score(score, self.head_dim, self.head_dim, heads=heads, hidden_dim=additive_dim)
        self.packable = kv_dim == dim  # Q, K, V of self-attention can share one matrix product

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, T, D) -> (B, H, T, Dh)

    def _project(
        self, query: Tensor, key: Tensor | None, value: Tensor | None, cache: KVCache | None, static_kv: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values split into heads, with the cache read and updated."""
        if key is None and value is None and self.packable:
            # Self-attention: one matrix product for Q, K and V (as torch.nn.MultiheadAttention).
            weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            bias = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            q, k, v = (self._split(t) for t in F.linear(query, weight, bias).chunk(3, dim=-1))
        else:
            key = query if key is None else key
            value = key if value is None else value
            q = self._split(self.q_proj(query))
            if cache is not None and static_kv and "k" in cache:
                return q, cache["k"], cache["v"]  # cross-attention: memory projected once
            k, v = self._split(self.k_proj(key)), self._split(self.v_proj(value))
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
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` (B, Tq, D) to ``key``/``value`` (B, Tk, Dkv) (default: ``query``).

        Args:
            mask: boolean, broadcastable to (B, Tq, Tk); True = may attend.
            causal: no look-ahead (decoder self-attention).
            need_weights: also return the weights (B, H, Tq, Tk) (math path).
            cache: incremental decoding state, updated in place. Self-attention appends the new
                keys/values to it; with ``static_kv`` (cross-attention) they are computed once.
        Returns:
            output (B, Tq, D) and weights (B, H, Tq, Tk) or None.
        """
        q, k, v = self._project(query, key, value, cache, static_kv)  # each (B, H, T, Dh)
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
        )
        b, _, t, _ = context.shape
        context = context.transpose(1, 2).reshape(b, t, self.dim)  # (B, H, Tq, Dh) -> (B, Tq, D)
        return self.out_proj(context), weights


def reorder_cache(cache: KVCache, index: Tensor) -> None:
    """Select batch rows of a cache in place (beam search keeps the surviving hypotheses)."""
    for name, tensor in cache.items():
        cache[name] = tensor.index_select(0, index)
