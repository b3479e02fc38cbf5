"""CenterNet ("Objects as Points", Zhou et al. 2019): an object is the peak of its class's heatmap.

The network maps an image to three dense outputs at stride 4: a heatmap per class (sigmoid), the box's
width and height, and the sub-pixel offset of the centre lost by the stride. Training draws a Gaussian
at each object's centre on its class's heatmap (radius from the box size, CornerNet's rule) and uses the
penalty-reduced focal loss on it; sizes and offsets are L1 losses at the centre pixels only. Decoding
needs no NMS in the paper: a 3x3 max-pool keeps local maxima, the top `k` peaks become boxes. Here the
peaks also go through `select_detections` (class-aware NMS), which only ever removes duplicates.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.layers import ConvBNAct
from zrenie.registry import MODELS
from zrenie.tasks.detect.backbone import DEFAULT_BACKBONE, FeatureBackbone, TopDownNeck
from zrenie.tasks.detect.base import Detections, InputNormalize, OneForward, select_detections

STRIDE = 4
PRIOR = 0.1  # initial heatmap probability: the bias -log((1 - p) / p) = -2.19 of the paper
SIZE_WEIGHT, OFFSET_WEIGHT = 0.1, 1.0  # the paper's lambda_size and lambda_off
MIN_OVERLAP = 0.7  # CornerNet: a box whose corners move within the radius still has IoU >= 0.7
TOP_K = 100


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float = MIN_OVERLAP) -> Tensor:
    """CornerNet's radius: the largest r such that moving both corners of the box by r (in x and y)
    keeps IoU >= min_overlap in each of three ways, both corners the same way (a shifted box), outwards
    (a larger box holding the true one) and inwards (a smaller one inside it). Each case is a quadratic
    in r; these are its exact roots.

    Args:
        height, width: Tensor[N] box sides (in heatmap pixels).
    """
    o, s, a = min_overlap, height + width, height * width
    shifted = (s - torch.sqrt(s ** 2 - 4 * a * (1 - o) / (1 + o))) / 2  # (w-r)(h-r) / (2wh - (w-r)(h-r)) = o
    outwards = (-2 * s + torch.sqrt(4 * s ** 2 + 16 * a * (1 / o - 1))) / 8  # wh / ((w+2r)(h+2r)) = o
    inwards = (2 * s - torch.sqrt(4 * s ** 2 - 16 * a * (1 - o))) / 8  # (w-2r)(h-2r) / wh = o
    return torch.minimum(torch.minimum(shifted, outwards), inwards)


def draw_heatmaps(centers: Tensor, radii: Tensor, image_index: Tensor, labels: Tensor, shape: Sequence[int]) -> Tensor:
    """Target heatmaps Tensor[B, K, H, W]: each object's Gaussian (sigma = (2r + 1) / 6, cut at r)
    at its integer centre on its class's map, overlaps kept by maximum.

    Args:
        centers: Tensor[N, 2] integer (x, y) centre pixels; radii: Tensor[N] integer radii >= 0.
        image_index, labels: Tensor[N] which image and class map each object goes to.
        shape: (B, K, H, W).
    """
    b, k, h, w = shape
    heat = torch.zeros(b * k, h * w, device=centers.device)
    if len(centers) == 0:
        return heat.view(b, k, h, w)
    ys = torch.arange(h, device=centers.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=centers.device, dtype=torch.float32).view(1, 1, w)
    dx = xs - centers[:, 0].view(-1, 1, 1)
    dy = ys - centers[:, 1].view(-1, 1, 1)
    r = radii.float().view(-1, 1, 1)
    sigma = (2 * r + 1) / 6
    g = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    g = torch.where((dx.abs() <= r) & (dy.abs() <= r), g, torch.zeros(()))
    rows = (image_index * k + labels).long()
    heat.scatter_reduce_(0, rows[:, None].expand(-1, h * w), g.view(len(g), -1), "amax")
    return heat.view(b, k, h, w)


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """The penalty-reduced pixel-wise focal loss of CenterNet (CornerNet's), summed, per object.

    Pixels where the target is 1 are positives: -(1 - p)^a log p. The others: -(1 - y)^b p^a log(1 - p),
    so pixels near a centre (y close to 1) are penalised less for a high p.
    """
    logits = logits.float()
    pos = target.eq(1).float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    pos_loss = ((1 - p) ** alpha * log_p * pos).sum()
    neg_loss = ((1 - target) ** beta * p ** alpha * log_not_p * (1 - pos)).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp_min(1)


class CenterNet(OneForward):
    """Backbone -> FPN-style neck at stride 4 -> heatmap, size and offset heads.

    Args:
        num_classes: object classes (one heatmap each).
        in_channels, mean, std: input channels and the dataset statistics the model normalises with.
        backbone: "convnet" or a classification backbone with `stage_features` (`resnet18`, ...).
        width: convnet's first-stage channels.
        head_channels: channels of the neck and of each head's hidden layer.
        backbone_kwargs: the backbone builder's own options.
    """

    detector_name = "centernet"

    def __init__(self, num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.25,), backbone: str = DEFAULT_BACKBONE, width: int = 16,
                 head_channels: int = 64, backbone_kwargs: dict | None = None):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"centernet needs at least one class, got {num_classes}")
        self.num_classes, self.nms = num_classes, "torchvision"
        self.normalize = InputNormalize(mean, std, in_channels)
        self.backbone = FeatureBackbone(backbone, in_channels, width, backbone_kwargs)
        if min(self.backbone.strides) > STRIDE:
            raise ConfigError(f"centernet predicts at stride {STRIDE}; backbone {backbone} has no map finer than "
                              f"stride {min(self.backbone.strides)}")
        self.neck = TopDownNeck(self.backbone.channels, self.backbone.strides, head_channels, STRIDE)
        self.heatmap = self._head(head_channels, num_classes)
        self.size = self._head(head_channels, 2)
        self.offset = self._head(head_channels, 2)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - PRIOR) / PRIOR))

    @staticmethod
    def _head(channels: int, out: int) -> nn.Sequential:
        return nn.Sequential(ConvBNAct(channels, channels, 3), nn.Conv2d(channels, out, 1))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """images: Tensor[B, C, H, W] in [0, 1] -> (heatmap logits (B, K, H/4, W/4), sizes (B, 2, ...) in
        heatmap pixels, offsets (B, 2, ...))."""
        x = self.neck(self.backbone(self.normalize(images)))[0]
        return self.heatmap(x), self.size(x), self.offset(x)

    def losses(self, images: Tensor | Sequence[Tensor], targets: Sequence[dict], outputs: Any = None
               ) -> dict[str, Tensor]:
        """The focal heatmap loss plus 0.1 x L1 sizes plus L1 offsets, as the paper."""
        images, (heat, size, offset) = self.outputs_of(images, outputs)
        b, k, h, w = heat.shape
        boxes, labels, image_index = _flatten_targets(targets, images.device)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / STRIDE
        cells = centres.floor().clamp_min(0)
        cells = torch.minimum(cells, torch.tensor([w - 1, h - 1], device=cells.device, dtype=cells.dtype))
        sides = (boxes[:, 2:] - boxes[:, :2]) / STRIDE  # (w, h)
        radii = gaussian_radius(sides[:, 1], sides[:, 0]).floor().clamp_min(0)
        target = draw_heatmaps(cells, radii, image_index, labels, (b, k, h, w))
        heat_loss = focal_loss(heat, target)
        flat = image_index * h * w + cells[:, 1].long() * w + cells[:, 0].long()
        n = max(len(flat), 1)
        pred_size = size.float().permute(0, 2, 3, 1).reshape(-1, 2)[flat]
        pred_offset = offset.float().permute(0, 2, 3, 1).reshape(-1, 2)[flat]
        size_loss = F.l1_loss(pred_size, sides, reduction="sum") / n
        offset_loss = F.l1_loss(pred_offset, centres - cells, reduction="sum") / n
        total = heat_loss + SIZE_WEIGHT * size_loss + OFFSET_WEIGHT * offset_loss
        return {"loss": total, "heatmap": heat_loss.detach(), "size": size_loss.detach(),
                "offset": offset_loss.detach()}

    @torch.no_grad()
    def detect(self, images: Tensor | Sequence[Tensor], conf: float = 0.05, iou: float = 0.5,
               max_det: int = 100, outputs: Any = None) -> list[Detections]:
        images, (heat, size, offset) = self.outputs_of(images, outputs)
        return [select_detections(*peaks, conf, iou, max_det, self.nms)
                for peaks in decode_peaks(heat.float().sigmoid(), size.float(), offset.float(), max(max_det, TOP_K),
                                          images.shape[-2:])]


def decode_peaks(heat: Tensor, size: Tensor, offset: Tensor, k: int,
                 image_size: Sequence[int]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The top `k` local maxima (3x3 max-pool) of each image's heatmaps as (boxes XYXY pixels, scores, labels).

    Args:
        heat: Tensor[B, K, h, w] probabilities; size, offset: Tensor[B, 2, h, w] in heatmap pixels.
        image_size: (H, W) of the input, to clip the boxes.
    """
    b, num_classes, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    scores, flat = peaks.view(b, -1).topk(min(k, num_classes * h * w))
    labels, pixel = flat // (h * w), flat % (h * w)
    ys, xs = (pixel // w).float(), (pixel % w).float()
    gather = pixel[:, None, :].expand(-1, 2, -1)
    off = offset.view(b, 2, -1).gather(2, gather)
    wh = size.view(b, 2, -1).gather(2, gather).clamp_min(0)
    cx, cy = xs + off[:, 0], ys + off[:, 1]
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], -1) * STRIDE
    limit = torch.tensor([image_size[1], image_size[0]] * 2, device=boxes.device, dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp_min(0), limit)
    return [(boxes[i], scores[i], labels[i]) for i in range(b)]


def _flatten_targets(targets: Sequence[dict], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """All boxes of a batch as one Tensor[N, 4] with their labels and image indices."""
    boxes = [torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4) for t in targets]
    labels = [torch.as_tensor(t["labels"]).long().reshape(-1) for t in targets]
    index = [torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(boxes)]
    return (torch.cat(boxes).to(device), torch.cat(labels).to(device), torch.cat(index).to(device)) if boxes else \
        (torch.zeros(0, 4, device=device), torch.zeros(0, dtype=torch.long, device=device),
         torch.zeros(0, dtype=torch.long, device=device))


@MODELS.register("centernet", tags=("detect",))
def centernet(num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.25,),
              backbone: str = DEFAULT_BACKBONE, width: int = 16, head_channels: int = 64,
              backbone_kwargs: dict | None = None) -> CenterNet:
    """CenterNet on `backbone` ("convnet" by default, 1.2M parameters at width 16 with 64-channel heads)."""
    return CenterNet(num_classes, in_channels, mean, std, backbone, width, head_channels, backbone_kwargs)
