"""Placed digits: boxes, clutter outside them, patch masks, the maps' scores and a tiny ViT run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from attnlab import api
from attnlab.config import PlacedDigitsConfig
from attnlab.data.image_readers import load_images
from attnlab.data.placed_digits import patches_inside, place
from attnlab.errors import UserError
from attnlab.tasks.gym_vision import gradient_rollout, patch_ink
from attnlab.viz.rollout import rollout


def test_every_digit_sits_in_its_box_and_the_clutter_stays_outside():
    digits = torch.rand(5, 1, 8, 8) + 0.5  # every pixel bright, so the box is all ink
    images = place(digits, torch.arange(5), copies=3, canvas=20, clutter=6, fragment=3, rng=np.random.default_rng(0))
    assert images.stacked.shape == (15, 1, 20, 20) and images.labels.tolist() == list(range(5)) * 3
    for k in range(15):
        y0, x0, y1, x1 = images.boxes[k].tolist()
        assert (y1 - y0, x1 - x0) == (8, 8)
        assert torch.equal(images.stacked[k, :, y0:y1, x0:x1], digits[k % 5])
        ring = torch.zeros(20, 20, dtype=torch.bool)
        ring[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = True  # the box and the pixels touching it
        ring[y0:y1, x0:x1] = False
        assert not images.stacked[k, 0][ring].any()  # clutter never touches the box
        assert images.stacked[k, 0][~ring].gt(0).sum() > 64  # ...but is there
    sub = images.subset([2, 0])
    assert torch.equal(sub.boxes, images.boxes[[2, 0]])


def test_patches_inside_by_hand():
    # a 12x12 image in 4x4 patches (3x3 grid); box rows 2..9, cols 4..11 (exclusive ends 10, 12)
    inside = patches_inside(torch.tensor([[2, 4, 10, 12], [0, 0, 4, 4]]), (3, 3), 4)
    assert inside[0].view(3, 3).tolist() == [[False, True, True], [False, True, True], [False, True, True]]
    assert inside[1].view(3, 3).tolist() == [[True, False, False], [False, False, False], [False, False, False]]


def test_patch_ink_sums_each_patch():
    image = torch.zeros(1, 1, 6, 6)
    image[0, 0, 4, 5] = 2.0  # bottom-right patch of a 2x2 grid of 3x3... (6 / 3 = 2)
    assert patch_ink(image, (2, 2), 3).tolist() == [[0.0, 0.0, 0.0, 2.0]]
    assert patch_ink(torch.ones(1, 1, 5, 5), (2, 2), 3).tolist() == [[9.0, 6.0, 6.0, 4.0]]  # zero padding


def test_gradient_rollout_with_gradients_equal_to_one_is_rollout_without_normalisation():
    a = torch.softmax(torch.randn(2, 3, 4, 4), -1)  # (B, H, T, T)
    r = gradient_rollout([a, a], [torch.ones_like(a), torch.zeros_like(a)])
    eye = torch.eye(4).expand(2, 4, 4)
    assert torch.allclose(r, eye + a.mean(1))  # layer 2 adds nothing: its gradients are 0
    # negative contributions are clipped: all-negative gradients leave the identity
    assert torch.allclose(gradient_rollout([a], [-torch.ones_like(a)]), eye)
    assert rollout([a]).shape == r.shape


def test_splits_and_bad_settings():
    cfg = OmegaConf.structured(PlacedDigitsConfig(copies=1, canvas=16))
    data = load_images(cfg)
    assert data.test.stacked.shape[1:] == (1, 16, 16) and data.test.boxes is not None and data.valid.boxes is not None
    assert len(data.train) + len(data.valid) + len(data.test) == 1797
    assert (data.test.boxes[:, :2] % 4 == 0).all()  # data.grid=4: on the 4x4 patch grid
    anywhere = load_images(OmegaConf.structured(PlacedDigitsConfig(copies=1, canvas=16, grid=1)))
    assert (anywhere.test.boxes[:, :2] % 4 != 0).any()
    with pytest.raises(UserError, match="data.grid"):
        load_images(OmegaConf.structured(PlacedDigitsConfig(grid=40)))
    with pytest.raises(UserError, match="data.canvas"):
        load_images(OmegaConf.structured(PlacedDigitsConfig(canvas=6)))


def test_tiny_vision_run_scores_every_map(tmp_path):
    overrides = ["task=vision", "data=placed_digits", "data.canvas=16", "data.copies=1", "data.clutter=2",
                 "model.dim=16", "model.depth=2", "model.heads=2", "trainer.max_steps=3", "trainer.num_threads=1",
                 "trainer.progress=false", "viz.enabled=false"]
    api.run(overrides, tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    maps = {"cls_head1", "cls_head2", "cls_mean", "rollout", "grad_rollout", "random", "ink"}
    assert set(results["pointing_game"]) == maps and set(results["deletion_auc"]) == maps
    assert all(0 <= v <= 1 for v in results["pointing_game"].values())
    assert all(0 <= v <= 1 for v in results["deletion_auc"].values())
    assert results["pointing_best"] not in ("random", "ink")
    assert results["pointing_best_score"] == results["pointing_game"][results["pointing_best"]]


def test_map_scores_run_the_intact_images_once_per_batch_and_every_curve_starts_there(monkeypatch):
    from attnlab.models.vit import ViT
    from attnlab.tasks import gym_vision

    data = load_images(OmegaConf.structured(PlacedDigitsConfig(canvas=16, copies=1, clutter=2)))
    test = data.test.subset(list(range(gym_vision.BATCH + 5)))  # two batches
    torch.manual_seed(0)
    vit = ViT(num_classes=len(data.classes), channels=data.channels, image_size=(16, 16), patch_size=4, dim=16,
              depth=2, heads=2, mean=data.mean, std=data.std).eval()
    images, sizes, labels = test.batch(torch.arange(6))
    order = torch.stack([torch.randperm(16) for _ in range(6)])  # (B, N)
    full = gym_vision.deletion_curves(vit, images, sizes, labels, order, (4, 4), 4)
    intact = gym_vision.true_class_probability(vit, images, sizes, labels)
    assert torch.equal(full[:, 0], intact)
    assert torch.equal(gym_vision.deletion_curves(vit, images, sizes, labels, order, (4, 4), 4, intact=intact), full)
    forwards = []
    monkeypatch.setattr(vit, "forward", lambda *args, _f=vit.forward: forwards.append(1) or _f(*args))
    scores = gym_vision.map_scores(vit, test, torch.device("cpu"))
    maps = len(scores["deletion_auc"])
    assert len(forwards) == 2 * (1 + maps * gym_vision.DELETION_STEPS)  # per batch: the intact images once
