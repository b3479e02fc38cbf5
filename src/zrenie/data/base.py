"""The dataset contract shared by every built-in and on-disk dataset.

A sample is `(image, target)` with `image` a float32 tensor `(C, H, W)` in [0, 1]. Datasets small
enough for memory are `InMemoryDataset`s: one uint8 tensor `(N, C, H, W)` that the loader moves
to the device once and augments as whole batches. Larger ones are `FileDataset`s, decoded per
sample in DataLoader workers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from zrenie.config import DataConfig
from zrenie.errors import DataError
from zrenie.imgproc.io import read_image


class InMemoryDataset(Dataset):
    """Images held as one tensor.

    Args:
        images: Tensor[N, C, H, W] uint8.
        targets: Tensor[N] int64 class indices.
        classes: class names, index -> name.
    """

    def __init__(self, images: Tensor, targets: Tensor, classes: Sequence[str]):
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = targets.long()
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index].float().div_(255), int(self.targets[index])

    def subset(self, indices: Sequence[int] | Tensor) -> "InMemoryDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return InMemoryDataset(self.images[idx], self.targets[idx], self.classes)


class FileDataset(Dataset):
    """Images decoded from files on every access.

    Args:
        samples: (path, class index) pairs.
        classes: class names, index -> name.
        transform: maps a uint8 `(C, H, W)` tensor to the float `(C, H, W)` the model takes; set by
            the loader (train or eval preset). Without one, images are returned as float in [0, 1].
        strict: raise on a corrupt file instead of skipping it.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 transform: Callable[[Tensor], Tensor] | None = None, strict: bool = False, channels: int = 3):
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.strict = strict
        self.channels = channels

    @property
    def targets(self) -> Tensor:
        return torch.tensor([t for _, t in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        # A corrupt file is replaced by the next readable one, so an epoch never dies on it;
        # the files were checked once when the dataset was opened (see `drop_unreadable`).
        for offset in range(len(self.samples)):
            path, target = self.samples[(index + offset) % len(self.samples)]
            try:
                image = read_image(path, channels=self.channels)
            except DataError:
                if self.strict:
                    raise
                continue
            if self.transform is not None:
                return self.transform(image), target
            return image.float().div_(255), target
        raise DataError("no readable image in the dataset")

    def subset(self, indices: Sequence[int] | Tensor) -> "FileDataset":
        idx = [int(i) for i in indices]
        return FileDataset([self.samples[i] for i in idx], self.classes, self.transform, self.strict, self.channels)


def drop_unreadable(samples: list[tuple[str, int]], strict: bool, where: str) -> list[tuple[str, int]]:
    """Checks that each file opens as an image; warns once with the count of those that don't."""
    from PIL import Image

    good, bad = [], []
    for path, target in samples:
        try:
            with Image.open(path) as im:
                im.verify()
            good.append((path, target))
        except Exception:  # PIL raises many types for corrupt data
            if strict:
                raise DataError(f"corrupt or unreadable image: {path}") from None
            bad.append(path)
    if bad:
        warnings.warn(f"{where}: skipped {len(bad)} corrupt or unreadable image(s), e.g. {bad[0]}", stacklevel=2)
    return good


@dataclass
class DatasetSplits:
    """The train / val / test splits of one dataset, and what a model needs to know about it."""

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    in_channels: int
    image_size: int  # side of the square images the model sees
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = True  # whether a horizontal flip keeps the label (False for digits)
    extras: dict = field(default_factory=dict)

    def meta(self) -> dict:
        """Plain data kept in checkpoints so that predict can prepare new images."""
        return {"classes": self.classes, "in_channels": self.in_channels, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std), "hflip": self.hflip}


def stratified_split(targets: np.ndarray | Tensor, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Splits indices into len(fractions)+1 parts, each keeping the class proportions.

    Args:
        targets: class index per sample.
        fractions: size of each leading part as a fraction of the whole; the rest is the last part.
        seed: same seed, same split.
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(targets):
        idx = np.flatnonzero(targets == cls)
        rng.shuffle(idx)
        start = 0
        for k, frac in enumerate(fractions):
            n = int(round(frac * len(idx)))
            parts[k].extend(idx[start:start + n])
            start += n
        parts[-1].extend(idx[start:])
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images `(N, C, H, W)`, in [0, 1] units."""
    x = images.float().div_(255)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def require_dir(root: str | Path | None, name: str, layout: str, download: bool = False) -> Path:
    """The dataset folder, or a DataError saying where to put it and what layout is expected.

    With `download`, the folder may be missing: the downloader will create it.
    """
    if root is None:
        raise DataError(f"dataset {name!r} needs data.root=PATH (expected layout: {layout})")
    path = Path(root).expanduser()
    if not path.exists() and not download:
        raise DataError(f"dataset {name!r}: {path} does not exist (expected layout: {layout}; "
                        f"or pass data.download=true)")
    return path


_RESIZE_CHUNK = 4096  # images resized at a time, bounding the float copy's memory


def resize_uint8(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of uint8 images `(N, C, H, W)` to `(N, C, size, size)`, rounded back to uint8."""
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = images[start:start + _RESIZE_CHUNK].float().div_(255)
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False)
        out[start:start + _RESIZE_CHUNK] = chunk.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return out


def in_memory_splits(train: InMemoryDataset, test: InMemoryDataset, cfg: DataConfig, hflip: bool) -> DatasetSplits:
    """Carves a stratified `cfg.val_fraction` of train as val, resizes to `cfg.size`, measures mean/std on train.

    Args:
        train: the dataset's own training set, at native resolution.
        test: its test set.
        cfg: `size`, `val_fraction` and `seed` are read.
        hflip: whether a horizontal flip keeps the label.
    """
    native = train.images.shape[-1]
    if cfg.size and cfg.size != native:
        train = InMemoryDataset(resize_uint8(train.images, cfg.size), train.targets, train.classes)
        test = InMemoryDataset(resize_uint8(test.images, cfg.size), test.targets, test.classes)
    val_idx, train_idx = stratified_split(train.targets.numpy(), [cfg.val_fraction], cfg.seed)
    val, train = train.subset(val_idx), train.subset(train_idx)
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, val=val, test=test, classes=list(train.classes),
                         in_channels=train.images.shape[1], image_size=train.images.shape[-1],
                         mean=mean, std=std, hflip=hflip)
