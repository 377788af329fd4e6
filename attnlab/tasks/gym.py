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
        out.append((idx, [toks.src.encode(split.sources[i]) for i in idx],
                    [toks.tgt.encode(split.references[i][0]) for i in idx]))
    return out


@torch.no_grad()
def teacher_forced_attention(model: Seq2Seq, toks: Any, split: Split, device: torch.device) -> list[Tensor] | None:
    """Per sentence the weights (|y| + 1, S) over its S source tokens (eos included) of the
    attention the search uses, teacher-forced on the reference y; None for a model without one."""
    model.eval()
    out: list[Tensor] = [torch.empty(0)] * len(split)
    for idx, src_ids, tgt_ids in _batches(split, toks):
        src, src_len = pad_batch(src_ids, Seq2Seq.pad_id, eos=Seq2Seq.eos_id)  # (B, S)
        tgt, _ = pad_batch(tgt_ids, Seq2Seq.pad_id, bos=Seq2Seq.bos_id, eos=Seq2Seq.eos_id)  # (B, T+1)
        memory = model.encode(src.to(device), src_len.to(device))
        state = model.init_state(memory)
        rows = []
        for t in range(tgt.shape[1] - 1):  # feed bos y_1 .. y_T: one row per output token and eos
            _, state, w = model.step(tgt[:, t].to(device), state, memory, need_weights=True)
            if w is None:
                return None
            rows.append(w.float().cpu())
        weights = torch.stack(rows, dim=1)  # (B, T, S)
        for b, i in enumerate(idx):
            out[i] = weights[b, : len(tgt_ids[b]) + 1, : int(src_len[b])]
    return out


@torch.no_grad()
def head_alignment(model: Seq2Seq, toks: Any, split: Split, device: torch.device,
                   groups: dict[int, list[int]] | None = None) -> dict[int, HeadAlignment]:
    """:class:`HeadAlignment` of the cross-attention of every layer and head (teacher-forced on
    the references), one per group of sentence indices (default: one group, key 0)."""
    groups = groups or {0: list(range(len(split)))}
    group_of: dict[int, list[int]] = {}
    for g, members in groups.items():
        for i in members:
            group_of.setdefault(i, []).append(g)
    meters = {g: HeadAlignment() for g in groups}
    model.eval()
    for idx, src_ids, tgt_ids in _batches(split, toks):
        src, src_len = pad_batch(src_ids, Seq2Seq.pad_id, eos=Seq2Seq.eos_id)  # (B, S)
        tgt, _ = pad_batch(tgt_ids, Seq2Seq.pad_id, bos=Seq2Seq.bos_id, eos=Seq2Seq.eos_id)
        cross = model.attention_weights(src.to(device), src_len.to(device), tgt[:, :-1].to(device))["cross"]
        for b, i in enumerate(idx):
            if i in group_of:
                layers = [w[b, :, : len(tgt_ids[b]) + 1, : int(src_len[b])].cpu() for w in cross]  # each (H, T, S)
                for g in group_of[i]:
                    meters[g].add(layers, torch.tensor(split.alignments[i]))
    return meters


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
    weights = teacher_forced_attention(model, toks, test, device)

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
        results.update(_per_head(model, toks, test, inside, by_length, groups, device, valid))
    _log_table(results)
    return results


def _per_head(model: Seq2Seq, toks: Any, test: Split, inside: list[int], by_length: dict[str, Any],
              groups: dict[int, list[int]], device: torch.device, valid: Split | None) -> dict[str, Any]:
    """Every layer and head on the in-range test lengths; the best head chosen on valid, if given."""
    meters = head_alignment(model, toks, test, device, {-1: inside, **groups} if inside else groups)
    by_head = meters[-1].accuracy() if inside else {}
    chooser = head_alignment(model, toks, valid, device)[0].accuracy() if valid is not None and valid.alignments else by_head
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
