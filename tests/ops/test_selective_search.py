"""Selective search against hand-built images, naive loops over pixels and regions, and torchvision's box_iou."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from zrenie.data.builtin.shapes import shape_scenes
from zrenie.errors import ConfigError, DataError, ShapeError
from zrenie.ops import selective_search
from zrenie.ops.selective_search import (
    COLOR_BINS, hierarchical_grouping, normalized_histograms, oriented_gradients, region_boxes, region_neighbours,
)

RECTS = [(4, 6, 20, 18), (30, 4, 44, 30), (10, 34, 40, 44)]  # (x1, y1, x2, y2) pixel edges


def _rectangles_image() -> torch.Tensor:
    """Three flat rectangles of far-apart colours on a flat grey 48x48 background: uint8 [3, H, W]."""
    image = np.full((48, 48, 3), 128, dtype=np.uint8)
    for (x1, y1, x2, y2), color in zip(RECTS, [(230, 20, 20), (20, 200, 30), (20, 30, 220)]):
        image[y1:y2, x1:x2] = color
    return torch.from_numpy(image).permute(2, 0, 1)


def _random_regions(seed: int = 0, shape: tuple[int, int] = (12, 14)) -> np.ndarray:
    """A label map of blocky 4-connected regions (3x3 blocks of 4 values) numbered 0..R-1."""
    from scipy.ndimage import label

    coarse = np.random.default_rng(seed).integers(0, 4, size=(-(-shape[0] // 3), -(-shape[1] // 3)))
    blocks = np.kron(coarse, np.ones((3, 3), dtype=np.int64))[:shape[0], :shape[1]]
    labels = np.zeros(blocks.shape, dtype=np.int64)
    for value in np.unique(blocks):  # each connected patch of one value is a region
        parts, _ = label(blocks == value)
        labels[parts > 0] = parts[parts > 0] + labels.max()
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def test_flat_rectangles_are_proposed_exactly():
    proposals = selective_search(_rectangles_image(), scale=50, min_size=10)
    listed = {tuple(b) for b in proposals.tolist()}
    for rect in RECTS:
        assert tuple(float(v) for v in rect) in listed
    assert (0.0, 0.0, 48.0, 48.0) in listed  # the last merge covers the image
    assert len(listed) == len(proposals)  # no duplicates
    again = selective_search(_rectangles_image(), scale=50, min_size=10)
    assert torch.equal(again, proposals)


def test_histograms_and_neighbours_match_naive_loops():
    labels = _random_regions()
    n = labels.max() + 1
    pixels = np.random.default_rng(1).random((*labels.shape, 3))
    hist = normalized_histograms(pixels, labels, n, COLOR_BINS)
    ref = np.zeros((n, 3 * COLOR_BINS))
    pairs = set()
    for i in range(labels.shape[0]):
        for j in range(labels.shape[1]):
            for c in range(3):
                ref[labels[i, j], c * COLOR_BINS + min(int(pixels[i, j, c] * COLOR_BINS), COLOR_BINS - 1)] += 1
            for di, dj in ((0, 1), (1, 0)):
                if i + di < labels.shape[0] and j + dj < labels.shape[1] and labels[i, j] != labels[i + di, j + dj]:
                    pairs.add(tuple(sorted((labels[i, j], labels[i + di, j + dj]))))
    np.testing.assert_allclose(hist, ref / ref.sum(axis=1, keepdims=True))
    assert region_neighbours(labels).tolist() == sorted(map(list, pairs))


def test_grouping_replays_a_naive_greedy_merge_from_the_pixels():
    labels = _random_regions(2, (21, 24))
    n = labels.max() + 1
    rng = np.random.default_rng(3)
    pixels = np.clip(rng.random((n, 3))[labels] + rng.normal(0, 0.08, (*labels.shape, 3)), 0, 1)  # (H, W, 3)
    gradients = oriented_gradients(pixels)
    color = normalized_histograms(pixels, labels, n, COLOR_BINS)
    texture = normalized_histograms(gradients, labels, n, 10)
    boxes, merges = hierarchical_grouping(labels, color, texture, "ctsf", return_merges=True)
    assert n >= 20 and len(boxes) == 2 * n - 1 and boxes[-1].tolist() == [0, 0, 24, 21]
    members = [labels == r for r in range(n)]  # bool [H, W] pixels of every region, merged ones appended
    for i, j in merges.tolist():
        members.append(members[i] | members[j])

    def features(r: int) -> tuple[np.ndarray, np.ndarray, list[int]]:  # from the region's own pixels
        inside = members[r].astype(np.int64)
        rows, cols = np.nonzero(members[r])
        return (normalized_histograms(pixels, inside, 2, COLOR_BINS)[1],
                normalized_histograms(gradients, inside, 2, 10)[1],
                [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])

    cache = [features(r) for r in range(2 * n - 1)]
    assert boxes.tolist() == [c[2] for c in cache]

    def similarity(a: int, b: int) -> float:  # the paper's four measures, written out
        (ca, ta, box_a), (cb, tb, box_b) = cache[a], cache[b]
        size = members[a].sum() + members[b].sum()
        width = max(box_a[2], box_b[2]) - min(box_a[0], box_b[0])
        joint = width * (max(box_a[3], box_b[3]) - min(box_a[1], box_b[1]))
        return (sum(min(x, y) for x, y in zip(ca, cb)) + sum(min(x, y) for x, y in zip(ta, tb))
                + 1 - size / labels.size + 1 - (joint - size) / labels.size)

    adjacent = {tuple(p) for p in region_neighbours(labels).tolist()}
    for t, (i, j) in enumerate(merges.tolist(), start=n):
        sims = {pair: similarity(*pair) for pair in adjacent}
        assert {i, j} == set(max(sims, key=sims.get)), f"merge {t - n}"
        renamed = {tuple(sorted(t if r in (i, j) else r for r in pair)) for pair in adjacent}
        adjacent = {pair for pair in renamed if pair[0] != pair[1]}
    assert not adjacent


def test_oriented_gradients_of_a_ramp_follow_the_cosine():
    rows, cols = np.indices((21, 21))
    ramp = (0.02 * cols + 0.01 * rows)[..., None]  # gradient (gx, gy) = (0.02, 0.01)
    out = oriented_gradients(ramp)[10, 10]  # centre: away from the borders
    theta = 2 * np.pi * np.arange(8) / 8
    expected = np.maximum(0.02 * np.cos(theta) + 0.01 * np.sin(theta), 0)
    np.testing.assert_allclose(out, expected / expected.max(), atol=1e-6)
    labels = _random_regions()
    np.testing.assert_array_equal(region_boxes(labels, labels.max() + 1)[labels[0, 0]][:2], [0, 0])


def test_recall_on_a_shapes_scene_is_high():
    scenes = shape_scenes(3, image_size=64, seed=11)
    best = torch.cat([tv_box_iou(torch.from_numpy(s.boxes), selective_search(torch.from_numpy(s.image))).amax(1)
                      for s in scenes])
    assert (best >= 0.5).float().mean() >= 0.9, best


def test_bad_input_is_one_line():
    with pytest.raises(ShapeError, match="C, H, W"):
        selective_search(torch.zeros(2, 8, 8))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        selective_search(torch.full((3, 8, 8), 2.0))
    with pytest.raises(ConfigError, match="strategy"):
        selective_search(torch.zeros(3, 8, 8), strategies=("cx",))


def test_recall_is_close_to_opencv_ximgproc_when_installed():
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("opencv-contrib's ximgproc is not installed")
    scenes = shape_scenes(3, image_size=64, seed=12)
    ours, theirs = [], []
    for scene in scenes:
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(np.ascontiguousarray(scene.image.transpose(1, 2, 0)[..., ::-1]))
        search.switchToSelectiveSearchFast()
        xywh = torch.as_tensor(search.process(), dtype=torch.float32).reshape(-1, 4)
        cv_boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        truth = torch.from_numpy(scene.boxes)
        ours.append(tv_box_iou(truth, selective_search(torch.from_numpy(scene.image))).amax(1))
        theirs.append(tv_box_iou(truth, cv_boxes).amax(1))
    assert (torch.cat(ours) >= 0.5).float().mean() >= (torch.cat(theirs) >= 0.5).float().mean() - 0.1
