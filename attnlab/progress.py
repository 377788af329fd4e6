"""Progress bars on stderr for the long steps of a run besides training: validation and test
decoding, scoring images, downloads. One switch for all of them, ``trainer.progress`` (set by
:func:`attnlab.runlog.prepare_run`); only the main process of a torchrun job draws."""

from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm import tqdm

_enabled = True


def enable(on: bool) -> None:
    """Turn every bar on or off (``trainer.progress``)."""
    global _enabled
    _enabled = bool(on)


def bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
        **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that disappears when done (``leave=False``), or a silent one."""
    from attnlab import distributed

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not _enabled or not distributed.is_main(),
                file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)
