"""Build attnlab/data/optdigits/digits.csv.gz, the 8x8 digits that task=vision trains on by default.

The data are the test part of the UCI "Optical Recognition of Handwritten Digits" set (Alpaydin &
Kaynak 1998; CC BY 4.0), 1797 images of 8x8 counts in 0..16, as scikit-learn ships them
(sklearn/datasets/data/digits.csv.gz: 64 pixel columns, row by row, then the label). attnlab ships
the same rows so that it needs no scikit-learn; this script was run once with scikit-learn
installed and checks what it copies:

    pip install scikit-learn && python scripts/make_digits.py
"""

from __future__ import annotations

import gzip
import io
from importlib import resources
from pathlib import Path

import numpy as np

TARGET = Path(__file__).resolve().parents[1] / "attnlab" / "data" / "optdigits" / "digits.csv.gz"


def main() -> None:
    source = resources.files("sklearn.datasets") / "data" / "digits.csv.gz"
    with gzip.open(io.BytesIO(source.read_bytes()), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    assert rows.shape == (1797, 65), rows.shape
    assert rows[:, :64].min() == 0 and rows[:, :64].max() == 16 and set(rows[:, 64]) == set(range(10))
    text = "".join(",".join(map(str, row)) + "\n" for row in rows)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with open(TARGET, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:  # reproducible bytes
        f.write(text.encode("ascii"))
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes, {len(rows)} images)")


if __name__ == "__main__":
    main()
