"""The public model functions: every architecture is found in the model registry."""

from __future__ import annotations

from torch import nn

from zrenie.nn.checkpoint import build_from_spec
from zrenie.registry import MODELS


def build_model(name: str, **kwargs) -> nn.Module:
    """An architecture by its registered name, e.g. `build_model("resnet_cifar", num_classes=100)`."""
    return build_from_spec(name, kwargs)


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered model names matching a glob pattern, e.g. `list_models("resnet*")`; `task` keeps the
    models of one task (`list_models(task="classify")`)."""
    return MODELS.list(pattern, tag=task)
