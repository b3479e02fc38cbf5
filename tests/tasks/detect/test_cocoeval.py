"""zrenie.tasks.detect.cocoeval against pycocotools' COCOeval, VOC AP against hand-worked values and a
plain loop written as the VOC devkit's, and the cocoeval verb's output and errors."""

import argparse
import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zrenie.errors import DataError
from zrenie.tasks.detect.cocoeval import (COCOEVAL, STAT_NAMES, coco_from_tensors, evaluate_coco, evaluate_voc,
                                          voc_ap)

HEIGHT, WIDTH = 96, 128


def _mask(x: int, y: int, w: int, h: int, notch: bool) -> np.ndarray:
    m = np.zeros((HEIGHT, WIDTH), np.uint8, order="F")
    m[y:y + max(h, 1), x:x + max(w, 1)] = 1
    if notch:  # not a rectangle: its box and mask areas differ
        m[y:y + h // 2, x:x + w // 3] = 0
    return m


def _rle(m: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _uncompressed_rle(m: np.ndarray) -> dict:
    flat = m.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(edges).tolist()
    return {"size": [HEIGHT, WIDTH], "counts": ([0] if flat[0] else []) + counts}


def _detection(rng, image_id: int, category: int, box: list, score: float, segm: bool) -> dict:
    d = {"image_id": image_id, "category_id": category, "score": score}
    if segm:
        x0, y0 = int(np.clip(round(box[0]), 0, WIDTH - 1)), int(np.clip(round(box[1]), 0, HEIGHT - 1))
        d["segmentation"] = _rle(_mask(x0, y0, int(round(box[2])), int(round(box[3])), rng.random() < 0.5))
    else:
        d["bbox"] = [float(v) for v in box]
    return d


def generate(n_images: int, n_classes: int, seed: int, segm: bool = False) -> tuple[dict, list]:
    """COCO ground truth and results: small to large objects, crowd regions, images without objects,
    jittered, mislabelled, duplicated (same score) and spurious detections, one image over 100 detections."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(n_images):
        image_id = 3 * i + 7  # ids neither 0-based nor contiguous
        images.append({"id": image_id, "height": HEIGHT, "width": WIDTH})
        for _ in range(0 if rng.random() < 0.2 else int(rng.integers(1, 9))):
            side = np.exp(rng.uniform(np.log(3), np.log(110)))
            w, h = min(side * rng.uniform(0.6, 1.4), WIDTH - 1), min(side * rng.uniform(0.6, 1.4), HEIGHT - 1)
            box = [round(rng.uniform(0, WIDTH - w)), round(rng.uniform(0, HEIGHT - h)), max(1, round(w)),
                   max(1, round(h))]
            category, crowd = int(rng.integers(1, n_classes + 1)), int(rng.random() < 0.07)
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": category, "bbox": box,
                   "area": box[2] * box[3] * rng.uniform(0.7, 1.0), "iscrowd": crowd}
            if segm:
                m = _mask(*box, notch=True)
                polygon = [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2], box[1] + box[3], box[0],
                            box[1] + box[3]]]
                ann["segmentation"] = (_uncompressed_rle(m) if crowd else polygon if rng.random() < 0.3
                                       else _rle(m))
                ann["area"] = float(m.sum())
            anns.append(ann)
            for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
                jitter = rng.normal(0, 0.12 * side, 4)
                found = [box[0] + jitter[0], box[1] + jitter[1], max(0.5, box[2] + jitter[2]),
                         max(0.5, box[3] + jitter[3])]
                label = category if rng.random() < 0.85 else int(rng.integers(1, n_classes + 1))
                dets.append(_detection(rng, image_id, label, found, round(float(rng.random()), 2), segm))
                if rng.random() < 0.2:
                    dets.append(dict(dets[-1]))  # an exact duplicate, same score
        for _ in range(int(rng.integers(0, 5))):
            side = np.exp(rng.uniform(np.log(3), np.log(90)))
            box = [rng.uniform(0, WIDTH - side), rng.uniform(0, HEIGHT - side), side, side * rng.uniform(0.5, 1.5)]
            dets.append(_detection(rng, image_id, int(rng.integers(1, n_classes + 1)), box,
                                   round(float(rng.random()), 2), segm))
    for _ in range(130):  # past maxDets=100 in one image
        box = [rng.uniform(0, WIDTH - 20), rng.uniform(0, HEIGHT - 20), 20, 20]
        dets.append(_detection(rng, images[1]["id"], 1, box, float(rng.random()), segm))
    categories = [{"id": c + 1, "name": f"class{c}"} for c in range(n_classes)]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def pycocotools_eval(gt: dict, dt: list, iou_type: str, max_dets=None) -> tuple[COCOeval, str]:
    """pycocotools on deep copies (loadRes writes into its input), and what its summarize printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(dt)), iou_type)
        if max_dets:
            evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
        start = out.tell()
        evaluator.summarize()
    return evaluator, out.getvalue()[start:]


def _per_class(precision: np.ndarray) -> list[float]:
    out = []
    for k in range(precision.shape[2]):
        s = precision[:, :, k, 0, -1]
        out.append(float(np.mean(s[s > -1])) if (s > -1).any() else -1.0)
    return out


@pytest.mark.parametrize(("iou_type", "n_images"), [("bbox", 200), ("segm", 60)])
def test_equals_pycocotools(iou_type, n_images):
    gt, dt = generate(n_images, 4, seed=0, segm=iou_type == "segm")
    theirs, _ = pycocotools_eval(gt, dt, iou_type)
    ours = evaluate_coco(gt, dt, iou_type)
    np.testing.assert_allclose(ours.stats, theirs.stats, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, theirs.eval["precision"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(ours.recall, theirs.eval["recall"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(list(ours.per_class.values()), _per_class(theirs.eval["precision"]), atol=1e-12)
    assert list(ours.per_class) == ["class0", "class1", "class2", "class3"]
    assert list(ours.as_dict()) == list(STAT_NAMES) and ours.as_dict()["ap"] == ours.stats[0]


def test_other_max_dets_equal_pycocotools():
    gt, dt = generate(40, 3, seed=1)
    theirs, _ = pycocotools_eval(gt, dt, "bbox", max_dets=(2, 5, 20))
    ours = evaluate_coco(gt, dt, "bbox", max_dets=(2, 5, 20))
    np.testing.assert_allclose(ours.stats, theirs.stats, atol=1e-6, rtol=0)  # stats[0] is -1: no 100 column


def test_crowd_and_empty_by_hand():
    """One person and one crowd region in image 1, nothing in image 2, no dog anywhere."""
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 40, 40], "area": 1600,
                           "iscrowd": 1}]}
    dt = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},  # exact: a true positive
          {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.8},  # inside the crowd: ignored
          {"image_id": 1, "category_id": 1, "bbox": [62, 62, 10, 10], "score": 0.7}]  # a crowd takes any number
    summary = evaluate_coco(gt, dt)
    assert summary.stats[:3] == pytest.approx([1.0, 1.0, 1.0]) and summary.per_class == pytest.approx(
        {"person": 1.0, "dog": -1.0})  # precision is tp / (tp + fp + eps), as pycocotools has it
    assert summary.as_dict()["ap_small"] == pytest.approx(1.0)
    assert summary.as_dict()["ap_medium"] == -1.0  # the crowd counts nowhere
    dt.append({"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.95})  # on an empty image
    ap = evaluate_coco(gt, dt).per_class["person"]
    assert ap == pytest.approx(0.5)  # a false positive first: precision 1/2 at every recall point
    assert evaluate_coco(gt, []).stats[:3] == [0.0, 0.0, 0.0]


def test_coco_from_tensors():
    targets = [{"boxes": torch.tensor([[1.0, 2, 11, 22]]), "labels": torch.tensor([2]),
                "iscrowd": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    detections = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
                  {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}]
    gt, dt = coco_from_tensors(targets, detections, ["a", "b", "c"])
    assert [im["id"] for im in gt["images"]] == [1, 2]
    assert gt["categories"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    ann = gt["annotations"][0]
    assert (ann["image_id"], ann["category_id"], ann["bbox"], ann["area"], ann["iscrowd"]) == (1, 3, [1, 2, 10, 20],
                                                                                               200, 1)
    assert dt == [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.5}]


def test_voc_ap_by_hand():
    # detections: hit, miss, hit of 2 objects -> recall .5 .5 1, precision 1 .5 2/3
    rec, prec = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert voc_ap(rec, prec, use_07=False) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert voc_ap(rec, prec, use_07=True) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert voc_ap([0.3], [1.0], use_07=True) == pytest.approx(4 / 11)  # recall 0.3 reaches the 0.3 point
    assert voc_ap([], [], use_07=True) == 0.0 and voc_ap([], [], use_07=False) == 0.0


def naive_voc(gt: dict, dt: list, iou: float, use_07: bool) -> dict:
    """The devkit's per-class loop: one detection at a time by score, boxes as (x, y, w, h)."""
    def overlap(a, b):
        w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        inter = max(w, 0) * max(h, 0)
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)

    aps = {}
    for cat in gt["categories"]:
        truth = [a for a in gt["annotations"] if a["category_id"] == cat["id"]]
        n_pos = sum(not a.get("iscrowd", 0) for a in truth)
        used = set()
        tp, fp = [], []
        for d in sorted([d for d in dt if d["category_id"] == cat["id"]], key=lambda d: -d["score"]):
            best, arg = -np.inf, None
            for a in truth:
                if a["image_id"] == d["image_id"] and overlap(d["bbox"], a["bbox"]) > best:
                    best, arg = overlap(d["bbox"], a["bbox"]), a["id"]
            crowd = arg is not None and next(a for a in truth if a["id"] == arg).get("iscrowd", 0)
            is_tp = best >= iou and not crowd and arg not in used
            if is_tp:
                used.add(arg)
            tp.append(float(is_tp))
            fp.append(float(not is_tp and not (best >= iou and crowd)))
        if n_pos == 0:
            aps[cat["name"]] = -1.0
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        rec, prec = ctp / n_pos, ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        if use_07:
            best = [max([p for r, p in zip(rec, prec) if r >= t / 10], default=0) for t in range(11)]
            aps[cat["name"]] = sum(best) / 11
        else:
            mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            aps[cat["name"]] = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1))
    return aps


@pytest.mark.parametrize("use_07", [True, False])
def test_voc_equals_naive_devkit_loop(use_07):
    gt, dt = generate(40, 3, seed=2)
    dt = [dict(d, score=d["score"] + 1e-6 * i) for i, d in enumerate(dt)]  # no ties: the loop's order is its own
    want = naive_voc(gt, dt, 0.5, use_07)
    got = evaluate_voc(gt, dt, 0.5, use_07)
    assert got["per_class"] == pytest.approx(want, abs=1e-12)
    assert got["map"] == pytest.approx(np.mean([v for v in want.values() if v >= 0]), abs=1e-12)


def _write(path, data) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def _run(gt: str, dt: str, iou_type: str = "bbox", json_path=None) -> int:
    ns = argparse.Namespace(gt=gt, detections=dt, iou_type=iou_type, json=json_path)
    return COCOEVAL.run(ns, None)


def test_verb_prints_pycocotools_lines_and_writes_json(tmp_path, capsys):
    gt, dt = generate(30, 3, seed=3)
    out = tmp_path / "scores.json"
    assert _run(_write(tmp_path / "gt.json", gt), _write(tmp_path / "dt.json", dt), json_path=str(out)) == 0
    printed = capsys.readouterr().out
    theirs, their_lines = pycocotools_eval(gt, dt, "bbox")
    assert printed.splitlines()[:12] == their_lines.splitlines()
    assert "VOC mAP@0.5: 11-point" in printed and "class2" in printed
    written = json.loads(out.read_text())
    np.testing.assert_allclose([written[k] for k in STAT_NAMES], theirs.stats, atol=1e-6)
    assert written["voc_map"] == pytest.approx(evaluate_voc(gt, dt)["map"])
    assert written["voc_map_07"] == pytest.approx(evaluate_voc(gt, dt, use_07=True)["map"])
    assert set(written["per_class"]) == {"class0", "class1", "class2"}


def test_verb_bad_input_is_one_line_naming_the_file(tmp_path):
    gt, dt = generate(5, 2, seed=4)
    good_gt, good_dt = _write(tmp_path / "gt.json", gt), _write(tmp_path / "dt.json", dt)
    segm_gt = _write(tmp_path / "segm_gt.json", generate(5, 2, seed=4, segm=True)[0])
    out = tmp_path / "out.json"
    cases = [
        (str(tmp_path / "missing.json"), good_dt, "bbox", "missing.json"),
        (_write(tmp_path / "broken.json", '{"images": ['), good_dt, "bbox", "broken.json"),
        (good_gt, _write(tmp_path / "img.json", [dict(dt[0], image_id=999)]), "bbox", "img.json"),
        (good_gt, _write(tmp_path / "cat.json", [dict(dt[0], category_id=42)]), "bbox", "cat.json"),
        (segm_gt, good_dt, "segm", "dt.json"),  # box results have no segmentation
    ]
    for gt_path, dt_path, iou_type, named in cases:
        with pytest.raises(DataError) as err:
            _run(gt_path, dt_path, iou_type, str(out))
        assert named in str(err.value) and "\n" not in str(err.value)
        assert not out.exists()
