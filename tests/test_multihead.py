"""Multi-head attention with every score; cache, masks and the reference torch module."""

import pytest
import torch

from attnlab.attention import SCORES, MultiHeadAttention, padding_mask
from attnlab.errors import UserError

ALL = SCORES.names()


@pytest.mark.parametrize("name", ALL)
def test_every_score_runs_trains_and_masks_padding(name):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, name)
    x = torch.randn(2, 5, 16)
    mem = torch.randn(2, 7, 16)
    mask = padding_mask(torch.tensor([7, 3]), 7)  # (B, 1, Tk)
    out, w = mha(x, mem, mask=mask, need_weights=True)
    assert out.shape == (2, 5, 16) and w.shape == (2, 4, 5, 7)
    assert torch.equal(w[1, :, :, 3:], torch.zeros(4, 5, 4))
    # changing padded memory positions changes nothing
    mem2 = mem.clone()
    mem2[1, 3:] = 100.0
    out2, _ = mha(x, mem2, mask=mask)
    assert torch.allclose(out[1], out2[1], atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mha.parameters())


def test_matches_torch_multihead_attention_with_same_weights():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    mha = MultiHeadAttention(16, 4, "scaled_dot")
    wq, wk, wv = ref.in_proj_weight.chunk(3)
    bq, bk, bv = ref.in_proj_bias.chunk(3)
    for lin, w, b in ((mha.q_proj, wq, bq), (mha.k_proj, wk, bk), (mha.v_proj, wv, bv)):
        lin.weight.data.copy_(w)
        lin.bias.data.copy_(b)
    mha.out_proj.load_state_dict(ref.out_proj.state_dict())
    x = torch.randn(3, 6, 16)
    mask = padding_mask(torch.tensor([6, 4, 2]), 6)
    expected, expected_w = ref(x, x, x, key_padding_mask=~mask.squeeze(1), average_attn_weights=False)
    out, w = mha(x, mask=mask, need_weights=True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(w, expected_w, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_incremental_cache_equals_full_causal_pass(name):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, name).eval()
    x = torch.randn(2, 6, 16)
    full, _ = mha(x, causal=True)
    cache: dict = {}
    steps = [mha(x[:, t : t + 1], causal=True, cache=cache)[0] for t in range(6)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_cross_attention_static_cache_computed_once():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, kv_dim=6, cross=True).eval()
    mem = torch.randn(1, 4, 6)
    cache: dict = {}
    a, _ = mha(torch.randn(1, 1, 8), mem, cache=cache, static_kv=True)
    k_first = cache["k"]
    mha(torch.randn(1, 1, 8), mem, cache=cache, static_kv=True)
    assert cache["k"] is k_first


def test_heads_must_divide_width():
    with pytest.raises(UserError, match="divisor"):
        MultiHeadAttention(10, 4)
