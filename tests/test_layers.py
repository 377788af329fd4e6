"""Shared layers: positional encodings (1-D and 2-D), DropPath, Residual, encoder/decoder blocks."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.errors import UserError
from attnlab.layers.positional import POSENC, make_posenc, sinusoid
from attnlab.layers.transformer import DecoderLayer, DropPath, EncoderLayer, FeedForward, Residual

# ----------------------------------------------------------------------------- positional encodings


def test_sinusoid_matches_the_papers_formula():
    d = 16
    codes = sinusoid(torch.arange(50), d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert codes[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert codes[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_sinusoidal_encoding_adds_codes_from_the_offset():
    enc = make_posenc("sinusoidal", 8)
    x = torch.zeros(2, 5, 8)
    assert torch.allclose(enc(x), sinusoid(torch.arange(5), 8).expand(2, 5, 8))
    # the offset gives the positions of later tokens (incremental decoding)
    assert torch.allclose(enc(x[:, :2], offset=3), enc(x)[:, 3:5])


def test_none_encoding_is_identity_and_registry_lists_names():
    x = torch.randn(2, 3, 8)
    assert make_posenc("none", 8)(x) is x
    with pytest.raises(UserError, match="valid choices: .*learned, none, sincos2d, sinusoidal"):
        make_posenc("no-such-encoding", 8)
    assert set(POSENC) >= {"none", "sinusoidal", "learned", "sincos2d"}


def test_sincos2d_depends_on_row_and_column_not_grid_width():
    enc = make_posenc("sincos2d", 16)
    narrow = enc.codes(12, (3, 4), 0, torch.device("cpu")).view(3, 4, 16)  # (h, w, D)
    wide = enc.codes(21, (3, 7), 0, torch.device("cpu")).view(3, 7, 16)
    assert torch.allclose(narrow, wide[:, :4])  # same (row, col) -> same code
    # every patch of a grid has its own code, and the halves encode row and column
    flat = wide.reshape(21, 16)
    assert torch.cdist(flat, flat).add(torch.eye(21)).min() > 1e-3
    assert torch.allclose(wide[1, 0, :8], wide[1, 5, :8]) and torch.allclose(wide[0, 2, 8:], wide[2, 2, 8:])
    # the 1-D index encoding instead depends on the width (row * w + col)
    sinus = make_posenc("sinusoidal", 16)
    assert not torch.allclose(sinus.codes(12, (3, 4), 0, None).view(3, 4, 16)[1, 0],
                              sinus.codes(21, (3, 7), 0, None).view(3, 7, 16)[1, 0])


def test_sincos2d_is_for_grids_only():
    with pytest.raises(UserError, match="image patches"):
        make_posenc("sincos2d", 16)(torch.zeros(1, 4, 16))
    with pytest.raises(UserError, match="divisible by 4"):
        make_posenc("sincos2d", 10)


def test_learned_1d_table_and_its_limit():
    enc = make_posenc("learned", 8, max_len=6)
    x = torch.zeros(1, 4, 8)
    assert torch.equal(enc(x, offset=2)[0], enc.table[2:6].detach())
    with pytest.raises(UserError, match="exceeds the learned positional table"):
        enc(x, offset=3)
    with pytest.raises(UserError, match="1-D"):
        enc(torch.zeros(1, 4, 8), grid=(2, 2))


def test_learned_2d_table_is_resampled_to_a_new_grid():
    enc = make_posenc("learned", 8, grid=(4, 4))
    same = enc.codes(16, (4, 4), 0, None)
    assert torch.equal(same, enc.table.reshape(16, 8))
    bigger = enc.codes(48, (8, 6), 0, None)
    assert bigger.shape == (48, 8)
    bigger.sum().backward()  # the resampled codes still train the table
    assert enc.table.grad is not None and enc.table.grad.abs().sum() > 0
    # resampling keeps a smooth table smooth: a constant table stays constant,
    # a table linear in the column index stays monotone in the column
    with torch.no_grad():
        enc.table.copy_(torch.arange(4.0).view(1, 4, 1).expand(4, 4, 8))
    wide = enc.codes(48, (6, 8), 0, None).view(6, 8, 8)
    assert torch.all(wide[:, 1:, 0] > wide[:, :-1, 0]) and torch.allclose(wide[0], wide[5])
    with pytest.raises(UserError, match="2-D"):
        enc(torch.zeros(1, 4, 8))


# ----------------------------------------------------------------------------- blocks


def test_droppath_drops_whole_examples_and_keeps_the_mean():
    torch.manual_seed(0)
    layer = DropPath(0.5)
    x = torch.ones(4000, 3, 2)
    y = layer(x)
    per_example = y.view(4000, -1)
    assert torch.all((per_example == 0).all(1) | (per_example == 2).all(1))  # all or nothing, rescaled
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)
    assert layer.eval()(x) is x and DropPath(0.0)(x) is x
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))


def test_residual_pre_and_post_norm():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8) * 5 + 3
    seen = {}

    def sub(h):
        seen["input"] = h
        return 2 * h, "extra"

    pre = Residual(8, "pre")
    out, extra = pre(x, sub)
    assert extra == "extra"
    assert torch.allclose(seen["input"], pre.norm(x))  # the sub-layer sees the normalised input
    assert torch.allclose(out, x + 2 * pre.norm(x))  # and the raw input is carried around it

    post = Residual(8, "post")
    out, _ = post(x, sub)
    assert torch.equal(seen["input"], x)
    assert torch.allclose(out, post.norm(3 * x))  # LayerNorm(x + Sublayer(x))
    assert torch.allclose(out.mean(-1), torch.zeros(2, 3), atol=1e-5)
    with pytest.raises(UserError, match="post, pre"):
        Residual(8, "middle")


def test_feedforward_is_position_wise():
    ff = FeedForward(8, 16)
    x = torch.randn(2, 5, 8)
    assert torch.allclose(ff(x)[:, 3], ff(x[:, 3:4])[:, 0], atol=1e-6)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_decoder_layer_cache_equals_full_pass(norm):
    torch.manual_seed(0)
    layer = DecoderLayer(16, 2, 32, norm=norm).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    full, _, _ = layer(x, memory)
    cache: dict = {}
    steps = [layer(x[:, t : t + 1], memory, cache=cache)[0] for t in range(5)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_encoder_layer_returns_weights_on_request():
    layer = EncoderLayer(16, 4, 32, spec="additive").eval()
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3]).unsqueeze(1)  # (B, 1, T)
    out, w = layer(torch.randn(2, 5, 16), mask=mask, need_weights=True)
    assert out.shape == (2, 5, 16) and w.shape == (2, 4, 5, 5)
    assert torch.all(w[1, :, :, 2:] == 0)
    assert layer(torch.randn(2, 5, 16), mask=mask)[1] is None
