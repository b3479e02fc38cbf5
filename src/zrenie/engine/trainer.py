"""The task-agnostic training loop.

The trainer sees a model, a `step` object and two loaders. It never knows which task it runs:
`step.train_step(model, batch)` and `step.eval_step(model, batch)` return
`{"loss": Tensor, "outputs": ..., "logs": {name: float}}`, and `step.new_metric()` returns an
accumulator whose `state` is a dict of tensors that sum across processes, and whose `compute()`
turns the summed state into `{name: float}`.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from zrenie.config import TrainConfig, to_dict
from zrenie.engine import distributed as dist
from zrenie.engine.checkpoint import save_checkpoint
from zrenie.engine.ema import ModelEma
from zrenie.engine.logging import EpochProgress, RunLogger, Throughput, console
from zrenie.engine.optim import build_optimizer, build_scheduler
from zrenie.engine.rng import get_rng_state, set_rng_state
from zrenie.errors import ZrenieError


@contextmanager
def _deferred_sigint():
    """Holds Ctrl-C until the block ends; yields a function that tells whether it was pressed."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signal handlers can only be set from the main thread
        return
    received: list[bool] = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


class NonFiniteLossError(ZrenieError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(ZrenieError):
    """Ctrl-C: a checkpoint was saved and the run can be resumed."""


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the device supports it, else fp16 on CUDA; none on CPU by default."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def batch_size_of(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    if isinstance(first, dict):
        first = next(iter(first.values()))
    return len(first)


class Trainer:
    """Runs epochs of `step` over loaders, with AMP, EMA, gradient clipping, DDP and checkpoints.

    Args:
        model: the bare model (not yet wrapped in DDP or compiled).
        step: object with `train_step`, `eval_step` and `new_metric`.
        train_loader, val_loader: iterables of batches already on `device`, with `set_epoch(e)`;
            the train loader may offer `skip(n)` to resume mid-epoch.
        cfg: the resolved run config.
        run_dir: where checkpoints and logs go (only the main process writes).
        checkpoint_extra: plain data stored in every checkpoint (task, model name, data meta).
        callbacks: called after every optimizer step with `{"epoch", "batch", "loss"}`.
        lr_mult_of: parameter name -> learning-rate multiplier (discriminative learning rates).

    A step may also define `on_epoch_start(model, epoch)` (e.g. to unfreeze layers); it is called
    before each training epoch, also on resume, so it must depend only on the epoch number.
    """

    def __init__(self, model: nn.Module, step: Any, train_loader: Iterable, val_loader: Iterable,
                 cfg: TrainConfig, run_dir: Path, device: torch.device, checkpoint_extra: dict | None = None,
                 callbacks: list[Callable[[dict], None]] | None = None,
                 lr_mult_of: Callable[[str], float] | None = None):
        self.model, self.step, self.cfg, self.device = model, step, cfg, device
        self.train_loader, self.val_loader = train_loader, val_loader
        self.run_dir = Path(run_dir)
        self.extra = checkpoint_extra or {}
        self.callbacks = callbacks or []
        self.optimizer = build_optimizer(model, cfg.optim, lr_mult_of)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.epochs, len(train_loader))
        self.amp_dtype = resolve_amp(cfg.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEma(model, cfg.ema) if cfg.ema > 0 else None
        self.train_model = self._wrap(model)
        self.epoch, self.batch, self.partial = 0, 0, {}
        self.best = None
        self.main = dist.is_main()
        self.logger = RunLogger(self.run_dir if self.main else None, cfg.tensorboard and self.main,
                                resume=cfg.resume is not None)
        self.progress = EpochProgress(cfg.progress and self.main)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if dist.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.cfg.compile:
            model = torch.compile(model)
        return model

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.shadow if self.ema is not None else self.model

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {
            **self.extra,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "partial": self.partial,
            "best": self.best,
            "rng": get_rng_state(),
            "config": to_dict(self.cfg),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restores everything `state_dict` saved; the model weights are loaded by the caller."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.partial = dict(state.get("partial") or {})
        self.best = state.get("best")
        set_rng_state(state["rng"])

    def save(self, name: str) -> None:
        if self.main:
            save_checkpoint(self.state_dict(), self.run_dir / name)

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Trains from the current epoch to `cfg.epochs`; returns the last validation metrics.

        Ctrl-C during training or validation saves last.pt at the current batch; during the
        end-of-epoch bookkeeping (checkpoints, metrics.csv) it is held until that is written, so a
        run is never left with a checkpoint and a log that disagree.
        """
        metrics: dict[str, float] = {}
        while self.epoch < self.cfg.epochs:
            started = time.perf_counter()
            try:
                train_logs = self.train_epoch()
                metrics = {f"val/{k}": v for k, v in self.evaluate(self.val_loader).items()}
            except KeyboardInterrupt:
                self.progress.stop()
                self.save("last.pt")
                self._raise_interrupted()
            with _deferred_sigint() as interrupted:
                self._end_epoch(train_logs, metrics, time.perf_counter() - started)
            if interrupted():
                self._raise_interrupted()
        return metrics

    def _end_epoch(self, train_logs: dict[str, float], metrics: dict[str, float], seconds: float) -> None:
        self.epoch, self.batch, self.partial = self.epoch + 1, 0, {}
        row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "time": seconds,
               **train_logs, **metrics}
        improved = self._is_improvement(metrics.get(self.cfg.monitor))
        if improved:
            self.best = metrics[self.cfg.monitor]
        self.save("last.pt")
        if improved:
            self.save("best.pt")
        self.logger.log_epoch(row)
        self.logger.log_weights(self.model, self.epoch)
        self._print_epoch(row)

    def _raise_interrupted(self) -> None:
        dist.barrier()
        where = f"epoch {self.epoch + 1}, batch {self.batch}" if self.batch else f"the end of epoch {self.epoch}"
        raise TrainingInterrupted(f"interrupted at {where}; saved {self.run_dir / 'last.pt'}; "
                                  f"continue with resume={self.run_dir}") from None

    def _is_improvement(self, value: float | None) -> bool:
        if value is None:
            return self.best is None
        if self.best is None:
            return True
        return value > self.best if self.cfg.monitor_mode == "max" else value < self.best

    def train_epoch(self) -> dict[str, float]:
        model, loader = self.train_model, self.train_loader
        if hasattr(self.step, "on_epoch_start"):
            self.step.on_epoch_start(self.model, self.epoch)
        model.train()
        loader.set_epoch(self.epoch)
        if self.batch and hasattr(loader, "skip"):
            loader.skip(self.batch)
        sums = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in self.partial.items()}
        meter = Throughput()
        self.progress.start(f"epoch {self.epoch + 1}/{self.cfg.epochs}", len(loader) - self.batch)
        for batch in loader:
            out = self._optimizer_step(batch)
            n = batch_size_of(batch)
            loss = out["loss"].item()
            if not math.isfinite(loss):
                self.progress.stop()
                raise NonFiniteLossError(
                    f"loss became {loss} at epoch {self.epoch + 1}, batch {self.batch}; stopped, last good "
                    f"checkpoint kept at {self.run_dir / 'last.pt'} (try a lower optim.lr or optim.grad_clip)")
            for key, value in {"loss": loss, **out.get("logs", {})}.items():
                sums.setdefault(key, torch.tensor(0.0, dtype=torch.float64)).add_(float(value) * n)
            sums.setdefault("count", torch.tensor(0.0, dtype=torch.float64)).add_(n)
            self.batch += 1
            self.partial = {k: v.item() for k, v in sums.items()}
            if self.batch == 1 and self.epoch == 0:
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                self.logger.log_images("train/batch", inputs, 0)
                self.logger.log_graph(self.model, inputs)
            self.progress.update(1, f"loss {loss:.4f}  {meter.add(n * dist.world_size()):.0f} img/s")
            for callback in self.callbacks:
                callback({"epoch": self.epoch, "batch": self.batch, "loss": loss})
        self.progress.stop()
        sums = dist.all_reduce_sum(sums)
        count = max(1.0, sums.pop("count").item())
        logs = {f"train/{k}": v.item() / count for k, v in sums.items()}
        logs["images_per_s"] = meter.count / max(1e-9, time.perf_counter() - meter.start)
        return logs

    def _optimizer_step(self, batch: Any) -> dict:
        with self.autocast():
            out = self.step.train_step(self.train_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return out

    @torch.no_grad()
    def evaluate(self, loader: Iterable, model: nn.Module | None = None) -> dict[str, float]:
        """Runs `eval_step` over a loader (each process its own shard) and reduces the metric."""
        model = model or self.eval_model
        was_training = model.training
        model.eval()
        dist.broadcast_buffers(model)
        metric = self.step.new_metric()
        for batch in loader:
            with self.autocast():
                out = self.step.eval_step(model, batch)
            metric.update(out, batch)
        dist.all_reduce_sum(metric.state)
        model.train(was_training)
        return metric.compute()

    def _print_epoch(self, row: dict[str, Any]) -> None:
        if not self.main:
            return
        shown = [f"{k} {v:.4f}" for k, v in row.items()
                 if k not in ("epoch", "lr", "time", "images_per_s") and isinstance(v, float)]
        console.print(f"epoch {row['epoch']}/{self.cfg.epochs}  " + "  ".join(shown)
                      + f"  {row['images_per_s']:.0f} img/s  {row['time']:.1f}s", highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.logger.close()
