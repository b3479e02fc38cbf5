"""Tests of the digit_scenes dataset: boxes recomputed from the pixels, torch's bilinear upsampling, real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from zrenie.config import DataConfig
from zrenie.data.base import stratified_split
from zrenie.data.builtin import digit_scenes as D
from zrenie.data.catalog import open_splits
from zrenie.errors import ConfigError, DataError


def _naive_box(mask: np.ndarray) -> list[float]:
    """Tight box in pixel edges by visiting every pixel."""
    xs, ys = [], []
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            if mask[i, j]:
                xs.append(j)
                ys.append(i)
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1]


@pytest.mark.parametrize("max_digits", [1, 4])
def test_boxes_are_the_tight_boxes_of_the_pasted_ink(max_digits):
    scenes, _ = D.digit_scenes_arrays(12, size=40, max_digits=max_digits, seed=3)
    for scene in scenes:
        assert len(scene.boxes) == len(scene.labels) == len(scene.masks) >= 1
        changed = (scene.image != scene.background).any(axis=0)  # what pasting did to the pixels
        assert np.array_equal(changed, scene.masks.any(axis=0))
        assert scene.masks.sum(axis=0).max() == 1  # digits never overlap
        for mask, box in zip(scene.masks, scene.boxes):
            assert box.tolist() == _naive_box(mask)
        if max_digits == 1:
            assert scene.boxes[0].tolist() == _naive_box(changed)


def test_digits_are_real_sklearn_digits_upsampled_bilinearly():
    digits = load_digits()
    scenes, _ = D.digit_scenes_arrays(10, size=32, seed=0)
    for scene in scenes:
        assert scene.labels.tolist() == digits.target[scene.sources].tolist()
    digit = digits.images[5]
    alpha = D.digit_opacity(digit, 20, 27)
    ref = F.interpolate(torch.tensor(digit / 16.0)[None, None], size=(20, 27), mode="bilinear",
                        align_corners=False)[0, 0].numpy()
    ink = ref >= D.INK_THRESHOLD
    assert np.array_equal(alpha > 0, ink)
    np.testing.assert_allclose(alpha[ink], ref[ink], atol=1e-12)


def test_splits_use_disjoint_source_digits():
    scenes, strata = D.digit_scenes_arrays(200, size=32, seed=5, val_fraction=0.1)
    parts = stratified_split(strata, [D.TEST_FRACTION, 0.1], 5)  # the split `split_in_memory` draws
    sources = [set(np.concatenate([scenes[i].sources for i in part]).tolist()) for part in parts]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])


def test_open_splits_serves_balanced_single_digit_boxes():
    cfg = DataConfig(name="digit_scenes", size=32, num_samples=200, seed=1)
    splits = open_splits(cfg, target="boxes")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (150, 20, 30)  # 20 of each digit: 3 test, 2 val
    assert splits.classes == [str(d) for d in range(10)] and splits.in_channels == 3 and not splits.hflip
    image, target = splits.test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert target["boxes"].shape == (1, 4) and target["labels"].dtype == torch.int64
    counts = np.bincount(torch.cat([splits.test[i][1]["labels"] for i in range(30)]).numpy(), minlength=10)
    assert counts.tolist() == [3] * 10  # stratified by digit
    again = open_splits(cfg, target="boxes")
    assert torch.equal(again.test.images, splits.test.images)


def test_multi_digit_variant_and_bad_input():
    cfg = DataConfig(name="digit_scenes", size=48, num_samples=30, max_objects=3)
    splits = open_splits(cfg, target="boxes")
    counts = [len(t["labels"]) for t in splits.train.targets]
    assert max(counts) > 1 and min(counts) >= 1
    with pytest.raises(ConfigError, match="data.size"):
        open_splits(DataConfig(name="digit_scenes", size=16), target="boxes")
    with pytest.raises(DataError, match="boxes"):
        open_splits(DataConfig(name="digit_scenes"), target="mask")
