"""Feature maps for the detectors: a small built-in network or any zrenie classification backbone.

`FeatureBackbone(name)` gives one map per resolution, finest first, with their `channels` and
`strides` read by a dry forward pass (`zrenie.nn.encoder.probe_stages`), so CenterNet, SSD and
YOLO take `model.kwargs.backbone=resnet18` (any backbone with `stage_features`) as readily as the default
`convnet`, a five-stage network of 3x3 conv-BN-ReLU pairs sized for 64-256 pixel images on a CPU.
`TopDownNeck` merges the maps from the deepest down (FPN's lateral 1x1 + upsample-and-add + 3x3), the
way CenterNet and YOLOv3 bring deep semantics back to a fine grid.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.encoder import build_encoder, probe_stages
from zrenie.nn.layers import ConvBNAct

DEFAULT_BACKBONE = "convnet"


class ConvNet(nn.Module):
    """Stages of two 3x3 conv-BN-ReLU layers, the first of each at stride 2: maps at strides 2 .. 2^stages.

    Args:
        in_channels: channels of the input images.
        width: channels of the first stage; stage k has `width * 2^k`, at most `width * 8`.
        stages: how many stages (so the coarsest map is at stride 2^stages).
    """

    def __init__(self, in_channels: int = 3, width: int = 16, stages: int = 5):
        super().__init__()
        if width < 1 or stages < 1:
            raise ConfigError(f"convnet backbone: width and stages must be >= 1, got {width} and {stages}")
        layers, c = [], in_channels
        for k in range(stages):
            out = width * min(2 ** k, 8)
            layers.append(nn.Sequential(ConvBNAct(c, out, 3, stride=2), ConvBNAct(out, out, 3)))
            c = out
        self.stages = nn.ModuleList(layers)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """x: Tensor[B, C, H, W] -> one map per stage, at strides 2, 4, ..., 2^stages."""
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


class FeatureBackbone(nn.Module):
    """`body.stage_features` with known channels and strides.

    Args:
        name: "convnet" (built in) or a registered classification backbone (`zrenie list models --task
            classify`); its classifier is removed.
        in_channels: channels of the input images.
        width: convnet's first-stage channels (ignored by other backbones).
        kwargs: the classification backbone builder's own options (`small_input`, `width_mult`, ...).
    """

    def __init__(self, name: str = DEFAULT_BACKBONE, in_channels: int = 3, width: int = 16,
                 kwargs: dict | None = None):
        super().__init__()
        self.name = name
        self.body = ConvNet(in_channels, width, **(kwargs or {})) if name == DEFAULT_BACKBONE else \
            build_encoder(name, in_channels, kwargs)
        self.channels, self.strides = probe_stages(self.body, in_channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.body.stage_features(x)


class TopDownNeck(nn.Module):
    """FPN's top-down pathway over the maps at strides >= `min_stride`: all get `out_channels`.

    Args:
        channels, strides: of the backbone's maps, finest first (`FeatureBackbone.channels/strides`).
        out_channels: channels of every output map.
        min_stride: the finest map kept; maps finer than it are not used.
    """

    def __init__(self, channels: list[int], strides: list[int], out_channels: int, min_stride: int):
        super().__init__()
        self.used = [i for i, s in enumerate(strides) if s >= min_stride]
        if not self.used:
            raise ConfigError(f"the backbone has no map at stride >= {min_stride} (strides {strides})")
        self.lateral = nn.ModuleList(nn.Conv2d(channels[i], out_channels, 1) for i in self.used)
        self.smooth = nn.ModuleList(ConvBNAct(out_channels, out_channels, 3) for _ in self.used)
        self.strides = [strides[i] for i in self.used]

    def forward(self, maps: list[Tensor]) -> list[Tensor]:
        """The backbone's maps -> the merged maps at `self.strides`, finest first."""
        out: list[Tensor] = []
        top: Tensor | None = None
        for j in range(len(self.used) - 1, -1, -1):
            x = self.lateral[j](maps[self.used[j]])
            if top is not None:
                x = x + F.interpolate(top, size=x.shape[-2:], mode="nearest")
            top = x
            out.append(self.smooth[j](x))
        return out[::-1]
