"""The default recipes themselves are reproducible on a CPU: the same seed twice gives the same
numbers, and a run killed after a periodic checkpoint and resumed ends exactly as an
uninterrupted one.

Each test composes the real default recipe (``conf/recipe/*``: model sizes, optimizer, schedule,
batching, decoding) and changes only the budget (``trainer.max_steps``), the amount of data and
the checkpoint interval, so that it runs in seconds. The vision run is killed for real (SIGKILL
of a ``python -m attnlab`` subprocess once a periodic ``last.pt`` exists); the translators crash
in-process right after a periodic checkpoint, which leaves the same files behind. Each test's
second run is the same command with the same seed again (interrupted, then resumed), so equal
outcomes show both properties; the Transformer's case is marked slow (the 5M-parameter model
on the recipe's 2,048-token batches takes about 30 s on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.api import compose_config, run
from attnlab.tasks.translation import TranslationTrainable

COMMON = ["trainer.num_threads=1", "trainer.progress=false", "viz.enabled=false"]
# the default vision command, 30 steps instead of 120 epochs (1.4 epochs of the digits)
VISION = ["task=vision", "trainer.max_steps=30", "trainer.checkpoint_every_steps=5", *COMMON]
# the default translation commands on 2,000 training pairs, 3 steps (checkpoint after each)
TRANSLATION = ["data.max_train_pairs=2000", "data.max_eval_sentences=8", "decode.valid_sentences=8",
               "trainer.max_steps=3", "trainer.checkpoint_every_steps=1", *COMMON]


def outcome(run_dir: Path) -> dict:
    """What must not differ between two runs: results.json without timings, and the per-item
    outputs (translations, image predictions)."""
    results = json.loads((run_dir / "results.json").read_text())
    kept = {k: v for k, v in results.items()
            if not any(t in k for t in ("seconds", "_per_s", "peak_rss", "checkpoint"))}
    for name in ("hypotheses.txt", "test_predictions.csv", "valid_predictions.csv"):
        if (run_dir / name).is_file():
            kept[name] = (run_dir / name).read_text()
    return kept


def test_the_translation_test_overrides_keep_the_default_recipes():
    for model in ("rnn_attn", "transformer"):
        default, small = compose_config([f"model={model}"]), compose_config([f"model={model}", *TRANSLATION])
        assert small.model == default.model and small.decode.beam_size == default.decode.beam_size
        for key in ("lr", "max_tokens", "warmup_steps", "schedule", "label_smoothing", "weight_decay"):
            assert small.trainer[key] == default.trainer[key]
    default, small = compose_config(["task=vision"]), compose_config(VISION)
    assert small.model == default.model and small.data.augment == default.data.augment
    assert small.trainer.epochs == default.trainer.epochs and small.trainer.lr == default.trainer.lr


class Crash(Exception):
    pass


@pytest.mark.parametrize("model", ["rnn_attn", pytest.param("transformer", marks=pytest.mark.slow)])
def test_default_translator_same_seed_twice_and_crash_then_resume(tmp_path, monkeypatch, model):
    overrides = [f"model={model}", *TRANSLATION]
    run(overrides, tmp_path / "a")
    original, calls = TranslationTrainable.loss, {"n": 0}

    def crash_at_step_3(self, batch):  # after the periodic checkpoint of step 2
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash
        return original(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(TranslationTrainable, "loss", crash_at_step_3)
        with pytest.raises(Crash):
            run(overrides, tmp_path / "b")
    assert not (tmp_path / "b" / "results.json").exists()
    run([*overrides, "resume=true"], tmp_path / "b")
    assert outcome(tmp_path / "b") == outcome(tmp_path / "a")
    assert json.loads((tmp_path / "b" / "results.json").read_text())["steps"] == 3


def attnlab_process(overrides: list[str], run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "attnlab", *overrides, f"hydra.run.dir={run_dir}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_default_vit_same_seed_twice_and_sigkill_then_resume(tmp_path):
    run(VISION, tmp_path / "a")  # in this process; the second run is a fresh process, killed and resumed
    killed = tmp_path / "killed"
    proc = attnlab_process(VISION, killed)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    err, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err[-500:]}"
    assert last.exists() and not (killed / "results.json").exists()

    resumed = attnlab_process([*VISION, "resume=true"], killed)
    err, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "resumed from" in err
    assert outcome(killed) == outcome(tmp_path / "a")
