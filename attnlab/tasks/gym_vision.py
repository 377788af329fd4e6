"""The attention gym's scoring of ViT attention maps on images whose object box is known
(``data=placed_digits``, :mod:`attnlab.data.placed_digits`): which picture of attention to trust.

Maps (one value per patch, for each test image), the ways attnlab draws ViT attention:

- ``cls_head<h>``: the last layer's attention of the CLS token to each patch, head h;
- ``cls_mean``: the same, mean of the heads (what ``rollout.png`` shows beside the rollout);
- ``rollout``: attention rollout (Abnar & Zuidema 2020; :mod:`attnlab.viz.rollout`);
- ``grad_rollout``: gradient-weighted rollout (Chefer, Gur & Wolf 2021, "Generic
  attention-model explainability", eqs. 5-6): per layer A_bar = mean_h (dy_c/dA ⊙ A)^+ with y_c the
  true class's logit, R <- R + A_bar R from R = I; the CLS row;
- ``random``: a random map, the chance level of both scores;
- ``ink``: no model at all, the sum of each patch's pixels: if it scores as well as attention, the
  pointing game only rewards finding bright patches (the clutter is there to prevent that).

(With ``model.pool=mean`` the "CLS" row is the mean row of the real patches, as in the pictures.)
Scores, in results.json (``pointing_game`` and ``deletion_auc``, one entry per map):

- pointing game (:func:`attnlab.gym_metrics.pointing_game`): the share of test images whose map
  peaks on a patch that overlaps the digit's box (higher = better);
- deletion AUC (:func:`attnlab.gym_metrics.curve_auc`): patches blacked out in the map's order,
  :data:`DELETION_STEPS` steps, the mean probability of the true class along the way (lower = the
  map found what the model uses).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.data.images import ImageSet
from attnlab.data.placed_digits import patches_inside
from attnlab.gym_metrics import curve_auc, deletion_order, pointing_hits
from attnlab.viz.rollout import patch_relevance, rollout
from attnlab.viz.vision import cls_attention

log = logging.getLogger("attnlab.gym")

BATCH = 128
DELETION_STEPS = 8


def gradient_rollout(weights: list[Tensor], grads: list[Tensor]) -> Tensor:
    """Chefer et al. 2021, eqs. 5-6: R = I, then per layer R <- R + mean_h((grad ⊙ A)^+) R -> (B, T, T)."""
    joint: Tensor | None = None
    for a, g in zip(weights, grads):
        a_bar = (g * a).clamp_min(0).mean(dim=1)  # (B, H, T, T) -> (B, T, T)
        if joint is None:
            joint = torch.eye(a_bar.shape[-1], dtype=a_bar.dtype).expand_as(a_bar).clone()
        joint = joint + a_bar @ joint
    assert joint is not None
    return joint


def attention_maps(model: nn.Module, images: Tensor, sizes: Tensor, labels: Tensor,
                   generator: torch.Generator) -> dict[str, Tensor]:
    """Every map of the module docstring for a batch: name -> (B, N)."""
    model.eval()
    with torch.enable_grad():
        states, layout, weights = model.encode(images, sizes, need_weights=True)
        logits = model.head(model.pooled(states, layout))  # (B, classes)
        grads = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), weights)
    weights = [w.detach().float() for w in weights]
    real = layout.real
    last = cls_attention(weights, model.has_cls, real)[-1]  # (B, H, N)
    maps = {f"cls_head{h + 1}": last[:, h] for h in range(last.shape[1])}
    maps["cls_mean"] = last.mean(dim=1)
    maps["rollout"] = patch_relevance(rollout(weights), model.has_cls, real)
    maps["grad_rollout"] = patch_relevance(gradient_rollout(weights, [g.float() for g in grads]), model.has_cls, real)
    maps["random"] = torch.rand(last.shape[0], last.shape[-1], generator=generator)
    maps["ink"] = patch_ink(images, tuple(layout.grid), model.patch_size)
    return maps


def patch_ink(images: Tensor, grid: tuple[int, int], patch: int) -> Tensor:
    """(B, C, H, W) -> (B, rows * cols): the sum of each patch's pixels (zero padding to whole patches)."""
    rows, cols = grid
    b, c, h, w = images.shape
    padded = images.new_zeros(b, c, rows * patch, cols * patch)
    padded[..., :h, :w] = images
    return padded.view(b, c, rows, patch, cols, patch).sum(dim=(1, 3, 5)).reshape(b, rows * cols)


@torch.no_grad()
def true_class_probability(model: nn.Module, images: Tensor, sizes: Tensor, labels: Tensor) -> Tensor:
    """(B,): the probability the model gives each image's true class."""
    probs = model(images, sizes).float().softmax(-1)  # (B, classes)
    return probs.gather(1, labels[:, None]).squeeze(1)


@torch.no_grad()
def deletion_curves(model: nn.Module, images: Tensor, sizes: Tensor, labels: Tensor, order: Tensor,
                    grid: tuple[int, int], patch: int, steps: int = DELETION_STEPS,
                    intact: Tensor | None = None) -> Tensor:
    """(B, steps + 1): the true class's probability with the first k/steps of ``order``'s patches
    blacked out (k = 0 .. steps). ``intact``: the k = 0 column (nothing blacked out, whatever the
    order: :func:`true_class_probability`), when the caller scores several orders of one batch."""
    b, n = order.shape
    rows, cols = grid
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n).expand(b, n))  # (B, N): when each patch goes
    out = [] if intact is None else [intact]
    for k in range(len(out), steps + 1):
        gone = (rank < round(k * n / steps)).view(b, 1, rows, cols).float()  # (B, 1, rows, cols)
        pixels = gone.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., : images.shape[2], : images.shape[3]]
        out.append(true_class_probability(model, images * (1 - pixels), sizes, labels))
    return torch.stack(out, dim=1)


def map_scores(model: nn.Module, test: ImageSet, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """``pointing_game`` and ``deletion_auc`` per map over the test set, and the best map's name."""
    assert test.boxes is not None
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    hits: dict[str, list[Tensor]] = {}
    aucs: dict[str, list[Tensor]] = {}
    for first in range(0, len(test), BATCH):
        idx = torch.arange(first, min(first + BATCH, len(test)))
        images, sizes, labels = test.batch(idx)
        images, sizes, labels = images.to(device), sizes.to(device), labels.to(device)
        layout = model.layout(images, sizes)
        inside = patches_inside(test.boxes[idx], tuple(layout.grid), model.patch_size).to(device)  # (B, N)
        intact = true_class_probability(model, images, sizes, labels)  # every map's curve starts here
        for name, m in attention_maps(model, images, sizes, labels, generator).items():
            m = m.to(device)
            hits.setdefault(name, []).append(pointing_hits(m, inside).float().cpu())
            order = deletion_order(m, layout.real)
            curve = deletion_curves(model, images, sizes, labels, order, tuple(layout.grid), model.patch_size,
                                    intact=intact)
            aucs.setdefault(name, []).append(curve_auc(curve).cpu())
    pointing = {k: float(torch.cat(v).mean()) for k, v in hits.items()}
    deletion = {k: float(torch.cat(v).mean()) for k, v in aucs.items()}
    best = max((k for k in pointing if k not in ("random", "ink")), key=lambda k: pointing[k])
    for name in pointing:
        log.info("%-13s pointing game %.3f, deletion AUC %.3f", name, pointing[name], deletion[name])
    return {"pointing_game": pointing, "deletion_auc": deletion, "pointing_best": best,
            "pointing_best_score": pointing[best], "deletion_steps": DELETION_STEPS}
