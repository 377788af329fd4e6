"""Checkpoints: written atomically, read safely; exported as a folder of plain files.

A checkpoint is a plain dict of tensors, numbers, strings and bytes, loaded with
``torch.load(weights_only=True)``, so a checkpoint from an untrusted source cannot run code.
It is written to a temporary file in the same folder and renamed into place, so a crash or a
kill never leaves a half-written ``last.pt`` behind; it is readable by the group and others
(0644 under the usual umask), like any other output file.

An **export folder** (``mode=export``, :func:`export_checkpoint`) holds the same things as plain
files, for sharing and for other tools:

    model.safetensors   the weights (safetensors: no code, memory-mapped; tied weights once)
    config.yaml         the run's config
    tokenizer.model     the SentencePiece model(s) (tokenizer.model, or src_/tgt_tokenizer.model)
    extra.json          what else rebuilding the model needs (vision: classes, image size, mean/std)
    attnlab.json        the manifest: format, versions and which file holds what

:func:`load_checkpoint` reads a ``.pt`` file or such a folder into the same dict, so every mode
takes ``checkpoint=FOLDER`` as well as ``checkpoint=FILE.pt``.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from attnlab import __version__
from attnlab.errors import UserError

FORMAT = "attnlab-checkpoint-v1"
EXPORT_FORMAT = "attnlab-export-v1"
MANIFEST, WEIGHTS, CONFIG, EXTRA = "attnlab.json", "model.safetensors", "config.yaml", "extra.json"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint (a .pt file or an export folder) without executing code; a bad file gets
    a one-line UserError. ``mmap``: map a .pt file's tensors instead of reading them (for callers
    that need the config and not the weights)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_export(path, map_location)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass checkpoint=PATH to a .pt file of a training run")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as err:
        raise UserError(f"checkpoint {path} cannot be read ({_reason(err)}); use another checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an attnlab checkpoint; pass a checkpoints/*.pt file written by attnlab")
    return payload


def saved_config(path: str | Path) -> dict[str, Any]:
    """The run config a checkpoint was trained with (a plain dict)."""
    config = load_checkpoint(path, mmap=True).get("config")  # the weights are never read
    if not isinstance(config, dict):
        raise UserError(f"checkpoint {path} carries no config; pass a checkpoints/*.pt file written by attnlab")
    return config


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """The last checkpoint of ``paths`` with its weights replaced by the element-wise mean of all
    their weights (averaging the last checkpoints of a run, Vaswani et al. 2017, sec. 6.1; Popel
    & Bojar 2018, sec. 4.10). Floating tensors are averaged in float64; integer buffers (counters)
    keep the last checkpoint's values."""
    if not paths:
        raise UserError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    payload: dict[str, Any] = {}
    for path in paths:
        payload = load_checkpoint(path)
        for name, tensor in payload["model"].items():
            if tensor.is_floating_point():
                total[name] = total[name] + tensor.double() if name in total else tensor.double()
    state = payload["model"]
    averaged = {name: (total[name] / len(paths)).to(t.dtype) if name in total else t for name, t in state.items()}
    return {**payload, "model": averaged}


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


# ----------------------------------------------------------------------------- export folders


def _unshared(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, aliases): tensors that share memory (tied embeddings) are stored once, the other
    names are aliases of the first (safetensors refuses shared tensors)."""
    first: dict[tuple, str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()))
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
            tensors[name] = tensor.detach().cpu().contiguous()
    return tensors, aliases


def export_checkpoint(payload: dict[str, Any], folder: str | Path) -> Path:
    """Write a loaded checkpoint as an export folder (see the module docstring); returns it.
    Optimizer and trainer state are left out: an export is for using the model, not resuming."""
    from safetensors.torch import save_file

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _unshared(payload["model"])
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": EXPORT_FORMAT})
    (folder / CONFIG).write_text(OmegaConf.to_yaml(OmegaConf.create(payload.get("config", {}))), encoding="utf-8")
    files, plain = {}, {}
    for key, value in (payload.get("extra") or {}).items():
        if isinstance(value, bytes):  # the SentencePiece models
            files[key] = f"{key}.model"
            (folder / files[key]).write_bytes(value)
        else:
            plain[key] = value
    (folder / EXTRA).write_text(json.dumps(plain, indent=2) + "\n", encoding="utf-8")
    manifest = {
        "format": EXPORT_FORMAT,
        "versions": payload.get("versions", {}),
        "weights": WEIGHTS,
        "aliases": aliases,
        "config": CONFIG,
        "extra": EXTRA,
        "extra_files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")  # last: marks it complete
    for file in (WEIGHTS, CONFIG, EXTRA, MANIFEST, *files.values()):
        os.chmod(folder / file, _file_mode())
    return folder


def load_export(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an export folder into the dict :func:`load_checkpoint` returns for a .pt file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"checkpoint={folder} is a folder without {MANIFEST}; pass a .pt file or a folder written by mode=export"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != EXPORT_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {EXPORT_FORMAT}")
        device = str(map_location)
        state = load_file(str(folder / manifest["weights"]), device=device)
        for alias, name in manifest.get("aliases", {}).items():
            state[alias] = state[name]
        config = OmegaConf.to_container(OmegaConf.load(folder / manifest["config"]), resolve=True)
        extra = json.loads((folder / manifest["extra"]).read_text(encoding="utf-8"))
        for key, name in manifest.get("extra_files", {}).items():
            extra[key] = (folder / name).read_bytes()
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        reason = " ".join(str(err).split())[:160]
        raise UserError(f"export folder {folder} cannot be read ({reason}); export the checkpoint again") from None
    return {"format": FORMAT, "versions": manifest.get("versions", {}), "model": state, "config": config, "extra": extra}
