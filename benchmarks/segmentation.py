"""Training throughput of zrenie's segmentation models vs torchvision's and segmentation_models_pytorch's, same run.

Forward + backward + SGD step on one random batch (21 classes, Pascal VOC's count), timed as
`benchmarks/architectures.py` times classifiers: each side warmed up, then `--steps` timed steps; the two
sides alternate which goes first over `--rounds`, and each reports its median.

- `fcn_resnet50`, `deeplabv3_resnet50`: zrenie's against torchvision's of the same name, zrenie's loaded with
  torchvision's state_dict; both with the auxiliary head, trained on CE(out) + 0.5 CE(aux) as torchvision's
  reference training and zrenie's segment step do. Target: ratio zrenie / torchvision >= 0.95.
- `unet` (the paper's 64-1024 layout) and, where zrenie's `unet` takes `encoder=`, the U-Net on a ResNet-34
  encoder, beside segmentation_models_pytorch's `Unet` (ResNet-34 encoder, no pretrained weights) where that
  package is installed. Different architectures: images/s and parameter counts, no parity ratio.

    python benchmarks/segmentation.py [--device cpu|cuda] [--size 128] [--batch 2] [--steps 3] [--rounds 3]
        [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import segmentation

import architectures  # benchmarks/ is the script's folder, first on sys.path
import zrenie
from zrenie.errors import ZrenieError

NUM_CLASSES = 21
AUX_WEIGHT = 0.5  # torchvision's references/segmentation/train.py: losses["out"] + 0.5 * losses["aux"]
TORCHVISION_PAIRS = ("fcn_resnet50", "deeplabv3_resnet50")


def segmentation_loss(output: Tensor | tuple | dict, target: Tensor) -> Tensor:
    """CE of the main logits plus 0.5 CE of the auxiliary ones: zrenie returns `(out, aux)` in training,
    torchvision `{"out", "aux"}`, a plain U-Net one tensor."""
    if isinstance(output, dict):
        output = tuple(output[k] for k in ("out", "aux") if k in output)
    main, *aux = output if isinstance(output, tuple) else (output,)
    loss = F.cross_entropy(main, target)
    for extra in aux:
        loss = loss + AUX_WEIGHT * F.cross_entropy(extra, target)
    return loss


def images_per_s(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> float:
    """Training images per second, timed as `benchmarks/architectures.py` times classifiers."""
    return architectures.images_per_s(model, x, y, steps, loss_fn=segmentation_loss)


def interleaved(ours: nn.Module, ref: nn.Module, x: Tensor, y: Tensor, steps: int,
                rounds: int) -> tuple[float, float]:
    """Median images/s of each model, alternating which runs first so that drifting load hits both alike."""
    a, b = [], []
    for r in range(rounds):
        first, second = (ours, ref) if r % 2 == 0 else (ref, ours)
        t1, t2 = images_per_s(first, x, y, steps), images_per_s(second, x, y, steps)
        a.append(t1 if first is ours else t2)
        b.append(t2 if first is ours else t1)
    return statistics.median(a), statistics.median(b)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torchvision_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """zrenie's model with torchvision's weights (random, seed 0), and torchvision's."""
    torch.manual_seed(0)
    ref = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=True)
    ours = zrenie.build_model(name, num_classes=NUM_CLASSES, aux_loss=True)
    ours.load_state_dict(ref.state_dict())  # strict: the same modules under the same keys
    return ours, ref


def unet_rows() -> list[tuple[str, Callable[[], nn.Module]]]:
    """zrenie's U-Nets to set beside smp's Unet: the paper's, and one on a ResNet-34 encoder where available."""
    rows = [("unet (paper, width 64)", lambda: zrenie.build_model("unet", num_classes=NUM_CLASSES))]
    try:
        zrenie.build_model("unet", num_classes=NUM_CLASSES, encoder="resnet34")
    except (TypeError, ZrenieError):
        return rows
    rows.append(("unet encoder=resnet34", lambda: zrenie.build_model("unet", num_classes=NUM_CLASSES,
                                                                     encoder="resnet34")))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's); 1 on a machine shared with "
                   "other work, where threads of one side wait for cores the other processes hold")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch < 2:  # DeepLabV3's image pooling branch has batchnorm over one 1x1 map per image
        p.error("--batch must be at least 2 (batchnorm in training needs more than one value per channel)")
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, NUM_CLASSES, (args.batch, args.size, args.size), device=device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}px, "
          f"batch {args.batch}, {args.steps} steps x {args.rounds} rounds")
    print("| model | zrenie img/s | reference | reference img/s | ratio | zrenie params | reference params |")
    print("|---|---|---|---|---|---|---|")
    for name in TORCHVISION_PAIRS:
        ours, ref = (m.to(device) for m in torchvision_pair(name))
        a, b = interleaved(ours, ref, x, y, args.steps, args.rounds)
        print(f"| {name} | {a:.2f} | torchvision {name} | {b:.2f} | {a / b:.3f} | {parameters(ours):,} | "
              f"{parameters(ref):,} |", flush=True)
        del ours, ref
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        print("segmentation_models_pytorch is not installed: no U-Net reference")
        return 0
    torch.manual_seed(0)
    ref = smp.Unet("resnet34", encoder_weights=None, classes=NUM_CLASSES).to(device)
    for label, build in unet_rows():
        torch.manual_seed(0)
        ours = build().to(device)
        a, b = interleaved(ours, ref, x, y, args.steps, args.rounds)
        print(f"| {label} | {a:.2f} | smp Unet(resnet34) | {b:.2f} | - (other architecture) | "
              f"{parameters(ours):,} | {parameters(ref):,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
