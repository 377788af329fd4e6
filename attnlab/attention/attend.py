"""Scores -> masked softmax -> weighted sum of values: the attention operation itself.

    alpha = softmax(score(q, k) + bias)  over the visible keys   (Bahdanau et al. 2015, eq. 6;
    c     = alpha @ v                                              Vaswani et al. 2017, eq. 1)

:func:`attend` has several backends that give the same numbers (tests check it, forward and
backward, for every score, position and window):

- ``math``: the readable path, which can return the weights alpha;
- ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`, for scores with a
  dot-product form (:meth:`Score.as_dot`); a bias (ALiBi, relative) and the masks travel as one
  float ``attn_mask``; with no bias and no mask it never builds the Tq x Tk weight matrix on
  backends with a memory-efficient or flash kernel;
- ``flex``: torch's FlexAttention, with the bias as ``score_mod`` and the masks as ``mask_mod``
  (the same functions); in torch 2.13 it has no backward pass on the CPU;
- ``auto``: ``sdpa`` when the score has a dot form, else ``math``; linear attention
  (:class:`~attnlab.attention.scores.LinearScore`) takes its O(n) path when it can.

Weights (``need_weights``) always come from the math path: every backend's weights are the
math path's weights.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.masks import causal_mask
from attnlab.attention.scores import Score, linear_context, masked_softmax
from attnlab.errors import UserError

BACKENDS = ("auto", "math", "sdpa", "flex")

# (h, query position, key position) -> bias; (query position, key position) -> may attend
BiasFn = Callable[[Tensor, Tensor, Tensor], Tensor]
AllowFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["BACKENDS", "attend", "masked_softmax", "resolve_backend"]


def resolve_backend(backend: str, score: Score, *, need_weights: bool = False, fused: bool = True) -> str:
    """The path a call takes: math, sdpa, flex or linear (the O(n) form of linear attention)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown attention.backend '{backend}'; valid choices: {', '.join(BACKENDS)}")
    if backend in ("sdpa", "flex") and score.normalizer == "softmax" and not score.dot_form:
        raise UserError(
            f"attention.backend={backend} needs a score with a dot-product form; "
            f"{type(score).__name__} has none: use attention.backend=math or auto"
        )
    if backend in ("sdpa", "flex") and score.normalizer != "softmax":
        raise UserError(f"attention.backend={backend} computes a softmax; linear attention needs backend=auto or math")
    if need_weights or not fused or backend == "math":
        return "math"
    if score.normalizer == "sum":
        return "linear"
    if backend == "auto":
        return "sdpa" if score.dot_form else "math"
    return backend


def _positions(q_len: int, k_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Query and key positions as broadcast grids (Tq, 1) and (1, Tk); queries are the last Tq."""
    qpos = torch.arange(q_len, device=device).unsqueeze(1) + (k_len - q_len)
    return qpos, torch.arange(k_len, device=device).unsqueeze(0)


def _allowed(mask: Tensor | None, causal: bool, allow: AllowFn | None, q_len: int, k_len: int, device) -> Tensor | None:
    """The boolean mask of visible keys, broadcastable to (..., Tq, Tk), or None (all visible)."""
    full = mask
    if causal:
        c = causal_mask(q_len, k_len, device=device)  # (Tq, Tk)
        full = c if full is None else full & c
    if allow is not None:
        w = allow(*_positions(q_len, k_len, device))  # (Tq, Tk)
        full = w if full is None else full & w
    return full


def _bias_tensor(bias: BiasFn, heads: int, q_len: int, k_len: int, device) -> Tensor:
    """The bias function on index grids: (H, Tq, Tk)."""
    qpos, kpos = _positions(q_len, k_len, device)
    h = torch.arange(heads, device=device).view(heads, 1, 1)
    return bias(h, qpos.unsqueeze(0), kpos.unsqueeze(0)).expand(heads, q_len, k_len)


def _expand_kv(x: Tensor, heads: int) -> Tensor:
    """Grouped-query attention: (B, Hk, Tk, D) -> (B, H, Tk, D), kv head g serving query heads
    g*H/Hk .. (g+1)*H/Hk - 1 (the grouping of SDPA's ``enable_gqa``)."""
    if x.dim() < 4 or x.shape[-3] == heads:
        return x
    return x.repeat_interleave(heads // x.shape[-3], dim=-3)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    score: Score,
    mask: Tensor | None = None,
    *,
    causal: bool = False,
    need_weights: bool = False,
    dropout_p: float = 0.0,
    fused: bool = True,
    backend: str = "auto",
    bias: BiasFn | None = None,
    allow: AllowFn | None = None,
    keys_prepared: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Attend from queries (..., Tq, Dq) to keys (..., Tk, Dk) with values (..., Tk, Dv).

    With heads the inputs are (B, H, Tq, Dq), (B, Hk, Tk, Dk), (B, Hk, Tk, Dv); Hk divides H
    (grouped-query attention, Hk < H).

    Args:
        mask: boolean, broadcastable to (..., Tq, Tk); True = may attend.
        causal: also forbid each query to see later keys (bottom-right aligned, see causal_mask).
        need_weights: return alpha (..., Tq, Tk); forces the math path.
        dropout_p: dropout on the attention weights (pass 0.0 in eval mode).
        fused: False forces the math path (whatever ``backend`` says).
        backend: auto | math | sdpa | flex (module docstring).
        bias: (h, query position, key position) -> a bias added to the scores (ALiBi, relative).
        allow: (query position, key position) -> bool, a mask given as a function (windows).
            Positions: keys 0..Tk-1, queries the last Tq of them (Tk - Tq .. Tk - 1).
        keys_prepared: ``k`` already went through ``score.prepare_keys`` (once per source).
    Returns:
        context (..., Tq, Dv) and the weights, or None when not requested.
    """
    path = resolve_backend(backend, score, need_weights=need_weights, fused=fused)
    q_len, k_len = q.shape[-2], k.shape[-2]
    heads = q.shape[-3] if q.dim() >= 4 else 1
    if keys_prepared:
        kp = k
    else:
        kp = score.prepare_keys(_expand_kv(k, heads) if score.per_head_keys else k)
    if path == "flex":
        return _flex(q, kp, v, score, mask, causal, bias, allow, dropout_p), None
    if path == "sdpa":
        return _sdpa(q, kp, v, score, mask, causal, bias, allow, dropout_p), None

    kp, v = _expand_kv(kp, heads), _expand_kv(v, heads)
    if path == "linear" and bias is None and allow is None and (mask is None or mask.shape[-2] == 1):
        # O(n): no (Tq, Tk) matrix; masks here are per key (padding) or causal
        return linear_context(score.feature(q), kp, v, mask, causal, score.eps), None
    full = _allowed(mask, causal, allow, q_len, k_len, q.device)
    scores = score.compare(q, kp)  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + _bias_tensor(bias, heads, q_len, k_len, q.device).to(scores.dtype)
    weights = score.normalize(scores, full)  # (..., Tq, Tk)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, (weights if need_weights else None)  # (..., Tq, Tk) @ (..., Tk, Dv)


def _sdpa(q, kp, v, score, mask, causal, bias, allow, dropout_p) -> Tensor:
    q_dot, scale = score.as_dot(q)
    q_len, k_len = q.shape[-2], kp.shape[-2]
    gqa = q.dim() >= 4 and kp.shape[-3] != q.shape[-3]
    if mask is None and bias is None and allow is None:
        # torch's is_causal is top-left aligned: only equal lengths may use it directly.
        use_flag = causal and q_len == k_len
        full = None if use_flag or not causal else causal_mask(q_len, k_len, device=q.device)
        return F.scaled_dot_product_attention(
            q_dot, kp, v, attn_mask=full, dropout_p=dropout_p, is_causal=use_flag, scale=scale, enable_gqa=gqa
        )
    full = _allowed(mask, causal, allow, q_len, k_len, q.device)
    has_key = None
    if full is not None:
        has_key = full.any(dim=-1, keepdim=True)  # (..., Tq, 1), on the small unbroadcast mask
        if bool(has_key.all()):
            has_key = None
        else:  # rows with no visible key: let the kernel see every key (no NaN), then zero them
            full = full | ~has_key
    attn_mask = full
    if bias is not None:
        heads = q.shape[-3]
        attn_mask = _bias_tensor(bias, heads, q_len, k_len, q.device).to(q.dtype)  # (H, Tq, Tk)
        if full is not None:
            attn_mask = attn_mask.masked_fill(~full, float("-inf"))
    out = F.scaled_dot_product_attention(
        q_dot, kp, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
    )
    return out if has_key is None else out * has_key


def _flex(q, kp, v, score, mask, causal, bias, allow, dropout_p) -> Tensor:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError:  # pragma: no cover - torch < 2.5
        raise UserError(f"attention.backend=flex needs torch >= 2.5 (this is {torch.__version__})") from None
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, kp, v)):
        raise UserError(
            f"attention.backend=flex has no backward pass on the CPU in torch {torch.__version__}; "
            "use attention.backend=auto (sdpa) or math to train, or a GPU; flex runs on the CPU under torch.no_grad()"
        )
    if dropout_p > 0:
        raise UserError("attention.backend=flex has no attention dropout; set model.attn_dropout=0 or another backend")
    squeeze = q.dim() == 3
    if squeeze:  # no heads (the RNN): one head
        q, kp, v = q.unsqueeze(1), kp.unsqueeze(1), v.unsqueeze(1)
        mask = None if mask is None else mask.unsqueeze(1)
    q_dot, scale = score.as_dot(q)
    b, _, q_len, _ = q.shape
    k_len = kp.shape[-2]
    shift = k_len - q_len
    pad = None if mask is None else mask.expand(b, mask.shape[-3] if mask.dim() == 4 else 1, q_len, k_len)

    def mask_mod(bi, hi, qi, kj):
        ok = qi >= 0
        if pad is not None:
            ok = ok & pad[bi, 0, qi, kj]
        if causal:
            ok = ok & (kj <= qi + shift)
        if allow is not None:
            ok = ok & allow(qi + shift, kj)
        return ok

    def score_mod(s, bi, hi, qi, kj):
        return s + bias(hi, qi + shift, kj).to(s.dtype)

    block_mask = None
    if mask is not None or causal or allow is not None:
        block_mask = create_block_mask(mask_mod, b, None, q_len, k_len, device=q.device)
    out = flex_attention(
        q_dot.contiguous(), kp.contiguous(), v.contiguous(),
        score_mod=score_mod if bias is not None else None,
        block_mask=block_mask, scale=scale, enable_gqa=kp.shape[1] != q.shape[1],
    )
    return out.squeeze(1) if squeeze else out
