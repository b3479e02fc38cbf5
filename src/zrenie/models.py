"""Imports every module that registers architectures, and the public model functions."""

from __future__ import annotations

from torch import nn

# Each import registers the architectures of one family.
import zrenie.nn.backbones.alexnet  # noqa: F401
import zrenie.nn.backbones.googlenet  # noqa: F401
import zrenie.nn.backbones.inception  # noqa: F401
import zrenie.nn.backbones.inception_resnet  # noqa: F401
import zrenie.nn.backbones.mobilenet  # noqa: F401
import zrenie.nn.backbones.resnet  # noqa: F401
import zrenie.nn.backbones.spp_net  # noqa: F401
import zrenie.nn.backbones.vgg  # noqa: F401
import zrenie.nn.backbones.zfnet  # noqa: F401
import zrenie.tasks.classify.model  # noqa: F401
from zrenie.registry import MODELS


def build_model(name: str, **kwargs) -> nn.Module:
    """An architecture by its registered name, e.g. `build_model("resnet_cifar", num_classes=100)`."""
    return MODELS.get(name)(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, e.g. `list_models("resnet*")`."""
    return MODELS.list(pattern)
