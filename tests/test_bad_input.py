"""A catalogue of user mistakes, through the same path as the command line (config check + task).

Each must end in one clear line (a UserError: the CLI prints ``error: ...`` and exits non-zero,
as tests/test_cli.py shows) and must not destroy anything already saved. Mistakes caught by Hydra
while composing (unknown option, typo'd key, wrong type, bad enum value) are in test_config.py
and test_cli.py; NaN loss and interrupted runs in test_train.py; skipped empty lines in
test_text_data.py and test_translation_task.py.
"""

import gzip
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.api import run
from attnlab.checkpoint import save_checkpoint
from attnlab.errors import UserError

SMALL_TEXT = ["data.max_train_pairs=50", "data.vocab_size=300", "trainer.epochs=1", "trainer.progress=false",
              "model.emb_dim=8", "model.hidden_dim=8", "model.attn_dim=8", "trainer.num_threads=1"]
SMALL_VISION = ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=1",
                "trainer.progress=false", "trainer.num_threads=1"]


def expect_error(tmp_path: Path, overrides: list[str], *fragments: str) -> str:
    with pytest.raises(UserError) as err:
        run(overrides, tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def write_corpus(folder: Path, src: dict[str, list[str]], tgt: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.de").write_text("\n".join(src.get(split, ["ein Haus"])) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(tgt.get(split, ["a house"])) + "\n", encoding="utf-8")
    return folder


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    for split in ("train", "test"):
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(root / split / name / f"{i}.png")
    return root


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "overrides,fragments",
    [
        (["task=translation", "model=vit"], ["does not fit task=translation", "rnn_attn, transformer"]),
        (["task=vision", "attention=none"], ["attention=none works only with model=rnn_attn"]),
        (["model.hidden_dim=0"], ["must be positive"]),
        (["task=vision", "model.heads=-2"], ["must be positive"]),
        (["mode=evaluate"], ["needs checkpoint=PATH"]),
        (["model=transformer", "model.d_model=30", "model.heads=4", *SMALL_TEXT[:2]], ["heads (4) must be a positive divisor of the width (30)"]),
        (["model=transformer", "model.posenc=spiral", *SMALL_TEXT[:2]], ["unknown positional encoding 'spiral'", "sincos2d"]),
        (["model=transformer", "data.shared_vocab=false", *SMALL_TEXT[:2]], ["share_embeddings=true needs one vocabulary", "model.share_embeddings=false"]),
        (["task=vision", "model.patch_size=9", *SMALL_VISION[1:]], ["larger than an image of 8x8"]),
        (["device=cuda"], ["device=cuda but no CUDA GPU"]),
    ],
)
def test_configuration_mistakes(tmp_path, overrides, fragments):
    if "device=cuda" in overrides and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    expect_error(tmp_path, overrides, *fragments)


# ------------------------------------------------------------------ text data


def test_missing_corpus_folder(tmp_path):
    expect_error(tmp_path, ["data=files", f"data.path={tmp_path / 'nope'}", *SMALL_TEXT], "nope")


def test_mismatched_parallel_files(tmp_path):
    corpus = write_corpus(tmp_path / "c", {"train": ["a", "b", "c"]}, {"train": ["x", "y"]})
    expect_error(tmp_path, ["data=files", f"data.path={corpus}", *SMALL_TEXT], "train.de", "train.en")


def test_empty_corpus_file(tmp_path):
    corpus = write_corpus(tmp_path / "c", {}, {})
    (corpus / "valid.de").write_text("", encoding="utf-8")
    expect_error(tmp_path, ["data=files", f"data.path={corpus}", *SMALL_TEXT], "valid.de")


def test_non_utf8_corpus(tmp_path):
    corpus = write_corpus(tmp_path / "c", {}, {})
    (corpus / "train.de").write_bytes(b"gut\n\xff\xfe kaputt\n")
    (corpus / "train.en").write_text("good\nbroken\n", encoding="utf-8")
    expect_error(tmp_path, ["data=files", f"data.path={corpus}", *SMALL_TEXT], "train.de", "2")


def test_multi30k_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    expect_error(tmp_path, ["data=multi30k", f"data.cache_dir={cache}", *SMALL_TEXT], str(cache / "multi30k"))


def test_multi30k_checksum_mismatch(tmp_path):
    cache = tmp_path / "cache"
    (cache / "multi30k").mkdir(parents=True)
    for name in ("train.de.gz", "train.en.gz"):
        with gzip.open(cache / "multi30k" / name, "wt") as f:
            f.write("tampered\n")
    expect_error(tmp_path, ["data=multi30k", f"data.cache_dir={cache}", *SMALL_TEXT], "sha256")


# ------------------------------------------------------------------ images


def test_empty_image_folder(tmp_path):
    (tmp_path / "imgs" / "train").mkdir(parents=True)
    (tmp_path / "imgs" / "test").mkdir()
    expect_error(tmp_path, [*SMALL_VISION, "data=image_folder", f"data.path={tmp_path / 'imgs'}"], "no class folders")


def test_image_folder_with_one_class(tmp_path):
    root = image_folder(tmp_path / "imgs", {"cat": 3})
    expect_error(tmp_path, [*SMALL_VISION, "data=image_folder", f"data.path={root}"], "one class folder", "at least 2")


def test_unreadable_image(tmp_path):
    root = image_folder(tmp_path / "imgs", {"cat": 3, "dog": 3})
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    expect_error(tmp_path, [*SMALL_VISION, "data=image_folder", f"data.path={root}"], "broken.png")


# ------------------------------------------------------------------ checkpoints


def test_corrupt_checkpoint_is_refused_and_left_in_place(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    expect_error(tmp_path, ["mode=evaluate", f"checkpoint={bad}"], "cannot be read")
    assert bad.read_bytes() == b"PK\x03\x04 truncated"


def test_checkpoint_of_another_model(tmp_path):
    path = tmp_path / "vit.pt"
    save_checkpoint(path, {"model": {}, "config": {"task": {"name": "vision"}, "model": {"name": "vit"}}})
    expect_error(tmp_path, ["mode=evaluate", f"checkpoint={path}"], "vision")


def test_resume_without_a_checkpoint(tmp_path):
    expect_error(tmp_path, ["resume=true", *SMALL_TEXT], "resume=true", "does not exist")
