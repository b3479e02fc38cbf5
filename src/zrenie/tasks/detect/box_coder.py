"""Box regression targets relative to prior boxes, and the matching of ground truth to priors.

SSD (Liu et al. 2016, eq. 2) and Faster R-CNN regress a box g from a prior box d as
`((g_cx - d_cx) / d_w, (g_cy - d_cy) / d_h, log(g_w / d_w), log(g_h / d_h))`, each divided by a
"variance" (0.1 for the centre, 0.2 for the size in SSD's code) so that the four targets have about unit
spread. That is torchvision's `BoxCoder(weights=(10, 10, 5, 5))`: weights are the variances' inverses.

`match` is SSD's matching strategy: every prior goes to its best ground-truth box if their IoU reaches
the threshold, and every ground-truth box also claims its single best prior, so that no object goes
unmatched however badly the priors fit it. `assign_targets` turns that into per-prior class targets
(0 background, label + 1 otherwise) and regression targets.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from zrenie.errors import ShapeError
from zrenie.ops.boxes import box_iou

SSD_VARIANCES = (0.1, 0.2)
# exp() of a size offset above this overflows into absurd boxes early in training (torchvision's bound)
MAX_LOG_SCALE = math.log(1000.0 / 16)


def _check(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor) or boxes.shape[-1:] != (4,):
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ShapeError(f"{name} must be a tensor of shape (..., 4), got {shape}")


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode(gt: Tensor, anchors: Tensor, variances: Sequence[float] = SSD_VARIANCES) -> Tensor:
    """Regression targets of boxes `gt` relative to `anchors` (one anchor per box).

    Args:
        gt: Tensor[..., N, 4] XYXY, with positive widths and heights.
        anchors: Tensor[N, 4] XYXY in the same units (or broadcastable to `gt`).
        variances: (centre, size) divisors; a single number applies to both.

    Returns:
        Tensor[..., N, 4] offsets (dx, dy, dw, dh).
    """
    _check(gt, "gt")
    _check(anchors, "anchors")
    v_c, v_s = (variances, variances) if isinstance(variances, (int, float)) else variances
    anchors = anchors.to(gt.dtype)
    gx, gy, gw, gh = _centre_size(gt)
    ax, ay, aw, ah = _centre_size(anchors)
    return torch.stack([(gx - ax) / aw / v_c, (gy - ay) / ah / v_c,
                        torch.log(gw / aw) / v_s, torch.log(gh / ah) / v_s], -1)


def decode(offsets: Tensor, anchors: Tensor, variances: Sequence[float] = SSD_VARIANCES,
           max_log_scale: float = MAX_LOG_SCALE) -> Tensor:
    """Boxes from regression offsets: the inverse of `encode`.

    Args:
        offsets: Tensor[..., N, 4] (dx, dy, dw, dh), e.g. a batch Tensor[B, N, 4].
        anchors: Tensor[N, 4] XYXY.
        variances: as given to `encode`.
        max_log_scale: size offsets (after the variance) are capped at this before `exp`.

    Returns:
        Tensor[..., N, 4] XYXY in the anchors' units.
    """
    _check(offsets, "offsets")
    _check(anchors, "anchors")
    v_c, v_s = (variances, variances) if isinstance(variances, (int, float)) else variances
    anchors = anchors.to(offsets.dtype)
    ax, ay, aw, ah = _centre_size(anchors)
    cx = offsets[..., 0] * v_c * aw + ax
    cy = offsets[..., 1] * v_c * ah + ay
    w = torch.exp((offsets[..., 2] * v_s).clamp(max=max_log_scale)) * aw
    h = torch.exp((offsets[..., 3] * v_s).clamp(max=max_log_scale)) * ah
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def match(gt_boxes: Tensor, anchors: Tensor, iou_threshold: float = 0.5, force_best: bool = True) -> Tensor:
    """SSD's matching: which ground-truth box, if any, each anchor learns to predict.

    An anchor takes the box it overlaps most when that IoU is >= `iou_threshold`. With `force_best`,
    each box also takes the anchor it overlaps most (argmax, first on ties), even below the threshold
    and even from another box; when several boxes claim one anchor the one overlapping it most wins.
    A box that overlaps no anchor at all claims none. This is torchvision's `SSDMatcher`; its
    `Matcher(allow_low_quality_matches=True)` differs in giving every anchor tied for a box's best IoU to
    that anchor's own best box instead.

    Args:
        gt_boxes: Tensor[G, 4] XYXY (G may be 0).
        anchors: Tensor[A, 4] XYXY in the same units.

    Returns:
        Tensor[A] int64: the index of the matched box, -1 for background.
    """
    _check(gt_boxes, "gt_boxes")
    _check(anchors, "anchors")
    matches = torch.full((len(anchors),), -1, dtype=torch.int64, device=anchors.device)
    if len(gt_boxes) == 0 or len(anchors) == 0:
        return matches
    iou = box_iou(gt_boxes.to(anchors.dtype), anchors)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # per anchor
    matches = torch.where(best_iou >= iou_threshold, best_gt, matches)
    if force_best:
        top_iou, top_anchor = iou.max(dim=1)  # per box
        g = torch.nonzero(top_iou > 0).squeeze(1)
        claims = torch.full_like(iou, -1.0)
        claims[g, top_anchor[g]] = iou[g, top_anchor[g]]  # (G, A): the IoU of each claim, -1 elsewhere
        claim_iou, claim_gt = claims.max(dim=0)
        matches = torch.where(claim_iou > 0, claim_gt, matches)
    return matches


def assign_targets(gt_boxes: Tensor, gt_labels: Tensor, anchors: Tensor, iou_threshold: float = 0.5,
                   variances: Sequence[float] = SSD_VARIANCES, force_best: bool = True
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-anchor training targets of one image.

    Args:
        gt_boxes: Tensor[G, 4] XYXY; gt_labels: Tensor[G] int64 in [0, K).
        anchors: Tensor[A, 4] XYXY.

    Returns:
        classes: Tensor[A] int64, 0 for background and label + 1 for a matched anchor;
        offsets: Tensor[A, 4], `encode(matched box, anchor)` (zeros for background);
        matches: Tensor[A] int64, as `match` returns them.
    """
    if gt_labels.shape != gt_boxes.shape[:1]:
        raise ShapeError(f"gt_labels must have shape ({len(gt_boxes)},), got {tuple(gt_labels.shape)}")
    matches = match(gt_boxes, anchors, iou_threshold, force_best)
    positive = matches >= 0
    classes = torch.zeros(len(anchors), dtype=torch.int64, device=anchors.device)
    offsets = torch.zeros(len(anchors), 4, dtype=anchors.dtype, device=anchors.device)
    if positive.any():
        idx = matches[positive]
        classes[positive] = gt_labels.to(anchors.device)[idx].long() + 1
        offsets[positive] = encode(gt_boxes.to(anchors)[idx], anchors[positive], variances)
    return classes, offsets, matches
