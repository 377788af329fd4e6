"""Image classification with the ViT: ``mode=train``, ``mode=evaluate``, ``mode=predict``.

    python -m attnlab task=vision                                   # train on 8x8 digits, then test
    python -m attnlab task=vision mode=evaluate checkpoint=RUN/checkpoints/best.pt
    python -m attnlab task=vision mode=evaluate checkpoint=... model.eval_size=[12,12]
    python -m attnlab task=vision mode=predict checkpoint=... input=IMAGE_OR_DIR

Training hands an :class:`ImageClassification` (a :class:`attnlab.train.Trainable`) to the shared
:class:`~attnlab.train.Trainer`: cross entropy with label smoothing (Szegedy et al. 2016, sec. 7),
optional random shifts / flips (``data.augment``), validation accuracy picks ``best.pt``. Then
``best.pt`` is loaded and scored on the test split. Every mode writes ``results.json`` (common
fields + accuracy, per-class accuracy, confusion matrix; train and evaluate also the test images'
``attention_health``, :func:`attention_health`) and, unless ``viz.enabled=false``, the
attention pictures of :mod:`attnlab.viz.vision` in ``<run dir>/attention/``.

A checkpoint carries what rebuilding the model needs besides its config (classes, channels,
training image size, pixel mean/std), so evaluate and predict need nothing but ``checkpoint=``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from attnlab import distributed, progress
from attnlab.checkpoint import check_compatible, load_checkpoint, load_state
from attnlab.config import AttentionConfig, ImageDataConfig, ViTConfig
from attnlab.data.augment import Augment
from attnlab.data.image_readers import load_images
from attnlab.data.images import ImageData, ImageSet, collate
from attnlab.errors import UserError
from attnlab.models import build_model
from attnlab.runlog import base_results, peak_rss_mb, prepare_run, write_json
from attnlab.train import Trainer, load_best_weights

log = logging.getLogger("attnlab.vision")

EVAL_BATCH = 256  # images per forward pass when scoring (no gradients)


# ----------------------------------------------------------------------------- training


class ImageClassification:
    """The :class:`~attnlab.train.Trainable` of image classification."""

    metric = "accuracy"
    unit = "img"

    def __init__(self, model: nn.Module, data: ImageData, cfg: DictConfig, device: torch.device) -> None:
        self.model, self.data, self.device = model, data, device
        self.batch_size = int(cfg.trainer.batch_size)
        self.label_smoothing = float(cfg.trainer.label_smoothing)
        self.augment = Augment.from_config(cfg.data.augment)
        self.image_size = training_image_size(data.train)

    def train_batches(self, epoch: int, generator: torch.Generator) -> list[Tensor]:
        return list(torch.randperm(len(self.data.train), generator=generator).split(self.batch_size))

    def loss(self, batch: Tensor) -> tuple[Tensor, int]:
        images, sizes, labels = self.data.train.batch(batch)
        if self.augment.enabled:
            # drawn from torch's global RNG, which checkpoints save: a resumed run draws the same
            seed = int(torch.randint(0, 2**62, (1,)))
            images = self.augment(images, sizes, torch.Generator().manual_seed(seed))
        logits = self.model(images.to(self.device), sizes.to(self.device))  # (B, classes)
        loss = F.cross_entropy(logits, labels.to(self.device), label_smoothing=self.label_smoothing)
        return loss, len(labels)

    def validate(self) -> dict[str, float]:
        scores = score(self.model, self.data.valid, len(self.data.classes), self.device)
        return {"accuracy": scores["accuracy"], "loss": scores["loss"]}

    def attention_image(self) -> Tensor | None:
        """The last layer's attention (tokens, tokens), averaged over heads, of the first valid
        image, for live views (``logger=tensorboard``)."""
        if len(self.data.valid) == 0:
            return None
        images, sizes, _ = self.data.valid.batch(torch.arange(1))
        weights = self.model.attention_weights(images.to(self.device), sizes.to(self.device))[-1]  # (1, H, T, T)
        return weights[0].mean(0)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {
            "classes": list(self.data.classes),
            "channels": int(self.data.channels),
            "image_size": list(self.image_size),
            "mean": self.data.mean.tolist(),
            "std": self.data.std.tolist(),
        }


def training_image_size(images: ImageSet) -> tuple[int, int]:
    """The (H, W) the model is built for (learned positions): the largest H and W of the set."""
    h, w = images.sizes.max(dim=0).values.tolist()
    return int(h), int(w)


# ----------------------------------------------------------------------------- scoring


def size_sorted_batches(images: ImageSet, batch_size: int) -> list[Tensor]:
    """Index batches with images of similar sizes together (little padding), every index once."""
    sizes = images.sizes
    order = np.lexsort((sizes[:, 1].numpy(), sizes[:, 0].numpy())) if images.stacked is None else np.arange(len(images))
    return list(torch.as_tensor(order, dtype=torch.long).split(batch_size))


@torch.no_grad()
def predict_probs(model: nn.Module, images: ImageSet, device: torch.device) -> Tensor:
    """Class probabilities (N, classes) of every image of the set, in the set's order."""
    was_training = model.training
    model.eval()
    out: Tensor | None = None
    for idx in progress.bar(size_sorted_batches(images, EVAL_BATCH), desc="scoring", unit="batch"):
        batch, sizes, _ = images.batch(idx)
        probs = model(batch.to(device), sizes.to(device)).float().softmax(-1).cpu()  # (B, classes)
        if out is None:
            out = torch.empty(len(images), probs.shape[1])
        out[idx] = probs
    model.train(was_training)
    return out


def score(model: nn.Module, images: ImageSet, num_classes: int, device: torch.device) -> dict[str, Any]:
    """Accuracy, mean cross entropy, per-class accuracy, the confusion matrix [true][predicted] and
    each image's predicted class and its probability (``predicted``, ``probability``: tensors)."""
    probs = predict_probs(model, images, device)
    labels = images.labels
    top, predicted = probs.max(-1)
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)
    per_class = confusion.diag().float() / confusion.sum(1).clamp_min(1).float()
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    return {
        "accuracy": (predicted == labels).float().mean().item(),
        "loss": loss,
        "per_class_accuracy": per_class.tolist(),
        "confusion_matrix": confusion.tolist(),
        "predicted": predicted,
        "probability": top,
    }


PREDICTIONS_HEADER = "index,label,predicted,probability"


def write_predictions(path: Path, labels: Tensor, predicted: Tensor, probability: Tensor) -> None:
    """One CSV line per image, in the split's order: what a paired test of two runs on the same
    split needs (:mod:`attnlab.significance`; ``python -m attnlab.report``)."""
    if not distributed.is_main():
        return
    lines = [PREDICTIONS_HEADER] + [
        f"{i},{int(y)},{int(p)},{float(q):.4f}" for i, (y, p, q) in enumerate(zip(labels, predicted, probability))
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def classification_results(
    model: nn.Module, data_test: ImageSet, classes: Sequence[str], device: torch.device, predictions: Path | None = None
) -> dict[str, Any]:
    """The task metrics of results.json, per-class accuracy keyed by class name; with
    ``predictions``, each image's label and predicted class are written there as CSV."""
    scores = score(model, data_test, len(classes), device)
    if predictions is not None:
        write_predictions(predictions, data_test.labels, scores["predicted"], scores["probability"])
    return {
        "accuracy": scores["accuracy"],
        "test_loss": scores["loss"],
        "num_test_images": len(data_test),
        "classes": list(classes),
        "per_class_accuracy": dict(zip(classes, scores["per_class_accuracy"])),
        "confusion_matrix": scores["confusion_matrix"],
    }


@torch.no_grad()
def attention_health(model: nn.Module, images: ImageSet, device: torch.device) -> dict[str, Any]:
    """``attention_health`` of results.json: :class:`~attnlab.attention.health.ImageHealthMeter`
    over every image of the set, one pass of the math path in size-sorted batches; {} for a model
    without ``attention_weights`` and ``layout`` or an empty set."""
    if len(images) == 0 or not (hasattr(model, "attention_weights") and hasattr(model, "layout")):
        return {}
    from attnlab.attention.health import ImageHealthMeter
    from attnlab.layers.patch import partly_padded

    was_training = model.training
    model.eval()
    meter = ImageHealthMeter()
    has_cls = bool(getattr(model, "has_cls", False))
    for idx in size_sorted_batches(images, EVAL_BATCH):
        batch, sizes, _ = images.batch(idx)
        batch, sizes = batch.to(device), sizes.to(device)
        layout = model.layout(batch, sizes)
        real = layout.real  # (B, N)
        if real is None:  # every image fills the grid
            real = torch.ones(len(idx), layout.num_patches, dtype=torch.bool, device=device)
        padded = partly_padded(sizes, layout.grid, model.patch_size)  # (B, N)
        if has_cls:  # the CLS token first: real, never padded
            real = torch.cat([real.new_ones(len(idx), 1), real], dim=1)  # (B, 1 + N)
            padded = torch.cat([padded.new_zeros(len(idx), 1), padded], dim=1)  # (B, 1 + N)
        meter.add(model.attention_weights(batch, sizes), real=real, has_cls=has_cls, padded=padded)
    model.train(was_training)
    health = meter.summary()
    if health:
        log.info("test attention: normalised entropy %.2f, largest weight %.2f%s", health["entropy_norm"],
                 health["max_weight"], f", {100 * health['cls_share']:.0f}% of patch rows peak on CLS" if has_cls else "")
    return health


def gym_scores(model: nn.Module, test: ImageSet, device: torch.device) -> dict[str, Any]:
    """Pointing game and deletion AUC of every attention map (:mod:`attnlab.tasks.gym_vision`)
    when the test images carry their object's box (``data=placed_digits``); else nothing."""
    if test.boxes is None or len(test) == 0 or not hasattr(model, "encode"):
        return {}
    from attnlab.tasks.gym_vision import map_scores

    return map_scores(model, test, device)


# ----------------------------------------------------------------------------- pictures


def attention_pictures(
    cfg: DictConfig, run_dir: Path, model: nn.Module, images: ImageSet, classes: Sequence[str], device: torch.device
) -> list[str]:
    """The attention pictures of the first ``viz.num_examples`` images (paths, relative to run_dir);
    their raw weights go to ``attention/attention.npz`` (:func:`attnlab.viz.vision.save_weights`)."""
    if not cfg.viz.enabled or len(images) == 0 or not distributed.is_main():
        return []
    from attnlab.viz.vision import save_attention_pictures, save_weights  # matplotlib only when drawing

    idx = torch.arange(min(int(cfg.viz.num_examples), len(images)))
    batch, sizes, labels = images.batch(idx)
    batch, sizes = batch.to(device), sizes.to(device)
    model.eval()
    with torch.no_grad():
        probs = model(batch, sizes).float().softmax(-1).cpu()
    titles = [
        f"true {classes[int(y)]}, predicted {classes[int(p.argmax())]} ({float(p.max()):.2f})"
        for y, p in zip(labels, probs)
    ]
    paths = save_attention_pictures(run_dir / "attention", model, batch, sizes, titles)
    save_weights(run_dir / "attention" / "attention.npz", model, batch, sizes, labels, probs, classes)  # raw, beside them
    return [str(p.relative_to(run_dir)) for p in paths]


# ----------------------------------------------------------------------------- checkpoints


def load_model(
    cfg: DictConfig, path: str | Path, device: torch.device, payload: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any], DictConfig]:
    """Rebuild a trained ViT from its checkpoint: (model in eval mode, extra facts, saved config).
    ``payload``: the checkpoint as :func:`~attnlab.checkpoint.load_checkpoint` read it, when the
    caller has read it already (the file is then not read again)."""
    if payload is None:
        payload = load_checkpoint(path)
    check_compatible(payload, path, task="vision", model=str(cfg.model.name))
    extra = payload.get("extra") or {}
    missing = [k for k in ("classes", "channels", "image_size", "mean", "std") if k not in extra]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by a vision training run")
    saved = OmegaConf.create(payload["config"])
    rebuilt = OmegaConf.create(
        {
            "model": OmegaConf.merge(OmegaConf.structured(ViTConfig), saved.model),
            "attention": OmegaConf.merge(OmegaConf.structured(AttentionConfig), saved.attention),
        }
    )
    torch.manual_seed(0)
    model = build_model(
        rebuilt,
        num_classes=len(extra["classes"]),
        channels=int(extra["channels"]),
        image_size=extra["image_size"],
        mean=extra["mean"],
        std=extra["std"],
    )
    load_state(model, payload["model"], path)
    return model.to(device).eval(), extra, saved


def eval_size(cfg: DictConfig) -> tuple[int, int] | None:
    """``model.eval_size``: [S] or [H, W] -> (H, W), or None (keep the images' own sizes)."""
    size = cfg.model.get("eval_size")
    if size is None:
        return None
    size = [int(s) for s in size]
    if len(size) not in (1, 2) or min(size) <= 0:
        raise UserError(f"model.eval_size={size} must be [S] or [H, W] with positive sizes, e.g. model.eval_size=[16,16]")
    return (size[0], size[-1])


def resized(images: ImageSet, size: tuple[int, int] | None) -> ImageSet:
    """Every image resized to ``size`` (bilinear, antialiased); the set unchanged when None."""
    if size is None:
        return images
    out = [F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0] for img in images.images]
    return ImageSet.from_tensor(torch.stack(out).clamp_(0, 1), images.labels)  # (N, C, H, W)


# ----------------------------------------------------------------------------- modes


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run ``cfg.mode`` (train, evaluate, predict) and return what was written to results.json."""
    modes = {"train": train, "evaluate": evaluate, "predict": predict}
    if str(cfg.mode) not in modes:
        raise UserError(f"mode={cfg.mode} is not for task=vision; valid modes: {', '.join(modes)}")
    return modes[str(cfg.mode)](cfg, run_dir, prepare_run(cfg, run_dir))


def train(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    start = time.perf_counter()
    data = load_images(cfg.data)
    image_size = training_image_size(data.train)
    model = build_model(
        cfg,
        num_classes=len(data.classes),
        channels=data.channels,
        image_size=image_size,
        mean=data.mean.tolist(),
        std=data.std.tolist(),
    ).to(device)
    log.info(
        "%s: %d train / %d valid / %d test images of %dx%d, %d classes; vit with %d parameters",
        cfg.data.name, len(data.train), len(data.valid), len(data.test), *image_size, len(data.classes),
        sum(p.numel() for p in model.parameters()),
    )
    task = ImageClassification(model, data, cfg, device)
    state = Trainer(cfg, run_dir, device).fit(task)
    best = load_best_weights(model, run_dir)
    results = base_results(cfg, model, device)
    results.update(classification_results(model, data.test, data.classes, device, run_dir / "test_predictions.csv"))
    results["attention_health"] = attention_health(model, data.test, device)
    # the tested weights' validation predictions (best.pt, or averaged.pt): what choices between
    # variants are made on, paired image by image
    valid = classification_results(model, data.valid, data.classes, device, run_dir / "valid_predictions.csv")
    results.update(gym_scores(model, data.test, device))
    results.update(
        best_valid_accuracy=state.best,
        valid_accuracy=valid["accuracy"],  # of the tested weights: differs from the best when averaging
        checkpoint=str(best.relative_to(run_dir)),
        epochs=round(state.epoch + state.batch_in_epoch / max(1, -(-len(data.train) // task.batch_size)), 4),
        steps=state.step,
        stop_reason=state.stop_reason,
        train_seconds=round(state.elapsed, 2),
        num_train_images=len(data.train),  # with the validation images: a fold's test-to-training ratio
    )
    if int(cfg.data.cv_folds) > 1:  # validated on one fold: what the report pairs such runs by
        results.update(cv_folds=int(cfg.data.cv_folds), cv_fold=int(cfg.data.cv_fold))
    results["attention_pictures"] = attention_pictures(cfg, run_dir, model, data.test, data.classes, device)
    return _finish(results, run_dir, start)


def evaluate(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    start = time.perf_counter()
    model, extra, saved = load_model(cfg, cfg.checkpoint, device)
    data_cfg = _evaluation_data(cfg, saved)
    data = load_images(data_cfg)
    if list(data.classes) != list(extra["classes"]):
        raise UserError(
            f"data={data_cfg.name} has classes {data.classes}, the checkpoint {extra['classes']}; "
            "evaluate on the data the model was trained for"
        )
    size = eval_size(cfg)
    test = resized(data.test, size)
    scored = _evaluated_config(cfg, saved, data_cfg)
    results = base_results(scored, model, device)  # the trained run's seed, this command's data
    results.update(classification_results(model, test, data.classes, device, run_dir / "test_predictions.csv"))
    results["attention_health"] = attention_health(model, test, device)
    results.update(gym_scores(model, test, device))  # {} for a resized set: resizing drops the boxes
    results.update(checkpoint=str(cfg.checkpoint), image_size=list(size or training_image_size(test)),
                   trained_image_size=list(extra["image_size"]))
    results["evaluated_config"] = OmegaConf.to_container(scored, resolve=True)
    log.info("test accuracy %.4f on %d images", results["accuracy"], len(test))
    results["attention_pictures"] = attention_pictures(cfg, run_dir, model, test, data.classes, device)
    return _finish(results, run_dir, start)


def predict(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    start = time.perf_counter()
    model, extra, _ = load_model(cfg, cfg.checkpoint, device)
    files = input_files(Path(str(cfg.input)).expanduser())
    channels, size = int(extra["channels"]), eval_size(cfg)
    images = [read_image(f, channels) for f in files]
    if size is not None:
        images = resized(ImageSet(images, torch.zeros(len(images), dtype=torch.long)), size).images
    classes = extra["classes"]
    predictions = []
    model.eval()
    with torch.no_grad():
        for first in range(0, len(images), EVAL_BATCH):
            batch, sizes = collate(images[first : first + EVAL_BATCH])
            probs = model(batch.to(device), sizes.to(device)).float().softmax(-1).cpu()
            for path, p in zip(files[first : first + EVAL_BATCH], probs):
                k = int(p.argmax())
                predictions.append({"file": str(path), "class": classes[k], "probability": round(float(p[k]), 4)})
                print(f"{path}\t{classes[k]}\t{float(p[k]):.4f}", flush=True)
    results = base_results(cfg, model, device)
    results.update(checkpoint=str(cfg.checkpoint), predictions=predictions)
    return _finish(results, run_dir, start)


def _finish(results: dict[str, Any], run_dir: Path, start: float) -> dict[str, Any]:
    results["wall_seconds"] = round(time.perf_counter() - start, 2)
    results["peak_rss_mb"] = peak_rss_mb()
    if distributed.is_main():  # under torchrun every process scores; one writes
        write_json(run_dir / "results.json", results)
    return results


def _evaluated_config(cfg: DictConfig, saved: DictConfig, data_cfg: DictConfig) -> DictConfig:
    """What an evaluation scored: the trained run's config with this command's data, image size,
    mode and checkpoint (results.json's fields and ``evaluated_config``, which the report groups
    evaluations by)."""
    scored = OmegaConf.create(OmegaConf.to_container(saved, resolve=True))
    scored.data = data_cfg
    scored.model.eval_size = cfg.model.get("eval_size")
    for key in ("mode", "checkpoint"):
        scored[key] = cfg[key]
    return scored


def _evaluation_data(cfg: DictConfig, saved: DictConfig) -> DictConfig:
    """The data to evaluate on: the checkpoint's dataset, unless data= was chosen on the command line."""
    if str(cfg.data.name) == str(saved.data.name) or _data_chosen_on_command_line():
        return cfg.data
    log.info("evaluating on the checkpoint's data=%s (pass data=... to choose another)", saved.data.name)
    return OmegaConf.merge(OmegaConf.structured(ImageDataConfig), saved.data)


def _data_chosen_on_command_line() -> bool:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    return any(k in ("data", "data.name") for k in keys)


# ----------------------------------------------------------------------------- image files


def input_files(path: Path) -> list[Path]:
    """``input=``: one image file, or the image files of a folder (by extension, sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"input={path} does not exist; pass an image file or a folder of images")
    known = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in known and not p.name.startswith("."))
    if not files:
        raise UserError(f"input={path} holds no image files (png, jpg, ...)")
    return files


def read_image(path: Path, channels: int) -> Tensor:
    """An image file as (channels, H, W) float32 in [0, 1] (grey for 1 channel, else RGB)."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split())[:120]
        raise UserError(f"input {path} is not a readable image ({reason})") from None
    image = torch.from_numpy(pixels)
    return image.unsqueeze(0) if image.dim() == 2 else image.permute(2, 0, 1).contiguous()  # (C, H, W)

