"""Scores -> masked softmax -> weighted sum of values: the attention operation itself.

    alpha = softmax(score(q, k))  over the keys         (Bahdanau et al. 2015, eq. 6;
    c     = alpha @ v                                     Vaswani et al. 2017, eq. 1)

:func:`attend` has two paths that give the same numbers (a test checks it, forward and backward):

- the **math path**, readable, which can return the weights alpha;
- the **fused path**, :func:`torch.nn.functional.scaled_dot_product_attention`, used when the score
  has a dot-product form (dot, scaled_dot, general) and no weights are asked for. It never builds
  the Tq x Tk weight matrix on backends with a memory-efficient or flash kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.masks import causal_mask
from attnlab.attention.scores import Score


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dim, with exactly zero weight where ``mask`` is False.

    A query whose keys are all masked gets all-zero weights (so a zero context), never NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    # A finite "minus infinity" keeps fully masked rows free of NaN, forward and backward.
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


def _full_mask(mask: Tensor | None, causal: bool, q_len: int, k_len: int, device: torch.device) -> Tensor | None:
    if not causal:
        return mask
    c = causal_mask(q_len, k_len, device=device)
    return c if mask is None else mask & c


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
) -> tuple[Tensor, Tensor | None]:
    """Attend from queries (..., Tq, Dq) to keys (..., Tk, Dk) with values (..., Tk, Dv).

    Args:
        mask: boolean, broadcastable to (..., Tq, Tk); True = may attend.
        causal: also forbid each query to see later keys (bottom-right aligned, see causal_mask).
        need_weights: return alpha (..., Tq, Tk); forces the math path.
        dropout_p: dropout on the attention weights (pass 0.0 in eval mode).
        fused: allow torch's fused kernel when possible.
    Returns:
        context (..., Tq, Dv) and the weights, or None when not requested.
    """
    q_len, k_len = q.shape[-2], k.shape[-2]
    dot_form = score.as_dot(q) if fused and not need_weights else None
    if dot_form is not None:
        q_dot, scale = dot_form
        if mask is None:
            # torch's is_causal is top-left aligned: only equal lengths may use it directly.
            use_flag = causal and q_len == k_len
            full = None if use_flag or not causal else causal_mask(q_len, k_len, device=q.device)
            out = F.scaled_dot_product_attention(
                q_dot, k, v, attn_mask=full, dropout_p=dropout_p, is_causal=use_flag, scale=scale
            )
            return out, None
        full = _full_mask(mask, causal, q_len, k_len, q.device)
        has_key = full.any(dim=-1, keepdim=True)  # (..., Tq, 1), on the small unbroadcast mask
        if bool(has_key.all()):
            out = F.scaled_dot_product_attention(q_dot, k, v, attn_mask=full, dropout_p=dropout_p, scale=scale)
            return out, None
        # Rows with no visible key: let the kernel see every key (no NaN), then zero the output.
        out = F.scaled_dot_product_attention(
            q_dot, k, v, attn_mask=full | ~has_key, dropout_p=dropout_p, scale=scale
        )
        return out * has_key, None

    full = _full_mask(mask, causal, q_len, k_len, q.device)
    weights = masked_softmax(score(q, k), full)  # (..., Tq, Tk)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, (weights if need_weights else None)  # (..., Tq, Tk) @ (..., Tk, Dv)
