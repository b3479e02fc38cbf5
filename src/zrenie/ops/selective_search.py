"""Selective search region proposals (Uijlings et al., "Selective Search for Object Recognition", IJCV 2013).

An image is over-segmented by Felzenszwalb and Huttenlocher's graph method (`skimage.segmentation.felzenszwalb`);
then, for each grouping strategy, the most similar pair of neighbouring regions is merged again and again until
one region covers the image. Every region met on the way, the initial ones included, is a proposal: objects of
every size appear at some level of the hierarchy. Similarity sums any of four measures, each in [0, 1]:

    c  colour: intersection of 25-bin per-channel histograms, L1-normalised (75 bins for RGB)
    t  texture: intersection of 10-bin histograms of Gaussian derivatives (sigma 1) in 8 orientations per
       channel, L1-normalised (240 bins for RGB)
    s  size: 1 - (size_i + size_j) / image size, so small regions merge first and the hierarchy stays balanced
    f  fill: 1 - (box_ij - size_i - size_j) / image size, how well two regions fill their joint box

Histograms of a merged region are the size-weighted mean of its parts', as in the paper, so no pixel is
revisited. Diversity comes from several `scale`s (the Felzenszwalb `k`) and several `strategies`.

Ranking follows the paper: within one hierarchy the region that covers the image has position 1, the one
merged before it 2, and so on down to the initial regions; each position is multiplied by a random number in
[0, 1], all hierarchies' boxes are sorted by that value, and lower-ranked duplicate boxes are dropped.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from zrenie.errors import ConfigError, DataError, ShapeError

COLOR_BINS = 25
TEXTURE_BINS = 10
ORIENTATIONS = 8
TEXTURE_SIGMA = 1.0
MEASURES = "ctsf"
DEFAULT_STRATEGIES = ("ctsf", "tsf")  # the paper's "fast" mode combines these two


def selective_search(image: Tensor, scale: float | Sequence[float] = (100.0, 300.0), sigma: float = 0.8,
                     min_size: int = 20, strategies: Sequence[str] = DEFAULT_STRATEGIES, seed: int = 0) -> Tensor:
    """Ranked, de-duplicated region proposals of one image.

    Args:
        image: Tensor[C, H, W], C 1 or 3, float in [0, 1] or uint8.
        scale: Felzenszwalb's `scale` (k): larger gives larger initial regions; a sequence runs one
            segmentation per value, as the paper diversifies k.
        sigma: width of the Gaussian that smooths the image before segmentation.
        min_size: smallest initial region, in pixels.
        strategies: similarity measures summed by each grouping, each a string of the letters c (colour),
            t (texture), s (size), f (fill), e.g. ("ctsf", "tsf"); each runs its own hierarchy.
        seed: seeds the randomised ranking.

    Returns:
        boxes: Tensor[N, 4] float32 (x1, y1, x2, y2) in pixel edges, best ranked first.
    """
    from skimage.segmentation import felzenszwalb  # imported on use: zrenie.ops stays light

    pixels = _as_hwc(image)  # (H, W, C) float64 in [0, 1]
    strategies = _check_strategies(strategies)
    scales = [float(scale)] if np.isscalar(scale) else [float(s) for s in scale]
    if not scales or min(scales) <= 0:
        raise ConfigError(f"selective_search: scale must be positive (one value or several), got {scale!r}")
    gradients = oriented_gradients(pixels)  # (H, W, C * 8), computed once for every segmentation
    rng = np.random.default_rng(seed)
    boxes, ranks = [], []
    for k in scales:
        labels = felzenszwalb(pixels, scale=k, sigma=sigma, min_size=int(min_size), channel_axis=-1)
        labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)  # 0..R-1
        n = int(labels.max()) + 1
        color = normalized_histograms(pixels, labels, n, COLOR_BINS)
        texture = normalized_histograms(gradients, labels, n, TEXTURE_BINS)
        for strategy in strategies:
            hierarchy = hierarchical_grouping(labels, color, texture, strategy)  # (2R - 1, 4), creation order
            position = np.arange(len(hierarchy), 0, -1)  # the last region created (the whole image) is 1
            boxes.append(hierarchy)
            ranks.append(position * rng.random(len(hierarchy)))
    all_boxes, all_ranks = np.concatenate(boxes), np.concatenate(ranks)
    ordered = all_boxes[np.argsort(all_ranks, kind="stable")]
    _, first = np.unique(ordered, axis=0, return_index=True)  # keep each box at its best rank
    return torch.from_numpy(ordered[np.sort(first)]).float()


def _as_hwc(image: Tensor) -> np.ndarray:
    """Tensor[C, H, W] -> float64 [H, W, C] in [0, 1], or a one-line error."""
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3) or min(image.shape[1:]) < 2:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ShapeError(f"selective_search: image must be a tensor (C, H, W) with C 1 or 3 and H, W >= 2, "
                         f"got {shape}")
    pixels = image.detach().cpu().permute(1, 2, 0).double().numpy()
    if image.dtype == torch.uint8:
        return pixels / 255.0
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise DataError(f"selective_search: a float image must lie in [0, 1], got values in "
                        f"[{np.nanmin(pixels):.3g}, {np.nanmax(pixels):.3g}]")
    return pixels


def _check_strategies(strategies: Sequence[str]) -> list[str]:
    if isinstance(strategies, str):
        strategies = [strategies]
    out = [str(s).lower() for s in strategies]
    bad = [s for s in out if not s or set(s) - set(MEASURES)]
    if not out or bad:
        raise ConfigError(f"selective_search: each strategy is letters of {MEASURES!r} (colour, texture, size, "
                          f"fill), e.g. ctsf; got {list(strategies)!r}")
    return out


def oriented_gradients(pixels: np.ndarray) -> np.ndarray:
    """Half-wave rectified Gaussian derivatives (sigma 1) in `ORIENTATIONS` directions per channel.

    Orientation k points at angle 2 pi k / 8; the derivative along the opposite direction is the negative, so
    keeping the positive part makes the eight responses distinct. Scaled by the largest response so that the
    texture bins span [0, 1] on every image.

    Args:
        pixels: float [H, W, C].

    Returns:
        responses: float [H, W, C * 8] in [0, 1], channel-major (channel c, orientation k at c * 8 + k).
    """
    from scipy.ndimage import gaussian_filter

    theta = 2 * np.pi * np.arange(ORIENTATIONS) / ORIENTATIONS
    out = []
    for c in range(pixels.shape[-1]):
        gy = gaussian_filter(pixels[..., c], TEXTURE_SIGMA, order=(1, 0))  # d/d row
        gx = gaussian_filter(pixels[..., c], TEXTURE_SIGMA, order=(0, 1))  # d/d column
        out.append(np.maximum(gx[..., None] * np.cos(theta) + gy[..., None] * np.sin(theta), 0.0))  # (H, W, 8)
    responses = np.concatenate(out, axis=-1)
    top = responses.max()
    return responses / top if top > 0 else responses


def normalized_histograms(features: np.ndarray, labels: np.ndarray, num_regions: int, bins: int) -> np.ndarray:
    """Per-region histograms of every feature channel, concatenated and L1-normalised.

    Args:
        features: float [H, W, F] in [0, 1]; a value v falls in bin min(floor(v * bins), bins - 1).
        labels: int [H, W] region index in [0, num_regions).
        num_regions: R.
        bins: bins per feature channel.

    Returns:
        histograms: float [R, F * bins], each row summing to 1 (F * bins zeros for an empty region).
    """
    num_features = features.shape[-1]
    binned = np.minimum((features * bins).astype(np.int64), bins - 1)  # (H, W, F)
    index = (labels[..., None] * num_features + np.arange(num_features)) * bins + binned  # (H, W, F)
    counts = np.bincount(index.ravel(), minlength=num_regions * num_features * bins)
    hist = counts.reshape(num_regions, num_features * bins).astype(np.float64)
    return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def region_neighbours(labels: np.ndarray) -> np.ndarray:
    """Pairs of regions that share an edge (4-connectivity) in a label map [H, W].

    Returns:
        pairs: int64 [P, 2] with pairs[:, 0] < pairs[:, 1], sorted, each pair once.
    """
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    differ = a != b
    lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
    n = int(labels.max()) + 1
    keys = np.unique(lo.astype(np.int64) * n + hi)
    return np.stack([keys // n, keys % n], axis=1)


def region_boxes(labels: np.ndarray, num_regions: int) -> np.ndarray:
    """float [R, 4] (x1, y1, x2, y2) tight boxes in pixel edges of each region of a label map [H, W]."""
    rows, cols = np.indices(labels.shape)
    flat = labels.ravel()
    boxes = np.empty((num_regions, 4))
    boxes[:, :2] = np.inf
    boxes[:, 2:] = -np.inf
    np.minimum.at(boxes[:, 0], flat, cols.ravel())
    np.minimum.at(boxes[:, 1], flat, rows.ravel())
    np.maximum.at(boxes[:, 2], flat, cols.ravel() + 1)
    np.maximum.at(boxes[:, 3], flat, rows.ravel() + 1)
    return boxes


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise sum of element-wise minima of float [N, D] histograms: 1 for equal L1-normalised rows."""
    return np.minimum(a, b).sum(axis=1)


class _Regions:
    """The growing table of regions of one hierarchy: initial ones first, then one row per merge."""

    def __init__(self, labels: np.ndarray, color: np.ndarray, texture: np.ndarray):
        n = len(color)
        total = 2 * n - 1
        self.image_size = float(labels.size)
        self.size = np.zeros(total)
        self.size[:n] = np.bincount(labels.ravel(), minlength=n)
        self.box = np.zeros((total, 4))
        self.box[:n] = region_boxes(labels, n)
        self.color = np.zeros((total, color.shape[1]))
        self.color[:n] = color
        self.texture = np.zeros((total, texture.shape[1]))
        self.texture[:n] = texture

    def similarity(self, i: np.ndarray | int, j: np.ndarray, measures: str) -> np.ndarray:
        """The summed measures between region(s) i and regions j [M]: float [M]."""
        i = np.broadcast_to(i, np.shape(j))
        total = np.zeros(len(j))
        if "c" in measures:
            total += histogram_intersection(self.color[i], self.color[j])
        if "t" in measures:
            total += histogram_intersection(self.texture[i], self.texture[j])
        if "s" in measures:
            total += 1.0 - (self.size[i] + self.size[j]) / self.image_size
        if "f" in measures:
            lo = np.minimum(self.box[i, :2], self.box[j, :2])
            hi = np.maximum(self.box[i, 2:], self.box[j, 2:])
            joint = np.prod(hi - lo, axis=1)
            total += 1.0 - (joint - self.size[i] - self.size[j]) / self.image_size
        return total

    def merge(self, i: int, j: int, t: int) -> None:
        """Writes the union of regions i and j as region t."""
        si, sj = self.size[i], self.size[j]
        self.size[t] = si + sj
        self.box[t, :2] = np.minimum(self.box[i, :2], self.box[j, :2])
        self.box[t, 2:] = np.maximum(self.box[i, 2:], self.box[j, 2:])
        self.color[t] = (si * self.color[i] + sj * self.color[j]) / (si + sj)
        self.texture[t] = (si * self.texture[i] + sj * self.texture[j]) / (si + sj)


def hierarchical_grouping(labels: np.ndarray, color: np.ndarray, texture: np.ndarray, measures: str = "ctsf",
                          return_merges: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Merges the most similar neighbouring pair until one region is left.

    Args:
        labels: int [H, W] initial regions 0..R-1, every index present.
        color: float [R, Dc] colour histograms of the initial regions (`normalized_histograms`).
        texture: float [R, Dt] texture histograms.
        measures: letters of "ctsf" summed into the similarity.
        return_merges: also return which two regions formed each merged one.

    Returns:
        boxes: float [2R - 1, 4] (x1, y1, x2, y2) of every region in creation order: the R initial regions,
            then merged region R + m of merge m; the last one covers the image when the regions are connected.
        merges: int64 [R - 1, 2] the regions merged into region R + m (only with `return_merges`).
    """
    regions = _Regions(labels, color, texture)
    n = len(color)
    pairs = region_neighbours(labels)
    neighbours: dict[int, set[int]] = {r: set() for r in range(n)}
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    sims = regions.similarity(pairs[:, 0], pairs[:, 1], measures) if len(pairs) else np.zeros(0)
    # A max-heap of (-similarity, i, j); entries of merged regions go stale and are skipped when popped.
    heap = [(-s, a, b) for s, (a, b) in zip(sims.tolist(), pairs.tolist())]
    heapq.heapify(heap)
    alive = np.zeros(2 * n - 1, dtype=bool)
    alive[:n] = True
    merges = []
    t = n
    while heap:
        _, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue
        regions.merge(i, j, t)
        alive[[i, j]], alive[t] = False, True
        around = (neighbours.pop(i) | neighbours.pop(j)) - {i, j}
        for r in around:
            neighbours[r] -= {i, j}
            neighbours[r].add(t)
        neighbours[t] = around
        if around:
            others = np.fromiter(around, dtype=np.int64, count=len(around))
            for s, r in zip(regions.similarity(t, others, measures).tolist(), others.tolist()):
                heapq.heappush(heap, (-s, r, t))
        merges.append((i, j))
        t += 1
    boxes = regions.box[:t]  # t < 2R - 1 only when the regions are not all connected
    return (boxes, np.asarray(merges, dtype=np.int64).reshape(-1, 2)) if return_merges else boxes
