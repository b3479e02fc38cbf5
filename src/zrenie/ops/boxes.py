"""Box operations with torchvision's names and signatures, written out in plain vectorised PyTorch.

Boxes are `Tensor[N, 4]`. Formats: `"xyxy"` (x1, y1, x2, y2), `"xywh"` (x1, y1, w, h) and
`"cxcywh"` (cx, cy, w, h), in pixels. Normalised coordinates (divided by the image width and height)
go through `normalize_boxes` / `denormalize_boxes`, which work in any of the three formats.
The IoU family and NMS take `"xyxy"` boxes with `0 <= x1 <= x2`, `0 <= y1 <= y2`, as torchvision does.
"""

import math

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ConfigError, ShapeError

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
SOFT_NMS_METHODS = ("linear", "gaussian")


def _check_boxes(boxes: Tensor, name: str = "boxes", batched: bool = False) -> None:
    ok = isinstance(boxes, Tensor) and boxes.shape[-1:] == (4,) and (boxes.dim() >= 1 if batched else boxes.dim() == 2)
    if not ok:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        want = "(..., 4)" if batched else "(N, 4)"
        raise ShapeError(f"{name} must be a tensor of shape {want}, got {shape}")


def _check_same_length(boxes: Tensor, other: Tensor, name: str) -> None:
    if not isinstance(other, Tensor) or other.dim() != 1 or other.shape[0] != boxes.shape[0]:
        shape = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
        raise ShapeError(f"{name} must have shape ({boxes.shape[0]},) to match boxes, got {shape}")


def _check_format(fmt: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ConfigError(f"unknown box format {fmt!r}; expected one of {', '.join(BOX_FORMATS)}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between the formats `"xyxy"`, `"xywh"` and `"cxcywh"`.

    For normalised coordinates use `normalize_boxes` / `denormalize_boxes` around this function.

    Args:
        boxes: Tensor[..., 4] in `in_fmt`.
        in_fmt: format of `boxes`.
        out_fmt: format of the result.

    Returns:
        Tensor[..., 4] in `out_fmt`; a copy when the formats are equal.
    """
    _check_boxes(boxes, batched=True)
    _check_format(in_fmt)
    _check_format(out_fmt)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":  # every conversion goes through xyxy, as torchvision's does
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def normalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Divide x coordinates and widths by the image width, y and heights by its height.

    Args:
        boxes: Tensor[..., 4] in pixels, in any of `BOX_FORMATS` (all store x, y, x-or-w, y-or-h).
        image_size: (H, W) of the image.

    Returns:
        Tensor[..., 4] with coordinates in [0, 1] for boxes inside the image.
    """
    _check_boxes(boxes, batched=True)
    height, width = image_size
    return boxes / boxes.new_tensor([width, height, width, height])


def denormalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Inverse of `normalize_boxes`: multiply by the image width and height.

    Args:
        boxes: Tensor[..., 4] normalised, in any of `BOX_FORMATS`.
        image_size: (H, W) of the image.

    Returns:
        Tensor[..., 4] in pixels.
    """
    _check_boxes(boxes, batched=True)
    height, width = image_size
    return boxes * boxes.new_tensor([width, height, width, height])


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2).

    Returns:
        Tensor[N].
    """
    _check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])  # (N, M, 2) top-left of the intersection
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])  # (N, M, 2) bottom-right
    wh = (rb - lt).clamp(min=0)  # disjoint boxes have an empty, not negative, intersection
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    return inter, area1[:, None] + area2 - inter


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes.

    Two zero-area boxes have union 0 and IoU NaN, as in torchvision.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] (x1, y1, x2, y2).

    Returns:
        Tensor[N, M] of IoU values.
    """
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def box_iou_pairs(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of boxes paired row by row: `box_iou(boxes1, boxes2).diagonal()` without the (N, N) matrix.

    Args:
        boxes1, boxes2: Tensor[N, 4] (x1, y1, x2, y2) each.

    Returns:
        Tensor[N], equal to the bit to the matching entries of `box_iou`.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    wh = (torch.min(boxes1[:, 2:], boxes2[:, 2:]) - torch.max(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (box_area(boxes1) + box_area(boxes2) - inter)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalised IoU (Rezatofighi et al., 2019): IoU minus the part of the enclosing box not in the union.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] (x1, y1, x2, y2).

    Returns:
        Tensor[N, M] of GIoU values in [-1, 1].
    """
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])  # (N, M, 2) smallest enclosing box
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def _diou_terms(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """IoU and the DIoU penalty: squared centre distance over squared enclosing diagonal, (N, M) each."""
    iou = box_iou(boxes1, boxes2)
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    diagonal_sq = wh[..., 0] ** 2 + wh[..., 1] ** 2 + eps
    cx1, cy1 = (boxes1[:, 0] + boxes1[:, 2]) / 2, (boxes1[:, 1] + boxes1[:, 3]) / 2
    cx2, cy2 = (boxes2[:, 0] + boxes2[:, 2]) / 2, (boxes2[:, 1] + boxes2[:, 3]) / 2
    centre_sq = (cx1[:, None] - cx2[None, :]) ** 2 + (cy1[:, None] - cy2[None, :]) ** 2
    return iou, centre_sq / diagonal_sq


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Distance IoU (Zheng et al., 2020): IoU minus squared centre distance over squared enclosing diagonal.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] (x1, y1, x2, y2).
        eps: added to the squared diagonal so that coincident points do not divide by zero.

    Returns:
        Tensor[N, M] of DIoU values in [-1, 1].
    """
    iou, penalty = _diou_terms(boxes1, boxes2, eps)
    return iou - penalty


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al., 2020): DIoU minus an aspect-ratio consistency term `alpha * v`.

    Args:
        boxes1: Tensor[N, 4] (x1, y1, x2, y2).
        boxes2: Tensor[M, 4] (x1, y1, x2, y2).
        eps: added to the squared diagonal and to the denominator of `alpha`.

    Returns:
        Tensor[N, M] of CIoU values.
    """
    iou, penalty = _diou_terms(boxes1, boxes2, eps)
    w1, h1 = boxes1[:, None, 2] - boxes1[:, None, 0], boxes1[:, None, 3] - boxes1[:, None, 1]  # (N, 1)
    w2, h2 = boxes2[:, 2] - boxes2[:, 0], boxes2[:, 3] - boxes2[:, 1]  # (M,)
    v = (4 / math.pi**2) * (torch.atan(w1 / h1) - torch.atan(w2 / h2)) ** 2
    with torch.no_grad():  # the paper treats alpha as a constant in the gradient
        alpha = v / (1 - iou + v + eps)
    return iou - penalty - alpha * v


def _dense_removed(boxes: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS over the full (N, N) IoU matrix of score-sorted boxes: the removed mask, Tensor[N] bool."""
    suppresses = (box_iou(boxes, boxes) > iou_threshold).cpu()  # (N, N), in sorted order
    removed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if not removed[i]:
            removed[i + 1:] |= suppresses[i, i + 1:]  # only lower-scored boxes can be removed by box i
    return removed


def _suppression_pairs(boxes: Tensor, iou_threshold: float, chunk: int = 1 << 20) -> tuple[Tensor, Tensor]:
    """Every pair (i < j) of score-sorted boxes with IoU > threshold >= 0, without the (N, N) matrix.

    Such a pair overlaps in x and in y. With the boxes sorted by x1 (a sweep), box p can only overlap the
    boxes after it that start before its x2, a contiguous run; the runs' pairs are made `chunk` at a time,
    the few that also overlap in y get their IoU computed as `box_iou` does (the same values, to the bit).
    """
    n = len(boxes)
    by_x = boxes[:, 0].argsort()
    swept = boxes[by_x]  # (N, 4) by x1
    x1, y1, y2 = swept[:, 0].contiguous(), swept[:, 1].contiguous(), swept[:, 3].contiguous()
    run = (torch.searchsorted(x1, swept[:, 2].contiguous(), side="left")
           - torch.arange(1, n + 1, device=boxes.device)).clamp(min=0)  # boxes after p starting before its x2
    first = run.cumsum(0) - run
    sources, targets = [], []
    lo = 0
    while lo < n:  # sweep positions [lo, hi) hold at most `chunk` pairs (or one position's run)
        hi = max(lo + 1, int(torch.searchsorted(first, first[lo] + chunk, side="right")))
        # index_select, not [], for the gathers: it is about 5x faster on CPU at this size
        p = torch.arange(lo, hi, device=boxes.device).repeat_interleave(run[lo:hi])  # (P,)
        q = p + 1 + torch.arange(len(p), device=boxes.device) - (first.index_select(0, p) - first[lo])
        keep = ((y1.index_select(0, q) < y2.index_select(0, p))  # y ranges overlap: otherwise IoU is 0
                & (y1.index_select(0, p) < y2.index_select(0, q))).nonzero().squeeze(1)
        p, q = p.index_select(0, keep), q.index_select(0, keep)
        over = (box_iou_pairs(swept.index_select(0, p), swept.index_select(0, q)) > iou_threshold).nonzero()
        a, b = by_x.index_select(0, p[over[:, 0]]), by_x.index_select(0, q[over[:, 0]])
        sources.append(torch.minimum(a, b))  # the higher-scoring box of the pair
        targets.append(torch.maximum(a, b))
        lo = hi
    return torch.cat(sources), torch.cat(targets)


def _greedy_removed(n: int, src: Tensor, dst: Tensor) -> Tensor:
    """Greedy NMS over the suppression pairs (src < dst): a box kept removes its partners. Tensor[N] bool."""
    order = src.argsort(stable=True)
    src, dst = src[order].cpu().numpy(), dst[order].cpu().numpy()
    removed = np.zeros(n, dtype=bool)
    sources, first = np.unique(src, return_index=True)
    last = np.append(first[1:], len(src))
    for s, a, b in zip(sources.tolist(), first.tolist(), last.tolist()):
        if not removed[s]:  # src < dst: by the time box s is reached, its own fate is settled
            removed[dst[a:b]] = True
    return torch.from_numpy(removed)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: keep the best box, drop those overlapping it by IoU > threshold, repeat.

    Equal scores keep the lower index first, as torchvision's stable sort does. A pair of zero-area
    boxes has IoU NaN, which never suppresses. For a threshold >= 0 only boxes that overlap can suppress
    each other, so the IoUs of overlapping pairs (found by a sweep along x) replace the (N, N) matrix:
    at 10k boxes that matrix alone is 400 MB.

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2).
        scores: Tensor[N].
        iou_threshold: boxes with IoU strictly above it are suppressed.

    Returns:
        Tensor[K] int64 indices of the kept boxes, by decreasing score.
    """
    _check_boxes(boxes)
    _check_same_length(boxes, scores, "scores")
    order = scores.argsort(descending=True, stable=True)  # (N,)
    if len(order) == 0:
        return order
    ranked = boxes[order]
    if iou_threshold < 0 or not bool(torch.isfinite(ranked).all()):  # disjoint boxes may suppress: all pairs
        removed = _dense_removed(ranked, iou_threshold)
    else:
        removed = _greedy_removed(len(order), *_suppression_pairs(ranked, iou_threshold))
    return order[~removed.to(order.device)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes of different categories never suppress each other.

    Each category's boxes are shifted by `idx * (max coordinate + 1)`, so boxes of different
    categories cannot overlap, and one `nms` call does all categories at once.

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2).
        scores: Tensor[N].
        idxs: Tensor[N] int64 category of each box.
        iou_threshold: boxes with IoU strictly above it are suppressed.

    Returns:
        Tensor[K] int64 indices of the kept boxes, by decreasing score.
    """
    _check_boxes(boxes)
    _check_same_length(boxes, scores, "scores")
    _check_same_length(boxes, idxs, "idxs")
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)  # (N,)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def soft_nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float = 0.3, sigma: float = 0.5,
    score_threshold: float = 0.001, method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017): decay the scores of overlapping boxes instead of removing them.

    Repeatedly take the box of highest current score (lowest index on ties), then multiply the scores
    of the remaining boxes by `1 - IoU` where IoU > `iou_threshold` (`"linear"`) or by
    `exp(-IoU**2 / sigma)` (`"gaussian"`). A box whose score is below `score_threshold` when it
    would be taken is dropped, with all the rest. NaN IoU (two zero-area boxes) counts as 0.

    Args:
        boxes: Tensor[N, 4] (x1, y1, x2, y2).
        scores: Tensor[N].
        iou_threshold: overlap above which the linear method decays a score; unused by `"gaussian"`.
        sigma: width of the Gaussian decay; unused by `"linear"`.
        score_threshold: smallest score a kept box may have.
        method: `"linear"` or `"gaussian"`.

    Returns:
        (Tensor[K] int64 indices of the kept boxes in the order taken, Tensor[K] their decayed scores).
    """
    _check_boxes(boxes)
    _check_same_length(boxes, scores, "scores")
    if method not in SOFT_NMS_METHODS:
        raise ConfigError(f"unknown soft-NMS method {method!r}; expected one of {', '.join(SOFT_NMS_METHODS)}")
    iou = box_iou(boxes, boxes).nan_to_num(nan=0.0)  # (N, N)
    if method == "linear":
        decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
    else:
        decay = torch.exp(-(iou**2) / sigma)
    current = scores.clone()
    remaining = torch.ones_like(scores, dtype=torch.bool)
    keep, kept_scores = [], []
    for _ in range(len(scores)):
        best = torch.where(remaining, current, -math.inf).argmax()  # argmax returns the first maximum
        if current[best] < score_threshold:
            break
        keep.append(best)
        kept_scores.append(current[best])
        remaining[best] = False
        current = torch.where(remaining, current * decay[best], current)
    if not keep:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device), scores.new_empty((0,))
    return torch.stack(keep), torch.stack(kept_scores)
