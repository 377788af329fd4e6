"""Attention health numbers on hand-made weight matrices with known answers."""

import math

import pytest
import torch

from attnlab.attention.health import (
    HEALTH_KEYS,
    CrossHealthMeter,
    HealthMeter,
    ImageHealthMeter,
    attention_health,
    cls_sink,
    collapsed,
    key_peak,
    row_entropy,
)


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


# ----------------------------------------------------------------------------- a ViT's self-attention

# One image, one layer, one head: tokens CLS, patch a, patch b (b partly padded).
CLS_ROW = [0.5, 0.25, 0.25]
ROW_A = [0.6, 0.3, 0.1]  # peaks on CLS
ROW_B = [0.2, 0.2, 0.6]  # peaks on the padded patch


def image_weights(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows).view(1, 1, len(rows), -1)  # (B=1, heads=1, T, T)


def h_norm(row: list[float]) -> float:
    return float(row_entropy(torch.tensor(row))) / math.log(len(row))


def test_image_health_on_a_hand_made_image():
    meter = ImageHealthMeter()
    meter.add([image_weights(CLS_ROW, ROW_A, ROW_B)], has_cls=True, padded=torch.tensor([[False, False, True]]))
    h = meter.summary()
    assert h["rows"] == 2 and h["images"] == 1  # the patch rows; CLS's own row apart
    assert h["cls_share"] == 0.5 and h["cls_weight"] == pytest.approx((0.6 + 0.2) / 2)
    assert h["padding_share"] == 0.5 and h["padding_weight"] == pytest.approx((0.1 + 0.6) / 2)
    assert h["max_weight"] == pytest.approx(0.6)
    assert h["entropy_norm"] == pytest.approx((h_norm(ROW_A) + h_norm(ROW_B)) / 2)
    assert h["cls_query_max_weight"] == pytest.approx(0.5)
    assert h["cls_query_entropy_norm"] == pytest.approx(h_norm(CLS_ROW))
    overall = {k: v for k, v in h.items() if k not in ("rows", "images", "layers")}
    assert h["layers"]["layer1"]["head1"] == h["layers"]["layer1"]["mean"] == overall
    assert not collapsed(h) and not cls_sink(h)


@pytest.mark.parametrize(
    ("row", "on_cls"),
    [([0.6, 0.3, 0.1], True), ([0.4, 0.4, 0.2], False), ([0.3, 0.1, 0.6], False), ([1.0, 0.0, 0.0], True)],
    ids=["peak", "tie-is-no-peak", "elsewhere", "one-hot"],
)
def test_cls_peak_is_strict(row, on_cls):
    peak, weight = key_peak(torch.tensor([row]), torch.tensor([True, False, False]))
    assert peak.tolist() == [on_cls] and weight.tolist() == pytest.approx([row[0]])


def test_image_health_skips_padding_only_patches_and_heads_are_kept_apart():
    # image 2 is smaller: its token 2 is a padding-only patch, masked as a key (weight 0); its row
    # is whatever the model computed there and must not count
    w = torch.zeros(2, 2, 3, 3)  # (B, heads, T, T)
    w[0, 0] = torch.tensor([CLS_ROW, ROW_A, ROW_B])
    w[0, 1] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # head 2: one-hot on itself
    w[1, :] = torch.tensor([[0.5, 0.5, 0], [0.9, 0.1, 0], [0.0, 0.0, 1.0]])
    real = torch.tensor([[True, True, True], [True, True, False]])
    meter = ImageHealthMeter()
    meter.add([w], real=real, has_cls=True)
    h = meter.summary()
    assert h["rows"] == 3 and "padding_share" not in h  # no partly padded patch given
    head1, head2 = h["layers"]["layer1"]["head1"], h["layers"]["layer1"]["head2"]
    assert head1["cls_share"] == pytest.approx(2 / 3) and head2["cls_share"] == pytest.approx(1 / 3)
    assert head2["max_weight"] == pytest.approx((1 + 1 + 0.9) / 3)
    # image 2's patch row has 2 real keys: normalised by log 2
    assert head1["entropy_norm"] == pytest.approx((h_norm(ROW_A) + h_norm(ROW_B) + h_norm([0.9, 0.1])) / 3)
    assert head1["cls_query_entropy_norm"] == pytest.approx((h_norm(CLS_ROW) + 1.0) / 2)
    assert h["max_weight"] == pytest.approx((head1["max_weight"] + head2["max_weight"]) / 2)


def test_image_health_without_cls_token_leaves_the_cls_keys_out():
    w = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).view(1, 1, 2, 2)
    meter = ImageHealthMeter()
    meter.add([w, w], has_cls=False)
    h = meter.summary()
    assert h["rows"] == 2 and h["max_weight"] == pytest.approx(0.85) and list(h["layers"]) == ["layer1", "layer2"]
    assert not any("cls" in k for k in h) and not any("cls" in k for k in h["layers"]["layer2"]["mean"])
    assert ImageHealthMeter().summary() == {}


@pytest.mark.parametrize(
    ("health", "is_collapsed", "is_sink"),
    [
        ({"entropy_norm": 0.05, "max_weight": 0.97, "cls_share": 0.1}, True, False),  # one-hot rows
        ({"entropy_norm": 0.6, "max_weight": 0.5, "cls_share": 0.8}, False, True),  # a CLS sink, not a collapse
        ({"entropy_norm": 0.6, "max_weight": 0.5}, False, False),  # pool=mean: no CLS
    ],
)
def test_vision_collapse_and_cls_sink(health, is_collapsed, is_sink):
    assert collapsed(health) is is_collapsed and cls_sink(health) is is_sink


def test_image_health_equals_the_per_sentence_meter_on_each_head():
    """The batched meter against :class:`HealthMeter` run row by row over each image's real keys:
    with the keys reversed the CLS key is HealthMeter's last key, so cls_share is its eos_share."""
    torch.manual_seed(0)
    b, heads, t = 3, 2, 5
    real = torch.tensor([[True] * 5, [True, True, True, False, False], [True, True, True, True, False]])
    scores = torch.randn(2, b, heads, t, t).masked_fill(~real[None, :, None, None, :], float("-inf"))
    layers = list(scores.softmax(-1))  # 2 layers of (B, heads, T, T)
    meter = ImageHealthMeter()
    meter.add(layers, real=real, has_cls=True)
    h = meter.summary()
    for layer, w in enumerate(layers):
        for head in range(heads):
            reference = HealthMeter()
            for i in range(b):
                n = int(real[i].sum())
                reference.add(w[i, head, 1:n, :n].flip(-1))  # patch queries, real keys, CLS last
            want, got = reference.summary(), h["layers"][f"layer{layer + 1}"][f"head{head + 1}"]
            for key in ("entropy", "entropy_norm", "max_weight"):
                assert got[key] == pytest.approx(want[key])
            assert got["cls_share"] == pytest.approx(want["eos_share"])
            assert got["cls_weight"] == pytest.approx(want["eos_weight"])


def test_cross_health_equals_the_per_sentence_meter_on_each_head_and_the_head_mean():
    """The batched meter against :class:`HealthMeter` sentence by sentence over each sentence's
    real output steps and source keys; a layer's ``mean`` is the health of the head-averaged rows."""
    torch.manual_seed(0)
    b, heads, t, s = 3, 2, 4, 5
    key_lengths, steps = torch.tensor([5, 3, 4]), torch.tensor([4, 2, 3])
    real_keys = torch.arange(s) < key_lengths[:, None]  # (B, S)
    scores = torch.randn(2, b, heads, t, s).masked_fill(~real_keys[None, :, None, None, :], float("-inf"))
    layers = list(scores.softmax(-1))  # 2 layers of (B, heads, T, S)
    meter = CrossHealthMeter()
    meter.add(layers, torch.arange(t) < steps[:, None], key_lengths)
    h = meter.summary()
    assert h["rows"] == 4 + 2 + 3 and list(h["layers"]) == ["layer1", "layer2"]
    for layer, w in enumerate(layers):
        assert list(h["layers"][f"layer{layer + 1}"]) == ["head1", "head2", "mean"]
        for head in [*range(heads), "mean"]:
            reference = HealthMeter()
            for i in range(b):
                rows = w[i].mean(0) if head == "mean" else w[i, head]  # (T, S)
                reference.add(rows[: steps[i], : key_lengths[i]])
            name = "mean" if head == "mean" else f"head{head + 1}"
            got, want = h["layers"][f"layer{layer + 1}"][name], reference.summary()
            assert set(got) == set(HEALTH_KEYS)
            for key in HEALTH_KEYS:
                assert got[key] == pytest.approx(want[key]), (layer, name, key)


def test_cross_health_of_a_head_on_eos_and_a_head_elsewhere():
    """Head 1 is one-hot on each sentence's </s> (whatever its padding), head 2 on the first key:
    their mean of heads peaks on neither, so its eos_share is 0 (a tie is no peak)."""
    key_lengths = torch.tensor([3, 2])
    w = torch.zeros(2, 2, 1, 4)  # (B, H, T, S)
    w[0, 0, 0, 2] = w[1, 0, 0, 1] = 1.0
    w[:, 1, 0, 0] = 1.0
    meter = CrossHealthMeter()
    meter.add([w], torch.ones(2, 1, dtype=torch.bool), key_lengths)
    layer = meter.summary()["layers"]["layer1"]
    assert layer["head1"]["eos_share"] == 1.0 and layer["head1"]["eos_weight"] == 1.0
    assert layer["head2"]["eos_share"] == 0.0 and layer["head2"]["entropy"] == 0.0
    assert layer["mean"]["eos_share"] == 0.0 and layer["mean"]["max_weight"] == 0.5
    assert layer["mean"]["entropy_norm"] == pytest.approx((math.log(2) / math.log(3) + 1.0) / 2)
    assert CrossHealthMeter().summary() == {}
