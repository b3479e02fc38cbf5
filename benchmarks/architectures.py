"""Training throughput of each zrenie architecture vs torchvision's implementation, same run.

Forward + backward + SGD step on the same random batch, interleaved (zrenie, torchvision, zrenie,
...) so both see the same machine load; reports images/s of each and their ratio (target >= 0.95).
With --extras it also reports the gain of channels_last and torch.compile for the zrenie model.

    python benchmarks/architectures.py [--models resnet18 mobilenet_v2 ...] [--size 128] [--batch 16]
        [--steps 5] [--rounds 3] [--device cpu|cuda] [--extras]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

import zrenie

TORCHVISION = ["alexnet", "vgg11", "vgg16_bn", "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50",
               "resnet101", "mobilenet_v2"]
MIN_SIZE = {"inception_v3": 75, "alexnet": 63}


def _logits(output):
    return output[0] if isinstance(output, tuple) else output


def classification_loss(output, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(_logits(output), y)


def images_per_s(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
                 loss_fn: Callable = classification_loss) -> float:
    """Training images per second: two warm-up steps, then `steps` timed ones (SGD with momentum)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, cuDNN algorithm choice, compile (forward and backward graphs)
    step()
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - start)


def pair(name: str, size: int, batch: int, steps: int, rounds: int, device: torch.device) -> tuple[float, float]:
    size = max(size, MIN_SIZE.get(name, 0))
    torch.manual_seed(0)
    # Inception-v3's auxiliary head needs 299x299 inputs in training; both sides run without it.
    aux = {"googlenet": True, "inception_v3": False}
    kwargs = {"aux_logits": aux[name], "init_weights": True} if name in aux else {}
    ref = getattr(torchvision.models, name)(**kwargs).to(device)
    ours = zrenie.build_model(name, **({"aux_logits": aux[name]} if name in aux else {})).to(device)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    a, b = [], []
    for r in range(rounds):  # alternate which side goes first, so drifting load hits both alike
        first, second = (ours, ref) if r % 2 == 0 else (ref, ours)
        t1, t2 = images_per_s(first, x, y, steps), images_per_s(second, x, y, steps)
        a.append(t1 if first is ours else t2)
        b.append(t2 if first is ours else t1)
    return statistics.median(a), statistics.median(b)


def extras(name: str, size: int, batch: int, steps: int, device: torch.device) -> dict[str, float]:
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    kwargs = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    base = images_per_s(zrenie.build_model(name, **kwargs).to(device), x, y, steps)
    cl = images_per_s(zrenie.build_model(name, **kwargs).to(device, memory_format=torch.channels_last),
                      x.contiguous(memory_format=torch.channels_last), y, steps)
    compiled = images_per_s(torch.compile(zrenie.build_model(name, **kwargs).to(device)), x, y, steps)
    gains = {"channels_last": cl / base, "compile": compiled / base}
    if device.type == "cuda":  # mixed precision: bf16 autocast alone, then with channels_last
        with torch.autocast("cuda", dtype=torch.bfloat16):
            gains["bf16"] = images_per_s(zrenie.build_model(name, **kwargs).to(device), x, y, steps) / base
            gains["bf16 + channels_last"] = images_per_s(
                zrenie.build_model(name, **kwargs).to(device, memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last), y, steps) / base
    return gains


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=TORCHVISION)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--extras", action="store_true", help="also measure channels_last and torch.compile")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, input {args.size}px, batch {args.batch}")
    extra_names = ["channels_last", "compile"] + (["bf16", "bf16 + channels_last"] if device.type == "cuda" else [])
    print("| model | zrenie img/s | torchvision img/s | ratio |" + "".join(f" {n} |" for n in extra_names * args.extras))
    print("|---|---|---|---|" + "---|" * len(extra_names) * args.extras)
    for name in args.models:
        ours, ref = pair(name, args.size, args.batch, args.steps, args.rounds, device)
        line = f"| {name} | {ours:.1f} | {ref:.1f} | {ours / ref:.3f} |"
        if args.extras:
            gains = extras(name, max(args.size, MIN_SIZE.get(name, 0)), args.batch, args.steps, device)
            line += "".join(f" x{gains[n]:.2f} |" for n in extra_names)
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
