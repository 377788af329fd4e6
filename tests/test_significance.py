"""attnlab.significance: the paired bootstrap equals sacreBLEU's on one pair, and its verdicts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from attnlab import significance as sig
from attnlab.metrics import reference_streams

WORDS = "the a cat dog sat ran on mat house tree big small red green old new".split()


def corpus(n: int, seed: int) -> list[list[str]]:
    """n sentences with one or two references each (variable reference counts, as Tatoeba)."""
    rng = random.Random(seed)
    return [[" ".join(rng.choices(WORDS, k=rng.randint(3, 8))) for _ in range(rng.randint(1, 2))] for _ in range(n)]


def noisy(refs: list[list[str]], rate: float, seed: int) -> list[str]:
    """The first reference of each sentence with ``rate`` of its words replaced at random."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in r[0].split()) for r in refs]


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_one_pair_gives_sacrebleus_paired_bootstrap_p_value(metric: str) -> None:
    refs = corpus(150, 0)
    streams = reference_streams(refs)
    a, b = noisy(refs, 0.30, 1), noisy(refs, 0.31, 2)  # close: a p-value well inside (0, 1)
    fast = sig.compare_translations([a], [b], streams, metric, n_samples=300)
    slow = sig.paired_bootstrap_reference(a, b, streams, metric, n_samples=300)
    assert 0.01 < slow < 0.99
    assert fast.p_value == pytest.approx(slow)


def test_resample_counts_draw_every_item_n_times_per_resample() -> None:
    counts = sig.resample_counts(50, n_samples=20, seed=3)
    assert counts.shape == (20, 50) and np.all(counts.sum(1) == 50)
    assert not np.array_equal(counts[0], counts[1])
    assert np.array_equal(counts, sig.resample_counts(50, n_samples=20, seed=3))


def test_a_clearly_better_variant_is_significant_over_three_seeds_and_a_copy_is_not() -> None:
    refs = corpus(200, 1)
    streams = reference_streams(refs)
    good = [noisy(refs, 0.1, s) for s in range(3)]
    bad = [noisy(refs, 0.5, 10 + s) for s in range(3)]
    better = sig.compare_translations(good, bad, streams, "bleu", n_samples=200)
    assert better.delta > 10 and better.pairs == 3 and better.p_value < 0.01
    assert better.delta == pytest.approx(np.mean(better.pair_deltas))
    assert sig.verdict(better) == "significant"
    same = sig.compare_translations(good, good, streams, "bleu", n_samples=200)
    assert same.delta == 0 and same.p_value > 0.5 and sig.verdict(same) == "n.s."


def test_verdict_needs_three_seed_pairs_all_pointing_the_same_way() -> None:
    assert sig.verdict(sig.Comparison(2.0, 0.01, [2.0], 100)) == "too few seeds"
    assert sig.verdict(sig.Comparison(2.0, 0.01, [3.0, 3.5, -0.5], 100)) == "seeds disagree"
    assert sig.verdict(sig.Comparison(2.0, 0.01, [1.0, 2.0, 3.0], 100)) == "significant"
    assert sig.verdict(sig.Comparison(2.0, 0.2, [1.0, 2.0, 3.0], 100)) == "n.s."


def test_accuracy_bootstrap_of_per_image_correctness() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400)
    a = [truth > 0.05 for _ in range(3)]  # ~95 % right
    b = [truth > 0.25 for _ in range(3)]  # ~75 % right, wrong on a superset of a's mistakes
    c = sig.compare_accuracy(a, b, n_samples=300)
    assert c.delta == pytest.approx(np.mean(a[0]) - np.mean(b[0]))
    assert c.p_value < 0.01 and sig.verdict(c) == "significant"
    # one image of difference in 400 is no evidence
    b1 = [x.copy() for x in a]
    b1[0][np.flatnonzero(b1[0])[0]] = False
    assert sig.verdict(sig.compare_accuracy(a, b1, n_samples=300)) == "n.s."


def test_runs_on_different_test_items_are_refused() -> None:
    with pytest.raises(ValueError, match="same test items"):
        sig.compare_accuracy([[True, False]], [[True, False, True]])
    with pytest.raises(ValueError, match="same positive number"):
        sig.compare_accuracy([[True]], [])


def test_cross_validation_folds_are_resampled_each_on_its_own_images() -> None:
    rng = np.random.default_rng(1)
    truths = [rng.random(n) for n in (120, 119, 118)]  # three folds of unequal sizes
    a = [t > 0.05 for t in truths]
    b = [t > 0.2 for t in truths]
    with pytest.raises(ValueError, match="same test items"):
        sig.compare_accuracy(a, b)  # seeds share their test items; folds do not
    c = sig.compare_accuracy(a, b, n_samples=200, shared_items=False)
    assert c.pair_unit == "fold" and c.n_items == 357 and sig.verdict(c) == "significant"
    assert c.delta == pytest.approx(np.mean([x.mean() - y.mean() for x, y in zip(a, b)]))
    # by hand: fold k's own draws (seed + k), the mean over folds of each draw's difference
    samples = np.zeros(200)
    for k, (x, y) in enumerate(zip(a, b)):
        counts = sig.resample_counts(len(x), 200, sig.SEED + k)  # (200, items)
        samples += (counts @ x - counts @ y) / counts.sum(1)
    assert c.p_value == pytest.approx(sig.p_value(samples / 3, c.delta))


@pytest.mark.parametrize("df", range(1, 13))
@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.2, 4.5, -3.0])
def test_student_t_closed_form_equals_the_integrated_density(t, df) -> None:
    assert sig.student_t_two_sided(t, df) == pytest.approx(sig.student_t_two_sided_reference(t, df), abs=1e-7)


@pytest.mark.parametrize("t, df", [(12.706, 1), (4.303, 2), (2.776, 4), (2.262, 9), (2.086, 20)])
def test_student_t_gives_the_textbook_five_percent_critical_values(t, df) -> None:
    assert sig.student_t_two_sided(t, df) == pytest.approx(0.05, abs=2e-4)


def test_corrected_resampled_t_widens_the_plain_paired_t_by_the_training_overlap() -> None:
    deltas = [-0.69, 0.0, 1.39, 3.14, 1.05]  # five folds' differences, points
    mean, sd, j = np.mean(deltas), np.std(deltas, ddof=1), len(deltas)
    plain = sig.corrected_resampled_t(deltas, test_fraction=0.0)  # 1/J only: the ordinary paired t
    assert plain == pytest.approx(sig.student_t_two_sided(mean / (sd / np.sqrt(j)), j - 1))
    corrected = sig.corrected_resampled_t(deltas, test_fraction=1 / 4)  # 5 folds: n_test/n_train = 1/4
    assert corrected == pytest.approx(sig.student_t_two_sided(mean / (sd * np.sqrt(1 / j + 1 / 4)), j - 1))
    assert plain < 0.25 < corrected  # the overlap of the folds' training sets weakens the evidence
    # no spread, no test: identical folds say nothing about another partition
    assert sig.corrected_resampled_t([0.5, 0.5, 0.5], 0.25) == 1.0 and sig.corrected_resampled_t([0.0, 0.0], 0.25) == 1.0
    assert sig.student_t_two_sided(float("nan"), 4) == 1.0
    with pytest.raises(ValueError, match="at least 2 folds"):
        sig.corrected_resampled_t([1.0], 0.25)


def test_fold_comparisons_carry_the_corrected_t_and_need_it_below_alpha() -> None:
    rng = np.random.default_rng(2)
    truths = [rng.random(n) for n in (120, 119, 118)]
    a, b = [t > 0.05 for t in truths], [t > 0.2 for t in truths]
    c = sig.compare_accuracy(a, b, n_samples=200, shared_items=False, test_fraction=0.5)
    assert c.cv_p_value == pytest.approx(sig.corrected_resampled_t(c.pair_deltas, 0.5))
    assert sig.compare_accuracy(a, b, n_samples=200, shared_items=False).cv_p_value is None
    # two seeds on each of 3 folds of one partition: the t-test sees the 3 folds' mean differences
    twice = sig.compare_accuracy(a + a[::-1], b + b[::-1], n_samples=200, shared_items=False, test_fraction=0.5,
                                 folds=[0, 1, 2, 2, 1, 0])
    assert twice.pairs == 6 and twice.cv_p_value == pytest.approx(c.cv_p_value)
    folds = dict(pair_unit="fold")
    assert sig.verdict(sig.Comparison(1.0, 0.01, [0.5, 1.0, 1.5], 300, cv_p_value=0.2, **folds)) == "n.s. across folds"
    assert sig.verdict(sig.Comparison(1.0, 0.01, [-0.1, 1.0, 2.1], 300, cv_p_value=0.01, **folds)) == "folds disagree"
    assert sig.verdict(sig.Comparison(1.0, 0.01, [0.9, 1.0, 1.1], 300, cv_p_value=0.01, **folds)) == "significant"
