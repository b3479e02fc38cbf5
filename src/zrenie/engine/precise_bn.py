"""Precise batchnorm: running statistics recomputed as an exact average over many batches.

During training a batchnorm layer keeps `running = (1 - momentum) * running + momentum * batch`,
an average over past weights as well as past batches. When the weights still move fast (a short
run, a large learning rate) the statistics lag the weights the model is evaluated with; a 24-step
run ended at train accuracy 0.99 and val 0.78. Wu & Johnson, "Rethinking 'Batch' in BatchNorm"
(arXiv:2105.07576, 2021) show this inaccuracy of the EMA and replace it by "precise BN":
population statistics recomputed with the final weights over many batches, as fvcore's
`fvcore.nn.precise_bn.update_bn_stats` does (detectron2's PreciseBN hook calls it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from zrenie.engine import distributed as dist
from zrenie.nn.transfer import FrozenBatchNorm2d


def recompute_bn_stats(model: nn.Module, batches: Iterable[Any],
                       forward: Callable[[nn.Module, Any], Any] | None = None) -> int:
    """Replaces every batchnorm's running statistics by their average over `batches`.

    Use it before evaluating a model whose running statistics lag its weights: short runs, small
    batches (each batch's statistics are noisy, so the EMA is too), or EMA weights whose batchnorm
    buffers were copied from the raw model (`ModelEma` copies them; they belong to other weights).
    It costs one forward pass per batch, every time it runs (fvcore's default is 200 batches).

    Each BatchNorm1d/2d/3d and SyncBatchNorm that tracks running statistics is reset and given
    `momentum=None`, under which PyTorch keeps a cumulative average: after N batches
    `running_mean` is the mean of the N per-batch means (the exact mean over all samples when the
    batches have equal size) and `running_var` the mean of the N per-batch unbiased variances,
    the same numbers as fvcore's. The passes run in train mode (dropout included, so the layers
    see what they normalised in training) under `torch.no_grad()` and a forked RNG, so neither the
    global CPU RNG nor the model's CUDA RNG moves: a run that calls this stays exactly resumable.
    Afterwards each layer's momentum and every submodule's train/eval flag are as they were.
    `FrozenBatchNorm2d` layers (frozen by transfer learning) keep their pretrained statistics.

    Under `torch.distributed`, each process passes its own batches and the statistics are then
    averaged over processes, weighted by their batch counts, in one all_reduce: every rank ends
    with the statistics one process would get from all the batches. Every rank must call it, and
    with SyncBatchNorm (whose forward is itself a collective) with the same number of batches.
    If no process saw a batch, the statistics are left as they were.

    Args:
        model: the model, or a DistributedDataParallel around it (its bare module is used: DDP's
            forward may start with a broadcast of rank 0's buffers, a collective that hangs when
            the ranks pass different numbers of batches).
        batches: the batches to average over, e.g. a train loader cut with `itertools.islice`.
        forward: `forward(model, batch)` runs one batch, moving it to the model's device if need be;
            by default `model(batch)`.

    Returns:
        The number of batches this process ran (0 when the model has no batchnorm to update).
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
              and not isinstance(m, FrozenBatchNorm2d)]
    if not layers:
        return 0
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in layers]
    momenta = [bn.momentum for bn in layers]
    modes = [(m, m.training) for m in model.modules()]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
    try:
        count = _run_passes(model, batches, forward or _call_model)
    except BaseException:
        _load_stats(layers, saved)
        raise
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        # Set the flags directly: `train()` recurses and may be overridden (FrozenBatchNorm2d's is).
        for m, training in modes:
            m.training = training
    if _average_over_processes(layers, count) == 0:
        _load_stats(layers, saved)
    return count


def _call_model(model: nn.Module, batch: Any) -> Any:
    return model(batch)


def _run_passes(model: nn.Module, batches: Iterable[Any], forward: Callable[[nn.Module, Any], Any]) -> int:
    """Runs `forward` on each batch in train mode; the global RNG (CPU and the model's GPUs) is left as it was."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    cuda = sorted({t.device.index for t in tensors if t.device.type == "cuda"})
    model.train()
    count = 0
    # The iterator is made inside the fork too: a DataLoader draws its base seed from the global RNG.
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        for batch in batches:
            forward(model, batch)
            count += 1
    return count


def _average_over_processes(layers: list[_BatchNorm], count: int) -> int:
    """Averages the statistics over processes, each weighted by its batch count; returns the total count.

    A process's `running_mean` is the mean of its `count` per-batch means, so the sum over processes
    of `count * running_mean`, divided by the total count, is the mean over all their batches.
    """
    if not dist.is_distributed():
        return count
    stats = [t for bn in layers for t in (bn.running_mean, bn.running_var)]
    flat = torch.cat([t.reshape(-1).double() * count for t in stats])
    flat = torch.cat([flat, flat.new_tensor([count])])  # (S + 1,): weighted sums, then the count
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    total = int(flat[-1].item())
    if total == 0:
        return 0
    offset = 0
    for t in stats:
        t.copy_((flat[offset:offset + t.numel()] / total).view_as(t))
        offset += t.numel()
    for bn in layers:
        bn.num_batches_tracked.fill_(total)
    return total


def _load_stats(layers: list[_BatchNorm], saved: list[tuple[torch.Tensor, ...]]) -> None:
    for bn, (mean, var, tracked) in zip(layers, saved):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(tracked)
