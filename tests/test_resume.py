"""Interrupt and resume through the real tasks: a run stopped in the middle of an epoch (SIGTERM,
or a hard crash after a periodic checkpoint) and resumed with resume=true ends with the same
results as an uninterrupted run with the same seed (CPU)."""

import json
import os
import signal

import pytest

from attnlab.api import run
from attnlab.errors import TrainingInterrupted
from attnlab.tasks.translation import TranslationTrainable
from attnlab.tasks.vision import ImageClassification

VISION = ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=2",
          "trainer.batch_size=64", "data.max_train=256", "trainer.progress=false", "trainer.num_threads=1",
          "trainer.max_minutes=0", "viz.enabled=false", "trainer.checkpoint_every_steps=2"]
TEXT = ["data.max_train_pairs=300", "data.max_eval_sentences=10", "data.vocab_size=300", "model.emb_dim=16",
        "model.hidden_dim=16", "model.attn_dim=16", "trainer.epochs=2", "trainer.max_minutes=0",
        "trainer.max_tokens=600", "trainer.progress=false", "trainer.num_threads=1", "viz.enabled=false",
        "decode.valid_sentences=10", "model.dropout=0.3", "trainer.checkpoint_every_steps=2"]


class Crash(Exception):
    pass


def interrupt_at(monkeypatch, cls, call: int, how: str) -> None:
    original, calls = cls.loss, {"n": 0}

    def loss(self, batch):
        calls["n"] += 1
        if calls["n"] == call:
            if how == "crash":
                raise Crash  # as a hard kill: only the last periodic checkpoint survives
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(cls, loss.__name__, loss)


def metrics_of(results: dict) -> dict:
    drop = {"train_seconds", "wall_seconds", "peak_rss_mb", "eval_seconds", "decode_seconds", "torch_threads"}
    return {k: v for k, v in results.items() if k not in drop and "seconds" not in k}


@pytest.mark.parametrize("how", ["sigterm", "crash"])
def test_vision_resume_matches_uninterrupted(tmp_path, monkeypatch, how):
    reference = run(VISION, tmp_path / "a")
    with monkeypatch.context() as patch:
        interrupt_at(patch, ImageClassification, 3, how)  # epoch 1 has 4 batches: mid-epoch
        with pytest.raises(TrainingInterrupted if how == "sigterm" else Crash):
            run(VISION, tmp_path / "b")
    resumed = run([*VISION, "resume=true"], tmp_path / "b")
    assert metrics_of(resumed) == metrics_of(reference)
    assert metrics_of(json.loads((tmp_path / "b" / "results.json").read_text())) == metrics_of(reference)


def test_translation_resume_after_crash_matches_uninterrupted(tmp_path, monkeypatch):
    reference = run(TEXT, tmp_path / "a")
    with monkeypatch.context() as patch:
        interrupt_at(patch, TranslationTrainable, 5, "crash")
        with pytest.raises(Crash):
            run(TEXT, tmp_path / "b")
    resumed = run([*TEXT, "resume=true"], tmp_path / "b")
    assert resumed["bleu"] == reference["bleu"] and resumed["chrf"] == reference["chrf"]
    assert (tmp_path / "a" / "hypotheses.txt").read_text() == (tmp_path / "b" / "hypotheses.txt").read_text()
