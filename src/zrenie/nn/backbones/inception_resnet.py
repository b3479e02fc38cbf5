"""Inception-ResNet-v2: Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (arXiv:1602.07261).

The layout is that of the released TF-slim model (`nets/inception_resnet_v2.py`), which the widely
used PyTorch ports (Cadene's `pretrainedmodels`, timm's `inception_resnet_v2`) and Keras'
`InceptionResNetV2` share; the `state_dict` keys are timm's (`conv2d_1a.conv.weight`,
`repeat.0.branch1.1.bn.weight`, ..., `classif.weight`). The released model differs from the
paper's figures: its stem ends with an Inception-v3-style 35x35 block of 320 channels (`mixed_5b`)
instead of the 384-channel stem of Fig. 3, so the residual stages carry 320, 1088 and 2080 channels
(Figs. 16, 17, 19: 384, 1154, 2048); it stacks 10, 20 and 10 residual blocks where the schema of
Fig. 15 shows 5, 10 and 5; and its last 8x8 block is unscaled and has no ReLU.

Parameter count (1000 classes): 55,843,464, timm's figure for `inception_resnet_v2` (55.84M). The
Keras model reports 55,873,736 in all: its BatchNorms have no scale (`scale=False`) but it counts
the moving mean and variance, i.e. 3 values per BN channel where PyTorch counts 2 (weight, bias);
with the 30,272 BN channels of this network, 55,873,736 - 30,272 = 55,843,464.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zrenie.nn.backbones.googlenet import add_stem, basic_conv, run_stages
from zrenie.nn.layers import check_input_size
from zrenie.registry import MODELS

# Stem convs: name, out_channels, kernel, stride, padding (0 is "valid"). small_input makes each
# one stride-1 "same" and drops maxpool_3a and maxpool_5a; kernel shapes, hence keys, are unchanged.
STEM = (("conv2d_1a", 32, 3, 2, 0), ("conv2d_2a", 32, 3, 1, 0), ("conv2d_2b", 64, 3, 1, 1),
        ("conv2d_3b", 80, 1, 1, 0), ("conv2d_4a", 192, 3, 1, 0))

# Branches as chains of convs, (out_channels, kernel) at stride 1 "same" or (out_channels, kernel, 2)
# at stride 2 "valid"; "maxpool" is a 3x3 stride-2 pool, "avgpool" a 3x3 stride-1 pool before a conv.
MIXED_5B = (((96, 1),), ((48, 1), (64, 5)), ((64, 1), (96, 3), (96, 3)), ("avgpool", (64, 1)))
REDUCTION_A = (((384, 3, 2),), ((256, 1), (256, 3), (384, 3, 2)), ("maxpool",))  # Fig. 7, k=l=256, m=n=384
REDUCTION_B = (((256, 1), (384, 3, 2)), ((256, 1), (288, 3, 2)), ((256, 1), (288, 3), (320, 3, 2)),
               ("maxpool",))  # Fig. 18
BLOCK_A = (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (48, 3), (64, 3)))  # Fig. 16, 35x35
BLOCK_B = (((192, 1),), ((128, 1), (160, (1, 7)), (192, (7, 1))))  # Fig. 17, 17x17
BLOCK_C = (((192, 1),), ((192, 1), (224, (1, 3)), (256, (3, 1))))  # Fig. 19, 8x8

# Residual stages: attribute, branches, channels, blocks, residual scale. Sec. 3.3 scales residuals
# by 0.1-0.3 to keep training stable; these values are the released model's.
REPEATS = (("repeat", BLOCK_A, 320, 10, 0.17), ("repeat_1", BLOCK_B, 1088, 20, 0.10),
           ("repeat_2", BLOCK_C, 2080, 9, 0.20))

_STEM_NAMES = tuple(row[0] for row in STEM)

# Layers in order, grouped into stages: a stage ends where the next one downsamples.
STAGES = {
    False: (_STEM_NAMES[:3], ("maxpool_3a",) + _STEM_NAMES[3:], ("maxpool_5a", "mixed_5b", "repeat"),
            ("mixed_6a", "repeat_1"), ("mixed_7a", "repeat_2", "block8", "conv2d_7b")),
    True: (_STEM_NAMES + ("mixed_5b", "repeat"), ("mixed_6a", "repeat_1"),
           ("mixed_7a", "repeat_2", "block8", "conv2d_7b")),
}

# Smallest H = W that the stride-2 "valid" convs and poolings take (the same stem and reductions as
# Inception-v3, whose minimum torchvision gives as 75).
MIN_INPUT_SIZE = {False: 75, True: 7}


def conv_chain(in_channels: int, spec: tuple) -> tuple[nn.Module, int]:
    """One branch built from its spec (see the tables above) and its output channels.

    A single layer is returned as it is and longer chains as `nn.Sequential`, which gives timm's keys
    (`branch0.conv.weight`, `branch1.0.conv.weight`).
    """
    layers: list[nn.Module] = []
    c = in_channels
    for item in spec:
        if item == "maxpool":
            layers.append(nn.MaxPool2d(3, stride=2))
        elif item == "avgpool":
            # TF's "SAME" average pooling leaves the padding out of the mean.
            layers.append(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
        elif len(item) == 3:
            layers.append(basic_conv(c, item[0], item[1], stride=item[2], padding=0))
            c = item[0]
        else:
            layers.append(basic_conv(c, item[0], item[1]))
            c = item[0]
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), c


class InceptionConcat(nn.Module):
    """Parallel branches concatenated along channels: mixed_5b and the reduction blocks."""

    def __init__(self, in_channels: int, branches: tuple):
        super().__init__()
        self.out_channels = 0
        for i, spec in enumerate(branches):
            branch, c = conv_chain(in_channels, spec)
            self.add_module(f"branch{i}", branch)
            self.out_channels += c

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)  # (B, out_channels, H', W')


class InceptionResidual(nn.Module):
    """Inception-ResNet block: ReLU(x + scale * conv1x1(concat(branches(x)))) (Figs. 16-20).

    The 1x1 projection back to `channels` has a bias and no BatchNorm, as in the released model.

    Args:
        channels: input and output channels.
        branches: branch specs, e.g. `BLOCK_A`.
        scale: residual scale (Sec. 3.3).
        relu: False for the final 8x8 block, which feeds conv2d_7b without an activation.
    """

    def __init__(self, channels: int, branches: tuple, scale: float = 1.0, relu: bool = True):
        super().__init__()
        self.scale, self.num_branches = scale, len(branches)
        width = 0
        for i, spec in enumerate(branches):
            branch, c = conv_chain(channels, spec)
            self.add_module(f"branch{i}", branch)
            width += c
        self.conv2d = nn.Conv2d(width, channels, 1)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.num_branches)], 1)
        return self.relu(self.conv2d(out) * self.scale + x)  # (B, channels, H, W)


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2 with timm's layout and keys.

    Args:
        num_classes: outputs of the classifier.
        in_channels: image channels.
        small_input: a stem for 32x32 images: every stem conv is stride-1 "same" and maxpool_3a,
            maxpool_5a are dropped, so the 35x35 blocks see 32x32. Keys and shapes are unchanged.
        dropout: rate before the classifier (Fig. 15: "Dropout (keep 0.8)").
    """

    min_input_size = MIN_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.2):
        super().__init__()
        self.stage_layers = STAGES[small_input]
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        c = add_stem(self, STEM, in_channels, small_input)
        if not small_input:
            self.maxpool_3a = nn.MaxPool2d(3, stride=2)
            self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = InceptionConcat(c, MIXED_5B)
        reductions = {"repeat": ("mixed_6a", REDUCTION_A), "repeat_1": ("mixed_7a", REDUCTION_B)}
        for name, branches, channels, blocks, scale in REPEATS:
            setattr(self, name, nn.Sequential(*[InceptionResidual(channels, branches, scale)
                                                for _ in range(blocks)]))
            if name in reductions:
                setattr(self, reductions[name][0], InceptionConcat(channels, reductions[name][1]))
        self.block8 = InceptionResidual(2080, BLOCK_C, scale=1.0, relu=False)
        self.conv2d_7b = basic_conv(2080, 1536, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(dropout)
        self.classif = nn.Linear(1536, num_classes)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per resolution, each taken before it is downsampled.

        Args:
            x: Tensor[B, C, H, W].

        Returns:
            Standard stem (sizes at 299x299 input): conv2d_2b (B, 64, 147, 147),
            conv2d_4a (B, 192, 71, 71), repeat (B, 320, 35, 35), repeat_1 (B, 1088, 17, 17),
            conv2d_7b (B, 1536, 8, 8). small_input (sizes at 32x32): repeat (B, 320, 32, 32),
            repeat_1 (B, 1088, 15, 15), conv2d_7b (B, 1536, 7, 7).
        """
        check_input_size(x, self.min_input_size, "inception_resnet_v2")
        return run_stages(self, self.stage_layers, x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes)."""
        x = self.stage_features(x)[-1]  # (B, 1536, h, w)
        return self.classif(self.head_drop(self.global_pool(x).flatten(1)))


@MODELS.register("inception_resnet_v2", tags=("classify",))
def inception_resnet_v2(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                        dropout: float | None = None, **kwargs) -> InceptionResNetV2:
    """Inception-ResNet-v2; timm's keys and 55,843,464 parameters with 1000 classes.

    Args:
        dropout: rate before the classifier; None keeps 0.2.
        **kwargs: none are defined; any given is an error.
    """
    if dropout is not None:
        kwargs["dropout"] = dropout
    return InceptionResNetV2(num_classes, in_channels, small_input, **kwargs)
