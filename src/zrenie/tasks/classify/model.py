"""Classification models trained from scratch: the course's CNN and a small CIFAR ResNet."""

from __future__ import annotations

from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.layers import BasicBlock, ConvBNAct
from zrenie.registry import MODELS


def stage_outputs(stages: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """Runs the stages in order and keeps each one's output."""
    maps = []
    for stage in stages:
        x = stage(x)
        maps.append(x)
    return maps


class SimpleCNN(nn.Module):
    """Three stages of two ConvBNAct layers; max pooling between stages, dropout before the classifier.

    Args:
        num_classes: outputs of the classifier.
        in_channels: 1 for grayscale, 3 for RGB.
        width: channels of the first stage; later stages double it.
        dropout: rate before the linear layer (dropout for dense layers, batchnorm for conv layers,
            as the course's regularisation recipe has it).
        batchnorm: False drops every batchnorm (the convs get biases), to see what it contributes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 32, dropout: float = 0.2,
                 batchnorm: bool = True):
        super().__init__()
        w, bn = width, batchnorm
        self.stages = nn.ModuleList([
            nn.Sequential(ConvBNAct(in_channels, w, norm=bn), ConvBNAct(w, w, norm=bn)),
            nn.Sequential(nn.MaxPool2d(2), ConvBNAct(w, 2 * w, norm=bn), ConvBNAct(2 * w, 2 * w, norm=bn)),
            nn.Sequential(nn.MaxPool2d(2), ConvBNAct(2 * w, 4 * w, norm=bn), ConvBNAct(4 * w, 4 * w, norm=bn)),
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, num_classes)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per stage: (B, w, H, W), (B, 2w, H/2, W/2), (B, 4w, H/4, W/4)."""
        return stage_outputs(self.stages, x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage_features(x)[-1]
        return self.fc(self.dropout(self.pool(x).flatten(1)))  # (B, num_classes)


class ResNetCifar(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (Sec. 4.2): 6n+2 layers, stages of 16, 32, 64 channels.

    With parameter-free shortcuts (option A), as in the paper: ResNet-20 has 0.27M parameters,
    ResNet-32 0.46M, ResNet-44 0.66M, ResNet-56 0.85M, ResNet-110 1.7M (paper, Table 6).

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110).
        width: channels of the first stage (16 in the paper).
        shortcut: "pad" (option A, the paper's) or "projection" (option B, 1x1 conv).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: int = 16,
                 dropout: float = 0.0, shortcut: str = "pad"):
        super().__init__()
        if (depth - 2) % 6:
            raise ConfigError(f"config key 'model.kwargs.depth': resnet_cifar depth must be 6n+2 "
                              f"(20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = ConvBNAct(in_channels, width)
        stages, c = [], width
        for i, out in enumerate((width, 2 * width, 4 * width)):
            blocks = [BasicBlock(c if j == 0 else out, out, 2 if (i > 0 and j == 0) else 1, shortcut)
                      for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            c = out
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per stage: (B, w, H, W), (B, 2w, H/2, W/2), (B, 4w, H/4, W/4)."""
        return stage_outputs(self.stages, self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(self.stage_features(x)[-1]).flatten(1)))


def _drop_none(**kwargs) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None}


@MODELS.register("simple_cnn", tags=("classify",))
def simple_cnn(num_classes: int = 10, in_channels: int = 3, width: int | None = None,
               dropout: float | None = None, batchnorm: bool | None = None) -> SimpleCNN:
    return SimpleCNN(num_classes, in_channels, **_drop_none(width=width, dropout=dropout, batchnorm=batchnorm))


@MODELS.register("resnet_cifar", tags=("classify",))
def resnet_cifar(num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: int | None = None,
                 dropout: float | None = None) -> ResNetCifar:
    return ResNetCifar(num_classes, in_channels, depth, **_drop_none(width=width, dropout=dropout))
