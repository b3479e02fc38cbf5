"""Engine overhead: zrenie's training throughput vs a bare hand-written PyTorch loop.

Same model, same in-memory data (built-in shapes, 32x32 RGB), same batch size, same optimizer and
parameter groups, no augmentation on either side, measured in one process and interleaved so that
both see the same machine load. Reports images/s of each and their ratio (target >= 0.95).

CPU mode trains the course CNN (`simple_cnn`). GPU mode trains the airbench94 network (Jordan 2024,
"94% on CIFAR-10 in 3.29 seconds"), whose steps are short enough that any per-step host
synchronisation or Python overhead in the loop shows up; both sides use bf16 autocast and
channels_last there, and neither reads the loss on the host per step.

    python benchmarks/engine_overhead.py [--epochs 4] [--rounds 3] [--device cpu|cuda] [--model ...]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import zrenie
from zrenie.config import DataConfig, OptimConfig
from zrenie.data.catalog import open_splits
from zrenie.engine.optim import param_groups
from zrenie.registry import MODELS


class _ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(c_out, momentum=0.4, eps=1e-12)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, momentum=0.4, eps=1e-12)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


@MODELS.register("airbench94", tags=("classify",))
def airbench94(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """airbench94's network: a 2x2 whitening conv, three conv groups (64, 256, 256), max-pool head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 24, 2, bias=True), nn.GELU(),
        _ConvGroup(24, 64), _ConvGroup(64, 256), _ConvGroup(256, 256),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, num_classes, bias=False))


def bare_loop(splits, args, device: torch.device) -> list[float]:
    """Images/s per epoch of the plainest correct loop over the same tensors (no per-step host reads)."""
    torch.manual_seed(0)
    kwargs = {"width": args.width} if args.model == "simple_cnn" else {}
    model = zrenie.build_model(args.model, num_classes=len(splits.classes), **kwargs).to(device)
    gpu = device.type == "cuda"
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    cfg = OptimConfig(lr=0.05)
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay, cfg.lr), lr=cfg.lr, momentum=0.9, nesterov=True)
    images, targets = splits.train.images.to(device), splits.train.targets.to(device)
    mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1)
    n = len(images) - len(images) % args.batch_size
    rates = []
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        for b in range(0, n, args.batch_size):
            idx = order[b:b + args.batch_size]
            x = ((images[idx].float() / 255 - mean) / std).contiguous(
                memory_format=torch.channels_last if gpu else torch.contiguous_format)
            with torch.autocast("cuda", dtype=torch.bfloat16) if gpu else nullcontext():
                loss = F.cross_entropy(model(x).float(), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if gpu:
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - start))
    return rates


def zrenie_loop(args, out: Path) -> list[float]:
    gpu = args.device.startswith("cuda")
    overrides = {"data.batch_size": args.batch_size, "data.augment": "none", "optim.lr": 0.05,
                 "optim.schedule": "constant", "model": args.model, "data.num_samples": args.samples}
    if args.model == "simple_cnn":
        overrides["model.width"] = args.width
    zrenie.train("classify", data="shapes", epochs=args.epochs, out=str(out), overwrite=True, device=args.device,
                 progress=False, tensorboard=False, report=False, amp="bf16" if gpu else "off",
                 channels_last=gpu, **overrides)
    with open(out / "metrics.csv", newline="") as f:
        return [float(r["images_per_s"]) for r in csv.DictReader(f)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", choices=("simple_cnn", "airbench94"), default=None,
                   help="default: simple_cnn on CPU, airbench94 on GPU")
    p.add_argument("--batch-size", type=int, default=None, help="default: 128 on CPU, 1024 on GPU")
    p.add_argument("--samples", type=int, default=None, help="shapes images in all splits (default: 2,500 / 25,000)")
    p.add_argument("--width", type=int, default=32, help="simple_cnn width")
    args = p.parse_args()
    gpu = args.device.startswith("cuda")
    args.model = args.model or ("airbench94" if gpu else "simple_cnn")
    args.batch_size = args.batch_size or (1024 if gpu else 128)
    args.samples = args.samples or (25_000 if gpu else 2_500)
    device = torch.device(args.device)
    splits = open_splits(DataConfig(name="shapes", num_samples=args.samples))
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # The first epoch of each warms caches and allocators; keep the rest. Alternate who goes first.
            runs = [lambda: ours.extend(zrenie_loop(args, Path(tmp) / "run")[1:]),
                    lambda: bare.extend(bare_loop(splits, args, device)[1:])]
            for run in runs if r % 2 == 0 else runs[::-1]:
                run()
    z, b = statistics.median(ours), statistics.median(bare)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}, torch {torch.__version__}, {args.model}, shapes 32x32 ({len(splits.train)} train images), "
          f"batch {args.batch_size}, {args.rounds} rounds x {args.epochs - 1} timed epochs")
    print(f"| loop | images/s (median) |\n|---|---|\n| bare PyTorch | {b:.0f} |\n| zrenie | {z:.0f} |")
    print(f"ratio zrenie / bare: {z / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
