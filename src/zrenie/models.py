"""Imports every module that registers architectures, and the public model functions."""

from __future__ import annotations

from torch import nn

import zrenie.tasks.classify.model  # noqa: F401  (registers simple_cnn, resnet_cifar)
from zrenie.registry import MODELS


def build_model(name: str, **kwargs) -> nn.Module:
    """An architecture by its registered name, e.g. `build_model("resnet_cifar", num_classes=100)`."""
    return MODELS.get(name)(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, e.g. `list_models("resnet*")`."""
    return MODELS.list(pattern)
