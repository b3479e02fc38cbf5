"""Loaders that yield batches already on the device.

A batch is a dict:

    "image"   Tensor[B, C, H, W] float (normalised with the dataset's mean/std unless the task normalises
              inside its model), Tensor[B, T, C, H, W] for clips, or a list of Tensor[C, H_i, W_i]
    "target"  class indices Tensor[B], class maps Tensor[B, H, W] long, or a list of
              {"boxes": Tensor[k, 4] XYXY pixels, "labels": Tensor[k]} (and "masks" Tensor[k, H, W] bool
              instance masks where the task asked for "instances")
    "index"   Tensor[B]: each sample's index in its dataset, the key of per-sample results

and per-sample keys kept on the CPU (`orig_size` ...). Which samples form a batch is a batch sampler's
choice (`EpochBatches` by default, `PKBatches` for metric learning); both shard by rank under DDP,
reshuffle per epoch from (seed, epoch) and let a run resumed mid-epoch skip the batches it has seen.

In-memory datasets go through `TensorLoader` (the whole uint8 tensor moves to the device once and
batches are augmented there, masks and boxes with the images); file datasets through a torch
DataLoader with workers and a collate function.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from zrenie.config import TrainConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset
from zrenie.errors import ConfigError


def epoch_order(n: int, shuffle: bool, seed: int, epoch: int, weights: Tensor | None = None) -> Tensor:
    """This epoch's sample order: a permutation, or with `weights` n draws with replacement."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is not None:
        return torch.multinomial(weights, n, replacement=True, generator=g)
    return torch.randperm(n, generator=g)


def balanced_sample_weights(labels: Tensor) -> Tensor:
    """Per-sample weight 1 / count(class): every class is drawn equally often on average."""
    counts = torch.bincount(labels).double()
    return (1.0 / counts[labels]).double()


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


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process in the default process group; (0, 1) outside torchrun."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


class EpochBatches:
    """The default batch sampler: the epoch's order (a permutation, or weighted draws with `weights`),
    this rank's share of the samples, cut into batches of `batch_size`."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int, rank: int = 0,
                 world: int = 1, weights: Tensor | None = None):
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world, self.weights = seed, rank, world, weights

    def batches(self, epoch: int) -> list[Tensor]:
        order = epoch_order(self.n, self.shuffle, self.seed, epoch, self.weights)
        return list(shard(order, self.rank, self.world, self.drop_last, self.batch_size).split(self.batch_size))


class PKBatches:
    """P classes x K samples per batch, the batches of metric learning (Hermans et al. 2017).

    Each batch draws `p` classes at random and `k` samples of each (without replacement when the class
    has k, else with). The epoch's batches are made once from (seed, epoch) and sharded by whole batches
    under DDP, so every process trains on complete P x K batches and all take the same number of steps.

    Args:
        labels: Tensor[N] class of each sample.
    """

    def __init__(self, labels: Tensor, p: int, k: int, seed: int, rank: int = 0, world: int = 1):
        self.by_class = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
        if p > len(self.by_class):
            from zrenie.errors import ConfigError

            raise ConfigError(f"P x K batches need p <= the number of classes ({len(self.by_class)}), got p={p}")
        self.p, self.k, self.n, self.seed, self.rank, self.world = p, k, len(labels), seed, rank, world

    def batches(self, epoch: int) -> list[Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        out = []
        for _ in range(max(1, self.n // (self.p * self.k))):
            chosen = torch.randperm(len(self.by_class), generator=g)[:self.p]
            parts = []
            for c in chosen.tolist():
                members = self.by_class[c]
                if len(members) >= self.k:
                    pick = torch.randperm(len(members), generator=g)[:self.k]
                else:
                    pick = torch.randint(len(members), (self.k,), generator=g)
                parts.append(members[pick])
            out.append(torch.cat(parts))
        per_rank = len(out) // self.world
        return out[self.rank::self.world][:per_rank]


class Normalize:
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(-1, 1, 1)
        self.std = torch.tensor(std, device=device).view(-1, 1, 1)

    def __call__(self, images: Tensor) -> Tensor:
        """images: Tensor[..., C, H, W] (an image, a batch or clips) in [0, 1]."""
        return (images - self.mean) / self.std


def memory_format_of(images: Tensor, channels_last: bool) -> torch.memory_format:
    """channels_last for 4-D batches, channels_last_3d for 5-D clips (NDHWC after a (B, C, T, H, W) view)."""
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last if images.ndim == 4 else torch.contiguous_format


def _to_device(target: Any, device: torch.device) -> Any:
    if isinstance(target, Tensor):
        return target.to(device, non_blocking=True)
    if isinstance(target, dict):
        return {k: _to_device(v, device) for k, v in target.items()}
    if isinstance(target, list):
        return [_to_device(t, device) for t in target]
    return target


class TensorLoader:
    """Batches of an `InMemoryDataset` on the device (see the module docstring for the batch)."""

    def __init__(self, dataset: InMemoryDataset, device: torch.device, normalize: Normalize | None,
                 sampler: EpochBatches | PKBatches, augment: Callable | None = None, seed: int = 0,
                 channels_last: bool = False):
        self.images = dataset.images.to(device)
        self.kind = dataset.target_kind
        self.targets = _to_device(dataset.targets, device)
        self.device, self.normalize, self.sampler, self.augment = device, normalize, sampler, augment
        self.seed, self.channels_last = seed, channels_last
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, batches: int) -> None:
        self._skip = batches

    def __len__(self) -> int:
        return len(self.sampler.batches(self.epoch))

    def _indices_on_device(self, batches: list[Tensor]) -> list[Tensor]:
        """The epoch's batch indices on the device in one copy. A copy per batch from pageable memory
        waits for the GPU to finish the previous step, so the host could not queue ahead (~15% of a fast
        GPU step); from pinned memory the one copy runs asynchronously."""
        if not batches or self.device.type == "cpu":
            return batches
        flat = torch.cat(batches)
        if self.device.type == "cuda":
            flat = flat.pin_memory()
        return list(flat.to(self.device, non_blocking=True).split([len(b) for b in batches]))

    def _augment(self, x: Tensor, target: Any, g: torch.Generator) -> tuple[Tensor, Any]:
        if self.kind == "class":
            return self.augment(x, g), target
        if self.kind == "mask":
            x, masks, _ = self.augment.joint(x, g, masks=target)
            return x, masks
        if getattr(self.augment, "mosaic", 0) > 0:
            from zrenie.data.batch_aug import mosaic

            x, target = mosaic(x, target, g, self.augment.mosaic)
        instances = [t["masks"] for t in target] if target and "masks" in target[0] else None
        x, masks, boxes = self.augment.joint(x, g, masks=instances, boxes=[t["boxes"] for t in target])
        out = [{"boxes": b, "labels": t["labels"][keep]} for (b, keep), t in zip(boxes, target)]
        for t, m, (_, keep) in zip(out, masks or (), boxes):
            t["masks"] = m[keep.to(m.device)]
        return x, out

    def __iter__(self) -> Iterator[dict]:
        batches = self.sampler.batches(self.epoch)
        start, self._skip = self._skip, 0
        rank = getattr(self.sampler, "rank", 0)
        on_device = self._indices_on_device(batches)
        for b in range(start, len(batches)):
            idx = on_device[b]
            x = self.images[idx].float().div_(255)  # (B, C, H, W) or (B, T, C, H, W)
            if self.kind == "boxes":
                target = [self.targets[i] for i in batches[b].tolist()]  # CPU indices: no device sync
            else:
                target = self.targets[idx].long() if self.kind == "mask" else self.targets[idx]
            if self.augment is not None:
                x, target = self._augment(x, target, batch_generator(self.seed, self.epoch, b, rank, self.device))
            if self.normalize is not None:
                x = self.normalize(x)
            x = x.contiguous(memory_format=memory_format_of(x, self.channels_last))
            yield {"image": x, "target": target, "index": idx}


def batch_generator(seed: int, epoch: int, batch: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one batch's augmentation: it depends only on (seed, epoch, batch, rank), so a resumed
    run draws what an uninterrupted one would."""
    g = torch.Generator(device=device)
    g.manual_seed(((seed * 1_000_003 + epoch) * 100_003 + batch) * 8 + rank)
    return g


class _Indexed(Dataset):
    """Adds the sample index to each (image, target) sample."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Tensor, Any]:
        image, target = self.dataset[index]
        return index, image, target


def collate(samples: list[tuple[int, Tensor, Any]]) -> dict:
    """(index, image, target) samples -> a batch dict: images stacked when they share a size (else a list),
    class targets as a tensor, masks stacked, box dicts kept as a list."""
    indices, images, targets = zip(*samples)
    same_size = all(im.shape == images[0].shape for im in images)
    first = targets[0]
    if isinstance(first, int):
        target: Any = torch.tensor(targets, dtype=torch.long)
    elif isinstance(first, Tensor) and same_size:
        target = torch.stack([t.as_subclass(Tensor).long() for t in targets])
    else:
        target = list(targets)
    return {"image": torch.stack(images) if same_size else list(images), "target": target,
            "index": torch.tensor(indices, dtype=torch.long),
            "orig_size": torch.tensor([tuple(im.shape[-2:]) for im in images])}


class FileLoader(TensorLoader):
    """Batches of a file dataset through DataLoader workers, moved to the device and normalised; with `mosaic`
    (detection), a share of each batch becomes 2x2 mosaics of its images, as in-memory batches do."""

    def __init__(self, dataset: Dataset, device: torch.device, normalize: Normalize | None,
                 sampler: EpochBatches | PKBatches, seed: int = 0, workers: int = 2, channels_last: bool = False,
                 collate_fn: Callable[[list], dict] = collate, mosaic: float = 0.0):
        self.dataset, self.device, self.normalize, self.sampler = dataset, device, normalize, sampler
        self.seed, self.workers, self.channels_last, self.collate_fn = seed, workers, channels_last, collate_fn
        self.mosaic = mosaic
        self.epoch, self._skip = 0, 0

    def __iter__(self) -> Iterator[dict]:
        start, self._skip = self._skip, 0
        rank = getattr(self.sampler, "rank", 0)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 8 + rank)
        batches = [b.tolist() for b in self.sampler.batches(self.epoch)[start:]]
        loader = DataLoader(_Indexed(self.dataset), batch_sampler=batches, collate_fn=self.collate_fn,
                            generator=g, num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        for b, batch in enumerate(loader, start):
            batch["image"] = _to_device(batch["image"], self.device)
            batch["target"] = _to_device(batch["target"], self.device)
            if self.mosaic > 0:
                from zrenie.data.batch_aug import mosaic

                g = batch_generator(self.seed, self.epoch, b, rank, self.device)
                batch["image"], batch["target"] = mosaic(batch["image"], batch["target"], g, self.mosaic)
            if self.normalize is not None:
                images = batch["image"]
                batch["image"] = [self.normalize(im) for im in images] if isinstance(images, list) else \
                    self.normalize(images).contiguous(memory_format=memory_format_of(images, self.channels_last))
            batch["index"] = batch["index"].to(self.device)
            yield batch


def build_loader(dataset: Dataset, splits: DatasetSplits, cfg: TrainConfig, device: torch.device, train: bool,
                 normalize: bool = True, collate_fn: Callable[[list], dict] = collate,
                 sampler: EpochBatches | PKBatches | None = None) -> TensorLoader:
    """The loader for one split: augmented, shuffled and sharded by rank when `train`.

    Args:
        normalize: subtract the dataset mean and divide by its std (False for models that normalise
            inside, as torchvision's detectors do).
        collate_fn: how file samples become a batch (the default handles classes, masks and boxes).
        sampler: the batch sampler; by default `EpochBatches` (weighted with `data.sampler=balanced`).
    """
    from zrenie.data.batch_aug import BatchAugment

    norm = Normalize(splits.mean, splits.std, device) if normalize else None
    rank, world = process_rank()
    if sampler is None:
        weights = None
        if train and cfg.data.sampler == "balanced":
            weights = balanced_sample_weights(dataset.labels)
        sampler = EpochBatches(len(dataset), cfg.data.batch_size, shuffle=train, drop_last=train, seed=cfg.seed,
                               rank=rank, world=world, weights=weights)
    kind = getattr(dataset, "target_kind", "class")
    if isinstance(dataset, InMemoryDataset):
        augment = BatchAugment(cfg.data.augment, splits.image_size, splits.hflip,
                               mosaic=cfg.data.mosaic if kind == "boxes" else 0.0) if train else None
        return TensorLoader(dataset, device, norm, sampler, augment, cfg.seed, cfg.channels_last)
    mosaic = cfg.data.mosaic if train and kind == "boxes" else 0.0
    if mosaic > 0 and splits.image_size is None:
        raise ConfigError(f"data.mosaic={cfg.data.mosaic}: mosaics tile images of one size, and {cfg.data.name} "
                          f"keeps each image at its own; set data.size")
    from zrenie.data.transforms import eval_transform, native_transform, train_transform

    options = {} if kind == "class" else {"target": kind}
    if splits.image_size is None:  # every image at its own size: batches are lists of images
        dataset.transform = native_transform(train and splits.hflip and cfg.data.augment != "none")
    else:
        dataset.transform = (train_transform(splits.image_size, cfg.data.augment, splits.hflip, **options) if train
                             else eval_transform(splits.image_size, **options))
    return FileLoader(dataset, device, norm, sampler, cfg.seed, cfg.data.workers, cfg.channels_last, collate_fn,
                      mosaic)
