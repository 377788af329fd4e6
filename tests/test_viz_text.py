"""Source x target attention heatmaps."""

import pytest
import torch
from PIL import Image

from attnlab.viz.text import plot_attention, plot_attention_grid


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


def test_grid_has_a_row_per_layer_and_a_column_per_head_plus_their_mean(tmp_path):
    def weights(layers, heads):
        return [torch.softmax(torch.randn(heads, 3, 5), -1) for _ in range(layers)]

    rows, cols = ["a", "b", "</s>"], ["w", "x", "y", "z", "</s>"]
    one = plot_attention_grid(weights(1, 2), rows, cols, tmp_path / "one.png", "1 x 2")
    wide = plot_attention_grid(weights(1, 4), rows, cols, tmp_path / "wide.png")
    tall = plot_attention_grid(weights(3, 2), rows, cols, tmp_path / "tall.png", rows="output", cols="source")
    with Image.open(one) as a, Image.open(wide) as w, Image.open(tall) as t:
        assert w.size[0] > a.size[0] and w.size[1] == a.size[1]  # more heads: wider
        assert t.size[1] > a.size[1] and t.size[0] == a.size[0]  # more layers: taller


def test_grid_refuses_a_shape_mismatch_and_no_layers(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        plot_attention_grid([torch.zeros(2, 2, 3)], ["a", "b"], ["x", "y"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no layers"):
        plot_attention_grid([], ["a"], ["x"], tmp_path / "x.png")
