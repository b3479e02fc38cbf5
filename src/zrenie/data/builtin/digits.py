"""scikit-learn's 1,797 real handwritten digits (8x8, 16 grey levels), no download needed."""

from __future__ import annotations

import torch

from zrenie.config import DataConfig
from zrenie.data.base import DatasetSplits, InMemoryDataset, channel_stats, resize_uint8, stratified_split
from zrenie.registry import DATASETS

TEST_FRACTION = 0.2


@DATASETS.register("digits")
def digits(cfg: DataConfig) -> DatasetSplits:
    """Fixed stratified split: 20% test, `val_fraction` val, the rest train, seeded by `data.seed`.

    `data.size` upsamples the 8x8 images bilinearly (e.g. 32 for CIFAR-sized models).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 16 grey levels -> uint8: (N, 1, 8, 8)
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    if cfg.size and cfg.size != 8:
        images = resize_uint8(images, cfg.size)
    targets = torch.from_numpy(bunch.target).long()
    classes = [str(c) for c in range(10)]
    test_idx, val_idx, train_idx = stratified_split(targets.numpy(), [TEST_FRACTION, cfg.val_fraction], cfg.seed)
    full = InMemoryDataset(images, targets, classes)
    train = full.subset(train_idx)
    mean, std = channel_stats(train.images)
    return DatasetSplits(train=train, val=full.subset(val_idx), test=full.subset(test_idx), classes=classes,
                         in_channels=1, image_size=images.shape[-1], mean=mean, std=std, hflip=False)
