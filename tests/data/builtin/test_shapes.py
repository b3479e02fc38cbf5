"""Tests of the procedural shapes dataset against formulas, skimage's rasteriser and numpy/torchvision boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.draw import polygon2mask
from torchvision.ops import masks_to_boxes as tv_masks_to_boxes
from torchvision.utils import save_image

from zrenie.config import DataConfig
from zrenie.data.base import channel_stats
from zrenie.data.builtin import shapes as S
from zrenie.errors import ConfigError
from zrenie.registry import DATASETS


def _lens_area(big: float, small: float, d: float) -> float:
    """Area of the intersection of two discs of radii `big`, `small` whose centres are `d` apart."""
    a = small ** 2 * math.acos((d ** 2 + small ** 2 - big ** 2) / (2 * d * small))
    b = big ** 2 * math.acos((d ** 2 + big ** 2 - small ** 2) / (2 * d * big))
    c = 0.5 * math.sqrt((-d + small + big) * (d + small - big) * (d - small + big) * (d + small + big))
    return a + b - c


def _unit_area(kind: str, aspect: float) -> float | None:
    """Geometric area of a shape of circumradius 1, worked out by hand; None where there is no formula."""
    w, h = S.CROSS_HALF_WIDTH, S.CROSS_LENGTH
    offset, cut = S.CRESCENT_CUT
    return {
        "circle": math.pi,
        "square": 2.0,  # side sqrt(2)
        "triangle": 3 * math.sqrt(3) / 4,
        "star": 5 * S.STAR_INNER * math.sin(math.radians(36)),  # ten triangles between outer and inner tips
        "hexagon": 3 * math.sqrt(3) / 2,
        "cross": 2 * (2 * h) * (2 * w) - (2 * w) ** 2,  # two bars minus their shared square
        "ellipse": math.pi * aspect,
        "diamond": 2 * aspect,  # half the product of the diagonals 2 and 2 * aspect
        "pentagon": 2.5 * math.sin(math.radians(72)),
        "crescent": math.pi - _lens_area(1.0, cut, offset),
        "ring": math.pi * (1 - S.RING_INNER ** 2),
    }.get(kind)


@pytest.mark.parametrize("kind", S.SHAPE_KINDS)
def test_mask_area_matches_geometric_area(kind):
    rng = np.random.default_rng(0)
    radius, measured, expected = 22.0, [], []
    for _ in range(6):
        spec = S.ShapeSpec(kind, *rng.uniform(28, 36, size=2), radius, rng.uniform(0, 2 * np.pi),
                           rng.uniform(0.45, 0.65))
        measured.append(S.rasterize_shape(spec, 64).sum())
        unit = _unit_area(kind, spec.aspect)
        if unit is None:  # the heart: the shoelace area of its outline
            x, y = S.shape_outline(kind).T
            unit = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        expected.append(unit * radius ** 2)
    assert np.mean(measured) == pytest.approx(np.mean(expected), rel=0.01)


@pytest.mark.parametrize("kind", [k for k in S.SHAPE_KINDS if S.shape_outline(k) is not None])
def test_polygons_match_skimage_rasterizer(kind):
    rng = np.random.default_rng(1)
    for _ in range(5):
        spec = S.ShapeSpec(kind, rng.uniform(14, 26), rng.uniform(14, 26), rng.uniform(6, 14),
                           rng.uniform(0, 2 * np.pi), rng.uniform(0.45, 0.65))
        u, v = S.shape_outline(kind, spec.aspect).T * spec.radius
        cos, sin = math.cos(spec.angle), math.sin(spec.angle)
        x, y = spec.cx + u * cos - v * sin, spec.cy + u * sin + v * cos
        # skimage puts pixel centres on integer coordinates; ours are at +0.5.
        reference = polygon2mask((40, 48), np.stack([y - 0.5, x - 0.5], axis=1))
        ours = S.rasterize_shape(spec, (40, 48))
        # Only pixel centres lying exactly on an edge may be decided differently.
        assert np.count_nonzero(ours != reference) <= 2
        assert ours.sum() > 0


def test_circle_is_centred_disc():
    spec = S.ShapeSpec("circle", 16.0, 16.0, 7.3)
    rows, cols = np.mgrid[0:32, 0:32]
    reference = (cols + 0.5 - 16) ** 2 + (rows + 0.5 - 16) ** 2 <= 7.3 ** 2
    np.testing.assert_array_equal(S.rasterize_shape(spec, 32), reference)


def test_shape_clipped_at_border():
    mask = S.rasterize_shape(S.ShapeSpec("square", 0.0, 0.0, 10.0), 16)
    assert 0 < mask.sum() < 2 * 10 ** 2 and mask[0, 0]


def _check_scene(scene: S.Scene, size: int, min_visible: float) -> bool:
    """Asserts every invariant of one scene; returns whether any object is partly hidden."""
    n = len(scene.labels)
    assert scene.image.shape == (3, size, size) and scene.image.dtype == np.uint8
    assert scene.masks.shape == (n, size, size) and scene.boxes.shape == (n, 4) and len(scene.shapes) == n
    full = [S.rasterize_shape(spec, size) for spec in scene.shapes]
    semantic = np.zeros((size, size), dtype=np.int64)
    for mask, label in zip(full, scene.labels):  # paint back to front
        semantic[mask] = label + 1
    np.testing.assert_array_equal(scene.semantic, semantic)
    hidden = False
    for i in range(n):
        later = np.any(full[i + 1:], axis=0) if i + 1 < n else np.zeros((size, size), bool)
        np.testing.assert_array_equal(scene.masks[i], full[i] & ~later)
        assert scene.masks[i].sum() >= min_visible * full[i].sum() > 0
        hidden |= bool(scene.masks[i].sum() < full[i].sum())
        rows, cols = np.nonzero(scene.masks[i])
        np.testing.assert_array_equal(scene.boxes[i], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        pixels = scene.image[:, scene.masks[i]]  # (3, P)
        assert np.all(pixels == scene.colors[i][:, None])
        assert scene.shapes[i].kind == S.SHAPE_KINDS[scene.labels[i]]
    assert scene.masks.sum(axis=0).max(initial=0) <= 1
    np.testing.assert_array_equal(scene.masks.any(axis=0), scene.semantic > 0)
    return hidden


def test_scene_masks_boxes_semantic_and_colours():
    scenes = S.shape_scenes(40, image_size=48, num_classes=12, max_objects=6, seed=3,
                            radius_range=(0.12, 0.3), min_visible=0.5)
    hidden = [_check_scene(scene, 48, 0.5) for scene in scenes]
    assert sum(hidden) >= 5, "the scenes should exercise occlusion"
    assert sum(len(s.labels) for s in scenes) > 2 * len(scenes)
    labels = np.concatenate([s.labels for s in scenes])
    assert labels.min() >= 0 and labels.max() < 12


def test_boxes_agree_with_torchvision():
    scene = S.shape_scenes(1, image_size=64, max_objects=5, min_objects=5, seed=7)[0]
    reference = tv_masks_to_boxes(torch.from_numpy(scene.masks)).numpy()
    # torchvision's boxes end at the last pixel index; ours at its far edge.
    np.testing.assert_array_equal(scene.boxes, reference + np.array([0, 0, 1, 1], dtype=np.float32))


def test_scenes_deterministic():
    a = S.shape_scenes(5, image_size=40, seed=11)
    b = S.shape_scenes(5, image_size=40, seed=11)
    c = S.shape_scenes(5, image_size=40, seed=12)
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes() and np.array_equal(x.masks, y.masks)
        assert np.array_equal(x.boxes, y.boxes) and np.array_equal(x.labels, y.labels)
    assert any(x.image.tobytes() != z.image.tobytes() for x, z in zip(a, c))


def test_single_shape_image():
    rng = np.random.default_rng(5)
    for kind in S.SHAPE_KINDS:
        scene = S.render_shape_image(rng, kind, 32)
        spec = scene.shapes[0]
        assert scene.labels.tolist() == [S.SHAPE_KINDS.index(kind)]
        np.testing.assert_array_equal(scene.masks[0], S.rasterize_shape(spec, 32))
        # Fairly large and wholly inside the image.
        assert spec.radius >= 0.3 * 32 and spec.radius <= min(spec.cx, spec.cy, 32 - spec.cx, 32 - spec.cy)
        assert np.all(scene.image[:, scene.masks[0]] == scene.colors[0][:, None])
        assert (~scene.masks[0]).any()


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(name="shapes", **kwargs)


def test_dataset_defaults():
    splits = DATASETS.get("shapes")(_cfg())
    assert len(splits.train) + len(splits.val) + len(splits.test) == 3000
    assert splits.classes == list(S.SHAPE_KINDS[:8])
    assert splits.in_channels == 3 and splits.image_size == 32 and splits.hflip
    assert splits.train.images.shape[1:] == (3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.mean == channel_stats(splits.train.images)[0] and len(splits.std) == 3
    assert len(splits.test) == pytest.approx(0.15 * 3000, abs=8)
    assert len(splits.val) == pytest.approx(0.1 * 3000, abs=8)
    image, target = splits.train[0]
    assert image.dtype == torch.float32 and 0 <= target < 8


def test_dataset_deterministic_per_seed():
    a = S.shapes(_cfg(num_samples=160, seed=4))
    b = S.shapes(_cfg(num_samples=160, seed=4))
    c = S.shapes(_cfg(num_samples=160, seed=5))
    for split in ("train", "val", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert x.images.numpy().tobytes() == y.images.numpy().tobytes()
        assert torch.equal(x.targets, y.targets)
    assert a.train.images.numpy().tobytes() != c.train.images.numpy().tobytes()


def test_splits_are_class_balanced():
    splits = S.shapes(_cfg(num_samples=1200, num_classes=12, size=24, val_fraction=0.15, seed=1))
    for split, fraction in ((splits.train, 0.7), (splits.val, 0.15), (splits.test, 0.15)):
        counts = np.bincount(split.targets.numpy(), minlength=12)
        assert counts.max() - counts.min() <= 1
        assert counts.sum() == pytest.approx(fraction * 1200, abs=12)


@pytest.mark.parametrize("overrides", [dict(num_classes=13), dict(num_classes=1), dict(size=8),
                                       dict(num_samples=3, num_classes=4)])
def test_bad_config_is_config_error(overrides):
    with pytest.raises(ConfigError):
        S.shapes(_cfg(**overrides))


def test_example_grid_png(tmp_path):
    splits = S.shapes(_cfg(num_samples=64, seed=2))
    scenes = S.shape_scenes(8, image_size=32, seed=2)
    scene_images = torch.from_numpy(np.stack([s.image for s in scenes]))
    semantic = torch.from_numpy(np.stack([s.semantic for s in scenes])).float().div(8)  # (8, H, W) in [0, 1]
    grid = torch.cat([splits.train.images[:16], scene_images, semantic[:, None].mul(255).byte().expand(-1, 3, -1, -1)])
    path = tmp_path / "shapes_grid.png"
    save_image(grid.float().div(255), path, nrow=8)
    assert path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.size[0] > 8 * 32 and np.asarray(im).std() > 10
