"""`yolo`: one backbone and neck, two heads, the lecture's comparison of YOLOv1 with the anchor-based YOLO.

`model=yolo` is YOLOv1's grid (`models_yolo_v1`), `model=yolo model.kwargs.version=anchor` the YOLOv2/v3
anchor head (`models_yolo_anchor`). Both read the maps of the same `FeatureBackbone` merged by the same
`TopDownNeck`, so what differs between the two runs is only what the lecture compares: how a cell predicts
boxes and which prediction learns which object.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.registry import MODELS
from zrenie.tasks.detect.backbone import DEFAULT_BACKBONE, FeatureBackbone, TopDownNeck
from zrenie.tasks.detect.base import Detections, InputNormalize, OneForward, per_channel, select_detections
from zrenie.tasks.detect.models_yolo_anchor import DEFAULT_ANCHORS, DEFAULT_STRIDES, IGNORE_IOU, YOLOAnchorHead
from zrenie.tasks.detect.models_yolo_v1 import LAMBDA_COORD, LAMBDA_NOOBJ, YOLOv1Head

VERSIONS = ("v1", "anchor")
V1_STRIDE = 16  # an 8 x 8 grid on the 128-pixel `shapes` scenes (the paper: 7 x 7 on 448 pixels)


class YOLO(OneForward):
    """Normalise, backbone, neck, and a head that knows its loss and its candidate boxes.

    Args:
        head: `YOLOv1Head` or `YOLOAnchorHead` (`forward(maps)`, `loss(outputs, targets, image_size)`,
            `candidates(outputs, image_size)`).
        backbone: the feature maps; neck: merges them top-down.
        strides: the neck strides whose maps the head reads, in the head's order.
        mean, std: per channel, of the dataset.
    """

    detector_name = "yolo"

    def __init__(self, head: nn.Module, backbone: FeatureBackbone, neck: TopDownNeck, strides: Sequence[int],
                 mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        missing = [s for s in strides if s not in neck.strides]
        if missing:
            raise ConfigError(f"yolo: the head reads maps at strides {list(strides)}, but backbone "
                              f"{backbone.name} gives {backbone.strides}")
        self.nms = "torchvision"
        self.normalize = InputNormalize(mean, std)
        self.backbone, self.neck, self.head = backbone, neck, head
        self.levels = [neck.strides.index(s) for s in strides]

    def forward(self, images: Tensor) -> Tensor | list[Tensor]:
        """images: Tensor[B, C, H, W] in [0, 1] -> the head's raw outputs."""
        maps = self.neck(self.backbone(self.normalize(images)))
        return self.head([maps[i] for i in self.levels])

    def losses(self, images: Tensor | Sequence[Tensor], targets: Sequence[dict], outputs: Any = None
               ) -> dict[str, Tensor]:
        images, outputs = self.outputs_of(images, outputs)
        return self.head.loss(outputs, targets, images.shape[-2:])

    @torch.no_grad()
    def detect(self, images: Tensor | Sequence[Tensor], conf: float = 0.05, iou: float = 0.5,
               max_det: int = 100, outputs: Any = None) -> list[Detections]:
        images, outputs = self.outputs_of(images, outputs)
        return [select_detections(*c, conf, iou, max_det, self.nms)
                for c in self.head.candidates(outputs, images.shape[-2:])]


@MODELS.register("yolo", tags=("detect",))
def yolo(num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.25,),
         version: str = "v1", backbone: str = DEFAULT_BACKBONE, width: int = 16, channels: int = 64,
         backbone_kwargs: dict | None = None, stride: int | None = None, boxes_per_cell: int | None = None,
         lambda_coord: float | None = None, lambda_noobj: float | None = None,
         anchors: Sequence[Sequence[Sequence[float]]] | None = None, strides: Sequence[int] | None = None,
         ignore_iou: float | None = None) -> YOLO:
    """YOLOv1 (`version="v1"`) or the YOLOv2/v3 anchor head (`version="anchor"`) on `backbone`.

    Args:
        version: "v1" or "anchor".
        backbone: "convnet" or a classification backbone with `stage_features` (`resnet18`, ...).
        width: convnet's first-stage channels; channels: of the neck and the head's hidden layer.
        backbone_kwargs: the backbone builder's own options.
        stride, boxes_per_cell, lambda_coord, lambda_noobj: v1's grid stride (16), B (2) and loss weights
            (5, 0.5).
        anchors, strides, ignore_iou: the anchor head's (w, h) pixels per level (k-means on `shapes`), the
            levels' strides (8, 16, 32) and the no-object ignore threshold (0.5).
    """
    if version not in VERSIONS:
        raise ConfigError(f"model.kwargs.version: expected one of {', '.join(VERSIONS)}, got {version!r}")
    if num_classes < 1:
        raise ConfigError(f"yolo needs at least one class, got {num_classes}")
    own = {"v1": {"stride": stride, "boxes_per_cell": boxes_per_cell, "lambda_coord": lambda_coord,
                  "lambda_noobj": lambda_noobj},
           "anchor": {"anchors": anchors, "strides": strides, "ignore_iou": ignore_iou}}
    other = "anchor" if version == "v1" else "v1"
    wrong = [k for k, v in own[other].items() if v is not None]
    if wrong:
        raise ConfigError(f"model.kwargs.{wrong[0]} belongs to yolo version={other}, not version={version}")
    body = FeatureBackbone(backbone, in_channels, width, backbone_kwargs)
    if version == "v1":
        levels = [V1_STRIDE if stride is None else stride]
        head: nn.Module = YOLOv1Head(channels, num_classes, 2 if boxes_per_cell is None else boxes_per_cell,
                                     LAMBDA_COORD if lambda_coord is None else lambda_coord,
                                     LAMBDA_NOOBJ if lambda_noobj is None else lambda_noobj)
    else:
        levels = list(DEFAULT_STRIDES if strides is None else strides)
        anchors = DEFAULT_ANCHORS if anchors is None else anchors
        if len(anchors) != len(levels):
            raise ConfigError(f"yolo: {len(anchors)} anchor levels for {len(levels)} strides {levels}")
        head = YOLOAnchorHead(channels, num_classes, anchors, IGNORE_IOU if ignore_iou is None else ignore_iou)
    neck = TopDownNeck(body.channels, body.strides, channels, min(levels))
    mean, std = per_channel(mean, in_channels, "yolo: mean"), per_channel(std, in_channels, "yolo: std")
    return YOLO(head, body, neck, levels, mean, std)
