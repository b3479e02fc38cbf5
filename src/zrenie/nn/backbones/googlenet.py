"""GoogLeNet (Inception v1): Szegedy et al. 2014, "Going Deeper with Convolutions" (arXiv:1409.4842).

The layout and `state_dict` keys are torchvision's `GoogLeNet` (a BatchNorm after every conv, as in
torchvision's port), so torchvision's weight file loads as it is. This module also holds what the
Inception family shares: `basic_conv`, `main_logits`, `run_layers`, `run_stages`, `add_stem`
and the input renormalisation.

Auxiliary classifiers. In training mode, with `aux_logits=True`, `forward` returns
`GoogLeNetOutputs(logits, aux_logits2, aux_logits1)` like torchvision; in eval mode, plain logits.
The paper adds the auxiliary losses with weight 0.3 each (Sec. 5: "the losses of the auxiliary
classifiers were weighted by 0.3"), kept here as `AUX_LOSS_WEIGHT`:

    out = model(images)
    loss = ce(out.logits, y) + AUX_LOSS_WEIGHT * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))

`main_logits(out)` gives the main logits of either form (for metrics and predictions).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from itertools import chain

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zrenie.nn.layers import ConvBNAct, check_input_size
from zrenie.errors import ConfigError
from zrenie.registry import MODELS

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

AUX_LOSS_WEIGHT = 0.3

# in_channels (the previous output), then the paper's Table 1: #1x1, #3x3 reduce, #3x3,
# #5x5 reduce, #5x5, pool proj.
INCEPTION_CHANNELS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}

# Layers in order, grouped into stages: a stage ends where the next one downsamples.
STAGES = {
    False: (("conv1",), ("maxpool1", "conv2", "conv3"), ("maxpool2", "inception3a", "inception3b"),
            ("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
            ("maxpool4", "inception5a", "inception5b")),
    # small_input: conv1 is a stride-1 3x3 and maxpool1, maxpool2 are gone: the stem keeps 32x32.
    True: (("conv1", "conv2", "conv3", "inception3a", "inception3b"),
           ("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
           ("maxpool4", "inception5a", "inception5b")),
}

# The auxiliary heads read inception4a and inception4d (paper, Fig. 3).
AUX_TAPS = {"inception4a": "aux1", "inception4d": "aux2"}

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# Smallest H = W that leaves every pooling window inside the map (torchvision's meta says 15 too);
# the auxiliary heads pool adaptively, so training needs no more.
MIN_INPUT_SIZE = {False: 15, True: 2}


def basic_conv(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
               stride: int = 1, padding: int | tuple[int, int] | None = None) -> ConvBNAct:
    """torchvision's Inception `BasicConv2d`: conv (no bias) -> BatchNorm (eps 0.001) -> ReLU.

    Keys are `conv.weight`, `bn.*`; the ReLU has no parameters, so it adds none. `padding=None` is
    "same" at stride 1; the "valid" convs of the Inception stems pass `padding=0`.
    """
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, padding, eps=1e-3,
                     names=("conv", "bn", "relu"))


def main_logits(output: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The main classifier's logits: `output` itself, or field 0 (`logits`) of the namedtuple that
    GoogLeNet and Inception-v3 return in training mode with auxiliary heads."""
    return output if isinstance(output, Tensor) else output[0]


def run_layers(model: nn.Module, names: Iterable[str], x: Tensor) -> Tensor:
    """Applies the named child modules of `model` in order."""
    for name in names:
        x = getattr(model, name)(x)
    return x


def run_stages(model: nn.Module, stages: Iterable[Iterable[str]], x: Tensor) -> list[Tensor]:
    """Applies the named child modules of `model` stage by stage; the output of every stage."""
    maps = []
    for stage in stages:
        x = run_layers(model, stage, x)
        maps.append(x)
    return maps


def add_stem(model: nn.Module, stem: Iterable[tuple], in_channels: int, small_input: bool) -> int:
    """Adds the stem convs of Inception-v3 and Inception-ResNet-v2 to `model`; their output channels.

    `stem` rows are (name, out_channels, kernel, stride, padding). With `small_input` every conv is
    stride-1 "same" instead: the kernels, hence the keys and weight shapes, stay the same, so
    ImageNet weights still load while a 32x32 image keeps its size through the stem.
    """
    c = in_channels
    for name, out, kernel, stride, padding in stem:
        conv = basic_conv(c, out, kernel) if small_input else basic_conv(c, out, kernel, stride, padding)
        setattr(model, name, conv)
        c = out
    return c


def imagenet_to_inception_range(x: Tensor) -> Tensor:
    """Maps ImageNet mean/std-normalised RGB to (rgb - 0.5) / 0.5, the [-1, 1] range that the weights
    ported from the original releases (torchvision's GoogLeNet and Inception-v3 files) expect.

    The arithmetic is torchvision's, per channel with Python floats, so results agree bit for bit.

    Args:
        x: Tensor[B, 3, H, W], normalised with ImageNet mean and std.
    """
    channels = [x[:, i:i + 1] * (std / 0.5) + (mean - 0.5) / 0.5
                for i, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD))]
    return torch.cat(channels, 1)  # (B, 3, H, W)


def init_truncated_normal(model: nn.Module, std: float) -> None:
    """torchvision's Inception initialisation: conv and linear weights from N(0, std) truncated to
    [-2, 2], BatchNorm scale 1 and shift 0; a layer's own `stddev` attribute overrides `std`."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=getattr(m, "stddev", std), a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Inception(nn.Module):
    """The Inception module (paper, Fig. 2b): 1x1, 1x1->3x3, 1x1->"5x5" and maxpool->1x1 branches.

    The "5x5" branch is a 3x3 conv, as in torchvision: its weight file was converted with that
    kernel (pytorch/vision#906), and loading it is the point of matching its layout.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = basic_conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(basic_conv(in_channels, ch3x3red, 1), basic_conv(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(basic_conv(in_channels, ch5x5red, 1), basic_conv(ch5x5red, ch5x5, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     basic_conv(in_channels, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([branch(x) for branch in branches], 1)  # (B, sum of branch channels, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier (paper, Sec. 5): 4x4 average pool, 1x1 conv to 128, FC 1024, dropout, FC.

    The pooling is adaptive (torchvision's choice), so the head works at any input size.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = basic_conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)  # (B, 2048)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))  # (B, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's layout and keys.

    Args:
        num_classes: outputs of the classifiers.
        in_channels: image channels (3 keeps torchvision's `conv1` shape).
        small_input: a stem for 32x32 images: conv1 is a stride-1 3x3 conv and maxpool1, maxpool2
            are dropped, so the inception3 blocks see 32x32 (as CIFAR ports of GoogLeNet do).
            All other keys and shapes stay torchvision's.
        aux_logits: build the two auxiliary classifiers (used in training mode only).
        transform_input: rescale ImageNet-normalised input to [-1, 1] first. False by default, as in
            torchvision's constructor; set it True with torchvision's ImageNet weights, which its
            `googlenet(weights=...)` builder does, because they were ported from a model trained on
            [-1, 1] inputs.
        dropout: rate before the main classifier (torchvision 0.2; the paper's Table 1 has 0.4).
        dropout_aux: rate inside the auxiliary heads (paper, Sec. 5: 0.7).
    """

    min_input_size = MIN_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 aux_logits: bool = True, transform_input: bool = False, dropout: float = 0.2,
                 dropout_aux: float = 0.7):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ConfigError(f"googlenet: transform_input needs RGB input, got in_channels={in_channels}")
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.stage_layers = STAGES[small_input]
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        if small_input:
            self.conv1 = basic_conv(in_channels, 64, 3)
        else:
            self.conv1 = basic_conv(in_channels, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = basic_conv(64, 64, 1)
        self.conv3 = basic_conv(64, 192, 3)
        for name, channels in INCEPTION_CHANNELS.items():
            setattr(self, name, Inception(*channels))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        if aux_logits:
            self.aux1 = InceptionAux(INCEPTION_CHANNELS["inception4b"][0], num_classes, dropout_aux)
            self.aux2 = InceptionAux(INCEPTION_CHANNELS["inception4e"][0], num_classes, dropout_aux)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_truncated_normal(self, std=0.01)  # torchvision's GoogLeNet init

    def _prepare(self, x: Tensor) -> Tensor:
        check_input_size(x, self.min_input_size, "googlenet")
        return imagenet_to_inception_range(x) if self.transform_input else x

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per resolution, each taken before it is downsampled.

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            Standard stem, strides 2, 4, 8, 16, 32: conv1 (B, 64, H/2, W/2), conv3 (B, 192, H/4, W/4),
            inception3b (B, 480, H/8, W/8), inception4e (B, 832, H/16, W/16),
            inception5b (B, 1024, H/32, W/32) (sizes rounded up, as the poolings use ceil mode).
            small_input, strides 1, 2, 4: inception3b (B, 480, H, W), inception4e (B, 832, H/2, W/2),
            inception5b (B, 1024, H/4, W/4).
        """
        return run_stages(self, self.stage_layers, self._prepare(x))

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        """Logits (B, num_classes); in training mode with aux_logits, `GoogLeNetOutputs`."""
        x = self._prepare(x)
        with_aux = self.training and self.aux_logits
        aux = {}
        for name in chain.from_iterable(self.stage_layers):
            x = getattr(self, name)(x)
            if with_aux and name in AUX_TAPS:
                aux[AUX_TAPS[name]] = getattr(self, AUX_TAPS[name])(x)
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))  # (B, num_classes)
        return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"]) if with_aux else logits


@MODELS.register("googlenet", tags=("classify",))
def googlenet(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
              dropout: float | None = None, **kwargs) -> GoogLeNet:
    """GoogLeNet (Inception v1); torchvision's keys and its 13,004,888 parameters (with auxiliary
    heads, 1000 classes; 6,624,904 without them).

    Args:
        dropout: rate before the main classifier; None keeps 0.2.
        **kwargs: `aux_logits`, `transform_input`, `dropout_aux` of `GoogLeNet`.
    """
    if dropout is not None:
        kwargs["dropout"] = dropout
    return GoogLeNet(num_classes, in_channels, small_input, **kwargs)
