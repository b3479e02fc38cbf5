"""The array work behind `cocoeval`: pair IoUs, greedy matching of every image-category group at once,
and accumulation into precision and recall tables with pycocotools' exact rules.

Instances arrive sorted by group (`category * n_images + image`, so one category's groups are contiguous
and in image order); detections inside a group by descending score (stable, so file order breaks ties),
already cut to the largest `maxDets`. pycocotools walks image x category x area range x IoU threshold x
detection x ground truth in Python; here the detection rank is the only loop, and each step advances
every group, area range and threshold together (`match_groups`).
"""

from __future__ import annotations

import numpy as np
import torch

# np.linspace as pycocotools builds them: np.arange would overshoot 0.95 and miss 0.75 by an ulp
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = ((0.0, 1e5 ** 2), (0.0, 32.0 ** 2), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")


def ragged_arange(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs of lengths `counts`: (owner run of each element, its position inside the run)."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) - starts[owner]


def group_pairs(d_start: np.ndarray, d_count: np.ndarray, g_start: np.ndarray,
                g_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(detection index, ground-truth index) of every pair inside each group, group by group, detection-major.

    Args:
        d_start, d_count: first detection and number of detections of each group, (N,) each.
        g_start, g_count: the same for ground truth.
    """
    owner, k = ragged_arange(d_count * g_count)
    per_row = g_count[owner]
    return d_start[owner] + k // per_row, g_start[owner] + k % per_row


def bbox_iou_pairs(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of boxes paired row by row, with the arithmetic of pycocotools' `bbIou` (so equal to the bit).

    Args:
        d, g: (P, 4) float64 boxes (x, y, w, h); crowd: (P,) bool, where the union is the detection's area
            alone (a crowd region covers many objects, so only the detection's own area counts).

    Returns:
        (P,) float64; 0 where the boxes do not overlap.
    """
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    d_area, g_area = d[:, 2] * d[:, 3], g[:, 2] * g[:, 3]
    union = np.where(crowd, d_area, d_area + g_area - inter)
    overlap = (w > 0) & (h > 0)
    iou = np.zeros(len(d))
    iou[overlap] = inter[overlap] / union[overlap]
    return iou


def _match_bucket(iou: np.ndarray, ignore: np.ndarray, crowd: np.ndarray, counts: np.ndarray,
                  thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of n groups padded to the same width, all area ranges and thresholds at once.

    pycocotools' rule for a detection (in score order): among the ground truth still free (a crowd region
    is never used up), the best IoU >= threshold on a regular one wins (the last of equal IoUs); only when no
    regular one qualifies may an ignored one (crowd, or outside the area range) take it.

    Args:
        iou: (n, Dmax, Gb), -1 where padded; ignore: (n, A, Gb); crowd: (n, Gb);
        counts: (n,) detections per group, descending; thresholds: (T,).

    Returns:
        (hit, hit_ignored): (n, Dmax, A, T) bool each: matched, and matched to an ignored ground truth.
    """
    n, dmax, width = iou.shape
    areas, steps = ignore.shape[1], len(thresholds)
    matched = np.zeros((n, areas, steps, width), dtype=bool)
    hit = np.zeros((n, dmax, areas, steps), dtype=bool)
    hit_ignored = np.zeros_like(hit)
    active = np.searchsorted(-counts, -np.arange(dmax), side="left")  # groups with more than r detections
    for r in range(dmax):
        m = int(active[r])
        row = iou[:m, r, None, None, :]  # (m, 1, 1, Gb)
        ok = (row >= thresholds[:, None]) & (~matched[:m] | crowd[:m, None, None, :])  # (m, A, T, Gb)
        regular = ok & ~ignore[:m, :, None, :]
        candidates = np.where(regular.any(-1, keepdims=True), regular, ok)
        best = width - 1 - np.where(candidates, row, -2.0)[..., ::-1].argmax(-1)  # (m, A, T): last maximum
        found = candidates.any(-1)
        gi, ai, ti = np.nonzero(found)
        matched[gi, ai, ti, best[gi, ai, ti]] = True
        hit[:m, r] = found
        hit_ignored[:m, r] = found & np.take_along_axis(ignore[:m, :, None, :], best[..., None], -1)[..., 0]
    return hit, hit_ignored


def match_groups(pair_iou: np.ndarray, d_start: np.ndarray, d_count: np.ndarray, g_start: np.ndarray,
                 g_count: np.ndarray, g_ignore: np.ndarray, g_crowd: np.ndarray, n_dt: int,
                 thresholds: np.ndarray = IOU_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Matches of every detection at every area range and IoU threshold.

    Groups are bucketed by their ground-truth count rounded up to a power of two, so a crowded image does
    not pad every other group to its width.

    Args:
        pair_iou: IoUs in `group_pairs` order; d_*/g_*: per-group starts and counts;
        g_ignore: (Ng, A) ground truth ignored per area range; g_crowd: (Ng,); n_dt: number of detections.

    Returns:
        (hit, hit_ignored): (n_dt, A, T) bool each.
    """
    areas, steps = g_ignore.shape[1], len(thresholds)
    hit = np.zeros((n_dt, areas, steps), dtype=bool)
    hit_ignored = np.zeros_like(hit)
    both = np.flatnonzero((d_count > 0) & (g_count > 0))
    if len(both) == 0:
        return hit, hit_ignored
    pair_start = np.cumsum(d_count * g_count) - d_count * g_count
    width_of = 1 << np.ceil(np.log2(g_count[both])).astype(np.int64)
    for width in np.unique(width_of):
        groups = both[width_of == width]
        groups = groups[np.argsort(-d_count[groups], kind="stable")]
        dc, gc = d_count[groups], g_count[groups]
        iou = np.full((len(groups), int(dc[0]), int(width)), -1.0)
        owner, k = ragged_arange(dc * gc)
        iou[owner, k // gc[owner], k % gc[owner]] = pair_iou[pair_start[groups][owner] + k]
        ignore = np.ones((len(groups), areas, int(width)), dtype=bool)
        crowd = np.zeros((len(groups), int(width)), dtype=bool)
        owner, col = ragged_arange(gc)
        ignore[owner, :, col] = g_ignore[g_start[groups][owner] + col]
        crowd[owner, col] = g_crowd[g_start[groups][owner] + col]
        bucket_hit, bucket_ignored = _match_bucket(iou, ignore, crowd, dc, thresholds)
        owner, row = ragged_arange(dc)
        hit[d_start[groups][owner] + row] = bucket_hit[owner, row]
        hit_ignored[d_start[groups][owner] + row] = bucket_ignored[owner, row]
    return hit, hit_ignored


def accumulate(d_category: np.ndarray, d_score: np.ndarray, d_rank: np.ndarray, d_ignore: np.ndarray,
               hit: np.ndarray, n_positive: np.ndarray, max_dets: tuple[int, ...],
               recall_thresholds: np.ndarray = RECALL_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R, K, A, M) and recall (T, K, A, M) tables, -1 where a category has no ground truth
    that counts in an area range (pycocotools' `accumulate`).

    Truncation to `maxDets` keeps a truncated detection in the sequence with no true or false positive:
    it repeats its predecessor's recall and precision, which changes neither the interpolated precision
    at any recall threshold nor the final recall.

    Args:
        d_category: (D,) category index of each detection, grouped by category, images in order inside;
        d_score, d_rank (rank in its image-category group); d_ignore, hit: (D, A, T) bool;
        n_positive: (K, A) ground truth that counts; max_dets: the M detection limits.
    """
    steps, categories, areas = hit.shape[2], n_positive.shape[0], hit.shape[1]
    precision = -np.ones((steps, len(recall_thresholds), categories, areas, len(max_dets)))
    recall = -np.ones((steps, categories, areas, len(max_dets)))
    bounds = np.searchsorted(d_category, np.arange(categories + 1))
    thresholds = torch.from_numpy(recall_thresholds)
    for k in range(categories):
        counted = n_positive[k] > 0  # (A,)
        if not counted.any():
            continue
        lo, hi = bounds[k], bounds[k + 1]
        n = hi - lo
        if n == 0:
            precision[:, :, k, counted] = 0.0
            recall[:, k, counted] = 0.0
            continue
        order = lo + np.argsort(-d_score[lo:hi], kind="mergesort")  # pycocotools' tie order
        within = d_rank[order][None, :] < np.asarray(max_dets)[:, None]  # (M, n)
        kept = ~d_ignore[order].transpose(1, 2, 0)  # (A, T, n)
        found = hit[order].transpose(1, 2, 0)
        # integer cumsums (5x faster than into float64), exact, then float64 as pycocotools divides them
        tp = np.cumsum((found & kept)[:, None] & within[None, :, None], -1, dtype=np.int32).astype(np.float64)
        fp = np.cumsum((~found & kept)[:, None] & within[None, :, None], -1, dtype=np.int32).astype(np.float64)
        rc = tp / np.maximum(n_positive[k], 1)[:, None, None, None]
        pr = tp / (fp + tp + np.spacing(1))
        pr = np.maximum.accumulate(pr[..., ::-1], -1)[..., ::-1]  # precision made monotone from the right
        rows = torch.from_numpy(np.ascontiguousarray(rc))
        at = torch.searchsorted(rows, thresholds.expand(*rc.shape[:-1], -1).contiguous()).numpy()  # side left
        q = np.where(at < n, np.take_along_axis(pr, np.minimum(at, n - 1), -1), 0.0)  # (A, M, T, R)
        precision[:, :, k, counted] = q.transpose(2, 3, 0, 1)[:, :, counted]
        recall[:, k, counted] = rc[..., -1].transpose(2, 0, 1)[:, counted]
    return precision, recall
