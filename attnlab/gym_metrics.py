"""Scores of the attention gym that need no model: sequences against references, maps against boxes.

Sequence tasks (:mod:`attnlab.data.synthetic`), on whitespace-separated symbols:

- ``exact_match``: the output equals the reference, symbol for symbol;
- ``token_accuracy``: the share of positions i < max(|hyp|, |ref|) where hyp_i = ref_i (a
  missing or extra symbol counts as wrong, so a truncated or run-on output loses credit).

Image maps (:mod:`attnlab.data.placed_digits`), per image a relevance map over the N patches:

- **pointing game** (Zhang et al. 2016, "Top-down neural attention by excitation backprop",
  sec. 5.1): a hit when the map's largest value lies on a patch that overlaps the object's box;
  the score is the share of hits;
- **deletion curve** (Petsiuk et al. 2018, "RISE", sec. 4.1): remove patches in the map's order
  (most relevant first) and track the probability of the true class; the area under that curve
  (x = the fraction removed, 0..1, trapezoid rule) is low when the map found what the model uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def exact_match(hyp: str, ref: str) -> bool:
    """The two symbol sequences are equal (whitespace-separated)."""
    return hyp.split() == ref.split()


def token_hits(hyp: str, ref: str) -> tuple[int, int]:
    """(matching positions, max(|hyp|, |ref|)): the parts of :func:`token_accuracy`."""
    h, r = hyp.split(), ref.split()
    return sum(a == b for a, b in zip(h, r)), max(len(h), len(r))


def token_accuracy(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Matching positions over all positions (see the module docstring), pooled over sentences."""
    hits = [token_hits(h, r) for h, r in zip(hyps, refs)]
    total = sum(n for _, n in hits)
    return sum(k for k, _ in hits) / total if total else 0.0


def pointing_hits(maps: Tensor, inside: Tensor) -> Tensor:
    """maps (B, N) relevance per patch, inside (B, N) bool (the patch overlaps the object) ->
    (B,) bool: the map's largest value lies inside (the first of equal maxima counts)."""
    peak = maps.argmax(dim=-1, keepdim=True)  # (B, 1)
    return inside.gather(-1, peak).squeeze(-1)


def pointing_game(maps: Tensor, inside: Tensor) -> float:
    """Share of images whose map peaks inside the object (:func:`pointing_hits`)."""
    return float(pointing_hits(maps, inside).float().mean())


def deletion_order(maps: Tensor, real: Tensor | None = None) -> Tensor:
    """(B, N) patch indices, most relevant first; padding patches (``real`` False) last."""
    scores = maps.float().clone()
    if real is not None:
        scores[~real] = -torch.inf
    return scores.argsort(dim=-1, descending=True, stable=True)


def curve_auc(values: Tensor) -> Tensor:
    """Area under curves sampled at equal steps of x in [0, 1]: values (B, K+1) -> (B,) (trapezoids)."""
    k = values.shape[-1] - 1
    if k < 1:
        return values[..., 0]
    return (values[..., :-1] + values[..., 1:]).sum(-1) / (2 * k)


__all__ = ["curve_auc", "deletion_order", "exact_match", "pointing_game", "pointing_hits", "token_accuracy", "token_hits"]
