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


# Tiny trained runs of the three models (a few steps each, one thread), shared by the explorer,
# server and inference tests: {"rnn_attn" | "transformer" | "vit": run folder}.
TINY_TRANSLATION = [
    "data.max_train_pairs=200", "data.max_eval_sentences=3", "data.vocab_size=300", "trainer.epochs=1",
    "trainer.max_tokens=1500", "trainer.warmup_steps=0", "trainer.num_threads=1", "trainer.progress=false",
    "decode.beam_size=3", "decode.valid_sentences=3", "decode.max_len_a=1.0", "decode.max_len_b=3",
    "viz.num_examples=1", "viz.layer_grids=0",  # one example (its npz has every layer), no slow grid picture
]
TINY_RUNS = {
    "rnn_attn": [*TINY_TRANSLATION, "model.emb_dim=16", "model.hidden_dim=32", "model.attn_dim=16"],
    "transformer": [*TINY_TRANSLATION, "model=transformer", "model.d_model=32", "model.heads=2", "model.enc_layers=1",
                    "model.dec_layers=2", "model.d_ff=64"],
    "vit": ["task=vision", "model.dim=32", "model.depth=2", "model.heads=2", "model.patch_size=2", "model.pool=cls",
            "trainer.epochs=1", "trainer.batch_size=64", "data.max_train=200", "data.augment.shift=0", "viz.num_examples=2",
            "trainer.progress=false", "trainer.num_threads=1", "trainer.warmup_steps=0"],
}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Train the three tiny runs once per session (about 20 s on one thread)."""
    import torch

    from attnlab.api import run

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("tiny_runs")
    try:
        for name, overrides in TINY_RUNS.items():
            run(overrides, run_dir=root / name)
    finally:
        torch.set_num_threads(threads)
    return {name: root / name for name in TINY_RUNS}


# Headless Chromium from the system packages (.ci/run installs it), driven by Playwright; browser
# tests skip when either is missing. Never `playwright install`: no downloads from other sites.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    import os

    for candidate in (os.environ.get("ATTNLAB_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium", shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    """A headless system Chromium (session-wide); each test opens its own pages."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium found (apt-get install chromium, or set ATTNLAB_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
