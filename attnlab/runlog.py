"""The run folder contract: what every run writes next to Hydra's own files.

    <run dir>/.hydra/config.yaml     resolved config (written by Hydra)
    <run dir>/metrics.jsonl          one JSON object per logged step or validation
    <run dir>/results.json           final results (common fields + task metrics)
    <run dir>/checkpoints/last.pt    latest state (resume from it)
    <run dir>/checkpoints/best.pt    best validation score
    <run dir>/attention/*.png        attention pictures
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from attnlab import __version__, distributed, progress
from attnlab.attention.factory import spec_label


# How results.json's ``stop_reason`` starts when ``trainer.max_minutes`` ended a run (the trainer
# writes it; the report flags such runs, cut short of their step budget).
TIME_CAP_STOP = "time cap"


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed, so a crash keeps it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")


class TensorBoardLog:
    """The records of metrics.jsonl as TensorBoard scalars (``train/loss``, ``valid/bleu``...) at
    their step, and attention matrices as images, in ``<run dir>/tensorboard`` (live curves:
    ``tensorboard --logdir outputs``). metrics.jsonl stays the record; this is a view of it."""

    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(folder))

    def write(self, **record: Any) -> None:
        kind, step = record.get("kind", "log"), int(record.get("step", 0))
        for key, value in record.items():
            if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{kind}/{key}", value, step)
        self.writer.flush()

    def attention(self, weights: torch.Tensor, step: int, tag: str = "attention/valid_0") -> None:
        """A (rows, columns) attention matrix as a grey image, brightest at its largest weight,
        each cell at least 8 pixels wide."""
        w = weights.detach().float().cpu()
        w = w / w.max().clamp_min(1e-12)
        cell = max(8, 256 // max(w.shape))
        image = w.repeat_interleave(cell, 0).repeat_interleave(cell, 1)  # (rows * cell, columns * cell)
        self.writer.add_image(tag, image.unsqueeze(0), step)  # (1, H, W)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``metrics.jsonl``); a torn last line (a crash mid-write)
    and anything that is not an object are skipped; no file, no records."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def base_results(cfg: DictConfig, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """The fields every results.json has, whatever the task."""
    return {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "attention": spec_label(cfg.attention),  # the variant, e.g. scaled_dot+rope+kv1
        "mode": str(cfg.mode),
        "seed": cfg.seed,
        "num_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "world_size": distributed.world_size(),
        "torch_version": torch.__version__,
        "attnlab_version": __version__,
        **({"gpu_peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
           if device.type == "cuda" else {}),
    }


def prepare_run(cfg: DictConfig, run_dir: Path) -> torch.device:
    """What every task does first: torch threads (``trainer.num_threads`` > 0), the seed, the
    device (joining torchrun's process group), and the run folder."""
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    torch.manual_seed(int(cfg.seed))
    progress.enable(cfg.trainer.progress)
    device = resolve_device(str(cfg.device))
    run_dir.mkdir(parents=True, exist_ok=True)
    return device


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line for benchmark tables: CPU (or GPU), core count, torch version and threads."""
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu_name()} ({os.cpu_count()} cores){gpu}; torch {torch.__version__}; {torch.get_num_threads()} thread(s)"


def mps_available() -> bool:
    """Whether an Apple GPU (Metal Performance Shaders) is usable by this torch."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """The device for ``device=auto|cpu|cuda|mps`` (auto: CUDA, else an Apple GPU, else the CPU);
    under torchrun also joins the process group and returns this process's own GPU."""
    from attnlab.errors import UserError

    name = str(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    if name == "mps" and not mps_available():
        raise UserError("device=mps but this torch sees no Apple GPU (MPS); use device=auto or device=cpu")
    if name == "auto":
        single = distributed.world_size() == 1  # torchrun's backends are gloo and nccl: no MPS
        name = "cuda" if torch.cuda.is_available() else "mps" if single and mps_available() else "cpu"
    return distributed.init(torch.device(name))


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, in MiB; None where the platform has no
    ``resource`` module (Windows). ``ru_maxrss`` counts KiB on Linux and bytes on macOS."""
    try:
        import resource  # POSIX only: imported here so that the package imports on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
