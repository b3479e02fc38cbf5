"""YOLO's anchor head (YOLOv2, Redmon and Farhadi 2017; YOLOv3, 2018): box shapes chosen from the data.

Each level of the neck (strides 8, 16, 32 by default, as YOLOv3) has A anchors, (w, h) priors in pixels.
YOLOv2 picks them by k-means on the training boxes' sizes with the distance `1 - IoU` (boxes aligned at
one centre), so that a large box does not weigh more than a small one (`kmeans_anchors`). Every cell
predicts, per anchor, `(tx, ty, tw, th, objectness, K class logits)`:

    cx = (col + sigmoid(tx)) * cell_w    w = anchor_w * exp(tw)    score(c) = sigmoid(obj) * sigmoid(cls_c)

An object is learnt by one prediction: the anchor (of all levels) whose shape best overlaps its own, in
the cell of that anchor's level that holds its centre (YOLOv3's rule). The loss, summed per image and
averaged over the batch: `1 - CIoU` between the decoded box and the truth (CIoU: Zheng et al. 2020, the
box loss of YOLOv4/v5, chosen over v3's squared error on the offsets because it is measured on the box
itself, at every scale alike); binary cross-entropy for objectness (target 1 on the assigned predictions,
0 elsewhere) and for each class on the assigned ones (YOLOv3's independent sigmoids). As in YOLOv3, a
prediction that is not assigned but already overlaps an object by IoU > 0.5 is left out of the no-object
term: it is a good box, and punishing it would fight the assigned one.

With two objects wanting one (level, cell, anchor), the better shape match keeps it (then the first).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import ConfigError, ShapeError
from zrenie.nn.layers import ConvBNAct
from zrenie.ops import box_iou, complete_box_iou
from zrenie.ops.anchors import grid_anchors
from zrenie.tasks.detect.models_yolo_v1 import cell_of_centres, winners

DEFAULT_STRIDES = (8, 16, 32)
# (w, h) pixels per level, sorted by area and three per level as YOLOv3 does: `kmeans_anchors(wh, 9)` (seed 0) of
# the 1881 training boxes (10-56 pixels) of the built-in `shapes` scenes at 128 pixels, rounded; a box
# overlaps its best anchor by a shape IoU of 0.87 on average.
DEFAULT_ANCHORS = (
    ((21, 15), (19, 22), (25, 24)),
    ((29, 30), (42, 25), (26, 43)),
    ((36, 36), (42, 43), (50, 49)),
)
IGNORE_IOU = 0.5  # YOLOv3's threshold
OBJ_PRIOR = 0.01  # initial objectness: most of the ~1000 predictions of a 128-pixel image are background
MAX_LOG_SCALE = 8.0  # exp(tw) is capped at e^8 ~ 3000 x the anchor, so an early step cannot overflow


def shape_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """IoU of box shapes placed at one centre: Tensor[N, 2] and Tensor[M, 2] (w, h) -> Tensor[N, M]."""
    inter = torch.min(wh1[:, None, 0], wh2[None, :, 0]) * torch.min(wh1[:, None, 1], wh2[None, :, 1])
    union = wh1[:, None].prod(-1) + wh2[None].prod(-1) - inter
    return inter / union.clamp(min=1e-12)


def kmeans_anchors(boxes_wh: Tensor, k: int, iters: int = 300, seed: int = 0) -> Tensor:
    """YOLOv2's anchors: k-means of box sizes under the distance `1 - shape IoU`.

    Starts from `k` distinct boxes drawn with `seed`; each step gives every box to its nearest centroid
    (the first on ties) and moves each centroid to the mean (w, h) of its boxes (an empty cluster keeps its
    centroid); stops when no box changes cluster.

    Args:
        boxes_wh: Tensor[N, 2] (w, h) of the training boxes, N >= k.
        k: how many anchors.
    Returns:
        Tensor[k, 2] (w, h), sorted by area.
    """
    if boxes_wh.dim() != 2 or boxes_wh.shape[1] != 2:
        raise ShapeError(f"kmeans_anchors: boxes_wh must be (N, 2), got {tuple(boxes_wh.shape)}")
    if not 1 <= k <= len(boxes_wh):
        raise ConfigError(f"kmeans_anchors: k must be between 1 and the number of boxes ({len(boxes_wh)}), got {k}")
    wh = boxes_wh.double()
    generator = torch.Generator().manual_seed(seed)
    centroids = wh[torch.randperm(len(wh), generator=generator)[:k]].clone()
    assign = None
    for _ in range(iters):
        new = (1 - shape_iou(wh, centroids)).argmin(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centroids[j] = members.mean(0)
    return centroids[centroids.prod(1).argsort()].to(boxes_wh.dtype)


def assign_anchors(gt_boxes: Tensor, anchors: Tensor, grids: Sequence[Sequence[int]],
                   image_size: Sequence[int]) -> dict[str, Tensor]:
    """One image's objects -> the predictions that learn them.

    Args:
        gt_boxes: Tensor[k, 4] XYXY pixels.
        anchors: Tensor[L, A, 2] (w, h) pixels per level.
        grids: (rows, cols) of each level's map; cells are `image / grid` pixels.
        image_size: (H, W).

    Returns:
        "gt", "level", "anchor", "row", "col": Tensor[P] int64 each, one entry per object that keeps its
        slot (P <= k).
    """
    num_anchors = anchors.shape[1]
    wh = gt_boxes[:, 2:] - gt_boxes[:, :2]
    fit = shape_iou(wh, anchors.reshape(-1, 2).to(wh))  # (k, L * A)
    best_iou, best = fit.max(1) if len(gt_boxes) else (wh.new_zeros(0), wh.new_zeros(0, dtype=torch.long))
    level, anchor = best // num_anchors, best % num_anchors
    row, col = gt_boxes.new_zeros(0, dtype=torch.long), gt_boxes.new_zeros(0, dtype=torch.long)
    if len(gt_boxes):
        rows_cols = [cell_of_centres(gt_boxes, grid, image_size) for grid in grids]
        row = torch.stack([rc[0] for rc in rows_cols])[level, torch.arange(len(level))]
        col = torch.stack([rc[1] for rc in rows_cols])[level, torch.arange(len(level))]
    width = max(int(g[1]) for g in grids) if grids else 1
    height = max(int(g[0]) for g in grids) if grids else 1
    slot = ((level * height + row) * width + col) * num_anchors + anchor
    keep = winners(slot, best_iou)
    gt = keep.nonzero().squeeze(1)
    return {"gt": gt, "level": level[gt], "anchor": anchor[gt], "row": row[gt], "col": col[gt]}


def cell_priors(shapes: Sequence[Sequence[int]], anchors: Tensor, image_size: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The anchors of every level tiled over its grid, in the order of the heads' flattened outputs.

    Args:
        shapes: (rows, cols) of each level's map; anchors: Tensor[L, A, 2] (w, h) pixels; image_size: (H, W).

    Returns:
        priors: Tensor[P, 4] XYXY pixels, each anchor centred on its cell's top-left corner (`grid_anchors`
            with offset 0: YOLO adds `sigmoid(t) * cell` to it); cells: Tensor[P, 2] (w, h) of its cell.
    """
    steps = [(image_size[0] / h, image_size[1] / w) for h, w in shapes]  # cells are image / grid pixels
    priors = grid_anchors(shapes, steps, anchors.tolist(), offset=0.0).to(anchors.device)
    counts = [h * w * anchors.shape[1] for h, w in shapes]
    cells = torch.tensor([(sw, sh) for sh, sw in steps], dtype=priors.dtype, device=priors.device)
    return priors, cells.repeat_interleave(torch.tensor(counts, device=priors.device), 0)


def decode_yolo_boxes(raw: Tensor, priors: Tensor, cells: Tensor) -> Tensor:
    """YOLOv2's box from (tx, ty, tw, th): centre `corner + sigmoid(t_xy) * cell`, size `anchor * exp(t_wh)`.

    Args:
        raw: Tensor[..., P, 4]; priors, cells: from `cell_priors`.
    Returns:
        Tensor[..., P, 4] XYXY pixels.
    """
    centre = (priors[:, :2] + priors[:, 2:]) / 2 + raw[..., :2].sigmoid() * cells
    size = (priors[:, 2:] - priors[:, :2]) * raw[..., 2:4].clamp(max=MAX_LOG_SCALE).exp()
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def _flat_level_index(assigned: dict[str, Tensor], shapes: Sequence[Sequence[int]], num_anchors: int) -> Tensor:
    """Positions of the assigned predictions in one image's predictions of all levels, concatenated."""
    sizes = torch.tensor([h * w * num_anchors for h, w in shapes])
    offsets = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]]).to(assigned["level"].device)
    widths = torch.tensor([w for _, w in shapes], device=assigned["level"].device)
    lw = widths[assigned["level"]]
    return offsets[assigned["level"]] + (assigned["row"] * lw + assigned["col"]) * num_anchors + assigned["anchor"]


def yolo_anchor_loss(outputs: Sequence[Tensor], targets: Sequence[dict], anchors: Tensor, image_size: Sequence[int],
                     ignore_iou: float = IGNORE_IOU) -> dict[str, Tensor]:
    """1 - CIoU on the assigned boxes, BCE objectness (minus the ignored), BCE classes on the assigned.

    Args:
        outputs: per level Tensor[N, H, W, A, 5 + K] raw (tx, ty, tw, th, obj, classes).
        targets: N dicts with "boxes" Tensor[k, 4] XYXY pixels and "labels" Tensor[k] int64.
        anchors: Tensor[L, A, 2] (w, h) pixels.

    Returns:
        {"loss", "box", "obj", "noobj", "cls"}, each summed per image and averaged over the batch.
    """
    n = outputs[0].shape[0]
    if len(targets) != n:
        raise ShapeError(f"yolo: {n} images but {len(targets)} targets")
    shapes = [tuple(o.shape[1:3]) for o in outputs]
    num_anchors = anchors.shape[1]
    raw = torch.cat([o.float().reshape(n, -1, o.shape[-1]) for o in outputs], 1)  # (N, P, 5 + K)
    boxes = decode_yolo_boxes(raw[..., :4], *cell_priors(shapes, anchors, image_size))  # (N, P, 4)
    zero = raw.new_zeros(())
    box, obj, noobj, cls = zero, zero, zero, zero
    for i, target in enumerate(targets):
        gt = torch.as_tensor(target["boxes"], dtype=torch.float32, device=raw.device).reshape(-1, 4)
        labels = torch.as_tensor(target["labels"], device=raw.device).long().reshape(-1)
        negative = torch.ones(raw.shape[1], dtype=torch.bool, device=raw.device)
        if len(gt):
            with torch.no_grad():
                negative &= box_iou(boxes[i].detach(), gt).nan_to_num(0).max(1).values <= ignore_iou
            assigned = assign_anchors(gt, anchors, shapes, image_size)
            flat = _flat_level_index(assigned, shapes, num_anchors)
            negative[flat] = False
            matched = gt[assigned["gt"]]
            box = box + (1 - complete_box_iou(boxes[i, flat], matched).diagonal()).sum()
            obj = obj + F.binary_cross_entropy_with_logits(raw[i, flat, 4], torch.ones_like(flat, dtype=raw.dtype),
                                                           reduction="sum")
            onehot = F.one_hot(labels[assigned["gt"]], raw.shape[-1] - 5).to(raw.dtype)
            cls = cls + F.binary_cross_entropy_with_logits(raw[i, flat, 5:], onehot, reduction="sum")
        logits = raw[i, negative, 4]
        noobj = noobj + F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="sum")
    box, obj, noobj, cls = (part / n for part in (box, obj, noobj, cls))
    return {"loss": box + obj + noobj + cls, "box": box.detach(), "obj": obj.detach(), "noobj": noobj.detach(),
            "cls": cls.detach()}


def yolo_anchor_candidates(outputs: Sequence[Tensor], anchors: Tensor,
                           image_size: Sequence[int]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Every (prediction, class) of each image as (boxes XYXY pixels clipped to the image, scores
    `sigmoid(obj) * sigmoid(cls)`, labels), for `select_detections`."""
    n = outputs[0].shape[0]
    raw = torch.cat([o.float().reshape(n, -1, o.shape[-1]) for o in outputs], 1)  # (N, P, 5 + K)
    shapes = [tuple(o.shape[1:3]) for o in outputs]
    boxes = decode_yolo_boxes(raw[..., :4], *cell_priors(shapes, anchors, image_size))
    limit = torch.tensor([image_size[1], image_size[0]] * 2, device=boxes.device, dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    scores = raw[..., 4:5].sigmoid() * raw[..., 5:].sigmoid()  # (N, P, K)
    k = scores.shape[-1]
    labels = torch.arange(k, device=raw.device).expand_as(scores)
    boxes = boxes[:, :, None, :].expand(-1, -1, k, -1)
    return [(boxes[i].reshape(-1, 4), scores[i].reshape(-1), labels[i].reshape(-1)) for i in range(n)]


class YOLOAnchorHead(nn.Module):
    """Per level a 3x3 conv-BN-ReLU and a 1x1 conv to `A (5 + K)` numbers per cell.

    Args:
        in_channels: channels of the neck's maps.
        num_classes: K.
        anchors: per level, A (w, h) pairs in pixels (every level the same A).
        ignore_iou: predictions overlapping an object above this are not pushed to background.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 anchors: Sequence[Sequence[Sequence[float]]] = DEFAULT_ANCHORS, ignore_iou: float = IGNORE_IOU):
        super().__init__()
        counts = {len(level) for level in anchors}
        if not anchors or len(counts) != 1 or any(len(wh) != 2 or min(wh) <= 0 for lv in anchors for wh in lv):
            raise ConfigError(f"model.kwargs.anchors: expected per level the same number of positive (w, h) pairs, "
                              f"got {anchors!r}")
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))  # (L, A, 2)
        self.num_anchors, self.num_classes, self.ignore_iou = counts.pop(), num_classes, ignore_iou
        out = self.num_anchors * (5 + num_classes)
        self.levels = nn.ModuleList(
            nn.Sequential(ConvBNAct(in_channels, in_channels, 3), nn.Conv2d(in_channels, out, 1)) for _ in anchors)
        for level in self.levels:
            bias = level[-1].bias.data.view(self.num_anchors, 5 + num_classes)
            bias[:, 4] = -math.log((1 - OBJ_PRIOR) / OBJ_PRIOR)

    def forward(self, maps: list[Tensor]) -> list[Tensor]:
        """One map per level -> per level Tensor[N, H, W, A, 5 + K]."""
        outs = []
        for level, x in zip(self.levels, maps):
            y = level(x)  # (N, A (5 + K), H, W)
            n, _, h, w = y.shape
            outs.append(y.view(n, self.num_anchors, 5 + self.num_classes, h, w).permute(0, 3, 4, 1, 2))
        return outs

    def loss(self, outputs: list[Tensor], targets: Sequence[dict], image_size: Sequence[int]) -> dict[str, Tensor]:
        return yolo_anchor_loss(outputs, targets, self.anchors, image_size, self.ignore_iou)

    def candidates(self, outputs: list[Tensor], image_size: Sequence[int]) -> list[tuple[Tensor, Tensor, Tensor]]:
        return yolo_anchor_candidates(outputs, self.anchors, image_size)
