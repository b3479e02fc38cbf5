"""zrenie.ops.boxes against torchvision.ops, and soft-NMS against a plain-Python loop."""

import itertools
import math

import pytest
import torch
import torchvision.ops as tvops

from zrenie import ops
from zrenie.errors import ConfigError, ShapeError

SEEDS = (0, 1, 2)


def random_boxes(n: int, seed: int) -> torch.Tensor:
    """xyxy boxes in a 100x100 image with duplicates, zero-width, zero-height and zero-area boxes mixed in."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 80
    wh = torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + wh], dim=1)
    if n >= 10:
        boxes[1] = boxes[0]  # duplicate
        boxes[2, 2] = boxes[2, 0]  # zero width
        boxes[3, 3] = boxes[3, 1]  # zero height
        boxes[4, 2:] = boxes[4, :2]  # a point
        boxes[5] = boxes[4]  # two identical points: IoU NaN
    return boxes


def random_scores(n: int, seed: int) -> torch.Tensor:
    """Scores rounded to one decimal, so many ties."""
    g = torch.Generator().manual_seed(seed + 100)
    return (torch.rand(n, generator=g) * 10).round() / 10


@pytest.mark.parametrize("n", [0, 1, 57, 200])
@pytest.mark.parametrize("seed", SEEDS)
def test_conversions_and_area_match_torchvision(n, seed):
    boxes = random_boxes(n, seed)
    for in_fmt, out_fmt in itertools.product(ops.BOX_FORMATS, repeat=2):
        src = tvops.box_convert(boxes, "xyxy", in_fmt)
        torch.testing.assert_close(ops.box_convert(src, in_fmt, out_fmt), tvops.box_convert(src, in_fmt, out_fmt),
                                   atol=1e-6, rtol=0)
    torch.testing.assert_close(ops.box_area(boxes), tvops.box_area(boxes), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"])
@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 5), (7, 0), (60, 45), (150, 150)])
@pytest.mark.parametrize("seed", SEEDS)
def test_iou_family_matches_torchvision(name, n, m, seed):
    boxes1, boxes2 = random_boxes(n, seed), random_boxes(m, seed + 7)
    if n == m:
        boxes2 = torch.cat([boxes1[: n // 2], boxes2[n // 2:]])  # identical rows across the two sets
    ours, theirs = getattr(ops, name)(boxes1, boxes2), getattr(tvops, name)(boxes1, boxes2)
    assert ours.shape == (n, m)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0, equal_nan=True)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("n", [0, 1, 50, 200])
@pytest.mark.parametrize("seed", SEEDS)
def test_nms_and_batched_nms_equal_torchvision(threshold, n, seed):
    boxes, scores = random_boxes(n, seed), random_scores(n, seed)
    idxs = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(ops.nms(boxes, scores, threshold), tvops.nms(boxes, scores, threshold))
    assert torch.equal(ops.batched_nms(boxes, scores, idxs, threshold),
                       tvops.batched_nms(boxes, scores, idxs, threshold))


def test_nms_keeps_first_of_tied_duplicates():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert ops.nms(boxes, scores, 0.5).tolist() == [0] == tvops.nms(boxes, scores, 0.5).tolist()


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_nms_equals_torchvision_on_thousands_of_boxes(threshold):
    shift = torch.rand(2000, 2, generator=torch.Generator().manual_seed(3)).repeat(1, 2) * 400
    boxes, scores = random_boxes(2000, 3) + shift, random_scores(2000, 3)  # 480x480: each box meets dozens
    boxes[10:20] = boxes[20:30]  # more duplicates
    assert torch.equal(ops.nms(boxes, scores, threshold), tvops.nms(boxes, scores, threshold))


def test_nms_all_pairs_path_equals_torchvision():
    """A negative threshold (disjoint boxes suppress) and a non-finite box take the all-pairs path."""
    boxes, scores = random_boxes(300, 5), random_scores(300, 5)
    assert torch.equal(ops.nms(boxes, scores, -0.1), tvops.nms(boxes, scores, -0.1))
    boxes[7, 2] = math.inf
    assert torch.equal(ops.nms(boxes, scores, 0.5), tvops.nms(boxes, scores, 0.5))


def test_suppression_pairs_in_small_chunks_equal_the_iou_matrix():
    from zrenie.ops.boxes import _suppression_pairs, box_iou_pairs

    boxes = random_boxes(300, 4)
    src, dst = _suppression_pairs(boxes, 0.3, chunk=2000)
    want = (torch.triu(tvops.box_iou(boxes, boxes) > 0.3, diagonal=1)).nonzero()
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(map(tuple, want.tolist()))
    torch.testing.assert_close(box_iou_pairs(boxes[:50], boxes[50:100]),
                               tvops.box_iou(boxes[:50], boxes[50:100]).diagonal(), equal_nan=True)


def naive_soft_nms(boxes, scores, iou_threshold, sigma, score_threshold, method):
    """Bodla et al.'s Algorithm 1, one box at a time in plain Python."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    boxes, scores = boxes.double().tolist(), scores.double().tolist()
    remaining = list(range(len(boxes)))
    keep, kept = [], []
    while remaining:
        best = max(remaining, key=lambda i: (scores[i], -i))  # highest score, lowest index on ties
        if scores[best] < score_threshold:
            break
        keep.append(best)
        kept.append(scores[best])
        remaining.remove(best)
        for i in remaining:
            o = iou(boxes[best], boxes[i])
            if method == "linear":
                scores[i] *= (1 - o) if o > iou_threshold else 1.0
            else:
                scores[i] *= math.exp(-o * o / sigma)
    return keep, kept


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("n", [0, 1, 60])
@pytest.mark.parametrize("seed", SEEDS)
def test_soft_nms_matches_naive_loop(method, n, seed):
    boxes, scores = random_boxes(n, seed).double(), random_scores(n, seed).double()
    keep, kept_scores = ops.soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.05,
                                     method=method)
    want_keep, want_scores = naive_soft_nms(boxes, scores, 0.3, 0.5, 0.05, method)
    assert keep.dtype == torch.int64
    assert keep.tolist() == want_keep
    torch.testing.assert_close(kept_scores, torch.tensor(want_scores, dtype=torch.float64), atol=1e-9, rtol=0)


def test_soft_nms_by_hand():
    # Box B overlaps A by half its width: inter 50, union 150, IoU 1/3.
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.1])
    keep, kept = ops.soft_nms(boxes, scores, iou_threshold=0.3, method="linear")
    assert keep.tolist() == [0, 1, 2]
    torch.testing.assert_close(kept, torch.tensor([0.9, 0.8 * (1 - 1 / 3), 0.1]))  # 0.8 -> 0.5333
    keep, kept = ops.soft_nms(boxes, scores, sigma=0.5, method="gaussian")
    torch.testing.assert_close(kept, torch.tensor([0.9, 0.8 * math.exp(-(1 / 9) / 0.5), 0.1]))  # 0.8 -> 0.6405


def test_normalize_round_trip():
    boxes = random_boxes(20, 0)
    norm = ops.normalize_boxes(boxes, (200, 100))  # H=200, W=100
    torch.testing.assert_close(norm[:, 0], boxes[:, 0] / 100)
    torch.testing.assert_close(norm[:, 1], boxes[:, 1] / 200)
    torch.testing.assert_close(ops.denormalize_boxes(norm, (200, 100)), boxes)


@pytest.mark.parametrize(("call", "error"), [
    (lambda: ops.box_iou(torch.zeros(3, 5), torch.zeros(2, 4)), ShapeError),
    (lambda: ops.box_area(torch.zeros(4)), ShapeError),
    (lambda: ops.nms(torch.zeros(3, 4), torch.zeros(2), 0.5), ShapeError),
    (lambda: ops.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.int64), 0.5), ShapeError),
    (lambda: ops.box_convert(torch.zeros(3, 4), "xyxy", "yxyx"), ConfigError),
    (lambda: ops.soft_nms(torch.zeros(3, 4), torch.zeros(3), method="hard"), ConfigError),
])
def test_bad_input_raises_one_line(call, error):
    with pytest.raises(error) as info:
        call()
    assert "\n" not in str(info.value)
