"""Each score against a hand-computed or float64 reference, and gradcheck for every score."""

import math

import pytest
import torch

from attnlab.attention import SCORES, make_score
from attnlab.errors import UserError

ALL = SCORES.names()  # every registered score, so a new one is tested without editing a list


def test_registry_holds_the_documented_scores():
    assert {"dot", "scaled_dot", "general", "additive", "cosine", "linear"} <= set(ALL)


def test_unknown_score_lists_valid_names():
    with pytest.raises(UserError, match="valid choices: " + ", ".join(ALL)):
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


@pytest.mark.parametrize("name", ["dot", "scaled_dot", "cosine", "linear"])
def test_dot_scores_need_equal_sizes(name):
    with pytest.raises(UserError, match="one size"):
        make_score(name, 3, 4)


def test_none_is_not_a_score():
    with pytest.raises(UserError, match="attention=none"):
        make_score("none", 4, 4)


@pytest.mark.parametrize("name", ALL)
def test_prepared_keys_give_the_same_scores(name):
    """compare(q, prepare_keys(k)) is the score: what a decoder does once per source sentence."""
    torch.manual_seed(0)
    score = make_score(name, 4, 4, heads=2).double()
    q, k = torch.randn(1, 2, 3, 4, dtype=torch.float64), torch.randn(1, 2, 5, 4, dtype=torch.float64)
    assert torch.allclose(score.compare(q, score.prepare_keys(k)), score(q, k))


@pytest.mark.parametrize("name", [n for n in ALL if SCORES.get(n).dot_form])
def test_dot_form_equals_the_score(name):
    torch.manual_seed(0)
    score = make_score(name, 4, 4, heads=2).double()
    q, k = torch.randn(1, 2, 3, 4, dtype=torch.float64), torch.randn(1, 2, 5, 4, dtype=torch.float64)
    q_dot, scale = score.as_dot(q)
    assert torch.allclose(scale * q_dot @ score.prepare_keys(k).transpose(-2, -1), score(q, k))


def test_cosine_hand_computed_and_bounded_by_its_temperature():
    score = make_score("cosine", 2, 2)
    q, k = torch.tensor([[3.0, 4.0]]), torch.tensor([[6.0, 8.0], [-4.0, 3.0], [0.0, -2.0]])
    # cos = 1, 0, -0.8, times tau = 10 at initialisation
    assert torch.allclose(score(q, k), torch.tensor([[10.0, 0.0, -8.0]]), atol=1e-5)
    with torch.no_grad():
        score.log_tau.fill_(10.0)  # clamped at log(100)
    assert torch.allclose(score(q, k).abs().max(), torch.tensor(100.0))


def test_linear_weights_hand_computed():
    score = make_score("linear", 1, 1)
    q, k = torch.tensor([[0.0]]), torch.tensor([[1.0], [-1.0]])
    # phi(0) = 1, phi(1) = 2, phi(-1) = e^-1: weights 2 / (2 + e^-1) and e^-1 / (2 + e^-1)
    w = score.normalize(score(q, k), None)
    e = math.exp(-1.0)
    assert torch.allclose(w, torch.tensor([[2.0, e]]) / (2.0 + e), atol=1e-5)


def test_no_weight_decay_names_are_parameters():
    for name in ALL:
        score = make_score(name, 4, 4, heads=2)
        assert score.no_weight_decay() <= {n for n, _ in score.named_parameters()}
    assert make_score("additive", 4, 4).no_weight_decay() == {"v"}
