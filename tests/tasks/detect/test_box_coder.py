"""Box encoding against torchvision's BoxCoder, matching against SSDMatcher and a naive loop."""

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.ops import box_iou as tv_box_iou

from zrenie.errors import ShapeError
from zrenie.tasks.detect.box_coder import assign_targets, decode, encode, match


def _random_boxes(n, size=100.0, seed=0, min_wh=2.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.4 + min_wh
    return torch.cat([xy, xy + wh], 1)


def test_encode_decode_equal_torchvision_boxcoder():
    gt, anchors = _random_boxes(50, seed=1).double(), _random_boxes(50, seed=2).double()
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(encode(gt, anchors, (0.1, 0.2)), coder.encode_single(gt, anchors))
    offsets = torch.randn(50, 4, dtype=torch.float64)
    offsets[0, 2] = 40.0  # above the exp() cap
    torch.testing.assert_close(decode(offsets, anchors), coder.decode_single(offsets, anchors))
    torch.testing.assert_close(decode(encode(gt, anchors), anchors), gt)
    # batched offsets broadcast over the anchors
    batch = torch.stack([offsets, -offsets])
    torch.testing.assert_close(decode(batch, anchors)[1], decode(-offsets, anchors))


def test_encode_by_hand():
    # gt centre (15, 10) size 10x4, anchor centre (10, 10) size 10x8: (0.5/0.1, 0, 0, log(0.5)/0.2)
    out = encode(torch.tensor([[10.0, 8.0, 20.0, 12.0]]), torch.tensor([[5.0, 6.0, 15.0, 14.0]]))
    torch.testing.assert_close(out, torch.tensor([[5.0, 0.0, 0.0, math.log(0.5) / 0.2]]))


def _naive_match(gt, anchors, thr):
    """SSD's rule written as loops: best box per anchor above thr, then each box's best anchor."""
    iou = tv_box_iou(gt, anchors)
    out = [-1] * len(anchors)
    for a in range(len(anchors)):
        best = max(range(len(gt)), key=lambda g: (iou[g, a].item(), -g))
        if iou[best, a] >= thr:
            out[a] = best
    claim = {}
    for g in range(len(gt)):
        a = max(range(len(anchors)), key=lambda j: (iou[g, j].item(), -j))
        if iou[g, a] > 0 and (a not in claim or iou[g, a] > iou[claim[a], a]):
            claim[a] = g
    for a, g in claim.items():
        out[a] = g
    return torch.tensor(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_equals_naive_loop_and_ssdmatcher(seed):
    gt, anchors = _random_boxes(7, seed=seed), _random_boxes(60, seed=seed + 10)
    ours = match(gt, anchors, 0.5)
    assert torch.equal(ours, _naive_match(gt, anchors, 0.5))
    iou = tv_box_iou(gt, anchors)
    best = iou.argmax(1)
    if len(set(best.tolist())) == len(gt) and (iou.max(1).values > 0).all():  # SSDMatcher's defined case
        assert torch.equal(ours, SSDMatcher(0.5)(iou))


def test_match_forces_a_poorly_fitting_box_and_handles_empty():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 60.0, 60.0], [100.0, 100.0, 110.0, 110.0]])
    gt = torch.tensor([[22.0, 22.0, 30.0, 30.0], [200.0, 200.0, 210.0, 210.0]])  # IoU 0.04 with anchor 1; none
    assert match(gt, anchors).tolist() == [-1, 0, -1]
    assert match(gt, anchors, force_best=False).tolist() == [-1, -1, -1]
    assert match(torch.zeros(0, 4), anchors).tolist() == [-1, -1, -1]


def test_assign_targets():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [0.0, 0.0, 12.0, 12.0]])
    gt = torch.tensor([[0.0, 0.0, 11.0, 11.0]])
    classes, offsets, matches = assign_targets(gt, torch.tensor([4]), anchors)
    assert classes.tolist() == [5, 0, 5] and matches.tolist() == [0, -1, 0]
    torch.testing.assert_close(offsets[[0, 2]], encode(gt.expand(2, 4), anchors[[0, 2]]))
    assert (offsets[1] == 0).all()
    classes, offsets, _ = assign_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), anchors)
    assert (classes == 0).all() and (offsets == 0).all()
    with pytest.raises(ShapeError):
        assign_targets(gt, torch.tensor([1, 2]), anchors)
    with pytest.raises(ShapeError):
        encode(torch.zeros(3, 5), anchors)
