"""The attention gym's scoring of a translator on synthetic data (:mod:`attnlab.data.synthetic`).

Called by the translation task's test scoring when the test split carries gold alignments. For
each test length, and pooled over the test lengths inside the training range (``data.train_len``):

- ``exact_match`` and ``token_accuracy`` of the search's outputs (:mod:`attnlab.gym_metrics`);
- the attention **teacher-forced on the reference** (so that step t is the step that writes
  reference token t, whatever the search wrote): the attention the search uses (the RNN's; the
  Transformer's last-layer mean of heads), scored by :class:`attnlab.attention.health.HealthMeter`:
  ``alignment_accuracy``, ``alignment_error_rate``, ``entropy``, ``entropy_norm``,
  ``max_weight``, ``eos_share``, ``eos_weight``;
- for a model with ``layered_attention`` (the Transformer): every layer and head and each layer's
  mean of heads (``alignment_by_head``), and ``best_head``, chosen on the **valid** split and
  scored on test (``best_head_alignment_accuracy``).

One teacher-forced pass over the test split (:func:`teacher_forced_attention`) feeds both
attention scores; the valid split gets its own pass only to choose the best head.

results.json gets the pooled numbers at the top level and ``by_length`` (``{"16": {...}}``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from torch import Tensor

from attnlab.attention.health import HeadAlignment, attention_health, best_head
from attnlab.data.batching import pad_batch
from attnlab.data.text import Split
from attnlab.gym_metrics import exact_match, token_accuracy
from attnlab.models.seq2seq import Seq2Seq

log = logging.getLogger("attnlab.gym")

BATCH = 64  # sentences per teacher-forced pass
ATTENTION_KEYS = ("alignment_accuracy", "alignment_error_rate", "entropy", "entropy_norm", "max_weight",
                  "eos_share", "eos_weight")


def _batches(split: Split, toks: Any) -> list[tuple[list[int], list[list[int]], list[list[int]]]]:
    """(indices, source ids, reference ids) per batch of :data:`BATCH` sentences."""
    out = []
    for start in range(0, len(split), BATCH):
        idx = list(range(start, min(start + BATCH, len(split))))
        out.append((idx, toks.src.encode_batch([split.sources[i] for i in idx]),
                    toks.tgt.encode_batch([split.references[i][0] for i in idx])))
    return out


@torch.no_grad()
def teacher_forced_attention(
    model: Seq2Seq, toks: Any, split: Split, device: torch.device, groups: dict[int, list[int]] | None = None,
) -> tuple[list[Tensor] | None, dict[int, HeadAlignment]]:
    """One teacher-forced pass over ``split`` (each source with its reference y) through the models'
    common protocol ``attention_weights``, which feeds both of the gym's attention scores:

    - per sentence the weights (|y| + 1, S) over its S source tokens (eos included) of the
      attention the search uses: the last layer's mean of heads (the RNN: its one attention, the
      same weights as its decoder steps; the Transformer: those of its cached steps, up to float
      rounding); None for a model without attention;
    - for a model with ``layered_attention``, a :class:`HeadAlignment` of every layer and head of
      the cross-attention for each group of sentence indices in ``groups`` (e.g. one per test
      length); empty meters for other models or without ``groups``.
    """
    groups = groups if groups is not None and model.layered_attention else {}
    group_of: dict[int, list[int]] = {}
    for g, members in groups.items():
        for i in members:
            group_of.setdefault(i, []).append(g)
    meters = {g: HeadAlignment() for g in groups}
    model.eval()
    out: list[Tensor] = [torch.empty(0)] * len(split)
    for idx, src_ids, tgt_ids in _batches(split, toks):
        src, src_len = pad_batch(src_ids, Seq2Seq.pad_id, eos=Seq2Seq.eos_id)  # (B, S)
        tgt, _ = pad_batch(tgt_ids, Seq2Seq.pad_id, bos=Seq2Seq.bos_id, eos=Seq2Seq.eos_id)  # (B, T+1)
        # feed bos y_1 .. y_T: one row per output token and eos
        cross = model.attention_weights(src.to(device), src_len.to(device), tgt[:, :-1].to(device)).get("cross")
        if not cross:
            return None, meters
        weights = cross[-1].mean(dim=1).float().cpu()  # (B, H, T, S) -> (B, T, S)
        for b, i in enumerate(idx):
            rows, keys = len(tgt_ids[b]) + 1, int(src_len[b])
            out[i] = weights[b, :rows, :keys]
            if i in group_of:
                layers = [w[b, :, :rows, :keys].cpu() for w in cross]  # each (H, T, S)
                for g in group_of[i]:
                    meters[g].add(layers, torch.tensor(split.alignments[i]))
    return out, meters


def in_training_range(length: int, train_len: Sequence[int]) -> bool:
    return int(train_len[0]) <= length <= int(train_len[1])


def gym_results(
    model: Seq2Seq, toks: Any, test: Split, hyps: Sequence[str], train_len: Sequence[int], device: torch.device,
    valid: Split | None = None,
) -> dict[str, Any]:
    """The gym's results.json fields for one scored test split (see the module docstring)."""
    assert test.alignments is not None and test.lengths is not None
    lengths = sorted(set(test.lengths))
    groups = {n: [i for i, m in enumerate(test.lengths) if m == n] for n in lengths}
    inside = [i for i, m in enumerate(test.lengths) if in_training_range(m, train_len)]
    # one pass: the attention the search uses, and every head per test length and over `inside` (-1)
    weights, meters = teacher_forced_attention(model, toks, test, device, {-1: inside, **groups} if inside else groups)

    def scores(members: list[int]) -> dict[str, Any]:
        refs = [test.references[i][0] for i in members]
        out: dict[str, Any] = {"examples": len(members)}
        if not members:
            return out
        out["exact_match"] = sum(exact_match(hyps[i], r) for i, r in zip(members, refs)) / len(members)
        out["token_accuracy"] = token_accuracy([hyps[i] for i in members], refs)
        if weights is not None:
            gold = [torch.tensor(test.alignments[i], dtype=torch.long) for i in members]
            summary = attention_health([weights[i] for i in members], gold)
            out.update({k: v for k, v in summary.items() if k in ATTENTION_KEYS})
        return out

    by_length = {str(n): scores(groups[n]) for n in lengths}
    results: dict[str, Any] = {**scores(inside), "by_length": by_length,
                               "train_len": [int(v) for v in train_len], "test_lengths": lengths}
    results.pop("examples", None)
    results["in_range_examples"] = len(inside)
    if model.layered_attention and weights is not None:
        results.update(_per_head(model, toks, meters, inside, by_length, groups, device, valid))
    _log_table(results)
    return results


def _per_head(model: Seq2Seq, toks: Any, meters: dict[int, HeadAlignment], inside: list[int], by_length: dict[str, Any],
              groups: dict[int, list[int]], device: torch.device, valid: Split | None) -> dict[str, Any]:
    """Every layer and head on the in-range test lengths (``meters`` of the test pass: -1 = the
    in-range sentences, n = length n); the best head chosen on valid, if given."""
    by_head = meters[-1].accuracy() if inside else {}
    chooser = by_head
    if valid is not None and valid.alignments:
        chooser = teacher_forced_attention(model, toks, valid, device, {0: list(range(len(valid)))})[1][0].accuracy()
    chosen = best_head(chooser)
    out: dict[str, Any] = {"alignment_by_head": by_head}
    if chosen:
        layer, head = chosen.split(".")
        out.update(best_head=chosen, best_head_chosen_on="valid" if chooser is not by_head else "test")
        if by_head:
            out["best_head_alignment_accuracy"] = by_head[layer][head]
        for n, members in groups.items():
            acc = meters[n].accuracy()
            if acc:
                by_length[str(n)]["best_head_alignment_accuracy"] = acc[layer][head]
    return out


def _log_table(results: dict[str, Any]) -> None:
    lo, hi = results["train_len"]
    for n, row in results["by_length"].items():
        mark = "in" if lo <= int(n) <= hi else "out"
        align = row.get("alignment_accuracy")
        log.info("length %3s (%s of training range): exact match %.3f, token accuracy %.3f, alignment %s",
                 n, mark, row.get("exact_match", float("nan")), row.get("token_accuracy", float("nan")),
                 "-" if align is None else f"{align:.3f}")
