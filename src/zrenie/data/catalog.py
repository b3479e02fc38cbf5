"""Opens datasets by name from the dataset registry (which imports data/builtin and data/formats on first use)."""

from __future__ import annotations

from typing import Any

import dataclasses

import torch

from zrenie.config import DataConfig, apply_overrides
from zrenie.data.base import DatasetSplits, InMemoryDataset
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS

def open_splits(cfg: DataConfig) -> DatasetSplits:
    splits = DATASETS.get(cfg.name)(cfg)
    if cfg.subset_classes:
        splits = select_classes(splits, cfg.subset_classes)
    return splits


def select_classes(splits: DatasetSplits, keep: list) -> DatasetSplits:
    """Keeps the listed classes (names or indices) in every split, relabelled 0..k-1 in the given order."""
    index = {}
    for item in keep:
        if isinstance(item, int) and 0 <= item < len(splits.classes):
            index[item] = len(index)
        elif isinstance(item, str) and item in splits.classes:
            index[splits.classes.index(item)] = len(index)
        else:
            raise ConfigError(f"config key 'data.subset_classes': no class {item!r} in {splits.classes[:12]}")
    names = [splits.classes[i] for i in index]
    lookup = torch.full((len(splits.classes),), -1, dtype=torch.long)
    for old, new in index.items():
        lookup[old] = new

    def subset(dataset):
        new_targets = lookup[dataset.targets]
        kept = (new_targets >= 0).nonzero().flatten()
        out = dataset.subset(kept)
        if isinstance(out, InMemoryDataset):
            return InMemoryDataset(out.images, new_targets[kept], names)
        out.samples = [(path, int(lookup[t])) for path, t in out.samples]
        out.classes = names
        return out

    return dataclasses.replace(splits, train=subset(splits.train), val=subset(splits.val), test=subset(splits.test),
                               classes=names)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.list(pattern)


def load_dataset(name: str, split: str = "train", **kwargs: Any):
    """A split ("train", "val" or "test") of a dataset; kwargs are `data.` config keys, e.g. `root=`, `size=`."""
    cfg = apply_overrides(DataConfig(name=name), kwargs)
    splits = open_splits(cfg)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    return getattr(splits, split)
