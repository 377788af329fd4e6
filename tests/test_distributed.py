"""Two CPU processes (gloo) with DistributedDataParallel take the same steps as one process on
the same global batch."""

import json
import os
import subprocess
import sys
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from attnlab import distributed
from attnlab.train import Trainer
from test_train import make_cfg


class LinearTask:
    """No dropout: the only difference between 1 and 2 processes is how the batch is split."""

    metric, unit = "accuracy", "img"

    def __init__(self, odd_batch: bool = False):
        self.odd_batch = odd_batch
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0.5).long()

    def train_batches(self, epoch, generator):
        order = torch.randperm(64, generator=generator)
        if self.odd_batch:  # a last batch of one example: too small to share between 2 processes
            return list(order[:49].split(16))
        return list(order.split(16))

    def loss(self, batch):
        return nn.functional.cross_entropy(self.model(self.x[batch]), self.y[batch]), len(batch)

    def validate(self):
        return {"accuracy": (self.model(self.x).argmax(-1) == self.y).float().mean().item()}

    def checkpoint_extra(self):
        return {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, run_dir: str, out: str, odd: bool = False) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    distributed.init(torch.device("cpu"))
    task = LinearTask(odd_batch=odd)
    # odd: a wall-clock budget (each process has its own clock; rank 0's decides) and a batch of one
    extra = {"max_minutes": 0.002, "epochs": 400} if odd else {}
    Trainer(make_cfg(**{"epochs": 2, "clip_norm": 0.0, **extra}), __import__("pathlib").Path(run_dir),
            torch.device("cpu")).fit(task)
    torch.save([p.detach().clone() for p in task.model.parameters()], f"{out}.{rank}")
    dist.destroy_process_group()


def test_time_budget_and_tiny_batches_keep_processes_in_step(tmp_path):
    out = str(tmp_path / "params")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "run"), out, True), nprocs=2, join=True)
    for a, b in zip(torch.load(f"{out}.0"), torch.load(f"{out}.1")):
        assert torch.equal(a, b)  # same learning rates, same steps, same stop


def test_two_processes_match_one_on_the_same_global_batch(tmp_path):
    single = LinearTask()
    Trainer(make_cfg(epochs=2, clip_norm=0.0), tmp_path / "one", torch.device("cpu")).fit(single)
    out = str(tmp_path / "params")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "two"), out), nprocs=2, join=True)
    rank0, rank1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    for a, b in zip(rank0, rank1):
        assert torch.equal(a, b)  # the replicas stay in sync
    for a, b in zip(rank0, single.model.parameters()):
        assert torch.allclose(a, b.detach(), atol=1e-5)
    # only rank 0 wrote checkpoints and metrics
    assert (tmp_path / "two" / "checkpoints" / "last.pt").is_file()
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum('"valid"' in line for line in lines) == 2


TORCHRUN_CASES = {
    "vision": ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=2",
               "data.max_train=256", "viz.enabled=false"],
    "translation": ["data.max_train_pairs=400", "data.max_eval_sentences=12", "data.vocab_size=400",
                    "model.emb_dim=16", "model.hidden_dim=32", "model.attn_dim=16", "trainer.epochs=1",
                    "trainer.max_minutes=0", "decode.valid_sentences=8", "viz.num_examples=1"],
}


@pytest.mark.parametrize("task", [
    "vision", pytest.param("translation", marks=pytest.mark.slow),
])
def test_torchrun_two_cpu_processes_end_to_end(tmp_path, task):
    """``torchrun --nproc_per_node=2 -m attnlab ...``: one run folder, written by rank 0."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "attnlab",
           *TORCHRUN_CASES[task], "trainer.progress=false", "trainer.num_threads=1", f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["world_size"] == 2 and results["task"] == task
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert (out.stdout + out.stderr).count("training finished") == 1  # only rank 0 logs
