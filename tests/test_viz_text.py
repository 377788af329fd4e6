"""Source x target attention heatmaps."""

import pytest
import torch
from PIL import Image

from attnlab.viz.text import plot_attention


def test_heatmap_is_a_png_whose_size_grows_with_the_sentences(tmp_path):
    small = plot_attention(torch.softmax(torch.randn(3, 4), -1), ["▁Ich", "▁bin", "▁da", "</s>"],
                           ["▁I", "'m", "</s>"], tmp_path / "a" / "small.png", "Ich bin da -> I'm")
    big = plot_attention(torch.softmax(torch.randn(9, 12), -1), [f"s{i}" for i in range(12)],
                         [f"t{i}" for i in range(9)], tmp_path / "big.png")
    with Image.open(small) as a, Image.open(big) as b:
        assert a.format == b.format == "PNG"
        assert b.size[0] > a.size[0] and b.size[1] > a.size[1]


def test_shape_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        plot_attention(torch.zeros(2, 3), ["a", "b"], ["x", "y"], tmp_path / "x.png")
