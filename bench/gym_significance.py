"""Paired test of two attention-gym variants on exact match, at chosen test lengths.

    python bench/gym_significance.py --a RUN_A_SEED0 RUN_A_SEED1 ... --b RUN_B_SEED0 ... [--lengths 40] [--in-range]

Each RUN is a run folder of ``python -m attnlab data=synthetic ...`` (its ``hypotheses.txt`` and
``.hydra/config.yaml``). The test split is drawn again from the run's data config (the same
``data.seed`` gives the same sequences), each test sequence scored 1 if the output equals the
reference, and the two variants compared with attnlab's seed-paired bootstrap over test items
(:func:`attnlab.significance.compare_accuracy`; runs paired in the order given). Prints the mean
exact match of each variant, the difference, its p-value and the verdict.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from attnlab.config import SyntheticDataConfig
from attnlab.data.text import load_corpus
from attnlab.significance import compare_accuracy, verdict


def correct(run: Path, lengths: set[int] | None, in_range: bool) -> list[bool]:
    cfg = OmegaConf.merge(OmegaConf.structured(SyntheticDataConfig), OmegaConf.load(run / ".hydra" / "config.yaml").data)
    test = load_corpus(cfg).test
    hyps = (run / "hypotheses.txt").read_text(encoding="utf-8").split("\n")[: len(test)]
    lo, hi = cfg.train_len
    keep = [i for i, n in enumerate(test.lengths)
            if (lengths is None or n in lengths) and (not in_range or lo <= n <= hi)]
    return [hyps[i].split() == test.references[i][0].split() for i in keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True)
    parser.add_argument("--b", nargs="+", type=Path, required=True)
    parser.add_argument("--lengths", nargs="*", type=int, help="only these test lengths")
    parser.add_argument("--in-range", action="store_true", help="only the test lengths inside the training range")
    args = parser.parse_args()
    lengths = set(args.lengths) if args.lengths else None
    a = [correct(r, lengths, args.in_range) for r in args.a]
    b = [correct(r, lengths, args.in_range) for r in args.b]
    pairs = min(len(a), len(b))
    test = compare_accuracy(a[:pairs], b[:pairs])
    mean = lambda runs: sum(sum(c) / len(c) for c in runs) / len(runs)  # noqa: E731
    print(f"A {mean(a):.4f}  B {mean(b):.4f}  A-B {test.delta:+.4f}  p {test.p_value:.4f}  "
          f"seed pairs {test.pairs}  items {test.n_items}  -> {verdict(test)}")


if __name__ == "__main__":
    main()
