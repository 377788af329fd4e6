"""attnlab stays portable: no POSIX-only module imported at module level, peak memory in the
right unit on each platform, Apple GPUs (mps) offered and picked by device=auto."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
import torch

import attnlab
from attnlab import runlog
from attnlab.errors import UserError

POSIX_ONLY = {"resource", "fcntl", "termios", "pwd", "grp", "posix"}
PACKAGE = Path(attnlab.__file__).parent


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_posix_only_import_at_module_level(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:  # module level only; an import inside a function can guard itself
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        assert not POSIX_ONLY & {n.split(".")[0] for n in names}, f"{path.name} imports {names} at module level"


@pytest.mark.parametrize("platform,maxrss,expected", [("linux", 2048 * 1024, 2048.0), ("darwin", 2048 * 2**20, 2048.0)])
def test_peak_memory_units_per_platform(monkeypatch, platform, maxrss, expected):
    fake = types.SimpleNamespace(RUSAGE_SELF=0, getrusage=lambda who: types.SimpleNamespace(ru_maxrss=maxrss))
    monkeypatch.setitem(sys.modules, "resource", fake)
    monkeypatch.setattr(sys, "platform", platform)
    assert runlog.peak_rss_mb() == expected


def test_peak_memory_without_resource_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "resource", None)  # import resource raises ImportError (Windows)
    assert runlog.peak_rss_mb() is None


def test_auto_picks_an_apple_gpu_when_there_is_no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runlog, "mps_available", lambda: True)
    monkeypatch.setattr(runlog.distributed, "init", lambda device: device)
    assert runlog.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(runlog, "mps_available", lambda: False)
    assert runlog.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="device=mps but"):
        runlog.resolve_device("mps")
