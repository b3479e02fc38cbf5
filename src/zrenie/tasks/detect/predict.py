"""Detection predictions: boxes drawn on the image, a table row per box, and COCO-results JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from zrenie.report.result import Result
from zrenie.tasks.detect.cocoeval import encode_masks

DRAW_MIN_SIDE = 256  # drawings of smaller images are enlarged to at least this side
RESULTS_JSON = "detections.json"  # COCO results of every predicted image, written beside the pictures


def class_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """One distinct RGB colour per class (matplotlib's tab20, repeated past 20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [tuple(int(255 * c) for c in cmap(k % 20)[:3]) for k in range(max(num_classes, 1))]


def draw_boxes(image: Tensor, boxes: Tensor, labels: Tensor, classes: Sequence[str], scores: Tensor | None = None,
               colour: tuple[int, int, int] | None = None, width: int = 2, min_side: int = DRAW_MIN_SIDE,
               masks: Tensor | None = None) -> Tensor:
    """uint8 Tensor[3, H', W']: the image with each box outlined in its class colour (or `colour`) and captioned
    "class score", and each instance mask (bool Tensor[n, H, W], optional) tinted in that colour. An image whose
    shorter side is under `min_side` is first enlarged by a whole factor (nearest neighbour), so that the
    captions' fixed-size font stays legible beside small objects."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    rgb = image[:3].expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    canvas = (rgb.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    factor = max(1, -(-min_side // min(canvas.shape[-2:])))
    if factor > 1:
        canvas = canvas.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        boxes = boxes * factor
        masks = None if masks is None else masks.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    if len(boxes) == 0:
        return canvas
    palette = class_colours(len(classes))
    names = [classes[int(k)] if 0 <= int(k) < len(classes) else str(int(k)) for k in labels]
    captions = names if scores is None else [f"{n} {float(s):.2f}" for n, s in zip(names, scores)]
    colours = [colour or palette[int(k) % len(palette)] for k in labels]
    if masks is not None:
        canvas = draw_segmentation_masks(canvas, masks.cpu().bool(), alpha=0.45, colors=colours)
    return draw_bounding_boxes(canvas, boxes.detach().cpu().float(), captions, colors=colours, width=width)


class DetectionResult(Result):
    """The boxes found in one image.

    Args:
        source: the image's file name (or `tensor[i]`).
        boxes: Tensor[n, 4] XYXY pixels of the input image; scores: Tensor[n]; labels: Tensor[n] class indices.
        classes: class names.
        image: Tensor[C, H, W] in [0, 1], for the drawing.
        masks: bool Tensor[n, H, W] instance masks in the image's pixels (Mask R-CNN), or None.
    """

    def __init__(self, source: str, boxes: Tensor, scores: Tensor, labels: Tensor, classes: Sequence[str],
                 image: Tensor | None = None, masks: Tensor | None = None):
        self.source, self.classes, self.image = source, list(classes), image
        self.masks = None if masks is None else masks.detach().cpu().bool()
        self.boxes, self.scores, self.labels = boxes.detach().cpu().float(), scores.detach().cpu().float(), \
            labels.detach().cpu().long()

    def detections(self) -> list[dict[str, Any]]:
        """One dict per box, best first: class, score and XYXY pixels rounded to 0.1."""
        return [{"class": self.classes[int(k)], "score": round(float(s), 4),
                 "box": [round(float(v), 1) for v in b]} for b, s, k in zip(self.boxes, self.scores, self.labels)]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.source, "detections": self.detections()}

    def rows(self) -> list[dict[str, str]]:
        found = self.detections()
        if not found:
            return [{"image": self.source, "class": "(nothing)", "score": "", "box (x1, y1, x2, y2)": ""}]
        return [{"image": self.source if i == 0 else "", "class": d["class"], "score": f"{d['score']:.3f}",
                 "box (x1, y1, x2, y2)": ", ".join(f"{v:.0f}" for v in d["box"])} for i, d in enumerate(found)]

    def picture(self) -> np.ndarray:
        """uint8 [H, W, 3]: the image with the boxes drawn."""
        if self.image is None:
            raise ValueError("this result holds no image to draw on")
        return draw_boxes(self.image, self.boxes, self.labels, self.classes, self.scores,
                          masks=self.masks).permute(1, 2, 0).numpy()

    def write_files(self, folder: str | Path) -> list[Path]:
        """`<stem>_boxes.png`: the image with its boxes, labels and scores drawn."""
        if self.image is None:
            return []
        from PIL import Image

        from zrenie.config import atomic_path

        path = Path(folder) / f"{Path(self.source).stem or 'image'}_boxes.png"
        with atomic_path(path) as tmp:
            Image.fromarray(self.picture()).save(tmp, format="PNG")
        return [path]

    @classmethod
    def write_collection(cls, results: Sequence[Result], folder: str | Path) -> list[Path]:
        """`detections.json` (COCO results) and `detections_images.json` (its image ids and categories)."""
        path = write_coco_results(results, folder)
        return [path, path.with_name("detections_images.json")]

    def plot(self, ax=None):
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(5, 5)).add_subplot()
        ax.imshow(self.picture())
        ax.set_title(f"{Path(self.source).name}: {len(self.boxes)} objects", fontsize=9)
        ax.axis("off")
        return ax


def coco_results(results: Sequence[DetectionResult]) -> dict[str, Any]:
    """The predictions as COCO: `images` (id, file_name, size) and `annotations` in the results format
    (image_id, category_id = class index + 1, bbox XYWH, score), with `categories` naming the ids."""
    images, annotations = [], []
    for image_id, r in enumerate(results, start=1):
        if r.image is not None:
            images.append({"id": image_id, "file_name": r.source, "height": int(r.image.shape[-2]),
                           "width": int(r.image.shape[-1])})
        else:
            images.append({"id": image_id, "file_name": r.source})
        segms = [] if r.masks is None else encode_masks(r.masks)
        for i, (b, s, k) in enumerate(zip(r.boxes.tolist(), r.scores.tolist(), r.labels.tolist())):
            annotations.append({"image_id": image_id, "category_id": int(k) + 1, "score": round(s, 5),
                                "bbox": [round(b[0], 2), round(b[1], 2), round(b[2] - b[0], 2), round(b[3] - b[1], 2)]})
            if segms:  # the RLE's counts as text, so that the file is JSON
                annotations[-1]["segmentation"] = {"size": segms[i]["size"], "counts": segms[i]["counts"].decode()}
    classes = results[0].classes if results else []
    return {"images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(classes)]}


def write_coco_results(results: Sequence[DetectionResult], folder: str | Path) -> Path:
    """`folder/detections.json`: the COCO results list (what `zrenie detect cocoeval` and pycocotools'
    `loadRes` read); the image ids are the order of the images, named in `detections_images.json`."""
    from zrenie.config import atomic_path

    coco = coco_results(results)
    path = Path(folder) / RESULTS_JSON
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(coco["annotations"]))
    with atomic_path(path.with_name("detections_images.json")) as tmp:
        tmp.write_text(json.dumps({"images": coco["images"], "categories": coco["categories"]}, indent=1))
    return path
