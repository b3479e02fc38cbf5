"""Localisation scores: the top detection of each one-object image, its class and its overlap.

`acc1` is the share of images whose best detection has the true class; `miou` the mean IoU of the best
detection's box with the true box over all images (0 for an image without a detection), whatever the
class, as the course's localisation notebook measures the box head on its own. COCO AP comes with them.
"""

from __future__ import annotations

import torch

from zrenie.ops import box_iou
from zrenie.tasks.detect.metrics import METRIC_NAMES, DetectionMetric


class LocalizationMetric(DetectionMetric):
    """`DetectionMetric` plus `acc1` and `miou` of the first (best) detection per image."""

    names = ["loss", "acc1", "miou", *METRIC_NAMES[1:]]

    def update(self, out: dict, batch: dict) -> None:
        start = len(self.mine)
        super().update(out, batch)
        for record, found, truth in zip(self.mine[start:], out["detections"], batch["target"]):
            hit, iou = 0.0, 0.0
            if len(found["boxes"]) and len(truth["boxes"]):
                best = found["scores"].argmax()
                hit = float(int(found["labels"][best]) == int(truth["labels"][0]))
                iou = float(box_iou(found["boxes"][best][None].float().cpu(),
                                    truth["boxes"][:1].as_subclass(torch.Tensor).float().cpu())[0, 0])
            record["hit"], record["iou"] = hit, iou

    def compute(self) -> dict[str, float]:
        scores = super().compute()
        records = self.records if self.records is not None else self.mine
        n = max(len(records), 1)
        return {"loss": scores["loss"], "acc1": sum(r["hit"] for r in records) / n,
                "miou": sum(r["iou"] for r in records) / n, **{k: scores[k] for k in METRIC_NAMES[1:]}}
