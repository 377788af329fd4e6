"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", sec. 3).

A layer's attention says how much each token reads from each token of the layer below, but the
residual connection also carries every token's own state up. Rollout models both and chains the
layers:

    A_l  = fuse over heads of the layer-l weights        (mean, as in the paper; or max / min)
    Â_l  = normalise_rows(A_l + I)                        (the residual: "0.5 W_att + 0.5 I")
    R    = Â_L Â_{L-1} ... Â_1                            (eq. in sec. 3: Ã(l_i) = Â(l_i) Ã(l_{i-1}))

so R[i, j] estimates how much output token i draws from input token j. With a CLS token the
picture is the CLS row R[0, 1:] (its draw on each patch); without one, the mean of the rows of the
real patches (what the mean-pooled image vector draws from each patch).

Every function works on batches (B, ...) and on any number of tokens; padding-only patches have
zero weight as keys, so they receive nothing, and the ``real`` mask keeps them out of averages.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(weights: Tensor, fusion: str = "mean") -> Tensor:
    """(B, heads, T, T) -> (B, T, T) by the mean, max or min over heads."""
    if fusion == "mean":
        return weights.mean(dim=1)
    if fusion == "max":
        return weights.amax(dim=1)
    if fusion == "min":
        return weights.amin(dim=1)
    raise ValueError(f"unknown head fusion '{fusion}'; valid choices: {', '.join(HEAD_FUSIONS)}")


def rollout(weights: Sequence[Tensor], fusion: str = "mean", residual: bool = True) -> Tensor:
    """Joint attention R (B, T, T) of layers' weights [(B, heads, T, T), ...] (first layer first)."""
    if not weights:
        raise ValueError("rollout needs the attention weights of at least one layer")
    joint: Tensor | None = None
    for w in weights:
        a = fuse_heads(w.float(), fusion)  # (B, T, T)
        if residual:
            a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)  # A + I
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # rows sum to 1 again
        joint = a if joint is None else a @ joint  # Â_l (Â_{l-1} ... Â_1)
    return joint


def patch_relevance(joint: Tensor, has_cls: bool, real: Tensor | None = None) -> Tensor:
    """What the image vector draws from each patch, (B, N), from a (B, T, T) attention matrix.

    With a CLS token (index 0): its row, without the CLS column. Without: the mean of the rows of
    the real patches (``real`` (B, N) bool, None = all). Works on rollout or on one layer's weights.
    """
    if has_cls:
        return joint[:, 0, 1:]  # (B, N)
    if real is None:
        return joint.mean(dim=1)
    weights = real.to(joint.dtype).unsqueeze(-1)  # (B, N, 1): the real query rows
    return (joint * weights).sum(dim=1) / weights.sum(dim=1)  # (B, N)
