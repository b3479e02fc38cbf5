"""The classification step: cross-entropy on logits, MixUp/CutMix, test-time augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.tasks.classify.metrics import ClassificationMetric


def main_logits(output) -> Tensor:
    """The main logits of a model that may also return auxiliary heads (GoogLeNet, Inception-v3)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _crops(images: Tensor, mode: str) -> list[Tensor]:
    """Views for test-time augmentation, each (B, C, H, W) at the input size.

    five_crop/ten_crop upsample by 8/7 and take the four corners and the centre at the original
    size (the 224-from-256 protocol of AlexNet and VGG, scaled), ten_crop adds their mirrors.
    """
    if mode == "flip":
        return [images, images.flip(3)]
    h, w = images.shape[-2:]
    big = F.interpolate(images, size=(h * 8 // 7, w * 8 // 7), mode="bilinear", align_corners=False,
                        antialias=False)
    bh, bw = big.shape[-2:]
    offsets = [(0, 0), (0, bw - w), (bh - h, 0), (bh - h, bw - w), ((bh - h) // 2, (bw - w) // 2)]
    views = [big[..., y:y + h, x:x + w] for y, x in offsets]
    if mode == "ten_crop":
        views += [v.flip(3) for v in views]
    return views


def tta_logits(model: nn.Module, images: Tensor, mode: str = "flip") -> Tensor:
    """Log of the mean softmax over the test-time views of each image: (B, C)."""
    if mode == "none":
        return main_logits(model(images)).float()
    views = _crops(images, mode)
    probs = sum(main_logits(model(v)).float().softmax(1) for v in views) / len(views)
    return probs.clamp_min(1e-12).log()


def flip_tta_logits(model: nn.Module, images: Tensor) -> Tensor:
    return tta_logits(model, images, "flip")


def mix_batch(images: Tensor, targets: Tensor, num_classes: int, mixup: float, cutmix: float,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """MixUp (Zhang et al. 2018) or CutMix (Yun et al. 2019), one of them per batch, chosen at random.

    Args:
        images: Tensor[B, C, H, W].
        targets: Tensor[B] class indices.
        mixup, cutmix: Beta(alpha, alpha) parameters; 0 turns that one off.

    Returns:
        mixed images and soft targets Tensor[B, num_classes].
    """
    soft = F.one_hot(targets, num_classes).float()
    modes = [m for m, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
    if not modes:
        return images, soft
    pick = int(torch.randint(len(modes), (1,), generator=generator))
    alpha = mixup if modes[pick] == "mixup" else cutmix
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(images), generator=generator).to(images.device)
    if modes[pick] == "mixup":
        mixed = images * lam + images[perm] * (1 - lam)
    else:
        h, w = images.shape[-2:]
        cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        mixed = images.clone()
        mixed[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    return mixed, soft * lam + soft[perm] * (1 - lam)


class ClassifyStep:
    """`train_step` / `eval_step` for batches `{"image": (B, C, H, W), "target": (B,), ...}`.

    Args:
        label_smoothing: as in `F.cross_entropy`.
        tta: test-time augmentation at evaluation: none | flip | five_crop | ten_crop.
        class_weights: Tensor[C] loss weight per class, or None.
        mixup, cutmix: Beta alphas for mixing training batches; 0 disables.
        aux_weight: loss weight of auxiliary heads when the model returns (logits, *aux).
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, tta: str = "none",
                 class_weights: Tensor | None = None, mixup: float = 0.0, cutmix: float = 0.0,
                 aux_weight: float = 0.3):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.tta = tta
        self.class_weights = class_weights
        self.mixup, self.cutmix, self.aux_weight = mixup, cutmix, aux_weight

    def _loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=self.label_smoothing)

    def train_step(self, models: dict[str, nn.Module], batch: dict, ctx=None) -> dict:
        """Cross-entropy of the "model" (plus its auxiliary heads); the engine does backward and step."""
        model = models["model"]
        images, targets = batch["image"], batch["target"]
        labels = targets
        if self.mixup > 0 or self.cutmix > 0:
            images, labels = mix_batch(images, targets, self.num_classes, self.mixup, self.cutmix)
        output = model(images)
        logits = main_logits(output)  # (B, num_classes)
        loss = self._loss(logits, labels)
        if isinstance(output, (tuple, list)):
            # Auxiliary classifiers regularise the middle of deep Inception nets (Szegedy et al. 2014).
            loss = loss + self.aux_weight * sum(self._loss(aux, labels) for aux in output[1:] if aux is not None)
        with torch.no_grad():
            acc = (logits.argmax(1) == targets).float().mean()
        return {"loss": loss, "outputs": logits, "logs": {"acc1": acc}}

    def eval_step(self, models: dict[str, nn.Module], batch: dict) -> dict:
        images, targets = batch["image"], batch["target"]
        logits = tta_logits(models["model"], images, self.tta)
        return {"loss": F.cross_entropy(logits, targets), "outputs": logits, "logs": {}}

    def new_metric(self) -> ClassificationMetric:
        return ClassificationMetric(self.num_classes)
