"""The built-in `lesions`: deterministic images whose mask is the dark, fuzzy-edged blob in them, of any size
and contrast, under hairs and uneven light."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zrenie.config import DataConfig
from zrenie.data.builtin.lesions import CLASSES, _curve_distance, _hairs, _lesion_field, lesion_images, lesions
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = lesion_images(6, 32, seed=1), lesion_images(6, 32, seed=1), lesion_images(6, 32, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_the_mask_is_where_the_border_is_half_opaque_and_sizes_range_from_small_to_large():
    areas = []
    for seed in range(30):
        opacity, mask = _lesion_field(np.random.default_rng(seed), 64)
        assert np.array_equal(mask, opacity > 0.5)
        areas.append(mask.mean())
    assert 0.005 < min(areas) < 0.03 and 0.2 < max(areas) < 0.5  # dots and large blobs: lesion pixels are rare


def _grow(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Each mask dilated by a (2 radius + 1) square, as bool (N, H, W)."""
    return F.max_pool2d(masks[:, None].float(), 2 * radius + 1, 1, radius)[:, 0] > 0


def test_the_lesion_is_darker_than_the_skin_around_it_by_a_contrast_that_varies():
    images, masks = lesion_images(40, 64, seed=0)
    luma = images.float().mean(1)  # (N, H, W)
    ring = _grow(masks, 4) & ~_grow(masks, 1)  # the skin just outside the outline
    inside = (luma * masks).sum((1, 2)) / masks.sum((1, 2))
    around = (luma * ring).sum((1, 2)) / ring.sum((1, 2))
    contrast = 1 - inside / around
    assert (contrast > 0).all()
    assert contrast.min() < 0.1 and contrast.max() > 0.4  # some lesions close to the skin's colour, some dark


def test_curve_distance_equals_the_distance_to_the_nearest_point_within_reach():
    rng = np.random.default_rng(3)
    points = rng.uniform(-2, 18, (40, 2))
    distance = _curve_distance(points, 16, reach=3)
    ys, xs = np.mgrid[0:16, 0:16] + 0.5
    naive = np.min([np.hypot(ys - y, xs - x) for y, x in points], axis=0)
    near = naive <= 2.5  # within reach of the pixel holding the nearest point
    assert np.allclose(distance[near], naive[near]) and (distance >= naive - 1e-12).all()


def test_hairs_cross_the_lesion_more_often_when_told_where_it_is():
    centre = np.array([32.0, 32.0])
    crossing = [_hairs(np.random.default_rng(s), 64, centre)[30:35, 30:35].max() > 0 for s in range(40)]
    anywhere = [_hairs(np.random.default_rng(s), 64)[30:35, 30:35].max() > 0 for s in range(40)]
    assert sum(crossing) > sum(anywhere) and sum(crossing) >= 15
    assert sum(_hairs(np.random.default_rng(s), 64).max() == 0 for s in range(40)) >= 5  # some images have none


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
