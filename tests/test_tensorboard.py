"""logger=tensorboard: the scalars of metrics.jsonl and an attention image at each validation."""

from __future__ import annotations

import json

import pytest

from attnlab import api

pytest.importorskip("tensorboard")

TINY_VISION = ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=2",
               "trainer.progress=false", "trainer.num_threads=1", "viz.enabled=false", "data.max_train=64"]


def test_tensorboard_event_file_mirrors_metrics_jsonl(tmp_path, one_thread):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    api.run([*TINY_VISION, "logger=tensorboard", "trainer.log_every_steps=1"], run_dir)
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    logged = {(e.step, round(e.value, 5)) for e in acc.Scalars("valid/accuracy")}
    assert logged == {(r["step"], round(r["accuracy"], 5)) for r in valid} and len(valid) == 2
    assert len(acc.Scalars("train/loss")) == sum(r["kind"] == "train" for r in records)
    images = acc.Images("attention/valid_0")
    assert [i.step for i in images] == [r["step"] for r in valid] and images[0].width >= 8
