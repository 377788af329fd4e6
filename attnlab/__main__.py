"""Command-line entry point: ``python -m attnlab [overrides]`` (Hydra).

    python -m attnlab                                   # translation with the RNN, de->en
    python -m attnlab task=translation model=transformer
    python -m attnlab task=vision                       # ViT on 8x8 digits
    python -m attnlab -m model=rnn_attn attention=none,dot,general,additive
    python -m attnlab --help                            # modes, examples, groups and keys

Before Hydra starts (and creates the run folder), a single run's overrides are completed from the
checkpoint, composed and checked (:func:`attnlab.compose.prepare`), so a rejected config leaves
no folder behind. Any user error, Hydra's composition errors included, ends as one line
``error: ...`` and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import hydra
import hydra._internal.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from attnlab.compose import check_overrides, compose_config, complete_from_checkpoint, config_dir, error_text, given, parse, prepare
from attnlab.config import register_configs
from attnlab.errors import UserError

__all__ = ["config_dir", "main"]

register_configs()

# Hydra flags followed by a value (the value is not an override)
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p"}
# Hydra flags after which attnlab only explains composition errors (the config is shown, not run)
_SHOW_FLAGS = {"--cfg", "-c", "--package", "-p", "--resolve"}
_MULTIRUN = {"-m", "--multirun"}


class _Task:
    started = False  # set once Hydra calls the task: errors from then on are the task's own


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from attnlab.app import run  # imported here so that --help stays fast

    _Task.started = True
    run(cfg, Path(HydraConfig.get().runtime.output_dir))


def _one_line_errors(
    original: Callable[[Callable[[], Any]], Any], overrides: list[str]
) -> Callable[[Callable[[], Any]], Any]:
    """Wrap Hydra's error reporter: a Hydra or OmegaConf error before the task starts (a bad
    override in a sweep, a bad hydra.* key) becomes ``error: <one line>`` and exit status 2,
    with attnlab's own explanation (did you mean...) when it has one."""

    def run_and_report(func: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                return func()
            except (HydraException, OmegaConfBaseException) as err:
                if _Task.started:
                    raise
                try:
                    check_overrides(overrides)
                except UserError as explained:
                    _fail(str(explained))
                except (HydraException, OmegaConfBaseException):
                    pass
                _fail(error_text(err))

        return original(guarded)

    return run_and_report


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(UserError.exit_code)


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, overrides)."""
    flags, overrides = [], []
    it = iter(args)
    for arg in it:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in _VALUE_FLAGS:
                flags.append(next(it, ""))
        else:
            overrides.append(arg)
    return flags, overrides


def main() -> None:
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        from attnlab.help import help_text

        print(help_text())
        return
    flags, overrides = _split(args)
    names = {f for f in flags if f.startswith("-")}
    try:
        if not names:  # one run: everything is checked before Hydra makes the run folder
            overrides, _ = prepare(overrides, given(parse(overrides), "hydra.run.dir"))
        elif names <= _SHOW_FLAGS:  # --cfg job: the composed config, explained when it fails
            overrides = complete_from_checkpoint(overrides)
            compose_config(overrides)
    except UserError as err:
        _fail(str(err))
    sys.argv = [sys.argv[0], *flags, *overrides]
    hydra_utils.run_and_report = _one_line_errors(hydra_utils.run_and_report, overrides)
    _hydra_main()


if __name__ == "__main__":
    main()
