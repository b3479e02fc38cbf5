"""Imports every module that registers architectures, and the public model functions."""

from __future__ import annotations

from torch import nn

import importlib
import importlib.util

from zrenie.registry import MODELS

# Modules that register architectures when imported.
_MODULES = (
    "zrenie.tasks.classify.model",
    "zrenie.nn.backbones.alexnet",
    "zrenie.nn.backbones.zfnet",
    "zrenie.nn.backbones.vgg",
    "zrenie.nn.backbones.spp_net",
    "zrenie.nn.backbones.googlenet",
    "zrenie.nn.backbones.inception",
    "zrenie.nn.backbones.inception_resnet",
    "zrenie.nn.backbones.resnet",
    "zrenie.nn.backbones.mobilenet",
)
for _name in _MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)


def build_model(name: str, **kwargs) -> nn.Module:
    """An architecture by its registered name, e.g. `build_model("resnet_cifar", num_classes=100)`."""
    return MODELS.get(name)(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, e.g. `list_models("resnet*")`."""
    return MODELS.list(pattern)
