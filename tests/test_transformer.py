"""The Transformer translator: masks, incremental decoding, tying, training, the config path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import attnlab.attention as attention_registry
from attnlab.config import AttentionConfig, TransformerConfig
from attnlab.errors import UserError
from attnlab.models import build_model
from attnlab.models.seq2seq import Memory
from attnlab.models.transformer import Transformer

SCORES = attention_registry.SCORES.names()
V = 16


def small(**kw) -> Transformer:
    torch.manual_seed(0)
    args = dict(d_model=32, heads=4, enc_layers=2, dec_layers=2, d_ff=64, dropout=0.0)
    return Transformer(V, V, **{**args, **kw}).eval()


def pair(seed: int = 0):
    """A padded batch: src (3, 7) with lengths 7, 4, 2 and tgt_in (3, 6) starting with bos."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 4, 2])
    src = torch.randint(3, V, (3, 7), generator=g)
    src[torch.arange(7) >= lengths.unsqueeze(1)] = 0
    tgt = torch.randint(3, V, (3, 6), generator=g)
    tgt[:, 0] = 1
    return src, lengths, tgt


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padded_source_tokens_change_nothing(norm):
    model = small(norm=norm)
    src, lengths, tgt = pair()
    other = src.clone()
    other[1, 4:] = 5  # different tokens where row 1 is padding
    other[2, 2:] = 9
    assert torch.allclose(model(src, lengths, tgt), model(other, lengths, tgt), atol=1e-5)
    # ... while a real source token does change the output
    other[1, 0] = (src[1, 0] + 1) % V if src[1, 0] + 1 < V else 3
    assert not torch.allclose(model(src, lengths, tgt)[1], model(other, lengths, tgt)[1], atol=1e-4)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_no_look_ahead(norm):
    model = small(norm=norm)
    src, lengths, tgt = pair()
    changed = tgt.clone()
    changed[:, 4] = (tgt[:, 4] - 3 + 1) % (V - 3) + 3  # another real token at position 4
    a, b = model(src, lengths, tgt), model(src, lengths, changed)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-4)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("score", SCORES)
def test_cached_steps_equal_full_forward(score, norm):
    model = small(attention=score, norm=norm)
    src, lengths, tgt = pair()
    full = F.log_softmax(model(src, lengths, tgt), dim=-1)  # (B, T, V)
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    steps = []
    for t in range(tgt.shape[1]):
        log_probs, state, weights = model.step(tgt[:, t], state, memory, need_weights=True)
        steps.append(log_probs)
        assert weights.shape == (3, 7)
        assert torch.allclose(weights.sum(-1), torch.ones(3), atol=1e-5)
        assert torch.all(weights[2, 2:] == 0)  # padding gets no attention
    assert torch.allclose(torch.stack(steps, dim=1), full, atol=1e-5)
    # the self-attention cache grew one position per step; the cross cache holds the source
    cache = state.caches[-1]
    assert cache["self"]["k"].shape == (3, 4, 6, 8) and cache["cross"]["k"].shape == (3, 4, 7, 8)


def test_reorder_selects_rows_of_every_cache():
    model = small()
    src, lengths, tgt = pair()
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    for t in range(3):
        _, state, _ = model.step(tgt[:, t], state, memory)
    index = torch.tensor([2, 2, 0])
    moved = model.reorder(state, index)
    mem2 = memory.select(index)
    for layer_old, layer_new in zip(state.caches, moved.caches):
        for part in ("self", "cross"):
            for kv in ("k", "v"):
                assert torch.equal(layer_new[part][kv], layer_old[part][kv][index])
    # continuing from the reordered state equals decoding the reordered batch from scratch
    lp, _, _ = model.step(tgt[index, 3], moved, mem2)
    expected = F.log_softmax(model(src[index], lengths[index], tgt[index, :4]), -1)[:, -1]
    assert torch.allclose(lp, expected, atol=1e-5)


def test_attention_weights_shapes_and_masking():
    model = small()
    src, lengths, tgt = pair()
    maps = model.attention_weights(src, lengths, tgt)
    assert len(maps["cross"]) == 2 and len(maps["encoder"]) == 2
    assert maps["cross"][0].shape == (3, 4, 6, 7) and maps["encoder"][0].shape == (3, 4, 7, 7)
    assert torch.all(maps["cross"][1][1, :, :, 4:] == 0) and torch.all(maps["encoder"][0][2, :, :, 2:] == 0)
    assert torch.allclose(maps["cross"][1].sum(-1), torch.ones(3, 4, 6), atol=1e-5)
    assert torch.all(maps["decoder"][0][0].triu(1) == 0)  # causal


def test_tying_and_sharing_use_one_tensor():
    model = small(share_embeddings=True, tie_output=True)
    assert model.src_embed.weight is model.tgt_embed.weight is model.out_proj.weight
    separate = Transformer(V, V + 4, d_model=16, heads=2, enc_layers=1, dec_layers=1, d_ff=32,
                           share_embeddings=False, tie_output=True)
    assert separate.out_proj.weight is separate.tgt_embed.weight
    assert separate.src_embed.weight.data_ptr() != separate.tgt_embed.weight.data_ptr()
    untied = Transformer(V, V, d_model=16, heads=2, enc_layers=1, dec_layers=1, d_ff=32, tie_output=False)
    assert untied.out_proj.weight.data_ptr() != untied.tgt_embed.weight.data_ptr()
    # one gradient update moves the embedding and the output layer together
    model.train()
    src, lengths, tgt = pair()
    model(src, lengths, tgt).sum().backward()
    assert model.out_proj.weight.grad is model.tgt_embed.weight.grad


def test_sharing_needs_one_vocabulary_and_text_positions():
    with pytest.raises(UserError, match="share_embeddings"):
        Transformer(10, 12, share_embeddings=True)
    with pytest.raises(UserError, match="sincos2d"):
        Transformer(10, 10, d_model=16, heads=2, posenc="sincos2d")


def copy_task_accuracy(norm: str, score: str = "scaled_dot", steps: int = 200) -> tuple[float, float, float]:
    """Train on copying 8 random tokens (vocab 12); returns first loss, last loss, token accuracy."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Transformer(12, 12, d_model=64, heads=4, enc_layers=1, dec_layers=1, d_ff=128, dropout=0.0,
                        norm=norm, attention=score)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    lengths = torch.full((32,), 8)

    def batch(n: int):
        src = torch.randint(3, 12, (n, 8), generator=g)
        tgt_in = torch.cat([torch.ones(n, 1, dtype=torch.long), src], 1)  # bos x1..x8
        return src, tgt_in, torch.cat([src, torch.full((n, 1), 2)], 1)  # x1..x8 eos

    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * min(1.0, (step + 1) / 20)  # warm-up
        src, tgt_in, tgt_out = batch(32)
        loss = F.cross_entropy(model(src, lengths, tgt_in).flatten(0, 1), tgt_out.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    src, tgt_in, tgt_out = batch(64)
    with torch.no_grad():
        acc = (model(src, torch.full((64,), 8), tgt_in).argmax(-1) == tgt_out).float().mean().item()
    return losses[0], losses[-1], acc


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_copy_task_is_learned(norm, one_thread):
    _, _, acc = copy_task_accuracy(norm)
    assert acc > 0.95


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_every_scoring_trains(score, one_thread):
    first, last, _ = copy_task_accuracy("pre", score, steps=40)
    assert last < 0.75 * first


@pytest.mark.parametrize("score", SCORES)
def test_build_from_config(score):
    cfg = OmegaConf.create(
        {"model": OmegaConf.structured(TransformerConfig(d_model=16, heads=2, enc_layers=1, dec_layers=1, d_ff=32,
                                                         posenc="learned", norm="post")),
         "attention": OmegaConf.structured(AttentionConfig(score=score))}
    )
    model = build_model(cfg, src_vocab=V, tgt_vocab=V, pad_id=0)
    assert isinstance(model, Transformer)
    assert model.encoder[0].attn.score.__class__.__name__.lower().startswith(score.replace("_", ""))
    assert model.decoder[0].cross_attn.score is not model.decoder[0].self_attn.score
    src, lengths, tgt = pair()
    assert model(src, lengths, tgt).shape == (3, 6, V)
    assert isinstance(model.encode(src, lengths), Memory)
