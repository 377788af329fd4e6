"""Image dataset readers: the UCI 8x8 digits (shipped), MNIST IDX, CIFAR-10, an image folder, and load_images.

Each reader returns train / test (and, for an image folder with ``valid/``, valid) as
:class:`attnlab.data.images.ImageSet` splits; :func:`load_images` turns them into an
:class:`attnlab.data.images.ImageData`. ``valid`` is always carved from the training split with
``cfg.valid_fraction`` (stratified, with the fixed :data:`attnlab.data.images.SPLIT_SEED`), unless
the dataset has its own valid split; with ``cfg.cv_folds = k > 1`` it is instead fold
``cfg.cv_fold`` of k stratified folds of the training split (k-fold cross-validation: k runs, one
per fold, validate on every training image once; the test split is the same in all of them).
``cfg.max_train > 0`` then keeps a stratified subset of train.

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
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from attnlab.config import ImageDataConfig
from attnlab.data.augment import Augment
from attnlab.data.digits import LEVELS as DIGIT_LEVELS
from attnlab.data.digits import load_digits
from attnlab.data.download import RemoteFile, fetch, safe_extract
from attnlab.data.images import ImageData, ImageSet, _Splits, channel_stats, split_off, stratified_folds
from attnlab.errors import UserError
from attnlab.registry import Registry

DIGITS_TEST_FRACTION = 0.2
MNIST_SUBSETS = ("standard", "test_split")
MNIST_TEST_SPLIT_HELD = 2000  # test_split: test images held out of the 10k t10k set


DATASETS: Registry[Callable[[ImageDataConfig], _Splits]] = Registry("dataset")


def load_images(cfg: ImageDataConfig) -> ImageData:
    """Load the image dataset ``cfg.name`` with its fixed splits (see the module docstring)."""
    _check_config(cfg)
    splits = DATASETS.get(cfg.name)(cfg)
    train, valid = splits.train, splits.valid
    if cfg.cv_folds > 1:
        if valid is not None:
            raise UserError(
                f"data={cfg.name} makes its valid split itself, so data.cv_folds cannot pool it with train; "
                "set data.cv_folds=0"
            )
        fold = stratified_folds(train.labels, cfg.cv_folds)  # (N,) each training image's fold
        valid = train.subset(torch.nonzero(fold == cfg.cv_fold).flatten())
        train = train.subset(torch.nonzero(fold != cfg.cv_fold).flatten())
    elif valid is None:
        train, valid = split_off(train, round(cfg.valid_fraction * len(train)))
    if 0 < cfg.max_train < len(train):
        train = split_off(train, len(train) - cfg.max_train)[0]
    mean, std = channel_stats(train)
    return ImageData(train, valid, splits.test, splits.classes, splits.channels, mean, std)


def _check_config(cfg: ImageDataConfig) -> None:
    if not 0 <= cfg.valid_fraction < 1:
        raise UserError(f"data.valid_fraction={cfg.valid_fraction} must be in [0, 1) (e.g. 0.1)")
    if cfg.cv_folds == 1 or cfg.cv_folds < 0:
        raise UserError(f"data.cv_folds={cfg.cv_folds} must be 0 (the fixed valid split) or >= 2 (e.g. 5)")
    if cfg.cv_folds == 0 and cfg.cv_fold != 0:
        raise UserError(f"data.cv_fold={cfg.cv_fold} needs data.cv_folds (e.g. data.cv_folds=5)")
    if cfg.cv_folds > 1 and not 0 <= cfg.cv_fold < cfg.cv_folds:
        raise UserError(f"data.cv_fold={cfg.cv_fold} must be in 0..{cfg.cv_folds - 1} (one of the data.cv_folds folds)")
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
