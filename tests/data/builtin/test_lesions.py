"""The built-in `lesions`: deterministic images whose mask is the dark, soft-edged blob in them."""

import numpy as np
import pytest
import torch

from zrenie.config import DataConfig
from zrenie.data.builtin.lesions import CLASSES, _lesion_field, lesion_images, lesions
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = lesion_images(6, 32, seed=1), lesion_images(6, 32, seed=1), lesion_images(6, 32, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_the_mask_is_where_the_border_is_half_opaque():
    opacity, mask = _lesion_field(np.random.default_rng(0), 64)
    assert np.array_equal(mask, opacity > 0.5)
    assert 0.05 < mask.mean() < 0.6  # one blob, neither a dot nor the whole field


def test_the_lesion_is_darker_than_the_skin_around_it():
    images, masks = lesion_images(20, 64, seed=0)
    luma = images.float().mean(1)  # (N, H, W)
    inside = (luma * masks).sum((1, 2)) / masks.sum((1, 2))
    outside = (luma * (1 - masks)).sum((1, 2)) / (1 - masks).sum((1, 2))
    assert (inside < outside).all()


def test_registered_for_masks_with_splits_and_classes():
    assert "lesions" in DATASETS.list(tag="mask")
    splits = lesions(DataConfig(name="lesions", num_samples=40, size=32))
    assert splits.classes == list(CLASSES) and splits.image_size == 32 and splits.in_channels == 3
    assert len(splits.train) + len(splits.val) + len(splits.test) == 40
    assert splits.train.target_kind == "mask" and set(splits.train.targets.unique().tolist()) <= {0, 1}


def test_bad_sizes_are_one_line():
    with pytest.raises(ConfigError, match="at least 32 pixels"):
        lesions(DataConfig(name="lesions", size=16))
    with pytest.raises(ConfigError, match="masks only"):
        lesions(DataConfig(name="lesions"), target="class")
