"""yolo: YOLOv1's grid and the anchor head, against naive loops, hand-worked numbers and torchvision's IoU."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from zrenie.errors import ConfigError
from zrenie.tasks.detect.models_yolo import yolo
from zrenie.tasks.detect.models_yolo_anchor import (
    YOLOAnchorHead, assign_anchors, cell_priors, decode_yolo_boxes, kmeans_anchors,
)
from zrenie.tasks.detect.models_yolo_v1 import YOLOv1Head, yolo_v1_assign, yolo_v1_loss

SMALL = {"width": 8, "channels": 16}


def _targets(boxes: list[list[float]], labels: list[int]) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def test_output_shapes():
    x = torch.rand(2, 3, 64, 64)
    v1 = yolo(3, **SMALL)
    assert v1(x).shape == (2, 4, 4, 5 * 2 + 3)  # stride 16: a 4 x 4 grid, B = 2 boxes and K = 3 classes per cell
    anchor = yolo(3, version="anchor", **SMALL)
    assert [tuple(o.shape) for o in anchor(x)] == [(2, 8, 8, 3, 8), (2, 4, 4, 3, 8), (2, 2, 2, 3, 8)]


def _naive_v1_assign(pred, gt, image_size):
    """Python loop: the cell of each centre, the larger object per cell, the predictor of highest IoU."""
    sh, sw, b, _ = pred.shape
    owner = {}
    for g, box in enumerate(gt.tolist()):
        cell = (int((box[1] + box[3]) / 2 // (image_size[0] / sh)), int((box[0] + box[2]) / 2 // (image_size[1] / sw)))
        area = (box[2] - box[0]) * (box[3] - box[1])
        if cell not in owner or area > owner[cell][1]:
            owner[cell] = (g, area)
    out = {}
    for cell, (g, _) in owner.items():
        ious = [float(box_iou(pred[cell][k:k + 1], gt[g:g + 1])) for k in range(b)]
        out[cell] = (g, ious.index(max(ious)))
    return out


def test_v1_assignment_two_boxes_by_hand_and_naive_loop():
    # 64 x 64 image, 2 x 2 grid of 32-pixel cells, B = 2 predictors per cell
    pred = torch.zeros(2, 2, 2, 4)
    pred[0, 0, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # cell (0, 0): predictor 1 overlaps object 0 more
    pred[0, 0, 1] = torch.tensor([4.0, 8.0, 30.0, 26.0])
    pred[1, 1, 0] = torch.tensor([36.0, 36.0, 60.0, 60.0])  # cell (1, 1): predictor 0 overlaps object 1 more
    pred[1, 1, 1] = torch.tensor([50.0, 50.0, 64.0, 64.0])
    gt = torch.tensor([[6.0, 10.0, 30.0, 24.0],  # centre (18, 17): cell (0, 0)
                       [40.0, 34.0, 62.0, 58.0],  # centre (51, 46): cell (1, 1)
                       [8.0, 8.0, 12.0, 12.0]])  # centre (10, 10): cell (0, 0) too, smaller, so it loses the cell
    gt_index, responsible = yolo_v1_assign(pred, gt, (64, 64))
    assert gt_index.tolist() == [[0, -1], [-1, 1]]
    assert responsible.nonzero().tolist() == [[0, 0, 1], [1, 1, 0]]
    naive = _naive_v1_assign(pred, gt, (64, 64))
    assert {(r, c): (int(gt_index[r, c]), int(responsible[r, c].nonzero())) for r, c in naive} == naive


def test_v1_loss_worked_by_hand():
    # 2 x 2 grid on 64 x 64, B = 2, K = 2. All raw outputs 0 (sigmoid 0.5, softmax 0.5) except cell (0, 0)'s
    # predictor 1: sqrt w = sqrt(0.5), sqrt h = 0.5, the box (0, 8, 32, 24), IoU 384 / 640 = 0.6 with the truth
    out = torch.zeros(1, 2, 2, 12)
    out[0, 0, 0, 7], out[0, 0, 0, 8] = math.sqrt(0.5), 0.5
    target = _targets([[8, 8, 40, 24]], [0])  # centre (24, 16): x = 0.75, y = 0.5 in cell (0, 0); w 0.5, h 0.25
    parts = yolo_v1_loss(out, [target], 2, (64, 64))
    coord = (0.5 - 0.75) ** 2  # y, sqrt w and sqrt h are exact
    obj = (0.5 - 0.6) ** 2
    noobj = 7 * 0.5 ** 2  # the other predictor of cell (0, 0) and the 6 of the other cells
    cls = (0.5 - 1) ** 2 + 0.5 ** 2
    assert parts["coord"].item() == pytest.approx(coord)
    assert parts["obj"].item() == pytest.approx(obj)
    assert parts["noobj"].item() == pytest.approx(noobj)
    assert parts["cls"].item() == pytest.approx(cls)
    assert parts["loss"].item() == pytest.approx(5 * coord + obj + 0.5 * noobj + cls)  # 1.6975


def _naive_assign_anchors(gt, anchors, grids, image_size):
    flat = [tuple(wh) for level in anchors.tolist() for wh in level]
    per_level = anchors.shape[1]
    best = {}
    for g, (x1, y1, x2, y2) in enumerate(gt.tolist()):
        w, h = x2 - x1, y2 - y1
        ious = [min(w, aw) * min(h, ah) / (w * h + aw * ah - min(w, aw) * min(h, ah)) for aw, ah in flat]
        j = ious.index(max(ious))
        level, anchor = divmod(j, per_level)
        rows, cols = grids[level]
        row = min(int((y1 + y2) / 2 / (image_size[0] / rows)), rows - 1)
        col = min(int((x1 + x2) / 2 / (image_size[1] / cols)), cols - 1)
        slot = (level, anchor, row, col)
        if slot not in best or ious[j] > best[slot][1]:
            best[slot] = (g, ious[j])
    return sorted((g, *slot) for slot, (g, _) in best.items())


def test_anchor_assignment_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(40, 2, generator=g) * 100
    wh = 8 + torch.rand(40, 2, generator=g) * 50
    gt = torch.cat([xy, xy + wh], 1).clamp(max=128)
    gt = torch.cat([gt, gt[:3] + 1])  # the same shape one pixel off: the same slot, the first keeps it
    anchors = torch.tensor([[[21, 15], [19, 22], [25, 24]], [[29, 30], [42, 25], [26, 43]],
                            [[36, 36], [42, 43], [50, 49]]], dtype=torch.float32)
    grids = [(16, 16), (8, 8), (4, 4)]
    got = assign_anchors(gt, anchors, grids, (128, 128))
    rows = sorted(zip(*(got[k].tolist() for k in ("gt", "level", "anchor", "row", "col"))))
    assert rows == _naive_assign_anchors(gt, anchors, grids, (128, 128))
    assert len(rows) < len(gt)


def test_anchor_decode_by_hand():
    # 64 x 64 image: a 8 x 8 grid of 8-pixel cells and a 4 x 4 grid of 16-pixel cells, 2 anchors per level
    anchors = torch.tensor([[[10.0, 6.0], [6.0, 10.0]], [[20.0, 20.0], [30.0, 12.0]]])
    priors, cells = cell_priors([(8, 8), (4, 4)], anchors, (64, 64))
    raw = torch.zeros(len(priors), 4)
    fine = (1 * 8 + 2) * 2 + 1  # level 0, row 1, col 2, anchor 1
    coarse = 8 * 8 * 2 + (3 * 4 + 0) * 2 + 0  # level 1, row 3, col 0, anchor 0
    raw[fine] = torch.tensor([0.0, 0.0, math.log(2.0), 0.0])  # centre of the cell, twice the anchor's width
    raw[coarse] = torch.tensor([math.log(3.0), -math.log(3.0), 0.0, math.log(0.5)])  # sigmoid 0.75 and 0.25
    boxes = decode_yolo_boxes(raw, priors, cells)
    cx, cy = 2.5 * 8, 1.5 * 8
    torch.testing.assert_close(boxes[fine], torch.tensor([cx - 6, cy - 5, cx + 6, cy + 5]))
    cx, cy = 0.75 * 16, 3.25 * 16
    torch.testing.assert_close(boxes[coarse], torch.tensor([cx - 10, cy - 5, cx + 10, cy + 5]))


def test_kmeans_anchors_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    wh = (5 + torch.rand(60, 2, generator=g) * 40).double()
    k = 4
    start = torch.randperm(60, generator=torch.Generator().manual_seed(0))[:k]  # the function's seeded start
    centroids = [tuple(wh[i].tolist()) for i in start]
    boxes = [tuple(b) for b in wh.tolist()]
    assign = None
    for _ in range(300):
        new = []
        for w, h in boxes:
            d = [1 - min(w, cw) * min(h, ch) / (w * h + cw * ch - min(w, cw) * min(h, ch)) for cw, ch in centroids]
            new.append(d.index(min(d)))
        if new == assign:
            break
        assign = new
        for j in range(k):
            members = [b for b, a in zip(boxes, assign) if a == j]
            if members:
                centroids[j] = (sum(m[0] for m in members) / len(members), sum(m[1] for m in members) / len(members))
    expected = torch.tensor(sorted(centroids, key=lambda c: c[0] * c[1]), dtype=torch.float64)
    torch.testing.assert_close(kmeans_anchors(wh, k, seed=0), expected)


def _two_box_image() -> tuple[torch.Tensor, dict]:
    image = torch.full((1, 3, 64, 64), 0.1)
    image[0, 0, 8:36, 8:30] = 0.9  # a red box, class 0
    image[0, 1, 30:56, 36:60] = 0.9  # a green box, class 1
    return image, _targets([[8, 8, 30, 36], [36, 30, 60, 56]], [0, 1])


@pytest.mark.parametrize("version", ["v1", "anchor"])
def test_overfits_one_image(version):
    torch.manual_seed(0)
    image, target = _two_box_image()
    model = yolo(2, version=version, **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        model.losses(image, [target])["loss"].backward()
        opt.step()
    # batchnorm stays on batch statistics: 30 steps are too few for its running averages to settle;
    # conf 0.1 because v1's confidence learns the IoU of a box that is itself still moving, so it lags
    found = model.detect(image, conf=0.1, iou=0.5)[0]
    for box, label in zip(target["boxes"], target["labels"]):
        hit = (box_iou(found["boxes"], box[None])[:, 0] >= 0.5) & (found["labels"] == label)
        assert hit.any(), (version, found)


def test_detect_format():
    torch.manual_seed(0)
    for version in ("v1", "anchor"):
        model = yolo(3, version=version, **SMALL).eval()
        out = model.detect(torch.rand(2, 3, 48, 64), conf=0.001, iou=0.5, max_det=7)
        assert len(out) == 2
        for d in out:
            assert set(d) == {"boxes", "scores", "labels"} and d["labels"].dtype == torch.int64
            assert 0 < len(d["scores"]) <= 7 and d["boxes"].shape == (len(d["scores"]), 4)
            scores, boxes = d["scores"], d["boxes"]
            assert (scores[:-1] >= scores[1:]).all() and (scores >= 0.001).all() and (scores <= 1).all()
            assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 64).all() and (boxes[:, [1, 3]] <= 48).all()
            assert ((d["labels"] >= 0) & (d["labels"] < 3)).all()


def test_nms_backends_agree():
    torch.manual_seed(0)
    for version in ("v1", "anchor"):
        model = yolo(3, version=version, **SMALL).eval()
        images = torch.rand(2, 3, 64, 64)
        first = model.detect(images, conf=0.001, iou=0.4)
        model.nms = "zrenie"
        second = model.detect(images, conf=0.001, iou=0.4)
        for a, b in zip(first, second):
            assert len(a["scores"]) > 1
            for key in a:
                torch.testing.assert_close(a[key], b[key])


def test_head_parameter_counts_by_hand():
    c, k = 16, 3
    hidden = 9 * c * c + 2 * c  # 3x3 conv without bias (batchnorm follows), batchnorm weight and bias
    v1 = YOLOv1Head(c, k, num_boxes=2)
    assert sum(p.numel() for p in v1.parameters()) == hidden + c * (5 * 2 + k) + (5 * 2 + k)  # 2557
    anchor = YOLOAnchorHead(c, k, [[[10, 10]] * 3] * 3)
    assert sum(p.numel() for p in anchor.parameters()) == 3 * (hidden + c * 3 * (5 + k) + 3 * (5 + k))  # 8232


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="version"):
        yolo(3, version="v9")
    with pytest.raises(ConfigError, match="anchors belongs to yolo version=anchor"):
        yolo(3, anchors=[[[10, 10]]], **SMALL)
    with pytest.raises(ConfigError, match="anchor levels"):
        yolo(3, version="anchor", anchors=[[[10, 10]]], **SMALL)
    with pytest.raises(ConfigError, match="strides"):
        yolo(3, stride=12, **SMALL)


def test_images_without_objects_train_only_the_no_object_term():
    torch.manual_seed(0)
    empty = _targets([], [])
    for version, weight in (("v1", 0.5), ("anchor", 1.0)):
        model = yolo(3, version=version, **SMALL)
        parts = model.losses(torch.rand(2, 3, 64, 64), [empty, empty])
        parts["loss"].backward()
        assert parts["noobj"] > 0 and parts["loss"].item() == pytest.approx(weight * parts["noobj"].item())
        assert all(parts[k] == 0 for k in parts if k not in ("loss", "noobj"))
