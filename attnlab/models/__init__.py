"""The models, built by name. Each module has ``build(cfg, **task_info) -> nn.Module``.

Modules are imported only when their model is asked for, so a vision run never imports the
translation models (and vice versa).
"""

from __future__ import annotations

import importlib
from typing import Any

from omegaconf import DictConfig
from torch import nn

from attnlab.errors import UserError

MODEL_MODULES = {
    "rnn_attn": "attnlab.models.rnn_attn",
    "transformer": "attnlab.models.transformer",
    "vit": "attnlab.models.vit",
}


def build_model(cfg: DictConfig, **task_info: Any) -> nn.Module:
    """Build ``cfg.model.name`` with the task's facts (vocabulary sizes, classes, image size...)."""
    name = cfg.model.name
    if name not in MODEL_MODULES:
        raise UserError(f"unknown model '{name}'; valid choices: {', '.join(sorted(MODEL_MODULES))}")
    return importlib.import_module(MODEL_MODULES[name]).build(cfg, **task_info)
