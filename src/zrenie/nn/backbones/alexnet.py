"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) in torchvision's layout.

torchvision's variant is the single-tower network of Krizhevsky 2014, "One weird trick for
parallelizing convolutional neural networks" (64, 192, 384, 256, 256 channels, no LRN), which is
what its ImageNet weights were trained with; we keep it so those weight files load as they are.
"""

from __future__ import annotations

from torch import nn

from zrenie.nn.backbones.common import FlatConvNet
from zrenie.registry import MODELS

# Smallest H and W by small_input. Default: conv1 (11x11/4, pad 2) and three 3x3/2 pools leave 1x1
# from 63 up (torchvision's meta min_size); with the 3x3/1 first conv only the pools shrink the
# map: 15 -> 7 -> 3 -> 1.
MIN_INPUT_SIZE = {False: 63, True: 15}


class AlexNet(FlatConvNet):
    """torchvision's AlexNet: five convolutions, three overlapping 3x3/2 max pools, three dense layers.

    `features`, `avgpool` and `classifier` carry torchvision's names and indices, so
    `state_dict()` keys and shapes equal `torchvision.models.alexnet()`'s (61,100,840 parameters
    with 1000 classes, torchvision's `AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]`).

    Args:
        num_classes: outputs of the last linear layer.
        in_channels: channels of the input images (changes only `features.0`).
        small_input: replace the 11x11 stride-4 first convolution by a 3x3 stride-1 one, so that
            32x32 images keep a 3x3 map after the last pool instead of vanishing; only
            `features.0.weight` changes shape.
        dropout: rate of the two dropout layers of the classifier.

    `stage_features` gives three maps, each taken before a max pool: at 224x224 (B, 64, 55, 55)
    after conv1, (B, 192, 27, 27) after conv2, (B, 256, 13, 13) after conv5; with `small_input`
    at 32x32, 32, 15 and 7 pixels.
    """

    name = "alexnet"
    min_input_size: int = MIN_INPUT_SIZE[False]

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 dropout: float = 0.5):
        super().__init__()
        if small_input:
            conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
        else:
            conv1 = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
        self.features = nn.Sequential(
            conv1,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.min_input_size = MIN_INPUT_SIZE[small_input]
        self.stage_ends = (2, 5, 12)  # indices of the three max pools
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        # Dropout sits before fc6 and fc7 here, unlike the Caffe reference model (after them):
        # torchvision's order, kept so that its weights see the same network they were trained in.
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )


@MODELS.register("alexnet", tags=("classify",))
def alexnet(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
            dropout: float | None = None, **kwargs) -> AlexNet:
    """AlexNet with torchvision's state_dict keys; 61,100,840 parameters with 1000 classes."""
    return AlexNet(num_classes, in_channels, small_input, 0.5 if dropout is None else dropout, **kwargs)
