"""COCO mAP of a split, as the engine's metric: per-image records gathered from every process, one
COCO evaluation (`cocoeval.evaluate_coco`) on the main process.

Each image's ground truth and detections travel as one record keyed by its dataset index, so under DDP
the records of all shards are gathered, de-duplicated and sorted before rank 0 evaluates them, and the
numbers equal those of a single-process run. The loss is the mean of batch losses weighted by images,
over the batches that report one (NaN when none does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from zrenie.tasks.detect.cocoeval import CocoSummary, coco_from_tensors, encode_masks, evaluate_coco

METRIC_NAMES = ["loss", "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100"]
MASK_NAMES = ["mask_ap", "mask_ap50", "mask_ap75"]  # of models that predict instance masks (Mask R-CNN)


def _array(x: Tensor, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    return x.detach().as_subclass(Tensor).cpu().numpy().astype(dtype).reshape(shape)


class DetectionMetric:
    """Accumulates `{"loss" (optional), "detections": B dicts}` against `batch["target"]` (B dicts).

    Args:
        classes: the class names; label `c` is category `c + 1` of the COCO evaluation.
        masks: also evaluate instance masks ("segm": `mask_ap`, `mask_ap50`, `mask_ap75`) from the targets'
            and detections' "masks" (detections' are probabilities, cut at 0.5 as torchvision's reference does).
    """

    names = METRIC_NAMES
    compute_on_main = True  # a COCO evaluation is expensive: rank 0 computes, the others receive its result

    def __init__(self, classes: list[str], masks: bool = False):
        self.classes, self.masks = list(classes), masks
        if masks:
            self.names = METRIC_NAMES + MASK_NAMES
        self.state: dict[str, Tensor] = {"loss_sum": torch.zeros((), dtype=torch.float64),
                                         "loss_count": torch.zeros((), dtype=torch.float64)}
        self.mine: list[dict] = []
        self.records: list[dict] | None = None
        self.summary: CocoSummary | None = None

    def update(self, out: dict, batch: dict) -> None:
        detections, targets = out["detections"], batch["target"]
        loss = out.get("loss")
        if loss is not None:
            loss = loss.detach()
            if self.state["loss_sum"].device != loss.device:
                self.state = {k: v.to(loss.device) for k, v in self.state.items()}
            self.state["loss_sum"] += loss.double() * len(targets)
            self.state["loss_count"] += len(targets)
        for index, found, truth in zip(batch["index"].tolist(), detections, targets):
            k, n = len(truth["labels"]), len(found["scores"])
            crowd = truth.get("iscrowd")
            if self.masks:  # as RLEs: a few hundred bytes per object instead of H x W
                masks = {"rle": encode_masks(truth["masks"]), "det_rle": encode_masks(found["masks"]),
                         "size": tuple(truth["masks"].shape[-2:])}
            self.mine.append({**(masks if self.masks else {}),
                "index": int(index),
                "boxes": _array(truth["boxes"], np.float64, (k, 4)),
                "labels": _array(truth["labels"], np.int64, (k,)),
                "iscrowd": np.zeros(k, np.int64) if crowd is None else _array(crowd, np.int64, (k,)),
                "det_boxes": _array(found["boxes"], np.float64, (n, 4)),
                "det_scores": _array(found["scores"], np.float64, (n,)),
                "det_labels": _array(found["labels"], np.int64, (n,)),
            })

    def local_records(self) -> list[dict]:
        """This process's images, one record each with its dataset index."""
        return self.mine

    def merge_records(self, records: list[dict]) -> None:
        self.records = records

    def compute(self) -> dict[str, float]:
        records = self.records if self.records is not None else sorted(self.mine, key=lambda r: r["index"])
        targets = [{"boxes": torch.from_numpy(r["boxes"]), "labels": torch.from_numpy(r["labels"]),
                    "iscrowd": torch.from_numpy(r["iscrowd"])} for r in records]
        detections = [{"boxes": torch.from_numpy(r["det_boxes"]), "scores": torch.from_numpy(r["det_scores"]),
                       "labels": torch.from_numpy(r["det_labels"])} for r in records]
        gt, dt = coco_from_tensors(targets, detections, self.classes)
        self.summary = evaluate_coco(gt, dt, "bbox")
        count = self.state["loss_count"].item()
        scores = self.summary.as_dict()
        out = {"loss": self.state["loss_sum"].item() / count if count else float("nan"),
               **{name: scores[name] for name in METRIC_NAMES[1:]}}
        if self.masks:
            for target, found, r in zip(targets, detections, records):
                target.update(rle=r["rle"], size=r["size"])
                found["rle"] = r["det_rle"]
            segm = evaluate_coco(*coco_from_tensors(targets, detections, self.classes, "segm"), "segm").as_dict()
            out.update({f"mask_{name}": segm[name] for name in ("ap", "ap50", "ap75")})
        return out

    def per_class(self) -> dict[str, float]:
        """AP@[.50:.95] of each class of the last `compute` (-1 for a class without ground truth)."""
        if self.summary is None:
            raise RuntimeError("DetectionMetric.per_class() needs compute() first")
        return dict(self.summary.per_class)
