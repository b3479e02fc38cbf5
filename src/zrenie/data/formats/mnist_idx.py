"""MNIST and Fashion-MNIST from the IDX files their authors distribute, plain or gzipped.

The four files are `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
and `t10k-labels-idx1-ubyte`, each optionally ending in `.gz`. `data.root` may be the folder that
holds them or the root torchvision downloads into (`<root>/MNIST/raw`, `<root>/FashionMNIST/raw`).

An IDX file is a big-endian header, `0x00 0x00 <type> <ndim>` then `ndim` uint32 sizes, followed by
the values; these datasets use type 0x08 (unsigned byte) only.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, in_memory_splits, require_dir
from zrenie.errors import DataError
from zrenie.registry import DATASETS

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# name -> (torchvision class and folder, class names, whether a mirror image keeps the label)
_DATASETS = {
    "mnist": ("MNIST", [str(d) for d in range(10)], False),  # a mirrored 2, 3, 7 is no longer that digit
    "fashion_mnist": ("FashionMNIST", FASHION_CLASSES, True),
}


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Reads an unsigned-byte IDX file (plain, or gzip when the name ends in `.gz`).

    Args:
        path: the file.
        ndim: dimensions expected (3 for images `(N, H, W)`, 1 for labels `(N,)`).

    Raises:
        DataError: naming the file, when the magic number is wrong or the file is truncated.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"not a readable IDX file: {path} ({type(err).__name__}: {err})") from None
    expected_magic = (_UBYTE << 8) | ndim
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, shorter than its header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        raise DataError(f"IDX file {path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
                        f"(unsigned bytes, {ndim} dimension(s))")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    offset, count = 4 + 4 * ndim, int(np.prod(shape))
    if len(raw) - offset != count:
        raise DataError(f"IDX file {path} holds {len(raw) - offset} values after its header, "
                        f"its shape {shape} needs {count} (truncated or not IDX)")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _file_in(folder: Path, name: str) -> Path | None:
    # torchvision keeps the .gz next to what it extracted; the plain file skips decompressing
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_files(root: Path, upstream: str) -> dict[str, Path] | None:
    """The four files from the first of `root`, `root/<upstream>/raw` holding any of them; None if neither does.

    Raises:
        DataError: a folder holds some of the files but not all, naming the first missing one.
    """
    for folder in (root, root / upstream / "raw"):
        found = {key: _file_in(folder, name) for key, name in FILES.items()}
        if not any(found.values()):
            continue
        for key, path in found.items():
            if path is None:
                raise DataError(f"missing IDX file: {folder / FILES[key]} (or {FILES[key]}.gz)")
        return found
    return None


def _download(root: Path, name: str, upstream: str) -> None:
    import torchvision.datasets

    try:
        # one call fetches all four files into <root>/<upstream>/raw; train=False decodes only the test set
        getattr(torchvision.datasets, upstream)(str(root), train=False, download=True)
    except Exception as err:  # network and archive errors come in many types
        raise DataError(f"dataset {name!r}: download to {root} failed ({type(err).__name__}: {err})") from None


def locate(cfg: DataConfig, name: str) -> dict[str, Path]:
    """Paths of the four IDX files, downloading them first when missing and `cfg.download` is set."""
    upstream = _DATASETS[name][0]
    layout = f"a folder (or {upstream}/raw under it) with {', '.join(FILES.values())}, each plain or .gz"
    root = require_dir(cfg.root, name, layout, cfg.download)
    found = _find_files(root, upstream)
    if found is None and cfg.download:
        _download(root, name, upstream)
        found = _find_files(root, upstream)
    if found is None:
        raise DataError(f"dataset {name!r}: no IDX files in {root} or {root / upstream / 'raw'} "
                        f"(expected layout: {layout}; or pass data.download=true)")
    return found


def _read_split(images_path: Path, labels_path: Path, classes: list[str]) -> InMemoryDataset:
    images = read_idx(images_path, ndim=3)  # (N, H, W)
    labels = read_idx(labels_path, ndim=1)  # (N,)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(labels) and labels.max() >= len(classes):
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..{len(classes) - 1}")
    images_t = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W); copy: frombuffer is read-only
    return InMemoryDataset(images_t, torch.from_numpy(labels.astype(np.int64)), classes)


def _mnist(cfg: DataConfig, name: str) -> DatasetSplits:
    _, classes, hflip = _DATASETS[name]
    files = locate(cfg, name)
    train = _read_split(files["train_images"], files["train_labels"], classes)
    test = _read_split(files["test_images"], files["test_labels"], classes)
    return in_memory_splits(train, test, cfg, hflip=hflip)


@DATASETS.register("mnist")
def mnist(cfg: DataConfig) -> DatasetSplits:
    """MNIST: 60,000 train and 10,000 test 28x28 handwritten digits, classes '0'..'9'.

    `data.root` holds the IDX files (or is torchvision's root, with them in `MNIST/raw`);
    `data.download=true` fetches them with torchvision's downloader when missing. Val is a stratified
    `data.val_fraction` of train (seed `data.seed`); `data.size` resizes bilinearly. No flip: a
    mirrored digit is not the same digit.
    """
    return _mnist(cfg, "mnist")


@DATASETS.register("fashion_mnist")
def fashion_mnist(cfg: DataConfig) -> DatasetSplits:
    """Fashion-MNIST: ten kinds of clothing in MNIST's format; same layout rules and splits as `mnist`."""
    return _mnist(cfg, "fashion_mnist")
