"""The shipped 8x8 digits: read without scikit-learn, identical to scikit-learn's copy."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from attnlab.data.digits import DIGITS_FILE, load_digits


def test_the_shipped_digits_and_their_attribution():
    digits = load_digits()
    assert digits.images.shape == (1797, 8, 8) and digits.target.shape == (1797,)
    assert digits.images.min() == 0 and digits.images.max() == 16
    assert np.bincount(digits.target).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert "CC BY 4.0" in (DIGITS_FILE.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_the_vision_data_loads_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # any import of scikit-learn fails
    from attnlab.config import ImageDataConfig
    from attnlab.data.image_readers import load_images

    data = load_images(ImageDataConfig())
    assert (len(data.train), len(data.valid), len(data.test)) == (1294, 144, 359)


def test_same_as_scikit_learn_where_installed():
    datasets = pytest.importorskip("sklearn.datasets")
    theirs = datasets.load_digits()
    assert np.array_equal(load_digits().images, theirs.images) and np.array_equal(load_digits().target, theirs.target)
