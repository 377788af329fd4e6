"""Run attnlab from Python (notebooks, scripts) with the same overrides as the command line.

    from attnlab.api import run
    results = run(["task=vision", "trainer.epochs=2"], run_dir="runs/vit-small")

The config is composed by Hydra exactly as for ``python -m attnlab`` (same groups, same checks);
the run writes the same files into ``run_dir``. User mistakes raise :class:`attnlab.errors.UserError`
instead of exiting.
"""

from __future__ import annotations

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
