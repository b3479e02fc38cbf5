"""Segmentation on dilated ResNets: torchvision's FCN-ResNet50 and DeepLabV3-ResNet50, and the lecture's DeepLab.

`fcn_resnet50` and `deeplabv3_resnet50` have torchvision's modules and names (`backbone.*`,
`classifier.*`, `aux_classifier.*`), so a torchvision segmentation weight file loads strictly and
gives the same logits. Their backbone is a ResNet-50 whose layer3 and layer4 trade their stride for
dilation (output stride 8). In training they return `(logits, aux_logits)`: the auxiliary FCN head on
layer3 is weighted 0.5 in the loss, as in torchvision's reference training; in eval mode, the logits.

`deeplab_aspp` is DeepLabV3 (Chen et al. 2017) as the lecture builds it: any ResNet with its last
stage (output stride 16) or last two stages (8) dilated, then Atrous Spatial Pyramid Pooling (a 1x1
branch, three 3x3 branches of growing dilation, image-level pooling), a 3x3 fusion and a classifier.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.backbones.resnet import RESNET_VARIANTS, ResNet
from zrenie.registry import MODELS

ASPP_CHANNELS = 256


def _cbr(in_channels: int, out_channels: int, kernel: int = 1, dilation: int = 1) -> list[nn.Module]:
    """Conv (no bias) -> BN -> ReLU as three entries, for torchvision's numbered keys."""
    return [nn.Conv2d(in_channels, out_channels, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                      bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class FCNHead(nn.Sequential):
    """3x3 conv to in/4 channels, BN, ReLU, dropout 0.1, 1x1 classifier (torchvision's FCNHead)."""

    def __init__(self, in_channels: int, num_classes: int):
        inter = in_channels // 4
        super().__init__(*_cbr(in_channels, inter, 3), nn.Dropout(0.1), nn.Conv2d(inter, num_classes, 1))


class ASPPPooling(nn.Sequential):
    """Image-level features: global average, 1x1 conv, BN, ReLU, broadcast back to the map's size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_cbr(in_channels, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        for module in self:
            x = module(x)
        return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling: parallel 1x1, dilated 3x3 (one per rate) and image-pooling branches,
    concatenated and projected to 256 channels (dropout 0.5)."""

    def __init__(self, in_channels: int, rates: Sequence[int], out_channels: int = ASPP_CHANNELS):
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(*_cbr(in_channels, out_channels))]
        branches += [nn.Sequential(*_cbr(in_channels, out_channels, 3, rate)) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_cbr(len(branches) * out_channels, out_channels), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], 1))


class DeepLabHead(nn.Sequential):
    """ASPP, a 3x3 conv-BN-ReLU and a 1x1 classifier (torchvision's DeepLabHead)."""

    def __init__(self, in_channels: int, num_classes: int, rates: Sequence[int] = (12, 24, 36)):
        super().__init__(ASPP(in_channels, rates), *_cbr(ASPP_CHANNELS, ASPP_CHANNELS, 3),
                         nn.Conv2d(ASPP_CHANNELS, num_classes, 1))


def dilated_resnet(name: str, in_channels: int, output_stride: int) -> ResNet:
    """A ResNet without its classifier, the last stage (stride 16) or last two (stride 8) dilated."""
    if name not in RESNET_VARIANTS:
        raise ConfigError(f"backbone: expected one of {', '.join(RESNET_VARIANTS)}, got {name!r}")
    if output_stride not in (8, 16):
        raise ConfigError(f"output_stride: expected 8 or 16, got {output_stride}")
    dilate = (False, output_stride == 8, True)
    backbone = ResNet(*RESNET_VARIANTS[name], in_channels=in_channels, name=name, replace_stride_with_dilation=dilate)
    del backbone.fc  # torchvision's IntermediateLayerGetter keeps up to layer4: no `fc` keys
    return backbone


class ResNetSegmenter(nn.Module):
    """A dilated ResNet, a head on layer4, an optional auxiliary FCN head on layer3, logits at the input size."""

    def __init__(self, backbone: ResNet, classifier: nn.Module, aux_classifier: nn.Module | None = None):
        super().__init__()
        self.backbone, self.classifier, self.aux_classifier = backbone, classifier, aux_classifier

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        size = x.shape[-2:]
        *_, layer3, layer4 = self.backbone.stage_features(x)

        def up(logits: Tensor) -> Tensor:
            return nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)

        out = up(self.classifier(layer4))
        if self.training and self.aux_classifier is not None:
            return out, up(self.aux_classifier(layer3))
        return out


def _channels(backbone: ResNet) -> tuple[int, int]:
    return backbone.out_channels, backbone.out_channels // 2  # layer4 and layer3


@MODELS.register("fcn_resnet50", tags=("segment",))
def fcn_resnet50(num_classes: int = 21, in_channels: int = 3, aux_loss: bool = True) -> ResNetSegmenter:
    """torchvision's FCN-ResNet50 (output stride 8; torchvision's weight files load with `aux_loss=True`)."""
    backbone = dilated_resnet("resnet50", in_channels, 8)
    c4, c3 = _channels(backbone)
    return ResNetSegmenter(backbone, FCNHead(c4, num_classes), FCNHead(c3, num_classes) if aux_loss else None)


@MODELS.register("deeplabv3_resnet50", tags=("segment",))
def deeplabv3_resnet50(num_classes: int = 21, in_channels: int = 3, aux_loss: bool = True) -> ResNetSegmenter:
    """torchvision's DeepLabV3-ResNet50 (output stride 8, ASPP rates 12, 24, 36)."""
    backbone = dilated_resnet("resnet50", in_channels, 8)
    c4, c3 = _channels(backbone)
    return ResNetSegmenter(backbone, DeepLabHead(c4, num_classes), FCNHead(c3, num_classes) if aux_loss else None)


@MODELS.register("deeplab_aspp", tags=("segment",))
def deeplab_aspp(num_classes: int, in_channels: int = 3, backbone: str = "resnet50", output_stride: int = 16,
                 rates: Sequence[int] | None = None) -> ResNetSegmenter:
    """DeepLabV3 on any ResNet: `output_stride` 16 (rates 6, 12, 18) or 8 (rates 12, 24, 36, the paper's
    doubling); `rates` overrides them (model.kwargs.rates=[4,8,12])."""
    net = dilated_resnet(backbone, in_channels, output_stride)
    rates = tuple(rates) if rates is not None else ((6, 12, 18) if output_stride == 16 else (12, 24, 36))
    if not rates or not all(isinstance(r, int) and r >= 1 for r in rates):
        raise ConfigError(f"model.kwargs.rates: expected whole numbers >= 1, got {rates!r}")
    return ResNetSegmenter(net, DeepLabHead(net.out_channels, num_classes, rates))
