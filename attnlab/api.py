"""Run attnlab from Python (notebooks, scripts) with the same overrides as the command line.

    from attnlab.api import run, run_cached
    results = run(["task=vision", "trainer.epochs=2"], run_dir="runs/vit-small")
    run_dir = run_cached("vit-small", ["task=vision", "trainer.epochs=2"], "runs")  # reused when done

The config is composed by Hydra exactly as for ``python -m attnlab`` (same groups, same checks);
the run writes the same files into ``run_dir``. User mistakes raise :class:`attnlab.errors.UserError`
instead of exiting.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from attnlab.__main__ import config_dir
from attnlab.app import check_config, run_task


def _compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed, checked config for these overrides (as ``python -m attnlab OVERRIDES``)."""
    cfg = _compose(overrides)
    check_config(cfg)
    return cfg


def run(overrides: Sequence[str] = (), run_dir: str | Path = "outputs/api") -> dict[str, Any]:
    """Compose the config, save it in ``run_dir/.hydra/`` (as Hydra does) and run the task in this
    process, through the same check and dispatch as the command line."""
    cfg = _compose(overrides)
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    return run_task(cfg, run_dir)


def run_cached(name: str, overrides: Sequence[str], runs_dir: str | Path) -> Path:
    """Run into ``runs_dir/<name>-<hash>`` unless a finished run (one with results.json) is there
    already; returns the run folder. The hash is that of the whole composed config, so a changed
    recipe or default trains anew instead of reusing a stale run; an unfinished run starts over."""
    config = OmegaConf.to_yaml(_compose(overrides))
    run_dir = Path(runs_dir) / f"{name}-{hashlib.sha1(config.encode()).hexdigest()[:8]}"
    if not (run_dir / "results.json").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        run(overrides, run_dir)
    return run_dir
