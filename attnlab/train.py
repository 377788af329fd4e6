"""One training loop for every task.

A task hands the :class:`Trainer` a :class:`Trainable`: the model, its batches for an epoch, a loss
for a batch and a validation function. The trainer owns everything else: AdamW, the learning-rate
schedule, gradient clipping, validation each epoch, ``best.pt``/``last.pt`` checkpoints (atomic),
``resume=true``, a step budget and a wall-clock safety cap, a progress bar, ``metrics.jsonl``, a clean stop with a saved
checkpoint on Ctrl-C/SIGTERM, and a clear stop when the loss stops being a number.

Determinism: batches of epoch ``e`` come from a generator seeded with ``(seed, e)`` and the torch
RNG state (dropout, augmentation) is saved in checkpoints, so a run resumed from ``last.pt`` on
CPU continues exactly as an uninterrupted one would. The learning-rate schedule follows optimizer
steps only (``trainer.max_steps`` or ``trainer.epochs``), so the same command makes the same
updates on any machine; ``trainer.max_minutes`` is a safety cap that ends a run early, never
what shapes the schedule.

Under torchrun every process builds the same batches and trains on its share of each
(:mod:`attnlab.distributed`); DistributedDataParallel averages the gradients; every process
validates (same weights, same numbers, so every process takes the same decisions) and only
rank 0 writes metrics and checkpoints. ``trainer.precision=bf16`` runs the forward pass under
bfloat16 autocast (meant for GPUs), ``fp16`` under float16 autocast with loss scaling (CUDA).

Also: ``trainer.accum_steps`` sums the gradients of several batches into one step (equal to one
step on their union); ``trainer.validate_every_steps`` validates inside epochs too (curves for
short runs); ``trainer.average_last=N`` keeps the weights of the last N validations and tests
their average (``averaged.pt``). ``best.pt`` holds the weights (no optimizer state); ``last.pt``
holds everything resuming needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from tqdm import tqdm

from attnlab import distributed
from attnlab.checkpoint import average_checkpoints, load_checkpoint, load_state, save_checkpoint
from attnlab.config import TrainerConfig
from attnlab.errors import TrainingInterrupted, UserError
from attnlab.runlog import TIME_CAP_STOP, MetricsLog, TensorBoardLog

log = logging.getLogger("attnlab.train")


class Trainable(Protocol):
    """What a task gives the trainer."""

    model: nn.Module
    metric: str  # the validation metric that picks best.pt; higher is better (bleu, accuracy)
    unit: str  # what the throughput counts: "tok" or "img"

    def train_batches(self, epoch: int, generator: torch.Generator) -> Sequence[Any]:
        """This epoch's batches of example indices (lists or 1-D tensors), in order; they must
        depend only on the generator's state. Under torchrun each process gets a share."""

    def loss(self, batch: Any) -> tuple[Tensor, int]:
        """Mean training loss of a batch (through ``self.model``, which the trainer may wrap in
        DistributedDataParallel) and the number of units (tokens, images) in it."""

    def validate(self) -> dict[str, float]:
        """Validation metrics, including ``self.metric``."""

    def checkpoint_extra(self) -> dict[str, Any]:
        """What a checkpoint must carry besides weights (e.g. the tokenizer)."""


@dataclass
class TrainState:
    epoch: int = 0  # epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch already trained on
    step: int = 0  # optimizer steps so far
    elapsed: float = 0.0  # seconds spent training (validation excluded)
    best: float = -math.inf
    best_step: int = -1
    stale: int = 0  # validations since the last improvement
    finished: bool = False
    stop_reason: str = ""


def lr_factor(cfg: TrainerConfig, step: int, progress: float) -> float:
    """Multiplier of ``cfg.lr`` at ``step``; ``progress`` in [0, 1] is the share of the run done."""
    warmup = cfg.warmup_steps
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    progress = min(max(progress, 0.0), 1.0)
    schedule = str(cfg.schedule)
    if schedule == "constant":
        return ramp
    if schedule == "cosine":
        return ramp * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return ramp * (1.0 - progress)
    if schedule == "inverse_sqrt":  # Vaswani et al. 2017, eq. 3, normalised to peak at 1
        return ramp if step < warmup else math.sqrt(max(warmup, 1) / (step + 1))
    raise UserError(f"unknown trainer.schedule '{schedule}'; valid: constant, cosine, linear, inverse_sqrt")


def total_train_steps(cfg: TrainerConfig, batches_per_epoch: int) -> int:
    """The steps the schedule spans: ``max_steps`` when set, capped by ``epochs`` worth of batches."""
    by_epochs = cfg.epochs * batches_per_epoch
    return max(1, min(cfg.max_steps, by_epochs) if cfg.max_steps > 0 else by_epochs)


def steps_per_epoch(batches: int, accum_steps: int) -> int:
    """Optimizer steps in an epoch of ``batches`` batches, ``accum_steps`` batches a step."""
    return -(-batches // max(1, accum_steps))


# autocast dtype of each trainer.precision (fp32: no autocast)
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
AVERAGED = "averaged.pt"


def make_scaler(cfg: TrainerConfig, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (Micikevicius et al. 2018): float16 gradients underflow without it.
    A disabled scaler (fp32, bf16) passes everything through unchanged."""
    fp16 = str(cfg.precision) == "fp16"
    if fp16 and device.type != "cuda":
        raise UserError(f"trainer.precision=fp16 needs a CUDA GPU (device is {device.type}); use bf16 or fp32")
    return torch.amp.GradScaler("cuda", enabled=fp16)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


NO_DECAY = ("bias", "cls_token", "table")  # parameter names that are not weight matrices


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters that modules declare through a ``no_weight_decay()`` hook
    (attention scores and positions do, as timm's models)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        hook = getattr(module, "no_weight_decay", None)
        if callable(hook):
            names |= {f"{prefix}.{n}" if prefix else n for n in hook()}
    return names


def make_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019); weight matrices decay; biases, norms, the CLS token,
    positional tables, the parameters modules declare in ``no_weight_decay()`` and other vectors
    don't."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    declared = no_weight_decay_names(model)
    keep = [p.dim() < 2 or name.endswith(NO_DECAY) or name in declared for name, p in params]
    decay = [p for (_, p), k in zip(params, keep) if not k]
    rest = [p for (_, p), k in zip(params, keep) if k]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)


def compile_for_training(model: nn.Module) -> None:
    """``trainer.compile=true``: the model's own ``compile_for_training()`` when it has one (the
    RNN compiles its loop body, not the whole loop), else ``torch.compile`` of its forward, in
    place (``nn.Module.compile``), so parameter names and checkpoints stay the same."""
    hook = getattr(model, "compile_for_training", None)
    if hook is not None:
        hook()
    else:
        model.compile(dynamic=True)


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag that the loop checks between steps."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopSignal":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Trainer:
    """Trains a :class:`Trainable`; see the module docstring."""

    def __init__(self, cfg: DictConfig, run_dir: Path, device: torch.device) -> None:
        self.full_cfg = cfg
        self.cfg: TrainerConfig = cfg.trainer
        self.run_dir = run_dir
        self.device = device
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics = MetricsLog(run_dir / "metrics.jsonl")
        tensorboard = str(cfg.get("logger", "none")) == "tensorboard" and distributed.is_main()
        self.tensorboard = TensorBoardLog(run_dir / "tensorboard") if tensorboard else None
        self.state = TrainState()

    # ------------------------------------------------------------------ checkpoints
    def _save(self, name: str, task: Trainable, optimizer: torch.optim.Optimizer | None) -> Path:
        """Write ``checkpoints/<name>``; without ``optimizer`` (best.pt) the file holds what using
        the model needs, with it (last.pt) also what resuming needs."""
        path = self.ckpt_dir / name
        if not distributed.is_main():
            return path
        payload = {
            "model": self.module.state_dict(),
            "trainer": dataclasses.asdict(self.state),
            "config": OmegaConf.to_container(self.full_cfg, resolve=True, enum_to_str=True),
            "extra": task.checkpoint_extra(),
        }
        if optimizer is not None:
            payload.update(optimizer=optimizer.state_dict(), rng={"torch": torch.get_rng_state()})
            if self.scaler.is_enabled():
                payload["scaler"] = self.scaler.state_dict()
        save_checkpoint(path, payload)
        return path

    def _resume(self, task: Trainable, optimizer: torch.optim.Optimizer) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise UserError(
                f"resume=true but {path} does not exist; pass hydra.run.dir=<the run folder to continue>"
            )
        payload = load_checkpoint(path)
        load_state(task.model, payload["model"], path)
        optimizer.load_state_dict(payload["optimizer"])
        if "scaler" in payload and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainState(**payload["trainer"])
        torch.set_rng_state(payload["rng"]["torch"])
        log.info("resumed from %s at epoch %d, step %d", path, self.state.epoch + 1, self.state.step)

    # ------------------------------------------------------------------ loop
    def fit(self, task: Trainable) -> TrainState:
        cfg, st = self.cfg, self.state
        self.module = task.model
        if cfg.compile:
            compile_for_training(self.module)
        optimizer = make_optimizer(self.module, cfg)
        self.scaler = make_scaler(cfg, self.device)
        if self.full_cfg.resume:
            self._resume(task, optimizer)
            st = self.state
        if distributed.world_size() > 1:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped: nn.Module = DistributedDataParallel(self.module, device_ids=device_ids)
        else:
            self.wrapped = self.module
        if st.finished:
            log.info("training already finished (%s); going on to evaluation", st.stop_reason)
            return st
        budget = cfg.max_minutes * 60.0
        self.bar: tqdm | None = None
        with _StopSignal() as stop:
            while st.epoch < cfg.epochs and not st.finished:
                generator = torch.Generator().manual_seed(self.full_cfg.seed * 100_003 + st.epoch)
                batches = task.train_batches(st.epoch, generator)
                total_steps = total_train_steps(cfg, steps_per_epoch(len(batches), cfg.accum_steps))
                self._open_bar(total_steps)
                self._train_epoch(task, optimizer, batches, total_steps, budget, stop)
                if stop.received:
                    path = self._save("last.pt", task, optimizer)
                    raise TrainingInterrupted(
                        f"{stop.received} at step {st.step}: saved {path}; continue with resume=true "
                        f"hydra.run.dir={self.run_dir}"
                    )
                out_of_time = budget > 0 and st.elapsed >= budget
                out_of_steps = cfg.max_steps > 0 and st.step >= cfg.max_steps
                epochs_done = st.epoch + st.batch_in_epoch / len(batches)
                if st.batch_in_epoch >= len(batches):
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                self._validate(task, optimizer, epochs_done)
                if out_of_steps:
                    st.finished, st.stop_reason = True, f"{cfg.max_steps} steps done"
                elif out_of_time:
                    st.finished, st.stop_reason = True, f"{TIME_CAP_STOP} of {cfg.max_minutes} min reached"
                elif cfg.patience and st.stale >= cfg.patience:
                    st.finished, st.stop_reason = True, f"no improvement in {cfg.patience} validations"
                elif st.epoch >= cfg.epochs:
                    st.finished, st.stop_reason = True, f"{cfg.epochs} epochs done"
                self._save("last.pt", task, optimizer)
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if cfg.average_last > 0:
            self._save_average()
        distributed.barrier()
        log.info("training finished: %s (best %s %.4g at step %d)", st.stop_reason, task.metric, st.best, st.best_step)
        return st

    def _open_bar(self, total_steps: int) -> None:
        """One bar for the whole run, in optimizer steps (created once the step count is known)."""
        if self.bar is None:
            self.bar = tqdm(
                total=total_steps, initial=self.state.step, desc="train", unit="step",
                disable=not self.cfg.progress or not distributed.is_main(),
                file=sys.stderr, dynamic_ncols=True, leave=False,
            )

    def _bar_text(self, loss: float, rate: float, unit: str, lr: float, budget: float) -> str:
        """Epoch, loss, throughput, learning rate, and the training time against the cap if any."""
        text = f"epoch {self.state.epoch + 1}/{self.cfg.epochs} loss {loss:.3f} {rate:,.0f} {unit}/s lr {lr:.2e}"
        if budget > 0:
            text += f" time {_clock(self.state.elapsed)}/{_clock(budget)}"
        return text

    def _train_epoch(self, task, optimizer, batches, total_steps, budget, stop) -> None:
        """Optimizer steps over this epoch's batches, from ``state.batch_in_epoch``: each step sums
        the gradients of ``accum_steps`` batches, weighted by their units (tokens, images), so that
        it equals one step on their union (tested). Returns at the end of the epoch, at a
        validation point (``validate_every_steps``), at the step budget, the time cap or a signal."""
        cfg, st = self.cfg, self.state
        task.model = self.wrapped  # the training steps go through DDP when distributed
        task.model.train()
        dtype = AUTOCAST.get(str(cfg.precision))
        window_loss, window_units, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
        world = distributed.world_size()
        while st.batch_in_epoch < len(batches):
            taken = batches[st.batch_in_epoch : st.batch_in_epoch + max(1, cfg.accum_steps)]
            group = [b for b in taken if len(b) >= world]  # a batch too small to share is skipped by all
            if not group:
                st.batch_in_epoch += len(taken)
                continue
            start = time.perf_counter()
            lr = cfg.lr * lr_factor(cfg, st.step, st.step / total_steps)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_units = 0.0, 0
            for i, batch in enumerate(group):
                last = i == len(group) - 1
                sync = contextlib.nullcontext() if last or world == 1 else self.wrapped.no_sync()
                with sync:
                    with torch.autocast(device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        loss, units = task.loss(distributed.shard(batch))
                    value = loss.item()  # the one read of the loss from the device this batch
                    self._check_finite(value)
                    # one batch: its mean loss; several: sum(units_i * mean_i), divided by sum(units) below
                    self.scaler.scale(loss if len(group) == 1 else loss * units).backward()
                step_loss += value * units
                step_units += units
            if len(group) > 1:
                for p in self.module.parameters():
                    if p.grad is not None:
                        p.grad.div_(max(step_units, 1))
            if cfg.clip_norm > 0:
                self.scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
                nn.utils.clip_grad_norm_(self.module.parameters(), cfg.clip_norm)
            self.scaler.step(optimizer)
            self.scaler.update()
            st.step += 1
            st.batch_in_epoch += len(taken)
            st.elapsed += time.perf_counter() - start
            window_loss += value if len(group) == 1 else step_loss / max(step_units, 1)
            window_units += step_units
            window_steps += 1
            if self.bar is not None:
                self.bar.update(1)
            if st.step % cfg.log_every_steps == 0 or st.batch_in_epoch >= len(batches):
                seconds = time.perf_counter() - window_start
                rate = window_units / max(seconds, 1e-9)
                avg = window_loss / window_steps
                if self.bar is not None:
                    self.bar.set_postfix_str(self._bar_text(avg, rate, task.unit, lr, budget))
                self._log(
                    kind="train", epoch=st.epoch + 1, step=st.step, loss=avg, lr=lr,
                    **{f"{task.unit}_per_s": rate}, elapsed=st.elapsed,
                )
                window_loss, window_units, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
            if cfg.checkpoint_every_steps and st.step % cfg.checkpoint_every_steps == 0:
                self._save("last.pt", task, optimizer)
            st.elapsed, signalled = distributed.sync_from_main(st.elapsed, float(bool(stop.received)))
            if signalled:
                stop.received = stop.received or "SIGTERM"  # rank 0 was signalled: all stop
                break
            if budget > 0 and st.elapsed >= budget:
                break
            if cfg.max_steps and st.step >= cfg.max_steps:
                break
            if cfg.validate_every_steps and st.step % cfg.validate_every_steps == 0:
                break  # fit() validates, then continues this epoch where it stopped
        task.model = self.module

    def _check_finite(self, loss: float) -> None:
        if not math.isfinite(loss):
            last = self.ckpt_dir / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
            raise UserError(
                f"training diverged: loss is {loss} at step {self.state.step}; {kept}; "
                "lower trainer.lr or raise trainer.warmup_steps"
            )

    def _save_average(self) -> None:
        """``averaged.pt``: the mean of the weights kept at the last ``average_last`` validations."""
        if not distributed.is_main():
            return
        paths = sorted(self.ckpt_dir.glob("step_*.pt"))
        if paths:
            payload = average_checkpoints(paths)
            save_checkpoint(self.ckpt_dir / AVERAGED, {**payload, "averaged": [p.name for p in paths]})
            log.info("averaged the weights of %s into %s", ", ".join(p.name for p in paths), AVERAGED)

    def _log(self, **record: Any) -> None:
        if distributed.is_main():
            self.metrics.write(**record)
        if self.tensorboard is not None:
            self.tensorboard.write(**record)

    def _validate(self, task: Trainable, optimizer: torch.optim.Optimizer, epochs_done: float) -> None:
        st = self.state
        task.model.eval()
        with torch.no_grad():
            metrics = task.validate()
            drawn = getattr(task, "attention_image", None) if self.tensorboard is not None else None
            attention = drawn() if drawn is not None else None  # (rows, columns) or None
        task.model.train()
        if attention is not None and self.tensorboard is not None:
            self.tensorboard.attention(attention, st.step)
        score = metrics[task.metric]
        improved = score > st.best
        if improved:
            st.best, st.best_step, st.stale = score, st.step, 0
        else:
            st.stale += 1
        self._log(kind="valid", epoch=round(epochs_done, 4), step=st.step, elapsed=st.elapsed, **metrics)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        log.info("validation after step %d: %s%s", st.step, shown, " (best)" if improved else "")
        if improved:
            self._save("best.pt", task, None)  # weights only: resuming uses last.pt
        if self.cfg.average_last > 0 and distributed.is_main():
            self._save(f"step_{st.step:08d}.pt", task, None)
            for old in sorted(self.ckpt_dir.glob("step_*.pt"))[: -self.cfg.average_last]:
                old.unlink()


def load_best_weights(model: nn.Module, run_dir: Path) -> Path:
    """Load the weights a finished run is tested with: ``checkpoints/averaged.pt`` when the run
    averaged (``trainer.average_last``), else ``best.pt`` (or ``last.pt``)."""
    for name in (AVERAGED, "best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            load_state(model, load_checkpoint(path)["model"], path)
            return path
    raise UserError(f"no checkpoint in {run_dir / 'checkpoints'}; train first")
