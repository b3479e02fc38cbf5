"""torchrun environment, rank helpers and the all-reduce of metric sums.

Launched by `torchrun`, WORLD_SIZE/RANK/LOCAL_RANK are set; NCCL on GPU, gloo on CPU.
Launched plainly, every helper degrades to the single-process case.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Joins the process group once when launched by torchrun."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sums each tensor across processes in place (one collective for all of them)."""
    if not is_distributed() or not state:
        return state
    keys = sorted(state)
    flat = torch.cat([state[k].detach().reshape(-1).double() for k in keys])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for k in keys:
        n = state[k].numel()
        state[k].copy_(flat[offset:offset + n].view_as(state[k]).to(state[k].dtype))
        offset += n
    return state


def gather_objects(obj) -> list:
    """Every process's value of a picklable object (lists of unequal lengths included), in rank order."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's value of a picklable object, on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Gives every rank rank 0's buffers (batchnorm statistics).

    DDP syncs buffers at the start of each training forward, so after the last step every rank
    holds statistics updated by its own batch; evaluating with those would differ per rank.
    """
    if not is_distributed():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def all_reduce_grads(params: list[torch.Tensor]) -> None:
    """Averages the gradients of `params` across processes in one flat collective.

    A parameter without a gradient on this process counts as zeros, so every process sends the
    same number of values whatever its batch touched.
    """
    if not is_distributed() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
        offset += n


def all_reduce_max(value: torch.Tensor) -> torch.Tensor:
    """The largest value of `value` over processes (a flag raised on any one of them)."""
    if is_distributed():
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value
