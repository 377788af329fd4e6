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

With gold alignments (one source position per output step, -1 = none), also
``alignment_accuracy``: the share of rows whose largest weight falls on the gold position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        return out


def attention_health(rows: list[Tensor], gold: list[Tensor] | None = None) -> dict[str, float]:
    """:class:`HealthMeter` over a list of per-sentence weight matrices (T_n, S_n)."""
    meter = HealthMeter()
    for n, w in enumerate(rows):
        meter.add(w, None if gold is None else gold[n])
    return meter.summary()


def collapsed(health: dict[str, float], eos_share: float = 0.5, max_weight: float = 0.95) -> bool:
    """A rule of thumb for reports: most steps peak on ``</s>``, or the rows are near one-hot."""
    return bool(health) and (health["eos_share"] > eos_share or health["max_weight"] > max_weight)


__all__ = ["HEALTH_KEYS", "HealthMeter", "attention_health", "collapsed", "row_entropy"]
