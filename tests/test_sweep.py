"""Sweeps: the attnlab sweeper refuses a bad grid before any job starts; run folders are named by
their overrides; a sweep's folder feeds the report.

Most tests replace the tasks by a fake one (a few lines that write results.json and metrics.jsonl),
so they check the sweep machinery in seconds, without training and without the task modules; the
last test is a tiny real sweep, run only when the tasks exist.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from attnlab import report
from attnlab.errors import UserError
from hydra_plugins.attnlab_sweeper.sweeper import find_bad_jobs, one_line

# `python -m attnlab` with both tasks replaced by a fake: BLEU = 10 * rank of the scoring + seed.
FAKE_TASKS = """
import json, sys, types

BLEU = {"none": 10.0, "dot": 20.0, "general": 30.0, "additive": 40.0}

def run(cfg, run_dir):
    bleu = BLEU[str(cfg.attention.score)] + cfg.seed
    valid = [{"kind": "valid", "epoch": e, "step": 4 * e, "bleu": bleu * e / 2} for e in (1, 2)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in valid))
    results = {"task": cfg.task.name, "model": cfg.model.name, "attention": str(cfg.attention.score),
               "seed": cfg.seed, "bleu": bleu, "chrf": 2 * bleu, "num_params": 100, "train_seconds": 1.0}
    (run_dir / "results.json").write_text(json.dumps(results))
    return results

for task in ("translation", "vision"):
    fake = types.ModuleType("attnlab.tasks." + task)
    fake.run = run
    sys.modules[fake.__name__] = fake

from attnlab.__main__ import main
main()
"""


def sweep(tmp_path: Path, *overrides: str, fake: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m attnlab -m OVERRIDES`` with its sweep folder at ``tmp_path/sweep``."""
    program = ["-c", FAKE_TASKS] if fake else ["-m", "attnlab"]
    command = [sys.executable, *program, "-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def job_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: job ")]


# ----------------------------------------------------------------------------- the grid check


def test_hydra_discovers_the_sweeper(tmp_path: Path) -> None:
    """Hydra's plugin scan imports the module its own way (a module-level error breaks every run)."""
    command = [sys.executable, "-m", "attnlab", "--info", "plugins"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "AttnlabSweeper" in done.stdout and "Traceback" not in done.stderr


def test_a_bad_job_stops_the_sweep_before_any_job_runs(tmp_path: Path) -> None:
    done = sweep(tmp_path, "task=translation", "model=rnn_attn,vit", "seed=0,1")
    assert done.returncode == 2, done.stderr
    assert job_errors(done.stderr) == [
        f"error: job task=translation model=vit seed={seed}: model=vit does not fit task=translation; "
        "valid models for translation: rnn_attn, transformer"
        for seed in (0, 1)
    ]
    assert "error: 2 of 4 jobs are invalid; no job was started" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sweep").exists()  # not even the sweep folder


def test_composition_errors_are_bad_jobs_too(tmp_path: Path) -> None:
    done = sweep(tmp_path, "attention=dot,nonsense", "seed=0,abc")
    assert done.returncode == 2, done.stderr
    errors = job_errors(done.stderr)
    assert [line.split(":")[1] for line in errors] == [
        " job attention=dot seed=abc",
        " job attention=nonsense seed=0",
        " job attention=nonsense seed=abc",
    ]
    assert "Value 'abc' of type 'str' could not be converted to Integer" in errors[0]
    assert "unknown attention=nonsense; valid: additive, alibi, cosine, default, dot, general, gqa, linear, local, mqa, none, relative, rope, scaled_dot" in errors[1]
    assert "error: 3 of 4 jobs are invalid" in done.stderr
    assert not (tmp_path / "sweep").exists()


def test_without_the_check_the_good_jobs_run_before_the_bad_one_fails(tmp_path: Path) -> None:
    """What the check prevents: Hydra's basic behaviour, kept behind hydra.sweeper.check=false."""
    done = sweep(tmp_path, "hydra.sweeper.check=false", "model=rnn_attn,vit")
    assert done.returncode == 2
    assert "error: model=vit does not fit task=translation" in done.stderr
    assert (tmp_path / "sweep" / "model=rnn_attn" / "results.json").is_file()


def test_find_bad_jobs_collects_every_problem_and_lets_bugs_through() -> None:
    def compose(overrides: list[str]) -> object:
        if "model=typo" in overrides:
            raise ConfigCompositionException("In 'config': Could not find 'model/typo'\n\nAvailable options:\n\ta\n\tb")
        return OmegaConf.create(dict(o.split("=") for o in overrides))

    def check(cfg: object) -> None:
        if cfg.model == "vit":  # type: ignore[attr-defined]
            raise UserError("model=vit does not fit")
        if cfg.model == "bug":  # type: ignore[attr-defined]
            raise KeyError("a bug")

    jobs: list[Sequence[str]] = [["model=rnn"], ["model=vit"], ["model=typo"]]
    assert find_bad_jobs(jobs, compose, check) == [
        (["model=vit"], "model=vit does not fit"),
        (["model=typo"], "In 'config': Could not find 'model/typo'; Available options: a, b"),
    ]
    with pytest.raises(KeyError):
        find_bad_jobs([["model=bug"]], compose, check)


def test_one_line_drops_omegaconf_noise() -> None:
    message = "Error merging override seed=abc\nValue 'abc' is no int\n    full_key: seed\n    object_type=Config"
    assert one_line(message) == "Error merging override seed=abc; Value 'abc' is no int"


# ----------------------------------------------------------------------------- a valid sweep


def test_valid_sweep_runs_every_job_in_a_folder_named_by_its_overrides(tmp_path: Path) -> None:
    done = sweep(tmp_path, "task=translation", "model=rnn_attn", "attention=none,dot", "seed=0,1")
    assert done.returncode == 0, done.stderr
    folders = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert folders == [
        f"attention={a},model=rnn_attn,seed={s},task=translation" for a in ("dot", "none") for s in (0, 1)
    ]  # seed and attention in the name, hydra.sweep.dir not
    run = tmp_path / "sweep" / folders[0]
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) == [
        "task=translation",
        "model=rnn_attn",
        "attention=dot",
        "seed=0",
    ]
    assert json.loads((run / "results.json").read_text())["bleu"] == 20.0

    rows = report.summarize(report.load_runs(tmp_path / "sweep"))
    assert [(r.variant, r.n_seeds) for r in rows] == [("attention=dot", 2), ("attention=none", 2)]
    assert rows[0].stats["bleu"].mean == pytest.approx(20.5) and rows[0].stats["bleu"].std == pytest.approx(0.5**0.5)
    curve = report.mean_curve(rows[1].runs, "bleu")  # none: BLEU 10 and 11, half of it at step 4
    assert curve == [(4.0, 5.25, pytest.approx(0.125**0.5)), (8.0, 10.5, pytest.approx(0.5**0.5))]


# Tiny settings per task: a real sweep of two variants in seconds on a CPU.
TINY = {
    "translation": [
        "model=rnn_attn", "data.max_train_pairs=64", "data.max_eval_sentences=8",
        "data.vocab_size=300", "model.emb_dim=16", "model.hidden_dim=16", "model.attn_dim=16",
    ],
    "vision": ["data.max_train=128", "model.dim=16", "model.depth=1", "model.heads=2"],
}  # fmt: skip
ATTENTIONS = {"translation": ("none", "dot"), "vision": ("dot", "additive")}  # the variants swept
COMMON_TINY = [
    "seed=0", "trainer.epochs=1", "trainer.batch_size=32", "trainer.progress=false", "trainer.num_threads=1",
    "viz.enabled=false", "device=cpu",
]  # fmt: skip


def task_exists(task: str) -> bool:
    return importlib.util.find_spec(f"attnlab.tasks.{task}") is not None


@pytest.mark.parametrize(
    "task",
    [
        pytest.param(t, marks=pytest.mark.skipif(not task_exists(t), reason=f"attnlab.tasks.{t} does not exist yet"))
        for t in TINY
    ],
)
def test_tiny_real_sweep_and_its_report(tmp_path: Path, task: str) -> None:
    attentions = ATTENTIONS[task]
    done = sweep(tmp_path, f"task={task}", f"attention={','.join(attentions)}", *TINY[task], *COMMON_TINY, fake=False)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = report.write_report(tmp_path / "sweep")
    rows = report.summarize(report.load_runs(tmp_path / "sweep"))
    assert sorted(r.variant for r in rows) == sorted(f"attention={a}" for a in attentions)
    assert all(r.task == task and r.n_seeds == 1 and r.primary.mean is not None for r in rows)
    assert all(r.num_params and r.train_seconds.mean is not None for r in rows)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
