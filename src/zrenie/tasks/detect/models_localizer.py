"""Localisation (course notebook 5_1): a classifier that also regresses the one box of its object.

The image's deepest feature map is pooled into one vector; one linear head gives the class logits and
another the box as sigmoid (cx, cy, w, h) fractions of the image side. The loss is cross-entropy plus
`box_weight` x (L1 on those fractions + the generalized IoU loss of the box), the usual pairing of a
scale-aware pixel loss with an overlap loss. An image must hold exactly one object.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import DataError
from zrenie.ops import box_convert, generalized_box_iou
from zrenie.registry import MODELS
from zrenie.tasks.detect.backbone import DEFAULT_BACKBONE, FeatureBackbone
from zrenie.tasks.detect.base import Detections, InputNormalize, OneForward

HIDDEN = 128


class Localizer(OneForward):
    """Backbone -> global average pool -> (class logits, box).

    Args:
        num_classes: object classes.
        in_channels, mean, std: input channels and the dataset statistics the model normalises with.
        backbone: "convnet" or a classification backbone with `stage_features`.
        width: convnet's first-stage channels.
        box_weight: weight of the box loss against the classification loss.
        backbone_kwargs: the backbone builder's own options.
    """

    detector_name = "localizer"

    def __init__(self, num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,),
                 std: Sequence[float] = (0.25,), backbone: str = DEFAULT_BACKBONE, width: int = 16,
                 box_weight: float = 5.0, backbone_kwargs: dict | None = None):
        super().__init__()
        self.nms, self.box_weight = "torchvision", box_weight
        self.normalize = InputNormalize(mean, std, in_channels)
        self.backbone = FeatureBackbone(backbone, in_channels, width, backbone_kwargs)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(self.backbone.channels[-1], HIDDEN), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(HIDDEN, num_classes)
        self.box = nn.Linear(HIDDEN, 4)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images Tensor[B, C, H, W] in [0, 1] -> (logits (B, K), boxes (B, 4) XYXY fractions of the side)."""
        deepest = self.backbone(self.normalize(images))[-1]
        h = self.hidden(F.adaptive_avg_pool2d(deepest, 1))
        return self.classifier(h), box_convert(self.box(h).sigmoid(), "cxcywh", "xyxy")

    def losses(self, images: Tensor | Sequence[Tensor], targets: Sequence[dict], outputs: Any = None
               ) -> dict[str, Tensor]:
        images, (logits, boxes) = self.outputs_of(images, outputs)
        labels, true = one_box_each(targets, images.shape[-2:])
        cls_loss = F.cross_entropy(logits.float(), labels.to(logits.device))
        true = true.to(boxes.device)
        l1 = F.l1_loss(boxes.float(), true)
        giou = (1 - torch.diag(generalized_box_iou(boxes.float(), true))).mean()
        return {"loss": cls_loss + self.box_weight * (l1 + giou), "cls": cls_loss.detach(), "l1": l1.detach(),
                "giou": giou.detach()}

    @torch.no_grad()
    def detect(self, images: Tensor | Sequence[Tensor], conf: float = 0.05, iou: float = 0.5,
               max_det: int = 100, outputs: Any = None) -> list[Detections]:
        """One detection per image (its most likely class and the box), kept when its probability >= conf."""
        images, (logits, boxes) = self.outputs_of(images, outputs)
        scores, labels = logits.float().softmax(1).max(1)
        h, w = images.shape[-2:]
        boxes = boxes.float() * torch.tensor([w, h, w, h], device=boxes.device, dtype=torch.float32)
        out = []
        for b, s, k in zip(boxes, scores, labels):
            keep = (s >= conf).reshape(1)
            out.append({"boxes": b[None][keep], "scores": s[None][keep], "labels": k[None][keep]})
        return out


def one_box_each(targets: Sequence[dict], image_size: Sequence[int]) -> tuple[Tensor, Tensor]:
    """(labels Tensor[B], boxes Tensor[B, 4] as fractions of the image side) of single-object targets."""
    labels, boxes = [], []
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    for i, t in enumerate(targets):
        b = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4)
        if len(b) != 1:
            raise DataError(f"the localizer predicts one object per image, but image {i} of the batch has {len(b)} "
                            f"boxes; use a detector (model=centernet) for several objects")
        boxes.append(b[0].cpu() / scale)
        labels.append(int(torch.as_tensor(t["labels"]).reshape(-1)[0]))
    return torch.tensor(labels, dtype=torch.long), torch.stack(boxes)


@MODELS.register("localizer", tags=("detect",))
def localizer(num_classes: int, in_channels: int = 3, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.25,),
              backbone: str = DEFAULT_BACKBONE, width: int = 16, box_weight: float = 5.0,
              backbone_kwargs: dict | None = None) -> Localizer:
    """A classifier with a box-regression head, for images of one object (`data=digit_scenes`)."""
    return Localizer(num_classes, in_channels, mean, std, backbone, width, box_weight, backbone_kwargs)


localizer.single_object = True  # read by the task before the model exists: it scores acc1 and miou too
