"""CIFAR-10 and CIFAR-100 from the python pickle batches the authors distribute.

Layouts read (`data.root` may be either the batches folder or its parent):

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each batch is a pickled dict with `data` uint8 `(N, 3072)` (1024 red, then 1024 green, then 1024 blue
values, row-major), so a plain reshape to `(N, 3, 32, 32)` is already channel-first. The whole dataset
(180 MB as uint8) is held in memory; val is a stratified `data.val_fraction` of train, test is the
test batch.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, in_memory_splits, require_dir
from zrenie.errors import DataError
from zrenie.registry import DATASETS

# name -> (folder, train files, test files, meta file, label key, class-names key, torchvision class)
_LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names", "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names", "CIFAR100"),
}

# Pickles can run arbitrary code when loaded; the batches only ever need numpy's array
# reconstruction (and `_codecs.encode`, which protocol-2 pickles use for bytes), so nothing else loads.
_ALLOWED_GLOBALS = {("_codecs", "encode")} | {
    (module, name)
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                   "numpy._core.numeric")
    for name in ("_reconstruct", "ndarray", "dtype", "_frombuffer", "scalar")
}



class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _as_str(value):
    """Decodes bytes keys and strings: python-3 pickles keep them as bytes, python-2 ones as str."""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, dict):
        return {_as_str(k): v for k, v in value.items()}
    return value


def load_pickle_batch(path: Path) -> dict:
    """One CIFAR batch or meta file as a dict with str keys.

    Raises:
        DataError: the file is missing, truncated or not a CIFAR pickle.
    """
    if not path.is_file():
        raise DataError(f"missing CIFAR file: {path}")
    try:
        with open(path, "rb") as f:
            # latin1 maps python-2 byte strings one-to-one, as torchvision reads them
            entry = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise DataError(f"not a readable CIFAR pickle: {path} ({type(err).__name__}: {err})") from None
    if not isinstance(entry, dict):
        raise DataError(f"not a CIFAR pickle: {path} holds a {type(entry).__name__}, expected a dict")
    return _as_str(entry)


def _read_batches(folder: Path, files: list[str], label_key: str) -> tuple[Tensor, Tensor]:
    """Concatenated images `(N, 3, 32, 32)` uint8 and labels `(N,)` int64 of the given batch files."""
    images, labels = [], []
    for name in files:
        path = folder / name
        entry = load_pickle_batch(path)
        if "data" not in entry or label_key not in entry:
            raise DataError(f"CIFAR batch {path} lacks 'data' or {label_key!r} (keys: {sorted(entry)})")
        data = np.asarray(entry["data"])
        targets = np.asarray(entry[label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(targets):
            raise DataError(f"CIFAR batch {path}: expected uint8 data (N, 3072) and N labels, "
                            f"got {data.dtype} {data.shape} and {len(targets)} labels")
        images.append(data.reshape(-1, 3, 32, 32))  # (N, C, H, W): the rows are stored channel by channel
        labels.append(targets)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _find_folder(root: Path, name: str) -> Path | None:
    """The batches folder: `root` itself when it holds the meta file, else `root/<folder>`."""
    folder, _, _, meta, *_ = _LAYOUTS[name]
    for candidate in (root, root / folder):
        if (candidate / meta).is_file():
            return candidate
    return None


def _download(root: Path, name: str) -> None:
    import torchvision.datasets

    upstream = getattr(torchvision.datasets, _LAYOUTS[name][6])
    try:
        # train=False: the archive holds both splits; this avoids decoding the train set twice
        upstream(str(root), train=False, download=True)
    except Exception as err:  # network and archive errors come in many types
        raise DataError(f"dataset {name!r}: download to {root} failed ({type(err).__name__}: {err})") from None


def locate(cfg: DataConfig, name: str) -> Path:
    """The batches folder of `name`, downloading it first when missing and `cfg.download` is set."""
    folder, train_files, test_files, meta, *_ = _LAYOUTS[name]
    layout = f"{folder}/ with {', '.join(train_files + test_files + [meta])} (python pickle version)"
    root = require_dir(cfg.root, name, layout, cfg.download)
    found = _find_folder(root, name)
    if found is None and cfg.download:
        _download(root, name)
        found = _find_folder(root, name)
    if found is None:
        raise DataError(f"dataset {name!r}: no {meta} in {root} or {root / folder} (expected layout: {layout}; "
                        f"or pass data.download=true)")
    return found


def _cifar(cfg: DataConfig, name: str) -> DatasetSplits:
    _, train_files, test_files, meta_file, label_key, names_key, _ = _LAYOUTS[name]
    folder = locate(cfg, name)
    meta = load_pickle_batch(folder / meta_file)
    if names_key not in meta:
        raise DataError(f"CIFAR meta file {folder / meta_file} lacks {names_key!r} (keys: {sorted(meta)})")
    classes = [_as_str(c) for c in meta[names_key]]
    train_images, train_labels = _read_batches(folder, train_files, label_key)
    test_images, test_labels = _read_batches(folder, test_files, label_key)
    for labels in (train_labels, test_labels):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"dataset {name!r} in {folder}: labels outside 0..{len(classes) - 1}")
    train = InMemoryDataset(train_images, train_labels, classes)
    test = InMemoryDataset(test_images, test_labels, classes)
    return in_memory_splits(train, test, cfg, hflip=True)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> DatasetSplits:
    """CIFAR-10: 50,000 train and 10,000 test 32x32 colour images in 10 classes.

    `data.root` is `cifar-10-batches-py/` or its parent; `data.download=true` fetches it there with
    torchvision's downloader when missing. Val is a stratified `data.val_fraction` of train (seed
    `data.seed`); `data.size` resizes bilinearly.
    """
    return _cifar(cfg, "cifar10")


@DATASETS.register("cifar100")
def cifar100(cfg: DataConfig) -> DatasetSplits:
    """CIFAR-100 with its 100 fine labels; same layout rules and splits as `cifar10`."""
    return _cifar(cfg, "cifar100")
