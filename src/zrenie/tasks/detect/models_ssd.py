"""SSD ("Single Shot MultiBox Detector", Liu et al. 2016): class scores and box offsets for a fixed set
of default boxes tiled over several feature maps, in one pass.

Each level of the feature pyramid carries default boxes of one scale (and a few aspect ratios) at every
location; a 3x3 convolution predicts, for each of them, K + 1 class logits (0 is the background) and the
four offsets that move it onto an object (`box_coder.encode`). Training matches ground truth to default
boxes (`box_coder.match`: IoU >= 0.5, plus each object's best box), and because almost every default box
is background, keeps only the hardest negatives: per image the `3 x positives` background boxes with the
highest classification loss (the paper's hard negative mining, section 2.2). The loss is smooth-L1 on the
positives' offsets plus cross-entropy on positives and mined negatives, divided by the number of positives.

The defaults suit the built-in `shapes` scenes at 128 x 128 (objects 10-60 pixels): maps at strides 8,
16 and 32 (16x16, 8x8, 4x4) after an FPN-style neck, with scales 0.1, 0.225, 0.35 of the image (the
paper's linear rule, continued to s_4 = 0.475 for the last extra square box rather than the paper's 1.0,
which no object here reaches): squares of 13, 19, 29, 36, 45 and 52 pixels plus 2:1 and 1:2 boxes,
1,344 default boxes in all.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.layers import ConvBNAct
from zrenie.ops.anchors import default_boxes, num_default_boxes
from zrenie.registry import MODELS
from zrenie.tasks.detect.backbone import DEFAULT_BACKBONE, FeatureBackbone, TopDownNeck
from zrenie.tasks.detect.base import Detections, InputNormalize, OneForward, select_detections
from zrenie.tasks.detect.box_coder import SSD_VARIANCES, assign_targets, decode

STRIDES = (8, 16, 32)
MIN_SCALE, MAX_SCALE = 0.1, 0.35  # s_1 and s_m as fractions of the image: 13 and 45 pixels at 128
ASPECT_RATIOS = (2.0,)  # each adds an a:1 and a 1:a box: 4 default boxes per location
NEG_POS_RATIO = 3  # the paper's negatives : positives after hard negative mining
# Initial background probability of every default box (RetinaNet's prior, Lin et al. 2017, for a softmax):
# almost all boxes are background, and starting there keeps the first steps from being spent on it.
BACKGROUND_PRIOR = 0.99


def linear_scales(levels: int, min_scale: float = MIN_SCALE, max_scale: float = MAX_SCALE) -> list[float]:
    """`levels + 1` scales: s_1 .. s_m linear from `min_scale` to `max_scale` (Liu et al. 2016), then one
    more step for s_{m+1}, the last level's extra sqrt(s_m s_{m+1}) box."""
    if levels < 1 or not 0 < min_scale <= max_scale:
        raise ConfigError(f"ssd: need levels >= 1 and 0 < min_scale <= max_scale, got {levels}, {min_scale}, "
                          f"{max_scale}")
    step = (max_scale - min_scale) / (levels - 1) if levels > 1 else max_scale - min_scale
    return [min_scale + step * k for k in range(levels + 1)] if levels > 1 else [min_scale, max_scale]


def hard_negative_mask(class_loss: Tensor, positive: Tensor, neg_pos_ratio: float = NEG_POS_RATIO) -> Tensor:
    """Per image, the negatives kept for the classification loss: the `neg_pos_ratio x positives` ones
    with the highest loss (at least `neg_pos_ratio`, so an image without objects still teaches the
    background).

    Args:
        class_loss: Tensor[B, A] cross-entropy of each default box against its target class.
        positive: Tensor[B, A] bool, the matched default boxes.

    Returns:
        Tensor[B, A] bool, True for the kept negatives.
    """
    num_neg = (neg_pos_ratio * positive.sum(1).clamp_min(1)).long()  # (B,)
    loss = class_loss.detach().masked_fill(positive, float("-inf"))
    order = loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)  # rank of each box among its image's negatives by loss
    return (rank < num_neg[:, None]) & ~positive


def ssd_loss(class_logits: Tensor, offsets: Tensor, target_classes: Tensor, target_offsets: Tensor,
             neg_pos_ratio: float = NEG_POS_RATIO) -> dict[str, Tensor]:
    """The SSD objective: (cross-entropy over positives and mined negatives + smooth-L1 over positives) / N.

    Args:
        class_logits: Tensor[B, A, K + 1]; offsets: Tensor[B, A, 4] predicted.
        target_classes: Tensor[B, A] int64, 0 background; target_offsets: Tensor[B, A, 4].

    Returns:
        {"loss": total, "classification": ..., "box": ...}, each a Tensor[].
    """
    positive = target_classes > 0
    num_pos = positive.sum().clamp_min(1).float()
    ce = F.cross_entropy(class_logits.float().flatten(0, 1), target_classes.flatten(), reduction="none")
    ce = ce.view_as(target_classes)
    negative = hard_negative_mask(ce, positive, neg_pos_ratio)
    class_loss = ce[positive | negative].sum() / num_pos
    box_loss = F.smooth_l1_loss(offsets.float()[positive], target_offsets.float()[positive], reduction="sum") / num_pos
    return {"loss": class_loss + box_loss, "classification": class_loss.detach(), "box": box_loss.detach()}


class SSD(OneForward):
    """Backbone -> (neck) -> one 3x3 classification and one 3x3 box conv per level.

    Args:
        num_classes: object classes K (the classifier has K + 1 outputs, 0 the background).
        in_channels, mean, std: input channels and the dataset statistics the model normalises with.
        backbone: "convnet" or a classification backbone with `stage_features` (`resnet18`, ...).
        width: convnet's first-stage channels.
        strides: the levels' strides, finest first; those past the backbone's coarsest map are made by
            extra stride-2 conv-BN-ReLU layers (each doubling the last).
        scales: `len(strides) + 1` default box scales as fractions of the image (see `default_boxes`);
            by default `linear_scales(len(strides), min_scale, max_scale)`.
        min_scale, max_scale: the smallest and largest level's scale when `scales` is not given.
        aspect_ratios: per level (or one list for all) the ratios a > 1 of the extra default boxes.
        neck: merge the maps top-down (`TopDownNeck`) before the heads, so fine levels see deep features.
        neck_channels: channels of the neck's maps and of the extra levels.
        iou_threshold, neg_pos_ratio, variances: matching threshold, hard negative mining ratio, box coder.
        backbone_kwargs: the backbone builder's own options.
    """

    detector_name = "ssd"

    def __init__(self, num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.25,), backbone: str = DEFAULT_BACKBONE, width: int = 16,
                 strides: Sequence[int] = STRIDES, scales: Sequence[float] | None = None,
                 min_scale: float = MIN_SCALE, max_scale: float = MAX_SCALE,
                 aspect_ratios: Sequence[float] | Sequence[Sequence[float]] = ASPECT_RATIOS, neck: bool = True,
                 neck_channels: int = 64, iou_threshold: float = 0.5, neg_pos_ratio: float = NEG_POS_RATIO,
                 variances: Sequence[float] = SSD_VARIANCES, backbone_kwargs: dict | None = None):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"ssd needs at least one class, got {num_classes}")
        self.num_classes, self.nms = num_classes, "torchvision"
        self.strides = [int(s) for s in strides]
        self.aspect_ratios = _per_level_ratios(aspect_ratios, len(self.strides))
        if scales is None:
            scales = linear_scales(len(self.strides), min_scale, max_scale)
        if len(scales) != len(self.strides) + 1:
            raise ConfigError(f"ssd: {len(self.strides)} levels need {len(self.strides) + 1} scales, "
                              f"got {list(scales)}")
        self.scales = [float(s) for s in scales]
        self.iou_threshold, self.neg_pos_ratio, self.variances = iou_threshold, neg_pos_ratio, tuple(variances)
        self.normalize = InputNormalize(mean, std, in_channels)
        self.backbone = FeatureBackbone(backbone, in_channels, width, backbone_kwargs)
        channels = self._build_levels(neck, neck_channels)
        boxes = num_default_boxes(self.aspect_ratios)
        self.class_heads = nn.ModuleList(nn.Conv2d(c, a * (num_classes + 1), 3, padding=1)
                                         for c, a in zip(channels, boxes))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, boxes))
        background_bias = math.log(BACKGROUND_PRIOR * num_classes / (1 - BACKGROUND_PRIOR))
        for head in self.class_heads:  # p(background) = exp(b) / (exp(b) + K) with the other logits at 0
            nn.init.zeros_(head.bias)
            head.bias.data.view(-1, num_classes + 1)[:, 0] = background_bias
        self._default_boxes: dict[tuple, Tensor] = {}

    def _build_levels(self, neck: bool, neck_channels: int) -> list[int]:
        """Picks the backbone maps (`self.taken`), the neck and the extra layers; returns each level's channels."""
        have = self.backbone.strides
        if sorted(self.strides) != self.strides or len(set(self.strides)) != len(self.strides):
            raise ConfigError(f"ssd: strides must increase, got {self.strides}")
        if self.strides[0] not in have:
            raise ConfigError(f"ssd: the finest stride {self.strides[0]} is not one of the backbone's {have}")
        self.neck = TopDownNeck(self.backbone.channels, have, neck_channels, self.strides[0]) if neck else None
        level_strides = self.neck.strides if neck else have
        level_channels = [neck_channels] * len(level_strides) if neck else list(self.backbone.channels)
        self.taken = [level_strides.index(s) for s in self.strides if s in level_strides]
        extra = self.strides[len(self.taken):]
        last = self.strides[len(self.taken) - 1]
        if [s for s in self.strides if s not in level_strides] != extra or \
                extra != [last * 2 ** (k + 1) for k in range(len(extra))]:
            raise ConfigError(f"ssd: strides {self.strides} must be backbone strides {have} followed by "
                              f"successive doublings of the last")
        c = level_channels[self.taken[-1]]
        out = neck_channels if neck else c
        self.extras = nn.ModuleList(ConvBNAct(c if k == 0 else out, out, 3, stride=2) for k in range(len(extra)))
        return [level_channels[i] for i in self.taken] + [out] * len(extra)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
        """images: Tensor[B, C, H, W] in [0, 1] -> (class logits (B, A, K + 1), offsets (B, A, 4), the
        levels' (h, w)), ordered level, row, column, default box as `default_boxes`."""
        maps = self.backbone(self.normalize(images))
        maps = self.neck(maps) if self.neck is not None else maps
        levels = [maps[i] for i in self.taken]
        for layer in self.extras:
            levels.append(layer(levels[-1]))
        b = images.shape[0]
        logits = [h(x).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes + 1)
                  for h, x in zip(self.class_heads, levels)]
        offsets = [h(x).permute(0, 2, 3, 1).reshape(b, -1, 4) for h, x in zip(self.box_heads, levels)]
        return torch.cat(logits, 1), torch.cat(offsets, 1), [tuple(x.shape[-2:]) for x in levels]

    def default_boxes(self, image_size: Sequence[int], feature_sizes: Sequence[tuple[int, int]],
                      device: torch.device) -> Tensor:
        """Tensor[A, 4] XYXY pixels of the default boxes for this input size, computed once per size."""
        key = (tuple(image_size), tuple(feature_sizes), str(device))
        if key not in self._default_boxes:
            self._default_boxes[key] = default_boxes(feature_sizes, tuple(image_size), self.scales,
                                                     self.aspect_ratios, steps=self.strides).to(device)
        return self._default_boxes[key]

    def targets(self, targets: Sequence[dict], anchors: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image matching: (classes Tensor[B, A], offsets Tensor[B, A, 4])."""
        classes, offsets = [], []
        for t in targets:
            boxes = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4).to(anchors.device)
            labels = torch.as_tensor(t["labels"]).long().reshape(-1).to(anchors.device)
            c, o, _ = assign_targets(boxes, labels, anchors, self.iou_threshold, self.variances)
            classes.append(c)
            offsets.append(o)
        return torch.stack(classes), torch.stack(offsets)

    def losses(self, images: Tensor | Sequence[Tensor], targets: Sequence[dict], outputs: Any = None
               ) -> dict[str, Tensor]:
        """Smooth-L1 on the positives' offsets + cross-entropy with 3:1 hard negatives, per positive."""
        images, (logits, offsets, sizes) = self.outputs_of(images, outputs)
        anchors = self.default_boxes(images.shape[-2:], sizes, images.device)
        target_classes, target_offsets = self.targets(targets, anchors)
        return ssd_loss(logits, offsets, target_classes, target_offsets, self.neg_pos_ratio)

    @torch.no_grad()
    def detect(self, images: Tensor | Sequence[Tensor], conf: float = 0.05, iou: float = 0.5,
               max_det: int = 100, outputs: Any = None) -> list[Detections]:
        images, (logits, offsets, sizes) = self.outputs_of(images, outputs)
        anchors = self.default_boxes(images.shape[-2:], sizes, images.device)
        h, w = images.shape[-2:]
        limit = torch.tensor([w, h, w, h], device=images.device, dtype=torch.float32)
        boxes = torch.minimum(decode(offsets.float(), anchors, self.variances).clamp_min(0), limit)  # (B, A, 4)
        scores = logits.float().softmax(-1)[..., 1:]  # (B, A, K): the background column dropped
        labels = torch.arange(self.num_classes, device=images.device).expand_as(scores[0]).reshape(-1)
        out = []
        for i in range(len(images)):
            candidates = boxes[i].repeat_interleave(self.num_classes, 0)  # (A K, 4), box by box as the scores
            out.append(select_detections(candidates, scores[i].reshape(-1), labels, conf, iou, max_det, self.nms))
        return out


def _per_level_ratios(ratios: Sequence[float] | Sequence[Sequence[float]], levels: int) -> list[list[float]]:
    """One list of aspect ratios for all levels, or one per level."""
    ratios = list(ratios)
    if all(isinstance(r, (int, float)) for r in ratios):
        return [[float(r) for r in ratios] for _ in range(levels)]
    if len(ratios) != levels:
        raise ConfigError(f"ssd: aspect_ratios has {len(ratios)} lists for {levels} levels")
    return [[float(r) for r in level] for level in ratios]


@MODELS.register("ssd", tags=("detect",))
def ssd(num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.25,),
        backbone: str = DEFAULT_BACKBONE, width: int = 16, strides: Sequence[int] = STRIDES,
        scales: Sequence[float] | None = None, min_scale: float = MIN_SCALE, max_scale: float = MAX_SCALE,
        aspect_ratios: Sequence[float] | Sequence[Sequence[float]] = ASPECT_RATIOS, neck: bool = True,
        neck_channels: int = 64, iou_threshold: float = 0.5, neg_pos_ratio: float = NEG_POS_RATIO,
        backbone_kwargs: dict | None = None) -> SSD:
    """SSD on `backbone` ("convnet" by default) with default boxes sized for 10-60 pixel objects at 128 px.

    Train it with Adam at a learning rate near 1e-3: at 3e-3 a short run on `shapes` settled on calling
    every default box background (positives' accuracy 0 after 240 steps), at 1e-3 it did not.
    """
    return SSD(num_classes, in_channels, mean, std, backbone, width, strides, scales, min_scale, max_scale,
               aspect_ratios, neck, neck_channels, iou_threshold, neg_pos_ratio, SSD_VARIANCES, backbone_kwargs)
