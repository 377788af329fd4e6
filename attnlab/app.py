"""What a run does once Hydra has composed its config: check it, then hand it to its task."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from attnlab.errors import UserError

# task name -> module with `run(cfg, run_dir) -> dict` (imported lazily: vision needs no sentencepiece)
TASK_MODULES = {"translation": "attnlab.tasks.translation", "vision": "attnlab.tasks.vision"}
# modes that work for every task (the checkpoint says which): mode -> module with `run(cfg, run_dir)`
MODE_MODULES = {"explore": "attnlab.explore.modes", "serve": "attnlab.explore.modes"}
# models that accept attention=none (an encoder-decoder without attention is still a model)
ATTENTION_OPTIONAL = {"rnn_attn"}
# sizes that must be positive, wherever they appear (model.*, trainer.*, data.*, decode.*)
POSITIVE = {
    "emb_dim", "hidden_dim", "attn_dim", "enc_layers", "dec_layers", "d_model", "heads", "d_ff",
    "patch_size", "dim", "depth", "mlp_ratio", "max_len", "epochs", "batch_size", "lr",
    "vocab_size", "beam_size", "num_examples", "accum_steps", "temperature", "n_best", "stem_channels",
}
NON_NEGATIVE = {"validate_every_steps", "average_last", "top_k", "stem_layers"}
RATES = {"dropout", "attn_dropout", "drop_path", "label_smoothing", "valid_fraction"}  # in [0, 1)


def check_values(cfg: DictConfig) -> None:
    """Sizes must be positive and rates in [0, 1): a zero width would fail deep inside torch."""
    for group in ("model", "data", "trainer", "decode", "viz"):
        for key, value in cfg[group].items():
            if key in POSITIVE and value <= 0:
                raise UserError(f"{group}.{key}={value} must be positive")
            if key in NON_NEGATIVE and value < 0:
                raise UserError(f"{group}.{key}={value} must be 0 or more")
            if key in RATES and not 0 <= value < 1:
                raise UserError(f"{group}.{key}={value} must be in [0, 1)")


def check_attention(cfg: DictConfig) -> None:
    """The attention spec against the registries and the model (attnlab.attention.factory)."""
    from attnlab.attention import SCORES, check_spec

    model = cfg.model.name
    if str(cfg.attention.score) == "none" and model not in ATTENTION_OPTIONAL:
        raise UserError(
            f"attention=none works only with model={', '.join(sorted(ATTENTION_OPTIONAL))}; "
            f"{model} needs a score: {', '.join(SCORES)}"
        )
    heads = cfg.model.get("heads")
    width = cfg.model.get("d_model", cfg.model.get("dim"))
    check_spec(cfg.attention, model, heads, width, rnn_models=tuple(ATTENTION_OPTIONAL))
    if str(cfg.attention.backend) == "flex" and cfg.mode == "train":
        import torch

        on_gpu = str(cfg.device) == "cuda" or (str(cfg.device) == "auto" and torch.cuda.is_available())
        if not on_gpu:
            raise UserError(
                f"attention.backend=flex has no backward pass on the CPU in torch {torch.__version__}; "
                "train with attention.backend=auto or math, or on a GPU"
            )


def check_config(cfg: DictConfig) -> None:
    """Fail early, with the valid choices, on combinations the schema alone cannot catch."""
    task, model, data = cfg.task.name, cfg.model.name, cfg.data.name
    check_values(cfg)
    if model not in cfg.task.models:
        raise UserError(
            f"model={model} does not fit task={task}; valid models for {task}: {', '.join(cfg.task.models)}"
        )
    if data not in cfg.task.data:
        raise UserError(f"data={data} does not fit task={task}; valid data for {task}: {', '.join(cfg.task.data)}")
    check_attention(cfg)
    if cfg.mode == "train" and cfg.model.get("share_embeddings") and not cfg.data.get("shared_vocab", True):
        raise UserError(
            "model.share_embeddings=true needs one vocabulary for both languages, but data.shared_vocab=false "
            "trains one per language; set data.shared_vocab=true or model.share_embeddings=false"
        )
    if not 0 < cfg.decode.top_p <= 1:
        raise UserError(f"decode.top_p={cfg.decode.top_p} must be in (0, 1] (1 = no nucleus cut)")
    if cfg.decode.n_best > 1 and not cfg.decode.sampling and cfg.decode.n_best > cfg.decode.beam_size:
        raise UserError(
            f"decode.n_best={cfg.decode.n_best} needs decode.beam_size >= {cfg.decode.n_best}, or decode.sampling=true"
        )
    if str(cfg.get("logger", "none")) == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise UserError('logger=tensorboard needs the tensorboard package: pip install "attnlab[tensorboard]"')
    if data == "synthetic":  # the gym's lengths and kind, before any work (a sweep checks every job)
        from attnlab.data.synthetic import check_config as check_synthetic

        check_synthetic(cfg.data)
    if cfg.mode != "train" and not cfg.checkpoint and not cfg.resume:
        raise UserError(f"mode={cfg.mode} needs checkpoint=PATH (a checkpoints/best.pt of a training run)")
    if cfg.mode in ("translate",) and task != "translation":
        raise UserError("mode=translate is for task=translation; use mode=predict for task=vision")
    if cfg.mode in ("predict",) and task != "vision":
        raise UserError("mode=predict is for task=vision; use mode=translate for task=translation")
    if cfg.mode == "predict" and not cfg.input:
        raise UserError("mode=predict needs input=IMAGE_OR_DIR")
    if cfg.mode == "explore" and not cfg.input:
        raise UserError('mode=explore needs input=...: a sentence (input="Ich habe Hunger."), a text file, '
                        "or for a vision checkpoint an image or a folder of images")
    if cfg.compare and cfg.mode not in ("explore", "serve"):
        raise UserError(f"compare= is for mode=explore and mode=serve, not mode={cfg.mode}")


def export(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``mode=export``: the checkpoint as a folder of plain files (``output=DIR``, default
    ``<run dir>/export``), which every mode loads as ``checkpoint=DIR``."""
    from attnlab.checkpoint import export_checkpoint, load_checkpoint
    from attnlab.runlog import write_json

    folder = Path(cfg.output).expanduser() if cfg.output else run_dir / "export"
    if folder.is_file():
        raise UserError(f"output={cfg.output} is a file; mode=export writes a folder")
    export_checkpoint(load_checkpoint(cfg.checkpoint), folder)
    print(folder, flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    results = {"task": cfg.task.name, "model": cfg.model.name, "mode": "export",
               "checkpoint": str(cfg.checkpoint), "export": str(folder)}
    write_json(run_dir / "results.json", results)
    return results


def run_task(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Check the config and run its task; user mistakes raise :class:`UserError`."""
    check_config(cfg)
    if str(cfg.mode) == "export":  # the same for every task
        return export(cfg, run_dir)
    module = MODE_MODULES.get(str(cfg.mode)) or TASK_MODULES[cfg.task.name]
    return importlib.import_module(module).run(cfg, run_dir)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """:func:`run_task` for the command line: user mistakes end as one line and a non-zero exit."""
    try:
        return run_task(cfg, run_dir)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
