"""YOLOv1's head ("You Only Look Once", Redmon et al. 2016): an S x S grid, B boxes and one class per cell.

Each cell predicts B boxes `(x, y, sqrt w, sqrt h, confidence)` and one class distribution. `x, y` are the
centre's offset inside the cell, `w, h` fractions of the image. The cell that holds an object's centre is
responsible for it, and of its B predictors the one whose current box has the highest IoU with the object
learns it. The loss is the paper's sum-squared error (its equation 3):

    5 * sum_obj [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
    + sum_obj (C - IoU(pred, truth))^2 + 0.5 * sum_noobj C^2 + sum_cells_with_object sum_c (p(c) - p^(c))^2

The paper's last layer is linear; here x, y and C go through a sigmoid and the classes through a softmax,
so that every decoded number is in its range from the first step (the squared errors are the paper's, on
those values). At test time a box's score for class c is `C * p(c)`, the paper's class-specific confidence.
One class per cell is v1's limit: two object centres in one cell leave one of them unlearnt (here the
larger one is kept), which is what the anchor head of `models_yolo_anchor` removes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import ShapeError
from zrenie.nn.layers import ConvBNAct

LAMBDA_COORD, LAMBDA_NOOBJ = 5.0, 0.5  # the paper's weights (section 2.2)


def paired_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of each box with the box at the same index: Tensor[..., 4] XYXY twice -> Tensor[...]."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    union = area1 + area2 - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def cell_of_centres(boxes: Tensor, grid: Sequence[int], image_size: Sequence[int]) -> tuple[Tensor, Tensor]:
    """(row, col) of the grid cell holding each box's centre, cells of size `image / grid`.

    Args:
        boxes: Tensor[k, 4] XYXY pixels; grid: (rows, cols); image_size: (H, W).
    """
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 * grid[1] / image_size[1]
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 * grid[0] / image_size[0]
    col = cx.floor().long().clamp(0, grid[1] - 1)
    row = cy.floor().long().clamp(0, grid[0] - 1)
    return row, col


def winners(cell: Tensor, priority: Tensor) -> Tensor:
    """Which of several objects that claim one slot keeps it: the highest priority, then the first.

    Args:
        cell: Tensor[k] int64 slot of each object; priority: Tensor[k].
    Returns:
        Tensor[k] bool, one True per distinct slot.
    """
    index = torch.arange(len(cell), device=cell.device)
    same = cell[:, None] == cell[None, :]
    beaten = (priority[None, :] > priority[:, None]) | ((priority[None, :] == priority[:, None])
                                                       & (index[None, :] < index[:, None]))
    return ~(same & beaten).any(1)


def split_v1(outputs: Tensor, num_boxes: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The head's raw Tensor[N, S_h, S_w, 5B + K] -> (xy (N, S_h, S_w, B, 2) in [0, 1] of the cell,
    sqrt_wh (N, S_h, S_w, B, 2) in image fractions, confidence (N, S_h, S_w, B), class probabilities
    (N, S_h, S_w, K))."""
    n, sh, sw, _ = outputs.shape
    boxes = outputs[..., :5 * num_boxes].reshape(n, sh, sw, num_boxes, 5)
    return boxes[..., :2].sigmoid(), boxes[..., 2:4], boxes[..., 4].sigmoid(), outputs[..., 5 * num_boxes:].softmax(-1)


def v1_boxes(xy: Tensor, sqrt_wh: Tensor, image_size: Sequence[int]) -> Tensor:
    """Cell offsets and square-root sizes -> Tensor[N, S_h, S_w, B, 4] XYXY pixels."""
    sh, sw = xy.shape[1:3]
    h, w = float(image_size[0]), float(image_size[1])
    cols = torch.arange(sw, device=xy.device, dtype=xy.dtype).view(1, 1, sw, 1)
    rows = torch.arange(sh, device=xy.device, dtype=xy.dtype).view(1, sh, 1, 1)
    cx = (cols + xy[..., 0]) * (w / sw)
    cy = (rows + xy[..., 1]) * (h / sh)
    bw, bh = sqrt_wh[..., 0].clamp(min=0) ** 2 * w, sqrt_wh[..., 1].clamp(min=0) ** 2 * h
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)


def yolo_v1_assign(pred_boxes: Tensor, gt_boxes: Tensor, image_size: Sequence[int]) -> tuple[Tensor, Tensor]:
    """One image's responsibilities: which object each cell holds and which of its predictors learns it.

    Args:
        pred_boxes: Tensor[S_h, S_w, B, 4] XYXY pixels, the current predictions (no gradient needed).
        gt_boxes: Tensor[k, 4] XYXY pixels.
        image_size: (H, W).

    Returns:
        gt_index: Tensor[S_h, S_w] int64, the object of each cell (-1: none; of two centres in one cell
            the larger box, then the first, is kept); responsible: Tensor[S_h, S_w, B] bool, True for the
            predictor with the highest IoU with its cell's object (the first on ties).
    """
    sh, sw, b, _ = pred_boxes.shape
    gt_index = torch.full((sh, sw), -1, dtype=torch.long, device=pred_boxes.device)
    responsible = torch.zeros(sh, sw, b, dtype=torch.bool, device=pred_boxes.device)
    if len(gt_boxes) == 0:
        return gt_index, responsible
    row, col = cell_of_centres(gt_boxes, (sh, sw), image_size)
    area = (gt_boxes[:, 2:] - gt_boxes[:, :2]).prod(-1)
    keep = winners(row * sw + col, area)
    idx = keep.nonzero().squeeze(1)
    row, col = row[idx], col[idx]
    gt_index[row, col] = idx
    ious = paired_iou(pred_boxes[row, col], gt_boxes[idx, None, :])  # (kept, B)
    responsible[row, col, ious.argmax(1)] = True
    return gt_index, responsible


def yolo_v1_loss(outputs: Tensor, targets: Sequence[dict], num_boxes: int, image_size: Sequence[int],
                 lambda_coord: float = LAMBDA_COORD, lambda_noobj: float = LAMBDA_NOOBJ) -> dict[str, Tensor]:
    """The paper's sum-squared loss, summed over each image and averaged over the batch.

    Args:
        outputs: Tensor[N, S_h, S_w, 5B + K] raw head outputs.
        targets: N dicts with "boxes" Tensor[k, 4] XYXY pixels and "labels" Tensor[k] int64.
        num_boxes: B; image_size: (H, W).

    Returns:
        {"loss", "coord", "obj", "noobj", "cls"}, the last four detached.
    """
    if len(targets) != outputs.shape[0]:
        raise ShapeError(f"yolo: {outputs.shape[0]} images but {len(targets)} targets")
    outputs = outputs.float()
    xy, sqrt_wh, conf, probs = split_v1(outputs, num_boxes)
    pred = v1_boxes(xy, sqrt_wh, image_size).detach()
    n, sh, sw = outputs.shape[:3]
    h, w = float(image_size[0]), float(image_size[1])
    zero = outputs.new_zeros(())
    coord, obj, noobj, cls = zero, zero, zero, zero
    for i, target in enumerate(targets):
        gt = torch.as_tensor(target["boxes"], dtype=torch.float32, device=outputs.device).reshape(-1, 4)
        labels = torch.as_tensor(target["labels"], device=outputs.device).long().reshape(-1)
        gt_index, responsible = yolo_v1_assign(pred[i], gt, image_size)
        noobj = noobj + (conf[i][~responsible] ** 2).sum()
        if not responsible.any():
            continue
        r, c, k = responsible.nonzero(as_tuple=True)
        g = gt[gt_index[r, c]]  # (P, 4) the object of each responsible predictor
        centre = (g[:, :2] + g[:, 2:]) / 2
        target_xy = centre * torch.tensor([sw / w, sh / h], device=g.device) - torch.stack([c, r], 1)
        target_sqrt = ((g[:, 2:] - g[:, :2]) / torch.tensor([w, h], device=g.device)).sqrt()
        coord = coord + ((xy[i, r, c, k] - target_xy) ** 2).sum() + ((sqrt_wh[i, r, c, k] - target_sqrt) ** 2).sum()
        iou = paired_iou(pred[i, r, c, k], g)  # the confidence's target: the prediction's IoU with the truth
        obj = obj + ((conf[i, r, c, k] - iou) ** 2).sum()
        onehot = F.one_hot(labels[gt_index[r, c]], probs.shape[-1]).float()
        cls = cls + ((probs[i, r, c] - onehot) ** 2).sum()
    coord, obj, noobj, cls = (part / n for part in (coord, obj, noobj, cls))
    total = lambda_coord * coord + obj + lambda_noobj * noobj + cls
    return {"loss": total, "coord": coord.detach(), "obj": obj.detach(), "noobj": noobj.detach(),
            "cls": cls.detach()}


def yolo_v1_candidates(outputs: Tensor, num_boxes: int,
                       image_size: Sequence[int]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Every (cell, predictor, class) of each image as (boxes XYXY pixels clipped to the image, scores
    `C * p(c)`, labels), for `select_detections`."""
    xy, sqrt_wh, conf, probs = split_v1(outputs.float(), num_boxes)
    boxes = v1_boxes(xy, sqrt_wh, image_size)
    limit = torch.tensor([image_size[1], image_size[0]] * 2, device=boxes.device, dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    n, k = outputs.shape[0], probs.shape[-1]
    scores = conf[..., None] * probs[:, :, :, None, :]  # (N, S_h, S_w, B, K)
    labels = torch.arange(k, device=outputs.device).expand_as(scores)
    boxes = boxes[..., None, :].expand(*scores.shape, 4)
    return [(boxes[i].reshape(-1, 4), scores[i].reshape(-1), labels[i].reshape(-1)) for i in range(n)]


class YOLOv1Head(nn.Module):
    """A 3x3 conv-BN-ReLU and a 1x1 conv to `5B + K` numbers per cell, on one map (the grid).

    The paper's two fully connected layers give every cell the whole image; here the neck's top-down
    merge of the deeper maps brings that context, and the convolution works for any image size.

    Args:
        in_channels: channels of the grid's feature map.
        num_classes: K.
        num_boxes: B, boxes per cell (the paper's 2).
        lambda_coord, lambda_noobj: the loss weights (the paper's 5 and 0.5).
    """

    def __init__(self, in_channels: int, num_classes: int, num_boxes: int = 2,
                 lambda_coord: float = LAMBDA_COORD, lambda_noobj: float = LAMBDA_NOOBJ):
        super().__init__()
        self.num_boxes, self.lambda_coord, self.lambda_noobj = num_boxes, lambda_coord, lambda_noobj
        self.conv = ConvBNAct(in_channels, in_channels, 3)
        self.pred = nn.Conv2d(in_channels, 5 * num_boxes + num_classes, 1)

    def forward(self, maps: list[Tensor]) -> Tensor:
        """maps: the neck's maps, finest first; the first is the grid -> Tensor[N, S_h, S_w, 5B + K]."""
        return self.pred(self.conv(maps[0])).permute(0, 2, 3, 1)

    def loss(self, outputs: Tensor, targets: Sequence[dict], image_size: Sequence[int]) -> dict[str, Tensor]:
        return yolo_v1_loss(outputs, targets, self.num_boxes, image_size, self.lambda_coord, self.lambda_noobj)

    def candidates(self, outputs: Tensor, image_size: Sequence[int]) -> list[tuple[Tensor, Tensor, Tensor]]:
        return yolo_v1_candidates(outputs, self.num_boxes, image_size)
