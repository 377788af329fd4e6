"""The 8x8 handwritten digits shipped with attnlab (UCI optdigits, CC BY 4.0; see
``attnlab/data/optdigits/ATTRIBUTION.md``), read without scikit-learn.

:func:`load_digits` returns what ``sklearn.datasets.load_digits()`` returns for the fields attnlab
uses: ``images`` (1797, 8, 8) float64 counts in 0..16 and ``target`` (1797,) int64, same order.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS_FILE = Path(__file__).parent / "optdigits" / "digits.csv.gz"
LEVELS = 16  # each pixel counts the "on" pixels of a 4x4 block: 0..16


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # (N, 8, 8) float64 in 0..16
    target: np.ndarray  # (N,) int64 in 0..9


def load_digits() -> Digits:
    """The 1797 digits, read from the shipped file (a few milliseconds)."""
    with gzip.open(DIGITS_FILE, "rt", encoding="ascii") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (N, 65): 64 pixels, then the label
    return Digits(rows[:, :64].reshape(-1, 8, 8).astype(np.float64), rows[:, 64].copy())
