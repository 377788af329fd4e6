"""task=vision end to end: train from the command line, evaluate and predict from its checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from attnlab.__main__ import config_dir
from attnlab.app import run as app_run
from attnlab.config import ImageDataConfig
from attnlab.data.image_readers import load_images
from attnlab.models.vit import ViT
from attnlab.tasks.vision import ImageClassification, load_model, read_image
from attnlab.tasks.vision import run as vision_run

TINY = [
    "task=vision",
    "model.dim=32",
    "model.depth=1",
    "model.heads=2",
    "model.patch_size=3",  # 8x8 digits -> a 3x3 grid with partly padded patches
    "model.posenc=sincos2d",
    "trainer.epochs=3",
    "trainer.batch_size=16",
    "trainer.lr=3e-3",
    "trainer.warmup_steps=0",
    "data.max_train=300",
    "data.augment.shift=0",  # the recipe's shifts need many epochs
    "model.pool=cls",
    "viz.num_examples=2",
    "trainer.progress=false",
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run(
        [sys.executable, "-m", "attnlab", *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )


def make(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder of a 1-epoch tiny ViT trained through the command line."""
    work = tmp_path_factory.mktemp("vision")
    out = cli(*TINY, "trainer.num_threads=1", f"hydra.run.dir={work / 'run'}", cwd=work)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (work / "outputs").exists()  # nothing written to the working directory
    return work / "run"


def test_training_writes_results_metrics_checkpoints_and_pictures(trained):
    results = json.loads((trained / "results.json").read_text())
    assert results["task"] == "vision" and results["model"] == "vit" and results["torch_threads"] == 1
    assert 0.2 < results["accuracy"] <= 1.0  # 57 steps on 300 images beat chance (0.1) (seen: 0.42)
    confusion = np.array(results["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == results["num_test_images"] == 359
    assert results["accuracy"] == pytest.approx(np.trace(confusion) / 359)
    assert set(results["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert results["epochs"] == 3 and results["train_seconds"] > 0 and results["peak_rss_mb"] > 0
    # without averaging, the tested weights are the best checkpoint: the same validation accuracy
    assert results["valid_accuracy"] == pytest.approx(results["best_valid_accuracy"])
    valid = (trained / "valid_predictions.csv").read_text().splitlines()[1:]
    hits = [row.split(",")[1] == row.split(",")[2] for row in valid]  # index,label,predicted,probability
    assert results["valid_accuracy"] == pytest.approx(sum(hits) / len(hits))
    kinds = [json.loads(line)["kind"] for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert "train" in kinds and "valid" in kinds
    assert (trained / "checkpoints" / "best.pt").is_file() and (trained / "checkpoints" / "last.pt").is_file()
    pictures = sorted(p.name for p in (trained / "attention").glob("*.png"))
    assert pictures == ["layers_heads_0.png", "layers_heads_1.png", "rollout.png"]
    assert results["attention_pictures"] == ["attention/rollout.png", "attention/layers_heads_0.png", "attention/layers_heads_1.png"]


def test_training_writes_the_test_images_attention_health(trained):
    health = json.loads((trained / "results.json").read_text())["attention_health"]
    assert health["images"] == 359 and health["rows"] == 359 * 9  # 3x3 patches each, CLS apart
    fractions = ("entropy_norm", "max_weight", "cls_share", "cls_weight", "padding_share", "padding_weight",
                 "cls_query_entropy_norm", "cls_query_max_weight")
    assert all(0.0 <= health[k] <= 1.0 for k in fractions) and 0 < health["entropy"] <= np.log(10)  # 10 keys
    assert health["max_weight"] >= 0.1 and health["cls_query_max_weight"] >= 0.1  # at least uniform
    layer = health["layers"]["layer1"]  # model.depth=1, model.heads=2
    assert list(layer) == ["head1", "head2", "mean"] and set(layer["mean"]) == set(fractions) | {"entropy"}
    assert health["cls_share"] == pytest.approx((layer["head1"]["cls_share"] + layer["head2"]["cls_share"]) / 2)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_attention_health_of_mixed_sizes_skips_padding_only_patches(pool):
    from attnlab.data.images import ImageSet
    from attnlab.tasks.vision import attention_health

    torch.manual_seed(0)
    model = ViT(num_classes=2, channels=1, image_size=(8, 8), patch_size=3, dim=16, depth=2, heads=2, pool=pool)
    images = ImageSet([torch.rand(1, 9, 9), torch.rand(1, 8, 8), torch.rand(1, 4, 4)], torch.tensor([0, 1, 0]))
    health = attention_health(model, images, torch.device("cpu"))
    assert health["rows"] == 9 + 9 + 4 and list(health["layers"]) == ["layer1", "layer2"]
    assert ("cls_share" in health) is (pool == "cls") and ("cls_query_max_weight" in health) is (pool == "cls")
    assert 0 < health["padding_share"] <= 1  # the 8x8 and 4x4 images have partly padded patches
    assert model.training  # left as it was found


def test_checkpoint_rebuilds_the_model_with_its_data_facts(trained):
    model, extra, saved = load_model(make(*TINY), trained / "checkpoints" / "best.pt", torch.device("cpu"))
    assert extra["classes"] == [str(d) for d in range(10)] and extra["channels"] == 1
    assert extra["image_size"] == [8, 8] and len(extra["mean"]) == 1 and extra["std"][0] > 0
    assert saved.model.patch_size == 3 and saved.model.posenc == "sincos2d" and model.patch_size == 3


def test_evaluate_round_trip_and_other_image_sizes(trained, tmp_path):
    ckpt = trained / "checkpoints" / "best.pt"
    base = [*TINY, "mode=evaluate", f"checkpoint={ckpt}", "viz.enabled=false"]
    same = vision_run(make(*base), tmp_path / "eval")
    assert same["accuracy"] == pytest.approx(json.loads((trained / "results.json").read_text())["accuracy"])
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["mode"] == "evaluate"
    scored = evaluated["evaluated_config"]  # the trained run's config as scored: what the report groups by
    assert scored["model"]["dim"] == 32 and scored["model"]["patch_size"] == 3 and scored["mode"] == "evaluate"
    assert scored["data"]["name"] == "digits" and scored["checkpoint"] == str(ckpt)
    assert evaluated["seed"] == scored["seed"] and evaluated["data"] == "digits"
    trained_health = json.loads((trained / "results.json").read_text())["attention_health"]
    assert evaluated["attention_health"]["cls_share"] == pytest.approx(trained_health["cls_share"])
    bigger = vision_run(make(*base, "model.eval_size=[11,13]"), tmp_path / "eval_big")
    assert bigger["image_size"] == [11, 13] and bigger["trained_image_size"] == [8, 8]
    assert bigger["attention_health"]["rows"] == 359 * 4 * 5  # 11x13 pixels: 4x5 patches of 3
    assert 0.0 <= bigger["accuracy"] <= 1.0 and bigger["num_test_images"] == 359


def test_predict_prints_class_and_probability_per_image(trained, tmp_path):
    digits = load_images(ImageDataConfig()).test
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        pixels = (digits.images[i][0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"digit{i}.png")
    Image.fromarray(np.zeros((7, 10), np.uint8)).save(folder / "odd.png")  # another size in the batch
    (folder / "notes.txt").write_text("not an image")  # skipped in a folder
    ckpt = trained / "checkpoints" / "best.pt"
    # no task=vision nor model sizes: a checkpoint mode takes them from the checkpoint
    out = cli("mode=predict", f"checkpoint={ckpt}", f"input={folder}", "trainer.num_threads=1",
              f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line.split("\t") for line in out.stdout.strip().splitlines()]
    assert [Path(f).name for f, _, _ in lines] == ["digit0.png", "digit1.png", "digit2.png", "odd.png"]
    model, _, _ = load_model(make(*TINY), ckpt, torch.device("cpu"))
    for file, label, prob in lines:
        with torch.no_grad():
            probs = model(read_image(Path(file), 1)[None]).softmax(-1)[0]
        assert label == str(int(probs.argmax())) and float(prob) == pytest.approx(float(probs.max()), abs=1e-3)
    assert len(json.loads((tmp_path / "p" / "results.json").read_text())["predictions"]) == 4


def test_trainable_batches_augmentation_and_label_smoothing():
    cfg = make("task=vision", "data.max_train=50", "data.augment.shift=1", "trainer.batch_size=16", "trainer.label_smoothing=0.1")
    data = load_images(cfg.data)
    model = ViT(num_classes=10, channels=1, image_size=(8, 8), patch_size=2, dim=16, depth=1, heads=2)
    task = ImageClassification(model, data, cfg, torch.device("cpu"))
    batches = task.train_batches(0, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [16, 16, 16, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(50))
    with torch.no_grad():
        model.head.weight.normal_()
    torch.manual_seed(0)
    loss, units = task.loss(batches[0])
    assert units == 16 and torch.isfinite(loss)
    torch.manual_seed(0)
    assert task.loss(batches[0])[0].item() == loss.item()  # augmentation follows torch's RNG state
    torch.manual_seed(1)
    assert task.loss(batches[0])[0].item() != loss.item()  # ... and does shift the images
    assert set(task.validate()) == {"accuracy", "loss"}


def one_line_error(capsys, *overrides: str, run_dir: Path) -> str:
    with pytest.raises(SystemExit) as exit_info:
        app_run(make(*overrides), run_dir)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    return err


def test_bad_inputs_are_one_line_errors(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "best.pt"
    err = one_line_error(capsys, *TINY, "model.patch_size=9", run_dir=tmp_path / "a")
    assert "patch_size=9 is larger than an image of 8x8" in err
    note = tmp_path / "note.png"
    note.write_text("hello")  # an image name, not an image
    err = one_line_error(capsys, *TINY, "mode=predict", f"checkpoint={ckpt}", f"input={note}", run_dir=tmp_path / "b")
    assert "is not a readable image" in err
    err = one_line_error(capsys, *TINY, "mode=evaluate", f"checkpoint={tmp_path / 'missing.pt'}", run_dir=tmp_path / "c")
    assert "does not exist" in err
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tiny)
    err = one_line_error(capsys, *TINY, "mode=predict", f"checkpoint={ckpt}", f"input={tiny}", run_dir=tmp_path / "d")
    assert "larger than an image of 2x2" in err
    err = one_line_error(capsys, *TINY, "mode=evaluate", f"checkpoint={ckpt}", "model.eval_size=[0,4]", run_dir=tmp_path / "e")
    assert "model.eval_size" in err
