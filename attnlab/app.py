"""What a run does once Hydra has composed its config: check it, then hand it to its task."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from attnlab.errors import UserError

log = logging.getLogger("attnlab")

# task name -> module with `run(cfg, run_dir) -> dict` (imported lazily: vision needs no sentencepiece)
TASK_MODULES = {"translation": "attnlab.tasks.translation", "vision": "attnlab.tasks.vision"}
# models that accept attention=none (an encoder-decoder without attention is still a model)
ATTENTION_OPTIONAL = {"rnn_attn"}


def check_config(cfg: DictConfig) -> None:
    """Fail early, with the valid choices, on combinations the schema alone cannot catch."""
    task, model, data = cfg.task.name, cfg.model.name, cfg.data.name
    if model not in cfg.task.models:
        raise UserError(
            f"model={model} does not fit task={task}; valid models for {task}: {', '.join(cfg.task.models)}"
        )
    if data not in cfg.task.data:
        raise UserError(f"data={data} does not fit task={task}; valid data for {task}: {', '.join(cfg.task.data)}")
    if cfg.attention.score == "none" and model not in ATTENTION_OPTIONAL:
        raise UserError(
            f"attention=none works only with model={', '.join(sorted(ATTENTION_OPTIONAL))}; "
            f"{model} needs a score: dot, scaled_dot, general or additive"
        )
    if cfg.mode != "train" and not cfg.checkpoint and not cfg.resume:
        raise UserError(f"mode={cfg.mode} needs checkpoint=PATH (a checkpoints/best.pt of a training run)")
    if cfg.mode in ("translate",) and task != "translation":
        raise UserError("mode=translate is for task=translation; use mode=predict for task=vision")
    if cfg.mode in ("predict",) and task != "vision":
        raise UserError("mode=predict is for task=vision; use mode=translate for task=translation")
    if cfg.mode == "predict" and not cfg.input:
        raise UserError("mode=predict needs input=IMAGE_OR_DIR")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Check the config and run its task; user mistakes end as one line and a non-zero exit."""
    try:
        check_config(cfg)
        task = importlib.import_module(TASK_MODULES[cfg.task.name])
        return task.run(cfg, run_dir)
    except UserError as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
