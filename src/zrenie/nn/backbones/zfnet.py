"""ZFNet: Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks" (ECCV 2014).

AlexNet with a smaller, denser first layer (7x7 stride 2 instead of 11x11 stride 4) and a strided
5x5 second layer, chosen after the paper's visualisations showed aliasing and dead filters in
AlexNet's first two layers (Sec. 4.1).

Layer table of the paper's Fig. 3 (224x224 input; the pooled maps are 55, 13 and 6 pixels wide):

    conv1  96 x 7x7, stride 2  -> 110x110, max pool 3x3/2 -> 55x55, contrast norm
    conv2 256 x 5x5, stride 2  ->  26x26,  max pool 3x3/2 -> 13x13, contrast norm
    conv3 384 x 3x3, stride 1  ->  13x13
    conv4 384 x 3x3, stride 1  ->  13x13
    conv5 256 x 3x3, stride 1  ->  13x13,  max pool 3x3/2 ->  6x6
    fc6 4096, fc7 4096 (dropout 0.5 on both, Sec. 3), fc8 num_classes

Counted by hand from that table (conv weights k*k*c_in*c_out plus biases, dense layers likewise):
conv1 14,208 + conv2 614,656 + conv3 885,120 + conv4 1,327,488 + conv5 884,992
+ fc6 37,752,832 + fc7 16,781,312 + fc8 4,097,000 = 62,357,608 parameters with 1000 classes.
The paper itself prints no total; the test recomputes this sum from the table.
"""

from __future__ import annotations

from torch import nn

from zrenie.nn.backbones.common import FlatConvNet, pool_indices
from zrenie.nn.layers import ConvBNAct
from zrenie.errors import ConfigError
from zrenie.registry import MODELS

# (out_channels, kernel, stride, padding) of conv1..conv5. Padding 1 on conv1 and 0 on conv2 give
# Fig. 3's 110 and 26 pixel maps; the authors' SPP-net release of this network
# (ShaoqingRen/SPP_net, model-defs/Zeiler_conv5.prototxt) uses the same paddings.
ZF_CONVS = ((96, 7, 2, 1), (256, 5, 2, 0), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
# small_input: 3x3 stride-1 conv1 and stride-1 conv2 (padded to keep the size), so the total stride
# drops from 32 to 8 and a 32x32 image ends in a 4x4 map.
ZF_CONVS_SMALL = ((96, 3, 1, 1), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
NORMS = ("lrn", "batch", "none")
# Smallest H and W by small_input; a 3x3/2 ceil-mode pool needs at least 2 pixels. Default, side
# after conv1, pool1, conv2, pool2, pool5: 47 -> 22 -> 11 -> 4 -> 2 -> 1 (46 leaves pool5 a 1x1
# map). small_input, after pool1, pool2, pool5: 8 -> 4 -> 2 -> 1. The tests measure both.
MIN_INPUT_SIZE = {False: 47, True: 8}


def zf_trunk(in_channels: int = 3, small_input: bool = False, norm: str = "lrn") -> nn.Sequential:
    """conv1..conv5 of ZFNet as one flat Sequential, without the pool after conv5.

    Each convolution is a `ConvBNAct` (conv, [batchnorm], ReLU); conv1 and conv2 are followed by a
    3x3 stride-2 max pool and, with `norm="lrn"`, local response normalisation. The pools round
    up (`ceil_mode`) as Caffe's do, which is what turns 110 into 55 and 26 into 13 in Fig. 3.

    Args:
        norm: "lrn" as in the paper, "batch" for batchnorm after every convolution (easier to
            train from scratch; no LRN then), or "none".
    """
    if norm not in NORMS:
        raise ConfigError(f"zfnet norm must be one of {NORMS}, got {norm!r}")
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, (c_out, k, s, p) in enumerate(ZF_CONVS_SMALL if small_input else ZF_CONVS):
        layers.append(ConvBNAct(c_in, c_out, k, s, p, norm=norm == "batch"))
        if i < 2:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
            if norm == "lrn":
                # "Contrast normalized across feature maps" after pooling (Fig. 3). The paper gives
                # no constants, so these are AlexNet's (Krizhevsky et al. 2012, Sec. 3.3) as Caffe's
                # reference models use them; PyTorch, like Caffe, divides alpha by size.
                layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        c_in = c_out
    return nn.Sequential(*layers)


def fc_classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8, the Caffe reference order.

    The indices (0, 3, 6 for the linear layers) are those of torchvision's VGG classifier.
    """
    return nn.Sequential(
        nn.Linear(in_features, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, num_classes),
    )


class ZFNet(FlatConvNet):
    """ZFNet with the layer table of Zeiler & Fergus 2013, Fig. 3 (62,357,608 parameters).

    A 6x6 adaptive average pool before fc6 (as torchvision's AlexNet has) lets inputs other than
    224x224 reach the classifier; at 224x224 the map is already 6x6 and the pool is the identity.
    Weights use PyTorch's default initialisation, as torchvision's AlexNet does.

    Args:
        num_classes: outputs of fc8.
        in_channels: channels of the input images.
        small_input: 3x3 stride-1 conv1 and stride-1 conv2 for 32x32 images (see `ZF_CONVS_SMALL`);
            only `features.0.0.weight` changes shape.
        dropout: rate of the dropout after fc6 and fc7.
        norm: "lrn" (paper), "batch" or "none"; see `zf_trunk`.

    `stage_features` gives three maps, each taken before a max pool: at 224x224 (B, 96, 110, 110)
    after conv1, (B, 256, 26, 26) after conv2, (B, 256, 13, 13) after conv5; with `small_input`
    at 32x32, 32, 16 and 8 pixels.
    """

    name = "zfnet"
    min_input_size: int = MIN_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.5, norm: str = "lrn"):
        super().__init__()
        self.features = zf_trunk(in_channels, small_input, norm)
        self.features.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.stage_ends = pool_indices(self.features)
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_classifier(256 * 6 * 6, num_classes, dropout)


@MODELS.register("zfnet", tags=("classify",))
def zfnet(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
          dropout: float | None = None, **kwargs) -> ZFNet:
    """ZFNet (Zeiler & Fergus 2013); 62,357,608 parameters with 1000 classes and `norm="lrn"`."""
    return ZFNet(num_classes, in_channels, small_input, 0.5 if dropout is None else dropout, **kwargs)
