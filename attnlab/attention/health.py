"""Attention health: numbers that show at a glance whether attention attends.

A collapsed attention puts (almost) all of its weight on one position for every query, often a
"sink" such as the source's ``</s>`` (Xiao et al. 2024 call these attention sinks); a picture
shows it, but a table of runs does not. For weight rows alpha_t over S keys (each row sums to 1):

- ``entropy``: mean over rows of H(alpha_t) = -sum_i alpha_ti log alpha_ti, in nats;
- ``entropy_norm``: the same divided by log S (0 = one-hot, 1 = uniform), comparable across
  lengths;
- ``max_weight``: mean over rows of max_i alpha_ti (1 = one-hot);
- ``eos_share``: the share of rows whose largest weight is on the last key (the source ``</s>``);
- ``eos_weight``: the mean weight on that last key.

With gold alignments (one source position per output step, -1 = none; the attention gym's
tasks, :mod:`attnlab.data.synthetic`), also

- ``alignment_accuracy``: the share of rows with a gold position whose largest weight falls on it;
- ``alignment_error_rate``: AER (Och & Ney 2003, eq. 4) with sure = possible links = the gold
  links, and the attention's links = the argmax of each row that has a gold entry (including -1
  entries, whose link is then wrong): AER = 1 - 2 |A n S| / (|A| + |S|). With a gold position at
  every step it equals 1 - alignment_accuracy; rows without one make it larger.

:class:`HeadAlignment` scores every layer and head of a Transformer (and each layer's mean of
heads) the same way, and names the best head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

HEALTH_KEYS = ("entropy", "entropy_norm", "max_weight", "eos_share", "eos_weight")


def row_entropy(weights: Tensor) -> Tensor:
    """H(alpha) = -sum alpha log alpha over the last dim (0 log 0 = 0): (..., S) -> (...)."""
    return -(weights * weights.clamp_min(1e-12).log()).sum(-1)


@dataclass
class HealthMeter:
    """Accumulates attention rows of many sentences; :meth:`summary` gives the means.

    Each call of :meth:`add` takes the rows of one sentence, ``weights`` (T, S) over that
    sentence's S real keys, the last of which is ``</s>``.
    """

    rows: int = 0
    entropy: float = 0.0
    entropy_norm: float = 0.0
    max_weight: float = 0.0
    eos_rows: int = 0
    eos_weight: float = 0.0
    gold_rows: int = 0
    gold_hits: int = 0
    linked_rows: int = 0  # rows covered by a gold sequence (-1 entries included): the links |A|

    def add(self, weights: Tensor, gold: Tensor | None = None) -> None:
        w = weights.detach().float().reshape(-1, weights.shape[-1])  # (T, S)
        t, s = w.shape
        if t == 0 or s == 0:
            return
        ent = row_entropy(w)  # (T,)
        peak = w.argmax(-1)  # (T,)
        self.rows += t
        self.entropy += float(ent.sum())
        self.entropy_norm += float(ent.sum()) / math.log(s) if s > 1 else 0.0
        self.max_weight += float(w.max(-1).values.sum())
        self.eos_rows += int((peak == s - 1).sum())
        self.eos_weight += float(w[:, -1].sum())
        if gold is not None:
            g = gold.reshape(-1)[:t].to(peak.device)
            known = g >= 0
            self.linked_rows += g.numel()
            self.gold_rows += int(known.sum())
            self.gold_hits += int((peak[: g.numel()][known] == g[known]).sum())

    def summary(self) -> dict[str, float]:
        """Means over all rows added (empty dict when none)."""
        if not self.rows:
            return {}
        n = self.rows
        out = {
            "entropy": self.entropy / n,
            "entropy_norm": self.entropy_norm / n,
            "max_weight": self.max_weight / n,
            "eos_share": self.eos_rows / n,
            "eos_weight": self.eos_weight / n,
            "rows": float(n),
        }
        if self.gold_rows:
            out["alignment_accuracy"] = self.gold_hits / self.gold_rows
            out["alignment_error_rate"] = 1 - 2 * self.gold_hits / (self.linked_rows + self.gold_rows)
        return out


def attention_health(rows: list[Tensor], gold: list[Tensor] | None = None) -> dict[str, float]:
    """:class:`HealthMeter` over a list of per-sentence weight matrices (T_n, S_n)."""
    meter = HealthMeter()
    for n, w in enumerate(rows):
        meter.add(w, None if gold is None else gold[n])
    return meter.summary()


class HeadAlignment:
    """Alignment accuracy of every layer and head of a multi-head cross-attention, and of each
    layer's mean of heads, against gold positions (see the module docstring).

    :meth:`add` takes one sentence: per layer a weight tensor (H, T, S) over its S real keys, and
    its gold positions (T',) (the first T' rows are scored, -1 entries skipped).
    """

    def __init__(self) -> None:
        self.rows = 0
        self.hits: list[list[int]] = []  # [layer][head], the last column = the mean of heads

    def add(self, layers: list[Tensor], gold: Tensor) -> None:
        g = gold.reshape(-1)
        if not self.hits:
            self.hits = [[0] * (w.shape[0] + 1) for w in layers]
        t = min(g.numel(), layers[0].shape[1])
        known = g[:t] >= 0
        self.rows += int(known.sum())
        for layer, w in enumerate(layers):
            w = w.detach().float()[:, :t]  # (H, t, S)
            peaks = torch.cat([w, w.mean(0, keepdim=True)]).argmax(-1)  # (H+1, t): each head, then the mean
            for h, p in enumerate(peaks):
                self.hits[layer][h] += int((p[known] == g[:t][known].to(p.device)).sum())

    def accuracy(self) -> dict[str, dict[str, float]]:
        """``{"layer1": {"head1": ..., ..., "mean": ...}, ...}`` (empty before any gold row)."""
        if not self.rows:
            return {}
        return {
            f"layer{layer + 1}": {(f"head{h + 1}" if h < len(hits) - 1 else "mean"): n / self.rows for h, n in enumerate(hits)}
            for layer, hits in enumerate(self.hits)
        }


def best_head(by_head: dict[str, dict[str, float]]) -> str:
    """The (layer, head) with the highest alignment accuracy, as ``"layer2.head3"`` (means excluded)."""
    scored = [(acc, f"{layer}.{head}") for layer, heads in by_head.items() for head, acc in heads.items() if head != "mean"]
    return max(scored, key=lambda s: s[0])[1] if scored else ""  # the first of equals


def collapsed(health: dict[str, float], eos_share: float = 0.5, max_weight: float = 0.95) -> bool:
    """A rule of thumb for reports: most steps peak on ``</s>``, or the rows are near one-hot."""
    return bool(health) and (health["eos_share"] > eos_share or health["max_weight"] > max_weight)


__all__ = ["HEALTH_KEYS", "HeadAlignment", "HealthMeter", "attention_health", "best_head", "collapsed", "row_entropy"]
