"""The detection report: AP per class, and test images with their true and predicted boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zrenie.report.html import Section
from zrenie.tasks.detect.predict import draw_boxes

AP_PNG = "per_class_ap.png"
EXAMPLES_PNG = "test_detections.png"
TRUTH_COLOUR = (40, 200, 60)
GRID_SIDE = 128  # tiles are drawn at least this large, so captions stay small beside the objects


def truth_and_prediction_grid(examples: list[tuple], classes: list[str], out_png: Path) -> None:
    """Pairs of tiles per image: its true boxes (green) and the detections (class colours, with scores)."""
    from zrenie.report.plots import image_grid

    tiles, captions = [], []
    for image, truth, found in examples:
        tiles.append(draw_boxes(image, truth["boxes"], truth["labels"], classes, colour=TRUTH_COLOUR,
                                min_side=GRID_SIDE))
        captions.append(f"truth: {len(truth['boxes'])}")
        tiles.append(draw_boxes(image, found["boxes"], found["labels"], classes, found["scores"],
                                min_side=GRID_SIDE))
        captions.append(f"found: {len(found['boxes'])}")
    image_grid(torch.stack(tiles).float() / 255, captions, out_png, ncols=6)


def detection_sections(run_dir: Path, tested: dict[str, Any], classes: list[str]) -> list[Section]:
    """Writes `per_class_ap.png` and `test_detections.png` into the run folder; returns their sections."""
    run_dir = Path(run_dir)
    sections = []
    per_class = tested.get("per_class") or {}
    if per_class:
        from zrenie.report.plots import class_bars  # matplotlib, imported on use

        class_bars(list(per_class.values()), list(per_class), "AP@[.50:.95] on the test split", run_dir / AP_PNG)
        sections.append(Section(title="AP per class", images=[AP_PNG],
                                table=[{"class": c, "AP": v} for c, v in per_class.items()],
                                text="COCO AP averaged over IoU 0.50:0.05:0.95 for each class on the test split; "
                                     "-1 where the split holds no object of the class."))
    if tested.get("examples"):
        truth_and_prediction_grid(tested["examples"], classes, run_dir / EXAMPLES_PNG)
        sections.append(Section(title="Test images", images=[EXAMPLES_PNG],
                                text="Each test image twice: its true boxes in green, then the detections with "
                                     "score >= 0.3 in their class colours."))
    return sections
