"""SPP-net: He, Zhang, Ren & Sun 2014, "Spatial Pyramid Pooling in Deep Convolutional Networks for
Visual Recognition" (ECCV 2014; TPAMI 2015).

The pool after the last convolution is replaced by a spatial pyramid pool: max pooling over
l x l bins for every pyramid level l, flattened and concatenated. The output length depends only
on the channels and the levels, so the dense layers accept images of any size.

Configuration: the paper's ZF-5 trunk (conv1..conv5 of ZFNet, see `zfnet.py`) and its 4-level
pyramid {6x6, 3x3, 2x2, 1x1} (50 bins; Sec. 3.1 of the TPAMI paper), so fc6 takes 50 * 256 = 12,800
features, as in the authors' release (ShaoqingRen/SPP_net, model-defs/Zeiler_conv5.prototxt).
Counted by hand: conv1..conv5 3,726,464 + fc6 52,432,896 (12,800 * 4,096 + 4,096)
+ fc7 16,781,312 + fc8 4,097,000 = 77,037,672 parameters with 1000 classes (the paper prints no
total; the test recomputes this sum from the layer table). With levels (1, 2, 4) fc6 takes
21 * 256 = 5,376 features and the total is 46,628,968.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zrenie.nn.backbones.common import FlatConvNet, pool_indices
from zrenie.nn.backbones.zfnet import fc_classifier, zf_trunk
from zrenie.registry import MODELS

# Coarse to fine, the order in which the authors' release concatenates pool5_spm1, spm2, spm3 and
# spm6 (each flattened channel-major like ours), so fc6 weights from it would line up.
SPP_LEVELS = (1, 2, 3, 6)
# Smallest H and W by small_input. No pool5, so below ZFNet's 47; a 3x3/2 ceil-mode pool needs at
# least 2 pixels. Default, side after conv1, pool1, conv2, pool2: 31 -> 14 -> 7 -> 2 -> 1 (30 leaves
# pool2 a 1x1 map). small_input, after pool1, pool2: 4 -> 2 -> 1. The tests measure both.
MIN_INPUT_SIZE = {False: 31, True: 4}


def spatial_pyramid_pool(x: Tensor, levels: Sequence[int] = SPP_LEVELS) -> Tensor:
    """Max pools `x` over an l x l grid for each level and concatenates the flattened grids.

    Bins follow adaptive pooling: bin i of n along a side of a pixels covers
    [floor(i * a / n), ceil((i + 1) * a / n)). On the 13x13 conv5 map of a 224x224 image this is
    exactly the paper's sliding window (window ceil(a/n), stride floor(a/n), Sec. 2.3); unlike
    that rule it covers every pixel for any a and still works when a < n (bins then repeat pixels).

    Args:
        x: Tensor[B, C, H, W].
        levels: grid sides, e.g. (1, 2, 3, 6).

    Returns:
        Tensor[B, C * sum(l * l)]: level by level in the given order, each (C, l, l) flattened.
    """
    return torch.cat([F.adaptive_max_pool2d(x, level).flatten(1) for level in levels], dim=1)


class SpatialPyramidPool(nn.Module):
    """`spatial_pyramid_pool` as a layer; `out_features(channels)` gives the output length."""

    def __init__(self, levels: Sequence[int] = SPP_LEVELS):
        super().__init__()
        self.levels = tuple(levels)

    def out_features(self, channels: int) -> int:
        return channels * sum(level * level for level in self.levels)

    def forward(self, x: Tensor) -> Tensor:
        return spatial_pyramid_pool(x, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class SPPNet(FlatConvNet):
    """ZF-5 trunk -> spatial pyramid pool -> fc6, fc7, fc8 (77,037,672 parameters by default).

    The trunk is `zf_trunk`: ZFNet's layer order (pool, then LRN across channels). The authors'
    release normalises within each channel before pooling instead; both are parameter-free, so the
    counts above hold either way. Weights use PyTorch's default initialisation.

    Args:
        num_classes: outputs of fc8.
        in_channels: channels of the input images.
        small_input: the small-image ZF trunk (3x3 stride-1 conv1, stride-1 conv2): a 32x32 image
            gives an 8x8 conv5 map.
        dropout: rate of the dropout after fc6 and fc7.
        levels: pyramid levels; (1, 2, 3, 6) is the paper's, (1, 2, 4) a lighter choice.
        norm: "lrn", "batch" or "none"; see `zf_trunk`.

    `stage_features` gives three maps, before pool1, before pool2 and conv5's output (the pyramid's
    input): at 224x224 (B, 96, 110, 110), (B, 256, 26, 26), (B, 256, 13, 13); with `small_input`
    at 32x32, 32, 16 and 8 pixels. `forward` takes any H, W >= `min_input_size`.
    """

    name = "spp_net"
    min_input_size: int = MIN_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.5, levels: Sequence[int] = SPP_LEVELS, norm: str = "lrn"):
        super().__init__()
        self.features = zf_trunk(in_channels, small_input, norm)
        self.stage_ends = (*pool_indices(self.features), len(self.features))
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        self.spp = SpatialPyramidPool(levels)
        self.classifier = fc_classifier(self.spp.out_features(256), num_classes, dropout)

    def pool_features(self, x: Tensor) -> Tensor:
        """conv5's map -> Tensor[B, 256 * sum(l * l)], whatever its size."""
        return self.spp(x)


@MODELS.register("spp_net", tags=("classify",))
def spp_net(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
            dropout: float | None = None, **kwargs) -> SPPNet:
    """SPP-net on the ZF-5 trunk; 77,037,672 parameters with 1000 classes and levels (1, 2, 3, 6)."""
    return SPPNet(num_classes, in_channels, small_input, 0.5 if dropout is None else dropout, **kwargs)
