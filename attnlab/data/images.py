"""Image containers: ImageSet splits, ImageData, padded batches of mixed sizes and fixed stratified splits.

Every dataset (:mod:`attnlab.data.image_readers`) becomes an :class:`ImageData`: three
:class:`ImageSet` splits (train, valid, test) of float32 images in [0, 1], shaped (C, H, W), the
class names, the channel count and the per-channel mean/std of the training pixels (the model
normalises with them; the data stays in [0, 1]).

Splits are fixed: they are drawn with :data:`SPLIT_SEED`, never with the run's seed, so every run
of a dataset trains, validates and tests on the same images.

Images of different sizes (image folders) are kept as a list; :func:`collate` pads a batch of them
with zeros at the bottom/right and reports each image's (H, W) so the model can mask the padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

SPLIT_SEED = 0  # seed of every fixed split (independent of the run's seed)

Indices = Union[Tensor, Sequence[int], np.ndarray]


# ----------------------------------------------------------------------------- data model


def collate(images: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack images of possibly different sizes into one zero-padded batch.

    Args:
        images: B tensors (C, H_b, W_b) with the same C.
    Returns:
        batch (B, C, Hmax, Wmax), each image at the top-left, zeros at the bottom/right;
        sizes (B, 2) long, each image's (H_b, W_b).
    """
    if not images:
        raise ValueError("collate needs at least one image")
    channels = {img.shape[0] for img in images}
    if len(channels) != 1 or any(img.dim() != 3 for img in images):
        raise ValueError(f"collate needs (C, H, W) images with one C, got {[tuple(i.shape) for i in images]}")
    sizes = torch.tensor([img.shape[1:] for img in images], dtype=torch.long)  # (B, 2)
    if bool((sizes == sizes[0]).all()):
        return torch.stack(list(images)), sizes
    h_max, w_max = sizes.max(dim=0).values.tolist()
    batch = images[0].new_zeros(len(images), images[0].shape[0], h_max, w_max)
    for out, img in zip(batch, images):
        out[:, : img.shape[1], : img.shape[2]] = img
    return batch, sizes


@dataclass(eq=False, repr=False)
class ImageSet:
    """A labelled set of images, each a float32 tensor (C, H, W) in [0, 1]; sizes may differ.

    When all images have one size they are also held as one ``stacked`` (N, C, H, W) tensor (the
    list then holds views of it), which makes :meth:`batch` a single indexing operation. Build such
    sets with :meth:`from_tensor`; a list of equal-size images is stacked on construction.
    """

    images: list[Tensor]
    labels: Tensor  # (N,) long
    stacked: Optional[Tensor] = None  # (N, C, H, W) when all images have one size
    boxes: Optional[Tensor] = None  # (N, 4) long: the object's box y0, x0, y1, x1 (end exclusive), if known

    def __post_init__(self) -> None:
        if self.labels.dtype != torch.long or self.labels.dim() != 1:
            found = f"{self.labels.dtype} {tuple(self.labels.shape)}"
            raise ValueError(f"labels must be a 1-d long tensor, got {found}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.stacked is None and self.images and len({img.shape for img in self.images}) == 1:
            self.stacked = torch.stack(self.images)  # (N, C, H, W)
            self.images = list(self.stacked.unbind(0))  # views: no second copy of the pixels

    @classmethod
    def from_tensor(cls, images: Tensor, labels: Tensor, boxes: Optional[Tensor] = None) -> ImageSet:
        """An ImageSet of equal-size images given as one (N, C, H, W) tensor."""
        return cls(list(images.unbind(0)), labels, stacked=images, boxes=boxes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        """(image (C, H, W), label)."""
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.stacked.shape[1:])) if self.stacked is not None else "mixed sizes"
        return f"ImageSet({len(self)} images, {shape})"

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0]) if self.images else 0

    @property
    def sizes(self) -> Tensor:
        """(N, 2) long: each image's (H, W) (for size-bucketed batching)."""
        if self.stacked is not None:
            return torch.tensor(self.stacked.shape[2:]).repeat(len(self), 1)
        return torch.tensor([img.shape[1:] for img in self.images], dtype=torch.long).reshape(-1, 2)

    def batch(self, indices: Indices) -> tuple[Tensor, Tensor, Tensor]:
        """images (B, C, Hmax, Wmax) zero-padded, sizes (B, 2) each (H, W), labels (B,)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.stacked is not None:
            images = self.stacked[idx]  # (B, C, H, W)
            sizes = torch.tensor(images.shape[2:]).repeat(len(idx), 1)  # (B, 2)
        else:
            images, sizes = collate([self.images[i] for i in idx.tolist()])
        return images, sizes, self.labels[idx]

    def subset(self, indices: Indices) -> ImageSet:
        """A new ImageSet with the images at ``indices``, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        boxes = None if self.boxes is None else self.boxes[idx]
        if self.stacked is not None:
            return ImageSet.from_tensor(self.stacked[idx], self.labels[idx], boxes)
        return ImageSet([self.images[i] for i in idx.tolist()], self.labels[idx], boxes=boxes)


@dataclass(eq=False)
class ImageData:
    """A dataset ready for training: splits, class names, channel count, train pixel statistics."""

    train: ImageSet
    valid: ImageSet
    test: ImageSet
    classes: list[str]
    channels: int
    mean: Tensor  # (C,) mean of the training pixels (padding excluded)
    std: Tensor  # (C,) their standard deviation (the model normalises with mean and std)


def channel_stats(images: ImageSet, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std over every pixel of every image, each (C,).

    Sums run in float64 over chunks of images, so a large set is never copied whole.
    """
    chunks = images.stacked.split(chunk) if images.stacked is not None else [x[None] for x in images.images]
    total = squares = torch.zeros(images.channels, dtype=torch.float64)
    count = 0
    for x in chunks:  # (n, C, H, W)
        x = x.double()
        total = total + x.sum(dim=(0, 2, 3))
        squares = squares + x.square().sum(dim=(0, 2, 3))
        count += x[:, 0].numel()
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.clamp_min(1e-6).float()  # the floor avoids dividing by 0 on flat data


# ----------------------------------------------------------------------------- splits


def stratified_split(labels: Tensor, n_held: int, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Split indices 0..N-1 into (kept, held) with ``n_held`` held out, class proportions kept.

    Each class gives floor(n_held * n_class / N) images, and the remaining ones go to the classes
    with the largest fractional parts (largest-remainder rounding), so the total is exact. Within a
    class the held images are a random draw of a ``numpy`` generator seeded with ``seed``.
    Both index tensors are sorted (the original order is kept inside each part).
    """
    y = labels.numpy()
    classes, counts = np.unique(y, return_counts=True)
    quota = n_held * counts / len(y)
    held_per_class = np.floor(quota).astype(int)
    extra = n_held - held_per_class.sum()
    held_per_class[np.argsort(-(quota - held_per_class), kind="stable")[:extra]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, held_per_class)]
    held_mask = np.zeros(len(y), dtype=bool)
    held_mask[np.concatenate(held or [np.zeros(0, dtype=int)])] = True
    return torch.from_numpy(np.flatnonzero(~held_mask)), torch.from_numpy(np.flatnonzero(held_mask))


def stratified_folds(labels: Tensor, folds: int, seed: int = SPLIT_SEED) -> Tensor:
    """The fold (0..folds-1) of each index 0..N-1, for k-fold cross-validation with class
    proportions kept: each class's images in a random order (a ``numpy`` generator seeded with
    ``seed``), classes one after the other, dealt to the folds in turn. Fold sizes differ by at
    most one image, and so do a class's counts in any two folds."""
    y = labels.numpy()
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)] or [np.zeros(0, dtype=int)])
    fold = np.empty(len(y), dtype=np.int64)
    fold[order] = np.arange(len(y)) % folds
    return torch.from_numpy(fold)


def split_off(images: ImageSet, n_held: int) -> tuple[ImageSet, ImageSet]:
    """(rest, held): a fixed stratified draw of ``n_held`` images held out of ``images``."""
    kept, held = stratified_split(images.labels, n_held)
    return images.subset(kept), images.subset(held)


@dataclass
class _Splits:
    """What a dataset loader returns; ``valid`` None = carve it from train."""

    train: ImageSet
    test: ImageSet
    classes: list[str]
    channels: int
    valid: Optional[ImageSet] = None
