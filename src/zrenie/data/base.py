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
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from zrenie.config import DataConfig
from zrenie.errors import DataError
from zrenie.imgproc.io import DEFAULT_BACKGROUND, read_image


TARGET_KINDS = ("class", "mask", "boxes")


class InMemoryDataset(Dataset):
    """Images held as one tensor, with targets of one kind.

    Args:
        images: Tensor[N, C, H, W] uint8, or Tensor[N, T, C, H, W] for video clips.
        targets: what the task learns: class indices Tensor[N] ("class"), class maps Tensor[N, H, W]
            ("mask"), or one dict per image `{"boxes": Tensor[k, 4] XYXY pixels, "labels": Tensor[k]}` ("boxes").
        classes: class names, index -> name.
        labels: the class of each sample, Tensor[N], for samplers and class selection; None for class
            targets (the targets are the labels) and for kinds without one class per image.
    """

    def __init__(self, images: Tensor, targets: Tensor | list[dict], classes: Sequence[str],
                 labels: Tensor | None = None):
        if images.ndim not in (4, 5) or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W) or (N, T, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        if isinstance(targets, Tensor) and targets.ndim == 1:
            self.target_kind, self.targets = "class", targets.long()
        elif isinstance(targets, Tensor) and targets.ndim == 3:
            self.target_kind, self.targets = "mask", targets
        elif isinstance(targets, list):
            self.target_kind, self.targets = "boxes", targets
        else:
            raise ValueError(f"targets must be classes (N,), masks (N, H, W) or a list of box dicts, "
                             f"got {type(targets).__name__}")
        self._labels = labels.long() if labels is not None else None
        self.classes = list(classes)

    @property
    def labels(self) -> Tensor | None:
        """Tensor[N]: the class of each sample (the targets themselves for classification)."""
        return self.targets if self.target_kind == "class" else self._labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        image = self.images[index].float().div_(255)
        if self.target_kind == "class":
            return image, int(self.targets[index])
        from torchvision import tv_tensors  # imported on use: torchvision's import takes about a second
        if self.target_kind == "mask":
            return image, tv_tensors.Mask(self.targets[index].long())
        target = self.targets[index]
        out = {"boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:])),
               "labels": target["labels"]}
        if "masks" in target:
            out["masks"] = tv_tensors.Mask(target["masks"])
        return image, out

    def subset(self, indices: Sequence[int] | Tensor) -> "InMemoryDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        targets = self.targets[idx] if isinstance(self.targets, Tensor) else [self.targets[i] for i in idx.tolist()]
        labels = self._labels[idx] if self._labels is not None else None
        return InMemoryDataset(self.images[idx], targets, self.classes, labels)


class FileDataset(Dataset):
    """Images decoded from files on every access.

    Args:
        samples: (path, class index) pairs.
        classes: class names, index -> name.
        transform: maps a uint8 `(C, H, W)` tensor to the float `(C, H, W)` the model takes; set by
            the loader (train or eval preset). Without one, images are returned as float in [0, 1].
        strict: raise on a corrupt file instead of skipping it.
        channels: 3 (RGB) or 1 (grayscale), whatever the files hold.
        background: the grey level (0-255) that transparent pixels are composited over.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 transform: Callable[[Tensor], Tensor] | None = None, strict: bool = False, channels: int = 3,
                 background: int = DEFAULT_BACKGROUND):
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.strict = strict
        self.channels = channels
        self.background = background

    target_kind = "class"

    @property
    def labels(self) -> Tensor:
        """Tensor[N]: the class of each sample."""
        return torch.tensor([t for _, t in self.samples], dtype=torch.long)

    @property
    def targets(self) -> Tensor:
        """Tensor[N]: the targets, which for a classification dataset are its labels."""
        return self.labels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        # Unreadable files were dropped (counted, or refused with data.strict) when the dataset was opened;
        # one that breaks afterwards is an error naming it: serving another image in its place would
        # attach this index's prediction to the wrong file.
        path, target = self.samples[index]
        image = read_image(path, channels=self.channels, background=self.background)
        if self.transform is not None:
            return self.transform(image), target
        return image.float().div_(255), target

    def subset(self, indices: Sequence[int] | Tensor) -> "FileDataset":
        idx = [int(i) for i in indices]
        return FileDataset([self.samples[i] for i in idx], self.classes, self.transform, self.strict, self.channels,
                           self.background)


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
    image_size: int | None  # side of the square images the model sees; None: each image at its own size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = True  # whether a horizontal flip keeps the label (False for digits)
    extras: dict = field(default_factory=dict)

    def meta(self) -> dict:
        """Plain data kept in checkpoints so that predict can prepare new images as eval prepares the test
        split: `eval` is its geometry (`eval_geometry`), `background` the grey that alpha is composited over."""
        from zrenie.data.transforms import eval_geometry

        per_sample = not isinstance(self.test, InMemoryDataset)
        geometry = eval_geometry(self.image_size, target=getattr(self.test, "target_kind", "class"),
                                 per_sample=per_sample)
        return {"classes": self.classes, "in_channels": self.in_channels, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std), "hflip": self.hflip, "eval": geometry,
                "background": getattr(self.test, "background", DEFAULT_BACKGROUND)}


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


def split_in_memory(full: InMemoryDataset, strata: np.ndarray, test_fraction: float, cfg: DataConfig,
                    hflip: bool = True) -> DatasetSplits:
    """Test, val and train of a generated in-memory set, mean/std measured on train.

    Args:
        full: every image and its target.
        strata: the class of each image for a stratified split, or zeros for a plain random one.
        test_fraction: share of the test split; val takes `cfg.val_fraction`, train the rest.
        cfg: `val_fraction` and `seed` (which seeds the split) are read.
    """
    test_idx, val_idx, train_idx = stratified_split(strata, [test_fraction, cfg.val_fraction], cfg.seed)
    train = full.subset(train_idx)
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, val=full.subset(val_idx), test=full.subset(test_idx), classes=full.classes,
                         in_channels=full.images.shape[1], image_size=full.images.shape[-1], mean=mean, std=std,
                         hflip=hflip)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images `(N, C, H, W)` or clips `(N, T, C, H, W)`, in [0, 1] units."""
    x = images.flatten(0, 1) if images.ndim == 5 else images  # clips: every frame counts as an image
    x = x.float().div_(255)
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
    """Bilinear resize of uint8 images `(N, C, H, W)` (or clips `(N, T, C, H, W)`) to side `size`, rounded to uint8."""
    if images.ndim == 5:
        n, t = images.shape[:2]
        return resize_uint8(images.flatten(0, 1), size).unflatten(0, (n, t))
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
    val_idx, train_idx = stratified_split(train.labels.numpy(), [cfg.val_fraction], cfg.seed)
    val, train = train.subset(val_idx), train.subset(train_idx)
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, val=val, test=test, classes=list(train.classes),
                         in_channels=train.images.shape[1], image_size=train.images.shape[-1],
                         mean=mean, std=std, hflip=hflip)
