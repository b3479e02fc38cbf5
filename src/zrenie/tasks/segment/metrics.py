"""Segmentation metrics from one confusion matrix summed over every valid pixel of a split.

The state is a `[K, K]` confusion matrix of pixel counts (rows: true class, columns: predicted), a
loss sum and an image count; every figure comes from the summed state, so the numbers are those of
the whole split (not a mean of batch means) and DDP needs one all-reduce. Pixels whose target is
`ignore_index` count nowhere.

- `iou/<class>` = TP / (TP + FP + FN); `miou` is their mean over the classes that occur in the
  truth or the prediction (a class seen in neither has no IoU, as in the Pascal VOC evaluation).
- `dice` = 2 TP / (2 TP + FP + FN), the mean over the object classes that occur (class 0 is the
  background in every dataset here, and counting it would inflate the score of small objects; for a
  binary dataset it is the object's Dice).
- `pixel_acc` = correct pixels / valid pixels.

The report's worst images are per-image records (dataset index, mean IoU of the image) gathered from
every process.
"""

from __future__ import annotations

import torch
from torch import Tensor


def predictions(logits: Tensor) -> Tensor:
    """Class per pixel `(B, H, W)` from logits `(B, K, H, W)`: argmax, or logit > 0 for one channel."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """`[K, K]` pixel counts (float64), rows true class, columns predicted, ignoring `ignore_index`."""
    valid = target != ignore_index
    flat = target[valid] * num_classes + pred[valid]
    return torch.bincount(flat, minlength=num_classes ** 2).view(num_classes, num_classes).double()


def scores_from_confusion(confusion: Tensor) -> dict[str, Tensor]:
    """Per-class IoU and Dice (NaN for a class absent from truth and prediction) and pixel accuracy."""
    cm = confusion.double()
    tp = cm.diagonal()
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)
    total = cm.sum()
    return {"iou": iou, "dice": dice, "pixel_acc": tp.sum() / total if total > 0 else torch.tensor(0.0)}


def _nanmean(values: Tensor) -> float:
    present = ~values.isnan()
    return values[present].mean().item() if present.any() else 0.0


class SegmentationMetric:
    """Accumulates `{"loss", "outputs": logits (B, K, H, W)}` against `batch["target"]` (B, H, W).

    Args:
        classes: the class names, index 0 the background.
        ignore_index: the target value of pixels that count nowhere.
        worst: how many of the worst images (lowest mean IoU) to keep for the report (0: none).
    """

    def __init__(self, classes: list[str], ignore_index: int = 255, worst: int = 0):
        self.classes, self.ignore_index, self.worst = list(classes), ignore_index, worst
        k = len(self.classes)
        self.state: dict[str, Tensor] = {
            "confusion": torch.zeros(k, k, dtype=torch.float64),
            "loss_sum": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.float64),
        }
        self._per_image: list[Tensor] = []
        self.records: list[dict] = []

    @property
    def names(self) -> list[str]:
        """What `compute` returns, known before any update."""
        return ["loss", "miou", "dice", "pixel_acc", *(f"iou/{c}" for c in self.classes)]

    def update(self, out: dict, batch: dict) -> None:
        logits, target = out["outputs"].detach(), batch["target"]
        if self.state["confusion"].device != logits.device:
            self.state = {k: v.to(logits.device) for k, v in self.state.items()}
        pred = predictions(logits)
        k = len(self.classes)
        self.state["confusion"] += confusion_matrix(pred, target, k, self.ignore_index)
        self.state["loss_sum"] += out["loss"].detach().double() * len(target)
        self.state["count"] += len(target)
        if self.worst:
            self._per_image.append(torch.stack([batch["index"].double(), self._image_miou(pred, target)], 1))

    def _image_miou(self, pred: Tensor, target: Tensor) -> Tensor:
        """Tensor[B]: each image's mean IoU over the classes in its truth or prediction (1 when it has none)."""
        k = len(self.classes)
        valid = (target != self.ignore_index)
        onehot_p = torch.nn.functional.one_hot(pred.clamp(0, k - 1), k).bool() & valid[..., None]
        onehot_t = torch.nn.functional.one_hot(target.clamp(0, k - 1), k).bool() & valid[..., None]
        inter = (onehot_p & onehot_t).flatten(1, 2).sum(1).double()
        union = (onehot_p | onehot_t).flatten(1, 2).sum(1).double()
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.nan)
        present = union > 0
        return torch.where(present.any(1), iou.nan_to_num(0).sum(1) / present.sum(1).clamp_min(1), 1.0)

    def local_records(self) -> list[dict]:
        """This process's worst images, `{"index", "miou"}` each."""
        if not self._per_image:
            return []
        rows = torch.cat(self._per_image).cpu()
        rows = rows[rows[:, 1].argsort()[:self.worst]]
        return [{"index": int(i), "miou": float(m)} for i, m in rows.tolist()]

    def merge_records(self, records: list[dict]) -> None:
        self.records = records

    def examples(self) -> list[dict]:
        """The worst images of all processes, worst first."""
        return sorted(self.records, key=lambda r: r["miou"])[:self.worst]

    @property
    def confusion(self) -> Tensor:
        return self.state["confusion"].cpu()

    def compute(self) -> dict[str, float]:
        scores = scores_from_confusion(self.confusion)
        count = max(1.0, self.state["count"].item())
        return {
            "loss": self.state["loss_sum"].item() / count,
            "miou": _nanmean(scores["iou"]),
            "dice": _nanmean(scores["dice"][1:]) if len(self.classes) > 1 else _nanmean(scores["dice"]),
            "pixel_acc": float(scores["pixel_acc"]),
            # a class in neither truth nor prediction scores 0, as torchmetrics' zero_division default
            **{f"iou/{c}": (0.0 if v != v else v) for c, v in zip(self.classes, scores["iou"].tolist())},
        }
