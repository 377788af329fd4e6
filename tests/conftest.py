"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Real MNIST test files (t10k) kept beside the repository for loader tests; see SOURCE.md there.
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MNIST_T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def mnist_cache(tmp_path: Path) -> str:
    """A download cache (``data.cache_dir``) pre-filled with the real MNIST t10k files.

    Laid out as :func:`attnlab.data.download.fetch` expects: ``<cache>/mnist/<file name>``.
    Skips the test when the shared copies are absent.
    """
    if not all((SHARED_MNIST / name).is_file() for name in MNIST_T10K):
        pytest.skip(f"real MNIST t10k files not found in {SHARED_MNIST}")
    cache = tmp_path / "cache"
    (cache / "mnist").mkdir(parents=True)
    for name in MNIST_T10K:
        shutil.copyfile(SHARED_MNIST / name, cache / "mnist" / name)
    return str(cache)


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """In-process runs set torch's thread count (trainer.num_threads); give it back after each test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread, and it is kinder to a shared machine."""
    import torch

    torch.set_num_threads(1)
