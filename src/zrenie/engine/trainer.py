"""The task-agnostic training loop.

The trainer sees named models, a `step` object and two loaders. It never knows which task it runs:
`step.train_step(models, batch, ctx)` returns `{"loss", "outputs", "logs"}` (or steps its optimisers
through `ctx`, see `step_context`), `step.eval_step(models, batch)` returns the outputs the metric
reads, and `step.new_metric()` returns an accumulator whose `state` is a dict of tensors that sum
across processes and whose `compute()` turns the summed state into `{name: float}`.

No host synchronisation per step: losses, logs and the non-finite flag stay on the device and are
read every `log_every` steps, at the end of an epoch and before any checkpoint is written.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from zrenie.config import TrainConfig, to_dict
from zrenie.engine import distributed as dist
from zrenie.engine.ema import ModelEma
from zrenie.engine.evaluate import autocast_factory, evaluate, resolve_amp
from zrenie.engine.logging import EpochProgress, RunLogger, Throughput, console
from zrenie.engine.rng import get_rng_state, set_rng_state
from zrenie.engine.step_context import OptimizerSlot, StepContext
from zrenie.errors import ConfigError, WriteError, ZrenieError
from zrenie.nn.checkpoint import save_checkpoint


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
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed; `exit_code` is 130 or 143."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before preemption, and torchrun forwards), raised between two steps."""


@contextmanager
def _flag_sigterm(flag: list[bool]):
    """While the block runs, SIGTERM appends to `flag` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def batch_inputs(batch: Any) -> Any:
    """The images of a batch: its "image" entry (a tuple's first element for hand-made batches)."""
    if isinstance(batch, dict):
        return batch["image"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def batch_size_of(batch: Any) -> int:
    return len(batch_inputs(batch))


def sync_device(device: torch.device) -> None:
    """Waits for queued device work, so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_channels_last(model: nn.Module) -> nn.Module:
    """channels_last for 4-D weights (Conv2d) and channels_last_3d for 5-D ones (Conv3d), in place.

    `Module.to(memory_format=torch.channels_last)` refuses a model with Conv3d weights, so each tensor
    gets the format of its rank.
    """
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.ndim in formats:
            tensor.data = tensor.data.contiguous(memory_format=formats[tensor.ndim])
    return model


class Trainer:
    """Runs epochs of `step` over loaders, with AMP, EMA, gradient clipping and accumulation, DDP and checkpoints.

    Args:
        models: the bare models by name (not yet wrapped in DDP or compiled).
        step: object with `train_step`, `eval_step` and `new_metric`.
        optimizers: optimiser name -> names of the models it trains.
        train_loader, val_loader: iterables of batches already on `device`, with `set_epoch(e)`;
            the train loader may offer `skip(n)` to resume mid-epoch.
        cfg: the resolved run config.
        run_dir: where checkpoints and logs go (only the main process writes).
        checkpoint_extra: plain data stored in every checkpoint (task, config, preprocess).
        specs: model name -> (registered builder, kwargs), stored so that a checkpoint rebuilds its models.
        callbacks: called after every step with `{"epoch", "batch", "loss"}` (the loss a device tensor).
        lr_mult_of: model name -> (parameter name -> learning-rate multiplier), for discriminative rates.
        ema_models: the models that keep an EMA copy when `cfg.ema > 0` (None: every trained model).
        bn_loader: training batches in an order of their own, for `precise_bn` (its own order keeps a
            resumed run exact: the training loader's position is not touched).

    A step may also define `on_epoch_start(models, epoch)` (e.g. to unfreeze layers); it is called
    before each training epoch, also on resume, so it must depend only on the epoch number.
    """

    def __init__(self, models: dict[str, nn.Module], step: Any, optimizers: dict[str, tuple[str, ...]],
                 train_loader: Iterable, val_loader: Iterable, cfg: TrainConfig, run_dir: Path,
                 device: torch.device, checkpoint_extra: dict | None = None,
                 specs: dict[str, tuple[str, dict]] | None = None,
                 callbacks: list[Callable[[dict], None]] | None = None,
                 lr_mult_of: dict[str, Callable[[str], float] | None] | None = None,
                 ema_models: tuple[str, ...] | None = None, bn_loader: Iterable | None = None):
        self.models, self.step, self.cfg, self.device = models, step, cfg, device
        self.train_loader, self.val_loader, self.bn_loader = train_loader, val_loader, bn_loader
        self.run_dir = Path(run_dir)
        self.extra = checkpoint_extra or {}
        self.specs = specs or {}
        self.callbacks = callbacks or []
        self.amp_dtype = resolve_amp(cfg.amp, device)
        trained = [m for names in optimizers.values() for m in names]
        ema_names = trained if ema_models is None else [m for m in ema_models if m in trained]
        self.emas = {m: ModelEma(models[m], cfg.ema) for m in ema_names} if cfg.ema > 0 else {}
        self.slots = self._build_slots(optimizers, lr_mult_of or {})
        accumulate = {s.cfg.accumulate for s in self.slots.values()}
        if len(accumulate) > 1:
            raise ConfigError("config key 'optim.accumulate': every optimiser of a run accumulates alike")
        self.ctx = StepContext(self.slots, device.type, accumulate.pop(), len(train_loader), cfg.epochs, device)
        self.train_models = {name: self._wrap(model, name in trained) for name, model in models.items()}
        self.ddp_models = [m for m in self.train_models.values() if isinstance(m, nn.parallel.DistributedDataParallel)]
        self.epoch, self.batch, self.partial = 0, 0, {}
        self.best = None
        self._snapshot: tuple | None = None  # (batch, rng, sums) at the last optimiser step, when accumulating
        self._sigterm: list[bool] = []  # appended to by the SIGTERM handler while fit() runs
        self._row: dict | None = None  # the last finished epoch's metrics row, carried by last.pt
        self.main = dist.is_main()
        self.logger = RunLogger(self.run_dir if self.main else None, cfg.tensorboard and self.main,
                                resume=cfg.resume is not None)
        self.progress = EpochProgress(cfg.progress and self.main)

    def _build_slots(self, optimizers: dict[str, tuple[str, ...]], lr_mult_of: dict) -> dict[str, OptimizerSlot]:
        slots = {}
        for name, model_names in optimizers.items():
            models = {m: self.models[m] for m in model_names}
            mult = lr_mult_of.get(model_names[0]) if len(model_names) == 1 else None
            emas = {m: self.emas[m] for m in model_names if m in self.emas}
            slots[name] = OptimizerSlot(name, models, self.cfg.optim.for_name(name), self.cfg.epochs,
                                        len(self.train_loader), self.device, self.amp_dtype == torch.float16,
                                        mult, emas)
        return slots

    def _wrap(self, model: nn.Module, trained: bool) -> nn.Module:
        if self.cfg.channels_last:
            to_channels_last(model)
        if dist.is_distributed() and trained:
            if self.cfg.sync_bn:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=self.cfg.find_unused_parameters)
        if self.cfg.compile:
            model = torch.compile(model)
        return model

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        """The models evaluation sees: the EMA copy where one is kept."""
        return {name: self.emas[name].shadow if name in self.emas else m for name, m in self.models.items()}

    def autocast(self):
        return autocast_factory(self.device, self.amp_dtype)()

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        batch, rng, partial = self.batch, get_rng_state(), self.partial
        if self._snapshot is not None and self.batch != self._snapshot[0]:
            batch, rng, partial = self._snapshot  # mid-window: resume from the last optimiser step
        partial = {k: float(v) for k, v in partial.items()}
        return {
            **self.extra,
            "models": {name: {"builder": self.specs.get(name, (type(m).__name__, {}))[0],
                              "kwargs": self.specs.get(name, ("", {}))[1], "state": m.state_dict()}
                       for name, m in self.models.items()},
            "optimizers": {n: s.optimizer.state_dict() for n, s in self.slots.items()},
            "schedulers": {n: s.scheduler.state_dict() for n, s in self.slots.items()},
            "scalers": {n: s.scaler.state_dict() for n, s in self.slots.items()},
            "ema": {n: e.state_dict() for n, e in self.emas.items()},
            "epoch": self.epoch, "batch": batch, "partial": partial, "best": self.best, "row": self._row,
            "rng": rng, "config": to_dict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores everything `state_dict` saved; the model weights are loaded by the caller."""
        for name, slot in self.slots.items():
            slot.optimizer.load_state_dict(state["optimizers"][name])
            slot.scheduler.load_state_dict(state["schedulers"][name])
            slot.scaler.load_state_dict(state["scalers"][name])
        for name, ema in self.emas.items():
            if name in state.get("ema", {}):
                ema.load_state_dict(state["ema"][name])
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.partial = dict(state.get("partial") or {})
        self.best = state.get("best")
        self._row = state.get("row")
        if self._row is not None:
            self.logger.ensure_row(self._row)  # a run killed before its metrics row was written gets it back
        set_rng_state(state["rng"])

    def save(self, name: str) -> None:
        self._check_finite()  # never write weights that a NaN has reached
        if self.main:
            save_checkpoint(self.state_dict(), self.run_dir / name)

    def _check_finite(self) -> None:
        """Reads the non-finite flag (all processes stop together) and raises if a loss was NaN or infinite."""
        record = self.ctx.first_bad
        flag = dist.all_reduce_max((record[0] >= 0).double().reshape(1))
        if flag.item() == 0:
            return
        self.progress.stop()
        epoch, batch, value = record.tolist()
        where = f"at epoch {int(epoch) + 1}, batch {int(batch) + 1}" if epoch >= 0 else "on another process"
        raise NonFiniteLossError(f"loss became {value} {where}; stopped, last good checkpoint kept at "
                                 f"{self.run_dir / 'last.pt'} (try a lower optim.lr or optim.grad_clip)")

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Trains from the current epoch to `cfg.epochs`; returns the last validation metrics.

        Ctrl-C during training or validation saves last.pt at the current batch; during the
        end-of-epoch bookkeeping (checkpoints, metrics.csv) it is held until that is written, so a
        run is never left with a checkpoint and a log that disagree.
        """
        with _flag_sigterm(self._sigterm):
            return self._fit()

    def _fit(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        while self.epoch < self.cfg.epochs:
            started = time.perf_counter()
            try:
                train_logs = self.train_epoch()
                metrics = {}
                if self._evaluates_now():
                    self._precise_bn()
                    metrics = {f"val/{k}": v for k, v in self.evaluate(self.val_loader).items()}
            except KeyboardInterrupt as stop:
                self.progress.stop()
                with self._reporting_write_errors():
                    self.save("last.pt")
                self._raise_interrupted(143 if isinstance(stop, Terminated) else 130)
            with _deferred_sigint() as interrupted, self._reporting_write_errors():
                self._end_epoch(train_logs, metrics, time.perf_counter() - started)
            if interrupted():
                self._raise_interrupted()
        return metrics

    @contextmanager
    def _reporting_write_errors(self):
        """A checkpoint or log the disk refuses: the error also says which checkpoint is left and how to go on.

        last.pt is written last and atomically, so the one on disk is the previous epoch's, whole.
        """
        try:
            yield
        except WriteError as err:
            self.progress.stop()
            last = self.run_dir / "last.pt"
            if last.is_file():
                hint = (f"the last good checkpoint {last} is intact: free space or make the folder writable, then "
                        f"continue with `zrenie {self.cfg.task} train resume={self.run_dir}`")
            else:
                hint = "no checkpoint was written yet"
            raise WriteError(f"{err}; {hint}") from None

    def _terminate_now(self) -> bool:
        """Whether a SIGTERM arrived; under DDP read together every `log_every` steps, so that every process
        stops after the same step (torchrun forwards the signal to each, at slightly different moments)."""
        if not dist.is_distributed():
            return bool(self._sigterm)
        if self.batch % max(1, self.cfg.log_every):
            return False
        flag = torch.tensor([float(bool(self._sigterm))], device=self.device)
        return bool(dist.all_reduce_max(flag).item())

    def _precise_bn(self) -> None:
        """Recomputes the batchnorm statistics of the evaluated models (the EMA copies where kept)."""
        if not self.cfg.precise_bn or self.bn_loader is None:
            return
        from itertools import islice

        from zrenie.engine.precise_bn import recompute_bn_stats

        forward = getattr(self.step, "bn_forward", lambda model, batch: model(batch_inputs(batch)))
        for model in self.eval_models.values():
            self.bn_loader.set_epoch(self.epoch)
            with self.autocast():
                recompute_bn_stats(model, islice(iter(self.bn_loader), self.cfg.precise_bn_batches), forward)

    def _evaluates_now(self) -> bool:
        """Validation every `eval_every` epochs and always after the last one."""
        return (self.epoch + 1) % max(1, self.cfg.eval_every) == 0 or self.epoch + 1 == self.cfg.epochs

    def _end_epoch(self, train_logs: dict[str, float], metrics: dict[str, float], seconds: float) -> None:
        self.epoch, self.batch, self.partial, self._snapshot = self.epoch + 1, 0, {}, None
        first = next(iter(self.slots.values()), None)
        lr = first.optimizer.param_groups[0]["lr"] if first is not None else 0.0
        row = {"epoch": self.epoch, "lr": lr, "time": seconds, **train_logs, **metrics}
        improved = self._is_improvement(metrics.get(self.cfg.monitor)) if metrics else self.best is None
        if improved and self.cfg.monitor != "none" and metrics:
            self.best = metrics[self.cfg.monitor]
        self._row = row
        # last.pt is the epoch's commit point, written last: a kill before it leaves the previous epoch's
        # last.pt, whose resume redoes this epoch and rewrites best.pt and this metrics row; a kill after it
        # finds everything written. It carries this epoch's row, so a resume can restore a lost one.
        if improved:
            self.save("best.pt")
        self.logger.log_epoch(row)
        for name, model in self.models.items():
            self.logger.log_weights(model, self.epoch, prefix="" if len(self.models) == 1 else f"{name}.")
        self.save("last.pt")
        self._print_epoch(row)

    def _raise_interrupted(self, exit_code: int = 130) -> None:
        dist.barrier()
        where = f"epoch {self.epoch + 1}, batch {self.batch}" if self.batch else f"the end of epoch {self.epoch}"
        what = "terminated (SIGTERM)" if exit_code == 143 else "interrupted"
        raise TrainingInterrupted(f"{what} at {where}; saved {self.run_dir / 'last.pt'}; continue with "
                                  f"`zrenie {self.cfg.task} train resume={self.run_dir}`", exit_code) from None

    def _is_improvement(self, value: float | None) -> bool:
        if self.cfg.monitor == "none":
            return True  # no validation metric: best is the last epoch
        if value is None:
            return self.best is None
        if self.best is None:
            return True
        return value > self.best if self.cfg.monitor_mode == "max" else value < self.best

    def train_epoch(self) -> dict[str, float]:
        loader = self.train_loader
        if hasattr(self.step, "on_epoch_start"):
            self.step.on_epoch_start(self.models, self.epoch)
        for model in self.train_models.values():
            model.train()
        loader.set_epoch(self.epoch)
        if self.batch and hasattr(loader, "skip"):
            loader.skip(self.batch)
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums = {k: torch.tensor(float(v), dtype=dtype, device=self.device) for k, v in self.partial.items()}
        meter = Throughput()
        self.progress.start(f"epoch {self.epoch + 1}/{self.cfg.epochs}", len(loader) - self.batch)
        for batch in loader:
            n = batch_size_of(batch)
            out = self._train_step(batch)
            for key, value in [*out.get("logs", {}).items(), ("count", 1)]:
                if key not in sums:
                    sums[key] = torch.zeros((), dtype=dtype, device=self.device)
                sums[key].add_(torch.as_tensor(value).detach().to(dtype), alpha=n)
            self.batch += 1
            if self.ctx.boundary and self.ctx.accumulate > 1:
                self._snapshot = (self.batch, get_rng_state(), {k: v.clone() for k, v in sums.items()})
            self.partial = sums
            if self.batch == 1 and self.epoch == 0:
                self._log_first_batch(batch)
            self._report_progress(out, meter, n)
            for callback in self.callbacks:
                callback({"epoch": self.epoch, "batch": self.batch, "loss": out.get("loss")})
            if self._terminate_now():
                raise Terminated
        self.progress.stop()
        self._check_finite()
        sync_device(self.device)
        images_per_s = meter.count / max(1e-9, time.perf_counter() - meter.start)
        sums = dist.all_reduce_sum(sums)
        count = max(1.0, sums.pop("count").item())
        logs = {f"train/{k}": v.item() / count for k, v in sums.items()}
        logs["images_per_s"] = images_per_s
        return logs

    def _train_step(self, batch: Any) -> dict:
        """One micro-batch: the task's step, then backward and step of the sole optimiser unless it did them."""
        ctx = self.ctx
        ctx.begin(self.epoch, self.batch)
        with ctx.sync_context(self.ddp_models):
            with self.autocast():
                out = self.step.train_step(self.train_models, batch, ctx)
            if not ctx.used:
                if len(self.slots) != 1:
                    raise ConfigError(f"a task with optimisers {', '.join(self.slots)} must call ctx.backward "
                                      f"and ctx.step in its train_step")
                name = next(iter(self.slots))
                ctx.backward(out["loss"], name)
                ctx.step(name)
            elif "loss" in out:
                ctx.track(out["loss"])
        logs = dict(out.get("logs", {}))
        if "loss" in out:
            logs = {"loss": out["loss"], **logs}
        return {**out, "logs": logs}

    def _report_progress(self, out: dict, meter: Throughput, n: int) -> None:
        """Advances the bar every step; reads the loss and the speed (a host sync) every `log_every` steps."""
        meter.count += n * dist.world_size()
        if self.batch % max(1, self.cfg.log_every):
            self.progress.update(1)
            return
        self._check_finite()
        sync_device(self.device)
        speed = meter.count / max(1e-9, time.perf_counter() - meter.start)
        loss = f"loss {out['loss'].item():.4f}  " if "loss" in out else ""
        self.progress.update(1, f"{loss}{speed:.0f} img/s")

    def _log_first_batch(self, batch: Any) -> None:
        inputs = batch_inputs(batch)
        if isinstance(inputs, torch.Tensor):
            self.logger.log_images("train/batch", inputs, 0)
            if len(self.models) == 1:
                self.logger.log_graph(next(iter(self.models.values())), inputs)

    def evaluate(self, loaders: Iterable | dict[str, Iterable],
                 models: dict[str, nn.Module] | None = None) -> dict[str, float]:
        """The engine's evaluation loop (every process its shard) with the step's metric and the run's autocast."""
        return evaluate(models or self.eval_models, self.step, loaders, self.step.new_metric(),
                        autocast_factory(self.device, self.amp_dtype))

    def _print_epoch(self, row: dict[str, Any]) -> None:
        if not self.main:
            return
        # per-class figures (`val/iou/cat`) stay in metrics.csv and TensorBoard: one line per epoch stays short
        shown = [f"{k} {v:.4f}" for k, v in row.items()
                 if k not in ("epoch", "lr", "time", "images_per_s") and isinstance(v, float) and k.count("/") < 2]
        console.print(f"epoch {row['epoch']}/{self.cfg.epochs}  " + "  ".join(shown)
                      + f"  {row['images_per_s']:.0f} img/s  {row['time']:.1f}s", highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.logger.close()
