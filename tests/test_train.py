"""The shared training loop: schedules, checkpoints, resume equals an uninterrupted run, stops."""

import json
import os
import signal

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from attnlab.checkpoint import load_checkpoint
from attnlab.config import Config
from attnlab.errors import TrainingInterrupted, UserError
from attnlab.train import Trainer, lr_factor


class Crash(Exception):
    pass


class ToyTask:
    """A small classifier with dropout, so resuming must restore the RNG to match exactly."""

    metric, unit = "accuracy", "img"

    def __init__(self, crash_at: int | None = None, sigterm_at: int | None = None, nan_at: int | None = None):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(60, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0.5).long()
        self.calls, self.crash_at, self.sigterm_at, self.nan_at = 0, crash_at, sigterm_at, nan_at

    def train_batches(self, epoch, generator):
        return list(torch.randperm(60, generator=generator).split(8))  # 8 batches per epoch

    def loss(self, batch):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash
        if self.calls == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
        loss = nn.functional.cross_entropy(self.model(self.x[batch]), self.y[batch])
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return loss, len(batch)

    def validate(self):
        return {"accuracy": (self.model(self.x).argmax(-1) == self.y).float().mean().item(), "loss": 0.0}

    def checkpoint_extra(self):
        return {"note": "toy"}


def make_cfg(**trainer):
    cfg = OmegaConf.structured(Config)
    cfg.model = {"name": "toy"}
    cfg.data = {"name": "toy"}
    cfg.task.name = "toy"
    cfg.trainer.merge_with({"epochs": 3, "lr": 0.05, "progress": False, "checkpoint_every_steps": 2,
                            "log_every_steps": 1, **trainer})
    return cfg


def fit(tmp_path, task, resume=False, **trainer):
    cfg = make_cfg(**trainer)
    cfg.resume = resume
    return Trainer(cfg, tmp_path, torch.device("cpu")).fit(task)


def weights(task):
    return torch.cat([p.detach().flatten() for p in task.model.parameters()])


def test_schedules():
    cfg = make_cfg(warmup_steps=10).trainer
    assert lr_factor(cfg, 0, 0.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 50, 0.5) == pytest.approx(0.5)  # cosine, half way
    assert lr_factor(cfg, 99, 1.0) == pytest.approx(0.0)
    cfg.schedule = "inverse_sqrt"
    assert lr_factor(cfg, 39, 0.4) == pytest.approx(0.5)


def test_writes_checkpoints_and_metrics(tmp_path):
    task = ToyTask()
    state = fit(tmp_path, task)
    assert state.finished and state.step == 24 and state.epoch == 3
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"best.pt", "last.pt"}
    payload = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert payload["extra"] == {"note": "toy"} and payload["config"]["trainer"]["epochs"] == 3
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["kind"] == "valid"] == [1, 2, 3]
    assert sum(r["kind"] == "train" for r in lines) == 24
    assert state.best > 0.5  # it learned something


def test_resume_after_crash_mid_epoch_equals_uninterrupted(tmp_path):
    reference = ToyTask()
    fit(tmp_path / "a", reference)
    crashed = ToyTask(crash_at=12)  # in epoch 2; last periodic checkpoint at step 10
    with pytest.raises(Crash):
        fit(tmp_path / "b", crashed)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["trainer"]["step"] == 10
    resumed = ToyTask()
    state = fit(tmp_path / "b", resumed, resume=True)
    assert state.step == 24
    assert torch.equal(weights(resumed), weights(reference))


def test_sigterm_saves_and_resume_matches(tmp_path):
    reference = ToyTask()
    fit(tmp_path / "a", reference)
    with pytest.raises(TrainingInterrupted, match="resume=true"):
        fit(tmp_path / "b", ToyTask(sigterm_at=13))
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["trainer"]["step"] == 13
    resumed = ToyTask()
    fit(tmp_path / "b", resumed, resume=True)
    assert torch.equal(weights(resumed), weights(reference))


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path):
    with pytest.raises(UserError, match="diverged.*lower trainer.lr"):
        fit(tmp_path, ToyTask(nan_at=7))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["step"] == 6


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="resume=true but .* does not exist"):
        fit(tmp_path, ToyTask(), resume=True)


def test_time_cap_stops_training(tmp_path):
    state = fit(tmp_path, ToyTask(), max_minutes=1e-9, epochs=50)
    assert state.finished and "time cap" in state.stop_reason and state.step < 50 * 8


def test_max_steps_ends_mid_epoch_and_the_schedule_spans_it(tmp_path):
    state = fit(tmp_path, ToyTask(), max_steps=13, epochs=50)
    assert state.finished and state.step == 13 and "13 steps" in state.stop_reason
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in lines if r["kind"] == "train"]
    assert len(lrs) == 13 and lrs[0] == pytest.approx(0.05) and lrs[-1] < 0.05 * 0.02  # cosine to ~0 at step 13
    assert [r["step"] for r in lines if r["kind"] == "valid"][-1] == 13  # validated at the end


def test_the_clock_does_not_shape_the_schedule(tmp_path, monkeypatch):
    """A slow machine (every step 'takes' 100 s) makes exactly the same updates as a fast one."""
    import attnlab.train as train_module

    reference = ToyTask()
    fit(tmp_path / "a", reference, max_steps=20, max_minutes=600)
    clock = iter(range(0, 10**9, 100))
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: float(next(clock)))
    slow = ToyTask()
    fit(tmp_path / "b", slow, max_steps=20, max_minutes=600)
    assert torch.equal(weights(slow), weights(reference))


def test_weight_decay_spares_biases_tokens_tables_and_vectors():
    from attnlab.train import make_optimizer

    class WithExtras(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.norm = nn.LayerNorm(3)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 3))
            self.posenc = nn.Module()
            self.posenc.table = nn.Parameter(torch.zeros(4, 3))

    model = WithExtras()
    decay, rest = make_optimizer(model, make_cfg().trainer).param_groups
    assert [p is model.lin.weight for p in decay["params"]] == [True] and decay["weight_decay"] > 0
    assert len(rest["params"]) == 5 and rest["weight_decay"] == 0.0
