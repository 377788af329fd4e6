"""Attention rollout (Abnar & Zuidema 2020) on cases small enough to compute by hand."""

import pytest
import torch

from attnlab.viz.rollout import fuse_heads, patch_relevance, rollout


def test_two_layers_by_hand():
    a1 = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    a2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    # (A + I) / 2 each:  Â1 = [[1, 0], [.25, .75]],  Â2 = [[.75, .25], [0, 1]];  R = Â2 Â1
    expected = torch.tensor([[0.8125, 0.1875], [0.25, 0.75]])
    joint = rollout([a1.view(1, 1, 2, 2), a2.view(1, 1, 2, 2)])
    assert torch.allclose(joint[0], expected)
    assert torch.allclose(patch_relevance(joint, has_cls=True), torch.tensor([[0.1875]]))
    # the order matters: the first layer is applied first
    assert not torch.allclose(rollout([a2.view(1, 1, 2, 2), a1.view(1, 1, 2, 2)])[0], expected)


def test_without_residual_it_is_the_plain_product():
    a = torch.softmax(torch.randn(3, 2, 5, 5), -1)
    b = torch.softmax(torch.randn(3, 2, 5, 5), -1)
    assert torch.allclose(rollout([a, b], residual=False), b.mean(1) @ a.mean(1), atol=1e-6)


def test_head_fusions_and_row_normalisation():
    heads = torch.tensor([[[0.2, 0.8], [0.6, 0.4]], [[0.6, 0.4], [0.2, 0.8]]]).unsqueeze(0)  # (1, 2, 2, 2)
    assert torch.allclose(fuse_heads(heads, "mean")[0], torch.tensor([[0.4, 0.6], [0.4, 0.6]]))
    assert torch.allclose(fuse_heads(heads, "max")[0], torch.tensor([[0.6, 0.8], [0.6, 0.8]]))
    assert torch.allclose(fuse_heads(heads, "min")[0], torch.tensor([[0.2, 0.4], [0.2, 0.4]]))
    # max: ([[.6, .8], [.6, .8]] + I) rows renormalised: [1.6, .8] / 2.4 and [.6, 1.8] / 2.4
    expected = torch.tensor([[2 / 3, 1 / 3], [0.25, 0.75]])
    assert torch.allclose(rollout([heads], "max")[0], expected)
    with pytest.raises(ValueError, match="mean, max, min"):
        fuse_heads(heads, "median")


def test_rows_stay_distributions_over_a_batch_of_many_layers():
    layers = [torch.softmax(torch.randn(4, 3, 7, 7), -1) for _ in range(5)]
    joint = rollout(layers)
    assert joint.shape == (4, 7, 7)
    assert torch.allclose(joint.sum(-1), torch.ones(4, 7), atol=1e-5)


def test_without_cls_the_real_patch_rows_are_averaged():
    joint = torch.tensor([[[0.5, 0.5, 0.0], [0.1, 0.9, 0.0], [0.3, 0.3, 0.4]]])  # patch 2 is padding
    real = torch.tensor([[True, True, False]])
    assert torch.allclose(patch_relevance(joint, has_cls=False, real=real), torch.tensor([[0.3, 0.7, 0.0]]))
    assert torch.allclose(patch_relevance(joint, has_cls=False), joint.mean(1))


def test_padding_only_patches_receive_nothing():
    torch.manual_seed(0)
    scores = torch.randn(2, 2, 5, 5)
    scores[..., 3:] = -torch.inf  # keys 3 and 4 are padding for every query
    weights = [torch.softmax(scores, -1), torch.softmax(scores.flip(2), -1)]
    joint = rollout(weights)
    assert torch.equal(joint[:, :3, 3:], torch.zeros(2, 3, 2))  # real tokens never draw from padding
