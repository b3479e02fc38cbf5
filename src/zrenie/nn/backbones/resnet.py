"""ResNet-18/34/50/101/152 (He et al. 2016, "Deep Residual Learning for Image Recognition").

The modules and their names follow torchvision's `resnet.py` (`conv1`, `bn1`, `layer1`..`layer4`,
blocks with `conv1`/`bn1`/`conv2`/`bn2`(/`conv3`/`bn3`) and `downsample`), so at the default
settings the `state_dict` keys and shapes equal torchvision's and its weight files load as they are.
"""

from __future__ import annotations

from torch import Tensor, nn

from zrenie.nn.backbones.common import init_kaiming_fan_out_
from zrenie.nn.layers import ConvBNAct, check_input_size
from zrenie.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (He et al. 2016, Fig. 2): ResNet-18 and -34.

    The same computation as `zrenie.nn.layers.BasicBlock` with a projection shortcut, but with
    torchvision's flat child names, so that ImageNet weight files load.

    Args:
        in_channels: channels of the block's input.
        channels: channels of both convolutions and of the output.
        stride: 2 in the first block of layer2..layer4, where the map is halved.
        dilation: of both convolutions, > 1 in stages whose stride became a dilation (torchvision's
            BasicBlock has none; DeepLab on a ResNet-18 needs it).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4) and a shortcut (He et al. 2016, Fig. 5): ResNet-50/101/152.

    The stride sits on the 3x3 convolution (`conv2`), not on the first 1x1 as in the paper: this is
    "ResNet v1.5", the placement of torchvision and of NVIDIA's reference, which trains about 0.5%
    more accurate on ImageNet (a strided 1x1 reads only a quarter of its input positions).

    Args:
        in_channels: channels of the block's input.
        channels: channels of the two inner convolutions; the output has 4x as many.
        stride: 2 in the first block of layer2..layer4, where the map is halved.
        dilation: of the 3x3 convolution, > 1 in stages whose stride became a dilation.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN shortcut where the shape changes (option B of He et al. 2016, Sec. 3.3), else None.

    `ConvBNAct` numbers its children, giving torchvision's keys `downsample.0.weight`, `downsample.1.*`.
    """
    if stride == 1 and in_channels == out_channels:
        return None
    return ConvBNAct(in_channels, out_channels, 1, stride, act=None)


# Block type and blocks per stage (layer1..layer4): He et al. 2016, Table 1.
RESNET_VARIANTS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}

STAGE_CHANNELS = (64, 128, 256, 512)  # inner width of layer1..layer4 (He et al. 2016, Table 1)


class ResNet(nn.Module):
    """ImageNet ResNet: a 7x7/2 conv stem and 3x3/2 max pool, four stages, global average pool, `fc`.

    Args:
        block: `BasicBlock` or `Bottleneck`.
        layers: blocks in each of the four stages.
        num_classes: outputs of `fc`.
        in_channels: channels of the input images.
        small_input: for 32x32 images (CIFAR): a 3x3 stride-1 stem and no max pool, so layer1 runs at
            full resolution, as in the paper's CIFAR networks (He et al. 2016, Sec. 4.2) and the common
            CIFAR ResNet-18 baselines (e.g. kuangliu/pytorch-cifar); stage maps are then 32, 16, 8, 4
            pixels wide.
        dropout: rate of an `nn.Dropout` before `fc` (torchvision has none). It holds no parameters,
            so the `state_dict` keys do not change.
        zero_init_residual: start each residual branch's last BN scale at 0, so every block begins as
            the identity (Goyal et al. 2017, Sec. 5.1: +0.2-0.3% top-1 on ImageNet).
        name: the variant's name, used in error messages.
        replace_stride_with_dilation: for layer2..layer4, keep the resolution and dilate the 3x3
            convolutions instead (DeepLab's output stride 8 is (False, True, True)), as torchvision.
    """

    # Every downsampling layer is padded (7x7/2 pad 3, max pool 3x3/2 pad 1, 3x3/2 pad 1, 1x1/2), so
    # each maps n >= 1 pixels to floor((n - 1) / 2) + 1 >= 1: a 1x1 input still leaves a 1x1 map.
    min_input_size = 1

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...], num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False, dropout: float | None = None,
                 zero_init_residual: bool = False, name: str = "resnet",
                 replace_stride_with_dilation: tuple[bool, bool, bool] = (False, False, False)):
        super().__init__()
        self.name = name
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        c, dilation = 64, 1
        for i, (channels, n) in enumerate(zip(STAGE_CHANNELS, layers)):
            stride, previous = (1 if i == 0 else 2), dilation
            if i > 0 and replace_stride_with_dilation[i - 1]:  # the stage keeps its input's resolution
                stride, dilation = 1, dilation * 2
            options = [{"dilation": previous if j == 0 else dilation} if dilation > 1 else {} for j in range(n)]
            blocks = [block(c if j == 0 else channels * block.expansion, channels, stride if j == 0 else 1,
                            **options[j]) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c = channels * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Identity() if dropout is None else nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        self.out_channels = c
        init_resnet_weights(self, zero_init_residual)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """The outputs of layer1..layer4, at strides 4, 8, 16, 32 (1, 2, 4, 8 with `small_input`).

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            [Tensor[B, 64e, H/4, W/4], Tensor[B, 128e, H/8, W/8], Tensor[B, 256e, H/16, W/16],
            Tensor[B, 512e, H/32, W/32]] with e = 1 (BasicBlock) or 4 (Bottleneck); sizes round up.
        """
        check_input_size(x, self.min_input_size, self.name)
        return self._stages(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits: Tensor[B, num_classes] for x: Tensor[B, C, H, W]."""
        check_input_size(x, self.min_input_size, self.name)
        x = self.avgpool(self._stages(x)[-1]).flatten(1)  # (B, 512e)
        return self.fc(self.dropout(x))

    def _stages(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            maps.append(x)
        return maps


def init_resnet_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's ResNet init: Kaiming normal (fan_out) convs, BN scale 1 and shift 0; `fc` keeps
    PyTorch's default init, as in torchvision."""
    init_kaiming_fan_out_(model, linear_std=None)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


def _resnet(name: str, num_classes: int, in_channels: int, small_input: bool, dropout: float | None,
            **kwargs) -> ResNet:
    block, layers = RESNET_VARIANTS[name]
    return ResNet(block, layers, num_classes, in_channels, small_input, dropout, name=name, **kwargs)


@MODELS.register("resnet18", tags=("classify",))
def resnet18(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2); 11,689,512 parameters with 1000 classes. kwargs: `zero_init_residual`."""
    return _resnet("resnet18", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("resnet34", tags=("classify",))
def resnet34(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3); 21,797,672 parameters with 1000 classes."""
    return _resnet("resnet34", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("resnet50", tags=("classify",))
def resnet50(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
             dropout: float | None = None, **kwargs) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3); 25,557,032 parameters with 1000 classes."""
    return _resnet("resnet50", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("resnet101", tags=("classify",))
def resnet101(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
              dropout: float | None = None, **kwargs) -> ResNet:
    """ResNet-101: bottleneck blocks (3, 4, 23, 3); 44,549,160 parameters with 1000 classes."""
    return _resnet("resnet101", num_classes, in_channels, small_input, dropout, **kwargs)


@MODELS.register("resnet152", tags=("classify",))
def resnet152(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
              dropout: float | None = None, **kwargs) -> ResNet:
    """ResNet-152: bottleneck blocks (3, 8, 36, 3); 60,192,808 parameters with 1000 classes."""
    return _resnet("resnet152", num_classes, in_channels, small_input, dropout, **kwargs)
