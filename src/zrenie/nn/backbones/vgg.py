"""VGG (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition") in torchvision's layout: configurations A, B, D, E of the paper's Table 1, with and
without batchnorm.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from zrenie.nn.backbones.common import FlatConvNet, init_kaiming_fan_out_, pool_indices
from zrenie.nn.backbones.zfnet import fc_classifier
from zrenie.registry import MODELS

# Columns of Table 1 of the paper: output channels of each 3x3 convolution, "M" for a 2x2 max pool.
# The letters are the paper's; torchvision's `cfgs` uses the same table.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}

# name -> (configuration, batchnorm, parameters of torchvision's model with 1000 classes,
# `VGG*_Weights.IMAGENET1K_V1.meta["num_params"]`; the test checks them against the models).
VARIANTS: dict[str, tuple[str, bool, int]] = {
    "vgg11": ("A", False, 132_863_336),
    "vgg11_bn": ("A", True, 132_868_840),
    "vgg13": ("B", False, 133_047_848),
    "vgg13_bn": ("B", True, 133_053_736),
    "vgg16": ("D", False, 138_357_544),
    "vgg16_bn": ("D", True, 138_365_992),
    "vgg19": ("E", False, 143_667_240),
    "vgg19_bn": ("E", True, 143_678_248),
}


# Smallest H and W by small_input: five 2x2/2 pools need 32 pixels to leave 1x1 (torchvision's
# meta min_size); four need 16.
MIN_INPUT_SIZE = {False: 32, True: 16}


def make_layers(config: Sequence[int | str], batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG as one flat Sequential.

    Conv, [BatchNorm,] ReLU stay separate entries instead of `ConvBNAct` blocks: torchvision's keys
    are `features.0.weight`, `features.1.running_mean`, ..., so grouping them would rename every
    weight and torchvision's weight files would no longer load. The convolutions keep their bias
    even before batchnorm, as torchvision's do.
    """
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


class VGG(FlatConvNet):
    """A VGG network: `features`, `avgpool` and `classifier` with torchvision's names and indices.

    Args:
        config: a column of `CONFIGS` (channels and "M" pools).
        batch_norm: batchnorm after every convolution (torchvision's `vgg*_bn`).
        num_classes: outputs of the last linear layer.
        in_channels: channels of the input images (changes only `features.0`).
        small_input: the first max pool becomes an `nn.Identity`, so a 32x32 image ends in a 2x2
            map instead of 1x1. The Identity holds the pool's index, so every key is unchanged.
        dropout: rate of the dropout after fc6 and fc7.
        name: the name used in error messages.

    `stage_features` gives five maps, one per convolution group of Table 1, each taken before the
    group's pool: (B, 64, H, W), (B, 128, H/2, W/2), (B, 256, H/4, W/4), (B, 512, H/8, W/8),
    (B, 512, H/16, W/16). With `small_input` the first two share the input's size: H, H, H/2,
    H/4, H/8.
    """

    min_input_size: int = MIN_INPUT_SIZE[False]

    def __init__(self, config: Sequence[int | str], batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, dropout: float = 0.5, name: str = "vgg"):
        super().__init__()
        self.name = name
        self.features = make_layers(config, batch_norm, in_channels)
        self.stage_ends = pool_indices(self.features)
        if small_input:
            self.features[self.stage_ends[0]] = nn.Identity()
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = fc_classifier(512 * 7 * 7, num_classes, dropout)
        init_kaiming_fan_out_(self)  # torchvision's VGG init


def _vgg(name: str, num_classes: int, in_channels: int, small_input: bool, dropout: float | None,
         **kwargs) -> VGG:
    config, batch_norm, _ = VARIANTS[name]
    return VGG(CONFIGS[config], batch_norm, num_classes, in_channels, small_input,
               0.5 if dropout is None else dropout, name=name, **kwargs)


@MODELS.register("vgg11", tags=("classify",))
def vgg11(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
          dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration A (11 weight layers); 132,863,336 parameters with 1000 classes."""
    return _vgg("vgg11", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg11_bn", tags=("classify",))
def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration A with batchnorm; 132,868,840 parameters with 1000 classes."""
    return _vgg("vgg11_bn", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg13", tags=("classify",))
def vgg13(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
          dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration B (13 weight layers); 133,047,848 parameters with 1000 classes."""
    return _vgg("vgg13", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg13_bn", tags=("classify",))
def vgg13_bn(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration B with batchnorm; 133,053,736 parameters with 1000 classes."""
    return _vgg("vgg13_bn", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg16", tags=("classify",))
def vgg16(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
          dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration D (16 weight layers); 138,357,544 parameters with 1000 classes."""
    return _vgg("vgg16", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg16_bn", tags=("classify",))
def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration D with batchnorm; 138,365,992 parameters with 1000 classes."""
    return _vgg("vgg16_bn", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg19", tags=("classify",))
def vgg19(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
          dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration E (19 weight layers); 143,667,240 parameters with 1000 classes."""
    return _vgg("vgg19", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("vgg19_bn", tags=("classify",))
def vgg19_bn(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> VGG:
    """VGG configuration E with batchnorm; 143,678,248 parameters with 1000 classes."""
    return _vgg("vgg19_bn", num_classes, in_channels, small_input, dropout, **kwargs)
