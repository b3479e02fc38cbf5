"""Classification metrics as sums that add up across processes.

The state is a confusion matrix, a top-k hit count, a loss sum and a sample count; every figure
(top-1, top-5, per-class accuracy, loss) is computed from the summed state, so DDP only needs one
all-reduce of these tensors and gets exactly the single-process numbers.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ClassificationMetric:
    """Accumulates `{"loss", "outputs": logits (B, C)}` step outputs against targets (B,)."""

    def __init__(self, num_classes: int, topk: int = 5):
        self.num_classes = num_classes
        self.topk = min(topk, num_classes)
        self.state: dict[str, Tensor] = {
            "confusion": torch.zeros(num_classes, num_classes, dtype=torch.float64),
            "topk_hits": torch.zeros((), dtype=torch.float64),
            "loss_sum": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.float64),
        }

    def update(self, out: dict, batch: tuple[Tensor, Tensor]) -> None:
        logits, targets = out["outputs"].detach(), batch[1]
        if self.state["confusion"].device != logits.device:
            self.state = {k: v.to(logits.device) for k, v in self.state.items()}
        preds = logits.argmax(1)
        flat = targets * self.num_classes + preds
        self.state["confusion"] += torch.bincount(flat, minlength=self.num_classes ** 2).view(
            self.num_classes, self.num_classes).double()
        top = logits.topk(self.topk, dim=1).indices  # (B, k)
        self.state["topk_hits"] += (top == targets[:, None]).any(1).sum().double()
        self.state["loss_sum"] += out["loss"].detach().double() * len(targets)
        self.state["count"] += len(targets)

    @property
    def names(self) -> list[str]:
        """What `compute` returns, known before any update."""
        return ["loss", "acc1", f"acc{self.topk}", "mean_class_acc"]

    @property
    def confusion(self) -> Tensor:
        """Tensor[C, C] of counts: rows are true classes, columns predicted ones."""
        return self.state["confusion"].cpu()

    def per_class_accuracy(self) -> Tensor:
        cm = self.confusion
        return cm.diag() / cm.sum(1).clamp_min(1)

    def compute(self) -> dict[str, float]:
        count = max(1.0, self.state["count"].item())
        cm = self.confusion
        present = cm.sum(1) > 0
        return {
            "loss": self.state["loss_sum"].item() / count,
            "acc1": cm.diag().sum().item() / count,
            f"acc{self.topk}": self.state["topk_hits"].item() / count,
            "mean_class_acc": self.per_class_accuracy()[present].mean().item() if present.any() else 0.0,
        }
