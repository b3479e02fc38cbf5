"""A classification backbone as a feature extractor: its classifier removed, its stage maps measured.

Every zrenie backbone gives one feature map per resolution through `stage_features(x)`; a dry forward
pass reads their channels and strides, so any registered one serves as a segmentation encoder or a
detection backbone without a table per architecture.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zrenie.errors import ConfigError
from zrenie.nn.checkpoint import build_from_spec
from zrenie.nn.transfer import head_names
from zrenie.registry import MODELS

PROBE_MIN = 32  # side of the dry-run image, at least: a padded backbone maps it to ceil(32 / s) at stride s <= 32


def build_encoder(name: str, in_channels: int = 3, kwargs: dict | None = None) -> nn.Module:
    """A registered classification backbone without its classifier (and auxiliary heads).

    Args:
        name: the backbone's registered name (`zrenie list models --task classify`).
        in_channels: channels of the input images.
        kwargs: the backbone builder's own options (`small_input`, `width_mult`, ...).
    """
    backbones = MODELS.list(tag="classify")
    if name not in backbones:
        raise ConfigError(f"model.kwargs.encoder: expected a classification backbone ({', '.join(backbones)}), "
                          f"got {name!r}")
    # one class: the head is thrown away, so it is built as small as the builder allows
    backbone = build_from_spec(name, {"num_classes": 1, "in_channels": in_channels, **(kwargs or {})})
    if not callable(getattr(backbone, "stage_features", None)):
        raise ConfigError(f"model.kwargs.encoder: {name} has no stage_features(x) to take skip connections from")
    for head in head_names(backbone):
        delattr(backbone, head)
    return backbone


@torch.no_grad()
def probe_stages(encoder: nn.Module, in_channels: int) -> tuple[list[int], list[int]]:
    """Channels and strides (powers of two) of the maps of `encoder.stage_features`, by a dry forward pass.

    The probe side is four times the backbone's minimum input, at least `PROBE_MIN`: unpadded
    backbones (AlexNet, Inception) lose a few pixels per convolution, which log2 rounding absorbs
    when the maps are not tiny (Inception-ResNet-v2 at 299 pixels: 147, 71, 35, 17, 8 -> 2, 4, 8, 16, 32).
    """
    side = max(PROBE_MIN, 4 * getattr(encoder, "min_input_size", 1))
    was_training = encoder.training
    encoder.eval()  # batchnorm keeps its statistics; nothing random runs
    try:
        maps = encoder.stage_features(torch.zeros(1, in_channels, side, side))
    finally:
        encoder.train(was_training)
    channels = [m.shape[1] for m in maps]
    strides = [2 ** max(0, round(math.log2(side / m.shape[-2]))) for m in maps]
    return channels, strides
