"""Batched greedy and beam search over the :class:`attnlab.models.seq2seq.Seq2Seq` interface.

Both searches call ``model.encode`` once, then ``model.step`` once per output position for the
whole batch, so they serve the RNN and the Transformer alike. Each sentence b may produce at most
``max_len_b = floor(a * source_length_b + b)`` tokens before the end-of-sentence token
(``DecodeConfig.max_len_a``, ``max_len_b``; the source length counts its subwords and eos).

Beam search keeps ``beam_size`` hypotheses per sentence. A hypothesis that has produced eos is
finished: it stays in its beam with a frozen score (it is extended with pad at log-probability 0),
so finished and unfinished hypotheses compete on one normalised score,

    score(Y) = log P(Y | X) / lp(Y),   lp(Y) = ((5 + |Y|) / 6) ** alpha     (Wu et al. 2016, eq. 14)

with |Y| counting the tokens including eos and alpha = ``length_penalty`` (0 = raw log-probability).
The search stops when every hypothesis of every sentence is finished.

Sampling (``decode.sampling=true``, :func:`sample_n`) draws each token from the model's
distribution sharpened or flattened by a temperature and cut to the ``top_k`` most probable
tokens (Fan et al. 2018) and to the smallest set whose probability reaches ``top_p`` (nucleus
sampling, Holtzman et al. 2020). Draws come from a generator seeded with ``decode.sample_seed``:
the same inputs, batch size and seed give the same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from attnlab.config import DecodeConfig
from attnlab.models.seq2seq import Seq2Seq


@dataclass
class Hypothesis:
    """One translation: token ids (without bos/eos), its log-probability, the attention weights
    (len(tokens) + 1, S) of each output step (eos included) over the source, if asked, and the
    beam's length-normalised score (log_prob / lp, the quantity beam search ranks by; greedy
    search leaves it None)."""

    tokens: list[int]
    log_prob: float
    attention: Tensor | None = None
    score: float | None = None


def max_lengths(src_lengths: Tensor, a: float, b: int) -> Tensor:
    """floor(a * source length + b) per sentence (B,), at least 1."""
    return (src_lengths.double() * a + b).floor().clamp(min=1).long()


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, eq. 14)."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def _allowed(logp: Tensor, rows: Tensor, model: Seq2Seq) -> Tensor:
    """Log-probabilities the search may pick from: never pad or bos, and only eos (at its own
    cost, so a cut hypothesis does not win over finished ones) where ``rows`` (N,) reached the
    maximum length."""
    logp = logp.clone()
    logp[:, [model.pad_id, model.bos_id]] = -math.inf
    forced = torch.full_like(logp, -math.inf)
    forced[:, model.eos_id] = logp[:, model.eos_id].clamp(min=-1e4)  # finite: the cut must happen
    return torch.where(rows.unsqueeze(1), forced, logp)


@torch.no_grad()
def greedy_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, need_weights: bool = False
) -> list[Hypothesis]:
    """Pick the most probable token at each step, for a batch src (B, S) with lengths (B,)."""
    greedy = lambda logp: logp.argmax(dim=-1)  # noqa: E731 (the first maximum on ties, as max)
    return [hyps[0] for hyps in _token_by_token(model, src, src_lengths, cfg, 1, greedy, need_weights)]


def _token_by_token(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, n: int,
    pick: Callable[[Tensor], Tensor], need_weights: bool,
) -> list[list[Hypothesis]]:
    """``n`` hypotheses per sentence of src (B, S), each built one token a step by ``pick``
    (log-probabilities (B*n, V) -> tokens (B*n,)): greedy search and sampling. A hypothesis's
    ``log_prob`` is the model's log-probability of its tokens and eos."""
    B, dev = src.shape[0], src.device
    memory = model.encode(src, src_lengths)
    lengths = src_lengths.to(dev)
    if n > 1:
        rows = torch.arange(B, device=dev).repeat_interleave(n)  # (B*n,): sentence of each row
        memory, lengths = memory.select(rows), lengths.index_select(0, rows)
    state = model.init_state(memory)
    limit = max_lengths(lengths, cfg.max_len_a, cfg.max_len_b).to(dev)  # (B*n,)
    tokens = torch.full((B * n,), model.bos_id, dtype=torch.long, device=dev)
    done = torch.zeros(B * n, dtype=torch.bool, device=dev)
    score = torch.zeros(B * n, device=dev)
    out: list[Tensor] = []
    weights: list[Tensor] = []
    for t in range(int(limit.max()) + 1):
        logp, state, w = model.step(tokens, state, memory, need_weights=need_weights)  # (B*n, V)
        logp = _allowed(logp, limit <= t, model)
        tokens = pick(logp)  # (B*n,)
        score += torch.where(done, 0.0, logp.gather(1, tokens.unsqueeze(1)).squeeze(1))
        tokens = tokens.masked_fill(done, model.pad_id)
        out.append(tokens)
        if w is not None:
            weights.append(w)
        done |= tokens == model.eos_id
        if bool(done.all()):
            break
    ids = torch.stack(out, dim=1)  # (B*n, T)
    alpha = torch.stack(weights, dim=1) if weights else None  # (B*n, T, S)
    hyps = [_hypothesis(ids[r], float(score[r]), alpha[r] if alpha is not None else None, lengths[r], model)
            for r in range(B * n)]
    return [hyps[b * n : (b + 1) * n] for b in range(B)]


def _hypothesis(ids: Tensor, log_prob: float, alpha: Tensor | None, src_len: Tensor, model: Seq2Seq) -> Hypothesis:
    """Cut a row of output ids at eos; keep the attention rows of the kept steps (eos included)."""
    row = ids.tolist()
    n = row.index(model.eos_id) if model.eos_id in row else len(row)
    tokens = [i for i in row[:n] if i != model.pad_id]
    weights = alpha[: n + 1, : int(src_len)].clone() if alpha is not None else None
    return Hypothesis(tokens, log_prob, weights)


@torch.no_grad()
def beam_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, need_weights: bool = False
) -> list[Hypothesis]:
    """Beam search with GNMT length normalisation; see the module docstring."""
    return [hyps[0] for hyps in beam_search_n_best(model, src, src_lengths, cfg, 1, need_weights)]


@torch.no_grad()
def beam_search_n_best(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, n_best: int, need_weights: bool = False
) -> list[list[Hypothesis]]:
    """Beam search returning, per sentence, its ``n_best`` final hypotheses (``n_best`` <=
    ``beam_size``), best first by the normalised score."""
    B, K, dev = src.shape[0], cfg.beam_size, src.device
    if not 1 <= n_best <= K:
        raise ValueError(f"n_best={n_best} must be between 1 and the beam size {K}")
    flat = torch.arange(B, device=dev).repeat_interleave(K)  # (B*K,): sentence of each row
    memory = model.encode(src, src_lengths).select(flat)
    state = model.init_state(memory)
    limit = max_lengths(src_lengths, cfg.max_len_a, cfg.max_len_b).to(dev).repeat_interleave(K)  # (B*K,)
    tokens = torch.full((B * K,), model.bos_id, dtype=torch.long, device=dev)
    # only the first hypothesis of each beam is live at the start (the others would duplicate it)
    scores = torch.full((B, K), -math.inf, device=dev)
    scores[:, 0] = 0.0
    finished = torch.zeros(B * K, dtype=torch.bool, device=dev)
    lengths = torch.zeros(B * K, dtype=torch.long, device=dev)  # tokens so far, eos included
    history = torch.empty(B * K, 0, dtype=torch.long, device=dev)
    attn_history: Tensor | None = None
    for t in range(int(limit.max()) + 1):
        logp, state, w = model.step(tokens, state, memory, need_weights=need_weights)  # (B*K, V)
        V = logp.shape[-1]
        logp = _allowed(logp, limit <= t, model)
        # a finished hypothesis extends with pad at no cost: its score and length stay frozen
        frozen = torch.full_like(logp, -math.inf)
        frozen[:, model.pad_id] = 0.0
        logp = torch.where(finished.unsqueeze(1), frozen, logp)
        new_len = lengths + (~finished).long()  # (B*K,)
        total = scores.view(B * K, 1) + logp  # (B*K, V)
        normed = total / length_penalty(new_len, cfg.length_penalty).unsqueeze(1)  # (B*K, V)
        top_normed, top = normed.view(B, K * V).topk(K, dim=1)  # (B, K)
        beam, token = top // V, top % V  # which hypothesis each winner extends, with which token
        rows = (torch.arange(B, device=dev).unsqueeze(1) * K + beam).view(-1)  # (B*K,)
        tokens = token.view(-1)
        scores = total.view(B, K * V).gather(1, top)  # raw log-probabilities (B, K)
        lengths = new_len.index_select(0, rows)
        finished = finished.index_select(0, rows) | (tokens == model.eos_id)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], dim=1)  # (B*K, t+1)
        if w is not None:
            step_w = w.index_select(0, rows).unsqueeze(1)  # (B*K, 1, S)
            attn_history = step_w if attn_history is None else torch.cat(
                [attn_history.index_select(0, rows), step_w], dim=1
            )
        state = model.reorder(state, rows)
        if bool(finished.all()):
            break
    # topk sorts each beam, so hypotheses 0..n_best-1 of a beam are its best, in order
    normed = scores.view(-1) / length_penalty(lengths, cfg.length_penalty)  # (B*K,)
    out = []
    for b in range(B):
        hyps = []
        for r in range(b * K, b * K + n_best):
            hyp = _hypothesis(history[r], float(scores.view(-1)[r]),
                              attn_history[r] if attn_history is not None else None, src_lengths[b], model)
            hyp.score = float(normed[r])
            hyps.append(hyp)
        out.append(hyps)
    return out


def translate_batch(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, need_weights: bool = False,
    generator: torch.Generator | None = None,
) -> list[Hypothesis]:
    """One sample per sentence with ``cfg.sampling`` (drawn from ``generator``), else greedy search
    when ``cfg.beam_size == 1`` and beam search otherwise."""
    if cfg.sampling:
        return [hyps[0] for hyps in sample_n(model, src, src_lengths, cfg, 1, generator, need_weights)]
    search = greedy_search if cfg.beam_size <= 1 else beam_search
    return search(model, src, src_lengths, cfg, need_weights)


def sampling_generator(cfg: DecodeConfig, device: torch.device | str) -> torch.Generator | None:
    """The generator of ``cfg.sampling`` (seeded with ``cfg.sample_seed``), None without sampling."""
    if not cfg.sampling:
        return None
    return torch.Generator(device=device).manual_seed(int(cfg.sample_seed))


def filter_logits(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """Logits (N, V) divided by ``temperature``, with -inf outside the ``top_k`` most probable
    tokens (0 = no cut) and outside the smallest set whose probability reaches ``top_p`` (1 = no cut;
    the most probable token is always kept)."""
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        drop = before >= top_p  # the first token has before = 0 and is kept
        logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
    return logits


@torch.no_grad()
def sample_n(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, n: int,
    generator: torch.Generator | None, need_weights: bool = False,
) -> list[list[Hypothesis]]:
    """``n`` samples per sentence of src (B, S), see the module docstring; each hypothesis's
    ``log_prob`` is its log-probability under the model (before temperature and cuts)."""

    def draw(logp: Tensor) -> Tensor:
        probs = filter_logits(logp, cfg.temperature, cfg.top_k, cfg.top_p).softmax(-1)  # (B*n, V)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return _token_by_token(model, src, src_lengths, cfg, n, draw, need_weights)


def n_best_batch(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: DecodeConfig, generator: torch.Generator | None = None
) -> list[list[Hypothesis]]:
    """``cfg.n_best`` hypotheses per sentence: samples with ``cfg.sampling``, else the search's."""
    if cfg.sampling:
        return sample_n(model, src, src_lengths, cfg, cfg.n_best, generator)
    if cfg.beam_size <= 1:
        return [[hyp] for hyp in greedy_search(model, src, src_lengths, cfg)]
    return beam_search_n_best(model, src, src_lengths, cfg, cfg.n_best)
