"""The segmentation report: per-class IoU and Dice, and the worst test images beside their truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zrenie.report.html import Section
from zrenie.tasks.segment.metrics import scores_from_confusion
from zrenie.tasks.segment.predict import overlay

IOU_PNG = "per_class_iou.png"
WORST_PNG = "worst_images.png"


def prediction_grid(rows: list[tuple], classes: list[str], out_png: Path) -> None:
    """Rows of (image, truth overlay, prediction overlay, error map in red)."""
    from zrenie.report.plots import image_grid

    tiles, captions = [], []
    for image, truth, pred, miou in rows:
        rgb = image[:3].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
        valid = truth != 255
        error = np.zeros((*truth.shape, 3), dtype=np.uint8)
        error[(pred != truth).numpy() & valid.numpy()] = (220, 40, 40)
        for picture, caption in ((rgb, "image"), (overlay(image, truth.clamp(max=len(classes) - 1), len(classes)),
                                                  "truth"),
                                 (overlay(image, pred, len(classes)), f"prediction (mIoU {miou:.2f})"),
                                 (error, "errors")):
            tile = picture if isinstance(picture, torch.Tensor) else torch.from_numpy(picture).permute(2, 0, 1) / 255
            tiles.append(tile.float())
            captions.append(caption)
    image_grid(torch.stack(tiles), captions, out_png, ncols=4)


def segmentation_sections(run_dir: Path, tested: dict[str, Any], classes: list[str]) -> list[Section]:
    """Writes `per_class_iou.png` and `worst_images.png` into the run folder; returns their sections."""
    run_dir = Path(run_dir)
    scores = scores_from_confusion(tested["confusion"])
    iou, dice = scores["iou"].tolist(), scores["dice"].tolist()
    from zrenie.report.plots import class_bars  # matplotlib, imported on use

    class_bars(iou, classes, "IoU on the test split", run_dir / IOU_PNG)
    rows = [{"class": c, "IoU": i, "Dice": d, "pixels": int(n)}
            for c, i, d, n in zip(classes, iou, dice, tested["confusion"].sum(1).tolist())]
    sections = [Section(title="Per-class IoU and Dice", images=[IOU_PNG], table=rows,
                        text="Over every valid test pixel: IoU = TP / (TP + FP + FN), Dice = 2 TP / (2 TP + FP + FN); "
                             "pixels counts the class's true pixels. A class in neither truth nor prediction has none.")]
    if tested.get("worst"):
        prediction_grid(tested["worst"], classes, run_dir / WORST_PNG)
        sections.append(Section(title="Worst test images", images=[WORST_PNG],
                                text="The test images with the lowest mean IoU: image, truth, prediction, and the "
                                     "wrongly classified pixels in red."))
    return sections
