"""Is a difference between two variants more than chance? Paired bootstrap resampling over test items.

The test of Koehn (2004) as sacreBLEU implements it (``sacrebleu --paired-bs``): draw the test
items (sentences, images) with replacement ``n_samples`` times, score both systems on each
draw, and ask how often the difference of the draws, centred on its mean, is at least as large
as the difference actually observed (the p-value, with sacreBLEU's +1 correction). Corpus
metrics (BLEU, chrF) are recomputed from per-sentence sufficient statistics, so a draw costs one
matrix product, not a re-scoring.

Several seeds: a variant's runs are *paired* with the other variant's runs by seed (seed s with
seed s; runs without a partner are left out), every pair is scored on the *same* draws of test
items, and the statistic is the mean over pairs of ``score(A_s) - score(B_s)``: the difference
of the two variants' seed means, resampled over the test items the runs share. This accounts
for the variance of the test set, not for that between seeds; the seed spread is reported
beside it (mean +- std) and :func:`verdict` asks, besides p < alpha, that at least
``min_seeds`` pairs exist and that every pair differs in the same direction.

Cross-validation (``shared_items=False``): pair k is fold k of both variants, each fold with its own
validation items, so each pair's items are drawn on their own (pair k with ``seed + k``) and the
statistic is the same mean over pairs. Folds share most of their training images, so their pairs
are less independent than seeds, and a bootstrap over the items alone overstates the evidence.
Given the folds' test-to-training ratio, each such comparison also carries the **corrected
resampled t-test** of Nadeau & Bengio (2003, "Inference for the generalization error") on the
pairs' differences d_1..d_J:

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),   J - 1 degrees of freedom

whose n_test/n_train term accounts for the training sets' overlap. :func:`verdict` then asks that
both p-values be below alpha. attnlab's folds are one fixed partition (``data.cv_folds``), so the
runs of several seeds on one fold are averaged first: J is the number of folds, not of runs.

With one pair and the default settings the p-value equals ``sacrebleu``'s ``PairedTest(...,
test_type="bs")`` for the same pair (tested): :func:`paired_bootstrap_reference` is that slow path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# sacreBLEU's defaults: 1000 resamples, seed 12345 (SACREBLEU_SEED)
N_SAMPLES = 1000
SEED = 12345
ALPHA = 0.05
MIN_SEEDS = 3

ScoreFn = Callable[[np.ndarray], np.ndarray]  # (draws, k) summed statistics -> (draws,) scores


@dataclass
class Comparison:
    """A against B: the mean difference over paired seeds, its p-value, and each pair's difference."""

    delta: float  # mean over pairs of score(A_s) - score(B_s)
    p_value: float
    pair_deltas: list[float]
    n_items: int  # test items resampled (summed over the pairs when each pair has its own)
    pair_unit: str = "seed"  # what a pair is: "seed", or "fold" under cross-validation
    cv_p_value: float | None = None  # folds: the corrected resampled t-test's p (None: not computed)

    @property
    def pairs(self) -> int:
        return len(self.pair_deltas)

    @property
    def same_sign(self) -> bool:
        """Every pair differs in the direction of the mean difference (and none is zero)."""
        return all(np.sign(d) == np.sign(self.delta) != 0 for d in self.pair_deltas)


def verdict(c: Comparison, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS) -> str:
    """``"significant"``, or why not: ``"n.s."`` (p >= alpha), ``"n.s. across folds"`` (the
    corrected resampled t-test's p >= alpha), ``"seeds disagree"`` or ``"folds disagree"``,
    ``"too few seeds"`` (p < alpha with fewer than ``min_seeds`` pairs)."""
    if c.p_value >= alpha:
        return "n.s."
    if c.cv_p_value is not None and c.cv_p_value >= alpha:
        return "n.s. across folds"
    if not c.same_sign:
        return f"{c.pair_unit}s disagree"
    if c.pairs < min_seeds:
        return "too few seeds"
    return "significant"


def student_t_two_sided(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (integer) degrees of freedom: Abramowitz & Stegun
    (1964) 26.7.3 (odd df) and 26.7.4 (even df), finite sums in theta = atan(|t| / sqrt(df))."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if math.isnan(t):
        return 1.0  # no statistic, no evidence
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2, total = math.cos(theta) ** 2, 0.0
    if df % 2:  # A = 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), (df - 3) / 2 terms after 1
        term = 1.0
        for k in range(1, (df - 3) // 2 + 2):
            total += term
            term *= 2 * k / (2 * k + 1) * cos2
        inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)  # df = 1: no terms, total 0
    else:  # A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), (df - 2) / 2 terms after 1
        term = 1.0
        for k in range(1, (df - 2) // 2 + 2):
            total += term
            term *= (2 * k - 1) / (2 * k) * cos2
        inside = math.sin(theta) * total
    return min(1.0, max(0.0, 1.0 - inside))


def student_t_two_sided_reference(t: float, df: int, steps: int = 20000) -> float:
    """The slow path: 1 - the integral of Student's t density over [-|t|, |t|] (Simpson's rule)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    xs = np.linspace(0.0, abs(t), steps + 1)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(xs**2 / df))
    weights = np.ones(steps + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return float(1.0 - 2.0 * (abs(t) / steps / 3.0) * np.dot(weights, density))


def corrected_resampled_t(deltas: Sequence[float], test_fraction: float) -> float:
    """Two-sided p of the mean of per-fold differences ``deltas`` under the corrected resampled
    t-test (Nadeau & Bengio 2003, the "corrected resampled t" statistic): var(mean) =
    (1/J + n_test/n_train) * var(d), J - 1 degrees of freedom. ``test_fraction`` is
    n_test/n_train, about 1/(K-1) for K-fold cross-validation. Differences without spread cannot
    be tested (p = 1): identical folds say nothing about another partition."""
    d = np.asarray(deltas, dtype=np.float64)
    if len(d) < 2:
        raise ValueError(f"the corrected t-test needs at least 2 folds, got {len(d)}")
    mean, var = float(d.mean()), float(d.var(ddof=1))
    if not var > 0.0:
        return 1.0
    return student_t_two_sided(mean / math.sqrt((1.0 / len(d) + test_fraction) * var), len(d) - 1)


def resample_counts(n_items: int, n_samples: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_samples, n_items): how often each item is drawn in each resample; the draws are
    sacreBLEU's (``default_rng(seed).choice(n, size=(n_samples, n))``)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(n_items, size=(n_samples, n_items), replace=True)
    counts = np.zeros((n_samples, n_items), dtype=np.float64)
    np.add.at(counts, (np.arange(n_samples)[:, None], idx), 1.0)
    return counts


def p_value(sample_deltas: np.ndarray, observed: float) -> float:
    """sacreBLEU's paired-bootstrap p-value: the share of centred |differences| above |observed|.
    No observed difference is no evidence (p = 1; sacreBLEU's formula would give 1 / (n + 1))."""
    if observed == 0:
        return 1.0
    spread = np.abs(sample_deltas)
    centred = spread - spread.mean()
    return float((np.sum(centred > abs(observed)) + 1) / (len(centred) + 1))


def paired_bootstrap(
    stats_a: Sequence[np.ndarray],
    stats_b: Sequence[np.ndarray],
    score: ScoreFn,
    n_samples: int = N_SAMPLES,
    seed: int = SEED,
    shared_items: bool = True,
    test_fraction: float | None = None,
    folds: Sequence[int] | None = None,
) -> Comparison:
    """Paired bootstrap of paired runs: ``stats_a[s]`` and ``stats_b[s]`` are (items, k)
    per-item sufficient statistics of pair s; ``score`` maps summed statistics (draws, k) to
    scores (draws,). ``shared_items``: every pair is scored on the same test items (seeds; one
    draw of items for all pairs), else each pair on its own (cross-validation folds); then, with
    ``test_fraction`` (n_test/n_train of a fold) and 2+ folds, the corrected resampled t-test too,
    on the pairs' differences averaged per fold (``folds``: each pair's fold; None: one per pair)."""
    if not stats_a or len(stats_a) != len(stats_b):
        raise ValueError(f"need the same positive number of runs on both sides, got {len(stats_a)} and {len(stats_b)}")
    if any(len(a) != len(b) for a, b in zip(stats_a, stats_b)):
        raise ValueError("the two runs of a pair must be scored on the same test items")
    if shared_items and any(len(a) != len(stats_a[0]) for a in stats_a):
        raise ValueError("every run of a comparison must be scored on the same test items")
    shared = resample_counts(len(stats_a[0]), n_samples, seed) if shared_items else None
    pair_deltas, samples = [], np.zeros(n_samples)
    for k, (a, b) in enumerate(zip(stats_a, stats_b)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        counts = shared if shared is not None else resample_counts(len(a), n_samples, seed + k)  # (n_samples, items)
        full = score(np.stack([a.sum(0), b.sum(0)]))  # (2,)
        pair_deltas.append(float(full[0] - full[1]))
        samples += score(counts @ a) - score(counts @ b)  # (n_samples,)
    delta = float(np.mean(pair_deltas))
    n_items = len(stats_a[0]) if shared_items else sum(len(a) for a in stats_a)
    cv_p = None
    if not shared_items and test_fraction is not None:
        fold_of = list(folds) if folds is not None else list(range(len(pair_deltas)))
        by_fold = [float(np.mean([d for d, f in zip(pair_deltas, fold_of) if f == k])) for k in dict.fromkeys(fold_of)]
        if len(by_fold) >= 2:
            cv_p = corrected_resampled_t(by_fold, test_fraction)
    return Comparison(delta, p_value(samples / len(stats_a), delta), pair_deltas, n_items,
                      "seed" if shared_items else "fold", cv_p)


# ----------------------------------------------------------------------------- metrics


def accuracy_stats(correct: Sequence[bool]) -> np.ndarray:
    """(items, 2): 1 where the prediction is right, and 1 (the item's count)."""
    right = np.asarray(correct, dtype=np.float64).reshape(-1, 1)
    return np.concatenate([right, np.ones_like(right)], axis=1)


def accuracy_score(summed: np.ndarray) -> np.ndarray:
    """Summed :func:`accuracy_stats` (draws, 2) -> accuracy of each draw."""
    return summed[:, 0] / summed[:, 1]


def translation_metric(name: str):
    """A fresh sacreBLEU metric object (``bleu`` or ``chrf``) with attnlab's settings
    (:mod:`attnlab.metrics`)."""
    from sacrebleu.metrics import BLEU, CHRF

    metrics = {"bleu": BLEU, "chrf": CHRF}
    if name not in metrics:
        raise ValueError(f"no paired test for metric {name}; valid: {', '.join(metrics)}, accuracy")
    return metrics[name]()


def translation_stats(metric, hypotheses: Sequence[str], reference_streams: list[list[str | None]]) -> np.ndarray:
    """(sentences, k): sacreBLEU's per-sentence sufficient statistics (n-gram matches, lengths)."""
    return np.asarray(metric._extract_corpus_statistics(list(hypotheses), reference_streams), dtype=np.float64)


def translation_score(metric) -> ScoreFn:
    """Summed sufficient statistics -> corpus scores, one per row."""
    return lambda summed: np.array([metric._compute_score_from_stats(list(row)).score for row in summed])


def compare_translations(
    hyps_a: Sequence[Sequence[str]],
    hyps_b: Sequence[Sequence[str]],
    references: list[list[str | None]],
    metric_name: str = "bleu",
    n_samples: int = N_SAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Seed-paired translations (``hyps_a[s]``, ``hyps_b[s]``) of one test set against its
    reference streams (:func:`attnlab.metrics.reference_streams`)."""
    metric = translation_metric(metric_name)
    stats_a = [translation_stats(metric, h, references) for h in hyps_a]
    stats_b = [translation_stats(metric, h, references) for h in hyps_b]
    return paired_bootstrap(stats_a, stats_b, translation_score(metric), n_samples, seed)


def compare_accuracy(
    correct_a: Sequence[Sequence[bool]], correct_b: Sequence[Sequence[bool]], n_samples: int = N_SAMPLES,
    seed: int = SEED, shared_items: bool = True, test_fraction: float | None = None,
    folds: Sequence[int] | None = None,
) -> Comparison:
    """Paired per-image correctness of two variants: seed pairs on one test set, or
    (``shared_items=False``) cross-validation folds, each pair on its own fold's images
    (``test_fraction``, ``folds``: for the corrected resampled t-test, :func:`paired_bootstrap`)."""
    stats_a, stats_b = [accuracy_stats(c) for c in correct_a], [accuracy_stats(c) for c in correct_b]
    return paired_bootstrap(stats_a, stats_b, accuracy_score, n_samples, seed, shared_items, test_fraction, folds)


def paired_bootstrap_reference(
    hyps_a: Sequence[str], hyps_b: Sequence[str], references: list[list[str | None]], metric_name: str = "bleu",
    n_samples: int = N_SAMPLES, seed: int = SEED,
) -> float:
    """The slow path: sacreBLEU's own PairedTest (B as the baseline) on one pair; its p-value."""
    import os

    from sacrebleu.significance import PairedTest

    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)  # read when PairedTest is built
    try:
        test = PairedTest([("baseline", list(hyps_b)), ("system", list(hyps_a))],
                          {metric_name: translation_metric(metric_name)},
                          references=references, test_type="bs", n_samples=n_samples)
        _, results = test()
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old
    (name,) = [k for k in results if k != "System"]
    return float(results[name][1].p_value)


__all__ = [
    "ALPHA", "MIN_SEEDS", "N_SAMPLES", "SEED", "Comparison", "compare_accuracy", "compare_translations",
    "corrected_resampled_t", "paired_bootstrap", "paired_bootstrap_reference", "p_value", "resample_counts",
    "student_t_two_sided", "student_t_two_sided_reference", "verdict",
]
