"""Attention variants (scores x positions x window x kv_heads x backends), generated from the
registries so that a new variant is tested without editing a list."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.attention import BACKENDS, POSITIONS, SCORES, Layout, MultiHeadAttention, check_spec
from attnlab.attention.positions import RotaryPosition, alibi_slopes, t5_bucket, window_allows
from attnlab.attention.scores import linear_context, make_score
from attnlab.config import AttentionConfig
from attnlab.errors import UserError
from attnlab.models.transformer import Transformer
from attnlab.models.vit import ViT


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is fastest, and two threads on a loaded machine are far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _valid(spec: AttentionConfig, model: str = "transformer") -> bool:
    try:
        check_spec(spec, model, 4, 16)
    except UserError:
        return False
    return True


def variants() -> list[AttentionConfig]:
    """Each score, each position, a window, MQA, GQA, and mixes of them (valid ones only)."""
    out = [AttentionConfig(score=s) for s in SCORES.names()]
    out += [AttentionConfig(position=p) for p in POSITIONS.names() if p != "none"]
    out += [AttentionConfig(window=2), AttentionConfig(kv_heads=1), AttentionConfig(kv_heads=2)]
    for i, (s, p) in enumerate((s, p) for s in SCORES.names() for p in POSITIONS.names() if p != "none"):
        out.append(AttentionConfig(score=s, position=p, window=2 * (i % 2), kv_heads=(0, 1, 2)[i % 3]))
    return [v for v in out if _valid(v)]


def name(spec: AttentionConfig) -> str:
    default = AttentionConfig()
    keys = [f"{f.name}={getattr(spec, f.name)}" for f in dataclasses.fields(spec)
            if getattr(spec, f.name) != getattr(default, f.name)]
    return ",".join(keys) or "default"


VARIANTS = variants()
SINGLE = [v for v in VARIANTS if name(v).count("=") == 1]  # one key away from the default
GRID = Layout(grid=(3, 4), prefix=1)  # CLS + a 3 x 4 patch grid


def _mha(spec: AttentionConfig, grid: bool, **kw) -> MultiHeadAttention:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, spec, causal=not grid, grid=grid, **kw)
    with torch.no_grad():  # a non-zero relative table, so that the bias matters in the tests
        for n, p in mha.named_parameters():
            if n.endswith("table"):
                p.normal_()
    return mha


def _run(mha: MultiHeadAttention, grid: bool, x: Tensor, mask, **kw):
    if grid:
        return mha(x, mask=mask, layout=GRID, **kw)
    return mha(x, mask=mask, causal=True, **kw)


Tensor = torch.Tensor


def _inputs(grid: bool):
    g = torch.Generator().manual_seed(1)
    t = 13 if grid else 7
    x = torch.randn(2, t, 16, generator=g)
    mask = torch.ones(2, 1, t, dtype=torch.bool)
    mask[1, 0, t - 3 :] = False  # padding keys (padded patches / target padding)
    return x, mask


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b not in ("math", "flex")])
@pytest.mark.parametrize("grid", [False, True], ids=["text", "grid"])
@pytest.mark.parametrize("spec", VARIANTS, ids=name)
def test_every_variant_and_backend_equals_the_math_path_forward_and_backward(spec, grid, backend):
    if backend == "sdpa" and not _valid(dataclasses.replace(spec, backend="sdpa")):
        pytest.skip("no dot-product form: the config check refuses this backend")
    x, mask = _inputs(grid)
    results = []
    for b in (backend, "math"):
        mha = _mha(dataclasses.replace(spec, backend=b), grid)
        leaf = x.clone().requires_grad_(True)
        out, _ = _run(mha, grid, leaf, mask)
        (out * torch.linspace(-1, 1, 16)).sum().backward()
        results.append((out, [leaf.grad] + [p.grad for p in mha.parameters()]))
    (out_b, grads_b), (out_m, grads_m) = results
    assert torch.allclose(out_b, out_m, atol=1e-5, rtol=1e-4)
    for gb, gm in zip(grads_b, grads_m):
        assert (gb is None) == (gm is None)
        if gb is not None:
            assert torch.allclose(gb, gm, atol=1e-5, rtol=1e-4)


FLEX = [v for v in VARIANTS if _valid(dataclasses.replace(v, backend="flex")) and v.position != "none"]


@pytest.mark.parametrize("grid", [False, True], ids=["text", "grid"])
@pytest.mark.parametrize("spec", FLEX[:4], ids=name)
def test_flex_equals_the_math_path_forward(spec, grid):
    """FlexAttention (score_mod / mask_mod from the same functions); no backward on the CPU."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    x, mask = _inputs(grid)
    with torch.no_grad():
        flex, _ = _run(_mha(dataclasses.replace(spec, backend="flex"), grid), grid, x, mask)
        math_, _ = _run(_mha(dataclasses.replace(spec, backend="math"), grid), grid, x, mask)
    assert torch.allclose(flex, math_, atol=1e-5)


def test_flex_refuses_training_on_the_cpu_and_a_score_without_dot_form():
    mha = _mha(AttentionConfig(backend="flex"), False)
    with pytest.raises(UserError, match="no backward pass on the CPU"):
        mha(torch.randn(1, 3, 16), causal=True)
    with pytest.raises(UserError, match="dot-product form"):
        _mha(AttentionConfig(score="additive", backend="flex"), False)(torch.randn(1, 3, 16))


# ------------------------------------------------------------------ positions by hand


def test_rope_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    rope = RotaryPosition(1, 8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> Tensor:
        layout = Layout()
        rq = rope.rotate(q, torch.tensor([m]), layout)
        rk = rope.rotate(k, torch.tensor([n]), layout)
        return (rq * rk).sum()

    assert torch.allclose(score(3, 1), score(10, 8), atol=1e-5)
    assert torch.allclose(score(0, 0), (q * k).sum(), atol=1e-6)  # position 0 is not rotated
    assert not torch.allclose(score(3, 1), score(1, 3), atol=1e-3)


def test_rope_2d_scores_depend_only_on_dy_dx_and_cls_is_untouched():
    torch.manual_seed(0)
    rope = RotaryPosition(1, 8, grid=True)
    layout = Layout(grid=(5, 5), prefix=1)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def token(r: int, c: int) -> int:
        return 1 + r * 5 + c

    def score(a: int, b: int) -> Tensor:
        return (rope.rotate(q, torch.tensor([a]), layout) * rope.rotate(k, torch.tensor([b]), layout)).sum()

    assert torch.allclose(score(token(2, 3), token(1, 1)), score(token(4, 4), token(3, 2)), atol=1e-5)  # (dy, dx) = (1, 2)
    assert not torch.allclose(score(token(2, 3), token(1, 1)), score(token(3, 2), token(1, 1)), atol=1e-3)
    assert torch.equal(rope.rotate(q, torch.tensor([0]), layout), q)  # the CLS token


def test_alibi_slopes_and_biases_by_hand():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -i for i in range(1, 9)]))
    # 6 heads: the 4-head slopes, then every other slope of 8 heads (Press et al.'s code)
    assert torch.allclose(alibi_slopes(6), torch.tensor([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]))
    alibi = POSITIONS.get("alibi")(2, 4)  # slopes 1/16, 1/256
    text = alibi.bias(Layout())
    assert torch.allclose(text(torch.tensor(0), torch.tensor(3), torch.tensor(1)), torch.tensor(-2 / 16))
    assert torch.allclose(text(torch.tensor(1), torch.tensor(1), torch.tensor(4)), torch.tensor(-3 / 256))
    grid = alibi.bias(Layout(grid=(2, 2), prefix=1))  # tokens: 0 CLS, 1 (0,0), 2 (0,1), 3 (1,0), 4 (1,1)
    assert torch.allclose(grid(torch.tensor(0), torch.tensor(1), torch.tensor(4)), torch.tensor(-math.sqrt(2) / 16))
    assert torch.allclose(grid(torch.tensor(0), torch.tensor(2), torch.tensor(3)), torch.tensor(-math.sqrt(2) / 16))
    assert grid(torch.tensor(0), torch.tensor(0), torch.tensor(4)).item() == 0.0  # CLS: no bias


def test_t5_buckets_by_hand():
    rel = torch.tensor([0, -1, 1, -8, -127, -1000, 3])  # key - query
    # bidirectional, 32 buckets: 16 per direction, 8 exact, then log-spaced up to 128
    assert t5_bucket(rel, True, 32, 128).tolist() == [0, 1, 17, 8, 15, 15, 19]
    # causal: all 32 buckets for the past, 16 exact; a later key shares bucket 0
    causal = t5_bucket(torch.tensor([3, 0, -15, -16, -20, -127]), False, 32, 128)
    assert causal.tolist() == [0, 0, 15, 16, 17, 31]


def test_relative_grid_index_by_hand():
    rel = POSITIONS.get("relative")(1, 4, grid=True, spec=AttentionConfig(rel_grid_radius=1))
    layout = Layout(grid=(3, 3), prefix=1)  # tokens: 0 CLS, then 1..9 row-major
    idx = rel.index(layout, torch.arange(10).view(10, 1), torch.arange(10).view(1, 10))
    side = 3
    assert idx[5, 5] == 1 * side + 1  # (dy, dx) = (0, 0): the centre cell
    assert idx[1, 9] == 2 * side + 2  # (2, 2) clipped to (1, 1)
    assert idx[9, 1] == 0  # (-2, -2) clipped to (-1, -1)
    assert (idx[0, 0], idx[0, 3], idx[3, 0]) == (9 + 2, 9 + 0, 9 + 1)  # CLS-CLS, CLS->patch, patch->CLS


def test_window_masks_by_hand():
    text = window_allows(1, Layout())(torch.arange(4).view(4, 1), torch.arange(4).view(1, 4))
    assert text.int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    layout = Layout(grid=(3, 3), prefix=1)
    grid = window_allows(1, layout)(torch.arange(10).view(10, 1), torch.arange(10).view(1, 10))
    assert grid[0].all() and grid[:, 0].all()  # the CLS token sees and is seen by all
    assert grid[5].sum() == 10  # the centre patch: its 3 x 3 neighbourhood + CLS
    assert grid[1].int().tolist() == [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]  # corner (0,0): 4 patches + CLS


def test_window_in_the_decoder_is_still_causal():
    mha = _mha(AttentionConfig(window=1), False)
    _, w = mha(torch.randn(1, 5, 16), causal=True, need_weights=True)
    visible = (w[0, 0] > 0).int()
    assert visible.tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


def test_cross_attention_ignores_positions_and_window():
    spec = AttentionConfig(position="alibi", window=1)
    torch.manual_seed(0)
    plain = MultiHeadAttention(16, 4, AttentionConfig(), cross=True)
    torch.manual_seed(0)
    variant = MultiHeadAttention(16, 4, spec, cross=True)
    x, mem = torch.randn(1, 3, 16), torch.randn(1, 6, 16)
    assert torch.allclose(plain(x, mem)[0], variant(x, mem)[0])


# ------------------------------------------------------------------ kv_heads


@pytest.mark.parametrize("grid", [False, True], ids=["text", "grid"])
def test_kv_heads_equal_to_heads_is_multi_head_attention(grid):
    x, mask = _inputs(grid)
    mha, same = _mha(AttentionConfig(), grid), _mha(AttentionConfig(kv_heads=4), grid)
    same.load_state_dict(mha.state_dict())
    assert torch.allclose(_run(mha, grid, x, mask)[0], _run(same, grid, x, mask)[0], atol=1e-6)


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_query_attention_is_mha_with_shared_key_value_heads(kv_heads):
    """GQA equals MHA whose key/value projections repeat each kv head over its query group."""
    gqa = _mha(AttentionConfig(kv_heads=kv_heads), False)
    mha = _mha(AttentionConfig(), False)
    state = dict(gqa.state_dict())
    for proj in ("k_proj", "v_proj"):
        w = state[f"{proj}.weight"].view(kv_heads, 4, 16)  # (Hk, Dh, D)
        state[f"{proj}.weight"] = w.repeat_interleave(4 // kv_heads, dim=0).reshape(16, 16)
        state[f"{proj}.bias"] = state[f"{proj}.bias"].view(kv_heads, 4).repeat_interleave(4 // kv_heads, 0).reshape(16)
    mha.load_state_dict(state)
    x, mask = _inputs(False)
    for backend in ("math", "sdpa"):
        gqa.backend = mha.backend = backend
        assert torch.allclose(_run(gqa, False, x, mask)[0], _run(mha, False, x, mask)[0], atol=1e-5)


@pytest.mark.parametrize("kv_heads", [0, 1, 2])
def test_kv_cache_shrinks_with_kv_heads(kv_heads):
    mha = _mha(AttentionConfig(kv_heads=kv_heads), False).eval()
    cache: dict = {}
    for t in range(3):
        mha(torch.randn(1, 1, 16), causal=True, cache=cache)
    assert cache["k"].shape == (1, kv_heads or 4, 3, 4) and cache["v"].shape == cache["k"].shape


# ------------------------------------------------------------------ linear attention


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("q_len", [7, 2])
def test_linear_attention_linear_path_equals_its_quadratic_form(causal, q_len):
    torch.manual_seed(0)
    score = make_score("linear", 4, 4)
    q, k, v = torch.randn(2, 3, q_len, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 5)
    key_mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    key_mask[1, ..., 4:] = False
    full = key_mask & torch.ones(q_len, 7, dtype=torch.bool).tril(7 - q_len) if causal else key_mask
    weights = score.normalize(score(q, k), full)  # (B, H, Tq, Tk), rows sum to 1
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, q_len), atol=1e-5)
    fast = linear_context(score.feature(q), score.prepare_keys(k), v, key_mask, causal, score.eps, chunk=3)
    assert torch.allclose(fast, weights @ v, atol=1e-5)


def test_linear_attention_takes_the_linear_path_without_weights(monkeypatch):
    import sys

    attend_module = sys.modules["attnlab.attention.attend"]  # the module, not the function

    calls = []
    real = attend_module.linear_context
    monkeypatch.setattr(attend_module, "linear_context", lambda *a: calls.append(1) or real(*a))
    mha = _mha(AttentionConfig(score="linear"), False)
    x = torch.randn(1, 5, 16)
    fast, _ = mha(x, causal=True)
    slow, w = mha(x, causal=True, need_weights=True)
    assert calls == [1] and w.shape == (1, 4, 5, 5) and torch.allclose(fast, slow, atol=1e-5)


# ------------------------------------------------------------------ models


def _transformer(spec: AttentionConfig, **kw) -> Transformer:
    torch.manual_seed(0)
    args = dict(d_model=16, heads=4, enc_layers=1, dec_layers=2, d_ff=32, dropout=0.0, attention=spec)
    model = Transformer(12, 12, **{**args, **kw})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("table"):
                p.normal_()
    return model.eval()


@pytest.mark.parametrize("spec", VARIANTS, ids=name)
def test_kv_cache_decoding_equals_the_full_forward(spec):
    model = _transformer(spec)
    g = torch.Generator().manual_seed(0)
    src, lengths = torch.randint(3, 12, (2, 6), generator=g), torch.tensor([6, 4])
    tgt = torch.randint(3, 12, (2, 7), generator=g)
    tgt[:, 0] = 1
    full = F.log_softmax(model(src, lengths, tgt), dim=-1)  # (B, T, V)
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    steps = []
    for t in range(tgt.shape[1]):
        log_probs, state, _ = model.step(tgt[:, t], state, memory)
        steps.append(log_probs)
    assert torch.allclose(torch.stack(steps, dim=1), full, atol=1e-4)


@pytest.mark.parametrize("spec", VARIANTS, ids=name)
def test_vit_padding_changes_nothing_with_every_variant(spec):
    torch.manual_seed(0)
    model = ViT(num_classes=3, channels=1, image_size=(6, 6), patch_size=2, dim=16, depth=2, heads=4, attention=spec)
    with torch.no_grad():
        model.head.weight.normal_()
    model.eval()
    image = torch.rand(1, 1, 5, 7)
    batch = torch.randn(2, 1, 9, 12) * 50
    batch[0, :, :5, :7] = image[0]
    padded = model(batch, torch.tensor([[5, 7], [9, 12]]))
    assert torch.allclose(padded[0], model(image)[0], atol=1e-4)
    weights = model.attention_weights(batch, torch.tensor([[5, 7], [9, 12]]))
    assert len(weights) == 2 and torch.isfinite(weights[0]).all()


@pytest.mark.parametrize("spec", SINGLE, ids=name)
def test_every_variant_trains(spec):
    """Loss falls on a tiny copy task (not only finite gradients)."""
    model = _transformer(spec, d_model=32, enc_layers=1, dec_layers=1, d_ff=64).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, 12, (16, 5), generator=g)
    tgt_in = torch.cat([torch.ones(16, 1, dtype=torch.long), src], dim=1)  # bos + copy
    tgt_out = torch.cat([src, torch.full((16, 1), 2)], dim=1)  # copy + eos
    lengths = torch.full((16,), 5)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(src, lengths, tgt_in).flatten(0, 1), tgt_out.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses[::10]


@pytest.mark.parametrize("spec", [v for v in SINGLE if v.position != "none" or v.window or v.kv_heads], ids=name)
def test_every_2d_variant_trains_in_the_vit(spec):
    """The ViT's 2-D forms learn: loss falls when fitting 8 random images to labels."""
    torch.manual_seed(0)
    model = ViT(num_classes=4, channels=1, image_size=(6, 6), patch_size=2, dim=32, depth=1, heads=4, attention=spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(8, 1, 6, 6, generator=g), torch.arange(8) % 4
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
