"""Loaders that yield batches already on the device and normalised.

In-memory datasets go through `TensorLoader` (the whole uint8 tensor moves to the device once and
batches are augmented there); file datasets through a torch DataLoader with workers. Both shard
by rank under DDP, reshuffle per epoch from (seed, epoch), and can skip the first batches of an
epoch so that a run resumed mid-epoch sees the same batches it would have seen.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from zrenie.config import TrainConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int, weights: Tensor | None = None) -> Tensor:
    """This epoch's sample order: a permutation, or with `weights` n draws with replacement."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is not None:
        return torch.multinomial(weights, n, replacement=True, generator=g)
    return torch.randperm(n, generator=g)


def balanced_sample_weights(targets: Tensor) -> Tensor:
    """Per-sample weight 1 / count(class): every class is drawn equally often on average."""
    counts = torch.bincount(targets).double()
    return (1.0 / counts[targets]).double()


def shard(order: Tensor, rank: int, world: int, drop_last: bool, batch_size: int) -> Tensor:
    """This rank's indices. Training keeps equal counts per rank (DDP steps must match); evaluation
    splits without padding so that no sample is counted twice."""
    if world == 1 and not drop_last:
        return order
    if drop_last:
        per_rank = len(order) // world
        if per_rank >= batch_size:
            per_rank -= per_rank % batch_size
        return order[rank::world][:per_rank]
    return order[rank::world]


class Normalize:
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


class TensorLoader:
    """Batches of an `InMemoryDataset` on the device: `(images (B, C, H, W) float, targets (B,))`."""

    def __init__(self, dataset: InMemoryDataset, batch_size: int, device: torch.device, normalize: Normalize,
                 shuffle: bool = False, drop_last: bool = False, augment: Callable | None = None, seed: int = 0,
                 rank: int = 0, world: int = 1, channels_last: bool = False):
        self.images = dataset.images.to(device)
        self.targets = dataset.targets.to(device)
        self.batch_size, self.device, self.normalize = batch_size, device, normalize
        self.shuffle, self.drop_last, self.augment, self.seed = shuffle, drop_last, augment, seed
        self.rank, self.world = rank, world
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch, self._skip = 0, 0
        self.sample_weights: Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        self._skip = batches

    def _indices(self) -> Tensor:
        order = epoch_order(len(self.images), self.shuffle, self.seed, self.epoch, self.sample_weights)
        return shard(order, self.rank, self.world, self.drop_last, self.batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self._indices()) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices = self._indices().to(self.device)
        start, self._skip = self._skip, 0
        for b in range(start, len(self)):
            idx = indices[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255)  # (B, C, H, W)
            if self.augment is not None:
                g = torch.Generator(device=self.device)
                g.manual_seed(((self.seed * 1_000_003 + self.epoch) * 100_003 + b) * 8 + self.rank)
                x = self.augment(x, g)
            x = self.normalize(x).contiguous(memory_format=self.memory_format)
            yield x, self.targets[idx]


class _EpochSampler(Sampler[int]):
    def __init__(self, loader: "FileLoader"):
        self.loader = loader

    def __iter__(self) -> Iterator[int]:
        ids = self.loader._indices()[self.loader._start * self.loader.batch_size:]
        return iter(ids.tolist())

    def __len__(self) -> int:
        return len(self.loader._indices())


class FileLoader(TensorLoader):
    """Batches of a file dataset through DataLoader workers, moved to the device and normalised."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, normalize: Normalize,
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0, rank: int = 0, world: int = 1,
                 workers: int = 2, channels_last: bool = False):
        self.dataset = dataset
        self.batch_size, self.device, self.normalize = batch_size, device, normalize
        self.shuffle, self.drop_last, self.seed, self.rank, self.world = shuffle, drop_last, seed, rank, world
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch, self._skip, self._start = 0, 0, 0
        self.workers = workers
        self.sample_weights: Tensor | None = None

    def _indices(self) -> Tensor:
        order = epoch_order(len(self.dataset), self.shuffle, self.seed, self.epoch, self.sample_weights)
        return shard(order, self.rank, self.world, self.drop_last, self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self._start, self._skip = self._skip, 0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 8 + self.rank)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=_EpochSampler(self), generator=g,
                            num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self.normalize(x).contiguous(memory_format=self.memory_format), y.to(self.device)


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process in the default process group; (0, 1) outside torchrun."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def build_loader(dataset: Dataset, splits: DatasetSplits, cfg: TrainConfig, device: torch.device,
                 train: bool) -> TensorLoader:
    """The loader for one split: augmented, shuffled and sharded by rank when `train`."""
    from zrenie.data.batch_aug import BatchAugment

    normalize = Normalize(splits.mean, splits.std, device)
    rank, world = process_rank()
    common = dict(batch_size=cfg.data.batch_size, device=device, normalize=normalize, shuffle=train,
                  drop_last=train, seed=cfg.seed, rank=rank, world=world,
                  channels_last=cfg.channels_last)
    if isinstance(dataset, InMemoryDataset):
        augment = BatchAugment(cfg.data.augment, splits.image_size, splits.hflip) if train else None
        loader: TensorLoader = TensorLoader(dataset, augment=augment, **common)
    else:
        from zrenie.data.transforms import eval_transform, train_transform

        dataset.transform = (train_transform(splits.image_size, cfg.data.augment, splits.hflip) if train
                             else eval_transform(splits.image_size))
        loader = FileLoader(dataset, workers=cfg.data.workers, **common)
    if train and cfg.data.sampler == "balanced":
        loader.sample_weights = balanced_sample_weights(dataset.targets)
    return loader
