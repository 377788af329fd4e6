"""ViT attention pictures: CLS maps per layer and head, overlays as PNG files."""

import torch

from attnlab.models.vit import ViT
from attnlab.viz.vision import cls_attention, image_map, save_attention_pictures


def model(pool: str) -> ViT:
    torch.manual_seed(0)
    return ViT(num_classes=3, channels=1, image_size=(6, 8), patch_size=2, dim=16, depth=2, heads=2, pool=pool).eval()


def test_cls_attention_is_the_cls_row_of_each_layer_and_head():
    vit = model("cls")
    images = torch.rand(2, 1, 6, 8)
    weights = vit.attention_weights(images)
    maps = cls_attention(weights, has_cls=True)
    assert maps.shape == (2, 2, 2, 12)  # layers, batch, heads, patches (3 x 4 grid)
    assert torch.equal(maps[1, 0, 1], weights[1][0, 1, 0, 1:])


def test_without_cls_maps_average_the_real_patches_only():
    vit = model("mean")
    images, sizes = torch.rand(1, 1, 6, 8), torch.tensor([[6, 4]])  # right half is padding
    layout = vit.layout(images, sizes)
    weights = vit.attention_weights(images, sizes)
    maps = cls_attention(weights, has_cls=False, real=layout.real)  # (L, 1, H, 12)
    real = layout.real[0]
    expected = weights[0][0, 0][real].mean(0)  # layer 1, head 1: mean of the real query rows
    assert torch.allclose(maps[0, 0, 0], expected)
    assert torch.allclose(maps[0, 0, 0].sum(), torch.tensor(1.0))  # all the mass on real patches


def test_image_map_crops_each_image_to_its_own_size():
    vit = model("cls")
    images, sizes = torch.zeros(2, 1, 7, 9), torch.tensor([[7, 9], [3, 5]])
    layout = vit.layout(images, sizes)  # grid 4 x 5; image 1: 2 x 3
    values = torch.arange(20.0)
    pixels = image_map(values, layout, 1, 2, (3, 5))
    assert pixels.shape == (3, 5)
    assert pixels[0].tolist() == [0, 0, 1, 1, 2] and pixels[2].tolist() == [5, 5, 6, 6, 7]


def test_pictures_are_written_for_mixed_sizes(tmp_path):
    vit = model("cls")
    images = torch.rand(2, 3, 7, 9)[:, :1]
    paths = save_attention_pictures(tmp_path / "attention", vit, images, torch.tensor([[7, 9], [5, 4]]), ["a", "b"])
    assert [p.name for p in paths] == ["rollout.png", "layers_heads_0.png", "layers_heads_1.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
