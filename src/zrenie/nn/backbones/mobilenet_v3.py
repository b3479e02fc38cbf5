"""MobileNetV3-Large and -Small (Howard et al. 2019, "Searching for MobileNetV3").

The modules and their names follow torchvision's `mobilenetv3.py`: `features` is a Sequential of a
stem conv, the inverted residual blocks (each a Sequential `block` of expand, depthwise, optional
squeeze-and-excitation and projection) and a 1x1 conv; `classifier` is Linear, Hardswish, Dropout,
Linear. So the `state_dict` keys and shapes equal torchvision's for any `width_mult`, `reduced_tail`
and `dilated`, and torchvision's weight files load as they are.
"""

from __future__ import annotations

from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.backbones.common import init_kaiming_fan_out_, outputs_before
from zrenie.nn.backbones.mobilenet import make_divisible
from zrenie.nn.layers import ConvBNAct, check_input_size
from zrenie.registry import MODELS

# One row per block: kernel, expanded channels, output channels, squeeze-and-excitation, activation
# ("RE" ReLU, "HS" hard-swish), stride. Howard et al. 2019, Table 1 (Large) and Table 2 (Small); the
# input of each block is the previous block's output, the stem gives 16 channels.
MOBILENET_V3_SETTINGS: dict[str, tuple[tuple[int, int, int, bool, str, int], ...]] = {
    "large": (
        (3, 16, 16, False, "RE", 1),
        (3, 64, 24, False, "RE", 2),
        (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2),
        (5, 120, 40, True, "RE", 1),
        (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2),
        (3, 200, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1),
        (3, 480, 112, True, "HS", 1),
        (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2),
        (5, 960, 160, True, "HS", 1),
        (5, 960, 160, True, "HS", 1),
    ),
    "small": (
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    ),
}
# Width of the classifier's hidden Linear layer (the tables' last "FC, NBN" row before the output).
MOBILENET_V3_LAST_CHANNEL = {"large": 1280, "small": 1024}
STEM_CHANNELS = 16
# BN settings of the TensorFlow reference (epsilon 0.001, decay 0.99), which torchvision keeps: the
# published weights were trained with them.
BN_EPS, BN_MOMENTUM = 1e-3, 0.01

ACTIVATIONS: dict[str, type[nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}


class SqueezeExcitation(nn.Module):
    """Channel gates from the global average: 1x1 conv, ReLU, 1x1 conv, hard sigmoid (Hu et al. 2018).

    MobileNetV3 swaps SE-Net's sigmoid for the piecewise-linear hard sigmoid, cheaper on mobile
    hardware (Howard et al. 2019, Sec. 5.3). Names `fc1`, `fc2` as in torchvision's `SqueezeExcitation`.

    Args:
        channels: of the input (and the output).
        squeeze_channels: of the bottleneck between the two convs.
    """

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        scale = self.fc2(nn.functional.relu(self.fc1(scale), inplace=True))
        return x * nn.functional.hardsigmoid(scale, inplace=True)


class InvertedResidualV3(nn.Module):
    """1x1 expand -> kxk depthwise -> optional squeeze-and-excitation -> 1x1 linear projection,
    residual if shapes match: MobileNetV2's block with SE and a choice of activation (Sec. 5).

    Args:
        in_channels: channels of the block's input.
        kernel: of the depthwise convolution, 3 or 5.
        expanded: hidden channels; equal to `in_channels`, the expansion conv is left out.
        out_channels: channels of the block's output.
        use_se: add squeeze-and-excitation after the depthwise conv (squeezing to a quarter).
        activation: "RE" (ReLU) or "HS" (hard-swish).
        stride: of the depthwise convolution, 1 or 2; 1 whenever `dilation` > 1.
        dilation: of the depthwise convolution.
    """

    def __init__(self, in_channels: int, kernel: int, expanded: int, out_channels: int, use_se: bool,
                 activation: str, stride: int, dilation: int = 1):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidualV3 stride must be 1 or 2, got {stride}")
        act = ACTIVATIONS[activation]
        self.out_channels = out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act, eps=BN_EPS))
        layers.append(ConvBNAct(expanded, expanded, kernel, 1 if dilation > 1 else stride, groups=expanded,
                                act=act, dilation=dilation, eps=BN_EPS))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8)))
        layers.append(ConvBNAct(expanded, out_channels, 1, act=None, eps=BN_EPS))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


def block_rows(variant: str, width_mult: float = 1.0, reduced_tail: bool = False,
               dilated: bool = False) -> list[tuple[int, int, int, int, bool, str, int, int]]:
    """The blocks of a variant as (in, kernel, expanded, out, SE, activation, stride, dilation) rows.

    The tail is the last stage (from the last stride-2 block on). `reduced_tail` halves its channels,
    as the paper's detection and segmentation models do: the stage was sized for ImageNet's 1000
    classes (Howard et al. 2019, Sec. 6). `dilated` gives its depthwise convs dilation 2 instead of
    the stride, for output stride 16 in segmentation.
    Channels are multiplied by `width_mult` and rounded to multiples of 8, as in torchvision.
    """
    table = MOBILENET_V3_SETTINGS[variant]
    tail = max(i for i, row in enumerate(table) if row[-1] == 2)
    divider = 2 if reduced_tail else 1
    rows, previous = [], make_divisible(STEM_CHANNELS * width_mult)
    for i, (kernel, expanded, out, use_se, activation, stride) in enumerate(table):
        if i >= tail:
            out //= divider
            if i > tail:  # the first tail block expands the full-width input
                expanded //= divider
        out = make_divisible(out * width_mult)
        rows.append((previous, kernel, make_divisible(expanded * width_mult), out, use_se, activation, stride,
                     2 if dilated and i >= tail else 1))
        previous = out
    return rows


class MobileNetV3(nn.Module):
    """MobileNetV3 for classification, with the five stage maps for dense tasks.

    Args:
        variant: "large" or "small".
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        small_input: for 32x32 images (CIFAR): the stem conv and the first stride-2 block use stride 1,
            so the network downsamples 8x instead of 32x, as `mobilenet_v2` does.
        dropout: rate of the classifier's Dropout (0.2 when None, as in torchvision).
        width_mult: multiplies every layer's channels (the paper reports 0.35 to 1.25).
        reduced_tail: halve the channels of the last stage (see `block_rows`).
        dilated: the last stage keeps its input's resolution and dilates instead (output stride 16),
            as torchvision's segmentation models build their backbone.
        name: the model's name, used in error messages.
    """

    # Every stride-2 layer is padded ((k - 1) / 2), mapping n >= 1 pixels to floor((n - 1) / 2) + 1 >= 1,
    # so a 1x1 input still leaves a 1x1 map (torchvision's `min_size` is (1, 1) too).
    min_input_size = 1

    def __init__(self, variant: str = "large", num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False, dropout: float | None = None, width_mult: float = 1.0,
                 reduced_tail: bool = False, dilated: bool = False, name: str | None = None):
        super().__init__()
        if variant not in MOBILENET_V3_SETTINGS:
            raise ConfigError(f"variant: expected one of {', '.join(MOBILENET_V3_SETTINGS)}, got {variant!r}")
        self.name = name or f"mobilenet_v3_{variant}"
        rows = block_rows(variant, width_mult, reduced_tail, dilated)
        layers: list[nn.Module] = [ConvBNAct(in_channels, rows[0][0], 3, 1 if small_input else 2,
                                             act=nn.Hardswish, eps=BN_EPS)]
        stage_ends = []  # index in `features` of each stride-2 block (where a stage ends), and the end
        for c_in, kernel, expanded, out, use_se, activation, stride, dilation in rows:
            if stride == 2:
                stage_ends.append(len(layers))
                if small_input and len(stage_ends) == 1:
                    stride = 1
            layers.append(InvertedResidualV3(c_in, kernel, expanded, out, use_se, activation, stride, dilation))
        last_conv = 6 * rows[-1][3]  # 960 (Large) or 576 (Small) at width 1
        layers.append(ConvBNAct(rows[-1][3], last_conv, 1, act=nn.Hardswish, eps=BN_EPS))
        stage_ends.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.stage_ends = tuple(stage_ends)  # (2, 4, 7, 13, 17) Large, (1, 2, 4, 9, 13) Small
        self.out_channels = last_conv
        last_channel = make_divisible(MOBILENET_V3_LAST_CHANNEL[variant] // (2 if reduced_tail else 1) * width_mult)
        self.classifier = nn.Sequential(nn.Linear(last_conv, last_channel), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2 if dropout is None else dropout, inplace=True),
                                        nn.Linear(last_channel, num_classes))
        init_kaiming_fan_out_(self)  # torchvision's init: Kaiming fan-out convs, BN 1 and 0, Linear N(0, 0.01)
        for m in self.features.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = BN_MOMENTUM

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """The output at each of the five resolutions, taken before each downsampling and at the end.

        For Large these are `features[1]`, `[3]`, `[6]`, `[12]` and `[16]` (the final 1x1 conv); for Small
        `features[0]`, `[1]`, `[3]`, `[8]` and `[12]`. Strides 2, 4, 8, 16, 32 (1, 1, 2, 4, 8 with
        `small_input`; the last is 16 when `dilated`).

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            Large: [Tensor[B, 16, H/2, W/2], Tensor[B, 24, H/4, W/4], Tensor[B, 40, H/8, W/8],
            Tensor[B, 112, H/16, W/16], Tensor[B, 960, H/32, W/32]]; Small: 16, 16, 24, 48 and 576
            channels; at width_mult=1, sizes round up.
        """
        check_input_size(x, self.min_input_size, self.name)
        return outputs_before(self.features, x, self.stage_ends)

    def forward(self, x: Tensor) -> Tensor:
        """Logits: Tensor[B, num_classes] for x: Tensor[B, C, H, W]."""
        check_input_size(x, self.min_input_size, self.name)
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)  # (B, 960) Large, (B, 576) Small
        return self.classifier(x)


@MODELS.register("mobilenet_v3_large", tags=("classify",))
def mobilenet_v3_large(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                       dropout: float | None = None, **kwargs) -> MobileNetV3:
    """MobileNetV3-Large; 5,483,032 parameters with 1000 classes at width_mult=1.

    kwargs: `width_mult`, `reduced_tail`, `dilated` (torchvision's names).
    """
    return MobileNetV3("large", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("mobilenet_v3_small", tags=("classify",))
def mobilenet_v3_small(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                       dropout: float | None = None, **kwargs) -> MobileNetV3:
    """MobileNetV3-Small; 2,542,856 parameters with 1000 classes at width_mult=1.

    kwargs: `width_mult`, `reduced_tail`, `dilated` (torchvision's names).
    """
    return MobileNetV3("small", num_classes, in_channels, small_input, dropout, **kwargs)
