"""Synthetic sequence tasks with known alignments: the attention gym's data (``data=synthetic``).

Each task maps a source sequence of symbols to a target sequence, and for each target token it
knows the **gold alignment**: the source position that token must be read from (-1 where no
single position is the answer). The translators train on them unchanged (they are a corpus of the
translation task, with the symbol tokenizer of :mod:`attnlab.data.symbols`), and the gym scores
their attention against the gold alignment (:mod:`attnlab.tasks.gym`).

Kinds (``data.kind``), for a source x_0 .. x_{n-1} of n = ``length`` symbols:

- ``copy``:    y_i = x_i,                        gold(i) = i
- ``reverse``: y_i = x_{n-1-i},                  gold(i) = n-1-i   (JoeyNMT's reverse task)
- ``sort``:    y = x sorted by the alphabet,     gold(i) = the i-th index of a stable argsort
- ``shift``:   y_i = x_{(i+k) mod n}, k = ``data.shift`` (a rotation), gold(i) = (i+k) mod n
- ``recall``:  associative recall (Ba et al. 2016; Zoology, Arora et al. 2023): n key-value
  pairs ``k_1 v_1 ... k_n v_n`` (distinct keys from all 52 letters, whatever ``num_symbols``
  says, so up to 52 pairs; digit values), then ``?`` and one of the keys; y = its value, gold =
  the position of that value
- ``count``:   the control: y = n written in decimal digits (``"1 2"`` for 12); no source position
  holds the answer, so gold = -1 everywhere and alignment accuracy is undefined

Sizes: ``data.train_size`` training examples with lengths uniform in ``data.train_len``
(inclusive), ``data.valid_size`` validation examples from the same range (for choosing), and
``data.test_size`` test examples at each of ``data.test_lengths``. Everything is drawn from
``data.seed`` (numpy's PCG64), so the same seed gives the same data on every machine; no valid or
test source also occurs in training.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from attnlab.data.text import DATASETS, ParallelData, Split
from attnlab.errors import UserError
from attnlab.registry import Registry

log = logging.getLogger(__name__)

LETTERS = string.ascii_lowercase + string.ascii_uppercase  # the symbol alphabet (52 at most)
DIGITS = string.digits  # values of recall, digits of count
QUERY = "?"  # recall: separates the pairs from the key asked for
MAX_TRIES = 20  # draws per wanted example before a small length space gives up on distinctness


@dataclass(frozen=True)
class Example:
    """One example: source and target symbols, and the gold source position of each target token."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    gold: tuple[int, ...]
    length: int  # the nominal length the example was drawn at (recall: number of pairs)

    def __post_init__(self) -> None:
        assert len(self.gold) == len(self.target), (self.target, self.gold)
        assert all(-1 <= g < len(self.source) for g in self.gold), (self.source, self.gold)


Generator = Callable[[np.random.Generator, int, "GymParams"], Example]
KINDS: Registry[Generator] = Registry("synthetic task kind")


@dataclass(frozen=True)
class GymParams:
    """What the generators need from the config: the alphabet size and the rotation."""

    num_symbols: int
    shift: int

    @property
    def alphabet(self) -> str:
        return LETTERS[: self.num_symbols]


def _symbols(rng: np.random.Generator, n: int, p: GymParams) -> list[str]:
    return [p.alphabet[i] for i in rng.integers(0, p.num_symbols, size=n)]


@KINDS.register("copy")
def copy_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    x = _symbols(rng, n, p)
    return Example(tuple(x), tuple(x), tuple(range(n)), n)


@KINDS.register("reverse")
def reverse_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    x = _symbols(rng, n, p)
    gold = tuple(range(n - 1, -1, -1))
    return Example(tuple(x), tuple(x[g] for g in gold), gold, n)


@KINDS.register("sort")
def sort_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    x = _symbols(rng, n, p)
    # stable: among equal symbols the earlier one comes first (one gold position per output)
    gold = tuple(sorted(range(n), key=lambda i: (p.alphabet.index(x[i]), i)))
    return Example(tuple(x), tuple(x[g] for g in gold), gold, n)


@KINDS.register("shift")
def shift_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    x = _symbols(rng, n, p)
    gold = tuple((i + p.shift) % n for i in range(n))
    return Example(tuple(x), tuple(x[g] for g in gold), gold, n)


@KINDS.register("recall")
def recall_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    keys = [LETTERS[i] for i in rng.permutation(len(LETTERS))[:n]]  # distinct keys
    values = [DIGITS[i] for i in rng.integers(0, len(DIGITS), size=n)]
    asked = int(rng.integers(0, n))
    source = [s for kv in zip(keys, values) for s in kv] + [QUERY, keys[asked]]
    return Example(tuple(source), (values[asked],), (2 * asked + 1,), n)


@KINDS.register("count")
def count_task(rng: np.random.Generator, n: int, p: GymParams) -> Example:
    x = _symbols(rng, n, p)
    digits = tuple(str(n))
    return Example(tuple(x), digits, (-1,) * len(digits), n)


def vocabulary(p: GymParams, kind: str = "") -> list[str]:
    """Every symbol ``kind`` can write (the tokenizer knows them all, seen in training or not)."""
    return list(LETTERS if kind == "recall" else p.alphabet) + list(DIGITS) + [QUERY]


# ----------------------------------------------------------------------------- splits


def check_config(cfg) -> None:  # cfg: SyntheticDataConfig
    """One-line errors for settings the generators cannot honour."""
    KINDS.get(str(cfg.kind))
    lo_hi = list(cfg.train_len)
    if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1]:
        raise UserError(f"data.train_len={lo_hi} must be [min,max] with 1 <= min <= max, e.g. data.train_len=[4,12]")
    if not list(cfg.test_lengths) or min(cfg.test_lengths) < 1:
        raise UserError(f"data.test_lengths={list(cfg.test_lengths)} must list positive lengths, e.g. [8,16,32]")
    if not 2 <= cfg.num_symbols <= len(LETTERS):
        raise UserError(f"data.num_symbols={cfg.num_symbols} must be in 2..{len(LETTERS)}")
    for key in ("train_size", "valid_size", "test_size"):
        if cfg[key] < 1:
            raise UserError(f"data.{key}={cfg[key]} must be positive")
    if cfg.kind == "recall" and max(lo_hi[1], *cfg.test_lengths) > len(LETTERS):
        raise UserError(
            f"data.kind=recall needs distinct keys: the longest length ({max(lo_hi[1], *cfg.test_lengths)} pairs) "
            f"exceeds the {len(LETTERS)} letters; shorten data.train_len or data.test_lengths"
        )


def draw(
    kind: str, p: GymParams, lengths: list[int], rng: np.random.Generator, avoid: set[tuple[str, ...]] | None = None
) -> list[Example]:
    """One example per entry of ``lengths``; sources in ``avoid`` (and repeats) are redrawn, up to
    :data:`MAX_TRIES` times per example (tiny length spaces then yield fewer examples)."""
    make = KINDS.get(kind)
    taken = set() if avoid is None else avoid
    out = []
    for n in lengths:
        for _ in range(MAX_TRIES):
            ex = make(rng, int(n), p)
            if ex.source not in taken:
                break
        else:
            continue
        if avoid is not None:
            taken.add(ex.source)
        out.append(ex)
    return out


def to_split(examples: list[Example]) -> Split:
    """A test or valid :class:`Split` that carries the gold alignments and nominal lengths."""
    return Split(
        [" ".join(e.source) for e in examples],
        [[" ".join(e.target)] for e in examples],
        alignments=[list(e.gold) for e in examples],
        lengths=[e.length for e in examples],
    )


@DATASETS.register("synthetic")
def make_synthetic(cfg) -> ParallelData:  # cfg: SyntheticDataConfig
    """The three splits of ``data.kind`` (see the module docstring)."""
    check_config(cfg)
    p = GymParams(int(cfg.num_symbols), int(cfg.shift))
    rng = np.random.default_rng(int(cfg.seed))
    lo, hi = (int(v) for v in cfg.train_len)
    train = draw(str(cfg.kind), p, list(rng.integers(lo, hi + 1, size=int(cfg.train_size))), rng)
    seen = {e.source for e in train}
    valid = draw(str(cfg.kind), p, list(rng.integers(lo, hi + 1, size=int(cfg.valid_size))), rng, seen)
    test = draw(str(cfg.kind), p, [n for n in cfg.test_lengths for _ in range(int(cfg.test_size))], rng, seen)
    wanted = int(cfg.valid_size) + int(cfg.test_size) * len(cfg.test_lengths)
    if len(valid) + len(test) < wanted:
        log.warning("%d valid/test examples not drawn: their lengths have too few sources outside training",
                    wanted - len(valid) - len(test))
    if not valid or not test:
        raise UserError("the valid or test split is empty: every short source also occurs in training; "
                        "raise data.num_symbols or the lengths, or lower data.train_size")
    train_split = Split([" ".join(e.source) for e in train], [[" ".join(e.target)] for e in train])
    return ParallelData(str(cfg.src_lang), str(cfg.tgt_lang), train_split, to_split(valid), to_split(test),
                        symbols=vocabulary(p, str(cfg.kind)))
