"""One evaluation loop for validation during training, `eval` and the test pass, on every process.

A metric is a single-process object, testable against its reference library on its own:

    names                    what `compute` returns, known before any update
    update(out, batch)       accumulates one batch (`out` is the step's `eval_step` output)
    compute() -> {name: float}
    examples()               what the report shows (the most confident mistakes, worst images ...), optional

Its state says how processes combine:

    state: {name: Tensor}    sums: all-reduced in one collective (confusion matrices, hit counts)
    local_records() -> list[dict]
                             per-sample results, each with an "index" (the sample's dataset index):
                             gathered from every process with unequal lengths, de-duplicated and sorted
                             by index, then given back with `merge_records(records)`; aggregation over
                             a video's clips or a query's gallery happens there, after the gather
    compute_on_main = True   an expensive `compute` (COCO evaluation) runs on rank 0 alone and its
                             result is broadcast

Every process evaluates its own shard (sharded without padding, so each sample counts once), which
keeps a COCO-sized test set inside the collective timeout instead of rank 0 working while the others
wait. Named evaluation sets (query and gallery for retrieval) are a dict of loaders; each of their
batches carries `batch["set"]`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Iterable

import torch
from torch import nn

from zrenie.engine import distributed as dist


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the device supports it, else fp16 on CUDA; none on CPU by default."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], ContextManager]:
    """The autocast of a run (`amp=`), the same for training, validation and the test pass."""
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def reduce_metric(metric: Any) -> None:
    """Combines the processes' metric states: sums all-reduced, per-sample records gathered."""
    state = getattr(metric, "state", None)
    if state:
        dist.all_reduce_sum(state)
    if hasattr(metric, "local_records"):
        records = dist.gather_objects(metric.local_records())
        merged = {r["index"]: r for part in records for r in part}  # a sample seen twice counts once
        metric.merge_records([merged[i] for i in sorted(merged)])


def compute_metric(metric: Any) -> dict[str, float]:
    if getattr(metric, "compute_on_main", False):
        return dist.broadcast_object(metric.compute() if dist.is_main() else None)
    return metric.compute()


@torch.no_grad()
def evaluate(models: dict[str, nn.Module], step: Any, loaders: Iterable | dict[str, Iterable], metric: Any,
             autocast: Callable[[], ContextManager] = nullcontext) -> dict[str, float]:
    """Runs `step.eval_step` over this process's shard of every loader, combines processes, computes.

    Args:
        models: the models to evaluate (put in eval mode for the loop, their modes restored after).
        loaders: one loader, or named evaluation sets {name: loader} (batches then carry `batch["set"]`).
        metric: a fresh metric; after the call it holds the combined state (for `examples()`).
        autocast: makes the run's autocast context (`autocast_factory`); full precision by default.

    Returns:
        `metric.compute()`, the same on every process.
    """
    modes = {name: m.training for name, m in models.items()}
    for m in models.values():
        m.eval()
        dist.broadcast_buffers(m)
    sets = loaders if isinstance(loaders, dict) else {None: loaders}
    for name, loader in sets.items():
        for batch in loader:
            if name is not None:
                batch["set"] = name
            with autocast():
                out = step.eval_step(models, batch)
            metric.update(out, batch)
    reduce_metric(metric)
    for name, m in models.items():
        m.train(modes[name])
    return compute_metric(metric)
