"""What several backbone families share: the flat-`features` network shape of AlexNet, ZFNet,
SPP-net and VGG, and torchvision's Kaiming initialisation of VGG, MobileNetV2 and ResNet.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import Tensor, nn

from zrenie.nn.layers import check_input_size


def outputs_before(layers: nn.Sequential, x: Tensor, indices: Collection[int]) -> list[Tensor]:
    """Runs `layers` on `x` and keeps the input of every layer whose index is in `indices`.

    The flat `features` Sequentials of AlexNet, ZFNet and VGG have no stage modules (torchvision's
    state_dict keys fix that layout), so a stage is cut at the index of its downsampling pool;
    `len(layers)` in `indices` keeps the final output as well.
    """
    maps = []
    for i, layer in enumerate(layers):
        if i in indices:
            maps.append(x)
        x = layer(x)
    if len(layers) in indices:
        maps.append(x)
    return maps


def pool_indices(layers: nn.Sequential) -> tuple[int, ...]:
    """Indices of the max pools in a flat Sequential: where its stages end."""
    return tuple(i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d))


class FlatConvNet(nn.Module):
    """A `features` Sequential, a pool and a `classifier`: the forward pass of AlexNet, ZFNet,
    SPP-net and VGG, which differ only in their layers.

    Subclasses set `name` (for error messages), `min_input_size`, `features`, `stage_ends` (indices
    in `features` where a stage ends, see `outputs_before`), `classifier` and, unless they override
    `pool_features`, `avgpool`. Their docstrings give the shapes of `stage_features`.
    """

    name: str
    min_input_size: int

    def pool_features(self, x: Tensor) -> Tensor:
        """The last map of `features` -> the classifier's input, Tensor[B, in_features]."""
        return self.avgpool(x).flatten(1)

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """One map per stage, each taken where the stage ends (before its pool).

        Args:
            x: Tensor[B, C, H, W].
        """
        check_input_size(x, self.min_input_size, self.name)
        return outputs_before(self.features, x, self.stage_ends)

    def forward(self, x: Tensor) -> Tensor:
        """x: Tensor[B, C, H, W] -> logits Tensor[B, num_classes]."""
        check_input_size(x, self.min_input_size, self.name)
        return self.classifier(self.pool_features(self.features(x)))


def init_kaiming_fan_out_(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """torchvision's init of VGG, MobileNetV2 and ResNet: Kaiming normal (fan out) convolutions with
    zero biases, BatchNorm scale 1 and shift 0, Linear weights N(0, linear_std) with zero biases.

    Kaiming init keeps the activation variance constant through ReLU layers (He et al. 2015); fan out
    preserves it in the backward pass. `linear_std=None` leaves Linear layers at PyTorch's default,
    as torchvision's ResNet does for `fc`. Layers are visited in `modules()` order, so the random
    draws, hence the weights for a given seed, are torchvision's.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # The ReLU gain, sqrt(2); torchvision's MobileNetV2 leaves the default leaky_relu with
            # slope 0, which is the same gain, so one call serves all three networks.
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
