"""Classification metrics as sums that add up across processes, and the most confident mistakes.

The state is a confusion matrix, a top-k hit count, a loss sum and a sample count; every figure
(top-1, top-k, per-class accuracy, loss) is computed from the summed state, so DDP only needs one
all-reduce of these tensors and gets exactly the single-process numbers. The mistakes the report
shows are per-sample records keyed by dataset index, gathered from every process.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ShapeError


def per_class_accuracy(confusion: Tensor | np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class recall ("accuracy of class c") and precision from a confusion matrix.

    Args:
        confusion: `[C, C]` counts, rows = true class, columns = predicted class.

    Returns:
        `(accuracy, precision, support)`, each `Tensor[C]`: accuracy = diagonal / row sum,
        precision = diagonal / column sum, support = row sum. A class with no true samples
        (or never predicted, for precision) gets NaN, not 0: its accuracy is undefined.
    """
    cm = torch.as_tensor(confusion).detach().cpu().double()
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ShapeError(f"confusion matrix must be [C, C], got {list(cm.shape)}")
    correct = cm.diagonal()
    support = cm.sum(dim=1)
    predicted = cm.sum(dim=0)
    accuracy = torch.where(support > 0, correct / support.clamp(min=1), torch.full_like(correct, float("nan")))
    precision = torch.where(predicted > 0, correct / predicted.clamp(min=1), torch.full_like(correct, float("nan")))
    return accuracy, precision, support


class ClassificationMetric:
    """Accumulates `{"loss", "outputs": logits (B, C)}` step outputs against `batch["target"]` (B,).

    Args:
        topk: the k of the top-k accuracy (at most the number of classes).
        mistakes: how many of the most confident mistakes to keep for the report (0: none).
    """

    def __init__(self, num_classes: int, topk: int = 5, mistakes: int = 0):
        self.num_classes = num_classes
        self.topk = min(topk, num_classes)
        self.mistakes = mistakes
        self.state: dict[str, Tensor] = {
            "confusion": torch.zeros(num_classes, num_classes, dtype=torch.float64),
            "topk_hits": torch.zeros((), dtype=torch.float64),
            "loss_sum": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.float64),
        }
        self._wrong: list[Tensor] = []  # per batch: (n, 4) index, true, predicted, confidence
        self.records: list[dict] = []

    @property
    def names(self) -> list[str]:
        """What `compute` returns, known before any update."""
        return ["loss", "acc1", f"acc{self.topk}", "mean_class_acc"]

    def update(self, out: dict, batch: dict) -> None:
        logits, targets = out["outputs"].detach(), batch["target"]
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
        if self.mistakes:
            conf = logits.float().softmax(1).max(1).values
            wrong = preds != targets
            self._wrong.append(torch.stack([batch["index"][wrong].double(), targets[wrong].double(),
                                            preds[wrong].double(), conf[wrong].double()], 1))

    def local_records(self) -> list[dict]:
        """This process's most confident mistakes, `{"index", "true", "pred", "conf"}` each."""
        if not self._wrong:
            return []
        rows = torch.cat(self._wrong).cpu()
        rows = rows[rows[:, 3].argsort(descending=True)[:self.mistakes]]
        return [{"index": int(i), "true": int(t), "pred": int(p), "conf": float(c)} for i, t, p, c in rows.tolist()]

    def merge_records(self, records: list[dict]) -> None:
        self.records = records

    def examples(self) -> list[dict]:
        """The most confident mistakes of all processes, most confident first: they say most about what the
        model gets wrong."""
        return sorted(self.records, key=lambda r: -r["conf"])[:self.mistakes]

    @property
    def confusion(self) -> Tensor:
        """Tensor[C, C] of counts: rows are true classes, columns predicted ones."""
        return self.state["confusion"].cpu()

    def per_class_accuracy(self) -> Tensor:
        """Tensor[C]: recall per class, NaN for a class without samples."""
        return per_class_accuracy(self.confusion)[0]

    def compute(self) -> dict[str, float]:
        count = max(1.0, self.state["count"].item())
        cm = self.confusion
        per_class = self.per_class_accuracy()
        present = ~per_class.isnan()
        return {
            "loss": self.state["loss_sum"].item() / count,
            "acc1": cm.diag().sum().item() / count,
            f"acc{self.topk}": self.state["topk_hits"].item() / count,
            "mean_class_acc": per_class[present].mean().item() if present.any() else 0.0,
        }
