"""Trainer features: gradient accumulation equals one large batch, validation every N steps,
averaging the last checkpoints, fp16 refused without CUDA, one progress bar in steps."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from attnlab.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from attnlab.errors import UserError
from test_train import ToyTask, fit, weights


class NoDropout(ToyTask):
    """The toy task without dropout (dropout masks depend on how a batch is split) and with a
    chosen batch size: randperm(60).split(4) pairs up into randperm(60).split(8)."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.batch_size = batch_size

    def train_batches(self, epoch, generator):
        return list(torch.randperm(60, generator=generator).split(self.batch_size))


def test_accumulating_two_half_batches_equals_one_batch(tmp_path):
    large, accumulated = NoDropout(8), NoDropout(4)
    state_large = fit(tmp_path / "a", large, epochs=2, weight_decay=0.01, clip_norm=0.5, warmup_steps=3)
    state_acc = fit(tmp_path / "b", accumulated, epochs=2, weight_decay=0.01, clip_norm=0.5, warmup_steps=3,
                    accum_steps=2)
    assert state_large.step == state_acc.step == 16  # 8 steps an epoch: 7 of 8 examples and one of 4
    assert torch.allclose(weights(large), weights(accumulated), atol=1e-6)
    assert not torch.allclose(weights(large), weights(NoDropout(8)))  # it trained
    # and the logged training losses agree
    def losses(folder):
        return [r["loss"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert losses(tmp_path / "a") == pytest.approx(losses(tmp_path / "b"), rel=1e-5)


def test_validate_every_steps_gives_curves_within_an_epoch(tmp_path):
    task = ToyTask()
    fit(tmp_path, task, epochs=2, validate_every_steps=3)
    valid = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6, 8, 9, 12, 15, 16]  # every 3 steps and at each epoch's end
    assert valid[0]["epoch"] == pytest.approx(3 / 8)


def test_averaging_the_last_checkpoints(tmp_path):
    task = ToyTask()
    fit(tmp_path, task, epochs=2, validate_every_steps=4, average_last=3)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert kept == ["step_00000008.pt", "step_00000012.pt", "step_00000016.pt"]
    averaged = load_checkpoint(tmp_path / "checkpoints" / "averaged.pt")
    assert averaged["averaged"] == kept
    states = [load_checkpoint(tmp_path / "checkpoints" / k)["model"] for k in kept]
    for name, tensor in averaged["model"].items():
        assert torch.allclose(tensor, sum(s[name] for s in states) / 3, atol=1e-7)
    assert not torch.equal(averaged["model"]["0.weight"], states[-1]["0.weight"])


def test_average_checkpoints_keeps_integer_buffers(tmp_path):
    paths = []
    for i, value in enumerate((1.0, 2.0, 6.0)):
        paths.append(tmp_path / f"{i}.pt")
        save_checkpoint(paths[-1], {"model": {"w": torch.full((2,), value), "count": torch.tensor(i)}})
    averaged = average_checkpoints(paths)["model"]
    assert torch.equal(averaged["w"], torch.full((2,), 3.0)) and int(averaged["count"]) == 2


def test_fp16_needs_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(UserError, match="precision=fp16 needs a CUDA GPU"):
        fit(tmp_path, ToyTask(), precision="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_trains_on_cuda(tmp_path, precision):
    from attnlab.config import Config  # noqa: F401 (the toy config comes from test_train)
    from test_train import make_cfg
    from attnlab.train import Trainer

    task = NoDropout(8)
    task.model.cuda()
    task.x, task.y = task.x.cuda(), task.y.cuda()
    cfg = make_cfg(epochs=3, precision=precision)
    state = Trainer(cfg, tmp_path, torch.device("cuda")).fit(task)
    assert state.best > 0.5
    if precision == "fp16":
        assert "scaler" in load_checkpoint(tmp_path / "checkpoints" / "last.pt")


def test_the_bar_counts_steps_and_shows_the_time_cap(tmp_path, capsys):
    fit(tmp_path, ToyTask(), epochs=2, progress=True, max_minutes=60.0)
    err = capsys.readouterr().err
    assert "/16" in err and "epoch 2/2" in err and "time 0:00/60:00" in err


def test_the_clock_of_a_step_without_progress(capsys):
    import time

    from attnlab import progress

    progress.enable(True)
    with progress.clock("tokenizer"):
        time.sleep(1.3)
    err = capsys.readouterr().err
    assert "tokenizer: 00:01" in err  # refreshed while the step ran
    progress.enable(False)
    with progress.clock("silent"):
        pass
    assert "silent" not in capsys.readouterr().err
    progress.enable(True)


def test_the_loss_scaling_path_changes_nothing_in_fp32(tmp_path, monkeypatch):
    """fp16's GradScaler path (scale, unscale before clipping, step, update, its state in last.pt),
    run on the CPU with a CPU scaler: scaling by a power of two and back is exact here."""
    from attnlab import train

    plain = NoDropout(8)
    fit(tmp_path / "plain", plain, epochs=2, clip_norm=0.5, accum_steps=1)
    monkeypatch.setattr(train, "make_scaler", lambda cfg, device: torch.amp.GradScaler("cpu", init_scale=2.0**10))
    scaled = NoDropout(4)
    fit(tmp_path / "scaled", scaled, epochs=2, clip_norm=0.5, accum_steps=2)
    assert torch.allclose(weights(plain), weights(scaled), atol=1e-6)
    assert load_checkpoint(tmp_path / "scaled" / "checkpoints" / "last.pt")["scaler"]["scale"] == 2.0**10
