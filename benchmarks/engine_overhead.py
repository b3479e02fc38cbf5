"""Engine overhead: zrenie's training throughput vs a bare hand-written PyTorch loop.

Same model (simple_cnn), same in-memory data (built-in shapes, 32x32 RGB), same batch size, same
optimizer, no augmentation on either side, measured in one process and interleaved so that both
see the same machine load. Reports images/s of each and their ratio (target >= 0.95).

    python benchmarks/engine_overhead.py [--epochs 4] [--rounds 3] [--batch-size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zrenie
from zrenie.config import DataConfig
from zrenie.data.catalog import open_splits


def bare_loop(splits, epochs: int, batch_size: int, device: torch.device, width: int) -> list[float]:
    """Images/s per epoch of the plainest correct loop over the same tensors."""
    torch.manual_seed(0)
    model = zrenie.build_model("simple_cnn", num_classes=len(splits.classes), width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    images, targets = splits.train.images.to(device), splits.train.targets.to(device)
    mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1)
    n = len(images) - len(images) % batch_size
    rates = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        for b in range(0, n, batch_size):
            idx = order[b:b + batch_size]
            x = (images[idx].float() / 255 - mean) / std
            loss = F.cross_entropy(model(x), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # the engine reads the loss every step to stop on NaN; so does the reference
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - start))
    return rates


def zrenie_loop(epochs: int, batch_size: int, device: str, width: int, out: Path) -> list[float]:
    zrenie.train("classify", data="shapes", epochs=epochs, out=str(out), overwrite=True, device=device,
                 progress=False, tensorboard=False, report=False, **{
                     "data.batch_size": batch_size, "data.augment": "none", "model.width": width,
                     "optim.lr": 0.05, "optim.schedule": "constant"})
    with open(out / "metrics.csv", newline="") as f:
        return [float(r["images_per_s"]) for r in csv.DictReader(f)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    splits = open_splits(DataConfig(name="shapes"))
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # The first epoch of each warms caches and allocators; keep the rest.
            ours += zrenie_loop(args.epochs, args.batch_size, args.device, args.width, Path(tmp) / "run")[1:]
            bare += bare_loop(splits, args.epochs, args.batch_size, device, args.width)[1:]
    z, b = statistics.median(ours), statistics.median(bare)
    print(f"device {device}, torch threads {torch.get_num_threads()}, simple_cnn width {args.width}, "
          f"shapes 32x32, batch {args.batch_size}, {args.rounds} rounds x {args.epochs - 1} timed epochs")
    print(f"| loop | images/s (median) |\n|---|---|\n| bare PyTorch | {b:.0f} |\n| zrenie | {z:.0f} |")
    print(f"ratio zrenie / bare: {z / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
