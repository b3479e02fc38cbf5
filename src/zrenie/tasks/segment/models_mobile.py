"""DeepLabV3 and LR-ASPP on MobileNetV3-Large with torchvision's state_dict keys.

Both take torchvision's backbone: the `features` of a MobileNetV3-Large whose last stage dilates
instead of striding (output stride 16), held as `backbone` so its keys read `backbone.0.0.weight`
as in torchvision's files. Two maps are read from it: "high", the final 1x1 conv (960 channels,
stride 16), and "low", the output of the block that brings the map to stride 8 (40 channels; torchvision
takes the stage's first block, not its last).

`deeplabv3_mobilenet_v3_large` puts torchvision's DeepLabV3 head (ASPP, rates 12, 24, 36) on "high"
and, with `aux_loss`, an FCN head on "low"; as `deeplabv3_resnet50`, it returns `(logits, aux_logits)`
in training (the aux loss weighted 0.5) and the logits in eval mode.

`lraspp_mobilenet_v3_large` is the Lite R-ASPP head of Howard et al. 2019 (Sec. 6.2): "high" through
a 1x1 conv-BN-ReLU, gated by a sigmoid of its global average (torchvision pools globally where the
paper's Figure 10 pools 49x49 windows at stride 16x20), upsampled to "low" and classified, plus a
1x1 classifier on "low" itself. It has no auxiliary head.
"""

from __future__ import annotations

from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.backbones.common import outputs_before
from zrenie.nn.backbones.mobilenet_v3 import MobileNetV3
from zrenie.registry import MODELS
from zrenie.tasks.segment.models_deeplab import DeepLabHead, FCNHead

LRASPP_CHANNELS = 128


def upsample_to(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of Tensor[B, K, h, w] to Tensor[B, K, *size], as torchvision's segmentation models."""
    return nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def dilated_mobilenet_v3_large(in_channels: int) -> tuple[nn.Sequential, int]:
    """torchvision's segmentation backbone, and the index in it of the block whose output is "low".

    Returns:
        the `features` of a dilated MobileNetV3-Large (no classifier: torchvision's files have no
        `classifier` keys for it), and the index of its stride-8 block (4).
    """
    net = MobileNetV3("large", in_channels=in_channels, dilated=True)
    return net.features, net.stage_ends[1]  # stage_ends[1]: the stride-2 block that reaches stride 8


class MobileNetV3Segmenter(nn.Module):
    """A dilated MobileNetV3-Large `backbone` whose "low" (stride 8) and "high" (stride 16) maps feed
    a head; logits at the input size.

    Args:
        backbone: the `features` Sequential of `dilated_mobilenet_v3_large`.
        low_index: index in `backbone` of the block whose output is "low".
        classifier: maps "high" to logits, or ("low", "high") to logits when `takes_low`.
        aux_classifier: an optional head on "low" whose logits come back in training.
        takes_low: whether `classifier` takes both maps (LR-ASPP) or "high" only (DeepLabV3).
    """

    def __init__(self, backbone: nn.Sequential, low_index: int, classifier: nn.Module,
                 aux_classifier: nn.Module | None = None, takes_low: bool = False):
        super().__init__()
        self.backbone, self.classifier, self.aux_classifier = backbone, classifier, aux_classifier
        self.low_index, self.takes_low = low_index, takes_low

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Logits Tensor[B, K, H, W] for x: Tensor[B, C, H, W]; in training with an auxiliary head,
        (logits, aux_logits)."""
        size = x.shape[-2:]
        low, high = outputs_before(self.backbone, x, (self.low_index + 1, len(self.backbone)))
        out = upsample_to(self.classifier(low, high) if self.takes_low else self.classifier(high), size)
        if self.training and self.aux_classifier is not None:
            return out, upsample_to(self.aux_classifier(low), size)
        return out


class LRASPPHead(nn.Module):
    """Lite R-ASPP: gated 1x1 features of "high", upsampled to "low", plus a classifier on "low".

    Names `cbr`, `scale`, `low_classifier`, `high_classifier` as in torchvision's `LRASPPHead`.

    Args:
        low_channels: of the stride-8 map.
        high_channels: of the stride-16 map.
        num_classes: outputs per pixel.
        inter_channels: of the gated high-level features.
    """

    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 inter_channels: int = LRASPP_CHANNELS):
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, inter_channels, 1, bias=False),
                                 nn.BatchNorm2d(inter_channels), nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False),
                                   nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """Logits Tensor[B, K, h, w] at the size of low: Tensor[B, C_low, h, w]; high: Tensor[B, C_high, h', w']."""
        x = self.cbr(high) * self.scale(high)  # (B, inter, h', w') gated by (B, inter, 1, 1)
        x = upsample_to(x, low.shape[-2:])
        return self.low_classifier(low) + self.high_classifier(x)


@MODELS.register("deeplabv3_mobilenet_v3_large", tags=("segment",))
def deeplabv3_mobilenet_v3_large(num_classes: int = 21, in_channels: int = 3,
                                 aux_loss: bool = True) -> MobileNetV3Segmenter:
    """torchvision's DeepLabV3-MobileNetV3-Large (output stride 16, ASPP rates 12, 24, 36); 11,029,328
    parameters with 21 classes and the aux head, which torchvision's weight file holds (`aux_loss=True`)."""
    backbone, low_index = dilated_mobilenet_v3_large(in_channels)
    high_channels, low_channels = backbone[-1][0].out_channels, backbone[low_index].out_channels
    aux = FCNHead(low_channels, num_classes) if aux_loss else None
    return MobileNetV3Segmenter(backbone, low_index, DeepLabHead(high_channels, num_classes), aux)


@MODELS.register("lraspp_mobilenet_v3_large", tags=("segment",))
def lraspp_mobilenet_v3_large(num_classes: int = 21, in_channels: int = 3,
                              aux_loss: bool = False) -> MobileNetV3Segmenter:
    """torchvision's LR-ASPP-MobileNetV3-Large; 3,221,538 parameters with 21 classes. No auxiliary head."""
    if aux_loss:
        raise ConfigError("lraspp_mobilenet_v3_large has no auxiliary head: aux_loss must be false")
    backbone, low_index = dilated_mobilenet_v3_large(in_channels)
    high_channels, low_channels = backbone[-1][0].out_channels, backbone[low_index].out_channels
    head = LRASPPHead(low_channels, high_channels, num_classes)
    return MobileNetV3Segmenter(backbone, low_index, head, takes_low=True)
