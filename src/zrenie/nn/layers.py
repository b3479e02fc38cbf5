"""Building blocks shared by the architectures."""

from __future__ import annotations

from torch import Tensor, nn


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation: the course's custom layer (Conv + BatchNorm + ReLU).

    The convolution has no bias because the batchnorm's shift makes it redundant.
    Set `norm=False` to drop the batchnorm (the conv then keeps its bias).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, groups: int = 1, norm: bool = True,
                 act: type[nn.Module] | None = nn.ReLU):
        padding = kernel_size // 2 if padding is None else padding
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             groups=groups, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU) else act())
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 ConvBNAct layers and a shortcut: identity, 1x1 projection, or zero padding ("pad")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "projection"):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, 1, act=None)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "pad":
            self.shortcut = PadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = ConvBNAct(in_channels, out_channels, 1, stride, act=None)
        self.act = nn.ReLU(inplace=True)
        # Zero-init the last BN scale so each block starts as the identity (Goyal et al. 2017).
        nn.init.zeros_(self.conv2[1].weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class PadShortcut(nn.Module):
    """Parameter-free shortcut: subsample by `stride` and zero-pad the new channels.

    Option A of He et al. 2016 (Sec. 4.2), used by their CIFAR ResNets so that the parameter
    counts of the paper (0.27M for ResNet-20) hold.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        if self.extra:
            x = nn.functional.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return x
