"""Each score against a hand-computed or float64 reference, and gradcheck for every score."""

import math

import pytest
import torch

from attnlab.attention import SCORES, make_score
from attnlab.errors import UserError

ALL = ["dot", "scaled_dot", "general", "additive"]


def test_registry_lists_all_scores():
    assert SCORES.names() == sorted(ALL)


def test_unknown_score_lists_valid_names():
    with pytest.raises(UserError, match="valid choices: additive, dot, general, scaled_dot"):
        make_score("cosine_typo", 4, 4)


def test_dot_and_scaled_dot_hand_computed():
    q = torch.tensor([[1.0, 2.0]])  # (Tq=1, D=2)
    k = torch.tensor([[3.0, 4.0], [-1.0, 0.5]])  # (Tk=2, D=2)
    assert torch.allclose(make_score("dot", 2, 2)(q, k), torch.tensor([[11.0, 0.0]]))
    scaled = make_score("scaled_dot", 2, 2)(q, k)
    assert torch.allclose(scaled, torch.tensor([[11.0, 0.0]]) / math.sqrt(2))


def test_general_is_bilinear_form():
    torch.manual_seed(0)
    score = make_score("general", 3, 2).double()
    q, k = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    expected = torch.einsum("qi,ij,kj->qk", q, score.weight, k)
    assert torch.allclose(score(q, k), expected)


def test_additive_matches_explicit_loop():
    torch.manual_seed(0)
    score = make_score("additive", 3, 2, hidden_dim=5).double()
    q, k = torch.randn(4, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    expected = torch.empty(4, 6, dtype=torch.float64)
    for i in range(4):
        for j in range(6):
            h = torch.tanh(q[i] @ score.w_q + score.bias[0] + k[j] @ score.w_k)
            expected[i, j] = h @ score.v[:, 0]
    assert torch.allclose(score(q, k), expected)


@pytest.mark.parametrize("name", ALL)
def test_per_head_parameters_match_per_head_loop(name):
    """With heads, each head uses its own slice of parameters, as separate modules would."""
    torch.manual_seed(0)
    heads, d = 3, 4
    score = make_score(name, d, d, heads=heads).double()
    q = torch.randn(2, heads, 5, d, dtype=torch.float64)
    k = torch.randn(2, heads, 7, d, dtype=torch.float64)
    full = score(q, k)
    assert full.shape == (2, heads, 5, 7)
    for h in range(heads):
        single = make_score(name, d, d).double()
        for p_single, p_multi in zip(single.parameters(), score.parameters()):
            p_single.data.copy_(p_multi.data[h])
        assert torch.allclose(full[:, h], single(q[:, h], k[:, h]))


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_float64(name):
    torch.manual_seed(0)
    score = make_score(name, 3, 3, heads=2).double()
    q = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: score(a, b), (q, k))


@pytest.mark.parametrize("name", ["dot", "scaled_dot"])
def test_dot_scores_need_equal_sizes(name):
    with pytest.raises(UserError, match="one size"):
        make_score(name, 3, 4)


def test_none_is_not_a_score():
    with pytest.raises(UserError, match="attention=none"):
        make_score("none", 4, 4)
