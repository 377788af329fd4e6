"""Sampling decoding: temperature, top-k and top-p cuts, seeded and reproducible; n-best output."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.config import DecodeConfig
from attnlab.decode import filter_logits, greedy_search, sample_n, sampling_generator, translate_batch
from attnlab.models.seq2seq import Seq2Seq


class Fixed(Seq2Seq):
    """A 'model' whose next-token distribution is the same table row at every step (no source)."""

    def __init__(self, logits: torch.Tensor) -> None:
        torch.nn.Module.__init__(self)
        self.logits = logits  # (V,)

    def encode(self, src, src_lengths):
        class Memory:
            def __init__(self, n):
                self.n = n

            def select(self, rows):
                return Memory(len(rows))

        return Memory(src.shape[0])

    def init_state(self, memory):
        return None

    def step(self, tokens, state, memory, need_weights=False):
        return self.logits.log_softmax(-1).expand(tokens.shape[0], -1), state, None

    def reorder(self, state, rows):
        return state


def test_filter_logits_cuts_top_k_and_top_p():
    logits = torch.tensor([[math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]])
    assert torch.isinf(filter_logits(logits, 1.0, 2, 1.0)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, 1.0, 0, 0.75)[0])
    assert kept.tolist() == [True, True, False, False]  # 0.5 < 0.75 <= 0.5 + 0.3
    assert (~torch.isinf(filter_logits(logits, 1.0, 0, 0.1)[0])).sum() == 1  # the best token always stays
    assert torch.allclose(filter_logits(logits, 0.5, 0, 1.0), logits / 0.5)


def vocab_model() -> Fixed:
    # ids 0..3 are pad, bos, eos, unk in Seq2Seq; words 4..9 with decreasing probability, eos likely
    probs = torch.tensor([0.0, 0.0, 0.2, 0.0, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05])
    return Fixed(probs.clamp_min(1e-12).log())


def samples(cfg: DecodeConfig, seed: int, n: int = 4) -> list[list[int]]:
    cfg.sample_seed = seed
    src, lengths = torch.full((3, 5), 4), torch.full((3,), 5)
    return [h.tokens for hyps in sample_n(vocab_model(), src, lengths, cfg, n, sampling_generator(cfg, "cpu")) for h in hyps]


def test_sampling_is_seeded_and_reproducible():
    cfg = DecodeConfig(sampling=True, max_len_a=1.0, max_len_b=5)
    first, again, other = samples(cfg, 0), samples(cfg, 0), samples(cfg, 1)
    assert first == again and first != other
    assert len(first) == 12 and len({tuple(t) for t in first}) > 3  # varied samples
    assert all(len(t) <= 10 for t in first)


def test_top_k_one_and_low_temperature_give_the_greedy_translation():
    src, lengths = torch.full((2, 5), 4), torch.full((2,), 5)
    greedy = [h.tokens for h in greedy_search(vocab_model(), src, lengths, DecodeConfig(max_len_a=1.0, max_len_b=5))]
    for cut in ({"top_k": 1}, {"temperature": 1e-4}, {"top_p": 1e-6}):
        cfg = DecodeConfig(sampling=True, max_len_a=1.0, max_len_b=5, **cut)
        hyps = translate_batch(vocab_model(), src, lengths, cfg, generator=sampling_generator(cfg, "cpu"))
        assert [h.tokens for h in hyps] == greedy


def test_top_k_restricts_the_tokens_drawn():
    drawn = {t for tokens in samples(DecodeConfig(sampling=True, top_k=2, max_len_b=20), 3, n=20) for t in tokens}
    assert drawn <= {4, 5}  # the two most probable words (eos ends the sentence)


def test_log_prob_is_the_models_own():
    cfg = DecodeConfig(sampling=True, temperature=2.0, max_len_b=5)
    model = vocab_model()
    logp = model.logits.log_softmax(-1)
    for hyp in sample_n(model, torch.full((1, 5), 4), torch.full((1,), 5), cfg, 5, sampling_generator(cfg, "cpu"))[0]:
        expected = sum(logp[t] for t in hyp.tokens) + logp[2]  # eos ends every hypothesis
        assert hyp.log_prob == pytest.approx(float(expected), abs=1e-4)
