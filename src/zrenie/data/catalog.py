"""Opens datasets by name from the dataset registry (which imports data/builtin and data/formats on first use)."""

from __future__ import annotations

from typing import Any

import dataclasses

import torch

from zrenie.config import DataConfig, apply_overrides
from zrenie.data.base import DatasetSplits, InMemoryDataset
from zrenie.errors import ConfigError, DataError
from zrenie.registry import DATASETS

def open_splits(cfg: DataConfig, target: str = "class") -> DatasetSplits:
    """The splits of dataset `cfg.name` with targets of kind `target` ("class", "mask", "boxes", or "instances":
    boxes with instance masks), which the task chooses: `shapes` serves all four under one name; a dataset
    serves the kinds it is tagged with."""
    builder = DATASETS.get(cfg.name)
    kinds = DATASETS.tags(cfg.name) or {"class"}
    if target not in kinds:
        raise DataError(f"dataset {cfg.name!r} has {', '.join(sorted(kinds))} targets, not {target!r}; "
                        f"datasets with {target} targets: {', '.join(list_datasets(target=target)) or 'none'}")
    splits = builder(cfg) if target == "class" else builder(cfg, target=target)
    if cfg.subset_classes:
        splits = select_classes(splits, cfg.subset_classes)
    _check_not_empty(cfg, splits)
    return splits


def _check_not_empty(cfg: DataConfig, splits: DatasetSplits) -> None:
    """Training reads every batch of train and evaluates val and test: an empty one is a DataError here,
    not an index error deep in a loader."""
    counts = {name: len(getattr(splits, name)) for name in ("train", "val", "test")}
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        found = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise DataError(f"dataset {cfg.name!r}: the {empty[0]} split is empty ({found}); raise "
                        f"data.val_fraction (now {cfg.val_fraction}) or add images")


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
        if dataset.target_kind != "class":
            raise ConfigError("config key 'data.subset_classes' applies to class targets only")
        new_targets = lookup[dataset.labels]
        kept = (new_targets >= 0).nonzero().flatten()
        out = dataset.subset(kept)
        if isinstance(out, InMemoryDataset):
            return InMemoryDataset(out.images, new_targets[kept], names)
        out.samples = [(path, int(lookup[t])) for path, t in out.samples]
        out.classes = names
        return out

    return dataclasses.replace(splits, train=subset(splits.train), val=subset(splits.val), test=subset(splits.test),
                               classes=names)


def list_datasets(pattern: str = "*", target: str | None = None) -> list[str]:
    """Dataset names matching a glob; `target` keeps those that serve that kind ("class" is the default kind)."""
    names = DATASETS.list(pattern)
    if target is None:
        return names
    return [n for n in names if target in (DATASETS.tags(n) or {"class"})]


def load_dataset(name: str, split: str = "train", **kwargs: Any):
    """A split ("train", "val" or "test") of a dataset; kwargs are `data.` config keys, e.g. `root=`, `size=`."""
    cfg = apply_overrides(DataConfig(name=name), kwargs)
    splits = open_splits(cfg)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    return getattr(splits, split)
