"""Building blocks shared by the architectures."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError, ShapeError


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


UPSAMPLE_MODES = ("transposed", "resize_conv", "nearest", "max_unpool")


class Upsample2x(nn.Module):
    """Doubles a map's resolution and maps `in_channels` to `out_channels`, four ways (the U-Net homework):

    - "transposed": a 2x2 stride-2 transposed convolution, as in the U-Net paper ("up-convolution");
    - "resize_conv": bilinear resize, then a 3x3 convolution, which avoids the checkerboard artefacts of
      transposed convolutions (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts");
    - "nearest": nearest-neighbour resize, then a 3x3 convolution;
    - "max_unpool": a 3x3 convolution to `out_channels`, then `MaxUnpool2d` with the encoder's pooling
      indices (SegNet's upsampling); `forward` then needs `indices` (and the size) of the matching max pool.

    Args:
        in_channels: channels of the coarse map.
        out_channels: channels of the output.
        mode: one of `UPSAMPLE_MODES`.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "transposed"):
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample: expected one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}")
        self.mode = mode
        if mode == "transposed":
            self.conv: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 2, 2)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor, indices: Tensor | None = None, size: torch.Size | None = None) -> Tensor:
        """Tensor[B, in, h, w] -> Tensor[B, out, 2h, 2w] (or `size`, for max unpooling of odd maps)."""
        if self.mode == "transposed":
            return self.conv(x)
        if self.mode == "max_unpool":
            if indices is None:
                raise ShapeError("upsample=max_unpool needs the encoder's pooling indices")
            # the convolution first, at the coarse resolution: the indices have the output's channels
            return nn.functional.max_unpool2d(self.conv(x), indices, 2, 2, output_size=size)
        scaled = nn.functional.interpolate(x, scale_factor=2, mode="bilinear" if self.mode == "resize_conv"
                                           else "nearest", **({"align_corners": False}
                                                              if self.mode == "resize_conv" else {}))
        return self.conv(scaled)


def match_size(x: Tensor, like: Tensor) -> Tensor:
    """Pads (bottom, right) or crops `x` to the spatial size of `like`: a map upsampled from an odd size
    is one pixel short of its skip connection."""
    dh, dw = like.shape[-2] - x.shape[-2], like.shape[-1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    if dh >= 0 and dw >= 0:
        return nn.functional.pad(x, (0, dw, 0, dh))
    return nn.functional.pad(x, (0, max(dw, 0), 0, max(dh, 0)))[..., :like.shape[-2], :like.shape[-1]]


def bilinear_upsample_weight(channels: int, kernel_size: int) -> Tensor:
    """Weights `[C, C, k, k]` that make a `ConvTranspose2d` a bilinear interpolation per channel, the FCN
    paper's initialisation of its learnable upsampling (Long et al. 2015, Sec. 3.3)."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (grid - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight
