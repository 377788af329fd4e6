"""Attention health numbers on hand-made weight matrices with known answers."""

import math

import pytest
import torch

from attnlab.attention.health import HealthMeter, attention_health, collapsed, row_entropy


def test_entropy_of_one_hot_and_uniform_rows():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert row_entropy(w).tolist() == pytest.approx([0.0, math.log(4)])


def test_collapsed_on_eos_is_seen():
    # three output steps over a 4-token source whose last token is </s>: all peak on </s>
    w = torch.tensor([[0.0, 0.0, 0.01, 0.99], [0.0, 0.02, 0.0, 0.98], [0.0, 0.0, 0.0, 1.0]])
    h = attention_health([w])
    assert h["eos_share"] == 1.0 and h["max_weight"] == pytest.approx(0.99)
    assert h["eos_weight"] == pytest.approx((0.99 + 0.98 + 1.0) / 3)
    assert h["entropy_norm"] < 0.1 and collapsed(h)


def test_diagonal_attention_is_healthy_and_aligned():
    w = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.1, 0.8, 0.1, 0.0], [0.0, 0.1, 0.6, 0.3]])
    h = attention_health([w], gold=[torch.tensor([0, 1, 2])])
    assert h["eos_share"] == 0.0 and h["alignment_accuracy"] == 1.0 and not collapsed(h)
    assert h["max_weight"] == pytest.approx((0.7 + 0.8 + 0.6) / 3)
    h = attention_health([w], gold=[torch.tensor([0, 2, -1])])  # -1: no gold for that step
    assert h["alignment_accuracy"] == 0.5


def test_means_are_over_rows_of_every_sentence():
    meter = HealthMeter()
    meter.add(torch.tensor([[1.0, 0.0]]))  # one row peaking on </s>? no: on position 0
    meter.add(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]]))
    h = meter.summary()
    assert h["rows"] == 4 and h["eos_share"] == pytest.approx(2 / 4)  # ties pick the first index
    assert h["entropy"] == pytest.approx(math.log(3) / 4)
    assert HealthMeter().summary() == {}
