"""Run attnlab from Python (notebooks, scripts) with the same overrides as the command line.

    from attnlab.api import run, run_cached
    results = run("task=vision trainer.epochs=2")                   # a new outputs/vision/vit/<time>/
    results = run(["task=vision", "trainer.epochs=2"], run_dir="runs/vit-small")
    run_dir = run_cached("vit-small", ["task=vision", "trainer.epochs=2"], "runs")  # reused when done
    dirs = run_cached_many([("a", [...]), ("b", [...])], "runs", jobs=2)  # two subprocesses at a time

The config is composed by Hydra exactly as for ``python -m attnlab`` (same groups, same checks);
the run writes the same files into ``run_dir``. User mistakes raise :class:`attnlab.errors.UserError`
instead of exiting.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence, Union

from omegaconf import DictConfig, OmegaConf

import attnlab
from attnlab import compose
from attnlab.app import run_task
from attnlab.errors import UserError


Overrides = Union[str, Sequence[str]]


def as_list(overrides: Overrides) -> list[str]:
    """Overrides as a list: a string is split as a shell would (``"task=vision seed=1"``)."""
    if isinstance(overrides, str):
        return shlex.split(overrides)
    if not all(isinstance(o, str) for o in overrides):
        raise UserError(f"overrides must be strings like 'trainer.epochs=2', got {list(overrides)!r}")
    return list(overrides)


def _compose(overrides: Overrides) -> DictConfig:
    return compose.compose_config(as_list(overrides))


def compose_config(overrides: Overrides = ()) -> DictConfig:
    """The composed, checked config for these overrides (as ``python -m attnlab OVERRIDES``)."""
    return compose.prepare(as_list(overrides))[1]


def fresh_run_dir(cfg: DictConfig, root: str | Path = "outputs") -> Path:
    """A new folder ``root/<task>/<model>/<time>`` (``_2``, ``_3``... when that one exists)."""
    stem = Path(root) / str(cfg.task.name) / str(cfg.model.name) / time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 1000):
        candidate = stem if n == 1 else stem.with_name(f"{stem.name}_{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"cannot make a new run folder next to {stem}; pass run_dir=")


def run(overrides: Overrides = (), run_dir: str | Path | None = None) -> dict[str, Any]:
    """Run attnlab in this process as ``python -m attnlab OVERRIDES`` would, and return its results.

    ``overrides`` is a list (``["task=vision", "trainer.epochs=2"]``) or one string
    (``"task=vision trainer.epochs=2"``). The run writes into ``run_dir``, by default a new folder
    ``outputs/<task>/<model>/<time>/`` for every call. The config is checked before the folder is
    made (same checks as the command line); the composed config is saved in
    ``run_dir/.hydra/config.yaml`` as Hydra does."""
    overrides, cfg = compose.prepare(as_list(overrides), run_dir)
    run_dir = fresh_run_dir(cfg) if run_dir is None else Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    return run_task(cfg, run_dir)


def code_version() -> dict[str, str]:
    """What code a run was made with: attnlab's version and a digest of every source file of the
    installed package (so an edit changes it, committed or not)."""
    package = Path(attnlab.__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return {"attnlab_version": attnlab.__version__, "source_sha1": digest.hexdigest()}


def run_key(overrides: Overrides, code: dict[str, str] | None = None) -> str:
    """The cache key of a run: a hash of its whole composed config and of :func:`code_version`
    (``code``, when the caller has it already)."""
    config = OmegaConf.to_yaml(_compose(overrides))
    code = json.dumps(code or code_version(), sort_keys=True)
    return hashlib.sha1(f"{config}\n{code}".encode()).hexdigest()[:8]


def run_cached(name: str, overrides: Overrides, runs_dir: str | Path) -> Path:
    """Run into ``runs_dir/<name>-<key>`` unless a finished run (one with results.json) is there
    already; returns the run folder. The key (:func:`run_key`) hashes the whole composed config
    and the code (attnlab's version and source files), so a changed recipe, default or line of
    code trains anew instead of reusing a stale run; an unfinished run starts over. The code
    version is saved beside the run as ``code_version.json``."""
    code = code_version()  # hashes every source file: once
    run_dir = Path(runs_dir) / f"{name}-{run_key(overrides, code)}"
    if not (run_dir / "results.json").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        (run_dir / "code_version.json").write_text(json.dumps(code, indent=2) + "\n", encoding="utf-8")
        run(overrides, run_dir)  # the folder is new here: a new run, never a resumed one
    return run_dir


def run_cached_many(items: Sequence[tuple[str, Overrides]], runs_dir: str | Path, jobs: int = 1) -> list[Path]:
    """:func:`run_cached` for each ``(name, overrides)`` of ``items``, at most ``jobs`` at a time;
    returns the run folders in the order of ``items``.

    With ``jobs=1`` the runs train one after another in this process. With ``jobs > 1`` each run
    that is not finished yet trains in a subprocess of this interpreter that calls
    :func:`run_cached` itself, so the folder, the cache key and the results are those of a
    sequential run. Every run must then name one thread (``trainer.num_threads=1``): parallel
    runs that each take every core slow each other down, and a run's numbers depend on its thread
    count. Every config is composed and checked before anything starts (a mistake raises
    :class:`UserError` at once). A subprocess writes its output to ``runs_dir/<folder>.log``
    (moved into the run folder as ``subprocess.log`` when it succeeds); when runs fail, the others
    still finish and then a ``RuntimeError`` names each failed run and its log."""
    if jobs < 1:
        raise UserError(f"jobs={jobs}: give the number of runs to train at once, 1 or more")
    if jobs == 1:
        return [run_cached(name, overrides, runs_dir) for name, overrides in items]
    code = code_version()
    runs_dir = Path(runs_dir)
    dirs = [runs_dir / f"{name}-{run_key(overrides, code)}" for name, overrides in items]
    for (name, overrides), run_dir in zip(items, dirs):
        threads = _compose(overrides).trainer.num_threads
        if threads != 1:
            raise UserError(f"run {name!r} has trainer.num_threads={threads}: with jobs={jobs} every run needs "
                            "trainer.num_threads=1 (add it to its overrides)")
    todo = {run_dir: (name, as_list(overrides)) for (name, overrides), run_dir in zip(items, dirs)
            if not (run_dir / "results.json").is_file()}  # a dict: a run listed twice trains once
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failed = [f for f in pool.map(lambda item: _run_in_subprocess(*item[1], runs_dir, item[0]), todo.items()) if f]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} runs failed: " + "; ".join(failed))
    return dirs


def _run_in_subprocess(name: str, overrides: list[str], runs_dir: Path, run_dir: Path) -> str | None:
    """Train one cached run in a subprocess; None when it finished, else what failed and where its log is."""
    log = run_dir.with_name(run_dir.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # the subprocess imports this very attnlab, whatever its working directory puts on the path
    package_root = str(Path(attnlab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    script = "import json, sys; from attnlab.api import run_cached; run_cached(*json.loads(sys.argv[1]))"
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.call([sys.executable, "-c", script, json.dumps([name, overrides, str(runs_dir)])],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if code != 0 or not (run_dir / "results.json").is_file():
        why = f"exit status {code}" if code != 0 else f"no results.json in {run_dir}"
        return f"{name} ({why}; log: {log})"
    log.replace(run_dir / "subprocess.log")
    return None
