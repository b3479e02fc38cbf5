"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

The modules and their names follow torchvision's `mobilenetv2.py` (`features`, a Sequential of a
stem conv, 17 inverted residual blocks and a 1x1 conv; `classifier` = Dropout, Linear), so at the
default settings the `state_dict` keys and shapes equal torchvision's for any `width_mult`.
"""

from __future__ import annotations

from torch import Tensor, nn

from zrenie.nn.backbones.common import init_kaiming_fan_out_
from zrenie.nn.layers import ConvBNAct, check_input_size
from zrenie.registry import MODELS

# Expansion t, output channels c, repeats n, stride of the first repeat s: Sandler et al. 2018, Table 2.
MOBILENET_V2_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to the nearest multiple of `divisor`, losing at most 10% of it.

    The rule of TensorFlow's reference `slim/nets/mobilenet/mobilenet.py`, which torchvision copies;
    multiples of 8 suit vectorised kernels, and the original weights were trained with these widths.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, residual if shapes match.

    Narrow -> wide -> narrow, the inverse of a ResNet bottleneck; the last 1x1 has no activation because
    a ReLU in the low-dimensional bottleneck destroys information (Sandler et al. 2018, Sec. 3.2-3.3).

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of the block's output.
        stride: of the depthwise convolution, 1 or 2.
        expand_ratio: hidden channels = round(in_channels * expand_ratio); 1 omits the expansion conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.out_channels = out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 for classification, with the five stage maps for dense tasks.

    Args:
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        small_input: for 32x32 images (CIFAR): the stem conv and the first stride-2 stage (24 channels)
            use stride 1, so the network downsamples 8x instead of 32x and ends on a 4x4 map.
        dropout: rate of the classifier's Dropout (0.2 when None, as in torchvision).
        width_mult: multiplies every layer's channels (the paper reports 0.35 to 1.4); the last conv
            keeps at least 1280 channels (Sandler et al. 2018, Sec. 6.1).
        round_nearest: channel counts are rounded to multiples of this; 1 turns rounding off.
        zero_init_residual: start the last BN scale of each residual block at 0, so it begins as the
            identity (Goyal et al. 2017); not in torchvision, off by default.
        name: the model's name, used in error messages.
    """

    # Every stride-2 layer is a padded 3x3 (pad 1), mapping n >= 1 pixels to floor((n - 1) / 2) + 1 >= 1,
    # so a 1x1 input still leaves a 1x1 map.
    min_input_size = 1

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float | None = None, width_mult: float = 1.0, round_nearest: int = 8,
                 zero_init_residual: bool = False, name: str = "mobilenet_v2"):
        super().__init__()
        self.name = name
        c = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers: list[nn.Module] = [ConvBNAct(in_channels, c, 3, 1 if small_input else 2, act=nn.ReLU6)]
        stage_ends = []  # index in `features` of each stride-2 block (where a stage ends), and the end
        for t, channels, n, s in MOBILENET_V2_SETTING:
            out = make_divisible(channels * width_mult, round_nearest)
            if s == 2:
                stage_ends.append(len(layers))
                if small_input and len(stage_ends) == 1:
                    s = 1  # with the stem's stride: the usual CIFAR change (kuangliu/pytorch-cifar)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(ConvBNAct(c, self.last_channel, 1, act=nn.ReLU6))
        stage_ends.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.stage_ends = tuple(stage_ends)  # (2, 4, 7, 14, 19)
        self.classifier = nn.Sequential(nn.Dropout(0.2 if dropout is None else dropout),
                                        nn.Linear(self.last_channel, num_classes))
        init_mobilenet_weights(self, zero_init_residual)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """The output at each of the five resolutions, taken before each downsampling and at the end.

        These are `features[1]`, `features[3]`, `features[6]`, `features[13]` and `features[18]` (the final
        1x1 conv), at strides 2, 4, 8, 16, 32 (1, 1, 2, 4, 8 with `small_input`).

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            [Tensor[B, 16, H/2, W/2], Tensor[B, 24, H/4, W/4], Tensor[B, 32, H/8, W/8],
            Tensor[B, 96, H/16, W/16], Tensor[B, 1280, H/32, W/32]] at width_mult=1; sizes round up.
        """
        check_input_size(x, self.min_input_size, self.name)
        maps, start = [], 0
        for end in self.stage_ends:
            x = self.features[start:end](x)
            maps.append(x)
            start = end
        return maps

    def forward(self, x: Tensor) -> Tensor:
        """Logits: Tensor[B, num_classes] for x: Tensor[B, C, H, W]."""
        check_input_size(x, self.min_input_size, self.name)
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)  # (B, last_channel)
        return self.classifier(x)


def init_mobilenet_weights(model: MobileNetV2, zero_init_residual: bool = False) -> None:
    """torchvision's MobileNetV2 init: Kaiming normal (fan_out) convs, BN 1 and 0, Linear N(0, 0.01)."""
    init_kaiming_fan_out_(model)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, InvertedResidual) and m.use_res_connect:
                nn.init.zeros_(m.conv[-1].weight)


@MODELS.register("mobilenet_v2", tags=("classify",))
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float | None = None, **kwargs) -> MobileNetV2:
    """MobileNetV2; 3,504,872 parameters with 1000 classes at width_mult=1.

    kwargs: `width_mult`, `round_nearest`, `zero_init_residual`.
    """
    return MobileNetV2(num_classes, in_channels, small_input, dropout, **kwargs)
