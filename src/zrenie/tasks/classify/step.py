"""The classification step: cross-entropy on logits, optional flip test-time augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.tasks.classify.metrics import ClassificationMetric


def flip_tta_logits(model: nn.Module, images: Tensor) -> Tensor:
    """Log of the mean of the softmax over the image and its horizontal mirror: (B, C)."""
    probs = model(images).float().softmax(1) + model(images.flip(3)).float().softmax(1)
    return (probs / 2).clamp_min(1e-12).log()


class ClassifyStep:
    """`train_step` / `eval_step` for `(images (B, C, H, W), targets (B,))` batches."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, tta: bool = False):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.tta = tta

    def train_step(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict:
        images, targets = batch
        logits = model(images)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            acc = (logits.argmax(1) == targets).float().mean()
        return {"loss": loss, "outputs": logits, "logs": {"acc1": acc.item()}}

    def eval_step(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict:
        images, targets = batch
        logits = flip_tta_logits(model, images) if self.tta else model(images).float()
        return {"loss": F.cross_entropy(logits, targets), "outputs": logits, "logs": {}}

    def new_metric(self) -> ClassificationMetric:
        return ClassificationMetric(self.num_classes)
