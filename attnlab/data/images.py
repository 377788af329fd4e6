"""Image classification datasets: the UCI 8x8 digits (shipped), MNIST, CIFAR-10 and an image folder.

Every dataset becomes an :class:`ImageData`: three :class:`ImageSet` splits (train, valid, test) of
float32 images in [0, 1], shaped (C, H, W), the class names, the channel count and the per-channel
mean/std of the training pixels (the model normalises with them; the data stays in [0, 1]).

Splits are fixed: they are drawn with :data:`SPLIT_SEED`, never with the run's seed, so every run
of a dataset trains, validates and tests on the same images. ``valid`` is always carved from the
training split with ``cfg.valid_fraction`` (stratified), unless the dataset has its own valid split
(an image folder with ``valid/``). ``cfg.max_train > 0`` then keeps a stratified subset of train.

Datasets (train / test before the valid split):

- ``digits``: the 1797 8x8 UCI digits shipped in attnlab/data/optdigits (CC BY 4.0), a fixed
  stratified 80/20 split: 1438 / 359 (no download).
- ``mnist``, ``subset=standard``: the 60000 / 10000 IDX .gz files, downloaded and sha256-checked.
- ``mnist``, ``subset=test_split``: only the t10k files, a fixed stratified split: 8000 / 2000.
- ``cifar10``: the python-pickle batches, 50000 / 10000, downloaded and sha256-checked.
- ``placed_digits``: the attention gym's images: each digit pasted at a random place on a larger
  canvas with clutter, its box known (:mod:`attnlab.data.placed_digits`).
- ``image_folder``: ``DIR/train/<class>/*`` / ``DIR/test/<class>/*`` (optional ``DIR/valid``), read
  with Pillow; any sizes, 1 channel if every image is grey, else RGB.

With the default ``valid_fraction=0.1``, digits gives 1294 / 144 / 359 train / valid / test and
mnist test_split gives 7200 / 800 / 2000.

Images of different sizes (image folders) are kept as a list; :func:`collate` pads a batch of them
with zeros at the bottom/right and reports each image's (H, W) so the model can mask the padding.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from attnlab.config import ImageDataConfig
from attnlab.data.augment import Augment
from attnlab.data.digits import LEVELS as DIGIT_LEVELS
from attnlab.data.digits import load_digits
from attnlab.data.download import RemoteFile, fetch, safe_extract
from attnlab.errors import UserError
from attnlab.registry import Registry

SPLIT_SEED = 0  # seed of every fixed split (independent of the run's seed)
DIGITS_TEST_FRACTION = 0.2
MNIST_SUBSETS = ("standard", "test_split")
MNIST_TEST_SPLIT_HELD = 2000  # test_split: test images held out of the 10k t10k set

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


def split_off(images: ImageSet, n_held: int) -> tuple[ImageSet, ImageSet]:
    """(rest, held): a fixed stratified draw of ``n_held`` images held out of ``images``."""
    kept, held = stratified_split(images.labels, n_held)
    return images.subset(kept), images.subset(held)


# ----------------------------------------------------------------------------- datasets


@dataclass
class _Splits:
    """What a dataset loader returns; ``valid`` None = carve it from train."""

    train: ImageSet
    test: ImageSet
    classes: list[str]
    channels: int
    valid: Optional[ImageSet] = None


DATASETS: Registry[Callable[[ImageDataConfig], _Splits]] = Registry("dataset")


def load_images(cfg: ImageDataConfig) -> ImageData:
    """Load the image dataset ``cfg.name`` with its fixed splits (see the module docstring)."""
    _check_config(cfg)
    splits = DATASETS.get(cfg.name)(cfg)
    train, valid = splits.train, splits.valid
    if valid is None:
        train, valid = split_off(train, round(cfg.valid_fraction * len(train)))
    if 0 < cfg.max_train < len(train):
        train = split_off(train, len(train) - cfg.max_train)[0]
    mean, std = channel_stats(train)
    return ImageData(train, valid, splits.test, splits.classes, splits.channels, mean, std)


def _check_config(cfg: ImageDataConfig) -> None:
    if not 0 <= cfg.valid_fraction < 1:
        raise UserError(f"data.valid_fraction={cfg.valid_fraction} must be in [0, 1) (e.g. 0.1)")
    if cfg.max_train < 0:
        raise UserError(f"data.max_train={cfg.max_train} must be >= 0 (0 keeps every training image)")
    Augment.from_config(cfg.augment)  # fails early on a bad augmentation setting
    if cfg.name == "mnist" and cfg.subset not in MNIST_SUBSETS:
        valid = ", ".join(MNIST_SUBSETS)
        raise UserError(f"unknown mnist data.subset '{cfg.subset}'; valid choices: {valid}")
    if cfg.name != "mnist" and cfg.subset != "standard":
        raise UserError(
            f"data.subset={cfg.subset} applies only to mnist; remove it or set data.subset=standard"
        )


def _uint8_to_float(images: np.ndarray) -> Tensor:
    """uint8 array (N, C, H, W) -> float32 tensor in [0, 1]."""
    return torch.from_numpy(images.astype(np.float32)).div_(255)


def _labels(labels: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64))


@DATASETS.register("digits")
def _load_digits(cfg: ImageDataConfig) -> _Splits:
    """The 1797 8x8 UCI digits shipped with attnlab (counts 0..16), fixed stratified 80/20 train/test."""
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / DIGIT_LEVELS).unsqueeze(1)  # (N, 1, 8, 8)
    everything = ImageSet.from_tensor(images, _labels(digits.target))
    train, test = split_off(everything, round(DIGITS_TEST_FRACTION * len(everything)))
    return _Splits(train, test, [str(d) for d in range(10)], channels=1)


# --- MNIST

MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror


def _mnist_file(name: str, sha256: str) -> RemoteFile:
    return RemoteFile(name, MNIST_MIRROR + name, sha256)


# sha256 of the original gzip files: the four agree with tensorflow/datasets'
# url_checksums/mnist.txt; the two t10k ones were also recomputed on real copies.
MNIST_FILES = {
    "train_images": _mnist_file(
        "train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train_labels": _mnist_file(
        "train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "test_images": _mnist_file(
        "t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "test_labels": _mnist_file(
        "t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}

_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned-byte IDX files: labels (N,), images (N, H, W)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes with ``ndim`` dimensions.

    The header is a big-endian magic number 0x000008NN (0x08: unsigned bytes, NN: the number of
    dimensions) followed by NN big-endian uint32 sizes; the payload must hold exactly their
    product of bytes.
    """
    hint = "delete it so that it is downloaded again"
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path} is not a readable gzip file ({e}); {hint}") from None
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != _IDX_MAGIC[ndim] or len(data) < header:
        found = f"{magic:#010x}" if magic is not None else "none"
        expected = f"{_IDX_MAGIC[ndim]:#010x}"
        raise UserError(f"{path} is not a {ndim}-d IDX file (magic {found}, expected {expected}); {hint}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(dims)):
        raise UserError(f"{path} holds {len(data) - header} bytes of data, its header says {dims}; {hint}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_mnist_pair(cfg: ImageDataConfig, part: str) -> ImageSet:
    """The MNIST ``part`` ("train" or "test") as an ImageSet (N, 1, 28, 28)."""
    images_path = fetch(MNIST_FILES[f"{part}_images"], "mnist", cfg.cache_dir)
    labels_path = fetch(MNIST_FILES[f"{part}_labels"], "mnist", cfg.cache_dir)
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels) or labels.max(initial=0) > 9:
        raise UserError(
            f"{labels_path} does not match {images_path} ({len(labels)} labels up to "
            f"{labels.max(initial=0)} for {len(images)} images); delete both so that they are downloaded again"
        )
    return ImageSet.from_tensor(_uint8_to_float(images[:, None]), _labels(labels))  # (N, 1, H, W)


@DATASETS.register("mnist")
def _load_mnist(cfg: ImageDataConfig) -> _Splits:
    """MNIST: the standard 60k/10k, or (subset=test_split) a fixed 8k/2k split of the 10k test set."""
    test = _read_mnist_pair(cfg, "test")
    if cfg.subset == "test_split":
        train, test = split_off(test, MNIST_TEST_SPLIT_HELD)
    else:
        train = _read_mnist_pair(cfg, "train")
    return _Splits(train, test, [str(d) for d in range(10)], channels=1)


# --- CIFAR-10

# sha256 of cifar-10-python.tar.gz as keras.datasets.cifar10 checks it. (c4a38c50... is the
# sha256 of the other archive, cifar-10-binary.tar.gz, in tensorflow/datasets' url_checksums.)
CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_FILES = (*CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta")


def _cifar10_folder(cfg: ImageDataConfig) -> Path:
    """The extracted ``cifar-10-batches-py`` folder next to the cached archive (extracted once)."""
    archive = fetch(CIFAR10_ARCHIVE, "cifar10", cfg.cache_dir)
    folder = archive.parent / CIFAR10_FOLDER
    if all((folder / name).is_file() for name in _CIFAR10_FILES):
        return folder
    hint = "delete it so that it is downloaded again"
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:  # no half-extracted folder left
        try:
            safe_extract(archive, Path(tmp))
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise UserError(f"cannot extract {archive} ({e}); {hint}") from None
        extracted = Path(tmp) / CIFAR10_FOLDER
        missing = [name for name in _CIFAR10_FILES if not (extracted / name).is_file()]
        if missing:
            raise UserError(f"{archive} lacks {CIFAR10_FOLDER}/{missing[0]}; {hint}")
        shutil.rmtree(folder, ignore_errors=True)
        extracted.rename(folder)
    return folder


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            content = pickle.load(f, encoding="bytes")  # the archive's sha256 was checked
    except Exception as e:  # noqa: BLE001 (any unpickling failure means a corrupt file)
        raise UserError(
            f"cannot read the CIFAR-10 file {path} ({e}); delete its folder to extract it again"
        ) from None
    if not isinstance(content, dict):
        raise UserError(f"{path} is not a CIFAR-10 batch (a {type(content).__name__}, not a dict)")
    return content


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """images (N, 3, 32, 32) uint8 and labels (N,) of one pickled CIFAR-10 batch."""
    batch = _unpickle(path)
    data, labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = (getattr(data, "dtype", type(data).__name__), getattr(data, "shape", None))
        raise UserError(f"{path}: b'data' must be uint8 rows of 3072 bytes, found {found}")
    if labels.shape != (len(data),) or not np.isin(labels, np.arange(10)).all():
        raise UserError(f"{path}: b'labels' must be {len(data)} integers in 0..9")
    # each row: 1024 red, then 1024 green, then 1024 blue bytes, each a row-major 32x32 plane
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_set(paths: Sequence[Path]) -> ImageSet:
    images, labels = zip(*(_read_cifar_batch(p) for p in paths))
    return ImageSet.from_tensor(_uint8_to_float(np.concatenate(images)), _labels(np.concatenate(labels)))


@DATASETS.register("cifar10")
def _load_cifar10(cfg: ImageDataConfig) -> _Splits:
    """CIFAR-10 from the python-pickle batches: 50k train (data_batch_1..5) / 10k test."""
    folder = _cifar10_folder(cfg)
    names = _unpickle(folder / "batches.meta").get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise UserError(f"{folder / 'batches.meta'} must list 10 b'label_names'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train = _cifar_set([folder / name for name in CIFAR10_TRAIN_BATCHES])
    return _Splits(train, _cifar_set([folder / "test_batch"]), classes, channels=3)


# --- image folder

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}  # Pillow modes read as 1 channel


def _class_files(root: Path, split: str) -> dict[str, list[Path]]:
    """{class name: sorted image files} of ``root/split/<class>/*`` (hidden entries skipped)."""
    folder = root / split
    if not folder.is_dir():
        raise UserError(f"image folder {root} has no {split}/ folder; put the images in {folder}/<class>/")
    visible = lambda p: not p.name.startswith(".")  # noqa: E731
    classes = {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and visible(f))
        for d in sorted(folder.iterdir())
        if d.is_dir() and visible(d)
    }
    if not classes:
        raise UserError(f"{folder} has no class folders; put the images of each class in {folder}/<class>/")
    for name, files in classes.items():
        if not files:
            raise UserError(f"class folder {folder / name} has no images; add some or remove the folder")
    return classes


def _check_same_classes(root: Path, train: dict, other: dict, split: str) -> None:
    only_train, only_other = sorted(set(train) - set(other)), sorted(set(other) - set(train))
    if only_train or only_other:
        raise UserError(
            f"class folders differ between {root / 'train'} and {root / split}: only in train: "
            f"{', '.join(only_train) or '-'}; only in {split}: {', '.join(only_other) or '-'}"
        )


def _read_image(path: Path) -> tuple[np.ndarray, bool]:
    """(pixels (H, W) or (H, W, 3) uint8, is_grayscale) of one image file."""
    try:
        with Image.open(path) as img:
            gray = img.mode in _GRAY_MODES
            return np.asarray(img.convert("L" if gray else "RGB")), gray
    except (OSError, EOFError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image file {path} ({e}); fix or remove it") from None


def _to_tensor(pixels: np.ndarray, channels: int) -> Tensor:
    """(H, W) or (H, W, 3) uint8 -> (channels, H, W) float32 in [0, 1]."""
    image = torch.from_numpy(pixels.astype(np.float32) / 255)
    image = image.permute(2, 0, 1) if image.dim() == 3 else image.unsqueeze(0)  # (C, H, W)
    return image.expand(channels, -1, -1).contiguous()  # a grey image in an RGB set: 3 equal planes


@DATASETS.register("image_folder")
def _load_image_folder(cfg: ImageDataConfig) -> _Splits:
    """DIR/{train,test}[,valid]/<class>/<images>: any sizes; 1 channel if every image is grey, else RGB."""
    if not cfg.path:
        raise UserError(
            "data.name=image_folder needs data.path=DIR (with DIR/train/<class>/ and DIR/test/<class>/)"
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist (data.path)")
    splits = {"train": _class_files(root, "train"), "test": _class_files(root, "test")}
    if (root / "valid").exists():
        splits["valid"] = _class_files(root, "valid")
    if len(splits["train"]) < 2:
        raise UserError(f"{root / 'train'} has one class folder; a classifier needs at least 2")
    for split in [name for name in splits if name != "train"]:
        _check_same_classes(root, splits["train"], splits[split], split)
    classes = sorted(splits["train"])
    read = {
        split: [(_read_image(f), label) for label, name in enumerate(classes) for f in files[name]]
        for split, files in splits.items()
    }
    channels = 1 if all(gray for items in read.values() for (_, gray), _ in items) else 3
    sets = {
        split: ImageSet([_to_tensor(px, channels) for (px, _), _ in items], _labels([y for _, y in items]))
        for split, items in read.items()
    }
    return _Splits(sets["train"], sets["test"], classes, channels, valid=sets.get("valid"))


from attnlab.data import placed_digits as _placed_digits  # noqa: E402,F401  (registers "placed_digits")
