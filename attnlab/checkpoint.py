"""Checkpoints: written atomically, read safely.

A checkpoint is a plain dict of tensors, numbers, strings and bytes, loaded with
``torch.load(weights_only=True)``, so a checkpoint from an untrusted source cannot run code.
It is written to a temporary file in the same folder and renamed into place, so a crash or a
kill never leaves a half-written ``last.pt`` behind.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from attnlab import __version__
from attnlab.errors import UserError

FORMAT = "attnlab-checkpoint-v1"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and versions) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "versions": {"attnlab": __version__, "torch": str(torch.__version__)}, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without executing code; a bad file gets a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass checkpoint=PATH to a .pt file of a training run")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as err:
        raise UserError(f"checkpoint {path} cannot be read ({_reason(err)}); use another checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an attnlab checkpoint; pass a checkpoints/*.pt file written by attnlab")
    return payload


def saved_config(path: str | Path) -> dict[str, Any]:
    """The run config a checkpoint was trained with (a plain dict)."""
    config = load_checkpoint(path).get("config")
    if not isinstance(config, dict):
        raise UserError(f"checkpoint {path} carries no config; pass a checkpoints/*.pt file written by attnlab")
    return config


def _reason(err: Exception) -> str:
    """The informative line of torch.load's long error messages."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return "it holds objects that a safe load refuses: " + line.split(":", 1)[1].strip()[:160]
    return (lines[0][:160] if lines else type(err).__name__) + "; the file is corrupt or truncated"


def check_compatible(payload: dict[str, Any], path: Path | str, **expected: str) -> None:
    """Refuse a checkpoint made for another task or model, naming both."""
    saved = payload.get("config", {})
    for key, want in expected.items():
        have = saved.get(key, {}).get("name")
        if have != want:
            raise UserError(
                f"checkpoint {path} holds a {key} '{have}', not '{want}'; pass {key}={have} or another checkpoint"
            )


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    """load_state_dict with a one-line error when shapes or names differ (other sizes or vocab)."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise UserError(
            f"checkpoint {path} does not fit this model ({detail}); use the same model sizes and data as its run"
        ) from None
