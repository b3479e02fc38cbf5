"""COCO-style evaluation of detections (boxes or masks) and Pascal VOC AP, in numpy, equal to pycocotools.

`evaluate_coco(gt, dt)` takes a COCO instances dict and a COCO results list and gives pycocotools'
twelve summary numbers (`COCOeval` evaluate + accumulate + summarize) and the AP of each category,
with pycocotools' rules: crowd regions match any number of detections and count nowhere, ground truth
outside an area range is ignored there, so is an unmatched detection outside it, at most `maxDets`
detections per image and category, 101-point interpolated precision. Where pycocotools loops over
images x categories x area ranges in Python, the matching here advances every group at once
(`cocoeval_match`), which is what makes it several times faster.

Decisions where the COCO format leaves room (pycocotools would crash or ignore silently):
- an annotation without `iscrowd` is not a crowd; one without `area` gets its box's (or mask's) area;
- an annotation or result naming an image or category absent from the ground truth is a `DataError`;
- for segm results, a detection's area is its box's when the first result has a `bbox` (pycocotools'
  `loadRes` rule), otherwise its mask's.

`evaluate_voc` is the VOC devkit's AP (each detection claims the ground truth it overlaps most; a second
claim is a false positive; "difficult" boxes, here COCO crowd, count neither way), with three choices
stated: continuous IoU (no +1 pixel), a match at IoU >= the threshold, and the 11 recall points at exactly
k / 10 (the common `np.arange(0, 1.1, 0.1)` makes 0.3 into 0.30000000000000004).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from zrenie.config import atomic_path
from zrenie.errors import DataError
from zrenie.tasks import Verb
from zrenie.tasks.detect.cocoeval_match import (AREA_LABELS, AREA_RANGES, IOU_THRESHOLDS, accumulate,
                                                bbox_iou_pairs, group_pairs, match_groups)

IOU_TYPES = ("bbox", "segm")
STAT_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")
MAX_DETS = (1, 10, 100)


@dataclass
class CocoSummary:
    """What `evaluate_coco` found.

    Attributes:
        stats: the 12 numbers in pycocotools' order (`STAT_NAMES`), -1 where no ground truth counts.
        per_class: category name -> AP@[.50:.95] (all areas, 100 detections), -1 without ground truth.
        precision: (T, R, K, A, M) and recall: (T, K, A, M), pycocotools' `eval` tables.
    """

    stats: list[float]
    per_class: dict[str, float]
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    max_dets: tuple[int, ...] = MAX_DETS

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STAT_NAMES, self.stats))

    def lines(self) -> list[str]:
        """The 12 lines pycocotools' `summarize` prints."""
        return summary_lines(self.stats, self.max_dets)


@dataclass
class _Instances:
    """One side (ground truth or detections) as arrays; `image` and `category` are indices, not ids."""

    image: np.ndarray
    category: np.ndarray
    box: np.ndarray  # (n, 4) x, y, w, h
    area: np.ndarray
    crowd: np.ndarray
    score: np.ndarray
    rle: list | None = None


@dataclass
class _Parsed:
    image_ids: np.ndarray
    category_ids: np.ndarray
    names: list[str]
    gt: _Instances
    dt: _Instances


def _column(entries: list, key: str, where: str, what: str, default: Any = KeyError) -> list:
    """`[e[key] for e in entries]`, a one-line DataError naming the first entry without it."""
    try:
        if default is KeyError:
            return [e[key] for e in entries]
        return [e.get(key, default) for e in entries]
    except (KeyError, TypeError, AttributeError):
        i = next((i for i, e in enumerate(entries) if not isinstance(e, dict) or key not in e), None)
        raise DataError(f"{where}: {what} {i} has no {key!r}" if i is not None else
                        f"{where}: every {what} must be a JSON object with {key!r}") from None


def _index_of(values: list, ids: np.ndarray, where: str, what: str) -> np.ndarray:
    """Position of each id in `ids`; a DataError naming the first id that is not there."""
    position = {v: i for i, v in enumerate(ids.tolist())}
    try:
        at = np.fromiter((position.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    except TypeError:  # an unhashable id (a list, a dict) is never a ground-truth id
        at = np.array([position.get(v, -1) if not isinstance(v, (list, dict)) else -1 for v in values],
                      dtype=np.int64)
    if (at < 0).any():
        i = int(np.flatnonzero(at < 0)[0])
        raise DataError(f"{where}: {what} {i} names {values[i]!r}, which is not in the ground truth")
    return at


def _boxes(entries: list, where: str, what: str) -> np.ndarray:
    raw = _column(entries, "bbox", where, what)
    if not raw:
        return np.zeros((0, 4))
    try:
        boxes = np.asarray(raw, dtype=np.float64)
        if boxes.shape != (len(raw), 4):
            raise ValueError
    except (TypeError, ValueError):
        i = next((i for i, b in enumerate(raw) if not (isinstance(b, (list, tuple)) and len(b) == 4
                                                       and all(isinstance(v, (int, float)) for v in b))), 0)
        raise DataError(f"{where}: {what} {i} has bbox {raw[i]!r}; expected [x, y, width, height]") from None
    return boxes.reshape(-1, 4)


def _to_rle(segm: Any, height: int, width: int, where: str) -> dict:
    """A compressed RLE from polygons, an uncompressed RLE or a compressed one (pycocotools' annToRLE)."""
    from pycocotools import mask as mask_utils

    try:
        if isinstance(segm, list):
            return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, height, width)
        return segm
    except (TypeError, KeyError, ValueError, IndexError) as err:
        raise DataError(f"{where}: segmentation is neither polygons nor RLE ({err})") from None


def _masks(entries: list, images: np.ndarray, sizes: list, where: str, what: str) -> list:
    segms = _column(entries, "segmentation", where, what)
    return [_to_rle(s, *sizes[i], f"{where}: {what} {n}") for n, (s, i) in enumerate(zip(segms, images))]


def _parse_gt(gt: dict, iou_type: str, where: str) -> tuple[np.ndarray, np.ndarray, list[str], _Instances, list]:
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations",
                                                                                   "categories")):
        raise DataError(f"{where}: not a COCO instances file (needs lists 'images', 'annotations', 'categories')")
    image_ids = np.unique(np.asarray(_column(gt["images"], "id", where, "image")))
    category_ids, first = np.unique(np.asarray(_column(gt["categories"], "id", where, "category")),
                                    return_index=True)
    names = _column(gt["categories"], "name", where, "category", default=None)
    names = [str(i) if names[j] is None else str(names[j]) for i, j in zip(category_ids.tolist(), first)]
    sizes: list = []
    if iou_type == "segm":
        by_id = {im["id"]: (im.get("height"), im.get("width")) for im in gt["images"]}
        sizes = [by_id[i] for i in image_ids.tolist()]
        if any(h is None or w is None for h, w in sizes):
            raise DataError(f"{where}: segm evaluation needs 'height' and 'width' of every image")
    anns = gt["annotations"]
    image = _index_of(_column(anns, "image_id", where, "annotation"), image_ids, where, "annotation")
    category = _index_of(_column(anns, "category_id", where, "annotation"), category_ids, where, "annotation")
    crowd = np.asarray(_column(anns, "iscrowd", where, "annotation", default=0), dtype=bool).reshape(-1)
    rle = _masks(anns, image, sizes, where, "annotation") if iou_type == "segm" else None
    box = _boxes(anns, where, "annotation") if iou_type == "bbox" else _rle_boxes(rle)
    area = [a if a is not None else np.nan for a in _column(anns, "area", where, "annotation", default=None)]
    area = np.asarray(area, dtype=np.float64).reshape(-1)
    if np.isnan(area).any():  # no "area": the box's, or the mask's
        own = box[:, 2] * box[:, 3] if rle is None else _rle_areas(rle)
        area = np.where(np.isnan(area), own, area)
    return image_ids, category_ids, names, _Instances(image, category, box, area, crowd, np.zeros(len(anns)),
                                                      rle), sizes


def _rle_areas(rle: list) -> np.ndarray:
    from pycocotools import mask as mask_utils

    # in chunks: pycocotools' area() sizes its output from a uint8 under numpy 2, so 256 masks overflow
    parts = [mask_utils.area(rle[i:i + 200]) for i in range(0, len(rle), 200)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _rle_boxes(rle: list) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return np.asarray(mask_utils.toBbox(rle), dtype=np.float64).reshape(-1, 4) if rle else np.zeros((0, 4))


def parse_coco(gt: dict, dt: list, iou_type: str = "bbox", gt_name: str = "ground truth",
               dt_name: str = "detections") -> _Parsed:
    """Both sides as arrays, with one-line DataErrors naming `gt_name` / `dt_name` and the entry at fault."""
    if iou_type not in IOU_TYPES:
        raise DataError(f"iou_type {iou_type!r}: expected one of {', '.join(IOU_TYPES)}")
    image_ids, category_ids, names, truth, sizes = _parse_gt(gt, iou_type, gt_name)
    if not isinstance(dt, list):
        raise DataError(f"{dt_name}: not a COCO results list (a JSON array of detections)")
    image = _index_of(_column(dt, "image_id", dt_name, "result"), image_ids, dt_name, "result")
    category = _index_of(_column(dt, "category_id", dt_name, "result"), category_ids, dt_name, "result")
    try:
        score = np.asarray(_column(dt, "score", dt_name, "result"), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{dt_name}: a score is not a number") from None
    if iou_type == "bbox":
        box = _boxes(dt, dt_name, "result")
        rle, area = None, box[:, 2] * box[:, 3]
    else:
        rle = _masks(dt, image, sizes, dt_name, "result")
        from_box = bool(dt) and bool(dt[0].get("bbox"))  # pycocotools' loadRes decides by the first result
        box = _boxes(dt, dt_name, "result") if from_box else _rle_boxes(rle)
        area = box[:, 2] * box[:, 3] if from_box else _rle_areas(rle)
    found = _Instances(image, category, box, area, np.zeros(len(dt), dtype=bool), score, rle)
    return _Parsed(image_ids, category_ids, names, truth, found)


def _groups(side: _Instances, n_images: int, n_groups: int, by_score: bool):
    """Order of the instances by group (and score), each one's rank in its group, group starts and counts."""
    group = side.category * n_images + side.image
    order = np.lexsort((-side.score, group)) if by_score else np.argsort(group, kind="stable")
    count = np.bincount(group[order], minlength=n_groups)
    start = np.cumsum(count) - count
    return order, np.arange(len(order)) - start[group[order]], start, count


def _pair_ious(parsed: _Parsed, d_order, g_order, d_start, d_count, g_start, g_count, iou_type: str,
               crowd_rule: bool = True) -> np.ndarray:
    """IoU of every detection-truth pair of each group in `group_pairs` order (crowd IoU where `crowd_rule`)."""
    dt, gt = parsed.dt, parsed.gt
    di, gi = group_pairs(d_start, d_count, g_start, g_count)
    crowd = gt.crowd[g_order][gi] & crowd_rule
    if iou_type == "bbox":
        return bbox_iou_pairs(dt.box[d_order][di], gt.box[g_order][gi], crowd)
    from pycocotools import mask as mask_utils

    parts = []
    for g in np.flatnonzero(d_count * g_count):
        d_rle = [dt.rle[i] for i in d_order[d_start[g]:d_start[g] + d_count[g]]]
        g_idx = g_order[g_start[g]:g_start[g] + g_count[g]]
        flags = [int(gt.crowd[i] and crowd_rule) for i in g_idx]
        parts.append(np.asarray(mask_utils.iou(d_rle, [gt.rle[i] for i in g_idx], flags)).reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0)


def _outside(area: np.ndarray) -> np.ndarray:
    """(n, A) bool: area outside each of the `AREA_RANGES` (their bounds are inside)."""
    lo, hi = np.asarray(AREA_RANGES).T
    return (area[:, None] < lo) | (area[:, None] > hi)


def coco_tables(parsed: _Parsed, iou_type: str = "bbox",
                max_dets: Sequence[int] = MAX_DETS) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' precision (T, R, K, A, M) and recall (T, K, A, M) of parsed ground truth and detections."""
    max_dets = tuple(sorted(max_dets))
    n_img, n_cat = len(parsed.image_ids), len(parsed.category_ids)
    n_groups = n_img * n_cat
    gt, dt = parsed.gt, parsed.dt
    g_order, _, g_start, g_count = _groups(gt, n_img, n_groups, by_score=False)
    d_order, rank, _, _ = _groups(dt, n_img, n_groups, by_score=True)
    keep = rank < max_dets[-1]
    d_order, rank = d_order[keep], rank[keep]
    d_count = np.bincount((dt.category * n_img + dt.image)[d_order], minlength=n_groups)
    d_start = np.cumsum(d_count) - d_count
    ious = _pair_ious(parsed, d_order, g_order, d_start, d_count, g_start, g_count, iou_type)
    g_crowd = gt.crowd[g_order]
    g_ignore = g_crowd[:, None] | _outside(gt.area[g_order])  # (Ng, A)
    hit, hit_ignored = match_groups(ious, d_start, d_count, g_start, g_count, g_ignore, g_crowd, len(d_order))
    d_ignore = np.where(hit, hit_ignored, _outside(dt.area[d_order])[:, :, None])  # (Nd, A, T)
    n_positive = np.stack([np.bincount(gt.category[g_order][~g_ignore[:, a]], minlength=n_cat)
                           for a in range(len(AREA_RANGES))], 1)  # (K, A)
    return accumulate(dt.category[d_order], dt.score[d_order], rank, d_ignore, hit, n_positive, max_dets)


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summary_stats(precision: np.ndarray, recall: np.ndarray, max_dets: Sequence[int] = MAX_DETS) -> list[float]:
    """The 12 numbers of pycocotools' `summarize` from its tables (its selection rules, -1 rule included)."""
    max_dets = list(max_dets)

    def pick(ap: bool, iou: float | None = None, area: str = "all", dets: int = 100) -> float:
        a = [i for i, label in enumerate(AREA_LABELS) if label == area]
        m = [i for i, d in enumerate(max_dets) if d == dets]
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == IOU_THRESHOLDS)[0]]
        s = s[..., a, :][..., m]
        return _mean_valid(s)

    top = max_dets[2] if len(max_dets) > 2 else -1
    return [pick(True), pick(True, 0.5, dets=top), pick(True, 0.75, dets=top),
            *(pick(True, area=a, dets=top) for a in AREA_LABELS[1:]),
            *(pick(False, dets=max_dets[i] if i < len(max_dets) else -1) for i in range(3)),
            *(pick(False, area=a, dets=top) for a in AREA_LABELS[1:])]


def summary_lines(stats: Sequence[float], max_dets: Sequence[int] = MAX_DETS) -> list[str]:
    """The 12 lines of pycocotools' `summarize`, in its format."""
    top = max_dets[2] if len(max_dets) > 2 else 100
    rows = [(1, None, "all", 100), (1, 0.5, "all", top), (1, 0.75, "all", top), (1, None, "small", top),
            (1, None, "medium", top), (1, None, "large", top), *((0, None, "all", d) for d in max_dets[:3]),
            (0, None, "small", top), (0, None, "medium", top), (0, None, "large", top)]
    out = []
    for value, (ap, iou, area, dets) in zip(stats, rows):
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        iou_text = f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
        out.append(f" {title:<18} {kind} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={dets:>3d} ] = {value:0.3f}")
    return out


def evaluate_coco(gt: dict, dt: list[dict], iou_type: str = "bbox", max_dets: Sequence[int] = MAX_DETS,
                  gt_name: str = "ground truth", dt_name: str = "detections") -> CocoSummary:
    """pycocotools' COCOeval (evaluate, accumulate, summarize) of COCO results against COCO ground truth.

    Args:
        gt: a COCO instances dict (`images`, `annotations`, `categories`).
        dt: a COCO results list: `{"image_id", "category_id", "score", "bbox": [x, y, w, h]}` each, or
            `"segmentation"` (RLE or polygons) for `iou_type="segm"`.
        iou_type: "bbox" or "segm".
        max_dets: detections per image kept for the recall columns (the largest also for AP).
        gt_name, dt_name: what error messages call the two inputs (their file names).
    """
    return _summary(parse_coco(gt, dt, iou_type, gt_name, dt_name), iou_type, max_dets)


def _summary(parsed: _Parsed, iou_type: str, max_dets: Sequence[int] = MAX_DETS) -> CocoSummary:
    max_dets = tuple(sorted(max_dets))
    precision, recall = coco_tables(parsed, iou_type, max_dets)
    per_class = {name: _mean_valid(precision[:, :, k, 0, -1]) for k, name in enumerate(parsed.names)}
    return CocoSummary(summary_stats(precision, recall, max_dets), per_class, precision, recall, max_dets)


def _boxes_xywh(boxes: Tensor) -> np.ndarray:
    b = boxes.detach().as_subclass(Tensor).cpu().double().reshape(-1, 4).numpy()
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def encode_masks(masks: Tensor | np.ndarray, threshold: float = 0.5) -> list[dict]:
    """Instance masks [n, H, W] (bool, or probabilities cut at `threshold`) as COCO compressed RLEs."""
    from pycocotools import mask as mask_utils

    if isinstance(masks, Tensor):
        masks = masks.detach().as_subclass(Tensor).cpu().numpy()
    if not len(masks):
        return []
    binary = (masks > threshold) if masks.dtype != bool else masks
    with warnings.catch_warnings():  # pycocotools trips NumPy 2's notice about __array__(copy=)
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return list(mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8))))


def coco_from_tensors(targets: list[dict], detections: list[dict], classes: list[str],
                      iou_type: str = "bbox") -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and results list from per-image tensors.

    Image `i` gets id `i + 1`, class `c` category id `c + 1` named `classes[c]`; areas are box areas for
    "bbox" and mask areas for "segm".

    Args:
        targets: per image `{"boxes": Tensor[k, 4] XYXY pixels, "labels": Tensor[k] int64,
            optional "iscrowd": Tensor[k]}`, and for "segm" `"rle"`: k RLEs (`encode_masks`) and
            `"size"`: (H, W).
        detections: per image `{"boxes": Tensor[n, 4] XYXY, "scores": Tensor[n], "labels": Tensor[n]}`,
            and for "segm" `"rle"`: n RLEs.
    """
    if len(targets) != len(detections):
        raise DataError(f"{len(targets)} targets but {len(detections)} detection sets; expected one per image")
    segm = iou_type == "segm"
    images, annotations, results = [], [], []
    for i, (target, found) in enumerate(zip(targets, detections)):
        rles = target["rle"] if segm else None
        images.append({"id": i + 1, **({"height": target["size"][0], "width": target["size"][1]} if segm else {})})
        boxes = _boxes_xywh(target["boxes"])
        labels = target["labels"].reshape(-1).tolist()
        crowd = target.get("iscrowd")
        crowd = [0] * len(labels) if crowd is None else [int(c) for c in crowd.reshape(-1).tolist()]
        for j, (box, label, is_crowd) in enumerate(zip(boxes.tolist(), labels, crowd)):
            shape = {"segmentation": rles[j]} if segm else {"bbox": box, "area": box[2] * box[3]}
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                                **shape, "iscrowd": is_crowd})
        scores = found["scores"].detach().reshape(-1).double().cpu().tolist()
        shapes = found["rle"] if segm else [{"bbox": box} for box in _boxes_xywh(found["boxes"]).tolist()]
        for shape, score, label in zip(shapes, scores, found["labels"].reshape(-1).tolist()):
            shape = {"segmentation": shape} if segm else shape
            results.append({"image_id": i + 1, "category_id": int(label) + 1, **shape, "score": score})
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def voc_ap(recall: Any, precision: Any, use_07: bool) -> float:
    """Average precision of one class from its cumulative recall and precision (detections by score).

    Args:
        recall, precision: 1-D sequences of equal length.
        use_07: the VOC2007 11-point mean of the best precision at recall >= 0, 0.1, ..., 1; otherwise
            (VOC2010 on) the area under the precision envelope (precision made non-increasing in recall).
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if use_07:
        reached = rec[None, :] >= (np.arange(11) / 10)[:, None]  # (11, n); k / 10 is exact, linspace is not
        return float(np.where(reached, prec[None, :], 0.0).max(1, initial=0.0).sum() / 11)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.maximum.accumulate(np.concatenate([[0.0], prec, [0.0]])[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _voc_results(parsed: _Parsed, iou: float, iou_type: str, modes: Sequence[bool]) -> dict[bool, dict]:
    """VOC AP of every class, for each `use_07` in `modes`: {use_07: {"map", "per_class"}}."""
    n_img, n_cat = len(parsed.image_ids), len(parsed.category_ids)
    gt, dt = parsed.gt, parsed.dt
    g_order, _, g_start, g_count = _groups(gt, n_img, n_img * n_cat, by_score=False)
    d_order, _, d_start, d_count = _groups(dt, n_img, n_img * n_cat, by_score=True)
    ious = _pair_ious(parsed, d_order, g_order, d_start, d_count, g_start, g_count, iou_type, crowd_rule=False)
    group = (dt.category * n_img + dt.image)[d_order]
    runs = g_count[group]  # each detection's pairs are one run of its group's ground-truth count
    best_iou, target = np.full(len(d_order), -np.inf), np.full(len(d_order), -1)
    has = runs > 0
    if has.any():
        first = (np.cumsum(runs) - runs)[has]
        best_iou[has] = np.maximum.reduceat(ious, first)
        local = np.arange(len(ious)) - np.repeat(np.cumsum(runs) - runs, runs)
        at_best = np.where(ious == np.repeat(best_iou, runs), local, np.iinfo(np.int64).max)
        target[has] = g_start[group[has]] + np.minimum.reduceat(at_best, first)  # first of equal maxima
    difficult = gt.crowd[g_order]
    per_class = {mode: {} for mode in modes}
    d_category = dt.category[d_order]
    for k, name in enumerate(parsed.names):
        n_pos = int(np.sum((gt.category[g_order] == k) & ~difficult))
        idx = np.flatnonzero(d_category == k)
        idx = idx[np.argsort(-dt.score[d_order][idx], kind="stable")]
        hit = best_iou[idx] >= iou
        ignored = hit & difficult[np.maximum(target[idx], 0)]
        claims = np.where(hit & ~ignored, target[idx], -1)
        first_claim = np.zeros(len(idx), dtype=bool)
        _, first_at = np.unique(claims, return_index=True)
        first_claim[first_at] = True
        tp = np.cumsum(first_claim & (claims >= 0), dtype=np.float64)
        fp = np.cumsum(~(first_claim & (claims >= 0)) & ~ignored, dtype=np.float64)
        for mode in modes:
            per_class[mode][name] = -1.0 if n_pos == 0 else voc_ap(tp / n_pos, tp / np.maximum(
                tp + fp, np.finfo(np.float64).eps), mode)
    out = {}
    for mode in modes:
        scored = [v for v in per_class[mode].values() if v >= 0]
        out[mode] = {"map": float(np.mean(scored)) if scored else -1.0, "per_class": per_class[mode]}
    return out


def evaluate_voc(gt: dict, dt: list[dict], iou: float = 0.5, use_07: bool = False, iou_type: str = "bbox",
                 gt_name: str = "ground truth", dt_name: str = "detections") -> dict[str, Any]:
    """Pascal VOC mean AP at one IoU threshold; COCO crowd boxes play VOC's "difficult" (ignored).

    Returns:
        {"map": mean AP over the classes with ground truth, "per_class": {name: AP, -1 without ground truth}}.
    """
    parsed = parse_coco(gt, dt, iou_type, gt_name, dt_name)
    return _voc_results(parsed, iou, iou_type, (use_07,))[use_07]


def _read_json(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None


def run_cocoeval(gt_path: str, dt_path: str, iou_type: str = "bbox", json_path: str | None = None) -> dict:
    """Evaluates two JSON files, prints the COCO summary, per-class AP and VOC mAP; optionally writes them."""
    gt, dt = _read_json(gt_path), _read_json(dt_path)
    parsed = parse_coco(gt, dt, iou_type, gt_path, dt_path)
    summary = _summary(parsed, iou_type)
    voc = _voc_results(parsed, 0.5, iou_type, (True, False))
    report = {**summary.as_dict(), "per_class": summary.per_class, "voc_map_07": voc[True]["map"],
              "voc_map": voc[False]["map"], "voc_per_class_07": voc[True]["per_class"],
              "voc_per_class": voc[False]["per_class"]}
    print("\n".join(summary.lines()))
    width = max([len(n) for n in parsed.names] + [5])
    print(f"\n{'class':<{width}}  AP@[.50:.95]  VOC07 AP50  VOC AP50")
    for name in parsed.names:
        print(f"{name:<{width}}  {summary.per_class[name]:12.3f}  {voc[True]['per_class'][name]:10.3f}  "
              f"{voc[False]['per_class'][name]:8.3f}")
    print(f"\nVOC mAP@0.5: 11-point {voc[True]['map']:.3f}, area {voc[False]['map']:.3f}")
    if json_path:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _run_verb(ns: Any, api: Any) -> int:
    run_cocoeval(ns.gt, ns.detections, ns.iou_type, ns.json)
    return 0


COCOEVAL = Verb(
    help="COCO mAP (pycocotools' 12 numbers), per-class AP and VOC mAP of a COCO results file",
    arguments=[(("gt",), {"metavar": "GT.json", "help": "COCO instances ground truth"}),
               (("detections",), {"metavar": "DETECTIONS.json", "help": "COCO results list"}),
               (("--iou-type",), {"dest": "iou_type", "choices": list(IOU_TYPES), "default": "bbox",
                                  "help": "compare boxes or masks (default bbox)"}),
               (("--json",), {"metavar": "FILE", "help": "also write every number as JSON"})],
    run=_run_verb,
    examples=["zrenie detect cocoeval instances_val.json detections.json",
              "zrenie detect cocoeval gt.json masks.json --iou-type segm --json scores.json"])
