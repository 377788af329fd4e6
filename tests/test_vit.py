"""The ViT: padding invariance, positional encodings on grids, pooling, every scoring."""

import pytest
import torch
from omegaconf import OmegaConf

from attnlab.attention import SCORES
from attnlab.config import Config, ViTConfig
from attnlab.errors import UserError
from attnlab.models import build_model
from attnlab.models.vit import ViT

POSENCS = ["none", "sinusoidal", "learned", "sincos2d"]


def tiny(**kw) -> ViT:
    torch.manual_seed(0)
    args = dict(num_classes=3, channels=1, image_size=(6, 6), patch_size=2, dim=16, depth=2, heads=2)
    model = ViT(**{**args, **kw})
    with torch.no_grad():  # a zero head would make every logit 0 and the tests blind
        model.head.weight.normal_()
    return model.eval()


@pytest.mark.parametrize("stem_layers", [0, 2])
@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("posenc", POSENCS)
def test_padding_with_garbage_does_not_change_the_logits(posenc, pool, stem_layers):
    model = tiny(posenc=posenc, pool=pool, stem_layers=stem_layers, stem_channels=8)
    image = torch.rand(1, 1, 5, 7)  # odd, non-square: partly covered patches too
    alone = model(image)
    batch = torch.randn(2, 1, 9, 12) * 50  # garbage everywhere ...
    batch[0, :, :5, :7] = image[0]  # ... but inside the image
    batch[1] = torch.rand(1, 9, 12)
    padded = model(batch, torch.tensor([[5, 7], [9, 12]]))
    assert torch.allclose(padded[0], alone[0], atol=1e-4)
    assert not torch.allclose(padded[1], alone[0], atol=1e-2)  # a different image differs


def test_attention_to_padding_only_patches_is_zero():
    model = tiny()
    weights = model.attention_weights(torch.rand(2, 1, 8, 8), torch.tensor([[4, 8], [8, 8]]))
    assert len(weights) == 2 and weights[0].shape == (2, 2, 17, 17)
    padded_keys = 1 + torch.arange(8, 16)  # rows 2-3 of the 4x4 grid (after the CLS token)
    assert torch.equal(weights[1][0][..., padded_keys], torch.zeros(2, 17, 8))
    assert weights[1][1][..., padded_keys].sum() > 0


def test_sincos2d_code_depends_on_row_and_col_not_image_width():
    model = tiny(posenc="sincos2d")
    narrow = model.add_positions(torch.zeros(1, 3 * 2, 16), model.layout(torch.zeros(1, 1, 6, 4)))
    wide = model.add_positions(torch.zeros(1, 3 * 5, 16), model.layout(torch.zeros(1, 1, 6, 10)))
    # patch (row 1, col 1): index 1*2+1 in the narrow grid, 1*5+1 in the wide one
    assert torch.allclose(narrow[0, 3], wide[0, 6])
    assert not torch.allclose(narrow[0, 3], narrow[0, 4])  # (1, 1) vs (2, 0)


def test_sinusoidal_1d_code_depends_on_width_and_none_adds_nothing():
    model = tiny(posenc="sinusoidal")
    narrow = model.add_positions(torch.zeros(1, 6, 16), model.layout(torch.zeros(1, 1, 6, 4)))
    wide = model.add_positions(torch.zeros(1, 15, 16), model.layout(torch.zeros(1, 1, 6, 10)))
    assert not torch.allclose(narrow[0, 3], wide[0, 6])  # 1-D index 3 vs 6
    none = tiny(posenc="none")
    z = torch.randn(1, 9, 16)
    assert torch.equal(none.add_positions(z, none.layout(torch.zeros(1, 1, 6, 6))), z)


def test_learned_table_is_resampled_at_another_image_size():
    model = tiny(posenc="learned")
    assert model.posenc.table.shape == (3, 3, 16)  # built for the 6x6 training images
    same = model.add_positions(torch.zeros(1, 9, 16), model.layout(torch.zeros(1, 1, 6, 6)))
    assert torch.allclose(same[0], model.posenc.table.reshape(9, 16))
    bigger = model.add_positions(torch.zeros(1, 20, 16), model.layout(torch.zeros(1, 1, 8, 10)))
    assert bigger.shape == (1, 20, 16)
    logits = model(torch.rand(2, 1, 8, 10))
    logits.sum().backward()
    assert logits.shape == (2, 3) and model.posenc.table.grad.abs().sum() > 0  # trains through the resampling


def test_pooling_cls_vs_mean():
    cls, mean = tiny(pool="cls"), tiny(pool="mean")
    assert cls.cls_token is not None and mean.cls_token is None
    images = torch.rand(2, 1, 6, 6)
    assert cls.attention_weights(images)[0].shape[-1] == 10  # CLS + 9 patches
    assert mean.attention_weights(images)[0].shape[-1] == 9
    states, layout, _ = mean.encode(images)
    assert torch.allclose(mean.pooled(states, layout), states.mean(1))
    states, layout, _ = cls.encode(images)
    assert torch.equal(cls.pooled(states, layout), states[:, 0])


def test_mean_pool_ignores_padding_only_patches():
    model = tiny(pool="mean")
    states = torch.randn(1, 4, 16)
    layout = model.layout(torch.zeros(1, 1, 4, 4), torch.tensor([[2, 4]]))  # 2x2 grid, top row real
    assert torch.allclose(model.pooled(states, layout), states[0, :2].mean(0, keepdim=True))


@pytest.mark.parametrize("score", SCORES.names())
def test_every_scoring_trains(score):
    model = tiny(attention=score).train()
    images, labels = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    grads = [p.grad for p in model.layers[0].attn.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():  # the weights path agrees with the (possibly fused) forward
        model.eval()
        states, layout, _ = model.encode(images, need_weights=True)
        assert torch.allclose(model.head(model.pooled(states, layout)), model(images), atol=1e-5)


def test_build_from_config_uses_the_attention_score_and_normalisation():
    cfg = OmegaConf.structured(Config)
    cfg.model = OmegaConf.structured(ViTConfig(dim=16, heads=2, depth=1, patch_size=4))
    cfg.attention.score = "additive"
    model = build_model(cfg, num_classes=10, channels=3, image_size=(8, 12), mean=[0.5] * 3, std=[0.25] * 3)
    assert type(model.layers[0].attn.score).__name__ == "AdditiveScore"
    assert model.mean.flatten().tolist() == [0.5] * 3 and model(torch.rand(1, 3, 8, 12)).shape == (1, 10)
    assert "mean" in model.state_dict()  # the statistics travel with the weights
    assert model.stem is None  # the seed's linear patches unless asked


def test_a_conv_stem_feeds_the_patch_embedding_and_trains():
    cfg = OmegaConf.structured(Config)
    cfg.model = OmegaConf.structured(ViTConfig(dim=16, heads=2, depth=1, patch_size=2, stem_layers=2, stem_channels=6))
    model = build_model(cfg, num_classes=3, channels=1, image_size=(6, 6))
    assert len(model.stem.convs) == 2 and model.patch_embed.proj.in_features == 2 * 2 * 6
    with torch.no_grad():  # the zero-initialised head would stop every gradient below it
        model.head.weight.normal_()
    loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 6, 6)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(torch.isfinite(c.weight.grad).all() and c.weight.grad.abs().sum() > 0 for c in model.stem.convs)


def test_user_errors():
    with pytest.raises(UserError, match="larger than an image of 6x6"):
        tiny(patch_size=8)
    with pytest.raises(UserError, match="valid choices"):
        tiny(posenc="rotary")
    with pytest.raises(UserError, match="divisible by 4"):
        tiny(dim=18, heads=2, posenc="sincos2d")
