"""Translate sentences with a trained Seq2Seq: batched by length, n-best, and a split's BLEU/chrF."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from attnlab import progress
from attnlab.attention.health import CrossHealthMeter, attention_health
from attnlab.config import DecodeConfig
from attnlab.data.batching import pad_batch
from attnlab.data.pairs import Tokenizers
from attnlab.data.text import Split
from attnlab.decode.search import Hypothesis, n_best_batch, sampling_generator, translate_batch
from attnlab.metrics import corpus_scores
from attnlab.models.seq2seq import Seq2Seq


def translate_sentences(
    model: Seq2Seq,
    toks: Tokenizers,
    sentences: Sequence[str],
    cfg: DecodeConfig,
    device: torch.device,
    need_weights: bool = False,
) -> list[Hypothesis]:
    """Translate ``sentences`` in batches of ``cfg.batch_size`` sorted by length (less padding);
    the result is in input order. With ``cfg.sampling`` each translation is a seeded sample."""
    return translate_ids(model, toks.src.encode_batch(list(sentences)), cfg, device, need_weights)


def translate_ids(
    model: Seq2Seq, src_ids: list[list[int]], cfg: DecodeConfig, device: torch.device, need_weights: bool = False
) -> list[Hypothesis]:
    """:func:`translate_sentences` of sources tokenized already (ids without ``</s>``)."""
    model.eval()
    generator = sampling_generator(cfg, device)
    return _by_length(src_ids, cfg.batch_size, device,
                      lambda src, n: translate_batch(model, src, n, cfg, need_weights, generator))


def translate_n_best(
    model: Seq2Seq, toks: Tokenizers, sentences: Sequence[str], cfg: DecodeConfig, device: torch.device
) -> list[list[Hypothesis]]:
    """``cfg.n_best`` translations of each sentence, best first: samples (``cfg.sampling``, in the
    order drawn) or the beam's best hypotheses."""
    model.eval()
    generator = sampling_generator(cfg, device)
    return _by_length(toks.src.encode_batch(list(sentences)), cfg.batch_size, device,
                      lambda src, n: n_best_batch(model, src, n, cfg, generator))


def _length_batches(ids: Sequence[Sequence[int]], batch_size: int, show: bool = False
                    ) -> Iterator[tuple[list[int], Tensor, Tensor]]:
    """Batches of sentences of similar lengths (less padding): (their indices in ``ids``, the
    padded sources with ``</s>`` (B, S), their lengths (B,)); ``show``: with a progress bar."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = max(batch_size, 1)
    starts = range(0, len(order), size)
    for start in progress.bar(starts, desc="decoding", unit="batch") if show else starts:
        chunk = order[start : start + size]
        yield (chunk, *pad_batch([ids[i] for i in chunk], Seq2Seq.pad_id, eos=Seq2Seq.eos_id))


def _by_length(ids: list[list[int]], batch_size: int, device: torch.device,
               search: Callable[[Tensor, Tensor], list[Any]]) -> list[Any]:
    """``search(src (B, S), src_lengths (B,))`` over :func:`_length_batches`; the results in the
    order of ``ids``."""
    out: list[Any] = [None] * len(ids)
    for chunk, src, src_len in _length_batches(ids, batch_size, show=True):
        for i, result in zip(chunk, search(src.to(device), src_len.to(device))):
            out[i] = result
    return out


@torch.no_grad()
def decoding_health(
    model: Seq2Seq, src_ids: Sequence[Sequence[int]], found: Sequence[Hypothesis], batch_size: int, device: torch.device
) -> dict[str, Any]:
    """The health of every decoder layer's cross-attention, per head and as the layer's mean of
    heads (:class:`~attnlab.attention.health.CrossHealthMeter`), over the output steps of a
    decoding: ``{"rows": n, "layers": {...}}``; {} for a model without attention.

    These are the weights *given the found outputs*, teacher-forced: the model reads each pair
    (source, ``<s>`` + found hypothesis) with its ``attention_weights``, all layers and heads in
    one batched pass (batches of ``batch_size`` sentences sorted by source length), since the
    search keeps only one layer's mean of heads. Each step of the search fed exactly the found
    hypothesis's prefix, and the cached step equals the full forward, so they are the weights the
    search computed along that hypothesis (greedy, sampling and beam alike), up to float
    rounding; a beam's discarded hypotheses are not scored. ``src_ids`` are the source ids
    without ``</s>`` (it is appended here, as the search does)."""
    if not hasattr(model, "attention_weights") or not found:
        return {}
    meter = CrossHealthMeter()
    for chunk, src, src_len in _length_batches(src_ids, batch_size):  # src (B, S)
        # [bos] + tokens: one row per output step, the step that emitted </s> included
        tgt_in, steps = pad_batch([found[i].tokens for i in chunk], Seq2Seq.pad_id, bos=Seq2Seq.bos_id)  # (B, T)
        cross = model.attention_weights(src.to(device), src_len.to(device), tgt_in.to(device)).get("cross")
        if not cross:
            return {}
        queries = torch.arange(tgt_in.shape[1]) < steps[:, None]  # (B, T)
        meter.add(cross, queries, src_len)  # per layer (B, H, T, S)
    return meter.summary()


def score_split(
    model: Seq2Seq, toks: Tokenizers, split: Split, cfg: DecodeConfig, device: torch.device,
    health: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Translate a split's sources; corpus BLEU/chrF against all its references. With ``health``
    also ``attention_health`` (:mod:`attnlab.attention.health`), when the model has attention:
    its flat fields are the health of the weights the search itself returned along the chosen
    hypotheses -- the RNN's one attention, the Transformer's last decoder layer's mean of heads
    -- and ``layers`` holds every layer and head of :func:`decoding_health` (the RNN: one layer,
    one head). Asking the search for weights keeps it off the fused kernel, so validation during
    training does without it."""
    start = time.perf_counter()
    src_ids = toks.src.encode_batch(list(split.sources))  # once: the search and decoding_health read them
    found = translate_ids(model, src_ids, cfg, device, need_weights=health)
    seconds = time.perf_counter() - start
    hyps = [toks.tgt.decode(h.tokens) for h in found]
    scores = corpus_scores(hyps, split.references).as_dict()
    summary: dict[str, Any] = attention_health([h.attention for h in found if h.attention is not None])
    if summary:
        layers = decoding_health(model, src_ids, found, cfg.batch_size, device)
        summary.update({"layers": layers["layers"]} if layers else {})
    extra = {"attention_health": summary} if summary else {}
    return {**scores, **extra, "decode_seconds": seconds, "sentences_per_s": len(hyps) / max(seconds, 1e-9)}, hyps
