"""A grid sweeper that refuses a bad grid before any job starts.

Hydra's basic sweeper composes each batch of jobs just before launching it, and attnlab's own
checks (:func:`attnlab.app.check_config`: a model that does not fit the task, ``attention=none``
with a Transformer, ...) only run inside each job. So with ``model=rnn_attn,vit`` the ``vit`` jobs
fail after the ``rnn_attn`` ones have trained. :class:`AttnlabSweeper` first composes the config of
*every* job in the grid and checks it; if any job is invalid it prints one line per bad job,

    error: job task=translation model=vit: model=vit does not fit task=translation; valid ...

and exits with status 2 before the sweep folder exists. Otherwise it sweeps exactly as Hydra's
basic sweeper does (same grid, same ``max_batch_size`` batches, same launcher).

Selected in ``conf/config.yaml`` with ``- override hydra/sweeper: attnlab``; options:
``hydra.sweeper.check=false`` skips the check, ``hydra.sweeper.max_batch_size`` and
``hydra.sweeper.params`` are the basic sweeper's.

This module is imported by Hydra's plugin scan at every start of every Hydra app in the
environment, so it imports nothing heavy; attnlab itself is imported only when a sweep is checked.
No ``from __future__ import annotations`` here: Hydra's scan executes this module before it is in
``sys.modules``, and dataclasses then cannot resolve string annotations.
"""

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

log = logging.getLogger(__name__)

# Lines of Hydra/OmegaConf error messages that say nothing to a user comparing attention variants.
_NOISE = ("full_key:", "object_type=", "reference_type=", "Config search path", "provider=", "Set the environment")
EXIT_BAD_GRID = 2  # attnlab.errors.UserError.exit_code (not imported here: keep the plugin scan light)


@dataclass
class AttnlabSweeperConf:
    """Config of ``hydra/sweeper: attnlab`` (the basic sweeper's options plus ``check``)."""

    _target_: str = "hydra_plugins.attnlab_sweeper.sweeper.AttnlabSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    check: bool = True  # compose and check every job before launching any


ConfigStore.instance().store(group="hydra/sweeper", name="attnlab", node=AttnlabSweeperConf, provider="attnlab")


def one_line(message: str) -> str:
    """Fold a multi-line Hydra/OmegaConf error message into one line, dropping its noise.

    Indented lines (Hydra's lists of available options) join the line above them with commas.
    """
    parts: list[str] = []
    for raw in message.splitlines():
        line = raw.strip()
        if not line or line.startswith(_NOISE):
            continue
        if raw[:1].isspace() and parts:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line)
    return "; ".join(parts)


def error_text(err: BaseException) -> str:
    """``err`` and the errors it was raised from, as one line (Hydra wraps OmegaConf's reason)."""
    parts: list[str] = []
    cause: Optional[BaseException] = err
    while cause is not None:
        text = one_line(str(cause))
        if text and text not in parts:
            parts.append(text)
        cause = cause.__cause__
    return "; ".join(parts) or type(err).__name__


def default_checker() -> Callable[[DictConfig], None]:
    """attnlab's own config check, imported only when a sweep needs it."""
    from attnlab.app import check_config

    return check_config


def find_bad_jobs(
    jobs: Sequence[Sequence[str]],
    compose: Callable[[List[str]], DictConfig],
    check: Callable[[DictConfig], None],
) -> list[tuple[Sequence[str], str]]:
    """Compose and check each job; return ``(overrides, one-line message)`` for every bad one.

    A job is bad when its config cannot be composed (unknown option, value of the wrong type...)
    or when ``check`` raises :class:`attnlab.errors.UserError`. Any other exception is a bug and
    propagates with its traceback.
    """
    from attnlab.errors import UserError

    bad: list[tuple[Sequence[str], str]] = []
    for overrides in jobs:
        try:
            check(compose(list(overrides)))
        except (UserError, HydraException, OmegaConfBaseException) as err:
            bad.append((overrides, error_text(err)))
    return bad


def report_bad_jobs(bad: Sequence[tuple[Sequence[str], str]], total: int) -> None:
    """Print ``error: job <overrides>: <message>`` per bad job, then one summary line, on stderr."""
    for overrides, message in bad:
        print(f"error: job {' '.join(overrides)}: {message}", file=sys.stderr)
    print(f"error: {len(bad)} of {total} jobs are invalid; no job was started", file=sys.stderr)


class AttnlabSweeper(BasicSweeper):
    """Hydra's basic grid sweeper, plus a check of every job's config before the first launch."""

    def __init__(
        self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None, check: bool = True
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.check = check
        self._grid_checked = False

    def sweep(self, arguments: List[str]) -> Any:
        """Check the whole grid (exit 2 with one line per bad job), then sweep as the basic sweeper."""
        if self.check:
            jobs = self.grid(arguments)
            tic = time.perf_counter()
            bad = find_bad_jobs(jobs, self._compose, default_checker())
            log.debug("checked %d jobs in %.2f s", len(jobs), time.perf_counter() - tic)
            if bad:
                report_bad_jobs(bad, len(jobs))
                sys.exit(EXIT_BAD_GRID)
            self._grid_checked = True
        return super().sweep(arguments)

    def grid(self, arguments: List[str]) -> list[list[str]]:
        """Every job of the sweep, in launch order, as the basic sweeper expands it."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        return [job for batch in self.split_arguments(overrides, None) for job in batch]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Skip the basic sweeper's per-batch composition when the whole grid was already checked."""
        if not self._grid_checked:
            super().validate_batch_is_legal(batch)

    def _compose(self, overrides: List[str]) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        from attnlab.compose import check_overrides  # unknown options/keys and +key, with "did you mean"

        check_overrides(overrides)
        return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
