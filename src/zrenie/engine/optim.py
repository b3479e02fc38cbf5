"""Parameter groups, optimizers and learning-rate schedules by name."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from zrenie.config import OptimConfig

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, weight_decay: float, lr: float = 1.0,
                 lr_mult_of: Callable[[str], float] | None = None) -> list[dict]:
    """Groups by (decays?, learning-rate multiplier): norm and bias parameters never decay.

    Decaying batchnorm scales and biases only shrinks them towards a different function without
    regularising capacity (the normalisation undoes the scale); see "Bag of Tricks", He et al. 2019.
    Frozen parameters are included: gradual unfreezing turns them on later, and SGD and AdamW skip
    parameters without gradients.

    Args:
        lr_mult_of: parameter name -> learning-rate multiplier (discriminative learning rates).
    """
    groups: dict[tuple[bool, float], list] = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            decays = not (isinstance(module, _NORM_TYPES) or name == "bias" or param.ndim <= 1)
            mult = lr_mult_of(full) if lr_mult_of else 1.0
            groups.setdefault((decays, mult), []).append(param)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": lr * mult}
            for (decays, mult), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))]


def build_optimizer(model: nn.Module, cfg: OptimConfig,
                    lr_mult_of: Callable[[str], float] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.lr, lr_mult_of)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    betas = tuple(cfg.betas) if cfg.betas is not None else (0.9, 0.999)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas)


def lr_multiplier(cfg: OptimConfig, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimizer step `i` (schedules advance every step)."""
    total = max(1, epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        # Linear warm-up over the first 25% of steps, then cosine annealing to ~0 (Smith 2018).
        peak = max(1, int(0.25 * total))

        def onecycle(i: int) -> float:
            if i < peak:
                return 0.04 + 0.96 * i / peak
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (i - peak) / max(1, total - peak))))

        return onecycle
    if cfg.schedule == "cosine":
        warm = int(cfg.warmup_epochs * steps_per_epoch)

        def cosine(i: int) -> float:
            if i < warm:
                return (i + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (i - warm) / max(1, total - warm))))

        return cosine
    if cfg.schedule == "step":
        return lambda i: cfg.gamma ** ((i // steps_per_epoch) // max(1, cfg.step_epochs))
    return lambda i: 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, epochs, steps_per_epoch))
