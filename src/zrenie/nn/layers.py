"""Building blocks shared by the architectures."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from zrenie.errors import ShapeError


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation: the course's custom layer (Conv + BatchNorm + ReLU).

    The convolution has no bias because the batchnorm's shift makes it redundant.
    Set `norm=False` to drop the batchnorm (the conv then keeps its bias).

    Args:
        kernel_size, stride, padding, dilation: as in `nn.Conv2d`; ints or (h, w) pairs. `padding`
            defaults to "same" for odd kernels at stride 1.
        eps: batchnorm epsilon (torchvision's Inception uses 0.001).
        names: child names, e.g. `("conv", "bn", "relu")`, so that state_dict keys match an existing
            implementation (torchvision's Inception `BasicConv2d` has `conv.weight`, `bn.weight`);
            by default the children are numbered like `Conv2dNormActivation` (`0.weight`, `1.weight`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | None = None,
                 groups: int = 1, norm: bool = True, act: type[nn.Module] | None = nn.ReLU,
                 dilation: int = 1, eps: float = 1e-5, names: tuple[str, ...] | None = None):
        if padding is None:
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             dilation=dilation, groups=groups, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels, eps=eps))
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU) else act())
        if names is None:
            super().__init__(*layers)
        else:
            super().__init__(OrderedDict(zip(names, layers)))


class BasicBlock(nn.Module):
    """Two 3x3 ConvBNAct layers and a shortcut: identity, 1x1 projection, or zero padding ("pad")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "projection",
                 zero_init: bool = False):
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
        if zero_init:
            # Each block starts as the identity (Goyal et al. 2017). Off by default, as in torchvision:
            # measured here, it slows small-batch SGD on digits from 89% to 24% train accuracy at epoch 3.
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


def check_input_size(x: Tensor, min_size: int, model: str) -> None:
    """One-line error for inputs an architecture cannot take, instead of a deep shape error.

    Args:
        x: Tensor[B, C, H, W].
        min_size: smallest H and W the architecture's downsampling leaves at least 1x1.
    """
    if x.ndim != 4:
        raise ShapeError(f"{model}: expected images (B, C, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_size:
        raise ShapeError(f"{model}: input {x.shape[-2]}x{x.shape[-1]} is smaller than the minimum "
                         f"{min_size}x{min_size}; pass small_input=true for small images")
