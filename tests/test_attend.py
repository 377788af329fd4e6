"""attend(): masks, masked softmax, the seed's formulation, fused == math (forward and backward)."""

import pytest
import torch

from attnlab.attention import SCORES, attend, causal_mask, make_score, masked_softmax, padding_mask

ALL = SCORES.names()
FUSABLE = [name for name in ALL if SCORES.get(name).dot_form]


def test_seed_formulation_hand_computed():
    """k_i = W_K h_i, q = W_Q s, score k_i^T q, alpha = softmax, c = sum_i alpha_i h_i (the seed)."""
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # encoder states h_1..h_3, (m=3, 2)
    s = torch.tensor([[2.0, 1.0]])  # decoder state s_0, (1, 2)
    w_k = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    w_q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys, query = h @ w_k.T, s @ w_q.T  # k_i = W_K h_i; q = W_Q s
    context, alpha = attend(query, keys, h, make_score("dot", 2, 2), need_weights=True)
    # By hand: scores k_i^T q = [2, 2, 4]; softmax = [e^2, e^2, e^4] / (2e^2 + e^4)
    e2, e4 = torch.exp(torch.tensor(2.0)), torch.exp(torch.tensor(4.0))
    expected_alpha = torch.stack([e2, e2, e4]) / (2 * e2 + e4)
    assert torch.allclose(alpha[0], expected_alpha)
    # c = [h_1 h_2 h_3] alpha = (alpha_1 + alpha_3, alpha_2 + alpha_3)
    a = expected_alpha
    assert torch.allclose(context[0], torch.stack([a[0] + a[2], a[1] + a[2]]))


def test_masked_keys_get_exactly_zero_weight():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5)
    mask = padding_mask(torch.tensor([5, 2]), 5)  # (2, 1, 5)
    w = masked_softmax(scores, mask)
    assert torch.equal(w[1, :, 2:], torch.zeros(3, 3))
    assert torch.allclose(w.sum(-1), torch.ones(2, 3))


def test_all_masked_rows_are_zero_and_finite_both_paths():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch 0 sees nothing
    for fused in (True, False):
        out, _ = attend(q, k, v, make_score("scaled_dot", 4, 4), mask, fused=fused)
        assert torch.isfinite(out).all()
        assert torch.equal(out[0, 1], torch.zeros(4))
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
        for t in (q, k, v):
            t.grad = None


def test_causal_mask_shapes_and_alignment():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # one new query with 4 cached keys sees all of them (bottom-right alignment)
    assert causal_mask(1, 4).all()


def test_causal_attention_ignores_the_future():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 5, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    out1, _ = attend(q, k, v, make_score("scaled_dot", 4, 4), causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 3:] += 10.0
    v2[:, 3:] -= 5.0
    out2, _ = attend(q, k2, v2, make_score("scaled_dot", 4, 4), causal=True)
    assert torch.allclose(out1[:, :3], out2[:, :3])
    assert not torch.allclose(out1[:, 3:], out2[:, 3:])


def _masks(batch, q_len, k_len):
    key_pad = padding_mask(torch.tensor([k_len, k_len - 3]), k_len).unsqueeze(1)  # (B, 1, 1, Tk)
    arbitrary = torch.rand(batch, 1, q_len, k_len, generator=torch.Generator().manual_seed(1)) > 0.3
    return {"none": None, "padding": key_pad, "arbitrary": arbitrary}


@pytest.mark.parametrize("name", FUSABLE)
@pytest.mark.parametrize("mask_kind", ["none", "padding", "arbitrary", "causal"])
def test_fused_equals_math_forward_and_backward(name, mask_kind):
    torch.manual_seed(0)
    b, h, tq, tk, d = 2, 3, 6, 6, 8
    score = make_score(name, d, d, heads=h)
    mask = None if mask_kind == "causal" else _masks(b, tq, tk)[mask_kind]
    causal = mask_kind == "causal"
    inputs = [torch.randn(b, h, t, d) for t in (tq, tk, tk)]
    results = []
    for fused in (True, False):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        score.zero_grad()
        out, _ = attend(*leaves, score, mask, causal=causal, fused=fused)
        (out * torch.linspace(-1, 1, d)).sum().backward()
        grads = [x.grad for x in leaves] + [p.grad.clone() for p in score.parameters()]
        results.append((out, grads))
    (out_f, grads_f), (out_m, grads_m) = results
    assert torch.allclose(out_f, out_m, atol=1e-5, rtol=1e-4)
    for gf, gm in zip(grads_f, grads_m):
        assert torch.allclose(gf, gm, atol=1e-5, rtol=1e-4)


def test_fused_path_is_taken_and_math_path_for_weights(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    q = torch.randn(1, 2, 4)
    attend(q, q, q, make_score("scaled_dot", 4, 4))
    assert calls == [1]
    _, w = attend(q, q, q, make_score("scaled_dot", 4, 4), need_weights=True)
    assert calls == [1] and w.shape == (1, 2, 2)
    attend(q, q, q, make_score("additive", 4, 4))  # no dot form: math path
    assert calls == [1]


@pytest.mark.parametrize("name", ALL)
def test_weights_are_a_distribution_over_visible_keys(name):
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 8), torch.randn(2, 7, 8)
    mask = padding_mask(torch.tensor([7, 4]), 7)
    _, w = attend(q, k, k, make_score(name, 8, 8), mask, need_weights=True)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4), atol=1e-6)
    assert torch.equal(w[1, :, 4:], torch.zeros(4, 3))


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_attend_with_mask(name):
    torch.manual_seed(0)
    score = make_score(name, 3, 3).double()
    q, k, v = (torch.randn(2, n, 3, dtype=torch.float64, requires_grad=True) for n in (2, 4, 4))
    mask = padding_mask(torch.tensor([4, 2]), 4)
    assert torch.autograd.gradcheck(lambda a, b, c: attend(a, b, c, score, mask, fused=False)[0], (q, k, v))
