"""The gym's scores on hand-made inputs with known answers: sequences, attention matrices, maps."""

from __future__ import annotations

import pytest
import torch

from attnlab.attention.health import HeadAlignment, HealthMeter, attention_health, best_head
from attnlab.gym_metrics import (
    curve_auc, deletion_order, exact_match, pointing_game, pointing_hits, token_accuracy, token_hits,
)


def test_exact_match_and_token_accuracy():
    assert exact_match("a b c", "a  b c") and not exact_match("a b", "a b c")
    assert token_hits("a b c", "a x c") == (2, 3)
    assert token_hits("a b", "a b c d") == (2, 4)  # a truncated output loses the missing positions
    assert token_hits("a b c d", "a b") == (2, 4)  # a run-on output loses the extra ones
    assert token_accuracy(["a b", "c"], ["a x", "c"]) == pytest.approx(2 / 3)


# Three output steps over four source keys (the last one is </s>); gold: 0, 2, 1.
W = torch.tensor([
    [0.7, 0.1, 0.1, 0.1],  # peaks on 0: right
    [0.1, 0.2, 0.6, 0.1],  # peaks on 2: right
    [0.1, 0.1, 0.1, 0.7],  # peaks on </s>: wrong (gold 1)
])
GOLD = torch.tensor([0, 2, 1])


def test_alignment_accuracy_and_aer_by_hand():
    h = attention_health([W], [GOLD])
    assert h["alignment_accuracy"] == pytest.approx(2 / 3)
    assert h["alignment_error_rate"] == pytest.approx(1 / 3)  # one gold link per step: 1 - accuracy
    assert h["eos_share"] == pytest.approx(1 / 3) and h["eos_weight"] == pytest.approx(0.3)
    assert h["max_weight"] == pytest.approx((0.7 + 0.6 + 0.7) / 3)


def test_steps_without_gold_count_against_aer_but_not_accuracy():
    m = HealthMeter()
    m.add(W, torch.tensor([0, -1, 1]))  # step 2 has no gold link; its predicted link is extra
    s = m.summary()
    assert s["alignment_accuracy"] == pytest.approx(1 / 2)
    assert s["alignment_error_rate"] == pytest.approx(1 - 2 * 1 / (3 + 2))


def test_uniform_attention_has_entropy_log_s():
    h = attention_health([torch.full((2, 4), 0.25)])
    assert h["entropy"] == pytest.approx(torch.log(torch.tensor(4.0)).item()) and h["entropy_norm"] == pytest.approx(1)
    assert "alignment_accuracy" not in h


def test_head_alignment_names_the_best_head_and_scores_the_mean():
    diag = torch.eye(3, 4)  # rows peak on 0, 1, 2
    right = torch.tensor([[0.9, 0.05, 0.05, 0], [0, 0.1, 0.8, 0.1], [0, 0.8, 0.1, 0.1]])  # peaks 0, 2, 1 = gold
    layer1 = torch.stack([diag, right])  # (H=2, T=3, S=4)
    layer2 = torch.stack([diag, diag])
    meter = HeadAlignment()
    meter.add([layer1, layer2], GOLD)
    acc = meter.accuracy()
    assert acc["layer1"]["head1"] == pytest.approx(1 / 3)  # only step 0 (gold 0) is on the diagonal
    assert acc["layer1"]["head2"] == 1.0
    # mean of heads: rows [.95 .025 .025 0], [0 .55 .4 .05] -> 1, [0 .4 .55 .05] -> 2: one right
    assert acc["layer1"]["mean"] == pytest.approx(1 / 3)
    assert acc["layer2"] == {"head1": pytest.approx(1 / 3), "head2": pytest.approx(1 / 3), "mean": pytest.approx(1 / 3)}
    assert best_head(acc) == "layer1.head2"
    assert best_head({}) == ""


def test_pointing_game_by_hand():
    maps = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.5, 0.1, 0.2, 0.2], [0.0, 0.0, 0.0, 1.0]])
    inside = torch.tensor([[False, True, True, False], [False, True, True, False], [False, False, False, True]])
    assert pointing_hits(maps, inside).tolist() == [True, False, True]
    assert pointing_game(maps, inside) == pytest.approx(2 / 3)


def test_deletion_order_puts_padding_last_and_auc_is_the_trapezoid_area():
    maps = torch.tensor([[0.1, 0.5, 0.9, 0.3]])
    assert deletion_order(maps).tolist() == [[2, 1, 3, 0]]
    assert deletion_order(maps, real=torch.tensor([[True, True, False, True]])).tolist() == [[1, 3, 0, 2]]
    assert curve_auc(torch.tensor([[1.0, 0.0, 0.0]])).item() == pytest.approx(0.25)  # a drop at once
    assert curve_auc(torch.tensor([[1.0, 1.0, 1.0]])).item() == pytest.approx(1.0)  # nothing matters
    assert curve_auc(torch.tensor([[1.0, 0.5, 0.0]])).item() == pytest.approx(0.5)  # linear


# ----------------------------------------------------------------------------- the report


SHARP = {"entropy_norm": 0.01, "max_weight": 0.99, "eos_share": 0.0, "entropy": 0.01, "eos_weight": 0.0}


def _gym_run(root, attention: str, seed: int, em: dict[str, float], align: dict[str, float] | None):
    import json

    import yaml

    folder = root / f"attention={attention},seed={seed}"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"attention={attention}", f"seed={seed}"]))
    by_length = {n: {"exact_match": v, **({"alignment_accuracy": align[n]} if align else {})} for n, v in em.items()}
    results = {"task": "translation", "model": "rnn_attn", "attention": attention, "seed": seed, "bleu": 50.0,
               "exact_match": em["8"], "token_accuracy": em["8"], "train_len": [4, 12], "by_length": by_length,
               **({"alignment_accuracy": align["8"], "attention_health": SHARP} if align else {})}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "metrics.jsonl").write_text("")


def test_report_scores_gym_runs_by_exact_match_per_length_with_the_plot(tmp_path):
    from attnlab import report

    for seed, shift in enumerate((0.0, 0.1)):
        _gym_run(tmp_path, "dot", seed, {"8": 1.0 - shift, "32": 0.5}, {"8": 0.9, "32": 0.7})
        _gym_run(tmp_path, "none", seed, {"8": 0.6, "32": 0.0 + shift}, None)
    paths = report.write_report(tmp_path)
    assert (tmp_path / "accuracy_by_length.png").read_bytes()[:4] == b"\x89PNG"
    assert tmp_path / "accuracy_by_length.png" in paths
    rows = report.summarize(report.load_runs(tmp_path))
    assert [r.variant for r in rows] == ["attention=dot", "attention=none"]  # sorted by exact match
    assert rows[0].metric_names == ["exact_match", "token_accuracy", "alignment_accuracy"]
    assert rows[0].by_length("exact_match")[8].mean == pytest.approx(0.95)
    assert rows[1].by_length("alignment_accuracy") == {} and rows[0].train_range() == (4, 12)
    text = (tmp_path / "report.md").read_text()
    assert "exact match by test length; * = outside the training lengths 4-12" in text
    assert "| variant | 8 | 32* |" in text and "| `attention=dot` | 0.9500 ± 0.0707 | 0.5000 ± 0.0000 |" in text
    assert "alignment accuracy by test length" in text
    assert "0.99 / 0% aligned" in text and "COLLAPSED" not in text  # one-hot on the gold position is no collapse


def test_report_shows_the_pointing_game_of_every_map(tmp_path):
    import json

    from attnlab import report

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({
        "task": "vision", "model": "vit", "seed": 0, "accuracy": 0.9,
        "pointing_game": {"rollout": 0.8, "random": 0.1}, "deletion_auc": {"rollout": 0.2, "random": 0.5}}))
    report.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| variant | rollout | random |" in text and "0.8000 ± n/a | 0.1000 ± n/a" in text
    assert "deletion AUC" in text and not (tmp_path / "accuracy_by_length.png").exists()
