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

For a Transformer translator, :class:`CrossHealthMeter` gives them for every decoder layer's
cross-attention, per head and for the layer's mean of heads.

For a ViT's self-attention, :class:`ImageHealthMeter` gives the same row means per layer and
head, with the CLS key as the sink to watch (``cls_share``, ``cls_weight``), the CLS query's own
row, and the weight on partly padded patches.

:class:`HeadAlignment` scores every layer and head of a Transformer (and each layer's mean of
heads) the same way, and names the best head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

HEALTH_KEYS = ("entropy", "entropy_norm", "max_weight", "eos_share", "eos_weight")


def row_entropy(weights: Tensor) -> Tensor:
    """H(alpha) = -sum alpha log alpha over the last dim (0 log 0 = 0): (..., S) -> (...)."""
    return -(weights * weights.clamp_min(1e-12).log()).sum(-1)


def row_stats(weights: Tensor, num_keys: Tensor | int) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of ``weights`` (..., S): the entropy H (nats), H / log S' with S' = ``num_keys``
    the row's real keys (a tensor broadcastable to (...); 0 where S' < 2), and the largest weight.
    Masked keys carry weight 0, so they add nothing to H or the maximum."""
    ent = row_entropy(weights)  # (...)
    keys = torch.as_tensor(num_keys, dtype=ent.dtype, device=ent.device)
    norm = torch.where(keys > 1, ent / keys.clamp_min(2).log(), torch.zeros_like(ent))
    return ent, norm, weights.max(-1).values


def key_peak(weights: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of ``weights`` (..., S), for a set of keys (bool, broadcastable to (..., S)):
    whether the row's largest weight is on the set, and the row's total weight on the set.
    "On the set" means strictly above every key outside it, so a tie is no peak (as ``argmax``'s
    first-index rule for the last key, ``</s>``)."""
    inside = weights.masked_fill(~keys, -1.0).max(-1).values  # (...)
    outside = weights.masked_fill(keys, -1.0).max(-1).values  # (...): -1 when every key is in the set
    return inside > outside, (weights * keys).sum(-1)


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
        ent, norm, top = row_stats(w, s)  # (T,) each
        last = torch.zeros(s, dtype=torch.bool, device=w.device)
        last[-1] = True  # the source </s>
        on_eos, eos_weight = key_peak(w, last)  # (T,), (T,)
        self.rows += t
        self.entropy += float(ent.sum())
        self.entropy_norm += float(norm.sum())
        self.max_weight += float(top.sum())
        self.eos_rows += int(on_eos.sum())
        self.eos_weight += float(eos_weight.sum())
        if gold is not None:
            peak = w.argmax(-1)  # (T,)
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


class CrossHealthMeter:
    """The health of a translator's cross-attention per decoder layer and head, and of each
    layer's mean of heads, over many sentences (the fields of :data:`HEALTH_KEYS`, with the rows
    of :func:`row_stats` and :func:`key_peak`; see the module docstring).

    A layer's ``mean`` is the health of the head-averaged weights (1/H) sum_h alpha^h_t, the
    attention the search returns, the pictures draw and :class:`HeadAlignment` scores as
    "mean" -- not the mean of the heads' numbers (one head on ``</s>`` and one elsewhere average
    to rows that peak on neither). :class:`ImageHealthMeter`'s ``mean`` is the mean of the heads'
    numbers instead: a ViT has no one averaged map that anything reads.

    Every layer and head scores the same rows, the output steps marked in ``queries``.
    """

    def __init__(self) -> None:
        self.rows = 0  # output steps per (layer, head)
        self.sums: Tensor | None = None  # (L, H + 1, len(HEALTH_KEYS)) row sums: the heads, then their mean

    @torch.no_grad()
    def add(self, layers: list[Tensor], queries: Tensor, key_lengths: Tensor) -> None:
        """One batch: per layer the cross-attention (B, H, T, S), keys beyond a sentence's length
        at weight 0; ``queries`` (B, T) True at the output steps scored; ``key_lengths`` (B,) each
        sentence's real keys, the last of which is its ``</s>``."""
        if not layers:
            return
        device = layers[0].device
        s = layers[0].shape[-1]
        queries = queries.to(device)[:, None, :]  # (B, 1, T)
        key_lengths = key_lengths.to(device)
        keys = key_lengths[:, None, None]  # (B, 1, 1)
        eos = (torch.arange(s, device=device) == (key_lengths - 1)[:, None])[:, None, None, :]  # (B, 1, 1, S)
        sums = []
        for w in layers:
            w = w.detach().float()  # (B, H, T, S)
            w = torch.cat([w, w.mean(1, keepdim=True)], 1)  # (B, H + 1, T, S): the heads, then their mean
            ent, norm, top = row_stats(w, keys)  # (B, H + 1, T) each
            on_eos, eos_weight = key_peak(w, eos)
            fields = (ent, norm, top, on_eos.float(), eos_weight)  # the order of HEALTH_KEYS
            sums.append(torch.stack([torch.where(queries, x, 0.0).sum((0, 2)) for x in fields], -1))  # (H + 1, 5)
        batch = torch.stack(sums).cpu().double()  # (L, H + 1, 5)
        self.sums = batch if self.sums is None else self.sums + batch
        self.rows += int(queries.sum())

    def summary(self) -> dict[str, Any]:
        """``{"rows": n, "layers": {"layer1": {"head1": {...}, ..., "mean": {...}}, ...}}`` (the
        layout of :class:`ImageHealthMeter`; empty dict before any row)."""
        if not self.rows or self.sums is None:
            return {}
        means = self.sums / self.rows  # (L, H + 1, 5)

        def fields(values: Tensor) -> dict[str, float]:
            return dict(zip(HEALTH_KEYS, values.tolist()))

        layers = {
            f"layer{layer + 1}": {(f"head{h + 1}" if h < len(by_head) - 1 else "mean"): fields(v) for h, v in enumerate(by_head)}
            for layer, by_head in enumerate(means)
        }
        return {"rows": float(self.rows), "layers": layers}


IMAGE_FIELDS = ("entropy", "entropy_norm", "max_weight", "cls_share", "cls_weight", "padding_share", "padding_weight")
CLS_QUERY_FIELDS = ("cls_query_entropy_norm", "cls_query_max_weight")


class ImageHealthMeter:
    """The health of a ViT's self-attention (Dosovitskiy et al. 2021) over many images, per layer
    and head, with the rows of :func:`row_stats` and :func:`key_peak` (see the module docstring).

    The rows scored are the patch queries' (the CLS query's row is kept apart, below), over each
    image's real keys (masked keys have weight 0). Per layer and head, and as the mean over all
    layers and heads (every layer and head has the same rows, so this is also the mean over all
    rows):

    - ``entropy``, ``entropy_norm``, ``max_weight``: as for text;
    - ``cls_share``: the share of patch rows whose largest weight is on the CLS key;
      ``cls_weight``: their mean weight on it. A sink shows here; in large ViTs the CLS token and
      a few background patches become sinks without hurting the task (Darcet et al. 2024,
      "Vision Transformers Need Registers");
    - ``cls_query_entropy_norm``, ``cls_query_max_weight``: the CLS query's own row, the one that
      gathers what the classifier reads with ``model.pool=cls``;
    - ``padding_share``, ``padding_weight``: the same as ``cls_*`` for the keys of partly padded
      patches (an image whose side is not a multiple of the patch is zero-padded at the
      bottom/right, :mod:`attnlab.layers.patch`), over the rows of the images that have them.

    The ``cls_*`` keys are left out without a CLS token (``model.pool=mean``), the ``padding_*``
    keys when no image had a partly padded patch. Patches that hold no pixel of their image (a
    smaller image in a mixed-size batch) are masked out as keys, so they carry no weight by
    construction; their query rows are skipped.
    """

    def __init__(self) -> None:
        self.rows = 0  # patch query rows per (layer, head)
        self.padded_rows = 0  # of which in images with a partly padded patch
        self.images = 0
        self.has_cls = False
        self.sums: Tensor | None = None  # (L, H, len(IMAGE_FIELDS)) row sums
        self.cls_sums: Tensor | None = None  # (L, H, 2): the CLS query's entropy_norm and max_weight

    @torch.no_grad()
    def add(
        self, weights: list[Tensor], real: Tensor | None = None, has_cls: bool = True, padded: Tensor | None = None
    ) -> None:
        """One batch: per layer the weights (B, heads, T, T), tokens in the model's order (CLS
        first when ``has_cls``, then the patches); ``real`` (B, T) True at real tokens (None: all);
        ``padded`` (B, T) True at partly padded patches (None: none)."""
        if not weights:
            return
        b, heads, t, _ = weights[0].shape
        device = weights[0].device
        real = torch.ones(b, t, dtype=torch.bool, device=device) if real is None else real.to(device)
        padded = torch.zeros(b, t, dtype=torch.bool, device=device) if padded is None else padded.to(device) & real
        queries = real.clone()
        if has_cls:
            queries[:, 0] = False  # the CLS query's row is scored apart
        keys = real.sum(-1)[:, None, None]  # (B, 1, 1): each image's real keys
        cls_key = torch.zeros(t, dtype=torch.bool, device=device)
        cls_key[0] = has_cls
        pad_images = padded.any(-1)  # (B,)
        rows = queries[:, None, :].float()  # (B, 1, T): the patch rows scored
        pad_rows = (queries & pad_images[:, None])[:, None, :].float()  # (B, 1, T)
        sums, cls_sums = [], []
        for w in weights:
            w = w.detach().float()  # (B, heads, T, T)
            ent, norm, top = row_stats(w, keys)  # (B, heads, T) each
            on_cls, cls_weight = key_peak(w, cls_key)
            on_pad, pad_weight = key_peak(w, padded[:, None, None, :])
            per_row = [(ent, rows), (norm, rows), (top, rows), (on_cls.float(), rows), (cls_weight, rows),
                       (on_pad.float(), pad_rows), (pad_weight, pad_rows)]
            sums.append(torch.stack([(x * r).sum((0, 2)) for x, r in per_row], -1))  # (heads, fields)
            cls_sums.append(torch.stack([norm[:, :, 0].sum(0), top[:, :, 0].sum(0)], -1))  # (heads, 2)
        batch = torch.stack(sums).cpu().double()  # (L, heads, fields)
        cls_batch = torch.stack(cls_sums).cpu().double()  # (L, heads, 2)
        self.sums = batch if self.sums is None else self.sums + batch
        self.cls_sums = cls_batch if self.cls_sums is None else self.cls_sums + cls_batch
        self.rows += int(queries.sum())
        self.padded_rows += int(pad_rows.sum())
        self.images += b
        self.has_cls = has_cls

    def summary(self) -> dict[str, Any]:
        """The overall means (flat keys, as for text), ``rows``, ``images`` and ``layers``:
        ``{"layer1": {"head1": {...}, ..., "mean": {...}}, ...}`` (empty dict before any row)."""
        if not self.rows or self.sums is None or self.cls_sums is None:
            return {}
        divisor = torch.tensor([max(self.padded_rows, 1) if "padding" in n else self.rows for n in IMAGE_FIELDS], dtype=torch.float64)
        means = torch.cat([self.sums / divisor, self.cls_sums / self.images], -1)  # (L, heads, fields)
        names = list(IMAGE_FIELDS + CLS_QUERY_FIELDS)
        shown = [n for n in names if (self.has_cls or "cls" not in n) and (self.padded_rows or "padding" not in n)]

        def fields(values: Tensor) -> dict[str, float]:
            return {n: float(v) for n, v in zip(names, values.tolist()) if n in shown}

        out: dict[str, Any] = fields(means.mean((0, 1)))
        out.update(rows=float(self.rows), images=float(self.images))
        layers: dict[str, dict[str, dict[str, float]]] = {}
        for layer, by_head in enumerate(means):  # by_head: (heads, fields)
            heads = {f"head{h + 1}": fields(v) for h, v in enumerate(by_head)}
            layers[f"layer{layer + 1}"] = {**heads, "mean": fields(by_head.mean(0))}
        out["layers"] = layers
        return out


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


def collapsed(health: dict[str, Any], eos_share: float = 0.5, max_weight: float = 0.95) -> bool:
    """A rule of thumb for reports: most steps peak on ``</s>``, or the rows are near one-hot.

    A CLS sink is not called collapse (see :func:`cls_sink`): a ViT whose patches mostly peak on
    CLS can still classify well (Darcet et al. 2024), while near one-hot rows mean each patch
    copies one token, whatever the key."""
    return bool(health) and ((health.get("eos_share") or 0.0) > eos_share or health["max_weight"] > max_weight)


def cls_sink(health: dict[str, Any], share: float = 0.5) -> bool:
    """A ViT's patch rows mostly peak on the CLS key (``cls_share`` > ``share``): shown, not judged."""
    return (health.get("cls_share") or 0.0) > share


__all__ = [
    "CLS_QUERY_FIELDS", "HEALTH_KEYS", "IMAGE_FIELDS", "CrossHealthMeter", "HeadAlignment", "HealthMeter", "ImageHealthMeter",
    "attention_health", "best_head", "cls_sink", "collapsed", "key_peak", "row_entropy", "row_stats",
]
