"""Tests for attnlab.data.images and attnlab.data.image_readers: splits, MNIST/CIFAR-10/image-folder loaders, collate, user errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.config import ImageDataConfig
from attnlab.data import image_readers as im
from attnlab.data.download import RemoteFile
from attnlab.data.image_readers import load_images, read_idx
from attnlab.data.images import ImageSet, collate, stratified_folds, stratified_split
from attnlab.errors import UserError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # SOURCE.md


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Loaders must use the cache: any URL access fails the test."""
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail(f"network access: {a[:1]}"))


def class_counts(labels: torch.Tensor, n_classes: int = 10) -> np.ndarray:
    return np.bincount(labels.numpy(), minlength=n_classes)


def assert_stratified(part: torch.Tensor, whole: torch.Tensor) -> None:
    """Each class's share of ``part`` is its share of ``whole``, to within one image."""
    expected = class_counts(whole) * len(part) / len(whole)
    assert np.abs(class_counts(part) - expected).max() < 1


def image_keys(s: ImageSet) -> Counter:
    return Counter((img.numpy().tobytes(), int(y)) for img, y in zip(s.images, s.labels))


# ----------------------------------------------------------------------------- splits


def test_stratified_split_is_exact_disjoint_and_proportional():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    kept, held = stratified_split(labels, 17)
    assert len(held) == 17 and len(kept) == 83
    assert sorted(kept.tolist() + held.tolist()) == list(range(100))
    assert_stratified(labels[held], labels)
    again_kept, again_held = stratified_split(labels, 17)
    assert torch.equal(held, again_held) and torch.equal(kept, again_kept)
    assert not torch.equal(held, stratified_split(labels, 17, seed=1)[1])


def test_digits_split_is_fixed_stratified_and_a_partition():
    torch.manual_seed(1)
    data = load_images(ImageDataConfig(name="digits"))
    torch.manual_seed(2)  # the run's seed must not change the split
    again = load_images(ImageDataConfig(name="digits"))
    assert (len(data.train), len(data.valid), len(data.test)) == (1294, 144, 359)
    for a, b in ((data.train, again.train), (data.valid, again.valid), (data.test, again.test)):
        assert torch.equal(a.stacked, b.stacked) and torch.equal(a.labels, b.labels)
    from attnlab.data.digits import load_digits

    whole = torch.from_numpy(load_digits().target)
    for part in (data.train, data.valid, data.test):
        assert_stratified(part.labels, whole)
    # disjoint and covering: the three splits together are exactly the 1797 digits
    full = ImageSet.from_tensor(torch.from_numpy(load_digits().images / 16.0).float()[:, None], whole)
    assert image_keys(data.train) + image_keys(data.valid) + image_keys(data.test) == image_keys(full)
    assert data.channels == 1 and data.classes == [str(d) for d in range(10)]
    assert data.train.stacked.shape[1:] == (1, 8, 8) and data.train.stacked.dtype == torch.float32
    assert 0 <= data.train.stacked.min() and data.train.stacked.max() == 1
    assert torch.allclose(data.mean, data.train.stacked.mean(dim=(0, 2, 3)))
    assert torch.allclose(data.std, data.train.stacked.std(dim=(0, 2, 3), correction=0))


def test_max_train_keeps_a_stratified_subset_and_the_same_valid():
    full = load_images(ImageDataConfig(name="digits"))
    small = load_images(ImageDataConfig(name="digits", max_train=100))
    assert len(small.train) == 100
    assert_stratified(small.train.labels, full.train.labels)
    assert torch.equal(small.valid.labels, full.valid.labels)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "svhn"}, "unknown dataset 'svhn'; valid choices: cifar10, digits, image_folder, mnist"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"max_train": -1}, "max_train"),
        ({"subset": "test_split"}, "only to mnist"),
        ({"cv_folds": 1}, "cv_folds=1 must be 0"),
        ({"cv_fold": 2}, "cv_fold=2 needs data.cv_folds"),
        ({"cv_folds": 5, "cv_fold": 5}, r"cv_fold=5 must be in 0\.\.4"),
    ],
)
def test_bad_config_values(change, message):
    with pytest.raises(UserError, match=message):
        load_images(ImageDataConfig(**change))


def test_stratified_folds_deal_each_class_evenly():
    labels = torch.tensor([0] * 23 + [1] * 9 + [2] * 40)
    fold = stratified_folds(labels, 4)
    assert torch.equal(fold, stratified_folds(labels, 4))  # fixed
    sizes = torch.bincount(fold, minlength=4)
    assert int(sizes.max() - sizes.min()) <= 1 and int(sizes.sum()) == len(labels)
    for c in range(3):
        per_fold = torch.bincount(fold[labels == c], minlength=4)
        assert int(per_fold.max() - per_fold.min()) <= 1


def test_cross_validation_folds_cover_the_training_images_once_and_keep_test():
    fixed = load_images(ImageDataConfig())
    pooled = image_keys(fixed.train) + image_keys(fixed.valid)  # the 1438 training images
    seen: Counter = Counter()
    for k in range(5):
        data = load_images(ImageDataConfig(cv_folds=5, cv_fold=k))
        assert torch.equal(data.test.stacked, fixed.test.stacked)
        assert image_keys(data.train) + image_keys(data.valid) == pooled and len(data.valid) in (287, 288)
        assert_stratified(data.valid.labels, torch.cat([fixed.train.labels, fixed.valid.labels]))
        seen += image_keys(data.valid)
    assert seen == pooled  # every training image is validated on exactly once


def test_cross_validation_needs_a_valid_split_carved_from_train(tmp_path):
    with pytest.raises(UserError, match="makes its valid split itself"):
        load_images(folder_cfg(make_folder(tmp_path / "pets", splits=("train", "valid", "test")), cv_folds=2))


def test_bad_augment_shift_fails_at_load():
    cfg = ImageDataConfig()
    cfg.augment.shift = -2
    with pytest.raises(UserError, match="shift"):
        load_images(cfg)


# ----------------------------------------------------------------------------- collate / ImageSet


def test_collate_pads_bottom_right_and_reports_sizes():
    a, b = torch.rand(3, 2, 5), torch.rand(3, 4, 3)
    batch, sizes = collate([a, b])
    assert batch.shape == (2, 3, 4, 5)
    assert sizes.tolist() == [[2, 5], [4, 3]]
    assert torch.equal(batch[0, :, :2, :], a) and batch[0, :, 2:].abs().sum() == 0
    assert torch.equal(batch[1, :, :, :3], b) and batch[1, :, :, 3:].abs().sum() == 0


def test_imageset_batch_uniform_and_mixed():
    uniform = ImageSet.from_tensor(torch.rand(6, 1, 4, 4), torch.arange(6))
    x, sizes, y = uniform.batch([4, 1])
    assert x.shape == (2, 1, 4, 4) and sizes.tolist() == [[4, 4], [4, 4]] and y.tolist() == [4, 1]
    assert torch.equal(x[0], uniform[4][0]) and uniform[4][1] == 4
    mixed = ImageSet([torch.rand(1, 2, 3), torch.rand(1, 5, 2)], torch.tensor([0, 1]))
    assert mixed.stacked is None
    x, sizes, y = mixed.batch(torch.tensor([1, 0]))
    assert x.shape == (2, 1, 5, 3) and sizes.tolist() == [[5, 2], [2, 3]] and y.tolist() == [1, 0]
    assert mixed.sizes.tolist() == [[2, 3], [5, 2]]


# ----------------------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file of uint8 ``array``."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def put_in_cache(monkeypatch, cache: Path, key: str, content: bytes) -> None:
    """Write ``content`` as MNIST file ``key`` in the cache and make its sha256 the expected one."""
    remote = im.MNIST_FILES[key]
    (cache / "mnist").mkdir(parents=True, exist_ok=True)
    (cache / "mnist" / remote.name).write_bytes(content)
    fake = RemoteFile(remote.name, remote.url, hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(im.MNIST_FILES, key, fake)


def test_read_idx_on_the_real_t10k_files(mnist_cache):
    images = read_idx(Path(mnist_cache) / "mnist" / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx(Path(mnist_cache) / "mnist" / "t10k-labels-idx1-ubyte.gz", 1)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert abs(images.mean() / 255 - 0.1325) < 1e-3


def test_mnist_test_split_is_8k_2k_stratified(mnist_cache):
    data = load_images(ImageDataConfig(name="mnist", subset="test_split", cache_dir=mnist_cache))
    assert (len(data.train), len(data.valid), len(data.test)) == (7200, 800, 2000)
    whole = torch.tensor([c for c, n in enumerate(MNIST_TEST_COUNTS) for _ in range(n)])
    for part in (data.train, data.valid, data.test):
        assert_stratified(part.labels, whole)
    train_and_valid = torch.cat([data.train.labels, data.valid.labels])
    assert class_counts(train_and_valid) + class_counts(data.test.labels) == pytest.approx(MNIST_TEST_COUNTS)
    assert data.train.stacked.shape[1:] == (1, 28, 28) and data.channels == 1
    assert abs(float(data.mean) - 0.1325) < 0.005


def test_mnist_standard_uses_the_train_files(mnist_cache, monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.arange(50) % 10
    pixels = rng.integers(0, 256, (50, 28, 28))
    put_in_cache(monkeypatch, Path(mnist_cache), "train_images", gzip.compress(idx_bytes(pixels)))
    put_in_cache(monkeypatch, Path(mnist_cache), "train_labels", gzip.compress(idx_bytes(labels)))
    data = load_images(ImageDataConfig(name="mnist", cache_dir=mnist_cache))
    assert (len(data.train), len(data.valid), len(data.test)) == (45, 5, 10000)
    assert data.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_mnist_unknown_subset_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid choices: standard, test_split"):
        load_images(ImageDataConfig(name="mnist", subset="train_split"))


@pytest.mark.parametrize(
    "content, message",
    [
        # an images file read as labels
        (gzip.compress(struct.pack(">IIII", 0x803, 2, 2, 2) + bytes(8), mtime=0), "not a 1-d IDX file"),
        (gzip.compress(struct.pack(">II", 0x801, 10) + bytes(9), mtime=0), "holds 9 bytes of data"),  # truncated
        (b"not gzip at all", "not a readable gzip file"),
        (gzip.compress(b"\x00\x00", mtime=0), "magic none"),  # mtime=0: same test ids in every process
    ],
)
def test_corrupt_idx_file(tmp_path, content, message):
    path = tmp_path / "labels.gz"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_idx(path, 1)


def test_corrupt_mnist_file_in_cache_is_a_user_error(mnist_cache, monkeypatch):
    header_only = gzip.compress(struct.pack(">II", 0x801, 10000))
    put_in_cache(monkeypatch, Path(mnist_cache), "test_labels", header_only)
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz holds 0 bytes"):
        load_images(ImageDataConfig(name="mnist", subset="test_split", cache_dir=mnist_cache))


def test_mnist_labels_must_match_images(mnist_cache, monkeypatch):
    put_in_cache(monkeypatch, Path(mnist_cache), "test_labels", gzip.compress(idx_bytes(np.zeros(7))))
    with pytest.raises(UserError, match="does not match"):
        load_images(ImageDataConfig(name="mnist", subset="test_split", cache_dir=mnist_cache))


# ----------------------------------------------------------------------------- CIFAR-10


def cifar_batch(n: int, first_label: int, rows: int = 3072) -> dict:
    """A batch in the CIFAR-10 python layout; pixel bytes are ``(row index + label) % 256``."""
    labels = [(first_label + i) % 10 for i in range(n)]
    data = ((np.arange(rows)[None, :] + np.array(labels)[:, None]) % 256).astype(np.uint8)
    return {b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def write_cifar(monkeypatch, cache: Path, batches: dict[str, dict]) -> None:
    """A cifar-10-python.tar.gz with ``batches`` in the cache; its sha256 becomes the expected one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in batches.items():
            raw = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    cache_cifar_archive(monkeypatch, cache, buffer.getvalue())


def cache_cifar_archive(monkeypatch, cache: Path, content: bytes) -> None:
    """Put ``content`` in the cache as cifar-10-python.tar.gz and make its sha256 the expected one."""
    (cache / "cifar10").mkdir(parents=True)
    (cache / "cifar10" / "cifar-10-python.tar.gz").write_bytes(content)
    remote = im.CIFAR10_ARCHIVE
    fake = RemoteFile(remote.name, remote.url, hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(im, "CIFAR10_ARCHIVE", fake)


CIFAR_NAMES = b"airplane automobile bird cat deer dog frog horse ship truck".split()


def cifar_batches(**replace: dict) -> dict[str, dict]:
    batches = {f"data_batch_{i}": cifar_batch(4, first_label=2 * i) for i in range(1, 6)}
    batches |= {"test_batch": cifar_batch(10, first_label=0), "batches.meta": {b"label_names": CIFAR_NAMES}}
    return batches | replace


def test_cifar10_loads_the_pickled_batches(tmp_path, monkeypatch):
    write_cifar(monkeypatch, tmp_path, cifar_batches())
    cfg = ImageDataConfig(name="cifar10", cache_dir=str(tmp_path), valid_fraction=0.2)
    data = load_images(cfg)
    assert (len(data.train), len(data.valid), len(data.test)) == (16, 4, 10)
    assert data.channels == 3 and data.classes[:2] == ["airplane", "automobile"] and len(data.classes) == 10
    assert data.test.stacked.shape == (10, 3, 32, 32)
    assert data.test.labels.tolist() == list(range(10))
    image, label = data.test[3]
    # row layout: 1024 red bytes, 1024 green, 1024 blue, each plane row-major 32x32
    assert image[0, 0, 0] * 255 == pytest.approx((0 + label) % 256)
    assert image[0, 1, 2] * 255 == pytest.approx((34 + label) % 256)
    assert image[1, 0, 0] * 255 == pytest.approx((1024 + label) % 256)
    train_labels = torch.cat([data.train.labels, data.valid.labels]).sort().values
    expected = sorted((2 * i + k) % 10 for i in range(1, 6) for k in range(4))
    assert train_labels.tolist() == expected
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    again = load_images(cfg)  # reads the extracted folder
    assert torch.equal(again.test.stacked, data.test.stacked)


@pytest.mark.parametrize(
    "replace, message",
    [
        ({"test_batch": cifar_batch(10, 0, rows=3000)}, "rows of 3072 bytes"),
        ({"data_batch_2": cifar_batch(4, 0) | {b"labels": [0, 1, 2, 10]}}, "integers in 0..9"),
        ({"data_batch_3": [1, 2, 3]}, "not a CIFAR-10 batch"),
        ({"batches.meta": {b"label_names": [b"a"]}}, "10 b'label_names'"),
    ],
)
def test_cifar10_bad_batches(tmp_path, monkeypatch, replace, message):
    write_cifar(monkeypatch, tmp_path, cifar_batches(**replace))
    with pytest.raises(UserError, match=message):
        load_images(ImageDataConfig(name="cifar10", cache_dir=str(tmp_path)))


def test_cifar10_archive_without_the_batches(tmp_path, monkeypatch):
    batches = cifar_batches()
    del batches["test_batch"]
    write_cifar(monkeypatch, tmp_path, batches)
    with pytest.raises(UserError, match="lacks cifar-10-batches-py/test_batch"):
        load_images(ImageDataConfig(name="cifar10", cache_dir=str(tmp_path)))


def test_cifar10_archive_that_is_not_a_tar(tmp_path, monkeypatch):
    cache_cifar_archive(monkeypatch, tmp_path, b"<html>not found</html>")
    with pytest.raises(UserError, match="neither a tar nor a zip"):
        load_images(ImageDataConfig(name="cifar10", cache_dir=str(tmp_path)))


# ----------------------------------------------------------------------------- image folder


def save_image(path: Path, mode: str, size: tuple[int, int], value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=value if mode == "L" else (value, 0, 255 - value)).save(path)


def make_folder(root: Path, modes: tuple[str, ...] = ("L", "RGB"), splits=("train", "test")) -> Path:
    """root/<split>/{cat,dog}/ with images of mixed sizes; ``modes`` cycle over the images."""
    k = 0
    for split in splits:
        for cls in ("cat", "dog"):
            for i in range(5 if split == "train" else 2):
                size = (6 + i, 4 + 2 * (i % 2))  # (width, height)
                save_image(root / split / cls / f"{i}.png", modes[k % len(modes)], size, value=10 * k)
                k += 1
    return root


def folder_cfg(root: Path, **kw) -> ImageDataConfig:
    return ImageDataConfig(name="image_folder", path=str(root), **kw)


def test_image_folder_mixed_sizes_and_modes(tmp_path):
    data = load_images(folder_cfg(make_folder(tmp_path / "pets"), valid_fraction=0.2))
    assert data.classes == ["cat", "dog"] and data.channels == 3
    assert (len(data.train), len(data.valid), len(data.test)) == (8, 2, 4)
    assert data.train.stacked is None  # mixed sizes
    assert {tuple(img.shape) for img in data.test.images} == {(3, 4, 6), (3, 6, 7)}
    assert all(img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1 for img in data.train.images)
    grey = data.test.images[0]  # test/cat/0.png was saved as L: three equal planes
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    x, sizes, _ = data.train.batch(range(len(data.train)))
    assert x.shape[:2] == (8, 3) and (sizes <= torch.tensor(x.shape[2:])).all()
    assert data.mean.shape == (3,) and (data.std > 0).all()


def test_image_folder_all_grey_has_one_channel_and_uses_valid_folder(tmp_path):
    root = make_folder(tmp_path / "grey", modes=("L",), splits=("train", "valid", "test"))
    data = load_images(folder_cfg(root))
    assert data.channels == 1 and (len(data.train), len(data.valid), len(data.test)) == (10, 4, 4)
    assert all(img.shape[0] == 1 for img in data.train.images)
    assert data.test.images[0][0, 0, 0] * 255 == pytest.approx(140)  # value 10*k, k = 14 for test/cat/0


def test_image_folder_same_size_images_are_stacked(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            save_image(tmp_path / split / cls / "x.png", "RGB", (5, 5))
    data = load_images(folder_cfg(tmp_path, valid_fraction=0.0))
    assert data.train.stacked.shape == (2, 3, 5, 5) and len(data.valid) == 0


def break_missing_test(root: Path) -> None:
    for f in (root / "test").rglob("*.png"):
        f.unlink()
    for d in sorted((root / "test").iterdir()):
        d.rmdir()
    (root / "test").rmdir()


@pytest.mark.parametrize(
    "damage, message",
    [
        (break_missing_test, r"has no test/ folder"),
        (
            lambda r: [f.unlink() for f in (r / "train" / "dog").iterdir()],
            r"class folder .*train/dog has no images",
        ),
        (lambda r: (r / "test" / "bird").mkdir() or save_image(r / "test" / "bird" / "b.png", "L", (3, 3)),
         "only in train: -; only in test: bird"),
        (
            lambda r: (r / "train" / "cat" / "notes.txt").write_text("hello"),
            r"cannot read image file .*cat/notes.txt",
        ),
        (
            lambda r: (r / "train" / "dog" / "2.png").write_bytes(b"\x89PNG broken"),
            r"cannot read image file .*dog/2.png",
        ),
    ],
)
def test_image_folder_bad_input(tmp_path, damage, message):
    root = make_folder(tmp_path / "pets")
    damage(root)
    with pytest.raises(UserError, match=message):
        load_images(folder_cfg(root))


def test_image_folder_bad_paths(tmp_path):
    with pytest.raises(UserError, match="needs data.path"):
        load_images(ImageDataConfig(name="image_folder"))
    with pytest.raises(UserError, match="does not exist"):
        load_images(folder_cfg(tmp_path / "nowhere"))
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="has no class folders"):
        load_images(folder_cfg(tmp_path / "empty"))
    for split in ("train", "test"):
        save_image(tmp_path / "one" / split / "cat" / "a.png", "L", (3, 3))
    with pytest.raises(UserError, match="one class folder; a classifier needs at least 2"):
        load_images(folder_cfg(tmp_path / "one"))
