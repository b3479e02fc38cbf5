"""Imports every dataset module so that each registers itself, and opens datasets by name."""

from __future__ import annotations

from typing import Any

from zrenie.config import DataConfig, apply_overrides
from zrenie.data.base import DatasetSplits
from zrenie.registry import DATASETS

_MODULES = (
    "zrenie.data.builtin.digits",
    "zrenie.data.builtin.shapes",
    "zrenie.data.formats.cifar",
    "zrenie.data.formats.mnist_idx",
    "zrenie.data.formats.image_folder",
    "zrenie.data.formats.food101",
    "zrenie.data.formats.pets",
)


def _import_all() -> None:
    import importlib

    for name in _MODULES:
        importlib.import_module(name)


def open_splits(cfg: DataConfig) -> DatasetSplits:
    _import_all()
    return DATASETS.get(cfg.name)(cfg)


def list_datasets(pattern: str = "*") -> list[str]:
    _import_all()
    return DATASETS.list(pattern)


def load_dataset(name: str, split: str = "train", **kwargs: Any):
    """A split ("train", "val" or "test") of a dataset; kwargs are `data.` config keys, e.g. `root=`, `size=`."""
    cfg = apply_overrides(DataConfig(name=name), kwargs)
    splits = open_splits(cfg)
    if split not in ("train", "val", "test"):
        from zrenie.errors import ConfigError

        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    return getattr(splits, split)
