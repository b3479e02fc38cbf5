"""How an optimiser steps, owned by the engine; when it steps, decided by the task.

A task's `train_step(models, batch, ctx)` either returns `{"loss": ...}` and leaves the rest to the
engine (one optimiser), or calls `ctx.backward(loss, "D")` and `ctx.step("D")` itself (a GAN steps D
and G in turn; a WGAN steps D `n_critic` times per G step). Per optimiser the engine owns: its
GradScaler (D's overflow must not change G's loss scale), unscaling and clipping of its own
parameters, backward into its own parameters only (`inputs=`), gradient accumulation, its learning
rate schedule, the EMA of its models, and the all-reduce of its gradients under DDP.

DDP and several optimisers: DDP's reducer all-reduces during backward and expects exactly one
synced forward and backward per model per iteration, which a GAN step breaks (D runs on real
images, on fakes, and again for G's loss, and G's backward must not touch D's gradients). With
several optimisers every model therefore runs under `no_sync()`, and `ctx.step(name)` all-reduces
that optimiser's gradients in one flat collective just before it steps. With one optimiser DDP's
own overlapped all-reduce is kept, and accumulation runs the first N-1 micro-batches under `no_sync()`.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, nullcontext
from typing import Callable

import torch
from torch import Tensor, nn

from zrenie.config import OptimConfig
from zrenie.engine import distributed as dist
from zrenie.engine.ema import ModelEma
from zrenie.engine.optim import build_optimizer, build_scheduler
from zrenie.errors import ConfigError


class OptimizerSlot:
    """One named optimiser with its scheduler, GradScaler, clipping and the EMAs of its models.

    Args:
        name: the optimiser's name (`optim.NAME.*` keys).
        models: the bare models it trains, by name.
        cfg: its settings (`OptimConfig.for_name(name)`).
        steps_per_epoch: micro-batches per epoch; the schedule counts optimiser steps.
        lr_mult_of: parameter name -> learning-rate multiplier, or None.
    """

    def __init__(self, name: str, models: dict[str, nn.Module], cfg: OptimConfig, epochs: int,
                 steps_per_epoch: int, device: torch.device, fp16: bool,
                 lr_mult_of: Callable[[str], float] | None = None, emas: dict[str, ModelEma] | None = None):
        self.name, self.cfg, self.models = name, cfg, models
        module = next(iter(models.values())) if len(models) == 1 else nn.ModuleDict(models)
        self.optimizer = build_optimizer(module, cfg, lr_mult_of)
        self.scheduler = build_scheduler(self.optimizer, cfg, epochs, math.ceil(steps_per_epoch / cfg.accumulate))
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)
        # In model order, not the optimiser's group order: the clipping norm sums in this order.
        self.params = [p for model in models.values() for p in model.parameters()]
        self.emas = emas or {}

    def trainable(self) -> list[Tensor]:
        """The parameters that take gradients now (gradual unfreezing changes them between epochs)."""
        return [p for p in self.params if p.requires_grad]

    def step(self, reduce_grads: bool) -> None:
        """Unscale, clip, step, update the loss scale, clear gradients, advance the schedule, update EMAs."""
        if reduce_grads:
            dist.all_reduce_grads(self.trainable())
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        for name, ema in self.emas.items():
            ema.update(self.models[name])


class StepContext:
    """What `train_step` sees of the engine: `backward`, `step` and where training stands.

    Attributes:
        epoch: the current epoch, from 0.
        batch: the index of this batch in the epoch.
        global_step: batches trained so far in the run (all epochs).
        total_steps: batches the whole run will train.
        accumulate: micro-batches per optimiser step.
    """

    def __init__(self, slots: dict[str, OptimizerSlot], autocast_device: str, accumulate: int,
                 steps_per_epoch: int, epochs: int, device: torch.device):
        self.slots = slots
        self.explicit_sync = len(slots) > 1  # see the module docstring
        self.accumulate = accumulate
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.total_steps = steps_per_epoch * epochs
        self.epoch = self.batch = self.global_step = 0
        self.boundary = True
        self.used = False
        self._autocast_device = autocast_device
        # The first non-finite loss of the run: (epoch, batch, value); epoch -1 while all are finite.
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.first_bad = torch.tensor([-1.0, -1.0, 0.0], dtype=dtype, device=device)

    def begin(self, epoch: int, batch: int) -> None:
        """Called by the engine before each `train_step`."""
        self.epoch, self.batch = epoch, batch
        self.global_step = epoch * self.steps_per_epoch + batch
        self.boundary = (batch + 1) % self.accumulate == 0 or batch + 1 == self.steps_per_epoch
        self.used = False

    def _slot(self, name: str) -> OptimizerSlot:
        if name not in self.slots:
            raise ConfigError(f"train_step names optimiser {name!r}; this task has {', '.join(self.slots)}")
        return self.slots[name]

    def track(self, loss: Tensor) -> None:
        """Records the first non-finite loss on the device, without a host synchronisation."""
        value = loss.detach().to(self.first_bad.dtype).reshape(())
        bad = ~torch.isfinite(value) & (self.first_bad[0] < 0)
        # full_like launches a fill; a tensor built from Python numbers would be a blocking copy to the device.
        record = torch.stack([torch.full_like(value, self.epoch), torch.full_like(value, self.batch), value])
        self.first_bad.copy_(torch.where(bad, record, self.first_bad))

    def backward(self, loss: Tensor, name: str = "model") -> None:
        """Backpropagates `loss` into optimiser `name`'s parameters (scaled by its GradScaler under fp16)."""
        slot = self._slot(name)
        self.track(loss)
        self.used = True
        if self.accumulate > 1:
            loss = loss / self.accumulate
        with torch.autocast(self._autocast_device, enabled=False):
            scaled = slot.scaler.scale(loss)
            if self.explicit_sync:
                scaled.backward(inputs=slot.trainable())
            else:
                scaled.backward()

    def step(self, name: str = "model") -> bool:
        """Steps optimiser `name` at the end of an accumulation window; returns whether it stepped."""
        slot = self._slot(name)
        self.used = True
        if not self.boundary:
            return False
        slot.step(reduce_grads=self.explicit_sync and dist.is_distributed())
        return True

    def sync_context(self, ddp_models: list[nn.Module]):
        """`no_sync()` of every DDP model where DDP must not all-reduce in this step (module docstring)."""
        if not ddp_models or not (self.explicit_sync or not self.boundary):
            return nullcontext()
        stack = ExitStack()
        for model in ddp_models:
            stack.enter_context(model.no_sync())
        return stack
