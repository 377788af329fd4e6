"""``mode=explore`` and ``mode=serve`` from a composed config.

    python -m attnlab mode=explore checkpoint=RUN/checkpoints/best.pt input="Ich habe Hunger."
    python -m attnlab mode=explore checkpoint=RUN/checkpoints/best.pt input=sentences.txt compare=OTHER/best.pt
    python -m attnlab mode=explore checkpoint=VIT_RUN/checkpoints/best.pt input=digits/      # images or a folder
    python -m attnlab mode=serve checkpoint=RUN/checkpoints/best.pt serve.port=8000

The checkpoint says its task and model (:func:`attnlab.inference.load`); ``explore`` writes
``explore.html`` into the run folder (or ``output=FILE``), ``serve`` answers on
``serve.host:serve.port`` until Ctrl-C.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from attnlab.errors import UserError
from attnlab.inference import Loaded, load
from attnlab.runlog import prepare_run, write_json

log = logging.getLogger("attnlab.explore")


def load_models(cfg: DictConfig, device: Any) -> list[Loaded]:
    """The checkpoint, and ``compare=`` beside it when given (same task required)."""
    size = list(cfg.explore.image_size) if cfg.explore.image_size else None
    models = [load(cfg.checkpoint, device, image_size=size)]
    if cfg.compare:
        models.append(load(cfg.compare, device, image_size=size))
        if models[1].task != models[0].task:
            raise UserError(f"compare={cfg.compare} is a {models[1].task} checkpoint, checkpoint= a {models[0].task} one; "
                            "compare two checkpoints of the same task")
    return models


def read_inputs(model: Loaded, source: str | None, limit: int) -> list[Any]:
    """``input=``: for translation a text file (one sentence a line) or the sentence itself; for
    vision an image file or a folder of images. At most ``limit`` inputs (the first ones)."""
    if not source:
        what = 'a sentence (input="Ich habe Hunger.") or a text file' if model.task == "translation" else "an image file or a folder"
        raise UserError(f"mode=explore needs input=...: {what}")
    path = Path(str(source)).expanduser()
    if model.task == "translation":
        from attnlab.data.text import normalize_space, read_lines

        items = [normalize_space(s) for s in read_lines(path)] if path.is_file() else [normalize_space(str(source))]
        items = [s for s in items if s]
        if not items:
            raise UserError(f"input={source} holds no sentence")
    else:
        from attnlab.tasks.vision import input_files

        items = input_files(path)
    if len(items) > limit:
        log.info("showing the first %d of %d inputs (explore.max_inputs)", limit, len(items))
    return items[:limit]


def explore(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Write the explorer page for ``input=`` (see the module docstring)."""
    from attnlab.explore.data import page_data
    from attnlab.explore.page import render_page

    device = prepare_run(cfg, run_dir)
    models = load_models(cfg, device)
    items = read_inputs(models[0], cfg.input, int(cfg.explore.max_inputs))
    data = page_data(models, items, n_best=int(cfg.explore.n_best), decimals=int(cfg.explore.decimals))
    target = Path(cfg.output).expanduser() if cfg.output else run_dir / "explore.html"
    if not target.parent.is_dir():
        raise UserError(f"output={cfg.output}: folder {target.parent} does not exist")
    target.write_text(render_page(data), encoding="utf-8")
    log.info("wrote %s (%d inputs, %.0f kB): open it in a browser", target, len(items), target.stat().st_size / 1024)
    print(target, flush=True)
    results = {"mode": "explore", "task": models[0].task, "checkpoint": str(cfg.checkpoint), "compare": cfg.compare,
               "inputs": len(items), "page": str(target), "page_bytes": target.stat().st_size}
    write_json(run_dir / "results.json", results)
    return results


def serve(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Serve the explorer on ``serve.host:serve.port`` until interrupted."""
    import uvicorn

    from attnlab.explore.server import make_app

    device = prepare_run(cfg, run_dir)
    models = load_models(cfg, device)
    items = read_inputs(models[0], cfg.input, int(cfg.explore.max_inputs)) if cfg.input else []
    app = make_app(models, cfg.serve, cfg.explore, items)
    log.info("serving %s on http://%s:%d (Ctrl-C stops)", models[0].label, cfg.serve.host, cfg.serve.port)
    uvicorn.run(app, host=str(cfg.serve.host), port=int(cfg.serve.port), log_level="warning")
    return {"mode": "serve", "checkpoint": str(cfg.checkpoint)}


MODES = {"explore": explore, "serve": serve}


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    return MODES[str(cfg.mode)](cfg, run_dir)
