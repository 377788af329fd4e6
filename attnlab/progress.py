"""Progress bars on stderr for the long steps of a run besides training: validation and test
decoding, scoring images, downloads, and a running clock for steps that report no progress
(training the tokenizer). One switch for all of them, ``trainer.progress`` (set by
:func:`attnlab.runlog.prepare_run`); only the main process of a torchrun job draws."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Iterable, Iterator

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


@contextlib.contextmanager
def clock(desc: str) -> Iterator[None]:
    """A line that shows the time spent in a step that reports no progress of its own (one call
    into a library), refreshed every second until the step ends."""
    shown = bar(desc=desc, bar_format="{desc}: {elapsed}")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            shown.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        shown.close()
