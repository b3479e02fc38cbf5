"""Prior boxes tiled over feature maps: SSD's default boxes and the anchors of anchor-based heads.

Both functions return one `Tensor[A, 4]` for all levels, ordered level by level (finest first as
given), then by row y, then by column x, then by box at that location. That is the order of a head's
output `(B, a * k, H, W)` permuted to `(B, H, W, a, k)` and flattened, and torchvision's order too.

- `default_boxes` (Liu et al. 2016, "SSD", section 2.2): level k of m has scale
  `s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)` (a fraction of the image), boxes of that scale for
  each aspect ratio and an extra square box of scale `sqrt(s_k s_{k+1})`, centred at `((j + 0.5) / f_k,
  (i + 0.5) / f_k)`. Returned in pixels XYXY, or as the paper writes them: normalised (cx, cy, w, h).
- `grid_anchors` (Faster R-CNN, RetinaNet, YOLOv2/v3): boxes of given pixel sizes centred at
  `(j + offset) * stride`, XYXY pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from zrenie.errors import ConfigError

Size2 = tuple[int, int]


def _pairs(sizes: Sequence[int | Sequence[int]], name: str) -> list[Size2]:
    """Feature sizes or strides as (h, w) pairs; an int stands for a square."""
    out = []
    for s in sizes:
        pair = (s, s) if isinstance(s, (int, float)) else tuple(s)
        if len(pair) != 2 or min(pair) <= 0:
            raise ConfigError(f"{name}: each entry must be a positive number or an (h, w) pair, got {s!r}")
        out.append(pair)
    return out


def ssd_scales(num_levels: int, min_scale: float = 0.2, max_scale: float = 0.9) -> list[float]:
    """The paper's scales `s_1 .. s_m`, linear from `min_scale` to `max_scale`, followed by 1.0 (the
    `s_{m+1}` of the last level's extra box), as torchvision's `DefaultBoxGenerator` has them.

    Returns:
        `num_levels + 1` fractions of the image size.
    """
    if num_levels < 1 or not 0 < min_scale <= max_scale:
        raise ConfigError(f"ssd scales: need num_levels >= 1 and 0 < min_scale <= max_scale, got "
                          f"{num_levels}, {min_scale}, {max_scale}")
    if num_levels == 1:
        return [min_scale, max_scale]
    step = (max_scale - min_scale) / (num_levels - 1)
    return [min_scale + step * k for k in range(num_levels)] + [1.0]


def default_box_shapes(scales: Sequence[float], aspect_ratios: Sequence[Sequence[float]],
                       clip: bool = True) -> list[Tensor]:
    """Per level, the (w, h) of its default boxes as fractions of the image: `Tensor[2 + 2 r_k, 2]`.

    Level k: (s_k, s_k), the extra (s', s') with s' = sqrt(s_k s_{k+1}), then for each ratio a in
    `aspect_ratios[k]` the pair (s_k sqrt(a), s_k / sqrt(a)) and its transpose (ratios a and 1/a).
    `clip` caps widths and heights at 1 (the whole image).
    """
    if len(scales) != len(aspect_ratios) + 1:
        raise ConfigError(f"default boxes: {len(aspect_ratios)} levels need {len(aspect_ratios) + 1} scales "
                          f"(one extra for the last level's sqrt(s_k s_k+1) box), got {len(scales)}")
    shapes = []
    for k, ratios in enumerate(aspect_ratios):
        s, s_next = float(scales[k]), float(scales[k + 1])
        wh = [(s, s), (math.sqrt(s * s_next),) * 2]
        for a in ratios:
            if a <= 0:
                raise ConfigError(f"default boxes: aspect ratios must be > 0, got {a}")
            wh += [(s * math.sqrt(a), s / math.sqrt(a)), (s / math.sqrt(a), s * math.sqrt(a))]
        t = torch.tensor(wh, dtype=torch.float64)
        shapes.append(t.clamp(0, 1) if clip else t)
    return shapes


def default_boxes(feature_sizes: Sequence[int | Sequence[int]], image_size: int | Sequence[int],
                  scales: Sequence[float] | None = None,
                  aspect_ratios: Sequence[Sequence[float]] | None = None,
                  min_scale: float = 0.2, max_scale: float = 0.9, steps: Sequence[int] | None = None,
                  clip: bool = True, normalized: bool = False) -> Tensor:
    """SSD's default boxes for feature maps of the given sizes.

    Equal to torchvision's `DefaultBoxGenerator(aspect_ratios, min_scale, max_scale, scales, steps, clip)`.

    Args:
        feature_sizes: per level, (h, w) of its map (or one int for a square map), finest first.
        image_size: (h, w) of the input image in pixels (or one int).
        scales: `len(feature_sizes) + 1` box scales as fractions of the image; by default
            `ssd_scales(levels, min_scale, max_scale)`.
        aspect_ratios: per level, the ratios a > 1 that add an a:1 and a 1:a box each; default (2,) everywhere.
        min_scale, max_scale: s_min and s_max of the paper, used when `scales` is None.
        steps: per level, the pixel stride of its centres, `((j + 0.5) * step / W, ...)`; by default
            centres are `(j + 0.5) / f_k` with f_k the map's size.
        clip: cap box widths and heights at the image size (the centres stay).
        normalized: False: XYXY pixels of the image; True: (cx, cy, w, h) as fractions of the image.

    Returns:
        Tensor[A, 4], A = sum over levels of h_k w_k (2 + 2 len(aspect_ratios[k])), float32.
    """
    sizes = _pairs(feature_sizes, "feature_sizes")
    (img_h, img_w), = _pairs([image_size], "image_size")
    if aspect_ratios is None:
        aspect_ratios = [(2.0,)] * len(sizes)
    if scales is None:
        scales = ssd_scales(len(sizes), min_scale, max_scale)
    if len(aspect_ratios) != len(sizes) or (steps is not None and len(steps) != len(sizes)):
        raise ConfigError(f"default boxes: {len(sizes)} feature maps but {len(aspect_ratios)} aspect-ratio "
                          f"lists{'' if steps is None else f' and {len(steps)} steps'}")
    shapes = default_box_shapes(scales, aspect_ratios, clip)
    levels = []
    for k, (fh, fw) in enumerate(sizes):
        norm_h, norm_w = (fh, fw) if steps is None else (img_h / steps[k], img_w / steps[k])
        cy = (torch.arange(fh, dtype=torch.float64) + 0.5) / norm_h
        cx = (torch.arange(fw, dtype=torch.float64) + 0.5) / norm_w
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2).expand(-1, len(shapes[k]), 2)  # (HW, a, 2)
        wh = shapes[k].unsqueeze(0).expand_as(centres)
        levels.append(torch.cat([centres, wh], -1).reshape(-1, 4))
    boxes = torch.cat(levels)  # (A, 4) normalised cxcywh
    if not normalized:
        scale = boxes.new_tensor([img_w, img_h, img_w, img_h])
        boxes = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], -1) * scale
    return boxes.float()


def anchor_shapes(sizes: Sequence[float | Sequence[float]], aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
                  ) -> Tensor:
    """The (w, h) in pixels of one location's anchors: `Tensor[a, 2]`.

    Args:
        sizes: numbers s (each gives one anchor per ratio r = h / w, of area s^2: w = s / sqrt(r),
            h = s sqrt(r); ordered ratio by ratio, then size, as torchvision's `AnchorGenerator`) or
            (w, h) pairs (anchors of exactly that size, as YOLOv2/v3's k-means anchors; ratios unused).
    """
    if len(sizes) == 0:
        raise ConfigError("anchors: every level needs at least one size")
    if all(isinstance(s, (int, float)) for s in sizes):
        s = torch.tensor([float(v) for v in sizes], dtype=torch.float64)
        r = torch.tensor([float(v) for v in aspect_ratios], dtype=torch.float64)
        if (s <= 0).any() or (r <= 0).any() or len(r) == 0:
            raise ConfigError(f"anchors: sizes and aspect ratios must be > 0, got {list(sizes)}, {list(aspect_ratios)}")
        w = (s[None, :] / r.sqrt()[:, None]).reshape(-1)
        h = (s[None, :] * r.sqrt()[:, None]).reshape(-1)
        return torch.stack([w, h], -1)
    if all(not isinstance(s, (int, float)) and len(s) == 2 and min(s) > 0 for s in sizes):
        return torch.tensor([[float(w), float(h)] for w, h in sizes], dtype=torch.float64)
    raise ConfigError(f"anchors: a level's sizes must be all numbers or all positive (w, h) pairs, got {list(sizes)}")


def grid_anchors(feature_sizes: Sequence[int | Sequence[int]], strides: Sequence[int | Sequence[int]],
                 sizes_per_level: Sequence[Sequence[float | Sequence[float]]],
                 aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), offset: float = 0.5) -> Tensor:
    """Anchors of an anchor-based head: each location of level k gets `anchor_shapes(sizes_per_level[k])`.

    With `offset=0` this equals torchvision's `AnchorGenerator(sizes, aspect_ratios)` except that
    torchvision rounds each anchor's half-width and half-height to whole pixels; here they stay exact.

    Args:
        feature_sizes: per level, (h, w) of its map (or one int), finest first.
        strides: per level, its stride in pixels (or an (h, w) pair).
        sizes_per_level: per level, the sizes given to `anchor_shapes`: numbers (with `aspect_ratios`)
            or (w, h) pixel pairs.
        aspect_ratios: h / w of the anchors made from number sizes.
        offset: centres at `((j + offset) * stride_w, (i + offset) * stride_h)`; 0.5 puts them in the
            middle of their cells (YOLO, the SSD above), 0 on the cell corner (torchvision).

    Returns:
        Tensor[A, 4] XYXY pixels, float32; A = sum over levels of h_k w_k a_k.
    """
    sizes, steps = _pairs(feature_sizes, "feature_sizes"), _pairs(strides, "strides")
    if not len(sizes) == len(steps) == len(sizes_per_level):
        raise ConfigError(f"anchors: {len(sizes)} feature maps, {len(steps)} strides and "
                          f"{len(sizes_per_level)} size lists must be as many")
    levels = []
    for (fh, fw), (sh, sw), level_sizes in zip(sizes, steps, sizes_per_level):
        wh = anchor_shapes(level_sizes, aspect_ratios)  # (a, 2)
        cy = (torch.arange(fh, dtype=torch.float64) + offset) * sh
        cx = (torch.arange(fw, dtype=torch.float64) + offset) * sw
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)  # (HW, 1, 2)
        half = wh.unsqueeze(0) / 2  # (1, a, 2)
        levels.append(torch.cat([centres - half, centres + half], -1).reshape(-1, 4))
    return torch.cat(levels).float()


def num_anchors_per_location(sizes_per_level: Sequence[Sequence[float | Sequence[float]]],
                             aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> list[int]:
    """How many anchors `grid_anchors` puts at each location of each level (a head's `a_k`)."""
    return [len(anchor_shapes(s, aspect_ratios)) for s in sizes_per_level]


def num_default_boxes(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """How many default boxes `default_boxes` puts at each location of each level: 2 + 2 r_k."""
    return [2 + 2 * len(r) for r in aspect_ratios]
