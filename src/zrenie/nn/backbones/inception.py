"""Inception-v3: Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision"
(arXiv:1512.00567).

The layout and `state_dict` keys are torchvision's `Inception3`, so its weight file loads as it is.
That layout follows the released TensorFlow model, which differs from the paper's Table 1 in
places (e.g. the 35x35 blocks keep a 5x5 branch beside the double 3x3 of Fig. 5).

Auxiliary classifier. In training mode, with `aux_logits=True`, `forward` returns
`InceptionOutputs(logits, aux_logits)` like torchvision; in eval mode, plain logits.
`zrenie.nn.backbones.googlenet.main_logits` takes the main logits of either form. The auxiliary
loss weight is 0.4 (`AUX_LOSS_WEIGHT`), the value in TF-slim's `train_image_classifier.py` (the
TensorFlow model zoo's training script) and in PyTorch's "Finetuning Torchvision Models" tutorial:

    out = model(images)
    loss = ce(out.logits, y) + AUX_LOSS_WEIGHT * ce(out.aux_logits, y)

The auxiliary head pools its 17x17 input with a fixed 5x5/3 window and then applies a 5x5 conv, so
in training it needs the full 299x299 input (`min_aux_input_size`); evaluation works from 75x75.
"""

from __future__ import annotations

from collections import namedtuple
from itertools import chain

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.nn.backbones.googlenet import (add_stem, basic_conv, imagenet_to_inception_range,
                                           init_truncated_normal, run_layers, run_stages)
from zrenie.nn.layers import check_input_size
from zrenie.errors import ConfigError
from zrenie.registry import MODELS

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])

AUX_LOSS_WEIGHT = 0.4

# Stem convs: name, out_channels, kernel, stride, padding (0 is "valid"). small_input makes each
# one stride-1 "same" and drops maxpool1 and maxpool2; kernel shapes, hence keys, are unchanged.
STEM = (("Conv2d_1a_3x3", 32, 3, 2, 0), ("Conv2d_2a_3x3", 32, 3, 1, 0), ("Conv2d_2b_3x3", 64, 3, 1, 1),
        ("Conv2d_3b_1x1", 80, 1, 1, 0), ("Conv2d_4a_3x3", 192, 3, 1, 0))

# Mixed blocks in order: name, block kind, its arguments (in_channels, then pool_features for A,
# channels_7x7 for C); the 35x35, 17x17 and 8x8 grids of the paper's Table 1.
MIXED = (("Mixed_5b", "A", (192, 32)), ("Mixed_5c", "A", (256, 64)), ("Mixed_5d", "A", (288, 64)),
         ("Mixed_6a", "B", (288,)), ("Mixed_6b", "C", (768, 128)), ("Mixed_6c", "C", (768, 160)),
         ("Mixed_6d", "C", (768, 160)), ("Mixed_6e", "C", (768, 192)),
         ("Mixed_7a", "D", (768,)), ("Mixed_7b", "E", (1280,)), ("Mixed_7c", "E", (2048,)))

_STEM_NAMES = tuple(row[0] for row in STEM)
_MIXED_NAMES = tuple(row[0] for row in MIXED)

# Layers in order, grouped into stages: a stage ends where the next one downsamples.
STAGES = {
    False: (_STEM_NAMES[:3], ("maxpool1",) + _STEM_NAMES[3:], ("maxpool2",) + _MIXED_NAMES[:3],
            _MIXED_NAMES[3:8], _MIXED_NAMES[8:]),
    True: (_STEM_NAMES + _MIXED_NAMES[:3], _MIXED_NAMES[3:8], _MIXED_NAMES[8:]),
}

# Smallest H = W that the stride-2 "valid" convs and poolings take (torchvision's meta says 75); the
# standard auxiliary head needs 299 (see the module docstring), the small_input one pools adaptively.
MIN_INPUT_SIZE = {False: 75, True: 7}
MIN_AUX_INPUT_SIZE = {False: 299, True: 7}


def _cat(*maps: Tensor) -> Tensor:
    return torch.cat(maps, 1)


class InceptionA(nn.Module):
    """35x35 block (paper, Fig. 5): 1x1, 5x5, double 3x3 and avgpool->1x1 branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = basic_conv(in_channels, 64, 1)
        self.branch5x5_1 = basic_conv(in_channels, 48, 1)
        self.branch5x5_2 = basic_conv(48, 64, 5)
        self.branch3x3dbl_1 = basic_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic_conv(64, 96, 3)
        self.branch3x3dbl_3 = basic_conv(96, 96, 3)
        self.branch_pool = basic_conv(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(self.branch1x1(x), b5, b3, pool)  # (B, 224 + pool_features, H, W)


class InceptionB(nn.Module):
    """35x35 -> 17x17 grid reduction (paper, Fig. 10): stride-2 3x3, double 3x3 and maxpool branches."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = basic_conv(in_channels, 384, 3, stride=2, padding=0)
        self.branch3x3dbl_1 = basic_conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = basic_conv(64, 96, 3)
        self.branch3x3dbl_3 = basic_conv(96, 96, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return _cat(self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2))  # (B, 480 + C, H', W')


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convs, 1x7 then 7x1 (paper, Fig. 6)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = basic_conv(in_channels, 192, 1)
        self.branch7x7_1 = basic_conv(in_channels, c7, 1)
        self.branch7x7_2 = basic_conv(c7, c7, (1, 7))
        self.branch7x7_3 = basic_conv(c7, 192, (7, 1))
        self.branch7x7dbl_1 = basic_conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = basic_conv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = basic_conv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = basic_conv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = basic_conv(c7, 192, (1, 7))
        self.branch_pool = basic_conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = run_layers(self, [f"branch7x7dbl_{i}" for i in range(1, 6)], x)
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(self.branch1x1(x), b7, b7dbl, pool)  # (B, 768, H, W)


class InceptionD(nn.Module):
    """17x17 -> 8x8 grid reduction: 3x3 and 7x7-then-3x3 stride-2 branches, and maxpool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = basic_conv(in_channels, 192, 1)
        self.branch3x3_2 = basic_conv(192, 320, 3, stride=2, padding=0)
        self.branch7x7x3_1 = basic_conv(in_channels, 192, 1)
        self.branch7x7x3_2 = basic_conv(192, 192, (1, 7))
        self.branch7x7x3_3 = basic_conv(192, 192, (7, 1))
        self.branch7x7x3_4 = basic_conv(192, 192, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = run_layers(self, [f"branch7x7x3_{i}" for i in range(1, 5)], x)
        return _cat(b3, b7, F.max_pool2d(x, 3, stride=2))  # (B, 512 + C, H', W')


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks, parallel 1x3 and 3x1 convs (paper, Fig. 7)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = basic_conv(in_channels, 320, 1)
        self.branch3x3_1 = basic_conv(in_channels, 384, 1)
        self.branch3x3_2a = basic_conv(384, 384, (1, 3))
        self.branch3x3_2b = basic_conv(384, 384, (3, 1))
        self.branch3x3dbl_1 = basic_conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = basic_conv(448, 384, 3)
        self.branch3x3dbl_3a = basic_conv(384, 384, (1, 3))
        self.branch3x3dbl_3b = basic_conv(384, 384, (3, 1))
        self.branch_pool = basic_conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = _cat(self.branch3x3_2a(b3), self.branch3x3_2b(b3))
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = _cat(self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl))
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(self.branch1x1(x), b3, b3dbl, pool)  # (B, 2048, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the last 17x17 map (paper, Sec. 4 and Fig. 8).

    Args:
        adaptive: pool to 5x5 adaptively instead of with torchvision's fixed 5x5/3 window, so that
            the head works on the 15x15 map of a 32x32 input (small_input).
    """

    def __init__(self, in_channels: int, num_classes: int, adaptive: bool = False):
        super().__init__()
        self.adaptive = adaptive
        self.conv0 = basic_conv(in_channels, 128, 1)
        self.conv1 = basic_conv(128, 768, 5, padding=0)
        self.fc = nn.Linear(768, num_classes)
        self.fc.stddev = 0.001  # torchvision's init for this layer

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, 5) if self.adaptive else F.avg_pool2d(x, 5, stride=3)  # (B, C, 5, 5)
        x = self.conv1(self.conv0(x))  # (B, 768, 1, 1) at 299x299 input
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # (B, num_classes)


BLOCKS = {"A": InceptionA, "B": InceptionB, "C": InceptionC, "D": InceptionD, "E": InceptionE}


class Inception3(nn.Module):
    """Inception-v3 with torchvision's layout and keys.

    Args:
        num_classes: outputs of the classifiers.
        in_channels: image channels (3 keeps torchvision's first conv shape).
        small_input: a stem for 32x32 images: every stem conv is stride-1 "same" and maxpool1,
            maxpool2 are dropped, so the 35x35 blocks see 32x32; the auxiliary head pools
            adaptively. Keys and shapes stay torchvision's, so its weights still load.
        aux_logits: build the auxiliary classifier (used in training mode only).
        transform_input: rescale ImageNet-normalised input to [-1, 1] first. False by default, as in
            torchvision's constructor; set it True with torchvision's ImageNet weights (its
            `inception_v3(weights=...)` builder does), which were ported from a [-1, 1] model.
        dropout: rate before the classifier (torchvision: 0.5).
    """

    min_input_size = MIN_INPUT_SIZE[False]
    min_aux_input_size = MIN_AUX_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 aux_logits: bool = True, transform_input: bool = False, dropout: float = 0.5):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ConfigError(f"inception_v3: transform_input needs RGB input, got in_channels={in_channels}")
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.stage_layers = STAGES[small_input]
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        self.min_aux_input_size = MIN_AUX_INPUT_SIZE[small_input]
        add_stem(self, STEM, in_channels, small_input)
        if not small_input:
            self.maxpool1 = nn.MaxPool2d(3, stride=2)
            self.maxpool2 = nn.MaxPool2d(3, stride=2)
        for name, kind, args in MIXED:
            setattr(self, name, BLOCKS[kind](*args))
            if name == "Mixed_6e" and aux_logits:
                self.AuxLogits = InceptionAux(768, num_classes, adaptive=small_input)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        init_truncated_normal(self, std=0.1)  # torchvision's Inception3 init

    def _prepare(self, x: Tensor, with_aux: bool) -> Tensor:
        if with_aux:
            check_input_size(x, self.min_aux_input_size, "inception_v3 (training with aux_logits)")
        check_input_size(x, self.min_input_size, "inception_v3")
        return imagenet_to_inception_range(x) if self.transform_input else x

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per resolution, each taken before it is downsampled.

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            Standard stem (sizes at 299x299 input): Conv2d_2b_3x3 (B, 64, 147, 147),
            Conv2d_4a_3x3 (B, 192, 71, 71), Mixed_5d (B, 288, 35, 35), Mixed_6e (B, 768, 17, 17),
            Mixed_7c (B, 2048, 8, 8). small_input (sizes at 32x32): Mixed_5d (B, 288, 32, 32),
            Mixed_6e (B, 768, 15, 15), Mixed_7c (B, 2048, 7, 7).
        """
        return run_stages(self, self.stage_layers, self._prepare(x, with_aux=False))

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        """Logits (B, num_classes); in training mode with aux_logits, `InceptionOutputs`."""
        with_aux = self.training and self.aux_logits
        x = self._prepare(x, with_aux)
        aux = None
        for name in chain.from_iterable(self.stage_layers):
            x = getattr(self, name)(x)
            if with_aux and name == "Mixed_6e":
                aux = self.AuxLogits(x)
        logits = self.fc(self.dropout(self.avgpool(x)).flatten(1))  # (B, num_classes)
        return InceptionOutputs(logits, aux) if with_aux else logits


@MODELS.register("inception_v3", tags=("classify",))
def inception_v3(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float | None = None, **kwargs) -> Inception3:
    """Inception-v3; torchvision's keys and its 27,161,264 parameters (with the auxiliary head,
    1000 classes; 23,834,568 without it).

    Args:
        dropout: rate before the classifier; None keeps 0.5.
        **kwargs: `aux_logits`, `transform_input` of `Inception3`.
    """
    if dropout is not None:
        kwargs["dropout"] = dropout
    return Inception3(num_classes, in_channels, small_input, **kwargs)
