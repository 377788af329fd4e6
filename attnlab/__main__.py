"""Command-line entry point: ``python -m attnlab [overrides]`` (Hydra).

    python -m attnlab                                   # translation with the RNN, de->en
    python -m attnlab task=translation model=transformer
    python -m attnlab task=vision                       # ViT on 8x8 digits
    python -m attnlab -m model=rnn_attn attention=none,dot,general,additive
    python -m attnlab --help                            # config groups and options
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from attnlab.config import register_configs


def config_dir() -> str:
    """conf/ ships inside the wheel as attnlab/conf; in a source checkout it is the top-level conf/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"attnlab's conf/ folder is missing next to {here}; reinstall attnlab")


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from attnlab.app import run  # imported here so that --help stays fast

    run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
